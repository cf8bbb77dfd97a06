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
pub struct ChildConfig<K> {
    pub conf: NetConf<K>,
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
    /// The kernel's name of the link kind, which CHECK requires of the container link.
    const KIND: LinkKind;
    /// CNI_ARGS keys the plugin reads.
    const KNOWN_ARGS: &'static [&'static str];

    /// Parses and validates the request's configuration.
    fn load(&self, request: &Request) -> Result<ChildConfig<Self::Keys>, CniError>;

    /// The link to create as a child of `master`.
    fn link_kind(&self, cfg: &ChildConfig<Self::Keys>, master: &Link) -> NewLinkKind<'static>;

    /// CHECK of the attributes only this kind has.
    fn check_link(
        &self,
        cfg: &ChildConfig<Self::Keys>,
        link: &Link,
        request: &Request,
    ) -> Result<(), CniError>;
}

/// A [`ChildLink`] as a plugin.
pub struct ChildLinkPlugin<C>(pub C);

/// The master: named in the config, or the interface of the default route; looked
/// up in the container's netns with `linkInContainer`.
fn find_master<K>(
    cfg: &ChildConfig<K>,
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
    fn add(&self, request: &Request) -> Result<CniResult, CniError> {
        let cfg = self.0.load(request)?;
        ipam::require_installed(request, cfg.conf.delegated_ipam())?;
        let netns = request_netns(request)?;
        let mut host = Netlink::open()?;
        let mut inside = netns.netlink()?;
        let master = find_master(&cfg, &mut host, &mut inside)?;
        super::check_mtu(cfg.mtu, &master)?;
        let mut new = NewLink::new(String::new(), self.0.link_kind(&cfg, &master));
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

    /// IPAM first, then the link; needs neither the master nor the netns. Only
    /// the common keys are read: a config that ADD would refuse still tears down.
    fn del(&self, request: &Request) -> Result<(), CniError> {
        let conf: NetConf<NoPluginKeys> = parse_netconf(&request.stdin)?;
        let prev = conf.parsed_prev_result(request.version).ok().flatten();
        del_single_interface(
            request,
            conf.delegated_ipam().map(|i| i.plugin_type.as_str()),
            &C::KIND,
            prev.as_ref(),
        )
    }

    fn check(&self, request: &Request) -> Result<(), CniError> {
        let cfg = self.0.load(request)?;
        let prev = cfg.conf.required_prev_result(request.version)?;
        ipam::forward(request, cfg.conf.delegated_ipam())?;
        let netns = request_netns(request)?;
        let mut host = Netlink::open()?;
        let mut inside = netns.netlink()?;
        let master = find_master(&cfg, &mut host, &mut inside)?;
        let (index, link) = container_link(&mut inside, &prev, request, Some(C::KIND))?;
        self.0.check_link(&cfg, &link, request)?;
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

    fn gc(&self, request: &Request) -> Result<(), CniError> {
        ipam::forward(request, self.0.load(request)?.conf.delegated_ipam())
    }

    fn status(&self, request: &Request) -> Result<(), CniError> {
        ipam::forward(request, self.0.load(request)?.conf.delegated_ipam())
    }

    fn known_args(&self) -> &'static [&'static str] {
        C::KNOWN_ARGS
    }
}
