//! The protocol: spec versions, the configuration a plugin reads, the results and
//! errors it prints, CNI_ARGS, and the names a request carries. Pure data
//! and validation: nothing here touches the kernel or the filesystem.

pub mod args;
pub mod attachment;
pub mod config;
pub mod error;
pub mod gojson;
pub mod hash;
pub mod names;
pub mod request;
pub mod result;
pub mod version;
