// Records the commit the binaries were built from, for the plugins' about line.
// In a source release (`git archive`), export-subst wrote the commit into COMMIT,
// and that is the answer even when the release is committed into a packaging
// repository (git-buildpackage, dgit), whose own commit it must never take. Only a
// checkout, where COMMIT still holds its placeholder, asks git.
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
    println!("cargo:rerun-if-changed=COMMIT");
    let commit = if from_release.is_some() {
        from_release
    } else if checkout.exists() {
        println!("cargo:rerun-if-changed=../.git/HEAD");
        println!("cargo:rerun-if-changed=../.git/refs/heads");
        from_git()
    } else {
        None
    };
    let commit = commit.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=LIBCNI_GIT_COMMIT={commit}");
}
