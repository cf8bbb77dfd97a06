//! Puts an IPAM result on an interface inside a netns: sysctls, link up, addresses,
//! then routes with the per-family gateway as the default next hop.

use std::net::IpAddr;

use crate::netlink::{Ipv4Conf, LinkId, Netlink, RouteSpec, RouteTransport};
use crate::netns::NetNs;
use crate::spec::error::CniError;
use crate::spec::result::CniResult;

/// Interface sysctls, as the Go plugins set them.
#[derive(Clone, Copy, Debug)]
pub struct InterfaceOptions {
    /// IPv6 duplicate address detection; off sets accept_dad=0 and enhanced_dad=0.
    pub ipv6_dad: bool,
}

impl Default for InterfaceOptions {
    fn default() -> Self {
        InterfaceOptions { ipv6_dad: true }
    }
}

/// The IPv6 sysctls for `ifname`, written from inside its netns: enable IPv6,
/// keep_addr_on_down, ndisc_notify and the DAD choice. (IPv4's arp_notify goes by
/// netlink: [`IPV4_CONF`].)
fn ipv6_sysctls(ifname: &str, options: InterfaceOptions) -> Vec<(String, &'static str)> {
    let mut settings = vec![
        ("net/ipv6/conf/lo/disable_ipv6".to_string(), "0"),
        (format!("net/ipv6/conf/{ifname}/disable_ipv6"), "0"),
        (format!("net/ipv6/conf/{ifname}/keep_addr_on_down"), "1"),
        (format!("net/ipv6/conf/{ifname}/ndisc_notify"), "1"),
    ];
    if !options.ipv6_dad {
        settings.push((format!("net/ipv6/conf/{ifname}/enhanced_dad"), "0"));
        settings.push((format!("net/ipv6/conf/{ifname}/accept_dad"), "0"));
    }
    settings
}

/// An interface with IPv4 addresses announces them (Go writes the sysctl). Set by
/// a link change on the socket already in the netns: an IPv4-only interface then
/// needs no thread to enter the netns (about 0.15 ms of a 3 ms ADD here).
const IPV4_CONF: [Ipv4Conf; 1] = [Ipv4Conf::ArpNotify(true)];

/// The routes to install for `result` on link `oif`: a route without a gateway gets
/// the gateway of the first address of its family on this interface.
pub fn routes_for(result: &CniResult, interface: usize, oif: u32) -> Vec<RouteSpec> {
    let gateway_of = |v4: bool| -> Option<IpAddr> {
        result
            .ips
            .iter()
            .filter(|ip| ip.interface == Some(interface) && ip.is_ipv4() == v4)
            .find_map(|ip| ip.gateway)
    };
    result
        .routes
        .iter()
        .map(|r| RouteSpec {
            dst: r.dst,
            gateway: r.gw.or_else(|| gateway_of(r.dst.addr().is_ipv4())),
            oif: Some(oif),
            priority: r.priority,
            table: r.table,
            scope: r.scope.map(|s| s as u8),
            mtu: r.mtu,
            advmss: r.advmss,
        })
        .collect()
}

/// Configures `ifname` in `netns` from `result`. `nl` is a client bound to `netns`.
/// Only the addresses whose `interface` index names `ifname` are added.
pub fn configure_interface<T: RouteTransport>(
    netns: &NetNs,
    nl: &mut Netlink<T>,
    ifname: &str,
    result: &CniResult,
    options: InterfaceOptions,
) -> Result<(), CniError> {
    let interface = result
        .interfaces
        .iter()
        .position(|i| i.name == ifname && i.sandbox.is_some())
        .or_else(|| result.interfaces.iter().position(|i| i.name == ifname))
        .ok_or_else(|| {
            CniError::internal(format!(
                "the result has no interface {ifname:?} to configure"
            ))
        })?;
    for ip in &result.ips {
        if let Some(index) = ip.interface {
            if index >= result.interfaces.len() {
                return Err(CniError::internal(format!(
                    "failed to add IP address {} to {ifname:?}: invalid interface index {index}",
                    ip.address
                )));
            }
        }
    }
    let ips: Vec<_> = result
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(interface))
        .collect();
    let has_v4 = ips.iter().any(|ip| ip.is_ipv4());
    let has_v6 = ips.iter().any(|ip| !ip.is_ipv4());

    // A kernel without IPv6, or an older one without a knob, is not an error here:
    // the address step below reports what really matters.
    if has_v6 {
        let settings = ipv6_sysctls(ifname, options);
        netns.run(|| {
            for (key, value) in &settings {
                if let Err(e) = crate::host::sysctl::write(key, value) {
                    crate::log_warn!("{e}");
                }
            }
        })?;
    }
    let link = nl.require_link(&LinkId::Name(ifname))?;
    if has_v4 {
        if let Err(e) = nl.change_link(link.index).ipv4_conf(&IPV4_CONF).apply() {
            crate::log_warn!("{e}");
        }
    }
    nl.change_link(link.index).up().apply()?;
    for ip in &ips {
        nl.add_address(link.index, ip.address).map_err(|e| {
            CniError::from(e.context(format!(
                "configure {ifname:?} in {}",
                netns.path().display()
            )))
        })?;
    }
    let has_v6_gateway = ips.iter().any(|ip| !ip.is_ipv4() && ip.gateway.is_some());
    if has_v6_gateway && options.ipv6_dad {
        settle_ipv6_addresses(nl, link.index, ifname)?;
    }
    for route in routes_for(result, interface, link.index) {
        nl.add_route(&route).map_err(|e| {
            CniError::from(e.context(format!(
                "configure {ifname:?} in {}",
                netns.path().display()
            )))
        })?;
    }
    Ok(())
}

/// Waits (50 ms steps, 5 s at most) until no address of the link is tentative, so
/// that routes via an IPv6 gateway can be added; a failed DAD is an error.
fn settle_ipv6_addresses<T: RouteTransport>(
    nl: &mut Netlink<T>,
    index: u32,
    ifname: &str,
) -> Result<(), CniError> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let addresses = nl.list_addresses(Some(index))?;
        if let Some(failed) = addresses.iter().find(|a| a.dad_failed) {
            return Err(CniError::internal(format!(
                "IPv6 duplicate address detection failed for {} on {ifname:?}: the address is in use",
                failed.address
            )));
        }
        if !addresses.iter().any(|a| a.tentative) || std::time::Instant::now() > deadline {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::result::{Interface, IpConfig, Route};

    fn result() -> CniResult {
        CniResult {
            interfaces: vec![
                Interface {
                    name: "br0".into(),
                    ..Default::default()
                },
                Interface {
                    name: "eth0".into(),
                    sandbox: Some("/run/netns/x".into()),
                    ..Default::default()
                },
            ],
            ips: vec![
                IpConfig {
                    address: "10.1.0.5/16".parse().unwrap(),
                    gateway: Some("10.1.0.1".parse().unwrap()),
                    interface: Some(1),
                },
                IpConfig {
                    address: "fd00::5/64".parse().unwrap(),
                    gateway: Some("fd00::1".parse().unwrap()),
                    interface: Some(1),
                },
            ],
            routes: vec![
                Route {
                    dst: "0.0.0.0/0".parse().unwrap(),
                    ..Default::default()
                },
                Route {
                    dst: "::/0".parse().unwrap(),
                    ..Default::default()
                },
                Route {
                    dst: "192.168.0.0/16".parse().unwrap(),
                    gw: Some("10.1.0.254".parse().unwrap()),
                    mtu: Some(1400),
                    advmss: Some(1360),
                    table: Some(100),
                    ..Default::default()
                },
            ],
            dns: Default::default(),
        }
    }

    #[test]
    fn routes_default_to_the_family_gateway_and_keep_mtu_and_advmss() {
        let routes = routes_for(&result(), 1, 7);
        assert_eq!(routes[0].gateway, Some("10.1.0.1".parse().unwrap()));
        assert_eq!(routes[1].gateway, Some("fd00::1".parse().unwrap()));
        assert_eq!(routes[2].gateway, Some("10.1.0.254".parse().unwrap()));
        assert_eq!(
            (routes[2].mtu, routes[2].advmss, routes[2].table),
            (Some(1400), Some(1360), Some(100))
        );
        assert!(routes.iter().all(|r| r.oif == Some(7)));
    }

    #[test]
    fn ipv6_sysctls_with_the_dad_choice() {
        let keys = |options| -> Vec<String> {
            ipv6_sysctls("eth0", options)
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        let without_dad = keys(InterfaceOptions { ipv6_dad: false });
        for key in [
            "keep_addr_on_down",
            "ndisc_notify",
            "accept_dad",
            "enhanced_dad",
        ] {
            assert!(without_dad.contains(&format!("net/ipv6/conf/eth0/{key}")));
        }
        let with_dad = keys(InterfaceOptions { ipv6_dad: true });
        assert!(!with_dad.iter().any(|k| k.ends_with("accept_dad")));
    }
}
