//! Addresses.

use std::net::IpAddr;

use ipnet::IpNet;
use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL};
use netlink_packet_route::address::{AddressAttribute, AddressFlags, AddressMessage, AddressScope};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};

use super::{Netlink, NlResult, RouteTransport, CHANGE, DUMP};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressEntry {
    pub index: u32,
    pub address: IpNet,
    pub scope: AddressScope,
    /// IPv6 duplicate address detection is still running.
    pub tentative: bool,
    /// IPv6 duplicate address detection found the address in use.
    pub dad_failed: bool,
}

fn family(address: &IpNet) -> AddressFamily {
    if address.addr().is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    }
}

fn message(index: u32, address: &IpNet) -> AddressMessage {
    let mut message = AddressMessage::default();
    message.header.family = family(address);
    message.header.prefix_len = address.prefix_len();
    message.header.index = index;
    message
        .attributes
        .push(AddressAttribute::Local(address.addr()));
    message
        .attributes
        .push(AddressAttribute::Address(address.addr()));
    message
}

impl<T: RouteTransport> Netlink<T> {
    /// Adds an address; IPv4 prefixes up to /30 get their broadcast address, as
    /// `ip addr add ... brd +` and the Go netlink library do.
    pub fn add_address(&mut self, index: u32, address: IpNet) -> NlResult<()> {
        let mut msg = message(index, &address);
        if let IpNet::V4(v4) = address {
            if v4.prefix_len() < 31 {
                msg.attributes
                    .push(AddressAttribute::Broadcast(v4.broadcast()));
            }
        }
        self.request(
            RouteNetlinkMessage::NewAddress(msg),
            CHANGE | NLM_F_CREATE | NLM_F_EXCL,
            format!("add address {address} to link #{index}"),
        )
        .map(|_| ())
    }

    pub fn delete_address(&mut self, index: u32, address: IpNet) -> NlResult<()> {
        self.change(
            RouteNetlinkMessage::DelAddress(message(index, &address)),
            format!("delete address {address} from link #{index}"),
        )
    }

    /// Every address of the netns, or of one link.
    pub fn list_addresses(&mut self, index: Option<u32>) -> NlResult<Vec<AddressEntry>> {
        let mut request = AddressMessage::default();
        if let Some(index) = index {
            request.header.index = index;
        }
        let replies = self.request(
            RouteNetlinkMessage::GetAddress(request),
            DUMP,
            "list addresses".to_string(),
        )?;
        Ok(replies
            .into_iter()
            .filter_map(|m| match m {
                RouteNetlinkMessage::NewAddress(a) => {
                    let addr: Option<IpAddr> = a
                        .attributes
                        .iter()
                        .find_map(|attr| match attr {
                            AddressAttribute::Local(ip) => Some(*ip),
                            _ => None,
                        })
                        .or_else(|| {
                            a.attributes.iter().find_map(|attr| match attr {
                                AddressAttribute::Address(ip) => Some(*ip),
                                _ => None,
                            })
                        });
                    let address = IpNet::new(addr?, a.header.prefix_len).ok()?;
                    let flags = a
                        .attributes
                        .iter()
                        .find_map(|attr| match attr {
                            AddressAttribute::Flags(f) => Some(*f),
                            _ => None,
                        })
                        .unwrap_or_else(|| {
                            AddressFlags::from_bits_retain(u32::from(a.header.flags.bits()))
                        });
                    Some(AddressEntry {
                        index: a.header.index,
                        address,
                        scope: a.header.scope,
                        tentative: flags.contains(AddressFlags::Tentative),
                        dad_failed: flags.contains(AddressFlags::Dadfailed),
                    })
                }
                _ => None,
            })
            .filter(|entry| index.is_none_or(|i| entry.index == i))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_address_gets_local_address_and_broadcast() {
        let mut nl = Netlink::fake();
        nl.add_address(3, "10.1.0.5/16".parse().unwrap()).unwrap();
        let RouteNetlinkMessage::NewAddress(m) = &nl.transport.sent[0].message else {
            panic!()
        };
        assert_eq!(m.header.prefix_len, 16);
        assert_eq!(m.header.index, 3);
        assert_eq!(m.header.family, AddressFamily::Inet);
        assert!(m.attributes.contains(&AddressAttribute::Broadcast(
            "10.1.255.255".parse().unwrap()
        )));
        assert!(m
            .attributes
            .contains(&AddressAttribute::Local("10.1.0.5".parse().unwrap())));
    }

    #[test]
    fn ipv6_and_point_to_point_have_no_broadcast() {
        let mut nl = Netlink::fake();
        nl.add_address(3, "fd00::5/64".parse().unwrap()).unwrap();
        nl.add_address(3, "10.0.0.1/31".parse().unwrap()).unwrap();
        for super::super::Operation { message: m, .. } in &nl.transport.sent {
            let RouteNetlinkMessage::NewAddress(m) = m else {
                panic!()
            };
            assert!(!m
                .attributes
                .iter()
                .any(|a| matches!(a, AddressAttribute::Broadcast(_))));
        }
    }
}
