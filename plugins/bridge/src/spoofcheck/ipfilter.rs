//! ipspoofchk: the rules that let a port speak only with the addresses IPAM gave
//! its attachment. They follow the jump into `-mac` in the attachment's
//! `cni-br-iface-<ref>` chain (see `rules`), so the frame's source MAC is already
//! the port's when they run, and every DEL that removes macspoofchk (ours or the
//! Go plugin's) removes them with that chain.
//!
//! Each rule either drops or returns (the frame goes on to the bridge); the first
//! that matches decides. What passes, by ethertype (`meta protocol`: the frame's
//! type after the kernel took off any 802.1Q tag, so trunk ports are filtered by
//! the same rules):
//!
//! - ARP: Ethernet/IPv4 ARP only, a request or a reply, whose sender MAC is the
//!   port's and whose sender IP is one of the attachment's IPv4 addresses, or
//!   0.0.0.0 in an RFC 5227 probe for one of them;
//! - IPv4: from one of the attachment's IPv4 addresses, or a DHCP client's
//!   broadcast from 0.0.0.0 (UDP 68 to 67 in a broadcast frame, not a fragment,
//!   a request with the port's MAC as its chaddr);
//! - IPv6: from one of the attachment's IPv6 addresses or the port's EUI-64
//!   link-local address, with a layer-4 protocol the kernel can find, or from
//!   `::` an RS, an NS (DAD) or an MLD report. Router advertisements
//!   and redirects never (a router's). Router and neighbour solicitations and
//!   neighbour advertisements must be plain ICMPv6 (no extension header) with at
//!   most one option; an advertisement may name only those addresses as its
//!   target and the port's MAC as its link-layer option, a solicitation only the
//!   port's MAC as its source option, and one for DAD only those addresses as its
//!   target;
//! - RARP: passes (its source MAC was checked), as libvirt's `clean-traffic`
//!   lets QEMU announce a migrated VM;
//! - anything else (other ethertypes, QinQ, 802.3 frames such as STP): dropped.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libcni::mac::MacAddr;
use libcni::netlink::nftables::{
    CmpOp, Expr, PayloadBase, Verdict, NFT_META_L4PROTO, NFT_META_PROTOCOL,
};
use libcni::spec::result::CniResult;
use libcni::CniError;

const ETH_P_IP: [u8; 2] = [0x08, 0x00];
const ETH_P_ARP: [u8; 2] = [0x08, 0x06];
const ETH_P_RARP: [u8; 2] = [0x80, 0x35];
const ETH_P_IPV6: [u8; 2] = [0x86, 0xdd];
const IPPROTO_UDP: u8 = 17;
/// Where a DHCP message's op and client hardware address (chaddr) are, from the
/// UDP header, and the op of a client's message.
const DHCP_OP: u32 = 8;
const DHCP_CHADDR: u32 = 8 + 28;
const BOOTREQUEST: u8 = 1;
const IPPROTO_ICMPV6: u8 = 58;
/// IANA's reserved protocol number: `meta l4proto != 255` matches any packet
/// whose layer-4 protocol the kernel found.
const IPPROTO_RESERVED: u8 = 255;
const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;
const ND_NEIGHBOR_SOLICIT: u8 = 135;
const ND_NEIGHBOR_ADVERT: u8 = 136;
const ND_REDIRECT: u8 = 137;
/// The ICMPv6 a node sends from `::`: an RS, an NS (DAD) and MLD v1 and v2
/// reports.
const FROM_UNSPECIFIED: [u8; 4] = [ND_ROUTER_SOLICIT, ND_NEIGHBOR_SOLICIT, 131, 143];
/// An NS or NA without options, and with one 8-byte option (ICMPv6 length).
const ND_BARE_LEN: u16 = 24;
const ND_ONE_OPTION_LEN: u16 = 32;
/// The same for an RS, whose header has no target.
const RS_BARE_LEN: u16 = 8;
const RS_ONE_OPTION_LEN: u16 = 16;
const ND_OPT_SOURCE_LINKADDR: u8 = 1;
const ND_OPT_TARGET_LINKADDR: u8 = 2;

/// How many addresses of one family the filter takes: with 0.0.0.0 or the
/// link-local address, 32 compares of two expressions each in one rule, well
/// within the kernel's 128 expressions per rule.
pub const MAX_ADDRESSES_PER_FAMILY: usize = 31;

/// The addresses one attachment may speak with, and its port's MAC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpFilter {
    mac: MacAddr,
    v4: Vec<Ipv4Addr>,
    v6: Vec<Ipv6Addr>,
}

impl IpFilter {
    /// The filter for the addresses of `result` (ADD's, or CHECK's prevResult).
    /// None of them: code 7, as for a layer-2 config, since there is nothing to
    /// let through.
    pub fn of(mac: MacAddr, result: &CniResult) -> Result<IpFilter, CniError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for ip in &result.ips {
            match ip.address.addr() {
                IpAddr::V4(a) if !v4.contains(&a) => v4.push(a),
                IpAddr::V6(a) if !v6.contains(&a) => v6.push(a),
                _ => {}
            }
        }
        if v4.is_empty() && v6.is_empty() {
            return Err(CniError::invalid_config(
                "ipspoofchk: IPAM gave this attachment no address, so the filter would let nothing through",
            ));
        }
        if v4.len().max(v6.len()) > MAX_ADDRESSES_PER_FAMILY {
            return Err(CniError::invalid_config(format!(
                "ipspoofchk: at most {MAX_ADDRESSES_PER_FAMILY} addresses of one family, IPAM gave {} IPv4 and {} IPv6",
                v4.len(),
                v6.len()
            )));
        }
        Ok(IpFilter { mac, v4, v6 })
    }

    /// The IPv6 addresses an NA may claim and a packet may come from: the
    /// attachment's and the port's link-local address.
    fn own_v6(&self) -> Vec<Ipv6Addr> {
        let mut own = self.v6.clone();
        own.push(self.mac.ipv6_link_local());
        own
    }

    /// The rules, in order, each ending in its verdict.
    pub fn rules(&self) -> Vec<Vec<Expr>> {
        let mut rules = self.arp_rules();
        rules.extend(self.ipv4_rules());
        rules.extend(self.ipv6_rules());
        rules.push(rule([proto(ETH_P_RARP)], Verdict::Return));
        rules.push(vec![Expr::Verdict(Verdict::Drop)]);
        rules
    }

    /// What a frame may claim is allowed by rules that match it whole (a field the
    /// kernel cannot load, in a truncated frame, makes a rule not match): the last
    /// rule of each type drops what none of them let through.
    fn arp_rules(&self) -> Vec<Vec<Expr>> {
        let arp = || proto(ETH_P_ARP);
        // Ethernet/IPv4 ARP only: htype 1, ptype IPv4, hlen 6, plen 4, one rule
        // each (one compare of all six bytes would list as four `!=` that nft
        // reads back as "all differ"), and a request or a reply.
        let header: [(u32, &[u8]); 4] = [(0, &[0, 1]), (2, &ETH_P_IP), (4, &[6]), (5, &[4])];
        let mut rules: Vec<Vec<Expr>> = header
            .into_iter()
            .map(|(offset, value)| rule([arp(), network(offset, CmpOp::Neq, value)], Verdict::Drop))
            .collect();
        rules.push(rule(
            [
                arp(),
                network(6, CmpOp::Neq, &[0, 1]),
                network(6, CmpOp::Neq, &[0, 2]),
            ],
            Verdict::Drop,
        ));
        let sender = |address: &Ipv4Addr| {
            [
                arp(),
                network(8, CmpOp::Eq, &self.mac.octets()),
                network(14, CmpOp::Eq, &address.octets()),
            ]
        };
        for address in &self.v4 {
            rules.push(rule(sender(address), Verdict::Return));
        }
        // An RFC 5227 probe (sender 0.0.0.0) only for its own addresses: one for
        // another's would make that pod's conflict detection fail.
        for address in &self.v4 {
            let [a, b, c] = sender(&Ipv4Addr::UNSPECIFIED);
            let target = network(24, CmpOp::Eq, &address.octets());
            rules.push(rule([a, b, c, target], Verdict::Return));
        }
        rules.push(rule([arp()], Verdict::Drop));
        rules
    }

    fn ipv4_rules(&self) -> Vec<Vec<Expr>> {
        let ip = || proto(ETH_P_IP);
        // A DHCP client without an address broadcasts from 0.0.0.0 (libvirt's
        // allow-dhcp), in one broadcast frame; renewals come from its address.
        let mut rules = vec![rule(
            [
                ip(),
                Expr::field_cmp(PayloadBase::Link, 0, CmpOp::Eq, &[0xff; 6]),
                network(12, CmpOp::Eq, &Ipv4Addr::UNSPECIFIED.octets()),
                network(16, CmpOp::Eq, &Ipv4Addr::BROADCAST.octets()),
                unfragmented(),
                l4proto(IPPROTO_UDP),
                transport(0, CmpOp::Eq, &68u16.to_be_bytes()),
                transport(2, CmpOp::Eq, &67u16.to_be_bytes()),
                // A request (BOOTREQUEST) with the port's own hardware address
                // (chaddr): one with another's is no client's of its own. The
                // options (a client identifier) are beyond what rules can read.
                transport(DHCP_OP, CmpOp::Eq, &[BOOTREQUEST]),
                transport(DHCP_CHADDR, CmpOp::Eq, &self.mac.octets()),
            ],
            Verdict::Return,
        )];
        for address in &self.v4 {
            rules.push(rule(
                [ip(), network(12, CmpOp::Eq, &address.octets())],
                Verdict::Return,
            ));
        }
        rules.push(rule([ip()], Verdict::Drop));
        rules
    }

    fn ipv6_rules(&self) -> Vec<Vec<Expr>> {
        let ip6 = || proto(ETH_P_IPV6);
        let icmpv6 = |kind: u8| {
            [
                ip6(),
                l4proto(IPPROTO_ICMPV6),
                transport(0, CmpOp::Eq, &[kind]),
            ]
        };
        let payload_len = |op, len: u16| network(4, op, &len.to_be_bytes());
        let unspecified = Ipv6Addr::UNSPECIFIED.octets();
        let own = self.own_v6();
        let targets = |kind| {
            let mut parts: Vec<Vec<Expr>> = icmpv6(kind).into();
            for address in &own {
                parts.push(transport(8, CmpOp::Neq, &address.octets()));
            }
            parts
        };
        // Only routers send router advertisements and redirects, and a port whose
        // sources are checked is no router (what it forwarded would be dropped): a
        // rogue RA makes it the neighbours' router, whose redirect then claims
        // another's link-local address for its MAC.
        let mut rules: Vec<Vec<Expr>> = [ND_ROUTER_ADVERT, ND_REDIRECT]
            .into_iter()
            .map(|kind| rule(icmpv6(kind), Verdict::Drop))
            .collect();
        for (kind, bare, one_option) in [
            (ND_ROUTER_SOLICIT, RS_BARE_LEN, RS_ONE_OPTION_LEN),
            (ND_NEIGHBOR_SOLICIT, ND_BARE_LEN, ND_ONE_OPTION_LEN),
            (ND_NEIGHBOR_ADVERT, ND_BARE_LEN, ND_ONE_OPTION_LEN),
        ] {
            // An extension header before the ICMPv6 header, or more than one option,
            // would hide what a receiver reads from the checks below.
            let [a, b, c] = icmpv6(kind);
            rules.push(rule(
                [a, b, c, network(6, CmpOp::Neq, &[IPPROTO_ICMPV6])],
                Verdict::Drop,
            ));
            let [a, b, c] = icmpv6(kind);
            rules.push(rule(
                [
                    a,
                    b,
                    c,
                    payload_len(CmpOp::Neq, bare),
                    payload_len(CmpOp::Neq, one_option),
                ],
                Verdict::Drop,
            ));
        }
        // An RS's source link-layer option, as an NS's, names the sender's MAC.
        let [a, b, c] = icmpv6(ND_ROUTER_SOLICIT);
        rules.push(rule(
            [
                a,
                b,
                c,
                payload_len(CmpOp::Eq, RS_ONE_OPTION_LEN),
                transport(8, CmpOp::Eq, &[ND_OPT_SOURCE_LINKADDR, 1]),
                transport(10, CmpOp::Neq, &self.mac.octets()),
            ],
            Verdict::Drop,
        ));
        let mac = self.mac.octets();
        let mut target_option = vec![ND_OPT_TARGET_LINKADDR, 1];
        target_option.extend(mac);
        let [a, b, c] = icmpv6(ND_NEIGHBOR_ADVERT);
        rules.push(rule(
            [
                a,
                b,
                c,
                payload_len(CmpOp::Eq, ND_ONE_OPTION_LEN),
                transport(24, CmpOp::Neq, &target_option),
            ],
            Verdict::Drop,
        ));
        let [a, b, c] = icmpv6(ND_NEIGHBOR_SOLICIT);
        rules.push(rule(
            [
                a,
                b,
                c,
                payload_len(CmpOp::Eq, ND_ONE_OPTION_LEN),
                transport(24, CmpOp::Eq, &[ND_OPT_SOURCE_LINKADDR, 1]),
                transport(26, CmpOp::Neq, &mac),
            ],
            Verdict::Drop,
        ));
        rules.push(rule(targets(ND_NEIGHBOR_ADVERT), Verdict::Drop));
        let mut dad = targets(ND_NEIGHBOR_SOLICIT);
        dad.insert(1, network(8, CmpOp::Eq, &unspecified));
        rules.push(rule(dad, Verdict::Drop));
        // From `::` only what a node sends before it has an address: DAD's NS
        // (checked above), an RS, and MLD reports (RFC 3590).
        let mut not_before_an_address = vec![
            ip6(),
            network(8, CmpOp::Eq, &unspecified),
            l4proto(IPPROTO_ICMPV6),
        ];
        for kind in FROM_UNSPECIFIED {
            not_before_an_address.push(transport(0, CmpOp::Neq, &[kind]));
        }
        rules.push(rule(not_before_an_address, Verdict::Drop));
        rules.push(rule(
            [
                ip6(),
                network(8, CmpOp::Eq, &unspecified),
                l4proto(IPPROTO_ICMPV6),
            ],
            Verdict::Return,
        ));
        // Only a packet whose headers the kernel can follow to its layer-4
        // protocol: a later fragment behind an extension header has none, and is
        // how ICMPv6 (an RA, an NA) hides from the rules above (RFC 7113).
        for address in &own {
            rules.push(rule(
                [
                    ip6(),
                    network(8, CmpOp::Eq, &address.octets()),
                    Expr::meta_cmp(NFT_META_L4PROTO, CmpOp::Neq, &[IPPROTO_RESERVED]),
                ],
                Verdict::Return,
            ));
        }
        rules.push(rule([ip6()], Verdict::Drop));
        rules
    }
}

/// One rule: its matches, then its verdict.
fn rule(matches: impl IntoIterator<Item = Vec<Expr>>, verdict: Verdict) -> Vec<Expr> {
    let mut exprs: Vec<Expr> = matches.into_iter().flatten().collect();
    exprs.push(Expr::Verdict(verdict));
    exprs
}

fn proto(ethertype: [u8; 2]) -> Vec<Expr> {
    Expr::meta_cmp(NFT_META_PROTOCOL, CmpOp::Eq, &ethertype)
}

/// `ip frag-off & 0x3fff == 0`: a whole packet, not a fragment (whose transport
/// header, or whose rest, is not what the rule read).
fn unfragmented() -> Vec<Expr> {
    vec![
        Expr::Payload {
            base: PayloadBase::Network,
            offset: 6,
            len: 2,
        },
        Expr::Bitwise {
            mask: vec![0x3f, 0xff],
            xor: vec![0, 0],
        },
        Expr::Cmp {
            op: CmpOp::Eq,
            data: vec![0, 0],
        },
    ]
}

fn l4proto(protocol: u8) -> Vec<Expr> {
    Expr::meta_cmp(NFT_META_L4PROTO, CmpOp::Eq, &[protocol])
}

fn network(offset: u32, op: CmpOp, data: &[u8]) -> Vec<Expr> {
    Expr::field_cmp(PayloadBase::Network, offset, op, data)
}

fn transport(offset: u32, op: CmpOp, data: &[u8]) -> Vec<Expr> {
    Expr::field_cmp(PayloadBase::Transport, offset, op, data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcni::spec::result::IpConfig;

    fn result(addresses: &[&str]) -> CniResult {
        CniResult {
            ips: addresses
                .iter()
                .map(|a| IpConfig {
                    address: a.parse().unwrap(),
                    gateway: None,
                    interface: Some(2),
                })
                .collect(),
            ..Default::default()
        }
    }

    const MAC: MacAddr = MacAddr([0x52, 0x54, 0, 0x12, 0x34, 0x56]);

    #[test]
    fn no_address_is_an_invalid_config() {
        let e = IpFilter::of(MAC, &result(&[])).unwrap_err();
        assert_eq!(e.code, libcni::ErrorCode::InvalidNetworkConfig);
        assert!(e.msg.contains("no address"), "{}", e.msg);
    }

    #[test]
    fn too_many_addresses_are_an_invalid_config() {
        let many: Vec<String> = (0..=MAX_ADDRESSES_PER_FAMILY)
            .map(|i| format!("10.0.0.{}/24", i + 1))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        let e = IpFilter::of(MAC, &result(&many)).unwrap_err();
        assert_eq!(e.code, libcni::ErrorCode::InvalidNetworkConfig);
    }

    #[test]
    fn every_rule_ends_in_a_verdict_and_fits_the_kernel() {
        let most: Vec<String> = (1..=MAX_ADDRESSES_PER_FAMILY)
            .flat_map(|i| [format!("10.0.0.{i}/24"), format!("fd00::{i:x}/64")])
            .collect();
        let most: Vec<&str> = most.iter().map(String::as_str).collect();
        let filter = IpFilter::of(MAC, &result(&most)).unwrap();
        let rules = filter.rules();
        assert_eq!(rules.last().unwrap(), &[Expr::Verdict(Verdict::Drop)]);
        for rule in &rules {
            assert!(matches!(rule.last(), Some(Expr::Verdict(_))), "{rule:?}");
            assert!(rule.len() <= 128);
        }
    }

    #[test]
    fn each_address_appears_where_it_is_allowed() {
        let filter = IpFilter::of(MAC, &result(&["10.1.0.2/24", "fd00::2/64"])).unwrap();
        let rules = filter.rules();
        let mentions = |bytes: &[u8]| {
            rules
                .iter()
                .filter(|r| {
                    r.iter()
                        .any(|e| matches!(e, Expr::Cmp { data, .. } if data == bytes))
                })
                .count()
        };
        // ARP sender, ARP probe target and IPv4 source.
        assert_eq!(mentions(&[10, 1, 0, 2]), 3);
        // NA target, DAD target and IPv6 source, for both own IPv6 addresses.
        let v6: Ipv6Addr = "fd00::2".parse().unwrap();
        assert_eq!(mentions(&v6.octets()), 3);
        assert_eq!(mentions(&MAC.ipv6_link_local().octets()), 3);
    }
}
