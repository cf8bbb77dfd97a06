//! The node's side of an attachment that is neither protocol nor netlink: an IPAM
//! result put on an interface ([`apply`]), sysctls ([`sysctl`]), and files in state
//! directories reached without following symlinks ([`fs`]).

pub mod announce;
pub mod apply;
pub mod fs;
pub mod sysctl;
