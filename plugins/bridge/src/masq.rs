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
use libcni::netlink::nftables::{
    BaseChain, Batch, ChainHook, ChainRef, CmpOp, Expr, Family, Nftables, Verdict,
};
use libcni::netlink::NetlinkError;
use libcni::CniError;

use crate::config::MasqBackend;

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

const MASQ_CHECKS: ChainRef<'static> = ChainRef {
    family: Family::Inet,
    table: TABLE,
    chain: MASQ_CHAIN,
};
const POSTROUTING: ChainRef<'static> = ChainRef {
    family: Family::Inet,
    table: TABLE,
    chain: "postrouting",
};

/// Whether nf_tables answers (over netlink: no `nft` binary needed).
pub fn nftables_available() -> bool {
    Nftables::open().is_ok_and(|mut nft| nft.available())
}

/// The Go plugin's default: iptables, unless only nftables works.
pub fn default_backend() -> MasqBackend {
    let iptables_works = Command::new("iptables")
        .args(["-t", "filter", "-S", "INPUT", "1"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !iptables_works && nftables_available() {
        MasqBackend::Nftables
    } else {
        MasqBackend::Iptables
    }
}

/// `ip saddr <addr> ip daddr != <subnet> masquerade` (or `ip6`).
fn masq_rule(address: &IpNet) -> Vec<Expr> {
    let subnet = IpNet::new(address.network(), address.prefix_len()).expect("valid prefix");
    let mut exprs = Expr::nfproto_is(address.addr().is_ipv4());
    exprs.extend(Expr::saddr_is(address.addr()));
    exprs.extend(Expr::daddr_in(subnet, CmpOp::Neq));
    exprs.push(Expr::Masquerade);
    exprs
}

/// `ip daddr 224.0.0.0/4 return` / `ip6 daddr ff00::/8 return`.
fn skip_multicast(v4: bool) -> Vec<Expr> {
    let multicast: IpNet = if v4 { "224.0.0.0/4" } else { "ff00::/8" }
        .parse()
        .expect("literal");
    let mut exprs = Expr::nfproto_is(v4);
    exprs.extend(Expr::daddr_in(multicast, CmpOp::Eq));
    exprs.push(Expr::Verdict(Verdict::Return));
    exprs
}

/// The base chain `postrouting` as both plugins make it.
fn postrouting() -> BaseChain {
    BaseChain {
        kind: "nat",
        hook: ChainHook::Postrouting,
        priority: 100,
    }
}

/// The three rules of `postrouting`: skip IPv4 and IPv6 multicast, go to masq_checks.
fn postrouting_rules() -> [Vec<Expr>; 3] {
    [
        skip_multicast(true),
        skip_multicast(false),
        vec![Expr::Verdict(Verdict::Goto(MASQ_CHAIN.to_string()))],
    ]
}

/// Whether the table already holds masq_checks and a `postrouting` of exactly its
/// three rules, as every ADD after a node's first finds it.
fn chains_in_place(nft: &mut Nftables) -> Result<bool, NetlinkError> {
    let Some(rules) = nft.rules(POSTROUTING)? else {
        return Ok(false);
    };
    let expected = postrouting_rules();
    Ok(rules.len() == expected.len()
        && rules
            .iter()
            .zip(&expected)
            .all(|(rule, exprs)| rule.exprs == *exprs)
        && nft
            .chain(POSTROUTING)?
            .is_some_and(|described| postrouting().describes(&described))
        && nft.chain_exists(MASQ_CHECKS)?)
}

/// Proves, for CHECK, that the nftables masquerade of the attachment is in place:
/// `postrouting` still sends to `masq_checks`, and `masq_checks` holds this
/// attachment's rule for each of `addresses`. The error names what is missing.
/// Reads only.
pub fn verify_nft(
    nft: &mut Nftables,
    addresses: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<Result<(), String>, NetlinkError> {
    if !chains_in_place(nft)? {
        return Ok(Err(format!(
            "ipMasq: chain postrouting of table inet {TABLE} is missing or no longer sends to {MASQ_CHAIN}"
        )));
    }
    let prefix = instance_hash(network, ifname, container_id);
    let rules = nft.rules(MASQ_CHECKS)?.unwrap_or_default();
    for address in addresses {
        let expected = masq_rule(address);
        let found = rules.iter().any(|r| {
            r.exprs == expected && r.comment.as_deref().is_some_and(|c| c.starts_with(&prefix))
        });
        if !found {
            return Ok(Err(format!(
                "ipMasq: the {MASQ_CHAIN} rule that masquerades {} is missing",
                address.addr()
            )));
        }
    }
    Ok(Ok(()))
}

/// The ADD transaction for nftables (unit-tested): the attachment's earlier rules
/// (`stale` handles) removed and one rule per address added. Unless `in_place`, it
/// first adds the table and chains and refills `postrouting`, as Go does on every
/// ADD. With them in place it leaves them alone: a re-added chain is an update and a
/// flushed rule a deletion, which the kernel frees only after an RCU grace period
/// that the plugin then waits for (see spoofcheck::setup_batch).
pub fn nft_setup_batch(
    addresses: &[IpNet],
    network: &str,
    ifname: &str,
    container_id: &str,
    stale: &[u64],
    in_place: bool,
) -> Batch {
    let comment = nft_comment(network, ifname, container_id);
    let mut batch = Batch::new();
    if !in_place {
        batch
            .add_table(
                Family::Inet,
                TABLE,
                Some("Masquerading for plugins from github.com/containernetworking/plugins"),
            )
            .add_chain(
                MASQ_CHECKS,
                None,
                Some("Masquerade traffic from certain IPs to any (non-multicast) IP outside their subnet"),
            )
            .add_chain(POSTROUTING, Some(&postrouting()), None)
            .flush_chain(POSTROUTING);
        for rule in postrouting_rules() {
            batch.add_rule(POSTROUTING, &rule, None);
        }
    }
    for handle in stale {
        batch.delete_rule(MASQ_CHECKS, *handle);
    }
    for address in addresses {
        batch.add_rule(MASQ_CHECKS, &masq_rule(address), Some(&comment));
    }
    batch
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
            let mut nft = Nftables::open()?;
            // A rule left by an earlier ADD of the same attachment is replaced, not doubled.
            let prefix = instance_hash(network, ifname, container_id);
            let stale = rule_handles(&mut nft, |comment| comment.starts_with(&prefix))?;
            let batch = |in_place| {
                nft_setup_batch(addresses, network, ifname, container_id, &stale, in_place)
            };
            let in_place = chains_in_place(&mut nft)?;
            match nft.commit(batch(in_place)) {
                // The chains went away since we looked (a flushed ruleset): add them.
                Err(e) if in_place && e.is_not_found() && stale.is_empty() => {
                    nft.commit(batch(false))
                }
                other => other,
            }
            .map_err(|e| CniError::from(e.context("set up ipMasq")))?;
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

/// The handles of the masq_checks rules whose comment matches.
fn rule_handles(
    nft: &mut Nftables,
    matches: impl Fn(&str) -> bool,
) -> Result<Vec<u64>, NetlinkError> {
    Ok(nft
        .rules(MASQ_CHECKS)?
        .unwrap_or_default()
        .iter()
        .filter(|r| r.comment.as_deref().is_some_and(&matches))
        .map(|r| r.handle)
        .collect())
}

/// Removes the masq_checks rules whose comment matches; nothing to remove is
/// success, and so are rules another teardown removes meanwhile (see
/// `Nftables::remove`).
fn delete_nft_rules(
    nft: &mut Nftables,
    matches: impl Fn(&str) -> bool,
) -> Result<(), NetlinkError> {
    nft.remove(|nft| {
        let mut batch = Batch::new();
        for handle in rule_handles(nft, &matches)? {
            batch.delete_rule(MASQ_CHECKS, handle);
        }
        Ok((batch, ()))
    })
}

/// Removes this attachment's nftables rules, found by the hash at the start of
/// their comment.
fn teardown_nft(
    nft: &mut Nftables,
    network: &str,
    ifname: &str,
    container_id: &str,
) -> Result<(), NetlinkError> {
    let prefix = instance_hash(network, ifname, container_id);
    delete_nft_rules(nft, |comment| comment.starts_with(&prefix))
}

/// Whether iptables may hold this attachment's chain, asked without running
/// iptables: iptables-nft keeps its rules in nf_tables tables `ip nat` and `ip6
/// nat`; the legacy backend is only there when its nat table is loaded.
fn iptables_chain_may_exist(nft: &mut Nftables, chain: &str) -> bool {
    let legacy = std::fs::read_to_string("/proc/net/ip_tables_names")
        .is_ok_and(|names| names.lines().any(|n| n == "nat"))
        || std::fs::read_to_string("/proc/net/ip6_tables_names")
            .is_ok_and(|names| names.lines().any(|n| n == "nat"));
    legacy
        || [Family::Ip, Family::Ip6].into_iter().any(|family| {
            nft.chains(family, "nat")
                .map(|chains| chains.unwrap_or_default().iter().any(|c| c == chain))
                .unwrap_or(true)
        })
}

/// Runs an iptables removal. When it fails because what it removes is gone (`gone`
/// asks iptables again), another teardown of the attachment came first: success.
fn iptables_remove(v4: bool, args: &[&str], gone: impl Fn() -> bool) -> Result<(), String> {
    match iptables(v4, args) {
        Err(_) if gone() => Ok(()),
        other => other.map(drop),
    }
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
            iptables_remove(v4, &args, || {
                iptables(v4, &["-t", "nat", "-S", "POSTROUTING"])
                    .is_ok_and(|now| !now.lines().any(|l| l == line))
            })?;
        }
        let chain_gone = || iptables(v4, &["-t", "nat", "-S", &chain]).is_err();
        if !chain_gone() {
            iptables_remove(v4, &["-t", "nat", "-F", &chain], chain_gone)?;
            iptables_remove(v4, &["-t", "nat", "-X", &chain], chain_gone)?;
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
/// version or configuration); iptables runs only when it may hold some.
pub fn teardown(network: &str, ifname: &str, container_id: &str) -> Result<(), CniError> {
    let mut errors = libcni::spec::error::ErrorList::new();
    let mut nft = Nftables::open().ok().filter(|_| nftables_available());
    if let Some(nft) = nft.as_mut() {
        errors.record(teardown_nft(nft, network, ifname, container_id).map_err(CniError::from));
    }
    let chain = iptables_chain(network, container_id);
    let may_exist = nft
        .as_mut()
        .is_none_or(|nft| iptables_chain_may_exist(nft, &chain));
    if may_exist
        && Command::new("iptables")
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
    let Some(mut nft) = Nftables::open().ok().filter(|_| nftables_available()) else {
        return Ok(());
    };
    let network_prefix = format!("{}-", network_hash(network));
    let keep: Vec<String> = valid
        .iter()
        .map(|(cid, ifname)| nft_comment(network, ifname, cid))
        .collect();
    delete_nft_rules(&mut nft, |comment| {
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
        let in_place = nft_setup_batch(
            &["10.1.0.5/16".parse().unwrap()],
            "n",
            "eth0",
            "c",
            &[7],
            true,
        );
        let mut nft = Nftables::fake();
        nft.commit(in_place).unwrap();
        let ops: Vec<&str> = nft.transport.commits[0]
            .iter()
            .map(|o| o.what.as_str())
            .collect();
        assert_eq!(
            ops,
            [
                "delete rule 7 of inet cni_plugins_masquerade \"masq_checks\"",
                "add rule to inet cni_plugins_masquerade \"masq_checks\""
            ]
        );
        let batch = nft_setup_batch(
            &["10.1.0.5/16".parse().unwrap()],
            "n",
            "eth0",
            "c",
            &[7],
            false,
        );
        let mut nft = Nftables::fake();
        nft.commit(batch).unwrap();
        let ops: Vec<&str> = nft.transport.commits[0]
            .iter()
            .map(|o| o.what.as_str())
            .collect();
        assert_eq!(
            ops[3],
            "flush chain inet cni_plugins_masquerade \"postrouting\""
        );
        assert_eq!(
            ops[7],
            "delete rule 7 of inet cni_plugins_masquerade \"masq_checks\""
        );
        assert_eq!(
            ops[8],
            "add rule to inet cni_plugins_masquerade \"masq_checks\""
        );
        let rule = masq_rule(&"10.1.0.5/16".parse().unwrap());
        assert_eq!(
            rule[rule.len() - 2],
            Expr::Cmp {
                op: CmpOp::Neq,
                data: vec![10, 1]
            }
        );
        assert_eq!(rule.last(), Some(&Expr::Masquerade));
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
