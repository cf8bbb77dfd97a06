//! `bridge` (also installed as `cnv-bridge`): connects a container to a Linux bridge
//! through a veth pair, with VLAN access ports and trunks, macspoofchk, gateway
//! addresses and masquerade. Compatible with the Go plugin's configs, results and
//! nftables names.

mod add;
mod check;
mod config;
mod gateway;
mod masq;
mod rollback;
/// Public only with the `bench` feature: the benchmark times the kernel's share
/// of its transactions.
#[cfg(feature = "bench")]
pub mod spoofcheck;
#[cfg(not(feature = "bench"))]
mod spoofcheck;
mod vlan;

use libcni::delegate::ipam;
use libcni::netlink::{Link, LinkId, LinkKind, Netlink};
use libcni::netns::NetNs;
use libcni::spec::attachment::AttachmentId;
use libcni::spec::error::ErrorList;
use libcni::{About, CniError, CniResult, Plugin, Request};

use crate::config::BridgeConfig;
use crate::masq::Masquerade;
use crate::spoofcheck::SpoofCheck;
use crate::vlan::VlanGateway;

pub(crate) fn host_sysctl(key: &str, value: &str) {
    if let Err(e) = libcni::host::sysctl::write(key, value) {
        libcni::log_warn!("{e}");
    }
}

struct Bridge {
    cnv_bridge: bool,
}

impl Plugin for Bridge {
    type Config = BridgeConfig;
    type DelConfig = config::DelConfig;
    type GcConfig = BridgeConfig;

    fn load(&self, request: &Request) -> Result<BridgeConfig, CniError> {
        config::load(request, self.cnv_bridge)
    }

    fn load_for_del(&self, request: &Request) -> Result<config::DelConfig, CniError> {
        config::load_for_del(request)
    }

    fn load_for_gc(&self, request: &Request) -> Result<BridgeConfig, CniError> {
        config::load(request, self.cnv_bridge)
    }

    fn add(&self, request: &Request, cfg: &BridgeConfig) -> Result<CniResult, CniError> {
        add::add(cfg, request)
    }

    /// Best effort, every step: IPAM, the container link, macspoofchk, masquerade and
    /// the VLAN gateway interface, also when the netns is already gone.
    fn del(&self, request: &Request, cfg: &config::DelConfig) -> Result<(), CniError> {
        let prev = cfg.conf.parsed_prev_result(request.version).ok().flatten();
        let mut errors = ErrorList::new();
        if let Some(ipam_conf) = cfg.conf.delegated_ipam() {
            errors.record(ipam::del(request, &ipam_conf.plugin_type));
        }
        let own_host_veth = prev.as_ref().and_then(|prev| {
            prev.interfaces
                .iter()
                .find(|i| i.sandbox.is_none() && i.name != cfg.bridge)
                .map(|i| i.name.clone())
        });
        let id = request.attachment();
        // The rules that name prevResult's host veth go before the veth, the rest after.
        let spoofcheck = cfg.macspoofchk.then(|| SpoofCheck::of(&id));
        let mut spoofcheck_teardown = spoofcheck
            .as_ref()
            .map(|s| s.teardown(own_host_veth.as_deref()));
        let pod_gone = delete_in_netns(request, cfg, prev.as_ref(), &mut errors);
        if let Some(teardown) = spoofcheck_teardown.as_mut() {
            errors.record(teardown.finish(pod_gone));
        }
        if cfg.is_layer3() && cfg.ip_masq {
            let addresses: Vec<_> = prev
                .iter()
                .flat_map(|prev| prev.ips.iter().map(|ip| ip.address))
                .collect();
            errors.record(Masquerade::of(&id, &addresses).teardown());
        }
        if cfg.vlan != 0 && cfg.is_gateway && cfg.is_layer3() {
            let gateway = VlanGateway {
                bridge: cfg.bridge.clone(),
                vlan: cfg.vlan,
            };
            errors.record(gateway.remove_if_unused());
        }
        errors.into_result()
    }

    fn check(&self, request: &Request, cfg: &BridgeConfig) -> Result<(), CniError> {
        let prev = cfg.conf.required_prev_result(request.version)?;
        ipam::forward(request, cfg.conf.delegated_ipam())?;
        check::attachment(cfg, request, &prev)
    }

    /// Removes the nftables state of attachments not in the valid list, then
    /// forwards GC to IPAM.
    fn gc(&self, request: &Request, cfg: &BridgeConfig) -> Result<(), CniError> {
        let network = &cfg.conf.name;
        let valid: Vec<AttachmentId> = cfg
            .conf
            .gc_valid_attachments()
            .iter()
            .map(|a| AttachmentId::new(network, &a.container_id, &a.ifname))
            .collect();
        let mut errors = ErrorList::new();
        errors.record(SpoofCheck::gc(&valid));
        errors.record(Masquerade::gc(network, &valid));
        errors.record(ipam::forward(request, cfg.conf.delegated_ipam()));
        errors.into_result()
    }

    fn status(&self, request: &Request, cfg: &BridgeConfig) -> Result<(), CniError> {
        ipam::forward(request, cfg.conf.delegated_ipam())
    }

    fn known_args(&self) -> &'static [&'static str] {
        &["MAC"]
    }
}

/// Deletes the container veth in the request's netns, if it is there (see
/// `delete_container_veth`), recording what fails. Returns whether the pod is gone
/// (no netns to open).
fn delete_in_netns(
    request: &Request,
    cfg: &config::DelConfig,
    prev: Option<&CniResult>,
    errors: &mut ErrorList,
) -> bool {
    let Some(path) = &request.netns else {
        return true;
    };
    match NetNs::open_if_present(path) {
        Ok(Some(netns)) => {
            errors.record(delete_container_veth(&netns, request, cfg, prev));
            false
        }
        Ok(None) => true,
        Err(e) => {
            errors.push(e.into());
            true
        }
    }
}

/// Deletes the container veth if it is this attachment's: marked for it, or (made
/// by the Go plugin) with prevResult's MAC or its peer a port of the bridge. An
/// interface that was there before, or another attachment's, stays.
fn delete_container_veth(
    netns: &NetNs,
    request: &Request,
    cfg: &config::DelConfig,
    prev: Option<&CniResult>,
) -> Result<(), CniError> {
    let mut inside = netns.netlink()?;
    // Asked only of an unmarked veth: is its peer a port of the bridge?
    let peer_on_bridge = |link: &Link| {
        let Some(peer) = link.parent else {
            return false;
        };
        let Ok(mut host) = Netlink::open() else {
            return false;
        };
        let bridge = host.get_link(&LinkId::Name(&cfg.bridge));
        let peer = host.get_link(&LinkId::Index(peer));
        matches!((bridge, peer), (Ok(Some(b)), Ok(Some(p))) if p.controller == Some(b.index))
    };
    libcni::attach::delete_attachment_link(
        &mut inside,
        netns.path(),
        request,
        &LinkKind::Veth,
        prev,
        peer_on_bridge,
    )
}

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    let cnv_bridge = config::invoked_as_cnv_bridge();
    let name = if cnv_bridge { "cnv-bridge" } else { "bridge" };
    libcni::skel::run(
        &Bridge { cnv_bridge },
        About {
            name,
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
