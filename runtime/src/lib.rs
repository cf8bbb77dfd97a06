//! The runtime side of CNI, as the Go libcni does it: load a configuration list,
//! run its plugins in a chain, and keep the final result in the cache that CHECK,
//! DEL and GC read. The cache file is the Go format, so that the Go cnitool (or a
//! runtime built on the Go libcni) and ours can each finish what the other started.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod conflist;

pub use conflist::NetConfList;
use libcni::delegate::invoke;
use libcni::host::fs::{FsError, StateDir, STATE_FILE_LIMIT};
use libcni::spec::attachment::AttachmentId;
use libcni::spec::config::Attachment;
use libcni::spec::error::{CniError, ErrorList};
use libcni::spec::result::CniResult;
use libcni::spec::version::SpecVersion;
use libcni::Command;

pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
pub const CACHE_KIND: &str = "cniCacheV1";

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

/// What identifies one attachment, as the runtime passes it to every plugin.
#[derive(Clone, Debug, Default)]
pub struct RuntimeConf {
    pub container_id: String,
    pub netns: String,
    pub ifname: String,
    pub args: Vec<(String, String)>,
    /// Capability arguments (CAP_ARGS): injected as `runtimeConfig` for the
    /// capabilities a plugin declares.
    pub capability_args: Map<String, Value>,
}

/// The Go libcni's cache entry (`cachedInfo`), field for field.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CachedAttachment {
    pub kind: String,
    #[serde(rename = "containerId")]
    pub container_id: String,
    /// The configuration list's bytes, base64 as Go's `[]byte` marshals.
    #[serde(with = "base64_bytes")]
    pub config: Vec<u8>,
    #[serde(rename = "ifName")]
    pub ifname: String,
    #[serde(rename = "networkName")]
    pub network_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub netns: String,
    #[serde(rename = "cniArgs", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_args: Vec<(String, String)>,
    #[serde(
        rename = "capabilityArgs",
        default,
        skip_serializing_if = "Map::is_empty"
    )]
    pub capability_args: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
}

mod base64_bytes {
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = Option::<String>::deserialize(d)?.unwrap_or_default();
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// Runs configuration lists: the plugin search path and the cache directory.
#[derive(Clone, Debug)]
pub struct Runtime {
    pub path: Vec<PathBuf>,
    pub cache_dir: PathBuf,
}

fn describe(plugin: &Map<String, Value>) -> String {
    format!(
        "type={:?}",
        plugin.get("type").and_then(Value::as_str).unwrap_or("")
    )
}

impl Runtime {
    pub fn new(path: Vec<PathBuf>) -> Runtime {
        Runtime {
            path,
            cache_dir: PathBuf::from(DEFAULT_CACHE_DIR),
        }
    }

    fn binary(&self, plugin: &Map<String, Value>) -> Result<PathBuf, CniError> {
        invoke::find_plugin(
            plugin.get("type").and_then(Value::as_str).unwrap_or(""),
            &self.path,
        )
    }

    fn env(&self, command: Command, rt: Option<&RuntimeConf>) -> Vec<(&'static str, String)> {
        let path = self
            .path
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(":");
        let mut env = vec![
            ("CNI_COMMAND", command.as_str().to_string()),
            ("CNI_PATH", path),
        ];
        let rt = rt.cloned().unwrap_or_default();
        let args = rt
            .args
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(";");
        env.extend([
            ("CNI_CONTAINERID", rt.container_id),
            ("CNI_NETNS", rt.netns),
            ("CNI_IFNAME", rt.ifname),
            ("CNI_ARGS", args),
        ]);
        env
    }

    /// One plugin's stdin: its object with the list's name and version, the
    /// previous result, and `runtimeConfig` for the capabilities it declares.
    pub fn plugin_config(
        &self,
        list: &NetworkList,
        plugin: &Map<String, Value>,
        prev: Option<&Value>,
        rt: Option<&RuntimeConf>,
    ) -> Vec<u8> {
        let mut conf = base_plugin_config(list, plugin);
        if let Some(prev) = prev {
            conf.insert("prevResult".into(), prev.clone());
        }
        if let Some(rt) = rt {
            let declared = plugin.get("capabilities").and_then(Value::as_object);
            let runtime_config: Map<String, Value> = declared
                .into_iter()
                .flatten()
                .filter(|(_, on)| on.as_bool() == Some(true))
                .filter_map(|(cap, _)| {
                    rt.capability_args
                        .get(cap)
                        .map(|v| (cap.clone(), v.clone()))
                })
                .collect();
            if !runtime_config.is_empty() {
                conf.insert("runtimeConfig".into(), Value::Object(runtime_config));
            }
        }
        serde_json::to_vec(&conf).expect("a map serializes")
    }

    /// VERSION of a plugin.
    pub fn version_info(&self, plugin_type: &str) -> Result<Value, CniError> {
        let binary = invoke::find_plugin(plugin_type, &self.path)?;
        let stdin = serde_json::json!({"cniVersion": SpecVersion::LATEST.as_str()}).to_string();
        let out = invoke::run(&binary, &self.env(Command::Version, None), stdin.as_bytes())
            .map_err(|e| e.context(format!("plugin {plugin_type:?} failed (version)")))?;
        serde_json::from_slice(&out).map_err(|e| {
            CniError::decoding(format!(
                "plugin {plugin_type:?} printed an unreadable VERSION reply: {e}"
            ))
        })
    }

    /// Every plugin of the list must support the list's version.
    pub fn validate(&self, list: &NetworkList) -> Result<(), CniError> {
        let mut errors = ErrorList::new();
        for plugin in &list.plugins {
            let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or("");
            let check = self.version_info(plugin_type).and_then(|info| {
                let supported: Vec<&str> = info["supportedVersions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .collect();
                if supported.contains(&list.version.as_str()) {
                    Ok(())
                } else {
                    Err(CniError::new(
                        libcni::ErrorCode::IncompatibleVersion,
                        format!(
                            "plugin {plugin_type:?} does not support config version {:?}",
                            list.version.as_str()
                        ),
                    )
                    .with_details(format!("it supports {supported:?}")))
                }
            });
            errors.record(check);
        }
        errors.into_result()
    }

    /// `<network>-<containerID>-<ifname>` (the Go name), hashed when a long
    /// container ID would not fit a file name.
    fn cache_name(network: &str, rt: &RuntimeConf) -> String {
        AttachmentId::new(network, &rt.container_id, &rt.ifname).runtime_cache_name()
    }

    /// The results directory, reached without following a symlink planted in it.
    fn results_dir(&self, create: bool) -> Result<Option<StateDir>, FsError> {
        let path = self.cache_dir.join("results");
        if create {
            StateDir::create(&path, 0o700).map(Some)
        } else {
            StateDir::open_if_present(&path)
        }
    }

    fn check_names(list: &NetworkList, rt: &RuntimeConf) -> Result<(), CniError> {
        libcni::spec::names::validate_container_id(&rt.container_id)?;
        libcni::spec::names::validate_network_name(&list.name)?;
        libcni::spec::names::validate_interface_name(&rt.ifname)
    }

    /// Runs ADD through the chain, each plugin getting the previous result, and
    /// caches the final result.
    pub fn add(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<Value, CniError> {
        Runtime::check_names(list, rt)?;
        let mut prev: Option<Value> = None;
        for plugin in &list.plugins {
            let binary = self.binary(plugin)?;
            let stdin = self.plugin_config(list, plugin, prev.as_ref(), Some(rt));
            let out = invoke::run(&binary, &self.env(Command::Add, Some(rt)), &stdin)
                .map_err(|e| e.context(format!("plugin {} failed (add)", describe(plugin))))?;
            let (result, _) = CniResult::from_plugin_output(&out, list.version).map_err(|e| {
                e.context(format!(
                    "plugin {} printed an unusable result",
                    describe(plugin)
                ))
            })?;
            prev = Some(result.to_value(list.version)?);
        }
        let result = prev.unwrap_or(Value::Null);
        if let Err(e) = self.write_cache(list, rt, &result) {
            // An attachment without its cache entry could never be checked or
            // deleted with its result: undo it, as a failed ADD.
            if let Err(undo) = self.del_with(list, rt, Some(result)) {
                return Err(CniError::io(format!(
                    "{}; undoing the ADD failed too: {}",
                    e.msg, undo.msg
                )));
            }
            return Err(e);
        }
        Ok(result)
    }

    fn write_cache(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
        result: &Value,
    ) -> Result<(), CniError> {
        let entry = CachedAttachment {
            kind: CACHE_KIND.into(),
            container_id: rt.container_id.clone(),
            config: list.bytes.clone(),
            ifname: rt.ifname.clone(),
            network_name: list.name.clone(),
            netns: rt.netns.clone(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: Some(result.clone()),
        };
        let bytes = serde_json::to_vec(&entry).expect("serializes");
        // Written whole, then renamed: a crash never leaves a half-written cache entry.
        self.results_dir(true)
            .and_then(|dir| {
                dir.expect("created")
                    .write_atomic(&Self::cache_name(&list.name, rt), &bytes, 0o600)
            })
            .map_err(|e| CniError::io(format!("failed to write the cached result: {e}")))
    }

    /// The cached entry, also from the legacy cache format (a bare result).
    pub fn read_cache(&self, network: &str, rt: &RuntimeConf) -> Option<CachedAttachment> {
        let bytes = self
            .results_dir(false)
            .ok()??
            .read(&Self::cache_name(network, rt))
            .ok()??;
        let value: Value = serde_json::from_slice(&bytes).ok()?;
        if value.get("kind").and_then(Value::as_str) == Some(CACHE_KIND) {
            return serde_json::from_value(value).ok();
        }
        Some(CachedAttachment {
            kind: String::new(),
            container_id: rt.container_id.clone(),
            config: Vec::new(),
            ifname: rt.ifname.clone(),
            network_name: network.into(),
            netns: rt.netns.clone(),
            cni_args: Vec::new(),
            capability_args: Map::new(),
            result: Some(value),
        })
    }

    /// The cached result converted to the list's version.
    fn cached_result(&self, list: &NetworkList, rt: &RuntimeConf) -> Option<Value> {
        let cached = self.read_cache(&list.name, rt)?.result?;
        let (result, _) =
            CniResult::from_plugin_output(cached.to_string().as_bytes(), list.version).ok()?;
        result.to_value(list.version).ok()
    }

    pub fn check(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), CniError> {
        if !list.version.supports_check() {
            return Err(CniError::new(
                libcni::ErrorCode::IncompatibleVersion,
                format!(
                    "configuration version {:?} does not support the CHECK command",
                    list.version.as_str()
                ),
            ));
        }
        if list.disable_check {
            return Ok(());
        }
        let cached = self.cached_result(list, rt).ok_or_else(|| {
            CniError::io(format!(
                "failed to get network {:?} cached result: no cache entry",
                list.name
            ))
        })?;
        for plugin in &list.plugins {
            let binary = self.binary(plugin)?;
            let stdin = self.plugin_config(list, plugin, Some(&cached), Some(rt));
            invoke::run(&binary, &self.env(Command::Check, Some(rt)), &stdin)
                .map_err(|e| e.context(format!("plugin {} failed (check)", describe(plugin))))?;
        }
        Ok(())
    }

    /// DEL through the chain in reverse order, each plugin getting the cached
    /// result (0.4.0 and later). It goes on past a failing plugin and reports every
    /// failure; the cache entry is removed only when all succeeded.
    pub fn del(&self, list: &NetworkList, rt: &RuntimeConf) -> Result<(), CniError> {
        let cached = if list.version.supports_check() {
            self.cached_result(list, rt)
        } else {
            None
        };
        self.del_with(list, rt, cached)
    }

    /// DEL through the chain in reverse with `cached` as prevResult.
    fn del_with(
        &self,
        list: &NetworkList,
        rt: &RuntimeConf,
        cached: Option<Value>,
    ) -> Result<(), CniError> {
        let cached = cached.filter(|_| list.version.supports_check());
        let mut errors = ErrorList::new();
        for plugin in list.plugins.iter().rev() {
            let step = self.binary(plugin).and_then(|binary| {
                let stdin = self.plugin_config(list, plugin, cached.as_ref(), Some(rt));
                invoke::run(&binary, &self.env(Command::Del, Some(rt)), &stdin).map(|_| ())
            });
            errors.record(
                step.map_err(|e| e.context(format!("plugin {} failed (delete)", describe(plugin)))),
            );
        }
        let outcome = errors.into_result();
        if outcome.is_ok() {
            if let Ok(Some(dir)) = self.results_dir(false) {
                let _ = dir.remove(&Self::cache_name(&list.name, rt));
            }
        }
        outcome
    }

    /// Every cached attachment (of any network).
    pub fn cached_attachments(&self) -> Vec<CachedAttachment> {
        let Ok(Some(dir)) = self.results_dir(false) else {
            return Vec::new();
        };
        dir.entries()
            .unwrap_or_default()
            .iter()
            .filter(|name| !name.starts_with('.'))
            .filter_map(|name| dir.read(name).ok().flatten())
            .filter_map(|b| serde_json::from_slice::<CachedAttachment>(&b).ok())
            .filter(|c| c.kind == CACHE_KIND && !c.ifname.is_empty() && !c.network_name.is_empty())
            .collect()
    }

    /// GC: DEL of every cached attachment of the network that is not valid (all of
    /// them when `valid` is None), then GC to every plugin (1.1.0), honouring
    /// `disableGC`. Goes on past errors and reports them all.
    pub fn gc(&self, list: &NetworkList, valid: Option<&[Attachment]>) -> Result<(), CniError> {
        if list.disable_gc {
            return Ok(());
        }
        let mut errors = ErrorList::new();
        for cached in self
            .cached_attachments()
            .into_iter()
            .filter(|c| c.network_name == list.name)
        {
            let live = valid.is_some_and(|v| {
                v.iter()
                    .any(|a| a.container_id == cached.container_id && a.ifname == cached.ifname)
            });
            if live {
                continue;
            }
            let rt = RuntimeConf {
                container_id: cached.container_id.clone(),
                netns: cached.netns.clone(),
                ifname: cached.ifname.clone(),
                args: cached.cni_args.clone(),
                capability_args: cached.capability_args.clone(),
            };
            errors.record(self.del(list, &rt).map_err(|e| {
                e.context(format!(
                    "failed to delete stale attachment {} {}",
                    rt.container_id, rt.ifname
                ))
            }));
        }
        if list.version.supports_gc_and_status() {
            let attachments = serde_json::to_value(valid.unwrap_or(&[])).expect("serializes");
            for plugin in &list.plugins {
                let mut conf = base_plugin_config(list, plugin);
                if valid.is_some() {
                    conf.insert("cni.dev/valid-attachments".into(), attachments.clone());
                    conf.insert("cni.dev/attachments".into(), attachments.clone());
                }
                let step = self.binary(plugin).and_then(|binary| {
                    invoke::run(
                        &binary,
                        &self.env(Command::Gc, None),
                        &serde_json::to_vec(&conf).expect("serializes"),
                    )
                    .map(|_| ())
                });
                errors.record(
                    step.map_err(|e| {
                        e.context(format!("failed to GC plugin {}", describe(plugin)))
                    }),
                );
            }
        }
        errors.into_result()
    }

    /// STATUS of every plugin (1.1.0; nothing to ask below). Stops at the first
    /// failure so that its code is the answer.
    pub fn status(&self, list: &NetworkList) -> Result<(), CniError> {
        if !list.version.supports_gc_and_status() {
            return Ok(());
        }
        for plugin in &list.plugins {
            let conf = base_plugin_config(list, plugin);
            let binary = self.binary(plugin)?;
            invoke::run(
                &binary,
                &self.env(Command::Status, None),
                &serde_json::to_vec(&conf).expect("serializes"),
            )
            .map_err(|e| e.context(format!("plugin {} failed (status)", describe(plugin))))?;
        }
        Ok(())
    }
}

/// The container ID the Go cnitool uses: `cnitool-` and the first 20 hex digits of
/// the SHA-512 of the absolute netns path.
pub fn cnitool_container_id(netns: &Path) -> String {
    libcni::spec::hash::sha512_hex(28, "cnitool-", netns.as_os_str().as_encoded_bytes())
}

/// A plugin's object with the list's name and version, as every command sends it.
fn base_plugin_config(list: &NetworkList, plugin: &Map<String, Value>) -> Map<String, Value> {
    let mut conf = plugin.clone();
    conf.insert("name".into(), Value::String(list.name.clone()));
    conf.insert(
        "cniVersion".into(),
        Value::String(list.version.as_str().into()),
    );
    conf
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dir(tag: &str) -> PathBuf {
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

    #[test]
    fn runtime_config_only_for_declared_capabilities() {
        let list = NetworkList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"portmap","capabilities":{"portMappings":true,"mac":false}}]}"#,
        )
        .unwrap();
        let mut rt = RuntimeConf::default();
        rt.capability_args.insert(
            "portMappings".into(),
            json!([{"hostPort": 80, "containerPort": 8080}]),
        );
        rt.capability_args
            .insert("mac".into(), json!("02:00:00:00:00:01"));
        rt.capability_args
            .insert("ips".into(), json!(["10.0.0.1/24"]));
        let runtime = Runtime::new(vec![]);
        let conf: Value = serde_json::from_slice(&runtime.plugin_config(
            &list,
            &list.plugins[0],
            Some(&json!({"cniVersion":"1.0.0"})),
            Some(&rt),
        ))
        .unwrap();
        assert_eq!(conf["name"], "n");
        assert_eq!(conf["cniVersion"], "1.0.0");
        assert_eq!(
            conf["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 80, "containerPort": 8080}]})
        );
        assert!(conf["prevResult"].is_object());
    }

    #[test]
    fn cache_entry_is_the_go_format() {
        let d = dir("cache");
        let runtime = Runtime {
            path: vec![],
            cache_dir: d.clone(),
        };
        let list = NetworkList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"x"}]}"#,
        )
        .unwrap();
        let rt = RuntimeConf {
            container_id: "c1".into(),
            netns: "/run/netns/a".into(),
            ifname: "eth0".into(),
            args: vec![("K".into(), "V".into())],
            ..Default::default()
        };
        runtime
            .write_cache(
                &list,
                &rt,
                &json!({"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.2/24"}]}),
            )
            .unwrap();
        let raw: Value =
            serde_json::from_slice(&std::fs::read(d.join("results/n-c1-eth0")).unwrap()).unwrap();
        assert_eq!(raw["kind"], "cniCacheV1");
        assert_eq!(raw["containerId"], "c1");
        assert_eq!(raw["ifName"], "eth0");
        assert_eq!(raw["networkName"], "n");
        assert_eq!(raw["cniArgs"], json!([["K", "V"]]));
        let config = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            raw["config"].as_str().unwrap(),
        )
        .unwrap();
        assert_eq!(config, list.bytes);
        assert_eq!(
            runtime.cached_result(&list, &rt).unwrap()["ips"][0]["address"],
            "10.0.0.2/24"
        );
        assert_eq!(runtime.cached_attachments().len(), 1);
        std::fs::remove_dir_all(d).unwrap();
    }
}
