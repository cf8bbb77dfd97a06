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
//! Cost that does not grow with the number of attachments: ADD is one query and one
//! transaction; DEL lists only this attachment's chain and reads the PREROUTING jump
//! by handle (both plugins add it and the rule of `cni-br-iface-<ref>` one after the
//! other in one transaction, so its handle is that rule's minus one; handles are
//! never reused in a table). Only when that rule is not the jump does DEL list
//! PREROUTING, as the Go plugin always does.

use libcni::host::fs::fitting_name;
use libcni::netlink::nftables::{
    BaseChain, Batch, ChainHook, ChainRef, Expr, Family, Nftables, Rule, Verdict,
};
use libcni::netlink::NetlinkError;

const TABLE: &str = "nat";
const BASE_CHAIN: &str = "PREROUTING";
pub const CHAIN_PREFIX: &str = "cni-br-iface-";
/// The longest `<ref>` that keeps `cni-br-iface-<ref>-mac` within a chain name (255
/// bytes) and `macspoofchk-<ref>` within a rule comment (253).
const REFERENCE_MAX: usize = 238;

const PREROUTING: ChainRef<'static> = ChainRef {
    family: Family::Bridge,
    table: TABLE,
    chain: BASE_CHAIN,
};

/// `<containerID>-<ifname>`, the key of an attachment's chains (Go's), hashed when
/// a long container ID would make names the kernel refuses.
pub fn reference(container_id: &str, ifname: &str) -> String {
    fitting_name(&format!("{container_id}-{ifname}"), REFERENCE_MAX)
}

pub fn iface_chain(reference: &str) -> String {
    format!("{CHAIN_PREFIX}{reference}")
}

pub fn mac_chain(reference: &str) -> String {
    format!("{CHAIN_PREFIX}{reference}-mac")
}

pub fn comment(reference: &str) -> String {
    format!("macspoofchk-{reference}")
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
fn jump_at(nft: &mut Nftables, handle: u64, target: &str) -> Result<Option<Jump>, NetlinkError> {
    Ok(nft
        .rule(PREROUTING, handle)?
        .filter(|rule| is_jump_into(rule, target))
        .map(|rule| Jump {
            handle: rule.handle,
            host_veth: rule.iifname(),
        }))
}

/// Reads what the kernel holds for `reference`: the chains, and the jumps into them.
pub fn installed(nft: &mut Nftables, reference: &str) -> Result<Installed, NetlinkError> {
    let iface = iface_chain(reference);
    let mac = nft.rules(chain(&mac_chain(reference)))?.is_some();
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

/// The ADD transaction: the table and base chain (no error when they exist), the
/// attachment's chains emptied and filled. Stale jumps into them (from an attachment
/// whose host veth is gone) are removed in the same transaction.
pub fn setup_batch(
    host_veth: &str,
    container_mac: [u8; 6],
    reference: &str,
    stale_jumps: &[Jump],
) -> Batch {
    let (iface, mac) = (iface_chain(reference), mac_chain(reference));
    let comment = comment(reference);
    let mut batch = Batch::new();
    batch
        .add_table(Family::Bridge, TABLE, None)
        .add_chain(
            PREROUTING,
            Some(&BaseChain {
                kind: "filter",
                hook: ChainHook::Prerouting,
                priority: -300,
            }),
            None,
        )
        .add_chain(chain(&iface), None, None)
        .add_chain(chain(&mac), None, None)
        .flush_chain(chain(&iface))
        .flush_chain(chain(&mac));
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
    batch
}

/// Removes the chains of `reference` and the jumps into them, in one transaction.
pub fn teardown(
    nft: &mut Nftables,
    reference: &str,
    installed: &Installed,
) -> Result<(), NetlinkError> {
    let Installed::Chains { iface, mac, jumps } = installed else {
        return Ok(());
    };
    let mut batch = Batch::new();
    for jump in jumps {
        batch.delete_rule(PREROUTING, jump.handle);
    }
    // Each chain only if it is there: a missing one would fail the whole transaction.
    let (iface_name, mac_name) = (iface_chain(reference), mac_chain(reference));
    if *iface {
        batch.delete_chain(chain(&iface_name));
    }
    if *mac {
        batch.delete_chain(chain(&mac_name));
    }
    nft.commit(batch)
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

/// The container MAC the rules let through, if the chain exists (for CHECK).
pub fn allowed_mac(nft: &mut Nftables, reference: &str) -> Result<Option<[u8; 6]>, NetlinkError> {
    Ok(nft
        .rules(chain(&mac_chain(reference)))?
        .and_then(|rules| rules.iter().find_map(Rule::ether_saddr)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcni::netlink::nftables::FakeNfTransport;

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

    #[test]
    fn setup_is_one_transaction_with_the_jump_rules_adjacent() {
        let batch = setup_batch("veth1", [2, 0, 0, 0, 0, 0x42], "c-eth0", &[]);
        let mut nft = Nftables::fake();
        nft.commit(batch).unwrap();
        let FakeNfTransport { commits, .. } = &nft.transport;
        let ops: Vec<&str> = commits[0].iter().map(|o| o.what.as_str()).collect();
        assert_eq!(
            ops,
            [
                "add table bridge nat",
                "add chain bridge nat \"PREROUTING\"",
                "add chain bridge nat \"cni-br-iface-c-eth0\"",
                "add chain bridge nat \"cni-br-iface-c-eth0-mac\"",
                "flush chain bridge nat \"cni-br-iface-c-eth0\"",
                "flush chain bridge nat \"cni-br-iface-c-eth0-mac\"",
                "add rule to bridge nat \"PREROUTING\"",
                "add rule to bridge nat \"cni-br-iface-c-eth0\"",
                "add rule to bridge nat \"cni-br-iface-c-eth0-mac\"",
                "add rule to bridge nat \"cni-br-iface-c-eth0-mac\"",
            ]
        );
    }
}
