//! macspoofchk: nftables rules that drop frames from the host veth whose source MAC
//! is not the container's. Names, layout and comments are the Go plugin's, so that
//! either plugin's DEL removes what the other's ADD made:
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
//! with `<ref>` = `<containerID>-<ifname>`.
//!
//! Cost that does not grow with the number of attachments: ADD is one transaction;
//! DEL lists only this attachment's chain and deletes the PREROUTING rule by handle.
//! Both plugins add the PREROUTING rule and the rule of `cni-br-iface-<ref>` one after
//! the other in one transaction, so the first handle is the second's minus one;
//! handles are never reused in a table. The delete is one transaction with the two
//! chains: if that handle were not the jump into this chain, deleting the chain would
//! fail (it is still referenced) and nothing is changed; then DEL falls back to
//! finding the rule by its comment, as the Go plugin does.

use serde_json::{json, Value};

use crate::nft::{self, NftError};

const TABLE: &str = "nat";
const FAMILY: &str = "bridge";
const BASE_CHAIN: &str = "PREROUTING";
pub const CHAIN_PREFIX: &str = "cni-br-iface-";

pub fn iface_chain(reference: &str) -> String {
    format!("{CHAIN_PREFIX}{reference}")
}

pub fn mac_chain(reference: &str) -> String {
    format!("{CHAIN_PREFIX}{reference}-mac")
}

pub fn comment(reference: &str) -> String {
    format!("macspoofchk-{reference}")
}

fn chain(name: &str) -> Value {
    json!({"family": FAMILY, "table": TABLE, "name": name})
}

fn rule(chain: &str, expr: Value, reference: &str) -> Value {
    json!({"add": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "expr": expr, "comment": comment(reference)}}})
}

/// The ADD transaction, as data (unit-tested).
pub fn setup_commands(host_veth: &str, container_mac: &str, reference: &str) -> Vec<Value> {
    let (iface, mac) = (iface_chain(reference), mac_chain(reference));
    vec![
        json!({"add": {"table": {"family": FAMILY, "name": TABLE}}}),
        json!({"add": {"chain": {"family": FAMILY, "table": TABLE, "name": BASE_CHAIN,
                                 "type": "filter", "hook": "prerouting", "prio": -300, "policy": "accept"}}}),
        json!({"add": {"chain": chain(&iface)}}),
        json!({"add": {"chain": chain(&mac)}}),
        json!({"flush": {"chain": chain(&iface)}}),
        json!({"flush": {"chain": chain(&mac)}}),
        // These two must stay adjacent: see the module docs.
        rule(
            BASE_CHAIN,
            json!([{"match": {"op": "==", "left": {"meta": {"key": "iifname"}}, "right": host_veth}},
                   {"jump": {"target": iface}}]),
            reference,
        ),
        rule(&iface, json!([{"jump": {"target": mac}}]), reference),
        rule(
            &mac,
            json!([{"match": {"op": "==", "left": {"payload": {"protocol": "ether", "field": "saddr"}}, "right": container_mac}},
                   {"return": null}]),
            reference,
        ),
        rule(&mac, json!([{"drop": null}]), reference),
    ]
}

pub fn setup(host_veth: &str, container_mac: &str, reference: &str) -> Result<(), NftError> {
    nft::apply(
        &format!("set up macspoofchk for {reference}"),
        setup_commands(host_veth, container_mac, reference),
    )
}

fn delete_rule(chain: &str, handle: u64) -> Value {
    json!({"delete": {"rule": {"family": FAMILY, "table": TABLE, "chain": chain, "handle": handle}}})
}

fn delete_chains(reference: &str) -> Vec<Value> {
    vec![
        json!({"delete": {"chain": chain(&iface_chain(reference))}}),
        json!({"delete": {"chain": chain(&mac_chain(reference))}}),
    ]
}

/// The handle of the first rule of this attachment's iface chain, or None when the
/// chain does not exist.
fn iface_rule_handle(reference: &str) -> Result<Option<u64>, NftError> {
    match nft::list(&["chain", FAMILY, TABLE, &iface_chain(reference)]) {
        Ok(items) => Ok(nft::rules(&items)
            .find_map(|r| r["handle"].as_u64())
            .or(Some(0))),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes this attachment's rules and chains; nothing to remove is success.
pub fn teardown(reference: &str) -> Result<(), NftError> {
    let Some(handle) = iface_rule_handle(reference)? else {
        // No iface chain: no jump can point at it. A lone -mac chain may be left by an
        // interrupted Go teardown.
        return match nft::apply(
            "remove macspoofchk chain",
            vec![json!({"delete": {"chain": chain(&mac_chain(reference))}})],
        ) {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        };
    };
    if handle > 1 {
        let mut fast = vec![delete_rule(BASE_CHAIN, handle - 1)];
        fast.extend(delete_chains(reference));
        if nft::apply(&format!("remove macspoofchk for {reference}"), fast).is_ok() {
            return Ok(());
        }
    }
    teardown_by_comment(reference)
}

/// The Go plugin's way: find the PREROUTING rules by comment (reads the whole chain).
fn teardown_by_comment(reference: &str) -> Result<(), NftError> {
    let wanted = comment(reference);
    let mut commands: Vec<Value> = match nft::list(&["chain", FAMILY, TABLE, BASE_CHAIN]) {
        Ok(items) => nft::rules(&items)
            .filter(|r| r["comment"] == wanted.as_str())
            .filter_map(|r| r["handle"].as_u64())
            .map(|h| delete_rule(BASE_CHAIN, h))
            .collect(),
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e),
    };
    commands.extend(delete_chains(reference));
    match nft::apply(&format!("remove macspoofchk for {reference}"), commands) {
        Err(e) if e.is_not_found() => {
            // Some of it was already gone: remove what is left, one object at a time.
            for command in delete_chains(reference) {
                match nft::apply(
                    &format!("remove macspoofchk for {reference}"),
                    vec![command],
                ) {
                    Err(e) if !e.is_not_found() => return Err(e),
                    _ => {}
                }
            }
            Ok(())
        }
        other => other,
    }
}

/// Every attachment reference that has macspoofchk chains (for GC).
pub fn references() -> Result<Vec<String>, NftError> {
    let items = match nft::list(&["table", FAMILY, TABLE]) {
        Ok(items) => items,
        Err(e) if e.is_not_found() => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let names: Vec<String> = items
        .iter()
        .filter_map(|i| i.get("chain"))
        .filter_map(|c| c["name"].as_str())
        .filter_map(|n| n.strip_prefix(CHAIN_PREFIX))
        .map(str::to_owned)
        .collect();
    // `<ref>` and `<ref>-mac` both exist for one attachment: keep the refs whose -mac twin is there, or lone ones.
    let mut refs: Vec<String> = names
        .iter()
        .filter(|n| {
            !(n.ends_with("-mac")
                && names.contains(&n.strip_suffix("-mac").unwrap_or(n).to_string()))
        })
        .cloned()
        .collect();
    refs.sort();
    refs.dedup();
    Ok(refs)
}

/// The container MAC the rules let through, if the chain exists (for CHECK).
pub fn allowed_mac(reference: &str) -> Result<Option<String>, NftError> {
    let items = match nft::list(&["chain", FAMILY, TABLE, &mac_chain(reference)]) {
        Ok(items) => items,
        Err(e) if e.is_not_found() => return Ok(None),
        Err(e) => return Err(e),
    };
    let mac = nft::rules(&items).find_map(|r| {
        r["expr"].as_array()?.iter().find_map(|e| {
            let m = e.get("match")?;
            (m["left"]["payload"]["field"] == "saddr")
                .then(|| m["right"].as_str().map(str::to_lowercase))
                .flatten()
        })
    });
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_go_plugins() {
        assert_eq!(iface_chain("cid1-net1"), "cni-br-iface-cid1-net1");
        assert_eq!(mac_chain("cid1-net1"), "cni-br-iface-cid1-net1-mac");
        assert_eq!(comment("cid1-net1"), "macspoofchk-cid1-net1");
    }

    #[test]
    fn setup_is_one_transaction_with_the_jump_rules_adjacent() {
        let commands = setup_commands("veth1", "02:00:00:00:00:42", "c-eth0");
        let rules: Vec<&Value> = commands
            .iter()
            .filter_map(|c| c["add"].get("rule"))
            .collect();
        assert_eq!(rules.len(), 4);
        assert_eq!(rules[0]["chain"], "PREROUTING");
        assert_eq!(rules[1]["chain"], "cni-br-iface-c-eth0");
        assert_eq!(rules[0]["expr"][1]["jump"]["target"], "cni-br-iface-c-eth0");
        assert_eq!(rules[2]["expr"][0]["match"]["right"], "02:00:00:00:00:42");
        assert!(rules.iter().all(|r| r["comment"] == "macspoofchk-c-eth0"));
        let base = commands[1]["add"]["chain"].clone();
        assert_eq!(
            (base["hook"].as_str(), base["prio"].as_i64()),
            (Some("prerouting"), Some(-300))
        );
    }
}
