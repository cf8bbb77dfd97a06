//! The nftables backend, over netlink (no `nft` process): table `inet
//! cni_plugins_masquerade`, base chain `postrouting` (nat, srcnat) that skips
//! multicast and goes to `masq_checks`, where each address has `ip saddr <ip> ip
//! daddr != <subnet> masquerade` with a comment that starts with a hash of the
//! network and of the attachment (Go's `pkg/ip` names and layout).

use ipnet::IpNet;
use libcni::netlink::nftables::{
    BaseChain, Batch, ChainHook, ChainRef, CmpOp, Expr, Family, Nftables, Verdict,
};
use libcni::netlink::NetlinkError;
use libcni::spec::attachment::AttachmentId;

const TABLE: &str = "cni_plugins_masquerade";
const MASQ_CHAIN: &str = "masq_checks";

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
pub fn available() -> bool {
    Nftables::open().is_ok_and(|mut nft| nft.available())
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
pub fn verify(
    nft: &mut Nftables,
    addresses: &[IpNet],
    id: &AttachmentId,
) -> Result<Result<(), String>, NetlinkError> {
    if !chains_in_place(nft)? {
        return Ok(Err(format!(
            "ipMasq: chain postrouting of table inet {TABLE} is missing or no longer sends to {MASQ_CHAIN}"
        )));
    }
    let prefix = id.masquerade_instance_hash();
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
/// that the plugin then waits for (see `spoofcheck::setup_batch`).
pub fn setup_batch(addresses: &[IpNet], id: &AttachmentId, stale: &[u64], in_place: bool) -> Batch {
    let comment = id.masquerade_comment();
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

/// Writes the attachment's rules, replacing (not doubling) any an earlier ADD of the
/// same attachment left.
pub fn setup(addresses: &[IpNet], id: &AttachmentId) -> Result<(), NetlinkError> {
    let mut nft = Nftables::open()?;
    let prefix = id.masquerade_instance_hash();
    let stale = rule_handles(&mut nft, |comment| comment.starts_with(&prefix))?;
    let batch = |in_place| setup_batch(addresses, id, &stale, in_place);
    let in_place = chains_in_place(&mut nft)?;
    match nft.commit(batch(in_place)) {
        // The chains went away since we looked (a flushed ruleset): add them.
        Err(e) if in_place && e.is_not_found() && stale.is_empty() => nft.commit(batch(false)),
        other => other,
    }
    .map_err(|e| e.context("set up ipMasq"))
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
fn delete_rules(nft: &mut Nftables, matches: impl Fn(&str) -> bool) -> Result<(), NetlinkError> {
    nft.remove(|nft| {
        let mut batch = Batch::new();
        for handle in rule_handles(nft, &matches)? {
            batch.delete_rule(MASQ_CHECKS, handle);
        }
        Ok((batch, ()))
    })
}

/// Removes this attachment's rules, found by the hash at the start of their comment.
pub fn teardown(nft: &mut Nftables, id: &AttachmentId) -> Result<(), NetlinkError> {
    let prefix = id.masquerade_instance_hash();
    delete_rules(nft, |comment| comment.starts_with(&prefix))
}

/// GC: removes the rules of `network` whose attachment is not in `valid`.
pub fn gc(nft: &mut Nftables, network: &str, valid: &[AttachmentId]) -> Result<(), NetlinkError> {
    let network_prefix = format!("{}-", AttachmentId::masquerade_network_hash(network));
    let keep: Vec<String> = valid.iter().map(AttachmentId::masquerade_comment).collect();
    delete_rules(nft, |comment| {
        comment.starts_with(&network_prefix) && !keep.iter().any(|k| k == comment)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nft_rules_skip_multicast_and_the_own_subnet() {
        let id = AttachmentId::new("n", "c", "eth0");
        let in_place = setup_batch(&["10.1.0.5/16".parse().unwrap()], &id, &[7], true);
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
        let batch = setup_batch(&["10.1.0.5/16".parse().unwrap()], &id, &[7], false);
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
}
