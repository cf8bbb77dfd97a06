//! Where the plugin binaries are: the workspace's own, the suite's list, and
//! Debian's Go reference plugins.

use std::path::{Path, PathBuf};

use crate::skip::skip_or_fail;

/// The directory of the workspace's built binaries (target/<profile>).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CNI_TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The path of a workspace plugin binary; panics with the fix when it is not built.
pub fn plugin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Debian's Go reference plugins, for interop tests.
pub const GO_PLUGIN_DIR: &str = "/usr/lib/cni";

/// A Go reference plugin, or `None` after a loud skip (a failure under CI).
pub fn go_plugin(test: &str, name: &str) -> Option<PathBuf> {
    let path = Path::new(GO_PLUGIN_DIR).join(name);
    if path.is_file() {
        Some(path)
    } else {
        skip_or_fail(
            test,
            &format!(
                "the Go plugin {} is not installed (apt-get install containernetworking-plugins)",
                path.display()
            ),
        );
        None
    }
}

/// One plugin of the suite, as `plugins/plugins.list` names it.
#[derive(Clone, Debug)]
pub struct SuitePlugin {
    /// The library (crate) name.
    pub library: String,
    /// The installed names: the plugin's own first, then its aliases.
    pub names: Vec<String>,
}

impl SuitePlugin {
    pub fn name(&self) -> &str {
        &self.names[0]
    }
}

/// The suite's plugins, from `plugins/plugins.list` (the one list every table of
/// plugins is made from).
pub fn suite_plugins() -> Vec<SuitePlugin> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/plugins.list");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace().map(str::to_owned);
            SuitePlugin {
                library: words.next().expect("a library"),
                names: words.collect(),
            }
        })
        .collect()
}

/// Every installed plugin name (aliases included).
pub fn plugin_names() -> Vec<String> {
    suite_plugins().into_iter().flat_map(|p| p.names).collect()
}
