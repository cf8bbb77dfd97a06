//! `bridge` (also installed as `cnv-bridge`): connects a container to a Linux bridge
//! through a veth pair, with VLAN access ports and trunks, macspoofchk, gateway
//! addresses and masquerade. Compatible with the Go plugin's configs, results and
//! nftables names.

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

use ipnet::IpNet;
use libcni::delegate::ipam;
use libcni::host::apply::{configure_interface, InterfaceOptions};
use libcni::netlink::nftables::Nftables;
use libcni::netlink::{
    random_name, BridgePortFlags, Link, LinkId, LinkKind, Netlink, NewLink, NewLinkKind,
};
use libcni::netns::NetNs;
use libcni::spec::error::ErrorList;
use libcni::spec::result::Interface;
use libcni::{About, CniError, CniResult, Plugin, Request};

use crate::config::BridgeConfig;
use crate::gateway::{enable_forwarding, ensure_address};
use crate::rollback::Rollback;
use crate::vlan::{
    ensure_vlan_gateway, lock_vlan_gateway, program_vlans, remove_unused_vlan_gateway,
};

/// Index of the container interface in the result: after the bridge and host veth.
const CONTAINER_INDEX: usize = 2;

fn eopnotsupp_hint(e: libcni::netlink::NetlinkError, what: &str) -> CniError {
    if e.errno() == Some(libc::EOPNOTSUPP) {
        CniError::internal(format!(
            "{e}: this kernel has no {what} (it needs CONFIG_BRIDGE_VLAN_FILTERING)"
        ))
    } else {
        e.into()
    }
}

pub(crate) fn host_sysctl(key: &str, value: &str) {
    if let Err(e) = libcni::host::sysctl::write(key, value) {
        libcni::log_warn!("{e}");
    }
}

/// Creates the bridge if missing (a concurrent ADD creating it first is fine), turns
/// VLAN filtering on when needed (also on an existing bridge), and brings it up.
fn ensure_bridge(
    nl: &mut Netlink,
    cfg: &BridgeConfig,
    rollback: &mut Rollback,
) -> Result<Link, CniError> {
    let name = &cfg.bridge;
    let existing = nl.get_link(&LinkId::Name(name))?;
    let mut bridge = match existing {
        Some(link) => link,
        None => {
            let mut new = NewLink::new(
                name.clone(),
                NewLinkKind::Bridge {
                    vlan_filtering: cfg.vlan_filtering().then_some(true),
                },
            );
            new.mtu = cfg.mtu();
            match nl.create_link(&new) {
                Ok(()) => rollback.created_bridge = Some(name.clone()),
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(eopnotsupp_hint(e, "bridge VLAN filtering")),
            }
            nl.require_link(&LinkId::Name(name))?
        }
    };
    if bridge.kind != Some(LinkKind::Bridge) {
        return Err(CniError::invalid_config(format!(
            "{name:?} already exists but is not a bridge"
        )));
    }
    if cfg.vlan_filtering() && bridge.vlan_filtering != Some(true) {
        nl.set_vlan_filtering(bridge.index, true)
            .map_err(|e| eopnotsupp_hint(e, "bridge VLAN filtering"))?;
        bridge = nl.require_link(&LinkId::Index(bridge.index))?;
        if bridge.vlan_filtering != Some(true) {
            return Err(CniError::internal(format!(
                "failed to enable VLAN filtering on bridge {name:?}: this kernel has no bridge VLAN filtering"
            )));
        }
    }
    if cfg.keys().promisc_mode && !bridge.promiscuous {
        nl.change_link(bridge.index).promiscuous(true).apply()?;
    }
    host_sysctl(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
    if !bridge.up {
        nl.change_link(bridge.index).up().apply()?;
    }
    Ok(bridge)
}

/// The veth pair: the container end made directly in the netns as CNI_IFNAME, the
/// host end with a random name, already a port of the bridge. Returns the host name.
fn create_veth(
    nl: &mut Netlink,
    container: &mut Netlink,
    netns: &NetNs,
    cfg: &BridgeConfig,
    bridge: &Link,
    request: &Request,
    rollback: &mut Rollback,
) -> Result<String, CniError> {
    let ifname = request.ifname.as_str();
    let exists = || {
        CniError::internal(format!(
            "container veth name provided ({ifname}) already exists"
        ))
    };
    if container.get_link(&LinkId::Name(ifname))?.is_some() {
        return Err(exists());
    }
    let mtu = cfg.mtu();
    for _ in 0..10 {
        let host_name = random_name("veth", 8);
        let mut peer = NewLink::peer(ifname);
        peer.netns = Some(netns.fd());
        peer.mac = cfg.mac;
        peer.mtu = mtu;
        let mut veth = NewLink::new(
            host_name.clone(),
            NewLinkKind::Veth {
                peer: Box::new(peer),
            },
        );
        veth.mtu = mtu;
        veth.controller = Some(bridge.index);
        veth.up = true;
        match nl.create_link(&veth) {
            Ok(()) => {
                rollback.host_veth = Some(host_name.clone());
                return Ok(host_name);
            }
            Err(e) if e.is_exists() => {
                if container.get_link(&LinkId::Name(ifname))?.is_some() {
                    return Err(exists());
                }
            }
            Err(e) => {
                return Err(e
                    .context(format!(
                        "connect {ifname:?} in {} to bridge {:?}",
                        netns.path().display(),
                        cfg.bridge
                    ))
                    .into())
            }
        }
    }
    Err(CniError::internal(
        "failed to find a free host veth name after 10 tries",
    ))
}

/// Waits for the host veth to be operationally up (0, 50, 500, 1000, 1000 ms, as Go).
fn wait_for_port(nl: &mut Netlink, name: &str) -> Result<Link, CniError> {
    let mut last = None;
    for delay in [0u64, 50, 500, 1000, 1000] {
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let link = nl.require_link(&LinkId::Name(name))?;
        if link.oper_up {
            return Ok(link);
        }
        last = Some(link);
    }
    let state = last
        .map(|l| {
            format!(
                "{:?}",
                l.message
                    .attributes
                    .iter()
                    .find(|a| matches!(a, netlink_packet_route::link::LinkAttribute::OperState(_)))
            )
        })
        .unwrap_or_default();
    Err(CniError::internal(format!(
        "bridge port {name:?} in error state: {state}"
    )))
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
        if !cfg.is_layer3() && !request.version.allows_multiple_ips_per_family() {
            // Found before anything is made: 0.1.0/0.2.0 results cannot say "no address".
            return Err(CniError::new(
                libcni::ErrorCode::IncompatibleVersion,
                format!(
                    "cannot convert the result to CNI version {}: no valid IP addresses",
                    request.version
                ),
            )
            .with_details("a layer-2 attachment (no ipam type) needs cniVersion 0.3.0 or later"));
        }
        ipam::require_installed(request, cfg.conf.delegated_ipam())?;
        let netns = libcni::attach::request_netns(request)?;
        let mut nl: Netlink = Netlink::open()?;
        let mut inside = netns.netlink()?;
        // Before anything changes: macspoofchk chains of this reference that filter a
        // live host interface belong to another attachment.
        let spoofcheck = if cfg.keys().macspoofchk {
            Some(prepare_spoofcheck(request, &mut nl)?)
        } else {
            None
        };
        let mut rollback = Rollback::default();

        let bridge = ensure_bridge(&mut nl, cfg, &mut rollback)?;
        let host_name = create_veth(
            &mut nl,
            &mut inside,
            &netns,
            cfg,
            &bridge,
            request,
            &mut rollback,
        )?;
        let host = nl.require_link(&LinkId::Name(&host_name))?;
        host_sysctl(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
        nl.set_bridge_port_flags(
            host.index,
            BridgePortFlags {
                hairpin: Some(cfg.keys().hairpin_mode),
                isolated: Some(cfg.keys().port_isolation),
            },
        )?;
        program_vlans(&mut nl, cfg, &host)?;
        let container = inside.require_link(&LinkId::Name(&request.ifname))?;
        inside
            .change_link(container.index)
            .alias(&request.attachment().link_mark())
            .apply()?;
        let container_mac = container.mac;

        let mut result = CniResult::default();
        result.add_interface(Interface {
            name: cfg.bridge.clone(),
            ..Default::default()
        });
        result.add_interface(Interface {
            name: host_name.clone(),
            ..Default::default()
        });
        result.add_interface(Interface {
            name: request.ifname.clone(),
            mac: Some(container_mac.map(|m| m.to_string()).unwrap_or_default()),
            sandbox: Some(netns.path().display().to_string()),
            ..Default::default()
        });

        if let Some((mut nft, reference, existing)) = spoofcheck {
            let mac = container_mac.ok_or_else(|| {
                CniError::internal("container interface has no MAC: \"\"".to_string())
            })?;
            spoofcheck::setup(&mut nft, &host_name, mac, &reference, &existing)
                .map_err(|e| CniError::from(e.context("set up macspoofchk")))?;
            rollback.spoofcheck = Some(reference);
        }

        let allocation = match cfg.conf.delegated_ipam() {
            None => None,
            Some(ipam_conf) => Some(ipam::add(request, &ipam_conf.plugin_type)?),
        };
        if let Some(allocation) = &allocation {
            let ipam_result = &allocation.result;
            result.dns = ipam_result.dns.clone();
            let plan = gateway::plan(
                ipam_result,
                CONTAINER_INDEX,
                cfg.is_gateway,
                cfg.keys().is_default_gateway,
            );
            result.ips = plan.ips;
            result.routes = plan.routes;
            let gateways = plan.gateways;
            configure_interface(
                &netns,
                &mut inside,
                &request.ifname,
                &result,
                InterfaceOptions {
                    ipv6_dad: cfg.keys().enabledad,
                },
            )?;
            if cfg.is_gateway && !gateways.is_empty() {
                let _guard = if cfg.vlan != 0 {
                    Some(lock_vlan_gateway(&cfg.bridge)?)
                } else {
                    None
                };
                let target = if cfg.vlan != 0 {
                    let gw_link = ensure_vlan_gateway(&mut nl, cfg, &bridge, &mut rollback)?;
                    result.add_interface(Interface {
                        name: gw_link.name.clone(),
                        mac: gw_link.mac.map(|m| m.to_string()),
                        ..Default::default()
                    });
                    gw_link
                } else {
                    bridge.clone()
                };
                for gateway in &gateways {
                    ensure_address(&mut nl, &target, *gateway, cfg.keys().force_address)?;
                    enable_forwarding(gateway.addr().is_ipv4());
                }
            }
            if cfg.keys().ip_masq {
                let addresses: Vec<IpNet> = result.ips.iter().map(|ip| ip.address).collect();
                let backend = cfg.masq_backend.unwrap_or_else(masq::default_backend);
                rollback.masquerade = Some((
                    cfg.conf.name.clone(),
                    request.ifname.clone(),
                    request.container_id.clone(),
                ));
                masq::setup(
                    backend,
                    &addresses,
                    &cfg.conf.name,
                    &request.ifname,
                    &request.container_id,
                )?;
            }
        } else if !cfg.keys().disable_container_interface {
            inside.change_link(container.index).up().apply()?;
        }

        let host = if cfg.keys().disable_container_interface {
            host
        } else {
            wait_for_port(&mut nl, &host_name)?
        };
        let bridge_now = nl.require_link(&LinkId::Index(bridge.index))?;
        result.interfaces[0].mac = bridge_now.mac.map(|m| m.to_string());
        result.interfaces[1].mac = host.mac.map(|m| m.to_string());
        if let Some(dns) = cfg.conf.dns.as_ref().filter(|d| !d.is_empty()) {
            result.dns = dns.clone();
        }
        if let Some(allocation) = allocation {
            allocation.keep();
        }
        rollback.done = true;
        Ok(result)
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
        let reference = spoofcheck::reference(&request.container_id, &request.ifname);
        // macspoofchk rules that name prevResult's host veth are ours whether the veth
        // still exists or not: removing them before the veth lets the kernel's
        // post-commit work (an RCU grace period, waited for when the nf_tables socket
        // closes) run during the veth deletion's own waits. The socket stays open
        // until then. Anything else is judged after the veth is gone, below.
        let mut nft = None;
        let mut spoofcheck_removed = false;
        if cfg.macspoofchk {
            if let (Some(own), Ok(mut socket)) = (&own_host_veth, Nftables::open()) {
                spoofcheck_removed =
                    check::remove_own_spoofcheck(&mut socket, &reference, own).unwrap_or(false);
                nft = Some(socket);
            }
        }
        let mut pod_gone = true;
        if let Some(path) = &request.netns {
            match NetNs::open_if_present(path) {
                Ok(Some(netns)) => {
                    pod_gone = false;
                    errors.record(delete_container_veth(&netns, request, cfg, prev.as_ref()));
                }
                Ok(None) => {}
                Err(e) => errors.push(e.into()),
            }
        }
        if cfg.macspoofchk && !spoofcheck_removed {
            let socket = match nft.take() {
                Some(socket) => Ok(socket),
                None => Nftables::open().map_err(CniError::from),
            };
            errors.record(socket.and_then(|mut socket| {
                let mut nl = Netlink::open()?;
                check::remove_spoofcheck(
                    &mut socket,
                    &mut nl,
                    &reference,
                    own_host_veth.as_deref(),
                    pod_gone,
                )
            }));
        }
        if cfg.is_layer3() && cfg.ip_masq {
            errors.record(masq::teardown(
                &cfg.conf.name,
                &request.ifname,
                &request.container_id,
            ));
        }
        if cfg.vlan != 0 && cfg.is_gateway && cfg.is_layer3() {
            errors.record(remove_unused_vlan_gateway(&cfg.bridge, cfg.vlan));
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
        let valid: Vec<(String, String)> = cfg
            .conf
            .gc_valid_attachments()
            .into_iter()
            .map(|a| (a.container_id, a.ifname))
            .collect();
        let mut errors = ErrorList::new();
        errors.record(check::gc_spoofcheck(&valid));
        errors.record(masq::gc(&cfg.conf.name, &valid));
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

/// Reads the macspoofchk state of this attachment's reference before ADD changes
/// anything: rules that filter a live host interface belong to another attachment
/// (Go's names join container ID and interface name with `-`, so two attachments
/// can share them), and ADD refuses rather than take them over. Stale jumps (their
/// host veth is gone) stay in what is returned, for the setup transaction to remove.
fn prepare_spoofcheck(
    request: &Request,
    nl: &mut Netlink,
) -> Result<(Nftables, String, spoofcheck::Existing), CniError> {
    let reference = spoofcheck::reference(&request.container_id, &request.ifname);
    let mut nft = Nftables::open()?;
    let existing = spoofcheck::existing(&mut nft, &reference)?;
    for veth in existing.installed.host_veths() {
        if nl.get_link(&LinkId::Name(&veth))?.is_some() {
            return Err(CniError::internal(format!(
                "macspoofchk chain {:?} already filters the live host interface {veth:?} of another attachment: container ID {:?} with interface {:?} collides with it",
                spoofcheck::iface_chain(&reference),
                request.container_id,
                request.ifname
            )));
        }
    }
    Ok((nft, reference, existing))
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
