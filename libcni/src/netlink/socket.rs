//! Moving netlink messages, for every protocol the suite speaks. [`Socket`] is a
//! real socket of one [`Protocol`] (rtnetlink or nf_tables), bound to the netns of
//! the thread that opened it (see [`crate::netns`]); [`FakeTransport`] records what
//! was sent and answers from a queue, so that message building is unit-tested
//! without root. Both describe each message the same way: an [`Operation`].

use std::collections::VecDeque;
use std::fmt::Debug;
use std::marker::PhantomData;

use netlink_packet_core::{
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
    NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::NfTablesMessage;
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::protocols::{NETLINK_NETFILTER, NETLINK_ROUTE};
use netlink_sys::SocketAddr;

use super::{Cause, NetlinkError, NlResult};

/// One message to send, with what it does (the operation its errors name, e.g.
/// `add rule to bridge nat "PREROUTING"`).
#[derive(Clone, Debug)]
pub struct Operation<M> {
    pub what: String,
    pub flags: u16,
    pub message: M,
}

/// Moves operations and their replies.
pub trait Transport<M> {
    /// Sends one operation and returns the messages of its reply: all parts of a
    /// dump, the object a GET asks for, nothing for a bare ACK.
    fn request(&mut self, operation: Operation<M>) -> NlResult<Vec<M>>;
    /// Sends the operations in one write, as the protocol frames a batch, and waits
    /// for the kernel's answer to all of them; the error names the first one refused.
    fn commit(&mut self, operations: Vec<Operation<M>>) -> NlResult<()>;
}

/// A netlink protocol: its socket and its messages.
pub trait Protocol {
    const NUMBER: isize;
    const NAME: &'static str;
    /// NETLINK_GET_STRICT_CHK: the kernel honours the filters of dump requests.
    const STRICT_CHECKING: bool;
    type Message: NetlinkSerializable + NetlinkDeserializable + Debug;
    /// The messages that open and close a batch, if the protocol frames batches.
    fn batch_markers() -> Option<(Self::Message, Self::Message)>;
}

/// rtnetlink: links, addresses, routes.
pub struct Route;

impl Protocol for Route {
    const NUMBER: isize = NETLINK_ROUTE;
    const NAME: &'static str = "NETLINK_ROUTE";
    const STRICT_CHECKING: bool = true;
    type Message = RouteNetlinkMessage;

    fn batch_markers() -> Option<(RouteNetlinkMessage, RouteNetlinkMessage)> {
        None
    }
}

/// nf_tables over nfnetlink.
pub struct Netfilter;

/// NFNL_SUBSYS_NFTABLES: the batch markers name the subsystem they frame.
const NFNL_SUBSYS_NFTABLES: u16 = 10;

impl Netfilter {
    /// An nf_tables message for tables of `family`.
    pub fn message(family: NetfilterProtoFamily, message: NfTablesMessage) -> NetfilterMessage {
        NetfilterMessage::new(
            NetfilterHeader::new(family, 0, 0),
            NetfilterMessageInner::NfTables(message),
        )
    }

    fn marker(marker: ControlMessage) -> NetfilterMessage {
        NetfilterMessage::new(
            NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES),
            NetfilterMessageInner::None(marker),
        )
    }
}

impl Protocol for Netfilter {
    const NUMBER: isize = NETLINK_NETFILTER;
    const NAME: &'static str = "NETLINK_NETFILTER";
    const STRICT_CHECKING: bool = false;
    type Message = NetfilterMessage;

    fn batch_markers() -> Option<(NetfilterMessage, NetfilterMessage)> {
        Some((
            Netfilter::marker(ControlMessage::BatchBegin),
            Netfilter::marker(ControlMessage::BatchEnd),
        ))
    }
}

/// A netlink socket of protocol `P`. It belongs to the netns of the thread that
/// made it.
pub struct Socket<P: Protocol> {
    socket: netlink_sys::Socket,
    sequence: u32,
    protocol: PhantomData<P>,
}

/// A reply: the sequence number it answers, and what it says.
type Reply<M> = (u32, NetlinkPayload<M>);

impl<P: Protocol> Socket<P> {
    pub fn open() -> NlResult<Socket<P>> {
        let fail = |e| NetlinkError::new(format!("open a {} socket", P::NAME), Cause::Io(e));
        let mut socket = netlink_sys::Socket::new(P::NUMBER).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        if P::STRICT_CHECKING {
            let _ = socket.set_netlink_get_strict_chk(true);
        }
        let _ = socket.set_ext_ack(true);
        Ok(Socket {
            socket,
            sequence: 0,
            protocol: PhantomData,
        })
    }

    /// Appends `message` to `buffer` under a new sequence number, which it returns.
    fn frame(&mut self, buffer: &mut Vec<u8>, message: P::Message, flags: u16) -> u32 {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let start = buffer.len();
        buffer.resize(start + packet.buffer_len(), 0);
        packet.serialize(&mut buffer[start..]);
        self.sequence
    }

    /// The replies of one whole read (peeked for its size first), waiting for it
    /// or not (`None`: nothing was queued).
    fn receive(&mut self, wait: bool, what: &str) -> NlResult<Option<Vec<Reply<P::Message>>>> {
        let io = |e| NetlinkError::new(what, Cause::Io(e));
        let dont_wait = if wait { 0 } else { libc::MSG_DONTWAIT };
        let mut bytes: Vec<u8> = Vec::new();
        let size = match self
            .socket
            .recv(&mut bytes, libc::MSG_PEEK | libc::MSG_TRUNC | dont_wait)
        {
            Ok(size) => size,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(io(e)),
        };
        bytes.clear();
        bytes.reserve(size);
        let read = self.socket.recv(&mut bytes, dont_wait).map_err(io)?;
        let mut replies = Vec::new();
        let mut offset = 0;
        while offset < read {
            let reply = NetlinkMessage::<P::Message>::deserialize(&bytes[offset..read])
                .map_err(|e| NetlinkError::new(what, Cause::Decode(e.to_string())))?;
            let length = reply.header.length as usize;
            if length == 0 {
                break;
            }
            offset += length.next_multiple_of(4);
            replies.push((reply.header.sequence_number, reply.payload));
        }
        Ok(Some(replies))
    }
}

impl<P: Protocol> Transport<P::Message> for Socket<P> {
    fn request(&mut self, operation: Operation<P::Message>) -> NlResult<Vec<P::Message>> {
        let Operation {
            what,
            flags,
            message,
        } = operation;
        let mut buffer = Vec::new();
        let sequence = self.frame(&mut buffer, message, flags);
        let io = |e| NetlinkError::new(what.as_str(), Cause::Io(e));
        self.socket.send(&buffer, 0).map_err(io)?;
        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let wants_ack = flags & NLM_F_ACK == NLM_F_ACK;
        let mut messages = Vec::new();
        loop {
            let replies = self.receive(true, &what)?.unwrap_or_default();
            // A reply of another sequence number is a late one to an earlier request.
            for (_, payload) in replies.into_iter().filter(|(s, _)| *s == sequence) {
                match payload {
                    NetlinkPayload::Done(_) => return Ok(messages),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(messages), // the ACK
                            Some(code) => Err(NetlinkError::new(what, Cause::Errno(-code.get()))),
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        messages.push(inner);
                        // A GET without an ACK is answered by its one object.
                        if !dump && !wants_ack {
                            return Ok(messages);
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// Only the last operation asks for an ACK: the kernel answers a refused
    /// operation whatever its flags, and it answers in order once the whole batch
    /// is handled, so the last one's answer closes the batch. An ACK for each
    /// operation would cost two reads apiece (0.15 ms for ipspoofchk's 30).
    fn commit(&mut self, operations: Vec<Operation<P::Message>>) -> NlResult<()> {
        let Some(first) = operations.first().map(|o| o.what.clone()) else {
            return Ok(());
        };
        let (begin, end) = P::batch_markers().unzip();
        let mut buffer = Vec::new();
        let mut pending = Vec::new();
        let begin = begin.map(|begin| self.frame(&mut buffer, begin, NLM_F_REQUEST));
        let last = operations.len() - 1;
        for (index, operation) in operations.into_iter().enumerate() {
            let flags = match index == last {
                true => operation.flags | NLM_F_ACK,
                false => operation.flags & !NLM_F_ACK,
            };
            let sequence = self.frame(&mut buffer, operation.message, flags);
            pending.push((sequence, operation.what));
        }
        if let Some(end) = end {
            self.frame(&mut buffer, end, NLM_F_REQUEST);
        }
        let io = |e| NetlinkError::new(first.as_str(), Cause::Io(e));
        self.socket.send(&buffer, 0).map_err(io)?;
        self.await_answers(&pending, begin, &first)
    }
}

impl<P: Protocol> Socket<P> {
    /// Reads the answers to a batch (`pending`: sequence number and what each
    /// operation does; `begin`: the batch's opening message) until the last
    /// operation's. The first refusal is the error; so is a refusal of the whole
    /// batch, which the kernel answers under `begin`'s sequence number (a commit
    /// that failed). The kernel handles a batch within the send, so everything is
    /// queued by now: a batch whose last answer never comes is an error too.
    fn await_answers(
        &mut self,
        pending: &[(u32, String)],
        begin: Option<u32>,
        first: &str,
    ) -> NlResult<()> {
        let Some((last, _)) = pending.last() else {
            return Ok(());
        };
        let mut failure: Option<NetlinkError> = None;
        let mut wait = true;
        loop {
            let Some(replies) = self.receive(wait, first)? else {
                return match failure {
                    Some(failure) => Err(failure),
                    None => Err(NetlinkError::new(
                        first,
                        Cause::Decode("the kernel did not answer the batch".to_string()),
                    )),
                };
            };
            wait = false;
            for (sequence, payload) in replies {
                let NetlinkPayload::Error(error) = payload else {
                    continue;
                };
                let what = match pending.iter().find(|(s, _)| *s == sequence) {
                    Some((_, what)) => what.as_str(),
                    None if Some(sequence) == begin => first,
                    None => continue,
                };
                if let (Some(code), None) = (error.code, &failure) {
                    failure = Some(NetlinkError::new(what, Cause::Errno(-code.get())));
                }
                if sequence == *last {
                    return failure.map_or(Ok(()), Err);
                }
            }
        }
    }
}

/// Records every operation (`sent`) and batch (`commits`); answers from a queue,
/// request by request and batch by batch: an empty queue answers with nothing
/// (an ACK), a queued errno fails that call, naming its operation.
pub struct FakeTransport<M> {
    pub sent: Vec<Operation<M>>,
    pub commits: Vec<Vec<Operation<M>>>,
    replies: VecDeque<NlResult<Vec<M>>>,
}

impl<M> Default for FakeTransport<M> {
    fn default() -> FakeTransport<M> {
        FakeTransport {
            sent: Vec::new(),
            commits: Vec::new(),
            replies: VecDeque::new(),
        }
    }
}

impl<M> FakeTransport<M> {
    pub fn reply(&mut self, messages: Vec<M>) {
        self.replies.push_back(Ok(messages));
    }

    pub fn fail(&mut self, errno: i32) {
        self.replies
            .push_back(Err(NetlinkError::new("fake", Cause::Errno(errno))));
    }

    fn next_reply(&mut self, what: &str) -> NlResult<Vec<M>> {
        match self.replies.pop_front() {
            None => Ok(Vec::new()),
            Some(Ok(messages)) => Ok(messages),
            Some(Err(e)) => Err(NetlinkError::new(what, e.cause)),
        }
    }
}

impl<M> Transport<M> for FakeTransport<M> {
    fn request(&mut self, operation: Operation<M>) -> NlResult<Vec<M>> {
        let what = operation.what.clone();
        self.sent.push(operation);
        self.next_reply(&what)
    }

    fn commit(&mut self, operations: Vec<Operation<M>>) -> NlResult<()> {
        let what = operations
            .first()
            .map(|o| o.what.clone())
            .unwrap_or_default();
        self.commits.push(operations);
        self.next_reply(&what).map(drop)
    }
}
