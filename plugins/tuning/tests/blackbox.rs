//! tuning exec'd as a runtime chains it: after bridge, beside Debian's Go tuning,
//! in namespaces each test makes for itself.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use testkit::{go_plugin, plugin, sh, with_prev, Call, Output, Sandbox};

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_tuning"))
}

fn run(bin: &Path, command: &str, cid: &str, netns: &str, conf: &Value) -> Output {
    Call::attach(command, cid, netns, "eth0")
        .config(conf)
        .run(bin)
}

/// A bridge attachment to tune, and its result.
fn attached(cid: &str, netns: &str) -> Value {
    let bridge = json!({"cniVersion": "1.0.0", "name": "tn", "type": "bridge", "bridge": "tunbr0"});
    run(&plugin("bridge"), "ADD", cid, netns, &bridge).expect_success()
}

fn link(netns: &str) -> Value {
    let all: Value = serde_json::from_str(&sh(&[
        "ip", "-j", "-d", "-n", netns, "link", "show", "eth0",
    ]))
    .unwrap();
    all[0].clone()
}

fn tuning(data_dir: &Path, keys: Value) -> Value {
    let mut conf =
        json!({"cniVersion": "1.0.0", "name": "tn", "type": "tuning", "dataDir": data_dir});
    conf.as_object_mut()
        .unwrap()
        .extend(keys.as_object().unwrap().clone());
    conf
}

#[test]
fn chained_after_bridge_it_tunes_and_del_restores() {
    let Some(sb) = Sandbox::new("tuning_chain") else {
        return;
    };
    let pod = sb.netns("pod");
    let prev = attached("t1", &pod);
    let before = link("pod");
    let conf = tuning(
        &sb.scratch,
        json!({"sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1", "net.ipv4.conf.all.arp_ignore": "2"},
               "mac": "02:00:00:00:aa:01", "mtu": 1400, "promisc": true, "allmulti": true, "txQLen": 500}),
    );
    let result = run(&ours(), "ADD", "t1", &pod, &with_prev(&conf, &prev)).expect_success();
    assert_eq!(
        result["interfaces"][2]["mac"], "02:00:00:00:aa:01",
        "the result has the new MAC"
    );
    let now = link("pod");
    assert_eq!(now["address"], "02:00:00:00:aa:01");
    assert_eq!(now["mtu"], 1400);
    assert_eq!(now["txqlen"], 500);
    assert!(now["promiscuity"].as_u64().unwrap() > 0);
    assert!(now["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("ALLMULTI")));
    let sysctl = sh(&[
        "ip",
        "netns",
        "exec",
        "pod",
        "cat",
        "/proc/sys/net/ipv4/conf/eth0/arp_filter",
    ]);
    assert_eq!(sysctl.trim(), "1");
    let saved: Value =
        serde_json::from_slice(&std::fs::read(sb.scratch.join("t1_eth0.json")).unwrap()).unwrap();
    assert_eq!(saved["mtu"], before["mtu"]);
    assert_eq!(saved["mac"], before["address"]);

    run(&ours(), "CHECK", "t1", &pod, &with_prev(&conf, &result)).expect_success();
    sh(&["ip", "-n", "pod", "link", "set", "eth0", "mtu", "1300"]);
    let msg = run(&ours(), "CHECK", "t1", &pod, &with_prev(&conf, &result)).error(999);
    assert!(msg.contains("MTU"), "{msg}");

    run(&ours(), "DEL", "t1", &pod, &with_prev(&conf, &result)).expect_success();
    let after = link("pod");
    assert_eq!(after["address"], before["address"]);
    assert_eq!(after["mtu"], before["mtu"]);
    assert_eq!(after["promiscuity"], before["promiscuity"]);
    assert!(!after["flags"]
        .as_array()
        .unwrap()
        .contains(&json!("ALLMULTI")));
    assert!(!sb.scratch.join("t1_eth0.json").exists());
    run(&ours(), "DEL", "t1", &pod, &conf).expect_success();
}

#[test]
fn sysctls_outside_net_and_duplicated_keys_are_refused() {
    let Some(sb) = Sandbox::new("tuning_refusals") else {
        return;
    };
    let pod = sb.netns("pod");
    let prev = attached("t2", &pod);
    for sysctl in [
        json!({"kernel.hostname": "x"}),
        json!({"vm.swappiness": "1"}),
    ] {
        let conf = tuning(&sb.scratch, json!({"sysctl": sysctl}));
        let msg = run(&ours(), "ADD", "t2", &pod, &with_prev(&conf, &prev)).error(7);
        assert!(msg.contains("invalid net sysctl key"), "{msg}");
    }
    let raw = format!(
        r#"{{"cniVersion":"1.0.0","name":"tn","type":"tuning","dataDir":"{}","sysctl":{{"net.ipv4.conf.all.arp_ignore":"1","net.ipv4.conf.all.arp_ignore":"2"}},"prevResult":{}}}"#,
        sb.scratch.display(),
        prev
    );
    let msg = Call::attach("ADD", "t2", &pod, "eth0")
        .stdin(raw)
        .run(&ours())
        .error(7);
    assert!(msg.contains("duplicated"), "{msg}");
    let msg = run(
        &ours(),
        "ADD",
        "t2",
        &pod,
        &tuning(&sb.scratch, json!({"mtu": 1400})),
    )
    .error(7);
    assert!(msg.contains("prevResult"), "{msg}");
}

/// The state file is the Go plugin's: either DEL restores what the other's ADD
/// changed, and both write the same bytes.
#[test]
fn go_and_ours_restore_each_others_changes() {
    let Some(sb) = Sandbox::new("tuning_interop") else {
        return;
    };
    let Some(go) = go_plugin("go_and_ours_restore_each_others_changes", "tuning") else {
        return;
    };
    let pod = sb.netns("pod");
    let prev = attached("t3", &pod);
    let before = link("pod");
    let conf = tuning(
        &sb.scratch,
        json!({"mac": "02:00:00:00:aa:03", "mtu": 1280, "promisc": true}),
    );
    for (adder, deleter) in [(&go, &ours()), (&ours(), &go)] {
        run(adder, "ADD", "t3", &pod, &with_prev(&conf, &prev)).expect_success();
        assert_eq!(link("pod")["mtu"], 1280);
        run(deleter, "DEL", "t3", &pod, &with_prev(&conf, &prev)).expect_success();
        let after = link("pod");
        assert_eq!(
            (&after["address"], &after["mtu"]),
            (&before["address"], &before["mtu"])
        );
        assert!(!sb.scratch.join("t3_eth0.json").exists());
    }
    run(&go, "ADD", "t3", &pod, &with_prev(&conf, &prev)).expect_success();
    let go_bytes = std::fs::read(sb.scratch.join("t3_eth0.json")).unwrap();
    run(&go, "DEL", "t3", &pod, &conf).expect_success();
    run(&ours(), "ADD", "t3", &pod, &with_prev(&conf, &prev)).expect_success();
    let our_bytes = std::fs::read(sb.scratch.join("t3_eth0.json")).unwrap();
    assert_eq!(
        String::from_utf8(our_bytes).unwrap(),
        String::from_utf8(go_bytes).unwrap()
    );
    run(&ours(), "DEL", "t3", &pod, &conf).expect_success();
}
