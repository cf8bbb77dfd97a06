//! macvlan exec'd as a runtime does, with one end of a veth pair as the master, in
//! namespaces each test makes for itself.

use std::path::PathBuf;

use serde_json::{json, Value};
use testkit::{ping, plugin, sh, with_prev, Call, Output, Sandbox};

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_macvlan"))
}

/// A veth pair, both ends up, so that the master has a carrier.
fn master(name: &str) {
    testkit::veth_pair_up(name, &format!("{name}p"));
}

fn conf(sb: &Sandbox, extra: Value) -> Value {
    plugin("host-local");
    let mut c = json!({"cniVersion": "1.0.0", "name": "mvnet", "type": "macvlan", "master": "up0",
        "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.80.0.0/24"}]], "dataDir": sb.scratch}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

fn call(command: &str, cid: &str, netns: &str, conf: &Value) -> Output {
    Call::attach(command, cid, netns, "net1")
        .config(conf)
        .run(&ours())
}

#[test]
fn bridge_mode_children_reach_each_other_and_private_ones_do_not() {
    let Some(sb) = Sandbox::new("macvlan_modes") else {
        return;
    };
    master("up0");
    let (a, b) = (sb.netns("a"), sb.netns("b"));
    let bridge = conf(&sb, json!({}));
    let ra = call("ADD", "a", &a, &bridge).expect_success();
    call("ADD", "b", &b, &bridge).expect_success();
    assert_eq!(ra["interfaces"].as_array().unwrap().len(), 1);
    assert_eq!(ra["interfaces"][0]["name"], "net1");
    assert_eq!(ra["interfaces"][0]["sandbox"], a.as_str());
    assert_eq!(
        ra["ips"][0],
        json!({"interface": 0, "address": "10.80.0.2/24", "gateway": "10.80.0.1"})
    );
    let details: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "-n", "a", "link", "show", "net1"])).unwrap();
    assert_eq!(details[0]["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(details[0]["linkinfo"]["info_data"]["mode"], "bridge");
    assert!(
        ping("a", "10.80.0.3"),
        "bridge mode: siblings reach each other"
    );
    call("DEL", "a", &a, &bridge).expect_success();
    call("DEL", "b", &b, &bridge).expect_success();

    let private = conf(&sb, json!({"mode": "private"}));
    call("ADD", "a", &a, &private).expect_success();
    call("ADD", "b", &b, &private).expect_success();
    assert!(
        !ping("a", "10.80.0.3"),
        "private mode: siblings must not reach each other"
    );
    // prevResult of another container: its address is c's, which host-local's
    // CHECK (run first) names.
    let msg = call(
        "CHECK",
        "a",
        &a,
        &with_prev(
            &private,
            &call("ADD", "c", &sb.netns("c"), &private).expect_success(),
        ),
    )
    .error(7);
    assert!(msg.contains("not allocated to container a"), "{msg}");
}

#[test]
fn mac_precedence_mtu_bounds_and_modes() {
    let Some(sb) = Sandbox::new("macvlan_config") else {
        return;
    };
    master("up0");
    let a = sb.netns("a");
    let mut c = conf(&sb, json!({"mac": "02:00:00:00:00:01", "mtu": 1400}));
    let r = call("ADD", "m1", &a, &c).expect_success();
    assert_eq!(r["interfaces"][0]["mac"], "02:00:00:00:00:01");
    assert!(sh(&["ip", "-n", "a", "link", "show", "net1"]).contains("mtu 1400"));
    call("DEL", "m1", &a, &c).expect_success();
    let r = Call::attach("ADD", "m2", &a, "net1")
        .env("CNI_ARGS", "IgnoreUnknown=1;MAC=02:00:00:00:00:02")
        .config(&c)
        .run(&ours())
        .expect_success();
    assert_eq!(
        r["interfaces"][0]["mac"], "02:00:00:00:00:02",
        "CNI_ARGS beats the config"
    );
    call("DEL", "m2", &a, &c).expect_success();
    c["runtimeConfig"] = json!({"mac": "02:00:00:00:00:03"});
    let r = Call::attach("ADD", "m3", &a, "net1")
        .env("CNI_ARGS", "IgnoreUnknown=1;MAC=02:00:00:00:00:02")
        .config(&c)
        .run(&ours())
        .expect_success();
    assert_eq!(
        r["interfaces"][0]["mac"], "02:00:00:00:00:03",
        "runtimeConfig beats CNI_ARGS"
    );
    call("DEL", "m3", &a, &c).expect_success();
    let msg = call("ADD", "m4", &a, &conf(&sb, json!({"mtu": 9000}))).error(7);
    assert_eq!(msg, "invalid MTU 9000, must be [0, master MTU(1500)]");
    let r = call("ADD", "m5", &a, &conf(&sb, json!({"mode": "source"}))).expect_success();
    assert_eq!(
        r["interfaces"][0]["name"], "net1",
        "source mode (the Go plugin refuses it)"
    );
    let details: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "-n", "a", "link", "show", "net1"])).unwrap();
    assert_eq!(details[0]["linkinfo"]["info_data"]["mode"], "source");
}

#[test]
fn check_detects_a_changed_mac_and_dns_comes_from_ipam_when_the_config_has_none() {
    let Some(sb) = Sandbox::new("macvlan_check") else {
        return;
    };
    master("up0");
    let a = sb.netns("a");
    let resolv = sb.scratch.join("resolv.conf");
    std::fs::write(&resolv, "nameserver 10.80.0.53\n").unwrap();
    let mut c = conf(&sb, json!({}));
    c["ipam"]["resolvConf"] = json!(resolv);
    let r = call("ADD", "k1", &a, &c).expect_success();
    assert_eq!(
        r["dns"]["nameservers"],
        json!(["10.80.0.53"]),
        "the IPAM DNS is kept (Go drops it)"
    );
    call("CHECK", "k1", &a, &with_prev(&c, &r)).expect_success();
    sh(&[
        "ip",
        "-n",
        "a",
        "link",
        "set",
        "net1",
        "address",
        "02:99:99:99:99:99",
    ]);
    let msg = call("CHECK", "k1", &a, &with_prev(&c, &r)).error(999);
    assert!(msg.contains("MAC"), "{msg}");
    let mut with_dns = c.clone();
    with_dns["dns"] = json!({"nameservers": ["1.1.1.1"]});
    let r = call("ADD", "k2", &sb.netns("b"), &with_dns).expect_success();
    assert_eq!(
        r["dns"]["nameservers"],
        json!(["1.1.1.1"]),
        "the config's DNS wins"
    );
}

#[test]
fn del_succeeds_after_the_master_is_gone_and_in_every_idempotent_case() {
    let Some(sb) = Sandbox::new("macvlan_del") else {
        return;
    };
    master("up0");
    let a = sb.netns("a");
    let c = conf(&sb, json!({}));
    call("ADD", "d1", &a, &c).expect_success();
    sh(&["ip", "link", "del", "up0"]);
    call("DEL", "d1", &a, &c).expect_success();
    call("DEL", "d1", &a, &c).expect_success();
    Call::attach("DEL", "d1", "", "net1")
        .unset("CNI_NETNS")
        .config(&c)
        .run(&ours())
        .expect_success();
    call("DEL", "d1", "/run/netns/gone", &c).expect_success();
    let files: Vec<_> = Sandbox::files(&sb.scratch.join("mvnet"))
        .into_keys()
        .filter(|p| p.file_name().unwrap().to_str().unwrap().starts_with("10."))
        .collect();
    assert!(files.is_empty(), "{files:?}");
}

/// An ADD killed between making its link (under a temporary name) and naming it
/// leaves that link in the pod. An ADD of the same attachment retried without a DEL
/// between removes it and succeeds, and its DEL leaves the pod as it was.
#[test]
fn an_add_retried_after_one_killed_mid_way_succeeds() {
    let Some(sb) = Sandbox::new("macvlan_retried_add") else {
        return;
    };
    master("up0");
    sb.netns("a");
    let c = conf(&sb, json!({}));
    sb.assert_add_retried_after_a_kill_succeeds(&ours(), "a", &c);
}

#[test]
fn a_failed_add_leaves_no_link_and_no_allocation() {
    let Some(sb) = Sandbox::new("macvlan_rollback") else {
        return;
    };
    master("up0");
    let a = sb.netns("a");
    let mut c = conf(&sb, json!({}));
    // Two range sets, the second exhausted by a first ADD: IPAM fails after the link exists.
    c["ipam"]["ranges"] = json!([[{"subnet": "10.80.0.0/24"}], [{"subnet": "10.81.0.0/30"}]]);
    call("ADD", "first", &sb.netns("b"), &c).expect_success();
    let before = sb.snapshot();
    call("ADD", "second", &a, &c).error(11);
    assert_eq!(sb.snapshot(), before);
    // A missing master fails before anything is made.
    let msg = call("ADD", "third", &a, &conf(&sb, json!({"master": "nosuch0"}))).error(7);
    assert!(msg.contains("nosuch0"), "{msg}");
    assert_eq!(sb.snapshot(), before);
}

#[test]
fn the_default_master_is_the_default_route_interface() {
    let Some(sb) = Sandbox::new("macvlan_default_master") else {
        return;
    };
    master("up0");
    sh(&["ip", "addr", "add", "10.90.0.1/24", "dev", "up0"]);
    sh(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "10.90.0.254",
        "dev",
        "up0",
    ]);
    let a = sb.netns("a");
    let mut c = conf(&sb, json!({}));
    c.as_object_mut().unwrap().remove("master");
    call("ADD", "dm", &a, &c).expect_success();
    let details: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "-n", "a", "link", "show", "net1"])).unwrap();
    let up0: Value = serde_json::from_str(&sh(&["ip", "-j", "link", "show", "up0"])).unwrap();
    assert_eq!(details[0]["link_index"], up0[0]["ifindex"], "{details}");
}

#[test]
fn link_in_container_uses_a_master_inside_the_netns() {
    let Some(sb) = Sandbox::new("macvlan_in_container") else {
        return;
    };
    let a = sb.netns("a");
    sh(&[
        "ip", "-n", "a", "link", "add", "inner0", "type", "veth", "peer", "name", "inner0p",
    ]);
    sh(&["ip", "-n", "a", "link", "set", "inner0", "up"]);
    sh(&["ip", "-n", "a", "link", "set", "inner0p", "up"]);
    let c = conf(&sb, json!({"master": "inner0", "linkInContainer": true}));
    let host_links_before = sh(&["ip", "-o", "link", "show"]).lines().count();
    let result = call("ADD", "a", &a, &c).expect_success();
    assert_eq!(result["ips"][0]["address"], "10.80.0.2/24");
    let details: Value =
        serde_json::from_str(&sh(&["ip", "-j", "-d", "-n", "a", "link", "show", "net1"])).unwrap();
    assert_eq!(details[0]["linkinfo"]["info_kind"], "macvlan");
    assert_eq!(
        details[0]["link"], "inner0",
        "the master is the container's link"
    );
    assert_eq!(
        sh(&["ip", "-o", "link", "show"]).lines().count(),
        host_links_before,
        "nothing is created in the host's netns"
    );
    call("CHECK", "a", &a, &with_prev(&c, &result)).expect_success();
    call("DEL", "a", &a, &c).expect_success();
    assert!(
        !sh(&["ip", "-o", "-n", "a", "link", "show"]).contains("net1"),
        "DEL removes the macvlan"
    );
    assert!(sh(&["ip", "-o", "-n", "a", "link", "show"]).contains("inner0"));
}
