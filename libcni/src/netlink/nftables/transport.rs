//! Moving nf_tables messages: [`NfSocket`] is a NETLINK_NETFILTER socket (bound to
//! the netns of the thread that opened it), [`FakeNfTransport`] records what was
//! sent so that message building is unit-tested without root.

use std::collections::VecDeque;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_netfilter::nftables::NfTablesMessage;
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{
    NetfilterHeader, NetfilterMessage, NetfilterMessageInner, NetfilterProtoFamily,
};
use netlink_sys::{protocols::NETLINK_NETFILTER, Socket, SocketAddr};

use crate::netlink::{Cause, NetlinkError, NlResult};

/// NFNL_SUBSYS_NFTABLES: the batch markers name the subsystem they frame.
const NFNL_SUBSYS_NFTABLES: u16 = 10;

/// One message of a batch or a query, with what it does (for errors).
#[derive(Clone, Debug)]
pub struct Operation {
    /// e.g. `add rule to bridge nat "PREROUTING"`.
    pub what: String,
    pub family: NetfilterProtoFamily,
    pub flags: u16,
    pub message: NfTablesMessage,
}

pub trait NfTransport {
    /// Sends the operations as one batch; the error names the first one refused.
    fn commit(&mut self, operations: Vec<Operation>) -> NlResult<()>;
    /// Sends one query and returns its replies (all parts of a dump).
    fn query(&mut self, operation: Operation) -> NlResult<Vec<NfTablesMessage>>;
}

/// A NETLINK_NETFILTER socket. It belongs to the netns of the thread that made it.
pub struct NfSocket {
    socket: Socket,
    sequence: u32,
}

impl NfSocket {
    pub fn open() -> NlResult<NfSocket> {
        let fail = |e| NetlinkError::new("open a NETLINK_NETFILTER socket", Cause::Io(e));
        let mut socket = Socket::new(NETLINK_NETFILTER).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        let _ = socket.set_ext_ack(true);
        Ok(NfSocket {
            socket,
            sequence: 0,
        })
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1);
        self.sequence
    }

    fn packet(
        &mut self,
        family: NetfilterProtoFamily,
        res_id: u16,
        flags: u16,
        inner: NetfilterMessageInner,
    ) -> (u32, Vec<u8>) {
        let sequence = self.next_sequence();
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = sequence;
        let message = NetfilterMessage::new(NetfilterHeader::new(family, 0, res_id), inner);
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut bytes);
        (sequence, bytes)
    }

    /// The messages of one read, `blocking` or not (None: nothing was queued).
    fn receive(
        &mut self,
        blocking: bool,
    ) -> std::io::Result<Option<Vec<NetlinkMessage<NetfilterMessage>>>> {
        let mut buffer = vec![0u8; 64 * 1024];
        let flags = if blocking { 0 } else { libc::MSG_DONTWAIT };
        let read = match self.socket.recv(&mut &mut buffer[..], flags) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(e),
        };
        let mut messages = Vec::new();
        let mut offset = 0;
        while offset < read {
            let message = NetlinkMessage::<NetfilterMessage>::deserialize(&buffer[offset..read])
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string()))?;
            let length = message.header.length as usize;
            if length == 0 {
                break;
            }
            offset += length.next_multiple_of(4);
            messages.push(message);
        }
        Ok(Some(messages))
    }
}

impl NfTransport for NfSocket {
    fn commit(&mut self, operations: Vec<Operation>) -> NlResult<()> {
        let first = operations
            .first()
            .map(|o| o.what.clone())
            .unwrap_or_default();
        let io = |e: std::io::Error| NetlinkError::new(first.clone(), Cause::Io(e));
        let mut buffer = Vec::new();
        let (_, begin) = self.packet(
            NetfilterProtoFamily::Unspec,
            NFNL_SUBSYS_NFTABLES,
            NLM_F_REQUEST,
            NetfilterMessageInner::None(ControlMessage::BatchBegin),
        );
        buffer.extend(begin);
        let mut sequences = Vec::new();
        for operation in &operations {
            let (sequence, bytes) = self.packet(
                operation.family,
                0,
                operation.flags,
                NetfilterMessageInner::NfTables(operation.message.clone()),
            );
            sequences.push(sequence);
            buffer.extend(bytes);
        }
        let (_, end) = self.packet(
            NetfilterProtoFamily::Unspec,
            NFNL_SUBSYS_NFTABLES,
            NLM_F_REQUEST,
            NetfilterMessageInner::None(ControlMessage::BatchEnd),
        );
        buffer.extend(end);
        self.socket.send(&buffer, 0).map_err(io)?;
        // The kernel handles a batch within the send: every answer is queued by now.
        let mut answered = 0;
        let mut failure: Option<NetlinkError> = None;
        while answered < sequences.len() {
            let blocking = answered == 0;
            let Some(messages) = self.receive(blocking).map_err(io)? else {
                break;
            };
            for message in messages {
                let NetlinkPayload::Error(error) = message.payload else {
                    continue;
                };
                let Some(index) = sequences
                    .iter()
                    .position(|s| *s == message.header.sequence_number)
                else {
                    continue;
                };
                answered += 1;
                if let (Some(code), None) = (error.code, &failure) {
                    failure = Some(NetlinkError::new(
                        operations[index].what.clone(),
                        Cause::Errno(-code.get()),
                    ));
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    fn query(&mut self, operation: Operation) -> NlResult<Vec<NfTablesMessage>> {
        let what = operation.what.clone();
        let io = |e: std::io::Error| NetlinkError::new(what.clone(), Cause::Io(e));
        let (sequence, bytes) = self.packet(
            operation.family,
            0,
            operation.flags,
            NetfilterMessageInner::NfTables(operation.message),
        );
        self.socket.send(&bytes, 0).map_err(io)?;
        let dump = operation.flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        loop {
            let messages = self.receive(true).map_err(io)?.unwrap_or_default();
            for message in messages {
                if message.header.sequence_number != sequence {
                    continue;
                }
                match message.payload {
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(replies),
                            Some(code) => Err(NetlinkError::new(what, Cause::Errno(-code.get()))),
                        }
                    }
                    NetlinkPayload::InnerMessage(NetfilterMessage {
                        inner: NetfilterMessageInner::NfTables(inner),
                        ..
                    }) => {
                        replies.push(inner);
                        if !dump {
                            // A single GET answers with the object, then its ACK.
                            continue;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Records every batch and query; answers queries from a queue (an empty queue
/// answers with nothing) and fails the next call when told to.
#[derive(Default)]
pub struct FakeNfTransport {
    pub commits: Vec<Vec<Operation>>,
    pub queries: Vec<Operation>,
    answers: VecDeque<NlResult<Vec<NfTablesMessage>>>,
}

impl FakeNfTransport {
    pub fn answer(&mut self, messages: Vec<NfTablesMessage>) {
        self.answers.push_back(Ok(messages));
    }

    pub fn fail(&mut self, errno: i32) {
        self.answers
            .push_back(Err(NetlinkError::new("fake", Cause::Errno(errno))));
    }

    fn next(&mut self, what: &str) -> NlResult<Vec<NfTablesMessage>> {
        match self.answers.pop_front() {
            None => Ok(Vec::new()),
            Some(Ok(messages)) => Ok(messages),
            Some(Err(e)) => Err(NetlinkError::new(what, e.cause)),
        }
    }
}

impl NfTransport for FakeNfTransport {
    fn commit(&mut self, operations: Vec<Operation>) -> NlResult<()> {
        let what = operations
            .first()
            .map(|o| o.what.clone())
            .unwrap_or_default();
        self.commits.push(operations);
        self.next(&what).map(drop)
    }

    fn query(&mut self, operation: Operation) -> NlResult<Vec<NfTablesMessage>> {
        let what = operation.what.clone();
        self.queries.push(operation);
        self.next(&what)
    }
}
