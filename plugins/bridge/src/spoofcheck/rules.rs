//! macspoofchk: nftables rules that drop frames from the host veth whose source MAC
//! is not the container's, written over netlink (no `nft` process). Names, layout
//! and comments are the Go plugin's, so that either plugin's DEL removes what the
//! other's ADD made, and `nft list ruleset` prints the same text:
//!
//! ```text
//! table bridge nat
//!   chain PREROUTING (filter, prerouting, priority -300, accept)
//!     iifname "<hostVeth>" jump cni-br-iface-<ref>        comment "macspoofchk-<ref>"
//!   chain cni-br-iface-<ref>
//!     jump cni-br-iface-<ref>-mac                          comment "macspoofchk-<ref>"
//!   chain cni-br-iface-<ref>-mac
//!     ether saddr <containerMac> return                    comment "macspoofchk-<ref>"
//!     drop                                                 comment "macspoofchk-<ref>"
//! ```
//! with `<ref>` = `<containerID>-<ifname>` (hashed when it would not fit a chain name).
//!
//! Whose rules are these? The names carry no network, and two attachments can share
//! a `<ref>` (`a-b`+`c0` and `a`+`b-c0`). The kernel tells: the PREROUTING jump names
//! the host veth of the attachment that owns the chains. A host veth that no longer
//! exists means stale rules (the veth dies with its pod); one that exists is a live
//! attachment, which only its own DEL may touch.
//!
//! Our reads and messages do not grow with the number of attachments (the kernel's
//! commit does). ADD is a few lookups and one transaction that only creates (see
//! `setup_batch` for why that matters); DEL lists only this attachment's `-mac`
//! chain and reads the PREROUTING jump by handle (both plugins add it, the rule of
//! `cni-br-iface-<ref>` and the `-mac` rules one after the other in one
//! transaction, so its handle is the first `-mac` rule's minus two, or the first
//! `cni-br-iface-<ref>` rule's minus one; handles are never reused in a table).
//! Only when neither rule is the jump does DEL list PREROUTING, as the Go plugin
//! always does.

use libcni::mac::MacAddr;
use libcni::netlink::nftables::{
    BaseChain, Batch, ChainHook, ChainRef, Expr, Family, NfTransport, Nftables, Rule, Verdict,
};
use libcni::netlink::NetlinkError;

const TABLE: &str = "nat";
const BASE_CHAIN: &str = "PREROUTING";
pub const CHAIN_PREFIX: &str = "cni-br-iface-";

const PREROUTING: ChainRef<'static> = ChainRef {
    family: Family::Bridge,
    table: TABLE,
    chain: BASE_CHAIN,
};

pub fn iface_chain(reference: &str) -> String {
    format!("{CHAIN_PREFIX}{reference}")
}

pub fn mac_chain(reference: &str) -> String {
    format!("{CHAIN_PREFIX}{reference}-mac")
}

pub fn comment(reference: &str) -> String {
    format!("macspoofchk-{reference}")
}

/// The comment of the ipspoofchk rules (see `ipfilter`), beside macspoofchk's.
pub fn ip_comment(reference: &str) -> String {
    format!("ipspoofchk-{reference}")
}

fn chain(name: &str) -> ChainRef<'_> {
    ChainRef {
        family: Family::Bridge,
        table: TABLE,
        chain: name,
    }
}

/// The PREROUTING rule that jumps into an attachment's chains.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jump {
    pub handle: u64,
    /// The host veth it matches (None: a rule without an `iifname` match).
    pub host_veth: Option<String>,
}

/// What the kernel holds for a reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installed {
    /// No chains at all.
    Nothing,
    /// The chains there are, and the PREROUTING jumps into them (none: they filter
    /// nothing).
    Chains {
        iface: bool,
        mac: bool,
        jumps: Vec<Jump>,
    },
}

impl Installed {
    /// The host veths the jumps match.
    pub fn host_veths(&self) -> Vec<String> {
        match self {
            Installed::Nothing => Vec::new(),
            Installed::Chains { jumps, .. } => {
                jumps.iter().filter_map(|j| j.host_veth.clone()).collect()
            }
        }
    }

    /// Whether these rules may be removed on behalf of the attachment whose host veth
    /// is `own` (if known): every jump matches `own` or a host veth that no longer
    /// exists (`exists` asks the kernel). A jump without an `iifname` match is not
    /// ours to judge.
    pub fn removable(&self, own: Option<&str>, mut exists: impl FnMut(&str) -> bool) -> bool {
        match self {
            Installed::Nothing => true,
            Installed::Chains { jumps, .. } => jumps.iter().all(|jump| match &jump.host_veth {
                Some(veth) => Some(veth.as_str()) == own || !exists(veth),
                None => false,
            }),
        }
    }
}

fn is_jump_into(rule: &Rule, target: &str) -> bool {
    matches!(rule.verdict(), Some(Verdict::Jump(t)) if t == target)
}

/// The jump found at `handle`, if the rule there jumps into `target`.
fn jump_at<T: NfTransport>(
    nft: &mut Nftables<T>,
    handle: u64,
    target: &str,
) -> Result<Option<Jump>, NetlinkError> {
    Ok(nft
        .rule(PREROUTING, handle)?
        .filter(|rule| is_jump_into(rule, target))
        .map(|rule| Jump {
            handle: rule.handle,
            host_veth: rule.iifname(),
        }))
}

/// Reads what the kernel holds for `reference`: the chains, and the jumps into them.
pub fn installed<T: NfTransport>(
    nft: &mut Nftables<T>,
    reference: &str,
) -> Result<Installed, NetlinkError> {
    let iface = iface_chain(reference);
    let mac_rules = nft.rules(chain(&mac_chain(reference)))?;
    let mac = mac_rules.is_some();
    // The -mac chain's first rule was added two after the jump. Found from there,
    // the jump costs no read of the `cni-br-iface-<ref>` chain, whose ipspoofchk
    // rules take longer to parse than the rest of a DEL.
    let mac_first = mac_rules.as_ref().and_then(|rules| rules.first());
    if let Some(first) = mac_first.filter(|r| r.handle > 2) {
        if let Some(jump) = jump_at(nft, first.handle - 2, &iface)? {
            return Ok(Installed::Chains {
                iface: true,
                mac,
                jumps: vec![jump],
            });
        }
    }
    let Some(rules) = nft.rules(chain(&iface))? else {
        // A lone -mac chain (an interrupted Go teardown) still counts as chains.
        return Ok(if mac {
            Installed::Chains {
                iface: false,
                mac,
                jumps: Vec::new(),
            }
        } else {
            Installed::Nothing
        });
    };
    if let Some(first) = rules.first().filter(|r| r.handle > 1) {
        if let Some(jump) = jump_at(nft, first.handle - 1, &iface)? {
            return Ok(Installed::Chains {
                iface: true,
                mac,
                jumps: vec![jump],
            });
        }
    }
    // Not where both plugins put it (a rule added by hand, or an older layout).
    let jumps = nft
        .rules(PREROUTING)?
        .unwrap_or_default()
        .iter()
        .filter(|r| is_jump_into(r, &iface))
        .map(|r| Jump {
            handle: r.handle,
            host_veth: r.iifname(),
        })
        .collect();
    Ok(Installed::Chains {
        iface: true,
        mac,
        jumps,
    })
}

/// PREROUTING as both plugins make it.
fn prerouting() -> BaseChain {
    BaseChain {
        kind: "filter",
        hook: ChainHook::Prerouting,
        priority: -300,
    }
}

/// What ADD found in the kernel before writing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Existing {
    /// The table and its PREROUTING base chain are there, as both plugins make it
    /// (every ADD after a node's first). A PREROUTING of another kind (a regular
    /// chain, another priority or policy) is false: ADD then sends `add chain` as Go
    /// does, and the kernel refuses or restores it as it does for Go.
    pub base_chain: bool,
    /// This reference's chains and the jumps into them.
    pub installed: Installed,
}

/// Reads what ADD needs: the base chain (one lookup) and this reference's chains.
pub fn existing<T: NfTransport>(
    nft: &mut Nftables<T>,
    reference: &str,
) -> Result<Existing, NetlinkError> {
    let base_chain = nft
        .chain(PREROUTING)?
        .is_some_and(|described| prerouting().describes(&described));
    Ok(Existing {
        base_chain,
        installed: installed(nft, reference)?,
    })
}

/// The ADD transaction. It adds the table and the base chain only when they are
/// missing, and creates the attachment's chains (`create`: a concurrent ADD of the
/// same reference fails rather than doubles the rules) or, when they exist, empties
/// them. Stale jumps into them (from an attachment whose host veth is gone) are
/// removed in the same transaction. `ip_rules` (ipspoofchk's, else empty) follow the
/// jump into `-mac` in the `cni-br-iface-<ref>` chain.
///
/// Why not always `add` them, as Go does: the kernel records `add` of an existing
/// chain as an update, and an update (like a deleted rule) is released after an RCU
/// grace period, which the closing of our socket then waits for (about 13 ms here,
/// five times the rest of a layer-2 ADD). New chains and rules leave nothing to wait
/// for.
pub fn setup_batch(
    host_veth: &str,
    container_mac: MacAddr,
    reference: &str,
    existing: &Existing,
    ip_rules: &[Vec<Expr>],
) -> Batch {
    let (iface, mac) = (iface_chain(reference), mac_chain(reference));
    let comment = comment(reference);
    let mut batch = Batch::new();
    if !existing.base_chain {
        batch.add_table(Family::Bridge, TABLE, None).add_chain(
            PREROUTING,
            Some(&prerouting()),
            None,
        );
    }
    let (has_iface, has_mac, stale_jumps) = match &existing.installed {
        Installed::Nothing => (false, false, &[][..]),
        Installed::Chains { iface, mac, jumps } => (*iface, *mac, jumps.as_slice()),
    };
    for (name, present) in [(&iface, has_iface), (&mac, has_mac)] {
        if present {
            batch.flush_chain(chain(name));
        } else {
            batch.create_chain(chain(name));
        }
    }
    for jump in stale_jumps {
        batch.delete_rule(PREROUTING, jump.handle);
    }
    let mut jump = Expr::iifname_is(host_veth);
    jump.push(Expr::Verdict(Verdict::Jump(iface.clone())));
    let mut allow = Expr::ether_saddr_is(container_mac);
    allow.push(Expr::Verdict(Verdict::Return));
    // These two must stay adjacent: see the module docs.
    batch
        .add_rule(PREROUTING, &jump, Some(&comment))
        .add_rule(
            chain(&iface),
            &[Expr::Verdict(Verdict::Jump(mac.clone()))],
            Some(&comment),
        )
        .add_rule(chain(&mac), &allow, Some(&comment))
        .add_rule(chain(&mac), &[Expr::Verdict(Verdict::Drop)], Some(&comment));
    let ip_comment = ip_comment(reference);
    for rule in ip_rules {
        batch.add_rule(chain(&iface), rule, Some(&ip_comment));
    }
    batch
}

/// Commits the ADD transaction for what `existing` found. When the base chain went
/// away in between (a flushed ruleset) the transaction fails with ENOENT: it is read
/// again and retried once, if nothing of this reference appeared meanwhile.
pub fn setup<T: NfTransport>(
    nft: &mut Nftables<T>,
    host_veth: &str,
    container_mac: MacAddr,
    reference: &str,
    existing: &Existing,
    ip_rules: &[Vec<Expr>],
) -> Result<(), NetlinkError> {
    let batch = |existing| setup_batch(host_veth, container_mac, reference, existing, ip_rules);
    let first = nft.commit(batch(existing));
    match first {
        Err(e) if e.is_not_found() && existing.base_chain => {
            let now = self::existing(nft, reference)?;
            if now.base_chain || now.installed != Installed::Nothing {
                return Err(e);
            }
            nft.commit(batch(&now))
        }
        other => other,
    }
}

/// The transaction that removes the chains of `reference` and the jumps into them,
/// as `installed` found them (empty for nothing).
pub fn teardown_batch(reference: &str, installed: &Installed) -> Batch {
    removal(reference, installed, Batch::delete_chain)
}

/// The fallback of [`teardown_batch`] when the kernel refuses to delete a chain
/// because a rule that is not ours jumps into it (EBUSY): the jumps go, the chains
/// stay, emptied, so nothing of the attachment filters anymore.
pub fn emptying_batch(reference: &str, installed: &Installed) -> Batch {
    removal(reference, installed, Batch::flush_chain)
}

/// The jumps into the chains of `reference` deleted, and `each_chain` done to each
/// chain there is (a missing one would fail the whole transaction).
fn removal(
    reference: &str,
    installed: &Installed,
    each_chain: for<'b> fn(&'b mut Batch, ChainRef<'_>) -> &'b mut Batch,
) -> Batch {
    let mut batch = Batch::new();
    let Installed::Chains { iface, mac, jumps } = installed else {
        return batch;
    };
    for jump in jumps {
        batch.delete_rule(PREROUTING, jump.handle);
    }
    let (iface_name, mac_name) = (iface_chain(reference), mac_chain(reference));
    for (name, present) in [(&iface_name, *iface), (&mac_name, *mac)] {
        if present {
            each_chain(&mut batch, chain(name));
        }
    }
    batch
}

/// Every attachment reference that has macspoofchk chains (for GC).
pub fn references(nft: &mut Nftables) -> Result<Vec<String>, NetlinkError> {
    let names: Vec<String> = nft
        .chains(Family::Bridge, TABLE)?
        .unwrap_or_default()
        .into_iter()
        .filter_map(|n| n.strip_prefix(CHAIN_PREFIX).map(str::to_owned))
        .collect();
    // `<ref>` and `<ref>-mac` both exist for one attachment: keep the refs whose
    // -mac twin is there, and lone ones.
    let mut refs: Vec<String> = names
        .iter()
        .map(|n| match n.strip_suffix("-mac") {
            Some(base) if names.iter().any(|m| m == base) => base.to_string(),
            _ => n.clone(),
        })
        .collect();
    refs.sort();
    refs.dedup();
    Ok(refs)
}

/// Expressions that neither decide a verdict nor redirect the packet.
const HARMLESS: &[&str] = &["counter", "log", "limit", "quota"];

/// The handle of a PREROUTING rule before `own_jump` that may let frames of
/// `host_veth` skip the filter. A rule before it counts as harmless only when it
/// names another interface exactly, or only matches, counts, logs or drops;
/// anything else (an accept, a return, a jump, goto or verdict map, an expression
/// this reader does not know) is reported, even where it would in fact let nothing
/// past: CHECK would rather fail than vouch for what it cannot read. Lists
/// PREROUTING (CHECK only: its cost grows with the attachments on the node).
fn bypass_before<T: NfTransport>(
    nft: &mut Nftables<T>,
    own_jump: u64,
    host_veth: &str,
) -> Result<Option<u64>, NetlinkError> {
    let rules = nft.rules(PREROUTING)?.unwrap_or_default();
    for rule in rules.iter().take_while(|r| r.handle != own_jump) {
        if rule.exact_iifname().is_some_and(|name| name != host_veth) {
            continue;
        }
        let harmless = rule.exprs.iter().all(|e| match e {
            Expr::Verdict(verdict) => *verdict == Verdict::Drop,
            Expr::Other(name) => HARMLESS.contains(&name.as_str()),
            Expr::Masquerade => false,
            Expr::Meta(_) | Expr::Payload { .. } | Expr::Cmp { .. } | Expr::Bitwise { .. } => true,
        });
        if !harmless {
            return Ok(Some(rule.handle));
        }
    }
    Ok(None)
}

/// What CHECK found wrong with an attachment's macspoofchk rules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken(pub String);

/// Proves, for CHECK, that the whole rule set of `reference` filters `host_veth`:
/// the PREROUTING jump naming the host veth, the chain it jumps to and that chain's
/// jump into `-mac`, and the `-mac` chain holding exactly the rule that lets
/// `container_mac` through and the drop after it. Any one of them gone means frames
/// with a forged source MAC pass, so each is looked for by itself. With `ip_rules`
/// (ipspoofchk), the chain holds exactly the jump and then those rules, in order.
/// Reads only.
pub fn verify<T: NfTransport>(
    nft: &mut Nftables<T>,
    reference: &str,
    host_veth: &str,
    container_mac: MacAddr,
    ip_rules: Option<&[Vec<Expr>]>,
) -> Result<Result<(), Broken>, NetlinkError> {
    let (iface, mac) = (iface_chain(reference), mac_chain(reference));
    let broken = |what: String| Ok(Err(Broken(format!("macspoofchk of {reference}: {what}"))));
    if nft.table_dormant(Family::Bridge, TABLE)? == Some(true) {
        return broken(format!(
            "table bridge {TABLE} is dormant: none of its rules runs, {iface} and {mac} included"
        ));
    }
    let Installed::Chains { jumps, .. } = installed(nft, reference)? else {
        return broken(format!("chains {iface} and {mac} are missing"));
    };
    let Some(own_jump) = jumps
        .iter()
        .find(|j| j.host_veth.as_deref() == Some(host_veth))
    else {
        return broken(format!(
            "the {BASE_CHAIN} rule that jumps to {iface} for host veth {host_veth:?} is missing"
        ));
    };
    if let Some(bypass) = bypass_before(nft, own_jump.handle, host_veth)? {
        return broken(format!(
            "{BASE_CHAIN} rule {bypass} comes before the jump to {iface} and can let frames of host veth {host_veth:?} past it"
        ));
    }
    let Some(iface_rules) = nft.rules(chain(&iface))? else {
        return broken(format!("chain {iface} is missing"));
    };
    let into_mac = |r: &Rule| r.exprs == [Expr::Verdict(Verdict::Jump(mac.clone()))];
    if !iface_rules.iter().any(into_mac) {
        return broken(format!(
            "the rule of {iface} that jumps to {mac} is missing"
        ));
    }
    if let Some(expected) = ip_rules {
        let found: Vec<&[Expr]> = iface_rules.iter().map(|r| r.exprs.as_slice()).collect();
        let wanted: Vec<&[Expr]> = expected.iter().map(Vec::as_slice).collect();
        if !into_mac(&iface_rules[0]) || found[1..] != wanted[..] {
            let differs = (1..found.len().max(wanted.len() + 1))
                .find(|&i| found.get(i) != wanted.get(i - 1))
                .unwrap_or(0);
            let counts = match found.len() == wanted.len() + 1 {
                true => String::new(),
                false => format!(
                    " ({} rules where ADD wrote {})",
                    found.len(),
                    wanted.len() + 1
                ),
            };
            return broken(format!(
                "ipspoofchk: rule {} of {iface} is not the one ADD wrote{counts}: a missing, changed or added rule can let other addresses through",
                differs + 1
            ));
        }
    }
    let Some(mac_rules) = nft.rules(chain(&mac))? else {
        return broken(format!("chain {mac} is missing"));
    };
    let allowed = mac_rules.first().and_then(|r| {
        r.ether_saddr()
            .filter(|_| r.verdict() == Some(&Verdict::Return))
    });
    match allowed {
        None => {
            return broken(format!(
                "the rule of {mac} that lets {} through is missing",
                container_mac
            ))
        }
        Some(found) if found != container_mac => {
            return broken(format!(
                "{mac} lets {} through, the container interface has {}",
                found, container_mac
            ))
        }
        Some(_) => {}
    }
    // The drop must follow directly: any other rule there could accept forged frames.
    if mac_rules.len() != 2 || mac_rules[1].exprs != [Expr::Verdict(Verdict::Drop)] {
        return broken(format!("the drop rule at the end of {mac} is missing"));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcni::netlink::nftables::FakeNfTransport;
    use netlink_packet_netfilter::nftables::{ChainMessage, NfTablesMessage};

    #[test]
    fn only_rules_of_gone_or_own_host_veths_are_removable() {
        let jump = |veth: &str| Jump {
            handle: 3,
            host_veth: Some(veth.to_string()),
        };
        let installed = Installed::Chains {
            iface: true,
            mac: true,
            jumps: vec![jump("veth-live")],
        };
        assert!(!installed.removable(None, |_| true), "a live attachment's");
        assert!(installed.removable(Some("veth-live"), |_| true), "our own");
        assert!(installed.removable(None, |_| false), "stale");
        let inert = Installed::Chains {
            iface: true,
            mac: false,
            jumps: Vec::new(),
        };
        assert!(inert.removable(None, |_| true));
    }

    fn reference(container_id: &str, ifname: &str) -> String {
        libcni::spec::attachment::AttachmentId::new("n", container_id, ifname)
            .spoofcheck_reference()
    }

    #[test]
    fn names_are_the_go_plugins() {
        assert_eq!(reference("cid1", "net1"), "cid1-net1");
        assert_eq!(iface_chain("cid1-net1"), "cni-br-iface-cid1-net1");
        assert_eq!(mac_chain("cid1-net1"), "cni-br-iface-cid1-net1-mac");
        assert_eq!(comment("cid1-net1"), "macspoofchk-cid1-net1");
    }

    #[test]
    fn long_container_ids_make_names_the_kernel_takes() {
        let long = reference(&"c".repeat(300), "net1");
        assert!(mac_chain(&long).len() <= 255 && comment(&long).len() <= 253);
        assert_ne!(long, reference(&"c".repeat(300), "net2"));
    }

    fn setup_ops(existing: &Existing) -> Vec<String> {
        let batch = setup_batch(
            "veth1",
            MacAddr([2, 0, 0, 0, 0, 0x42]),
            "c-eth0",
            existing,
            &[],
        );
        let mut nft = Nftables::fake();
        nft.commit(batch).unwrap();
        let FakeNfTransport { commits, .. } = &nft.transport;
        commits[0].iter().map(|o| o.what.clone()).collect()
    }

    #[test]
    fn setup_is_one_transaction_with_the_jump_rules_adjacent() {
        let first_on_the_node = Existing {
            base_chain: false,
            installed: Installed::Nothing,
        };
        assert_eq!(
            setup_ops(&first_on_the_node),
            [
                "add table bridge nat",
                "add chain bridge nat \"PREROUTING\"",
                "create chain bridge nat \"cni-br-iface-c-eth0\"",
                "create chain bridge nat \"cni-br-iface-c-eth0-mac\"",
                "add rule to bridge nat \"PREROUTING\"",
                "add rule to bridge nat \"cni-br-iface-c-eth0\"",
                "add rule to bridge nat \"cni-br-iface-c-eth0-mac\"",
                "add rule to bridge nat \"cni-br-iface-c-eth0-mac\"",
            ]
        );
    }

    #[test]
    fn setup_only_creates_when_the_base_chain_is_there() {
        let steady = Existing {
            base_chain: true,
            installed: Installed::Nothing,
        };
        let ops = setup_ops(&steady);
        assert_eq!(ops.len(), 6, "{ops:?}");
        assert!(
            ops.iter()
                .all(|op| op.starts_with("create chain") || op.starts_with("add rule")),
            "{ops:?}"
        );
    }

    #[test]
    fn setup_empties_chains_left_over_and_drops_their_stale_jumps() {
        let leftover = Existing {
            base_chain: true,
            installed: Installed::Chains {
                iface: true,
                mac: false,
                jumps: vec![Jump {
                    handle: 9,
                    host_veth: Some("gone".into()),
                }],
            },
        };
        assert_eq!(
            &setup_ops(&leftover)[..3],
            [
                "flush chain bridge nat \"cni-br-iface-c-eth0\"",
                "create chain bridge nat \"cni-br-iface-c-eth0-mac\"",
                "delete rule 9 of bridge nat \"PREROUTING\"",
            ]
        );
    }

    #[test]
    fn setup_creates_the_base_chain_again_when_it_went_away() {
        let steady = Existing {
            base_chain: true,
            installed: Installed::Nothing,
        };
        let mut nft = Nftables::fake();
        // The commit: ENOENT (a flushed ruleset). The base chain: gone. This
        // reference's chains: empty dumps, then their lookups fail: none.
        nft.transport.fail(libc::ENOENT);
        nft.transport.fail(libc::ENOENT);
        for _ in 0..2 {
            nft.transport.answer(Vec::new());
            nft.transport.fail(libc::ENOENT);
        }
        setup(
            &mut nft,
            "veth1",
            MacAddr([2, 0, 0, 0, 0, 1]),
            "c-eth0",
            &steady,
            &[],
        )
        .unwrap();
        let commits = &nft.transport.commits;
        assert_eq!(commits.len(), 2);
        assert_eq!(commits[1][0].what, "add table bridge nat");
    }

    #[test]
    fn setup_gives_up_when_the_base_chain_is_there_and_something_else_is_missing() {
        let steady = Existing {
            base_chain: true,
            installed: Installed::Nothing,
        };
        let mut nft = Nftables::fake();
        nft.transport.fail(libc::ENOENT);
        // The base chain is there.
        nft.transport
            .answer(vec![NfTablesMessage::NewChain(ChainMessage {
                attributes: prerouting().attributes(),
            })]);
        let e = setup(
            &mut nft,
            "veth1",
            MacAddr([2, 0, 0, 0, 0, 1]),
            "c-eth0",
            &steady,
            &[],
        )
        .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(nft.transport.commits.len(), 1);
    }
}
