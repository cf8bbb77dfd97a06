//! Routes.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::NLM_F_CREATE;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteMetric, RouteProtocol,
    RouteScope, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NlResult, RouteTransport, CHANGE, DUMP};

/// A route to add: the spec's route fields plus the output link.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RouteSpec {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub priority: Option<u32>,
    pub table: Option<u32>,
    pub scope: Option<u8>,
    pub mtu: Option<u32>,
    pub advmss: Option<u32>,
}

/// A route read back from the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteEntry {
    pub dst: IpNet,
    pub gateway: Option<IpAddr>,
    pub oif: Option<u32>,
    pub table: u32,
    pub priority: Option<u32>,
}

fn route_address(ip: IpAddr) -> RouteAddress {
    match ip {
        IpAddr::V4(v4) => RouteAddress::Inet(v4),
        IpAddr::V6(v6) => RouteAddress::Inet6(v6),
    }
}

fn ip_of(address: &RouteAddress) -> Option<IpAddr> {
    match address {
        RouteAddress::Inet(v4) => Some(IpAddr::V4(*v4)),
        RouteAddress::Inet6(v6) => Some(IpAddr::V6(*v6)),
        _ => None,
    }
}

impl RouteSpec {
    fn to_message(&self) -> RouteMessage {
        let mut message = RouteMessage::default();
        let header = &mut message.header;
        header.address_family = if self.dst.addr().is_ipv4() {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        header.destination_prefix_length = self.dst.prefix_len();
        header.protocol = RouteProtocol::Boot;
        header.kind = RouteType::Unicast;
        header.scope = match self.scope {
            Some(scope) => RouteScope::from(scope),
            None => RouteScope::Universe,
        };
        let table = self.table.unwrap_or(RouteHeader::RT_TABLE_MAIN as u32);
        // Tables above 255 only fit the attribute; the header then says "unspec".
        header.table = if table > 255 {
            RouteHeader::RT_TABLE_UNSPEC
        } else {
            table as u8
        };
        let attrs = &mut message.attributes;
        attrs.push(RouteAttribute::Table(table));
        attrs.push(RouteAttribute::Destination(route_address(
            self.dst.network(),
        )));
        if let Some(gw) = self.gateway {
            attrs.push(RouteAttribute::Gateway(route_address(gw)));
        }
        if let Some(oif) = self.oif {
            attrs.push(RouteAttribute::Oif(oif));
        }
        if let Some(priority) = self.priority {
            attrs.push(RouteAttribute::Priority(priority));
        }
        let mut metrics = Vec::new();
        if let Some(mtu) = self.mtu {
            metrics.push(RouteMetric::Mtu(mtu));
        }
        if let Some(advmss) = self.advmss {
            metrics.push(RouteMetric::Advmss(advmss));
        }
        if !metrics.is_empty() {
            attrs.push(RouteAttribute::Metrics(metrics));
        }
        message
    }
}

impl<T: RouteTransport> Netlink<T> {
    /// Adds a route. Without NLM_F_EXCL, as the Go plugins do, so that a second route
    /// to one destination through another gateway is allowed.
    pub fn add_route(&mut self, route: &RouteSpec) -> NlResult<()> {
        self.request(
            RouteNetlinkMessage::NewRoute(route.to_message()),
            CHANGE | NLM_F_CREATE,
            match route.gateway {
                Some(gw) => format!("add route to {} via {gw}", route.dst),
                None => format!("add route to {}", route.dst),
            },
        )
        .map(|_| ())
    }

    pub fn delete_route(&mut self, route: &RouteSpec) -> NlResult<()> {
        self.change(
            RouteNetlinkMessage::DelRoute(route.to_message()),
            format!("delete route to {}", route.dst),
        )
    }

    /// The unicast routes of one family, in every table.
    pub fn list_routes(&mut self, ipv4: bool) -> NlResult<Vec<RouteEntry>> {
        let mut request = RouteMessage::default();
        request.header.address_family = if ipv4 {
            AddressFamily::Inet
        } else {
            AddressFamily::Inet6
        };
        let replies = self.request(
            RouteNetlinkMessage::GetRoute(request),
            DUMP,
            "list routes".to_string(),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewRoute(r) if r.header.kind == RouteType::Unicast => {
                    let mut entry = RouteEntry {
                        dst: IpNet::new(
                            if ipv4 {
                                "0.0.0.0".parse().unwrap()
                            } else {
                                "::".parse().unwrap()
                            },
                            r.header.destination_prefix_length,
                        )
                        .ok()?,
                        gateway: None,
                        oif: None,
                        table: r.header.table as u32,
                        priority: None,
                    };
                    for attr in &r.attributes {
                        match attr {
                            RouteAttribute::Destination(d) => {
                                entry.dst =
                                    IpNet::new(ip_of(d)?, r.header.destination_prefix_length)
                                        .ok()?
                            }
                            RouteAttribute::Gateway(g) => entry.gateway = ip_of(g),
                            RouteAttribute::Oif(o) => entry.oif = Some(*o),
                            RouteAttribute::Table(t) => entry.table = *t,
                            RouteAttribute::Priority(p) => entry.priority = Some(*p),
                            _ => {}
                        }
                    }
                    Some(entry)
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
    fn route_carries_every_spec_field_including_mtu_and_advmss() {
        let mut nl = Netlink::fake();
        nl.add_route(&RouteSpec {
            dst: "192.168.0.0/16".parse().unwrap(),
            gateway: Some("10.1.0.254".parse().unwrap()),
            oif: Some(4),
            priority: Some(100),
            table: Some(1000),
            scope: Some(0),
            mtu: Some(1400),
            advmss: Some(1360),
        })
        .unwrap();
        let RouteNetlinkMessage::NewRoute(m) = &nl.transport.sent[0].message else {
            panic!()
        };
        assert_eq!(m.header.destination_prefix_length, 16);
        assert_eq!(m.header.table, RouteHeader::RT_TABLE_UNSPEC);
        for expected in [
            RouteAttribute::Table(1000),
            RouteAttribute::Gateway(RouteAddress::Inet("10.1.0.254".parse().unwrap())),
            RouteAttribute::Oif(4),
            RouteAttribute::Priority(100),
            RouteAttribute::Metrics(vec![RouteMetric::Mtu(1400), RouteMetric::Advmss(1360)]),
        ] {
            assert!(m.attributes.contains(&expected), "{expected:?} missing");
        }
    }

    #[test]
    fn default_route_uses_the_main_table_and_the_network_address() {
        let mut nl = Netlink::fake();
        nl.add_route(&RouteSpec {
            dst: "fd00::5/0".parse().unwrap(),
            ..Default::default()
        })
        .unwrap();
        let RouteNetlinkMessage::NewRoute(m) = &nl.transport.sent[0].message else {
            panic!()
        };
        assert_eq!(m.header.table, RouteHeader::RT_TABLE_MAIN);
        assert_eq!(m.header.address_family, AddressFamily::Inet6);
        assert!(m
            .attributes
            .contains(&RouteAttribute::Destination(RouteAddress::Inet6(
                "::".parse().unwrap()
            ))));
        assert!(!m
            .attributes
            .iter()
            .any(|a| matches!(a, RouteAttribute::Metrics(_))));
    }
}
