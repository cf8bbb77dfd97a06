//! host-local's configuration, resolved as the Go plugin resolves it.

use std::net::IpAddr;
use std::path::PathBuf;

use libcni::spec::config::{parse_netconf, IpRange, NetConf};
use libcni::spec::result::{Dns, Route};
use libcni::{CniError, Request};
use serde::Deserialize;

use crate::range::{Addr, RangeSet};

pub const DEFAULT_DATA_DIR: &str = "/var/lib/cni/networks";

#[derive(Debug, Default, Deserialize)]
struct IpamKeys {
    #[serde(default)]
    ranges: Vec<Vec<IpRange>>,
    #[serde(default)]
    subnet: Option<String>,
    #[serde(rename = "rangeStart", default)]
    range_start: Option<String>,
    #[serde(rename = "rangeEnd", default)]
    range_end: Option<String>,
    #[serde(default)]
    gateway: Option<String>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(rename = "dataDir", default)]
    data_dir: Option<String>,
    #[serde(rename = "resolvConf", default)]
    resolv_conf: Option<String>,
}

/// What one request resolves to.
#[derive(Debug)]
pub struct Config {
    /// The common keys (the network name, prevResult).
    pub conf: NetConf,
    pub range_sets: Vec<RangeSet>,
    pub requested: Vec<Addr>,
    pub routes: Vec<Route>,
    pub data_dir: PathBuf,
    pub resolv_conf: Option<PathBuf>,
}

fn parse_requested(text: &str) -> Result<Addr, CniError> {
    // An address with or without a prefix; the prefix is ignored, as in Go.
    let ip_text = text.split('/').next().unwrap_or(text);
    ip_text
        .parse::<IpAddr>()
        .map(Addr::from_ip)
        .map_err(|_| CniError::invalid_config(format!("cannot understand ip: {text:?}")))
}

/// Only the common keys and the data directory: what DEL, GC and STATUS need, so
/// that they work even when the ranges no longer validate.
#[derive(Debug)]
pub struct StoreLocation {
    /// The common keys (the network name, the GC's valid attachments).
    pub conf: NetConf,
    pub data_dir: PathBuf,
}

pub fn store_location(request: &Request) -> Result<StoreLocation, CniError> {
    let conf: NetConf = parse_netconf(&request.stdin)?;
    let ipam = conf
        .ipam
        .as_ref()
        .ok_or_else(|| CniError::invalid_config("IPAM config missing 'ipam' key"))?;
    let data_dir = ipam
        .rest
        .get("dataDir")
        .and_then(|v| v.as_str())
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_DATA_DIR);
    Ok(StoreLocation {
        data_dir: PathBuf::from(data_dir),
        conf,
    })
}

pub fn load(request: &Request) -> Result<Config, CniError> {
    let conf: NetConf = parse_netconf(&request.stdin)?;
    let Some(ipam) = &conf.ipam else {
        return Err(CniError::invalid_config("IPAM config missing 'ipam' key"));
    };
    let keys: IpamKeys = ipam.keys()?;

    let mut requested = Vec::new();
    if let Some(ip) = request.args.value("IP") {
        requested.push(parse_requested(ip)?);
    }
    for text in conf.requested_ips() {
        requested.push(parse_requested(&text)?);
    }

    // Runtime ranges first, then the legacy single range, then `ranges`.
    let mut sets: Vec<Vec<IpRange>> = conf.runtime_config.ip_ranges.clone();
    if let Some(subnet) = keys.subnet.as_ref().filter(|s| !s.is_empty()) {
        sets.push(vec![IpRange {
            subnet: subnet.clone(),
            range_start: keys.range_start.clone(),
            range_end: keys.range_end.clone(),
            gateway: keys.gateway.clone(),
        }]);
    }
    sets.extend(keys.ranges.iter().cloned());
    if sets.is_empty() {
        return Err(CniError::invalid_config("no IP ranges specified"));
    }
    let mut range_sets = Vec::new();
    for (index, set) in sets.iter().enumerate() {
        range_sets
            .push(RangeSet::from_config(set).map_err(|e| {
                CniError::invalid_config(format!("invalid range set {index}: {e}"))
            })?);
    }
    let v4 = range_sets.iter().filter(|s| s.is_v4()).count();
    if (v4 > 1 || range_sets.len() - v4 > 1) && !request.version.allows_multiple_ips_per_family() {
        return Err(CniError::invalid_config(format!(
            "CNI version {} does not support more than 1 address per family",
            request.version
        )));
    }
    for (i, a) in range_sets.iter().enumerate() {
        for (j, b) in range_sets.iter().enumerate().skip(i + 1) {
            if a.overlaps(b) {
                return Err(CniError::invalid_config(format!(
                    "range set {i} overlaps with {j}"
                )));
            }
        }
    }
    Ok(Config {
        conf,
        range_sets,
        requested,
        routes: keys.routes,
        data_dir: PathBuf::from(
            keys.data_dir
                .filter(|d| !d.is_empty())
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        ),
        resolv_conf: keys
            .resolv_conf
            .filter(|p| !p.is_empty())
            .map(PathBuf::from),
    })
}

/// The most a resolv.conf may hold (glibc reads far less of one).
const RESOLV_CONF_LIMIT: u64 = 64 * 1024;

/// Reads a resolv.conf: nameserver, domain, search, options; `#` and `;` comment.
/// Only a regular file of at most 64 KiB is read (`/dev/zero` or a FIFO fails).
pub fn parse_resolv_conf(path: &std::path::Path) -> Result<Dns, CniError> {
    let bytes = libcni::host::fs::read_config_file(path, RESOLV_CONF_LIMIT)
        .map_err(|e| CniError::io(format!("resolvConf: {e}")))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut dns = Dns::default();
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or("");
        let mut words = line.split_whitespace();
        match words.next() {
            Some("nameserver") => dns.nameservers.extend(words.map(str::to_owned)),
            Some("domain") => dns.domain = words.next().unwrap_or_default().to_owned(),
            Some("search") => dns.search = words.map(str::to_owned).collect(),
            Some("options") => dns.options.extend(words.map(str::to_owned)),
            _ => {}
        }
    }
    Ok(dns)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    pub fn request(stdin: serde_json::Value, cni_args: &str) -> Request {
        Request::for_config(&stdin, cni_args)
    }

    #[test]
    fn runtime_ranges_then_legacy_range_then_ranges() {
        let conf = json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local",
            "subnet":"10.2.0.0/24","ranges":[[{"subnet":"10.3.0.0/24"}]]},
            "runtimeConfig":{"ipRanges":[[{"subnet":"10.1.0.0/24"}]]}});
        let c = load(&request(conf, "")).unwrap();
        let firsts: Vec<String> = c
            .range_sets
            .iter()
            .map(|s| s.0[0].subnet.to_string())
            .collect();
        assert_eq!(firsts, vec!["10.1.0.0/24", "10.2.0.0/24", "10.3.0.0/24"]);
        assert_eq!(c.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
    }

    #[test]
    fn requested_addresses_from_every_source() {
        let conf = json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local","ranges":[[{"subnet":"10.3.0.0/24"}]]},
            "args":{"cni":{"ips":["10.3.0.7"]}}, "runtimeConfig":{"ips":["10.3.0.8/24"]}});
        let c = load(&request(conf, "IP=10.3.0.6/24")).unwrap();
        let ips: Vec<String> = c.requested.iter().map(|a| a.to_string()).collect();
        assert_eq!(ips, vec!["10.3.0.6", "10.3.0.7", "10.3.0.8"]);
    }

    #[test]
    fn config_errors_have_the_go_texts() {
        let e = load(&request(json!({"cniVersion":"1.0.0","name":"n"}), "")).unwrap_err();
        assert_eq!(e.msg, "IPAM config missing 'ipam' key");
        let e = load(&request(
            json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local"}}),
            "",
        ))
        .unwrap_err();
        assert_eq!(e.msg, "no IP ranges specified");
        let e = load(&request(
            json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local",
            "ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.0.0.0/16"}]]}}),
            "",
        ))
        .unwrap_err();
        assert_eq!(e.msg, "range set 0 overlaps with 1");
        let e = load(&request(
            json!({"cniVersion":"0.2.0","name":"n","ipam":{"type":"host-local",
            "ranges":[[{"subnet":"10.0.0.0/24"}],[{"subnet":"10.1.0.0/16"}]]}}),
            "",
        ))
        .unwrap_err();
        assert_eq!(
            e.msg,
            "CNI version 0.2.0 does not support more than 1 address per family"
        );
        let e = load(&request(
            json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"host-local",
            "ranges":[[{"subnet":"10.0.0.0/32"}]]}}),
            "",
        ))
        .unwrap_err();
        assert_eq!(
            e.msg,
            "invalid range set 0: Network 10.0.0.0/32 too small to allocate from"
        );
    }

    #[test]
    fn resolv_conf_parsing() {
        let path = std::env::temp_dir().join(format!("resolv-{}", std::process::id()));
        std::fs::write(&path, "# c\nnameserver 10.0.0.53 ; x\nnameserver fd00::53\ndomain example.com\nsearch a.example b.example\noptions ndots:5 edns0\n").unwrap();
        let dns = parse_resolv_conf(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(dns.nameservers, vec!["10.0.0.53", "fd00::53"]);
        assert_eq!(dns.domain, "example.com");
        assert_eq!(dns.search, vec!["a.example", "b.example"]);
        assert_eq!(dns.options, vec!["ndots:5", "edns0"]);
    }
}
