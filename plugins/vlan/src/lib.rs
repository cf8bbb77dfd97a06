//! `vlan`: an 802.1Q sub-interface of a host interface, created directly in the
//! container's netns. Compatible with the Go plugin's configs and results, without
//! its faults: IPAM is optional, DEL works after the master is gone, and a failed
//! ADD removes the link it made.

use libcni::attach::{self, create_in_netns, single_interface_result};
use libcni::config::{parse_netconf, NetConf};
use libcni::netlink::{LinkKind, Netlink, NewLink};
use libcni::netns::NetNs;
use libcni::{ipam, About, CniError, CniResult, Plugin, Request};
use netlink_packet_route::link::VlanProtocol;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
struct VlanKeys {
    #[serde(default)]
    master: String,
    #[serde(rename = "vlanId", default)]
    vlan_id: i64,
    #[serde(default)]
    mtu: u32,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
}

/// What needs no kernel: DEL uses only this, so that it works after the master is gone.
fn load(request: &Request) -> Result<NetConf<VlanKeys>, CniError> {
    let conf: NetConf<VlanKeys> = parse_netconf(&request.stdin)?;
    if conf.plugin.master.is_empty() {
        return Err(CniError::invalid_config(
            "\"master\" field is required. It specifies the host interface name to create the VLAN for",
        ));
    }
    if !(0..=4094).contains(&conf.plugin.vlan_id) {
        return Err(CniError::invalid_config(format!(
            "invalid VLAN ID {} (must be between 0 and 4094 inclusive)",
            conf.plugin.vlan_id
        )));
    }
    Ok(conf)
}

fn netns_of(request: &Request) -> Result<NetNs, CniError> {
    Ok(NetNs::open(request.netns.as_ref().ok_or_else(|| {
        CniError::invalid_env("CNI_NETNS is required")
    })?)?)
}

struct Vlan;

impl Plugin for Vlan {
    fn add(&self, request: &Request) -> Result<CniResult, CniError> {
        let conf = load(request)?;
        let keys = &conf.plugin;
        ipam::require_installed(request, conf.delegated_ipam())?;
        let netns = netns_of(request)?;
        let mut host = Netlink::open()?;
        let mut inside = netns.netlink()?;
        let in_container = keys.link_in_container;
        let master = if in_container {
            attach::master_link(&mut inside, &keys.master)?
        } else {
            attach::master_link(&mut host, &keys.master)?
        };
        attach::check_mtu(keys.mtu, &master)?;
        let mut new = NewLink::new(
            String::new(),
            LinkKind::Vlan {
                parent: master.index,
                id: keys.vlan_id as u16,
                protocol: VlanProtocol::Ieee8021Q,
            },
        );
        // 0: the kernel gives the link its master's MTU.
        new.mtu = (keys.mtu > 0).then_some(keys.mtu);
        let host_creator = (!in_container).then_some(&mut host);
        let created = create_in_netns(host_creator, &mut inside, &netns, new, request, "vlan")?;
        let link = created.link;
        let ipam_type = conf.delegated_ipam().map(|i| i.plugin_type.clone());
        let outcome = single_interface_result(
            request,
            &netns,
            &mut inside,
            &link,
            ipam_type.as_deref(),
            conf.dns.as_ref(),
        );
        attach::finish_single_interface(&mut inside, &link, outcome)
    }

    fn del(&self, request: &Request) -> Result<(), CniError> {
        let conf = load(request)?;
        attach::del_single_interface(
            request,
            conf.delegated_ipam().map(|i| i.plugin_type.as_str()),
        )
    }

    fn check(&self, request: &Request) -> Result<(), CniError> {
        let conf = load(request)?;
        let keys = &conf.plugin;
        let prev = conf
            .parsed_prev_result(request.version)?
            .ok_or_else(|| CniError::invalid_config("Required prevResult missing"))?;
        ipam::forward(request, conf.delegated_ipam())?;
        let netns = netns_of(request)?;
        let mut inside = netns.netlink()?;
        let master = if keys.link_in_container {
            attach::master_link(&mut inside, &keys.master)?
        } else {
            attach::master_link(&mut Netlink::open()?, &keys.master)?
        };
        let (index, link) = attach::container_link(&mut inside, &prev, request, Some("vlan"))?;
        if link.vlan_id != Some(keys.vlan_id as u16) {
            return Err(CniError::internal(format!(
                "container interface {:?} has VLAN ID {:?}, the config says {}",
                request.ifname, link.vlan_id, keys.vlan_id
            )));
        }
        if link.parent != Some(master.index) {
            return Err(CniError::internal(format!(
                "container interface {:?} is not a VLAN of {:?}",
                request.ifname, master.name
            )));
        }
        if keys.mtu > 0 && link.mtu != keys.mtu {
            return Err(CniError::internal(format!(
                "container interface {:?} has MTU {}, the config says {}",
                request.ifname, link.mtu, keys.mtu
            )));
        }
        attach::check_mac(&link, prev.interfaces[index].mac.as_deref(), None)?;
        attach::check_ips_and_routes(&mut inside, &prev, index, &link)
    }

    fn gc(&self, request: &Request) -> Result<(), CniError> {
        ipam::forward(request, load(request)?.delegated_ipam())
    }

    fn status(&self, request: &Request) -> Result<(), CniError> {
        ipam::forward(request, load(request)?.delegated_ipam())
    }

    fn known_args(&self) -> &'static [&'static str] {
        &["IP"]
    }
}

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    libcni::skel::run(
        &Vlan,
        About {
            name: "vlan",
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
