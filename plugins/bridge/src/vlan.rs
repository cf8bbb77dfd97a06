//! VLANs on the bridge: the port's access VLAN and trunk, and the `<bridge>.<vlan>`
//! interface that carries a VLAN network's gateway address.

use std::path::Path;

use libcni::attach::vlan_gateway_mark;
use libcni::netlink::{
    random_name, BridgeVlanEntry, Link, LinkId, LinkKind, Netlink, NewLink, NewLinkKind,
};
use libcni::CniError;

use crate::config::PortVlans;

const VLAN_LOCK_DIR: &str = "/run/cni/bridge";

/// Access VLAN (PVID, untagged), trunk VIDs (tagged), and VLAN 1 removed unless preserved.
pub fn program_vlans(nl: &mut Netlink, vlans: &PortVlans, port: &Link) -> Result<(), CniError> {
    if !vlans.filtering() {
        return Ok(());
    }
    let trunk = vlans.trunk.clone().unwrap_or_default();
    if (vlans.access != 0 || !trunk.is_empty()) && !vlans.preserve_default_vlan {
        let dump = nl.bridge_vlan_dump()?;
        for (_, entries) in dump.iter().filter(|(index, _)| *index == port.index) {
            for vlan in entries {
                nl.bridge_vlan_del(port.index, vlan.vid).map_err(|e| {
                    CniError::from(e.context(format!("remove the default VLAN of {:?}", port.name)))
                })?;
            }
        }
    }
    let tag = |e: libcni::netlink::NetlinkError| -> CniError {
        e.context(format!("set up VLAN tags on {:?}", port.name))
            .into()
    };
    if vlans.access != 0 {
        nl.bridge_vlan_add(port.index, BridgeVlanEntry::access(vlans.access))
            .map_err(tag)?;
    }
    for vid in &trunk {
        nl.bridge_vlan_add(port.index, BridgeVlanEntry::tagged(*vid))
            .map_err(tag)?;
    }
    if vlans.access == 0 && !trunk.is_empty() {
        nl.bridge_vlan_add(port.index, BridgeVlanEntry::access(1))
            .map_err(tag)?;
    }
    Ok(())
}

/// Serializes the gateway-VLAN interface between concurrent ADDs and DELs of a bridge.
pub fn lock_vlan_gateway(bridge: &str) -> Result<nix::fcntl::Flock<std::fs::File>, CniError> {
    libcni::host::fs::StateDir::create(Path::new(VLAN_LOCK_DIR), 0o755)
        .and_then(|dir| dir.lock(&format!("{bridge}.lock"), 0o600))
        .map_err(CniError::from)
}

/// `<bridge>.<vlan>`: a veth whose peer is an access port of the VLAN, carrying the
/// gateway address of a VLAN network (as the Go plugin does).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlanGateway {
    pub bridge: String,
    pub vlan: u16,
}

impl VlanGateway {
    fn name(&self) -> String {
        format!("{}.{}", self.bridge, self.vlan)
    }

    /// Finds or makes the interface. One that exists is used as it is, as Go does,
    /// and left unmarked: a link of that name the admin made stays theirs, and DEL
    /// leaves it. One made here carries the gateway mark, and is put in `made` (the
    /// rollback's) as soon as it is marked.
    pub fn ensure(
        &self,
        nl: &mut Netlink,
        vlans: &PortVlans,
        bridge: &Link,
        made: &mut Option<VlanGateway>,
    ) -> Result<Link, CniError> {
        let name = self.name();
        if let Some(link) = nl.get_link(&LinkId::Name(&name))? {
            return Ok(link);
        }
        let peer_name = random_name("veth", 8);
        let peer = NewLink::peer(peer_name.clone());
        let mut gateway = NewLink::new(
            name.clone(),
            NewLinkKind::Veth {
                peer: Box::new(peer),
            },
        );
        gateway.up = true;
        nl.create_link(&gateway)
            .map_err(|e| CniError::from(e.context("create the VLAN gateway interface")))?;
        // Marked before anything else can fail: rollback and DEL remove only a marked one.
        let created = nl.require_link(&LinkId::Name(&name))?;
        if let Err(e) = nl
            .change_link(created.index)
            .alias(&vlan_gateway_mark(&self.bridge, self.vlan))
            .apply()
        {
            if let Err(undo) = nl.delete_link(created.index, &name) {
                libcni::log_warn!("rollback: {undo}");
            }
            return Err(e
                .context(format!("mark the VLAN gateway interface {name:?}"))
                .into());
        }
        *made = Some(self.clone());
        self.attach_peer(nl, vlans, bridge, peer_name)
    }

    /// Makes the gateway's peer an access port of the VLAN. A veth peer cannot be
    /// created up (older kernels open it before it is paired: ENOTCONN) nor with a
    /// controller: both are set once the pair exists.
    fn attach_peer(
        &self,
        nl: &mut Netlink,
        vlans: &PortVlans,
        bridge: &Link,
        peer_name: String,
    ) -> Result<Link, CniError> {
        let peer = nl.require_link(&LinkId::Name(&peer_name))?;
        nl.change_link(peer.index)
            .controller(bridge.index)
            .apply()?;
        nl.change_link(peer.index).up().apply()?;
        let access = PortVlans {
            trunk: None,
            ..vlans.clone()
        };
        program_vlans(nl, &access, &peer)?;
        Ok(nl.require_link(&LinkId::Name(&self.name()))?)
    }

    /// Deletes the interface when it is the one `ensure` made (see `own_gateway`) and
    /// no port but its own peer is left in the VLAN. Any other link of that name
    /// stays, with a warning: the admin's own VLAN interface, the Go plugin's gateway
    /// (Go never deletes it), `<uplink>.<vlan>` when a config names an uplink as its
    /// bridge. Already gone is success.
    pub fn remove_if_unused(&self) -> Result<(), CniError> {
        let (bridge_name, vlan) = (self.bridge.as_str(), self.vlan);
        let _guard = lock_vlan_gateway(bridge_name)?;
        let mut nl = Netlink::open()?;
        let name = self.name();
        let Some(gateway) = nl.get_link(&LinkId::Name(&name))? else {
            return Ok(());
        };
        let bridge = nl.get_link(&LinkId::Name(bridge_name))?;
        let peer = match gateway.parent {
            Some(index) if gateway.link_netnsid().is_none() => {
                nl.get_link(&LinkId::Index(index))?
            }
            _ => None,
        };
        let bridge = match own_gateway(&gateway, bridge_name, vlan, bridge, peer.as_ref()) {
            Ok(bridge) => bridge,
            Err(reason) => {
                libcni::log_warn!("left {name:?} in place: {reason}");
                return Ok(());
            }
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
            nl.delete_found_link(gateway.index, &name)
                .map_err(|e| CniError::from(e.context("remove the VLAN gateway interface")))?;
        }
        Ok(())
    }
}

/// Whether `gateway` (named `<bridge>.<vlan>`) is the interface `VlanGateway::ensure`
/// made: a veth carrying the gateway mark of this bridge and VLAN, whose peer (in
/// the same netns) is a port of `bridge`, which must be a bridge. Returns the
/// bridge, or why the interface is not ours.
fn own_gateway(
    gateway: &Link,
    bridge_name: &str,
    vlan: u16,
    bridge: Option<Link>,
    peer: Option<&Link>,
) -> Result<Link, String> {
    let bridge = bridge.ok_or_else(|| format!("bridge {bridge_name:?} does not exist"))?;
    if bridge.kind != Some(LinkKind::Bridge) {
        return Err(format!("{bridge_name:?} is not a bridge"));
    }
    if gateway.alias.as_deref() != Some(vlan_gateway_mark(bridge_name, vlan).as_str()) {
        return Err(
            "it does not carry the mark of a VLAN gateway interface this plugin made (the admin's own, or the Go plugin's)"
                .into(),
        );
    }
    if gateway.kind != Some(LinkKind::Veth) {
        let kind = gateway.kind.as_ref().map(LinkKind::to_string);
        return Err(format!(
            "it is a {} link, not the veth this plugin makes",
            kind.as_deref().unwrap_or("physical")
        ));
    }
    if peer.is_none_or(|p| p.controller != Some(bridge.index)) {
        return Err(format!("its peer is not a port of bridge {bridge_name:?}"));
    }
    Ok(bridge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(index: u32, name: &str, kind: &str) -> Link {
        Link {
            index,
            name: name.into(),
            kind: Some(kind.into()),
            ..Link::default()
        }
    }

    #[test]
    fn only_a_marked_veth_whose_peer_is_a_port_of_the_bridge_is_ours() {
        let bridge = link(1, "br1", "bridge");
        let mut gateway = link(2, "br1.77", "veth");
        gateway.alias = Some(vlan_gateway_mark("br1", 77));
        let mut peer = link(3, "veth1", "veth");
        peer.controller = Some(1);
        let judge = |gateway: &Link, bridge: &Link, peer: &Link| {
            own_gateway(gateway, "br1", 77, Some(bridge.clone()), Some(peer)).map(|b| b.index)
        };
        assert_eq!(judge(&gateway, &bridge, &peer), Ok(1));

        let unmarked = Link {
            alias: None,
            ..gateway.clone()
        };
        assert!(judge(&unmarked, &bridge, &peer)
            .unwrap_err()
            .contains("mark"));
        let other_vlan = Link {
            alias: Some(vlan_gateway_mark("br1", 78)),
            ..gateway.clone()
        };
        assert!(judge(&other_vlan, &bridge, &peer).is_err());
        let macvlan = Link {
            kind: Some("macvlan".into()),
            ..gateway.clone()
        };
        assert!(judge(&macvlan, &bridge, &peer)
            .unwrap_err()
            .contains("macvlan"));
        let loose_peer = Link {
            controller: None,
            ..peer.clone()
        };
        assert!(judge(&gateway, &bridge, &loose_peer)
            .unwrap_err()
            .contains("peer"));
        let uplink = link(1, "br1", "veth");
        assert!(judge(&gateway, &uplink, &peer)
            .unwrap_err()
            .contains("not a bridge"));
        assert!(own_gateway(&gateway, "br1", 77, None, Some(&peer)).is_err());
        assert!(own_gateway(&gateway, "br1", 77, Some(bridge), None).is_err());
    }
}
