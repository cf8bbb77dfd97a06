//! Executing a CNI plugin binary: found in CNI_PATH, given its environment and
//! stdin, its stdout read as a result or as the spec's error object. Used both to
//! delegate (IPAM) and by the runtime side (cnitool). A plugin that is this very
//! executable runs in-process instead ([`builtin`]).

use std::io::Write;
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

/// Runs a plugin binary once; on ETXTBSY (a binary being replaced right now) it
/// tries again a few times, as the Go invoke package does.
fn exec_once(
    binary: &Path,
    env: &[(&str, String)],
    stdin: &[u8],
) -> Result<std::process::Output, CniError> {
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
    let output = child.wait_with_output().map_err(|e| {
        CniError::io(format!(
            "failed to wait for plugin {}: {e}",
            binary.display()
        ))
    })?;
    // A plugin that exits without reading stdin closes the pipe: that is not our error.
    let _ = writer.join();
    Ok(output)
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
            let output = exec_once(binary, env, stdin)?;
            (output.status.success(), output.stdout, output.stderr)
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
