//! The bridge plugin exec'd as a runtime does, in namespaces each test makes for
//! itself; the kernel state and the nftables ruleset are checked afterwards.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use testkit::{go_plugin, ping, plugin, sh, with_prev, Call, Output, Sandbox};

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bridge"))
}

fn call(bin: &Path, command: &str, cid: &str, netns: &str, conf: &Value) -> Output {
    plugin("host-local"); // asserts the IPAM plugin is built
    Call::attach(command, cid, netns, "eth0")
        .config(conf)
        .run(bin)
}

fn l3(bridge: &str, subnet: &str, data_dir: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": "l3net", "type": "bridge", "bridge": bridge,
           "isDefaultGateway": true,
           "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": data_dir}})
}

fn nft_ruleset() -> String {
    sh(&["nft", "list", "ruleset"])
}

fn links_in(ns: &str) -> Vec<String> {
    let out: Value = serde_json::from_str(&sh(&["ip", "-j", "-n", ns, "link", "show"])).unwrap();
    out.as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

fn host_links() -> Vec<String> {
    let out: Value = serde_json::from_str(&sh(&["ip", "-j", "link", "show"])).unwrap();
    out.as_array()
        .unwrap()
        .iter()
        .map(|l| l["ifname"].as_str().unwrap().to_string())
        .collect()
}

/// Waits (up to 5 s) until the host has `count` veths.
fn wait_for_veths(count: usize) {
    for _ in 0..250 {
        if host_links()
            .iter()
            .filter(|l| l.starts_with("veth"))
            .count()
            == count
        {
            return;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    panic!(
        "the host still has other than {count} veths: {:?}",
        host_links()
    );
}

#[test]
fn the_seed_attachment_works_as_written_and_del_removes_it() {
    let Some(sb) = Sandbox::new("seed_l2") else {
        return;
    };
    let c1 = sb.netns("c1");
    let cnv = sb.scratch.join("cnv-bridge");
    std::os::unix::fs::symlink(ours(), &cnv).unwrap();
    let conf = json!({"cniVersion":"0.3.1","name":"vlan-net-1223","type":"cnv-bridge","bridge":"br1","macspoofchk":true});
    let before = sb.snapshot();
    let result = Call::attach("ADD", "cid1", &c1, "eth0")
        .env("CNI_ARGS", "IgnoreUnknown=1;MAC=02:00:00:00:00:42")
        .config(&conf)
        .run(&cnv)
        .expect_success();
    assert_eq!(result["cniVersion"], "0.3.1");
    let ifaces = result["interfaces"].as_array().unwrap();
    assert_eq!(ifaces.len(), 3);
    assert_eq!(ifaces[0]["name"], "br1");
    assert!(ifaces[1]["name"].as_str().unwrap().starts_with("veth"));
    assert_eq!(
        ifaces[2],
        json!({"name": "eth0", "mac": "02:00:00:00:00:42", "sandbox": c1})
    );
    assert!(result.get("ips").is_none());
    assert!(links_in("c1").contains(&"eth0".to_string()));
    let host_veth = ifaces[1]["name"].as_str().unwrap();
    let port: Value = serde_json::from_str(&sh(&["ip", "-j", "link", "show", host_veth])).unwrap();
    assert_eq!(port[0]["master"], "br1");

    let rules = nft_ruleset();
    assert!(
        rules.contains(&format!(
            "iifname \"{host_veth}\" jump cni-br-iface-cid1-eth0 comment \"macspoofchk-cid1-eth0\""
        )),
        "{rules}"
    );
    assert!(
        rules.contains("ether saddr 02:00:00:00:00:42 return comment \"macspoofchk-cid1-eth0\""),
        "{rules}"
    );
    assert!(
        rules.contains("chain cni-br-iface-cid1-eth0-mac"),
        "{rules}"
    );

    // CHECK works for a layer-2 config (the Go plugin fails with "no plugin name provided").
    Call::attach("CHECK", "cid1", &c1, "eth0")
        .config(&with_prev(&conf, &result))
        .run(&cnv)
        .error(1); // 0.3.1 has no CHECK
    let mut conf04 = with_prev(&conf, &result);
    conf04["cniVersion"] = json!("0.4.0");
    Call::attach("CHECK", "cid1", &c1, "eth0")
        .config(&conf04)
        .run(&cnv)
        .expect_success();

    Call::attach("DEL", "cid1", &c1, "eth0")
        .config(&conf)
        .run(&cnv)
        .expect_success();
    Call::attach("DEL", "cid1", &c1, "eth0")
        .config(&conf)
        .run(&cnv)
        .expect_success();
    let after = sb.snapshot();
    assert!(!after.nft.contains("cni-br-iface"), "{}", after.nft);
    assert_eq!(
        after.links[""]
            .iter()
            .filter(|l| l.starts_with("veth"))
            .count(),
        0
    );
    assert_eq!(after.links["c1"], before.links["c1"]);
}

#[test]
fn two_namespaces_on_one_bridge_reach_each_other_and_the_gateway() {
    let Some(sb) = Sandbox::new("l3_ping") else {
        return;
    };
    let (c1, c2) = (sb.netns("c1"), sb.netns("c2"));
    let conf = l3("br0", "10.40.0.0/24", &sb.scratch);
    let r1 = call(&ours(), "ADD", "a1", &c1, &conf).expect_success();
    let r2 = call(&ours(), "ADD", "a2", &c2, &conf).expect_success();
    assert_eq!(
        r1["ips"][0],
        json!({"interface": 2, "address": "10.40.0.2/24", "gateway": "10.40.0.1"})
    );
    assert_eq!(r2["ips"][0]["address"], "10.40.0.3/24");
    assert_eq!(
        r1["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.40.0.1"}])
    );
    assert!(sh(&["ip", "addr", "show", "br0"]).contains("inet 10.40.0.1/24"));
    assert!(sh(&["ip", "-n", "c1", "route"]).contains("default via 10.40.0.1 dev eth0"));
    assert_eq!(sh(&["cat", "/proc/sys/net/ipv4/ip_forward"]).trim(), "1");
    assert!(ping("c1", "10.40.0.3"), "c1 cannot reach c2");
    assert!(ping("c2", "10.40.0.1"), "c2 cannot reach the gateway");
    call(&ours(), "CHECK", "a1", &c1, &with_prev(&conf, &r1)).expect_success();
    call(&ours(), "DEL", "a1", &c1, &with_prev(&conf, &r1)).expect_success();
    assert!(!ping("c2", "10.40.0.2"));
    assert!(!links_in("c1").contains(&"eth0".to_string()));
}

#[test]
fn ipv6_and_dual_stack() {
    let Some(sb) = Sandbox::new("dual_stack") else {
        return;
    };
    let (c1, c2) = (sb.netns("c1"), sb.netns("c2"));
    let mut conf = l3("br6", "10.41.0.0/24", &sb.scratch);
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.41.0.0/24"}], [{"subnet": "fd00:41::/64"}]]);
    let r1 = call(&ours(), "ADD", "d1", &c1, &conf).expect_success();
    call(&ours(), "ADD", "d2", &c2, &conf).expect_success();
    assert_eq!(r1["ips"][1]["address"], "fd00:41::2/64");
    assert_eq!(
        r1["routes"],
        json!([{"dst": "0.0.0.0/0", "gw": "10.41.0.1"}, {"dst": "::/0", "gw": "fd00:41::1"}])
    );
    assert!(sh(&["ip", "-n", "c1", "-6", "route"]).contains("default via fd00:41::1 dev eth0"));
    assert!(sh(&["ip", "addr", "show", "br6"]).contains("inet6 fd00:41::1/64"));
    assert!(ping("c1", "fd00:41::3"), "c1 cannot reach c2 over IPv6");
    assert!(ping("c1", "10.41.0.3"), "c1 cannot reach c2 over IPv4");
}

#[test]
fn masquerade_rules_in_both_backends_are_removed_by_del() {
    let Some(sb) = Sandbox::new("masq") else {
        return;
    };
    let c1 = sb.netns("c1");
    for backend in ["nftables", "iptables"] {
        let mut conf = l3("brm", "10.42.0.0/24", &sb.scratch);
        conf["ipMasq"] = json!(true);
        conf["ipMasqBackend"] = json!(backend);
        let r = call(&ours(), "ADD", "m1", &c1, &conf).expect_success();
        let address = r["ips"][0]["address"]
            .as_str()
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_string();
        if backend == "nftables" {
            let rules = nft_ruleset();
            assert!(
                rules.contains(&format!(
                    "ip saddr {address} ip daddr != 10.42.0.0/24 masquerade"
                )),
                "{rules}"
            );
            assert!(rules.contains("net: l3net, if: eth0, id: m1"), "{rules}");
        } else {
            let rules = sh(&["iptables", "-t", "nat", "-S"]);
            assert!(
                rules.contains(&format!("-A POSTROUTING -s {address}/32"))
                    && rules.contains("MASQUERADE"),
                "{rules}"
            );
        }
        // The netns goes first, as when a pod is force-deleted: DEL still cleans up.
        sh(&["ip", "netns", "del", "c1"]);
        call(&ours(), "DEL", "m1", &c1, &conf).expect_success();
        assert!(!nft_ruleset().contains("id: m1"));
        assert!(!sh(&["iptables", "-t", "nat", "-S"]).contains("MASQUERADE"));
        sb.netns("c1");
    }
}

/// Two interfaces of one container on one network share Go's iptables chain (its
/// name hashes network and container ID only): DEL of one leaves the other's jump
/// and the chain, and CHECK of the other still passes; DEL of the last removes all.
#[test]
fn del_of_one_interface_keeps_the_iptables_masquerade_of_another() {
    let Some(sb) = Sandbox::new("masq_shared") else {
        return;
    };
    let c1 = sb.netns("c1");
    let mut conf = l3("brms", "10.43.0.0/24", &sb.scratch);
    conf["ipMasq"] = json!(true);
    conf["ipMasqBackend"] = json!("iptables");
    let nat = || sh(&["iptables", "-t", "nat", "-S"]);
    let start = nat();
    let attach = |command: &str, ifname: &str, conf: &Value| {
        Call::attach(command, "m2", &c1, ifname)
            .config(conf)
            .run(&ours())
    };
    let r0 = attach("ADD", "eth0", &conf).expect_success();
    let r1 = attach("ADD", "eth1", &conf).expect_success();
    let source = |r: &Value| {
        let address = r["ips"][0]["address"].as_str().unwrap();
        format!(
            "-A POSTROUTING -s {}/32",
            address.split('/').next().unwrap()
        )
    };
    attach("DEL", "eth1", &with_prev(&conf, &r1)).expect_success();
    let after = nat();
    assert!(!after.contains(&source(&r1)), "eth1's jump stays: {after}");
    assert!(after.contains(&source(&r0)), "eth0's jump went: {after}");
    assert!(
        after.contains("-j MASQUERADE"),
        "the chain was emptied: {after}"
    );
    attach("CHECK", "eth0", &with_prev(&conf, &r0)).expect_success();
    attach("DEL", "eth0", &with_prev(&conf, &r0)).expect_success();
    assert_eq!(
        nat(),
        start,
        "DEL of the last interface leaves the nat table as it was"
    );
}

/// Keys as Go's JSON decoder matches them: `"IsGateway"` and `"HairpinMode"` work
/// (they did with the Go plugin and were silently ignored by ours), and of two
/// spellings of one key the later wins.
#[test]
fn keys_in_another_letter_case_work_as_with_go() {
    let Some(sb) = Sandbox::new("key_case") else {
        return;
    };
    let c1 = sb.netns("c1");
    let conf = json!({"cniVersion": "1.0.0", "Name": "l3net", "Type": "bridge", "Bridge": "brcase",
        "IsGateway": true, "HairpinMode": true, "hairpinmode": false, "HAIRPINMODE": true,
        "IPAM": {"Type": "host-local", "Ranges": [[{"Subnet": "10.41.0.0/24"}]], "DataDir": sb.scratch}});
    let r = call(&ours(), "ADD", "k1", &c1, &conf).expect_success();
    assert_eq!(r["ips"][0]["gateway"], "10.41.0.1");
    let bridge = sh(&["ip", "-br", "addr", "show", "brcase"]);
    assert!(
        bridge.contains("10.41.0.1/24"),
        "the bridge is the gateway: {bridge}"
    );
    let port = r["interfaces"][1]["name"].as_str().unwrap();
    let details: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "link", "show", port])).unwrap();
    assert_eq!(details[0]["linkinfo"]["info_slave_data"]["hairpin"], true);
    call(&ours(), "DEL", "k1", &c1, &with_prev(&conf, &r)).expect_success();
}

#[test]
fn hairpin_and_port_isolation() {
    let Some(sb) = Sandbox::new("isolation") else {
        return;
    };
    let (c1, c2, c3) = (sb.netns("c1"), sb.netns("c2"), sb.netns("c3"));
    let mut isolated = l3("bri", "10.43.0.0/24", &sb.scratch);
    isolated["portIsolation"] = json!(true);
    isolated["hairpinMode"] = json!(true);
    let r1 = call(&ours(), "ADD", "i1", &c1, &isolated).expect_success();
    call(&ours(), "ADD", "i2", &c2, &isolated).expect_success();
    let mut open = isolated.clone();
    open["portIsolation"] = json!(false);
    call(&ours(), "ADD", "i3", &c3, &open).expect_success();
    let port = r1["interfaces"][1]["name"].as_str().unwrap();
    let details: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "link", "show", port])).unwrap();
    assert_eq!(details[0]["linkinfo"]["info_slave_data"]["hairpin"], true);
    assert_eq!(details[0]["linkinfo"]["info_slave_data"]["isolated"], true);
    assert!(
        !ping("c1", "10.43.0.3"),
        "two isolated ports reached each other"
    );
    assert!(
        ping("c1", "10.43.0.4"),
        "an isolated port cannot reach a normal one"
    );
    call(&ours(), "CHECK", "i1", &c1, &with_prev(&isolated, &r1)).expect_success();
    call(&ours(), "CHECK", "i1", &c1, &with_prev(&open, &r1)).error(999);
}

#[test]
fn macspoofchk_drops_a_forged_source_mac_and_passes_the_real_one() {
    let Some(sb) = Sandbox::new("spoof") else {
        return;
    };
    let (c1, c2) = (sb.netns("c1"), sb.netns("c2"));
    let mut conf = l3("brs", "10.44.0.0/24", &sb.scratch);
    conf["macspoofchk"] = json!(true);
    let r1 = call(&ours(), "ADD", "s1", &c1, &conf).expect_success();
    call(&ours(), "ADD", "s2", &c2, &conf).expect_success();
    assert!(ping("c1", "10.44.0.3"), "the real MAC must pass");
    sh(&[
        "ip",
        "-n",
        "c1",
        "link",
        "set",
        "eth0",
        "address",
        "02:66:66:66:66:66",
    ]);
    sh(&["ip", "-n", "c2", "neigh", "flush", "all"]);
    assert!(
        !ping("c1", "10.44.0.3"),
        "a forged source MAC must be dropped"
    );
    let e = call(&ours(), "CHECK", "s1", &c1, &with_prev(&conf, &r1)).error(999);
    assert!(e.contains("MAC"), "{e}");
    let real = r1["interfaces"][2]["mac"].as_str().unwrap();
    sh(&["ip", "-n", "c1", "link", "set", "eth0", "address", real]);
    sh(&["ip", "-n", "c2", "neigh", "flush", "all"]);
    assert!(ping("c1", "10.44.0.3"), "the real MAC passes again");
}

#[test]
fn every_del_path_succeeds_and_cleans_host_state() {
    let Some(sb) = Sandbox::new("del_paths") else {
        return;
    };
    let c1 = sb.netns("c1");
    let mut conf = l3("brd", "10.45.0.0/24", &sb.scratch);
    conf["macspoofchk"] = json!(true);
    // Netns deleted before DEL: rules and the allocation still go.
    call(&ours(), "ADD", "x1", &c1, &conf).expect_success();
    sh(&["ip", "netns", "del", "c1"]);
    call(&ours(), "DEL", "x1", &c1, &conf).expect_success();
    assert!(!nft_ruleset().contains("cni-br-iface-x1"));
    // Empty CNI_NETNS, no prevResult, twice: it succeeds, but the rules still filter
    // c1's live eth0, which nothing ties to this request, so they stay; the DEL that
    // names the netns removes them.
    let c1 = sb.netns("c1");
    call(&ours(), "ADD", "x2", &c1, &conf).expect_success();
    for _ in 0..2 {
        Call::attach("DEL", "x2", "", "eth0")
            .unset("CNI_NETNS")
            .config(&conf)
            .run(&ours())
            .expect_success();
    }
    assert!(nft_ruleset().contains("cni-br-iface-x2"));
    call(&ours(), "DEL", "x2", &c1, &conf).expect_success();
    assert!(!nft_ruleset().contains("cni-br-iface-x2"));
    // Interface already gone.
    let c3 = sb.netns("c3");
    call(&ours(), "ADD", "x3", &c3, &conf).expect_success();
    sh(&["ip", "-n", "c3", "link", "del", "eth0"]);
    call(&ours(), "DEL", "x3", &c3, &conf).expect_success();
    let left: Vec<_> = testkit::Sandbox::files(&sb.scratch.join("l3net"))
        .into_keys()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("10."))
        .collect();
    assert!(left.is_empty(), "allocations left: {left:?}");
    assert_eq!(
        host_links()
            .iter()
            .filter(|l| l.starts_with("veth"))
            .count(),
        0
    );
}

#[test]
fn a_failed_add_leaves_nothing_behind() {
    let Some(sb) = Sandbox::new("rollback") else {
        return;
    };
    let c1 = sb.netns("c1");
    // A /30 has one address: the second ADD fails in IPAM after the veth and rules exist.
    let mut conf = l3("brr", "10.46.0.0/30", &sb.scratch);
    conf["macspoofchk"] = json!(true);
    conf["ipMasq"] = json!(true);
    call(&ours(), "ADD", "r1", &c1, &conf).expect_success();
    let c2 = sb.netns("c2");
    let before = sb.snapshot();
    call(&ours(), "ADD", "r2", &c2, &conf).error(11);
    assert_eq!(sb.snapshot(), before);
    // A layer-2 result cannot be printed as 0.2.0: also undone.
    let l2 = json!({"cniVersion": "0.2.0", "name": "l2", "type": "bridge", "bridge": "brr2", "macspoofchk": true});
    let before = sb.snapshot();
    let msg = Call::attach("ADD", "r3", &c2, "eth0")
        .config(&l2)
        .run(&ours())
        .error(1);
    assert!(msg.contains("no valid IP addresses"), "{msg}");
    assert_eq!(sb.snapshot(), before);
    // VLANs on a kernel without bridge VLAN filtering: a clear error, nothing left.
    let vlan = json!({"cniVersion": "0.3.1", "name": "v", "type": "bridge", "bridge": "brv", "vlan": 100, "macspoofchk": true});
    let out = Call::attach("ADD", "r4", &c2, "eth0")
        .config(&vlan)
        .run(&ours());
    if out.code == 1 {
        let msg = out.error(999);
        assert!(msg.contains("VLAN filtering"), "{msg}");
        assert_eq!(sb.snapshot(), before);
    }
    // An interface name that already exists in the container.
    sh(&[
        "ip", "-n", "c2", "link", "add", "eth0", "type", "veth", "peer", "name", "other",
    ]);
    let before = sb.snapshot();
    let msg = call(&ours(), "ADD", "r5", &c2, &conf).error(999);
    assert!(msg.contains("already exists"), "{msg}");
    assert_eq!(sb.snapshot(), before);
}

#[test]
fn gc_removes_the_rules_of_attachments_that_are_gone() {
    let Some(sb) = Sandbox::new("gc") else { return };
    let (c1, c2) = (sb.netns("c1"), sb.netns("c2"));
    let mut conf = l3("brg", "10.47.0.0/24", &sb.scratch);
    conf["cniVersion"] = json!("1.1.0");
    conf["macspoofchk"] = json!(true);
    conf["ipMasq"] = json!(true);
    conf["ipMasqBackend"] = json!("nftables");
    call(&ours(), "ADD", "keep", &c1, &conf).expect_success();
    call(&ours(), "ADD", "leak", &c2, &conf).expect_success();
    sh(&["ip", "netns", "del", "c2"]);
    // The kernel destroys a netns, and its veths, asynchronously: GC sees the pod
    // gone once its host veth is.
    wait_for_veths(1);
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    Call::new("GC")
        .env("CNI_PATH", &testkit::bin_dir().display().to_string())
        .config(&gc)
        .run(&ours())
        .expect_success();
    let rules = nft_ruleset();
    assert!(
        rules.contains("cni-br-iface-keep-eth0") && rules.contains("id: keep"),
        "{rules}"
    );
    assert!(
        !rules.contains("cni-br-iface-leak-eth0") && !rules.contains("id: leak"),
        "{rules}"
    );
    // The address files (host-local's index beside them is its own business).
    let files: Vec<_> = testkit::Sandbox::files(&sb.scratch.join("l3net"))
        .into_keys()
        .filter(|p| !p.to_string_lossy().contains("/.index/"))
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("10."))
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
}

#[test]
fn fifty_parallel_adds_on_one_new_bridge() {
    let Some(sb) = Sandbox::new("parallel") else {
        return;
    };
    let conf = {
        let mut c = l3("brp", "10.48.0.0/24", &sb.scratch);
        c["macspoofchk"] = json!(true);
        c
    };
    let namespaces: Vec<String> = (0..50).map(|i| sb.netns(&format!("p{i}"))).collect();
    let handles: Vec<_> = namespaces
        .into_iter()
        .enumerate()
        .map(|(i, ns)| {
            let conf = conf.clone();
            std::thread::spawn(move || call(&ours(), "ADD", &format!("p{i}"), &ns, &conf))
        })
        .collect();
    let mut addresses = std::collections::BTreeSet::new();
    for h in handles {
        let r = h.join().unwrap().expect_success();
        addresses.insert(r["ips"][0]["address"].as_str().unwrap().to_string());
    }
    assert_eq!(addresses.len(), 50);
    assert_eq!(nft_ruleset().matches("iifname \"veth").count(), 50);
}

#[test]
fn interop_go_host_local_as_ipam_and_spoofcheck_cleanup_both_ways() {
    let Some(sb) = Sandbox::new("interop") else {
        return;
    };
    let Some(go_bridge) = go_plugin(
        "interop_go_host_local_as_ipam_and_spoofcheck_cleanup_both_ways",
        "bridge",
    ) else {
        return;
    };
    let c1 = sb.netns("c1");
    // Our bridge with the Go host-local.
    let mut conf = l3("bro", "10.49.0.0/24", &sb.scratch);
    conf["macspoofchk"] = json!(true);
    let r = Call::attach("ADD", "g1", &c1, "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .config(&conf)
        .run(&ours())
        .expect_success();
    assert_eq!(r["ips"][0]["address"], "10.49.0.2/24");
    Call::attach("DEL", "g1", &c1, "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .config(&conf)
        .run(&ours())
        .expect_success();
    assert!(!sb.scratch.join("l3net/10.49.0.2").exists());
    // macspoofchk made by the Go bridge, removed by our DEL, and the other way round.
    let l2 = json!({"cniVersion": "0.3.1", "name": "l2", "type": "bridge", "bridge": "brx", "macspoofchk": true});
    Call::attach("ADD", "go1", &c1, "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .config(&l2)
        .run(&go_bridge)
        .expect_success();
    assert!(nft_ruleset().contains("macspoofchk-go1-eth0"));
    Call::attach("DEL", "go1", &c1, "eth0")
        .config(&l2)
        .run(&ours())
        .expect_success();
    assert!(!nft_ruleset().contains("go1"), "{}", nft_ruleset());
    Call::attach("ADD", "rs1", &c1, "eth0")
        .config(&l2)
        .run(&ours())
        .expect_success();
    Call::attach("DEL", "rs1", &c1, "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .config(&l2)
        .run(&go_bridge)
        .expect_success();
    assert!(!nft_ruleset().contains("rs1"), "{}", nft_ruleset());
}

/// Our bridge followed by the Go `tuning` and `portmap` plugins, each fed the
/// previous result as a runtime chains them.
#[test]
fn chained_with_go_tuning_and_portmap() {
    let Some(sb) = Sandbox::new("chain") else {
        return;
    };
    let Some(tuning) = go_plugin("chained_with_go_tuning_and_portmap", "tuning") else {
        return;
    };
    let Some(portmap) = go_plugin("chained_with_go_tuning_and_portmap", "portmap") else {
        return;
    };
    let c1 = sb.netns("c1");
    let conf = l3("brc", "10.50.0.0/24", &sb.scratch);
    let r = call(&ours(), "ADD", "ch1", &c1, &conf).expect_success();
    let tune = json!({"cniVersion": "1.0.0", "name": "l3net", "type": "tuning", "mtu": 1400, "prevResult": r});
    let r = Call::attach("ADD", "ch1", &c1, "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .config(&tune)
        .run(&tuning)
        .expect_success();
    assert!(sh(&["ip", "-n", "c1", "link", "show", "eth0"]).contains("mtu 1400"));
    let pm = json!({"cniVersion": "1.0.0", "name": "l3net", "type": "portmap", "backend": "nftables",
                    "capabilities": {"portMappings": true},
                    "runtimeConfig": {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}]},
                    "prevResult": r});
    let r = Call::attach("ADD", "ch1", &c1, "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .config(&pm)
        .run(&portmap)
        .expect_success();
    assert_eq!(r["ips"][0]["address"], "10.50.0.2/24");
    for (bin, c) in [(&portmap, &pm), (&tuning, &tune)] {
        Call::attach("DEL", "ch1", &c1, "eth0")
            .env("CNI_PATH", "/usr/lib/cni")
            .config(&with_prev(c, &r))
            .run(bin)
            .expect_success();
    }
    call(&ours(), "CHECK", "ch1", &c1, &with_prev(&conf, &r)).expect_success();
    call(&ours(), "DEL", "ch1", &c1, &with_prev(&conf, &r)).expect_success();
}

/// `nft list ruleset` with the host veth names replaced, so that two attachments of
/// the same request can be compared.
fn ruleset_without_veth_names() -> String {
    let text = nft_ruleset();
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(at) = rest.find("\"veth") {
        out.push_str(&rest[..at]);
        let end = rest[at + 1..].find('"').map_or(rest.len(), |e| at + 2 + e);
        out.push_str("\"VETH\"");
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

/// The nftables state of macspoofchk is, as `nft` prints it, the Go bridge's: the
/// same request through Debian's Go bridge and through ours leaves the same text.
/// And the nftables masquerade rules print exactly as `nft` prints the same rules
/// written from their text (Debian's Go bridge predates the nftables backend).
#[test]
fn nftables_state_prints_as_the_go_plugin_and_nft_write_it() {
    let test = "nftables_state_prints_as_the_go_plugin_and_nft_write_it";
    let Some(sb) = Sandbox::new(test) else {
        return;
    };
    let Some(go_bridge) = go_plugin(test, "bridge") else {
        return;
    };
    let c1 = sb.netns("c1");
    let l2 = json!({"cniVersion": "0.4.0", "name": "l2", "type": "bridge", "bridge": "brt", "macspoofchk": true});
    let add = |bin: &Path| {
        Call::attach("ADD", "same", &c1, "net1")
            .env("CNI_ARGS", "IgnoreUnknown=1;MAC=02:00:00:00:00:42")
            .config(&l2)
            .run(bin)
            .expect_success()
    };
    let del = |bin: &Path, prev: &Value| {
        Call::attach("DEL", "same", &c1, "net1")
            .config(&with_prev(&l2, prev))
            .run(bin)
            .expect_success()
    };
    let go_result = add(&go_bridge);
    let go_text = ruleset_without_veth_names();
    del(&go_bridge, &go_result);
    let our_result = add(&ours());
    let our_text = ruleset_without_veth_names();
    assert!(
        our_text.contains("ether saddr 02:00:00:00:00:42 return"),
        "{our_text}"
    );
    assert_eq!(our_text, go_text);
    del(&ours(), &our_result);

    // Masquerade: ours over netlink, then the same rules through nft's parser.
    let mut conf = l3("brm", "10.48.0.0/24", &sb.scratch);
    conf["ipMasq"] = json!(true);
    conf["ipMasqBackend"] = json!("nftables");
    call(&ours(), "ADD", "m1", &c1, &conf).expect_success();
    let ours_text = nft_ruleset();
    let comment = ours_text
        .lines()
        .filter_map(|l| l.split("comment \"").nth(1))
        .find(|c| c.contains("id: m1"))
        .map(|c| c.trim_end_matches('"').to_string())
        .unwrap_or_else(|| panic!("no masquerade rule: {ours_text}"));
    let reference = format!(
        "add table inet cni_plugins_masquerade {{ comment \"Masquerading for plugins from github.com/containernetworking/plugins\"; }}\n\
         add chain inet cni_plugins_masquerade masq_checks {{ comment \"Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet\"; }}\n\
         add chain inet cni_plugins_masquerade postrouting {{ type nat hook postrouting priority 100; policy accept; }}\n\
         add rule inet cni_plugins_masquerade postrouting ip daddr 224.0.0.0/4 return\n\
         add rule inet cni_plugins_masquerade postrouting ip6 daddr ff00::/8 return\n\
         add rule inet cni_plugins_masquerade postrouting goto masq_checks\n\
         add rule inet cni_plugins_masquerade masq_checks ip saddr 10.48.0.2 ip daddr != 10.48.0.0/24 masquerade comment \"{comment}\"\n"
    );
    call(&ours(), "DEL", "m1", &c1, &conf).expect_success();
    sh(&["nft", "delete", "table", "inet", "cni_plugins_masquerade"]);
    let file = sb.scratch.join("reference.nft");
    std::fs::write(&file, reference).unwrap();
    sh(&["nft", "-f", &file.display().to_string()]);
    assert_eq!(nft_ruleset(), ours_text);
}

/// macspoofchk and the nftables masquerade need no process: ADD, CHECK, GC and DEL
/// succeed with an empty `PATH`, and with a `PATH` whose only `nft`, `iptables` and
/// `ip6tables` record that they ran (and fail), nothing ran.
#[test]
fn macspoofchk_and_nftables_masquerade_spawn_no_process() {
    let Some(sb) = Sandbox::new("no_process") else {
        return;
    };
    let c1 = sb.netns("c1");
    let fake_bin = sb.scratch.join("fake-bin");
    std::fs::create_dir_all(&fake_bin).unwrap();
    let record = sb.scratch.join("spawned");
    for tool in ["nft", "iptables", "ip6tables", "bridge"] {
        let path = fake_bin.join(tool);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho {tool} \"$@\" >> {}\nexit 1\n",
                record.display()
            ),
        )
        .unwrap();
        sh(&["chmod", "+x", &path.display().to_string()]);
    }
    let mut conf = l3("brp", "10.46.0.0/24", &sb.scratch);
    conf["cniVersion"] = json!("1.1.0");
    conf["macspoofchk"] = json!(true);
    conf["ipspoofchk"] = json!(true);
    conf["ipMasq"] = json!(true);
    conf["ipMasqBackend"] = json!("nftables");
    for (cid, path) in [
        ("np", String::new()),
        ("nq", fake_bin.display().to_string()),
    ] {
        let run = |command: &str, conf: &Value| {
            plugin("host-local");
            Call::attach(command, cid, &c1, "eth0")
                .env("PATH", &path)
                .config(conf)
                .run(&ours())
                .expect_success()
        };
        let result = run("ADD", &conf);
        let rules = nft_ruleset();
        assert!(
            rules.contains(&format!("macspoofchk-{cid}-eth0"))
                && rules.contains(&format!("ipspoofchk-{cid}-eth0"))
                && rules.contains(&format!("id: {cid}")),
            "PATH={path:?}: {rules}"
        );
        run("CHECK", &with_prev(&conf, &result));
        let mut gc = conf.clone();
        gc["cni.dev/valid-attachments"] = json!([{"containerID": cid, "ifname": "eth0"}]);
        Call::new("GC")
            .env("PATH", &path)
            .env("CNI_PATH", &testkit::bin_dir().display().to_string())
            .config(&gc)
            .run(&ours())
            .expect_success();
        run("DEL", &with_prev(&conf, &result));
        let rules = nft_ruleset();
        assert!(
            !rules.contains(&format!("{cid}-eth0")) && !rules.contains(&format!("id: {cid}")),
            "PATH={path:?}: {rules}"
        );
    }
    assert!(
        !record.exists(),
        "a plugin ran: {}",
        std::fs::read_to_string(&record).unwrap_or_default()
    );
}

/// The nf_tables changes `nft monitor` reports while `action` runs, as it prints
/// them (`create chain ...`, `add rule ...`, `delete rule ...`). `until` is a piece of
/// the last change expected, so that no event is missed.
fn nft_changes_during(sb: &Sandbox, until: &str, action: impl FnOnce()) -> Vec<String> {
    /// Stops the monitor however the test ends.
    struct Monitor(std::process::Child);
    impl Drop for Monitor {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let events = sb.scratch.join("nft-events");
    let monitor = Monitor(
        std::process::Command::new("nft")
            .arg("monitor")
            .stdout(std::fs::File::create(&events).unwrap())
            .spawn()
            .expect("nft runs"),
    );
    let read = || std::fs::read_to_string(&events).unwrap_or_default();
    let ready = "add table inet monitor-ready-";
    // The monitor is listening once it reports a change made after its start: a new
    // table each time, since re-adding one that exists is no change.
    let mut probe = 0;
    while !read().contains(ready) {
        assert!(probe < 100, "nft monitor reports nothing: {}", read());
        sh(&[
            "nft",
            "add",
            "table",
            "inet",
            &format!("monitor-ready-{probe}"),
        ]);
        probe += 1;
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    action();
    for _ in 0..250 {
        if read().contains(until) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    drop(monitor);
    let text = read();
    assert!(
        text.contains(until),
        "nft monitor never printed {until:?}: {text}"
    );
    let changes: Vec<String> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect();
    let after_probes = changes.iter().rposition(|l| l.starts_with(ready)).unwrap() + 1;
    changes[after_probes..].to_vec()
}

/// Once the table and its base chain exist, a macspoofchk ADD only creates: its two
/// chains (`create`: they must be new) and four rules. Go re-adds the table and base
/// chain on every ADD, and the kernel records that `add` of an existing chain as an
/// update, which (like a deleted rule) is freed only after an RCU grace period that
/// the plugin then waits for when it closes its socket; `nft monitor` shows such an
/// update as an `add chain` event.
#[test]
fn a_macspoofchk_add_after_the_first_only_creates() {
    let Some(sb) = Sandbox::new("only_creates") else {
        return;
    };
    let (c1, c2) = (sb.netns("c1"), sb.netns("c2"));
    let conf = json!({"cniVersion": "1.0.0", "name": "l2", "type": "bridge", "bridge": "brm", "macspoofchk": true});
    call(&ours(), "ADD", "first", &c1, &conf).expect_success();
    let changes = nft_changes_during(&sb, "drop comment \"macspoofchk-second-eth0\"", || {
        call(&ours(), "ADD", "second", &c2, &conf).expect_success();
    });
    assert_eq!(changes.len(), 6, "{changes:#?}");
    for change in &changes {
        assert!(
            (change.starts_with("create chain bridge nat cni-br-iface-second-eth0")
                || change.starts_with("add rule bridge nat "))
                && change.contains("second-eth0"),
            "the second ADD changed more than its own objects: {change:?} in {changes:#?}"
        );
    }
}

/// The same for the nftables masquerade: once its table and chains are in place, an
/// ADD adds its own rules to masq_checks and touches nothing else (Go refills
/// `postrouting` on every ADD).
#[test]
fn a_masquerade_add_after_the_first_only_adds_its_rules() {
    let Some(sb) = Sandbox::new("masq_only_adds") else {
        return;
    };
    let (c1, c2) = (sb.netns("c1"), sb.netns("c2"));
    let mut conf = l3("brq", "10.47.0.0/24", &sb.scratch);
    conf["ipMasq"] = json!(true);
    conf["ipMasqBackend"] = json!("nftables");
    call(&ours(), "ADD", "first", &c1, &conf).expect_success();
    let changes = nft_changes_during(&sb, "id: second", || {
        call(&ours(), "ADD", "second", &c2, &conf).expect_success();
    });
    assert_eq!(changes.len(), 1, "{changes:#?}");
    assert!(
        changes[0]
            .starts_with("add rule inet cni_plugins_masquerade masq_checks ip saddr 10.47.0.")
            && changes[0].contains("masquerade comment"),
        "{changes:#?}"
    );
    // And the ruleset is still the one both plugins write.
    let rules = nft_ruleset();
    assert_eq!(rules.matches("goto masq_checks").count(), 1, "{rules}");
    assert_eq!(rules.matches("masquerade comment").count(), 2, "{rules}");
}

/// ADD skips re-adding PREROUTING only when it is the base chain both plugins make.
/// A PREROUTING of another kind (another priority, or a regular chain, which would
/// never see a frame) makes ADD send `add chain` as Go does, and the kernel refuses
/// both plugins alike; ours then leaves nothing behind.
#[test]
fn a_prerouting_of_another_kind_fails_add_as_with_go() {
    let Some(sb) = Sandbox::new("other_prerouting") else {
        return;
    };
    let Some(go) = go_plugin(
        "a_prerouting_of_another_kind_fails_add_as_with_go",
        "bridge",
    ) else {
        return;
    };
    let c1 = sb.netns("c1");
    let conf = json!({"cniVersion": "1.0.0", "name": "l2", "type": "bridge", "bridge": "brk", "macspoofchk": true});
    for prerouting in [
        "{ type filter hook prerouting priority -200; policy accept; }",
        "",
    ] {
        sh(&["nft", "flush", "ruleset"]);
        sh(&["nft", "add", "table", "bridge", "nat"]);
        sh(&[
            "nft",
            &format!("add chain bridge nat PREROUTING {prerouting}"),
        ]);
        let before = nft_ruleset();
        for (cid, bin) in [("go", &go), ("ours", &ours())] {
            let add = call(bin, "ADD", cid, &c1, &conf);
            assert_ne!(
                add.code, 0,
                "{cid} ADD on PREROUTING {prerouting:?}: {add:?}"
            );
            call(bin, "DEL", cid, &c1, &conf).expect_success();
        }
        assert_eq!(nft_ruleset(), before, "PREROUTING {prerouting:?}");
        assert_eq!(links_in("c1"), ["lo"], "PREROUTING {prerouting:?}");
    }
}
