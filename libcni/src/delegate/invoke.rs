//! Executing a CNI plugin binary: found in CNI_PATH, given its environment and
//! stdin, its stdout read as a result or as the spec's error object. Used both to
//! delegate (IPAM) and by the runtime side (cnitool). A plugin that is this very
//! executable runs in-process instead ([`builtin`]).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::delegate::builtin;
use crate::spec::error::CniError;

/// Finds `plugin_type` in the directories of CNI_PATH. A name with a path separator
/// is refused: a config must never make us exec an arbitrary path.
pub fn find_plugin(plugin_type: &str, search_path: &[PathBuf]) -> Result<PathBuf, CniError> {
    if plugin_type.is_empty() {
        return Err(CniError::invalid_config("no plugin name provided"));
    }
    if plugin_type.contains('/')
        || plugin_type.contains('\\')
        || plugin_type == ".."
        || plugin_type == "."
    {
        return Err(CniError::invalid_config(format!(
            "invalid plugin name {plugin_type:?}: it must not contain a path separator"
        )));
    }
    search_path
        .iter()
        .map(|dir| dir.join(plugin_type))
        .find(|candidate| candidate.metadata().map(|m| m.is_file()).unwrap_or(false))
        .ok_or_else(|| {
            let dirs: Vec<String> = search_path
                .iter()
                .map(|d| d.display().to_string())
                .collect();
            CniError::invalid_config(format!(
                "failed to find plugin {plugin_type:?} in path [{}]",
                dirs.join(" ")
            ))
        })
}

/// The most a plugin may print on stdout: a result for the largest config we read
/// (1 MiB, `skel::MAX_STDIN_BYTES`) is a few times that. More is an error, and the
/// plugin is killed rather than read to its end.
pub const MAX_PLUGIN_STDOUT: u64 = 16 * 1024 * 1024;

/// How much of a plugin's stderr is kept and forwarded; the rest is read and dropped,
/// so that a plugin that logs without end neither blocks nor fills our memory.
pub const MAX_PLUGIN_STDERR: u64 = 1024 * 1024;

/// What a plugin process left: whether it exited 0, its stdout, the kept stderr.
struct Exited {
    success: bool,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

/// Runs a plugin binary once; on ETXTBSY (a binary being replaced right now) it
/// tries again a few times, as the Go invoke package does.
fn exec_once(binary: &Path, env: &[(&str, String)], stdin: &[u8]) -> Result<Exited, CniError> {
    let mut attempt = 0;
    let mut child = loop {
        let spawned = Command::new(binary)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn();
        match spawned {
            Ok(child) => break child,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempt < 5 => {
                attempt += 1;
                std::thread::sleep(Duration::from_millis(50 * attempt));
            }
            Err(e) => {
                return Err(CniError::io(format!(
                    "failed to exec plugin {}: {e}",
                    binary.display()
                )))
            }
        }
    };
    // Written from a thread: a plugin may print before it has read all of stdin.
    let mut child_stdin = child.stdin.take().expect("stdin is piped");
    let input = stdin.to_vec();
    let writer = std::thread::spawn(move || child_stdin.write_all(&input));
    let mut child_stderr = child.stderr.take().expect("stderr is piped");
    let logger = std::thread::spawn(move || {
        let mut kept = Vec::new();
        let _ = (&mut child_stderr)
            .take(MAX_PLUGIN_STDERR)
            .read_to_end(&mut kept);
        let _ = std::io::copy(&mut child_stderr, &mut std::io::sink());
        kept
    });
    let mut stdout = Vec::new();
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .take(MAX_PLUGIN_STDOUT + 1)
        .read_to_end(&mut stdout);
    let too_much = stdout.len() as u64 > MAX_PLUGIN_STDOUT;
    if too_much {
        let _ = child.kill();
    }
    let status = child.wait();
    // A plugin that exits without reading stdin closes the pipe: that is not our error.
    let _ = writer.join();
    let stderr = logger.join().unwrap_or_default();
    let failed = |e: std::io::Error| {
        CniError::io(format!(
            "failed to wait for plugin {}: {e}",
            binary.display()
        ))
    };
    if too_much {
        return Err(CniError::io(format!(
            "plugin {} printed more than {MAX_PLUGIN_STDOUT} bytes on stdout: killed",
            binary.display()
        )));
    }
    read.map_err(failed)?;
    Ok(Exited {
        success: status.map_err(failed)?.success(),
        stdout,
        stderr,
    })
}

/// Runs a plugin with `env` set on top of the inherited environment: in-process
/// when the file is this executable ([`builtin`]), else exec'd. Its stderr is
/// forwarded to ours (never to our stdout). Success gives its stdout; failure its
/// error object, or its stderr when it printed none.
pub fn run(binary: &Path, env: &[(&str, String)], stdin: &[u8]) -> Result<Vec<u8>, CniError> {
    let (succeeded, stdout, stderr) = match builtin::run(binary, env, stdin) {
        Some(outcome) => (
            outcome.exit_code == 0,
            outcome.stdout.into_bytes(),
            outcome.stderr.into_bytes(),
        ),
        None => {
            let exited = exec_once(binary, env, stdin)?;
            (exited.success, exited.stdout, exited.stderr)
        }
    };
    let _ = std::io::stderr().write_all(&stderr);
    if succeeded {
        return Ok(stdout);
    }
    Err(CniError::from_json(&stdout).unwrap_or_else(|| {
        let stderr = String::from_utf8_lossy(&stderr).trim().to_string();
        CniError::internal(format!("netplugin failed: {stderr:?}"))
    }))
}
