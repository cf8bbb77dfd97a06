//! The black-box harness: run a plugin binary as a runtime does (env, stdin, exit
//! code, stdout), inside namespaces the test makes for itself, and look at what it
//! left in the kernel and on disk.
//!
//! A privileged test starts with `let Some(sb) = Sandbox::new("name") else { return };`.
//! The sandbox moves the test's thread into a new network namespace (the "host") and
//! a private mount namespace with its own tmpfs on /run/netns, /var/lib/cni and a
//! scratch directory. Processes the test spawns inherit both, so tests run in
//! parallel and never see the machine's interfaces or state.

mod call;
mod capture;
mod check;
pub mod differential;
mod fuzz;
mod plugins;
mod sandbox;
mod scratch;
mod skip;
mod sriov;
mod store;
pub mod wire;

pub use call::*;
pub use capture::*;
pub use check::*;
pub use fuzz::*;
pub use plugins::*;
pub use sandbox::*;
pub use scratch::*;
pub use skip::*;
pub use sriov::*;
pub use store::*;
