//! The runtime side of CNI, as the Go libcni does it: load a configuration list,
//! run its plugins in a chain, and keep the final result in the cache that CHECK,
//! DEL and GC read. The cache file is the Go format, so that the Go cnitool (or a
//! runtime built on the Go libcni) and ours can each finish what the other started.
//!
//! `load` finds and reads configuration lists, `cache` holds the cache format,
//! `exec` runs the chain.

use std::path::Path;

mod cache;
pub mod conflist;
mod exec;
mod load;

pub use cache::{CachedAttachment, CACHE_KIND, DEFAULT_CACHE_DIR};
pub use conflist::NetConfList;
pub use exec::{Runtime, RuntimeConf};
pub use load::{load_network_list, NetworkList};

/// The container ID the Go cnitool uses: `cnitool-` and the first 20 hex digits of
/// the SHA-512 of the absolute netns path.
pub fn cnitool_container_id(netns: &Path) -> String {
    libcni::spec::hash::sha512_hex(28, "cnitool-", netns.as_os_str().as_encoded_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh temporary directory for one test.
    pub(crate) fn dir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("libcni-runtime-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn the_go_cnitool_container_id() {
        // hashlib.sha512(b"/var/run/netns/demo-a").hexdigest()[:20], as Go computes it.
        assert_eq!(
            cnitool_container_id(Path::new("/var/run/netns/demo-a")),
            "cnitool-81db4c381d8548fb0657"
        );
    }
}
