//! CHECK (every part of the attachment against prevResult and the config) and the
//! macspoofchk part of GC.

use std::collections::BTreeSet;

use libcni::netlink::nftables::{Batch, Nftables};
use libcni::netlink::{LinkId, LinkKind, Netlink};
use libcni::{CniError, CniResult, Request};

use crate::config::{BridgeConfig, MasqBackend};
use crate::spoofcheck;

fn failed(what: String) -> CniError {
    CniError::internal(what)
}

pub fn attachment(cfg: &BridgeConfig, request: &Request, prev: &CniResult) -> Result<(), CniError> {
    let mut nl = Netlink::open()?;
    let bridge = nl
        .get_link(&LinkId::Name(&cfg.bridge))?
        .ok_or_else(|| failed(format!("bridge {:?} does not exist", cfg.bridge)))?;
    if bridge.kind != Some(LinkKind::Bridge) {
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
        libcni::attach::container_link(&mut inside, prev, request, Some(LinkKind::Veth))?;
    let expected = &prev.interfaces[container_index];
    libcni::attach::check_mac(&container, expected.mac.as_deref(), None)?;

    // The host end: a veth port of this bridge, named in prevResult.
    let host = prev
        .interfaces
        .iter()
        .filter(|i| i.sandbox.is_none() && i.name != cfg.bridge)
        .find_map(|i| {
            nl.get_link(&LinkId::Name(&i.name))
                .ok()
                .flatten()
                .filter(|l| l.kind == Some(LinkKind::Veth))
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
        let reference = spoofcheck::reference(&request.container_id, &request.ifname);
        let mac = container.mac.ok_or_else(|| {
            failed(format!(
                "{:?} has no MAC for macspoofchk to check",
                request.ifname
            ))
        })?;
        let mut nft = Nftables::open()?;
        if let Err(spoofcheck::Broken(what)) =
            spoofcheck::verify(&mut nft, &reference, &host.name, mac)?
        {
            return Err(failed(what));
        }
    }

    // The nftables masquerade only: iptables rules are not read without running
    // iptables (README, Verbs).
    let backend = cfg.keys().ip_masq.then(|| {
        cfg.masq_backend
            .unwrap_or_else(crate::masq::default_backend)
    });
    if backend == Some(MasqBackend::Nftables) {
        let addresses: Vec<_> = prev.ips.iter().map(|ip| ip.address).collect();
        let mut nft = Nftables::open()?;
        if let Err(what) = crate::masq::verify_nft(
            &mut nft,
            &addresses,
            &cfg.conf.name,
            &request.ifname,
            &request.container_id,
        )? {
            return Err(failed(what));
        }
    }

    libcni::attach::check_ips_and_routes(&mut inside, prev, container_index, &container)
}

/// Removes the macspoofchk state of attachments not in `valid` that is not live:
/// the chains carry no network name, so GC of one network removes only rules whose
/// host veth is gone (see `spoofcheck`). A live attachment of another network on
/// the same bridge keeps its protection.
pub fn gc_spoofcheck(valid: &[(String, String)]) -> Result<(), CniError> {
    let Ok(mut nft) = Nftables::open() else {
        return Ok(());
    };
    if !nft.available() {
        return Ok(());
    }
    let valid_refs: BTreeSet<String> = valid
        .iter()
        .map(|(cid, ifname)| spoofcheck::reference(cid, ifname))
        .collect();
    let mut nl = Netlink::open()?;
    let mut errors = libcni::spec::error::ErrorList::new();
    for reference in spoofcheck::references(&mut nft)? {
        if valid_refs.contains(&reference) {
            continue;
        }
        errors.record(remove_spoofcheck(
            &mut nft, &mut nl, &reference, None, false,
        ));
    }
    errors.into_result()
}

/// Removes the macspoofchk rules of `reference` when every jump into them names
/// `own_host_veth`, without asking which veths exist. False when that does not
/// settle it (a jump names another veth), for `remove_spoofcheck` to judge later.
pub fn remove_own_spoofcheck(
    nft: &mut Nftables,
    reference: &str,
    own_host_veth: &str,
) -> Result<bool, CniError> {
    nft.remove(|nft| {
        let installed = spoofcheck::installed(nft, reference)?;
        if !installed.removable(Some(own_host_veth), |_| true) {
            return Ok((Batch::new(), false));
        }
        Ok((spoofcheck::teardown_batch(reference, &installed), true))
    })
}

/// Removes the macspoofchk rules of `reference` when they are ours to remove: their
/// jump matches `own_host_veth` or a host veth that is gone. Rules of a live
/// attachment stay (a colliding reference, or another network's pod), and that is
/// success: there is nothing of ours left to undo. With `pod_gone` (DEL after the
/// pod's netns went away) a host veth that still exists is given a moment to go:
/// the kernel destroys a netns, and the veth with it, asynchronously. Rules another
/// teardown removes meanwhile are success too (see `Nftables::remove`).
pub fn remove_spoofcheck(
    nft: &mut Nftables,
    nl: &mut Netlink,
    reference: &str,
    own_host_veth: Option<&str>,
    pod_gone: bool,
) -> Result<(), CniError> {
    let first = spoofcheck::installed(nft, reference)?;
    if pod_gone {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while std::time::Instant::now() < deadline
            && first.host_veths().iter().any(|v| {
                Some(v.as_str()) != own_host_veth
                    && matches!(nl.get_link(&LinkId::Name(v)), Ok(Some(_)))
            })
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let mut first = Some(first);
    nft.remove(|nft| {
        // The first attempt uses the read above; a retry reads again.
        let installed = match first.take() {
            Some(installed) => installed,
            None => spoofcheck::installed(nft, reference)?,
        };
        let mut lookup_failed = false;
        let removable = installed.removable(own_host_veth, |veth| {
            match nl.get_link(&LinkId::Name(veth)) {
                Ok(link) => link.is_some(),
                Err(_) => {
                    lookup_failed = true;
                    true
                }
            }
        });
        if removable && !lookup_failed {
            return Ok((spoofcheck::teardown_batch(reference, &installed), ()));
        }
        if installed != spoofcheck::Installed::Nothing {
            libcni::log_warn!(
                "left the macspoofchk rules of {reference} in place: they filter the live host interface {:?}",
                installed.host_veths()
            );
        }
        Ok::<_, CniError>((Batch::new(), ()))
    })
}
