//! The bridge plugin's configuration: every key of the Go plugin, same names and
//! meaning, validated with the Go plugin's messages.

use std::collections::BTreeSet;

use libcni::spec::config::{parse_netconf, NetConf};
use libcni::{CniError, Request};
use serde::Deserialize;

pub const DEFAULT_BRIDGE: &str = "cni0";

/// The keys as written; read only here, into [`BridgeConfig`]'s final values.
#[derive(Debug, Default, Deserialize)]
pub struct BridgeKeys {
    #[serde(rename = "bridge", default)]
    bridge: Option<String>,
    #[serde(rename = "isGateway", default)]
    is_gateway: bool,
    #[serde(rename = "isDefaultGateway", default)]
    is_default_gateway: bool,
    #[serde(rename = "forceAddress", default)]
    force_address: bool,
    #[serde(rename = "ipMasq", default)]
    ip_masq: bool,
    #[serde(rename = "ipMasqBackend", default)]
    ip_masq_backend: Option<String>,
    /// Go reads it as an int: 0 or less means the kernel's default.
    #[serde(default)]
    mtu: i64,
    #[serde(rename = "hairpinMode", default)]
    hairpin_mode: bool,
    #[serde(rename = "promiscMode", default)]
    promisc_mode: bool,
    #[serde(default)]
    vlan: i64,
    #[serde(rename = "vlanTrunk", default)]
    vlan_trunk: Option<Vec<TrunkEntry>>,
    #[serde(rename = "preserveDefaultVlan", default)]
    preserve_default_vlan: Option<bool>,
    #[serde(default)]
    macspoofchk: bool,
    /// Ours only: the Go plugin ignores it (docs/compatibility.md).
    #[serde(default)]
    ipspoofchk: bool,
    #[serde(default)]
    enabledad: bool,
    #[serde(rename = "disableContainerInterface", default)]
    disable_container_interface: bool,
    #[serde(rename = "portIsolation", default)]
    port_isolation: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct TrunkEntry {
    #[serde(rename = "minID", default)]
    pub min_id: Option<i64>,
    #[serde(rename = "maxID", default)]
    pub max_id: Option<i64>,
    #[serde(default)]
    pub id: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MasqBackend {
    Iptables,
    Nftables,
}

/// The VLANs of a bridge port: its access VLAN, its trunk, and whether VLAN 1 stays.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortVlans {
    /// The access VLAN (PVID, untagged); 0 for none.
    pub access: u16,
    /// Sorted, without duplicates. `Some(empty)` still turns VLAN filtering on, as in Go.
    pub trunk: Option<Vec<u16>>,
    pub preserve_default_vlan: bool,
}

impl PortVlans {
    pub fn filtering(&self) -> bool {
        self.access != 0 || self.trunk.is_some()
    }

    /// The VLANs `program_vlans` puts the port in: the access VLAN, the trunk, and
    /// VLAN 1 as the trunk's native VLAN. Empty without VLAN filtering.
    pub fn member_vids(&self) -> Vec<u16> {
        if !self.filtering() {
            return Vec::new();
        }
        let trunk = self.trunk.clone().unwrap_or_default();
        let mut vids: BTreeSet<u16> = trunk.iter().copied().collect();
        if self.access != 0 {
            vids.insert(self.access);
        }
        if self.access == 0 && !trunk.is_empty() {
            vids.insert(1);
        }
        vids.into_iter().collect()
    }

    /// VLAN 1 when `preserveDefaultVlan` keeps it beside the others and they do not
    /// name it: the port is in it as long as the bridge's default PVID is 1.
    pub fn preserved_default_vid(&self) -> Option<u16> {
        let preserved = self.filtering() && self.preserve_default_vlan;
        (preserved && !self.member_vids().contains(&1)).then_some(1)
    }
}

/// The configuration of one request, validated, in its final types.
#[derive(Debug)]
pub struct BridgeConfig {
    /// The common keys; the bridge's own are the fields below.
    pub conf: NetConf<BridgeKeys>,
    pub bridge: String,
    /// `isGateway`, or implied by `isDefaultGateway` (as in Go).
    pub is_gateway: bool,
    pub is_default_gateway: bool,
    pub force_address: bool,
    pub ip_masq: bool,
    /// `None`: the Go plugin's default, decided when the masquerade is set up.
    pub masq_backend: Option<MasqBackend>,
    /// `None` (0 or less in the config): the kernel's default, as in Go.
    pub mtu: Option<u32>,
    pub hairpin_mode: bool,
    pub promisc_mode: bool,
    pub vlans: PortVlans,
    pub macspoofchk: bool,
    /// Frames from the port may carry only the attachment's addresses (see
    /// `spoofcheck::ipfilter`). Needs `macspoofchk` and IPAM.
    pub ipspoofchk: bool,
    pub ipv6_dad: bool,
    pub disable_container_interface: bool,
    pub port_isolation: bool,
    pub mac: Option<libcni::mac::MacAddr>,
}

impl BridgeConfig {
    pub fn is_layer3(&self) -> bool {
        self.conf.delegated_ipam().is_some()
    }

    pub fn vlan_filtering(&self) -> bool {
        self.vlans.filtering()
    }
}

/// Trunk VIDs, with the Go plugin's checks and messages.
pub fn collect_trunk(entries: &[TrunkEntry]) -> Result<Vec<u16>, String> {
    let valid = |v: i64| (1..=4094).contains(&v);
    let mut vids = BTreeSet::new();
    for entry in entries {
        match (entry.min_id, entry.max_id) {
            (Some(min), Some(max)) => {
                if !valid(min) {
                    return Err("incorrect trunk minID parameter".into());
                }
                if !valid(max) {
                    return Err("incorrect trunk maxID parameter".into());
                }
                if max < min {
                    return Err("minID is greater than maxID in trunk parameter".into());
                }
                vids.extend((min..=max).map(|v| v as u16));
            }
            (None, Some(_)) => {
                return Err(
                    "minID and maxID should be configured simultaneously, minID is missing".into(),
                )
            }
            (Some(_), None) => {
                return Err(
                    "minID and maxID should be configured simultaneously, maxID is missing".into(),
                )
            }
            (None, None) => {}
        }
        if let Some(id) = entry.id {
            if !valid(id) {
                return Err("incorrect trunk id parameter".into());
            }
            vids.insert(id as u16);
        }
    }
    Ok(vids.into_iter().collect())
}

/// Whether this binary runs as `cnv-bridge`: then `preserveDefaultVlan` defaults to
/// true, as the OpenShift Virtualization build does.
pub fn invoked_as_cnv_bridge() -> bool {
    libcni::skel::invoked_as("cnv-bridge")
}

/// What DEL needs to find an attachment's state, read leniently: a config that ADD
/// would refuse (a multicast MAC, `mtu: -1`, a bad trunk) still tears down, as the
/// Go plugin's DEL does; runtimes retry DEL until it succeeds.
pub struct DelConfig {
    pub conf: NetConf<serde_json::Map<String, serde_json::Value>>,
    pub bridge: String,
    pub macspoofchk: bool,
    pub ip_masq: bool,
    /// 0 when absent or out of range (then there is no VLAN gateway to look for).
    pub vlan: u16,
    pub is_gateway: bool,
}

impl DelConfig {
    pub fn is_layer3(&self) -> bool {
        self.conf.delegated_ipam().is_some()
    }
}

pub fn load_for_del(request: &Request) -> Result<DelConfig, CniError> {
    use libcni::spec::config::lenient;
    let conf: NetConf<serde_json::Map<String, serde_json::Value>> = parse_netconf(&request.stdin)?;
    let keys = &conf.plugin;
    Ok(DelConfig {
        bridge: lenient::string(keys, "bridge").unwrap_or_else(|| DEFAULT_BRIDGE.to_string()),
        // ipspoofchk's rules live in macspoofchk's chains (ADD needs both keys).
        macspoofchk: lenient::bool(keys, "macspoofchk") || lenient::bool(keys, "ipspoofchk"),
        ip_masq: lenient::bool(keys, "ipMasq"),
        vlan: lenient::integer(keys, "vlan")
            .filter(|v| (1..=4094).contains(v))
            .unwrap_or(0) as u16,
        is_gateway: lenient::bool(keys, "isGateway") || lenient::bool(keys, "isDefaultGateway"),
        conf,
    })
}

pub fn load(request: &Request, cnv_bridge: bool) -> Result<BridgeConfig, CniError> {
    let conf: NetConf<BridgeKeys> = parse_netconf(&request.stdin)?;
    let keys = &conf.plugin;
    let vlans = port_vlans(keys, cnv_bridge)?;
    if conf.delegated_ipam().is_some() && keys.disable_container_interface {
        return Err(CniError::invalid_config(
            "cannot use IPAM when DisableContainerInterface flag is set",
        ));
    }
    if keys.hairpin_mode && keys.promisc_mode {
        return Err(CniError::invalid_config(
            "cannot set hairpin mode and promiscuous mode at the same time",
        ));
    }
    check_ipspoofchk(keys, conf.delegated_ipam().is_some())?;
    let masq_backend = masq_backend(keys)?;
    // MAC precedence: CNI_ARGS MAC < args.cni.mac < runtimeConfig.mac.
    let mac = libcni::spec::config::pick_mac(
        "mac",
        &[
            conf.runtime_config.mac.as_deref(),
            conf.args.as_ref().and_then(|a| a.cni.mac.as_deref()),
            request.args.value("MAC"),
        ],
    )?;
    Ok(BridgeConfig {
        bridge: bridge_name(keys)?,
        is_gateway: keys.is_gateway || keys.is_default_gateway,
        is_default_gateway: keys.is_default_gateway,
        force_address: keys.force_address,
        ip_masq: keys.ip_masq,
        masq_backend,
        mtu: u32::try_from(keys.mtu).ok().filter(|m| *m > 0),
        hairpin_mode: keys.hairpin_mode,
        promisc_mode: keys.promisc_mode,
        vlans,
        macspoofchk: keys.macspoofchk,
        ipspoofchk: keys.ipspoofchk,
        ipv6_dad: keys.enabledad,
        disable_container_interface: keys.disable_container_interface,
        port_isolation: keys.port_isolation,
        mac,
        conf,
    })
}

/// `ipspoofchk` needs `macspoofchk`: its rules follow the MAC check in the same
/// chains, which the Go plugin's DEL removes only when `macspoofchk` is set, so a
/// node switched back to Go keeps none of them. And it needs IPAM: a layer-2
/// attachment has no address to allow.
fn check_ipspoofchk(keys: &BridgeKeys, layer3: bool) -> Result<(), CniError> {
    if !keys.ipspoofchk {
        return Ok(());
    }
    if !keys.macspoofchk {
        return Err(CniError::invalid_config(
            "ipspoofchk needs \"macspoofchk\": true (its rules extend the MAC check's chains)",
        ));
    }
    if !layer3 {
        return Err(CniError::invalid_config(
            "ipspoofchk needs IPAM: a layer-2 config (no ipam type) gives the attachment no address to allow",
        ));
    }
    Ok(())
}

/// `vlan`, `vlanTrunk` and `preserveDefaultVlan` (whose default is true for
/// `cnv-bridge`), with the Go plugin's checks.
fn port_vlans(keys: &BridgeKeys, cnv_bridge: bool) -> Result<PortVlans, CniError> {
    if !(0..=4094).contains(&keys.vlan) {
        return Err(CniError::invalid_config(format!(
            "invalid VLAN ID {} (must be between 0 and 4094)",
            keys.vlan
        )));
    }
    let trunk = keys
        .vlan_trunk
        .as_ref()
        .map(|t| collect_trunk(t))
        .transpose()
        .map_err(CniError::invalid_config)?;
    Ok(PortVlans {
        access: keys.vlan as u16,
        trunk,
        preserve_default_vlan: keys.preserve_default_vlan.unwrap_or(cnv_bridge),
    })
}

fn masq_backend(keys: &BridgeKeys) -> Result<Option<MasqBackend>, CniError> {
    match keys.ip_masq_backend.as_deref() {
        None => Ok(None),
        Some("iptables") => Ok(Some(MasqBackend::Iptables)),
        Some("nftables") => Ok(Some(MasqBackend::Nftables)),
        Some(other) => Err(CniError::invalid_config(format!(
            "unknown ipmasq backend {other:?}"
        ))),
    }
}

/// Absent: cni0. Present but empty is an error, as with the Go plugin (which fails
/// to create a bridge with no name).
fn bridge_name(keys: &BridgeKeys) -> Result<String, CniError> {
    let bridge = keys
        .bridge
        .clone()
        .unwrap_or_else(|| DEFAULT_BRIDGE.to_string());
    if bridge.is_empty() {
        return Err(CniError::invalid_config("\"bridge\" must not be empty"));
    }
    libcni::spec::names::check_interface_name(&bridge)
        .map_err(|e| CniError::invalid_config(format!("invalid bridge name: {e}")))?;
    Ok(bridge)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(stdin: serde_json::Value, cni_args: &str) -> Request {
        Request::for_config(&stdin, cni_args)
    }

    fn trunk(v: serde_json::Value) -> Result<Vec<u16>, String> {
        let entries: Vec<TrunkEntry> = serde_json::from_value(v).unwrap();
        collect_trunk(&entries)
    }

    #[test]
    fn the_seed_network_attachment_parses() {
        let conf = json!({"cniVersion":"0.3.1","name":"vlan-net-1223","type":"cnv-bridge","bridge":"br1","macspoofchk":true,"vlan":1223});
        let c = load(&request(conf.clone(), ""), true).unwrap();
        assert_eq!(
            (
                c.bridge.as_str(),
                c.vlans.access,
                c.macspoofchk,
                c.is_layer3()
            ),
            ("br1", 1223, true, false)
        );
        assert!(
            c.vlans.preserve_default_vlan,
            "cnv-bridge keeps VLAN 1 unless told otherwise"
        );
        assert!(
            !load(&request(conf, ""), false)
                .unwrap()
                .vlans
                .preserve_default_vlan,
            "bridge drops it"
        );
    }

    #[test]
    fn trunk_rules_and_messages() {
        assert_eq!(
            trunk(json!([{"id": 5}, {"minID": 3, "maxID": 6}, {"id": 4}])).unwrap(),
            vec![3, 4, 5, 6]
        );
        assert_eq!(
            trunk(json!([{"id": 0}])).unwrap_err(),
            "incorrect trunk id parameter"
        );
        assert_eq!(
            trunk(json!([{"minID": 0, "maxID": 3}])).unwrap_err(),
            "incorrect trunk minID parameter"
        );
        assert_eq!(
            trunk(json!([{"minID": 2, "maxID": 4095}])).unwrap_err(),
            "incorrect trunk maxID parameter"
        );
        assert_eq!(
            trunk(json!([{"minID": 5, "maxID": 3}])).unwrap_err(),
            "minID is greater than maxID in trunk parameter"
        );
        assert_eq!(
            trunk(json!([{"maxID": 3}])).unwrap_err(),
            "minID and maxID should be configured simultaneously, minID is missing"
        );
        assert_eq!(
            trunk(json!([{"minID": 3}])).unwrap_err(),
            "minID and maxID should be configured simultaneously, maxID is missing"
        );
    }

    #[test]
    fn validation_messages() {
        let e = load(&request(json!({"name":"n","vlan":4095}), ""), false).unwrap_err();
        assert_eq!(e.msg, "invalid VLAN ID 4095 (must be between 0 and 4094)");
        let e = load(
            &request(
                json!({"name":"n","hairpinMode":true,"promiscMode":true}),
                "",
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.msg,
            "cannot set hairpin mode and promiscuous mode at the same time"
        );
        let e = load(
            &request(
                json!({"name":"n","disableContainerInterface":true,"ipam":{"type":"host-local"}}),
                "",
            ),
            false,
        )
        .unwrap_err();
        assert_eq!(
            e.msg,
            "cannot use IPAM when DisableContainerInterface flag is set"
        );
        let e = load(
            &request(json!({"name":"n","ipMasqBackend":"pf"}), ""),
            false,
        )
        .unwrap_err();
        assert_eq!(e.msg, "unknown ipmasq backend \"pf\"");
    }

    #[test]
    fn mac_precedence_is_cni_args_then_args_then_runtime_config() {
        let base = json!({"name":"n"});
        let c = load(&request(base.clone(), "MAC=02:00:00:00:00:01"), false).unwrap();
        assert_eq!(c.mac, Some(libcni::mac::MacAddr([2, 0, 0, 0, 0, 1])));
        let mut with_args = base.clone();
        with_args["args"] = json!({"cni": {"mac": "02:00:00:00:00:02"}});
        assert_eq!(
            load(&request(with_args.clone(), "MAC=02:00:00:00:00:01"), false)
                .unwrap()
                .mac,
            Some(libcni::mac::MacAddr([2, 0, 0, 0, 0, 2]))
        );
        with_args["runtimeConfig"] = json!({"mac": "02:00:00:00:00:03"});
        assert_eq!(
            load(&request(with_args, "MAC=02:00:00:00:00:01"), false)
                .unwrap()
                .mac,
            Some(libcni::mac::MacAddr([2, 0, 0, 0, 0, 3]))
        );
        assert!(load(
            &request(
                json!({"name":"n","runtimeConfig":{"mac":"03:00:00:00:00:01"}}),
                ""
            ),
            false
        )
        .is_err());
    }

    #[test]
    fn empty_trunk_still_filters() {
        let c = load(&request(json!({"name":"n","vlanTrunk":[]}), ""), false).unwrap();
        assert!(c.vlan_filtering());
        assert!(!load(&request(json!({"name":"n"}), ""), false)
            .unwrap()
            .vlan_filtering());
    }

    #[test]
    fn the_port_vlans_ipspoofchk_pins_its_mac_in() {
        let vlans = |access, trunk: Option<Vec<u16>>, preserve| PortVlans {
            access,
            trunk,
            preserve_default_vlan: preserve,
        };
        let seed = vlans(1223, None, true);
        assert_eq!(seed.member_vids(), [1223]);
        assert_eq!(seed.preserved_default_vid(), Some(1));
        let plain = vlans(1223, None, false);
        assert_eq!(plain.preserved_default_vid(), None);
        let trunk = vlans(0, Some(vec![100, 200]), true);
        assert_eq!(trunk.member_vids(), [1, 100, 200]);
        assert_eq!(trunk.preserved_default_vid(), None);
        let untagged = vlans(0, None, true);
        assert!(untagged.member_vids().is_empty());
        assert_eq!(untagged.preserved_default_vid(), None);
    }
}
