//! `tuning` (also installed as `cnv-tuning`): sysctls, MAC, MTU, promiscuous and
//! all-multicast mode and the transmit queue length of an interface that an earlier
//! plugin of the chain made. Compatible with the Go plugin's configs, results and
//! state file (`<dataDir>/<containerID>_<ifname>.json`), so that either plugin's DEL
//! restores what the other's ADD changed.

mod config;

use libcni::host::fs::StateDir;
use libcni::mac::MacAddr;
use libcni::netlink::{Link, LinkId, Netlink};
use libcni::netns::NetNs;
use libcni::{About, CniError, CniResult, Plugin, Request};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

use crate::config::TuningConfig;

/// What ADD changed, as it was: Go's `configToRestore`, same names and layout.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    #[serde(
        default,
        with = "libcni::mac::or_empty",
        skip_serializing_if = "Option::is_none"
    )]
    mac: Option<MacAddr>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    promisc: Option<bool>,
    #[serde(default, skip_serializing_if = "is_zero")]
    mtu: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    allmulti: Option<bool>,
    #[serde(rename = "txQLen", default, skip_serializing_if = "Option::is_none")]
    tx_queue_len: Option<u32>,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

/// Go writes the file with `json.MarshalIndent(config, "", " ")`.
fn encode(saved: &Saved) -> Vec<u8> {
    let mut out = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b" ");
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
    saved
        .serialize(&mut serializer)
        .expect("the state serializes");
    out
}

fn container_link(nl: &mut Netlink, request: &Request) -> Result<Link, CniError> {
    nl.get_link(&LinkId::Name(&request.ifname))?
        .ok_or_else(|| CniError::internal(format!("Cannot find container link {}", request.ifname)))
}

/// Writes the sysctls inside the container's netns.
fn write_sysctls(netns: &NetNs, cfg: &TuningConfig, request: &Request) -> Result<(), CniError> {
    let paths: Vec<(String, String)> = cfg.sysctls(&request.ifname)?.into_iter().collect();
    netns.run(|| {
        paths
            .iter()
            .try_for_each(|(path, value)| libcni::host::sysctl::write(path, value))
    })?
}

/// What the link has now of the settings `cfg` changes.
fn snapshot(link: &Link, cfg: &TuningConfig) -> Saved {
    Saved {
        mac: cfg.mac.as_ref().and(link.mac),
        promisc: cfg.promisc.then_some(link.promiscuous),
        mtu: if cfg.mtu.is_some() {
            i64::from(link.mtu)
        } else {
            0
        },
        allmulti: cfg.allmulti.map(|_| link.allmulticast()),
        tx_queue_len: cfg.tx_queue_len.and_then(|_| link.tx_queue_len()),
    }
}

/// Puts back what `saved` holds; every step is tried, every failure reported.
fn restore(nl: &mut Netlink, link: &Link, saved: &Saved) -> Result<(), CniError> {
    let mut errors = libcni::spec::error::ErrorList::new();
    if saved.mtu > 0 {
        errors.record(
            nl.change_link(link.index)
                .mtu(saved.mtu as u32)
                .apply()
                .map_err(CniError::from),
        );
    }
    if let Some(mac) = saved.mac {
        errors.record(
            nl.change_link(link.index)
                .mac(mac)
                .apply()
                .map_err(CniError::from),
        );
    }
    if let Some(on) = saved.promisc {
        errors.record(
            nl.change_link(link.index)
                .promiscuous(on)
                .apply()
                .map_err(CniError::from),
        );
    }
    if let Some(on) = saved.allmulti {
        errors.record(
            nl.change_link(link.index)
                .allmulticast(on)
                .apply()
                .map_err(CniError::from),
        );
    }
    if let Some(len) = saved.tx_queue_len {
        errors.record(
            nl.change_link(link.index)
                .tx_queue_len(len)
                .apply()
                .map_err(CniError::from),
        );
    }
    errors.into_result()
}

fn apply(nl: &mut Netlink, link: &Link, cfg: &TuningConfig) -> Result<(), CniError> {
    if let Some(requested) = &cfg.mac {
        nl.change_link(link.index).mac(requested.mac).apply()?;
    }
    if cfg.promisc {
        nl.change_link(link.index).promiscuous(true).apply()?;
    }
    if let Some(mtu) = cfg.mtu {
        nl.change_link(link.index).mtu(mtu).apply()?;
    }
    if let Some(on) = cfg.allmulti {
        nl.change_link(link.index).allmulticast(on).apply()?;
    }
    if let Some(len) = cfg.tx_queue_len {
        nl.change_link(link.index).tx_queue_len(len).apply()?;
    }
    Ok(())
}

struct Tuning;

impl Plugin for Tuning {
    type Config = TuningConfig;
    /// DEL reads only `dataDir`.
    type DelConfig = PathBuf;
    type GcConfig = ();

    fn load(&self, request: &Request) -> Result<TuningConfig, CniError> {
        config::load(request)
    }

    fn load_for_del(&self, request: &Request) -> Result<PathBuf, CniError> {
        config::data_dir_for_del(request)
    }

    fn load_for_gc(&self, _request: &Request) -> Result<(), CniError> {
        Ok(())
    }

    fn add(&self, request: &Request, cfg: &TuningConfig) -> Result<CniResult, CniError> {
        let mut result = cfg.conf.required_prev_result(request.version)?;
        let netns = libcni::attach::request_netns(request)?;
        if !cfg.changes_link() {
            write_sysctls(&netns, cfg, request)?;
        } else {
            let mut nl = netns.netlink()?;
            let link = container_link(&mut nl, request)?;
            let saved = snapshot(&link, cfg);
            // The state is written first: a store that cannot be written (full,
            // read-only) fails ADD before anything in the container changed.
            let state = StateDir::create(&cfg.data_dir, 0o700)?;
            let name = request.attachment().tuning_state_name();
            state.write_atomic(&name, &encode(&saved), 0o600)?;
            if let Err(e) = write_sysctls(&netns, cfg, request) {
                let _ = state.remove(&name);
                return Err(e);
            }
            if let Err(e) = apply(&mut nl, &link, cfg) {
                // Undo this ADD's own changes; the saved state goes with them.
                if restore(&mut nl, &link, &saved).is_ok() {
                    let _ = state.remove(&name);
                }
                return Err(e);
            }
            if let Some(requested) = &cfg.mac {
                for interface in result
                    .interfaces
                    .iter_mut()
                    .filter(|i| i.name == request.ifname)
                {
                    // Go's spelling: the MAC as the request wrote it.
                    interface.mac = Some(requested.written.clone());
                }
            }
        }
        Ok(result)
    }

    /// Restores what ADD saved, best effort, and always succeeds (as the Go plugin):
    /// the interface may be gone with its netns. Reads only `dataDir` of its config.
    fn del(&self, request: &Request, data_dir: &PathBuf) -> Result<(), CniError> {
        let Ok(Some(state)) = StateDir::open_if_present(data_dir) else {
            return Ok(());
        };
        let name = request.attachment().tuning_state_name();
        let Some(saved) = state
            .read(&name)
            .ok()
            .flatten()
            .and_then(|bytes| serde_json::from_slice::<Saved>(&bytes).ok())
        else {
            let _ = state.remove(&name);
            return Ok(());
        };
        let netns = match request.netns.as_deref().map(NetNs::open_if_present) {
            Some(Ok(Some(netns))) => netns,
            // The netns is gone, and the interface with it: nothing left to restore.
            _ => {
                let _ = state.remove(&name);
                return Ok(());
            }
        };
        let restored = netns.netlink().map_err(CniError::from).and_then(|mut nl| {
            match nl.get_link(&LinkId::Name(&request.ifname))? {
                Some(link) => restore(&mut nl, &link, &saved),
                None => Ok(()),
            }
        });
        match restored {
            Ok(()) => {
                let _ = state.remove(&name);
            }
            Err(e) => libcni::log_warn!("failed to restore {}: {e}", request.ifname),
        }
        Ok(())
    }

    fn check(&self, request: &Request, cfg: &TuningConfig) -> Result<(), CniError> {
        cfg.conf.required_prev_result(request.version)?;
        let netns = libcni::attach::request_netns(request)?;
        let wanted = cfg.sysctls(&request.ifname)?;
        netns.run(|| {
            for (path, value) in &wanted {
                let current = std::fs::read_to_string(path)
                    .map_err(|e| CniError::io(format!("failed to read {path}: {e}")))?;
                let current = current.strip_suffix('\n').unwrap_or(&current);
                if current != value {
                    return Err(CniError::internal(format!(
                        "Error: Tuning configured value of {path} is {value}, current value is {current}"
                    )));
                }
            }
            Ok(())
        })??;
        let mut nl = netns.netlink()?;
        let link = container_link(&mut nl, request)?;
        let mismatch = |what: &str, configured: String, current: String| {
            Err(CniError::internal(format!(
                "Error: Tuning configured {what} of {} is {configured}, current value is {current}",
                request.ifname
            )))
        };
        // The address, not its text: Go compares the text with the kernel's
        // colon form, so its CHECK fails for a MAC written with dashes or dots.
        if let Some(requested) = &cfg.mac {
            if link.mac != Some(requested.mac) {
                let current = link.mac.map(|m| m.to_string()).unwrap_or_default();
                return mismatch("Ethernet", requested.written.clone(), current);
            }
        }
        if cfg.promisc != link.promiscuous {
            return mismatch(
                "promisc",
                cfg.promisc.to_string(),
                link.promiscuous.to_string(),
            );
        }
        if let Some(mtu) = cfg.mtu.filter(|m| *m != link.mtu) {
            return mismatch("MTU", mtu.to_string(), link.mtu.to_string());
        }
        if let Some(on) = cfg.allmulti.filter(|on| *on != link.allmulticast()) {
            return mismatch(
                "all-multicast mode",
                on.to_string(),
                link.allmulticast().to_string(),
            );
        }
        if let Some(len) = cfg.tx_queue_len.filter(|l| Some(*l) != link.tx_queue_len()) {
            return mismatch(
                "transmit queue length",
                len.to_string(),
                format!("{:?}", link.tx_queue_len()),
            );
        }
        Ok(())
    }

    fn known_args(&self) -> &'static [&'static str] {
        &["MAC"]
    }
}

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    let name = if libcni::skel::invoked_as("cnv-tuning") {
        "cnv-tuning"
    } else {
        "tuning"
    };
    libcni::skel::run(
        &Tuning,
        About {
            name,
            version: env!("CARGO_PKG_VERSION"),
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_is_go_s() {
        let saved = Saved {
            mac: Some(MacAddr([2, 0, 0, 0, 0, 1])),
            promisc: Some(false),
            mtu: 1500,
            allmulti: None,
            tx_queue_len: None,
        };
        assert_eq!(
            String::from_utf8(encode(&saved)).unwrap(),
            "{\n \"mac\": \"02:00:00:00:00:01\",\n \"promisc\": false,\n \"mtu\": 1500\n}"
        );
        let go: Saved = serde_json::from_str("{\n \"mtu\": 9000,\n \"allmulti\": true\n}").unwrap();
        assert_eq!((go.mtu, go.allmulti, go.mac), (9000, Some(true), None));
    }
}
