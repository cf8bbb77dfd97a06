//! A synchronous rtnetlink client over netlink-packet-route.
//!
//! [`Transport`] moves one request and its replies; [`SocketTransport`] is a real
//! NETLINK_ROUTE socket (bound to the netns of the thread that opened it, see
//! [`crate::netns`]), [`FakeTransport`] records what was sent so that message
//! building is unit-tested without root. [`Netlink`] holds the typed operations.

mod addr;
mod bridge;
mod link;
pub mod nftables;
mod route;
mod sriov;

use std::collections::VecDeque;
use std::fmt;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

pub use addr::AddressEntry;
pub use bridge::{BridgePortFlags, BridgeVlanEntry};
pub use link::{Link, LinkId, LinkKind, NewLink, NewLinkKind};
pub use route::{RouteEntry, RouteSpec};
pub use sriov::{VfConfig, VfLinkStateSetting, VfRate, VfState, VfVlanSetting};

/// A failed netlink operation: what we tried (naming the object) and why.
#[derive(Debug, thiserror::Error)]
pub struct NetlinkError {
    /// What was being done, e.g. `move "veth1a2b" into netns /run/netns/x`.
    pub operation: String,
    pub cause: Cause,
}

#[derive(Debug)]
pub enum Cause {
    /// The kernel answered with this errno.
    Errno(i32),
    Io(std::io::Error),
    Decode(String),
}

impl NetlinkError {
    pub fn new(operation: impl Into<String>, cause: Cause) -> NetlinkError {
        NetlinkError {
            operation: operation.into(),
            cause,
        }
    }

    pub fn errno(&self) -> Option<i32> {
        match &self.cause {
            Cause::Errno(e) => Some(*e),
            Cause::Io(e) => e.raw_os_error(),
            Cause::Decode(_) => None,
        }
    }

    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH)
        )
    }

    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The operation with its context, e.g. the caller says which attachment.
    pub fn context(mut self, what: impl fmt::Display) -> NetlinkError {
        self.operation = format!("{what}: {}", self.operation);
        self
    }
}

impl fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "failed to {}: ", self.operation)?;
        match &self.cause {
            Cause::Errno(e) => write!(f, "{}", nix::errno::Errno::from_raw(*e)),
            Cause::Io(e) => write!(f, "{e}"),
            Cause::Decode(e) => write!(f, "malformed netlink reply: {e}"),
        }
    }
}

pub type NlResult<T> = Result<T, NetlinkError>;

/// Sends one request and returns the messages of its reply (empty for a bare ACK).
/// `operation` names the request for the error.
pub trait Transport {
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        operation: &dyn Fn() -> String,
    ) -> NlResult<Vec<RouteNetlinkMessage>>;
}

/// A NETLINK_ROUTE socket. It belongs to the netns of the thread that made it.
pub struct SocketTransport {
    socket: Socket,
    sequence: u32,
}

impl SocketTransport {
    pub fn open() -> NlResult<SocketTransport> {
        let fail = |e| NetlinkError::new("open a NETLINK_ROUTE socket", Cause::Io(e));
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(fail)?;
        socket.bind_auto().map_err(fail)?;
        socket.connect(&SocketAddr::new(0, 0)).map_err(fail)?;
        // Strict checking makes the kernel honour filters in dump requests.
        let _ = socket.set_netlink_get_strict_chk(true);
        let _ = socket.set_ext_ack(true);
        Ok(SocketTransport {
            socket,
            sequence: 0,
        })
    }
}

impl Transport for SocketTransport {
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        operation: &dyn Fn() -> String,
    ) -> NlResult<Vec<RouteNetlinkMessage>> {
        let io_error = |e: std::io::Error| NetlinkError::new(operation(), Cause::Io(e));
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut out = vec![0u8; packet.buffer_len()];
        packet.serialize(&mut out);
        self.socket.send(&out, 0).map_err(io_error)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let wants_ack = flags & NLM_F_ACK == NLM_F_ACK;
        let mut replies = Vec::new();
        loop {
            let (bytes, _) = self.socket.recv_from_full().map_err(io_error)?;
            let mut offset = 0;
            while offset < bytes.len() {
                let reply = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&bytes[offset..])
                    .map_err(|e| NetlinkError::new(operation(), Cause::Decode(e.to_string())))?;
                let length = reply.header.length as usize;
                if length == 0 {
                    break;
                }
                offset += length;
                if reply.header.sequence_number != self.sequence {
                    continue; // a late reply to an earlier request
                }
                match reply.payload {
                    NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::Error(error) => {
                        return match error.code {
                            None => Ok(replies), // the ACK
                            Some(code) => {
                                Err(NetlinkError::new(operation(), Cause::Errno(-code.get())))
                            }
                        };
                    }
                    NetlinkPayload::InnerMessage(inner) => {
                        replies.push(inner);
                        if !dump && !wants_ack {
                            return Ok(replies);
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

/// Records every request; answers from a queue (an empty queue answers "ACK").
#[derive(Default)]
pub struct FakeTransport {
    pub sent: Vec<(RouteNetlinkMessage, u16)>,
    pub replies: VecDeque<NlResult<Vec<RouteNetlinkMessage>>>,
}

impl FakeTransport {
    pub fn reply(&mut self, messages: Vec<RouteNetlinkMessage>) {
        self.replies.push_back(Ok(messages));
    }

    pub fn fail(&mut self, errno: i32) {
        self.replies
            .push_back(Err(NetlinkError::new("fake", Cause::Errno(errno))));
    }
}

impl Transport for FakeTransport {
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        operation: &dyn Fn() -> String,
    ) -> NlResult<Vec<RouteNetlinkMessage>> {
        self.sent.push((message, flags));
        match self.replies.pop_front() {
            None => Ok(Vec::new()),
            Some(Ok(messages)) => Ok(messages),
            Some(Err(e)) => Err(NetlinkError::new(operation(), e.cause)),
        }
    }
}

/// Flags of a request that changes state and wants the kernel's verdict.
pub(crate) const CHANGE: u16 = NLM_F_REQUEST | NLM_F_ACK;
pub(crate) const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;
pub(crate) const GET: u16 = NLM_F_REQUEST;

/// The typed operations over a transport.
pub struct Netlink<T: Transport = SocketTransport> {
    pub transport: T,
}

impl Netlink<SocketTransport> {
    /// A client for the netns of the calling thread.
    pub fn open() -> NlResult<Netlink<SocketTransport>> {
        Ok(Netlink {
            transport: SocketTransport::open()?,
        })
    }
}

impl Netlink<FakeTransport> {
    pub fn fake() -> Netlink<FakeTransport> {
        Netlink {
            transport: FakeTransport::default(),
        }
    }
}

/// A name made of `prefix` and `hex_digits` random hex digits, for interfaces that
/// need a unique temporary or host-side name (`veth1a2b3c4d`).
pub fn random_name(prefix: &str, hex_digits: usize) -> String {
    let mut bytes = vec![0u8; hex_digits.div_ceil(2)];
    // getrandom(2) does not fail for requests this small once the pool is ready.
    let filled = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    if filled != bytes.len() as isize {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b = (nanos >> (i % 4 * 8)) as u8 ^ std::process::id() as u8);
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{}", &hex[..hex_digits])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_operation_and_the_errno() {
        let e = NetlinkError::new(
            "move \"veth1a2b\" into netns /run/netns/x",
            Cause::Errno(libc::EEXIST),
        );
        assert_eq!(
            e.to_string(),
            "failed to move \"veth1a2b\" into netns /run/netns/x: EEXIST: File exists"
        );
        assert!(e.is_exists());
    }
}
