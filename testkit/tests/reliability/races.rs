//! Teardowns that race each other: GC of two networks at once, DELs of gone pods
//! beside a GC, several DELs of one attachment. Runtimes do all of these (a DEL
//! retried while the first still runs, a GC per network on a timer). Whoever comes
//! second finds some of the state gone, and that is success: every call must exit
//! 0 and nothing may be left. Each test runs enough rounds to fail reliably on a
//! teardown that reads, then commits what it read.

use std::path::PathBuf;
use std::sync::{Arc, Barrier};

use serde_json::{json, Value};
use testkit::{plugin, sh, with_prev, Call, Output, Sandbox};

const ROUNDS: usize = 15;

/// Runs every call at the same moment (released together) and returns the outputs.
fn all_at_once(calls: Vec<Call>, binary: PathBuf) -> Vec<Output> {
    let barrier = Arc::new(Barrier::new(calls.len()));
    let handles: Vec<_> = calls
        .into_iter()
        .map(|call| {
            let (barrier, binary) = (barrier.clone(), binary.clone());
            std::thread::spawn(move || {
                barrier.wait();
                call.run(&binary)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

fn assert_all_succeeded(outputs: &[Output], what: &str) {
    for out in outputs {
        assert_eq!(
            out.code, 0,
            "{what}: a call failed: stdout {} stderr {}",
            out.stdout, out.stderr
        );
    }
}

fn ruleset() -> String {
    sh(&["nft", "list", "ruleset"])
}

/// The macspoofchk rules `count` attachments leave when their pods are gone (their
/// host veths no longer exist), in the layout both plugins write.
fn stale_spoofcheck(count: usize) {
    let mut script = String::from(
        "add table bridge nat\n\
         add chain bridge nat PREROUTING { type filter hook prerouting priority -300 ; policy accept ; }\n",
    );
    for n in 0..count {
        let reference = format!("s{n}-eth0");
        let (iface, mac) = (
            format!("cni-br-iface-{reference}"),
            format!("cni-br-iface-{reference}-mac"),
        );
        let comment = format!("comment \"macspoofchk-{reference}\"");
        script.push_str(&format!(
            "add chain bridge nat {iface}\n\
             add chain bridge nat {mac}\n\
             add rule bridge nat PREROUTING iifname \"vethgone{n}\" jump {iface} {comment}\n\
             add rule bridge nat {iface} jump {mac} {comment}\n\
             add rule bridge nat {mac} ether saddr 02:00:00:00:00:{n:02x} return {comment}\n\
             add rule bridge nat {mac} drop {comment}\n"
        ));
    }
    let path = std::env::temp_dir().join(format!("stale-{}-{count}.nft", std::process::id()));
    std::fs::write(&path, script).unwrap();
    sh(&["nft", "-f", &path.display().to_string()]);
    let _ = std::fs::remove_file(path);
    assert_eq!(ruleset().matches("jump cni-br-iface-s").count(), 2 * count);
}

fn gc(conf: &Value) -> Call {
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([]);
    Call::new("GC")
        .env("CNI_PATH", &testkit::bin_dir().display().to_string())
        .config(&gc)
}

fn spoofcheck_conf(network: &str) -> Value {
    json!({"cniVersion": "1.1.0", "name": network, "type": "bridge", "bridge": "racebr0",
           "macspoofchk": true})
}

/// GC of two networks on one bridge at the same moment, with 16 stale macspoofchk
/// attachments: both succeed and the rules are gone.
#[test]
fn gcs_of_two_networks_at_once_both_succeed() {
    let Some(_sb) = Sandbox::new("race_gc_gc") else {
        return;
    };
    for round in 0..ROUNDS {
        stale_spoofcheck(16);
        let outputs = all_at_once(
            vec![gc(&spoofcheck_conf("n1")), gc(&spoofcheck_conf("n2"))],
            plugin("bridge"),
        );
        assert_all_succeeded(&outputs, &format!("round {round}"));
        assert!(!ruleset().contains("macspoofchk"), "{}", ruleset());
    }
}

/// Ten DELs of gone pods beside one GC, over 16 stale attachments: all succeed and
/// the rules are gone.
#[test]
fn dels_of_gone_pods_beside_a_gc_all_succeed() {
    let Some(_sb) = Sandbox::new("race_del_gc") else {
        return;
    };
    let conf = spoofcheck_conf("n1");
    for round in 0..ROUNDS {
        stale_spoofcheck(16);
        let mut calls: Vec<Call> = (0..10)
            .map(|n| Call::attach("DEL", &format!("s{n}"), "/run/netns/gone", "eth0").config(&conf))
            .collect();
        calls.push(gc(&conf));
        let outputs = all_at_once(calls, plugin("bridge"));
        assert_all_succeeded(&outputs, &format!("round {round}"));
        assert!(!ruleset().contains("macspoofchk"), "{}", ruleset());
    }
}

/// Four DELs of one attachment at once (ipMasq and macspoofchk), as retries of a
/// runtime that timed out: all succeed and nothing is left, with either
/// masquerade backend.
#[test]
fn parallel_dels_of_one_attachment_all_succeed() {
    let Some(sb) = Sandbox::new("race_del_del") else {
        return;
    };
    let pod = sb.netns("pod");
    for backend in ["nftables", "iptables"] {
        let conf = json!({"cniVersion": "1.1.0", "name": "racemasq", "type": "bridge", "bridge": "racebr1",
                          "macspoofchk": true, "ipMasq": true, "ipMasqBackend": backend,
                          "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.140.0.0/24"}]], "dataDir": sb.scratch}});
        for round in 0..ROUNDS {
            let result = Call::attach("ADD", "c1", &pod, "eth0")
                .config(&conf)
                .run(&plugin("bridge"))
                .expect_success();
            let del = Call::attach("DEL", "c1", &pod, "eth0").config(&with_prev(&conf, &result));
            let outputs = all_at_once(vec![del; 4], plugin("bridge"));
            assert_all_succeeded(&outputs, &format!("{backend}, round {round}"));
            let rules = ruleset();
            assert!(
                !rules.contains("macspoofchk") && !rules.contains("racemasq"),
                "{backend}, round {round}: {rules}"
            );
            let links = sh(&["ip", "-n", "pod", "link", "show"]);
            assert!(!links.contains("eth0"), "{backend}, round {round}: {links}");
        }
    }
}

/// GC of a network (valid list: the attachments the runtime knows, the new one
/// included) at the moment a new attachment of that network is added on the same
/// bridge, beside a stale one: the new attachment keeps its macspoofchk rules, its
/// masquerade rules and its address; the stale one's are gone.
#[test]
fn gc_beside_an_add_on_the_same_network_keeps_the_new_attachment() {
    let Some(sb) = Sandbox::new("race_gc_add") else {
        return;
    };
    let pod = sb.netns("pod");
    let data = sb.scratch.join("ipam");
    let conf = json!({"cniVersion": "1.1.0", "name": "racegc", "type": "bridge", "bridge": "racebr2",
                      "macspoofchk": true, "ipMasq": true, "ipMasqBackend": "nftables",
                      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.141.0.0/24"}]], "dataDir": data}});
    for round in 0..ROUNDS {
        let stale = Call::attach("ADD", "stale", &pod, "eth1")
            .config(&conf)
            .run(&plugin("bridge"))
            .expect_success();
        // The stale pod's host veth goes with it; its rules and address stay.
        let host_veth = stale["interfaces"][1]["name"].as_str().unwrap().to_string();
        sh(&["ip", "link", "del", &host_veth]);
        let mut gc_conf = conf.clone();
        gc_conf["cni.dev/valid-attachments"] = json!([{"containerID": "new", "ifname": "eth0"}]);
        let gc = Call::new("GC")
            .env("CNI_PATH", &testkit::bin_dir().display().to_string())
            .config(&gc_conf);
        let add = Call::attach("ADD", "new", &pod, "eth0").config(&conf);
        // GCs at the moment the ADD starts, and one after it.
        let outputs = all_at_once(vec![add, gc.clone(), gc.clone()], plugin("bridge"));
        assert_all_succeeded(&outputs, &format!("round {round}"));
        assert_all_succeeded(&[gc.run(&plugin("bridge"))], &format!("round {round}"));
        let result: Value = serde_json::from_str(&outputs[0].stdout).unwrap();
        let address = result["ips"][0]["address"].as_str().unwrap();
        let ip = address.split('/').next().unwrap();
        let rules = ruleset();
        assert!(
            rules.contains("cni-br-iface-new-eth0") && !rules.contains("cni-br-iface-stale-eth1"),
            "round {round}: {rules}"
        );
        assert!(
            rules.contains("if: eth0, id: new") && !rules.contains("id: stale"),
            "round {round}: {rules}"
        );
        let owner = std::fs::read_to_string(data.join("racegc").join(ip)).unwrap();
        assert!(owner.starts_with("new"), "round {round}: {ip} is {owner:?}");
        let left: Vec<_> = std::fs::read_dir(data.join("racegc"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("10.141."))
            .collect();
        assert_eq!(left.len(), 1, "round {round}: {left:?}");
        let del = Call::attach("DEL", "new", &pod, "eth0").config(&with_prev(&conf, &result));
        del.run(&plugin("bridge")).expect_success();
    }
}

/// CHECK of an attachment beside its DEL: CHECK passes or fails with one error
/// object, DEL succeeds, and nothing of the attachment is left (CHECK only reads).
#[test]
fn check_beside_del_of_the_same_attachment_never_corrupts() {
    let Some(sb) = Sandbox::new("race_check_del") else {
        return;
    };
    let pod = sb.netns("pod");
    let conf = json!({"cniVersion": "1.1.0", "name": "racecheck", "type": "bridge", "bridge": "racebr3",
                      "macspoofchk": true, "ipMasq": true, "ipMasqBackend": "nftables",
                      "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.142.0.0/24"}]], "dataDir": sb.scratch}});
    for round in 0..ROUNDS {
        let result = Call::attach("ADD", "c1", &pod, "eth0")
            .config(&conf)
            .run(&plugin("bridge"))
            .expect_success();
        let prev = with_prev(&conf, &result);
        let calls = vec![
            Call::attach("CHECK", "c1", &pod, "eth0").config(&prev),
            Call::attach("DEL", "c1", &pod, "eth0").config(&prev),
        ];
        let outputs = all_at_once(calls, plugin("bridge"));
        let (check, del) = (&outputs[0], &outputs[1]);
        assert_eq!(del.code, 0, "round {round}: DEL failed: {}", del.stdout);
        if check.code != 0 {
            let error: Value = serde_json::from_str(&check.stdout)
                .unwrap_or_else(|_| panic!("round {round}: CHECK printed {:?}", check.stdout));
            assert!(
                error["code"].as_u64().is_some() && error["msg"].is_string(),
                "{error}"
            );
        }
        let rules = ruleset();
        assert!(
            !rules.contains("macspoofchk") && !rules.contains("racecheck"),
            "round {round}: {rules}"
        );
        let links = sh(&["ip", "-n", "pod", "link", "show"]);
        assert!(!links.contains("eth0"), "round {round}: {links}");
        let files: Vec<_> = std::fs::read_dir(sb.scratch.join("racecheck"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("10.142."))
            .collect();
        assert!(files.is_empty(), "round {round}: {files:?}");
    }
}
