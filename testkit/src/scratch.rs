//! Scratch space for tests that need no namespaces: temporary directories and
//! throwaway dpkg roots.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::call::run_checked;

/// A throwaway dpkg root (`dpkg --root`): packages install into it, and the
/// machine's own package database is never touched.
pub struct DpkgRoot {
    pub path: PathBuf,
}

impl DpkgRoot {
    pub fn new(path: PathBuf) -> Self {
        for dir in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
        ] {
            std::fs::create_dir_all(path.join(dir)).unwrap();
        }
        std::fs::write(path.join("var/lib/dpkg/status"), "").unwrap();
        DpkgRoot { path }
    }

    /// `dpkg ARGS` on this root (maintainer scripts run outside a chroot).
    pub fn dpkg(&self, args: &[&str]) -> String {
        run_checked(
            Command::new("dpkg")
                .arg(format!("--root={}", self.path.display()))
                .arg("--force-script-chrootless")
                .args(args),
            &format!("dpkg {args:?}"),
        )
    }
}

/// A scratch directory for tests that need no namespaces (no root needed).
pub fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cni-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes an executable shell script at `path`: `body` after `#!/bin/sh`. For stand-in
/// plugins and wrappers (strace) that tests run as plugins.
pub fn write_script(path: &Path, body: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, format!("#!/bin/sh\n{body}\n"))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}
