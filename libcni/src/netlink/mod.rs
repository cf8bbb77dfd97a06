//! Synchronous netlink clients: [`Netlink`] (rtnetlink, over netlink-packet-route)
//! and [`nftables::Nftables`], both over one core in `socket`: a [`Socket`] of
//! either protocol, or the [`FakeTransport`] their unit tests use.

mod addr;
mod bridge;
mod link;
pub mod nftables;
mod route;
mod socket;
mod sriov;

use std::fmt;

use netlink_packet_core::{NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;

pub use addr::AddressEntry;
pub use bridge::{BridgePortFlags, BridgeVlanEntry, FdbEntry};
pub use link::{Ipv4Conf, Link, LinkId, LinkKind, NewLink, NewLinkKind};
pub use route::{RouteEntry, RouteSpec};
pub use socket::{FakeTransport, Netfilter, Operation, Protocol, Route, Socket, Transport};
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

/// Flags of a request that changes state and wants the kernel's verdict.
pub(crate) const CHANGE: u16 = NLM_F_REQUEST | NLM_F_ACK;
pub(crate) const DUMP: u16 = NLM_F_REQUEST | NLM_F_DUMP;
pub(crate) const GET: u16 = NLM_F_REQUEST;

/// An rtnetlink transport: the real [`Socket`] or the [`FakeTransport`].
pub trait RouteTransport: Transport<RouteNetlinkMessage> {}
impl<T: Transport<RouteNetlinkMessage>> RouteTransport for T {}

/// The typed rtnetlink operations over a transport.
pub struct Netlink<T: RouteTransport = Socket<Route>> {
    pub transport: T,
}

impl Netlink {
    /// A client for the netns of the calling thread.
    pub fn open() -> NlResult<Netlink> {
        Ok(Netlink {
            transport: Socket::open()?,
        })
    }
}

impl Netlink<FakeTransport<RouteNetlinkMessage>> {
    pub fn fake() -> Netlink<FakeTransport<RouteNetlinkMessage>> {
        Netlink {
            transport: FakeTransport::default(),
        }
    }
}

impl<T: RouteTransport> Netlink<T> {
    /// Sends one request; `what` names it (and its object) for the error.
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        flags: u16,
        what: String,
    ) -> NlResult<Vec<RouteNetlinkMessage>> {
        self.transport.request(Operation {
            what,
            flags,
            message,
        })
    }

    /// Sends one change and waits for the kernel's verdict.
    fn change(&mut self, message: RouteNetlinkMessage, what: String) -> NlResult<()> {
        self.request(message, CHANGE, what).map(drop)
    }
}

/// `on` or `off`, as operations name a setting.
fn on_off(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
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
