//! The namespaces one test runs in (see the crate docs), and what it can check there.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::call::sh;
use crate::skip::skip_or_fail;

/// A veth pair with both ends up, in the current netns: a master with a carrier,
/// as macvlan and vlan need one.
/// Mounts a sysfs of the calling thread's netns on /sys, so that /sys/class/net
/// shows this netns's links (after the test's own `unshare` of the netns).
pub fn mount_sysfs() {
    use nix::mount::{mount, MsFlags};
    mount(
        Some("sysfs"),
        "/sys",
        Some("sysfs"),
        MsFlags::empty(),
        None::<&str>,
    )
    .expect("mount sysfs for the sandbox");
}

pub fn veth_pair_up(a: &str, b: &str) {
    sh(&["ip", "link", "add", a, "type", "veth", "peer", "name", b]);
    sh(&["ip", "link", "set", a, "up"]);
    sh(&["ip", "link", "set", b, "up"]);
}

/// Namespaces of one test. See the crate docs.
pub struct Sandbox {
    /// A private scratch directory (tmpfs) for configs and data dirs.
    pub scratch: PathBuf,
    netns_names: std::cell::RefCell<Vec<String>>,
}

impl Sandbox {
    /// Enters fresh namespaces, or returns `None` after a loud skip when not root.
    pub fn new(test: &str) -> Option<Sandbox> {
        if !nix::unistd::geteuid().is_root() {
            skip_or_fail(test, "needs root to create network and mount namespaces");
            return None;
        }
        use nix::mount::{mount, MsFlags};
        use nix::sched::{unshare, CloneFlags};
        unshare(CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWNET)
            .expect("unshare mount and network namespaces");
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .expect("make / private in the test's mount namespace");
        let scratch = PathBuf::from(format!("/tmp/cni-sandbox-{}-{test}", std::process::id()));
        for dir in [
            Path::new("/run/netns"),
            Path::new("/var/lib/cni"),
            scratch.as_path(),
        ] {
            std::fs::create_dir_all(dir).expect("create mount point");
            mount(
                Some("tmpfs"),
                dir,
                Some("tmpfs"),
                MsFlags::empty(),
                Some("mode=755"),
            )
            .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", dir.display()));
        }
        mount_sysfs();
        sh(&["ip", "link", "set", "lo", "up"]);
        Some(Sandbox {
            scratch,
            netns_names: Default::default(),
        })
    }

    /// Creates a named netns (a container) and returns its path.
    pub fn netns(&self, name: &str) -> String {
        sh(&["ip", "netns", "add", name]);
        sh(&["ip", "-n", name, "link", "set", "lo", "up"]);
        self.netns_names.borrow_mut().push(name.to_string());
        format!("/run/netns/{name}")
    }

    /// Link names per namespace ("" is the sandbox's host netns).
    pub fn links(&self) -> BTreeMap<String, Vec<String>> {
        let mut all = BTreeMap::new();
        let mut namespaces = vec![String::new()];
        namespaces.extend(self.netns_names.borrow().iter().cloned());
        for ns in namespaces {
            let mut args = vec!["ip", "-j"];
            if !ns.is_empty() {
                args.extend(["-n", ns.as_str()]);
            }
            args.extend(["link", "show"]);
            let out: Value = serde_json::from_str(&sh(&args)).unwrap_or(Value::Null);
            let mut names: Vec<String> = out
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|l| l["ifname"].as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            names.sort();
            all.insert(ns, names);
        }
        all
    }

    /// Every file under a directory, with its content (for "nothing left behind").
    pub fn files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
        fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if path.components().any(|c| c.as_os_str() == ".index") {
                    // An IPAM index may be rewritten by any call: its presence counts, not its bytes.
                    out.insert(path.clone(), Vec::new());
                } else {
                    out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(dir, &mut out);
        out
    }

    /// Links, files under /var/lib/cni and the scratch dir, and the nft ruleset. A
    /// missing or failing `nft` panics: comparing an empty ruleset with an empty one
    /// would prove nothing.
    pub fn snapshot(&self) -> Snapshot {
        let out = Command::new("nft")
            .args(["list", "ruleset"])
            .output()
            .unwrap_or_else(|e| panic!("the state snapshot needs nft: {e}"));
        assert!(
            out.status.success(),
            "nft list ruleset failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let nft = String::from_utf8_lossy(&out.stdout).into_owned();
        Snapshot {
            links: self.links(),
            cni_files: Sandbox::files(Path::new("/var/lib/cni")),
            scratch_files: Sandbox::files(&self.scratch),
            nft,
        }
    }

    /// An ADD of container `k1` as `net1` in the sandbox's netns `pod`, killed
    /// between making its link (under a temporary name) and naming it, leaves that
    /// link there; the same ADD retried without a DEL between (a runtime that lost
    /// the first) succeeds with only its own link, and its DEL leaves every netns's
    /// links as they were.
    pub fn assert_add_retried_after_a_kill_succeeds(&self, binary: &Path, pod: &str, conf: &Value) {
        use crate::call::{with_prev, Call};
        let netns = format!("/run/netns/{pod}");
        let before = self.links();
        let add = Call::attach("ADD", "k1", &netns, "net1").config(conf);
        assert!(
            add.run_to_failpoint(binary, "link-created"),
            "the ADD stopped after making its link"
        );
        let left = sh(&["ip", "-n", pod, "-br", "link"]);
        assert_eq!(
            left.lines().count(),
            2,
            "the killed ADD left its link: {left}"
        );
        let result = add.run(binary).expect_success();
        assert_eq!(
            self.links()[pod],
            ["lo", "net1"],
            "only the retried ADD's link"
        );
        Call::attach("DEL", "k1", &netns, "net1")
            .config(&with_prev(conf, &result))
            .run(binary)
            .expect_success();
        assert_eq!(self.links(), before);
    }
}

/// The state a failed ADD must leave exactly as it found it.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub links: BTreeMap<String, Vec<String>>,
    pub cni_files: BTreeMap<PathBuf, Vec<u8>>,
    pub scratch_files: BTreeMap<PathBuf, Vec<u8>>,
    pub nft: String,
}

/// Whether `target` answers one ping from `netns` (a namespace the test made).
pub fn ping(netns: &str, target: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", netns, "ping", "-c", "1", "-W", "1", target])
        .output()
        .is_ok_and(|o| o.status.success())
}
