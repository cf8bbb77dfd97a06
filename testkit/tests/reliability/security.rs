//! Hostile and unusual input, as a tenant can send it (interface names, MACs, IPs,
//! CNI_ARGS, container IDs, the pod's lifetime) or as a state directory can hold it.
//! Each test is one class of docs/security.md; each failed on the code before that
//! class was closed.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{ping, plugin, sh, with_prev, Call, Output, Sandbox};

fn ruleset() -> String {
    sh(&["nft", "list", "ruleset"])
}

fn l3(network: &str, bridge: &str, subnet: &str, data_dir: &Path) -> Value {
    json!({"cniVersion": "1.1.0", "name": network, "type": "bridge", "bridge": bridge,
           "macspoofchk": true,
           "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": data_dir}})
}

fn run(command: &str, cid: &str, netns: &str, ifname: &str, conf: &Value) -> Output {
    Call::attach(command, cid, netns, ifname)
        .config(conf)
        .run(&plugin(conf["type"].as_str().unwrap()))
}

fn gc(conf: &Value, valid: Value) -> Output {
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = valid;
    Call::new("GC")
        .env("CNI_PATH", &testkit::bin_dir().display().to_string())
        .config(&gc)
        .run(&plugin(conf["type"].as_str().unwrap()))
}

/// Forges pod `netns`'s source MAC and tells whether it still reaches `target`.
fn forged_mac_reaches(netns: &str, target: &str) -> bool {
    let real = sh(&["ip", "-n", netns, "-j", "link", "show", "eth0"]);
    let real: Value = serde_json::from_str(&real).unwrap();
    let real = real[0]["address"].as_str().unwrap().to_string();
    sh(&[
        "ip",
        "-n",
        netns,
        "link",
        "set",
        "eth0",
        "address",
        "02:66:66:66:66:66",
    ]);
    sh(&["ip", "-n", netns, "neigh", "flush", "all"]);
    let reached = ping(netns, target);
    sh(&["ip", "-n", netns, "link", "set", "eth0", "address", &real]);
    reached
}

/// Class 1: two networks on one bridge (two VLAN NADs on `br1`, the usual
/// cnv-bridge setup). GC of each with its own valid list leaves the other's rules,
/// and a forged MAC from the other network's pod is still dropped.
#[test]
fn gc_of_one_network_keeps_the_protection_of_another() {
    let Some(sb) = Sandbox::new("sec_gc_ownership") else {
        return;
    };
    let (a, b, c) = (sb.netns("a"), sb.netns("b"), sb.netns("c"));
    let n1 = l3("n1", "secbr1", "10.130.1.0/24", &sb.scratch);
    let n2 = l3("n2", "secbr1", "10.130.2.0/24", &sb.scratch);
    run("ADD", "pa", &a, "eth0", &n1).expect_success();
    run("ADD", "pb", &b, "eth0", &n2).expect_success();
    run("ADD", "pc", &c, "eth0", &n2).expect_success();
    assert!(ping("b", "10.130.2.3"), "b reaches c");
    gc(&n1, json!([{"containerID": "pa", "ifname": "eth0"}])).expect_success();
    gc(
        &n2,
        json!([{"containerID": "pb", "ifname": "eth0"}, {"containerID": "pc", "ifname": "eth0"}]),
    )
    .expect_success();
    let rules = ruleset();
    for reference in ["pa-eth0", "pb-eth0", "pc-eth0"] {
        assert!(
            rules.contains(&format!("macspoofchk-{reference}")),
            "{reference} lost its rules:\n{rules}"
        );
    }
    assert!(
        !forged_mac_reaches("b", "10.130.2.3"),
        "a forged MAC from n2's pod must stay dropped"
    );
    // GC of n2 that leaves c out: c is live, its rules stay; only a pod that is gone loses them.
    gc(&n2, json!([{"containerID": "pb", "ifname": "eth0"}])).expect_success();
    assert!(ruleset().contains("macspoofchk-pc-eth0"));
    for (cid, ns, conf) in [("pa", &a, &n1), ("pb", &b, &n2), ("pc", &c, &n2)] {
        run("DEL", cid, ns, "eth0", conf).expect_success();
    }
    assert!(!ruleset().contains("macspoofchk"), "{}", ruleset());
}

/// Class 2: spec-valid interface names that a command-line parser would choke on
/// work through ADD and DEL with macspoofchk, and leave nothing.
#[test]
fn spec_valid_names_work_through_add_and_del() {
    let Some(sb) = Sandbox::new("sec_names") else {
        return;
    };
    let pod = sb.netns("pod");
    let conf = l3("names", "secbr2", "10.131.0.0/24", &sb.scratch);
    for ifname in ["net$1", "net;1", "né1", "a\"b", "x{y}", "-"] {
        let result = run("ADD", "cid", &pod, ifname, &conf).expect_success();
        assert!(
            ruleset().contains("macspoofchk-cid-"),
            "{ifname}: {}",
            ruleset()
        );
        run("CHECK", "cid", &pod, ifname, &with_prev(&conf, &result)).expect_success();
        run("DEL", "cid", &pod, ifname, &with_prev(&conf, &result)).expect_success();
        run("DEL", "cid", &pod, ifname, &conf).expect_success();
        assert!(
            !ruleset().contains("macspoofchk"),
            "{ifname}: {}",
            ruleset()
        );
    }
}

/// Runs `call` in a process group of its own and kills the whole group if it has
/// not finished within `limit`: a plugin that execs itself without end must not
/// outlive the test. `None` when it had to be killed.
fn run_bounded(call: &Call, binary: &Path, limit: Duration) -> Option<Output> {
    use std::os::unix::process::CommandExt;
    let mut command = std::process::Command::new(binary);
    command
        .env_clear()
        .envs(&call.env)
        .process_group(0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = call.stdin.clone();
    std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let started = Instant::now();
    while started.elapsed() < limit {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return Some(Output {
                code: out.status.code().unwrap_or(-1),
                stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    unsafe { libc::killpg(child.id() as i32, libc::SIGKILL) };
    let _ = child.wait();
    None
}

/// Class 3: a plugin named as its own IPAM (or another main plugin as IPAM) ends at
/// once: DEL succeeds (nothing can have been allocated that way); ADD, CHECK, GC
/// and STATUS fail with a clear error. Before, DEL, CHECK, GC and STATUS exec'd
/// themselves without bound.
#[test]
fn a_plugin_named_as_its_own_ipam_stops() {
    let Some(sb) = Sandbox::new("sec_delegation") else {
        return;
    };
    let pod = sb.netns("pod");
    testkit::veth_pair_up("secup0", "secup1");
    for (main, ipam) in [
        ("bridge", "bridge"),
        ("bridge", "macvlan"),
        ("macvlan", "bridge"),
    ] {
        let conf = json!({"cniVersion": "1.1.0", "name": "loop", "type": main, "bridge": "secbr3",
                          "master": "secup0", "ipam": {"type": ipam},
                          "prevResult": {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": pod}]}});
        for command in ["DEL", "STATUS", "GC", "CHECK", "ADD"] {
            let call = if command == "GC" || command == "STATUS" {
                Call::new(command).env("CNI_PATH", &testkit::bin_dir().display().to_string())
            } else {
                Call::attach(command, "loop", &pod, "eth0")
            }
            .config(&conf);
            let out = run_bounded(&call, &plugin(main), Duration::from_secs(10))
                .unwrap_or_else(|| panic!("{main} with ipam {ipam}: {command} did not end"));
            if command == "DEL" {
                assert_eq!(out.code, 0, "{main}/{ipam} DEL: {}", out.stdout);
            } else {
                let msg = out.error(7);
                assert!(
                    msg.contains("is not an IPAM plugin"),
                    "{main}/{ipam} {command}: {msg}"
                );
            }
        }
    }
}

/// Class 4: a symlink planted in host-local's data directory is not followed: the
/// directory it points at keeps its files.
#[test]
fn state_directory_symlinks_are_not_followed() {
    let Some(sb) = Sandbox::new("sec_symlinks") else {
        return;
    };
    let victim = sb.scratch.join("victim");
    std::fs::create_dir_all(&victim).unwrap();
    std::fs::write(victim.join("precious"), "keep me").unwrap();
    let data = sb.scratch.join("data");
    std::fs::create_dir_all(data.join("hl")).unwrap();
    std::os::unix::fs::symlink(&victim, data.join("hl/.index")).unwrap();
    std::os::unix::fs::symlink(victim.join("precious"), data.join("hl/last_reserved_ip.0"))
        .unwrap();
    let conf = json!({"cniVersion": "1.1.0", "name": "hl", "type": "host-local",
                      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.132.0.0/24"}]], "dataDir": data}});
    let pod = sb.netns("pod");
    for cid in ["s1", "s2"] {
        let _ = run("ADD", cid, &pod, "eth0", &conf);
        run("DEL", cid, &pod, "eth0", &conf).expect_success();
    }
    let left: Vec<_> = Sandbox::files(&victim).into_keys().collect();
    assert_eq!(
        left,
        vec![victim.join("precious")],
        "files appeared in the victim directory"
    );
    assert_eq!(
        std::fs::read_to_string(victim.join("precious")).unwrap(),
        "keep me"
    );
}

/// Class 5: a file a config names is read bounded and must be a regular file:
/// `/dev/zero` or a FIFO fails fast instead of filling memory or hanging.
#[test]
fn files_named_by_a_config_are_read_bounded() {
    let Some(sb) = Sandbox::new("sec_bounded") else {
        return;
    };
    let pod = sb.netns("pod");
    let fifo = sb.scratch.join("fifo");
    sh(&["mkfifo", &fifo.display().to_string()]);
    for resolv in [Path::new("/dev/zero"), fifo.as_path()] {
        let conf = json!({"cniVersion": "1.1.0", "name": "rc", "type": "host-local",
                          "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.133.0.0/24"}]],
                                   "dataDir": sb.scratch.join("data"), "resolvConf": resolv}});
        let started = Instant::now();
        let msg = run("ADD", "rc", &pod, "eth0", &conf).error(5);
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "{}: {:?}",
            resolv.display(),
            started.elapsed()
        );
        assert!(
            msg.contains("regular file") || msg.contains("larger than"),
            "{msg}"
        );
    }
}

/// Class 6: a container ID of 300 bytes (the spec sets no limit) works through ADD
/// and DEL: every name built from it fits the filesystem and the kernel.
#[test]
fn long_container_ids_work_through_add_and_del() {
    let Some(sb) = Sandbox::new("sec_long_ids") else {
        return;
    };
    let pod = sb.netns("pod");
    let before = sb.snapshot();
    let conf = l3("long", "secbr4", "10.134.0.0/24", &sb.scratch);
    let cid = "c".repeat(300);
    let result = run("ADD", &cid, &pod, "eth0", &conf).expect_success();
    run("CHECK", &cid, &pod, "eth0", &with_prev(&conf, &result)).expect_success();
    run("DEL", &cid, &pod, "eth0", &with_prev(&conf, &result)).expect_success();
    run("DEL", &cid, &pod, "eth0", &conf).expect_success();
    let after = sb.snapshot();
    assert_eq!(
        after
            .scratch_files
            .keys()
            .filter(|p| p.to_string_lossy().contains("10.134"))
            .count(),
        0
    );
    assert!(!after.nft.contains("macspoofchk"), "{}", after.nft);
    assert_eq!(
        before.links[""].len() + 1,
        after.links[""].len(),
        "only the bridge stays"
    );
}

/// Class 7: the environment is bytes. A non-UTF-8 CNI_ARGS value drops only its own
/// pair, a non-UTF-8 CNI_PATH entry only itself, and a CNI_COMMAND that is not text
/// is a code-4 error naming it.
#[test]
fn environment_values_that_are_not_text() {
    let Some(sb) = Sandbox::new("sec_env_bytes") else {
        return;
    };
    let conf = json!({"cniVersion": "1.1.0", "name": "env", "type": "bridge", "bridge": "secbr5",
                      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.135.0.0/24"}]], "dataDir": sb.scratch}});
    let pod = sb.netns("pod");
    let mut path = b"/nonexistent/\xff:".to_vec();
    path.extend(testkit::bin_dir().display().to_string().as_bytes());
    let result = Call::attach("ADD", "env", &pod, "eth0")
        .env_bytes(
            "CNI_ARGS",
            b"IgnoreUnknown=1;K8S_POD_NAME=caf\xe9;IP=10.135.0.77",
        )
        .env_bytes("CNI_PATH", &path)
        .config(&conf)
        .run(&plugin("bridge"))
        .expect_success();
    assert_eq!(
        result["ips"][0]["address"], "10.135.0.77/24",
        "the requested IP is honoured"
    );
    let msg = Call::attach("ADD", "env2", &pod, "eth1")
        .env_bytes("CNI_ARGS", b"IgnoreUnknown=1;IP=10.135.0.\xff")
        .config(&conf)
        .run(&plugin("bridge"))
        .error(4);
    assert!(msg.contains("IP"), "{msg}");
    let msg = Call::attach("ADD", "env3", &pod, "eth2")
        .env_bytes("CNI_COMMAND", b"AD\xff")
        .config(&conf)
        .run(&plugin("bridge"))
        .error(4);
    assert!(msg.contains("CNI_COMMAND"), "{msg}");
    let msg = Call::attach("ADD", "env4", &pod, "eth2")
        .env_bytes("CNI_IFNAME", b"e\xffh")
        .config(&conf)
        .run(&plugin("bridge"))
        .error(4);
    assert!(msg.contains("CNI_IFNAME"), "{msg}");
    run("DEL", "env", &pod, "eth0", &conf).expect_success();
}

/// Class 8: DEL tears down what ADD would refuse to make (a multicast MAC, a
/// negative MTU): runtimes retry DEL until it succeeds.
#[test]
fn del_accepts_configs_that_add_refuses() {
    let Some(sb) = Sandbox::new("sec_del_lenient") else {
        return;
    };
    let pod = sb.netns("pod");
    testkit::veth_pair_up("secup2", "secup3");
    let bad = [
        json!({"cniVersion": "1.0.0", "name": "b1", "type": "bridge", "bridge": "secbr6",
               "hairpinMode": true, "promiscMode": true}),
        json!({"cniVersion": "1.0.0", "name": "b2", "type": "bridge", "bridge": "secbr6",
               "runtimeConfig": {"mac": "01:00:5e:00:00:01"}}),
        json!({"cniVersion": "1.0.0", "name": "b3", "type": "bridge", "vlan": 5000}),
        json!({"cniVersion": "1.0.0", "name": "m1", "type": "macvlan", "master": "secup2", "mtu": -1}),
        json!({"cniVersion": "1.0.0", "name": "m2", "type": "macvlan", "master": "secup2", "mac": "01:00:5e:00:00:01"}),
        json!({"cniVersion": "1.0.0", "name": "v1", "type": "vlan", "master": "secup2", "vlanId": 9999}),
    ];
    for conf in &bad {
        run("ADD", "lenient", &pod, "eth0", conf).error(7);
        let out = run("DEL", "lenient", &pod, "eth0", conf);
        assert_eq!(out.code, 0, "DEL of {conf}: {}", out.stdout);
    }
}

/// Class 9: an interface that was in the netns before (ADD refused to replace it)
/// survives the DEL that follows; `lo` too.
#[test]
fn del_leaves_interfaces_it_did_not_make() {
    let Some(sb) = Sandbox::new("sec_preexisting") else {
        return;
    };
    let pod = sb.netns("pod");
    sh(&[
        "ip", "-n", "pod", "link", "add", "eth0", "type", "veth", "peer", "name", "eth9",
    ]);
    testkit::veth_pair_up("secup4", "secup5");
    sh(&[
        "ip", "link", "add", "link", "secup4", "name", "mvtmp", "type", "macvlan",
    ]);
    sh(&["ip", "link", "set", "mvtmp", "netns", "pod"]);
    sh(&["ip", "-n", "pod", "link", "set", "mvtmp", "name", "net1"]);
    let bridge = l3("pre", "secbr7", "10.137.0.0/24", &sb.scratch);
    let macvlan =
        json!({"cniVersion": "1.0.0", "name": "pre2", "type": "macvlan", "master": "secup4"});
    for (conf, ifname) in [
        (&bridge, "eth0"),
        (&macvlan, "net1"),
        (&bridge, "lo"),
        (&macvlan, "lo"),
    ] {
        run("ADD", "pre", &pod, ifname, conf).error(999);
        run("DEL", "pre", &pod, ifname, conf).expect_success();
        let links = sh(&["ip", "-n", "pod", "link", "show"]);
        for name in ["eth0", "net1", "lo"] {
            assert!(
                links.contains(&format!(": {name}")),
                "{name} is gone after DEL of {ifname}:\n{links}"
            );
        }
    }
}

/// Class 10: two attachments whose `<containerID>-<ifname>` coincide (Go's chain
/// names) cannot share chains: the second ADD is refused and the first keeps its
/// protection, also through the second's DEL; an ADD of an attached container into
/// another netns leaves the running attachment's rules alone.
#[test]
fn colliding_attachments_keep_their_own_rules() {
    let Some(sb) = Sandbox::new("sec_collisions") else {
        return;
    };
    let (p1, p2, p3) = (sb.netns("p1"), sb.netns("p2"), sb.netns("p3"));
    let conf = l3("coll", "secbr8", "10.138.0.0/24", &sb.scratch);
    run("ADD", "a-b", &p1, "c0", &conf).expect_success();
    run("ADD", "peer", &p3, "eth0", &conf).expect_success();
    let msg = run("ADD", "a", &p2, "b-c0", &conf).error(999);
    assert!(msg.contains("collides"), "{msg}");
    run("DEL", "a", &p2, "b-c0", &conf).expect_success();
    let msg = run("ADD", "a-b", &p2, "c0", &conf).error(999);
    assert!(msg.contains("live host interface"), "{msg}");
    run("DEL", "a-b", &p2, "c0", &conf).expect_success();
    assert!(ruleset().contains("macspoofchk-a-b-c0"), "{}", ruleset());
    sh(&["ip", "-n", "p1", "link", "set", "c0", "name", "eth0"]);
    assert!(ping("p1", "10.138.0.3"), "the first attachment still works");
    assert!(
        !forged_mac_reaches("p1", "10.138.0.3"),
        "and still drops a forged MAC"
    );
}

/// Class 11: sriov GC reads device IDs from cache files; one that is not a PCI
/// address never becomes a path.
#[test]
fn sriov_gc_never_uses_a_cached_device_id_as_a_path() {
    let Some(_sb) = Sandbox::new("sec_sriov_gc") else {
        return;
    };
    std::fs::create_dir_all("/var/lib/cni/sriov").unwrap();
    let cache = json!({"cniVersion": "1.1.0", "name": "sr", "type": "sriov", "deviceID": "../../../escape",
                       "OrigVfState": {"HostIFName": "x"}, "Master": "pf0", "VFID": 1,
                       "ContainerID": "gone", "IfName": "net1", "Netns": "/run/netns/gone"});
    std::fs::write("/var/lib/cni/sriov/gone-net1", cache.to_string()).unwrap();
    let conf =
        json!({"cniVersion": "1.1.0", "name": "sr", "type": "sriov", "deviceID": "0000:af:06.0"});
    gc(&conf, json!([])).expect_success();
    assert!(
        !Path::new("/var/lib/cni/escape.lock").exists(),
        "a lock file escaped the state directory"
    );
    assert!(!Path::new("/var/lib/cni/sriov/pci/vf_lock/../../../escape.lock").exists());
}

/// Class 12: DEL removes `<bridge>.<vlan>` (the VLAN gateway interface) only when it
/// is the plugin's own: a veth carrying the gateway mark whose peer is a port of the
/// bridge. The admin's own interface of that name (here a veth whose peer is a port
/// of the bridge, as the Go plugin makes its gateway, holding the node's address)
/// and `<uplink>.<vlan>` when a config names an uplink as its bridge survive the
/// DEL a runtime sends after a failed ADD. This kernel has no 802.1Q links: a veth
/// and a macvlan stand in for the admin's VLAN interfaces (the name is what the
/// cleanup looked at). Without VLAN filtering no port is in any VLAN, so every
/// `<bridge>.<vlan>` looks unused: this is the path that deleted them.
#[test]
fn del_leaves_vlan_interfaces_it_did_not_make() {
    let Some(sb) = Sandbox::new("sec_vlan_gateway") else {
        return;
    };
    let pod = sb.netns("pod");
    let gw = |bridge: &str, vlan: u16| {
        json!({"cniVersion": "1.1.0", "name": "gw", "type": "bridge", "bridge": bridge,
               "vlan": vlan, "isGateway": true,
               "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.139.0.0/24"}]], "dataDir": sb.scratch}})
    };
    // A DEL for any container and no netns, as a runtime sends after a failed ADD.
    let del_without_netns = |conf: &Value| {
        Call::attach("DEL", "any", "", "eth0")
            .unset("CNI_NETNS")
            .config(conf)
            .run(&plugin("bridge"))
    };
    let has_address = |name: &str, address: &str| {
        std::process::Command::new("ip")
            .args(["addr", "show", "dev", name])
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(address))
    };
    let exists = |name: &str| Path::new("/sys/class/net").join(name).exists();
    sh(&["ip", "link", "add", "secbr9", "type", "bridge"]);
    sh(&["ip", "link", "set", "secbr9", "up"]);
    // gateway-shaped veths: (name, peer, alias)
    let veth_on_bridge = |name: &str, peer: &str, alias: Option<&str>| {
        sh(&[
            "ip", "link", "add", name, "type", "veth", "peer", "name", peer,
        ]);
        sh(&["ip", "link", "set", peer, "master", "secbr9", "up"]);
        sh(&["ip", "link", "set", name, "up"]);
        if let Some(alias) = alias {
            sh(&["ip", "link", "set", name, "alias", alias]);
        }
    };

    // The admin's own (or the Go plugin's): unmarked.
    veth_on_bridge("secbr9.77", "secgw0", None);
    sh(&["ip", "addr", "add", "10.139.0.1/24", "dev", "secbr9.77"]);
    let out = del_without_netns(&gw("secbr9", 77));
    out.expect_success();
    assert!(
        has_address("secbr9.77", "10.139.0.1/24"),
        "DEL deleted the admin's secbr9.77"
    );
    assert!(
        out.stderr.contains("secbr9.77"),
        "no warning: {}",
        out.stderr
    );

    // An uplink named as the bridge: ADD refuses it, the DEL that follows keeps
    // the uplink's own `<uplink>.<vlan>`.
    testkit::veth_pair_up("secup6", "secup7");
    sh(&[
        "ip",
        "link",
        "add",
        "link",
        "secup6",
        "name",
        "secup6.77",
        "type",
        "macvlan",
    ]);
    sh(&["ip", "addr", "add", "10.139.1.1/24", "dev", "secup6.77"]);
    let msg = run("ADD", "up", &pod, "eth0", &gw("secup6", 77)).error(7);
    assert!(msg.contains("not a bridge"), "{msg}");
    run("DEL", "up", &pod, "eth0", &gw("secup6", 77)).expect_success();
    del_without_netns(&gw("secup6", 77)).expect_success();
    assert!(
        has_address("secup6.77", "10.139.1.1/24"),
        "DEL deleted the uplink's secup6.77"
    );

    // Marked, but not what the plugin makes: a macvlan, a veth whose peer is no
    // port of the bridge, a mark for another VLAN. All stay.
    let mark = |vlan: u16| libcni::attach::vlan_gateway_mark("secbr9", vlan);
    sh(&[
        "ip",
        "link",
        "add",
        "link",
        "secbr9",
        "name",
        "secbr9.78",
        "type",
        "macvlan",
    ]);
    sh(&["ip", "link", "set", "secbr9.78", "alias", &mark(78)]);
    sh(&[
        "ip",
        "link",
        "add",
        "secbr9.79",
        "type",
        "veth",
        "peer",
        "name",
        "secgw1",
    ]);
    sh(&["ip", "link", "set", "secbr9.79", "alias", &mark(79)]);
    veth_on_bridge("secbr9.80", "secgw2", Some(&mark(81)));
    for vlan in [78, 79, 80] {
        del_without_netns(&gw("secbr9", vlan)).expect_success();
        assert!(
            exists(&format!("secbr9.{vlan}")),
            "secbr9.{vlan} was deleted"
        );
    }

    // The plugin's own, unused: removed, and a second DEL succeeds.
    veth_on_bridge("secbr9.82", "secgw3", Some(&mark(82)));
    for _ in 0..2 {
        del_without_netns(&gw("secbr9", 82)).expect_success();
        assert!(!exists("secbr9.82") && !exists("secgw3"));
    }
    assert!(exists("secbr9.77") && exists("secup6.77"));
}
