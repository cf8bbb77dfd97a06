//! `macvlan`: a macvlan child of a host interface, created directly in the
//! container's netns. Compatible with the Go plugin's configs and results.

use libcni::attach::single::{ChildConfig, ChildLink, ChildLinkPlugin};
use libcni::netlink::{Link, LinkKind, NewLinkKind};
use libcni::spec::config::{parse_netconf, pick_mac, NetConf};
use libcni::{About, CniError, Request};
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

struct Macvlan;

impl ChildLink for Macvlan {
    type Keys = MacvlanKeys;
    const KIND: LinkKind = LinkKind::Macvlan;
    // As the Go plugin: `IP=` is IPAM's, and refused here without IgnoreUnknown.
    const KNOWN_ARGS: &'static [&'static str] = &["MAC"];

    fn load(&self, request: &Request) -> Result<ChildConfig<MacvlanKeys>, CniError> {
        let conf: NetConf<MacvlanKeys> = parse_netconf(&request.stdin)?;
        parse_mode(&conf.plugin.mode)?;
        // MAC: config < CNI_ARGS MAC < runtimeConfig.mac.
        let mac = pick_mac(
            "mac",
            &[
                conf.runtime_config.mac.as_deref(),
                request.args.value("MAC"),
                Some(conf.plugin.mac.as_str()),
            ],
        )?;
        Ok(ChildConfig {
            master: conf.plugin.master.clone(),
            link_in_container: conf.plugin.link_in_container,
            mtu: conf.plugin.mtu,
            mac,
            conf,
        })
    }

    fn link_kind(&self, cfg: &ChildConfig<MacvlanKeys>, master: &Link) -> NewLinkKind<'static> {
        NewLinkKind::MacVlan {
            parent: master.index,
            mode: parse_mode(&cfg.conf.plugin.mode).expect("validated by load"),
            broadcast_queue_len: cfg.conf.plugin.bcqueuelen,
        }
    }

    fn check_link(
        &self,
        cfg: &ChildConfig<MacvlanKeys>,
        link: &Link,
        _request: &Request,
    ) -> Result<(), CniError> {
        let mode = parse_mode(&cfg.conf.plugin.mode)?;
        if link.macvlan_mode != Some(mode) {
            return Err(CniError::internal(format!(
                "container macvlan mode {} does not match expected value: {}",
                link.macvlan_mode.map(mode_name).unwrap_or("unknown"),
                mode_name(mode)
            )));
        }
        Ok(())
    }
}

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    libcni::skel::run(
        &ChildLinkPlugin(Macvlan),
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
