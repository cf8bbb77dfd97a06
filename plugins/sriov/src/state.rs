//! What the plugin keeps on disk under the state directory (default
//! `/var/lib/cni/sriov`), in sriov-cni's layout:
//! - `<containerID>-<ifname>`: the cache, sriov-cni's fields (the config, `OrigVfState`,
//!   `Master`, `VFID`, `MAC`, `MTU`) plus ours (`DPDKMode`, `ContainerID`, `IfName`,
//!   `Netns`), written before anything is changed so that DEL can always undo;
//! - `pci/<pci>`: the allocation record, the netns path of the VF's user;
//! - `pci/vf_lock/<pci>.lock`: the per-VF lock, held by an ADD or DEL for its life.

use std::fs::File;
use std::path::Path;
use std::time::{Duration, Instant};

use libcni::host::fs::StateDir;
use libcni::mac::{or_empty, MacAddr};
use libcni::netns::NetNs;
use libcni::spec::attachment::AttachmentId;
use libcni::CniError;
use nix::fcntl::Flock;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::pci::PciAddress;

pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/sriov";
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

/// The VF as it was before ADD (sriov-cni's `OrigVfState`, same names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrigVfState {
    #[serde(rename = "HostIFName", default)]
    pub host_ifname: String,
    #[serde(rename = "SpoofChk", default)]
    pub spoofchk: bool,
    #[serde(rename = "Trust", default)]
    pub trust: bool,
    #[serde(rename = "AdminMAC", default, with = "or_empty")]
    pub admin_mac: Option<MacAddr>,
    #[serde(rename = "EffectiveMAC", default, with = "or_empty")]
    pub effective_mac: Option<MacAddr>,
    #[serde(rename = "Vlan", default)]
    pub vlan: u32,
    #[serde(rename = "VlanQoS", default)]
    pub vlan_qos: u32,
    /// The ethertype, as sriov-cni stores it (33024 = 0x8100 = 802.1Q).
    #[serde(rename = "VlanProto", default)]
    pub vlan_proto: u32,
    #[serde(rename = "MinTxRate", default)]
    pub min_tx_rate: u32,
    #[serde(rename = "MaxTxRate", default)]
    pub max_tx_rate: u32,
    #[serde(rename = "LinkState", default)]
    pub link_state: u32,
    #[serde(rename = "MTU", default)]
    pub mtu: u32,
}

pub const ETH_P_8021Q: u32 = 0x8100;
pub const ETH_P_8021AD: u32 = 0x88a8;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Cache {
    /// The network config as given (cniVersion, name, type, ipam, dns, deviceID, vlan, ...).
    #[serde(flatten)]
    pub config: Map<String, Value>,
    #[serde(rename = "OrigVfState")]
    pub orig: OrigVfState,
    #[serde(rename = "Master", default)]
    pub master: String,
    #[serde(rename = "VFID", default)]
    pub vf_id: u32,
    #[serde(rename = "MAC", default, with = "or_empty")]
    pub mac: Option<MacAddr>,
    #[serde(rename = "MTU", default)]
    pub mtu: u32,
    /// Ours: sriov-cni drops the mode, and then cannot DEL a DPDK VF cleanly.
    #[serde(rename = "DPDKMode", default)]
    pub dpdk: bool,
    #[serde(rename = "ContainerID", default)]
    pub container_id: String,
    #[serde(rename = "IfName", default)]
    pub ifname: String,
    #[serde(rename = "Netns", default)]
    pub netns: String,
}

impl Cache {
    /// The VF's PCI address as the cache names it; `None` when it names none, or
    /// something that is not a PCI address (never used as a path then).
    pub fn device_id(&self) -> Option<PciAddress> {
        self.config
            .get("deviceID")
            .and_then(Value::as_str)
            .and_then(PciAddress::parse)
    }

    /// The attachment the cache is of: the config's network name, and ours.
    pub fn attachment(&self) -> AttachmentId {
        let network = self
            .config
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or_default();
        AttachmentId::new(network, &self.container_id, &self.ifname)
    }

    /// Whether the config asked for a setting (then DEL restores it).
    pub fn configured(&self, key: &str) -> bool {
        self.config
            .get(key)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
    }
}

/// The state directory, every file of it reached through [`StateDir`].
pub struct State {
    dir: StateDir,
}

impl State {
    pub fn open() -> Result<State, CniError> {
        State::open_at(Path::new(DEFAULT_STATE_DIR))
    }

    pub fn open_at(path: &Path) -> Result<State, CniError> {
        Ok(State {
            dir: StateDir::create(path, 0o700)?,
        })
    }

    /// Written whole under a temporary name and renamed: never half a cache.
    pub fn write_cache(&self, cache: &Cache) -> Result<(), CniError> {
        let bytes = serde_json::to_vec(cache).expect("a cache serializes");
        self.dir
            .write_atomic(&cache.attachment().sriov_cache_name(), &bytes, 0o600)
            .map_err(CniError::from)
    }

    pub fn read_cache(&self, attachment: &AttachmentId) -> Option<Cache> {
        self.read_cache_file(&attachment.sriov_cache_name())
    }

    fn read_cache_file(&self, name: &str) -> Option<Cache> {
        serde_json::from_slice(&self.dir.read(name).ok()??).ok()
    }

    pub fn remove_cache(&self, attachment: &AttachmentId) -> Result<(), CniError> {
        self.remove_cache_file(&attachment.sriov_cache_name())
    }

    pub fn remove_cache_file(&self, name: &str) -> Result<(), CniError> {
        self.dir.remove(name).map(drop).map_err(CniError::from)
    }

    /// Every cache entry, with its file name (for GC).
    pub fn all_caches(&self) -> Vec<(String, Cache)> {
        self.dir
            .entries()
            .unwrap_or_default()
            .into_iter()
            .filter(|name| !name.starts_with('.') && name != "pci")
            .filter_map(|name| self.read_cache_file(&name).map(|c| (name, c)))
            .collect()
    }

    fn pci_dir(&self) -> Result<StateDir, CniError> {
        self.dir.subdir("pci", true, 0o700).map_err(CniError::from)
    }

    /// The per-VF lock, held until dropped (sriov-cni's file, so both plugins
    /// exclude each other).
    pub fn lock_vf(&self, pci: &PciAddress) -> Result<Flock<File>, CniError> {
        let locks = self.pci_dir()?.subdir("vf_lock", true, 0o700)?;
        let name = format!("{pci}.lock");
        let deadline = Instant::now() + LOCK_TIMEOUT;
        loop {
            match locks.try_lock(&name, 0o600)? {
                Some(lock) => return Ok(lock),
                None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
                None => {
                    return Err(CniError::new(
                        libcni::ErrorCode::TryAgainLater,
                        format!(
                            "time out while waiting to acquire exclusive lock on [{}/{name}]",
                            locks.path().display()
                        ),
                    ))
                }
            }
        }
    }

    /// Refuses a VF that another live netns holds; a record whose netns is gone is
    /// stale and removed.
    pub fn check_free(&self, pci: &PciAddress) -> Result<(), CniError> {
        let records = self.pci_dir()?;
        let Some(netns) = records.read_text(pci.as_str()) else {
            return Ok(());
        };
        let netns = netns.trim();
        if !netns.is_empty() && NetNs::open(Path::new(netns)).is_ok() {
            return Err(CniError::internal(format!(
                "pci address {pci} is already allocated (to {netns})"
            )));
        }
        records
            .remove(pci.as_str())
            .map(drop)
            .map_err(CniError::from)
    }

    pub fn record_allocation(&self, pci: &PciAddress, netns: &str) -> Result<(), CniError> {
        self.pci_dir()?
            .write_atomic(pci.as_str(), netns.as_bytes(), 0o600)
            .map_err(CniError::from)
    }

    /// The live netns other than `netns` that the allocation record of `pci` names:
    /// the VF is another attachment's now. A record of a gone netns, or none, is None.
    pub fn held_by_another(&self, pci: &PciAddress, netns: Option<&str>) -> Option<String> {
        let holder = self.pci_dir().ok()?.read_text(pci.as_str())?;
        let holder = holder.trim();
        (!holder.is_empty() && Some(holder) != netns && NetNs::open(Path::new(holder)).is_ok())
            .then(|| holder.to_string())
    }

    /// Whether the allocation record of `pci` names `netns`: the VF went there.
    pub fn allocated_to(&self, pci: &PciAddress, netns: Option<&str>) -> bool {
        let Some(record) = self.pci_dir().ok().and_then(|d| d.read_text(pci.as_str())) else {
            return false;
        };
        netns.is_some_and(|netns| record.trim() == netns)
    }

    /// Removes the allocation record of `pci` unless it names a live netns other
    /// than `netns` (the VF was given to another attachment meanwhile).
    pub fn release_allocation(
        &self,
        pci: &PciAddress,
        netns: Option<&str>,
    ) -> Result<(), CniError> {
        if let Some(holder) = self.held_by_another(pci, netns) {
            libcni::log_warn!(
                "left the allocation record of {pci} in place: it names {holder:?}, another attachment's netns"
            );
            return Ok(());
        }
        self.pci_dir()?
            .remove(pci.as_str())
            .map(drop)
            .map_err(CniError::from)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_keeps_sriov_cni_field_names() {
        let mut config = Map::new();
        config.insert("deviceID".into(), Value::String("0000:af:06.0".into()));
        config.insert("vlan".into(), Value::from(100));
        let cache = Cache {
            config,
            orig: OrigVfState {
                host_ifname: "ens1f0v0".into(),
                vlan_proto: ETH_P_8021Q,
                admin_mac: Some(MacAddr::ZERO),
                ..Default::default()
            },
            master: "ens1f0".into(),
            vf_id: 3,
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            mtu: 1500,
            dpdk: false,
            container_id: "c1".into(),
            ifname: "net1".into(),
            netns: "/run/netns/a".into(),
        };
        let v = serde_json::to_value(&cache).unwrap();
        assert_eq!(v["OrigVfState"]["HostIFName"], "ens1f0v0");
        assert_eq!(v["OrigVfState"]["VlanProto"], 33024);
        assert_eq!(v["Master"], "ens1f0");
        assert_eq!(v["VFID"], 3);
        assert_eq!(v["deviceID"], "0000:af:06.0");
        assert_eq!(v["DPDKMode"], false);
        // MACs are text as sriov-cni writes them, "" for none.
        assert_eq!(v["OrigVfState"]["AdminMAC"], "00:00:00:00:00:00");
        assert_eq!(v["OrigVfState"]["EffectiveMAC"], "");
        assert_eq!(v["MAC"], "02:00:00:00:00:01");
        let back: Cache = serde_json::from_value(v).unwrap();
        assert!(back.configured("vlan") && !back.configured("trust"));
        assert_eq!(back.device_id().unwrap().as_str(), "0000:af:06.0");
        // A cache written by sriov-cni (no fields of ours) reads too.
        let theirs: Cache = serde_json::from_str(r#"{"cniVersion":"0.3.1","name":"n","deviceID":"0000:af:06.0","OrigVfState":{"HostIFName":"x"},"Master":"p","VFID":1}"#).unwrap();
        assert_eq!(
            (theirs.orig.host_ifname.as_str(), theirs.vf_id, theirs.dpdk),
            ("x", 1, false)
        );
    }

    #[test]
    fn a_record_of_another_live_netns_is_not_released() {
        let dir = std::env::temp_dir().join(format!("sriov-owner-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = State::open_at(&dir).unwrap();
        let pci = PciAddress::parse("0000:af:06.1").unwrap();
        let record = dir.join("pci/0000:af:06.1");
        // Another attachment's live netns holds the VF: neither a DEL naming its
        // own (other) netns nor one naming none takes the record.
        state.record_allocation(&pci, "/proc/self/ns/net").unwrap();
        for mine in [Some("/run/netns/mine"), None] {
            assert_eq!(
                state.held_by_another(&pci, mine).as_deref(),
                Some("/proc/self/ns/net")
            );
            state.release_allocation(&pci, mine).unwrap();
            assert!(record.exists());
        }
        assert!(state.allocated_to(&pci, Some("/proc/self/ns/net")));
        assert!(
            !state.allocated_to(&pci, Some("/run/netns/mine")) && !state.allocated_to(&pci, None)
        );
        // Its own record, or one of a gone netns, goes.
        state
            .release_allocation(&pci, Some("/proc/self/ns/net"))
            .unwrap();
        assert!(!record.exists());
        state
            .record_allocation(&pci, "/run/netns/gone-long-ago")
            .unwrap();
        assert_eq!(state.held_by_another(&pci, Some("/run/netns/mine")), None);
        state
            .release_allocation(&pci, Some("/run/netns/mine"))
            .unwrap();
        assert!(!record.exists());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn stale_allocation_records_do_not_block() {
        let dir = std::env::temp_dir().join(format!("sriov-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let state = State::open_at(&dir).unwrap();
        let pci = PciAddress::parse("0000:af:06.0").unwrap();
        state
            .record_allocation(&pci, "/run/netns/gone-long-ago")
            .unwrap();
        state.check_free(&pci).unwrap();
        assert!(!dir.join("pci/0000:af:06.0").exists());
        state.record_allocation(&pci, "/proc/self/ns/net").unwrap();
        let e = state.check_free(&pci).unwrap_err();
        assert!(e.msg.contains("already allocated"), "{}", e.msg);
        let _lock = state.lock_vf(&pci).unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn long_container_ids_make_cache_names_that_fit() {
        let cache_name =
            |cid: &str, ifname: &str| AttachmentId::new("n", cid, ifname).sriov_cache_name();
        let long = "c".repeat(300);
        let name = cache_name(&long, "net1");
        assert!(name.len() <= 255, "{}", name.len());
        assert_eq!(name, cache_name(&long, "net1"));
        assert_ne!(name, cache_name(&long, "net2"));
        assert_eq!(cache_name("c1", "net1"), "c1-net1");
    }
}
