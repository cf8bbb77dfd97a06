//! VLANs on the bridge: the port's access VLAN and trunk, and the `<bridge>.<vlan>`
//! interface that carries a VLAN network's gateway address.

use std::path::Path;

use libcni::netlink::{random_name, BridgeVlanEntry, Link, LinkId, LinkKind, Netlink, NewLink};
use libcni::CniError;

use crate::config::BridgeConfig;
use crate::rollback::Rollback;

const VLAN_LOCK_DIR: &str = "/run/cni/bridge";

/// Access VLAN (PVID, untagged), trunk VIDs (tagged), and VLAN 1 removed unless preserved.
pub fn program_vlans(nl: &mut Netlink, cfg: &BridgeConfig, port: &Link) -> Result<(), CniError> {
    if !cfg.vlan_filtering() {
        return Ok(());
    }
    let trunk = cfg.trunk.clone().unwrap_or_default();
    if (cfg.vlan != 0 || !trunk.is_empty()) && !cfg.preserve_default_vlan {
        let dump = nl.bridge_vlan_dump()?;
        for (_, vlans) in dump.iter().filter(|(index, _)| *index == port.index) {
            for vlan in vlans {
                nl.bridge_vlan_del(port.index, vlan.vid, false)
                    .map_err(|e| {
                        CniError::from(
                            e.context(format!("remove the default VLAN of {:?}", port.name)),
                        )
                    })?;
            }
        }
    }
    let tag = |e: libcni::netlink::NetlinkError| -> CniError {
        e.context(format!("set up VLAN tags on {:?}", port.name))
            .into()
    };
    if cfg.vlan != 0 {
        nl.bridge_vlan_add(port.index, BridgeVlanEntry::access(cfg.vlan), false)
            .map_err(tag)?;
    }
    for vid in &trunk {
        nl.bridge_vlan_add(port.index, BridgeVlanEntry::tagged(*vid), false)
            .map_err(tag)?;
    }
    if cfg.vlan == 0 && !trunk.is_empty() {
        nl.bridge_vlan_add(port.index, BridgeVlanEntry::access(1), false)
            .map_err(tag)?;
    }
    Ok(())
}

/// Serializes the gateway-VLAN interface between concurrent ADDs and DELs of a bridge.
pub fn lock_vlan_gateway(bridge: &str) -> Result<nix::fcntl::Flock<std::fs::File>, CniError> {
    libcni::host::fs::StateDir::create(Path::new(VLAN_LOCK_DIR), 0o755)
        .and_then(|dir| dir.lock(&format!("{bridge}.lock"), 0o600))
        .map_err(|e| CniError::io(e.to_string()))
}

/// `<bridge>.<vlan>`: a veth whose peer is an access port of the VLAN, carrying the
/// gateway address of a VLAN network (as the Go plugin does).
pub fn ensure_vlan_gateway(
    nl: &mut Netlink,
    cfg: &BridgeConfig,
    bridge: &Link,
    rollback: &mut Rollback,
) -> Result<Link, CniError> {
    let name = format!("{}.{}", cfg.bridge, cfg.vlan);
    if let Some(link) = nl.get_link(&LinkId::Name(name.clone()))? {
        return Ok(link);
    }
    let peer_name = random_name("veth", 8);
    let peer = NewLink::peer(peer_name.clone());
    let mut gateway = NewLink::new(
        name.clone(),
        LinkKind::Veth {
            peer: Box::new(peer),
        },
    );
    gateway.up = true;
    nl.create_link(&gateway)
        .map_err(|e| CniError::from(e.context("create the VLAN gateway interface")))?;
    rollback.created_vlan_gateway = Some(name.clone());
    // A veth peer cannot be created up (older kernels open it before it is paired:
    // ENOTCONN) nor with a controller: both are set once the pair exists.
    let peer = nl.require_link(&LinkId::Name(peer_name))?;
    nl.set_controller(peer.index, bridge.index)?;
    nl.set_up(peer.index, true)?;
    let access = BridgeConfig {
        trunk: None,
        ..clone_vlan_only(cfg)
    };
    program_vlans(nl, &access, &peer)?;
    Ok(nl.require_link(&LinkId::Name(name))?)
}

/// A config with the same bridge and access VLAN, for the gateway's own port.
pub fn clone_vlan_only(cfg: &BridgeConfig) -> BridgeConfig {
    BridgeConfig {
        conf: libcni::spec::config::parse_netconf(b"{\"name\":\"x\"}").expect("static config"),
        bridge: cfg.bridge.clone(),
        is_gateway: cfg.is_gateway,
        vlan: cfg.vlan,
        trunk: None,
        preserve_default_vlan: cfg.preserve_default_vlan,
        mac: None,
        masq_backend: None,
    }
}

/// Deletes `<bridge>.<vlan>` when no port but its own peer is left in the VLAN.
pub fn remove_unused_vlan_gateway(bridge_name: &str, vlan: u16) -> Result<(), CniError> {
    let _guard = lock_vlan_gateway(bridge_name)?;
    let mut nl = Netlink::open()?;
    let name = format!("{bridge_name}.{vlan}");
    let Some(gateway) = nl.get_link(&LinkId::Name(name.clone()))? else {
        return Ok(());
    };
    let Some(bridge) = nl.get_link(&LinkId::Name(bridge_name.to_string()))? else {
        return Ok(());
    };
    let links = nl.list_links()?;
    let gateway_peer = gateway.parent;
    let ports: Vec<u32> = links
        .iter()
        .filter(|l| l.controller == Some(bridge.index) && Some(l.index) != gateway_peer)
        .map(|l| l.index)
        .collect();
    let in_use = nl
        .bridge_vlan_dump()?
        .iter()
        .any(|(index, vlans)| ports.contains(index) && vlans.iter().any(|v| v.vid == vlan));
    if !in_use {
        nl.delete_link_if_present(&name)?;
    }
    Ok(())
}
