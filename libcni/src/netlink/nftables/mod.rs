//! An nf_tables client over NETLINK_NETFILTER, on netlink-packet-netfilter: what
//! `nft` does for the suite's rules, without a process and without loading the
//! ruleset. A [`Batch`] is one atomic transaction (batch begin, the messages, batch
//! end); queries list one chain's rules, one rule by handle, or one table's chains.
//! Every error names the operation and the object, and ends with the errno, as the
//! rtnetlink ones do.

mod expr;
mod wire;

pub use expr::{
    comment_of_userdata, comment_userdata, CmpOp, Expr, PayloadBase, Verdict, NFT_META_L4PROTO,
    NFT_META_PROTOCOL,
};

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_APPEND, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::{
    ChainAttribute, ChainMessage, Hook, HookNumber, InetHookNumber, NfTablesMessage, RuleAttribute,
    RuleMessage, TableAttribute, TableFlags, TableMessage,
};
use netlink_packet_netfilter::{NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily};

use super::{FakeTransport, Netfilter, NetlinkError, NlResult, Operation, Socket, Transport};
use crate::mac::MacAddr;

/// The address family of a table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Bridge,
    Inet,
    Ip,
    Ip6,
}

impl Family {
    fn proto(self) -> NetfilterProtoFamily {
        match self {
            Family::Bridge => NetfilterProtoFamily::Bridge,
            Family::Inet => NetfilterProtoFamily::Inet,
            Family::Ip => NetfilterProtoFamily::IPv4,
            Family::Ip6 => NetfilterProtoFamily::IPv6,
        }
    }

    /// The name `nft` uses.
    pub fn name(self) -> &'static str {
        match self {
            Family::Bridge => "bridge",
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
}

/// The hook of a base chain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChainHook {
    Prerouting,
    Postrouting,
}

/// What makes a chain a base chain: `type <kind> hook <hook> priority <p>; policy accept;`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BaseChain {
    /// `filter`, `nat` or `route`.
    pub kind: &'static str,
    pub hook: ChainHook,
    pub priority: i32,
}

impl BaseChain {
    /// The attributes that make a chain this base chain: hook, policy accept, type.
    pub fn attributes(&self) -> Vec<ChainAttribute> {
        let hook = match self.hook {
            ChainHook::Prerouting => InetHookNumber::PreRouting,
            ChainHook::Postrouting => InetHookNumber::PostRouting,
        };
        vec![
            ChainAttribute::Hook(vec![
                Hook::Number(HookNumber::Inet(hook)),
                Hook::Priority(self.priority as u32),
            ]),
            ChainAttribute::Policy(1), // NF_ACCEPT
            ChainAttribute::Type(self.kind.to_string()),
        ]
    }

    /// Whether a chain the kernel described (`Nftables::chain`) is this base chain,
    /// so that `add chain` of it would change nothing.
    pub fn describes(&self, chain: &[ChainAttribute]) -> bool {
        let hook_of = |attributes: &[ChainAttribute]| {
            attributes.iter().find_map(|a| match a {
                ChainAttribute::Hook(hook) => {
                    let (mut number, mut priority) = (None, None);
                    for item in hook {
                        match item {
                            Hook::Number(n) => number = Some(u32::from(*n)),
                            Hook::Priority(p) => priority = Some(*p),
                            _ => {}
                        }
                    }
                    Some((number, priority))
                }
                _ => None,
            })
        };
        let wanted = self.attributes();
        hook_of(chain).is_some()
            && hook_of(chain) == hook_of(&wanted)
            && wanted[1..].iter().all(|a| chain.contains(a))
    }
}

/// A table and one of its chains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChainRef<'a> {
    pub family: Family,
    pub table: &'a str,
    pub chain: &'a str,
}

impl ChainRef<'_> {
    fn describe(&self) -> String {
        format!("{} {} {:?}", self.family.name(), self.table, self.chain)
    }
}

/// A rule as listed: its handle, its expressions and its comment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    pub handle: u64,
    pub exprs: Vec<Expr>,
    pub comment: Option<String>,
}

impl Rule {
    fn from_message(message: &RuleMessage) -> Rule {
        let mut rule = Rule {
            handle: 0,
            exprs: Vec::new(),
            comment: None,
        };
        for attribute in &message.attributes {
            match attribute {
                RuleAttribute::Handle(h) => rule.handle = *h,
                RuleAttribute::Expressions(list) => rule.exprs = expr::from_netlink(list),
                RuleAttribute::UserData(data) => rule.comment = comment_of_userdata(data),
                _ => {}
            }
        }
        rule
    }

    /// The interface an `iifname "<name>"` match of this rule names.
    pub fn iifname(&self) -> Option<String> {
        self.iifname_match().map(|(name, _)| name)
    }

    /// The interface an `iifname "<name>"` match of this rule names exactly: a
    /// wildcard (`"veth*"`) compares a prefix without the terminating NUL.
    pub fn exact_iifname(&self) -> Option<String> {
        self.iifname_match()
            .filter(|(_, exact)| *exact)
            .map(|(name, _)| name)
    }

    /// The name an `iifname` match compares with, and whether it is the whole name
    /// (NUL-padded to IFNAMSIZ, as [`Expr::iifname_is`] writes it).
    fn iifname_match(&self) -> Option<(String, bool)> {
        self.exprs.windows(2).find_map(|pair| match pair {
            [Expr::Meta(6), Expr::Cmp {
                op: CmpOp::Eq,
                data,
            }] => {
                let end = data.iter().position(|b| *b == 0).unwrap_or(data.len());
                let exact = data.len() >= 16 && data.last() == Some(&0);
                Some((String::from_utf8_lossy(&data[..end]).into_owned(), exact))
            }
            _ => None,
        })
    }

    /// The MAC an `ether saddr <mac>` match of this rule names.
    pub fn ether_saddr(&self) -> Option<MacAddr> {
        self.exprs.windows(2).find_map(|pair| match pair {
            [Expr::Payload {
                base: PayloadBase::Link,
                offset: 6,
                len: 6,
            }, Expr::Cmp {
                op: CmpOp::Eq,
                data,
            }] => MacAddr::from_bytes(data),
            _ => None,
        })
    }

    /// The verdict of the rule, if it ends in one.
    pub fn verdict(&self) -> Option<&Verdict> {
        self.exprs.iter().rev().find_map(|e| match e {
            Expr::Verdict(v) => Some(v),
            _ => None,
        })
    }
}

/// An nf_tables transport: the real [`NfSocket`] or the [`FakeNfTransport`].
pub trait NfTransport: Transport<NetfilterMessage> {}
impl<T: Transport<NetfilterMessage>> NfTransport for T {}

pub type NfSocket = Socket<Netfilter>;
pub type FakeNfTransport = FakeTransport<NetfilterMessage>;

impl FakeNfTransport {
    /// Queues the nf_tables messages of the next reply.
    pub fn answer(&mut self, messages: Vec<NfTablesMessage>) {
        let family = NetfilterProtoFamily::Unspec;
        self.reply(
            messages
                .into_iter()
                .map(|m| Netfilter::message(family, m))
                .collect(),
        );
    }
}

/// One transaction: applied whole by the kernel, or not at all.
#[derive(Default)]
pub struct Batch {
    operations: Vec<Operation<NetfilterMessage>>,
}

fn string_attributes(table: &str, chain: &str) -> (String, String) {
    (table.to_string(), chain.to_string())
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    pub fn is_empty(&self) -> bool {
        self.operations.is_empty()
    }

    fn push(&mut self, what: String, family: Family, flags: u16, message: NfTablesMessage) {
        self.operations.push(Operation {
            what,
            flags: NLM_F_REQUEST | NLM_F_ACK | flags,
            message: Netfilter::message(family.proto(), message),
        });
    }

    /// `add table` (no error when it exists), with an optional comment.
    pub fn add_table(&mut self, family: Family, name: &str, comment: Option<&str>) -> &mut Batch {
        let mut attributes = vec![TableAttribute::Name(name.to_string())];
        attributes.extend(comment.map(|c| TableAttribute::UserData(comment_userdata(c))));
        self.push(
            format!("add table {} {name}", family.name()),
            family,
            NLM_F_CREATE,
            NfTablesMessage::NewTable(TableMessage { attributes }),
        );
        self
    }

    /// `add chain` (no error when it exists), regular or base, with an optional comment.
    pub fn add_chain(
        &mut self,
        chain: ChainRef<'_>,
        base: Option<&BaseChain>,
        comment: Option<&str>,
    ) -> &mut Batch {
        let (table, name) = string_attributes(chain.table, chain.chain);
        let mut attributes = vec![ChainAttribute::Table(table), ChainAttribute::Name(name)];
        if let Some(base) = base {
            attributes.extend(base.attributes());
        }
        attributes.extend(comment.map(|c| ChainAttribute::UserData(comment_userdata(c))));
        self.push(
            format!("add chain {}", chain.describe()),
            chain.family,
            NLM_F_CREATE,
            NfTablesMessage::NewChain(ChainMessage { attributes }),
        );
        self
    }

    /// `create chain`: a new regular chain; the transaction fails with EEXIST when it
    /// exists. Unlike `add chain` on an existing chain, which the kernel records as a
    /// chain update, it leaves no work that waits for an RCU grace period.
    pub fn create_chain(&mut self, chain: ChainRef<'_>) -> &mut Batch {
        let (table, name) = string_attributes(chain.table, chain.chain);
        self.push(
            format!("create chain {}", chain.describe()),
            chain.family,
            NLM_F_CREATE | NLM_F_EXCL,
            NfTablesMessage::NewChain(ChainMessage {
                attributes: vec![ChainAttribute::Table(table), ChainAttribute::Name(name)],
            }),
        );
        self
    }

    /// `flush chain`: deletes every rule of the chain.
    pub fn flush_chain(&mut self, chain: ChainRef<'_>) -> &mut Batch {
        let (table, name) = string_attributes(chain.table, chain.chain);
        self.push(
            format!("flush chain {}", chain.describe()),
            chain.family,
            0,
            NfTablesMessage::DeleteRule(RuleMessage {
                attributes: vec![RuleAttribute::Table(table), RuleAttribute::Chain(name)],
            }),
        );
        self
    }

    /// `add rule` (appended), with an optional comment.
    pub fn add_rule(
        &mut self,
        chain: ChainRef<'_>,
        exprs: &[Expr],
        comment: Option<&str>,
    ) -> &mut Batch {
        let (table, name) = string_attributes(chain.table, chain.chain);
        let mut attributes = vec![
            RuleAttribute::Table(table),
            RuleAttribute::Chain(name),
            wire::expressions(exprs),
        ];
        attributes.extend(comment.map(|c| RuleAttribute::UserData(comment_userdata(c))));
        self.push(
            format!("add rule to {}", chain.describe()),
            chain.family,
            NLM_F_CREATE | NLM_F_APPEND,
            NfTablesMessage::NewRule(RuleMessage { attributes }),
        );
        self
    }

    /// `delete rule ... handle <h>`.
    pub fn delete_rule(&mut self, chain: ChainRef<'_>, handle: u64) -> &mut Batch {
        let (table, name) = string_attributes(chain.table, chain.chain);
        self.push(
            format!("delete rule {handle} of {}", chain.describe()),
            chain.family,
            0,
            NfTablesMessage::DeleteRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table),
                    RuleAttribute::Chain(name),
                    RuleAttribute::Handle(handle),
                ],
            }),
        );
        self
    }

    /// `delete chain` (it must be empty and unreferenced).
    pub fn delete_chain(&mut self, chain: ChainRef<'_>) -> &mut Batch {
        let (table, name) = string_attributes(chain.table, chain.chain);
        self.push(
            format!("delete chain {}", chain.describe()),
            chain.family,
            0,
            NfTablesMessage::DeleteChain(ChainMessage {
                attributes: vec![ChainAttribute::Table(table), ChainAttribute::Name(name)],
            }),
        );
        self
    }
}

/// The client.
pub struct Nftables<T: NfTransport = NfSocket> {
    pub transport: T,
}

impl Nftables<NfSocket> {
    /// A NETLINK_NETFILTER socket in the calling thread's netns.
    pub fn open() -> NlResult<Nftables<NfSocket>> {
        Ok(Nftables {
            transport: NfSocket::open()?,
        })
    }
}

impl Nftables<FakeNfTransport> {
    pub fn fake() -> Nftables<FakeNfTransport> {
        Nftables {
            transport: FakeNfTransport::default(),
        }
    }
}

/// How many times a removal is read and committed before its error stands.
const REMOVAL_ATTEMPTS: usize = 5;

impl<T: NfTransport> Nftables<T> {
    /// Applies `batch` as one transaction; the error names the first operation the
    /// kernel refused. An empty batch is nothing to do.
    pub fn commit(&mut self, batch: Batch) -> NlResult<()> {
        if batch.is_empty() {
            return Ok(());
        }
        self.transport.commit(batch.operations)
    }

    /// A teardown: `plan` reads what to remove and returns it as one transaction
    /// (with what the caller wants to know of the read). Teardowns race: DELs of one
    /// attachment, GCs, DEL beside GC. One that commits second names rules or chains
    /// the first removed, and the kernel refuses the whole transaction (ENOENT).
    /// Then `plan` reads again and the transaction is retried, at most
    /// `REMOVAL_ATTEMPTS` times in all; a read that finds nothing left gives an empty
    /// batch, which is success. Any other error stands at once.
    pub fn remove<R, E: From<NetlinkError>>(
        &mut self,
        mut plan: impl FnMut(&mut Self) -> Result<(Batch, R), E>,
    ) -> Result<R, E> {
        let mut attempt = 1;
        loop {
            let (batch, outcome) = plan(self)?;
            match self.commit(batch) {
                Ok(()) => return Ok(outcome),
                Err(e) if e.is_not_found() && attempt < REMOVAL_ATTEMPTS => attempt += 1,
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn query(
        &mut self,
        what: String,
        family: Family,
        message: NfTablesMessage,
        dump: bool,
    ) -> NlResult<Option<Vec<NfTablesMessage>>> {
        let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK };
        match self.transport.request(Operation {
            what,
            flags,
            message: Netfilter::message(family.proto(), message),
        }) {
            Ok(replies) => Ok(Some(
                replies
                    .into_iter()
                    .filter_map(|m| match m.inner {
                        NetfilterMessageInner::NfTables(inner) => Some(inner),
                        _ => None,
                    })
                    .collect(),
            )),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The rules of one chain, in order; `None` when the table or chain does not
    /// exist. The kernel filters the dump: only this chain's rules are read.
    pub fn rules(&mut self, chain: ChainRef<'_>) -> NlResult<Option<Vec<Rule>>> {
        let (table, name) = string_attributes(chain.table, chain.chain);
        let replies = self
            .query(
                format!("list the rules of {}", chain.describe()),
                chain.family,
                NfTablesMessage::GetRule(RuleMessage {
                    attributes: vec![RuleAttribute::Table(table), RuleAttribute::Chain(name)],
                }),
                true,
            )?
            .unwrap_or_default();
        let rules: Vec<Rule> = replies
            .iter()
            .filter_map(|m| match m {
                NfTablesMessage::NewRule(rule) => Some(Rule::from_message(rule)),
                _ => None,
            })
            .collect();
        // A filtered dump of a chain that does not exist is empty, not an error.
        if rules.is_empty() && !self.chain_exists(chain)? {
            return Ok(None);
        }
        Ok(Some(rules))
    }

    /// Whether the chain (and its table) exists.
    pub fn chain_exists(&mut self, chain: ChainRef<'_>) -> NlResult<bool> {
        Ok(self.chain(chain)?.is_some())
    }

    /// The chain as the kernel describes it (hook, policy, type, ...); `None` when it
    /// or its table does not exist.
    pub fn chain(&mut self, chain: ChainRef<'_>) -> NlResult<Option<Vec<ChainAttribute>>> {
        let (table, name) = string_attributes(chain.table, chain.chain);
        let replies = self.query(
            format!("read chain {}", chain.describe()),
            chain.family,
            NfTablesMessage::GetChain(ChainMessage {
                attributes: vec![ChainAttribute::Table(table), ChainAttribute::Name(name)],
            }),
            false,
        )?;
        Ok(replies.map(|replies| {
            replies
                .into_iter()
                .find_map(|m| match m {
                    NfTablesMessage::NewChain(chain) => Some(chain.attributes),
                    _ => None,
                })
                .unwrap_or_default()
        }))
    }

    /// Whether the table is dormant (`flags dormant`: none of its chains runs);
    /// `None` when it does not exist.
    pub fn table_dormant(&mut self, family: Family, table: &str) -> NlResult<Option<bool>> {
        let replies = self.query(
            format!("read table {} {table}", family.name()),
            family,
            NfTablesMessage::GetTable(TableMessage {
                attributes: vec![TableAttribute::Name(table.to_string())],
            }),
            false,
        )?;
        Ok(replies.map(|replies| {
            replies.iter().any(|m| match m {
                NfTablesMessage::NewTable(t) => t.attributes.iter().any(
                    |a| matches!(a, TableAttribute::Flags(f) if f.contains(TableFlags::Dormant)),
                ),
                _ => false,
            })
        }))
    }

    /// One rule by its handle; `None` when it (or its chain) does not exist.
    pub fn rule(&mut self, chain: ChainRef<'_>, handle: u64) -> NlResult<Option<Rule>> {
        let (table, name) = string_attributes(chain.table, chain.chain);
        let replies = self.query(
            format!("read rule {handle} of {}", chain.describe()),
            chain.family,
            NfTablesMessage::GetRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Table(table),
                    RuleAttribute::Chain(name),
                    RuleAttribute::Handle(handle),
                ],
            }),
            false,
        )?;
        Ok(replies.and_then(|replies| {
            replies.iter().find_map(|m| match m {
                NfTablesMessage::NewRule(rule) => Some(Rule::from_message(rule)),
                _ => None,
            })
        }))
    }

    /// The names of a table's chains; `None` when the table does not exist.
    pub fn chains(&mut self, family: Family, table: &str) -> NlResult<Option<Vec<String>>> {
        let replies = self.query(
            format!("list the chains of {} {table}", family.name()),
            family,
            NfTablesMessage::GetChain(ChainMessage {
                attributes: vec![ChainAttribute::Table(table.to_string())],
            }),
            true,
        )?;
        // Dumps filter by table only on newer kernels: check each chain's table.
        Ok(replies.map(|replies| {
            replies
                .iter()
                .filter_map(|m| match m {
                    NfTablesMessage::NewChain(chain) => {
                        let in_table = chain
                            .attributes
                            .iter()
                            .any(|a| matches!(a, ChainAttribute::Table(t) if t == table));
                        chain.attributes.iter().find_map(|a| match a {
                            ChainAttribute::Name(n) if in_table => Some(n.clone()),
                            _ => None,
                        })
                    }
                    _ => None,
                })
                .collect()
        }))
    }

    /// Whether nf_tables answers at all (the kernel has it, we may use it).
    pub fn available(&mut self) -> bool {
        self.chains(Family::Inet, "cni-probe-nonexistent").is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREROUTING: ChainRef<'static> = ChainRef {
        family: Family::Bridge,
        table: "nat",
        chain: "PREROUTING",
    };

    #[test]
    fn a_batch_is_one_commit_of_messages_with_acks() {
        let mut nft = Nftables::fake();
        let postrouting = ChainRef {
            family: Family::Inet,
            table: "t",
            chain: "post",
        };
        let base = BaseChain {
            kind: "nat",
            hook: ChainHook::Postrouting,
            priority: 100,
        };
        let mut batch = Batch::new();
        batch.add_table(Family::Inet, "t", Some("a comment"));
        batch.add_chain(postrouting, Some(&base), None);
        batch.add_rule(postrouting, &[Expr::Masquerade], Some("c"));
        nft.commit(batch).unwrap();
        let sent = &nft.transport.commits[0];
        assert_eq!(sent.len(), 3);
        assert!(sent.iter().all(|op| op.flags & NLM_F_ACK != 0));
        assert_eq!(sent[2].what, "add rule to inet t \"post\"");
        let NetfilterMessageInner::NfTables(NfTablesMessage::NewChain(chain)) =
            &sent[1].message.inner
        else {
            panic!()
        };
        assert!(chain.attributes.contains(&ChainAttribute::Hook(vec![
            Hook::Number(HookNumber::Inet(InetHookNumber::PostRouting)),
            Hook::Priority(100),
        ])));
        assert!(Nftables::fake().commit(Batch::new()).is_ok());
    }

    #[test]
    fn only_a_whole_interface_name_is_exact() {
        let rule = |exprs| Rule {
            handle: 1,
            exprs,
            comment: None,
        };
        let whole = rule(Expr::iifname_is("veth1"));
        assert_eq!(whole.exact_iifname().as_deref(), Some("veth1"));
        // nft's `iifname "veth*"`: the prefix alone, no NUL.
        let wildcard = rule(vec![
            Expr::Meta(6),
            Expr::Cmp {
                op: CmpOp::Eq,
                data: b"veth".to_vec(),
            },
        ]);
        assert_eq!(wildcard.iifname().as_deref(), Some("veth"));
        assert_eq!(wildcard.exact_iifname(), None);
    }

    #[test]
    fn listed_rules_give_their_match_and_comment() {
        let mut nft = Nftables::fake();
        let mut exprs = Expr::iifname_is("vethab");
        exprs.push(Expr::Verdict(Verdict::Jump("cni-br-iface-c-eth0".into())));
        nft.transport
            .answer(vec![NfTablesMessage::NewRule(RuleMessage {
                attributes: vec![
                    RuleAttribute::Handle(7),
                    RuleAttribute::Expressions(expr::to_netlink(&exprs)),
                    RuleAttribute::UserData(comment_userdata("macspoofchk-c-eth0")),
                ],
            })]);
        let rules = nft.rules(PREROUTING).unwrap().unwrap();
        assert_eq!(rules[0].handle, 7);
        assert_eq!(rules[0].iifname().as_deref(), Some("vethab"));
        assert_eq!(rules[0].comment.as_deref(), Some("macspoofchk-c-eth0"));
        assert_eq!(
            rules[0].verdict(),
            Some(&Verdict::Jump("cni-br-iface-c-eth0".into()))
        );
    }

    #[test]
    fn a_base_chain_is_recognised_by_hook_priority_policy_and_type() {
        let base = BaseChain {
            kind: "filter",
            hook: ChainHook::Prerouting,
            priority: -300,
        };
        let mut described = vec![
            ChainAttribute::Table("nat".into()),
            ChainAttribute::Name("PREROUTING".into()),
        ];
        described.extend(base.attributes());
        assert!(base.describes(&described));
        let other_priority = BaseChain {
            priority: -200,
            ..base.clone()
        };
        assert!(!other_priority.describes(&described));
        let mut drop_policy = described.clone();
        drop_policy.retain(|a| !matches!(a, ChainAttribute::Policy(_)));
        drop_policy.push(ChainAttribute::Policy(0));
        assert!(!base.describes(&drop_policy));
        // A regular chain of that name.
        assert!(!base.describes(&described[..2]));
    }

    #[test]
    fn a_removal_is_read_again_when_part_of_it_vanished_and_gives_up_in_the_end() {
        let delete = |handles: &[u64]| {
            let mut batch = Batch::new();
            for handle in handles {
                batch.delete_rule(PREROUTING, *handle);
            }
            batch
        };
        // The first commit: ENOENT (another teardown removed rule 4); the second read
        // finds only rule 5 left, and its commit succeeds.
        let mut nft = Nftables::fake();
        nft.transport.fail(libc::ENOENT);
        let mut reads = vec![vec![5], vec![4, 5]];
        let removed = nft
            .remove(|_| {
                let handles = reads.pop().unwrap();
                NlResult::Ok((delete(&handles), handles.len()))
            })
            .unwrap();
        assert_eq!(removed, 1);
        assert_eq!(nft.transport.commits.len(), 2);

        // Nothing left at the second read: an empty batch, not even sent.
        let mut nft = Nftables::fake();
        nft.transport.fail(libc::ENOENT);
        let mut reads = vec![vec![], vec![4]];
        nft.remove(|_| NlResult::Ok((delete(&reads.pop().unwrap()), ())))
            .unwrap();
        assert_eq!(nft.transport.commits.len(), 1);

        // Bounded: ENOENT every time.
        let mut nft = Nftables::fake();
        for _ in 0..REMOVAL_ATTEMPTS {
            nft.transport.fail(libc::ENOENT);
        }
        let e = nft
            .remove(|_| NlResult::Ok((delete(&[4]), ())))
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert_eq!(nft.transport.commits.len(), REMOVAL_ATTEMPTS);

        // Another error is not retried.
        let mut nft = Nftables::fake();
        nft.transport.fail(libc::EPERM);
        assert!(nft.remove(|_| NlResult::Ok((delete(&[4]), ()))).is_err());
        assert_eq!(nft.transport.commits.len(), 1);
    }

    #[test]
    fn a_missing_chain_lists_as_none_and_errors_name_the_object() {
        let mut nft = Nftables::fake();
        // An empty dump, then the chain's own lookup: ENOENT.
        nft.transport.answer(Vec::new());
        nft.transport.fail(libc::ENOENT);
        assert_eq!(nft.rules(PREROUTING).unwrap(), None);
        nft.transport.fail(libc::EPERM);
        let e = nft.rule(PREROUTING, 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "failed to read rule 4 of bridge nat \"PREROUTING\": EPERM: Operation not permitted"
        );
    }
}
