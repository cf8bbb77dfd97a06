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
