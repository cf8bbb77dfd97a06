//! CHECK: every part of the attachment against prevResult and the config.

use std::collections::BTreeSet;

use libcni::netlink::{Link, LinkId, LinkKind, Netlink};
use libcni::spec::attachment::AttachmentId;
use libcni::{CniError, CniResult, Request};

use crate::config::BridgeConfig;
use crate::masq::Masquerade;
use crate::spoofcheck::{self, IpFilter, MacPin, SpoofCheck};

fn failed(what: String) -> CniError {
    CniError::internal(what)
}

pub fn attachment(cfg: &BridgeConfig, request: &Request, prev: &CniResult) -> Result<(), CniError> {
    let mut nl = Netlink::open()?;
    let bridge = check_bridge(&mut nl, cfg)?;
    let netns = libcni::attach::request_netns(request)?;
    let mut inside = netns.netlink()?;
    let (container_index, container) =
        libcni::attach::container_link(&mut inside, prev, request, Some(LinkKind::Veth))?;
    let expected = &prev.interfaces[container_index];
    libcni::attach::check_mac(&container, expected.mac.as_deref(), None)?;
    let host = check_host_port(&mut nl, cfg, prev, &request.ifname, &bridge)?;
    if cfg.vlan_filtering() {
        check_port_vlans(&mut nl, cfg, &host)?;
    }
    let id = request.attachment();
    if cfg.macspoofchk {
        let mac = container.mac.ok_or_else(|| {
            failed(format!(
                "{:?} has no MAC for macspoofchk to check",
                request.ifname
            ))
        })?;
        let ip_filter = cfg
            .ipspoofchk
            .then(|| IpFilter::of(mac, prev))
            .transpose()?;
        SpoofCheck::of(&id).check(&host.name, mac, ip_filter.as_ref())?;
        if cfg.ipspoofchk {
            let pin = MacPin {
                bridge: &bridge,
                port: &host,
                mac,
                vids: cfg.vlans.member_vids(),
                maybe_vid: cfg.vlans.preserved_default_vid(),
            };
            pin.check(&mut nl)?;
            spoofcheck::edge::check(&host)?;
        }
    }
    check_masquerade(cfg, &id, prev)?;
    libcni::attach::check_ips_and_routes(&mut inside, prev, container_index, &container)
}

/// The bridge exists, is a bridge, and is promiscuous as the config says.
fn check_bridge(nl: &mut Netlink, cfg: &BridgeConfig) -> Result<Link, CniError> {
    let bridge = nl
        .get_link(&LinkId::Name(&cfg.bridge))?
        .ok_or_else(|| failed(format!("bridge {:?} does not exist", cfg.bridge)))?;
    if bridge.kind != Some(LinkKind::Bridge) {
        return Err(failed(format!("{:?} is not a bridge", cfg.bridge)));
    }
    if cfg.promisc_mode != bridge.promiscuous {
        return Err(failed(format!(
            "bridge {:?} promiscuous mode is {}, the config says {}",
            cfg.bridge, bridge.promiscuous, cfg.promisc_mode
        )));
    }
    Ok(bridge)
}

/// The host end: a veth port of this bridge, named in prevResult, with the
/// config's hairpin and isolation flags.
fn check_host_port(
    nl: &mut Netlink,
    cfg: &BridgeConfig,
    prev: &CniResult,
    ifname: &str,
    bridge: &Link,
) -> Result<Link, CniError> {
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
        .ok_or_else(|| failed(format!("the host veth of {ifname:?} is missing")))?;
    if host.controller != Some(bridge.index) {
        return Err(failed(format!(
            "host veth {:?} is not a port of bridge {:?}",
            host.name, cfg.bridge
        )));
    }
    if host.hairpin.unwrap_or(false) != cfg.hairpin_mode {
        return Err(failed(format!(
            "host veth {:?} hairpin mode differs from the config",
            host.name
        )));
    }
    if host.isolated.unwrap_or(false) != cfg.port_isolation {
        return Err(failed(format!(
            "host veth {:?} isolation differs from the config",
            host.name
        )));
    }
    Ok(host)
}

/// The port carries every configured VLAN, and the access VLAN as its PVID.
fn check_port_vlans(nl: &mut Netlink, cfg: &BridgeConfig, host: &Link) -> Result<(), CniError> {
    let vlans = &cfg.vlans;
    let mut expected_vids: BTreeSet<u16> = vlans
        .trunk
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    if vlans.access != 0 {
        expected_vids.insert(vlans.access);
    } else if !expected_vids.is_empty() {
        expected_vids.insert(1);
    }
    let dump = nl.bridge_vlan_dump()?;
    let port_vlans = || {
        dump.iter()
            .filter(|(i, _)| *i == host.index)
            .flat_map(|(_, v)| v.iter())
    };
    let actual: BTreeSet<u16> = port_vlans().map(|e| e.vid).collect();
    let missing: Vec<&u16> = expected_vids.difference(&actual).collect();
    if !missing.is_empty() {
        return Err(failed(format!(
            "host veth {:?} is missing VLANs {missing:?}",
            host.name
        )));
    }
    if vlans.access != 0 {
        let pvid = port_vlans().find(|e| e.pvid).map(|e| e.vid);
        if pvid != Some(vlans.access) {
            return Err(failed(format!(
                "host veth {:?} has PVID {pvid:?}, the config says {}",
                host.name, vlans.access
            )));
        }
    }
    Ok(())
}

/// The masquerade of the attachment's addresses, with the backend ADD used.
fn check_masquerade(
    cfg: &BridgeConfig,
    id: &AttachmentId,
    prev: &CniResult,
) -> Result<(), CniError> {
    if !cfg.ip_masq {
        return Ok(());
    }
    let backend = cfg
        .masq_backend
        .unwrap_or_else(crate::masq::default_backend);
    let addresses: Vec<_> = prev.ips.iter().map(|ip| ip.address).collect();
    Masquerade::of(id, &addresses).verify(backend)
}
