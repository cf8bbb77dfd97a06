//! ipMasq: masquerade traffic from the container's addresses to anything outside
//! their subnet, with the Go plugin's names so that either plugin cleans up the
//! other's rules.
//!
//! nftables: table `inet cni_plugins_masquerade`, base chain `postrouting` (nat,
//! srcnat) that skips multicast and goes to `masq_checks`, where each address has
//! `ip saddr <ip> ip daddr != <subnet> masquerade` with a comment that starts with a
//! hash of the network and of the attachment.
//! iptables: chain `CNI-<hash of network and container ID>` in table nat, jumped to
//! from POSTROUTING for each source address.

use std::process::Command;

use ipnet::IpNet;
use libcni::CniError;
use serde_json::{json, Value};

use crate::config::MasqBackend;
use crate::nft::{self, NftError};

const TABLE: &str = "cni_plugins_masquerade";
const MASQ_CHAIN: &str = "masq_checks";
/// knftables truncates comments to this length.
const COMMENT_MAX: usize = 128;

fn hash(length: usize, prefix: &str, input: &str) -> String {
    libcni::spec::hash::sha512_hex(length, prefix, input.as_bytes())
}

fn network_hash(network: &str) -> String {
    hash(16, "", network)
}

fn instance_hash(network: &str, ifname: &str, container_id: &str) -> String {
    format!(
        "{}-{}",
        network_hash(network),
        hash(16, "", &format!("{ifname}:{container_id}"))
    )
}

pub fn nft_comment(network: &str, ifname: &str, container_id: &str) -> String {
    let mut comment = format!(
        "{}, net: {}, if: {}, id: {}",
        instance_hash(network, ifname, container_id),
        network.replace('"', ""),
        ifname.replace('"', ""),
        container_id.replace('"', "")
    );
    comment.truncate(COMMENT_MAX);
    comment
}

/// `CNI-` and the SHA-512 of network name and container ID, 28 characters in all.
pub fn iptables_chain(network: &str, container_id: &str) -> String {
    hash(28, "CNI-", &format!("{network}{container_id}"))
}

pub fn iptables_comment(network: &str, container_id: &str) -> String {
    format!("name: {network:?} id: {container_id:?}")
}

/// The Go plugin's default: iptables, unless only nftables works.
pub fn default_backend() -> MasqBackend {
    let iptables_works = Command::new("iptables")
        .args(["-t", "filter", "-S", "INPUT", "1"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !iptables_works && nft::available() {
        MasqBackend::Nftables
    } else {
        MasqBackend::Iptables
    }
}

fn chain(name: &str) -> Value {
    json!({"family": "inet", "table": TABLE, "name": name})
}

fn masq_rule(address: &IpNet, comment: &str) -> Value {
    let family = if address.addr().is_ipv4() {
        "ip"
    } else {
        "ip6"
    };
    json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": MASQ_CHAIN, "comment": comment, "expr": [
        {"match": {"op": "==", "left": {"payload": {"protocol": family, "field": "saddr"}}, "right": address.addr().to_string()}},
        {"match": {"op": "!=", "left": {"payload": {"protocol": family, "field": "daddr"}},
                   "right": {"prefix": {"addr": address.network().to_string(), "len": address.prefix_len()}}}},
        {"masquerade": null}
    ]}}})
}

/// The ADD transaction for nftables, as data (unit-tested).
pub fn nft_setup_commands(
    addresses: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Vec<Value> {
    let comment = nft_comment(network, ifname, container_id);
    let mut commands = vec![
        json!({"add": {"table": {"family": "inet", "name": TABLE,
            "comment": "Masquerading for plugins from github.com/containernetworking/plugins"}}}),
        json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": MASQ_CHAIN,
            "comment": "Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"}}}),
        json!({"add": {"chain": {"family": "inet", "table": TABLE, "name": "postrouting",
            "type": "nat", "hook": "postrouting", "prio": 100, "policy": "accept"}}}),
        json!({"flush": {"chain": chain("postrouting")}}),
        json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": "postrouting", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "daddr"}}, "right": {"prefix": {"addr": "224.0.0.0", "len": 4}}}},
            {"return": null}]}}}),
        json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": "postrouting", "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip6", "field": "daddr"}}, "right": {"prefix": {"addr": "ff00::", "len": 8}}}},
            {"return": null}]}}}),
        json!({"add": {"rule": {"family": "inet", "table": TABLE, "chain": "postrouting", "expr": [{"goto": {"target": MASQ_CHAIN}}]}}}),
    ];
    commands.extend(addresses.iter().map(|a| masq_rule(a, &comment)));
    commands
}

fn iptables(v4: bool, args: &[&str]) -> Result<String, String> {
    let binary = if v4 { "iptables" } else { "ip6tables" };
    let out = Command::new(binary)
        .arg("-w")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run {binary}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{binary} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

pub fn setup(
    backend: MasqBackend,
    addresses: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), CniError> {
    match backend {
        MasqBackend::Nftables => {
            // A rule left by an earlier ADD of the same attachment is replaced, not doubled.
            teardown_nft(network, ifname, container_id)?;
            nft::apply(
                "set up ipMasq",
                nft_setup_commands(addresses, network, ifname, container_id),
            )?;
        }
        MasqBackend::Iptables => {
            let chain = iptables_chain(network, container_id);
            let comment = iptables_comment(network, container_id);
            for address in addresses {
                let v4 = address.addr().is_ipv4();
                let multicast = if v4 { "224.0.0.0/4" } else { "ff00::/8" };
                let fail = |e: String| CniError::internal(format!("failed to set up ipMasq: {e}"));
                if iptables(v4, &["-t", "nat", "-S", &chain]).is_err() {
                    iptables(v4, &["-t", "nat", "-N", &chain]).map_err(fail)?;
                }
                let subnet = IpNet::new(address.network(), address.prefix_len())
                    .expect("valid")
                    .to_string();
                let source = address.addr().to_string();
                let rules: [(&str, Vec<&str>); 3] = [
                    (
                        chain.as_str(),
                        vec![
                            "-d",
                            &subnet,
                            "-j",
                            "ACCEPT",
                            "-m",
                            "comment",
                            "--comment",
                            &comment,
                        ],
                    ),
                    (
                        chain.as_str(),
                        vec![
                            "!",
                            "-d",
                            multicast,
                            "-j",
                            "MASQUERADE",
                            "-m",
                            "comment",
                            "--comment",
                            &comment,
                        ],
                    ),
                    (
                        "POSTROUTING",
                        vec![
                            "-s",
                            &source,
                            "-j",
                            &chain,
                            "-m",
                            "comment",
                            "--comment",
                            &comment,
                        ],
                    ),
                ];
                for (target, rule) in rules {
                    let mut check = vec!["-t", "nat", "-C", target];
                    check.extend(&rule);
                    if iptables(v4, &check).is_err() {
                        let mut append = vec!["-t", "nat", "-A", target];
                        append.extend(&rule);
                        iptables(v4, &append).map_err(fail)?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Removes this attachment's nftables rules, found by the hash at the start of
/// their comment. Nothing to remove is success.
fn teardown_nft(network: &str, ifname: &str, container_id: &str) -> Result<(), NftError> {
    let prefix = instance_hash(network, ifname, container_id);
    delete_nft_rules(|comment| comment.starts_with(&prefix))
}

fn delete_nft_rules(matches: impl Fn(&str) -> bool) -> Result<(), NftError> {
    let items = match nft::list(&["chain", "inet", TABLE, MASQ_CHAIN]) {
        Ok(items) => items,
        Err(e) if e.is_not_found() => return Ok(()),
        Err(e) => return Err(e),
    };
    let deletes: Vec<Value> = nft::rules(&items)
        .filter(|r| r["comment"].as_str().is_some_and(&matches))
        .filter_map(|r| r["handle"].as_u64())
        .map(|h| json!({"delete": {"rule": {"family": "inet", "table": TABLE, "chain": MASQ_CHAIN, "handle": h}}}))
        .collect();
    if deletes.is_empty() {
        return Ok(());
    }
    nft::apply("remove ipMasq rules", deletes)
}

/// Removes the iptables chain of this container and every POSTROUTING jump to it,
/// without needing the addresses (so it works after the netns is gone).
fn teardown_iptables(network: &str, container_id: &str) -> Result<(), String> {
    let chain = iptables_chain(network, container_id);
    for v4 in [true, false] {
        let Ok(rules) = iptables(v4, &["-t", "nat", "-S", "POSTROUTING"]) else {
            continue;
        };
        for line in rules.lines().filter(|l| l.contains(&format!("-j {chain}"))) {
            let Some(spec) = line.strip_prefix("-A POSTROUTING ") else {
                continue;
            };
            let mut args = vec![
                "-t".to_string(),
                "nat".into(),
                "-D".into(),
                "POSTROUTING".into(),
            ];
            args.extend(shell_words(spec));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            iptables(v4, &args)?;
        }
        if iptables(v4, &["-t", "nat", "-S", &chain]).is_ok() {
            iptables(v4, &["-t", "nat", "-F", &chain])?;
            iptables(v4, &["-t", "nat", "-X", &chain])?;
        }
    }
    Ok(())
}

/// Splits an `iptables -S` rule into arguments (double quotes group, `\"` escapes).
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let (mut quoted, mut escaped, mut in_word) = (false, false, false);
    for c in text.chars() {
        match c {
            _ if escaped => {
                current.push(c);
                escaped = false;
            }
            '\\' => escaped = true,
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            ' ' if !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            _ => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

/// Removes both backends' state for the attachment (it may have been made by another
/// version or configuration); errors of a backend this node lacks are ignored.
pub fn teardown(network: &str, ifname: &str, container_id: &str) -> Result<(), CniError> {
    let mut errors = libcni::spec::error::ErrorList::new();
    if nft::available() {
        errors.record(teardown_nft(network, ifname, container_id).map_err(CniError::from));
    }
    if Command::new("iptables")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        errors.record(teardown_iptables(network, container_id).map_err(CniError::internal));
    }
    errors.into_result()
}

/// GC: removes the nftables rules of this network whose attachment is not valid.
pub fn gc(network: &str, valid: &[(String, String)]) -> Result<(), CniError> {
    if !nft::available() {
        return Ok(());
    }
    let network_prefix = format!("{}-", network_hash(network));
    let keep: Vec<String> = valid
        .iter()
        .map(|(cid, ifname)| nft_comment(network, ifname, cid))
        .collect();
    delete_nft_rules(|comment| {
        comment.starts_with(&network_prefix) && !keep.iter().any(|k| k == comment)
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_comments_follow_the_go_plugin() {
        let chain = iptables_chain("mynet", "cid1");
        assert!(chain.starts_with("CNI-") && chain.len() == 28, "{chain}");
        assert_eq!(
            iptables_comment("mynet", "cid1"),
            "name: \"mynet\" id: \"cid1\""
        );
        let comment = nft_comment("mynet", "eth0", "cid1");
        assert!(
            comment.ends_with(", net: mynet, if: eth0, id: cid1"),
            "{comment}"
        );
        assert_eq!(comment.split(',').next().unwrap().len(), 33);
        assert_eq!(nft_comment(&"n".repeat(200), "eth0", "c").len(), 128);
    }

    #[test]
    fn nft_rules_skip_multicast_and_the_own_subnet() {
        let commands = nft_setup_commands(&["10.1.0.5/16".parse().unwrap()], "n", "eth0", "c");
        let last = &commands.last().unwrap()["add"]["rule"];
        assert_eq!(last["chain"], "masq_checks");
        assert_eq!(last["expr"][0]["match"]["right"], "10.1.0.5");
        assert_eq!(
            last["expr"][1]["match"]["right"]["prefix"]["addr"],
            "10.1.0.0"
        );
        assert_eq!(last["expr"][1]["match"]["op"], "!=");
    }

    #[test]
    fn iptables_rule_words() {
        assert_eq!(
            shell_words(
                r#"-s 10.1.0.5/32 -m comment --comment "name: \"n\" id: \"c\"" -j CNI-abc"#
            ),
            vec![
                "-s",
                "10.1.0.5/32",
                "-m",
                "comment",
                "--comment",
                "name: \"n\" id: \"c\"",
                "-j",
                "CNI-abc"
            ]
        );
    }
}
