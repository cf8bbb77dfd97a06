//! The reliability suite: bad input to every plugin, SIGKILL at random points of
//! ADD followed by DEL, and many attachments added and deleted in parallel. Each
//! checks what a node would suffer from: an error without the right code, or state
//! left behind (links, addresses, nftables rules, files).

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use testkit::{plugin, sh, Call, Sandbox, Snapshot};

/// A master for macvlan and vlan, and the netns the attachments go to.
fn prepare(sb: &Sandbox) -> String {
    testkit::veth_pair_up("relup0", "relup1");
    sb.netns("pod")
}

fn base_config(plugin: &str, data_dir: &Path) -> Value {
    let ipam = json!({"type": "host-local", "ranges": [[{"subnet": "10.120.0.0/24"}]], "dataDir": data_dir});
    match plugin {
        "bridge" => {
            json!({"cniVersion": "1.0.0", "name": "rel", "type": "bridge", "bridge": "relbr0", "macspoofchk": true, "ipam": ipam})
        }
        "macvlan" => {
            json!({"cniVersion": "1.0.0", "name": "rel", "type": "macvlan", "master": "relup0", "ipam": ipam})
        }
        "vlan" => {
            json!({"cniVersion": "1.0.0", "name": "rel", "type": "vlan", "master": "relup0", "vlanId": 10, "ipam": ipam})
        }
        "sriov" => {
            json!({"cniVersion": "1.0.0", "name": "rel", "type": "sriov", "deviceID": "0000:af:06.0", "ipam": ipam})
        }
        "host-local" => {
            json!({"cniVersion": "1.0.0", "name": "rel", "type": "bridge", "ipam": ipam})
        }
        "static" => {
            json!({"cniVersion": "1.0.0", "name": "rel", "type": "bridge", "ipam": {"type": "static", "addresses": [{"address": "10.121.0.5/24"}]}})
        }
        "tuning" => {
            json!({"cniVersion": "1.0.0", "name": "rel", "type": "tuning", "mtu": 1400,
                   "prevResult": {"cniVersion": "1.0.0", "interfaces": [{"name": "eth0", "sandbox": "/run/netns/pod"}]}})
        }
        other => panic!("no base config for {other}"),
    }
}

/// Every plugin of `plugins/plugins.list` (a new one needs a `base_config` here).
fn all() -> &'static [&'static str] {
    static ALL: std::sync::OnceLock<Vec<&'static str>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        testkit::suite_plugins()
            .iter()
            .map(|p| &*Box::leak(p.name().to_string().into_boxed_str()))
            .collect()
    })
}

/// The plugins that put an interface into the container (not IPAM).
const INTERFACE_PLUGINS: [&str; 4] = ["bridge", "macvlan", "vlan", "sriov"];

enum Input {
    /// The base config with these keys replaced (Null removes the key).
    Patch(Value),
    /// The IPAM section's keys replaced.
    IpamPatch(Value),
    Raw(Vec<u8>),
}

struct Case {
    what: &'static str,
    plugins: &'static [&'static str],
    env: Vec<(&'static str, Option<String>)>,
    input: Input,
    code: u64,
}

fn case(what: &'static str, plugins: &'static [&'static str], input: Input, code: u64) -> Case {
    Case {
        what,
        plugins,
        env: Vec::new(),
        input,
        code,
    }
}

fn env_case(
    what: &'static str,
    plugins: &'static [&'static str],
    env: Vec<(&'static str, Option<String>)>,
    code: u64,
) -> Case {
    Case {
        what,
        plugins,
        env,
        input: Input::Patch(json!({})),
        code,
    }
}

fn cases() -> Vec<Case> {
    let huge = format!(
        r#"{{"cniVersion":"1.0.0","name":"rel","pad":"{}"}}"#,
        "x".repeat(5 * 1024 * 1024)
    );
    vec![
        case(
            "truncated JSON",
            all(),
            Input::Raw(br#"{"cniVersion":"1.0.0","name":"#.to_vec()),
            6,
        ),
        case("not an object", all(), Input::Raw(b"[1,2,3]".to_vec()), 6),
        case("empty stdin", all(), Input::Raw(Vec::new()), 6),
        case(
            "binary garbage",
            all(),
            Input::Raw(vec![0xff, 0xfe, 0x00, 0x7b]),
            6,
        ),
        case("no name", all(), Input::Patch(json!({"name": null})), 7),
        case(
            "a name that escapes a directory",
            all(),
            Input::Patch(json!({"name": "../../etc"})),
            7,
        ),
        case(
            "an unknown version",
            all(),
            Input::Patch(json!({"cniVersion": "9.9.9"})),
            1,
        ),
        case(
            "a version that is not a string",
            all(),
            Input::Patch(json!({"cniVersion": 1})),
            7,
        ),
        case(
            "a config of five megabytes",
            all(),
            Input::Raw(huge.into_bytes()),
            7,
        ),
        env_case(
            "an unknown command",
            all(),
            vec![("CNI_COMMAND", Some("FROB".into()))],
            4,
        ),
        env_case("no container ID", all(), vec![("CNI_CONTAINERID", None)], 4),
        env_case(
            "an empty container ID",
            all(),
            vec![("CNI_CONTAINERID", Some(String::new()))],
            3,
        ),
        env_case(
            "a container ID that escapes a directory",
            all(),
            vec![("CNI_CONTAINERID", Some("../../etc".into()))],
            4,
        ),
        env_case(
            "an interface name of 16 bytes",
            all(),
            vec![("CNI_IFNAME", Some("abcdefghijklmnop".into()))],
            4,
        ),
        env_case(
            "an interface name with a slash",
            all(),
            vec![("CNI_IFNAME", Some("eth/0".into()))],
            4,
        ),
        env_case("no interface name", all(), vec![("CNI_IFNAME", None)], 4),
        env_case("no netns", all(), vec![("CNI_NETNS", None)], 4),
        env_case(
            "malformed CNI_ARGS",
            all(),
            vec![("CNI_ARGS", Some("a=b=c".into()))],
            4,
        ),
        env_case(
            "an unknown CNI_ARGS key",
            all(),
            vec![("CNI_ARGS", Some("NOPE=1".into()))],
            4,
        ),
        env_case(
            "a netns that is a regular file",
            &INTERFACE_PLUGINS,
            vec![("CNI_NETNS", Some("/etc/hostname".into()))],
            4,
        ),
        env_case(
            "a netns that is a directory",
            &INTERFACE_PLUGINS,
            vec![("CNI_NETNS", Some("/tmp".into()))],
            4,
        ),
        case(
            "an IPAM type with a slash",
            &["bridge", "macvlan", "vlan"],
            Input::IpamPatch(json!({"type": "../../bin/sh"})),
            7,
        ),
        case(
            "an IPAM plugin that is not installed",
            &["bridge", "macvlan", "vlan"],
            Input::IpamPatch(json!({"type": "no-such-ipam"})),
            7,
        ),
        case(
            "bridge: VLAN out of range",
            &["bridge"],
            Input::Patch(json!({"vlan": 5000})),
            7,
        ),
        case(
            "bridge: VLAN of the wrong type",
            &["bridge"],
            Input::Patch(json!({"vlan": "100"})),
            7,
        ),
        case(
            "static: an IPv4 address with an IPv6 gateway",
            &["static"],
            Input::IpamPatch(
                json!({"addresses": [{"address": "10.121.0.5/24", "gateway": "fd00::1"}]}),
            ),
            7,
        ),
        // (bridge reads a negative MTU as Go does: the kernel's default.)
        case(
            "bridge: an MTU that is not a number",
            &["bridge"],
            Input::Patch(json!({"mtu": "big"})),
            7,
        ),
        case(
            "bridge: hairpin with promiscuous mode",
            &["bridge"],
            Input::Patch(json!({"hairpinMode": true, "promiscMode": true})),
            7,
        ),
        case(
            "bridge: trunk minID above maxID",
            &["bridge"],
            Input::Patch(json!({"vlanTrunk": [{"minID": 20, "maxID": 10}]})),
            7,
        ),
        case(
            "bridge: a malformed runtimeConfig MAC",
            &["bridge"],
            Input::Patch(json!({"runtimeConfig": {"mac": "nope"}})),
            7,
        ),
        case(
            "bridge: a bridge name too long",
            &["bridge"],
            Input::Patch(json!({"bridge": "a-bridge-name-too-long"})),
            7,
        ),
        case(
            "bridge: an unknown masquerade backend",
            &["bridge"],
            Input::Patch(json!({"ipMasqBackend": "pf"})),
            7,
        ),
        case(
            "macvlan: unknown mode",
            &["macvlan"],
            Input::Patch(json!({"mode": "bogus"})),
            7,
        ),
        case(
            "macvlan: MTU above the master's",
            &["macvlan"],
            Input::Patch(json!({"mtu": 65000})),
            7,
        ),
        case(
            "macvlan: a master that does not exist",
            &["macvlan"],
            Input::Patch(json!({"master": "nosuch0"})),
            7,
        ),
        case(
            "macvlan: a multicast MAC",
            &["macvlan"],
            Input::Patch(json!({"mac": "01:00:5e:00:00:01"})),
            7,
        ),
        case(
            "vlan: VLAN out of range",
            &["vlan"],
            Input::Patch(json!({"vlanId": 4095})),
            7,
        ),
        case(
            "vlan: no master",
            &["vlan"],
            Input::Patch(json!({"master": null})),
            7,
        ),
        case(
            "vlan: MTU of the wrong type",
            &["vlan"],
            Input::Patch(json!({"mtu": "big"})),
            7,
        ),
        case(
            "sriov: a deviceID that escapes sysfs",
            &["sriov"],
            Input::Patch(json!({"deviceID": "../../../etc"})),
            7,
        ),
        case(
            "sriov: spoofchk neither on nor off",
            &["sriov"],
            Input::Patch(json!({"spoofchk": "yes"})),
            7,
        ),
        case(
            "sriov: QoS out of range",
            &["sriov"],
            Input::Patch(json!({"vlan": 5, "vlanQoS": 9})),
            7,
        ),
        case(
            "sriov: no deviceID",
            &["sriov"],
            Input::Patch(json!({"deviceID": null})),
            7,
        ),
        case(
            "host-local: a subnet that is not one",
            &["host-local"],
            Input::IpamPatch(json!({"ranges": [[{"subnet": "10.0.0.0/33"}]]})),
            7,
        ),
        case(
            "host-local: overlapping range sets",
            &["host-local"],
            Input::IpamPatch(
                json!({"ranges": [[{"subnet": "10.0.0.0/24"}], [{"subnet": "10.0.0.0/16"}]]}),
            ),
            7,
        ),
        case(
            "host-local: no ranges",
            &["host-local"],
            Input::IpamPatch(json!({"ranges": null})),
            7,
        ),
        case(
            "host-local: a start outside the subnet",
            &["host-local"],
            Input::IpamPatch(
                json!({"ranges": [[{"subnet": "10.0.0.0/24", "rangeStart": "10.1.0.1"}]]}),
            ),
            7,
        ),
        case(
            "host-local: ranges of the wrong type",
            &["host-local"],
            Input::IpamPatch(json!({"ranges": "10.0.0.0/24"})),
            7,
        ),
        case(
            "static: an address without a prefix",
            &["static"],
            Input::IpamPatch(json!({"addresses": [{"address": "10.0.0.1"}]})),
            7,
        ),
        case(
            "static: a malformed gateway",
            &["static"],
            Input::IpamPatch(json!({"addresses": [{"address": "10.0.0.1/24", "gateway": "x"}]})),
            7,
        ),
        case(
            "no ipam key",
            &["host-local", "static"],
            Input::Patch(json!({"ipam": null})),
            7,
        ),
    ]
}

fn patch(mut base: Value, with: &Value) -> Value {
    for (k, v) in with.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

#[test]
fn bad_input_gets_one_error_object_with_its_code_and_leaves_nothing() {
    let Some(sb) = Sandbox::new("bad_input") else {
        return;
    };
    let netns = prepare(&sb);
    let empty_sysfs = sb.scratch.join("sys");
    std::fs::create_dir_all(&empty_sysfs).unwrap();
    let mut count = 0;
    let before = sb.snapshot();
    for case in cases() {
        for plugin_name in case.plugins {
            let base = base_config(plugin_name, &sb.scratch);
            let stdin = match &case.input {
                Input::Patch(p) => patch(base, p).to_string().into_bytes(),
                Input::IpamPatch(p) => {
                    let ipam = patch(base["ipam"].clone(), p);
                    patch(base, &json!({"ipam": ipam})).to_string().into_bytes()
                }
                Input::Raw(bytes) => bytes.clone(),
            };
            let mut call = Call::attach("ADD", "badinput", &netns, "eth0")
                .env("SYSFS_ROOT", &empty_sysfs.display().to_string())
                .stdin(stdin);
            for (key, value) in &case.env {
                call = match value {
                    Some(v) => call.env(key, v),
                    None => call.unset(key),
                };
            }
            let out = call.run(&plugin(plugin_name));
            assert_eq!(
                out.code, 1,
                "{plugin_name}: {}: exit status {} (stdout {})",
                case.what, out.code, out.stdout
            );
            let mut values = serde_json::Deserializer::from_str(&out.stdout).into_iter::<Value>();
            let error = values.next().and_then(Result::ok).unwrap_or_else(|| {
                panic!(
                    "{plugin_name}: {}: no error object: {:?}",
                    case.what, out.stdout
                )
            });
            assert!(
                values.next().is_none(),
                "{plugin_name}: {}: more than one value on stdout",
                case.what
            );
            assert_eq!(
                error["code"].as_u64(),
                Some(case.code),
                "{plugin_name}: {}: {error}",
                case.what
            );
            assert!(
                error["msg"].as_str().is_some_and(|m| !m.is_empty()),
                "{plugin_name}: {}: an empty message",
                case.what
            );
            count += 1;
        }
    }
    assert!(count >= 60, "only {count} cases");
    assert_eq!(sb.snapshot(), before, "bad input left something behind");
    eprintln!("{count} bad-input cases across {} plugins", all().len());
}

/// A state to compare before ADD and after the DEL that follows a killed ADD. The
/// round-robin cursor of host-local (`last_reserved_ip.*`) moves with every ADD, as
/// in normal operation; it is not the attachment's state.
fn comparable(snapshot: Snapshot) -> Snapshot {
    let strip = |files: std::collections::BTreeMap<std::path::PathBuf, Vec<u8>>| {
        files
            .into_iter()
            .map(|(p, c)| {
                let cursor = p
                    .file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("last_reserved_ip."));
                (p, if cursor { Vec::new() } else { c })
            })
            .collect()
    };
    Snapshot {
        cni_files: strip(snapshot.cni_files),
        scratch_files: strip(snapshot.scratch_files),
        ..snapshot
    }
}

/// SIGKILL at a random point of ADD (the plugin's whole process group, as when a
/// runtime or a node dies), then DEL: everything is as before the ADD.
#[test]
fn sigkill_at_random_points_of_add_then_del_restores_the_state() {
    let Some(sb) = Sandbox::new("sigkill") else {
        return;
    };
    let netns = prepare(&sb);
    let subjects = ["bridge", "macvlan", "host-local"];
    let mut rng = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    let mut killed_mid_work = 0;
    for subject in subjects {
        let conf = base_config(subject, &sb.scratch);
        let bin = plugin(subject);
        // Warm up: a full ADD and DEL, so that the bridge, the nftables table and the
        // data directory exist (a node has them) and the time of an ADD is known.
        let start = Instant::now();
        Call::attach("ADD", "warm", &netns, "eth0")
            .config(&conf)
            .run(&bin)
            .expect_success();
        let add_time = start.elapsed();
        Call::attach("DEL", "warm", &netns, "eth0")
            .config(&conf)
            .run(&bin)
            .expect_success();
        for trial in 0..67 {
            let before = comparable(sb.snapshot());
            let delay = Duration::from_micros(next() % (add_time.as_micros() as u64 * 12 / 10 + 1));
            let cid = format!("kill{trial}");
            let still_running = Call::attach("ADD", &cid, &netns, "eth0")
                .config(&conf)
                .run_killed(&bin, delay);
            if still_running {
                killed_mid_work += 1;
            }
            Call::attach("DEL", &cid, &netns, "eth0")
                .config(&conf)
                .run(&bin)
                .expect_success();
            assert_eq!(
                comparable(sb.snapshot()),
                before,
                "{subject}: trial {trial}, killed after {delay:?}"
            );
        }
    }
    eprintln!("201 trials, {killed_mid_work} killed mid-ADD");
    assert!(
        killed_mid_work > 50,
        "too few trials hit a running ADD ({killed_mid_work})"
    );
}

/// 500 attachments on one bridge with host-local and macspoofchk, added and deleted
/// by 16 workers at once: no error, no address twice, nothing left.
#[test]
fn five_hundred_attachments_added_and_deleted_sixteen_at_a_time() {
    let Some(sb) = Sandbox::new("concurrency") else {
        return;
    };
    let mut conf = base_config("bridge", &sb.scratch);
    conf["ipam"]["ranges"] = json!([[{"subnet": "10.122.0.0/22"}]]);
    let namespaces: Vec<String> = (0..16).map(|w| sb.netns(&format!("w{w}"))).collect();
    // The bridge, the nftables table and the data directory exist on a node.
    Call::attach("ADD", "warm", &namespaces[0], "eth0")
        .config(&conf)
        .run(&plugin("bridge"))
        .expect_success();
    Call::attach("DEL", "warm", &namespaces[0], "eth0")
        .config(&conf)
        .run(&plugin("bridge"))
        .expect_success();
    let before = comparable(sb.snapshot());
    let run = |command: &'static str| {
        let handles: Vec<_> = namespaces
            .iter()
            .enumerate()
            .map(|(w, ns)| {
                let (conf, ns) = (conf.clone(), ns.clone());
                std::thread::spawn(move || {
                    let mut addresses = Vec::new();
                    for n in (w..500).step_by(16) {
                        let ifname = format!("e{n}");
                        let out = Call::attach(command, &format!("c{n}"), &ns, &ifname)
                            .config(&conf)
                            .run(&plugin("bridge"));
                        let result = out.expect_success();
                        if command == "ADD" {
                            addresses
                                .push(result["ips"][0]["address"].as_str().unwrap().to_string());
                        }
                    }
                    addresses
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect::<Vec<String>>()
    };
    let addresses = run("ADD");
    let distinct: BTreeSet<&String> = addresses.iter().collect();
    assert_eq!(addresses.len(), 500);
    assert_eq!(distinct.len(), 500, "an address was handed out twice");
    assert_eq!(
        sh(&["nft", "list", "ruleset"])
            .matches("jump cni-br-iface-c")
            .count(),
        1000
    );
    run("DEL");
    assert_eq!(
        comparable(sb.snapshot()),
        before,
        "something was left after the last DEL"
    );
}
#[path = "reliability/check_state.rs"]
mod check_state;
#[path = "reliability/full_store.rs"]
mod full_store;
#[path = "reliability/races.rs"]
mod races;
#[path = "reliability/security.rs"]
mod security;
