//! The conformance suite: every plugin binary of the workspace, exec'd as a runtime
//! does, against the points of the spec that do not depend on what the plugin does.

use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use testkit::{plugin, tempdir, Call};

const VERSIONS: [&str; 7] = [
    "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
];

/// A plugin under test and a config with which its ADD succeeds.
struct Subject {
    name: &'static str,
    config: fn(version: &str, data_dir: &Path) -> Value,
    /// Its ADD makes interfaces: it runs in a sandbox with a real netns (root).
    needs_netns: bool,
    /// Run once in the sandbox before the checks (a master interface, say).
    prepare: fn(),
    /// A kernel feature its ADD needs; where it is missing, the checks that need a
    /// successful ADD skip this subject loudly and the full-kernel tier runs them.
    kernel: Option<testkit::KernelFeature>,
    /// Whether the checks that need a successful ADD apply. sriov's ADD needs a PF,
    /// VFs and a sysfs tree: its own suite (plugins/sriov/tests) covers those points.
    adds: bool,
}

fn nothing_to_prepare() {}

/// A veth pair whose first end is the master of macvlan and vlan subjects.
fn master_veth() {
    testkit::veth_pair_up("confup0", "confup1");
}

/// One subject per plugin of `plugins/plugins.list`, in its order; a plugin without
/// a subject here fails every conformance test until it gets one.
fn subjects() -> Vec<Subject> {
    let mut table = subject_table();
    testkit::suite_plugins()
        .iter()
        .map(|plugin| {
            let at = table
                .iter()
                .position(|s| s.name == plugin.name())
                .unwrap_or_else(|| {
                    panic!(
                        "plugin {:?} of plugins/plugins.list has no conformance subject",
                        plugin.name()
                    )
                });
            table.remove(at)
        })
        .collect()
}

fn subject_table() -> Vec<Subject> {
    vec![
        Subject {
            name: "static",
            config: |version, _| {
                json!({"cniVersion": version, "name": "conf-net", "type": "static",
                       "ipam": {"type": "static", "addresses": [{"address": "10.9.0.5/24", "gateway": "10.9.0.1"}],
                                "routes": [{"dst": "0.0.0.0/0"}]}})
            },
            needs_netns: false,
            prepare: nothing_to_prepare,
            kernel: None,
            adds: true,
        },
        Subject {
            name: "host-local",
            config: |version, data_dir| {
                json!({"cniVersion": version, "name": "conf-net", "type": "host-local",
                       "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir}})
            },
            needs_netns: false,
            prepare: nothing_to_prepare,
            kernel: None,
            adds: true,
        },
        Subject {
            name: "bridge",
            config: |version, data_dir| {
                json!({"cniVersion": version, "name": "conf-net", "type": "bridge", "bridge": "confbr0",
                       "isGateway": true, "macspoofchk": true,
                       "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir}})
            },
            needs_netns: true,
            prepare: nothing_to_prepare,
            kernel: None,
            adds: true,
        },
        Subject {
            name: "macvlan",
            config: |version, data_dir| {
                json!({"cniVersion": version, "name": "conf-net", "type": "macvlan", "master": "confup0",
                       "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir}})
            },
            needs_netns: true,
            prepare: master_veth,
            kernel: None,
            adds: true,
        },
        Subject {
            name: "vlan",
            config: |version, data_dir| {
                json!({"cniVersion": version, "name": "conf-net", "type": "vlan", "master": "confup0", "vlanId": 42,
                       "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]],
                                "routes": [{"dst": "0.0.0.0/0"}], "dataDir": data_dir}})
            },
            needs_netns: true,
            prepare: master_veth,
            kernel: Some(testkit::KernelFeature::Vlan8021q),
            adds: true,
        },
        Subject {
            name: "tuning",
            config: |version, _| {
                json!({"cniVersion": version, "name": "conf-net", "type": "tuning",
                       "sysctl": {"net.ipv4.conf.IFNAME.arp_filter": "1"}, "mtu": 1400})
            },
            needs_netns: false,
            prepare: nothing_to_prepare,
            kernel: None,
            adds: false,
        },
        Subject {
            name: "sriov",
            config: |version, data_dir| {
                json!({"cniVersion": version, "name": "conf-net", "type": "sriov", "deviceID": "0000:af:06.0",
                       "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.9.0.0/24"}]], "dataDir": data_dir}})
            },
            needs_netns: false,
            prepare: nothing_to_prepare,
            kernel: None,
            adds: false,
        },
    ]
}

/// Where a check runs: the plugin, a scratch dir, and the netns its ADD targets.
struct Ctx {
    bin: PathBuf,
    dir: PathBuf,
    netns: String,
    sandbox: Option<std::rc::Rc<testkit::Sandbox>>,
}

impl Ctx {
    fn add(&self, cid: &str) -> Call {
        Call::attach("ADD", cid, &self.netns, "eth0")
    }

    fn del(&self, cid: &str) -> Call {
        Call::attach("DEL", cid, &self.netns, "eth0")
    }
}

/// The files named by an address: what an IPAM allocation leaves.
fn address_files(dir: &Path) -> Vec<PathBuf> {
    testkit::Sandbox::files(dir)
        .into_keys()
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.parse::<std::net::IpAddr>().is_ok())
        })
        .collect()
}

/// Runs `check` against every subject; one sandbox (created when the first subject
/// needs a netns) serves the whole test. Without root those subjects are skipped.
fn each(test: &str, check: impl FnMut(&Subject, &Ctx)) {
    each_with(test, false, check)
}

/// As `each`, for checks that need a successful ADD: a subject whose kernel feature
/// is missing is skipped loudly (the full-kernel tier runs the test again).
fn each_adding(test: &str, check: impl FnMut(&Subject, &Ctx)) {
    each_with(test, true, check)
}

fn each_with(test: &str, needs_add: bool, mut check: impl FnMut(&Subject, &Ctx)) {
    let mut sandbox: Option<std::rc::Rc<testkit::Sandbox>> = None;
    let mut prepared = std::collections::BTreeSet::new();
    for subject in subjects() {
        if needs_add && !subject.adds {
            continue;
        }
        let (netns, sb) = if subject.needs_netns {
            if sandbox.is_none() {
                match testkit::Sandbox::new(&format!("{test}_{}", subject.name)) {
                    Some(sb) => sandbox = Some(std::rc::Rc::new(sb)),
                    None => continue,
                }
            }
            let sb = sandbox.clone().unwrap();
            if prepared.insert(subject.prepare as usize) {
                (subject.prepare)();
            }
            if let (true, Some(feature)) = (needs_add, subject.kernel) {
                if !testkit::require_kernel(test, feature) {
                    continue;
                }
            }
            (sb.netns(&format!("conf-{}", subject.name)), Some(sb))
        } else {
            ("/run/netns/conformance-none".to_string(), None)
        };
        let dir = tempdir(&format!("{test}-{}", subject.name));
        check(
            &subject,
            &Ctx {
                bin: plugin(subject.name),
                dir: dir.clone(),
                netns,
                sandbox: sb,
            },
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn without_cni_command_prints_an_about_line_and_exits_zero() {
    each(
        "without_cni_command_prints_an_about_line_and_exits_zero",
        |s, ctx| {
            let bin = &ctx.bin;
            let out = Call::default().run(bin);
            assert_eq!(out.code, 0, "{}", s.name);
            assert!(out.stdout.is_empty(), "{}: stdout must stay empty", s.name);
            assert!(
                out.stderr.contains(&format!("CNI {} plugin", s.name)),
                "{}: {}",
                s.name,
                out.stderr
            );
            assert!(
                out.stderr.contains("git "),
                "{}: the about line names the commit",
                s.name
            );
        },
    );
}

#[test]
fn version_answers_with_empty_stdin_and_lists_every_version() {
    each(
        "version_answers_with_empty_stdin_and_lists_every_version",
        |s, ctx| {
            let bin = &ctx.bin;
            let reply = Call::new("VERSION").run(bin).expect_success();
            assert_eq!(reply["supportedVersions"], json!(VERSIONS), "{}", s.name);
            let reply = Call::new("VERSION")
                .stdin(r#"{"cniVersion":"0.4.0"}"#)
                .run(bin)
                .expect_success();
            assert_eq!(reply["cniVersion"], "0.4.0", "{}", s.name);
        },
    );
}

#[test]
fn missing_environment_is_one_code_4_error_naming_every_variable() {
    each(
        "missing_environment_is_one_code_4_error_naming_every_variable",
        |s, ctx| {
            let (bin, dir) = (&ctx.bin, &ctx.dir);
            let conf = (s.config)("1.0.0", dir);
            let msg = Call::new("ADD").config(&conf).run(bin).error(4);
            for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
                assert!(msg.contains(var), "{}: {msg}", s.name);
            }
            let msg = Call::new("DEL").config(&conf).run(bin).error(4);
            assert!(
                msg.contains("CNI_CONTAINERID")
                    && msg.contains("CNI_IFNAME")
                    && !msg.contains("CNI_NETNS"),
                "{}: {msg}",
                s.name
            );
            Call::new("FROB").config(&conf).run(bin).error(4);
        },
    );
}

#[test]
fn container_ids_and_interface_names_are_validated() {
    each(
        "container_ids_and_interface_names_are_validated",
        |s, ctx| {
            let (bin, dir) = (&ctx.bin, &ctx.dir);
            let conf = (s.config)("1.0.0", dir);
            ctx.add("").config(&conf).run(bin).error(3);
            for bad in ["../../etc", "-x", "a/b", "a b"] {
                ctx.add(bad).config(&conf).run(bin).error(4);
            }
            for bad in ["1234567890123456", "a/b", ".", "..", "a:b", "a b"] {
                ctx.add("c1")
                    .env("CNI_IFNAME", bad)
                    .config(&conf)
                    .run(bin)
                    .error(4);
            }
            assert!(
                address_files(dir).is_empty(),
                "{}: a refused ADD allocated {:?}",
                s.name,
                address_files(dir)
            );
        },
    );
}

#[test]
fn stdin_errors_have_the_spec_codes() {
    each("stdin_errors_have_the_spec_codes", |s, ctx| {
        let (bin, dir) = (&ctx.bin, &ctx.dir);
        ctx.add("c1").stdin("{not json").run(bin).error(6);
        ctx.add("c1").stdin("").run(bin).error(6);
        ctx.add("c1")
            .config(&json!({"cniVersion": "1.0.0"}))
            .run(bin)
            .error(7);
        ctx.add("c1")
            .config(&json!({"cniVersion": "1.0.0", "name": "../x"}))
            .run(bin)
            .error(7);
        let mut conf = (s.config)("1.0.0", dir);
        conf["cniVersion"] = json!("0.9.9");
        let out = ctx.add("c1").config(&conf).run(bin);
        out.error(1);
        assert!(
            out.json()["details"].as_str().unwrap().contains("1.1.0"),
            "{}: {}",
            s.name,
            out.stdout
        );
        let mut huge = (s.config)("1.0.0", dir);
        huge["padding"] = json!("x".repeat(4 * 1024 * 1024));
        ctx.add("c1").config(&huge).run(bin).error(7);
    });
}

#[test]
fn verbs_below_their_spec_version_are_code_1() {
    each("verbs_below_their_spec_version_are_code_1", |s, ctx| {
        let (bin, dir) = (&ctx.bin, &ctx.dir);
        let check = Call::attach("CHECK", "c1", "/run/netns/none", "eth0");
        check.config(&(s.config)("0.3.1", dir)).run(bin).error(1);
        let gc = Call::new("GC").env("CNI_PATH", &testkit::bin_dir().display().to_string());
        gc.clone()
            .config(&(s.config)("1.0.0", dir))
            .run(bin)
            .error(1);
        Call::new("STATUS")
            .env("CNI_PATH", &testkit::bin_dir().display().to_string())
            .config(&(s.config)("1.0.0", dir))
            .run(bin)
            .error(1);
        gc.config(&(s.config)("1.1.0", dir))
            .run(bin)
            .expect_success();
        Call::new("STATUS")
            .env("CNI_PATH", &testkit::bin_dir().display().to_string())
            .config(&(s.config)("1.1.0", dir))
            .run(bin)
            .expect_success();
    });
}

#[test]
fn unknown_cni_args_need_ignore_unknown() {
    each_adding("unknown_cni_args_need_ignore_unknown", |s, ctx| {
        let (bin, dir) = (&ctx.bin, &ctx.dir);
        let conf = (s.config)("1.0.0", dir);
        ctx.add("c1")
            .env("CNI_ARGS", "NOSUCHKEY=1")
            .config(&conf)
            .run(bin)
            .error(4);
        ctx.add("c1")
            .env("CNI_ARGS", "bad")
            .config(&conf)
            .run(bin)
            .error(4);
        ctx.add("c2")
            .env("CNI_ARGS", "IgnoreUnknown=1;NOSUCHKEY=1;K8S_POD_NAMESPACE=ns;K8S_POD_NAME=p;K8S_POD_INFRA_CONTAINER_ID=c2")
            .config(&conf)
            .run(bin)
            .expect_success();
    });
}

#[test]
fn the_result_is_in_the_request_version_with_that_version_schema() {
    each_adding(
        "the_result_is_in_the_request_version_with_that_version_schema",
        |s, ctx| {
            let (bin, dir) = (&ctx.bin, &ctx.dir);
            for (n, version) in VERSIONS.iter().enumerate() {
                let cid = format!("schema{n}");
                let conf = (s.config)(version, dir);
                let result = ctx.add(&cid).config(&conf).run(bin).expect_success();
                assert_eq!(result["cniVersion"], *version, "{}", s.name);
                match *version {
                    "0.1.0" | "0.2.0" => {
                        assert!(
                            result["ip4"]["ip"].is_string(),
                            "{} {version}: {result}",
                            s.name
                        );
                        assert!(
                            result.get("ips").is_none(),
                            "{} {version}: {result}",
                            s.name
                        );
                    }
                    "0.3.0" | "0.3.1" | "0.4.0" => {
                        assert_eq!(
                            result["ips"][0]["version"], "4",
                            "{} {version}: {result}",
                            s.name
                        );
                    }
                    _ => {
                        assert!(
                            result["ips"][0].get("version").is_none(),
                            "{} {version}: {result}",
                            s.name
                        );
                        assert!(
                            result["ips"][0]["address"].is_string(),
                            "{} {version}: {result}",
                            s.name
                        );
                    }
                }
                ctx.del(&cid).config(&conf).run(bin).expect_success();
            }
        },
    );
}

#[test]
fn del_succeeds_twice_and_without_a_netns() {
    each_adding("del_succeeds_twice_and_without_a_netns", |s, ctx| {
        let (bin, dir) = (&ctx.bin, &ctx.dir);
        let conf = (s.config)("1.0.0", dir);
        ctx.add("d1").config(&conf).run(bin).expect_success();
        for _ in 0..2 {
            Call::attach("DEL", "d1", "", "eth0")
                .unset("CNI_NETNS")
                .config(&conf)
                .run(bin)
                .expect_success();
        }
        Call::attach("DEL", "never-added", "/run/netns/gone", "eth0")
            .config(&conf)
            .run(bin)
            .expect_success();
        ctx.del("d1").config(&conf).run(bin).expect_success();
    });
}

#[test]
fn a_failed_add_leaves_no_file_behind() {
    each_adding("a_failed_add_leaves_no_file_behind", |s, ctx| {
        let (bin, dir) = (&ctx.bin, &ctx.dir);
        let conf = (s.config)("1.0.0", dir);
        // Warm the store up so that only what the failing ADD does is compared.
        ctx.add("w1").config(&conf).run(bin).expect_success();
        ctx.del("w1").config(&conf).run(bin).expect_success();
        let before = testkit::Sandbox::files(dir);
        let kernel_before = ctx.sandbox.as_ref().map(|sb| sb.snapshot());
        let mut bad = conf.clone();
        bad["ipam"]["addresses"] = json!([{"address": "not-an-address"}]);
        bad["ipam"]["ranges"] = json!([[{"subnet": "10.9.0.0/24"}], [{"subnet": "10.10.0.0/24"}]]);
        bad["runtimeConfig"] = json!({"ips": ["10.99.0.1/24"]}); // in no range: host-local fails after allocating
        let out = ctx.add("f1").config(&bad).run(bin);
        assert_eq!(out.code, 1, "{}: {}", s.name, out.stdout);
        out.json();
        assert_eq!(
            testkit::Sandbox::files(dir),
            before,
            "{}: a failed ADD changed the files",
            s.name
        );
        if let Some(sb) = &ctx.sandbox {
            assert_eq!(
                Some(sb.snapshot()),
                kernel_before,
                "{}: a failed ADD changed links or rules",
                s.name
            );
        }
    });
}
