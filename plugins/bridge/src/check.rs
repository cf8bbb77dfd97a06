//! CHECK (every part of the attachment against prevResult and the config) and the
//! macspoofchk part of GC.

use std::collections::BTreeSet;

use libcni::netlink::{LinkId, Netlink};
use libcni::{CniError, CniResult, Request};

use crate::config::BridgeConfig;
use crate::nft;
use crate::spoofcheck;

fn failed(what: String) -> CniError {
    CniError::internal(what)
}

pub fn attachment(cfg: &BridgeConfig, request: &Request, prev: &CniResult) -> Result<(), CniError> {
    let mut nl = Netlink::open()?;
    let bridge = nl
        .get_link(&LinkId::Name(cfg.bridge.clone()))?
        .ok_or_else(|| failed(format!("bridge {:?} does not exist", cfg.bridge)))?;
    if bridge.kind.as_deref() != Some("bridge") {
        return Err(failed(format!("{:?} is not a bridge", cfg.bridge)));
    }
    if cfg.keys().promisc_mode != bridge.promiscuous {
        return Err(failed(format!(
            "bridge {:?} promiscuous mode is {}, the config says {}",
            cfg.bridge,
            bridge.promiscuous,
            cfg.keys().promisc_mode
        )));
    }

    let netns = libcni::attach::request_netns(request)?;
    let mut inside = netns.netlink()?;
    let (container_index, container) =
        libcni::attach::container_link(&mut inside, prev, request, Some("veth"))?;
    let expected = &prev.interfaces[container_index];
    libcni::attach::check_mac(&container, expected.mac.as_deref(), None)?;

    // The host end: a veth port of this bridge, named in prevResult.
    let host = prev
        .interfaces
        .iter()
        .filter(|i| i.sandbox.is_none() && i.name != cfg.bridge)
        .find_map(|i| {
            nl.get_link(&LinkId::Name(i.name.clone()))
                .ok()
                .flatten()
                .filter(|l| l.kind.as_deref() == Some("veth"))
        })
        .ok_or_else(|| failed(format!("the host veth of {:?} is missing", request.ifname)))?;
    if host.controller != Some(bridge.index) {
        return Err(failed(format!(
            "host veth {:?} is not a port of bridge {:?}",
            host.name, cfg.bridge
        )));
    }
    if host.hairpin.unwrap_or(false) != cfg.keys().hairpin_mode {
        return Err(failed(format!(
            "host veth {:?} hairpin mode differs from the config",
            host.name
        )));
    }
    if host.isolated.unwrap_or(false) != cfg.keys().port_isolation {
        return Err(failed(format!(
            "host veth {:?} isolation differs from the config",
            host.name
        )));
    }

    if cfg.vlan_filtering() {
        let mut expected_vids: BTreeSet<u16> =
            cfg.trunk.clone().unwrap_or_default().into_iter().collect();
        if cfg.vlan != 0 {
            expected_vids.insert(cfg.vlan);
        } else if !expected_vids.is_empty() {
            expected_vids.insert(1);
        }
        let dump = nl.bridge_vlan_dump()?;
        let actual: BTreeSet<u16> = dump
            .iter()
            .filter(|(i, _)| *i == host.index)
            .flat_map(|(_, v)| v.iter().map(|e| e.vid))
            .collect();
        let missing: Vec<&u16> = expected_vids.difference(&actual).collect();
        if !missing.is_empty() {
            return Err(failed(format!(
                "host veth {:?} is missing VLANs {missing:?}",
                host.name
            )));
        }
        if cfg.vlan != 0 {
            let pvid = dump
                .iter()
                .filter(|(i, _)| *i == host.index)
                .flat_map(|(_, v)| v.iter())
                .find(|e| e.pvid)
                .map(|e| e.vid);
            if pvid != Some(cfg.vlan) {
                return Err(failed(format!(
                    "host veth {:?} has PVID {pvid:?}, the config says {}",
                    host.name, cfg.vlan
                )));
            }
        }
    }

    if cfg.keys().macspoofchk {
        let reference = BridgeConfig::reference(request);
        match spoofcheck::allowed_mac(&reference)? {
            None => {
                return Err(failed(format!(
                    "macspoofchk rules of {reference} are missing"
                )))
            }
            Some(mac) if Some(mac.as_str()) != container.mac.as_deref() => {
                return Err(failed(format!(
                    "macspoofchk of {reference} allows {mac}, the interface has {:?}",
                    container.mac
                )))
            }
            Some(_) => {}
        }
    }

    libcni::attach::check_ips_and_routes(&mut inside, prev, container_index, &container)
}

/// Removes the macspoofchk state of attachments not in `valid`. The chains carry no
/// network name, so an attachment is only removed when its host veth is gone or is
/// a port of this network's bridge: GC of one network never touches another's.
pub fn gc_spoofcheck(cfg: &BridgeConfig, valid: &[(String, String)]) -> Result<(), CniError> {
    if !nft::available() {
        return Ok(());
    }
    let valid_refs: BTreeSet<String> = valid
        .iter()
        .map(|(cid, ifname)| format!("{cid}-{ifname}"))
        .collect();
    let prerouting = match nft::list(&["chain", "bridge", "nat", "PREROUTING"]) {
        Ok(items) => items,
        Err(e) if e.is_not_found() => Vec::new(),
        Err(e) => return Err(e.into()),
    };
    let mut nl = Netlink::open()?;
    let bridge = nl.get_link(&LinkId::Name(cfg.bridge.clone()))?;
    let mut errors = libcni::spec::error::ErrorList::new();
    for reference in spoofcheck::references()? {
        if valid_refs.contains(&reference) {
            continue;
        }
        let comment = spoofcheck::comment(&reference);
        let host_veth = nft::rules(&prerouting)
            .filter(|r| r["comment"] == comment.as_str())
            .find_map(|r| {
                r["expr"]
                    .as_array()?
                    .iter()
                    .find_map(|e| e["match"]["right"].as_str().map(str::to_owned))
            });
        let ours = match host_veth {
            None => true, // no jump into it: it filters nothing
            Some(name) => match nl.get_link(&LinkId::Name(name))? {
                None => true,
                Some(link) => bridge
                    .as_ref()
                    .is_some_and(|b| link.controller == Some(b.index)),
            },
        };
        if ours {
            errors.record(spoofcheck::teardown(&reference).map_err(CniError::from));
        }
    }
    errors.into_result()
}
