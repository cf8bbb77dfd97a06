//! CHECK against state taken away behind the plugin's back: each part of an
//! attachment that protects the node or the pod (the macspoofchk rules, the host
//! port's flags, the IPAM allocation) is removed in turn, and CHECK must fail naming
//! it, and change nothing. docs/security.md lists what each test proves.

use std::path::Path;

use serde_json::{json, Value};
use testkit::{
    check_failure, each_undone_fails_check, plugin, require_kernel, sh, with_prev, Call, Change,
    KernelFeature, Output, Sandbox,
};

fn run(command: &str, cid: &str, netns: &str, conf: &Value) -> Output {
    Call::attach(command, cid, netns, "eth0")
        .config(conf)
        .run(&plugin(conf["type"].as_str().unwrap()))
}

/// The test's namespaces and its pod's netns.
fn sandbox_with_pod(test: &str) -> Option<(Sandbox, String)> {
    let sb = Sandbox::new(test)?;
    let pod = sb.netns("pod");
    Some((sb, pod))
}

fn ruleset() -> String {
    sh(&["nft", "-a", "list", "ruleset"])
}

/// The handle of the rule of bridge nat `chain` whose listing contains `text`.
fn handle_of(chain: &str, text: &str) -> String {
    let listing = sh(&["nft", "-a", "list", "chain", "bridge", "nat", chain]);
    listing
        .lines()
        .find(|l| l.contains(text) && l.contains("# handle"))
        .and_then(|l| l.rsplit("# handle ").next())
        .unwrap_or_else(|| panic!("no rule with {text:?} in {chain}:\n{listing}"))
        .trim()
        .to_string()
}

fn delete_rule(chain: &str, text: &str) {
    let handle = handle_of(chain, text);
    sh(&[
        "nft", "delete", "rule", "bridge", "nat", chain, "handle", &handle,
    ]);
}

fn port_flag(port: &str, flag: &str, on: bool) {
    let state = if on { "on" } else { "off" };
    sh(&[
        "ip",
        "link",
        "set",
        "dev",
        port,
        "type",
        "bridge_slave",
        flag,
        state,
    ]);
}

fn l3(network: &str, bridge: &str, subnet: &str, data_dir: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": network, "type": "bridge", "bridge": bridge,
           "macspoofchk": true, "hairpinMode": true, "portIsolation": true,
           "ipam": {"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": data_dir}})
}

/// Bridge CHECK proves the whole macspoofchk set of the port (the PREROUTING jump
/// naming the host veth, the chain, its jump into `-mac`, the MAC rule, the drop,
/// and no PREROUTING rule before the jump that lets the port's frames skip it) and
/// the port's hairpin and isolation flags: each taken away in turn, CHECK fails
/// naming it, and leaves the ruleset as it found it.
#[test]
fn bridge_check_fails_when_any_part_of_the_port_protection_is_gone() {
    let Some((sb, pod)) = sandbox_with_pod("chk_spoof") else {
        return;
    };
    let conf = l3("chk", "chkbr0", "10.133.0.0/24", &sb.scratch);
    let iface = "cni-br-iface-cid-eth0";
    let mac = "cni-br-iface-cid-eth0-mac";
    type Breaker = fn(&str);
    let cases: [(&str, Breaker, &str); 14] = [
        (
            "the PREROUTING jump",
            |veth| delete_rule("PREROUTING", &format!("iifname \"{veth}\"")),
            "PREROUTING rule that jumps to cni-br-iface-cid-eth0",
        ),
        (
            "the jump into -mac",
            |_| delete_rule("cni-br-iface-cid-eth0", "jump"),
            "rule of cni-br-iface-cid-eth0 that jumps to cni-br-iface-cid-eth0-mac",
        ),
        (
            "the MAC rule",
            |_| delete_rule("cni-br-iface-cid-eth0-mac", "ether saddr"),
            "that lets",
        ),
        (
            "the drop",
            |_| delete_rule("cni-br-iface-cid-eth0-mac", "drop"),
            "drop rule",
        ),
        (
            "the -mac chain's content, replaced by an accept",
            |_| {
                sh(&["nft", "flush chain bridge nat cni-br-iface-cid-eth0-mac"]);
                sh(&[
                    "nft",
                    "add rule bridge nat cni-br-iface-cid-eth0-mac accept",
                ]);
            },
            "that lets",
        ),
        (
            "the chains",
            |veth| {
                delete_rule("PREROUTING", &format!("iifname \"{veth}\""));
                sh(&["nft", "delete chain bridge nat cni-br-iface-cid-eth0"]);
                sh(&["nft", "delete chain bridge nat cni-br-iface-cid-eth0-mac"]);
            },
            "chains cni-br-iface-cid-eth0 and cni-br-iface-cid-eth0-mac are missing",
        ),
        (
            "hairpin mode",
            |veth| port_flag(veth, "hairpin", false),
            "hairpin",
        ),
        (
            "port isolation",
            |veth| port_flag(veth, "isolated", false),
            "isolation",
        ),
        (
            "the filter, skipped by an accept for the port before the jump",
            |veth| {
                let rule = format!("insert rule bridge nat PREROUTING iifname \"{veth}\" accept");
                sh(&["nft", &rule]);
            },
            "comes before the jump",
        ),
        (
            "the filter, skipped by a jump into a chain that accepts",
            |_| {
                sh(&["nft", "add chain bridge nat admin-chk"]);
                sh(&["nft", "add rule bridge nat admin-chk accept"]);
                sh(&["nft", "insert rule bridge nat PREROUTING jump admin-chk"]);
            },
            "comes before the jump",
        ),
        (
            "the filter, skipped by an accept for a wildcard name",
            |_| {
                sh(&[
                    "nft",
                    "insert rule bridge nat PREROUTING iifname \"veth*\" accept",
                ]);
            },
            "comes before the jump",
        ),
        (
            "the filter, skipped by a verdict map",
            |veth| {
                let rule = format!(
                    "insert rule bridge nat PREROUTING iifname vmap {{ \"{veth}\" : accept }}"
                );
                sh(&["nft", &rule]);
            },
            "comes before the jump",
        ),
        (
            "the filter, skipped by a goto into the -mac chain",
            |veth| {
                let rule = format!(
                    "insert rule bridge nat PREROUTING iifname \"{veth}\" goto cni-br-iface-cid-eth0-mac"
                );
                sh(&["nft", &rule]);
            },
            "comes before the jump",
        ),
        (
            "the whole table, made dormant",
            |_| {
                sh(&["nft", "add table bridge nat { flags dormant; }"]);
            },
            "dormant",
        ),
    ];
    for (what, take_away, expected) in cases {
        let result = run("ADD", "cid", &pod, &conf).expect_success();
        let checked = with_prev(&conf, &result);
        run("CHECK", "cid", &pod, &checked).expect_success();
        let veth = result["interfaces"][1]["name"].as_str().unwrap();
        take_away(veth);
        let before = ruleset();
        let msg = check_failure(&run("CHECK", "cid", &pod, &checked));
        assert!(
            msg.contains(expected),
            "{what} gone: CHECK said {msg:?}, expected it to name {expected:?}"
        );
        assert!(
            msg.contains(veth) || msg.contains(iface) || msg.contains(mac),
            "{what}: {msg:?} names neither the port nor its chains"
        );
        assert_eq!(ruleset(), before, "{what}: CHECK changed the ruleset");
        run("DEL", "cid", &pod, &checked).expect_success();
        // What the case added to PREROUTING would come before the next one's jump.
        sh(&["nft", "delete table bridge nat"]);
    }
    assert!(!ruleset().contains("macspoofchk"), "{}", ruleset());
    // Rules that let nothing past are no alarm: one for another interface by its
    // exact name, a counter.
    let result = run("ADD", "cid", &pod, &conf).expect_success();
    let checked = with_prev(&conf, &result);
    sh(&[
        "nft",
        "insert rule bridge nat PREROUTING iifname \"other0\" accept",
    ]);
    sh(&["nft", "insert rule bridge nat PREROUTING counter"]);
    run("CHECK", "cid", &pod, &checked).expect_success();
    run("DEL", "cid", &pod, &checked).expect_success();
}

/// The files of host-local's network directory, but its index and lock (ours).
fn address_files(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && n != "lock")
        .map(|n| {
            let content = std::fs::read_to_string(dir.join(&n)).unwrap();
            (n, content)
        })
        .collect();
    files.sort();
    files
}

/// host-local CHECK proves that every prevResult address of its ranges is still
/// this container's and interface's: a dual-stack attachment whose IPv4 file was
/// released and handed to another container, or only released, fails CHECK naming
/// the address; the IPv6 one alone, likewise. CHECK writes nothing.
#[test]
fn host_local_check_fails_when_an_address_is_no_longer_the_containers() {
    let Some((sb, pod)) = sandbox_with_pod("chk_hostlocal") else {
        return;
    };
    let data = sb.scratch.join("data");
    let conf = json!({"cniVersion": "1.0.0", "name": "dual", "type": "bridge", "bridge": "chkbr1",
        "ipam": {"type": "host-local", "dataDir": data,
                 "ranges": [[{"subnet": "10.134.0.0/24"}], [{"subnet": "fd00:134::/64"}]]}});
    let dir = data.join("dual");
    let result = run("ADD", "first", &pod, &conf).expect_success();
    let checked = with_prev(&conf, &result);
    run("CHECK", "first", &pod, &checked).expect_success();
    assert!(dir.join("10.134.0.2").is_file() && dir.join("fd00:134::2").is_file());
    type Change = fn(&Path);
    let changes: [(&str, Change, &str); 3] = [
        (
            "IPv4 released and handed to another container",
            |dir| {
                std::fs::remove_file(dir.join("10.134.0.2")).unwrap();
                std::fs::write(dir.join("10.134.0.2"), "second\r\neth0").unwrap();
            },
            "10.134.0.2",
        ),
        (
            "IPv4 released",
            |dir| std::fs::remove_file(dir.join("10.134.0.2")).unwrap(),
            "10.134.0.2",
        ),
        (
            "IPv6 handed to another interface of the container",
            |dir| std::fs::write(dir.join("fd00:134::2"), "first\r\nnet1").unwrap(),
            "fd00:134::2",
        ),
    ];
    for (what, change, addr) in changes {
        let original = address_files(&dir);
        change(&dir);
        let before = address_files(&dir);
        let msg = check_failure(&run("CHECK", "first", &pod, &checked));
        assert!(
            msg.contains(addr) && msg.contains("first"),
            "{what}: CHECK said {msg:?}, expected it to name {addr} and the container"
        );
        assert_eq!(
            address_files(&dir),
            before,
            "{what}: CHECK changed the store"
        );
        for (name, content) in &original {
            std::fs::write(dir.join(name), content).unwrap();
        }
        run("CHECK", "first", &pod, &checked).expect_success();
    }
    run("DEL", "first", &pod, &checked).expect_success();
}

/// static CHECK proves its addresses are on the interface, when the netns holds it:
/// one removed from the link fails CHECK naming it, even though prevResult still
/// lists it.
#[test]
fn static_check_fails_when_an_address_is_gone_from_the_link() {
    let Some((_sb, pod)) = sandbox_with_pod("chk_static") else {
        return;
    };
    let conf = json!({"cniVersion": "1.0.0", "name": "st", "type": "bridge", "bridge": "chkbr2",
        "ipam": {"type": "static", "addresses": [{"address": "10.135.0.5/24"}, {"address": "fd00:135::5/64"}]}});
    let result = run("ADD", "cid", &pod, &conf).expect_success();
    let mut checked = with_prev(&conf, &result);
    let ipam_check = |conf: &Value| {
        Call::attach("CHECK", "cid", &pod, "eth0")
            .config(conf)
            .run(&plugin("static"))
    };
    // static is exec'd as the main plugin's IPAM would be: the whole config.
    checked["type"] = json!("static");
    ipam_check(&checked).expect_success();
    sh(&[
        "ip",
        "-n",
        "pod",
        "addr",
        "del",
        "10.135.0.5/24",
        "dev",
        "eth0",
    ]);
    let msg = check_failure(&ipam_check(&checked));
    assert!(msg.contains("10.135.0.5/24"), "{msg:?}");
    checked["type"] = json!("bridge");
    run("DEL", "cid", &pod, &checked).expect_success();
}

/// Bridge CHECK proves the nftables masquerade of the attachment: its rule in
/// `masq_checks` deleted, or `postrouting` emptied, CHECK fails naming it.
#[test]
fn bridge_check_fails_when_the_masquerade_is_gone() {
    let Some((sb, pod)) = sandbox_with_pod("chk_masq") else {
        return;
    };
    let mut conf = l3("chkm", "chkbr3", "10.137.0.0/24", &sb.scratch);
    conf["ipMasq"] = json!(true);
    conf["ipMasqBackend"] = json!("nftables");
    type Breaker = fn();
    let cases: [(&str, Breaker, &str); 2] = [
        (
            "the masq_checks rule",
            || {
                let listing = sh(&[
                    "nft",
                    "-a",
                    "list chain inet cni_plugins_masquerade masq_checks",
                ]);
                let handle = listing
                    .lines()
                    .find(|l| l.contains("10.137.0.2") && l.contains("# handle"))
                    .and_then(|l| l.rsplit("# handle ").next())
                    .unwrap_or_else(|| panic!("no masquerade rule:\n{listing}"))
                    .trim()
                    .to_string();
                sh(&[
                    "nft",
                    "delete",
                    "rule",
                    "inet",
                    "cni_plugins_masquerade",
                    "masq_checks",
                    "handle",
                    &handle,
                ]);
            },
            "masq_checks rule that masquerades 10.137.0.2",
        ),
        (
            "postrouting",
            || {
                sh(&["nft", "flush chain inet cni_plugins_masquerade postrouting"]);
            },
            "chain postrouting",
        ),
    ];
    for (what, take_away, expected) in cases {
        let result = run("ADD", "cid", &pod, &conf).expect_success();
        let checked = with_prev(&conf, &result);
        run("CHECK", "cid", &pod, &checked).expect_success();
        take_away();
        let before = ruleset();
        let msg = check_failure(&run("CHECK", "cid", &pod, &checked));
        assert!(
            msg.contains(expected),
            "{what} gone: CHECK said {msg:?}, expected it to name {expected:?}"
        );
        assert_eq!(ruleset(), before, "{what}: CHECK changed the ruleset");
        run("DEL", "cid", &pod, &checked).expect_success();
        // What the case added to PREROUTING would come before the next one's jump.
        sh(&["nft", "delete table bridge nat"]);
    }
}

/// The `iptables -t nat -S` lines (rules only) that contain `text`.
fn nat_rules_with(text: &str) -> Vec<String> {
    sh(&["iptables", "-t", "nat", "-S"])
        .lines()
        .filter(|l| l.starts_with("-A ") && l.contains(text))
        .map(str::to_owned)
        .collect()
}

/// Bridge CHECK proves the iptables masquerade of the attachment: each of Go's three
/// rules (the subnet's ACCEPT, the MASQUERADE, the POSTROUTING jump) deleted in
/// turn, or the chain emptied and deleted, CHECK fails naming it and leaves the nat
/// table as it found it.
#[test]
fn bridge_check_fails_when_the_iptables_masquerade_is_gone() {
    let Some((sb, pod)) = sandbox_with_pod("chk_masq_ipt") else {
        return;
    };
    let mut conf = l3("chki", "chkbr4", "10.138.0.0/24", &sb.scratch);
    conf["ipMasq"] = json!(true);
    conf["ipMasqBackend"] = json!("iptables");
    // Each rule is found by what only it holds (the jump by the source address,
    // which host-local moves on at each ADD); the line is deleted as iptables
    // printed it (`-A` becomes `-D`).
    let cases = [
        ("-j ACCEPT", "-j ACCEPT"),
        ("-j MASQUERADE", "-j MASQUERADE"),
        ("-A POSTROUTING", "POSTROUTING -s"),
        ("the chain", "chain nat CNI-"),
    ];
    for (what, expected) in cases {
        let result = run("ADD", "cid", &pod, &conf).expect_success();
        let checked = with_prev(&conf, &result);
        run("CHECK", "cid", &pod, &checked).expect_success();
        let ours = nat_rules_with("id: \\\"cid\\\"");
        assert_eq!(ours.len(), 3, "Go's three rules: {ours:?}");
        if what == "the chain" {
            let jump = ours
                .iter()
                .find(|l| l.starts_with("-A POSTROUTING"))
                .unwrap();
            let chain = jump.rsplit("-j ").next().unwrap().trim().to_string();
            for line in [
                jump.replacen("-A", "-D", 1),
                format!("-F {chain}"),
                format!("-X {chain}"),
            ] {
                sh(&["sh", "-c", &format!("iptables -w -t nat {line}")]);
            }
        } else {
            let line = ours.iter().find(|l| l.contains(what)).unwrap();
            sh(&[
                "sh",
                "-c",
                &format!("iptables -w -t nat {}", line.replacen("-A", "-D", 1)),
            ]);
        }
        let before = sh(&["iptables-save", "-t", "nat"]);
        let msg = check_failure(&run("CHECK", "cid", &pod, &checked));
        assert!(
            msg.contains(expected),
            "{what} gone: CHECK said {msg:?}, expected it to name {expected:?}"
        );
        let after = sh(&["iptables-save", "-t", "nat"]);
        let rules = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(
            rules(&after),
            rules(&before),
            "{what}: CHECK changed the nat table"
        );
        run("DEL", "cid", &pod, &checked).expect_success();
        assert!(
            nat_rules_with("id: \\\"cid\\\"").is_empty(),
            "DEL left rules"
        );
    }
}

/// Each change to the pod's `eth0` undone in turn: CHECK of attachment `cid` fails
/// naming it and leaves the pod's link, addresses and routes as it found them; put
/// back, CHECK passes again.
fn each_undone_fails_pod_check(pod: &str, checked: &Value, changes: &[Change]) {
    each_undone_fails_check(&|| run("CHECK", "cid", pod, checked), &pod_state, changes);
}

/// The pod's `eth0`, its addresses and its routes, to show that CHECK changed nothing.
/// Addresses in brief: the kernel's DAD clears the link-local's `tentative` flag
/// whenever it finishes.
fn pod_state() -> String {
    [
        sh(&["ip", "-n", "pod", "-d", "link", "show", "eth0"]),
        sh(&["ip", "-n", "pod", "-br", "addr", "show", "dev", "eth0"]),
        sh(&["ip", "-n", "pod", "-4", "route", "show"]),
        sh(&["ip", "-n", "pod", "-6", "route", "show"]),
    ]
    .join("\n")
}

/// tuning CHECK proves every setting ADD applied: each undone in turn (MTU, MAC,
/// promiscuity, all-multicast, queue length, a sysctl), CHECK fails naming it and
/// changes nothing; put back, it passes again.
#[test]
fn tuning_check_fails_when_any_setting_is_undone() {
    let Some((sb, pod)) = sandbox_with_pod("chk_tuning") else {
        return;
    };
    sh(&[
        "ip", "-n", "pod", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    sh(&["ip", "-n", "pod", "link", "set", "eth0", "up"]);
    let conf = json!({"cniVersion": "1.0.0", "name": "tn", "type": "tuning",
        "mtu": 1400, "mac": "02:00:00:00:7a:01", "promisc": true, "allmulti": true,
        "txQLen": 500, "sysctl": {"net.ipv4.conf.eth0.arp_notify": "1"},
        "dataDir": sb.scratch.join("tuning"),
        "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": pod}]}});
    let result = run("ADD", "cid", &pod, &conf).expect_success();
    let checked = with_prev(&conf, &result);
    run("CHECK", "cid", &pod, &checked).expect_success();
    let sysctl = |value: &str| {
        sh(&[
            "ip",
            "netns",
            "exec",
            "pod",
            "sysctl",
            "-qw",
            &format!("net.ipv4.conf.eth0.arp_notify={value}"),
        ]);
    };
    let link = |args: &[&str]| {
        let mut all = vec!["ip", "-n", "pod", "link", "set", "eth0"];
        all.extend(args);
        sh(&all);
    };
    // What CHECK names, the link setting undone, and put back.
    let link_settings = [
        ("MTU", ["mtu", "1500"], ["mtu", "1400"]),
        (
            "Ethernet",
            ["address", "02:00:00:00:7a:02"],
            ["address", "02:00:00:00:7a:01"],
        ),
        ("promisc", ["promisc", "off"], ["promisc", "on"]),
        (
            "all-multicast",
            ["allmulticast", "off"],
            ["allmulticast", "on"],
        ),
        (
            "transmit queue length",
            ["txqueuelen", "1000"],
            ["txqueuelen", "500"],
        ),
    ];
    let mut settings: Vec<Change> = link_settings
        .iter()
        .map(|(what, undo, redo)| -> Change {
            (what, Box::new(|| link(undo)), Box::new(|| link(redo)))
        })
        .collect();
    settings.push((
        "arp_notify",
        Box::new(|| sysctl("0")),
        Box::new(|| sysctl("1")),
    ));
    each_undone_fails_pod_check(&pod, &checked, &settings);
    run("DEL", "cid", &pod, &checked).expect_success();
}

/// macvlan CHECK proves the link's mode, MTU, MAC, addresses and routes: each
/// changed or taken away in turn, CHECK fails naming it and changes nothing.
#[test]
fn macvlan_check_fails_when_any_part_is_gone() {
    let Some((sb, pod)) = sandbox_with_pod("chk_macvlan") else {
        return;
    };
    testkit::veth_pair_up("chkup0", "chkup1");
    let conf = json!({"cniVersion": "1.0.0", "name": "mv", "type": "macvlan", "master": "chkup0",
        "mtu": 1400,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.136.0.0/24", "gateway": "10.136.0.1"}]],
                 "routes": [{"dst": "192.168.77.0/24"}], "dataDir": sb.scratch.join("ipam")}});
    let result = run("ADD", "cid", &pod, &conf).expect_success();
    let checked = with_prev(&conf, &result);
    run("CHECK", "cid", &pod, &checked).expect_success();
    let address = result["ips"][0]["address"].as_str().unwrap().to_string();
    let mac = result["interfaces"][0]["mac"].as_str().unwrap().to_string();
    let ip = |args: &[&str]| {
        let mut all = vec!["ip", "-n", "pod"];
        all.extend(args);
        sh(&all);
    };
    let parts: Vec<Change> = vec![
        (
            "mode",
            Box::new(|| ip(&["link", "set", "eth0", "type", "macvlan", "mode", "private"])),
            Box::new(|| ip(&["link", "set", "eth0", "type", "macvlan", "mode", "bridge"])),
        ),
        (
            "MTU 1500, the config says 1400",
            Box::new(|| ip(&["link", "set", "eth0", "mtu", "1500"])),
            Box::new(|| ip(&["link", "set", "eth0", "mtu", "1400"])),
        ),
        (
            mac.as_str(),
            Box::new(|| ip(&["link", "set", "eth0", "address", "02:00:00:00:7b:02"])),
            Box::new(|| ip(&["link", "set", "eth0", "address", &mac])),
        ),
        (
            "192.168.77.0/24",
            Box::new(|| ip(&["route", "del", "192.168.77.0/24"])),
            Box::new(|| ip(&["route", "add", "192.168.77.0/24", "via", "10.136.0.1"])),
        ),
        (
            address.as_str(),
            Box::new(|| ip(&["addr", "del", &address, "dev", "eth0"])),
            // Putting the address back drops the routes through it: they come back too.
            Box::new(|| {
                ip(&["addr", "add", &address, "dev", "eth0"]);
                ip(&["route", "add", "192.168.77.0/24", "via", "10.136.0.1"]);
            }),
        ),
    ];
    each_undone_fails_pod_check(&pod, &checked, &parts);
    run("DEL", "cid", &pod, &checked).expect_success();
}

/// vlan CHECK proves the link's VLAN ID, its master, MTU, addresses and routes
/// (full-kernel tier: 802.1Q). An 802.1Q ID cannot change in place: the link is
/// replaced by one of the same name with another ID, or on another master. Each
/// taken away in turn, CHECK fails naming it and changes nothing.
#[test]
fn vlan_check_fails_when_any_part_is_gone() {
    let test = "vlan_check_fails_when_any_part_is_gone";
    let Some((sb, pod)) = sandbox_with_pod("chk_vlan") else {
        return;
    };
    if !require_kernel(test, KernelFeature::Vlan8021q) {
        return;
    }
    testkit::veth_pair_up("chkvl0", "chkvl1");
    testkit::veth_pair_up("chkvm0", "chkvm1");
    let conf = json!({"cniVersion": "1.0.0", "name": "vl", "type": "vlan", "master": "chkvl0",
        "vlanId": 42, "mtu": 1400,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.138.0.0/24", "gateway": "10.138.0.1"}]],
                 "routes": [{"dst": "192.168.78.0/24"}], "dataDir": sb.scratch.join("ipam")}});
    let result = run("ADD", "cid", &pod, &conf).expect_success();
    let checked = with_prev(&conf, &result);
    run("CHECK", "cid", &pod, &checked).expect_success();
    let address = result["ips"][0]["address"].as_str().unwrap().to_string();
    let ip = |args: &[&str]| {
        let mut all = vec!["ip", "-n", "pod"];
        all.extend(args);
        sh(&all);
    };
    let route = || ip(&["route", "add", "192.168.78.0/24", "via", "10.138.0.1"]);
    // The pod's eth0 made anew: VLAN `id` on `master`, as ADD configured it.
    let replace = |master: &str, id: &str| {
        ip(&["link", "del", "eth0"]);
        sh(&[
            "ip", "link", "add", "link", master, "name", "chkvnew", "type", "vlan", "id", id,
        ]);
        sh(&["ip", "link", "set", "chkvnew", "netns", "pod"]);
        ip(&[
            "link", "set", "chkvnew", "name", "eth0", "mtu", "1400", "up",
        ]);
        ip(&["addr", "add", &address, "dev", "eth0"]);
        route();
        // The kernel moves the new link's state from UNKNOWN to UP a moment later:
        // wait for it, or the state before and after CHECK differ by that alone.
        for _ in 0..100 {
            if sh(&["ip", "-n", "pod", "link", "show", "eth0"]).contains("state UP") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    let parts: Vec<Change> = vec![
        (
            "VLAN ID 43, the config says 42",
            Box::new(|| replace("chkvl0", "43")),
            Box::new(|| replace("chkvl0", "42")),
        ),
        (
            "is not a vlan of \"chkvl0\"",
            Box::new(|| replace("chkvm0", "42")),
            Box::new(|| replace("chkvl0", "42")),
        ),
        (
            "MTU 1300, the config says 1400",
            Box::new(|| ip(&["link", "set", "eth0", "mtu", "1300"])),
            Box::new(|| ip(&["link", "set", "eth0", "mtu", "1400"])),
        ),
        (
            "192.168.78.0/24",
            Box::new(|| ip(&["route", "del", "192.168.78.0/24"])),
            Box::new(route),
        ),
        (
            address.as_str(),
            Box::new(|| ip(&["addr", "del", &address, "dev", "eth0"])),
            // Putting the address back drops the routes through it: they come back too.
            Box::new(|| {
                ip(&["addr", "add", &address, "dev", "eth0"]);
                route();
            }),
        ),
    ];
    each_undone_fails_pod_check(&pod, &checked, &parts);
    run("DEL", "cid", &pod, &checked).expect_success();
    assert!(!sh(&["ip", "-n", "pod", "link"]).contains("eth0"));
}
