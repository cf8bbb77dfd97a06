//! CHECK against state taken away behind the plugin's back: each part of an
//! attachment that protects the node or the pod (the macspoofchk rules, the host
//! port's flags, the IPAM allocation) is removed in turn, and CHECK must fail naming
//! it, and change nothing. docs/security.md lists what each test proves.

use std::path::Path;

use serde_json::{json, Value};
use testkit::{plugin, sh, with_prev, Call, Output, Sandbox};

fn run(command: &str, cid: &str, netns: &str, conf: &Value) -> Output {
    Call::attach(command, cid, netns, "eth0")
        .config(conf)
        .run(&plugin(conf["type"].as_str().unwrap()))
}

/// The message of a failed CHECK (exit 1, one error object, whatever its code).
fn failure(out: &Output) -> String {
    assert_eq!(
        out.code, 1,
        "CHECK passed: stdout {} stderr {}",
        out.stdout, out.stderr
    );
    out.json()["msg"].as_str().unwrap_or_default().to_string()
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
/// naming the host veth, the chain, its jump into `-mac`, the MAC rule, the drop)
/// and the port's hairpin and isolation flags: each taken away in turn, CHECK fails
/// naming it, and leaves the ruleset as it found it.
#[test]
fn bridge_check_fails_when_any_part_of_the_port_protection_is_gone() {
    let Some(sb) = Sandbox::new("chk_spoof") else {
        return;
    };
    let pod = sb.netns("pod");
    let conf = l3("chk", "chkbr0", "10.133.0.0/24", &sb.scratch);
    let iface = "cni-br-iface-cid-eth0";
    let mac = "cni-br-iface-cid-eth0-mac";
    type Breaker = fn(&str);
    let cases: [(&str, Breaker, &str); 8] = [
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
                sh(&[
                    "nft",
                    "flush",
                    "chain",
                    "bridge",
                    "nat",
                    "cni-br-iface-cid-eth0-mac",
                ]);
                sh(&[
                    "nft",
                    "add",
                    "rule",
                    "bridge",
                    "nat",
                    "cni-br-iface-cid-eth0-mac",
                    "accept",
                ]);
            },
            "that lets",
        ),
        (
            "the chains",
            |veth| {
                delete_rule("PREROUTING", &format!("iifname \"{veth}\""));
                sh(&[
                    "nft",
                    "delete",
                    "chain",
                    "bridge",
                    "nat",
                    "cni-br-iface-cid-eth0",
                ]);
                sh(&[
                    "nft",
                    "delete",
                    "chain",
                    "bridge",
                    "nat",
                    "cni-br-iface-cid-eth0-mac",
                ]);
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
    ];
    for (what, take_away, expected) in cases {
        let result = run("ADD", "cid", &pod, &conf).expect_success();
        let checked = with_prev(&conf, &result);
        run("CHECK", "cid", &pod, &checked).expect_success();
        let veth = result["interfaces"][1]["name"].as_str().unwrap();
        take_away(veth);
        let before = ruleset();
        let msg = failure(&run("CHECK", "cid", &pod, &checked));
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
    }
    assert!(!ruleset().contains("macspoofchk"), "{}", ruleset());
}
