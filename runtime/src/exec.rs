//! Running a configuration list's plugins in a chain, for every CNI command.

use std::path::PathBuf;

use libcni::delegate::invoke;
use libcni::spec::config::Attachment;
use libcni::spec::error::{CniError, ErrorList};
use libcni::spec::result::CniResult;
use libcni::spec::version::SpecVersion;
use libcni::Command;
use serde_json::{Map, Value};

use crate::{NetworkList, DEFAULT_CACHE_DIR};

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
}
