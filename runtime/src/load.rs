//! Finding and reading configuration lists, as the Go libcni does.

use std::path::{Path, PathBuf};

use libcni::host::fs::STATE_FILE_LIMIT;
use libcni::spec::error::CniError;
use libcni::spec::version::SpecVersion;
use serde_json::{Map, Value};

use crate::conflist::NetConfList;

/// A configuration list ready to run.
#[derive(Clone, Debug)]
pub struct NetworkList {
    pub name: String,
    pub version: SpecVersion,
    pub disable_check: bool,
    pub disable_gc: bool,
    pub plugins: Vec<Map<String, Value>>,
    /// The bytes it was loaded from (kept in the cache as Go does).
    pub bytes: Vec<u8>,
}

impl NetworkList {
    pub fn from_bytes(bytes: &[u8]) -> Result<NetworkList, CniError> {
        let list = NetConfList::parse(bytes)?;
        Ok(NetworkList {
            version: list.effective_version()?,
            name: list.name.clone(),
            disable_check: list.disable_check,
            disable_gc: list.disable_gc,
            plugins: list.plugins.clone().unwrap_or_default(),
            bytes: bytes.to_vec(),
        })
    }

    /// A single-plugin config upgraded to a list (the deprecated `.conf` form).
    pub fn from_single_plugin(bytes: &[u8]) -> Result<NetworkList, CniError> {
        let plugin: Map<String, Value> = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decoding(format!("error parsing configuration: {e}")))?;
        if plugin
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            return Err(CniError::invalid_config(
                "error parsing configuration: missing 'type'",
            ));
        }
        let list = serde_json::json!({
            "name": plugin.get("name").cloned().unwrap_or(Value::Null),
            "cniVersion": plugin.get("cniVersion").cloned().unwrap_or(Value::String(String::new())),
            "plugins": [Value::Object(plugin)],
        });
        NetworkList::from_bytes(list.to_string().as_bytes())
    }
}

fn files_with(dir: &Path, extensions: &[&str]) -> Result<Vec<PathBuf>, CniError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CniError::io(format!(
                "failed to read {}: {e}",
                dir.display()
            )))
        }
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| extensions.contains(&e))
        })
        .collect();
    files.sort();
    Ok(files)
}

/// A configuration file: a regular file of at most 1 MiB (the stdin limit of a plugin).
fn read(path: &Path) -> Result<Vec<u8>, CniError> {
    libcni::host::fs::read_config_file(path, STATE_FILE_LIMIT)
        .map_err(|e| CniError::io(format!("error reading {}: {}", path.display(), e.cause)))
}

/// Loads network `name` from `dir` as libcni does: `*.conflist` in name order first,
/// then a single-plugin `.conf`/`.json` upgraded to a list. Unless
/// `loadOnlyInlinedPlugins`, the `*.conf` plugin objects of `<dir>/<name>/` are
/// appended to a list's plugins.
pub fn load_network_list(dir: &Path, name: &str) -> Result<NetworkList, CniError> {
    for file in files_with(dir, &["conflist"])? {
        let bytes = read(&file)?;
        let list = NetConfList::parse(&bytes).map_err(|e| e.context(file.display()))?;
        if list.name != name {
            continue;
        }
        let mut network = NetworkList::from_bytes(&bytes)?;
        if !list.load_only_inlined_plugins {
            for plugin_file in files_with(&dir.join(name), &["conf"])? {
                let plugin: Map<String, Value> = serde_json::from_slice(&read(&plugin_file)?)
                    .map_err(|e| {
                        CniError::decoding(format!("error parsing {}: {e}", plugin_file.display()))
                    })?;
                if plugin
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .is_empty()
                {
                    return Err(CniError::invalid_config(format!(
                        "{}: missing 'type'",
                        plugin_file.display()
                    )));
                }
                network.plugins.push(plugin);
            }
        }
        if network.plugins.is_empty() {
            return Err(CniError::invalid_config(format!(
                "network {name:?}: no plugin configs found"
            )));
        }
        return Ok(network);
    }
    for file in files_with(dir, &["conf", "json"])? {
        let bytes = read(&file)?;
        let Ok(value) = serde_json::from_slice::<Value>(&bytes) else {
            continue;
        };
        if value.get("name").and_then(Value::as_str) == Some(name) {
            return NetworkList::from_single_plugin(&bytes).map_err(|e| e.context(file.display()));
        }
    }
    Err(CniError::invalid_config(format!(
        "no net configuration with name {name:?} in {}",
        dir.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::dir;

    #[test]
    fn conflists_come_first_then_single_plugin_configs() {
        let d = dir("load");
        std::fs::write(
            d.join("10-a.conf"),
            r#"{"cniVersion":"0.4.0","name":"net","type":"static-conf"}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("20-b.conflist"),
            r#"{"cniVersion":"1.0.0","name":"net","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        std::fs::write(
            d.join("30-c.json"),
            r#"{"cniVersion":"0.3.1","name":"single","type":"macvlan"}"#,
        )
        .unwrap();
        let list = load_network_list(&d, "net").unwrap();
        assert_eq!(list.plugins[0]["type"], "bridge");
        let single = load_network_list(&d, "single").unwrap();
        assert_eq!(
            (single.version, single.plugins[0]["type"].as_str()),
            (SpecVersion::V0_3_1, Some("macvlan"))
        );
        let e = load_network_list(&d, "nope").unwrap_err();
        assert!(
            e.msg.contains("no net configuration with name \"nope\""),
            "{}",
            e.msg
        );
        std::fs::remove_dir_all(d).unwrap();
    }

    #[test]
    fn sibling_plugins_are_appended_unless_only_inlined() {
        let d = dir("siblings");
        std::fs::create_dir(d.join("net")).unwrap();
        std::fs::write(d.join("net/50-tuning.conf"), r#"{"type":"tuning"}"#).unwrap();
        std::fs::write(
            d.join("a.conflist"),
            r#"{"cniVersion":"1.1.0","name":"net","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        let list = load_network_list(&d, "net").unwrap();
        assert_eq!(list.plugins.len(), 2);
        assert_eq!(list.plugins[1]["type"], "tuning");
        std::fs::write(d.join("a.conflist"), r#"{"cniVersion":"1.1.0","name":"net","loadOnlyInlinedPlugins":"true","plugins":[{"type":"bridge"}]}"#).unwrap();
        assert_eq!(load_network_list(&d, "net").unwrap().plugins.len(), 1);
        std::fs::remove_dir_all(d).unwrap();
    }
}
