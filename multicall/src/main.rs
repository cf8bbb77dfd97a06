//! `cni-plugins`: every plugin of the suite in one binary. Installed under each
//! plugin's name (hard links to one file), it runs the plugin it is called as, like
//! busybox: one statically linked file for all the plugins weighs less than the Go
//! bridge alone. (cnitool, a runtime-side tool with a full command line, stays a
//! binary of its own.)
//!
//! Called as `cni-plugins`, it answers:
//! - `cni-plugins install DESTDIR [--wait]`: installs itself under every name into
//!   DESTDIR (and `cnitool` when it ships beside it), each name atomically (a runtime
//!   never execs a half-written file); with `--wait` it then stays up, as the
//!   DaemonSet's container;
//! - `cni-plugins names`: prints the plugin names, one a line (for packagers, who
//!   link each to the binary);
//! - `cni-plugins NAME [ARGS...]`: runs NAME;
//! - `cni-plugins`: lists the names.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

// NAMES and dispatch(), generated from plugins/plugins.list by build.rs.
include!(concat!(env!("OUT_DIR"), "/plugins.rs"));

/// Copies this binary into `dir` once, then gives it every name by a hard link
/// renamed into place.
fn install(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let me = std::env::current_exe()?;
    let staging = dir.join(format!(".cni-plugins.{}", std::process::id()));
    std::fs::copy(&me, &staging)?;
    std::fs::File::open(&staging)?.sync_all()?;
    for name in NAMES {
        let temporary = dir.join(format!(".{name}.{}", std::process::id()));
        let _ = std::fs::remove_file(&temporary);
        std::fs::hard_link(&staging, &temporary)?;
        std::fs::rename(&temporary, dir.join(name))?;
    }
    std::fs::remove_file(&staging)?;
    // cnitool, when it ships beside this binary (the release layout and the image).
    let cnitool = me.with_file_name("cnitool");
    if cnitool.is_file() {
        let temporary = dir.join(format!(".cnitool.{}", std::process::id()));
        std::fs::copy(&cnitool, &temporary)?;
        std::fs::File::open(&temporary)?.sync_all()?;
        std::fs::rename(&temporary, dir.join("cnitool"))?;
    }
    Ok(())
}

/// The plugins that another plugin of this binary may delegate to, run in-process
/// when CNI_PATH's file of that name is this binary (`libcni::delegate::builtin`):
/// the IPAM plugins. A name not here is exec'd, as any plugin is.
fn delegate_in_process(
    name: &str,
    env: libcni::skel::Env<'_>,
    stdin: &mut dyn std::io::Read,
) -> Option<libcni::skel::Outcome> {
    match name {
        "static" => Some(static_ipam::invoke(env, stdin)),
        "host-local" => Some(host_local::invoke(env, stdin)),
        _ => None,
    }
}

fn main() -> ExitCode {
    libcni::delegate::builtin::register(delegate_in_process);
    let arg0 = std::env::args().next().unwrap_or_default();
    let called = Path::new(&arg0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    if let Some(code) = dispatch(&called) {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("install") => match args.get(1) {
            Some(dir) => match install(&PathBuf::from(dir)) {
                Ok(()) => {
                    println!("installed {} into {dir}", NAMES.join(", "));
                    if args.get(2).map(String::as_str) == Some("--wait") {
                        // The DaemonSet's container: stay up, so that the pod is Running
                        // and a restart installs again.
                        loop {
                            std::thread::sleep(std::time::Duration::from_secs(3600));
                        }
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("cni-plugins: install into {dir} failed: {e}");
                    ExitCode::FAILURE
                }
            },
            None => {
                eprintln!("usage: cni-plugins install DESTDIR");
                ExitCode::from(2)
            }
        },

        Some("names") => {
            // For packagers: the names to link to this binary, one a line.
            for name in NAMES {
                println!("{name}");
            }
            ExitCode::SUCCESS
        }
        Some(name) if NAMES.contains(&name) => {
            // `cni-plugins bridge`: the same as running it as `bridge`.
            dispatch(name).unwrap_or(ExitCode::FAILURE)
        }
        _ => {
            eprintln!(
                "cni-plugins {} (git {}): run as one of {}, or `cni-plugins install DESTDIR`, or `cni-plugins names`",
                env!("CARGO_PKG_VERSION"),
                libcni::GIT_COMMIT,
                NAMES.join(", ")
            );
            ExitCode::from(2)
        }
    }
}
