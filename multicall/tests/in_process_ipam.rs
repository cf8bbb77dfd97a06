//! IPAM in-process: a plugin of the multi-call binary whose IPAM plugin is, in
//! CNI_PATH, that same binary runs it in-process (no second exec), and answers as
//! the exec'd one-plugin binaries do; any other file of that name is still exec'd.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use testkit::{bin_dir, skip_or_fail, Call, Output, Sandbox};

fn multicall() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_cni-plugins"))
}

/// The multi-call binary installed under every name in the sandbox's scratch.
fn install(sb: &Sandbox) -> PathBuf {
    let installed = sb.scratch.join("multicall");
    testkit::run_checked(
        std::process::Command::new(multicall())
            .arg("install")
            .arg(&installed),
        "cni-plugins install",
    );
    installed
}

/// A wrapper that runs `binary` under strace, its exec calls written to $TRACE.
fn traced(dir: &Path, binary: &Path) -> PathBuf {
    let wrapper = dir.join(format!(
        "traced-{}",
        binary
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
    ));
    testkit::write_script(
        &wrapper,
        &format!(
            "exec strace -f -qq -o \"$TRACE\" -e trace=execve {}",
            binary.display()
        ),
    );
    wrapper
}

/// The programs a traced run exec'd, by file name, in order.
fn execs(trace: &Path) -> Vec<String> {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter(|line| line.contains("execve(\"") && line.ends_with("= 0"))
        .map(|line| {
            let path = line.split('"').nth(1).unwrap();
            Path::new(path)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect()
}

/// An answer with what differs between any two attachments blanked out: MACs, the
/// host veth's generated name, and the netns path.
fn comparable(output: &Output) -> (i32, Value, String) {
    let mut answer: Value = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", output.stdout));
    if let Some(interfaces) = answer["interfaces"].as_array_mut() {
        for interface in interfaces {
            interface["mac"] = json!("-");
            if interface.get("sandbox").is_some() {
                interface["sandbox"] = json!("-");
            }
            if interface["name"].as_str().unwrap().starts_with("veth") {
                interface["name"] = json!("veth-");
            }
        }
    }
    // Log lines name their program: bridge, or the IPAM plugin whose line it is.
    (output.code, answer, output.stderr.clone())
}

fn bridge_config(name: &str, ipam: Value) -> Value {
    json!({
        "cniVersion": "1.0.0",
        "name": name,
        "type": "bridge",
        "bridge": format!("br-{name}"),
        "ipam": ipam,
    })
}

/// Bridge ADDs with static and host-local IPAM, in turn from the multi-call binary
/// (whose IPAM runs in-process) and from the one-plugin binaries (whose IPAM is
/// exec'd): the same answers, the same files in host-local's store, no link left by
/// a failed ADD, and exactly one exec for the multi-call one.
#[test]
fn ipam_of_the_same_binary_runs_in_process_and_answers_as_its_exec() {
    let test = "ipam_of_the_same_binary_runs_in_process_and_answers_as_its_exec";
    if !Path::new("/usr/bin/strace").exists() {
        skip_or_fail(test, "strace is not installed");
        return;
    }
    let Some(sb) = Sandbox::new("in-process-ipam") else {
        return;
    };
    let installed = install(&sb);
    let sides = [("in-process", installed.clone()), ("exec", bin_dir())];
    let store = |side: &str| sb.scratch.join(format!("store-{side}"));
    let host_local = |side: &str, subnet: &str| json!({"type": "host-local", "dataDir": store(side), "ranges": [[{"subnet": subnet}]]});
    // Each case: what it is, its network's name, its IPAM config on each side. The
    // host-local cases share one network, so that its range runs out on the third.
    type Ipam<'a> = Box<dyn Fn(&str) -> Value + 'a>;
    let cases: Vec<(&str, &str, Ipam)> = vec![
        (
            "static, IPv4 and IPv6",
            "st",
            Box::new(|_| {
                json!({"type": "static", "addresses": [
                    {"address": "10.70.0.2/24", "gateway": "10.70.0.1"},
                    {"address": "fd70::2/64"}],
                    "routes": [{"dst": "0.0.0.0/0"}], "dns": {"nameservers": ["10.70.0.1"]}})
            }),
        ),
        (
            "static, an address that is no CIDR",
            "st",
            Box::new(|_| json!({"type": "static", "addresses": [{"address": "10.70.0.300/24"}]})),
        ),
        (
            "host-local, its one address",
            "hl",
            Box::new(move |side| host_local(side, "10.71.0.0/30")),
        ),
        (
            "host-local, range exhausted",
            "hl",
            Box::new(move |side| host_local(side, "10.71.0.0/30")),
        ),
        (
            "host-local, a range start outside its subnet",
            "hl2",
            Box::new(move |side| {
                let mut ipam = host_local(side, "10.72.0.0/24");
                ipam["ranges"][0][0]["rangeStart"] = json!("10.73.0.10");
                ipam
            }),
        ),
    ];
    let mut answers: BTreeMap<&str, Vec<(i32, Value, String)>> = BTreeMap::new();
    for (side, dir) in &sides {
        let netns = sb.netns(&format!("pod-{side}"));
        let bridge = traced(&sb.scratch, &dir.join("bridge"));
        for (n, (what, network, ipam)) in cases.iter().enumerate() {
            let trace = sb.scratch.join(format!("trace-{side}-{n}"));
            let call = Call::attach("ADD", &format!("c{n}"), &netns, &format!("net{n}"))
                .env("CNI_PATH", &dir.display().to_string())
                .env("TRACE", &trace.display().to_string())
                .config(&bridge_config(network, ipam(side)));
            let output = call.run(&bridge);
            let ran = execs(&trace);
            let ipam_type = ipam(side)["type"].as_str().unwrap().to_string();
            if *side == "in-process" {
                assert_eq!(ran, ["bridge"], "{what}: IPAM exec'd, not run in-process");
            } else {
                assert_eq!(ran, ["bridge", ipam_type.as_str()], "{what}: exec path");
            }
            if output.code != 0 {
                let ifname = format!("net{n}");
                let links = sb.links();
                let left: Vec<_> = links.values().flatten().filter(|l| **l == ifname).collect();
                assert!(
                    left.is_empty(),
                    "{what} ({side}): a failed ADD left {left:?}"
                );
            }
            answers.entry(side).or_default().push(comparable(&output));
        }
    }
    for (n, (what, _, _)) in cases.iter().enumerate() {
        assert_eq!(
            answers["in-process"][n], answers["exec"][n],
            "{what}: the in-process IPAM answered otherwise than the exec'd one"
        );
    }
    let failed = answers["exec"].iter().filter(|a| a.0 != 0).count();
    assert_eq!(failed, 3, "the cases must include failures: {answers:?}");
    // host-local's store: the same files, the same contents (container IDs, ifnames).
    let files = |side: &str| -> BTreeMap<PathBuf, Vec<u8>> {
        Sandbox::files(&store(side))
            .into_iter()
            .map(|(path, bytes)| (path.strip_prefix(store(side)).unwrap().to_path_buf(), bytes))
            .collect()
    };
    assert_eq!(files("in-process"), files("exec"));
    assert!(!files("exec").is_empty());
}

/// An IPAM plugin of the same name that is not this binary (an admin's own, first
/// in CNI_PATH) is exec'd: the in-process path never shadows another file.
#[test]
fn another_file_of_the_ipam_name_is_still_exec_d() {
    let Some(sb) = Sandbox::new("in-process-other") else {
        return;
    };
    let installed = install(&sb);
    let admins = sb.scratch.join("admins");
    std::fs::create_dir_all(&admins).unwrap();
    let marker = sb.scratch.join("admins-static-ran");
    testkit::write_script(
        &admins.join("static"),
        &format!(
            "touch {}\necho '{{\"cniVersion\":\"1.0.0\",\"ips\":[{{\"address\":\"10.73.0.9/24\"}}]}}'",
            marker.display()
        ),
    );
    let netns = sb.netns("pod");
    let answer = Call::attach("ADD", "c1", &netns, "net1")
        .env(
            "CNI_PATH",
            &format!("{}:{}", admins.display(), installed.display()),
        )
        .config(&bridge_config(
            "other",
            json!({"type": "static", "addresses": [{"address": "10.73.0.2/24"}]}),
        ))
        .run(&installed.join("bridge"))
        .expect_success();
    assert!(marker.exists(), "the admin's static was not run");
    assert_eq!(answer["ips"][0]["address"], "10.73.0.9/24");
}

/// The same file on a `noexec` mount (a bind mount of the installed directory) is
/// one an exec would refuse: it is exec'd, and fails as such, not run in-process.
#[test]
fn the_same_file_on_a_noexec_mount_is_not_run_in_process() {
    let Some(sb) = Sandbox::new("in-process-noexec") else {
        return;
    };
    let installed = install(&sb);
    let noexec = sb.scratch.join("noexec");
    std::fs::create_dir_all(&noexec).unwrap();
    testkit::sh(&[
        "mount",
        "--bind",
        installed.to_str().unwrap(),
        noexec.to_str().unwrap(),
    ]);
    testkit::sh(&[
        "mount",
        "-o",
        "remount,bind,noexec",
        noexec.to_str().unwrap(),
    ]);
    let netns = sb.netns("pod");
    let output = Call::attach("ADD", "c1", &netns, "net1")
        .env("CNI_PATH", &noexec.display().to_string())
        .config(&bridge_config(
            "noexec",
            json!({"type": "static", "addresses": [{"address": "10.74.0.2/24"}]}),
        ))
        .run(&installed.join("bridge"));
    let msg = output.error(5);
    assert!(
        msg.contains("failed to exec plugin") && msg.contains("Permission denied"),
        "{msg}"
    );
    let links = sb.links();
    assert!(
        !links.values().flatten().any(|l| l == "net1"),
        "a failed ADD left its link: {links:?}"
    );
}
