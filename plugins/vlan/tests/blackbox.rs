//! The vlan plugin. Its ADD needs 802.1Q in the kernel: on a machine without it the
//! tests check the clear error and skip loudly, and the full-kernel tier runs them.

use std::path::PathBuf;

use serde_json::{json, Value};
use testkit::{ping, plugin, require_kernel, sh, Call, KernelFeature, Output, Sandbox};

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_vlan"))
}

fn conf(sb: &Sandbox, vlan: u16, layer3: bool) -> Value {
    plugin("host-local");
    let mut c = json!({"cniVersion": "1.0.0", "name": "vlnet", "type": "vlan", "master": "trunk0", "vlanId": vlan});
    if layer3 {
        c["ipam"] = json!({"type": "host-local", "ranges": [[{"subnet": "10.85.0.0/24"}]], "dataDir": sb.scratch});
    }
    c
}

fn call(command: &str, cid: &str, netns: &str, conf: &Value) -> Output {
    Call::attach(command, cid, netns, "net1")
        .config(conf)
        .run(&ours())
}

/// trunk0 in the sandbox's host netns; its peer in netns `peer`.
fn trunk(sb: &Sandbox) -> String {
    let peer = sb.netns("peer");
    sh(&[
        "ip", "link", "add", "trunk0", "type", "veth", "peer", "name", "trunk1", "netns", "peer",
    ]);
    sh(&["ip", "link", "set", "trunk0", "up"]);
    sh(&["ip", "-n", "peer", "link", "set", "trunk1", "up"]);
    peer
}

#[test]
fn without_8021q_add_fails_clearly_and_leaves_nothing() {
    let Some(sb) = Sandbox::new("vlan_no_kernel") else {
        return;
    };
    trunk(&sb);
    let a = sb.netns("a");
    if KernelFeature::Vlan8021q.is_present() {
        return; // the kernel has 802.1Q: the tests below cover ADD
    }
    let before = sb.snapshot();
    let msg = call("ADD", "x", &a, &conf(&sb, 100, true)).error(999);
    assert!(msg.contains("no 802.1Q VLAN support"), "{msg}");
    assert_eq!(sb.snapshot(), before);
}

#[test]
fn a_pod_on_vlan_100_reaches_a_vlan_100_peer_and_not_vlan_200() {
    let test = "a_pod_on_vlan_100_reaches_a_vlan_100_peer_and_not_vlan_200";
    let Some(sb) = Sandbox::new("vlan_traffic") else {
        return;
    };
    if !require_kernel(test, KernelFeature::Vlan8021q) {
        return;
    }
    trunk(&sb);
    // A VLAN 100 host and a VLAN 200 host behind the other end of the trunk, each in
    // its own netns (one netns would answer for both addresses on either VLAN).
    for (vid, address, host) in [
        (100, "10.85.0.200/24", "host100"),
        (200, "10.86.0.200/24", "host200"),
    ] {
        sb.netns(host);
        let name = format!("trunk1.{vid}");
        sh(&[
            "ip",
            "-n",
            "peer",
            "link",
            "add",
            "link",
            "trunk1",
            "name",
            &name,
            "type",
            "vlan",
            "id",
            &vid.to_string(),
        ]);
        sh(&["ip", "-n", "peer", "link", "set", &name, "netns", host]);
        sh(&["ip", "-n", host, "addr", "add", address, "dev", &name]);
        sh(&["ip", "-n", host, "link", "set", &name, "up"]);
    }
    let a = sb.netns("a");
    let c = conf(&sb, 100, true);
    let r = call("ADD", "v1", &a, &c).expect_success();
    assert_eq!(r["ips"][0]["interface"], 0);
    let details: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "-n", "a", "link", "show", "net1"])).unwrap();
    assert_eq!(details[0]["linkinfo"]["info_data"]["id"], 100);
    assert!(
        ping("a", "10.85.0.200"),
        "VLAN 100 reaches the VLAN 100 peer"
    );
    sh(&[
        "ip",
        "-n",
        "a",
        "route",
        "add",
        "10.86.0.0/24",
        "dev",
        "net1",
    ]);
    assert!(!ping("a", "10.86.0.200"), "nor the VLAN 200 one");
    let mut check = c.clone();
    check["prevResult"] = r;
    call("CHECK", "v1", &a, &check).expect_success();
    call("DEL", "v1", &a, &c).expect_success();
    assert!(!sh(&["ip", "-n", "a", "link"]).contains("net1"));
}

#[test]
fn layer2_works_and_del_survives_a_missing_master() {
    let test = "layer2_works_and_del_survives_a_missing_master";
    let Some(sb) = Sandbox::new("vlan_l2_del") else {
        return;
    };
    if !require_kernel(test, KernelFeature::Vlan8021q) {
        return;
    }
    trunk(&sb);
    let a = sb.netns("a");
    let c = conf(&sb, 300, false);
    let r = call("ADD", "l2", &a, &c).expect_success();
    assert!(
        r.get("ips").is_none(),
        "layer 2: no addresses (the Go plugin needs IPAM)"
    );
    assert!(sh(&["ip", "-n", "a", "link", "show", "net1"]).contains("UP"));
    sh(&["ip", "link", "del", "trunk0"]);
    call("DEL", "l2", &a, &c).expect_success();
    call("DEL", "l2", &a, &c).expect_success();
}

#[test]
fn a_failed_add_removes_the_link_and_the_allocation() {
    let test = "a_failed_add_removes_the_link_and_the_allocation";
    let Some(sb) = Sandbox::new("vlan_rollback") else {
        return;
    };
    if !require_kernel(test, KernelFeature::Vlan8021q) {
        return;
    }
    trunk(&sb);
    let mut c = conf(&sb, 100, true);
    c["ipam"]["ranges"] = json!([[{"subnet": "10.85.0.0/24"}], [{"subnet": "10.87.0.0/30"}]]);
    call("ADD", "first", &sb.netns("b"), &c).expect_success();
    // One VLAN ID per master: the second pod uses another one.
    c["vlanId"] = json!(101);
    let a = sb.netns("a");
    let before = sb.snapshot();
    call("ADD", "second", &a, &c).error(11);
    assert_eq!(
        sb.snapshot(),
        before,
        "the Go plugin leaves the link in the container"
    );
}

/// An ADD killed between making its VLAN link (under a temporary name) and naming
/// it leaves the link in the pod, holding the VLAN ID on the master. An ADD of the
/// same attachment retried without a DEL between removes it and succeeds (before,
/// it failed with EEXIST and a hint that the master had that VLAN ID already).
#[test]
fn an_add_retried_after_one_killed_mid_way_succeeds() {
    let test = "an_add_retried_after_one_killed_mid_way_succeeds";
    let Some(sb) = Sandbox::new("vlan_retried_add") else {
        return;
    };
    if !require_kernel(test, KernelFeature::Vlan8021q) {
        return;
    }
    trunk(&sb);
    sb.netns("a");
    let c = conf(&sb, 120, true);
    sb.assert_add_retried_after_a_kill_succeeds(&ours(), "a", &c);
}
