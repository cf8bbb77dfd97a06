//! Bridges: VLAN filtering, port flags and per-port VLANs.

use netlink_packet_core::{NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::link::{
    AfSpecBridge, BridgeMulticastRouterType, BridgeVlanInfo, BridgeVlanInfoFlags, InfoBridge,
    InfoBridgePort, InfoData, InfoKind, InfoPortData, InfoPortKind, LinkAttribute, LinkExtentMask,
    LinkInfo, LinkMessage,
};
use netlink_packet_route::neighbour::{
    NeighbourAttribute, NeighbourFlags, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NlResult, RouteTransport, DUMP, GET};
use crate::mac::MacAddr;

/// A bridge's forwarding entry for one MAC in one VLAN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdbEntry {
    /// The port frames to the MAC go to.
    pub port: u32,
    /// Static and sticky: put there by [`Netlink::bridge_fdb_pin`], not learned,
    /// and learning cannot move it.
    pub pinned: bool,
}

/// The neighbour message of a bridge FDB entry for `mac` in `vid` (None: a bridge
/// without VLAN filtering).
fn fdb_message(port: u32, mac: MacAddr, vid: Option<u16>) -> NeighbourMessage {
    let mut message = NeighbourMessage::default();
    message.header.family = AddressFamily::Bridge;
    message.header.ifindex = port;
    message
        .attributes
        .push(NeighbourAttribute::LinkLayerAddress(mac.octets().to_vec()));
    message.attributes.extend(vid.map(NeighbourAttribute::Vlan));
    message
}

/// Bridge port flags to set; `None` leaves a flag as it is.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgePortFlags {
    pub hairpin: Option<bool>,
    pub isolated: Option<bool>,
    /// Learning source MACs on the port (IFLA_BRPORT_LEARNING).
    pub learning: Option<bool>,
    /// BPDU guard: a BPDU received on the port disables it (IFLA_BRPORT_GUARD).
    pub bpdu_guard: Option<bool>,
    /// Whether multicast queries may make the port a multicast router port
    /// (false: IFLA_BRPORT_MULTICAST_ROUTER 0, never one).
    pub multicast_router: Option<bool>,
}

/// One VLAN of a bridge port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BridgeVlanEntry {
    pub vid: u16,
    pub pvid: bool,
    pub untagged: bool,
}

impl BridgeVlanEntry {
    /// An access VLAN: the port's PVID, sent untagged.
    pub fn access(vid: u16) -> BridgeVlanEntry {
        BridgeVlanEntry {
            vid,
            pvid: true,
            untagged: true,
        }
    }

    /// A trunk VLAN: tagged, not the PVID.
    pub fn tagged(vid: u16) -> BridgeVlanEntry {
        BridgeVlanEntry {
            vid,
            pvid: false,
            untagged: false,
        }
    }
}

fn vlan_message(port: u32, vlan: BridgeVlanEntry) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.interface_family = AddressFamily::Bridge;
    message.header.index = port;
    let mut flags = BridgeVlanInfoFlags::empty();
    if vlan.pvid {
        flags |= BridgeVlanInfoFlags::Pvid;
    }
    if vlan.untagged {
        flags |= BridgeVlanInfoFlags::Untagged;
    }
    let info = BridgeVlanInfo {
        flags,
        vid: vlan.vid,
    };
    message
        .attributes
        .push(LinkAttribute::AfSpecBridge(vec![AfSpecBridge::VlanInfo(
            info,
        )]));
    message
}

impl<T: RouteTransport> Netlink<T> {
    /// Turns VLAN filtering on or off on an existing bridge. It must be RTM_NEWLINK:
    /// the kernel accepts the same attribute in RTM_SETLINK and ignores it.
    pub fn set_vlan_filtering(&mut self, bridge: u32, on: bool) -> NlResult<()> {
        let mut message = LinkMessage::default();
        message.header.index = bridge;
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Bridge),
            LinkInfo::Data(InfoData::Bridge(vec![InfoBridge::VlanFiltering(on)])),
        ]));
        self.change(
            RouteNetlinkMessage::NewLink(message),
            format!("set vlan_filtering={} on bridge #{bridge}", u8::from(on)),
        )
    }

    /// Sets bridge port flags (hairpin, isolated) on a port.
    pub fn set_bridge_port_flags(&mut self, port: u32, flags: BridgePortFlags) -> NlResult<()> {
        let mut data = Vec::new();
        if let Some(on) = flags.hairpin {
            data.push(InfoBridgePort::HairpinMode(on));
        }
        if let Some(on) = flags.isolated {
            data.push(InfoBridgePort::Isolated(on));
        }
        if let Some(on) = flags.learning {
            data.push(InfoBridgePort::Learning(on));
        }
        if let Some(on) = flags.bpdu_guard {
            data.push(InfoBridgePort::Guard(on));
        }
        if let Some(may) = flags.multicast_router {
            data.push(InfoBridgePort::MulticastRouter(match may {
                true => BridgeMulticastRouterType::TempQuery,
                false => BridgeMulticastRouterType::Disabled,
            }));
        }
        if data.is_empty() {
            return Ok(());
        }
        let mut message = LinkMessage::default();
        message.header.index = port;
        message.attributes.push(LinkAttribute::LinkInfo(vec![
            LinkInfo::PortKind(InfoPortKind::Bridge),
            LinkInfo::PortData(InfoPortData::BridgePort(data)),
        ]));
        self.change(
            RouteNetlinkMessage::NewLink(message),
            format!("set bridge port flags {flags:?} on link #{port}"),
        )
    }

    pub fn bridge_vlan_add(&mut self, port: u32, vlan: BridgeVlanEntry) -> NlResult<()> {
        self.change(
            RouteNetlinkMessage::SetLink(vlan_message(port, vlan)),
            format!("add VLAN {} to bridge port #{port}", vlan.vid),
        )
    }

    pub fn bridge_vlan_del(&mut self, port: u32, vid: u16) -> NlResult<()> {
        let vlan = BridgeVlanEntry {
            vid,
            pvid: false,
            untagged: false,
        };
        self.change(
            RouteNetlinkMessage::DelLink(vlan_message(port, vlan)),
            format!("delete VLAN {vid} from bridge port #{port}"),
        )
    }

    /// Pins `mac` in `vid` to bridge port `port`: a static FDB entry that learning
    /// cannot move (`bridge fdb add MAC dev PORT master static sticky [vlan VID]`).
    /// Created exclusively: EEXIST when the bridge already has an entry for that
    /// MAC in that VLAN, on any port (one another port holds, or learned there).
    /// It goes with the port.
    pub fn bridge_fdb_pin(&mut self, port: u32, mac: MacAddr, vid: Option<u16>) -> NlResult<()> {
        let mut message = fdb_message(port, mac, vid);
        message.header.state = NeighbourState::Noarp;
        message.header.flags = NeighbourFlags::Controller | NeighbourFlags::Sticky;
        let vlan = vid.map(|v| format!(" in VLAN {v}")).unwrap_or_default();
        self.request(
            RouteNetlinkMessage::NewNeighbour(message),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            format!("pin MAC {mac}{vlan} to bridge port #{port}"),
        )
        .map(drop)
    }

    /// The entry of `bridge`'s forwarding database for `mac` in `vid`, if any
    /// (`bridge fdb get MAC br BRIDGE [vlan VID]`): one lookup, whatever the number
    /// of entries.
    pub fn bridge_fdb_get(
        &mut self,
        bridge: u32,
        mac: MacAddr,
        vid: Option<u16>,
    ) -> NlResult<Option<FdbEntry>> {
        let mut message = fdb_message(0, mac, vid);
        message
            .attributes
            .push(NeighbourAttribute::Controller(bridge));
        let replies = match self.request(
            RouteNetlinkMessage::GetNeighbour(message),
            GET,
            format!("look up MAC {mac} in the forwarding database of bridge #{bridge}"),
        ) {
            Err(e) if e.is_not_found() => return Ok(None),
            other => other?,
        };
        Ok(replies.into_iter().find_map(|reply| match reply {
            RouteNetlinkMessage::NewNeighbour(entry) => Some(FdbEntry {
                port: entry.header.ifindex,
                pinned: entry.header.state == NeighbourState::Noarp
                    && entry.header.flags.contains(NeighbourFlags::Sticky),
            }),
            _ => None,
        }))
    }

    /// The VLANs of every bridge port (and bridge) of the netns, by link index.
    pub fn bridge_vlan_dump(&mut self) -> NlResult<Vec<(u32, Vec<BridgeVlanEntry>)>> {
        let mut request = LinkMessage::default();
        request.header.interface_family = AddressFamily::Bridge;
        request
            .attributes
            .push(LinkAttribute::ExtMask(vec![LinkExtentMask::Brvlan]));
        let replies = self.request(
            RouteNetlinkMessage::GetLink(request),
            DUMP,
            "list bridge VLANs".to_string(),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => {
                    let vlans: Vec<BridgeVlanEntry> = link
                        .attributes
                        .iter()
                        .filter_map(|a| match a {
                            LinkAttribute::AfSpecBridge(spec) => Some(spec),
                            _ => None,
                        })
                        .flatten()
                        .filter_map(|s| match s {
                            AfSpecBridge::VlanInfo(info) => Some(BridgeVlanEntry {
                                vid: info.vid,
                                pvid: info.flags.contains(BridgeVlanInfoFlags::Pvid),
                                untagged: info.flags.contains(BridgeVlanInfoFlags::Untagged),
                            }),
                            _ => None,
                        })
                        .collect();
                    Some((link.header.index, vlans))
                }
                _ => None,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_vlan_is_pvid_untagged_in_the_bridge_family() {
        let mut nl = Netlink::fake();
        nl.bridge_vlan_add(5, BridgeVlanEntry::access(1223))
            .unwrap();
        let RouteNetlinkMessage::SetLink(m) = &nl.transport.sent[0].message else {
            panic!()
        };
        assert_eq!(m.header.interface_family, AddressFamily::Bridge);
        assert_eq!(m.header.index, 5);
        let LinkAttribute::AfSpecBridge(spec) = &m.attributes[0] else {
            panic!()
        };
        let AfSpecBridge::VlanInfo(info) = &spec[0] else {
            panic!()
        };
        assert_eq!(info.vid, 1223);
        assert_eq!(
            info.flags,
            BridgeVlanInfoFlags::Pvid | BridgeVlanInfoFlags::Untagged
        );
    }

    #[test]
    fn vlan_delete_is_dellink_of_the_port() {
        let mut nl = Netlink::fake();
        nl.bridge_vlan_del(2, 1).unwrap();
        let RouteNetlinkMessage::DelLink(m) = &nl.transport.sent[0].message else {
            panic!()
        };
        assert_eq!(m.header.interface_family, AddressFamily::Bridge);
        assert_eq!(m.header.index, 2);
        let LinkAttribute::AfSpecBridge(spec) = &m.attributes[0] else {
            panic!()
        };
        let [AfSpecBridge::VlanInfo(info)] = spec.as_slice() else {
            panic!("{spec:?}")
        };
        assert_eq!(info.vid, 1);
    }

    #[test]
    fn vlan_filtering_on_an_existing_bridge_is_newlink() {
        let mut nl = Netlink::fake();
        nl.set_vlan_filtering(2, true).unwrap();
        let super::super::Operation {
            message: RouteNetlinkMessage::NewLink(m),
            flags,
            ..
        } = &nl.transport.sent[0]
        else {
            panic!()
        };
        assert_eq!(*flags & netlink_packet_core::NLM_F_CREATE, 0);
        assert_eq!(m.header.index, 2);
    }

    #[test]
    fn port_flags_only_sent_when_asked() {
        let mut nl = Netlink::fake();
        nl.set_bridge_port_flags(3, BridgePortFlags::default())
            .unwrap();
        assert!(nl.transport.sent.is_empty());
        nl.set_bridge_port_flags(
            3,
            BridgePortFlags {
                hairpin: Some(true),
                isolated: Some(false),
                ..Default::default()
            },
        )
        .unwrap();
        let RouteNetlinkMessage::NewLink(m) = &nl.transport.sent[0].message else {
            panic!()
        };
        assert_eq!(
            m.attributes[0],
            LinkAttribute::LinkInfo(vec![
                LinkInfo::PortKind(InfoPortKind::Bridge),
                LinkInfo::PortData(InfoPortData::BridgePort(vec![
                    InfoBridgePort::HairpinMode(true),
                    InfoBridgePort::Isolated(false)
                ])),
            ])
        );
    }
}
