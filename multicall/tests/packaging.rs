//! The three ways the suite reaches nodes: scripts/install.sh, the Debian package,
//! and the installer image with its DaemonSet. Each is built here for real.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use testkit::{sh, skip_or_fail, tempdir};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn script(name: &str, args: &[&str]) -> String {
    testkit::run_checked(
        Command::new(repo().join("scripts").join(name)).args(args),
        name,
    )
}

/// VERSION of a binary, run as a runtime runs a plugin.
fn version(binary: &Path) -> Value {
    let out = Command::new(binary)
        .env_clear()
        .env("CNI_COMMAND", "VERSION")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        binary.display(),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Statically linked: an ELF with no PT_INTERP program header.
fn is_static(binary: &Path) -> bool {
    let bytes = std::fs::read(binary).unwrap();
    assert_eq!(&bytes[..4], b"\x7fELF");
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let (phentsize, phnum) = (u16_at(54), u16_at(56));
    (0..phnum)
        .all(|i| u32::from_le_bytes(bytes[phoff + i * phentsize..][..4].try_into().unwrap()) != 3)
}

fn assert_installed(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let inode = std::fs::metadata(dir.join("bridge")).unwrap().ino();
    for name in &testkit::plugin_names() {
        let path = dir.join(name);
        assert_eq!(
            std::fs::metadata(&path).unwrap().ino(),
            inode,
            "{name} is a name of the one binary"
        );
        assert_eq!(
            version(&path)["supportedVersions"]
                .as_array()
                .unwrap()
                .len(),
            7,
            "{name}"
        );
        let about = Command::new(&path).env_clear().output().unwrap();
        assert!(
            String::from_utf8_lossy(&about.stderr).contains(&format!("CNI {name} plugin")),
            "{name}"
        );
    }
    assert!(dir.join("cnitool").is_file());
}

/// OpenShift's plugin directory, as the OpenShift DaemonSet fills it: inside a
/// sandbox whose /var/lib/cni is its own.
#[test]
fn the_installer_fills_openshifts_plugin_directory() {
    let Some(_sb) = testkit::Sandbox::new("install_openshift") else {
        return;
    };
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_cni-plugins"));
    testkit::run_checked(
        Command::new(&binary).args(["install", "/var/lib/cni/bin"]),
        "cni-plugins install /var/lib/cni/bin",
    );
    for name in testkit::plugin_names() {
        let path = Path::new("/var/lib/cni/bin").join(&name);
        assert!(version(&path)["cniVersion"].is_string(), "{name}");
    }
    for name in ["cnv-bridge", "cnv-tuning"] {
        assert!(Path::new("/var/lib/cni/bin").join(name).is_file(), "{name}");
    }
}

#[test]
fn the_multicall_binary_installs_itself_under_every_name() {
    let dir = tempdir("multicall-install");
    let binary = PathBuf::from(env!("CARGO_BIN_EXE_cni-plugins"));
    for _ in 0..2 {
        // Twice: installing over an installed suite is harmless.
        testkit::run_checked(
            Command::new(&binary).arg("install").arg(&dir),
            "cni-plugins install",
        );
    }
    for name in &testkit::plugin_names() {
        assert!(dir.join(name).is_file(), "{name}");
        assert!(version(&dir.join(name))["cniVersion"].is_string());
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let out = Command::new(&binary)
        .arg("cnv-bridge")
        .env("CNI_COMMAND", "VERSION")
        .output()
        .unwrap();
    assert!(out.status.success());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn install_script_fills_a_directory_with_static_binaries() {
    let dir = tempdir("install-script");
    script("install.sh", &[dir.to_str().unwrap()]);
    script("install.sh", &[dir.to_str().unwrap()]);
    assert_installed(&dir);
    for name in ["bridge", "cnitool"] {
        assert!(
            is_static(&dir.join(name)),
            "{name} must be statically linked"
        );
    }
    let suite = std::fs::metadata(dir.join("bridge")).unwrap().len();
    let go_bridge = std::fs::metadata("/usr/lib/cni/bridge")
        .map(|m| m.len())
        .unwrap_or(2_943_104);
    eprintln!("the plugin suite: {suite} bytes; the Go bridge alone: {go_bridge} bytes");
    assert!(
        suite < go_bridge,
        "the whole plugin suite ({suite}) must weigh less than the Go bridge alone ({go_bridge})"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn the_deb_installs_runs_and_removes_cleanly() {
    let deb = script("release/package-deb.sh", &[]);
    let contents = sh(&["dpkg-deb", "-c", &deb]);
    assert!(
        contents.lines().all(|l| !l.contains("/usr/lib/cni/")),
        "no file in Debian's containernetworking-plugins paths"
    );
    let root = testkit::DpkgRoot::new(tempdir("deb-root"));
    root.dpkg(&["-i", &deb]);
    assert_installed(&root.path.join("opt/cni/bin"));
    root.dpkg(&["-r", "cni-plugins-rs-static"]);
    let root = root.path;
    let left: Vec<_> = testkit::Sandbox::files(&root)
        .into_keys()
        .filter(|p| !p.starts_with(root.join("var/lib/dpkg")))
        .collect();
    assert!(left.is_empty(), "files left after removal: {left:?}");
    std::fs::remove_dir_all(root).unwrap();
}

#[test]
fn the_image_builds_and_its_installer_fills_a_directory() {
    let test = "the_image_builds_and_its_installer_fills_a_directory";
    if Command::new("podman").arg("--version").output().is_err() {
        skip_or_fail(test, "podman is not installed (apt-get install podman)");
        return;
    }
    if Command::new("cargo-cyclonedx")
        .arg("--version")
        .output()
        .is_err()
    {
        skip_or_fail(
            test,
            "cargo-cyclonedx is not installed (cargo install --locked cargo-cyclonedx@0.5.9)",
        );
        return;
    }
    let image = script("release/build-image.sh", &[]);
    let inspect: Value =
        serde_json::from_str(&sh(&["podman", "image", "inspect", &image])).unwrap();
    let config = &inspect[0]["Config"];
    // The OCI labels, read back.
    let label = |key: &str| {
        config["Labels"][format!("org.opencontainers.image.{key}")]
            .as_str()
            .unwrap_or_else(|| panic!("no {key} label: {}", config["Labels"]))
            .to_string()
    };
    assert_eq!(label("version"), env!("CARGO_PKG_VERSION"));
    assert_eq!(
        label("revision"),
        sh(&["git", "-C", repo().to_str().unwrap(), "rev-parse", "HEAD"]).trim()
    );
    let notices = std::fs::read_to_string(repo().join("THIRD-PARTY-NOTICES")).unwrap();
    assert!(
        notices.contains(&format!("(SPDX): {}\n", label("licenses"))),
        "the licences label is the notices' expression: {}",
        label("licenses")
    );
    assert!(label("licenses").starts_with("Apache-2.0"));
    assert!(label("source").contains("cni-plugins-rs"));
    assert!(label("created").ends_with('Z'));
    assert_eq!(
        config["Entrypoint"],
        serde_json::json!([
            "/usr/local/bin/cni-plugins",
            "install",
            "/host/opt/cni/bin",
            "--wait"
        ])
    );
    // Containers cannot start in every sandbox (no rlimit changes here): the image's
    // own installer runs from its mounted filesystem, as the container would run it.
    let mounted = PathBuf::from(sh(&["podman", "image", "mount", &image]).trim());
    // The licence texts, the notices and the SBOM travel with the binaries.
    let licences = mounted.join("usr/share/licenses/cni-plugins-rs");
    let licence = std::fs::read_to_string(licences.join("LICENSE")).unwrap();
    assert!(licence.contains("Apache License"));
    assert_eq!(
        std::fs::read_to_string(licences.join("THIRD-PARTY-NOTICES")).unwrap(),
        notices
    );
    let sbom: Value =
        serde_json::from_slice(&std::fs::read(licences.join("cni-plugins-rs.cdx.json")).unwrap())
            .unwrap();
    assert_eq!(sbom["metadata"]["component"]["name"], "cni-plugins-rs");
    let files: Vec<String> = std::fs::read_dir(mounted.join("usr/local/bin"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    let dir = tempdir("image-install");
    let out = Command::new(mounted.join("usr/local/bin/cni-plugins"))
        .arg("install")
        .arg(&dir)
        .output()
        .unwrap();
    sh(&["podman", "image", "unmount", &image]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut files = files;
    files.sort();
    assert_eq!(
        files,
        vec!["cni-plugins", "cnitool"],
        "FROM scratch: the two static binaries and nothing else"
    );
    assert_installed(&dir);
    std::fs::remove_dir_all(dir).unwrap();
}

fn yaml(name: &str) -> Value {
    let text = std::fs::read_to_string(repo().join("deploy").join(name)).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// Every document of a multi-document YAML file.
fn yaml_documents(name: &str) -> Vec<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(repo().join("deploy").join(name)).unwrap();
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{name}: {e}")))
        .collect()
}

#[test]
fn the_manifests_are_a_valid_daemonset_and_network_attachment_definitions() {
    let ds = yaml("daemonset.yaml");
    assert_eq!(
        (ds["apiVersion"].as_str(), ds["kind"].as_str()),
        (Some("apps/v1"), Some("DaemonSet"))
    );
    let labels = &ds["spec"]["template"]["metadata"]["labels"];
    assert_eq!(
        &ds["spec"]["selector"]["matchLabels"], labels,
        "the selector matches the pod template"
    );
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    assert!(container["image"]
        .as_str()
        .unwrap()
        .contains("cni-plugins-rs"));
    let mount = &container["volumeMounts"][0];
    let volume = ds["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == mount["name"])
        .expect("the mounted volume is defined")
        .clone();
    assert_eq!(volume["hostPath"]["path"], "/opt/cni/bin");
    assert_eq!(
        mount["mountPath"], "/host/opt/cni/bin",
        "where the image's entrypoint installs"
    );

    for (file, plugin) in [
        ("nad-cnv-bridge-vlan.yaml", "cnv-bridge"),
        ("nad-macvlan.yaml", "macvlan"),
        ("nad-sriov.yaml", "sriov"),
    ] {
        let nad = yaml(file);
        assert_eq!(
            (nad["apiVersion"].as_str(), nad["kind"].as_str()),
            (
                Some("k8s.cni.cncf.io/v1"),
                Some("NetworkAttachmentDefinition")
            ),
            "{file}"
        );
        let config: Value = serde_json::from_str(nad["spec"]["config"].as_str().unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(config["type"], plugin, "{file}");
        assert_eq!(
            config["name"], nad["metadata"]["name"],
            "{file}: the network is named as the NAD"
        );
        cni_runtime::NetConfList::parse(serde_json::json!({"cniVersion": config["cniVersion"], "name": config["name"], "plugins": [config]}).to_string().as_bytes()).unwrap();
    }
    // The OpenShift variant: the installer fills /var/lib/cni/bin; the console's
    // chain (cnv-bridge, then cnv-tuning) is a configuration list our runtime loads.
    let docs = yaml_documents("openshift/daemonset.yaml");
    let ds = docs
        .iter()
        .find(|d| d["kind"] == "DaemonSet")
        .expect("a DaemonSet");
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["command"],
        serde_json::json!([
            "/usr/local/bin/cni-plugins",
            "install",
            "/host/var/lib/cni/bin",
            "--wait"
        ])
    );
    assert_eq!(
        container["volumeMounts"][0]["mountPath"],
        "/host/var/lib/cni/bin"
    );
    assert_eq!(
        ds["spec"]["template"]["spec"]["volumes"][0]["hostPath"]["path"],
        "/var/lib/cni/bin"
    );
    let service_account = &ds["spec"]["template"]["spec"]["serviceAccountName"];
    assert!(docs.iter().any(|d| d["kind"] == "RoleBinding"
        && d["subjects"][0]["name"] == *service_account
        && d["roleRef"]["name"] == "system:openshift:scc:privileged"));
    let chain = yaml("openshift/nad-cnv-bridge-tuning.yaml");
    let list =
        cni_runtime::NetConfList::parse(chain["spec"]["config"].as_str().unwrap().as_bytes())
            .unwrap();
    let types: Vec<&str> = list
        .plugins
        .iter()
        .flatten()
        .map(|p| p["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["cnv-bridge", "cnv-tuning"]);

    let sriov = yaml("nad-sriov.yaml");
    assert_eq!(
        sriov["metadata"]["annotations"]["k8s.v1.cni.cncf.io/resourceName"],
        "intel.com/intel_sriov_netdevice"
    );
}
