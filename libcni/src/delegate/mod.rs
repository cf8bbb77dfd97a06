//! Delegation: exec of another plugin from CNI_PATH ([`invoke`]) and IPAM on top of
//! it ([`ipam`]).

pub mod invoke;
pub mod ipam;
