//! Delegation: exec of another plugin from CNI_PATH ([`invoke`]), or its run
//! in-process when it is this executable ([`builtin`]), and IPAM on top of it
//! ([`ipam`]).

pub mod builtin;
pub mod invoke;
pub mod ipam;
