//! The nf_tables expressions the suite writes and reads, in a model of our own
//! (what a rule does). Rules are read through netlink-packet-netfilter's
//! attributes and written by `wire`, whose bytes the tests compare with this
//! module's conversion to those attributes.
//! Each constructor emits exactly the bytecode `nft` emits for the same rule text, so
//! that `nft list ruleset` prints our rules as it prints rules it wrote itself.

use std::net::IpAddr;

use crate::mac::MacAddr;

use ipnet::IpNet;
#[cfg(test)]
use netlink_packet_core::DefaultNla;
use netlink_packet_netfilter::nftables::{
    Bitwise, Cmp, DataAttribute, ExpressionAttribute, Expressions, Immediate, ListAttribute, Meta,
    Operator, Payload, Verdict as NlVerdict, VerdictAttribute,
};
#[cfg(test)]
use netlink_packet_netfilter::nftables::{MetaKey, Register};

/// Where a payload load starts (NFT_PAYLOAD_*_HEADER).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PayloadBase {
    Link,
    Network,
    Transport,
}

impl PayloadBase {
    pub(super) fn value(self) -> u32 {
        match self {
            PayloadBase::Link => 0,
            PayloadBase::Network => 1,
            PayloadBase::Transport => 2,
        }
    }

    fn from_value(value: u32) -> Option<PayloadBase> {
        match value {
            0 => Some(PayloadBase::Link),
            1 => Some(PayloadBase::Network),
            2 => Some(PayloadBase::Transport),
            _ => None,
        }
    }
}

/// A rule's verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Return,
    Jump(String),
    Goto(String),
}

/// A comparison's operator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Neq,
}

/// One expression, loading into or reading from register 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Expr {
    /// `meta load <key> => reg 1`, by the kernel's NFT_META_* number.
    Meta(u32),
    /// `payload load <len>b @ <base> + <offset> => reg 1`.
    Payload {
        base: PayloadBase,
        offset: u32,
        len: u32,
    },
    /// `cmp <op> reg 1 <data>`.
    Cmp { op: CmpOp, data: Vec<u8> },
    /// `bitwise reg 1 = (reg 1 & mask) ^ xor`.
    Bitwise { mask: Vec<u8>, xor: Vec<u8> },
    /// `immediate reg 0 <verdict>`.
    Verdict(Verdict),
    /// `masq`.
    Masquerade,
    /// An expression this model does not know (by name), kept so that a listed
    /// rule still shows where it is.
    Other(String),
}

/// The NFT_META_* keys the suite loads.
pub const NFT_META_PROTOCOL: u32 = 1;
const NFT_META_IIFNAME: u32 = 6;
const NFT_META_NFPROTO: u32 = 15;
pub const NFT_META_L4PROTO: u32 = 16;
const NFPROTO_IPV4: u8 = 2;
const NFPROTO_IPV6: u8 = 10;
const IFNAMSIZ: usize = 16;

impl Expr {
    /// `iifname "<name>"`: the name NUL-padded to IFNAMSIZ, as nft compares it.
    pub fn iifname_is(name: &str) -> Vec<Expr> {
        let mut data = name.as_bytes().to_vec();
        data.resize(IFNAMSIZ.max(data.len() + 1), 0);
        vec![
            Expr::Meta(NFT_META_IIFNAME),
            Expr::Cmp {
                op: CmpOp::Eq,
                data,
            },
        ]
    }

    /// `ether saddr <mac>` (bridge family: the link header is there to read).
    pub fn ether_saddr_is(mac: MacAddr) -> Vec<Expr> {
        vec![
            Expr::Payload {
                base: PayloadBase::Link,
                offset: 6,
                len: 6,
            },
            Expr::Cmp {
                op: CmpOp::Eq,
                data: mac.octets().to_vec(),
            },
        ]
    }

    /// `meta <key> <op> <data>`: e.g. `meta protocol arp` (the frame's ethertype,
    /// after the kernel took any VLAN tag off) or `meta l4proto udp`.
    pub fn meta_cmp(key: u32, op: CmpOp, data: &[u8]) -> Vec<Expr> {
        vec![
            Expr::Meta(key),
            Expr::Cmp {
                op,
                data: data.to_vec(),
            },
        ]
    }

    /// `<field> <op> <data>` for the header field of `data.len()` bytes at `offset`
    /// from `base`, e.g. `arp saddr ip != 10.0.0.2` or `icmpv6 type 136`.
    pub fn field_cmp(base: PayloadBase, offset: u32, op: CmpOp, data: &[u8]) -> Vec<Expr> {
        vec![
            Expr::Payload {
                base,
                offset,
                len: data.len() as u32,
            },
            Expr::Cmp {
                op,
                data: data.to_vec(),
            },
        ]
    }

    /// The `meta nfproto` guard nft puts before an `ip`/`ip6` match in the inet family.
    pub fn nfproto_is(v4: bool) -> Vec<Expr> {
        vec![
            Expr::Meta(NFT_META_NFPROTO),
            Expr::Cmp {
                op: CmpOp::Eq,
                data: vec![if v4 { NFPROTO_IPV4 } else { NFPROTO_IPV6 }],
            },
        ]
    }

    /// `ip saddr <addr>` / `ip6 saddr <addr>` (without the nfproto guard).
    pub fn saddr_is(addr: IpAddr) -> Vec<Expr> {
        let (offset, bytes) = match addr {
            IpAddr::V4(a) => (12, a.octets().to_vec()),
            IpAddr::V6(a) => (8, a.octets().to_vec()),
        };
        vec![
            Expr::Payload {
                base: PayloadBase::Network,
                offset,
                len: bytes.len() as u32,
            },
            Expr::Cmp {
                op: CmpOp::Eq,
                data: bytes,
            },
        ]
    }

    /// `ip daddr [!=] <subnet>` / `ip6 daddr ...`, as nft encodes a prefix: a
    /// prefix that ends on a byte boundary loads just those bytes; any other loads
    /// the whole address and masks it.
    pub fn daddr_in(subnet: IpNet, op: CmpOp) -> Vec<Expr> {
        let (offset, network) = match subnet.network() {
            IpAddr::V4(a) => (16, a.octets().to_vec()),
            IpAddr::V6(a) => (24, a.octets().to_vec()),
        };
        let prefix = subnet.prefix_len() as usize;
        let payload = |len: usize| Expr::Payload {
            base: PayloadBase::Network,
            offset,
            len: len as u32,
        };
        if prefix % 8 == 0 {
            let len = prefix / 8;
            return vec![
                payload(len),
                Expr::Cmp {
                    op,
                    data: network[..len].to_vec(),
                },
            ];
        }
        let mask: Vec<u8> = (0..network.len())
            .map(|i| {
                let bits = prefix.saturating_sub(i * 8).min(8);
                (0xffu16 << (8 - bits)) as u8
            })
            .collect();
        vec![
            payload(network.len()),
            Expr::Bitwise {
                xor: vec![0; mask.len()],
                mask,
            },
            Expr::Cmp { op, data: network },
        ]
    }

    #[cfg(test)]
    fn to_netlink(&self) -> ListAttribute<ExpressionAttribute> {
        let value = |bytes: &[u8]| DataAttribute::Value(bytes.to_vec());
        let expressions = match self {
            Expr::Meta(key) => Expressions::Meta(vec![
                Meta::DestinationRegister(Register::Reg1),
                Meta::Key(MetaKey::from(*key)),
            ]),
            Expr::Payload { base, offset, len } => Expressions::Payload(vec![
                Payload::DestinationRegister(Register::Reg1),
                Payload::Base(base.value()),
                Payload::Offset(*offset),
                Payload::Len(*len),
            ]),
            Expr::Cmp { op, data } => Expressions::Cmp(vec![
                Cmp::SourceRegister(Register::Reg1),
                Cmp::Op(match op {
                    CmpOp::Eq => Operator::Equal,
                    CmpOp::Neq => Operator::NotEqual,
                }),
                Cmp::Data(value(data)),
            ]),
            Expr::Bitwise { mask, xor } => Expressions::Bitwise(vec![
                Bitwise::SourceRegister(Register::Reg1),
                Bitwise::DestinationRegister(Register::Reg1),
                Bitwise::Length(mask.len() as u32),
                Bitwise::Mask(value(mask)),
                Bitwise::Xor(value(xor)),
            ]),
            Expr::Verdict(verdict) => {
                let (code, chain) = match verdict {
                    Verdict::Accept => (NlVerdict::Other(1), None),
                    Verdict::Drop => (NlVerdict::Other(0), None),
                    Verdict::Return => (NlVerdict::Return, None),
                    Verdict::Jump(chain) => (NlVerdict::Jump, Some(chain)),
                    Verdict::Goto(chain) => (NlVerdict::Goto, Some(chain)),
                };
                let mut attrs = vec![VerdictAttribute::Code(code)];
                attrs.extend(chain.map(|c| VerdictAttribute::Chain(c.clone())));
                Expressions::Immediate(vec![
                    Immediate::DestinationRegister(Register::Verdict),
                    Immediate::Data(DataAttribute::Verdict(attrs)),
                ])
            }
            Expr::Masquerade => Expressions::Other {
                expression_type: "masq".to_string(),
                attributes: Vec::<DefaultNla>::new(),
            },
            Expr::Other(name) => Expressions::Other {
                expression_type: name.clone(),
                attributes: Vec::new(),
            },
        };
        expressions.into()
    }

    fn from_netlink(element: &ListAttribute<ExpressionAttribute>) -> Expr {
        let ListAttribute::Element(attrs) = element else {
            return Expr::Other(String::new());
        };
        let name = attrs.iter().find_map(|a| match a {
            ExpressionAttribute::Name(n) => Some(n.clone()),
            _ => None,
        });
        let data = attrs.iter().find_map(|a| match a {
            ExpressionAttribute::Data(d) => Some(d),
            _ => None,
        });
        let unknown = || Expr::Other(name.clone().unwrap_or_default());
        let value = |d: &DataAttribute| match d {
            DataAttribute::Value(v) => v.clone(),
            _ => Vec::new(),
        };
        match data {
            Some(Expressions::Meta(items)) => items
                .iter()
                .find_map(|m| match m {
                    Meta::Key(key) => Some(Expr::Meta(u32::from(*key))),
                    _ => None,
                })
                .unwrap_or_else(unknown),
            Some(Expressions::Payload(items)) => {
                let (mut base, mut offset, mut len) = (None, 0, 0);
                for item in items {
                    match item {
                        Payload::Base(b) => base = PayloadBase::from_value(*b),
                        Payload::Offset(o) => offset = *o,
                        Payload::Len(l) => len = *l,
                        _ => {}
                    }
                }
                base.map_or_else(unknown, |base| Expr::Payload { base, offset, len })
            }
            Some(Expressions::Cmp(items)) => {
                let (mut op, mut data) = (None, Vec::new());
                for item in items {
                    match item {
                        Cmp::Op(Operator::Equal) => op = Some(CmpOp::Eq),
                        Cmp::Op(Operator::NotEqual) => op = Some(CmpOp::Neq),
                        Cmp::Data(d) => data = value(d),
                        _ => {}
                    }
                }
                op.map_or_else(unknown, |op| Expr::Cmp { op, data })
            }
            Some(Expressions::Bitwise(items)) => {
                let (mut mask, mut xor) = (Vec::new(), Vec::new());
                for item in items {
                    match item {
                        Bitwise::Mask(d) => mask = value(d),
                        Bitwise::Xor(d) => xor = value(d),
                        _ => {}
                    }
                }
                Expr::Bitwise { mask, xor }
            }
            Some(Expressions::Immediate(items)) => {
                Verdict::from_immediate(items).map_or_else(unknown, Expr::Verdict)
            }
            _ if name.as_deref() == Some("masq") => Expr::Masquerade,
            _ => unknown(),
        }
    }
}

impl Verdict {
    /// The verdict an `immediate` expression loads, if it loads one we model.
    fn from_immediate(items: &[Immediate]) -> Option<Verdict> {
        let verdict = items.iter().find_map(|i| match i {
            Immediate::Data(DataAttribute::Verdict(v)) => Some(v),
            _ => None,
        })?;
        let code = verdict.iter().find_map(|v| match v {
            VerdictAttribute::Code(c) => Some(*c),
            _ => None,
        });
        let chain = verdict.iter().find_map(|v| match v {
            VerdictAttribute::Chain(c) => Some(c.clone()),
            _ => None,
        });
        match (code, chain) {
            (Some(NlVerdict::Other(1)), _) => Some(Verdict::Accept),
            (Some(NlVerdict::Other(0)), _) => Some(Verdict::Drop),
            (Some(NlVerdict::Return), _) => Some(Verdict::Return),
            (Some(NlVerdict::Jump), Some(c)) => Some(Verdict::Jump(c)),
            (Some(NlVerdict::Goto), Some(c)) => Some(Verdict::Goto(c)),
            _ => None,
        }
    }
}

/// A rule's expressions as netlink-packet-netfilter's attribute: what the rule
/// writer (`wire`) is checked against.
#[cfg(test)]
pub(super) fn to_netlink(exprs: &[Expr]) -> Vec<ListAttribute<ExpressionAttribute>> {
    exprs.iter().map(Expr::to_netlink).collect()
}

pub(super) fn from_netlink(list: &[ListAttribute<ExpressionAttribute>]) -> Vec<Expr> {
    list.iter().map(Expr::from_netlink).collect()
}

/// A comment as nft stores it in a table's, chain's or rule's user data: one TLV of
/// type 0 (`NFTNL_UDATA_*_COMMENT`), the text NUL-terminated. nft keeps at most
/// 255 bytes of it (the TLV length is one byte): longer text is cut there.
pub fn comment_userdata(comment: &str) -> Vec<u8> {
    let mut text = comment.as_bytes().to_vec();
    text.truncate(254);
    text.push(0);
    let mut out = vec![0u8, text.len() as u8];
    out.extend(text);
    out
}

/// The comment in nft's user data, if it has one.
pub fn comment_of_userdata(userdata: &[u8]) -> Option<String> {
    let mut rest = userdata;
    while rest.len() >= 2 {
        let (kind, len) = (rest[0], rest[1] as usize);
        let value = rest.get(2..2 + len)?;
        if kind == 0 {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return Some(String::from_utf8_lossy(text).into_owned());
        }
        rest = &rest[2 + len..];
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iifname_is_padded_like_nft() {
        let exprs = Expr::iifname_is("vethc02fdee7");
        let Expr::Cmp { data, .. } = &exprs[1] else {
            panic!()
        };
        assert_eq!(data.len(), 16);
        assert_eq!(&data[..12], b"vethc02fdee7");
    }

    #[test]
    fn prefixes_are_masked_only_inside_a_byte() {
        let whole = Expr::daddr_in("10.1.0.0/16".parse().unwrap(), CmpOp::Neq);
        assert_eq!(whole.len(), 2);
        let multicast = Expr::daddr_in("224.0.0.0/4".parse().unwrap(), CmpOp::Eq);
        assert_eq!(
            multicast[1],
            Expr::Bitwise {
                mask: vec![0xf0, 0, 0, 0],
                xor: vec![0; 4]
            }
        );
        assert_eq!(
            multicast[2],
            Expr::Cmp {
                op: CmpOp::Eq,
                data: vec![0xe0, 0, 0, 0]
            }
        );
        let v6 = Expr::daddr_in("fd00:1::/60".parse().unwrap(), CmpOp::Neq);
        let Expr::Bitwise { mask, .. } = &v6[1] else {
            panic!()
        };
        assert_eq!(mask[..8], [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0]);
    }

    #[test]
    fn expressions_survive_the_netlink_attributes() {
        let mut exprs = Expr::ether_saddr_is(MacAddr([2, 0, 0, 0, 0, 0x42]));
        exprs.extend(Expr::daddr_in("fd00::/60".parse().unwrap(), CmpOp::Neq));
        exprs.push(Expr::Verdict(Verdict::Jump("cni-br-iface-x".into())));
        exprs.push(Expr::Verdict(Verdict::Drop));
        exprs.push(Expr::Masquerade);
        assert_eq!(from_netlink(&to_netlink(&exprs)), exprs);
    }

    #[test]
    fn comments_are_nft_user_data() {
        let data = comment_userdata("macspoofchk-c1-net1");
        assert_eq!(&data[..2], &[0, 20]);
        assert_eq!(
            comment_of_userdata(&data).as_deref(),
            Some("macspoofchk-c1-net1")
        );
        assert_eq!(comment_of_userdata(&[]), None);
    }
}
