//! `bridge` (also installed as `cnv-bridge`): connects a container to a Linux bridge
//! through a veth pair, with VLAN access ports and trunks, macspoofchk, gateway
//! addresses and masquerade. Compatible with the Go plugin's configs, results and
//! nftables names.

mod config;
mod masq;
mod nft;
mod spoofcheck;

use std::net::IpAddr;
use std::path::Path;

use ipnet::IpNet;
use libcni::delegate::ipam;
use libcni::host::apply::{configure_interface, InterfaceOptions};
use libcni::netlink::{
    random_name, BridgePortFlags, BridgeVlanEntry, Link, LinkId, LinkKind, Netlink, NewLink,
    SocketTransport,
};
use libcni::netns::NetNs;
use libcni::spec::error::ErrorList;
use libcni::spec::result::{Interface, Route};
use libcni::{About, CniError, CniResult, Plugin, Request};

use crate::config::BridgeConfig;

/// Index of the container interface in the result: after the bridge and host veth.
const CONTAINER_INDEX: usize = 2;
const VLAN_LOCK_DIR: &str = "/run/cni/bridge";

fn eopnotsupp_hint(e: libcni::netlink::NetlinkError, what: &str) -> CniError {
    if e.errno() == Some(libc::EOPNOTSUPP) {
        CniError::internal(format!(
            "{e}: this kernel has no {what} (it needs CONFIG_BRIDGE_VLAN_FILTERING)"
        ))
    } else {
        e.into()
    }
}

fn host_sysctl(key: &str, value: &str) {
    if let Err(e) = libcni::host::sysctl::write(key, value) {
        libcni::log_warn!("{e}");
    }
}

/// What an ADD made so far; undone on drop unless the ADD succeeded.
#[derive(Default)]
struct Rollback {
    host_veth: Option<String>,
    created_bridge: Option<String>,
    created_vlan_gateway: Option<String>,
    spoofcheck: Option<String>,
    masquerade: Option<(String, String, String)>,
    done: bool,
}

impl Drop for Rollback {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Some(reference) = &self.spoofcheck {
            if let Err(e) = spoofcheck::teardown(reference) {
                libcni::log_warn!("rollback: {}", e.message);
            }
        }
        if let Some((network, ifname, cid)) = &self.masquerade {
            if let Err(e) = masq::teardown(network, ifname, cid) {
                libcni::log_warn!("rollback: {e}");
            }
        }
        let Ok(mut nl) = Netlink::open() else { return };
        for name in [&self.host_veth, &self.created_vlan_gateway]
            .into_iter()
            .flatten()
        {
            if let Err(e) = nl.delete_link_if_present(name) {
                libcni::log_warn!("rollback: {e}");
            }
        }
        // A bridge this ADD created goes too, unless another ADD has put a port on it.
        if let Some(bridge) = &self.created_bridge {
            let ports = nl
                .require_link(&LinkId::Name(bridge.clone()))
                .and_then(|b| {
                    nl.list_links().map(|links| {
                        links
                            .iter()
                            .filter(|l| l.controller == Some(b.index))
                            .count()
                    })
                });
            if ports.is_ok_and(|n| n == 0) {
                let _ = nl.delete_link_if_present(bridge);
            }
        }
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
    let existing = nl.get_link(&LinkId::Name(name.clone()))?;
    let mut bridge = match existing {
        Some(link) => link,
        None => {
            let mut new = NewLink::new(
                name.clone(),
                LinkKind::Bridge {
                    vlan_filtering: cfg.vlan_filtering().then_some(true),
                },
            );
            new.mtu = (cfg.keys().mtu > 0).then_some(cfg.keys().mtu);
            match nl.create_link(&new) {
                Ok(()) => rollback.created_bridge = Some(name.clone()),
                Err(e) if e.is_exists() => {}
                Err(e) => return Err(eopnotsupp_hint(e, "bridge VLAN filtering")),
            }
            nl.require_link(&LinkId::Name(name.clone()))?
        }
    };
    if bridge.kind.as_deref() != Some("bridge") {
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
        nl.set_promiscuous(bridge.index, true)?;
    }
    host_sysctl(&format!("net/ipv6/conf/{name}/accept_ra"), "0");
    if !bridge.up {
        nl.set_up(bridge.index, true)?;
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
    if container
        .get_link(&LinkId::Name(ifname.to_string()))?
        .is_some()
    {
        return Err(exists());
    }
    let mtu = (cfg.keys().mtu > 0).then_some(cfg.keys().mtu);
    for _ in 0..10 {
        let host_name = random_name("veth", 8);
        let mut peer = NewLink::peer(ifname);
        peer.netns = Some(netns.fd());
        peer.mac = cfg.mac;
        peer.mtu = mtu;
        let mut veth = NewLink::new(
            host_name.clone(),
            LinkKind::Veth {
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
                if container
                    .get_link(&LinkId::Name(ifname.to_string()))?
                    .is_some()
                {
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

/// Access VLAN (PVID, untagged), trunk VIDs (tagged), and VLAN 1 removed unless preserved.
fn program_vlans(nl: &mut Netlink, cfg: &BridgeConfig, port: &Link) -> Result<(), CniError> {
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
        nl.bridge_vlan_add(
            port.index,
            BridgeVlanEntry {
                vid: cfg.vlan,
                pvid: true,
                untagged: true,
            },
            false,
        )
        .map_err(tag)?;
    }
    for vid in &trunk {
        nl.bridge_vlan_add(
            port.index,
            BridgeVlanEntry {
                vid: *vid,
                pvid: false,
                untagged: false,
            },
            false,
        )
        .map_err(tag)?;
    }
    if cfg.vlan == 0 && !trunk.is_empty() {
        nl.bridge_vlan_add(
            port.index,
            BridgeVlanEntry {
                vid: 1,
                pvid: true,
                untagged: true,
            },
            false,
        )
        .map_err(tag)?;
    }
    Ok(())
}

/// Serializes the gateway-VLAN interface between concurrent ADDs and DELs of a bridge.
fn lock_vlan_gateway(bridge: &str) -> Result<nix::fcntl::Flock<std::fs::File>, CniError> {
    libcni::host::fs::StateDir::create(Path::new(VLAN_LOCK_DIR), 0o755)
        .and_then(|dir| dir.lock(&format!("{bridge}.lock"), 0o600))
        .map_err(|e| CniError::io(e.to_string()))
}

/// `<bridge>.<vlan>`: a veth whose peer is an access port of the VLAN, carrying the
/// gateway address of a VLAN network (as the Go plugin does).
fn ensure_vlan_gateway(
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
fn clone_vlan_only(cfg: &BridgeConfig) -> BridgeConfig {
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

/// Puts `gateway` (address with the container's prefix) on the bridge or the VLAN
/// gateway interface. An address already there is fine; a different IPv4 address
/// (or an IPv6 one in the same subnet) is an error unless `forceAddress`.
fn ensure_address(
    nl: &mut Netlink,
    link: &Link,
    gateway: IpNet,
    force: bool,
) -> Result<(), CniError> {
    let v4 = gateway.addr().is_ipv4();
    for existing in nl.list_addresses(Some(link.index))? {
        if existing.address.addr().is_ipv4() != v4 {
            continue;
        }
        if existing.address == gateway {
            return Ok(());
        }
        if v4 || gateway.contains(&existing.address.addr()) {
            if !force {
                return Err(CniError::invalid_config(format!(
                    "{:?} already has an IP address different from {gateway}",
                    link.name
                )));
            }
            nl.delete_address(link.index, existing.address)?;
        }
    }
    match nl.add_address(link.index, gateway) {
        Err(e) if !e.is_exists() => return Err(e.into()),
        _ => {}
    }
    // Pin the MAC: a bridge's MAC otherwise follows its ports as they come and go.
    let current = nl.require_link(&LinkId::Index(link.index))?;
    if let Some(mac) = current
        .mac
        .as_deref()
        .and_then(libcni::spec::mac::parse_mac)
    {
        if mac != [0; 6] {
            nl.set_mac(link.index, mac)?;
        }
    }
    Ok(())
}

fn enable_forwarding(v4: bool) {
    let key = if v4 {
        "net/ipv4/ip_forward"
    } else {
        "net/ipv6/conf/all/forwarding"
    };
    if libcni::host::sysctl::read(key)
        .map(|v| v != "1")
        .unwrap_or(true)
    {
        host_sysctl(key, "1");
    }
}

/// Waits for the host veth to be operationally up (0, 50, 500, 1000, 1000 ms, as Go).
fn wait_for_port(nl: &mut Netlink, name: &str) -> Result<Link, CniError> {
    let mut last = None;
    for delay in [0u64, 50, 500, 1000, 1000] {
        std::thread::sleep(std::time::Duration::from_millis(delay));
        let link = nl.require_link(&LinkId::Name(name.to_string()))?;
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
    fn add(&self, request: &Request) -> Result<CniResult, CniError> {
        let cfg = config::load(request, self.cnv_bridge)?;
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
        let mut nl: Netlink<SocketTransport> = Netlink::open()?;
        let mut inside = netns.netlink()?;
        let mut rollback = Rollback::default();

        let bridge = ensure_bridge(&mut nl, &cfg, &mut rollback)?;
        let host_name = create_veth(
            &mut nl,
            &mut inside,
            &netns,
            &cfg,
            &bridge,
            &request.ifname,
            &mut rollback,
        )?;
        let host = nl.require_link(&LinkId::Name(host_name.clone()))?;
        host_sysctl(&format!("net/ipv6/conf/{host_name}/accept_ra"), "0");
        nl.set_bridge_port_flags(
            host.index,
            BridgePortFlags {
                hairpin: Some(cfg.keys().hairpin_mode),
                isolated: Some(cfg.keys().port_isolation),
            },
        )?;
        program_vlans(&mut nl, &cfg, &host)?;
        let container = inside.require_link(&LinkId::Name(request.ifname.clone()))?;
        let container_mac = container.mac.clone().unwrap_or_default();

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
            mac: Some(container_mac.clone()),
            sandbox: Some(netns.path().display().to_string()),
            ..Default::default()
        });

        if cfg.keys().macspoofchk {
            let reference = BridgeConfig::reference(request);
            rollback.spoofcheck = Some(reference.clone());
            spoofcheck::setup(&host_name, &container_mac, &reference)?;
        }

        let allocation = match cfg.conf.delegated_ipam() {
            None => None,
            Some(ipam_conf) => Some(ipam::add(request, &ipam_conf.plugin_type)?),
        };
        if let Some(allocation) = &allocation {
            let ipam_result = &allocation.result;
            result.dns = ipam_result.dns.clone();
            result.routes = ipam_result.routes.clone();
            let mut gateways: Vec<IpNet> = Vec::new();
            let mut default_route = [false, false]; // v4, v6
            for ip in &ipam_result.ips {
                let mut ip = ip.clone();
                ip.interface = Some(CONTAINER_INDEX);
                if ip.gateway.is_none() && cfg.is_gateway {
                    let first = ip.address.network();
                    ip.gateway = Some(match first {
                        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) + 1).into()),
                        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + 1).into()),
                    });
                }
                let family = usize::from(!ip.is_ipv4());
                if cfg.keys().is_default_gateway && !default_route[family] {
                    let zero: IpNet = if ip.is_ipv4() {
                        "0.0.0.0/0".parse().unwrap()
                    } else {
                        "::/0".parse().unwrap()
                    };
                    if !result
                        .routes
                        .iter()
                        .any(|r| r.dst == zero && r.gw.is_some())
                    {
                        result.routes.push(Route {
                            dst: zero,
                            gw: ip.gateway,
                            ..Default::default()
                        });
                    }
                    default_route[family] = true;
                }
                if cfg.is_gateway {
                    if let Some(gw) = ip.gateway {
                        gateways.push(
                            IpNet::new(gw, ip.address.prefix_len()).expect("prefix of an address"),
                        );
                    }
                }
                result.ips.push(ip);
            }
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
                    let gw_link = ensure_vlan_gateway(&mut nl, &cfg, &bridge, &mut rollback)?;
                    result.add_interface(Interface {
                        name: gw_link.name.clone(),
                        mac: gw_link.mac.clone(),
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
            inside.set_up(container.index, true)?;
        }

        let host = if cfg.keys().disable_container_interface {
            host
        } else {
            wait_for_port(&mut nl, &host_name)?
        };
        let bridge_now = nl.require_link(&LinkId::Index(bridge.index))?;
        result.interfaces[0].mac = bridge_now.mac;
        result.interfaces[1].mac = host.mac;
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
    fn del(&self, request: &Request) -> Result<(), CniError> {
        let cfg = config::load(request, self.cnv_bridge)?;
        let mut errors = ErrorList::new();
        if let Some(ipam_conf) = cfg.conf.delegated_ipam() {
            errors.record(ipam::del(request, &ipam_conf.plugin_type));
        }
        if let Some(path) = &request.netns {
            match NetNs::open_if_present(path) {
                Ok(Some(netns)) => {
                    errors.record(netns.netlink().map_err(CniError::from).and_then(
                        |mut inside| {
                            inside.delete_link_if_present(&request.ifname)?;
                            Ok(())
                        },
                    ));
                }
                Ok(None) => {}
                Err(e) => errors.push(e.into()),
            }
        }
        if cfg.keys().macspoofchk {
            errors.record(
                spoofcheck::teardown(&BridgeConfig::reference(request)).map_err(CniError::from),
            );
        }
        if cfg.is_layer3() && cfg.keys().ip_masq {
            errors.record(masq::teardown(
                &cfg.conf.name,
                &request.ifname,
                &request.container_id,
            ));
        }
        if cfg.vlan != 0 && cfg.is_gateway && cfg.is_layer3() {
            errors.record(remove_unused_vlan_gateway(&cfg));
        }
        errors.into_result()
    }

    fn check(&self, request: &Request) -> Result<(), CniError> {
        let cfg = config::load(request, self.cnv_bridge)?;
        let prev = cfg.conf.required_prev_result(request.version)?;
        ipam::forward(request, cfg.conf.delegated_ipam())?;
        check::attachment(&cfg, request, &prev)
    }

    /// Removes the nftables state of attachments not in the valid list, then
    /// forwards GC to IPAM.
    fn gc(&self, request: &Request) -> Result<(), CniError> {
        let cfg = config::load(request, self.cnv_bridge)?;
        let valid: Vec<(String, String)> = cfg
            .conf
            .gc_valid_attachments()
            .into_iter()
            .map(|a| (a.container_id, a.ifname))
            .collect();
        let mut errors = ErrorList::new();
        errors.record(check::gc_spoofcheck(&cfg, &valid));
        errors.record(masq::gc(&cfg.conf.name, &valid));
        errors.record(ipam::forward(request, cfg.conf.delegated_ipam()));
        errors.into_result()
    }

    fn status(&self, request: &Request) -> Result<(), CniError> {
        let cfg = config::load(request, self.cnv_bridge)?;
        ipam::forward(request, cfg.conf.delegated_ipam())
    }

    fn known_args(&self) -> &'static [&'static str] {
        &["MAC", "IP"]
    }
}

/// Deletes `<bridge>.<vlan>` when no port but its own peer is left in the VLAN.
fn remove_unused_vlan_gateway(cfg: &BridgeConfig) -> Result<(), CniError> {
    let _guard = lock_vlan_gateway(&cfg.bridge)?;
    let mut nl = Netlink::open()?;
    let name = format!("{}.{}", cfg.bridge, cfg.vlan);
    let Some(gateway) = nl.get_link(&LinkId::Name(name.clone()))? else {
        return Ok(());
    };
    let Some(bridge) = nl.get_link(&LinkId::Name(cfg.bridge.clone()))? else {
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
        .any(|(index, vlans)| ports.contains(index) && vlans.iter().any(|v| v.vid == cfg.vlan));
    if !in_use {
        nl.delete_link_if_present(&name)?;
    }
    Ok(())
}

mod check;

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
