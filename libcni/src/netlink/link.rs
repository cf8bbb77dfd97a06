//! Links: look-up, creation (directly in a target netns), changes and deletion.

use std::os::fd::{AsRawFd, BorrowedFd};

use netlink_packet_core::{DefaultNla, NLA_F_NESTED, NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::link::{
    AfSpecInet, AfSpecUnspec, BridgeMulticastRouterType, InfoBridgePort, InfoData, InfoKind,
    InfoMacVlan, InfoPortData, InfoVeth, InfoVlan, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
    MacVlanMode, Prop, State, VlanProtocol,
};
use netlink_packet_route::RouteNetlinkMessage;

use super::{on_off, Netlink, NlResult, RouteTransport, CHANGE, DUMP, GET};
use crate::mac::MacAddr;

/// How a link is named in a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkId<'a> {
    Index(u32),
    Name(&'a str),
}

impl std::fmt::Display for LinkId<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkId::Index(i) => write!(f, "link #{i}"),
            LinkId::Name(n) => write!(f, "{n:?}"),
        }
    }
}

/// A per-link IPv4 setting: a key of `/proc/sys/net/ipv4/conf/<link>/`. Set by a
/// link change, which names the link by index, where the file can be written only
/// from a thread inside the link's netns (and found only by its name there).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ipv4Conf {
    /// Gratuitous ARP when the link comes up or its MAC changes.
    ArpNotify(bool),
    /// Reverse-path filter: 0 off, 1 strict, 2 loose.
    RpFilter(u32),
    /// Which ARP requests the link answers (8: none).
    ArpIgnore(u32),
    /// Drop unicast IP packets inside layer-2 multicast or broadcast frames.
    DropUnicastInL2Multicast(bool),
}

impl Ipv4Conf {
    /// The sysctl's name under `net/ipv4/conf/<link>/`.
    pub fn key(self) -> &'static str {
        match self {
            Ipv4Conf::ArpNotify(_) => "arp_notify",
            Ipv4Conf::RpFilter(_) => "rp_filter",
            Ipv4Conf::ArpIgnore(_) => "arp_ignore",
            Ipv4Conf::DropUnicastInL2Multicast(_) => "drop_unicast_in_l2_multicast",
        }
    }

    /// The value as the sysctl file holds it.
    pub fn value(self) -> u32 {
        match self {
            Ipv4Conf::ArpNotify(on) | Ipv4Conf::DropUnicastInL2Multicast(on) => u32::from(on),
            Ipv4Conf::RpFilter(v) | Ipv4Conf::ArpIgnore(v) => v,
        }
    }

    /// `IPV4_DEVCONF_*` of linux/ip.h.
    fn devconf(self) -> u16 {
        match self {
            Ipv4Conf::RpFilter(_) => 8,
            Ipv4Conf::ArpIgnore(_) => 19,
            Ipv4Conf::ArpNotify(_) => 22,
            Ipv4Conf::DropUnicastInL2Multicast(_) => 30,
        }
    }
}

/// What we read back of a link.
#[derive(Clone, Debug, Default)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// `IFLA_INFO_KIND`, absent for physical NICs (and loopback).
    pub kind: Option<LinkKind>,
    /// IFLA_ADDRESS, when it is an Ethernet address (6 bytes).
    pub mac: Option<MacAddr>,
    pub mtu: u32,
    pub up: bool,
    /// The bridge (or other controller) this link is a port of.
    pub controller: Option<u32>,
    /// The lower link of a veth peer, macvlan or vlan (`IFLA_LINK`).
    pub parent: Option<u32>,
    pub vlan_id: Option<u16>,
    pub macvlan_mode: Option<MacVlanMode>,
    pub vlan_filtering: Option<bool>,
    /// Operational state is up (carrier and admin up).
    pub oper_up: bool,
    pub promiscuous: bool,
    /// Bridge port flags, when the link is a bridge port.
    pub hairpin: Option<bool>,
    pub isolated: Option<bool>,
    pub learning: Option<bool>,
    pub bpdu_guard: Option<bool>,
    /// False when the port can never be a multicast router port.
    pub multicast_router: Option<bool>,
    /// Alternative names (kernels keep the old name as one on some renames).
    pub altnames: Vec<String>,
    /// IFLA_IFALIAS: where the suite marks the container links it makes.
    pub alias: Option<String>,
    pub message: LinkMessage,
}

impl Link {
    pub fn is_loopback(&self) -> bool {
        self.message.header.flags.contains(LinkFlags::Loopback)
    }

    /// IFF_ALLMULTI.
    pub fn allmulticast(&self) -> bool {
        self.message.header.flags.contains(LinkFlags::Allmulti)
    }

    /// IFLA_LINK_NETNSID: set when `parent` (a veth's peer) lives in another netns,
    /// where its index means another link.
    pub fn link_netnsid(&self) -> Option<i32> {
        self.message.attributes.iter().find_map(|a| match a {
            LinkAttribute::LinkNetNsId(id) => Some(*id),
            _ => None,
        })
    }

    /// IFLA_TXQLEN.
    pub fn tx_queue_len(&self) -> Option<u32> {
        self.message.attributes.iter().find_map(|a| match a {
            LinkAttribute::TxQueueLen(len) => Some(*len),
            _ => None,
        })
    }

    pub fn from_message(message: LinkMessage) -> Link {
        let mut link = Link {
            index: message.header.index,
            up: message.header.flags.contains(LinkFlags::Up),
            promiscuous: message.header.flags.contains(LinkFlags::Promisc),
            ..Link::default()
        };
        for attribute in &message.attributes {
            match attribute {
                LinkAttribute::IfName(name) => link.name = name.clone(),
                LinkAttribute::Address(mac) => link.mac = MacAddr::from_bytes(mac),
                LinkAttribute::Mtu(mtu) => link.mtu = *mtu,
                LinkAttribute::Controller(c) => link.controller = Some(*c),
                LinkAttribute::Link(p) => link.parent = Some(*p),
                LinkAttribute::IfAlias(alias) => link.alias = Some(alias.clone()),
                LinkAttribute::OperState(state) => link.oper_up = *state == State::Up,
                LinkAttribute::PropList(props) => {
                    for prop in props {
                        if let Prop::AltIfName(name) = prop {
                            link.altnames.push(name.clone());
                        }
                    }
                }
                LinkAttribute::LinkInfo(infos) => {
                    for info in infos {
                        match info {
                            LinkInfo::Kind(kind) => {
                                link.kind = Some(kind.to_string().as_str().into())
                            }
                            LinkInfo::Data(InfoData::Vlan(data)) => {
                                for d in data {
                                    if let InfoVlan::Id(id) = d {
                                        link.vlan_id = Some(*id);
                                    }
                                }
                            }
                            LinkInfo::Data(InfoData::MacVlan(data)) => {
                                for d in data {
                                    if let InfoMacVlan::Mode(mode) = d {
                                        link.macvlan_mode = Some(*mode);
                                    }
                                }
                            }
                            LinkInfo::PortData(InfoPortData::BridgePort(data)) => {
                                for d in data {
                                    match d {
                                        InfoBridgePort::HairpinMode(on) => link.hairpin = Some(*on),
                                        InfoBridgePort::Isolated(on) => link.isolated = Some(*on),
                                        InfoBridgePort::Learning(on) => link.learning = Some(*on),
                                        InfoBridgePort::Guard(on) => link.bpdu_guard = Some(*on),
                                        InfoBridgePort::MulticastRouter(kind) => {
                                            link.multicast_router =
                                                Some(*kind != BridgeMulticastRouterType::Disabled)
                                        }
                                        _ => {}
                                    }
                                }
                            }
                            LinkInfo::Data(InfoData::Bridge(data)) => {
                                for d in data {
                                    if let netlink_packet_route::link::InfoBridge::VlanFiltering(
                                        on,
                                    ) = d
                                    {
                                        link.vlan_filtering = Some(*on);
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        link.message = message;
        link
    }
}

/// The kind of a link read back (`IFLA_INFO_KIND`), parsed from the kernel's name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkKind {
    Bridge,
    Veth,
    Macvlan,
    Vlan,
    Dummy,
    /// Any other kind, by the kernel's name.
    Other(String),
}

/// From the kernel's name of the kind.
impl From<&str> for LinkKind {
    fn from(name: &str) -> LinkKind {
        match name {
            "bridge" => LinkKind::Bridge,
            "veth" => LinkKind::Veth,
            "macvlan" => LinkKind::Macvlan,
            "vlan" => LinkKind::Vlan,
            "dummy" => LinkKind::Dummy,
            other => LinkKind::Other(other.to_string()),
        }
    }
}

/// The kernel's name of the kind (`veth`, `macvlan`, ...).
impl std::fmt::Display for LinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            LinkKind::Bridge => "bridge",
            LinkKind::Veth => "veth",
            LinkKind::Macvlan => "macvlan",
            LinkKind::Vlan => "vlan",
            LinkKind::Dummy => "dummy",
            LinkKind::Other(name) => name,
        })
    }
}

/// The kind-specific part of a new link.
#[derive(Clone, Debug)]
pub enum NewLinkKind<'fd> {
    /// A veth pair; `peer` is the other end (its own name, MAC, MTU and netns).
    Veth {
        peer: Box<NewLink<'fd>>,
    },
    Bridge {
        vlan_filtering: Option<bool>,
    },
    MacVlan {
        parent: u32,
        mode: MacVlanMode,
        broadcast_queue_len: Option<u32>,
    },
    Vlan {
        parent: u32,
        id: u16,
        protocol: VlanProtocol,
    },
    Dummy,
}

/// A link to create. The netns fd makes the kernel create it there directly.
#[derive(Clone, Debug)]
pub struct NewLink<'fd> {
    pub name: String,
    pub kind: Option<NewLinkKind<'fd>>,
    pub mac: Option<MacAddr>,
    pub mtu: Option<u32>,
    pub netns: Option<BorrowedFd<'fd>>,
    pub controller: Option<u32>,
    pub up: bool,
}

impl<'fd> NewLink<'fd> {
    pub fn new(name: impl Into<String>, kind: NewLinkKind<'fd>) -> NewLink<'fd> {
        NewLink {
            name: name.into(),
            kind: Some(kind),
            mac: None,
            mtu: None,
            netns: None,
            controller: None,
            up: false,
        }
    }

    /// The kernel's name of the kind (`veth`, `macvlan`, ...), for messages.
    pub fn kind_name(&self) -> &'static str {
        match &self.kind {
            Some(NewLinkKind::Veth { .. }) => "veth",
            Some(NewLinkKind::Bridge { .. }) => "bridge",
            Some(NewLinkKind::MacVlan { .. }) => "macvlan",
            Some(NewLinkKind::Vlan { .. }) => "vlan",
            Some(NewLinkKind::Dummy) => "dummy",
            None => "link",
        }
    }

    /// The peer end of a veth, which has no kind of its own.
    pub fn peer(name: impl Into<String>) -> NewLink<'fd> {
        NewLink {
            name: name.into(),
            kind: None,
            mac: None,
            mtu: None,
            netns: None,
            controller: None,
            up: false,
        }
    }

    fn to_message(&self) -> LinkMessage {
        let mut message = LinkMessage::default();
        if self.up {
            message.header.flags |= LinkFlags::Up;
            message.header.change_mask |= LinkFlags::Up;
        }
        let attrs = &mut message.attributes;
        attrs.push(LinkAttribute::IfName(self.name.clone()));
        if let Some(mac) = self.mac {
            attrs.push(LinkAttribute::Address(mac.octets().to_vec()));
        }
        if let Some(mtu) = self.mtu {
            attrs.push(LinkAttribute::Mtu(mtu));
        }
        if let Some(fd) = self.netns {
            attrs.push(LinkAttribute::NetNsFd(fd.as_raw_fd()));
        }
        if let Some(controller) = self.controller {
            attrs.push(LinkAttribute::Controller(controller));
        }
        let info = match &self.kind {
            None => None,
            Some(NewLinkKind::Veth { peer }) => Some(vec![
                LinkInfo::Kind(InfoKind::Veth),
                LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(peer.to_message()))),
            ]),
            Some(NewLinkKind::Bridge { vlan_filtering }) => {
                let mut infos = vec![LinkInfo::Kind(InfoKind::Bridge)];
                if let Some(on) = vlan_filtering {
                    infos.push(LinkInfo::Data(InfoData::Bridge(vec![
                        netlink_packet_route::link::InfoBridge::VlanFiltering(*on),
                    ])));
                }
                Some(infos)
            }
            Some(NewLinkKind::MacVlan {
                parent,
                mode,
                broadcast_queue_len,
            }) => {
                attrs.push(LinkAttribute::Link(*parent));
                let mut data = vec![InfoMacVlan::Mode(*mode)];
                if let Some(len) = broadcast_queue_len {
                    data.push(InfoMacVlan::BcQueueLen(*len));
                }
                Some(vec![
                    LinkInfo::Kind(InfoKind::MacVlan),
                    LinkInfo::Data(InfoData::MacVlan(data)),
                ])
            }
            Some(NewLinkKind::Vlan {
                parent,
                id,
                protocol,
            }) => {
                attrs.push(LinkAttribute::Link(*parent));
                Some(vec![
                    LinkInfo::Kind(InfoKind::Vlan),
                    LinkInfo::Data(InfoData::Vlan(vec![
                        InfoVlan::Id(*id),
                        InfoVlan::Protocol(*protocol),
                    ])),
                ])
            }
            Some(NewLinkKind::Dummy) => Some(vec![LinkInfo::Kind(InfoKind::Dummy)]),
        };
        if let Some(info) = info {
            attrs.push(LinkAttribute::LinkInfo(info));
        }
        message
    }
}

fn by_index(index: u32) -> LinkMessage {
    let mut message = LinkMessage::default();
    message.header.index = index;
    message
}

impl<T: RouteTransport> Netlink<T> {
    /// The link, or `None` when it does not exist.
    pub fn get_link(&mut self, id: &LinkId<'_>) -> NlResult<Option<Link>> {
        let mut message = LinkMessage::default();
        match id {
            LinkId::Index(index) => message.header.index = *index,
            LinkId::Name(name) => message
                .attributes
                .push(LinkAttribute::IfName(name.to_string())),
        }
        let reply = self.request(
            RouteNetlinkMessage::GetLink(message),
            GET,
            format!("look up {id}"),
        );
        match reply {
            Ok(messages) => Ok(messages.into_iter().find_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(link)),
                _ => None,
            })),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Like [`get_link`](Self::get_link), but a missing link is an error.
    pub fn require_link(&mut self, id: &LinkId<'_>) -> NlResult<Link> {
        self.get_link(id)?.ok_or_else(|| {
            super::NetlinkError::new(format!("find {id}"), super::Cause::Errno(libc::ENODEV))
        })
    }

    pub fn list_links(&mut self) -> NlResult<Vec<Link>> {
        let replies = self.request(
            RouteNetlinkMessage::GetLink(LinkMessage::default()),
            DUMP,
            "list links".to_string(),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewLink(link) => Some(Link::from_message(link)),
                _ => None,
            })
            .collect())
    }

    /// Creates a link; EEXIST is an error (the caller decides whether that is fine).
    pub fn create_link(&mut self, link: &NewLink) -> NlResult<()> {
        let kind = link.kind_name();
        self.request(
            RouteNetlinkMessage::NewLink(link.to_message()),
            CHANGE | NLM_F_CREATE | NLM_F_EXCL,
            format!("create {kind} {:?}", link.name),
        )
        .map(|_| ())
    }

    pub fn delete_link(&mut self, index: u32, name: &str) -> NlResult<()> {
        self.change(
            RouteNetlinkMessage::DelLink(by_index(index)),
            format!("delete link {name:?}"),
        )
    }

    /// A change of the link with this index, built setting by setting and sent by
    /// [`LinkChange::apply`].
    pub fn change_link(&mut self, index: u32) -> LinkChange<'_, T> {
        LinkChange {
            nl: self,
            index,
            message: by_index(index),
            what: Vec::new(),
        }
    }

    /// Removes an alternative name of a link.
    pub fn delete_altname(&mut self, index: u32, altname: &str) -> NlResult<()> {
        let mut message = by_index(index);
        message
            .attributes
            .push(LinkAttribute::PropList(vec![Prop::AltIfName(
                altname.to_string(),
            )]));
        self.change(
            RouteNetlinkMessage::DelLinkProp(message),
            format!("remove the alternative name {altname:?} of link #{index}"),
        )
    }

    /// Deletes a link by name; a missing link is success (for DEL paths).
    pub fn delete_link_if_present(&mut self, name: &str) -> NlResult<bool> {
        match self.get_link(&LinkId::Name(name))? {
            None => Ok(false),
            Some(link) => self.delete_found_link(link.index, name),
        }
    }

    /// Deletes a link found earlier (by index: that link, not whatever has the name
    /// by now). Gone meanwhile is success: teardowns race (parallel DELs of one
    /// attachment), and the deletion of a veth takes its peer along. False when it
    /// was already gone.
    pub fn delete_found_link(&mut self, index: u32, name: &str) -> NlResult<bool> {
        match self.delete_link(index, name) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// One RTM_SETLINK of a link, in rtnetlink's request-builder style:
/// `nl.change_link(index).mtu(1400).apply()?`. The kernel applies one message
/// whole, in its own order; changes that must happen in order (a MAC before up),
/// or whose errors must name them apart, are separate changes. The error names
/// the link and every setting of the change.
#[must_use = "a change does nothing until applied"]
pub struct LinkChange<'nl, T: RouteTransport> {
    nl: &'nl mut Netlink<T>,
    index: u32,
    message: LinkMessage,
    what: Vec<String>,
}

impl<T: RouteTransport> LinkChange<'_, T> {
    fn flag(mut self, flag: LinkFlags, on: bool, what: String) -> Self {
        if on {
            self.message.header.flags |= flag;
        }
        self.message.header.change_mask |= flag;
        self.what.push(what);
        self
    }

    fn attribute(mut self, attribute: LinkAttribute, what: String) -> Self {
        self.message.attributes.push(attribute);
        self.what.push(what);
        self
    }

    pub fn up(self) -> Self {
        let index = self.index;
        self.flag(LinkFlags::Up, true, format!("set link #{index} up"))
    }

    pub fn down(self) -> Self {
        let index = self.index;
        self.flag(LinkFlags::Up, false, format!("set link #{index} down"))
    }

    pub fn promiscuous(self, on: bool) -> Self {
        let what = format!(
            "set promiscuous mode {} on link #{}",
            on_off(on),
            self.index
        );
        self.flag(LinkFlags::Promisc, on, what)
    }

    pub fn allmulticast(self, on: bool) -> Self {
        let what = format!(
            "set all-multicast mode {} on link #{}",
            on_off(on),
            self.index
        );
        self.flag(LinkFlags::Allmulti, on, what)
    }

    pub fn tx_queue_len(self, len: u32) -> Self {
        let what = format!(
            "set the transmit queue length of link #{} to {len}",
            self.index
        );
        self.attribute(LinkAttribute::TxQueueLen(len), what)
    }

    pub fn mtu(self, mtu: u32) -> Self {
        let what = format!("set the MTU of link #{} to {mtu}", self.index);
        self.attribute(LinkAttribute::Mtu(mtu), what)
    }

    pub fn mac(self, mac: MacAddr) -> Self {
        let what = format!("set the MAC of link #{} to {mac}", self.index);
        self.attribute(LinkAttribute::Address(mac.octets().to_vec()), what)
    }

    /// IFLA_IFALIAS (the kernel ignores it in the message that creates a link).
    pub fn alias(self, alias: &str) -> Self {
        let what = format!("set the alias of link #{}", self.index);
        self.attribute(LinkAttribute::IfAlias(alias.to_string()), what)
    }

    /// Makes the link a port of `controller` (a bridge), or no port with 0.
    pub fn controller(self, controller: u32) -> Self {
        let what = format!("attach link #{} to controller #{controller}", self.index);
        self.attribute(LinkAttribute::Controller(controller), what)
    }

    pub fn name(self, name: &str) -> Self {
        let what = format!("rename link #{} to {name:?}", self.index);
        self.attribute(LinkAttribute::IfName(name.to_string()), what)
    }

    /// Moves the link into another netns; a name set in the same change is the one
    /// it takes there (no name of the source netns is claimed on the way).
    pub fn netns(self, netns: BorrowedFd<'_>, netns_name: &str) -> Self {
        let what = format!("move link #{} into netns {netns_name}", self.index);
        self.attribute(LinkAttribute::NetNsFd(netns.as_raw_fd()), what)
    }

    /// Per-link IPv4 settings (IFLA_AF_SPEC, AF_INET, IFLA_INET_CONF): only those
    /// given are sent, each as the kernel's own nested attribute, so the link's
    /// other settings stay as they are.
    pub fn ipv4_conf(self, settings: &[Ipv4Conf]) -> Self {
        const IFLA_INET_CONF: u16 = 1;
        let mut nested = Vec::with_capacity(settings.len() * 8);
        for setting in settings {
            nested.extend_from_slice(&8u16.to_ne_bytes());
            nested.extend_from_slice(&setting.devconf().to_ne_bytes());
            nested.extend_from_slice(&setting.value().to_ne_bytes());
        }
        let conf = DefaultNla::new(IFLA_INET_CONF | NLA_F_NESTED, nested);
        let attribute =
            LinkAttribute::AfSpecUnspec(vec![AfSpecUnspec::Inet(vec![AfSpecInet::Other(conf)])]);
        let list: Vec<String> = settings
            .iter()
            .map(|s| format!("{} = {}", s.key(), s.value()))
            .collect();
        let what = format!("set {} on link #{}", list.join(", "), self.index);
        self.attribute(attribute, what)
    }

    pub fn apply(self) -> NlResult<()> {
        let LinkChange {
            nl, message, what, ..
        } = self;
        nl.change(RouteNetlinkMessage::SetLink(message), what.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NLM_F_REQUEST;

    fn sent(
        nl: &Netlink<super::super::FakeTransport<RouteNetlinkMessage>>,
    ) -> &RouteNetlinkMessage {
        &nl.transport.sent.last().unwrap().message
    }

    #[test]
    fn veth_peer_is_created_in_the_target_netns_with_its_name() {
        let netns = std::fs::File::open("/proc/self/ns/net").unwrap();
        let mut peer = NewLink::peer("eth0");
        peer.netns = Some(std::os::fd::AsFd::as_fd(&netns));
        peer.mac = Some(MacAddr([0x0a, 0, 0, 0, 0, 1]));
        let mut veth = NewLink::new(
            "veth1a2b3c4d",
            NewLinkKind::Veth {
                peer: Box::new(peer),
            },
        );
        veth.controller = Some(7);
        veth.mtu = Some(1400);
        let mut nl = Netlink::fake();
        nl.create_link(&veth).unwrap();
        let super::super::Operation { message, flags, .. } = &nl.transport.sent[0];
        assert_eq!(
            *flags,
            NLM_F_REQUEST | netlink_packet_core::NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
        );
        let RouteNetlinkMessage::NewLink(m) = message else {
            panic!("{message:?}")
        };
        assert!(m
            .attributes
            .contains(&LinkAttribute::IfName("veth1a2b3c4d".into())));
        assert!(m.attributes.contains(&LinkAttribute::Controller(7)));
        assert!(m.attributes.contains(&LinkAttribute::Mtu(1400)));
        let peer_message = m
            .attributes
            .iter()
            .find_map(|a| match a {
                LinkAttribute::LinkInfo(infos) => infos.iter().find_map(|i| match i {
                    LinkInfo::Data(InfoData::Veth(InfoVeth::Peer(p))) => Some(p.clone()),
                    _ => None,
                }),
                _ => None,
            })
            .expect("veth carries its peer");
        assert!(peer_message
            .attributes
            .contains(&LinkAttribute::IfName("eth0".into())));
        assert!(peer_message
            .attributes
            .contains(&LinkAttribute::NetNsFd(netns.as_raw_fd())));
        assert!(peer_message
            .attributes
            .contains(&LinkAttribute::Address(vec![0x0a, 0, 0, 0, 0, 1])));
    }

    #[test]
    fn macvlan_and_vlan_carry_parent_and_data() {
        let mut nl = Netlink::fake();
        nl.create_link(&NewLink::new(
            "mv0",
            NewLinkKind::MacVlan {
                parent: 3,
                mode: MacVlanMode::Private,
                broadcast_queue_len: Some(100),
            },
        ))
        .unwrap();
        let RouteNetlinkMessage::NewLink(m) = sent(&nl) else {
            panic!()
        };
        assert!(m.attributes.contains(&LinkAttribute::Link(3)));
        assert!(m.attributes.contains(&LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::MacVlan),
            LinkInfo::Data(InfoData::MacVlan(vec![
                InfoMacVlan::Mode(MacVlanMode::Private),
                InfoMacVlan::BcQueueLen(100)
            ])),
        ])));
        nl.create_link(&NewLink::new(
            "v100",
            NewLinkKind::Vlan {
                parent: 3,
                id: 100,
                protocol: VlanProtocol::Ieee8021Q,
            },
        ))
        .unwrap();
        let RouteNetlinkMessage::NewLink(m) = sent(&nl) else {
            panic!()
        };
        assert!(m.attributes.contains(&LinkAttribute::LinkInfo(vec![
            LinkInfo::Kind(InfoKind::Vlan),
            LinkInfo::Data(InfoData::Vlan(vec![
                InfoVlan::Id(100),
                InfoVlan::Protocol(VlanProtocol::Ieee8021Q)
            ])),
        ])));
    }

    #[test]
    fn move_and_rename_is_one_message() {
        let netns = std::fs::File::open("/proc/self/ns/net").unwrap();
        let mut nl = Netlink::fake();
        nl.change_link(9)
            .netns(std::os::fd::AsFd::as_fd(&netns), "/run/netns/x")
            .name("net1")
            .apply()
            .unwrap();
        let RouteNetlinkMessage::SetLink(m) = sent(&nl) else {
            panic!()
        };
        assert_eq!(m.header.index, 9);
        assert_eq!(
            m.attributes,
            vec![
                LinkAttribute::NetNsFd(netns.as_raw_fd()),
                LinkAttribute::IfName("net1".into())
            ]
        );
    }

    #[test]
    fn up_and_down_set_flag_and_change_mask() {
        let mut nl = Netlink::fake();
        nl.change_link(4).up().apply().unwrap();
        let RouteNetlinkMessage::SetLink(m) = sent(&nl) else {
            panic!()
        };
        assert!(m.header.flags.contains(LinkFlags::Up));
        assert!(m.header.change_mask.contains(LinkFlags::Up));
        nl.change_link(4).down().apply().unwrap();
        let RouteNetlinkMessage::SetLink(m) = sent(&nl) else {
            panic!()
        };
        assert!(!m.header.flags.contains(LinkFlags::Up));
        assert!(m.header.change_mask.contains(LinkFlags::Up));
    }

    #[test]
    fn a_missing_link_is_none_and_its_errors_name_it() {
        let mut nl = Netlink::fake();
        nl.transport.fail(libc::ENODEV);
        assert!(nl.get_link(&LinkId::Name("nope")).unwrap().is_none());
        nl.transport.fail(libc::EPERM);
        let e = nl.delete_link(5, "veth0").unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to delete link \"veth0\": EPERM: Operation not permitted"
        );
    }

    #[test]
    fn link_summary_reads_the_reply() {
        let mut reply = LinkMessage::default();
        reply.header.index = 12;
        reply.header.flags = LinkFlags::Up;
        reply.attributes = vec![
            LinkAttribute::IfName("mv0".into()),
            LinkAttribute::Address(vec![2, 0, 0, 0, 0, 9]),
            LinkAttribute::Mtu(1500),
            LinkAttribute::Link(3),
            LinkAttribute::LinkInfo(vec![
                LinkInfo::Kind(InfoKind::MacVlan),
                LinkInfo::Data(InfoData::MacVlan(vec![InfoMacVlan::Mode(
                    MacVlanMode::Bridge,
                )])),
            ]),
        ];
        let mut nl = Netlink::fake();
        nl.transport
            .reply(vec![RouteNetlinkMessage::NewLink(reply)]);
        let link = nl.require_link(&LinkId::Index(12)).unwrap();
        assert_eq!(link.name, "mv0");
        assert_eq!(link.mac, Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(link.kind, Some(LinkKind::Macvlan));
        assert_eq!(link.macvlan_mode, Some(MacVlanMode::Bridge));
        assert_eq!(link.parent, Some(3));
        assert!(link.up);
    }
}
