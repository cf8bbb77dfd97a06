//! The Go libcni's result cache: one file per attachment under `<cacheDir>/results`.

use libcni::host::fs::{FsError, StateDir};
use libcni::spec::attachment::AttachmentId;
use libcni::spec::error::CniError;
use libcni::spec::result::CniResult;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::{NetworkList, Runtime, RuntimeConf};

pub const DEFAULT_CACHE_DIR: &str = "/var/lib/cni";
pub const CACHE_KIND: &str = "cniCacheV1";

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

impl Runtime {
    /// `<network>-<containerID>-<ifname>` (the Go name), hashed when a long
    /// container ID would not fit a file name.
    pub(crate) fn cache_name(network: &str, rt: &RuntimeConf) -> String {
        AttachmentId::new(network, &rt.container_id, &rt.ifname).runtime_cache_name()
    }

    /// The results directory, reached without following a symlink planted in it.
    pub(crate) fn results_dir(&self, create: bool) -> Result<Option<StateDir>, FsError> {
        let path = self.cache_dir.join("results");
        if create {
            StateDir::create(&path, 0o700).map(Some)
        } else {
            StateDir::open_if_present(&path)
        }
    }

    pub(crate) fn write_cache(
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
    pub(crate) fn cached_result(&self, list: &NetworkList, rt: &RuntimeConf) -> Option<Value> {
        let cached = self.read_cache(&list.name, rt)?.result?;
        let (result, _) =
            CniResult::from_plugin_output(cached.to_string().as_bytes(), list.version).ok()?;
        result.to_value(list.version).ok()
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::dir;
    use serde_json::json;

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
