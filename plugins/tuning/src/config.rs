//! The tuning plugin's configuration: the Go plugin's keys, its precedence and its
//! sysctl path rules.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use libcni::spec::config::{parse_netconf, NetConf};
use libcni::{CniError, Request};
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::Value;

pub const DEFAULT_DATA_DIR: &str = "/run/cni/tuning";
const ALLOWLIST: &str = "/etc/cni/tuning/allowlist.conf";

/// `sysctl`, refusing a key that appears twice (as the Go plugin does).
#[derive(Debug, Default, Clone)]
pub struct Sysctls(pub BTreeMap<String, String>);

impl<'de> Deserialize<'de> for Sysctls {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Sysctls, D::Error> {
        struct NoDuplicates;
        impl<'de> Visitor<'de> for NoDuplicates {
            type Value = Sysctls;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a map of sysctl keys to values")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Sysctls, E> {
                Ok(Sysctls::default())
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Sysctls, A::Error> {
                let mut out = BTreeMap::new();
                while let Some((key, value)) = map.next_entry::<String, String>()? {
                    if out.insert(key, value).is_some() {
                        return Err(de::Error::custom("duplicated sysctl keys are not allowed"));
                    }
                }
                Ok(Sysctls(out))
            }
        }
        d.deserialize_any(NoDuplicates)
    }
}

#[derive(Debug, Default, Deserialize)]
pub struct TuningKeys {
    #[serde(rename = "dataDir", default)]
    pub data_dir: String,
    #[serde(default)]
    pub sysctl: Sysctls,
    #[serde(default)]
    pub mac: String,
    #[serde(default)]
    pub promisc: bool,
    #[serde(default)]
    pub mtu: i64,
    #[serde(default)]
    pub allmulti: Option<bool>,
    #[serde(rename = "txQLen", default)]
    pub tx_queue_len: Option<i64>,
}

/// `args.cni`: each key, when present, overrides the config's.
#[derive(Debug, Default, Deserialize)]
struct TuningArgs {
    #[serde(default)]
    sysctl: Option<BTreeMap<String, String>>,
    #[serde(default)]
    mac: Option<String>,
    #[serde(default)]
    promisc: Option<bool>,
    #[serde(default)]
    mtu: Option<i64>,
    #[serde(default)]
    allmulti: Option<bool>,
    #[serde(rename = "txQLen", default)]
    tx_queue_len: Option<i64>,
}

/// The request's settings, every source weighed.
pub struct TuningConfig {
    pub conf: NetConf<TuningKeys>,
    pub data_dir: PathBuf,
    pub sysctl: BTreeMap<String, String>,
    /// Go's tuning puts the text as written in its result.
    pub mac: Option<libcni::spec::config::RequestedMac>,
    pub promisc: bool,
    pub mtu: Option<u32>,
    pub allmulti: Option<bool>,
    pub tx_queue_len: Option<u32>,
}

impl TuningConfig {
    pub fn changes_link(&self) -> bool {
        self.mac.is_some()
            || self.promisc
            || self.mtu.is_some()
            || self.allmulti.is_some()
            || self.tx_queue_len.is_some()
    }

    /// The sysctl files to write, as the Go plugin finds them: dots become
    /// slashes, `IFNAME` becomes the interface name, the path is cleaned, and only
    /// paths under /proc/sys/net/ are allowed.
    pub fn sysctls(&self, ifname: &str) -> Result<Vec<(String, String)>, CniError> {
        self.sysctl
            .iter()
            .map(|(key, value)| {
                let key = key.replace('.', "/").replacen("IFNAME", ifname, 1);
                let path = clean(&Path::new("/proc/sys").join(&key));
                if !path.starts_with("/proc/sys/net/") || path == Path::new("/proc/sys/net") {
                    return Err(CniError::invalid_config(format!(
                        "invalid net sysctl key: {key:?}"
                    )));
                }
                Ok((path.display().to_string(), value.clone()))
            })
            .collect()
    }
}

/// A path with `.` and `..` resolved lexically (Go's filepath.Clean).
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for component in path.components() {
        match component {
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(part) => out.push(part),
            _ => {}
        }
    }
    out
}

/// Each allowed sysctl is a regular expression on its own line; with no allowlist
/// file, every `net.` sysctl is allowed (the Go plugin's rule).
fn check_allowlist(sysctl: &BTreeMap<String, String>) -> Result<(), CniError> {
    let Ok(bytes) = libcni::host::fs::read_config_file(Path::new(ALLOWLIST), 64 * 1024) else {
        return Ok(());
    };
    let text = String::from_utf8_lossy(&bytes);
    let patterns: Vec<regex_lite::Regex> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            regex_lite::Regex::new(l).map_err(|e| {
                CniError::invalid_config(format!("invalid sysctl allowlist entry {l:?}: {e}"))
            })
        })
        .collect::<Result<_, _>>()?;
    for key in sysctl.keys() {
        if !patterns.iter().any(|p| p.is_match(key)) {
            return Err(CniError::invalid_config(format!(
                "Sysctl {key} is not allowed. Only the following sysctls are allowed: {:?}",
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
            )));
        }
    }
    Ok(())
}

/// Duplicate keys are gone once the config is a JSON value: read `sysctl` from the
/// bytes for them (the Go plugin refuses them).
fn check_duplicate_sysctls(stdin: &[u8]) -> Result<(), CniError> {
    #[derive(Deserialize)]
    struct SysctlOnly {
        #[serde(default)]
        #[allow(dead_code)]
        sysctl: Sysctls,
    }
    match serde_json::from_slice::<SysctlOnly>(stdin) {
        Err(e) if e.to_string().contains("duplicated sysctl keys") => {
            Err(CniError::invalid_config(e.to_string()))
        }
        _ => Ok(()),
    }
}

pub fn load(request: &Request) -> Result<TuningConfig, CniError> {
    check_duplicate_sysctls(&request.stdin)?;
    let conf: NetConf<TuningKeys> = parse_netconf(&request.stdin)?;
    let keys = &conf.plugin;
    let args: TuningArgs = {
        let mut raw: Value = serde_json::from_slice(&request.stdin).unwrap_or(Value::Null);
        libcni::spec::gojson::canonicalize_config(&mut raw, &[]);
        match raw.pointer("/args/cni") {
            Some(cni) => TuningArgs::deserialize(cni)
                .map_err(|e| CniError::invalid_config(format!("invalid args.cni: {e}")))?,
            None => TuningArgs::default(),
        }
    };
    let mut sysctl = keys.sysctl.0.clone();
    sysctl.extend(args.sysctl.unwrap_or_default());
    check_allowlist(&sysctl)?;
    // MAC: config < CNI_ARGS MAC < runtimeConfig.mac < args.cni.mac (Go's order).
    let mac = libcni::spec::config::pick_requested_mac(
        "mac",
        &[
            args.mac.as_deref(),
            conf.runtime_config.mac.as_deref(),
            request.args.value("MAC"),
            Some(keys.mac.as_str()),
        ],
    )?;
    let positive = |what: &str, v: i64| {
        u32::try_from(v).map_err(|_| CniError::invalid_config(format!("invalid {what} {v}")))
    };
    let mtu = match args.mtu.unwrap_or(keys.mtu) {
        0 => None,
        v => Some(positive("MTU", v)?),
    };
    let tx_queue_len = args
        .tx_queue_len
        .or(keys.tx_queue_len)
        .map(|v| positive("txQLen", v))
        .transpose()?;
    Ok(TuningConfig {
        data_dir: PathBuf::from(if keys.data_dir.is_empty() {
            DEFAULT_DATA_DIR
        } else {
            keys.data_dir.as_str()
        }),
        sysctl,
        mac,
        promisc: args.promisc.unwrap_or(keys.promisc),
        mtu,
        allmulti: args.allmulti.or(keys.allmulti),
        tx_queue_len,
        conf,
    })
}

/// What DEL needs: `dataDir` only, read leniently.
pub fn data_dir_for_del(request: &Request) -> Result<PathBuf, CniError> {
    let conf: NetConf<serde_json::Map<String, Value>> = parse_netconf(&request.stdin)?;
    Ok(PathBuf::from(
        libcni::spec::config::lenient::string(&conf.plugin, "dataDir")
            .unwrap_or_else(|| DEFAULT_DATA_DIR.to_string()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(sysctl: &[(&str, &str)]) -> TuningConfig {
        TuningConfig {
            conf: parse_netconf(b"{\"name\":\"t\"}").unwrap(),
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            sysctl: sysctl
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            mac: None,
            promisc: false,
            mtu: None,
            allmulti: None,
            tx_queue_len: None,
        }
    }

    #[test]
    fn sysctl_paths_follow_the_go_rules() {
        let ok = config(&[("net.ipv4.conf.IFNAME.arp_filter", "1")]);
        assert_eq!(
            ok.sysctls("net1").unwrap(),
            vec![(
                "/proc/sys/net/ipv4/conf/net1/arp_filter".to_string(),
                "1".to_string()
            )]
        );
        // (dots become slashes first, so `..` can never climb out of net/)
        for bad in ["kernel.hostname", "net", "vm.swappiness"] {
            let e = config(&[(bad, "x")]).sysctls("eth0").unwrap_err();
            assert!(e.msg.contains("invalid net sysctl key"), "{bad}: {}", e.msg);
        }
    }

    #[test]
    fn duplicated_sysctl_keys_are_refused() {
        let e = serde_json::from_str::<Sysctls>(r#"{"net.a": "1", "net.a": "2"}"#).unwrap_err();
        assert!(e.to_string().contains("duplicated"), "{e}");
    }
}
