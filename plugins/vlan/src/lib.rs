//! `vlan`: an 802.1Q sub-interface of a host interface, created directly in the
//! container's netns. Compatible with the Go plugin's configs and results, without
//! its faults: IPAM is optional, DEL works after the master is gone, and a failed
//! ADD removes the link it made.

use libcni::attach::single::{ChildConfig, ChildLink, ChildLinkPlugin};
use libcni::netlink::{Link, LinkKind, NewLinkKind};
use libcni::spec::config::{parse_netconf, NetConf};
use libcni::{About, CniError, Request};
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

struct Vlan;

impl ChildLink for Vlan {
    type Keys = VlanKeys;
    /// The VLAN ID, validated.
    type Settings = u16;
    const KIND: LinkKind = LinkKind::Vlan;
    const KNOWN_ARGS: &'static [&'static str] = &["IP"];

    fn load(&self, request: &Request) -> Result<ChildConfig<VlanKeys, u16>, CniError> {
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
        Ok(ChildConfig {
            settings: conf.plugin.vlan_id as u16,
            master: conf.plugin.master.clone(),
            link_in_container: conf.plugin.link_in_container,
            mtu: conf.plugin.mtu,
            mac: None,
            conf,
        })
    }

    fn link_kind(&self, cfg: &ChildConfig<VlanKeys, u16>, master: &Link) -> NewLinkKind<'static> {
        NewLinkKind::Vlan {
            parent: master.index,
            id: cfg.settings,
            protocol: VlanProtocol::Ieee8021Q,
        }
    }

    fn check_link(
        &self,
        cfg: &ChildConfig<VlanKeys, u16>,
        link: &Link,
        request: &Request,
    ) -> Result<(), CniError> {
        let wanted = cfg.settings;
        if link.vlan_id != Some(wanted) {
            return Err(CniError::internal(format!(
                "container interface {:?} has VLAN ID {}, the config says {wanted}",
                request.ifname,
                link.vlan_id.map_or("none".to_string(), |id| id.to_string())
            )));
        }
        Ok(())
    }
}

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    libcni::skel::run(
        &ChildLinkPlugin(Vlan),
        About {
            name: "vlan",
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}
