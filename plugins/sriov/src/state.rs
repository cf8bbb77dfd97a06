//! What the plugin keeps on disk under the state directory (default
//! `/var/lib/cni/sriov`), in sriov-cni's layout:
//! - `<containerID>-<ifname>`: the cache, sriov-cni's fields (the config, `OrigVfState`,
//!   `Master`, `VFID`, `MAC`, `MTU`) plus ours (`DPDKMode`, `ContainerID`, `IfName`,
//!   `Netns`), written before anything is changed so that DEL can always undo;
//! - `pci/<pci>`: the allocation record, the netns path of the VF's user;
//! - `pci/vf_lock/<pci>.lock`: the per-VF lock, held by an ADD or DEL for its life.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use libcni::netns::NetNs;
use libcni::CniError;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub const DEFAULT_STATE_DIR: &str = "/var/lib/cni/sriov";
const LOCK_TIMEOUT: Duration = Duration::from_secs(60);

pub fn state_dir() -> PathBuf {
    PathBuf::from(DEFAULT_STATE_DIR)
}

fn io(what: &str, path: &Path, e: std::io::Error) -> CniError {
    CniError::io(format!("failed to {what} {}: {e}", path.display()))
}

/// The VF as it was before ADD (sriov-cni's `OrigVfState`, same names).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrigVfState {
    #[serde(rename = "HostIFName", default)]
    pub host_ifname: String,
    #[serde(rename = "SpoofChk", default)]
    pub spoofchk: bool,
    #[serde(rename = "Trust", default)]
    pub trust: bool,
    #[serde(rename = "AdminMAC", default)]
    pub admin_mac: String,
    #[serde(rename = "EffectiveMAC", default)]
    pub effective_mac: String,
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
    #[serde(rename = "MAC", default)]
    pub mac: String,
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
    pub fn device_id(&self) -> String {
        self.config
            .get("deviceID")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    }

    /// Whether the config asked for a setting (then DEL restores it).
    pub fn configured(&self, key: &str) -> bool {
        self.config
            .get(key)
            .is_some_and(|v| !v.is_null() && v.as_str() != Some(""))
    }
}

pub fn cache_path(dir: &Path, container_id: &str, ifname: &str) -> PathBuf {
    dir.join(format!("{container_id}-{ifname}"))
}

/// Written whole under a temporary name and renamed: never half a cache.
pub fn write_cache(dir: &Path, cache: &Cache) -> Result<(), CniError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io("create", dir, e))?;
    let path = cache_path(dir, &cache.container_id, &cache.ifname);
    let temp = dir.join(format!(".tmp-{}", std::process::id()));
    let bytes = serde_json::to_vec(cache).expect("a cache serializes");
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temp)
        .map_err(|e| io("write", &temp, e))?;
    std::io::Write::write_all(&mut file, &bytes).map_err(|e| io("write", &temp, e))?;
    file.sync_all().map_err(|e| io("write", &temp, e))?;
    std::fs::rename(&temp, &path).map_err(|e| io("write", &path, e))
}

pub fn read_cache(path: &Path) -> Option<Cache> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

pub fn remove(path: &Path) -> Result<(), CniError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path, e)),
        _ => Ok(()),
    }
}

/// The per-VF lock, held until dropped (sriov-cni's file, so both plugins exclude
/// each other).
pub fn lock_vf(dir: &Path, pci: &str) -> Result<Flock<File>, CniError> {
    let lock_dir = dir.join("pci/vf_lock");
    std::fs::create_dir_all(&lock_dir).map_err(|e| io("create", &lock_dir, e))?;
    let path = lock_dir.join(format!("{pci}.lock"));
    let deadline = Instant::now() + LOCK_TIMEOUT;
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| io("open", &path, e))?;
    loop {
        match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(lock) => return Ok(lock),
            Err((returned, nix::errno::Errno::EWOULDBLOCK)) if Instant::now() < deadline => {
                file = returned;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err((_, errno)) => {
                return Err(CniError::new(
                    libcni::ErrorCode::TryAgainLater,
                    format!(
                        "time out while waiting to acquire exclusive lock on [{}]: {errno}",
                        path.display()
                    ),
                ))
            }
        }
    }
}

fn allocation_path(dir: &Path, pci: &str) -> PathBuf {
    dir.join("pci").join(pci)
}

/// Refuses a VF that another live netns holds; a record whose netns is gone is stale
/// and removed.
pub fn check_free(dir: &Path, pci: &str) -> Result<(), CniError> {
    let path = allocation_path(dir, pci);
    let Ok(netns) = std::fs::read_to_string(&path) else {
        return Ok(());
    };
    let netns = netns.trim();
    if !netns.is_empty() && NetNs::open(Path::new(netns)).is_ok() {
        return Err(CniError::internal(format!(
            "pci address {pci} is already allocated (to {netns})"
        )));
    }
    remove(&path)
}

pub fn record_allocation(dir: &Path, pci: &str, netns: &str) -> Result<(), CniError> {
    let path = allocation_path(dir, pci);
    std::fs::create_dir_all(path.parent().expect("pci dir")).map_err(|e| io("create", &path, e))?;
    std::fs::write(&path, netns).map_err(|e| io("write", &path, e))
}

pub fn release_allocation(dir: &Path, pci: &str) -> Result<(), CniError> {
    remove(&allocation_path(dir, pci))
}

/// Every cache entry (for GC).
pub fn all_caches(dir: &Path) -> Vec<(PathBuf, Cache)> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter_map(|p| read_cache(&p).map(|c| (p, c)))
        .collect()
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
                admin_mac: "00:00:00:00:00:00".into(),
                ..Default::default()
            },
            master: "ens1f0".into(),
            vf_id: 3,
            mac: "02:00:00:00:00:01".into(),
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
        let back: Cache = serde_json::from_value(v).unwrap();
        assert!(back.configured("vlan") && !back.configured("trust"));
        // A cache written by sriov-cni (no fields of ours) reads too.
        let theirs: Cache = serde_json::from_str(r#"{"cniVersion":"0.3.1","name":"n","deviceID":"0000:af:06.0","OrigVfState":{"HostIFName":"x"},"Master":"p","VFID":1}"#).unwrap();
        assert_eq!(
            (theirs.orig.host_ifname.as_str(), theirs.vf_id, theirs.dpdk),
            ("x", 1, false)
        );
    }

    #[test]
    fn stale_allocation_records_do_not_block() {
        let dir = std::env::temp_dir().join(format!("sriov-state-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        record_allocation(&dir, "0000:af:06.0", "/run/netns/gone-long-ago").unwrap();
        check_free(&dir, "0000:af:06.0").unwrap();
        assert!(!dir.join("pci/0000:af:06.0").exists());
        record_allocation(&dir, "0000:af:06.0", "/proc/self/ns/net").unwrap();
        let e = check_free(&dir, "0000:af:06.0").unwrap_err();
        assert!(e.msg.contains("already allocated"), "{}", e.msg);
        let _lock = lock_vf(&dir, "0000:af:06.0").unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }
}
