//! Finding a VF, its PF and its netdev through sysfs, under a root that the
//! `SYSFS_ROOT` environment variable can move (default `/sys`): for nodes that mount
//! the host's sysfs elsewhere, and for tests. Plain `std::fs`; each failure names
//! the path it could not read.

use std::path::{Path, PathBuf};

use libcni::CniError;

use crate::pci::PciAddress;

/// Drivers that take a VF away from the kernel's network stack (DPDK mode).
const USERSPACE_DRIVERS: [&str; 3] = ["vfio-pci", "uio_pci_generic", "igb_uio"];

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VfNetdev {
    /// A kernel netdev, by its current name in the host netns.
    Kernel(String),
    /// No netdev: a userspace driver owns the VF.
    Dpdk { driver: String },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VfDevice {
    pub pci: String,
    pub pf_pci: String,
    pub pf_name: String,
    pub index: u32,
    pub netdev: VfNetdev,
}

pub fn root() -> PathBuf {
    std::env::var_os("SYSFS_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/sys"))
}

fn unreadable(path: &Path, e: std::io::Error) -> CniError {
    CniError::io(format!("failed to read {}: {e}", path.display()))
}

/// The entries of a directory, sorted: "first" then means the same on every node.
fn sorted_entries(dir: &Path) -> Result<Vec<String>, CniError> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map_err(|e| unreadable(dir, e))?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    Ok(names)
}

fn link_basename(path: &Path) -> Result<String, CniError> {
    let target = std::fs::read_link(path).map_err(|e| unreadable(path, e))?;
    Ok(target
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string())
}

/// Finds the VF `pci` (a validated PCI address). A PF with several netdevs (dual-port
/// NICs) is named by the first in sorted order.
pub fn discover(root: &Path, pci: &PciAddress) -> Result<VfDevice, CniError> {
    let vf_dir = root.join("bus/pci/devices").join(pci.as_str());
    let physfn = vf_dir.join("physfn");
    let pf_pci =
        link_basename(&physfn).map_err(|e| e.context(format!("{pci} is not an SR-IOV VF")))?;
    let pf_net = physfn.join("net");
    let pf_name = sorted_entries(&pf_net)?.into_iter().next().ok_or_else(|| {
        CniError::io(format!(
            "PF network device not found: {} is empty",
            pf_net.display()
        ))
    })?;
    let mut index = None;
    for entry in sorted_entries(&physfn)? {
        let Some(n) = entry
            .strip_prefix("virtfn")
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if link_basename(&physfn.join(&entry))? == pci.as_str() {
            index = Some(n);
            break;
        }
    }
    let index = index.ok_or_else(|| {
        CniError::io(format!(
            "no virtfn link of PF {pf_name} ({}) points at VF {pci}",
            physfn.display()
        ))
    })?;
    let net = vf_dir.join("net");
    let netdev = match sorted_entries(&net)
        .ok()
        .and_then(|names| names.into_iter().next())
    {
        Some(name) => VfNetdev::Kernel(name),
        None => {
            let driver_link = vf_dir.join("driver");
            let driver = link_basename(&driver_link).map_err(|e| {
                e.context(format!(
                    "VF {pci} has no network interface ({} is empty or missing) and no driver",
                    net.display()
                ))
            })?;
            if !USERSPACE_DRIVERS.contains(&driver.as_str()) {
                return Err(CniError::io(format!(
                    "VF {pci} has no network interface ({} is empty or missing) and its driver {driver} is not a userspace one",
                    net.display()
                )));
            }
            VfNetdev::Dpdk { driver }
        }
    };
    Ok(VfDevice {
        pci: pci.to_string(),
        pf_pci,
        pf_name,
        index,
        netdev,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pci(text: &str) -> PciAddress {
        PciAddress::parse(text).unwrap()
    }
    use testkit::build_fake_sriov_sysfs as build_fake_tree;

    fn tree(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!("sriov-sysfs-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        root
    }

    #[test]
    fn finds_pf_index_and_netdev() {
        let root = tree("netdev");
        build_fake_tree(
            &root,
            "0000:af:00.0",
            "ens1f0",
            &[
                ("0000:af:06.0", Some("ens1f0v0"), "iavf"),
                ("0000:af:06.1", Some("ens1f0v1"), "iavf"),
            ],
        )
        .unwrap();
        let vf = discover(&root, &pci("0000:af:06.1")).unwrap();
        assert_eq!(
            vf,
            VfDevice {
                pci: "0000:af:06.1".into(),
                pf_pci: "0000:af:00.0".into(),
                pf_name: "ens1f0".into(),
                index: 1,
                netdev: VfNetdev::Kernel("ens1f0v1".into()),
            }
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn a_dual_port_pf_is_named_by_its_first_netdev_in_sorted_order() {
        let root = tree("dual");
        build_fake_tree(
            &root,
            "0000:af:00.0",
            "ens1d1",
            &[("0000:af:06.0", Some("v0"), "mlx4_core")],
        )
        .unwrap();
        std::fs::create_dir_all(root.join("bus/pci/devices/0000:af:00.0/net/ens1")).unwrap();
        assert_eq!(
            discover(&root, &pci("0000:af:06.0")).unwrap().pf_name,
            "ens1"
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn dpdk_mode_and_its_failures() {
        let root = tree("dpdk");
        build_fake_tree(
            &root,
            "0000:af:00.0",
            "ens1f0",
            &[
                ("0000:af:06.0", None, "vfio-pci"),
                ("0000:af:06.1", None, "iavf"),
            ],
        )
        .unwrap();
        assert_eq!(
            discover(&root, &pci("0000:af:06.0")).unwrap().netdev,
            VfNetdev::Dpdk {
                driver: "vfio-pci".into()
            }
        );
        let e = discover(&root, &pci("0000:af:06.1")).unwrap_err();
        assert!(
            e.msg.contains("driver iavf is not a userspace one")
                && e.msg.contains("0000:af:06.1/net"),
            "{}",
            e.msg
        );
        std::fs::remove_dir_all(root).unwrap();
    }

    #[test]
    fn failures_name_the_path() {
        let root = tree("missing");
        let e = discover(&root, &pci("0000:00:01.0")).unwrap_err();
        assert!(
            e.msg.contains("bus/pci/devices/0000:00:01.0/physfn"),
            "{}",
            e.msg
        );
        assert!(e.msg.contains("is not an SR-IOV VF"), "{}", e.msg);
    }
}
