//! The shared base of this workspace's CNI plugins, in layers from the protocol down
//! (each uses only the ones below it):
//! - [`spec`]: the protocol as data: versions, configuration, results, errors,
//!   CNI_ARGS and names; and [`skel`], which turns an invocation into a
//!   validated [`Request`] and a plugin's answer into stdout and an exit status;
//! - [`delegate`]: exec of another plugin from CNI_PATH, and IPAM on top of it;
//! - [`attach`]: the steps plugins share to put an interface into a container,
//!   among them the driver of single-link plugins (macvlan, vlan);
//! - [`host`]: an IPAM result put on an interface, sysctls, and safe access to
//!   state directories;
//! - [`netns`]: network namespaces, entered only on threads made for it;
//! - [`netlink`]: a synchronous rtnetlink client, with a fake transport for tests;
//! - [`mac`]: MAC addresses, a leaf that both `spec` and `netlink` use.
//!
//! The runtime side (configuration lists, chains, the result cache) is the
//! `cni-runtime` crate, which only cnitool links.

pub mod attach;
pub mod delegate;
pub mod fuzzing;
pub mod hooks;
pub mod host;
pub mod log;
pub mod mac;
pub mod netlink;
pub mod netns;
pub mod skel;
pub mod spec;

pub use skel::{About, Plugin};
pub use spec::error::{CniError, ErrorCode};
pub use spec::request::{Command, Request};
pub use spec::result::CniResult;
pub use spec::version::SpecVersion;

/// The commit the workspace was built from.
pub const GIT_COMMIT: &str = env!("LIBCNI_GIT_COMMIT");
