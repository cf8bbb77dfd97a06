//! `static`: an IPAM plugin that returns the addresses, routes and DNS its config
//! names. It keeps no state, so DEL, GC and STATUS have nothing to do.

use std::net::IpAddr;

use ipnet::IpNet;
use libcni::skel::{Env, Outcome};
use libcni::spec::config::{parse_netconf, NetConf};
use libcni::spec::result::{Dns, IpConfig, Route};
use libcni::{About, CniError, CniResult, Plugin, Request};
use serde::Deserialize;

#[derive(Debug, Default, Deserialize)]
struct StaticIpam {
    #[serde(default)]
    addresses: Vec<AddressEntry>,
    #[serde(default)]
    routes: Vec<Route>,
    #[serde(default)]
    dns: Dns,
}

#[derive(Debug, Deserialize)]
struct AddressEntry {
    address: String,
    #[serde(default)]
    gateway: Option<String>,
}

/// The addresses, routes and DNS one request resolves to.
#[derive(Debug, PartialEq)]
struct Plan {
    ips: Vec<IpConfig>,
    routes: Vec<Route>,
    dns: Dns,
}

fn parse_cidr(text: &str, what: &str) -> Result<IpNet, CniError> {
    text.parse::<IpNet>().map_err(|_| {
        CniError::invalid_config(format!(
            "{what} expected to be in CIDR notation, got: '{text}'"
        ))
    })
}

fn parse_gateway(text: &str) -> Result<IpAddr, CniError> {
    text.parse()
        .map_err(|_| CniError::invalid_config(format!("invalid gateway address: {text}")))
}

/// A request's config: its plan, and the prevResult CHECK compares it with.
struct Config {
    plan: Plan,
    prev_result: Option<serde_json::Value>,
}

fn load(request: &Request) -> Result<Config, CniError> {
    let conf: NetConf = parse_netconf(&request.stdin)?;
    let plan = plan(&conf, request)?;
    Ok(Config {
        plan,
        prev_result: conf.prev_result,
    })
}

/// Resolves the addresses with the precedence of the Go plugin: the config's list,
/// with CNI_ARGS `IP` appended and `GATEWAY` applied; `args.cni.ips` replaces that;
/// `runtimeConfig.ips` replaces it again.
fn plan(conf: &NetConf, request: &Request) -> Result<Plan, CniError> {
    let Some(ipam) = &conf.ipam else {
        return Err(CniError::invalid_config("IPAM config missing 'ipam' key"));
    };
    let ipam: StaticIpam = ipam.keys()?;

    let mut ips = Vec::new();
    for entry in &ipam.addresses {
        ips.push(IpConfig {
            address: parse_cidr(&entry.address, "the 'address' field is")?,
            gateway: entry.gateway.as_deref().map(parse_gateway).transpose()?,
            interface: None,
        });
    }
    if let Some(list) = request.args.value("IP") {
        for text in list.split(',') {
            ips.push(IpConfig {
                address: parse_cidr(text, "the 'ip' field is")?,
                gateway: None,
                interface: None,
            });
        }
    }
    if let Some(list) = request.args.value("GATEWAY") {
        for text in list.split(',') {
            let gateway = parse_gateway(text)?;
            for ip in ips.iter_mut().filter(|ip| ip.address.contains(&gateway)) {
                ip.gateway = Some(gateway);
            }
        }
    }
    for source in [
        conf.args.as_ref().map(|a| &a.cni.ips),
        Some(&conf.runtime_config.ips),
    ]
    .into_iter()
    .flatten()
    {
        if !source.is_empty() {
            ips = source
                .iter()
                .map(|text| {
                    Ok(IpConfig {
                        address: parse_cidr(text, "an entry in the 'ips' field is NOT")?,
                        gateway: None,
                        interface: None,
                    })
                })
                .collect::<Result<_, CniError>>()?;
        }
    }
    // An address and a gateway of different families would install a route no
    // kernel takes (the Go plugin accepts it and fails later, or not at all).
    if let Some(ip) = ips
        .iter()
        .find(|ip| ip.gateway.is_some_and(|gw| gw.is_ipv4() != ip.is_ipv4()))
    {
        return Err(CniError::invalid_config(format!(
            "the gateway {} of address {} is of another IP family",
            ip.gateway.expect("checked above"),
            ip.address
        )));
    }
    if !request.version.allows_multiple_ips_per_family() {
        for v4 in [true, false] {
            if ips.iter().filter(|ip| ip.is_ipv4() == v4).count() > 1 {
                return Err(CniError::invalid_config(format!(
                    "CNI version {} does not support more than 1 address per family",
                    request.version
                )));
            }
        }
    }
    Ok(Plan {
        ips,
        routes: ipam.routes,
        dns: ipam.dns,
    })
}

/// Every configured address must be on `CNI_IFNAME` in `CNI_NETNS`, when the netns
/// holds a link of that name: an address removed behind the attachment's back fails
/// CHECK. Without such a link (a main plugin whose interface is not a netdev, as a
/// DPDK VF) only prevResult can be checked.
fn on_the_link(request: &Request, ips: &[IpConfig]) -> Result<(), CniError> {
    let Some(path) = &request.netns else {
        return Ok(());
    };
    let mut inside = libcni::netns::NetNs::open(path)?.netlink()?;
    let Some(link) = inside.get_link(&libcni::netlink::LinkId::Name(&request.ifname))? else {
        return Ok(());
    };
    let on_link = inside.list_addresses(Some(link.index))?;
    for ip in ips {
        if !on_link.iter().any(|a| a.address == ip.address) {
            return Err(CniError::internal(format!(
                "static: address {} is missing from {:?}",
                ip.address, request.ifname
            )));
        }
    }
    Ok(())
}

struct Static;

impl Plugin for Static {
    type Config = Config;
    /// It keeps no state: DEL, GC and STATUS read nothing.
    type DelConfig = ();
    type GcConfig = ();

    fn load(&self, request: &Request) -> Result<Config, CniError> {
        load(request)
    }

    fn load_for_del(&self, _request: &Request) -> Result<(), CniError> {
        Ok(())
    }

    fn load_for_gc(&self, _request: &Request) -> Result<(), CniError> {
        Ok(())
    }

    fn add(&self, _request: &Request, config: &Config) -> Result<CniResult, CniError> {
        let plan = &config.plan;
        Ok(CniResult {
            interfaces: Vec::new(),
            ips: plan.ips.clone(),
            routes: plan.routes.clone(),
            dns: plan.dns.clone(),
        })
    }

    fn del(&self, _request: &Request, _config: &()) -> Result<(), CniError> {
        Ok(())
    }

    /// Every configured address must be in prevResult with the same gateway.
    fn check(&self, request: &Request, config: &Config) -> Result<(), CniError> {
        let plan = &config.plan;
        let prev = config
            .prev_result
            .as_ref()
            .ok_or_else(|| CniError::invalid_config("static: CHECK needs prevResult"))?;
        let prev = CniResult::from_value(prev, request.version)?;
        for ip in &plan.ips {
            match prev.ips.iter().find(|p| p.address == ip.address) {
                None => {
                    return Err(CniError::invalid_config(format!(
                        "static: failed to find address {} in prevResult",
                        ip.address
                    )))
                }
                Some(p) if ip.gateway.is_some() && p.gateway != ip.gateway => {
                    return Err(CniError::invalid_config(format!(
                        "static: address {} has gateway {:?} in prevResult, the config says {:?}",
                        ip.address, p.gateway, ip.gateway
                    )))
                }
                Some(_) => {}
            }
        }
        on_the_link(request, &plan.ips)
    }

    fn known_args(&self) -> &'static [&'static str] {
        &["IP", "GATEWAY"]
    }

    fn is_ipam(&self) -> bool {
        true
    }
}

const ABOUT: About = About {
    name: "static",
    version: env!("CARGO_PKG_VERSION"),
};

/// The plugin's entry point, for its own binary and for the multi-call binary.
pub fn run() -> ! {
    libcni::skel::run(&Static, ABOUT)
}

/// One invocation inside the caller's process: the multi-call binary's answer when
/// a plugin of it delegates IPAM to this one (`libcni::delegate::builtin`).
pub fn invoke(env: Env<'_>, stdin: &mut dyn std::io::Read) -> Outcome {
    libcni::skel::dispatch(&Static, &ABOUT, env, stdin)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(stdin: serde_json::Value, cni_args: &str) -> Request {
        Request::for_config(&stdin, cni_args)
    }

    fn plan(request: &Request) -> Result<Plan, CniError> {
        load(request).map(|config| config.plan)
    }

    fn ips(plan: &Plan) -> Vec<String> {
        plan.ips
            .iter()
            .map(|ip| {
                format!(
                    "{}{}",
                    ip.address,
                    ip.gateway.map(|g| format!(" via {g}")).unwrap_or_default()
                )
            })
            .collect()
    }

    #[test]
    fn cni_args_append_and_gateway_applies_by_subnet() {
        let conf = serde_json::json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"static",
            "addresses":[{"address":"10.10.0.1/24","gateway":"10.10.0.254"}]}});
        let plan = plan(&request(
            conf,
            "IP=10.20.0.5/24,fd00::5/64;GATEWAY=10.20.0.1",
        ))
        .unwrap();
        assert_eq!(
            ips(&plan),
            vec![
                "10.10.0.1/24 via 10.10.0.254",
                "10.20.0.5/24 via 10.20.0.1",
                "fd00::5/64"
            ]
        );
    }

    #[test]
    fn args_and_runtime_config_replace_in_that_order() {
        let conf = serde_json::json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"static",
            "addresses":[{"address":"10.10.0.1/24"}]}, "args":{"cni":{"ips":["10.30.0.1/24"]}}});
        assert_eq!(
            ips(&plan(&request(conf.clone(), "")).unwrap()),
            vec!["10.30.0.1/24"]
        );
        let mut with_rc = conf;
        with_rc["runtimeConfig"] = serde_json::json!({"ips":["10.40.0.1/24"]});
        assert_eq!(
            ips(&plan(&request(with_rc, "")).unwrap()),
            vec!["10.40.0.1/24"]
        );
    }

    #[test]
    fn go_error_texts() {
        let e = plan(&request(
            serde_json::json!({"cniVersion":"1.0.0","name":"n"}),
            "",
        ))
        .unwrap_err();
        assert_eq!(e.msg, "IPAM config missing 'ipam' key");
        let bad = serde_json::json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"static","addresses":[{"address":"10.0.0.1"}]}});
        assert_eq!(
            plan(&request(bad, "")).unwrap_err().msg,
            "the 'address' field is expected to be in CIDR notation, got: '10.0.0.1'"
        );
        let gw = serde_json::json!({"cniVersion":"1.0.0","name":"n","ipam":{"type":"static","addresses":[{"address":"10.0.0.1/24","gateway":"x"}]}});
        assert_eq!(
            plan(&request(gw, "")).unwrap_err().msg,
            "invalid gateway address: x"
        );
    }

    #[test]
    fn two_addresses_of_a_family_need_0_3_0() {
        let conf = serde_json::json!({"cniVersion":"0.2.0","name":"n","ipam":{"type":"static",
            "addresses":[{"address":"10.10.0.1/24"},{"address":"10.10.1.1/24"}]}});
        assert!(plan(&request(conf, ""))
            .unwrap_err()
            .msg
            .contains("does not support more than 1 address per family"));
    }
}
