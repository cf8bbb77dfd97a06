//! Delegates this very executable holds. The multi-call binary is every plugin of
//! the suite under hard links to one file, so when the IPAM plugin a config names
//! resolves in CNI_PATH to that same file, exec'ing it would only start this
//! program again. It then runs in-process instead: the same code, given the same
//! environment (CNI_COMMAND replaced, as for the exec), the same stdin, and read
//! back the same way. That saves a process start, most of an IPAM call's cost.
//!
//! Only a file that is provably this executable (same device and inode as
//! /proc/self/exe) runs in-process, and only under a name the executable registered:
//! any other file in CNI_PATH, an admin's own plugin of the same name included, is
//! exec'd as before.

use std::io::Read;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::OnceLock;

use crate::skel::{Env, Outcome};

/// Runs the plugin installed under `name` for one invocation, or `None` when the
/// executable holds no plugin of that name to run in-process.
pub type Entry = fn(name: &str, env: Env<'_>, stdin: &mut dyn Read) -> Option<Outcome>;

static ENTRY: OnceLock<Entry> = OnceLock::new();

/// Called once by an executable that holds plugins, before it runs any.
pub fn register(entry: Entry) {
    let _ = ENTRY.set(entry);
}

/// Whether `binary` (symlinks followed, as exec follows them) is the file this
/// process runs, and one an exec would run: access(2) with X_OK refuses what exec
/// refuses for its mode and for a `noexec` mount (a bind mount of the same file
/// may be one).
fn is_this_executable(binary: &Path) -> bool {
    let same_file = match (
        std::fs::metadata(binary),
        std::fs::metadata("/proc/self/exe"),
    ) {
        (Ok(found), Ok(own)) => found.dev() == own.dev() && found.ino() == own.ino(),
        _ => false,
    };
    same_file && nix::unistd::access(binary, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// Runs `binary` in-process when it is this executable and holds a plugin under
/// the name it would be exec'd as (its file name: the multi-call binary reads
/// argv[0] the same way). `env` is laid over the inherited environment.
pub fn run(binary: &Path, env: &[(&str, String)], stdin: &[u8]) -> Option<Outcome> {
    let entry = ENTRY.get()?;
    let name = binary.file_name()?.to_str()?;
    if !is_this_executable(binary) {
        return None;
    }
    let lookup = |variable: &str| -> Option<Vec<u8>> {
        match env.iter().find(|(key, _)| *key == variable) {
            Some((_, value)) => Some(value.clone().into_bytes()),
            None => std::env::var_os(variable).map(|v| v.into_vec()),
        }
    };
    let _log_name = crate::log::speak_as(name);
    entry(name, &lookup, &mut &stdin[..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_executable_is_itself() {
        let own = std::env::current_exe().unwrap();
        assert!(is_this_executable(&own));
        assert!(!is_this_executable(Path::new("/bin/sh")));
        assert!(!is_this_executable(Path::new("/nonexistent/static")));
    }

    #[test]
    fn a_link_to_this_executable_is_it() {
        let own = std::env::current_exe().unwrap();
        let dir = std::env::temp_dir().join(format!("libcni-builtin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (hard, soft) = (dir.join("static"), dir.join("host-local"));
        let _ = std::fs::remove_file(&hard);
        let _ = std::fs::remove_file(&soft);
        std::fs::hard_link(&own, &hard).unwrap();
        std::os::unix::fs::symlink(&own, &soft).unwrap();
        assert!(is_this_executable(&hard), "a hard link is the same file");
        assert!(
            is_this_executable(&soft),
            "exec follows a symlink, so do we"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
