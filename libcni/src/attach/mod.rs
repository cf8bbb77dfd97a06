//! Steps shared by the plugins that put one interface into a container (macvlan,
//! vlan, and the checks of bridge): finding the master, creating a link directly in
//! the target netns under a temporary name and renaming it, the IPAM step, and the
//! CHECK of addresses and routes. [`single`] is the whole driver of the plugins
//! that make one link of a host interface (macvlan, vlan).

pub mod single;

use crate::delegate::ipam;
use crate::host::apply::{configure_interface, InterfaceOptions};
use crate::mac::MacAddr;
use crate::netlink::{Link, LinkId, LinkKind, Netlink, NewLink, NewLinkKind, RouteTransport};
use crate::netns::NetNs;
use crate::spec::error::CniError;
use crate::spec::request::Request;
use crate::spec::result::{CniResult, Dns, Interface};

/// The interface of the first default route (the Go plugins' choice of master).
pub fn default_route_interface<T: RouteTransport>(nl: &mut Netlink<T>) -> Result<Link, CniError> {
    for v4 in [true, false] {
        for route in nl.list_routes(v4)? {
            if route.dst.prefix_len() == 0 && route.table == 254 {
                if let Some(oif) = route.oif {
                    return Ok(nl.require_link(&LinkId::Index(oif))?);
                }
            }
        }
    }
    Err(CniError::invalid_config("no default route interface found"))
}

/// The master (host) link, or an error naming it.
pub fn master_link<T: RouteTransport>(nl: &mut Netlink<T>, name: &str) -> Result<Link, CniError> {
    nl.get_link(&LinkId::Name(name))?.ok_or_else(|| {
        CniError::invalid_config(format!(
            "failed to lookup master {name:?}: no such interface"
        ))
    })
}

/// `mtu` must be in [0, master MTU] (the Go text).
pub fn check_mtu(mtu: u32, master: &Link) -> Result<(), CniError> {
    if mtu > master.mtu {
        return Err(CniError::invalid_config(format!(
            "invalid MTU {mtu}, must be [0, master MTU({})]",
            master.mtu
        )));
    }
    Ok(())
}

/// CHECK of the MTU the config asked for (`mtu` > 0; 0 or none: not compared).
/// prevResult's interface `mtu` is not compared: tuning chained after this plugin
/// may change the MTU without recording it there (Go's tuning as well), so on a
/// healthy chain it can be stale.
pub fn check_configured_mtu(link: &Link, configured: Option<u32>) -> Result<(), CniError> {
    match configured.filter(|m| *m > 0) {
        Some(mtu) if link.mtu != mtu => Err(CniError::internal(format!(
            "interface {:?} has MTU {}, the config says {mtu}",
            link.name, link.mtu
        ))),
        _ => Ok(()),
    }
}

/// The temporary name of an attachment's link before its rename: derived from the
/// container ID and interface name, so that a DEL after a crash between create and
/// rename finds it (a random name would be lost with the crashed process).
pub fn temporary_name(request: &Request) -> String {
    crate::spec::hash::sha512_hex(
        11,
        "cni",
        format!("{}/{}", request.container_id, request.ifname).as_bytes(),
    )
}

/// A link created in the container under a temporary name and renamed to `ifname`:
/// creating it under its final name could collide with a host interface of the same
/// name, since the kernel creates it in the creator's netns first.
pub struct CreatedLink {
    pub link: Link,
}

/// Creates `new` in `netns` as `ifname`. With `host`, the host's client sends the
/// request and the link is moved by IFLA_NET_NS_FD; without it (the master lives in
/// the container) the container's client `inside` creates it in place. The caller
/// removes the link on later failures; a failed rename removes it here.
pub fn create_in_netns<'fd>(
    host: Option<&mut Netlink>,
    inside: &mut Netlink,
    netns: &'fd NetNs,
    mut new: NewLink<'fd>,
    request: &Request,
) -> Result<CreatedLink, CniError> {
    let ifname = request.ifname.as_str();
    let what = new.kind_name();
    let is_vlan = matches!(new.kind, Some(NewLinkKind::Vlan { .. }));
    if inside.get_link(&LinkId::Name(ifname))?.is_some() {
        return Err(CniError::internal(format!(
            "container interface {ifname:?} already exists in {}",
            netns.path().display()
        )));
    }
    let temporary = temporary_name(request);
    // An ADD of this attachment killed between making its link and naming it left
    // the link under this name (ours by it, as DEL takes it): a retried ADD would
    // fail on it, and for a VLAN on its VLAN ID too.
    inside.delete_link_if_present(&temporary)?;
    new.name = temporary.clone();
    let creation = match host {
        Some(host) => {
            new.netns = Some(netns.fd());
            host.create_link(&new)
        }
        None => inside.create_link(&new),
    };
    creation.map_err(|e| {
        let hint = match e.errno() {
            Some(libc::EOPNOTSUPP) if is_vlan => {
                ": this kernel has no 802.1Q VLAN support (the 8021q module is missing)"
            }
            Some(libc::EEXIST) if is_vlan => {
                ": the master already has a link with this VLAN ID (one per master)"
            }
            _ => "",
        };
        CniError::internal(format!("failed to create {what}: {e}{hint}"))
    })?;
    crate::hooks::failpoint("link-created");
    let created = inside.require_link(&LinkId::Name(&temporary))?;
    let marked = inside
        .change_link(created.index)
        .alias(&request.attachment().link_mark())
        .apply();
    if let Err(e) = marked.and_then(|()| inside.change_link(created.index).name(ifname).apply()) {
        let _ = inside.delete_link(created.index, &temporary);
        return Err(CniError::internal(format!(
            "failed to rename {what} to {ifname:?}: {e}"
        )));
    }
    Ok(CreatedLink {
        link: inside.require_link(&LinkId::Index(created.index))?,
    })
}

/// The request's network namespace (CNI_NETNS, which the skel requires for ADD and
/// CHECK), opened and checked.
pub fn request_netns(request: &Request) -> Result<NetNs, CniError> {
    let path = request
        .netns
        .as_ref()
        .ok_or_else(|| CniError::invalid_env("CNI_NETNS is required"))?;
    Ok(NetNs::open(path)?)
}

/// The result of a one-interface plugin: the interface, and when `ipam` is set the
/// IPAM result applied to it (addresses pointing at index 0). DNS from the config
/// when it has any, else from IPAM (the Go macvlan and vlan plugins drop IPAM's).
/// The returned allocation must be kept by the caller once nothing else can fail.
pub fn single_interface_result<'r>(
    request: &'r Request,
    netns: &NetNs,
    inside: &mut Netlink,
    link: &Link,
    ipam_type: Option<&str>,
    config_dns: Option<&Dns>,
) -> Result<(CniResult, Option<ipam::Allocation<'r>>), CniError> {
    let mut result = CniResult::default();
    result.add_interface(Interface {
        name: request.ifname.clone(),
        mac: link.mac.map(|mac| mac.to_string()),
        sandbox: Some(netns.path().display().to_string()),
        ..Default::default()
    });
    let allocation = match ipam_type {
        None => {
            inside.change_link(link.index).up().apply()?;
            None
        }
        Some(plugin_type) => {
            let allocation = ipam::add(request, plugin_type)?;
            allocation.merge_into(&mut result, 0);
            configure_interface(
                netns,
                inside,
                &request.ifname,
                &result,
                InterfaceOptions::default(),
            )?;
            Some(allocation)
        }
    };
    if let Some(dns) = config_dns.filter(|d| !d.is_empty()) {
        result.dns = dns.clone();
    }
    Ok((result, allocation))
}

/// CHECK of the addresses and routes of `prev` on interface `index` (in prev).
pub fn check_ips_and_routes<T: RouteTransport>(
    inside: &mut Netlink<T>,
    prev: &CniResult,
    interface_index: usize,
    link: &Link,
) -> Result<(), CniError> {
    let addresses = inside.list_addresses(Some(link.index))?;
    for ip in prev
        .ips
        .iter()
        .filter(|ip| ip.interface == Some(interface_index))
    {
        if !addresses.iter().any(|a| a.address == ip.address) {
            return Err(CniError::internal(format!(
                "address {} is missing from {:?}",
                ip.address, link.name
            )));
        }
    }
    for v4 in [true, false] {
        let wanted: Vec<_> = prev
            .routes
            .iter()
            .filter(|r| r.dst.addr().is_ipv4() == v4)
            .collect();
        if wanted.is_empty() {
            continue;
        }
        let routes = inside.list_routes(v4)?;
        for route in wanted {
            let found = routes.iter().any(|r| {
                r.dst == route.dst.trunc() && (route.gw.is_none() || r.gateway == route.gw)
            });
            if !found {
                return Err(CniError::internal(format!(
                    "route to {} is missing",
                    route.dst
                )));
            }
        }
    }
    Ok(())
}

/// The container interface CHECK looks at: its index in `prev` and the link in the
/// container, which must be of `kind` when one is given.
pub fn container_link<T: RouteTransport>(
    inside: &mut Netlink<T>,
    prev: &CniResult,
    request: &Request,
    kind: Option<LinkKind>,
) -> Result<(usize, Link), CniError> {
    let index = container_interface(prev, request)?;
    let link = inside
        .get_link(&LinkId::Name(&request.ifname))?
        .ok_or_else(|| {
            CniError::internal(format!(
                "interface {:?} is missing from the container",
                request.ifname
            ))
        })?;
    if let Some(kind) = kind {
        if link.kind.as_ref() != Some(&kind) {
            return Err(CniError::internal(format!(
                "container interface {:?} is not a {kind} link",
                request.ifname
            )));
        }
    }
    Ok((index, link))
}

/// The container interface of `prev`: named `ifname` with `sandbox` = the netns.
pub fn container_interface(prev: &CniResult, request: &Request) -> Result<usize, CniError> {
    let sandbox = request
        .netns
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    prev.interfaces
        .iter()
        .position(|i| i.name == request.ifname && i.sandbox.as_deref() == Some(sandbox.as_str()))
        .ok_or_else(|| {
            CniError::internal(format!(
                "prevResult has no interface {:?} in {sandbox}",
                request.ifname
            ))
        })
}

/// The mark bridge puts on the VLAN gateway interface `<bridge>.<vlan>` it creates
/// (its IFLA_IFALIAS). DEL removes that interface only when it carries this mark:
/// one of that name made by the admin, or by the Go plugin, carries none. It
/// cannot equal an attachment mark: their input starts with the network name,
/// which never starts with NUL.
pub fn vlan_gateway_mark(bridge: &str, vlan: u16) -> String {
    crate::spec::hash::sha512_hex(
        28,
        "cni:",
        format!("\0vlan-gateway\0{bridge}\0{vlan}").as_bytes(),
    )
}

/// Whether `link` in the container is this attachment's to delete: of `kind`, and
/// marked for this attachment, or (a link made by the Go plugin, or before marks)
/// unmarked and either with the MAC prevResult gives it or vouched for by
/// `unmarked_proof`. An interface that was there before (ADD then refused to
/// replace it), or another attachment's, is left alone.
pub fn is_attachment_link(
    link: &Link,
    request: &Request,
    kind: &LinkKind,
    prev: Option<&CniResult>,
    unmarked_proof: impl FnOnce(&Link) -> bool,
) -> bool {
    if link.kind.as_ref() != Some(kind) {
        return false;
    }
    match link.alias.as_deref() {
        Some(mark) if mark.starts_with("cni:") => mark == request.attachment().link_mark(),
        _ => {
            let prev_mac = prev.and_then(|p| {
                p.interfaces
                    .iter()
                    .find(|i| i.name == request.ifname && i.sandbox.is_some())
                    .and_then(|i| i.mac.clone())
            });
            match (prev_mac, link.mac) {
                (Some(want), Some(_)) => reported_mac_matches(&want, link.mac),
                _ => unmarked_proof(link),
            }
        }
    }
}

/// Deletes the container link named `request.ifname` in `inside` (the netns at
/// `netns_path`) when it is this attachment's (see [`is_attachment_link`]); any
/// other link of that name is left, with a warning. No link, or one another DEL
/// removes meanwhile, is nothing to do.
pub fn delete_attachment_link<T: RouteTransport>(
    inside: &mut Netlink<T>,
    netns_path: &std::path::Path,
    request: &Request,
    kind: &LinkKind,
    prev: Option<&CniResult>,
    unmarked_proof: impl FnOnce(&Link) -> bool,
) -> Result<(), CniError> {
    let Some(link) = inside.get_link(&LinkId::Name(&request.ifname))? else {
        return Ok(());
    };
    if is_attachment_link(&link, request, kind, prev, unmarked_proof) {
        inside.delete_found_link(link.index, &link.name)?;
    } else {
        crate::log_warn!(
            "left {:?} in {} alone: nothing shows it is this attachment's",
            link.name,
            netns_path.display()
        );
    }
    Ok(())
}

/// DEL of a one-interface plugin: IPAM first, then the link in the container if it
/// is this attachment's (see [`is_attachment_link`]). Needs neither the master nor
/// the netns: a gone netns or link is nothing to undo.
pub fn del_single_interface(
    request: &Request,
    ipam_type: Option<&str>,
    kind: &LinkKind,
    prev: Option<&CniResult>,
) -> Result<(), CniError> {
    let mut errors = crate::spec::error::ErrorList::new();
    if let Some(plugin_type) = ipam_type {
        errors.record(ipam::del(request, plugin_type));
    }
    if let Some(path) = &request.netns {
        match NetNs::open_if_present(path) {
            Ok(Some(netns)) => {
                errors.record(
                    netns
                        .netlink()
                        .map_err(CniError::from)
                        .and_then(|mut inside| {
                            // The link of an ADD that died before renaming it is ours by its name.
                            inside.delete_link_if_present(&temporary_name(request))?;
                            delete_attachment_link(&mut inside, path, request, kind, prev, |_| {
                                false
                            })
                        }),
                );
            }
            Ok(None) => {}
            Err(e) => errors.push(e.into()),
        }
    }
    errors.into_result()
}

/// Finishes ADD of a one-interface plugin: on success keeps the IPAM allocation, on
/// failure removes the link (the allocation is released when dropped).
pub fn finish_single_interface(
    inside: &mut Netlink,
    link: &Link,
    outcome: Result<(CniResult, Option<ipam::Allocation<'_>>), CniError>,
) -> Result<CniResult, CniError> {
    match outcome {
        Ok((result, allocation)) => {
            if let Some(allocation) = allocation {
                allocation.keep();
            }
            Ok(result)
        }
        Err(e) => {
            if let Err(undo) = inside.delete_link(link.index, &link.name) {
                crate::log_warn!("rollback: {undo}");
            }
            Err(e)
        }
    }
}

/// Whether the MAC text a result reports (`""` for none) names the link's `mac`.
fn reported_mac_matches(text: &str, mac: Option<MacAddr>) -> bool {
    match text.parse::<MacAddr>() {
        Ok(reported) => mac == Some(reported),
        Err(_) => text.is_empty() && mac.is_none(),
    }
}

/// The MAC of the container interface must be what prevResult (and the config, if it
/// names one) says.
pub fn check_mac(
    link: &Link,
    from_prev: Option<&str>,
    configured: Option<MacAddr>,
) -> Result<(), CniError> {
    let actual = link.mac.map(|mac| mac.to_string()).unwrap_or_default();
    if let Some(mac) = from_prev {
        if !reported_mac_matches(mac, link.mac) {
            return Err(CniError::internal(format!(
                "interface {:?} has MAC {actual}, prevResult says {mac}",
                link.name
            )));
        }
    }
    if let Some(mac) = configured {
        if link.mac != Some(mac) {
            return Err(CniError::internal(format!(
                "interface {:?} has MAC {actual}, the config says {mac}",
                link.name
            )));
        }
    }
    Ok(())
}
