//! cnitool run as an operator runs it, against namespaces each test makes, with a
//! chain of our bridge followed by Debian's Go `tuning` and `portmap`.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};
use testkit::{go_plugin, plugin, sh, Sandbox};

fn cnitool() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cnitool"))
}

/// A plugin directory with our bridge and host-local and the Go tuning/portmap.
fn plugin_dir(sb: &Sandbox, go: &[PathBuf]) -> PathBuf {
    let dir = sb.scratch.join("bin");
    std::fs::create_dir_all(&dir).unwrap();
    for name in ["bridge", "host-local"] {
        std::os::unix::fs::symlink(plugin(name), dir.join(name)).unwrap();
    }
    for binary in go {
        std::os::unix::fs::symlink(binary, dir.join(binary.file_name().unwrap())).unwrap();
    }
    dir
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(netconf: &Path, cni_path: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> Run {
    let out = Command::new(cnitool())
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("NETCONFPATH", netconf)
        .env("CNI_PATH", cni_path)
        .envs(extra_env.iter().copied())
        .args(args)
        .output()
        .unwrap();
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn chain_config(sb: &Sandbox, version: &str) -> Value {
    json!({"cniVersion": version, "name": "chained", "plugins": [
        {"type": "bridge", "bridge": "brt", "isGateway": true, "macspoofchk": true,
         "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.60.0.0/24"}]], "dataDir": sb.scratch.join("ipam")}},
        {"type": "tuning", "mtu": 1400},
        {"type": "portmap", "backend": "nftables", "capabilities": {"portMappings": true}}
    ]})
}

#[test]
fn add_check_del_gc_status_with_a_go_chain() {
    let Some(sb) = Sandbox::new("cnitool_chain") else {
        return;
    };
    let Some(tuning) = go_plugin("add_check_del_gc_status_with_a_go_chain", "tuning") else {
        return;
    };
    let Some(portmap) = go_plugin("add_check_del_gc_status_with_a_go_chain", "portmap") else {
        return;
    };
    let bin = plugin_dir(&sb, &[tuning, portmap]);
    let netconf = sb.scratch.join("net.d");
    std::fs::create_dir_all(&netconf).unwrap();
    std::fs::write(
        netconf.join("10-chained.conflist"),
        chain_config(&sb, "1.0.0").to_string(),
    )
    .unwrap();
    let ns = sb.netns("pod1");
    let caps = r#"{"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]}"#;

    let add = run(
        &netconf,
        &bin,
        &["add", "chained", &ns],
        &[("CAP_ARGS", caps)],
    );
    assert_eq!(add.code, 0, "{}", add.stderr);
    let result: Value = serde_json::from_str(&add.stdout).unwrap();
    assert_eq!(result["ips"][0]["address"], "10.60.0.2/24");
    assert!(
        sh(&["ip", "-n", "pod1", "link", "show", "eth0"]).contains("mtu 1400"),
        "tuning ran after bridge"
    );
    assert!(
        sh(&["nft", "list", "ruleset"]).contains("8080"),
        "portmap got its capability"
    );

    // The cache in the Go format.
    let cid = cni_runtime::cnitool_container_id(Path::new(&ns));
    let cache: Value = serde_json::from_slice(
        &std::fs::read(format!("/var/lib/cni/results/chained-{cid}-eth0")).unwrap(),
    )
    .unwrap();
    assert_eq!(cache["kind"], "cniCacheV1");
    assert_eq!(cache["containerId"], cid.as_str());
    assert_eq!(cache["result"]["ips"][0]["address"], "10.60.0.2/24");
    assert_eq!(cache["capabilityArgs"]["portMappings"][0]["hostPort"], 8080);

    let check = run(&netconf, &bin, &["check", "chained", &ns], &[]);
    assert_eq!(check.code, 0, "{}", check.stderr);
    let status = run(&netconf, &bin, &["status", "chained", &ns], &[]);
    assert_eq!(status.code, 0, "{}", status.stderr);

    let del = run(&netconf, &bin, &["del", "chained", &ns], &[]);
    assert_eq!(del.code, 0, "{}", del.stderr);
    assert!(!Path::new(&format!("/var/lib/cni/results/chained-{cid}-eth0")).exists());
    assert!(!sh(&["ip", "-n", "pod1", "link"]).contains("eth0"));

    // GC keeps what is live (its netns exists) and deletes what is stale; `--all`
    // treats everything as stale, as the Go tool's gc does.
    let succeed = |args: &[&str]| {
        let out = run(&netconf, &bin, args, &[("CAP_ARGS", caps)]);
        assert_eq!(out.code, 0, "{args:?}: {}", out.stderr);
    };
    let gone = sb.netns("pod2");
    succeed(&["add", "chained", &ns]);
    succeed(&["add", "chained", &gone]);
    let gone_cid = cni_runtime::cnitool_container_id(Path::new(&gone));
    sh(&["ip", "netns", "del", "pod2"]);
    succeed(&["gc", "chained", &ns]);
    assert!(
        sh(&["ip", "-n", "pod1", "link"]).contains("eth0"),
        "the live attachment stays"
    );
    assert!(Path::new(&format!("/var/lib/cni/results/chained-{cid}-eth0")).exists());
    assert!(!Path::new(&format!("/var/lib/cni/results/chained-{gone_cid}-eth0")).exists());
    succeed(&["gc", "--all", "chained", &ns]);
    assert!(!sh(&["ip", "-n", "pod1", "link"]).contains("eth0"));
    assert!(!Path::new(&format!("/var/lib/cni/results/chained-{cid}-eth0")).exists());
    assert!(!sh(&["nft", "list", "ruleset"]).contains("macspoofchk"));
}

#[test]
fn a_version_a_plugin_does_not_support_is_refused_clearly() {
    let Some(sb) = Sandbox::new("cnitool_version") else {
        return;
    };
    let Some(tuning) = go_plugin(
        "a_version_a_plugin_does_not_support_is_refused_clearly",
        "tuning",
    ) else {
        return;
    };
    let go_versions = Command::new(&tuning)
        .env("CNI_COMMAND", "VERSION")
        .output()
        .unwrap();
    let supported: Value = serde_json::from_slice(&go_versions.stdout).unwrap();
    if supported["supportedVersions"]
        .as_array()
        .unwrap()
        .iter()
        .any(|v| v == "1.1.0")
    {
        return; // a newer Go tuning supports everything we could ask
    }
    let bin = plugin_dir(&sb, &[tuning]);
    let netconf = sb.scratch.join("net.d");
    std::fs::create_dir_all(&netconf).unwrap();
    let mut conf = chain_config(&sb, "1.1.0");
    conf["plugins"].as_array_mut().unwrap().truncate(2);
    std::fs::write(netconf.join("a.conflist"), conf.to_string()).unwrap();
    let ns = sb.netns("pod1");
    let add = run(&netconf, &bin, &["add", "chained", &ns], &[]);
    assert_eq!(add.code, 1);
    assert!(
        add.stderr
            .contains("plugin \"tuning\" does not support config version \"1.1.0\""),
        "{}",
        add.stderr
    );
    assert!(
        !sh(&["ip", "-n", "pod1", "link"]).contains("eth0"),
        "nothing ran"
    );
}

#[test]
fn errors_are_printed_readably_and_exit_nonzero() {
    let Some(sb) = Sandbox::new("cnitool_errors") else {
        return;
    };
    let bin = plugin_dir(&sb, &[]);
    let netconf = sb.scratch.join("net.d");
    std::fs::create_dir_all(&netconf).unwrap();
    std::fs::write(
        netconf.join("bad.conf"),
        r#"{"cniVersion":"1.0.0","name":"bad","type":"bridge","vlan":5000}"#,
    )
    .unwrap();
    let ns = sb.netns("pod1");
    let out = run(&netconf, &bin, &["add", "bad", &ns], &[]);
    assert_eq!(out.code, 1);
    assert!(
        out.stderr.contains("plugin type=\"bridge\" failed (add)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr.contains("invalid VLAN ID 5000") && out.stderr.contains("code 7"),
        "{}",
        out.stderr
    );
    let missing = run(&netconf, &bin, &["add", "nosuch", &ns], &[]);
    assert_eq!(missing.code, 1);
    assert!(
        missing
            .stderr
            .contains("no net configuration with name \"nosuch\""),
        "{}",
        missing.stderr
    );
    let quiet = run(&netconf, &bin, &["--quiet", "version", "bridge"], &[]);
    assert!(
        quiet.code == 0 && quiet.stdout.is_empty(),
        "{}",
        quiet.stderr
    );
    let version = run(&netconf, &bin, &["version", "bridge"], &[]);
    assert!(
        version.stdout.contains("supportedVersions"),
        "{}",
        version.stdout
    );
}

/// A runtime on the Go libcni (testdata/go-libcni-runtime), built with Debian's
/// Go toolchain and libcni source, or None after a loud skip.
fn go_libcni_runtime(test: &str, out_dir: &Path) -> Option<PathBuf> {
    let source =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../testdata/go-libcni-runtime/main.go");
    let binary = out_dir.join("go-libcni-runtime");
    let built = Command::new("go")
        .args(["build", "-o"])
        .arg(&binary)
        .arg(&source)
        .env("GOPATH", "/usr/share/gocode")
        .env("GO111MODULE", "off")
        .env("GOCACHE", out_dir.join("gocache"))
        .env("GOFLAGS", "-mod=mod")
        .output();
    match built {
        Ok(out) if out.status.success() => Some(binary),
        Ok(out) => {
            testkit::skip_or_fail(
                test,
                &format!(
                    "cannot build the Go libcni runtime: {}",
                    String::from_utf8_lossy(&out.stderr)
                ),
            );
            None
        }
        Err(e) => {
            testkit::skip_or_fail(
                test,
                &format!(
                    "no Go toolchain ({e}): apt-get install golang-go golang-github-appc-cni-dev"
                ),
            );
            None
        }
    }
}

/// Ours adds and the Go libcni checks and deletes from the cache, and the other way round.
#[test]
fn the_result_cache_works_both_ways_with_the_go_libcni() {
    let test = "the_result_cache_works_both_ways_with_the_go_libcni";
    let Some(sb) = Sandbox::new("cnitool_go_cache") else {
        return;
    };
    let Some(go) = go_libcni_runtime(test, &sb.scratch) else {
        return;
    };
    let bin = plugin_dir(&sb, &[]);
    let netconf = sb.scratch.join("net.d");
    std::fs::create_dir_all(&netconf).unwrap();
    let mut conf = chain_config(&sb, "1.0.0");
    conf["plugins"].as_array_mut().unwrap().truncate(1);
    std::fs::write(netconf.join("10-chained.conflist"), conf.to_string()).unwrap();
    let ns = sb.netns("pod1");
    let go_run = |verb: &str| {
        let out = Command::new(&go)
            .env("NETCONFPATH", &netconf)
            .env("CNI_PATH", &bin)
            .args([verb, "chained", &ns])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "Go libcni {verb}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ours = |verb: &str| {
        let out = run(&netconf, &bin, &[verb, "chained", &ns], &[]);
        assert_eq!(out.code, 0, "cnitool {verb}: {}", out.stderr);
    };
    ours("add");
    go_run("check");
    go_run("del");
    assert!(!sh(&["ip", "-n", "pod1", "link"]).contains("eth0"));
    assert!(
        std::fs::read_dir("/var/lib/cni/results")
            .map(|d| d.count())
            .unwrap_or(0)
            == 0
    );
    go_run("add");
    ours("check");
    ours("del");
    assert!(!sh(&["ip", "-n", "pod1", "link"]).contains("eth0"));
    assert!(!sh(&["nft", "list", "ruleset"]).contains("macspoofchk"));
}

/// Runs scripts/demo.sh (in the test's sandbox) and returns what it printed; it
/// must succeed.
fn run_demo(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/demo.sh");
    let out = Command::new(script)
        .args(args)
        .env("CARGO_TERM_QUIET", "true")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "demo failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The README's main command, run as the test suite's own check.
#[test]
fn the_demo_runs_and_leaves_nothing_behind() {
    let Some(_sb) = Sandbox::new("demo") else {
        return;
    };
    let stdout = run_demo(&[]);
    for line in [
        "10.12.23.3 answers",
        "dropped",
        "pod-a: ok",
        "left behind: 0 veths, 0 macspoofchk rules, 0 addresses, 0 cache entries",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// The seed's case across two nodes (scripts/demo.sh --two-nodes): VLAN 1223 pods on
/// two nodes, with the seed's NAD and the console's cnv-bridge + cnv-tuning chain,
/// reach each other and the ERP host behind a data-centre switch, and not a pod on
/// VLAN 100; forged MACs are dropped on each node. A pod that takes the ERP host's
/// address poisons the other pods' ARP entries for it from the seed's NAD, and not
/// from a NAD with ipspoofchk, whose pods still reach the ERP host and each other.
/// Full-kernel tier.
#[test]
fn the_two_node_demo_reaches_the_erp_host_on_vlan_1223() {
    let test = "the_two_node_demo_reaches_the_erp_host_on_vlan_1223";
    let Some(_sb) = Sandbox::new(test) else {
        return;
    };
    if !testkit::require_kernel(test, testkit::KernelFeature::BridgeVlanFiltering) {
        return;
    }
    let stdout = run_demo(&["--two-nodes"]);
    for line in [
        "pod-a (node1) -> pod-b (node2): answers",
        "pod-a (node1) -> ERP host: answers",
        "pod-b (node2) -> ERP host: answers",
        "pod-d (node1, chain) -> pod-e (node2, seed NAD): answers",
        "pod-e (node2) -> ERP host: answers",
        "pod-d (node1) -> ERP host: answers",
        "pod-a -> pod-c (VLAN 100): no answer",
        "pod-a on node1: forged source MAC dropped",
        "pod-b on node2: forged source MAC dropped",
        "pod-b's MAC is the one Multus would pass (CNI_ARGS MAC=): 02:12:23:00:00:0b",
        "pod-f (node1, the attacker): eth0 02:12:23:00:00:0f 10.12.23.21/24 from IPAM",
        "pod-f (node1) -> ERP host: answers",
        "pod-h (node1) -> ERP host: answers",
        "pod-g (node2) -> ERP host: answers",
        "pod-f (node1) -> pod-g (node2): answers",
        "pod-h (node1) -> pod-f (node1): answers",
        "pod-g (node2, guarded) -> pod-a (node1, seed NAD): answers",
        "without ipspoofchk: pod-g now maps 10.12.23.100 to the attacker's MAC",
        "without ipspoofchk: pod-h now maps 10.12.23.100 to the attacker's MAC",
        "pod-f pings pod-g and pod-h from 10.12.23.100: no answer",
        "with ipspoofchk: pod-g still maps 10.12.23.100 to the ERP host's MAC 02:12:23:00:01:00",
        "with ipspoofchk: pod-h still maps 10.12.23.100 to the ERP host's MAC 02:12:23:00:01:00",
        "with ipspoofchk: the ERP host's entries for the pods are unchanged",
        "only the ERP host's MAC answers, pod-g reaches it",
        "cnitool check (the guarded NAD is cniVersion 1.0.0): pod-f, pod-g and pod-h ok",
        "left behind: 0 macspoofchk rules, 0 ipspoofchk rules, 0 guarded addresses",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}

/// Where the kernel has bridge VLAN filtering (the full-kernel tier), the demo puts
/// both namespaces on VLAN 1223, as the seed's example does.
#[test]
fn the_demo_uses_vlan_1223_where_the_kernel_can() {
    let test = "the_demo_uses_vlan_1223_where_the_kernel_can";
    let Some(_sb) = Sandbox::new(test) else {
        return;
    };
    if !testkit::require_kernel(test, testkit::KernelFeature::BridgeVlanFiltering) {
        return;
    }
    let stdout = run_demo(&[]);
    for line in [
        "both pods go on VLAN 1223",
        "\"vlan\": 1223",
        "10.12.23.3 answers",
        "dropped",
        "left behind: 0 veths",
    ] {
        assert!(stdout.contains(line), "missing {line:?} in:\n{stdout}");
    }
}
