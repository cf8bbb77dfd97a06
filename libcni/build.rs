// Records the commit the binaries were built from, for the plugins' about line.
// In a checkout, git says; in a source release (`git archive`), the commit was
// written into COMMIT by export-subst. git is asked only when this crate's own
// checkout is there, so a release unpacked inside some other repository (a
// packaging repository, say) never takes that repository's commit.
use std::path::Path;
use std::process::Command;

fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let checkout = Path::new(&manifest).join("../.git");
    let from_release = std::fs::read_to_string(Path::new(&manifest).join("COMMIT"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| s.len() >= 12 && s.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|s| s[..12].to_string());
    let from_git = || {
        Command::new("git")
            .arg("-C")
            .arg(&manifest)
            .args(["rev-parse", "--short=12", "HEAD"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = if checkout.exists() {
        println!("cargo:rerun-if-changed=../.git/HEAD");
        println!("cargo:rerun-if-changed=../.git/refs/heads");
        from_git().or(from_release)
    } else {
        println!("cargo:rerun-if-changed=COMMIT");
        from_release
    };
    let commit = commit.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=LIBCNI_GIT_COMMIT={commit}");
}
