//! The result of ADD: one internal model (the 1.1.0 superset) and its conversion to
//! and from the layout of every spec version, by the rules of the Go libcni.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::spec::error::CniError;
use crate::spec::version::{ResultLayout, SpecVersion};

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
    #[serde(
        rename = "socketPath",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub socket_path: Option<String>,
    #[serde(rename = "pciID", default, skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<String>,
}

/// One address; `interface` indexes `CniResult::interfaces`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpConfig {
    pub address: IpNet,
    pub gateway: Option<IpAddr>,
    pub interface: Option<usize>,
}

impl IpConfig {
    pub fn is_ipv4(&self) -> bool {
        self.address.addr().is_ipv4()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    pub dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advmss: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<u32>,
}

/// DNS settings as results and network configs spell them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

impl Dns {
    pub fn is_empty(&self) -> bool {
        self == &Dns::default()
    }
}

/// The result of an ADD, independent of the version it is read from or printed in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniResult {
    pub interfaces: Vec<Interface>,
    pub ips: Vec<IpConfig>,
    pub routes: Vec<Route>,
    pub dns: Dns,
}

// ---- wire layouts ------------------------------------------------------------

#[derive(Serialize, Deserialize)]
struct WireIp {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    interface: Option<usize>,
    address: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
}

/// 0.3.0 to 1.1.0. The Go types print `dns` even when it is empty; so do we.
#[derive(Serialize, Deserialize)]
struct WireResult {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    cni_version: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    interfaces: Vec<Interface>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    ips: Vec<WireIp>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Serialize, Deserialize)]
struct LegacyRoute {
    dst: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gw: Option<IpAddr>,
}

#[derive(Serialize, Deserialize)]
struct LegacyIp {
    ip: IpNet,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gateway: Option<IpAddr>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    routes: Vec<LegacyRoute>,
}

/// 0.1.0 and 0.2.0.
#[derive(Serialize, Deserialize)]
struct LegacyResult {
    #[serde(
        rename = "cniVersion",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    cni_version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip4: Option<LegacyIp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ip6: Option<LegacyIp>,
    #[serde(default)]
    dns: Dns,
}

impl CniResult {
    /// Parses a result laid out as `version` says (prevResult: the request's version).
    pub fn from_value(value: &Value, version: SpecVersion) -> Result<CniResult, CniError> {
        let decode = |e: serde_json::Error| {
            CniError::decoding(format!("failed to parse a {version} result: {e}"))
        };
        // Keys as Go matches them (`"IPs"`, `"Address"`).
        let mut canonical = value.clone();
        crate::spec::gojson::canonicalize_result(&mut canonical);
        let value = &canonical;
        match version.result_layout() {
            ResultLayout::Legacy => {
                let legacy = LegacyResult::deserialize(value).map_err(decode)?;
                Ok(CniResult::from_legacy(legacy))
            }
            ResultLayout::Versioned | ResultLayout::Current => {
                let wire = WireResult::deserialize(value).map_err(decode)?;
                Ok(CniResult {
                    interfaces: wire.interfaces,
                    ips: wire
                        .ips
                        .into_iter()
                        .map(|ip| IpConfig {
                            address: ip.address,
                            gateway: ip.gateway,
                            interface: ip.interface,
                        })
                        .collect(),
                    routes: wire.routes,
                    dns: wire.dns,
                })
            }
        }
    }

    /// Parses the stdout of a delegated plugin: its own `cniVersion` decides the
    /// layout, and a result without one is taken in `default_version` (as Go does).
    pub fn from_plugin_output(
        bytes: &[u8],
        default_version: SpecVersion,
    ) -> Result<(CniResult, SpecVersion), CniError> {
        let mut value: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decoding(format!("failed to parse a result: {e}")))?;
        crate::spec::gojson::canonicalize_result(&mut value);
        let version = match value.get("cniVersion").and_then(Value::as_str) {
            Some(text) if !text.is_empty() => text.parse().map_err(|e| {
                CniError::new(
                    crate::spec::error::ErrorCode::IncompatibleVersion,
                    format!("{e} in a result"),
                )
            })?,
            _ => default_version,
        };
        Ok((CniResult::from_value(&value, version)?, version))
    }

    fn from_legacy(legacy: LegacyResult) -> CniResult {
        let mut result = CniResult {
            dns: legacy.dns,
            ..CniResult::default()
        };
        for ip in [legacy.ip4, legacy.ip6].into_iter().flatten() {
            result.ips.push(IpConfig {
                address: ip.ip,
                gateway: ip.gateway,
                interface: None,
            });
            result.routes.extend(ip.routes.into_iter().map(|r| Route {
                dst: r.dst,
                gw: r.gw,
                ..Route::default()
            }));
        }
        result
    }

    /// Prints the result in `version`'s layout. A result without any address cannot be
    /// printed as 0.1.0/0.2.0: that is an error, not an empty object.
    pub fn to_value(&self, version: SpecVersion) -> Result<Value, CniError> {
        let value = match version.result_layout() {
            ResultLayout::Legacy => serde_json::to_value(self.to_legacy(version)?),
            layout => serde_json::to_value(self.to_wire(version, layout)),
        };
        Ok(value.expect("a result always serializes"))
    }

    fn to_wire(&self, version: SpecVersion, layout: ResultLayout) -> WireResult {
        let versioned = layout == ResultLayout::Versioned;
        WireResult {
            cni_version: Some(version.as_str().to_string()),
            interfaces: self
                .interfaces
                .iter()
                .map(|i| {
                    if versioned {
                        // 0.3.x/0.4.0 interfaces know only name, mac and sandbox.
                        Interface {
                            name: i.name.clone(),
                            mac: i.mac.clone(),
                            sandbox: i.sandbox.clone(),
                            ..Interface::default()
                        }
                    } else {
                        i.clone()
                    }
                })
                .collect(),
            ips: self
                .ips
                .iter()
                .map(|ip| WireIp {
                    version: versioned.then(|| if ip.is_ipv4() { "4" } else { "6" }.to_string()),
                    interface: ip.interface,
                    address: ip.address,
                    gateway: ip.gateway,
                })
                .collect(),
            routes: self.routes.clone(),
            dns: self.dns.clone(),
        }
    }

    fn to_legacy(&self, version: SpecVersion) -> Result<LegacyResult, CniError> {
        let first = |v4: bool| {
            self.ips
                .iter()
                .find(|ip| ip.is_ipv4() == v4)
                .map(|ip| LegacyIp {
                    ip: ip.address,
                    gateway: ip.gateway,
                    routes: self
                        .routes
                        .iter()
                        .filter(|r| r.dst.addr().is_ipv4() == v4)
                        .map(|r| LegacyRoute {
                            dst: r.dst,
                            gw: r.gw,
                        })
                        .collect(),
                })
        };
        let (ip4, ip6) = (first(true), first(false));
        if ip4.is_none() && ip6.is_none() {
            return Err(CniError::new(
                crate::spec::error::ErrorCode::IncompatibleVersion,
                format!("cannot convert the result to CNI version {version}: no valid IP addresses"),
            )
            .with_details("versions 0.1.0 and 0.2.0 cannot express a result without an IP address; use 0.3.0 or later"));
        }
        Ok(LegacyResult {
            cni_version: Some(version.as_str().to_string()),
            ip4,
            ip6,
            dns: self.dns.clone(),
        })
    }

    /// Appends an interface and returns its index, for `IpConfig::interface`.
    pub fn add_interface(&mut self, interface: Interface) -> usize {
        self.interfaces.push(interface);
        self.interfaces.len() - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::version::ALL_VERSIONS;
    use serde_json::json;
    use std::path::PathBuf;

    fn testdata() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../testdata/results")
    }

    /// Every input version converted to every output version must match its golden
    /// file, byte for byte once pretty-printed. `UPDATE_GOLDEN=1` rewrites them.
    #[test]
    fn conversion_matches_golden_files_for_every_version_pair() {
        let update = std::env::var_os("UPDATE_GOLDEN").is_some();
        let mut checked = 0;
        for from in ALL_VERSIONS {
            let input_path = testdata().join(format!("input-{from}.json"));
            let input: Value =
                serde_json::from_slice(&std::fs::read(&input_path).unwrap()).unwrap();
            let parsed = CniResult::from_value(&input, from).unwrap();
            for to in ALL_VERSIONS {
                let golden = testdata().join(format!("{from}-to-{to}.json"));
                let printed = match parsed.to_value(to) {
                    Ok(v) => serde_json::to_string_pretty(&v).unwrap() + "\n",
                    Err(e) => format!("error: {}\n", e.msg),
                };
                if update {
                    std::fs::write(&golden, &printed).unwrap();
                } else {
                    let expected = std::fs::read_to_string(&golden)
                        .unwrap_or_else(|e| panic!("{}: {e}", golden.display()));
                    assert_eq!(
                        printed,
                        expected,
                        "{from} -> {to} differs from {}",
                        golden.display()
                    );
                }
                checked += 1;
            }
        }
        assert_eq!(checked, 49);
    }

    #[test]
    fn round_trip_through_current_layout_is_lossless() {
        let input: Value =
            serde_json::from_slice(&std::fs::read(testdata().join("input-1.1.0.json")).unwrap())
                .unwrap();
        let parsed = CniResult::from_value(&input, SpecVersion::V1_1_0).unwrap();
        assert_eq!(parsed.to_value(SpecVersion::V1_1_0).unwrap(), input);
    }

    #[test]
    fn layer2_result_cannot_be_printed_as_0_2_0() {
        let l2 = CniResult {
            interfaces: vec![Interface {
                name: "eth0".into(),
                ..Interface::default()
            }],
            ..CniResult::default()
        };
        for v in [SpecVersion::V0_1_0, SpecVersion::V0_2_0] {
            let e = l2.to_value(v).unwrap_err();
            assert_eq!(e.code.number(), 1);
            assert!(e.msg.contains("no valid IP addresses"), "{}", e.msg);
        }
        assert_eq!(
            l2.to_value(SpecVersion::V0_3_1).unwrap(),
            json!({"cniVersion":"0.3.1","interfaces":[{"name":"eth0"}],"dns":{}})
        );
    }

    #[test]
    fn plugin_output_without_version_takes_the_default() {
        let out = br#"{"ips":[{"address":"10.0.0.2/24","version":"4"}]}"#;
        let (r, v) = CniResult::from_plugin_output(out, SpecVersion::V0_3_1).unwrap();
        assert_eq!(v, SpecVersion::V0_3_1);
        assert_eq!(r.ips[0].address.to_string(), "10.0.0.2/24");
        let legacy = br#"{"cniVersion":"0.2.0","ip4":{"ip":"10.0.0.2/24"}}"#;
        let (r, v) = CniResult::from_plugin_output(legacy, SpecVersion::V1_0_0).unwrap();
        assert_eq!(v, SpecVersion::V0_2_0);
        assert_eq!(r.ips.len(), 1);
        assert!(
            CniResult::from_plugin_output(b"{\"cniVersion\":\"9.9.9\"}", SpecVersion::V1_0_0)
                .is_err()
        );
    }
}
