//! `sriov`: assigns an SR-IOV virtual function to a pod or VM. The VF (its PCI
//! address is `deviceID`) is found through sysfs, configured on its PF through
//! netlink, its netdev moved into the container; DEL puts everything back.
//! Compatible with sriov-cni's configs, results and cache files.

mod config;
mod pci;
mod state;
mod sysfs;

use std::path::Path;

use libcni::attach;
use libcni::delegate::ipam;
use libcni::hooks::failpoint;
use libcni::host::apply::{configure_interface, InterfaceOptions};
use libcni::mac::MacAddr;
use libcni::netlink::{Link, LinkId, Netlink, VfConfig, VfLinkStateSetting, VfRate, VfVlanSetting};
use libcni::netns::NetNs;
use libcni::spec::config::{parse_netconf, NetConf};
use libcni::spec::error::ErrorList;
use libcni::spec::result::Interface;
use libcni::{About, CniError, CniResult, Plugin, Request, SpecVersion};
use serde_json::Value;

use crate::pci::PciAddress;
use crate::state::{Cache, OrigVfState, State, ETH_P_8021AD, ETH_P_8021Q};
use crate::sysfs::VfNetdev;

/// The VF as the PF and the host netns show it now.
fn original_state(
    nl: &mut Netlink,
    pf: &Link,
    index: u32,
    netdev: &VfNetdev,
) -> Result<(OrigVfState, Option<Link>), CniError> {
    let vf = nl.get_vf(pf.index, &pf.name, index)?;
    let mut orig = OrigVfState {
        spoofchk: vf.spoofchk,
        trust: vf.trust,
        admin_mac: vf.mac,
        vlan: vf.vlan,
        vlan_qos: vf.qos,
        vlan_proto: if vf.vlan_proto_8021ad {
            ETH_P_8021AD
        } else {
            ETH_P_8021Q
        },
        min_tx_rate: vf.min_tx_rate,
        max_tx_rate: vf.max_tx_rate,
        link_state: vf.link_state.unwrap_or(0),
        ..Default::default()
    };
    let link = match netdev {
        VfNetdev::Kernel(name) => {
            let link = nl.get_link(&LinkId::Name(name))?.ok_or_else(|| {
                CniError::io(format!(
                    "VF netdev {name:?} named by sysfs is not in the host network namespace"
                ))
            })?;
            orig.host_ifname = name.clone();
            orig.effective_mac = link.mac;
            orig.mtu = link.mtu;
            Some(link)
        }
        VfNetdev::Dpdk { .. } => None,
    };
    Ok((orig, link))
}

/// What DEL writes back on the PF: each setting ADD changed, as it was; the admin
/// MAC whenever one was captured (sriov-cni does the same).
fn restore_config(cache: &Cache) -> VfConfig {
    let orig = &cache.orig;
    VfConfig {
        vlan: cache.configured("vlan").then_some(VfVlanSetting {
            id: orig.vlan,
            qos: orig.vlan_qos,
            proto_8021ad: orig.vlan_proto == ETH_P_8021AD,
        }),
        mac: orig.admin_mac,
        rate: (cache.configured("min_tx_rate") || cache.configured("max_tx_rate")).then_some(
            VfRate {
                min_mbps: orig.min_tx_rate,
                max_mbps: orig.max_tx_rate,
            },
        ),
        spoofchk: cache.configured("spoofchk").then_some(orig.spoofchk),
        trust: cache.configured("trust").then_some(orig.trust),
        link_state: cache
            .configured("link_state")
            .then_some(VfLinkStateSetting::from_kernel_value(orig.link_state)),
    }
}

/// Moves a netdev out of `from` into `to` under `new_name`, through a fresh netns
/// so that no name can collide on the way, and drops the altname the kernel may
/// keep of its old name.
fn move_via_temporary(
    from: &mut Netlink,
    link: &Link,
    to: &NetNs,
    new_name: &str,
) -> Result<(), CniError> {
    let temporary = NetNs::new_anonymous()?;
    let mut there = temporary.netlink()?;
    // A link cannot take a name it already has as an altname (left by an earlier
    // rename): drop that first.
    for altname in link.altnames.iter().filter(|a| *a == new_name) {
        from.delete_altname(link.index, altname)?;
    }
    from.change_link(link.index)
        .netns(temporary.fd(), "a temporary netns")
        .name(new_name)
        .apply()
        .map_err(|e| CniError::from(e.context(format!("move VF netdev {:?}", link.name))))?;
    let moved = there.require_link(&LinkId::Name(new_name))?;
    for altname in moved.altnames.iter().filter(|a| **a == link.name) {
        there.delete_altname(moved.index, altname)?;
    }
    there
        .change_link(moved.index)
        .netns(to.fd(), &to.path().display().to_string())
        .apply()
        .map_err(|e| CniError::from(e.context(format!("move VF netdev {new_name:?}"))))?;
    Ok(())
}

/// Puts the VF netdev back in the host under its original name, with its MAC and MTU.
fn return_netdev(from: &mut Netlink, link: &Link, orig: &OrigVfState) -> Result<(), CniError> {
    from.change_link(link.index).down().apply()?;
    let host = NetNs::current()?;
    move_via_temporary(from, link, &host, &orig.host_ifname)?;
    let mut nl = Netlink::open()?;
    let back = nl.require_link(&LinkId::Name(&orig.host_ifname))?;
    if let Some(mac) = orig.effective_mac {
        if back.mac != Some(mac) {
            nl.change_link(back.index).mac(mac).apply()?;
        }
    }
    if orig.mtu != 0 && back.mtu != orig.mtu {
        nl.change_link(back.index).mtu(orig.mtu).apply()?;
    }
    if back.alias.is_some() {
        nl.change_link(back.index).alias("").apply()?;
    }
    Ok(())
}

/// Whether the pod's `link` is the VF of this attachment: marked for it at ADD, or
/// (moved by sriov-cni, which marks nothing) a device without a link kind, as a VF
/// netdev is, and not the loopback. A veth, a macvlan, `lo` or another
/// attachment's interface of the same name is never taken out of the pod.
fn is_attachment_vf(link: &Link, mark: &str) -> bool {
    match link.alias.as_deref() {
        Some(alias) if alias.starts_with("cni:") => alias == mark,
        _ => link.kind.is_none() && !link.is_loopback(),
    }
}

/// Undoes an attachment from its cache: the PF-side settings, then the netdev back
/// to the host. Best effort on every step; reports all failures.
fn release(cache: &Cache, netns: Option<&Path>) -> Result<(), CniError> {
    let mut errors = ErrorList::new();
    let mut nl = Netlink::open()?;
    match nl.get_link(&LinkId::Name(&cache.master))? {
        Some(pf) => {
            errors.record(
                nl.set_vf(pf.index, &pf.name, cache.vf_id, &restore_config(cache))
                    .map_err(CniError::from),
            );
        }
        None => errors.push(CniError::internal(format!(
            "PF {:?} is gone: the VF settings cannot be restored",
            cache.master
        ))),
    }
    if !cache.dpdk && !cache.orig.host_ifname.is_empty() {
        let inside = match netns.map(NetNs::open_if_present) {
            Some(Ok(Some(ns))) => Some(ns),
            Some(Err(e)) => {
                errors.push(e.into());
                None
            }
            _ => None,
        };
        let in_pod = match &inside {
            Some(ns) => {
                let mut pod = ns.netlink()?;
                let mark = cache.attachment().link_mark();
                match pod.get_link(&LinkId::Name(&cache.ifname))? {
                    Some(link) if is_attachment_vf(&link, &mark) => {
                        errors.record(return_netdev(&mut pod, &link, &cache.orig));
                        true
                    }
                    _ => false,
                }
            }
            None => false,
        };
        if !in_pod {
            // The netns is gone (a physical VF then returns to the host under the pod's
            // name) or the VF never reached it: find it in the host by sysfs.
            errors.record(rename_in_host(cache));
        }
    }
    errors.into_result()
}

fn rename_in_host(cache: &Cache) -> Result<(), CniError> {
    let Some(device_id) = cache.device_id() else {
        return Ok(());
    };
    let Ok(dev) = sysfs::discover(&sysfs::root(), &device_id) else {
        return Ok(());
    };
    let VfNetdev::Kernel(current) = dev.netdev else {
        return Ok(());
    };
    let mut nl = Netlink::open()?;
    let Some(link) = nl.get_link(&LinkId::Name(&current))? else {
        return Ok(());
    };
    if current != cache.orig.host_ifname {
        nl.change_link(link.index).down().apply()?;
        nl.change_link(link.index)
            .name(&cache.orig.host_ifname)
            .apply()?;
        if let Some(link) = nl.get_link(&LinkId::Index(link.index))? {
            for altname in link.altnames.iter().filter(|a| **a == current) {
                nl.delete_altname(link.index, altname)?;
            }
        }
    }
    Ok(())
}

struct Sriov;

/// The steps of ADD after the cache is written; on failure `add` undoes them.
fn attach_vf<'r>(
    request: &'r Request,
    cfg: &config::Config,
    netns: &NetNs,
    dev: &sysfs::VfDevice,
    cache: &Cache,
    pf: &Link,
    host_link: Option<&Link>,
) -> Result<(CniResult, Option<ipam::Allocation<'r>>), CniError> {
    let mut nl = Netlink::open()?;
    nl.set_vf(pf.index, &pf.name, dev.index, &cfg.vf)?;
    failpoint("sriov-after-vf-config");
    let mut inside = netns.netlink()?;
    let mac = match (cfg.mac(), host_link) {
        (Some(mac), _) => Some(mac),
        (None, Some(_)) => cache.orig.effective_mac,
        (None, None) => cache.orig.admin_mac.filter(|m| !m.is_zero()),
    };
    let mut mtu = cache.mtu;
    if let Some(link) = host_link {
        let pod = Pod {
            request,
            netns,
            inside: &mut inside,
        };
        mtu = move_into_pod(pod, &mut nl, cfg, link)?.unwrap_or(mtu);
        libcni::log_debug!(
            "VF {} of PF {:?} moved into {} as {:?}",
            dev.index,
            pf.name,
            netns.path().display(),
            request.ifname
        );
    }
    let mut result = CniResult::default();
    result.add_interface(Interface {
        name: request.ifname.clone(),
        // sriov-cni's spelling: a requested MAC as written, lowercased.
        mac: match &cfg.requested_mac {
            Some(requested) => Some(requested.written.to_lowercase()),
            None => mac.map(|m| m.to_string()),
        },
        mtu: Some(mtu).filter(|m| *m > 0),
        sandbox: Some(netns.path().display().to_string()),
        pci_id: (request.version >= SpecVersion::V1_1_0).then(|| dev.pci.clone()),
        ..Default::default()
    });
    let pod = Pod {
        request,
        netns,
        inside: &mut inside,
    };
    // DPDK: the addresses are allocated and reported, not configured.
    let allocation = allocate(pod, cfg, &mut result, host_link.is_some())?;
    failpoint("sriov-after-ipam");
    if let Some(dns) = cfg.conf.dns.as_ref().filter(|d| !d.is_empty()) {
        result.dns = dns.clone();
    }
    if let Some(path) = cfg
        .conf
        .runtime_config
        .other
        .get("CNIDeviceInfoFile")
        .and_then(Value::as_str)
    {
        write_device_info(Path::new(path), dev)?;
    }
    Ok((result, allocation))
}

/// The container side of an ADD: the request, its netns and a socket in it.
struct Pod<'a, 'r> {
    request: &'r Request,
    netns: &'a NetNs,
    inside: &'a mut Netlink,
}

/// Moves the VF netdev into the pod as CNI_IFNAME, with the configured MAC and
/// MTU, and brings it up. Returns the MTU it set, if any.
fn move_into_pod(
    pod: Pod<'_, '_>,
    nl: &mut Netlink,
    cfg: &config::Config,
    link: &Link,
) -> Result<Option<u32>, CniError> {
    let Pod {
        request,
        netns,
        inside,
    } = pod;
    if inside.get_link(&LinkId::Name(&request.ifname))?.is_some() {
        return Err(CniError::internal(format!(
            "interface {:?} already exists in {}",
            request.ifname,
            netns.path().display()
        )));
    }
    // Marked before it moves: DEL returns only a netdev that is this VF.
    nl.change_link(link.index)
        .alias(&request.attachment().link_mark())
        .apply()?;
    move_via_temporary(nl, link, netns, &request.ifname)?;
    failpoint("sriov-after-move");
    let vf = inside.require_link(&LinkId::Name(&request.ifname))?;
    if let Some(mac) = cfg.mac() {
        inside.change_link(vf.index).mac(mac).apply()?;
    }
    let mtu = cfg.conf.plugin.mtu.filter(|m| *m > 0);
    if let Some(want) = mtu {
        inside.change_link(vf.index).mtu(want).apply()?;
    }
    // sriov-cni's: an IPv6 address is usable at once while DAD runs.
    let optimistic = format!("net/ipv6/conf/{}/optimistic_dad", request.ifname);
    if let Err(e) = netns.run(|| libcni::host::sysctl::write(&optimistic, "1"))? {
        libcni::log_debug!("{e}");
    }
    inside.change_link(vf.index).up().apply()?;
    Ok(mtu)
}

/// IPAM's addresses into the result, and onto the VF netdev when `configure`.
fn allocate<'r>(
    pod: Pod<'_, 'r>,
    cfg: &config::Config,
    result: &mut CniResult,
    configure: bool,
) -> Result<Option<ipam::Allocation<'r>>, CniError> {
    let Some(ipam_conf) = cfg.conf.delegated_ipam() else {
        return Ok(None);
    };
    let allocation = ipam::add(pod.request, &ipam_conf.plugin_type)?;
    allocation.merge_into(result, 0);
    if configure {
        configure_interface(
            pod.netns,
            pod.inside,
            &pod.request.ifname,
            result,
            InterfaceOptions::default(),
        )?;
    }
    Ok(Some(allocation))
}

/// The network-plumbing device-info file (type `pci`), unless it exists already
/// (the device plugin's copy then stands).
fn write_device_info(path: &Path, dev: &sysfs::VfDevice) -> Result<(), CniError> {
    if path.exists() {
        return Ok(());
    }
    let info = serde_json::json!({"type": "pci", "version": "1.1.0",
        "pci": {"pci-address": dev.pci, "pf-pci-address": dev.pf_pci}});
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| CniError::io(format!("failed to create {}: {e}", dir.display())))?;
    }
    std::fs::write(path, info.to_string()).map_err(|e| {
        CniError::io(format!(
            "failed to write the device-info file {}: {e}",
            path.display()
        ))
    })
}

/// sriov-cni's `logLevel` and `logFile`, applied once the config is valid.
fn set_up_logging(keys: &config::SriovKeys) {
    if !keys.log_level.is_empty() {
        libcni::log::set_level(&keys.log_level);
    }
    if !keys.log_file.is_empty() {
        if let Err(e) = libcni::log::set_file(Path::new(&keys.log_file)) {
            libcni::log_warn!("cannot open logFile {}: {e}", keys.log_file);
        }
    }
}

/// The cache ADD writes before it changes anything.
fn new_cache(
    request: &Request,
    cfg: &config::Config,
    netns: &NetNs,
    pf: &Link,
    vf_id: u32,
    (orig, host_link): (OrigVfState, Option<&Link>),
) -> Cache {
    // Keys spelled as the config's types name them (`"DeviceID"` is `deviceID`, as
    // Go reads it), so that DEL finds them in the cache, and so does sriov-cni,
    // which caches its parsed config.
    let config = match serde_json::from_slice::<Value>(&request.stdin) {
        Ok(mut value) => {
            libcni::spec::gojson::canonicalize_config(
                &mut value,
                libcni::spec::gojson::field_names::<config::SriovKeys>(),
            );
            match value {
                Value::Object(map) => map,
                _ => Default::default(),
            }
        }
        Err(_) => Default::default(),
    };
    Cache {
        config,
        mtu: host_link.map(|l| l.mtu).unwrap_or(pf.mtu),
        orig,
        master: pf.name.clone(),
        vf_id,
        mac: cfg.mac(),
        dpdk: host_link.is_none(),
        container_id: request.container_id.clone(),
        ifname: request.ifname.clone(),
        netns: netns.path().display().to_string(),
    }
}

/// Switches and peers learn where the addresses now live at once.
fn announce_addresses(netns: &NetNs, request: &Request, result: &CniResult) {
    if result.ips.is_empty() {
        return;
    }
    let addresses: Vec<_> = result.ips.iter().map(|ip| ip.address.addr()).collect();
    match libcni::host::announce::announce(netns, &request.ifname, &addresses) {
        Ok(n) => libcni::log_debug!("announced {n} addresses on {:?}", request.ifname),
        Err(e) => libcni::log_warn!("{e}"),
    }
}

impl Plugin for Sriov {
    type Config = config::Config;
    /// DEL undoes from the cache; a config it cannot validate is no config.
    type DelConfig = Option<config::Config>;
    /// GC and STATUS read only the common keys.
    type GcConfig = NetConf;

    fn load(&self, request: &Request) -> Result<config::Config, CniError> {
        let cfg = config::load(request)?;
        set_up_logging(&cfg.conf.plugin);
        Ok(cfg)
    }

    fn load_for_del(&self, request: &Request) -> Result<Option<config::Config>, CniError> {
        Ok(self.load(request).ok())
    }

    fn load_for_gc(&self, request: &Request) -> Result<NetConf, CniError> {
        parse_netconf(&request.stdin)
    }

    fn add(&self, request: &Request, cfg: &config::Config) -> Result<CniResult, CniError> {
        ipam::require_installed(request, cfg.conf.delegated_ipam())?;
        let netns = attach::request_netns(request)?;
        let state = State::open()?;
        let _lock = state.lock_vf(&cfg.device_id)?;
        state.check_free(&cfg.device_id)?;
        let started = std::time::Instant::now();
        let dev = sysfs::discover(&sysfs::root(), &cfg.device_id)?;
        let sysfs_time = started.elapsed();
        let mut nl = Netlink::open()?;
        let pf = nl.require_link(&LinkId::Name(&dev.pf_name))?;
        let (orig, host_link) = original_state(&mut nl, &pf, dev.index, &dev.netdev)?;
        let cache = new_cache(
            request,
            cfg,
            &netns,
            &pf,
            dev.index,
            (orig, host_link.as_ref()),
        );
        // Both written before anything changes: a store that cannot be written fails
        // ADD with the VF as it was, and from here on DEL can always undo.
        state.write_cache(&cache)?;
        if let Err(e) = state.record_allocation(&cfg.device_id, &cache.netns) {
            let _ = state.remove_cache(&cache.attachment());
            return Err(e);
        }
        failpoint("sriov-after-cache");
        match attach_vf(request, cfg, &netns, &dev, &cache, &pf, host_link.as_ref()) {
            Ok((result, allocation)) => {
                if host_link.is_some() {
                    announce_addresses(&netns, request, &result);
                }
                libcni::log_info!(
                    "attached VF {} ({}) to {} as {:?}",
                    cfg.device_id,
                    cache.master,
                    netns.path().display(),
                    request.ifname
                );
                let ipam = allocation.as_ref().map(|a| a.elapsed).unwrap_or_default();
                libcni::hooks::trace_timings(
                    "sriov ADD",
                    &[
                        ("total", started.elapsed()),
                        ("sysfs", sysfs_time),
                        ("ipam", ipam),
                    ],
                );
                if let Some(allocation) = allocation {
                    allocation.keep();
                }
                Ok(result)
            }
            Err(error) => {
                // The IPAM allocation, if any, was released when it was dropped.
                if let Err(undo) = release(&cache, Some(netns.path())) {
                    libcni::log_warn!("rollback of the failed ADD: {undo}");
                }
                let _ = state.remove_cache(&cache.attachment());
                let _ = state.release_allocation(&cfg.device_id, Some(&cache.netns));
                Err(error)
            }
        }
    }

    /// Restores the VF from the cache, releases IPAM, removes cache and record.
    /// With no cache (lost, or never written) it resets what it can from `deviceID`.
    fn del(&self, request: &Request, cfg: &Option<config::Config>) -> Result<(), CniError> {
        let state = State::open()?;
        let attachment = request.attachment();
        let cache = state.read_cache(&attachment);
        let mut errors = ErrorList::new();
        if let Some(cfg) = cfg {
            if let Some(ipam_conf) = cfg.conf.delegated_ipam() {
                errors.record(ipam::del(request, &ipam_conf.plugin_type));
            }
        }
        let device_id = cache
            .as_ref()
            .and_then(Cache::device_id)
            .or_else(|| cfg.as_ref().map(|c| c.device_id.clone()));
        let Some(device_id) = device_id else {
            // Nothing names a VF: nothing to undo (an invalid config with no cache).
            return errors.into_result();
        };
        let _lock = state.lock_vf(&device_id)?;
        // The netns this attachment's VF went to: from its cache, else the request's.
        let owner = cache
            .as_ref()
            .map(|c| c.netns.as_str())
            .or_else(|| request.netns.as_deref().and_then(Path::to_str));
        // A VF whose allocation record names another live netns was given to another
        // attachment after this one let it go (a DEL retried, an ADD that never
        // wrote its cache): its settings and record are that attachment's and stay.
        if let Some(holder) = state.held_by_another(&device_id, owner) {
            libcni::log_warn!(
                "left VF {device_id} as it is: its allocation record names {holder:?}, another attachment's netns"
            );
            errors.record(state.remove_cache(&attachment));
            return errors.into_result();
        }
        match &cache {
            Some(cache) => {
                errors.record(release(cache, request.netns.as_deref()));
            }
            // ADD writes its cache and the allocation record before it changes the VF:
            // without the cache, a record naming this request's netns shows the VF
            // went there, and this attachment's interface in it shows it is ours (the
            // record names a netns, not which of its attachments holds the VF).
            None if state.allocated_to(&device_id, owner) => {
                match reset_without_cache(request, &device_id, cfg.as_ref()) {
                    Ok(true) => {}
                    Ok(false) => {
                        libcni::log_warn!(
                            "left VF {device_id} and its allocation record as they are: the record names this netns, but no interface {:?} of this attachment is in it",
                            request.ifname
                        );
                        return errors.into_result();
                    }
                    Err(e) => errors.push(e),
                }
            }
            None => {
                libcni::log_warn!(
                    "left VF {device_id} as it is: no cache of this attachment and no allocation record naming its netns show that this attachment changed it"
                );
            }
        };
        let outcome = errors.into_result();
        if outcome.is_ok() {
            state.remove_cache(&attachment)?;
            state.release_allocation(&device_id, owner)?;
        }
        outcome
    }

    fn check(&self, request: &Request, cfg: &config::Config) -> Result<(), CniError> {
        let prev = cfg.conf.required_prev_result(request.version)?;
        ipam::forward(request, cfg.conf.delegated_ipam())?;
        let dev = sysfs::discover(&sysfs::root(), &cfg.device_id)?;
        let mut nl = Netlink::open()?;
        let pf = nl.require_link(&LinkId::Name(&dev.pf_name))?;
        let vf = nl.get_vf(pf.index, &pf.name, dev.index)?;
        let mismatch = |what: &str, actual: String, wanted: String| {
            Err(CniError::internal(format!(
                "VF {} on PF {:?}: {what} is {actual}, the config says {wanted}",
                dev.index, pf.name
            )))
        };
        if let Some(VfVlanSetting {
            id: vlan,
            qos,
            proto_8021ad: ad,
        }) = cfg.vf.vlan
        {
            if (vf.vlan, vf.qos, vf.vlan_proto_8021ad) != (vlan, qos, ad) {
                return mismatch(
                    "vlan/qos/802.1ad",
                    format!("{}/{}/{}", vf.vlan, vf.qos, vf.vlan_proto_8021ad),
                    format!("{vlan}/{qos}/{ad}"),
                );
            }
        }
        if let Some(mac) = cfg.mac() {
            if vf.mac != Some(mac) {
                let admin = vf.mac.map(|m| m.to_string()).unwrap_or_default();
                return mismatch("the admin MAC", admin, mac.to_string());
            }
        }
        if let Some(on) = cfg.vf.spoofchk.filter(|on| *on != vf.spoofchk) {
            return mismatch("spoofchk", vf.spoofchk.to_string(), on.to_string());
        }
        if let Some(on) = cfg.vf.trust.filter(|on| *on != vf.trust) {
            return mismatch("trust", vf.trust.to_string(), on.to_string());
        }
        if let Some(rate) = cfg.vf.rate {
            for (key, actual, wanted) in [
                ("min_tx_rate", vf.min_tx_rate, rate.min_mbps),
                ("max_tx_rate", vf.max_tx_rate, rate.max_mbps),
            ] {
                if actual != wanted {
                    return mismatch(key, format!("{actual} Mbps"), format!("{wanted} Mbps"));
                }
            }
        }
        if let Some(state) = cfg.vf.link_state {
            if vf.link_state != Some(state.kernel_value()) {
                let actual = vf.link_state.map_or("unknown", |v| {
                    VfLinkStateSetting::from_kernel_value(v).name()
                });
                return mismatch("link_state", actual.to_string(), state.name().to_string());
            }
        }
        if let VfNetdev::Dpdk { .. } = dev.netdev {
            return Ok(());
        }
        let netns = attach::request_netns(request)?;
        let mut inside = netns.netlink()?;
        let (index, link) = attach::container_link(&mut inside, &prev, request, None)?;
        attach::check_mac(&link, prev.interfaces[index].mac.as_deref(), cfg.mac())?;
        attach::check_configured_mtu(&link, cfg.conf.plugin.mtu)?;
        attach::check_ips_and_routes(&mut inside, &prev, index, &link)
    }

    /// Releases the VFs of attachments not in the valid list (from their caches),
    /// then forwards GC to IPAM.
    fn gc(&self, request: &Request, conf: &NetConf) -> Result<(), CniError> {
        let valid = conf.gc_valid_attachments();
        let state = State::open()?;
        let mut errors = ErrorList::new();
        for (file, cache) in state.all_caches() {
            if cache.container_id.is_empty() || cache.attachment().network != request.network_name {
                continue; // written by sriov-cni, or another network's
            }
            if valid
                .iter()
                .any(|a| a.container_id == cache.container_id && a.ifname == cache.ifname)
            {
                continue;
            }
            // A cache naming no valid PCI address is not ours to act on.
            let Some(device) = cache.device_id() else {
                continue;
            };
            let Ok(_lock) = state.lock_vf(&device) else {
                continue;
            };
            if let Some(holder) = state.held_by_another(&device, Some(&cache.netns)) {
                libcni::log_warn!(
                    "left VF {device} as it is: its allocation record names {holder:?}, not the stale attachment's netns"
                );
                errors.record(state.remove_cache_file(&file));
                continue;
            }
            let released = release(&cache, Some(Path::new(&cache.netns)));
            if released.is_ok() {
                errors.record(state.remove_cache_file(&file));
                errors.record(state.release_allocation(&device, Some(&cache.netns)));
            }
            errors.record(released);
        }
        errors.record(ipam::forward(request, conf.delegated_ipam()));
        errors.into_result()
    }

    fn status(&self, request: &Request, conf: &NetConf) -> Result<(), CniError> {
        ipam::forward(request, conf.delegated_ipam())
    }

    fn known_args(&self) -> &'static [&'static str] {
        &["MAC", "IP"]
    }
}

/// Without the cache: when this attachment's interface is in the request's netns,
/// neutral settings for what the config changes and the netdev back to the host
/// under a name made from its PCI address (its old name is lost). `false` when
/// that interface is not there: nothing shows the VF is this attachment's.
fn reset_without_cache(
    request: &Request,
    device_id: &PciAddress,
    cfg: Option<&config::Config>,
) -> Result<bool, CniError> {
    // A netns that is gone, or cannot be opened, shows nothing: DEL still finishes.
    let Some(netns) = request
        .netns
        .as_deref()
        .and_then(|path| NetNs::open_if_present(path).ok().flatten())
    else {
        return Ok(false);
    };
    let mut pod = netns.netlink()?;
    let Some(link) = pod
        .get_link(&LinkId::Name(&request.ifname))?
        .filter(|link| is_attachment_vf(link, &request.attachment().link_mark()))
    else {
        return Ok(false);
    };
    let Ok(dev) = sysfs::discover(&sysfs::root(), device_id) else {
        return Ok(true);
    };
    let mut nl = Netlink::open()?;
    let mut errors = ErrorList::new();
    if let (Some(cfg), Some(pf)) = (cfg, nl.get_link(&LinkId::Name(&dev.pf_name))?) {
        let neutral = VfConfig {
            vlan: cfg.vf.vlan.map(|_| VfVlanSetting::default()),
            mac: cfg.vf.mac.map(|_| MacAddr::ZERO),
            rate: cfg.vf.rate.map(|_| VfRate::default()),
            spoofchk: cfg.vf.spoofchk.map(|_| true),
            trust: cfg.vf.trust.map(|_| false),
            link_state: cfg.vf.link_state.map(|_| VfLinkStateSetting::Auto),
        };
        errors.record(
            nl.set_vf(pf.index, &pf.name, dev.index, &neutral)
                .map_err(CniError::from),
        );
    }
    let name: String = format!("vf{}", device_id.as_str().replace([':', '.'], ""))
        .chars()
        .take(15)
        .collect();
    let orig = OrigVfState {
        host_ifname: name,
        ..Default::default()
    };
    errors.record(return_netdev(&mut pod, &link, &orig));
    errors.into_result().map(|()| true)
}

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    libcni::skel::run(
        &Sriov,
        About {
            name: "sriov",
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
