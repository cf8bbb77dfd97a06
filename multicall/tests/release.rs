//! The release, as a packager takes it: the licence check, the man pages, and a
//! source release built twice, offline, into Debian and RPM packages that lintian
//! and rpmlint pass and that install beside Debian's Go plugins.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;
use testkit::{skip_or_fail, tempdir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .unwrap()
}

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn run(command: &mut Command) -> Output {
    let what = format!("{command:?}");
    command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"))
}

/// Runs a command and fails the test, with its output, unless it succeeds.
fn succeed(command: &mut Command) -> String {
    let what = format!("{command:?}");
    let out = run(command);
    assert!(
        out.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The tools a test needs, or a loud skip (a failure under CI=true) naming them.
fn have_tools(test: &str, tools: &[(&str, &str)]) -> bool {
    for (tool, install) in tools {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if !found {
            skip_or_fail(test, &format!("{tool} is not installed ({install})"));
            return false;
        }
    }
    true
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The allowlist over every crate of the lock, and the generated licence files
/// against Cargo.lock. (cargo-about regenerates the notices in full in the release
/// test, as scripts/release.sh does.)
#[test]
fn every_licence_is_allowed_and_the_notices_match_the_lock() {
    let script = repo().join("scripts/release/licences.py");
    let out = succeed(Command::new("python3").arg(&script).arg("check"));
    assert!(
        out.contains("each under a licence of the allowlist"),
        "{out}"
    );
    let copyright = succeed(Command::new("python3").arg(&script).arg("debian-copyright"));
    assert_eq!(
        copyright,
        std::fs::read_to_string(repo().join("debian/copyright")).unwrap(),
        "debian/copyright does not match Cargo.lock: scripts/release/licences.sh update"
    );
    let licence = std::fs::read_to_string(repo().join("LICENSE")).unwrap();
    assert!(licence.contains("Apache License") && licence.contains("Version 2.0, January 2004"));
    let notices = std::fs::read_to_string(repo().join("THIRD-PARTY-NOTICES")).unwrap();
    // Every crate linked into the shipped binaries, as cargo resolves them, is listed.
    let tree = succeed(Command::new("cargo").current_dir(repo()).args([
        "tree",
        "--locked",
        "-e",
        "normal",
        "--target",
        "x86_64-unknown-linux-gnu",
        "-p",
        "cni-plugins",
        "-p",
        "cnitool",
        "--prefix",
        "none",
        "-f",
        "{p}",
    ]));
    for line in tree.lines().filter(|l| !l.contains("(/")) {
        let mut words = line.split_whitespace();
        let (Some(name), Some(version)) = (words.next(), words.next()) else {
            continue;
        };
        let entry = format!("  {name} {}\n", version.trim_start_matches('v'));
        assert!(
            notices.contains(&entry),
            "THIRD-PARTY-NOTICES does not list {name} {version}"
        );
    }
}

/// A licence outside the allowlist fails the check: the check can fail.
#[test]
fn a_licence_outside_the_allowlist_fails_the_check() {
    let about = std::fs::read_to_string(repo().join("about.toml")).unwrap();
    let narrowed = about.replace("    \"MIT\",\n", "");
    assert_ne!(about, narrowed, "about.toml accepts MIT");
    let dir = tempdir("licence-allowlist");
    std::fs::write(dir.join("about.toml"), narrowed).unwrap();
    let out = run(Command::new("python3")
        .arg(repo().join("scripts/release/licences.py"))
        .arg("check")
        .env("ABOUT_TOML", dir.join("about.toml")));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(!out.status.success(), "MIT-only crates must fail the check");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("not on the allowlist") && stderr.contains(": MIT\n"),
        "{stderr}"
    );
}

#[test]
fn the_man_pages_render_without_warnings() {
    let test = "the_man_pages_render_without_warnings";
    if !have_tools(
        test,
        &[
            ("groff", "apt-get install groff-base"),
            ("man", "apt-get install man-db"),
        ],
    ) {
        return;
    }
    let out = tempdir("man-pages");
    succeed(
        Command::new(testkit::bin_dir().join("cni-docgen"))
            .arg("man")
            .arg(repo())
            .arg(&out),
    );
    for page in ["cnitool.1", "cni-plugins.8"] {
        let path = out.join(page);
        let groff = run(Command::new("groff")
            .args(["-man", "-ww", "-z"])
            .arg(&path)
            .env("LC_ALL", "C.UTF-8"));
        assert!(
            groff.status.success() && groff.stderr.is_empty(),
            "groff warns on {page}: {}",
            String::from_utf8_lossy(&groff.stderr)
        );
        let man = run(Command::new("man")
            .arg("-l")
            .arg(&path)
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C.UTF-8"));
        assert!(
            man.status.success() && man.stderr.is_empty(),
            "man -l {page}: {}",
            String::from_utf8_lossy(&man.stderr)
        );
        let text = String::from_utf8_lossy(&man.stdout);
        assert!(text.contains(VERSION), "{page} names the version");
        if page == "cnitool.1" {
            // The page comes from the same definition as --help.
            let help = succeed(Command::new(testkit::bin_dir().join("cnitool")).arg("--help"));
            for option in help
                .lines()
                .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("--")))
            {
                let option = option.trim_end_matches(',');
                assert!(text.contains(option), "cnitool.1 lacks {option}");
            }
        } else {
            for name in testkit::plugin_names() {
                assert!(
                    text.contains(&name.to_uppercase()),
                    "cni-plugins.8 has no section for {name}"
                );
            }
            // Every key of every README's table is on the page.
            for dir in std::fs::read_dir(repo().join("plugins")).unwrap().flatten() {
                let Ok(readme) = std::fs::read_to_string(dir.path().join("README.md")) else {
                    continue;
                };
                for key in readme
                    .lines()
                    .filter_map(|l| l.strip_prefix("| `"))
                    .filter_map(|l| l.split('`').next())
                {
                    assert!(text.contains(key), "cni-plugins.8 lacks the key {key}");
                }
            }
        }
    }
    std::fs::remove_dir_all(out).unwrap();
}

/// The packages' file lists: `(path, link target)` of `dpkg-deb -c`.
fn deb_files(deb: &Path) -> Vec<(String, Option<String>)> {
    succeed(Command::new("dpkg-deb").arg("-c").arg(deb))
        .lines()
        .map(|line| {
            let entry = line
                .split_whitespace()
                .skip(5)
                .collect::<Vec<_>>()
                .join(" ");
            let entry = entry.trim_start_matches('.').to_string();
            match entry.split_once(" -> ") {
                Some((path, target)) => (path.to_string(), Some(target.to_string())),
                None => (entry, None),
            }
        })
        .collect()
}

/// The locked version of serde_json, a crate every build vendors.
fn serde_json_version() -> String {
    let lock = std::fs::read_to_string(repo().join("Cargo.lock")).unwrap();
    let at = lock.find("name = \"serde_json\"\nversion = \"").unwrap();
    let rest = &lock[at + "name = \"serde_json\"\nversion = \"".len()..];
    rest[..rest.find('"').unwrap()].to_string()
}

/// lintian's tags of a severity at least warning, as "E: …" and "W: …" lines; none
/// when lintian, told to fail on them, succeeds (so a lintian that cannot run fails).
fn lintian_findings(changes: &Path) -> Vec<String> {
    let out = run(Command::new("lintian")
        .args(["--no-tag-display-limit", "--fail-on", "error,warning"])
        .arg(changes));
    let findings: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.starts_with("E:") || l.starts_with("W:"))
        .map(String::from)
        .collect();
    assert!(
        out.status.success() || !findings.is_empty(),
        "lintian failed on {}: {}",
        changes.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    findings
}

#[test]
fn a_release_builds_offline_and_reproducibly_into_clean_packages() {
    let test = "a_release_builds_offline_and_reproducibly_into_clean_packages";
    if !is_root() {
        skip_or_fail(test, "needs root (unshare -n cuts the builds' network)");
        return;
    }
    if !have_tools(
        test,
        &[
            (
                "cargo-about",
                "cargo install --locked --features cli cargo-about@0.9.3",
            ),
            (
                "cargo-cyclonedx",
                "cargo install --locked cargo-cyclonedx@0.5.9",
            ),
            ("dpkg-buildpackage", "apt-get install dpkg-dev"),
            ("dh", "apt-get install debhelper"),
            ("lintian", "apt-get install lintian"),
            ("rpmbuild", "apt-get install rpm"),
            ("rpmlint", "apt-get install rpmlint"),
        ],
    ) {
        return;
    }
    let dirty = run(Command::new("git").current_dir(repo()).args([
        "status",
        "--porcelain",
        "--untracked-files=no",
    ]));
    if !dirty.stdout.is_empty() {
        skip_or_fail(
            test,
            "the work tree has uncommitted changes, and a release is made of a commit",
        );
        return;
    }
    let work = tempdir("release");
    let dist = work.join("dist");

    // The release: four files, their checksums, an SBOM of the shipped binaries.
    succeed(
        Command::new(repo().join("scripts/release.sh"))
            .arg(VERSION)
            .env("DIST", &dist),
    );
    let mut files: Vec<String> = std::fs::read_dir(&dist)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let name = format!("cni-plugins-rs-{VERSION}");
    assert_eq!(
        files,
        [
            "SHA256SUMS".to_string(),
            format!("{name}-vendor.tar.gz"),
            format!("{name}.cdx.json"),
            format!("{name}.tar.gz"),
        ]
    );
    succeed(
        Command::new("sha256sum")
            .current_dir(&dist)
            .args(["-c", "SHA256SUMS"]),
    );
    let sbom: Value =
        serde_json::from_slice(&std::fs::read(dist.join(format!("{name}.cdx.json"))).unwrap())
            .unwrap();
    assert_eq!(sbom["bomFormat"], "CycloneDX");
    assert_eq!(sbom["metadata"]["component"]["name"], "cni-plugins-rs");
    assert_eq!(sbom["metadata"]["component"]["version"], VERSION);
    let components = sbom["components"].as_array().unwrap();
    for crate_name in [
        "cni-plugins",
        "cnitool",
        "libcni",
        "serde_json",
        "netlink-sys",
    ] {
        assert!(
            components.iter().any(|c| c["name"] == crate_name),
            "the SBOM lacks {crate_name}"
        );
    }
    assert!(
        !String::from_utf8_lossy(&std::fs::read(dist.join(format!("{name}.cdx.json"))).unwrap())
            .contains(&repo().display().to_string()),
        "the SBOM names no local path"
    );

    // Two builds from the tarballs, offline, byte for byte.
    let builds = work.join("builds");
    let table = succeed(
        Command::new(repo().join("scripts/check-reproducible.sh"))
            .arg(&dist)
            .arg(&builds),
    );
    eprintln!("{table}");
    assert!(table.contains("byte-identical in both builds"), "{table}");
    let artifacts = builds.join("a/artifacts");
    let deb = artifacts.join(format!("cni-plugins-rs_{VERSION}-1_amd64.deb"));
    let rpm = artifacts.join(format!("cni-plugins-rs-{VERSION}-1.x86_64.rpm"));
    assert!(deb.is_file() && rpm.is_file(), "{table}");

    // lintian: no error, no warning (overrides carry their reasons in the package).
    let changes = builds.join(format!("a/cni-plugins-rs_{VERSION}-1_amd64.changes"));
    let findings = lintian_findings(&changes);
    eprintln!(
        "lintian: {} errors, {} warnings",
        findings.iter().filter(|l| l.starts_with("E:")).count(),
        findings.iter().filter(|l| l.starts_with("W:")).count()
    );
    assert!(findings.is_empty(), "lintian: {findings:#?}");

    // The Debian source package, as dpkg-source makes it from the two tarballs (the
    // vendored crates as the orig-vendor component), passes lintian too.
    let source_package = work.join("source-package");
    std::fs::create_dir_all(&source_package).unwrap();
    std::fs::copy(
        dist.join(format!("{name}.tar.gz")),
        source_package.join(format!("cni-plugins-rs_{VERSION}.orig.tar.gz")),
    )
    .unwrap();
    std::fs::copy(
        dist.join(format!("{name}-vendor.tar.gz")),
        source_package.join(format!("cni-plugins-rs_{VERSION}.orig-vendor.tar.gz")),
    )
    .unwrap();
    succeed(
        Command::new("tar")
            .current_dir(&source_package)
            .arg("-xzf")
            .arg(format!("cni-plugins-rs_{VERSION}.orig.tar.gz")),
    );
    succeed(
        Command::new("dpkg-source")
            .current_dir(&source_package)
            .args(["-b", &name]),
    );
    let dsc = source_package.join(format!("cni-plugins-rs_{VERSION}-1.dsc"));
    let findings = lintian_findings(&dsc);
    assert!(findings.is_empty(), "lintian (source): {findings:#?}");
    let unpacked = source_package.join("unpacked");
    succeed(
        Command::new("dpkg-source")
            .arg("-x")
            .arg(&dsc)
            .arg(&unpacked),
    );
    assert!(
        unpacked
            .join("vendor")
            .join(format!("serde_json-{}", serde_json_version()))
            .is_dir(),
        "dpkg-source unpacks the vendored crates as vendor/"
    );

    // rpmlint: the package, the source package and the spec.
    let srpm_spec = builds.join(format!("a/src/{name}/rpm/cni-plugins-rs.spec"));
    let rpmlint = run(Command::new("rpmlint")
        .arg("-c")
        .arg(repo().join("rpm/rpmlint.toml"))
        .arg(&rpm)
        .arg(&srpm_spec));
    let report = String::from_utf8_lossy(&rpmlint.stdout);
    eprintln!("{}", report.lines().last().unwrap_or_default());
    assert!(
        rpmlint.status.success() && report.contains(" 0 errors, 0 warnings"),
        "rpmlint:\n{report}"
    );

    // The Debian layout: the binary and its links in a directory of their own, no
    // file in common with Debian's containernetworking-plugins.
    let files = deb_files(&deb);
    let plugins_dir = "/usr/lib/cni-plugins-rs/";
    for name in testkit::plugin_names() {
        assert!(
            files.contains(&(format!("{plugins_dir}{name}"), Some("cni-plugins".into()))),
            "{name} is a link to the multi-call binary"
        );
    }
    for path in [
        "/usr/bin/cnitool",
        "/usr/lib/cni-plugins-rs/cni-plugins",
        "/usr/share/man/man1/cnitool.1.gz",
        "/usr/share/man/man8/cni-plugins.8.gz",
        "/usr/share/doc/cni-plugins-rs/copyright",
        "/usr/share/doc/cni-plugins-rs/THIRD-PARTY-NOTICES.gz",
    ] {
        assert!(
            files.iter().any(|(p, _)| p == path),
            "the .deb lacks {path}"
        );
    }
    if let Ok(go) = Command::new("dpkg")
        .args(["-L", "containernetworking-plugins"])
        .output()
    {
        let go = String::from_utf8_lossy(&go.stdout);
        let go_files: Vec<&str> = go.lines().filter(|p| !Path::new(p).is_dir()).collect();
        for (path, _) in &files {
            assert!(
                !go_files.contains(&path.as_str()),
                "{path} is also Debian's"
            );
        }
    }
    // Installed into a throwaway dpkg root, the plugins answer VERSION by their names.
    let root = testkit::DpkgRoot::new(work.join("deb-root"));
    root.dpkg(&["--force-depends", "-i", deb.to_str().unwrap()]);
    let root = root.path;
    for name in testkit::plugin_names() {
        let version = succeed(
            Command::new(root.join("usr/lib/cni-plugins-rs").join(&name))
                .env_clear()
                .env("CNI_COMMAND", "VERSION"),
        );
        assert!(version.contains("supportedVersions"), "{name}: {version}");
    }
    let about = run(Command::new(root.join("usr/lib/cni-plugins-rs/bridge")).env_clear());
    let about = String::from_utf8_lossy(&about.stderr);
    let head =
        succeed(
            Command::new("git")
                .current_dir(repo())
                .args(["rev-parse", "--short=12", "HEAD"]),
        );
    assert!(
        about.contains(head.trim()),
        "the about line names the release's commit: {about}"
    );
    let man = run(Command::new("man")
        .arg("-l")
        .arg(root.join("usr/share/man/man1/cnitool.1.gz"))
        .env("MANWIDTH", "80"));
    assert!(man.status.success() && man.stderr.is_empty());

    // The RPM layout: Fedora's directory, the licence where %license puts it.
    let rpm_files = succeed(Command::new("rpm").args(["-qlp"]).arg(&rpm));
    for path in [
        "/usr/libexec/cni/cni-plugins",
        "/usr/libexec/cni/bridge",
        "/usr/bin/cnitool",
        "/usr/share/man/man1/cnitool.1.gz",
        "/usr/share/man/man8/cni-plugins.8.gz",
    ] {
        assert!(
            rpm_files.lines().any(|l| l == path),
            "the .rpm lacks {path}"
        );
    }
    assert!(
        rpm_files
            .lines()
            .any(|l| l.starts_with("/usr/share/licenses/cni-plugins-rs") && l.ends_with("/LICENSE")),
        "{rpm_files}"
    );
    std::fs::remove_dir_all(work).unwrap();
}
