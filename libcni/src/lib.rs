//! The shared base of this workspace's CNI plugins.
//!
//! Layers, from the protocol down:
//! - protocol: [`version`], [`error`], [`config`], [`result`], [`args`], [`names`], [`skel`];
//! - delegation: [`invoke`] (exec of a plugin from CNI_PATH), [`ipam`] (IPAM on top of it),
//!   [`runtime`] (the runtime side: configuration lists, chains, the result cache);
//! - network namespaces: [`netns`];
//! - netlink: [`netlink`] (a synchronous rtnetlink client with a fake for tests),
//!   and [`apply`], which puts an IPAM result on an interface.

pub mod apply;
pub mod args;
pub mod attach;
pub mod config;
pub mod error;
pub mod fuzzing;
pub mod hash;
pub mod invoke;
pub mod ipam;
pub mod log;
pub mod names;
pub mod netlink;
pub mod netns;
pub mod result;
pub mod runtime;
pub mod skel;
pub mod sysctl;
pub mod version;

pub use error::{CniError, ErrorCode};
pub use result::CniResult;
pub use skel::{About, Plugin, Request};
pub use version::SpecVersion;

/// The commit the workspace was built from.
pub const GIT_COMMIT: &str = env!("LIBCNI_GIT_COMMIT");

/// A named point in a plugin's work where a test can stop it: when the environment
/// variable `CNI_TEST_FAILPOINT` equals `name`, the process stops there for good (a
/// test then kills it, as a crash or a node failure would). Costs one variable read.
pub fn failpoint(name: &str) {
    if std::env::var_os("CNI_TEST_FAILPOINT").is_some_and(|v| v == name) {
        log_warn!("stopped at failpoint {name}");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
