//! VLANs on the bridge: these need a kernel with bridge VLAN filtering, so on a
//! machine without it they skip loudly and the full-kernel tier (a VM with a stock
//! Debian kernel, see scripts/vm/run.sh) runs them.

use std::path::PathBuf;

use serde_json::{json, Value};
use testkit::{ping, plugin, require_kernel, sh, Call, KernelFeature, Sandbox};

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_bridge"))
}

fn conf(sb: &Sandbox, bridge: &str, extra: Value) -> Value {
    plugin("host-local");
    let mut c = json!({"cniVersion": "1.0.0", "name": format!("net-{bridge}"), "type": "bridge", "bridge": bridge,
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.70.0.0/24"}]], "dataDir": sb.scratch}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn add(cid: &str, netns: &str, conf: &Value) -> Value {
    Call::attach("ADD", cid, netns, "eth0")
        .config(conf)
        .run(&ours())
        .expect_success()
}

/// `bridge vlan show` of one port, as (vid, pvid, untagged).
fn port_vlans(port: &str) -> Vec<(u64, bool, bool)> {
    let out: Value =
        serde_json::from_str(&sh(&["bridge", "-j", "vlan", "show", "dev", port])).unwrap();
    out.as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["vlans"].as_array().cloned().unwrap_or_default())
        .map(|v| {
            let flags: Vec<&str> = v["flags"]
                .as_array()
                .map(|f| f.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            (
                v["vlan"].as_u64().unwrap(),
                flags.contains(&"PVID"),
                flags.contains(&"Egress Untagged"),
            )
        })
        .collect()
}

#[test]
fn pods_on_one_vlan_reach_each_other_and_not_another_vlan() {
    let test = "pods_on_one_vlan_reach_each_other_and_not_another_vlan";
    let Some(sb) = Sandbox::new("vlan_isolation") else {
        return;
    };
    if !require_kernel(test, KernelFeature::BridgeVlanFiltering) {
        return;
    }
    let (a, b, c) = (sb.netns("a"), sb.netns("b"), sb.netns("c"));
    let vlan100 = conf(&sb, "brv", json!({"vlan": 100}));
    let vlan200 = conf(&sb, "brv", json!({"vlan": 200}));
    let ra = add("a", &a, &vlan100);
    add("b", &b, &vlan100);
    add("c", &c, &vlan200);
    assert!(
        ping("a", "10.70.0.3"),
        "two pods on VLAN 100 must reach each other"
    );
    assert!(!ping("a", "10.70.0.4"), "VLAN 100 must not reach VLAN 200");
    let port = ra["interfaces"][1]["name"].as_str().unwrap();
    assert_eq!(
        port_vlans(port),
        vec![(100, true, true)],
        "access port: PVID 100 untagged, VLAN 1 removed"
    );
    assert_eq!(
        sh(&["cat", "/sys/class/net/brv/bridge/vlan_filtering"]).trim(),
        "1"
    );
    let mut check = vlan100.clone();
    check["prevResult"] = ra.clone();
    Call::attach("CHECK", "a", &a, "eth0")
        .config(&check)
        .run(&ours())
        .expect_success();
    // CHECK notices a port moved out of its VLAN.
    sh(&["bridge", "vlan", "del", "dev", port, "vid", "100"]);
    Call::attach("CHECK", "a", &a, "eth0")
        .config(&check)
        .run(&ours())
        .error(999);
}

#[test]
fn cnv_bridge_keeps_the_default_vlan_and_bridge_drops_it() {
    let test = "cnv_bridge_keeps_the_default_vlan_and_bridge_drops_it";
    let Some(sb) = Sandbox::new("vlan_default") else {
        return;
    };
    if !require_kernel(test, KernelFeature::BridgeVlanFiltering) {
        return;
    }
    let a = sb.netns("a");
    let cnv = sb.scratch.join("cnv-bridge");
    std::os::unix::fs::symlink(ours(), &cnv).unwrap();
    let seed = json!({"cniVersion": "0.3.1", "name": "vlan-net-1223", "type": "cnv-bridge", "bridge": "br1", "macspoofchk": true, "vlan": 1223});
    let r = Call::attach("ADD", "seed", &a, "eth0")
        .config(&seed)
        .run(&cnv)
        .expect_success();
    let port = r["interfaces"][1]["name"].as_str().unwrap();
    let vlans = port_vlans(port);
    assert!(vlans.contains(&(1223, true, true)), "{vlans:?}");
    assert!(
        vlans.iter().any(|v| v.0 == 1),
        "cnv-bridge preserves VLAN 1 by default: {vlans:?}"
    );
    let b = sb.netns("b");
    let r = Call::attach("ADD", "plain", &b, "eth0")
        .config(&seed)
        .run(&ours())
        .expect_success();
    let vlans = port_vlans(r["interfaces"][1]["name"].as_str().unwrap());
    assert_eq!(
        vlans,
        vec![(1223, true, true)],
        "bridge drops VLAN 1 by default"
    );
}

#[test]
fn a_trunk_port_carries_tagged_frames_for_its_vids() {
    let test = "a_trunk_port_carries_tagged_frames_for_its_vids";
    let Some(sb) = Sandbox::new("vlan_trunk") else {
        return;
    };
    if !require_kernel(test, KernelFeature::BridgeVlanFiltering)
        || !require_kernel(test, KernelFeature::Vlan8021q)
    {
        return;
    }
    let (trunk_ns, access_ns, other_ns) =
        (sb.netns("trunk"), sb.netns("access"), sb.netns("other"));
    let l2 = |extra: Value| {
        let mut c =
            json!({"cniVersion": "1.0.0", "name": "trunknet", "type": "bridge", "bridge": "brt"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    };
    let rt = add(
        "t",
        &trunk_ns,
        &l2(json!({"vlanTrunk": [{"id": 300}, {"minID": 310, "maxID": 312}]})),
    );
    add("a", &access_ns, &l2(json!({"vlan": 311})));
    add("o", &other_ns, &l2(json!({"vlan": 400})));
    let port = rt["interfaces"][1]["name"].as_str().unwrap();
    let vlans = port_vlans(port);
    for vid in [300, 310, 311, 312] {
        assert!(
            vlans.contains(&(vid, false, false)),
            "VID {vid} tagged on the trunk: {vlans:?}"
        );
    }
    assert!(
        vlans.contains(&(1, true, true)),
        "native VLAN 1 without `vlan`: {vlans:?}"
    );
    // The trunk side speaks VLAN 311 tagged through an 802.1Q sub-interface.
    sh(&[
        "ip", "-n", "trunk", "link", "add", "link", "eth0", "name", "eth0.311", "type", "vlan",
        "id", "311",
    ]);
    sh(&[
        "ip",
        "-n",
        "trunk",
        "addr",
        "add",
        "10.71.0.1/24",
        "dev",
        "eth0.311",
    ]);
    sh(&["ip", "-n", "trunk", "link", "set", "eth0.311", "up"]);
    sh(&[
        "ip",
        "-n",
        "access",
        "addr",
        "add",
        "10.71.0.2/24",
        "dev",
        "eth0",
    ]);
    sh(&[
        "ip",
        "-n",
        "other",
        "addr",
        "add",
        "10.71.0.3/24",
        "dev",
        "eth0",
    ]);
    assert!(
        ping("trunk", "10.71.0.2"),
        "tagged 311 from the trunk reaches the VLAN 311 access port"
    );
    assert!(!ping("trunk", "10.71.0.3"), "nor VLAN 400");
}

#[test]
fn the_vlan_gateway_interface_goes_with_its_last_user() {
    let test = "the_vlan_gateway_interface_goes_with_its_last_user";
    let Some(sb) = Sandbox::new("vlan_gateway") else {
        return;
    };
    if !require_kernel(test, KernelFeature::BridgeVlanFiltering) {
        return;
    }
    let (a, b) = (sb.netns("a"), sb.netns("b"));
    let gw = conf(&sb, "brg", json!({"vlan": 50, "isGateway": true}));
    let ra = add("a", &a, &gw);
    add("b", &b, &gw);
    assert_eq!(ra["interfaces"][3]["name"], "brg.50");
    assert!(sh(&["ip", "addr", "show", "brg.50"]).contains("10.70.0.1/24"));
    let mark = libcni::attach::vlan_gateway_mark("brg", 50);
    assert!(
        sh(&["ip", "link", "show", "brg.50"]).contains(&format!("alias {mark}")),
        "the gateway interface carries the mark DEL looks for"
    );
    assert!(
        ping("a", "10.70.0.1"),
        "the pod reaches its gateway on VLAN 50"
    );
    Call::attach("DEL", "a", &a, "eth0")
        .config(&gw)
        .run(&ours())
        .expect_success();
    assert!(
        sh(&["ip", "-br", "link"]).contains("brg.50"),
        "still used by b"
    );
    Call::attach("DEL", "b", &b, "eth0")
        .config(&gw)
        .run(&ours())
        .expect_success();
    assert!(
        !sh(&["ip", "-br", "link"]).contains("brg.50"),
        "removed with its last user (Go leaks it)"
    );
}

/// An existing `<bridge>.<vlan>` (the admin's 802.1Q interface on the bridge, with
/// the node's own address) is used as the gateway, as Go does, but not claimed: it
/// gets no mark, and the DEL of its last user leaves it with its addresses.
#[test]
fn an_existing_vlan_interface_is_used_but_not_claimed() {
    let test = "an_existing_vlan_interface_is_used_but_not_claimed";
    let Some(sb) = Sandbox::new("vlan_gateway_admin") else {
        return;
    };
    if !require_kernel(test, KernelFeature::BridgeVlanFiltering)
        || !require_kernel(test, KernelFeature::Vlan8021q)
    {
        return;
    }
    sh(&["ip", "link", "add", "brh", "type", "bridge"]);
    sh(&["ip", "link", "set", "brh", "up"]);
    sh(&[
        "ip", "link", "add", "link", "brh", "name", "brh.60", "type", "vlan", "id", "60",
    ]);
    sh(&["ip", "addr", "add", "10.70.0.1/24", "dev", "brh.60"]);
    sh(&["ip", "link", "set", "brh.60", "up"]);
    let a = sb.netns("a");
    let gw = conf(&sb, "brh", json!({"vlan": 60, "isGateway": true}));
    let ra = add("a", &a, &gw);
    assert_eq!(ra["interfaces"][3]["name"], "brh.60");
    assert!(!sh(&["ip", "link", "show", "brh.60"]).contains("alias"));
    Call::attach("DEL", "a", &a, "eth0")
        .config(&gw)
        .run(&ours())
        .expect_success();
    assert!(
        sh(&["ip", "addr", "show", "brh.60"]).contains("10.70.0.1/24"),
        "DEL deleted the admin's brh.60"
    );
}

#[test]
fn vlan_filtering_is_turned_on_for_an_existing_bridge() {
    let test = "vlan_filtering_is_turned_on_for_an_existing_bridge";
    let Some(sb) = Sandbox::new("vlan_existing") else {
        return;
    };
    if !require_kernel(test, KernelFeature::BridgeVlanFiltering) {
        return;
    }
    sh(&["ip", "link", "add", "brx", "type", "bridge"]);
    let a = sb.netns("a");
    add("a", &a, &conf(&sb, "brx", json!({"vlan": 10})));
    assert_eq!(
        sh(&["cat", "/sys/class/net/brx/bridge/vlan_filtering"]).trim(),
        "1"
    );
}
