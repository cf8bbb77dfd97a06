//! ipspoofchk on the wire: three pods on one bridge (an attacker, a victim and an
//! observer), frames the attacker forges from a packet socket in its own netns,
//! and what the observer receives and believes afterwards. Then CHECK, DEL, GC,
//! the config errors, and the Go plugin's DEL of an attachment we made.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use libcni::mac::MacAddr;
use serde_json::{json, Value};

const IPPROTO_ICMPV6: u8 = 58;
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

/// `packet` (an IPv6 packet) with a destination options header (padding only)
/// between its IPv6 header and its payload.
fn behind_destination_options(packet: &[u8]) -> Vec<u8> {
    const IPPROTO_DSTOPTS: u8 = 60;
    let (header, payload) = packet.split_at(40);
    let mut out = header.to_vec();
    out[4..6].copy_from_slice(&(8 + payload.len() as u16).to_be_bytes());
    out[6] = IPPROTO_DSTOPTS;
    out.extend([header[6], 0, 1, 4, 0, 0, 0, 0]);
    out.extend(payload);
    out
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
    let dhcp = |chaddr, what: &str| {
        let request = wire::bootp_request(chaddr, what.as_bytes());
        wire::udp4(unspecified, Ipv4Addr::BROADCAST, 68, 67, &request)
    };
    let what = "a DHCP discover from 0.0.0.0";
    add(what, BROADCAST, ETH_P_IP, dhcp(a.mac, what), true, false);
    let what = "a DHCP request from 0.0.0.0 in the victim's name (chaddr)";
    add(what, BROADCAST, ETH_P_IP, dhcp(v.mac, what), false, false);
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
        // Well-formed but for the form the filter requires of neighbour discovery.
        (
            "an NA for its own address behind a destination options header",
            behind_destination_options(&na(a.v6, a.mac)),
            false,
        ),
        (
            "an NA for its own address with two options",
            neighbor_message(
                a.link_local(),
                all_nodes,
                136,
                NA_OVERRIDE,
                a.v6,
                &[lladdr_option(2, a.mac), lladdr_option(2, a.mac)].concat(),
            ),
            false,
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
        (
            "an NS for the observer with two options",
            ns(
                a.v6,
                o.v6,
                &[lladdr_option(1, a.mac), lladdr_option(1, a.mac)].concat(),
            ),
            false,
        ),
    ] {
        add(what, dst, ETH_P_IPV6, packet, passes, false);
    }
    // Router messages: a rogue RA makes the attacker the observer's router, whose
    // redirect then gives the victim's link-local address the attacker's MAC.
    let routers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let routers_mac = MacAddr([0x33, 0x33, 0, 0, 0, 2]);
    let rs = |mac| {
        let mut body = vec![0; 4];
        body.extend(lladdr_option(1, mac));
        wire::icmpv6(a.link_local(), routers, 133, 0, &body)
    };
    let mut ra_body = vec![64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0];
    ra_body.extend(lladdr_option(1, a.mac));
    let mut redirect_body = vec![0; 4];
    redirect_body.extend(v.link_local().octets());
    redirect_body.extend(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets());
    redirect_body.extend(lladdr_option(2, a.mac));
    for (what, dst, packet, passes) in [
        (
            "a router advertisement from its own link-local address",
            all_nodes_mac,
            wire::icmpv6(a.link_local(), all_nodes, 134, 0, &ra_body),
            false,
        ),
        (
            "a redirect giving the victim's link-local address its MAC",
            o.mac,
            wire::icmpv6(a.link_local(), o.link_local(), 137, 0, &redirect_body),
            false,
        ),
        (
            "an RS whose source link-layer option is another MAC",
            routers_mac,
            rs(forged_mac),
            false,
        ),
        ("an RS with its own MAC", routers_mac, rs(a.mac), true),
        (
            "an RS with its own MAC behind a destination options header",
            routers_mac,
            behind_destination_options(&rs(a.mac)),
            false,
        ),
    ] {
        add(what, dst, ETH_P_IPV6, packet, passes, false);
    }
    let what = "an echo request from ::";
    let echo = wire::icmpv6(Ipv6Addr::UNSPECIFIED, o.v6, 128, 0, what.as_bytes());
    add(what, o.mac, ETH_P_IPV6, echo, false, false);
    let what = "an MLDv2 report from ::";
    let report = wire::icmpv6(Ipv6Addr::UNSPECIFIED, routers, 143, 0, &[0, 0, 0, 0]);
    add(what, routers_mac, ETH_P_IPV6, report, true, false);
    let what = "a DHCP discover from 0.0.0.0 in a frame to a pod's MAC";
    add(what, o.mac, ETH_P_IP, dhcp(a.mac, what), false, false);
    // RA-guard evasion (RFC 7113): a destination options header in the first
    // fragment, the RA in the second, where no rule can see what it is.
    let ra = wire::icmpv6(a.link_local(), all_nodes, 134, 0, &ra_body);
    let mut rest = vec![IPPROTO_ICMPV6, 0, 1, 4, 0, 0, 0, 0];
    rest.extend(&ra[40..]);
    let fragment = |(offset, more), part: &[u8]| {
        wire::ipv6_fragment(a.link_local(), all_nodes, 60, (offset, more, 0x7113), part)
    };
    add(
        "the first fragment of an RA split after a destination options header (no ICMPv6 in it: harmless alone)",
        all_nodes_mac,
        ETH_P_IPV6,
        fragment((0, true), &rest[..8]),
        true,
        false,
    );
    add(
        "the second fragment of that RA, which holds the RA",
        all_nodes_mac,
        ETH_P_IPV6,
        fragment((1, false), &rest[8..]),
        false,
        false,
    );
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

/// The host veth of `pod`'s attachment.
fn host_veth(pod: &Pod) -> String {
    pod.result["interfaces"][1]["name"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The port the bridge `bridge` forwards `mac` to, if it has it.
fn fdb_port(bridge: &str, mac: MacAddr) -> Option<String> {
    let out = sh(&["bridge", "-j", "fdb", "show", "br", bridge]);
    let entries: Value = serde_json::from_str(&out).unwrap();
    entries.as_array()?.iter().find_map(|e| {
        (e["mac"].as_str() == Some(&mac.to_string()))
            .then(|| e["ifname"].as_str().unwrap_or_default().to_string())
    })
}

/// A frame from `from` to the IEEE reserved group address 01:80:c2:00:00:`group`.
fn to_reserved_group(group: u8, src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
    ethernet(
        MacAddr([0x01, 0x80, 0xc2, 0, 0, group]),
        src,
        ethertype,
        payload,
    )
}

/// Sends, from `from`, echo requests with the victim's addresses as source to
/// the node's gateway addresses in frames to reserved group addresses, and
/// returns whether the node answered the victim (an echo reply carrying them).
fn node_answers_forged_reserved_frames(
    from: &Pod,
    victim: &Pod,
    gateways: (Ipv4Addr, Ipv6Addr),
) -> bool {
    let marker4 = format!("forged v4 from {}", from.ns);
    let marker6 = format!("forged v6 from {}", from.ns);
    let frames = [
        to_reserved_group(
            0x02,
            from.mac,
            ETH_P_IP,
            &wire::echo4(victim.v4, gateways.0, marker4.as_bytes()),
        ),
        to_reserved_group(
            0x03,
            from.mac,
            ETH_P_IPV6,
            &wire::icmpv6(
                victim.v6,
                gateways.1,
                128,
                0,
                &[&[0x12, 0x34, 0, 1][..], marker6.as_bytes()].concat(),
            ),
        ),
    ];
    let received = frames_received(&victim.ns, "eth0", Duration::from_millis(700), || {
        send_frames(&from.ns, "eth0", &frames)
    });
    any_holds(&received, marker4.as_bytes()) || any_holds(&received, marker6.as_bytes())
}

/// Whether the node's ARP takes a forged sender (198.51.100.7) from `from`'s
/// request for its gateway address, sent to a reserved group address.
fn node_learns_forged_arp(from: &Pod, gateway: Ipv4Addr, sender: Ipv4Addr) -> bool {
    let request = arp(ARP_REQUEST, from.mac, sender, MacAddr::ZERO, gateway);
    send_frames(
        &from.ns,
        "eth0",
        &[to_reserved_group(0x03, from.mac, ETH_P_ARP, &request)],
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = sh(&["ip", "-j", "neigh", "show", &sender.to_string()]);
    let entries: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    entries.as_array().is_some_and(|e| !e.is_empty())
}

/// Whether a service of the node on all its interfaces (UDP 7777 here) receives a
/// broadcast from the victim's address that `from` sends to a reserved group
/// address.
fn node_takes_forged_broadcast(from: &Pod, victim: &Pod) -> bool {
    let socket = std::net::UdpSocket::bind("0.0.0.0:7777").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let datagram = wire::udp4(
        victim.v4,
        Ipv4Addr::BROADCAST,
        4000,
        7777,
        b"forged broadcast",
    );
    send_frames(
        &from.ns,
        "eth0",
        &[to_reserved_group(0x03, from.mac, ETH_P_IP, &datagram)],
    );
    let mut buffer = [0u8; 64];
    matches!(socket.recv_from(&mut buffer), Ok((_, peer)) if peer.ip() == IpAddr::V4(victim.v4))
}

/// Whether an MLD general query from `from`, from `source`, makes its port a
/// multicast router port of `bridge` (which then gets all multicast). The bridge
/// takes a query for that only from the lowest address it has seen query.
fn port_becomes_multicast_router(from: &Pod, source: Ipv6Addr, bridge: &str) -> bool {
    let (all_nodes, all_nodes_mac) = all_nodes();
    let query = wire::icmpv6(
        source,
        all_nodes,
        130,
        0,
        &[
            0x03, 0xe8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
        ],
    );
    // Hop limit 1, and a hop-by-hop header with the router alert option (MLD).
    let mut packet = query[..40].to_vec();
    packet[4..6].copy_from_slice(&((query.len() - 40 + 8) as u16).to_be_bytes());
    packet[6] = 0;
    packet[7] = 1;
    packet.extend([IPPROTO_ICMPV6, 0, 5, 2, 0, 0, 1, 0]);
    packet.extend(&query[40..]);
    send_frames(
        &from.ns,
        "eth0",
        &[ethernet(all_nodes_mac, from.mac, ETH_P_IPV6, &packet)],
    );
    std::thread::sleep(Duration::from_millis(200));
    // `router ports on BRIDGE: PORT ...`
    let port = host_veth(from);
    sh(&["bridge", "-d", "mdb", "show", "dev", bridge])
        .lines()
        .filter_map(|line| line.strip_prefix("router ports on "))
        .any(|ports| ports.split_whitespace().any(|p| p == port))
}

/// A configuration BPDU from `src` that claims the root for 02:00:00:00:00:01 at
/// priority 0: a bridge with STP on makes the port it arrives on its root port.
fn superior_bpdu(src: MacAddr) -> Vec<u8> {
    let mut llc_bpdu = vec![0x42, 0x42, 0x03, 0, 0, 0, 0, 0];
    llc_bpdu.extend([0, 0, 0x02, 0, 0, 0, 0, 0x01]); // root: priority 0, its MAC
    llc_bpdu.extend([0, 0, 0, 0]); // path cost
    llc_bpdu.extend([0, 0]);
    llc_bpdu.extend(src.octets()); // sender bridge
    llc_bpdu.extend([0x80, 0x01, 0, 0, 0x14, 0, 0x02, 0, 0x0f, 0]);
    let mut frame = MacAddr([0x01, 0x80, 0xc2, 0, 0, 0]).octets().to_vec();
    frame.extend(src.octets());
    frame.extend((llc_bpdu.len() as u16).to_be_bytes()); // 802.3: a length
    frame.extend(llc_bpdu);
    frame
}

/// The bridge's root port number (0: the bridge is the root).
fn root_port(bridge: &str) -> u64 {
    let link: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "link", "show", bridge])).unwrap();
    link[0]["linkinfo"]["info_data"]["root_port"]
        .as_u64()
        .unwrap()
}

/// Frames to the IEEE reserved group addresses (01:80:c2:00:00:0X) never reach
/// the bridge's PREROUTING hook: the bridge learns their source MAC and hands
/// them to the port's own stack, or to its STP. From an ipspoofchk port they move
/// no MAC, reach no service of the node with a forged source, and a BPDU disables
/// the port. The same frames from a port with macspoofchk only (the control) do
/// all three, so each check can fail.
#[test]
fn reserved_group_frames_move_no_mac_reach_no_stack_and_elect_no_root() {
    let Some(sb) = Sandbox::new("ipspoofchk_reserved") else {
        return;
    };
    for ns in ["victim", "attacker", "bare"] {
        sb.netns(ns);
    }
    let with_gateway = |ipspoofchk| {
        let mut conf = conf(&sb, "brrs", None, ipspoofchk);
        conf["isGateway"] = json!(true);
        conf
    };
    let (guarded, unguarded) = (with_gateway(true), with_gateway(false));
    // The victim's MAC is learned, not pinned: a pod with macspoofchk only, or a
    // router behind an admin's uplink.
    let v = Pod::add("victim", "v", &unguarded);
    let a = Pod::add("attacker", "a", &guarded);
    let bare = Pod::add("bare", "b", &unguarded);
    a.call("CHECK", &guarded).expect_success();
    let gateways = (Ipv4Addr::new(10, 12, 23, 1), "fd12:23::1".parse().unwrap());
    assert!(
        v.reaches(IpAddr::V4(gateways.0)),
        "victim -> gateway (IPv4)"
    );
    // The node's IPv6 gateway address is usable once its DAD is over.
    let v6_gateway = (0..10).any(|_| {
        v.reaches(IpAddr::V6(gateways.1))
            || (std::thread::sleep(Duration::from_millis(500)), false).1
    });
    assert!(v6_gateway, "victim -> gateway (IPv6)");
    assert_eq!(fdb_port("brrs", v.mac), Some(host_veth(&v)));

    assert!(
        !node_answers_forged_reserved_frames(&a, &v, gateways),
        "the node answered the victim's forged addresses from an ipspoofchk port"
    );
    let lldp = to_reserved_group(0x0e, v.mac, ETH_P_LLDP, b"the victim's MAC is mine");
    send_frames(&a.ns, "eth0", std::slice::from_ref(&lldp));
    assert_eq!(
        fdb_port("brrs", v.mac),
        Some(host_veth(&v)),
        "a reserved-group frame from an ipspoofchk port moved the victim's MAC"
    );
    assert_eq!(fdb_port("brrs", a.mac), Some(host_veth(&a)), "the pin");
    // Strict reverse-path filtering on the port applies where the node's own is
    // not loose: this node's is off.
    sh(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    let forged_sender = Ipv4Addr::new(198, 51, 100, 7);
    assert!(
        !node_learns_forged_arp(&a, gateways.0, forged_sender),
        "the node's ARP took a forged sender from an ipspoofchk port"
    );
    assert!(
        !node_takes_forged_broadcast(&a, &v),
        "a node service received a broadcast from the victim's address from an ipspoofchk port"
    );
    assert!(
        !port_becomes_multicast_router(&a, a.link_local(), "brrs"),
        "an MLD query made an ipspoofchk port a multicast router port"
    );

    // The control.
    assert!(
        node_answers_forged_reserved_frames(&bare, &v, gateways),
        "from a port with macspoofchk only the node must answer, or this test proves nothing"
    );
    assert!(
        node_learns_forged_arp(&bare, gateways.0, forged_sender),
        "from a port with macspoofchk only the node's ARP must take the sender, or this test proves nothing"
    );
    assert!(
        node_takes_forged_broadcast(&bare, &v),
        "from a port with macspoofchk only the broadcast must arrive, or this test proves nothing"
    );
    assert!(
        // From fe80::1, below any EUI-64 address: a port with macspoofchk only may.
        port_becomes_multicast_router(&bare, "fe80::1".parse().unwrap(), "brrs"),
        "from a port with macspoofchk only the query must make it a router port, or this test proves nothing"
    );
    send_frames(&bare.ns, "eth0", &[lldp]);
    assert_eq!(
        fdb_port("brrs", v.mac),
        Some(host_veth(&bare)),
        "from a port with macspoofchk only the MAC must move, or this test proves nothing"
    );
    for (pod, conf) in [(&v, &unguarded), (&a, &guarded), (&bare, &unguarded)] {
        pod.call("DEL", conf).expect_success();
    }

    // An admin's bridge with STP on: the pod's BPDU disables its port.
    sh(&[
        "ip",
        "link",
        "add",
        "brstp",
        "type",
        "bridge",
        "stp_state",
        "1",
    ]);
    let stp = |ipspoofchk| {
        let mut conf = conf(&sb, "brstp", None, ipspoofchk);
        conf["ipam"]["dataDir"] = json!(sb.scratch.join("ipam-stp"));
        conf
    };
    let (guarded, unguarded) = (stp(true), stp(false));
    let a = Pod::add("attacker", "a2", &guarded);
    let bare = Pod::add("bare", "b2", &unguarded);
    a.call("CHECK", &guarded).expect_success();
    assert_eq!(root_port("brstp"), 0);
    send_frames(&a.ns, "eth0", &[superior_bpdu(a.mac)]);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        root_port("brstp"),
        0,
        "a pod's BPDU made its port the root port"
    );
    let port: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "link", "show", &host_veth(&a)])).unwrap();
    assert_eq!(port[0]["linkinfo"]["info_slave_data"]["state"], "disabled");
    send_frames(&bare.ns, "eth0", &[superior_bpdu(bare.mac)]);
    std::thread::sleep(Duration::from_millis(200));
    assert_ne!(
        root_port("brstp"),
        0,
        "from a port with macspoofchk only the BPDU must elect it, or this test proves nothing"
    );
    a.call("DEL", &guarded).expect_success();
    bare.call("DEL", &unguarded).expect_success();
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
    // The edge port: each flag and sysctl undone in turn.
    for (undo, redo, what) in [
        ("learning on", "learning off", "the port learns MACs"),
        ("guard off", "guard on", "the port has no BPDU guard"),
        (
            "mcast_router 1",
            "mcast_router 0",
            "the port may become a multicast router port",
        ),
    ] {
        let set = |flags: &str| {
            let mut args = vec!["ip", "link", "set", "dev", &port, "type", "bridge_slave"];
            args.extend(flags.split(' '));
            sh(&args);
        };
        set(undo);
        assert_check_fails(&pod, &guarded, what);
        set(redo);
    }
    for (key, value, what) in [
        ("ipv6/conf/{}/disable_ipv6", "1", "the port's IPv6 on"),
        (
            "ipv4/conf/{}/drop_unicast_in_l2_multicast",
            "1",
            "the port's stack takes unicast IPv4 in multicast frames",
        ),
        (
            "ipv4/conf/{}/rp_filter",
            "1",
            "the port's reverse-path filter off",
        ),
        ("ipv4/conf/{}/arp_ignore", "8", "the port's ARP answers"),
    ] {
        let path = format!("/proc/sys/net/{}", key.replace("{}", &port));
        std::fs::write(&path, "0").unwrap();
        assert_check_fails(&pod, &guarded, what);
        std::fs::write(&path, value).unwrap();
    }
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
