//! SR-IOV stand-ins: fake sysfs trees with veths as VFs, and netdevsim devices
//! with real VF netlink state.

use std::path::Path;

use crate::call::sh;
use crate::skip::kernel_feature_missing;

/// VF stand-ins for the sriov tests: for each `(pci, netdev)` a veth named `netdev`
/// (its peer `peer-<netdev>`) in the current netns, and a fake sysfs tree under `sysfs`
/// that names them the VFs of `pf_name` at `pf_pci` (driver iavf).
pub fn fake_vfs(sysfs: &Path, pf_pci: &str, pf_name: &str, vfs: &[(String, String)]) {
    for (_, name) in vfs {
        sh(&[
            "ip",
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("peer-{name}"),
        ]);
    }
    let entries: Vec<(&str, Option<&str>, &str)> = vfs
        .iter()
        .map(|(pci, name)| (pci.as_str(), Some(name.as_str()), "iavf"))
        .collect();
    build_fake_sriov_sysfs(sysfs, pf_pci, pf_name, &entries).unwrap();
}

/// Builds a fake sysfs tree (for `SYSFS_ROOT`) of one PF and its VFs: `vfs` is (VF PCI address, netdev name or None, driver).
pub fn build_fake_sriov_sysfs(
    root: &Path,
    pf_pci: &str,
    pf_name: &str,
    vfs: &[(&str, Option<&str>, &str)],
) -> std::io::Result<()> {
    use std::os::unix::fs::symlink;
    let devices = root.join("bus/pci/devices");
    let pf_dir = devices.join(pf_pci);
    std::fs::create_dir_all(pf_dir.join("net").join(pf_name))?;
    std::fs::write(pf_dir.join("sriov_numvfs"), format!("{}\n", vfs.len()))?;
    for (n, (vf, netdev, driver)) in vfs.iter().enumerate() {
        let vf_dir = devices.join(vf);
        std::fs::create_dir_all(&vf_dir)?;
        let _ = std::fs::remove_file(pf_dir.join(format!("virtfn{n}")));
        symlink(format!("../{vf}"), pf_dir.join(format!("virtfn{n}")))?;
        let _ = std::fs::remove_file(vf_dir.join("physfn"));
        symlink(format!("../{pf_pci}"), vf_dir.join("physfn"))?;
        let drivers = root.join("bus/pci/drivers").join(driver);
        std::fs::create_dir_all(&drivers)?;
        let _ = std::fs::remove_file(vf_dir.join("driver"));
        symlink(&drivers, vf_dir.join("driver"))?;
        if let Some(name) = netdev {
            std::fs::create_dir_all(vf_dir.join("net").join(name))?;
        }
    }
    Ok(())
}

/// A netdevsim device: a PF with real VF netlink state (full-kernel tier only). It
/// is created in the calling thread's netns (the sandbox's) and deleted on drop.
pub struct Netdevsim {
    pub id: u32,
    pub pf: String,
}

impl Netdevsim {
    /// `None` after a loud skip when the kernel has no netdevsim.
    pub fn new(test: &str, pf_name: &str, vfs: u32) -> Option<Netdevsim> {
        let bus = Path::new("/sys/bus/netdevsim");
        if !bus.exists() {
            kernel_feature_missing(test, "netdevsim");
            return None;
        }
        // A device ID unique on the machine while tests run in parallel.
        let id = 1000 + (std::process::id() % 50_000) * 7 % 40_000 + rand_small();
        std::fs::write(bus.join("new_device"), format!("{id} 1"))
            .expect("create a netdevsim device");
        let net = bus.join(format!("devices/netdevsim{id}/net"));
        let mut current = None;
        for _ in 0..100 {
            current = std::fs::read_dir(&net)
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned());
            if current.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let current = current.expect("netdevsim created its PF netdev");
        if vfs > 4 {
            // netdevsim allows 4 VFs unless debugfs raises the limit (the sandbox's
            // fresh sysfs has debugfs unmounted).
            if !Path::new("/sys/kernel/debug/netdevsim").exists() {
                let _ = nix::mount::mount(
                    Some("debugfs"),
                    "/sys/kernel/debug",
                    Some("debugfs"),
                    nix::mount::MsFlags::empty(),
                    None::<&str>,
                );
            }
            std::fs::write(
                format!("/sys/kernel/debug/netdevsim/netdevsim{id}/max_vfs"),
                vfs.to_string(),
            )
            .expect("raise netdevsim's VF limit");
        }
        std::fs::write(
            bus.join(format!("devices/netdevsim{id}/sriov_numvfs")),
            vfs.to_string(),
        )
        .expect("enable VFs");
        sh(&["ip", "link", "set", &current, "name", pf_name]);
        sh(&["ip", "link", "set", pf_name, "up"]);
        Some(Netdevsim {
            id,
            pf: pf_name.to_string(),
        })
    }
}

fn rand_small() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos % 997
}

impl Drop for Netdevsim {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/bus/netdevsim/del_device", self.id.to_string());
    }
}
