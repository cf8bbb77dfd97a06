//! Network configuration: a single plugin's config (what a plugin reads on stdin)
//! and a configuration list (what a runtime loads).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::mac::MacAddr;
use crate::spec::error::CniError;
use crate::spec::result::Dns;

/// A plugin config on stdin. `T` holds the plugin's own keys (flattened), so one
/// parse gives both the common keys and the plugin's.
#[derive(Clone, Debug, Deserialize)]
pub struct NetConf<T = NoPluginKeys> {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(default)]
    pub capabilities: BTreeMap<String, bool>,
    #[serde(default)]
    pub ipam: Option<IpamConfig>,
    #[serde(default)]
    pub dns: Option<Dns>,
    #[serde(default)]
    pub args: Option<ConfigArgs>,
    #[serde(rename = "runtimeConfig", default)]
    pub runtime_config: RuntimeConfig,
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<Value>,
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
    /// The name the 1.1.0 spec tag used for the same list; runtimes send both.
    #[serde(rename = "cni.dev/attachments", default)]
    pub legacy_attachments: Option<Vec<Attachment>>,
    #[serde(flatten)]
    pub plugin: T,
}

/// For plugins with no keys of their own.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct NoPluginKeys {}

impl<T> NetConf<T> {
    /// The attachments a GC request says are still valid (either key).
    pub fn gc_valid_attachments(&self) -> Vec<Attachment> {
        let mut all = self.valid_attachments.clone().unwrap_or_default();
        for a in self.legacy_attachments.iter().flatten() {
            if !all.contains(a) {
                all.push(a.clone());
            }
        }
        all
    }

    /// `prevResult`, read in the request's version (as the Go `ParsePrevResult`).
    pub fn parsed_prev_result(
        &self,
        version: crate::SpecVersion,
    ) -> Result<Option<crate::CniResult>, CniError> {
        match &self.prev_result {
            None | Some(Value::Null) => Ok(None),
            Some(value) if value.as_object().is_some_and(|o| o.is_empty()) => Ok(None),
            Some(value) => crate::CniResult::from_value(value, version)
                .map(Some)
                .map_err(|e| e.context("invalid prevResult")),
        }
    }

    /// The IPAM section when it names a plugin; `None` or `{}` means layer 2 only.
    /// prevResult, which CHECK requires (the Go plugins' message when it is missing).
    pub fn required_prev_result(
        &self,
        version: crate::SpecVersion,
    ) -> Result<crate::CniResult, CniError> {
        self.parsed_prev_result(version)?
            .ok_or_else(|| CniError::invalid_config("Required prevResult missing"))
    }

    pub fn delegated_ipam(&self) -> Option<&IpamConfig> {
        self.ipam
            .as_ref()
            .filter(|ipam| !ipam.plugin_type.is_empty())
    }

    /// The addresses asked for through `args.cni.ips`, then `runtimeConfig.ips`.
    pub fn requested_ips(&self) -> Vec<String> {
        let mut ips: Vec<String> = self
            .args
            .as_ref()
            .map(|a| a.cni.ips.clone())
            .unwrap_or_default();
        ips.extend(self.runtime_config.ips.iter().cloned());
        ips
    }
}

/// Parses a plugin config, with the spec's error codes: unparseable JSON is 6, a
/// well-formed config with a wrong key type is 7. Keys match as Go matches them
/// (see [`crate::spec::gojson`]).
pub fn parse_netconf<T: serde::de::DeserializeOwned>(stdin: &[u8]) -> Result<NetConf<T>, CniError> {
    let mut value: Value = serde_json::from_slice(stdin)
        .map_err(|e| CniError::decoding(format!("failed to parse network configuration: {e}")))?;
    crate::spec::gojson::canonicalize_config(&mut value, crate::spec::gojson::field_names::<T>());
    NetConf::<T>::deserialize(&value)
        .map_err(|e| CniError::invalid_config(format!("invalid network configuration: {e}")))
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    #[serde(rename = "containerID")]
    pub container_id: String,
    pub ifname: String,
}

/// The `ipam` section: its `type` and the delegated plugin's own keys.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct IpamConfig {
    #[serde(rename = "type", default)]
    pub plugin_type: String,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl IpamConfig {
    /// The delegated plugin's own keys, typed (a wrong type is code 7).
    pub fn keys<K: for<'de> Deserialize<'de>>(&self) -> Result<K, CniError> {
        K::deserialize(&Value::Object(self.rest.clone())).map_err(|e| {
            CniError::invalid_config(format!("invalid {} IPAM config: {e}", self.plugin_type))
        })
    }
}

/// A MAC a request asked for, and its text as the request wrote it: Go's tuning
/// and sriov-cni put that text in their results (sriov-cni lowercased), not the
/// address in the kernel's colon form.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestedMac {
    pub mac: MacAddr,
    pub written: String,
}

/// The first MAC of `candidates` that is set (callers list them from the strongest
/// source down), parsed; a malformed or multicast MAC is code 7 naming `key`.
pub fn pick_mac(key: &str, candidates: &[Option<&str>]) -> Result<Option<MacAddr>, CniError> {
    Ok(pick_requested_mac(key, candidates)?.map(|requested| requested.mac))
}

/// [`pick_mac`], keeping the text as written.
pub fn pick_requested_mac(
    key: &str,
    candidates: &[Option<&str>],
) -> Result<Option<RequestedMac>, CniError> {
    let Some(text) = candidates.iter().flatten().find(|m| !m.is_empty()) else {
        return Ok(None);
    };
    let mac: MacAddr = text
        .parse()
        .map_err(|e| CniError::invalid_config(format!("{key}: {e}")))?;
    if mac.is_multicast() {
        return Err(CniError::invalid_config(format!(
            "{key}: {text} is a multicast address"
        )));
    }
    Ok(Some(RequestedMac {
        mac,
        written: text.to_string(),
    }))
}

/// `args` in the config; only `args.cni` has a meaning the conventions define.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct ConfigArgs {
    #[serde(default)]
    pub cni: CniConfigArgs,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct CniConfigArgs {
    #[serde(default)]
    pub ips: Vec<String>,
    #[serde(default)]
    pub mac: Option<String>,
    #[serde(default)]
    pub labels: Vec<Label>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Label {
    pub key: String,
    pub value: String,
}

/// `runtimeConfig`: the well-known capabilities typed, every other key kept.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct RuntimeConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ips: Vec<String>,
    #[serde(rename = "deviceID", default, skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
    #[serde(rename = "ipRanges", default, skip_serializing_if = "Vec::is_empty")]
    pub ip_ranges: Vec<Vec<IpRange>>,
    #[serde(
        rename = "portMappings",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub port_mappings: Vec<PortMapping>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<RuntimeDns>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(
        rename = "infinibandGUID",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub infiniband_guid: Option<String>,
    #[serde(
        rename = "cgroupPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub cgroup_path: Option<String>,
    #[serde(
        rename = "io.kubernetes.cri.pod-annotations",
        default,
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub pod_annotations: BTreeMap<String, String>,
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// One range of a range set, as `ipRanges` and host-local's `ranges` spell it.
/// Kept as text: the IPAM plugin validates it with its own messages.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct IpRange {
    #[serde(default)]
    pub subnet: String,
    #[serde(
        rename = "rangeStart",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub range_start: Option<String>,
    #[serde(rename = "rangeEnd", default, skip_serializing_if = "Option::is_none")]
    pub range_end: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PortMapping {
    #[serde(rename = "hostPort")]
    pub host_port: u16,
    #[serde(rename = "containerPort")]
    pub container_port: u16,
    #[serde(default)]
    pub protocol: String,
    #[serde(rename = "hostIP", default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Bandwidth {
    #[serde(rename = "ingressRate", default)]
    pub ingress_rate: u64,
    #[serde(rename = "ingressBurst", default)]
    pub ingress_burst: u64,
    #[serde(rename = "egressRate", default)]
    pub egress_rate: u64,
    #[serde(rename = "egressBurst", default)]
    pub egress_burst: u64,
}

/// The `dns` capability: note the names differ from the result's DNS object.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct RuntimeDns {
    #[serde(default)]
    pub servers: Vec<String>,
    #[serde(default)]
    pub searches: Vec<String>,
    #[serde(default)]
    pub options: Vec<String>,
}

/// A key of a JSON object as Go's encoding/json finds it: the exact spelling, else
/// any spelling that matches it case-insensitively (of several, the last).
pub fn go_lookup<'a>(object: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    object.get(key).or_else(|| {
        object
            .iter()
            .rfind(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Lenient readers for what DEL needs of a config: a value of the wrong type reads
/// as absent. DEL must find and remove state even when a config no longer passes
/// the checks of ADD (Go's DEL does not run them either).
pub mod lenient {
    use serde_json::{Map, Value};

    pub fn bool(object: &Map<String, Value>, key: &str) -> bool {
        match super::go_lookup(object, key) {
            Some(Value::Bool(b)) => *b,
            Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
            _ => false,
        }
    }

    pub fn string(object: &Map<String, Value>, key: &str) -> Option<String> {
        super::go_lookup(object, key)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
    }

    pub fn integer(object: &Map<String, Value>, key: &str) -> Option<i64> {
        super::go_lookup(object, key).and_then(Value::as_i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::error::ErrorCode;
    use crate::spec::version::SpecVersion;
    use serde_json::json;

    #[derive(Debug, Deserialize)]
    struct BridgeKeys {
        #[serde(default)]
        bridge: String,
        #[serde(default)]
        vlan: u16,
    }

    #[test]
    fn plugin_keys_and_common_keys_parse_together() {
        let stdin = json!({
            "cniVersion": "0.3.1", "name": "vlan-net-1223", "type": "cnv-bridge",
            "bridge": "br1", "vlan": 1223, "ipam": {},
            "args": {"cni": {"ips": ["10.0.0.9/24"], "mac": "0a:00:00:00:00:01",
                     "labels": [{"key": "a", "value": "b"}]}},
            "runtimeConfig": {"mac": "0a:00:00:00:00:02", "ips": ["10.0.0.8/24"],
                "deviceID": "0000:04:00.5", "portMappings": [{"hostPort": 80, "containerPort": 8080, "protocol": "tcp"}],
                "ipRanges": [[{"subnet": "10.9.0.0/16"}]], "bandwidth": {"ingressRate": 1000},
                "dns": {"servers": ["1.1.1.1"]}, "aliases": ["x"], "infinibandGUID": "g",
                "cgroupPath": "/c", "io.kubernetes.cri.pod-annotations": {"k": "v"},
                "CNIDeviceInfoFile": "/var/run/x.json"},
            "cni.dev/valid-attachments": [{"containerID": "a", "ifname": "eth0"}],
            "cni.dev/attachments": [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "net1"}]
        });
        let conf: NetConf<BridgeKeys> = parse_netconf(stdin.to_string().as_bytes()).unwrap();
        assert_eq!(conf.plugin.bridge, "br1");
        assert_eq!(conf.plugin.vlan, 1223);
        assert!(conf.delegated_ipam().is_none());
        assert_eq!(conf.requested_ips(), vec!["10.0.0.9/24", "10.0.0.8/24"]);
        let rc = &conf.runtime_config;
        assert_eq!(rc.device_id.as_deref(), Some("0000:04:00.5"));
        assert_eq!(rc.port_mappings[0].container_port, 8080);
        assert_eq!(rc.ip_ranges[0][0].subnet, "10.9.0.0/16");
        assert_eq!(rc.bandwidth.as_ref().unwrap().ingress_rate, 1000);
        assert_eq!(rc.pod_annotations["k"], "v");
        assert_eq!(rc.other["CNIDeviceInfoFile"], "/var/run/x.json");
        assert_eq!(conf.args.as_ref().unwrap().cni.labels[0].value, "b");
        assert_eq!(conf.gc_valid_attachments().len(), 2);
    }

    #[test]
    fn prev_result_is_read_in_the_request_version() {
        let conf: NetConf = parse_netconf(
            br#"{"name":"n","cniVersion":"0.2.0","prevResult":{"ip4":{"ip":"10.0.0.2/24"}}}"#,
        )
        .unwrap();
        let prev = conf
            .parsed_prev_result(SpecVersion::V0_2_0)
            .unwrap()
            .unwrap();
        assert_eq!(prev.ips[0].address.to_string(), "10.0.0.2/24");
        let empty: NetConf = parse_netconf(br#"{"name":"n","prevResult":{}}"#).unwrap();
        assert!(empty
            .parsed_prev_result(SpecVersion::V1_0_0)
            .unwrap()
            .is_none());
    }

    #[test]
    fn wrong_type_is_code_7_and_bad_json_is_code_6() {
        let e = parse_netconf::<BridgeKeys>(br#"{"name":"n","vlan":"x"}"#).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidNetworkConfig);
        let e = parse_netconf::<BridgeKeys>(b"{not json").unwrap_err();
        assert_eq!(e.code, ErrorCode::DecodingFailure);
    }
}
