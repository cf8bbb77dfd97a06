//! Gateways: which addresses the bridge (or the VLAN's gateway interface) carries and
//! which default routes the container gets (as Go's `calcGateways`, a pure function
//! of the IPAM result and the config), and putting those addresses on the host.

use std::net::IpAddr;

use ipnet::IpNet;
use libcni::netlink::{Link, LinkId, Netlink};
use libcni::spec::result::{CniResult, IpConfig, Route};
use libcni::CniError;

/// What ADD does with an IPAM result.
#[derive(Debug, Default, PartialEq)]
pub struct GatewayPlan {
    /// The IPAM addresses, on the container interface, with a gateway filled in
    /// (the first address of the subnet) when the bridge is a gateway.
    pub ips: Vec<IpConfig>,
    /// IPAM's routes, and a default route per family when `isDefaultGateway`.
    pub routes: Vec<Route>,
    /// The gateway addresses (with the subnet's prefix) the host side must carry.
    pub gateways: Vec<IpNet>,
}

/// Plans the gateways for `ipam` (see [`GatewayPlan`]).
pub fn plan(
    ipam: &CniResult,
    container_index: usize,
    is_gateway: bool,
    is_default_gateway: bool,
) -> GatewayPlan {
    let mut plan = GatewayPlan {
        routes: ipam.routes.clone(),
        ..Default::default()
    };
    let mut default_route = [false, false]; // v4, v6
    for ip in &ipam.ips {
        let mut ip = ip.clone();
        ip.interface = Some(container_index);
        if ip.gateway.is_none() && is_gateway {
            ip.gateway = Some(match ip.address.network() {
                IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) + 1).into()),
                IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) + 1).into()),
            });
        }
        let family = usize::from(!ip.is_ipv4());
        if is_default_gateway && !default_route[family] {
            let zero: IpNet = if ip.is_ipv4() {
                "0.0.0.0/0".parse().expect("literal")
            } else {
                "::/0".parse().expect("literal")
            };
            if !plan.routes.iter().any(|r| r.dst == zero && r.gw.is_some()) {
                plan.routes.push(Route {
                    dst: zero,
                    gw: ip.gateway,
                    ..Default::default()
                });
            }
            default_route[family] = true;
        }
        if is_gateway {
            if let Some(gw) = ip.gateway {
                plan.gateways
                    .push(IpNet::new(gw, ip.address.prefix_len()).expect("prefix of an address"));
            }
        }
        plan.ips.push(ip);
    }
    plan
}

/// Puts `gateway` (address with the container's prefix) on the bridge or the VLAN
/// gateway interface. An address already there is fine; a different IPv4 address
/// (or an IPv6 one in the same subnet) is an error unless `forceAddress`.
pub fn ensure_address(
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
    if let Some(mac) = current.mac {
        if !mac.is_zero() {
            nl.change_link(link.index).mac(mac).apply()?;
        }
    }
    Ok(())
}

pub fn enable_forwarding(v4: bool) {
    let key = if v4 {
        "net/ipv4/ip_forward"
    } else {
        "net/ipv6/conf/all/forwarding"
    };
    if libcni::host::sysctl::read(key)
        .map(|v| v != "1")
        .unwrap_or(true)
    {
        crate::host_sysctl(key, "1");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipam(json: &str) -> CniResult {
        CniResult::from_value(
            &serde_json::from_str(json).unwrap(),
            libcni::SpecVersion::V1_0_0,
        )
        .unwrap()
    }

    #[test]
    fn a_gateway_bridge_takes_the_first_address_of_each_subnet() {
        let result = ipam(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.7/24"},{"address":"fd00::5/64"}]}"#,
        );
        let plan = plan(&result, 2, true, false);
        assert_eq!(
            plan.gateways,
            vec![
                "10.1.2.1/24".parse::<IpNet>().unwrap(),
                "fd00::1/64".parse().unwrap()
            ]
        );
        assert!(plan.ips.iter().all(|ip| ip.interface == Some(2)));
        assert_eq!(plan.ips[0].gateway, Some("10.1.2.1".parse().unwrap()));
        assert!(plan.routes.is_empty());
    }

    #[test]
    fn an_ipam_gateway_is_kept_and_not_a_gateway_adds_nothing() {
        let result = ipam(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.7/24","gateway":"10.1.2.254"}]}"#,
        );
        let plan_gw = plan(&result, 2, true, false);
        assert_eq!(
            plan_gw.gateways,
            vec!["10.1.2.254/24".parse::<IpNet>().unwrap()]
        );
        let plain = plan(&result, 2, false, false);
        assert!(plain.gateways.is_empty());
        assert_eq!(plain.ips[0].gateway, Some("10.1.2.254".parse().unwrap()));
    }

    #[test]
    fn one_default_route_per_family_unless_ipam_has_one() {
        let result = ipam(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.7/24"},{"address":"10.9.0.3/16"},{"address":"fd00::5/64"}]}"#,
        );
        let plan1 = plan(&result, 2, true, true);
        let defaults: Vec<String> = plan1
            .routes
            .iter()
            .map(|r| format!("{} via {}", r.dst, r.gw.unwrap()))
            .collect();
        assert_eq!(defaults, vec!["0.0.0.0/0 via 10.1.2.1", "::/0 via fd00::1"]);
        let with_default = ipam(
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.1.2.7/24"}],"routes":[{"dst":"0.0.0.0/0","gw":"10.1.2.9"}]}"#,
        );
        let plan2 = plan(&with_default, 2, true, true);
        assert_eq!(plan2.routes.len(), 1);
        assert_eq!(plan2.routes[0].gw, Some("10.1.2.9".parse().unwrap()));
    }
}
