//! The sriov plugin's configuration, compatible with sriov-cni and stricter where
//! sriov-cni is silent: every refusal is code 7 and names the key.

use libcni::netlink::{VfConfig, VfLinkStateSetting, VfRate, VfVlanSetting};
use libcni::spec::config::{parse_netconf, NetConf};
use libcni::{CniError, Request};

use crate::pci::PciAddress;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct SriovKeys {
    #[serde(rename = "deviceID", default, skip_serializing_if = "String::is_empty")]
    pub device_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan: Option<i64>,
    #[serde(rename = "vlanQoS", default, skip_serializing_if = "Option::is_none")]
    pub vlan_qos: Option<i64>,
    #[serde(rename = "vlanProto", default, skip_serializing_if = "Option::is_none")]
    pub vlan_proto: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub spoofchk: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub trust: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub link_state: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_tx_rate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tx_rate: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    #[serde(rename = "logLevel", default, skip_serializing_if = "String::is_empty")]
    pub log_level: String,
    #[serde(rename = "logFile", default, skip_serializing_if = "String::is_empty")]
    pub log_file: String,
}

/// A request's configuration, validated.
pub struct Config {
    pub conf: NetConf<SriovKeys>,
    /// The VF's PCI address, from `deviceID` or `runtimeConfig.deviceID`.
    pub device_id: PciAddress,
    /// What to set on the PF for this VF.
    pub vf: VfConfig,
    /// The MAC for the VF (config < CNI_ARGS MAC < runtimeConfig.mac), and its
    /// text, which sriov-cni's result carries lowercased.
    pub requested_mac: Option<libcni::spec::config::RequestedMac>,
}

impl Config {
    /// The MAC for the VF, if the request asked for one.
    pub fn mac(&self) -> Option<libcni::mac::MacAddr> {
        self.requested_mac.as_ref().map(|requested| requested.mac)
    }
}

fn invalid(key: &str, why: String) -> CniError {
    CniError::invalid_config(format!("{key}: {why}"))
}

fn on_off(key: &str, value: &str) -> Result<Option<bool>, CniError> {
    match value {
        "" => Ok(None),
        "on" => Ok(Some(true)),
        "off" => Ok(Some(false)),
        other => Err(invalid(
            key,
            format!("invalid value {other:?}: must be \"on\" or \"off\""),
        )),
    }
}

/// The VF's PCI address: `deviceID`, else `runtimeConfig.deviceID`.
fn device_id(conf: &NetConf<SriovKeys>) -> Result<PciAddress, CniError> {
    let keys = &conf.plugin;
    let device_id = if keys.device_id.is_empty() {
        conf.runtime_config.device_id.clone().unwrap_or_default()
    } else {
        keys.device_id.clone()
    };
    if device_id.is_empty() {
        return Err(invalid("deviceID", "VF pci addr is required".into()));
    }
    PciAddress::parse(&device_id).ok_or_else(|| {
        invalid(
            "deviceID",
            format!("{device_id:?} is not a PCI address (DDDD:BB:DD.F)"),
        )
    })
}

/// `vlan`, `vlanQoS` and `vlanProto`, with sriov-cni's rules.
fn vlan(keys: &SriovKeys) -> Result<Option<VfVlanSetting>, CniError> {
    if let Some(vlan) = keys.vlan {
        if !(0..=4094).contains(&vlan) {
            return Err(invalid(
                "vlan",
                format!("vlan id {vlan} invalid: value must be in the range 0-4094"),
            ));
        }
    }
    if let Some(qos) = keys.vlan_qos {
        let Some(vlan) = keys.vlan else {
            return Err(invalid(
                "vlanQoS",
                "vlan id must be configured to set vlan QoS to a non-nil value".into(),
            ));
        };
        if !(0..=7).contains(&qos) {
            return Err(invalid(
                "vlanQoS",
                format!("vlan QoS PCP {qos} invalid: value must be in the range 0-7"),
            ));
        }
        if vlan == 0 && qos != 0 {
            return Err(invalid(
                "vlanQoS",
                "non-zero vlan id must be configured to set vlan QoS to a non-zero value".into(),
            ));
        }
    }
    let proto_8021ad = match keys.vlan_proto.as_deref().map(str::to_lowercase) {
        None => false,
        Some(proto) => {
            let Some(vlan) = keys.vlan else {
                return Err(invalid(
                    "vlanProto",
                    "vlan id must be configured to set vlan proto to a non-nil value".into(),
                ));
            };
            match proto.as_str() {
                "802.1q" => false,
                "802.1ad" if vlan == 0 => {
                    return Err(invalid(
                        "vlanProto",
                        "non-zero vlan id must be configured to set vlan proto 802.1ad".into(),
                    ))
                }
                "802.1ad" => true,
                other => {
                    return Err(invalid(
                        "vlanProto",
                        format!("vlan Proto {other} invalid: value must be '802.1Q' or '802.1ad'"),
                    ))
                }
            }
        }
    };
    Ok(keys.vlan.map(|vlan| VfVlanSetting {
        id: vlan as u32,
        qos: keys.vlan_qos.unwrap_or(0) as u32,
        proto_8021ad,
    }))
}

/// `min_tx_rate` and `max_tx_rate`, in Mbps.
fn rate(keys: &SriovKeys) -> Result<Option<VfRate>, CniError> {
    for (key, rate) in [
        ("min_tx_rate", keys.min_tx_rate),
        ("max_tx_rate", keys.max_tx_rate),
    ] {
        if rate.is_some_and(|r| !(0..=u32::MAX as i64).contains(&r)) {
            return Err(invalid(
                key,
                format!("{} Mbps is not a valid rate", rate.unwrap_or_default()),
            ));
        }
    }
    if keys.min_tx_rate.is_some() || keys.max_tx_rate.is_some() {
        let (min, max) = (keys.min_tx_rate.unwrap_or(0), keys.max_tx_rate.unwrap_or(0));
        if max != 0 && min > max {
            return Err(invalid(
                "min_tx_rate",
                format!("{min} Mbps is above max_tx_rate {max} Mbps"),
            ));
        }
        return Ok(Some(VfRate {
            min_mbps: min as u32,
            max_mbps: max as u32,
        }));
    }
    Ok(None)
}

pub fn load(request: &Request) -> Result<Config, CniError> {
    let conf: NetConf<SriovKeys> = parse_netconf(&request.stdin)?;
    let keys = &conf.plugin;
    let device_id = device_id(&conf)?;
    let mut vf = VfConfig {
        vlan: vlan(keys)?,
        ..VfConfig::default()
    };
    vf.spoofchk = on_off("spoofchk", &keys.spoofchk)?;
    vf.trust = on_off("trust", &keys.trust)?;
    vf.link_state =
        match keys.link_state.as_str() {
            "" => None,
            name => Some(VfLinkStateSetting::parse(name).ok_or_else(|| {
                invalid("link_state", format!("invalid link_state value: {name}"))
            })?),
        };
    vf.rate = rate(keys)?;
    // MAC: config < CNI_ARGS MAC < runtimeConfig.mac.
    let requested_mac = libcni::spec::config::pick_requested_mac(
        "mac",
        &[
            conf.runtime_config.mac.as_deref(),
            request.args.value("MAC"),
            Some(keys.mac.as_str()),
        ],
    )?;
    vf.mac = requested_mac.as_ref().map(|requested| requested.mac);
    Ok(Config {
        device_id,
        vf,
        requested_mac,
        conf,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use libcni::mac::MacAddr;
    use serde_json::json;

    fn request(stdin: serde_json::Value, cni_args: &str) -> Request {
        Request::for_config(&stdin, cni_args)
    }

    fn error(extra: serde_json::Value) -> String {
        let mut c = json!({"name": "n", "deviceID": "0000:af:06.0"});
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let e = load(&request(c, "")).err().expect("refused");
        assert_eq!(e.code, libcni::ErrorCode::InvalidNetworkConfig);
        e.msg
    }

    #[test]
    fn the_validation_table() {
        let cases: &[(serde_json::Value, &str)] = &[
            (json!({"deviceID": ""}), "deviceID: VF pci addr is required"),
            (
                json!({"deviceID": "../../etc"}),
                "deviceID: \"../../etc\" is not a PCI address",
            ),
            (json!({"deviceID": "0000:af:06.8"}), "is not a PCI address"),
            (json!({"vlan": 4095}), "vlan: vlan id 4095 invalid"),
            (json!({"vlan": -1}), "vlan: vlan id -1 invalid"),
            (json!({"vlanQoS": 1}), "vlanQoS: vlan id must be configured"),
            (
                json!({"vlan": 10, "vlanQoS": 8}),
                "vlanQoS: vlan QoS PCP 8 invalid",
            ),
            (
                json!({"vlan": 0, "vlanQoS": 2}),
                "vlanQoS: non-zero vlan id must be configured",
            ),
            (
                json!({"vlanProto": "802.1q"}),
                "vlanProto: vlan id must be configured",
            ),
            (
                json!({"vlan": 0, "vlanProto": "802.1AD"}),
                "vlanProto: non-zero vlan id",
            ),
            (
                json!({"vlan": 5, "vlanProto": "qinq"}),
                "vlanProto: vlan Proto qinq invalid",
            ),
            (
                json!({"spoofchk": "true"}),
                "spoofchk: invalid value \"true\"",
            ),
            (json!({"trust": "yes"}), "trust: invalid value \"yes\""),
            (
                json!({"link_state": "up"}),
                "link_state: invalid link_state value: up",
            ),
            (
                json!({"min_tx_rate": 100, "max_tx_rate": 10}),
                "min_tx_rate: 100 Mbps is above max_tx_rate 10 Mbps",
            ),
            (
                json!({"max_tx_rate": -5}),
                "max_tx_rate: -5 Mbps is not a valid rate",
            ),
            (
                json!({"mac": "zz:00:00:00:00:01"}),
                "mac: \"zz:00:00:00:00:01\" is not a MAC address",
            ),
            (
                json!({"mac": "01:00:5e:00:00:01"}),
                "mac: 01:00:5e:00:00:01 is a multicast address",
            ),
        ];
        for (extra, expected) in cases {
            let msg = error(extra.clone());
            assert!(msg.contains(expected), "{extra} -> {msg}");
        }
    }

    #[test]
    fn settings_and_mac_precedence() {
        let c = json!({"name": "n", "runtimeConfig": {"deviceID": "0000:AF:06.1", "mac": "02:AA:00:00:00:03"},
            "mac": "02:00:00:00:00:01", "vlan": 100, "vlanQoS": 3, "vlanProto": "802.1AD", "spoofchk": "off",
            "trust": "on", "link_state": "enable", "max_tx_rate": 100});
        let cfg = load(&request(c, "MAC=02:00:00:00:00:02")).unwrap();
        assert_eq!(cfg.device_id.as_str(), "0000:AF:06.1");
        assert_eq!(
            cfg.vf.vlan,
            Some(VfVlanSetting {
                id: 100,
                qos: 3,
                proto_8021ad: true
            })
        );
        assert_eq!((cfg.vf.spoofchk, cfg.vf.trust), (Some(false), Some(true)));
        assert_eq!(cfg.vf.link_state, Some(VfLinkStateSetting::Enable));
        assert_eq!(
            cfg.vf.rate,
            Some(VfRate {
                min_mbps: 0,
                max_mbps: 100
            })
        );
        assert_eq!(
            cfg.mac(),
            Some(MacAddr([0x02, 0xaa, 0, 0, 0, 3])),
            "runtimeConfig.mac wins"
        );
        let c = json!({"name": "n", "deviceID": "0000:af:06.0", "mac": "02:00:00:00:00:01"});
        assert_eq!(
            load(&request(c.clone(), "MAC=02:00:00:00:00:02"))
                .unwrap()
                .mac(),
            Some(MacAddr([2, 0, 0, 0, 0, 2]))
        );
        assert_eq!(
            load(&request(c, "")).unwrap().mac(),
            Some(MacAddr([2, 0, 0, 0, 0, 1]))
        );
        let untouched = load(&request(
            json!({"name": "n", "deviceID": "0000:af:06.0"}),
            "",
        ))
        .unwrap();
        assert_eq!(
            untouched.vf,
            VfConfig::default(),
            "nothing configured: nothing set on the PF"
        );
    }
}
