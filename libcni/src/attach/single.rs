//! The driver of the plugins that put one child link of a host interface into the
//! container (macvlan, vlan): ADD, DEL, CHECK, GC and STATUS written once. A plugin
//! says only what differs: its keys, the kind of link, and the CHECK of that kind's
//! attributes (as netavark serves macvlan and ipvlan with one driver).

use serde::Deserialize;

use super::{
    check_ips_and_routes, check_mac, container_link, create_in_netns, default_route_interface,
    del_single_interface, finish_single_interface, master_link, request_netns,
    single_interface_result,
};
use crate::delegate::ipam;
use crate::mac::MacAddr;
use crate::netlink::{Link, LinkKind, Netlink, NewLink, NewLinkKind};
use crate::skel::Plugin;
use crate::spec::config::{parse_netconf, NetConf, NoPluginKeys};
use crate::spec::error::CniError;
use crate::spec::request::Request;
use crate::spec::result::CniResult;

/// What the driver needs from a child-link plugin's configuration, validated
/// without the kernel (DEL uses only this, so that it works after the master is gone).
pub struct ChildConfig<K, S> {
    pub conf: NetConf<K>,
    /// The settings of the plugin's own keys, parsed once (macvlan's mode, vlan's ID).
    pub settings: S,
    /// The host interface; empty: the interface of the default route.
    pub master: String,
    /// The master lives in the container's netns, not the host's.
    pub link_in_container: bool,
    /// 0: the kernel's default (the master's MTU).
    pub mtu: u32,
    /// The MAC to give the link (config, CNI_ARGS and runtimeConfig already weighed).
    pub mac: Option<MacAddr>,
}

/// One kind of child link. See the module docs.
pub trait ChildLink: Sync {
    type Keys: for<'de> Deserialize<'de>;
    type Settings;
    /// The kernel's name of the link kind, which CHECK requires of the container link.
    const KIND: LinkKind;
    /// CNI_ARGS keys the plugin reads.
    const KNOWN_ARGS: &'static [&'static str];

    /// Parses and validates the request's configuration.
    fn load(&self, request: &Request) -> Result<ChildConfig<Self::Keys, Self::Settings>, CniError>;

    /// The link to create as a child of `master`.
    fn link_kind(
        &self,
        cfg: &ChildConfig<Self::Keys, Self::Settings>,
        master: &Link,
    ) -> NewLinkKind<'static>;

    /// CHECK of the attributes only this kind has (the driver checks the kind,
    /// the MTU, the parent, the MAC, addresses and routes).
    fn check_link(
        &self,
        cfg: &ChildConfig<Self::Keys, Self::Settings>,
        link: &Link,
        request: &Request,
    ) -> Result<(), CniError>;
}

/// A [`ChildLink`] as a plugin.
pub struct ChildLinkPlugin<C>(pub C);

/// The master: named in the config, or the interface of the default route; looked
/// up in the container's netns with `linkInContainer`.
fn find_master<K, S>(
    cfg: &ChildConfig<K, S>,
    host: &mut Netlink,
    inside: &mut Netlink,
) -> Result<Link, CniError> {
    let nl = if cfg.link_in_container { inside } else { host };
    if cfg.master.is_empty() {
        default_route_interface(nl)
    } else {
        master_link(nl, &cfg.master)
    }
}

impl<C: ChildLink> Plugin for ChildLinkPlugin<C> {
    type Config = ChildConfig<C::Keys, C::Settings>;
    /// Only the common keys: a config that ADD would refuse still tears down.
    type DelConfig = NetConf<NoPluginKeys>;
    type GcConfig = Self::Config;

    fn load(&self, request: &Request) -> Result<Self::Config, CniError> {
        self.0.load(request)
    }

    fn load_for_del(&self, request: &Request) -> Result<Self::DelConfig, CniError> {
        parse_netconf(&request.stdin)
    }

    fn load_for_gc(&self, request: &Request) -> Result<Self::GcConfig, CniError> {
        self.0.load(request)
    }

    fn add(&self, request: &Request, cfg: &Self::Config) -> Result<CniResult, CniError> {
        ipam::require_installed(request, cfg.conf.delegated_ipam())?;
        let netns = request_netns(request)?;
        let mut host = Netlink::open()?;
        let mut inside = netns.netlink()?;
        let master = find_master(cfg, &mut host, &mut inside)?;
        super::check_mtu(cfg.mtu, &master)?;
        let mut new = NewLink::new(String::new(), self.0.link_kind(cfg, &master));
        new.mac = cfg.mac;
        new.mtu = (cfg.mtu > 0).then_some(cfg.mtu);
        let creator = (!cfg.link_in_container).then_some(&mut host);
        let link = create_in_netns(creator, &mut inside, &netns, new, request)?.link;
        let ipam_type = cfg.conf.delegated_ipam().map(|i| i.plugin_type.as_str());
        let outcome = single_interface_result(
            request,
            &netns,
            &mut inside,
            &link,
            ipam_type,
            cfg.conf.dns.as_ref(),
        );
        finish_single_interface(&mut inside, &link, outcome)
    }

    /// IPAM first, then the link; needs neither the master nor the netns.
    fn del(&self, request: &Request, conf: &Self::DelConfig) -> Result<(), CniError> {
        let prev = conf.parsed_prev_result(request.version).ok().flatten();
        del_single_interface(
            request,
            conf.delegated_ipam().map(|i| i.plugin_type.as_str()),
            &C::KIND,
            prev.as_ref(),
        )
    }

    fn check(&self, request: &Request, cfg: &Self::Config) -> Result<(), CniError> {
        let prev = cfg.conf.required_prev_result(request.version)?;
        ipam::forward(request, cfg.conf.delegated_ipam())?;
        let netns = request_netns(request)?;
        let mut host = Netlink::open()?;
        let mut inside = netns.netlink()?;
        let master = find_master(cfg, &mut host, &mut inside)?;
        let (index, link) = container_link(&mut inside, &prev, request, Some(C::KIND))?;
        self.0.check_link(cfg, &link, request)?;
        super::check_configured_mtu(&link, Some(cfg.mtu))?;
        if link.parent != Some(master.index) {
            return Err(CniError::internal(format!(
                "container interface {:?} is not a {} of {:?}",
                request.ifname,
                C::KIND,
                master.name
            )));
        }
        // The MAC prevResult reported, as Go checks it (passthru mode gives the link
        // its master's MAC whatever the config asked for).
        check_mac(&link, prev.interfaces[index].mac.as_deref(), None)?;
        check_ips_and_routes(&mut inside, &prev, index, &link)
    }

    fn gc(&self, request: &Request, cfg: &Self::GcConfig) -> Result<(), CniError> {
        ipam::forward(request, cfg.conf.delegated_ipam())
    }

    fn status(&self, request: &Request, cfg: &Self::GcConfig) -> Result<(), CniError> {
        ipam::forward(request, cfg.conf.delegated_ipam())
    }

    fn known_args(&self) -> &'static [&'static str] {
        C::KNOWN_ARGS
    }
}
