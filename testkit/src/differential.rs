//! The differential harness: the same invocation through Debian's Go plugin and
//! ours, each in a sandbox of its own, then the exit status, the result (or the
//! error's code) and the state left behind (links, addresses, routes, sysctls, the
//! nftables and iptables rules, the files under the data directories) compared,
//! after ADD, after CHECK and after DEL.
//!
//! Cases are generated (proptest, with shrinking, so that a failure prints a minimal
//! case): bridge (also as cnv-bridge), macvlan, host-local and static, every key of
//! each with valid, boundary and invalid values, keys in random letter case,
//! unknown keys, every spec version, CNI_ARGS, `args` and `runtimeConfig` variants.
//!
//! A difference fails the case unless docs/compatibility.md lists it: each
//! intentional difference has an ID there, and the harness applies only the
//! tolerances whose IDs the document lists.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Map, Value};

use crate::{sh, with_prev, Call, Output, Sandbox};

/// One generated invocation.
#[derive(Clone, Debug)]
pub struct Case {
    /// The binary to run (`bridge`, `cnv-bridge`, `macvlan`, `host-local`, `static`).
    pub plugin: &'static str,
    pub config: Value,
    pub cni_args: Option<String>,
    pub ifname: &'static str,
}

/// What one implementation did with a case.
#[derive(Debug, Default, PartialEq)]
pub struct Observation {
    pub steps: Vec<(String, Value)>,
}

/// The IDs of the differences docs/compatibility.md lists (`` `diff:<id>` ``).
pub fn listed_differences() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/compatibility.md");
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    text.split("`diff:")
        .skip(1)
        .filter_map(|rest| rest.split('`').next())
        .map(str::to_owned)
        .collect()
}

fn spelled(key: &str, style: u8) -> String {
    match style % 8 {
        0 => key.to_lowercase(),
        1 => key.to_uppercase(),
        2 => {
            let mut c = key.chars();
            c.next()
                .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                .unwrap_or_default()
        }
        _ => key.to_string(),
    }
}

/// A key, absent half of the time, spelled in another letter case now and then,
/// with a value from `valid` mostly and from `invalid` (boundaries, wrong types)
/// sometimes.
fn key_of(
    name: &'static str,
    valid: Vec<Value>,
    invalid: Vec<Value>,
) -> BoxedStrategy<Option<(String, Value)>> {
    let value = if invalid.is_empty() {
        proptest::sample::select(valid).boxed()
    } else {
        prop_oneof![
            9 => proptest::sample::select(valid),
            1 => proptest::sample::select(invalid),
        ]
        .boxed()
    };
    (proptest::option::of(value), any::<u8>())
        .prop_map(move |(v, style)| v.map(|v| (spelled(name, style), v)))
        .boxed()
}

/// [`key_of`] with every value valid.
fn key(name: &'static str, values: Vec<Value>) -> BoxedStrategy<Option<(String, Value)>> {
    key_of(name, values, Vec::new())
}

fn bool_key(name: &'static str) -> BoxedStrategy<Option<(String, Value)>> {
    key_of(
        name,
        vec![json!(true), json!(false)],
        vec![json!("true"), json!(1)],
    )
}

fn object(entries: Vec<Option<(String, Value)>>) -> Map<String, Value> {
    entries.into_iter().flatten().collect()
}

fn ipam_strategy() -> BoxedStrategy<Option<Value>> {
    let host_local = (
        prop_oneof![
            8 => proptest::sample::select(vec![
                json!([[{"subnet": "10.199.0.0/24"}]]),
                json!([[{"subnet": "10.199.0.0/24", "rangeStart": "10.199.0.10", "rangeEnd": "10.199.0.20"}]]),
                json!([[{"subnet": "10.199.0.0/24", "gateway": "10.199.0.254"}]]),
                json!([[{"subnet": "10.199.0.0/30"}]]),
                json!([[{"subnet": "10.199.0.0/24"}], [{"subnet": "fd00:199::/64"}]]),
            ]),
            1 => proptest::sample::select(vec![
                json!([[{"subnet": "10.199.0.0/24", "rangeStart": "10.199.1.5"}]]),
                json!([[{"subnet": "not-a-subnet"}]]),
                json!([]),
            ]),
        ],
        key("routes", vec![json!([{"dst": "0.0.0.0/0"}]), json!([{"dst": "192.168.0.0/16", "gw": "10.199.0.1"}])]),
        any::<u8>(),
    )
        .prop_map(|(ranges, routes, style)| {
            let mut ipam = object(vec![routes]);
            ipam.insert(spelled("ranges", style), ranges);
            ipam.insert("type".into(), json!("host-local"));
            Value::Object(ipam)
        });
    let static_ipam = (
        prop_oneof![
            8 => proptest::sample::select(vec![
                json!([{"address": "10.198.0.5/24"}]),
                json!([{"address": "10.198.0.5/24", "gateway": "10.198.0.1"}]),
                json!([{"address": "10.198.0.5/24"}, {"address": "10.198.1.5/24"}]),
                json!([{"address": "fd00:198::5/64", "gateway": "fd00:198::1"}]),
            ]),
            1 => proptest::sample::select(vec![
                json!([{"address": "10.198.0.5/24", "gateway": "fd00::1"}]),
                json!([{"address": "10.198.0.5"}]),
            ]),
        ],
        key(
            "routes",
            vec![json!([{"dst": "0.0.0.0/0", "gw": "10.198.0.1"}])],
        ),
        key(
            "dns",
            vec![json!({"nameservers": ["10.198.0.53"], "domain": "example.com"})],
        ),
    )
        .prop_map(|(addresses, routes, dns)| {
            let mut ipam = object(vec![routes, dns]);
            ipam.insert("addresses".into(), addresses);
            ipam.insert("type".into(), json!("static"));
            Value::Object(ipam)
        });
    prop_oneof![
        2 => Just(None),
        5 => host_local.prop_map(Some),
        2 => static_ipam.prop_map(Some),
        1 => Just(Some(json!({}))),
    ]
    .boxed()
}

fn versions() -> BoxedStrategy<&'static str> {
    prop_oneof![
        3 => Just("1.0.0"),
        2 => Just("0.4.0"),
        2 => Just("0.3.1"),
        1 => proptest::sample::select(vec!["0.1.0", "0.2.0", "0.3.0"]),
        1 => proptest::sample::select(vec!["1.1.0", "9.9.9", ""]),
    ]
    .boxed()
}

fn common(plugin: &'static str) -> impl Strategy<Value = Map<String, Value>> {
    (
        versions(),
        prop_oneof![
            4 => Just(None),
            1 => proptest::sample::select(vec![
                json!({"mac": "02:00:00:00:00:77"}),
                json!({"mac": "02-00-00-00-00-7A"}),
                json!({"mac": "01:00:5e:00:00:01"}),
                json!({"ips": ["10.199.0.7/24"]}),
            ]).prop_map(Some),
        ],
        prop_oneof![
            4 => Just(None),
            1 => proptest::sample::select(vec![
                json!({"cni": {"ips": ["10.199.0.8"]}}),
                json!({"cni": {"mac": "02:00:00:00:00:78"}}),
                json!({"cni": {"mac": "0200.0000.007b"}}),
            ]).prop_map(Some),
        ],
        any::<bool>(),
    )
        .prop_map(move |(version, runtime, args, unknown)| {
            let mut c = Map::new();
            c.insert("cniVersion".into(), json!(version));
            c.insert("name".into(), json!("diffnet"));
            c.insert("type".into(), json!(plugin));
            if let Some(r) = runtime {
                c.insert("runtimeConfig".into(), r);
            }
            if let Some(a) = args {
                c.insert("args".into(), a);
            }
            if unknown {
                c.insert("someUnknownKey".into(), json!({"x": 1}));
            }
            c
        })
}

fn finish(
    mut base: Map<String, Value>,
    keys: Vec<Option<(String, Value)>>,
    ipam: Option<Value>,
) -> Value {
    base.extend(keys.into_iter().flatten());
    if let Some(ipam) = ipam {
        base.insert("ipam".into(), ipam);
    }
    Value::Object(base)
}

fn cni_args() -> impl Strategy<Value = Option<String>> {
    prop_oneof![3 => Just(None), 1 => proptest::option::of(proptest::sample::select(vec![
        "IgnoreUnknown=1".to_string(),
        "IgnoreUnknown=1;K8S_POD_NAME=pod;IP=10.199.0.9".to_string(),
        "IgnoreUnknown=true;MAC=02:00:00:00:00:79".to_string(),
        "IgnoreUnknown=true;MAC=02-00-00-00-00-7c".to_string(),
        "FOO=bar".to_string(),
        "IP=10.199.0.300".to_string(),
    ]))]
}

/// Cases for this kernel (no VLAN keys: the full-kernel tier has those).
pub fn case_strategy() -> BoxedStrategy<Case> {
    prop_oneof![
        4 => bridge_cases("bridge"),
        1 => bridge_cases("cnv-bridge"),
        3 => macvlan_cases(),
        2 => ipam_only_cases("host-local"),
        2 => ipam_only_cases("static"),
        2 => tuning_cases(),
    ]
    .boxed()
}

fn bridge_cases(plugin: &'static str) -> impl Strategy<Value = Case> {
    (
        common(plugin),
        (
            key_of(
                "bridge",
                vec![json!("difbr0"), json!("difbr1")],
                vec![json!(""), json!("a/b")],
            ),
            bool_key("isGateway"),
            bool_key("isDefaultGateway"),
            bool_key("forceAddress"),
            bool_key("ipMasq"),
            key_of(
                "mtu",
                vec![json!(1280), json!(1500), json!(9000), json!(0)],
                vec![json!(-1), json!(70000)],
            ),
            bool_key("hairpinMode"),
            bool_key("promiscMode"),
            bool_key("macspoofchk"),
        ),
        ipam_strategy(),
        cni_args(),
        proptest::sample::select(vec!["eth0", "net1"]),
    )
        .prop_map(move |(base, k, ipam, args, ifname)| Case {
            plugin,
            config: finish(
                base,
                vec![k.0, k.1, k.2, k.3, k.4, k.5, k.6, k.7, k.8],
                ipam,
            ),
            cni_args: args,
            ifname,
        })
}

fn macvlan_cases() -> impl Strategy<Value = Case> {
    (
        common("macvlan"),
        (
            key_of("master", vec![json!("dup0")], vec![json!("nonexistent0")]),
            key_of(
                "mode",
                vec![
                    json!("bridge"),
                    json!("private"),
                    json!("vepa"),
                    json!("passthru"),
                ],
                vec![json!("bogus")],
            ),
            key_of(
                "mtu",
                vec![json!(1280), json!(1500)],
                vec![json!(9000), json!(-1)],
            ),
            key_of(
                "mac",
                vec![json!("02:00:00:00:00:80"), json!("0200.0000.0082")],
                vec![json!("ff:ff:ff:ff:ff:ff"), json!("02-00:00:00:00:83")],
            ),
        ),
        ipam_strategy(),
        cni_args(),
    )
        .prop_map(|(base, k, ipam, args)| Case {
            plugin: "macvlan",
            config: finish(base, vec![k.0, k.1, k.2, k.3], ipam),
            cni_args: args,
            ifname: "net1",
        })
}

fn ipam_only_cases(plugin: &'static str) -> impl Strategy<Value = Case> {
    (common(plugin), ipam_strategy(), cni_args()).prop_map(move |(base, ipam, args)| Case {
        plugin,
        config: finish(base, Vec::new(), ipam),
        cni_args: args,
        ifname: "eth0",
    })
}

fn tuning_cases() -> impl Strategy<Value = Case> {
    (
        common("tuning"),
        (
            key_of(
                "sysctl",
                vec![
                    json!({"net.ipv4.conf.IFNAME.arp_filter": "1"}),
                    json!({"net.ipv4.conf.all.arp_ignore": "2", "net.ipv4.conf.net1.arp_announce": "1"}),
                ],
                vec![json!({"kernel.hostname": "x"}), json!({"net.ipv4.nonexistent": "1"})],
            ),
            key_of(
                "mac",
                vec![json!("02:00:00:00:00:81"), json!("02-00-00-00-00-84")],
                vec![json!("nonsense"), json!("+2:00:00:00:00:85")],
            ),
            key_of("mtu", vec![json!(1280), json!(1400)], vec![json!(-5)]),
            bool_key("promisc"),
            bool_key("allmulti"),
        ),
    )
        .prop_map(|(mut base, k)| {
            base.insert("dataDir".into(), json!(TUNING_DIR));
            Case {
                plugin: "tuning",
                config: finish(base, vec![k.0, k.1, k.2, k.3, k.4], None),
                cni_args: None,
                ifname: "net1",
            }
        })
}

/// Cases for the full-kernel tier: the vlan plugin, and cnv-bridge with its `vlan`
/// key (Debian's Go bridge 1.1.1 keeps VLAN 1 on such a port, as cnv-bridge does by
/// default; it has no `vlanTrunk` or `preserveDefaultVlan` yet).
pub fn vlan_case_strategy() -> BoxedStrategy<Case> {
    let vlan = (
        common("vlan"),
        (
            key_of("master", vec![json!("dup0")], vec![json!("nonexistent0")]),
            key_of(
                "vlanId",
                vec![json!(1), json!(100), json!(1223), json!(4094)],
                vec![json!(4095), json!(-1), json!("100")],
            ),
            key_of("mtu", vec![json!(1280), json!(1500)], vec![json!(9000)]),
        ),
        ipam_strategy(),
    )
        .prop_map(|(base, k, ipam)| Case {
            plugin: "vlan",
            config: finish(base, vec![k.0, k.1, k.2], ipam),
            cni_args: None,
            ifname: "net1",
        });
    let bridge = (
        common("cnv-bridge"),
        (
            key_of(
                "vlan",
                vec![json!(100), json!(1223), json!(4094)],
                vec![json!(4095), json!(-1)],
            ),
            bool_key("macspoofchk"),
            bool_key("hairpinMode"),
        ),
        ipam_strategy(),
    )
        .prop_map(|(mut base, k, ipam)| {
            base.insert("bridge".into(), json!("difvbr0"));
            Case {
                plugin: "cnv-bridge",
                config: finish(base, vec![k.0, k.1, k.2], ipam),
                cni_args: None,
                ifname: "eth0",
            }
        });
    prop_oneof![vlan, bridge].boxed()
}

/// tuning's state directory in the cases: inside the sandbox's tmpfs.
const TUNING_DIR: &str = "/var/lib/cni/tuning";

/// Replaces what is random (veth names, MACs the case did not ask for) and what is
/// ours by design (listed) so that two runs can be compared.
struct Normalizer {
    kept_macs: BTreeSet<String>,
    listed: BTreeSet<String>,
}

impl Normalizer {
    fn text(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < text.len() {
            let rest = &text[i..];
            if rest.starts_with("veth")
                && rest.len() >= 12
                && rest[4..12].bytes().all(|b| b.is_ascii_hexdigit())
            {
                out.push_str("VETH");
                i += 12;
                continue;
            }
            if rest.len() >= 17
                && is_mac(&rest[..17])
                && (i == 0 || !bytes[i - 1].is_ascii_hexdigit())
            {
                let mac = rest[..17].to_lowercase();
                out.push_str(if self.kept_macs.contains(&mac) {
                    &rest[..17]
                } else {
                    "MAC"
                });
                i += 17;
                continue;
            }
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
        out
    }

    fn value(&self, v: &Value) -> Value {
        match v {
            Value::String(s) => Value::String(self.text(s)),
            Value::Array(items) => Value::Array(items.iter().map(|i| self.value(i)).collect()),
            Value::Object(o) => Value::Object(
                o.iter()
                    .filter(|(k, _)| !(self.listed.contains("alias-mark") && *k == "ifalias"))
                    .map(|(k, v)| (self.text(k), self.value(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }
}

fn is_mac(s: &str) -> bool {
    s.len() == 17
        && s.bytes().enumerate().all(|(i, b)| {
            if i % 3 == 2 {
                b == b':'
            } else {
                b.is_ascii_hexdigit()
            }
        })
}

/// An exit and what it printed, reduced to what must match: the result, or the
/// error's code (messages are each implementation's own).
fn outcome(out: &Output) -> Value {
    if out.code == 0 {
        json!({"exit": 0, "result": serde_json::from_str::<Value>(&out.stdout).unwrap_or(Value::Null)})
    } else {
        let code = serde_json::from_str::<Value>(&out.stdout)
            .ok()
            .and_then(|e| e.get("code").cloned())
            .unwrap_or(Value::Null);
        json!({"exit": out.code, "code": code})
    }
}

fn ip_json(args: &[&str]) -> Value {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

/// `ip` arguments: `head`, then `-n <netns>` when given, then `tail`.
fn ip_args<'a>(head: &[&'a str], netns: Option<&'a str>, tail: &[&'a str]) -> Vec<&'a str> {
    let mut args = head.to_vec();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(tail);
    args
}

/// The links of `netns` (the host's when None), with the attributes a case sets.
fn links_state(netns: Option<&str>) -> Value {
    let all = ip_json(&ip_args(&["-j", "-d"], netns, &["link", "show"]));
    let links: Vec<Value> = all
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|l| {
            json!({
                "ifname": l["ifname"], "kind": l["linkinfo"]["info_kind"], "master": l["master"],
                "mtu": l["mtu"], "up": l["flags"].as_array().is_some_and(|f| f.contains(&json!("UP"))),
                "promiscuity": l["promiscuity"], "address": l["address"], "ifalias": l["ifalias"],
                "hairpin": l["linkinfo"]["info_slave_data"]["hairpin"],
                "isolated": l["linkinfo"]["info_slave_data"]["isolated"],
                "macvlan_mode": l["linkinfo"]["info_data"]["mode"],
            })
        })
        .collect();
    Value::Array(links)
}

/// The addresses of `netns` but link-local ones, as `<ifname> <address>/<prefix>`.
fn addrs_state(netns: Option<&str>) -> Value {
    let mut out = BTreeSet::new();
    for l in ip_json(&ip_args(&["-j"], netns, &["addr", "show"]))
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        for a in l["addr_info"].as_array().cloned().unwrap_or_default() {
            let local = a["local"].as_str().unwrap_or_default();
            if !local.starts_with("fe80") {
                out.insert(format!(
                    "{} {local}/{}",
                    l["ifname"].as_str().unwrap_or_default(),
                    a["prefixlen"]
                ));
            }
        }
    }
    json!(out)
}

/// The routes of `netns` of one family (`-4` or `-6`) in every table, but the
/// kernel's local and link-local ones.
fn routes_state(netns: Option<&str>, family: &str) -> Value {
    let args = ip_args(&["-j", family], netns, &["route", "show", "table", "all"]);
    let mut out = BTreeSet::new();
    for r in ip_json(&args).as_array().cloned().unwrap_or_default() {
        if r["dst"]
            .as_str()
            .is_some_and(|d| d.starts_with("fe80") || d.starts_with("ff00"))
            || r["type"] == "local"
            || r["table"] == "local"
        {
            continue;
        }
        out.insert(format!(
            "{} via {} dev {} metric {}",
            r["dst"], r["gateway"], r["dev"], r["metric"]
        ));
    }
    json!(out)
}

fn sysctl(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{key}"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// The files under `data_dirs`, path to content.
fn data_files(data_dirs: &[&Path]) -> BTreeMap<String, String> {
    let mut files = BTreeMap::new();
    for dir in data_dirs {
        for (path, content) in Sandbox::files(dir) {
            if path.components().any(|c| c.as_os_str() == ".index") {
                continue; // our own index (docs/compatibility.md: diff:host-local-index)
            }
            files.insert(
                path.display().to_string(),
                String::from_utf8_lossy(&content).into_owned(),
            );
        }
    }
    files
}

/// The state a case can change, as a user would look at it.
fn state(data_dirs: &[&Path]) -> Value {
    json!({
        "host links": links_state(None), "pod links": links_state(Some("pod")),
        "host addresses": addrs_state(None), "pod addresses": addrs_state(Some("pod")),
        "pod routes": [routes_state(Some("pod"), "-4"), routes_state(Some("pod"), "-6")],
        "host routes": [routes_state(None, "-4")],
        "ip_forward": sysctl("net/ipv4/ip_forward"),
        "bridge vlans": std::process::Command::new("bridge").args(["-j", "vlan", "show"]).output()
            .ok().and_then(|o| serde_json::from_slice::<Value>(&o.stdout).ok()).unwrap_or(Value::Null),
        "nft": sh(&["nft", "list", "ruleset"]),
        "iptables nat": std::process::Command::new("iptables-save").args(["-t", "nat"]).output()
            .map(|o| String::from_utf8_lossy(&o.stdout).lines().filter(|l| !l.starts_with('#')).collect::<Vec<_>>().join("\n"))
            .unwrap_or_default(),
        "files": data_files(data_dirs),
    })
}

/// Runs the case through one implementation in a fresh sandbox: ADD, CHECK with the
/// result (0.4.0+ and when ADD succeeded), DEL, a second DEL; state after each.
pub fn observe(case: &Case, bin_dir: &Path) -> Observation {
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let sb = Sandbox::new("differential").expect("the differential harness needs root");
                let pod = sb.netns("pod");
                crate::veth_pair_up("dup0", "dup1");
                let data_dirs = [Path::new("/var/lib/cni/networks"), Path::new(TUNING_DIR)];
                let binary = bin_dir.join(case.plugin);
                let mut config = case.config.clone();
                if case.plugin == "tuning" {
                    // An interface made by an earlier plugin of the chain, and its result.
                    sh(&[
                        "ip", "-n", "pod", "link", "add", "net1", "type", "veth", "peer", "name",
                        "net1p",
                    ]);
                    sh(&["ip", "-n", "pod", "link", "set", "net1", "up"]);
                    let version = config["cniVersion"].clone();
                    config["prevResult"] = json!({"cniVersion": version,
                        "interfaces": [{"name": "net1", "sandbox": pod}],
                        "ips": [{"address": "10.197.0.5/24", "interface": 0}]});
                    // What a plugin of that version prints (0.3.x/0.4.0 name the family).
                    if ["0.3.0", "0.3.1", "0.4.0"].contains(&version.as_str().unwrap_or_default()) {
                        config["prevResult"]["ips"][0]["version"] = json!("4");
                    }
                    // (no cniVersion means 0.1.0, whose results are laid out the old way)
                    if ["", "0.1.0", "0.2.0"].contains(&version.as_str().unwrap_or_default()) {
                        config["prevResult"] =
                            json!({"cniVersion": version, "ip4": {"ip": "10.197.0.5/24"}});
                    }
                }
                let case = &Case {
                    config,
                    ..case.clone()
                };
                let call = |command: &str, config: &Value| {
                    let mut call = Call::attach(command, "diffcid", &pod, case.ifname)
                        .env("CNI_PATH", &bin_dir.display().to_string())
                        .config(config);
                    if let Some(args) = &case.cni_args {
                        call = call.env("CNI_ARGS", args);
                    }
                    call.run(&binary)
                };
                let mut steps = Vec::new();
                let add = call("ADD", &case.config);
                steps.push(("ADD".to_string(), outcome(&add)));
                steps.push(("state after ADD".to_string(), state(&data_dirs)));
                let prev = (add.code == 0)
                    .then(|| serde_json::from_str::<Value>(&add.stdout).ok())
                    .flatten();
                let version = case.config["cniVersion"].as_str().unwrap_or_default();
                if let Some(prev) = &prev {
                    if !["0.1.0", "0.2.0", "0.3.0", "0.3.1"].contains(&version) {
                        let check = call("CHECK", &with_prev(&case.config, prev));
                        steps.push(("CHECK".to_string(), outcome(&check)));
                    }
                }
                let del_config = prev
                    .as_ref()
                    .map_or(case.config.clone(), |p| with_prev(&case.config, p));
                let del = call("DEL", &del_config);
                steps.push(("DEL".to_string(), outcome(&del)));
                steps.push(("state after DEL".to_string(), state(&data_dirs)));
                let again = call("DEL", &case.config);
                steps.push(("second DEL".to_string(), outcome(&again)));
                drop(sb);
                Observation { steps }
            })
            .join()
            .expect("the case's thread")
    })
}

/// Compares the two observations after normalizing; `Err` describes the first
/// unlisted difference.
pub fn compare(
    case: &Case,
    go: &Observation,
    ours: &Observation,
    listed: &BTreeSet<String>,
) -> Result<(), String> {
    let n = Normalizer {
        kept_macs: kept_macs(case),
        listed: listed.clone(),
    };
    if whole_case_tolerated(case, go, ours, listed) {
        return Ok(());
    }
    let add_failed = |o: &Observation| o.steps[0].1["exit"] != 0;
    let both_failed_add = add_failed(go) && add_failed(ours);
    for ((go_step, go_value), (our_step, our_value)) in go.steps.iter().zip(&ours.steps) {
        // A failed ADD: Go leaves what it made (a veth, the bridge) for DEL, and
        // never deletes a bridge; ours leaves nothing. Listed, so not compared.
        if both_failed_add && go_step.starts_with("state") && listed.contains("failed-add-cleanup")
        {
            continue;
        }
        if go_step != our_step {
            return Err(format!(
                "steps differ: Go ran {go_step}, ours ran {our_step}"
            ));
        }
        let (mut g, mut o) = (n.value(go_value), n.value(our_value));
        drop_ipam_dns(case, &mut g, &mut o, listed);
        if go_step == "state after DEL" && masq_teardown_tolerated(&g, &o, listed) {
            continue;
        }
        if g != o && !tolerated(case, (go, ours), go_step, &g, &o, listed) {
            return Err(format!(
                "{go_step} differs\n  Go:   {}\n  ours: {}",
                serde_json::to_string(&g).unwrap(),
                serde_json::to_string(&o).unwrap()
            ));
        }
    }
    if go.steps.len() != ours.steps.len() {
        return Err(format!(
            "Go ran {:?}, ours ran {:?}",
            go.steps.iter().map(|s| &s.0).collect::<Vec<_>>(),
            ours.steps.iter().map(|s| &s.0).collect::<Vec<_>>()
        ));
    }
    Ok(())
}

/// The MACs the case itself names (in its config or CNI_ARGS), in any spelling Go
/// reads, written as the kernel writes them: kept as they are when normalizing,
/// since both implementations must use them.
fn kept_macs(case: &Case) -> BTreeSet<String> {
    let mut kept = BTreeSet::new();
    let text = case.config.to_string() + case.cni_args.as_deref().unwrap_or_default();
    for (i, _) in text.char_indices() {
        // 17: colons or dashes; 14: Cisco's dots.
        for len in [17, 14] {
            let candidate = text.get(i..i + len);
            if let Some(mac) = candidate.and_then(|c| c.parse::<libcni::mac::MacAddr>().ok()) {
                kept.insert(mac.to_string());
            }
        }
    }
    kept
}

/// Whether the case asks for a MAC written otherwise than with colons.
fn spells_a_mac_otherwise(case: &Case) -> bool {
    let text = case.config.to_string() + case.cni_args.as_deref().unwrap_or_default();
    let mut macs = kept_macs(case).into_iter();
    macs.any(|mac| !text.to_lowercase().contains(&mac))
}

/// Whether a listed difference makes the whole case say nothing about us.
fn whole_case_tolerated(
    case: &Case,
    go: &Observation,
    ours: &Observation,
    listed: &BTreeSet<String>,
) -> bool {
    // Go 1.1.1 knows no spec version above 1.0.0: the case says nothing about us.
    if listed.contains("spec-1.1.0") && case.config["cniVersion"] == "1.1.0" {
        return true;
    }
    // A stricter check of ours, listed: Go takes the config, we refuse it (code 7)
    // before doing anything, and the rest of the case follows from that.
    if go.steps[0].1["exit"] == 0
        && ours.steps[0].1["code"] == 7
        && stricter_check(case).is_some_and(|id| listed.contains(id))
    {
        return true;
    }
    // vlan without IPAM: Go 1.1.1 requires IPAM (`no plugin name provided`); ours
    // makes the layer-2 link (listed).
    case.plugin == "vlan"
        && is_layer2(case)
        && go.steps[0].1["exit"] != 0
        && ours.steps[0].1["exit"] == 0
        && listed.contains("vlan-layer2")
}

/// Go 1.1.1 drops the IPAM plugin's DNS from the result; we keep it (listed): the
/// empty DNS is taken out of both results.
fn drop_ipam_dns(case: &Case, g: &mut Value, o: &mut Value, listed: &BTreeSet<String>) {
    if listed.contains("ipam-dns")
        && case.config.get("dns").is_none()
        && g["result"]["dns"] == json!({})
    {
        for v in [g, o] {
            if let Some(result) = v.get_mut("result").and_then(Value::as_object_mut) {
                result.remove("dns");
            }
        }
    }
}

/// Go's DEL leaves masquerade rules of an attachment with several addresses of
/// one family; ours removes them all (listed). True when that is the only
/// difference in the states after DEL.
fn masq_teardown_tolerated(g: &Value, o: &Value, listed: &BTreeSet<String>) -> bool {
    if g == o || !listed.contains("ipmasq-teardown") {
        return false;
    }
    let without_masq = |v: &Value| {
        let mut v = v.clone();
        v.as_object_mut().map(|o| {
            o.remove("nft");
            o.remove("iptables nat")
        });
        v
    };
    without_masq(g) == without_masq(o)
        && !o["iptables nat"]
            .as_str()
            .unwrap_or_default()
            .contains("CNI-")
        && !o["nft"].as_str().unwrap_or_default().contains("CNI-")
}

/// Whether `case` has no IPAM: a layer-2 attachment.
fn is_layer2(case: &Case) -> bool {
    case.config["ipam"]["type"]
        .as_str()
        .unwrap_or_default()
        .is_empty()
}

/// Whether Go's ADD of `case` masqueraded several addresses of one family.
fn masquerades_several_of_one_family(case: &Case, go: &Observation) -> bool {
    let masquerades = case.config.as_object().is_some_and(|c| {
        c.iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("ipMasq") && *v == json!(true))
    });
    let ips = go.steps[0].1["result"]["ips"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let v6 = ips
        .iter()
        .filter(|ip| ip["address"].as_str().unwrap_or_default().contains(':'))
        .count();
    masquerades && (v6 > 1 || ips.len() - v6 > 1)
}

/// The listed stricter check (if any) that refuses `case` where Go accepts it.
fn stricter_check(case: &Case) -> Option<&'static str> {
    let ipam = &case.config["ipam"];
    let mixed_family = ipam["type"] == "static"
        && ipam["addresses"].as_array().is_some_and(|addresses| {
            addresses.iter().any(|a| {
                let (address, gateway) =
                    (a["address"].as_str().unwrap_or(""), a["gateway"].as_str());
                gateway.is_some_and(|g| g.contains(':') != address.contains(':'))
            })
        });
    mixed_family.then_some("static-mixed-family")
}

/// The listed differences that are not a rewrite of the values but a rule about
/// outcomes: both failed (codes may differ where listed), or we refuse what Go
/// takes (listed as a stricter check).
fn tolerated(
    case: &Case,
    observed: (&Observation, &Observation),
    step: &str,
    go: &Value,
    ours: &Value,
    listed: &BTreeSet<String>,
) -> bool {
    let failed = |v: &Value| v["exit"].as_i64().is_some_and(|e| e != 0);
    let add_refused = observed.0.steps[0].1["exit"] != 0 || observed.1.steps[0].1["exit"] != 0;
    if !step.starts_with("state") && failed(go) && failed(ours) && listed.contains("error-codes") {
        return true;
    }
    // CHECK of a layer-2 bridge or macvlan attachment: Go fails (`no plugin name
    // provided`).
    if step == "CHECK"
        && ["bridge", "cnv-bridge", "macvlan"].contains(&case.plugin)
        && is_layer2(case)
        && failed(go)
        && ours["exit"] == 0
        && listed.contains("l2-check")
    {
        return true;
    }
    // tuning's CHECK of a sysctl key with IFNAME or a MAC written with dashes or
    // dots: Go's fails after its own ADD.
    let ifname_key = case.config.as_object().is_some_and(|c| {
        c.iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case("sysctl"))
            .filter_map(|(_, v)| v.as_object())
            .any(|sysctl| sysctl.keys().any(|k| k.contains("IFNAME")))
    });
    if step == "CHECK"
        && case.plugin == "tuning"
        && (ifname_key || spells_a_mac_otherwise(case))
        && failed(go)
        && ours["exit"] == 0
        && listed.contains("tuning-check")
    {
        return true;
    }
    // Go's first DEL of an attachment that masqueraded several addresses of one
    // family fails: its chain is still referenced (listed).
    if step == "DEL"
        && masquerades_several_of_one_family(case, observed.0)
        && failed(go)
        && ours["exit"] == 0
        && listed.contains("ipmasq-teardown")
    {
        return true;
    }
    // DEL reads only what it needs: it succeeds where Go cannot parse the config,
    // a config whose ADD was refused.
    if step.contains("DEL")
        && add_refused
        && failed(go)
        && ours["exit"] == 0
        && listed.contains("lenient-del")
    {
        return true;
    }
    false
}

/// How many cases ran, and how many of them ADD succeeded in (both agree on that).
#[derive(Debug, Default)]
pub struct Coverage {
    pub cases: u32,
    pub added: u32,
    pub by_plugin: BTreeMap<String, (u32, u32)>,
}

/// Runs `cases` generated cases from `seed` through both implementations; returns
/// their coverage, or the minimal failing case (after shrinking) and why.
pub fn run(cases: u32, seed: u64, ours: &Path, go: &Path) -> Result<Coverage, String> {
    run_strategy(case_strategy(), cases, seed, ours, go)
}

/// [`run`] with the cases of `strategy`.
pub fn run_strategy(
    strategy: BoxedStrategy<Case>,
    cases: u32,
    seed: u64,
    ours: &Path,
    go: &Path,
) -> Result<Coverage, String> {
    let coverage = std::sync::Mutex::new(Coverage::default());
    let listed = listed_differences();
    let (ours, go) = (plugin_dir("ours", ours), plugin_dir("go", go));
    let (ours, go) = (ours.as_path(), go.as_path());
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters: 100,
        ..Config::default()
    };
    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let result = runner.run(&strategy, |case| {
        // The two sandboxes are independent: both run at once.
        let (go_seen, ours_seen) = std::thread::scope(|scope| {
            let go_run = scope.spawn(|| observe(&case, go));
            let ours_seen = observe(&case, ours);
            (go_run.join().expect("the Go run"), ours_seen)
        });
        let verdict = compare(&case, &go_seen, &ours_seen, &listed);
        if verdict.is_ok() {
            let mut c = coverage.lock().unwrap();
            let added = ours_seen.steps[0].1["exit"] == 0;
            c.cases += 1;
            c.added += u32::from(added);
            let entry = c.by_plugin.entry(case.plugin.to_string()).or_default();
            entry.0 += 1;
            entry.1 += u32::from(added);
        }
        verdict.map_err(TestCaseError::fail)
    });
    match result {
        Ok(()) => Ok(coverage.into_inner().unwrap()),
        Err(e) => Err(e.to_string()),
    }
}

/// A directory of symlinks under every name a case runs (`cnv-bridge` included,
/// which Debian does not package: there it is the Go `bridge`, as the OpenShift
/// build is), pointing into `source`.
pub fn plugin_dir(tag: &str, source: &Path) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cni-differential-{}-{tag}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for name in crate::plugin_names() {
        // Debian packages no cnv- names: there they are the plain plugin, as the
        // OpenShift build is.
        let target = match name.strip_prefix("cnv-") {
            Some(base) if !source.join(&name).exists() => source.join(base),
            _ => source.join(&name),
        };
        if target.exists() {
            std::os::unix::fs::symlink(&target, dir.join(&name)).unwrap();
        }
    }
    dir
}
