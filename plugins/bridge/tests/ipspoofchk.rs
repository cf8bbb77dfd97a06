//! ipspoofchk on the wire: three pods on one bridge (an attacker, a victim and an
//! observer), frames the attacker forges from a packet socket in its own netns,
//! and what the observer receives and believes afterwards. Then CHECK, DEL, GC,
//! the config errors, and the Go plugin's DEL of an attachment we made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use libcni::mac::MacAddr;
use serde_json::{json, Value};
use testkit::wire::{self, *};
use testkit::{go_plugin, ping, require_kernel, sh, with_prev, Call, KernelFeature, Sandbox};

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bridge"))
}

/// A dual-stack network with both spoof checks, on VLAN `vlan` when given.
fn conf(sb: &Sandbox, bridge: &str, vlan: Option<u16>, ipspoofchk: bool) -> Value {
    testkit::plugin("host-local");
    let mut conf = json!({"cniVersion": "1.0.0", "name": "guarded", "type": "bridge",
        "bridge": bridge, "macspoofchk": true, "ipspoofchk": ipspoofchk,
        "ipam": {"type": "host-local", "dataDir": sb.scratch.join("ipam"),
                 "ranges": [[{"subnet": "10.12.23.0/24"}], [{"subnet": "fd12:23::/64"}]]}});
    if let Some(vlan) = vlan {
        conf["vlan"] = json!(vlan);
    }
    conf
}

/// One attached pod: its netns name, container ID, result, MAC and addresses.
struct Pod {
    ns: String,
    id: String,
    result: Value,
    mac: MacAddr,
    v4: Ipv4Addr,
    v6: Ipv6Addr,
}

impl Pod {
    fn add(ns: &str, id: &str, conf: &Value) -> Pod {
        let result = Call::attach("ADD", id, &format!("/run/netns/{ns}"), "eth0")
            .config(conf)
            .run(&ours())
            .expect_success();
        let mac = result["interfaces"][2]["mac"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let address = |v4: bool| {
            result["ips"]
                .as_array()
                .unwrap()
                .iter()
                .map(|ip| ip["address"].as_str().unwrap().split('/').next().unwrap())
                .map(|a| a.parse::<IpAddr>().unwrap())
                .find(|a| a.is_ipv4() == v4)
                .unwrap()
        };
        let (IpAddr::V4(v4), IpAddr::V6(v6)) = (address(true), address(false)) else {
            unreachable!()
        };
        Pod {
            ns: ns.to_string(),
            id: id.to_string(),
            result,
            mac,
            v4,
            v6,
        }
    }

    fn call(&self, command: &str, conf: &Value) -> testkit::Output {
        Call::attach(
            command,
            &self.id,
            &format!("/run/netns/{}", self.ns),
            "eth0",
        )
        .config(&with_prev(conf, &self.result))
        .run(&ours())
    }

    fn link_local(&self) -> Ipv6Addr {
        self.mac.ipv6_link_local()
    }

    /// The MAC this pod's neighbour table holds for `address`, if any.
    fn neighbour(&self, address: IpAddr) -> Option<String> {
        let out = sh(&[
            "ip",
            "-n",
            &self.ns,
            "-j",
            "neigh",
            "show",
            &address.to_string(),
        ]);
        let entries: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
        entries
            .as_array()?
            .iter()
            .find_map(|e| e["lladdr"].as_str().map(str::to_string))
    }

    fn reaches(&self, address: IpAddr) -> bool {
        ping(&self.ns, &address.to_string())
    }
}

/// One forged or legitimate frame, and whether it must reach the observer.
struct Probe {
    what: &'static str,
    frame: Vec<u8>,
    /// What identifies the frame at the observer (its packet, without the link
    /// header, which a bridge may change by a VLAN tag).
    packet: Vec<u8>,
    passes: bool,
}

fn probe(what: &'static str, frame: Vec<u8>, packet: Vec<u8>, passes: bool) -> Probe {
    Probe {
        what,
        frame,
        packet,
        passes,
    }
}

/// What the attacker `a` sends (victim `v`, observer `o`): every kind of forgery
/// the filter must drop, beside the legitimate frames it must pass. `vid` tags two
/// of them, as a pod on a trunk would.
fn probes(a: &Pod, v: &Pod, o: &Pod, vid: u16) -> Vec<Probe> {
    let mut probes = Vec::new();
    // A probe of `packet` in a frame from the attacker's MAC to `dst`, tagged with
    // `vid` when `tagged`.
    let mut add = |what, dst: MacAddr, ethertype, packet: Vec<u8>, passes, tagged: bool| {
        let frame = match tagged {
            true => ethernet_tagged(dst, a.mac, vid, ethertype, &packet),
            false => ethernet(dst, a.mac, ethertype, &packet),
        };
        probes.push(probe(what, frame, packet, passes));
    };
    let udp4 = |src, dst, sport, dport, marker: &str| {
        wire::udp4(src, dst, sport, dport, marker.as_bytes())
    };
    let udp6 = |src, marker: &str| wire::udp6(src, o.v6, 4000, 4001, marker.as_bytes());
    let (all_nodes, all_nodes_mac) = all_nodes();
    let na = |target, mac| {
        let option = lladdr_option(2, mac);
        neighbor_message(a.link_local(), all_nodes, 136, NA_OVERRIDE, target, &option)
    };
    let ns = |src, target, options: &[u8]| {
        let (group, group_mac) = solicited_node(target);
        (
            group_mac,
            neighbor_message(src, group, 135, 0, target, options),
        )
    };
    let forged_mac = MacAddr([0x02, 0x66, 0x66, 0x66, 0x66, 0x66]);
    let unspecified = Ipv4Addr::UNSPECIFIED;
    let tagged_v4 = "a tagged IPv4 packet from the victim's address";
    for (what, src, passes, tagged) in [
        (
            "an IPv4 packet from the victim's address",
            v.v4,
            false,
            false,
        ),
        (
            "an IPv4 packet from an address no one has",
            Ipv4Addr::new(10, 12, 23, 250),
            false,
            false,
        ),
        ("an IPv4 packet from its own address", a.v4, true, false),
        (tagged_v4, v.v4, false, true),
        (
            "a tagged IPv4 packet from its own address",
            a.v4,
            true,
            true,
        ),
    ] {
        let packet = udp4(src, o.v4, 4000, 4001, what);
        add(what, o.mac, ETH_P_IP, packet, passes, tagged);
    }
    let what = "a DHCP discover from 0.0.0.0";
    let discover = udp4(unspecified, Ipv4Addr::BROADCAST, 68, 67, what);
    add(what, BROADCAST, ETH_P_IP, discover, true, false);
    let what = "a datagram from 0.0.0.0 port 68 to a pod's address";
    add(
        what,
        o.mac,
        ETH_P_IP,
        udp4(unspecified, o.v4, 68, 67, what),
        false,
        false,
    );
    for (what, src, passes) in [
        ("an IPv6 packet from the victim's address", v.v6, false),
        (
            "an IPv6 packet from the victim's link-local address",
            v.link_local(),
            false,
        ),
        ("an IPv6 packet from its own address", a.v6, true),
        (
            "an IPv6 packet from its own link-local address",
            a.link_local(),
            true,
        ),
    ] {
        add(what, o.mac, ETH_P_IPV6, udp6(src, what), passes, false);
    }
    let zero = MacAddr::ZERO;
    for (what, dst, packet, passes) in [
        (
            "a gratuitous ARP claiming the victim's address",
            BROADCAST,
            arp(ARP_REQUEST, a.mac, v.v4, zero, v.v4),
            false,
        ),
        (
            "an ARP reply claiming the victim's address",
            o.mac,
            arp(ARP_REPLY, a.mac, v.v4, o.mac, o.v4),
            false,
        ),
        (
            "an ARP reply whose sender MAC is not the port's",
            o.mac,
            arp(ARP_REPLY, forged_mac, a.v4, o.mac, o.v4),
            false,
        ),
        (
            "an ARP reply for its own address",
            o.mac,
            arp(ARP_REPLY, a.mac, a.v4, o.mac, o.v4),
            true,
        ),
        // Cut inside the sender IP: no frame that must pass starts like it.
        (
            "a truncated ARP request",
            BROADCAST,
            arp(ARP_REQUEST, a.mac, v.v4, zero, v.v4)[..17].to_vec(),
            false,
        ),
        (
            "an ARP probe for the victim's address",
            BROADCAST,
            arp(ARP_REQUEST, a.mac, unspecified, zero, v.v4),
            false,
        ),
        (
            "an ARP probe (RFC 5227)",
            BROADCAST,
            arp(ARP_REQUEST, a.mac, unspecified, zero, a.v4),
            true,
        ),
    ] {
        add(what, dst, ETH_P_ARP, packet, passes, false);
    }
    for (what, packet, passes) in [
        (
            "an unsolicited NA for the victim's address",
            na(v.v6, a.mac),
            false,
        ),
        (
            "an unsolicited NA for the victim's link-local address",
            na(v.link_local(), a.mac),
            false,
        ),
        (
            "an NA for its own address with another MAC",
            na(a.v6, forged_mac),
            false,
        ),
        (
            "an unsolicited NA for its own address",
            na(a.v6, a.mac),
            true,
        ),
    ] {
        add(what, all_nodes_mac, ETH_P_IPV6, packet, passes, false);
    }
    for (what, (dst, packet), passes) in [
        (
            "an NS whose source link-layer option is another MAC",
            ns(a.v6, o.v6, &lladdr_option(1, forged_mac)),
            false,
        ),
        (
            "an NS for the observer with its own MAC",
            ns(a.v6, o.v6, &lladdr_option(1, a.mac)),
            true,
        ),
        (
            "a DAD NS for the victim's address",
            ns(Ipv6Addr::UNSPECIFIED, v.v6, &[]),
            false,
        ),
        (
            "a DAD NS for its own address",
            ns(Ipv6Addr::UNSPECIFIED, a.v6, &[]),
            true,
        ),
    ] {
        add(what, dst, ETH_P_IPV6, packet, passes, false);
    }
    let what = "another ethertype (LLDP)";
    add(
        what,
        o.mac,
        ETH_P_LLDP,
        what.as_bytes().to_vec(),
        false,
        false,
    );
    probes
}

/// Sends `probes` from `a` and returns what each did at `o`, as lines for a
/// message, with whether every one went as it must.
fn send_probes(a: &Pod, o: &Pod, probes: &[Probe]) -> (bool, String) {
    let frames: Vec<Vec<u8>> = probes.iter().map(|p| p.frame.clone()).collect();
    let received = frames_received(&o.ns, "eth0", Duration::from_millis(500), || {
        send_frames(&a.ns, "eth0", &frames)
    });
    let mut all_right = true;
    let mut report = String::new();
    for p in probes {
        let arrived = any_holds(&received, &p.packet);
        all_right &= arrived == p.passes;
        let verdict = if arrived { "arrived" } else { "dropped" };
        let must = if p.passes { "pass" } else { "be dropped" };
        report += &format!("  {}: {verdict} (must {must})\n", p.what);
    }
    (all_right, report)
}

/// What the observer believes the victim's addresses are, checked against the
/// victim's MAC; each entry learned before the attack.
fn assert_observer_keeps_the_victim(o: &Pod, v: &Pod, when: &str) {
    for address in [IpAddr::V4(v.v4), IpAddr::V6(v.v6)] {
        assert_eq!(
            o.neighbour(address).as_deref(),
            Some(v.mac.to_string().as_str()),
            "{when}: the observer's neighbour entry for the victim's {address}"
        );
    }
}

/// The observer has fresh entries for the victim, older than the kernel's locktime
/// (1 s), so an unprotected observer would take a forged update.
fn observer_learns_the_victim(o: &Pod, v: &Pod) {
    assert!(o.reaches(IpAddr::V4(v.v4)), "observer -> victim (IPv4)");
    assert!(o.reaches(IpAddr::V6(v.v6)), "observer -> victim (IPv6)");
    std::thread::sleep(Duration::from_millis(1500));
}

/// The whole case on one bridge, untagged or on VLAN `vlan`.
fn three_pods_on_one_bridge(sb: &Sandbox, vlan: Option<u16>) {
    for ns in ["victim", "observer", "attacker"] {
        sb.netns(ns);
    }
    let guarded = conf(sb, "brsp", vlan, true);
    let v = Pod::add("victim", "v", &guarded);
    let o = Pod::add("observer", "o", &guarded);
    let a = Pod::add("attacker", "a", &guarded);
    a.call("CHECK", &guarded).expect_success();

    // What must keep working: ping in both families, which needs ARP and
    // neighbour discovery, between every pair.
    for (from, to) in [(&a, &o), (&o, &a), (&v, &o)] {
        for address in [IpAddr::V4(to.v4), IpAddr::V6(to.v6)] {
            assert!(from.reaches(address), "{} -> {address}", from.ns);
        }
    }
    observer_learns_the_victim(&o, &v);

    // A pod that asks for the victim's MAC would get its link-local address and,
    // once the bridge learned the MAC on its port, its traffic: refused.
    sb.netns("thief");
    let mut same_mac = guarded.clone();
    same_mac["runtimeConfig"] = json!({"mac": v.mac.to_string()});
    let e = Call::attach("ADD", "t", "/run/netns/thief", "eth0")
        .config(&same_mac)
        .run(&ours())
        .error(999);
    assert!(e.contains("already in use"), "{e}");
    assert!(!sh(&["ip", "-n", "thief", "link"]).contains("eth0"));
    assert!(!sh(&["nft", "list", "ruleset"]).contains("spoofchk-t-eth0"));

    let vid = vlan.unwrap_or(5);
    let (all_right, report) = send_probes(&a, &o, &probes(&a, &v, &o, vid));
    assert!(all_right, "what the observer received:\n{report}");
    assert_observer_keeps_the_victim(&o, &v, "after the attack");
    assert!(o.reaches(IpAddr::V4(v.v4)) && o.reaches(IpAddr::V6(v.v6)));

    // Renewed addresses: the attacker's attachment goes and comes back with
    // others; its old addresses are now no one's and are dropped, its new pass.
    a.call("DEL", &guarded).expect_success();
    assert!(
        !sh(&["nft", "list", "ruleset"]).contains("spoofchk-a-eth0"),
        "DEL left rules of the attachment"
    );
    let renewed = Pod::add("attacker", "a2", &guarded);
    assert_ne!(renewed.v4, a.v4);
    renewed.call("CHECK", &guarded).expect_success();
    for address in [IpAddr::V4(o.v4), IpAddr::V6(o.v6)] {
        assert!(renewed.reaches(address), "renewed attacker -> {address}");
    }
    let old = [
        probe(
            "an IPv4 packet from its address before DEL",
            Vec::new(),
            wire::udp4(a.v4, o.v4, 4000, 4001, b"old v4"),
            false,
        ),
        probe(
            "an IPv6 packet from its address before DEL",
            Vec::new(),
            wire::udp6(a.v6, o.v6, 4000, 4001, b"old v6"),
            false,
        ),
    ];
    let old: Vec<Probe> = old
        .into_iter()
        .map(|mut p| {
            let ethertype = if p.what.contains("IPv4") {
                ETH_P_IP
            } else {
                ETH_P_IPV6
            };
            p.frame = ethernet(o.mac, renewed.mac, ethertype, &p.packet);
            p
        })
        .collect();
    let (all_right, report) = send_probes(&renewed, &o, &old);
    assert!(all_right, "after DEL and ADD:\n{report}");
    renewed.call("DEL", &guarded).expect_success();

    // The control: the same attack from a port with macspoofchk only does take the
    // victim's addresses over at the observer, so the checks above can fail.
    let unguarded = conf(sb, "brsp", vlan, false);
    let bare = Pod::add("attacker", "a3", &unguarded);
    observer_learns_the_victim(&o, &v);
    let takeover: Vec<Probe> = probes(&bare, &v, &o, vid)
        .into_iter()
        .filter(|p| {
            // A gratuitous ARP overrides the observer's entry at once; a reply only
            // once the entry is older than the kernel's locktime (1 s), and the
            // victim's own traffic may have refreshed it.
            p.what == "a gratuitous ARP claiming the victim's address"
                || p.what == "an unsolicited NA for the victim's address"
        })
        .collect();
    assert_eq!(takeover.len(), 2);
    send_probes(&bare, &o, &takeover);
    for address in [IpAddr::V4(v.v4), IpAddr::V6(v.v6)] {
        assert_eq!(
            o.neighbour(address).as_deref(),
            Some(bare.mac.to_string().as_str()),
            "without ipspoofchk the forged frames must take {address} over, or this test proves nothing"
        );
    }
    bare.call("DEL", &unguarded).expect_success();
    for pod in [&v, &o] {
        pod.call("DEL", &guarded).expect_success();
    }
    let ruleset = sh(&["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("cni-br-iface"), "{ruleset}");
}

#[test]
fn ipspoofchk_drops_forged_addresses_and_passes_the_pods_own() {
    let Some(sb) = Sandbox::new("ipspoofchk_wire") else {
        return;
    };
    three_pods_on_one_bridge(&sb, None);
}

/// The same on VLAN 1223 (the seed's ERP VLAN), on an access port of a VLAN-aware
/// bridge. Full-kernel tier.
#[test]
fn ipspoofchk_on_vlan_1223_drops_forged_addresses_and_passes_the_pods_own() {
    let test = "ipspoofchk_on_vlan_1223_drops_forged_addresses_and_passes_the_pods_own";
    let Some(sb) = Sandbox::new("ipspoofchk_vlan") else {
        return;
    };
    if !require_kernel(test, KernelFeature::BridgeVlanFiltering) {
        return;
    }
    three_pods_on_one_bridge(&sb, Some(1223));
}

/// `frame` with an 802.1Q tag of `vid` after its MACs.
fn tagged(frame: &[u8], vid: u16) -> Vec<u8> {
    let mut out = frame[..12].to_vec();
    out.extend(ETH_P_8021Q.to_be_bytes());
    out.extend(vid.to_be_bytes());
    out.extend(&frame[12..]);
    out
}

/// A trunk port's tagged frames meet the same rules: the attacker on a trunk of
/// VLAN 1223 sends every probe tagged, to an observer on an access port of 1223.
/// Full-kernel tier.
#[test]
fn ipspoofchk_filters_the_tagged_frames_of_a_trunk_port() {
    let test = "ipspoofchk_filters_the_tagged_frames_of_a_trunk_port";
    let Some(sb) = Sandbox::new("ipspoofchk_trunk") else {
        return;
    };
    if !require_kernel(test, KernelFeature::BridgeVlanFiltering) {
        return;
    }
    for ns in ["victim", "observer", "attacker"] {
        sb.netns(ns);
    }
    let access = conf(&sb, "brtr", Some(1223), true);
    let mut trunk = conf(&sb, "brtr", None, true);
    trunk["vlanTrunk"] = json!([{"id": 1223}]);
    let v = Pod::add("victim", "v", &access);
    let o = Pod::add("observer", "o", &access);
    let a = Pod::add("attacker", "a", &trunk);
    a.call("CHECK", &trunk).expect_success();
    observer_learns_the_victim(&o, &v);
    let probes: Vec<Probe> = probes(&a, &v, &o, 1223)
        .into_iter()
        .filter(|p| !p.what.contains("tagged"))
        .map(|mut p| {
            p.frame = tagged(&p.frame, 1223);
            p
        })
        .collect();
    let (all_right, report) = send_probes(&a, &o, &probes);
    assert!(
        all_right,
        "what the observer received from the trunk:\n{report}"
    );
    assert_observer_keeps_the_victim(&o, &v, "after the attack from the trunk");
    // The attacker's own tagged frames arrived above: the port is in VLAN 1223.
    a.call("DEL", &trunk).expect_success();
    for pod in [&v, &o] {
        pod.call("DEL", &access).expect_success();
    }
    assert!(!sh(&["nft", "list", "ruleset"]).contains("cni-br-iface"));
}

/// The handles of the ipspoofchk rules of `chain` in `table bridge nat`, in order.
fn ip_rule_handles(chain: &str) -> Vec<u64> {
    let out = sh(&["nft", "-j", "list", "chain", "bridge", "nat", chain]);
    let listed: Value = serde_json::from_str(&out).unwrap();
    listed["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|item| item.get("rule"))
        .filter(|rule| {
            rule["comment"]
                .as_str()
                .is_some_and(|c| c.starts_with("ipspoofchk-"))
        })
        .map(|rule| rule["handle"].as_u64().unwrap())
        .collect()
}

/// CHECK fails, naming ipspoofchk, and changes nothing.
fn assert_check_fails(pod: &Pod, conf: &Value, what: &str) {
    let before = sh(&["nft", "list", "ruleset"]);
    let e = pod.call("CHECK", conf).error(999);
    assert!(e.contains("ipspoofchk"), "{what}: {e}");
    assert_eq!(
        sh(&["nft", "list", "ruleset"]),
        before,
        "{what}: CHECK changed the ruleset"
    );
}

#[test]
fn check_fails_when_any_ipspoofchk_rule_is_gone_and_changes_nothing() {
    let Some(sb) = Sandbox::new("ipspoofchk_check") else {
        return;
    };
    sb.netns("p");
    let guarded = conf(&sb, "brck", None, true);
    let chain = "cni-br-iface-c1-eth0";
    let mut pod = Pod::add("p", "c1", &guarded);
    pod.call("CHECK", &guarded).expect_success();
    let count = ip_rule_handles(chain).len();
    assert!(count > 20, "{count} ipspoofchk rules");
    // Every rule in turn: without it CHECK fails; DEL and ADD put it back.
    for i in 0..count {
        let handle = ip_rule_handles(chain)[i].to_string();
        sh(&[
            "nft", "delete", "rule", "bridge", "nat", chain, "handle", &handle,
        ]);
        assert_check_fails(&pod, &guarded, &format!("ipspoofchk rule {i} deleted"));
        pod.call("DEL", &guarded).expect_success();
        assert!(!sh(&["nft", "list", "ruleset"]).contains("spoofchk-c1"));
        pod = Pod::add("p", "c1", &guarded);
    }
    pod.call("CHECK", &guarded).expect_success();
    // The bridge's pin of the MAC to the port.
    let port = pod.result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let mac = pod.mac.to_string();
    sh(&["bridge", "fdb", "del", &mac, "dev", &port, "master"]);
    assert_check_fails(&pod, &guarded, "the MAC no longer pinned");
    // `replace`: the pod's own frames may have taught the bridge the MAC meanwhile.
    sh(&[
        "bridge", "fdb", "replace", &mac, "dev", &port, "master", "static",
    ]);
    assert_check_fails(&pod, &guarded, "the MAC static but not sticky");
    sh(&[
        "bridge", "fdb", "replace", &mac, "dev", &port, "master", "static", "sticky",
    ]);
    pod.call("CHECK", &guarded).expect_success();
    // A rule added after them could let anything through.
    sh(&["nft", "add", "rule", "bridge", "nat", chain, "return"]);
    assert_check_fails(&pod, &guarded, "a rule added at the end");
    pod.call("DEL", &guarded).expect_success();
    assert!(!sh(&["nft", "list", "ruleset"]).contains("cni-br-iface"));
}

#[test]
fn gc_removes_the_rules_of_a_gone_attachment_and_keeps_a_live_ones() {
    let Some(sb) = Sandbox::new("ipspoofchk_gc") else {
        return;
    };
    sb.netns("gone");
    sb.netns("live");
    let guarded = conf(&sb, "brgc", None, true);
    Pod::add("gone", "g", &guarded);
    let live = Pod::add("live", "l", &guarded);
    sh(&["ip", "netns", "del", "gone"]);
    // The pod's veth goes with its netns, asynchronously.
    for _ in 0..100 {
        if sh(&["ip", "-j", "link", "show"]).matches("\"veth").count() == 1 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut gc = guarded.clone();
    gc["cniVersion"] = json!("1.1.0");
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "l", "ifname": "eth0"}]);
    Call::new("GC")
        .env("CNI_PATH", &testkit::bin_dir().display().to_string())
        .config(&gc)
        .run(&ours())
        .expect_success();
    let ruleset = sh(&["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("spoofchk-g-eth0"), "{ruleset}");
    assert!(ruleset.contains("ipspoofchk-l-eth0"), "{ruleset}");
    live.call("CHECK", &guarded).expect_success();
}

#[test]
fn a_config_that_cannot_be_filtered_fails_with_code_7() {
    let Some(sb) = Sandbox::new("ipspoofchk_config") else {
        return;
    };
    let netns = sb.netns("p");
    let add = |conf: &Value| {
        Call::attach("ADD", "c1", &netns, "eth0")
            .config(conf)
            .run(&ours())
    };
    let mut layer2 = conf(&sb, "brcf", None, true);
    layer2.as_object_mut().unwrap().remove("ipam");
    let e = add(&layer2).error(7);
    assert!(e.contains("ipspoofchk") && e.contains("layer-2"), "{e}");
    let mut no_mac_check = conf(&sb, "brcf", None, true);
    no_mac_check["macspoofchk"] = json!(false);
    let e = add(&no_mac_check).error(7);
    assert!(e.contains("macspoofchk"), "{e}");
    // Nothing is left of the refused ADDs.
    assert!(!sh(&["ip", "-n", "p", "link"]).contains("eth0"));
    assert!(!sh(&["nft", "list", "ruleset"]).contains("cni-br-iface"));
}

/// A node switched back to Go: the Go plugin's DEL of an attachment our ADD made
/// with ipspoofchk leaves none of our rules (they live in the chains it deletes).
#[test]
fn the_go_plugins_del_removes_every_ipspoofchk_rule() {
    let test = "the_go_plugins_del_removes_every_ipspoofchk_rule";
    let Some(sb) = Sandbox::new("ipspoofchk_go_del") else {
        return;
    };
    let Some(go) = go_plugin(test, "bridge") else {
        return;
    };
    sb.netns("p");
    sb.netns("q");
    let guarded = conf(&sb, "brgo", None, true);
    let pod = Pod::add("p", "c1", &guarded);
    let other = Pod::add("q", "c2", &guarded);
    assert!(sh(&["nft", "list", "ruleset"]).contains("ipspoofchk-c1-eth0"));
    Call::attach("DEL", "c1", "/run/netns/p", "eth0")
        .config(&with_prev(&guarded, &pod.result))
        .env("CNI_PATH", testkit::bin_dir().to_str().unwrap())
        .run(&go)
        .expect_success();
    let ruleset = sh(&["nft", "list", "ruleset"]);
    assert!(!ruleset.contains("c1-eth0"), "Go's DEL left:\n{ruleset}");
    // The other attachment keeps its filter.
    other.call("CHECK", &guarded).expect_success();
}
