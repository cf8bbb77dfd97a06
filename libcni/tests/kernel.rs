//! The netns, netlink and apply layers against the real kernel, each test inside
//! namespaces of its own (see testkit::Sandbox). Checked with `ip`, as a user would.

use std::path::Path;

use libcni::host::apply::{configure_interface, InterfaceOptions};
use libcni::netlink::{
    BridgePortFlags, BridgeVlanEntry, LinkId, LinkKind, Netlink, NewLink, NewLinkKind,
};
use libcni::netns::NetNs;
use libcni::spec::result::{CniResult, Interface, IpConfig, Route};
use netlink_packet_route::link::MacVlanMode;
use serde_json::{json, Value};
use testkit::{sh, Sandbox};

fn ip_json(args: &[&str]) -> Value {
    let mut all = vec!["ip", "-j", "-d"];
    all.extend_from_slice(args);
    serde_json::from_str(&sh(&all)).unwrap()
}

fn link_in(netns: &str, name: &str) -> Option<Value> {
    let out = std::process::Command::new("ip")
        .args(["-j", "-d", "-n", netns, "link", "show", name])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice::<Value>(&out.stdout)
        .ok()
        .and_then(|v| v.get(0).cloned())
}

#[test]
fn veth_peer_is_created_directly_in_the_container_netns() {
    let Some(sb) = Sandbox::new("veth_peer_in_netns") else {
        return;
    };
    let c1 = sb.netns("c1");
    let ns = NetNs::open(Path::new(&c1)).unwrap();
    let mut nl = Netlink::open().unwrap();
    nl.create_link(&NewLink::new(
        "br0",
        NewLinkKind::Bridge {
            vlan_filtering: None,
        },
    ))
    .unwrap();
    let bridge = nl.require_link(&LinkId::Name("br0")).unwrap();
    let mut peer = NewLink::peer("eth0");
    peer.netns = Some(ns.fd());
    peer.mac = Some(libcni::mac::MacAddr([0x0a, 0x58, 0, 0, 0, 0x42]));
    peer.mtu = Some(1400);
    let mut veth = NewLink::new(
        "vethtest0",
        NewLinkKind::Veth {
            peer: Box::new(peer),
        },
    );
    veth.controller = Some(bridge.index);
    veth.up = true;
    nl.create_link(&veth).unwrap();

    let inside = link_in("c1", "eth0").expect("eth0 exists in c1");
    assert_eq!(inside["address"], "0a:58:00:00:00:42");
    assert_eq!(inside["mtu"], 1400);
    let host = ip_json(&["link", "show", "vethtest0"]);
    assert_eq!(host[0]["master"], "br0");
    assert!(link_in("c1", "vethtest0").is_none());

    // EEXIST is reported with the object named.
    let e = nl
        .create_link(&NewLink::new(
            "br0",
            NewLinkKind::Bridge {
                vlan_filtering: None,
            },
        ))
        .unwrap_err();
    assert!(e.is_exists() && e.to_string().contains("\"br0\""), "{e}");

    let port = nl.require_link(&LinkId::Name("vethtest0")).unwrap();
    nl.set_bridge_port_flags(
        port.index,
        BridgePortFlags {
            hairpin: Some(true),
            isolated: Some(true),
            learning: Some(false),
            bpdu_guard: Some(true),
            multicast_router: Some(false),
        },
    )
    .unwrap();
    let port = ip_json(&["link", "show", "vethtest0"]);
    let flags = &port[0]["linkinfo"]["info_slave_data"];
    assert_eq!(flags["hairpin"], true);
    assert_eq!(flags["isolated"], true);
    assert_eq!(
        (&flags["learning"], &flags["guard"]),
        (&json!(false), &json!(true))
    );
    assert_eq!(flags["multicast_router"], 0);
    let read = nl.require_link(&LinkId::Name("vethtest0")).unwrap();
    assert_eq!(
        (read.learning, read.bpdu_guard, read.multicast_router),
        (Some(false), Some(true), Some(false))
    );

    assert!(nl.delete_link_if_present("vethtest0").unwrap());
    assert!(!nl.delete_link_if_present("vethtest0").unwrap());
    assert!(
        link_in("c1", "eth0").is_none(),
        "deleting one end removes the peer"
    );
}

#[test]
fn move_into_a_netns_and_rename_in_one_step() {
    let Some(sb) = Sandbox::new("move_and_rename") else {
        return;
    };
    let c1 = sb.netns("c1");
    sh(&[
        "ip", "link", "add", "tmpa", "type", "veth", "peer", "name", "tmpb",
    ]);
    let ns = NetNs::open(Path::new(&c1)).unwrap();
    let mut nl = Netlink::open().unwrap();
    let link = nl.require_link(&LinkId::Name("tmpa")).unwrap();
    nl.change_link(link.index)
        .netns(ns.fd(), &c1)
        .name("net1")
        .apply()
        .unwrap();
    assert!(link_in("c1", "net1").is_some());
    assert!(nl.get_link(&LinkId::Name("tmpa")).unwrap().is_none());
}

#[test]
fn macvlan_is_created_in_the_container_with_its_mode() {
    let Some(sb) = Sandbox::new("macvlan_create") else {
        return;
    };
    let c1 = sb.netns("c1");
    sh(&[
        "ip", "link", "add", "uplink0", "type", "veth", "peer", "name", "uplink1",
    ]);
    let ns = NetNs::open(Path::new(&c1)).unwrap();
    let mut nl = Netlink::open().unwrap();
    let parent = nl.require_link(&LinkId::Name("uplink0")).unwrap();
    let mut mv = NewLink::new(
        "mvtmp0",
        NewLinkKind::MacVlan {
            parent: parent.index,
            mode: MacVlanMode::Private,
            broadcast_queue_len: None,
        },
    );
    mv.netns = Some(ns.fd());
    nl.create_link(&mv).unwrap();
    let mut inner = ns.netlink().unwrap();
    let created = inner.require_link(&LinkId::Name("mvtmp0")).unwrap();
    assert_eq!(created.kind, Some(LinkKind::Macvlan));
    assert_eq!(created.macvlan_mode, Some(MacVlanMode::Private));
    inner
        .change_link(created.index)
        .name("eth1")
        .apply()
        .unwrap();
    assert_eq!(
        link_in("c1", "eth1").unwrap()["linkinfo"]["info_data"]["mode"],
        "private"
    );
}

/// A netns "c1" of `sb` with the end "eth0" of a veth pair in it: the netns, and
/// the interface as a result names it.
fn eth0_in_c1(sb: &Sandbox) -> (NetNs, Vec<Interface>) {
    let c1 = sb.netns("c1");
    sh(&[
        "ip", "link", "add", "hostside", "type", "veth", "peer", "name", "eth0", "netns", "c1",
    ]);
    let interface = Interface {
        name: "eth0".into(),
        sandbox: Some(c1.clone()),
        ..Default::default()
    };
    (NetNs::open(Path::new(&c1)).unwrap(), vec![interface])
}

#[test]
fn an_ipam_result_is_applied_with_routes_mtu_and_advmss() {
    let Some(sb) = Sandbox::new("apply_result") else {
        return;
    };
    let (ns, interfaces) = eth0_in_c1(&sb);
    let result = CniResult {
        interfaces,
        ips: vec![
            IpConfig {
                address: "10.50.0.5/24".parse().unwrap(),
                gateway: Some("10.50.0.1".parse().unwrap()),
                interface: Some(0),
            },
            IpConfig {
                address: "fd00:50::5/64".parse().unwrap(),
                gateway: Some("fd00:50::1".parse().unwrap()),
                interface: Some(0),
            },
        ],
        routes: vec![
            Route {
                dst: "0.0.0.0/0".parse().unwrap(),
                ..Default::default()
            },
            Route {
                dst: "192.168.7.0/24".parse().unwrap(),
                gw: Some("10.50.0.254".parse().unwrap()),
                mtu: Some(1300),
                advmss: Some(1260),
                priority: Some(50),
                ..Default::default()
            },
            Route {
                dst: "::/0".parse().unwrap(),
                ..Default::default()
            },
        ],
        dns: Default::default(),
    };
    let mut nl = ns.netlink().unwrap();
    configure_interface(
        &ns,
        &mut nl,
        "eth0",
        &result,
        InterfaceOptions { ipv6_dad: false },
    )
    .unwrap();

    let addrs = sh(&["ip", "-n", "c1", "addr", "show", "eth0"]);
    assert!(
        addrs.contains("inet 10.50.0.5/24 brd 10.50.0.255"),
        "{addrs}"
    );
    assert!(addrs.contains("inet6 fd00:50::5/64"), "{addrs}");
    let routes = sh(&["ip", "-n", "c1", "route", "show"]);
    assert!(
        routes.contains("default via 10.50.0.1 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("192.168.7.0/24 via 10.50.0.254 dev eth0"),
        "{routes}"
    );
    assert!(
        routes.contains("metric 50")
            && routes.contains("mtu 1300")
            && routes.contains("advmss 1260"),
        "{routes}"
    );
    let routes6 = sh(&["ip", "-n", "c1", "-6", "route", "show"]);
    assert!(
        routes6.contains("default via fd00:50::1 dev eth0"),
        "{routes6}"
    );
    let dad = sh(&[
        "ip",
        "netns",
        "exec",
        "c1",
        "cat",
        "/proc/sys/net/ipv6/conf/eth0/accept_dad",
    ]);
    assert_eq!(dad.trim(), "0");
    let arp = sh(&[
        "ip",
        "netns",
        "exec",
        "c1",
        "cat",
        "/proc/sys/net/ipv4/conf/eth0/arp_notify",
    ]);
    assert_eq!(arp.trim(), "1");
    // The sysctl ran on a thread of its own: the test's thread is still in its netns.
    assert_eq!(
        sh(&["cat", "/proc/sys/net/ipv4/conf/lo/arp_notify"]).trim(),
        "0"
    );
}

/// Every key of `/proc/sys/net/ipv4/conf/<ifname>/` in `netns`, with its value.
fn ipv4_conf_in(netns: &str, ifname: &str) -> Vec<(String, String)> {
    let script = format!("cd /proc/sys/net/ipv4/conf/{ifname} && grep -r . .");
    let out = sh(&["ip", "netns", "exec", netns, "sh", "-c", &script]);
    let mut keys: Vec<(String, String)> = out
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim_start_matches("./").to_string(), v.to_string()))
        .collect();
    keys.sort();
    keys
}

#[test]
fn an_ipv4_result_turns_on_arp_notify_and_no_other_ipv4_setting() {
    let Some(sb) = Sandbox::new("apply_v4_conf") else {
        return;
    };
    let (ns, interfaces) = eth0_in_c1(&sb);
    let before = ipv4_conf_in("c1", "eth0");
    let result = CniResult {
        interfaces,
        ips: vec![IpConfig {
            address: "10.51.0.5/24".parse().unwrap(),
            gateway: None,
            interface: Some(0),
        }],
        ..Default::default()
    };
    let mut nl = ns.netlink().unwrap();
    configure_interface(&ns, &mut nl, "eth0", &result, InterfaceOptions::default()).unwrap();

    let after = ipv4_conf_in("c1", "eth0");
    let changed: Vec<_> = after.iter().filter(|kv| !before.contains(kv)).collect();
    assert_eq!(
        changed,
        [&("arp_notify".to_string(), "1".to_string())],
        "before: {before:?}"
    );
    assert_eq!(
        sh(&["cat", "/proc/sys/net/ipv4/conf/lo/arp_notify"]).trim(),
        "0",
        "the caller's netns is not the container's"
    );
    let addrs = sh(&["ip", "-n", "c1", "addr", "show", "eth0"]);
    assert!(addrs.contains("inet 10.51.0.5/24"), "{addrs}");
}

#[test]
fn bridge_vlans_where_the_kernel_has_vlan_filtering() {
    let Some(sb) = Sandbox::new("bridge_vlans") else {
        return;
    };
    let _ = sb;
    let mut nl = Netlink::open().unwrap();
    nl.create_link(&NewLink::new(
        "brv",
        NewLinkKind::Bridge {
            vlan_filtering: None,
        },
    ))
    .unwrap();
    let bridge = nl.require_link(&LinkId::Name("brv")).unwrap();
    if let Err(e) = nl.set_vlan_filtering(bridge.index, true) {
        testkit::kernel_feature_missing(
            "bridge_vlans_where_the_kernel_has_vlan_filtering",
            &format!("bridge VLAN filtering ({e})"),
        );
        return;
    }
    let filtering = ip_json(&["link", "show", "brv"]);
    if filtering[0]["linkinfo"]["info_data"]["vlan_filtering"] != 1 {
        // This kernel accepts the attribute but has no VLAN filtering (CONFIG_BRIDGE_VLAN_FILTERING=n).
        testkit::kernel_feature_missing(
            "bridge_vlans_where_the_kernel_has_vlan_filtering",
            "bridge VLAN filtering",
        );
        return;
    }
    sh(&[
        "ip", "link", "add", "pa", "type", "veth", "peer", "name", "pb",
    ]);
    let port = nl.require_link(&LinkId::Name("pa")).unwrap();
    nl.change_link(port.index)
        .controller(bridge.index)
        .apply()
        .unwrap();
    nl.bridge_vlan_add(port.index, BridgeVlanEntry::access(1223))
        .unwrap();
    nl.bridge_vlan_del(port.index, 1).unwrap();
    let dump = nl.bridge_vlan_dump().unwrap();
    let vlans = &dump.iter().find(|(i, _)| *i == port.index).unwrap().1;
    assert_eq!(
        vlans,
        &vec![BridgeVlanEntry {
            vid: 1223,
            pvid: true,
            untagged: true
        }]
    );
}

#[test]
fn netns_run_never_moves_the_callers_thread() {
    let Some(sb) = Sandbox::new("netns_thread") else {
        return;
    };
    let c1 = sb.netns("c1");
    let before = std::fs::read_link("/proc/thread-self/ns/net").unwrap();
    let ns = NetNs::open(Path::new(&c1)).unwrap();
    let inside = ns
        .run(|| std::fs::read_link("/proc/thread-self/ns/net").unwrap())
        .unwrap();
    assert_ne!(inside, before);
    assert_eq!(
        std::fs::read_link("/proc/thread-self/ns/net").unwrap(),
        before
    );
    // A socket made inside stays there: it sees c1's lo only.
    let links = ns.netlink().unwrap().list_links().unwrap();
    assert_eq!(
        links.iter().map(|l| l.name.as_str()).collect::<Vec<_>>(),
        vec!["lo"]
    );
}

#[test]
fn a_veth_pair_is_created_up_in_the_callers_netns() {
    let Some(_sb) = Sandbox::new("veth_up_local") else {
        return;
    };
    let mut nl = Netlink::open().unwrap();
    let mut veth = NewLink::new(
        "gw.50",
        NewLinkKind::Veth {
            peer: Box::new(NewLink::peer("gwpeer0")),
        },
    );
    veth.up = true;
    nl.create_link(&veth).unwrap();
    let link = nl.require_link(&LinkId::Name("gw.50")).unwrap();
    assert!(link.up);
    assert!(nl.get_link(&LinkId::Name("gwpeer0")).unwrap().is_some());
}

/// The nf_tables client against the kernel: a macspoofchk-shaped transaction reads
/// back through the client and prints, in `nft`, exactly as the Go plugin's rules.
#[test]
fn nftables_transactions_read_back_and_print_as_nft_writes_them() {
    use libcni::netlink::nftables::{
        BaseChain, Batch, ChainHook, ChainRef, Expr, Family, Nftables, Verdict,
    };
    let Some(_sb) = Sandbox::new("nftables_client") else {
        return;
    };
    let chain = |name| ChainRef {
        family: Family::Bridge,
        table: "nat",
        chain: name,
    };
    let mut nft = Nftables::open().unwrap();
    assert_eq!(nft.rules(chain("PREROUTING")).unwrap(), None);
    let mut jump = Expr::iifname_is("vethc02fdee7");
    jump.push(Expr::Verdict(Verdict::Jump("cni-br-iface-c1-net1".into())));
    let mut allow = Expr::ether_saddr_is(libcni::mac::MacAddr([2, 0, 0, 0, 0, 0x42]));
    allow.push(Expr::Verdict(Verdict::Return));
    let comment = Some("macspoofchk-c1-net1");
    let mut batch = Batch::new();
    batch
        .add_table(Family::Bridge, "nat", None)
        .add_chain(
            chain("PREROUTING"),
            Some(&BaseChain {
                kind: "filter",
                hook: ChainHook::Prerouting,
                priority: -300,
            }),
            None,
        )
        .add_chain(chain("cni-br-iface-c1-net1"), None, None)
        .add_chain(chain("cni-br-iface-c1-net1-mac"), None, None)
        .add_rule(chain("PREROUTING"), &jump, comment)
        .add_rule(
            chain("cni-br-iface-c1-net1"),
            &[Expr::Verdict(Verdict::Jump(
                "cni-br-iface-c1-net1-mac".into(),
            ))],
            comment,
        )
        .add_rule(chain("cni-br-iface-c1-net1-mac"), &allow, comment)
        .add_rule(
            chain("cni-br-iface-c1-net1-mac"),
            &[Expr::Verdict(Verdict::Drop)],
            comment,
        );
    nft.commit(batch).unwrap();
    assert_eq!(
        sh(&["nft", "list", "ruleset"]),
        "table bridge nat {\n\tchain PREROUTING {\n\t\ttype filter hook prerouting priority dstnat; policy accept;\n\t\tiifname \"vethc02fdee7\" jump cni-br-iface-c1-net1 comment \"macspoofchk-c1-net1\"\n\t}\n\n\tchain cni-br-iface-c1-net1 {\n\t\tjump cni-br-iface-c1-net1-mac comment \"macspoofchk-c1-net1\"\n\t}\n\n\tchain cni-br-iface-c1-net1-mac {\n\t\tether saddr 02:00:00:00:00:42 return comment \"macspoofchk-c1-net1\"\n\t\tdrop comment \"macspoofchk-c1-net1\"\n\t}\n}\n"
    );
    let rules = nft.rules(chain("PREROUTING")).unwrap().unwrap();
    assert_eq!(rules[0].iifname().as_deref(), Some("vethc02fdee7"));
    assert_eq!(rules[0].comment.as_deref(), Some("macspoofchk-c1-net1"));
    let by_handle = nft
        .rule(chain("PREROUTING"), rules[0].handle)
        .unwrap()
        .unwrap();
    assert_eq!(by_handle, rules[0]);
    let mut chains = nft.chains(Family::Bridge, "nat").unwrap().unwrap();
    chains.sort();
    assert_eq!(
        chains,
        [
            "PREROUTING",
            "cni-br-iface-c1-net1",
            "cni-br-iface-c1-net1-mac"
        ]
    );
    // A transaction that fails changes nothing and names what the kernel refused.
    let mut failing = Batch::new();
    failing
        .delete_rule(chain("PREROUTING"), rules[0].handle)
        .delete_chain(chain("no-such-chain"));
    let e = nft.commit(failing).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("failed to delete chain bridge nat \"no-such-chain\": ENOENT"),
        "{e}"
    );
    assert_eq!(nft.rules(chain("PREROUTING")).unwrap().unwrap().len(), 1);
    // Only the last operation asks for an ACK: a refusal anywhere else is still
    // found and named, the first of several.
    let mut failing = Batch::new();
    failing
        .delete_rule(chain("PREROUTING"), rules[0].handle)
        .delete_chain(chain("no-such-chain"))
        .delete_chain(chain("nor-this-one"))
        .add_chain(chain("made-by-a-failed-batch"), None, None);
    let e = nft.commit(failing).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("failed to delete chain bridge nat \"no-such-chain\": ENOENT"),
        "{e}"
    );
    let mut chains_now = nft.chains(Family::Bridge, "nat").unwrap().unwrap();
    chains_now.sort();
    assert_eq!(chains_now, chains, "the failed batch changed nothing");
    assert_eq!(nft.rules(chain("PREROUTING")).unwrap().unwrap().len(), 1);
    // And a batch that succeeds is answered once, by its last operation.
    let mut passing = Batch::new();
    passing
        .add_chain(chain("one"), None, None)
        .add_chain(chain("two"), None, None)
        .delete_chain(chain("one"));
    nft.commit(passing).unwrap();
    let mut chains_now = nft.chains(Family::Bridge, "nat").unwrap().unwrap();
    chains_now.sort();
    assert!(chains_now.contains(&"two".to_string()) && !chains_now.contains(&"one".to_string()));
}

/// The announcements reach the wire: a gratuitous ARP and an unsolicited neighbour
/// advertisement (valid, as the peer's kernel accepts it) for each address.
#[test]
fn addresses_are_announced_on_the_wire() {
    let Some(sb) = Sandbox::new("announce") else {
        return;
    };
    let pod = sb.netns("pod");
    sh(&[
        "ip", "link", "add", "anpeer", "type", "veth", "peer", "name", "eth0", "netns", "pod",
    ]);
    sh(&["ip", "link", "set", "anpeer", "up"]);
    sh(&[
        "ip",
        "-n",
        "pod",
        "link",
        "set",
        "eth0",
        "address",
        "02:00:00:00:00:5a",
        "up",
    ]);
    let ns = NetNs::open(Path::new(&pod)).unwrap();
    let addresses: Vec<std::net::IpAddr> =
        vec!["10.77.0.5".parse().unwrap(), "fd00:77::5".parse().unwrap()];
    let frames = testkit::capture_frames("anpeer", std::time::Duration::from_millis(600), || {
        let sent = libcni::host::announce::announce(&ns, "eth0", &addresses).unwrap();
        assert_eq!(sent, 2);
    });
    let arp = frames
        .iter()
        .find(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06])
        .expect("a gratuitous ARP arrived");
    assert_eq!(&arp[6..12], &[2, 0, 0, 0, 0, 0x5a]);
    assert_eq!(&arp[28..32], &[10, 77, 0, 5]);
    assert_eq!(&arp[38..42], &[10, 77, 0, 5]);
    let na = frames
        .iter()
        .find(|f| f.len() >= 78 && f[12..14] == [0x86, 0xdd] && f[54] == 136)
        .expect("an unsolicited neighbour advertisement arrived");
    assert_eq!(
        &na[62..78],
        &"fd00:77::5".parse::<std::net::Ipv6Addr>().unwrap().octets()
    );
}
