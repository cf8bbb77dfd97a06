//! ADD: the bridge, the veth pair and the port, macspoofchk, the addresses and
//! gateways, masquerade; each a named step of [`Add`], undone by its [`Rollback`]
//! when a later one fails.

use ipnet::IpNet;
use libcni::delegate::ipam::{self, Allocation};
use libcni::host::apply::{configure_interface, InterfaceOptions};
use libcni::netlink::{
    random_name, BridgePortFlags, Link, LinkId, LinkKind, Netlink, NewLink, NewLinkKind,
};
use libcni::netns::NetNs;
use libcni::spec::attachment::AttachmentId;
use libcni::spec::result::Interface;
use libcni::{CniError, CniResult, Request};

use crate::config::BridgeConfig;
use crate::gateway::{self, enable_forwarding, ensure_address};
use crate::host_sysctl;
use crate::masq::{self, Masquerade};
use crate::rollback::Rollback;
use crate::spoofcheck::{self, IpFilter, MacPin, Prepared, SpoofCheck};
use crate::vlan::{lock_vlan_gateway, program_vlans, VlanGateway};

/// Index of the container interface in the result: after the bridge and host veth.
const CONTAINER_INDEX: usize = 2;

/// Runs ADD for `cfg`.
pub fn add(cfg: &BridgeConfig, request: &Request) -> Result<CniResult, CniError> {
    refuse_layer2_before_0_3_0(cfg, request)?;
    ipam::require_installed(request, cfg.conf.delegated_ipam())?;
    let mut add = Add::open(cfg, request)?;
    // Before anything changes: macspoofchk chains of this reference that filter a
    // live host interface belong to another attachment.
    let spoofcheck = match cfg.macspoofchk {
        true => Some(SpoofCheck::prepare(&add.id, &mut add.nl)?),
        false => None,
    };
    let bridge = ensure_bridge(&mut add.nl, cfg, &mut add.rollback)?;
    let (host, container) = add.connect(&bridge)?;
    // ipspoofchk needs IPAM's addresses: then both filters go in one transaction
    // once they are known, before the container interface has them.
    let mut spoofcheck = spoofcheck.map(|prepared| (prepared, host.name.as_str()));
    if !cfg.ipspoofchk {
        if let Some((prepared, host_veth)) = spoofcheck.take() {
            add.protect(prepared, host_veth, &container, None)?;
        }
    }
    let allocation = add.configure_addresses(&bridge, &container, spoofcheck)?;
    add.finish(&bridge, host, allocation)
}

/// Found before anything is made: 0.1.0/0.2.0 results cannot say "no address".
fn refuse_layer2_before_0_3_0(cfg: &BridgeConfig, request: &Request) -> Result<(), CniError> {
    if cfg.is_layer3() || request.version.allows_multiple_ips_per_family() {
        return Ok(());
    }
    Err(CniError::new(
        libcni::ErrorCode::IncompatibleVersion,
        format!(
            "cannot convert the result to CNI version {}: no valid IP addresses",
            request.version
        ),
    )
    .with_details("a layer-2 attachment (no ipam type) needs cniVersion 0.3.0 or later"))
}

/// One ADD under way: its sockets, the result so far and what to undo.
struct Add<'a> {
    cfg: &'a BridgeConfig,
    request: &'a Request,
    id: AttachmentId,
    netns: NetNs,
    nl: Netlink,
    inside: Netlink,
    result: CniResult,
    rollback: Rollback,
}

impl<'a> Add<'a> {
    fn open(cfg: &'a BridgeConfig, request: &'a Request) -> Result<Add<'a>, CniError> {
        let netns = libcni::attach::request_netns(request)?;
        let nl = Netlink::open()?;
        let inside = netns.netlink()?;
        Ok(Add {
            cfg,
            request,
            id: request.attachment(),
            netns,
            nl,
            inside,
            result: CniResult::default(),
            rollback: Rollback::default(),
        })
    }

    /// The veth pair, its host end set up as a port of `bridge` and its container
    /// end marked as this attachment's; the three interfaces of the result. Returns
    /// the host and container links.
    fn connect(&mut self, bridge: &Link) -> Result<(Link, Link), CniError> {
        let (cfg, ifname) = (self.cfg, self.request.ifname.as_str());
        let host_name = create_veth(
            &mut self.nl,
            &mut self.inside,
            &self.netns,
            cfg,
            bridge,
            ifname,
            &mut self.rollback,
        )?;
        let host = self.nl.require_link(&LinkId::Name(&host_name))?;
        host_sysctl(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
        let edge = match cfg.ipspoofchk {
            true => {
                spoofcheck::edge::close_stack(&mut self.nl, &host)?;
                spoofcheck::edge::flags()
            }
            false => BridgePortFlags::default(),
        };
        self.nl.set_bridge_port_flags(
            host.index,
            BridgePortFlags {
                hairpin: Some(cfg.hairpin_mode),
                isolated: Some(cfg.port_isolation),
                ..edge
            },
        )?;
        program_vlans(&mut self.nl, &cfg.vlans, &host)?;
        let container = self.inside.require_link(&LinkId::Name(ifname))?;
        if let (true, Some(mac)) = (cfg.ipspoofchk, container.mac) {
            // Before the container end is up, so nothing was learned on the port yet.
            let pin = MacPin {
                bridge,
                port: &host,
                mac,
                vids: cfg.vlans.member_vids(),
                maybe_vid: cfg.vlans.preserved_default_vid(),
            };
            pin.pin(&mut self.nl)?;
        }
        self.inside
            .change_link(container.index)
            .alias(&self.id.link_mark())
            .apply()?;
        for name in [&cfg.bridge, &host_name] {
            self.result.add_interface(Interface {
                name: name.clone(),
                ..Default::default()
            });
        }
        self.result.add_interface(Interface {
            name: ifname.to_string(),
            mac: Some(container.mac.map(|m| m.to_string()).unwrap_or_default()),
            sandbox: Some(self.netns.path().display().to_string()),
            ..Default::default()
        });
        Ok((host, container))
    }

    /// macspoofchk: frames from `host_veth` must carry the container's MAC; with
    /// ipspoofchk, also only the addresses of the result so far.
    fn protect(
        &mut self,
        prepared: Prepared,
        host_veth: &str,
        container: &Link,
        ipspoofchk: Option<&CniResult>,
    ) -> Result<(), CniError> {
        let mac = container.mac.ok_or_else(|| {
            CniError::internal("container interface has no MAC: \"\"".to_string())
        })?;
        let ip_filter = ipspoofchk.map(|r| IpFilter::of(mac, r)).transpose()?;
        self.rollback.spoofcheck = Some(prepared.setup(host_veth, mac, ip_filter.as_ref())?);
        Ok(())
    }

    /// Layer 3: the IPAM addresses and routes on the container interface (after
    /// `ipspoofchk`'s filter for them, when given), the gateways on the host,
    /// masquerade. Layer 2: the container interface up, unless the config keeps it
    /// down.
    fn configure_addresses(
        &mut self,
        bridge: &Link,
        container: &Link,
        ipspoofchk: Option<(Prepared, &str)>,
    ) -> Result<Option<Allocation<'a>>, CniError> {
        let cfg = self.cfg;
        let Some(ipam_conf) = cfg.conf.delegated_ipam() else {
            if !cfg.disable_container_interface {
                self.inside.change_link(container.index).up().apply()?;
            }
            return Ok(None);
        };
        // Only once this ADD's veth exists, as Go orders it: an allocation started
        // earlier would be released when the veth turns out to be taken, and a
        // duplicate ADD of a live attachment would so release that attachment's
        // address (IPAM DEL names the container ID and interface, not the ADD).
        let allocation = ipam::add(self.request, &ipam_conf.plugin_type)?;
        let ipam_result = &allocation.result;
        self.result.dns = ipam_result.dns.clone();
        let plan = gateway::plan(
            ipam_result,
            CONTAINER_INDEX,
            cfg.is_gateway,
            cfg.is_default_gateway,
        );
        self.result.ips = plan.ips;
        self.result.routes = plan.routes;
        if let Some((prepared, host_veth)) = ipspoofchk {
            let result = std::mem::take(&mut self.result);
            let protected = self.protect(prepared, host_veth, container, Some(&result));
            self.result = result;
            protected?;
        }
        configure_interface(
            &self.netns,
            &mut self.inside,
            &self.request.ifname,
            &self.result,
            InterfaceOptions {
                ipv6_dad: cfg.ipv6_dad,
            },
        )?;
        if cfg.is_gateway && !plan.gateways.is_empty() {
            self.set_up_gateways(bridge, &plan.gateways)?;
        }
        if cfg.ip_masq {
            self.masquerade()?;
        }
        Ok(Some(allocation))
    }

    /// Puts the gateway addresses on the bridge, or on the VLAN's gateway interface
    /// (made if missing, under the bridge's lock), and turns forwarding on.
    fn set_up_gateways(&mut self, bridge: &Link, gateways: &[IpNet]) -> Result<(), CniError> {
        let cfg = self.cfg;
        let vlan = cfg.vlans.access;
        let _guard = match vlan {
            0 => None,
            _ => Some(lock_vlan_gateway(&cfg.bridge)?),
        };
        let target = if vlan != 0 {
            let gateway = VlanGateway {
                bridge: cfg.bridge.clone(),
                vlan,
            };
            let made = &mut self.rollback.vlan_gateway;
            let link = gateway.ensure(&mut self.nl, &cfg.vlans, bridge, made)?;
            self.result.add_interface(Interface {
                name: link.name.clone(),
                mac: link.mac.map(|m| m.to_string()),
                ..Default::default()
            });
            link
        } else {
            bridge.clone()
        };
        for gateway in gateways {
            ensure_address(&mut self.nl, &target, *gateway, cfg.force_address)?;
            enable_forwarding(gateway.addr().is_ipv4());
        }
        Ok(())
    }

    /// Masquerades the result's addresses, with the configured backend or Go's default.
    fn masquerade(&mut self) -> Result<(), CniError> {
        let addresses: Vec<IpNet> = self.result.ips.iter().map(|ip| ip.address).collect();
        let backend = self.cfg.masq_backend.unwrap_or_else(masq::default_backend);
        let masquerade = Masquerade::of(&self.id, &addresses);
        let masquerade = self.rollback.masquerade.insert(masquerade);
        masquerade.setup(backend)
    }

    /// Waits for the host port, fills in the MACs and DNS, and keeps what was made.
    fn finish(
        mut self,
        bridge: &Link,
        host: Link,
        allocation: Option<Allocation>,
    ) -> Result<CniResult, CniError> {
        let cfg = self.cfg;
        let host = if cfg.disable_container_interface {
            host
        } else {
            wait_for_port(&mut self.nl, &host.name)?
        };
        let bridge_now = self.nl.require_link(&LinkId::Index(bridge.index))?;
        self.result.interfaces[0].mac = bridge_now.mac.map(|m| m.to_string());
        self.result.interfaces[1].mac = host.mac.map(|m| m.to_string());
        if let Some(dns) = cfg.conf.dns.as_ref().filter(|d| !d.is_empty()) {
            self.result.dns = dns.clone();
        }
        if let Some(allocation) = allocation {
            allocation.keep();
        }
        self.rollback.done = true;
        Ok(std::mem::take(&mut self.result))
    }
}

fn eopnotsupp_hint(e: libcni::netlink::NetlinkError, what: &str) -> CniError {
    if e.errno() == Some(libc::EOPNOTSUPP) {
        CniError::internal(format!(
            "{e}: this kernel has no {what} (it needs CONFIG_BRIDGE_VLAN_FILTERING)"
        ))
    } else {
        e.into()
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
            new.mtu = cfg.mtu;
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
    if cfg.promisc_mode && !bridge.promiscuous {
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
    ifname: &str,
    rollback: &mut Rollback,
) -> Result<String, CniError> {
    let exists = || {
        CniError::internal(format!(
            "container veth name provided ({ifname}) already exists"
        ))
    };
    let mut taken = || container.get_link(&LinkId::Name(ifname));
    if taken()?.is_some() {
        return Err(exists());
    }
    for _ in 0..10 {
        let host_name = random_name("veth", 8);
        let veth = veth_pair(&host_name, ifname, netns, cfg, bridge);
        match nl.create_link(&veth) {
            Ok(()) => {
                rollback.host_veth = Some(host_name.clone());
                return Ok(host_name);
            }
            Err(e) if e.is_exists() => {
                if taken()?.is_some() {
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

/// The pair as one request: the host end `host_name`, up, a port of `bridge`; its
/// peer `ifname` in the container's netns, with the configured MAC; both with the
/// configured MTU.
fn veth_pair<'fd>(
    host_name: &str,
    ifname: &str,
    netns: &'fd NetNs,
    cfg: &BridgeConfig,
    bridge: &Link,
) -> NewLink<'fd> {
    let mut peer = NewLink::peer(ifname);
    peer.netns = Some(netns.fd());
    peer.mac = cfg.mac;
    peer.mtu = cfg.mtu;
    let mut veth = NewLink::new(
        host_name.to_string(),
        NewLinkKind::Veth {
            peer: Box::new(peer),
        },
    );
    veth.mtu = cfg.mtu;
    veth.controller = Some(bridge.index);
    veth.up = true;
    veth
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
