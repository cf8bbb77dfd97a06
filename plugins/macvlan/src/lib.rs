//! `macvlan`: a macvlan child of a host interface, created directly in the
//! container's netns. Compatible with the Go plugin's configs and results.

use libcni::attach::{self, create_in_netns, single_interface_result};
use libcni::config::{parse_netconf, NetConf};
use libcni::netlink::{Link, LinkKind, Netlink, NewLink, SocketTransport};
use libcni::netns::NetNs;
use libcni::{ipam, About, CniError, CniResult, Plugin, Request};
use netlink_packet_route::link::MacVlanMode;
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
struct MacvlanKeys {
    #[serde(default)]
    master: String,
    #[serde(default)]
    mode: String,
    #[serde(default)]
    mtu: u32,
    #[serde(default)]
    mac: String,
    #[serde(rename = "linkInContainer", default)]
    link_in_container: bool,
    #[serde(default)]
    bcqueuelen: Option<u32>,
}

fn parse_mode(mode: &str) -> Result<MacVlanMode, CniError> {
    Ok(match mode {
        "" | "bridge" => MacVlanMode::Bridge,
        "private" => MacVlanMode::Private,
        "vepa" => MacVlanMode::Vepa,
        "passthru" => MacVlanMode::Passthrough,
        "source" => MacVlanMode::Source,
        other => {
            return Err(CniError::invalid_config(format!(
                "unknown macvlan mode: {other:?}"
            )))
        }
    })
}

fn mode_name(mode: MacVlanMode) -> &'static str {
    match mode {
        MacVlanMode::Bridge => "bridge",
        MacVlanMode::Private => "private",
        MacVlanMode::Vepa => "vepa",
        MacVlanMode::Passthrough => "passthru",
        MacVlanMode::Source => "source",
        _ => "unknown",
    }
}

struct Config {
    conf: NetConf<MacvlanKeys>,
    mode: MacVlanMode,
    mac: Option<[u8; 6]>,
}

/// Parses and validates what needs no kernel: DEL uses only this (so that it works
/// after the master is gone).
fn load(request: &Request) -> Result<Config, CniError> {
    let conf: NetConf<MacvlanKeys> = parse_netconf(&request.stdin)?;
    let mode = parse_mode(&conf.plugin.mode)?;
    // MAC: config < CNI_ARGS MAC < runtimeConfig.mac.
    let mac = libcni::config::pick_mac(
        "mac",
        &[
            conf.runtime_config.mac.as_deref(),
            request.args.value("MAC"),
            Some(conf.plugin.mac.as_str()),
        ],
    )?;
    Ok(Config { conf, mode, mac })
}

fn netns_of(request: &Request) -> Result<NetNs, CniError> {
    Ok(NetNs::open(request.netns.as_ref().ok_or_else(|| {
        CniError::invalid_env("CNI_NETNS is required")
    })?)?)
}

/// The master: named in the config, or the interface of the default route; in the
/// container's netns with `linkInContainer`.
fn find_master(
    cfg: &Config,
    host: &mut Netlink<SocketTransport>,
    inside: &mut Netlink<SocketTransport>,
) -> Result<Link, CniError> {
    let nl = if cfg.conf.plugin.link_in_container {
        inside
    } else {
        host
    };
    if cfg.conf.plugin.master.is_empty() {
        attach::default_route_interface(nl)
    } else {
        attach::master_link(nl, &cfg.conf.plugin.master)
    }
}

struct Macvlan;

impl Plugin for Macvlan {
    fn add(&self, request: &Request) -> Result<CniResult, CniError> {
        let cfg = load(request)?;
        ipam::require_installed(request, cfg.conf.delegated_ipam())?;
        let netns = netns_of(request)?;
        let mut host = Netlink::open()?;
        let mut inside = netns.netlink()?;
        let master = find_master(&cfg, &mut host, &mut inside)?;
        attach::check_mtu(cfg.conf.plugin.mtu, &master)?;
        let mut new = NewLink::new(
            String::new(),
            LinkKind::MacVlan {
                parent: master.index,
                mode: cfg.mode,
                broadcast_queue_len: cfg.conf.plugin.bcqueuelen,
            },
        );
        new.mac = cfg.mac;
        new.mtu = (cfg.conf.plugin.mtu > 0).then_some(cfg.conf.plugin.mtu);
        let in_container = cfg.conf.plugin.link_in_container;
        let host_creator = (!in_container).then_some(&mut host);
        let created = create_in_netns(host_creator, &mut inside, &netns, new, request, "macvlan")?;
        let link = created.link;
        let ipam_type = cfg.conf.delegated_ipam().map(|i| i.plugin_type.clone());
        let outcome = single_interface_result(
            request,
            &netns,
            &mut inside,
            &link,
            ipam_type.as_deref(),
            cfg.conf.dns.as_ref(),
        );
        attach::finish_single_interface(&mut inside, &link, outcome)
    }

    /// IPAM first, then the link; needs neither the master nor the netns.
    fn del(&self, request: &Request) -> Result<(), CniError> {
        let cfg = load(request)?;
        attach::del_single_interface(
            request,
            cfg.conf.delegated_ipam().map(|i| i.plugin_type.as_str()),
        )
    }

    fn check(&self, request: &Request) -> Result<(), CniError> {
        let cfg = load(request)?;
        let prev = cfg
            .conf
            .parsed_prev_result(request.version)?
            .ok_or_else(|| CniError::invalid_config("Required prevResult missing"))?;
        ipam::forward(request, cfg.conf.delegated_ipam())?;
        let netns = netns_of(request)?;
        let mut host = Netlink::open()?;
        let mut inside = netns.netlink()?;
        let master = find_master(&cfg, &mut host, &mut inside)?;
        let (index, link) = attach::container_link(&mut inside, &prev, request, Some("macvlan"))?;
        if link.macvlan_mode != Some(cfg.mode) {
            return Err(CniError::internal(format!(
                "container macvlan mode {} does not match expected value: {}",
                link.macvlan_mode.map(mode_name).unwrap_or("unknown"),
                mode_name(cfg.mode)
            )));
        }
        if link.parent != Some(master.index) {
            return Err(CniError::internal(format!(
                "container interface {:?} is not a child of {:?}",
                request.ifname, master.name
            )));
        }
        attach::check_mac(&link, prev.interfaces[index].mac.as_deref(), cfg.mac)?;
        attach::check_ips_and_routes(&mut inside, &prev, index, &link)
    }

    fn gc(&self, request: &Request) -> Result<(), CniError> {
        ipam::forward(request, load(request)?.conf.delegated_ipam())
    }

    fn status(&self, request: &Request) -> Result<(), CniError> {
        ipam::forward(request, load(request)?.conf.delegated_ipam())
    }

    fn known_args(&self) -> &'static [&'static str] {
        &["MAC", "IP"]
    }
}

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    libcni::skel::run(
        &Macvlan,
        About {
            name: "macvlan",
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_include_source() {
        assert_eq!(parse_mode("").unwrap(), MacVlanMode::Bridge);
        assert_eq!(parse_mode("passthru").unwrap(), MacVlanMode::Passthrough);
        assert_eq!(parse_mode("source").unwrap(), MacVlanMode::Source);
        assert_eq!(
            parse_mode("bogus").unwrap_err().msg,
            "unknown macvlan mode: \"bogus\""
        );
    }
}
