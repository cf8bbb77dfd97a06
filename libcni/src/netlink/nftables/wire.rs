//! A rule's expressions written straight into their netlink attribute, in one pass
//! and without building netlink-packet-netfilter's attribute tree first: that
//! tree works out each nested attribute's length again at every level above it
//! and allocates for every value, which cost about as much CPU as the kernel's
//! loading of ipspoofchk's rules. The bytes are the library's (a property test
//! below compares them for generated rules); reading rules back stays the
//! library's.

use netlink_packet_core::{DefaultNla, NLA_F_NESTED};
use netlink_packet_netfilter::nftables::RuleAttribute;

use super::expr::{CmpOp, Expr, Verdict};

// linux/netfilter/nf_tables.h
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;
const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFT_REG_VERDICT: u32 = 0;
const NFT_REG_1: u32 = 1;
const NFT_CMP_EQ: u32 = 0;
const NFT_CMP_NEQ: u32 = 1;
const NF_DROP: i32 = 0;
const NF_ACCEPT: i32 = 1;
const NFT_JUMP: i32 = -3;
const NFT_GOTO: i32 = -4;
const NFT_RETURN: i32 = -5;

/// `exprs` as the rule's NFTA_RULE_EXPRESSIONS attribute.
pub(super) fn expressions(exprs: &[Expr]) -> RuleAttribute {
    let mut out = Writer::default();
    for expr in exprs {
        out.nest(NFTA_LIST_ELEM, |element| element.expression(expr));
    }
    RuleAttribute::Other(DefaultNla::new(
        NFTA_RULE_EXPRESSIONS | NLA_F_NESTED,
        out.bytes,
    ))
}

/// Netlink attributes appended to one buffer; a nested one's length is written
/// once its content is.
#[derive(Default)]
struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    fn attribute(&mut self, kind: u16, value: &[u8]) {
        self.header(kind, value.len());
        self.bytes.extend_from_slice(value);
        self.pad();
    }

    fn u32_be(&mut self, kind: u16, value: u32) {
        self.attribute(kind, &value.to_be_bytes());
    }

    /// A NUL-terminated string, as the kernel's NLA_STRING attributes are sent.
    fn string(&mut self, kind: u16, value: &str) {
        self.header(kind, value.len() + 1);
        self.bytes.extend_from_slice(value.as_bytes());
        self.bytes.push(0);
        self.pad();
    }

    fn nest(&mut self, kind: u16, content: impl FnOnce(&mut Writer)) {
        let start = self.bytes.len();
        self.header(kind | NLA_F_NESTED, 0);
        content(self);
        let length = (self.bytes.len() - start) as u16;
        self.bytes[start..start + 2].copy_from_slice(&length.to_ne_bytes());
    }

    fn header(&mut self, kind: u16, value_len: usize) {
        let length = (4 + value_len) as u16;
        self.bytes.extend_from_slice(&length.to_ne_bytes());
        self.bytes.extend_from_slice(&kind.to_ne_bytes());
    }

    fn pad(&mut self) {
        let padded = self.bytes.len().next_multiple_of(4);
        self.bytes.resize(padded, 0);
    }

    fn value(&mut self, kind: u16, data: &[u8]) {
        self.nest(kind, |value| value.attribute(NFTA_DATA_VALUE, data));
    }

    fn expression(&mut self, expr: &Expr) {
        let name = match expr {
            Expr::Meta(_) => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Bitwise { .. } => "bitwise",
            Expr::Verdict(_) => "immediate",
            Expr::Masquerade => "masq",
            Expr::Other(name) => name,
        };
        self.string(NFTA_EXPR_NAME, name);
        self.nest(NFTA_EXPR_DATA, |data| match expr {
            Expr::Meta(key) => {
                data.u32_be(NFTA_META_DREG, NFT_REG_1);
                data.u32_be(NFTA_META_KEY, *key);
            }
            Expr::Payload { base, offset, len } => {
                data.u32_be(NFTA_PAYLOAD_DREG, NFT_REG_1);
                data.u32_be(NFTA_PAYLOAD_BASE, base.value());
                data.u32_be(NFTA_PAYLOAD_OFFSET, *offset);
                data.u32_be(NFTA_PAYLOAD_LEN, *len);
            }
            Expr::Cmp { op, data: value } => {
                data.u32_be(NFTA_CMP_SREG, NFT_REG_1);
                let op = match op {
                    CmpOp::Eq => NFT_CMP_EQ,
                    CmpOp::Neq => NFT_CMP_NEQ,
                };
                data.u32_be(NFTA_CMP_OP, op);
                data.value(NFTA_CMP_DATA, value);
            }
            Expr::Bitwise { mask, xor } => {
                data.u32_be(NFTA_BITWISE_SREG, NFT_REG_1);
                data.u32_be(NFTA_BITWISE_DREG, NFT_REG_1);
                data.u32_be(NFTA_BITWISE_LEN, mask.len() as u32);
                data.value(NFTA_BITWISE_MASK, mask);
                data.value(NFTA_BITWISE_XOR, xor);
            }
            Expr::Verdict(verdict) => {
                data.u32_be(NFTA_IMMEDIATE_DREG, NFT_REG_VERDICT);
                data.nest(NFTA_IMMEDIATE_DATA, |immediate| {
                    immediate.nest(NFTA_DATA_VERDICT, |v| {
                        let (code, chain) = match verdict {
                            Verdict::Accept => (NF_ACCEPT, None),
                            Verdict::Drop => (NF_DROP, None),
                            Verdict::Return => (NFT_RETURN, None),
                            Verdict::Jump(chain) => (NFT_JUMP, Some(chain)),
                            Verdict::Goto(chain) => (NFT_GOTO, Some(chain)),
                        };
                        v.u32_be(NFTA_VERDICT_CODE, code as u32);
                        if let Some(chain) = chain {
                            v.string(NFTA_VERDICT_CHAIN, chain);
                        }
                    })
                });
            }
            Expr::Masquerade | Expr::Other(_) => {}
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::expr::{to_netlink, PayloadBase};
    use super::*;
    use netlink_packet_core::Emitable;
    use proptest::prelude::*;

    fn bytes(exprs: &[Expr]) -> Vec<u8> {
        let mut out = vec![0; expressions(exprs).buffer_len()];
        expressions(exprs).emit(&mut out);
        out
    }

    fn librarys_bytes(exprs: &[Expr]) -> Vec<u8> {
        let attribute = RuleAttribute::Expressions(to_netlink(exprs));
        let mut out = vec![0; attribute.buffer_len()];
        attribute.emit(&mut out);
        out
    }

    fn chain() -> impl Strategy<Value = String> {
        "[a-z0-9-]{1,40}"
    }

    fn expr() -> impl Strategy<Value = Expr> {
        let base = prop_oneof![
            Just(PayloadBase::Link),
            Just(PayloadBase::Network),
            Just(PayloadBase::Transport),
        ];
        let op = prop_oneof![Just(CmpOp::Eq), Just(CmpOp::Neq)];
        let verdict = prop_oneof![
            Just(Verdict::Accept),
            Just(Verdict::Drop),
            Just(Verdict::Return),
            chain().prop_map(Verdict::Jump),
            chain().prop_map(Verdict::Goto),
        ];
        prop_oneof![
            any::<u32>().prop_map(Expr::Meta),
            (base, any::<u32>(), any::<u32>()).prop_map(|(base, offset, len)| Expr::Payload {
                base,
                offset,
                len
            }),
            (op, proptest::collection::vec(any::<u8>(), 0..=20))
                .prop_map(|(op, data)| Expr::Cmp { op, data }),
            proptest::collection::vec(any::<(u8, u8)>(), 0..=16).prop_map(|pairs| {
                let (mask, xor) = pairs.into_iter().unzip();
                Expr::Bitwise { mask, xor }
            }),
            verdict.prop_map(Expr::Verdict),
            Just(Expr::Masquerade),
        ]
    }

    proptest! {
        #[test]
        fn rules_are_written_as_the_library_writes_them(
            exprs in proptest::collection::vec(expr(), 0..40)
        ) {
            prop_assert_eq!(bytes(&exprs), librarys_bytes(&exprs));
        }
    }
}
