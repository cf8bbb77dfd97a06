//! The ownership harness: random node state that a plugin could mistake for its own
//! is planted, then random sequences of ADD, CHECK, DEL and GC run over several
//! attachments and networks, some two at a time, some ADDs killed with SIGKILL.
//!
//! Invariants, checked after every step and at the end of each case:
//! - nothing planted is removed or changed (links with their index, kind, alias,
//!   controller and addresses; nftables rules of the admin and of Go's attachments;
//!   files of other containers);
//! - no verb fails because another verb got there first (DEL and GC always succeed);
//! - CHECK succeeds for every live attachment and fails for one whose interface was
//!   taken away;
//! - after the final DELs the node equals its starting state.
//!
//! Two runs: the networks this machine's kernel can carry, and on the full-kernel
//! tier the ones that need 802.1Q, bridge VLAN filtering and netdevsim (the vlan
//! plugin, a bridge VLAN with its gateway interface, sriov).
//!
//! `OWNERSHIP_CASES` (`OWNERSHIP_KERNEL_CASES` for the second run) and
//! `OWNERSHIP_SEED` set the number of cases and the seed (`scripts/ownership.sh`
//! runs long ones); proptest shrinks a failing sequence.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::{json, Value};
use testkit::{
    fake_vfs, go_plugin, kernel_feature_missing, plugin, require_kernel, sh, Call, KernelFeature,
    Netdevsim, Sandbox,
};

const PODS: usize = 3;

/// bridge under the name `cnv-bridge` (a link in the sandbox, as a package installs it).
static CNV_BRIDGE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The networks of the harness: each a config kind with its own interface name, so
/// that attachments of one pod never collide by name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Net {
    /// bridge on `obr0`, macspoofchk, nftables masquerade, host-local.
    Spoof,
    /// cnv-bridge on `obr0`, macspoofchk and ipspoofchk, iptables masquerade, host-local.
    CnvSpoof,
    /// bridge on `obr2` as gateway, host-local.
    Gateway,
    /// bridge on `obr2`, static addresses.
    Static,
    /// macvlan on the uplink `oup0`, host-local.
    Macvlan,
    /// bridge on `obr0`, VLAN 77 with a gateway: ADD fails where the kernel has no
    /// VLAN filtering, and its DEL must still leave the planted `obr0.77` alone.
    Vlan,
    /// bridge on `obr1`, which a case may plant as a veth: ADD fails then.
    NotABridge,
    /// tuning of the pod's own `tun0` (MTU, MAC, a sysctl).
    Tuning,
    /// vlan on the uplink `oup0`, VLAN 100 + pod (one link per VLAN ID and master),
    /// host-local. Full-kernel tier.
    VlanLink,
    /// sriov of VF `pod` of the netdevsim PF `pf0`, static addresses. Full-kernel tier.
    Sriov,
}

/// The networks of the run on this machine's kernel.
const HOST_NETS: &[Net] = &[
    Net::Spoof,
    Net::CnvSpoof,
    Net::Gateway,
    Net::Static,
    Net::Macvlan,
    Net::Vlan,
    Net::NotABridge,
    Net::Tuning,
];

/// The networks of the full-kernel run: the bridge VLAN (whose ADD succeeds there),
/// the vlan plugin and sriov, beside one bridge network with masquerade and
/// macspoofchk that Go's attachments share.
const KERNEL_NETS: &[Net] = &[Net::Spoof, Net::Vlan, Net::VlanLink, Net::Sriov];

/// The netdevsim PF, its PCI address in the fake sysfs tree, and the VF the admin
/// set up for itself (no pod's).
const PF: &str = "pf0";
const PF_PCI: &str = "0000:af:00.0";
const ADMIN_VF: usize = 3;

fn vf_pci(vf: usize) -> String {
    format!("0000:af:06.{vf}")
}

impl Net {
    fn name(self) -> String {
        format!("own-{self:?}").to_lowercase()
    }

    fn ifname(self) -> &'static str {
        match self {
            Net::Spoof => "eth1",
            Net::CnvSpoof => "eth2",
            Net::Gateway => "eth3",
            Net::Static => "eth4",
            Net::Macvlan => "eth5",
            Net::Vlan => "eth6",
            Net::NotABridge => "eth7",
            Net::Tuning => "tun0",
            Net::VlanLink => "eth8",
            Net::Sriov => "net1",
        }
    }

    fn binary(self) -> PathBuf {
        if self == Net::CnvSpoof {
            return CNV_BRIDGE.get().expect("cnv-bridge linked").clone();
        }
        plugin(match self {
            Net::Macvlan => "macvlan",
            Net::Tuning => "tuning",
            Net::VlanLink => "vlan",
            Net::Sriov => "sriov",
            _ => "bridge",
        })
    }

    fn host_local(self, scratch: &Path, subnet: &str) -> Value {
        json!({"type": "host-local", "ranges": [[{"subnet": subnet}]],
               "dataDir": scratch.join("ipam")})
    }

    /// The config of this network for the attachment of pod `pod`.
    fn config(self, scratch: &Path, pod: usize) -> Value {
        let name = self.name();
        let mut conf = match self {
            Net::Spoof => json!({"type": "bridge", "bridge": "obr0", "macspoofchk": true,
                "ipMasq": true, "ipMasqBackend": "nftables",
                "ipam": self.host_local(scratch, "10.70.0.0/24")}),
            Net::CnvSpoof => json!({"type": "cnv-bridge", "bridge": "obr0", "macspoofchk": true,
                "ipspoofchk": true, "ipMasq": true, "ipMasqBackend": "iptables",
                "ipam": self.host_local(scratch, "10.71.0.0/24")}),
            Net::Gateway => json!({"type": "bridge", "bridge": "obr2", "isGateway": true,
                "ipam": self.host_local(scratch, "10.72.0.0/24")}),
            Net::Static => json!({"type": "bridge", "bridge": "obr2",
                "ipam": {"type": "static", "addresses": [{"address": format!("10.74.0.{}/24", 10 + pod)}]}}),
            Net::Macvlan => json!({"type": "macvlan", "master": "oup0",
                "ipam": self.host_local(scratch, "10.73.0.0/24")}),
            Net::Vlan => json!({"type": "bridge", "bridge": "obr0", "vlan": 77, "isGateway": true,
                "ipam": self.host_local(scratch, "10.75.0.0/24")}),
            Net::NotABridge => json!({"type": "bridge", "bridge": "obr1",
                "ipam": self.host_local(scratch, "10.76.0.0/24")}),
            Net::Tuning => {
                json!({"type": "tuning", "mtu": 1300, "mac": format!("02:00:00:00:0a:{pod:02x}"),
                "sysctl": {"net.ipv4.conf.tun0.arp_notify": "1"},
                "dataDir": scratch.join("tuning")})
            }
            Net::VlanLink => json!({"type": "vlan", "master": "oup0", "vlanId": 100 + pod,
                "ipam": self.host_local(scratch, "10.77.0.0/24")}),
            Net::Sriov => json!({"type": "sriov", "deviceID": vf_pci(pod),
                "vlan": 55 + pod, "trust": "on", "spoofchk": "off",
                "mac": format!("02:00:00:00:5f:{pod:02x}"),
                "ipam": {"type": "static", "addresses": [{"address": format!("10.78.0.{}/24", 10 + pod)}]}}),
        };
        conf["cniVersion"] = json!("1.1.0");
        conf["name"] = json!(name);
        conf
    }
}

/// One attachment of the harness: a network and a pod (its container ID is `c<pod>`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Att {
    net: Net,
    pod: usize,
}

impl Att {
    fn container_id(self) -> String {
        format!("c{}", self.pod)
    }
}

#[derive(Clone, Debug)]
enum Op {
    Add(Att),
    Check(Att),
    Del(Att),
    Gc(Net),
    /// ADD killed with SIGKILL after this many microseconds; DEL follows if `then_del`
    /// (a runtime that lived), else the attachment is left for GC.
    KilledAdd(Att, u64, bool),
    /// The pod's interface of the attachment is taken away (tuning: its MTU reset;
    /// sriov: its VF's VLAN changed).
    Tamper(Att),
    /// A DEL in the attachment's pod, with its network's config, of a container ID
    /// never added (a runtime's DEL of a sandbox that never got this far): under
    /// the attachment's interface name if `same_ifname`, else another. It must
    /// succeed and change nothing.
    StrayDel(Att, bool),
    /// Two steps at the same moment.
    Pair(Box<Op>, Box<Op>),
}

/// What a case plants before it starts.
#[derive(Clone, Debug)]
struct Plant {
    /// A veth named `obr0.77` holding an address: the admin's interface on VLAN 77.
    vlan_lookalike: bool,
    /// A veth named `obr1`, where one network expects a bridge.
    not_a_bridge: bool,
    /// A veth `vplant0` on `obr0` with a rule of the admin in PREROUTING for it.
    admin_port: bool,
    /// A link carrying the VLAN gateway mark of another VLAN (78) of `obr0`.
    foreign_mark: bool,
    /// Attachments made by Debian's Go bridge: one of network `own-spoof` (listed as
    /// valid to GC) and one of another network on the same bridge.
    go_attachments: bool,
    /// host-local files of a container the runtime lists as valid, and tuning state
    /// files of another container.
    foreign_files: bool,
    /// The admin's VLAN 101 link `oup0.101` holding an address: the vlan plugin's
    /// ADD of pod 1 (VLAN 101 too) must fail, and nothing may remove it.
    /// Full-kernel run only.
    admin_vlan: bool,
    /// VF 3 of the PF, set up by the admin (VLAN, trust, MAC) and no pod's.
    /// Full-kernel run only.
    admin_vf: bool,
}

fn att_strategy(nets: &'static [Net]) -> impl Strategy<Value = Att> {
    (0..nets.len(), 0..PODS).prop_map(move |(n, pod)| Att { net: nets[n], pod })
}

fn single_op(nets: &'static [Net]) -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => att_strategy(nets).prop_map(Op::Add),
        2 => att_strategy(nets).prop_map(Op::Check),
        3 => att_strategy(nets).prop_map(Op::Del),
        2 => (0..nets.len()).prop_map(move |n| Op::Gc(nets[n])),
        1 => (att_strategy(nets), 0..40_000u64, any::<bool>()).prop_map(|(a, d, del)| Op::KilledAdd(a, d, del)),
        1 => att_strategy(nets).prop_map(Op::Tamper),
        1 => (att_strategy(nets), any::<bool>()).prop_map(|(a, same)| Op::StrayDel(a, same)),
    ]
}

fn op_strategy(nets: &'static [Net]) -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => single_op(nets),
        2 => (single_op(nets), single_op(nets)).prop_map(|(a, b)| Op::Pair(Box::new(a), Box::new(b))),
    ]
}

/// What a case plants; the admin's VLAN link and VF only where the kernel has them.
fn plant_strategy(full_kernel: bool) -> impl Strategy<Value = Plant> {
    any::<[bool; 8]>().prop_map(move |b| Plant {
        vlan_lookalike: b[0],
        not_a_bridge: b[1],
        admin_port: b[2],
        foreign_mark: b[3],
        go_attachments: b[4],
        foreign_files: b[5],
        admin_vlan: full_kernel && b[6],
        admin_vf: full_kernel && b[7],
    })
}

/// What the harness believes of an attachment.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Status {
    /// ADD succeeded: its result, the prevResult of CHECK and DEL.
    Live(Value),
    /// Live, but its interface was taken away: CHECK must fail.
    Tampered(Value),
    /// An ADD was killed and no DEL followed.
    Limbo,
}

/// One link of the node as the invariants see it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct LinkState {
    name: String,
    index: u64,
    kind: String,
    alias: String,
    controller: String,
    addresses: BTreeSet<String>,
}

/// The node (and the pods' links) as the invariants compare them.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NodeState {
    links: BTreeMap<String, LinkState>,
    pod_links: BTreeMap<String, Vec<String>>,
    nft: Vec<String>,
    iptables: Vec<String>,
    files: BTreeMap<PathBuf, Vec<u8>>,
    /// The `vf N` lines of the PF, when there is one.
    vfs: Vec<String>,
}

fn links(netns: Option<&str>) -> Vec<Value> {
    let mut args = vec!["ip", "-j", "-d"];
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["addr", "show"]);
    serde_json::from_str::<Value>(&sh(&args))
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_default()
}

fn link_state(link: &Value) -> LinkState {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    LinkState {
        name: text(&link["ifname"]),
        index: link["ifindex"].as_u64().unwrap_or_default(),
        kind: text(&link["linkinfo"]["info_kind"]),
        alias: text(&link["ifalias"]),
        controller: text(&link["master"]),
        addresses: link["addr_info"]
            .as_array()
            .map(|a| {
                a.iter()
                    // The kernel's own link-local addresses come and go with the link.
                    .filter(|a| a["scope"] != "link")
                    .map(|a| format!("{}/{}", text(&a["local"]), a["prefixlen"]))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

/// Every regular file under `dir` with its content; host-local's round-robin cursor
/// and index move with every ADD as in normal operation, so only their presence counts.
fn files(dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        // Not followed: the fake sysfs tree of the sriov network links in cycles.
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_symlink() {
            continue;
        } else if kind.is_dir() {
            if name != ".index" {
                files(&path, out);
            }
        } else if name == "lock" || name.ends_with(".lock") {
            // host-local makes a network's directory and lock on any call, DEL too
            // (as Go's does), and sriov a lock file per VF it touches: scaffolding,
            // not an attachment's state.
        } else if name.starts_with("last_reserved_ip.") {
            out.insert(path, Vec::new());
        } else {
            out.insert(path.clone(), std::fs::read(&path).unwrap_or_default());
        }
    }
}

/// The `vf N` lines of `ip link show pf0`; none without the PF.
fn vf_lines() -> Vec<String> {
    let out = Command::new("ip")
        .args(["link", "show", PF])
        .output()
        .expect("ip runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("vf "))
        .map(str::to_owned)
        .collect()
}

fn node_state(scratch: &Path) -> NodeState {
    let nft = sh(&["nft", "list", "ruleset"]);
    let iptables = sh(&["iptables-save", "-t", "nat"]);
    let mut state_files = BTreeMap::new();
    files(scratch, &mut state_files);
    // sriov's cache and allocation records (the sandbox's own /var/lib/cni).
    files(Path::new("/var/lib/cni"), &mut state_files);
    NodeState {
        links: links(None)
            .iter()
            .map(link_state)
            .map(|mut l| {
                // A VF netdev goes to a pod and back: where its index is taken in
                // the pod, the kernel gives it another, which it keeps.
                if l.name.starts_with("vfnet") {
                    l.index = 0;
                }
                (l.name.clone(), l)
            })
            .collect(),
        pod_links: (0..PODS)
            .map(|p| {
                let mut names: Vec<String> = links(Some(&format!("opod{p}")))
                    .iter()
                    .map(|l| format!("{} mtu {} {}", l["ifname"], l["mtu"], l["address"]))
                    .collect();
                names.sort();
                (format!("opod{p}"), names)
            })
            .collect(),
        // Counters count traffic, which is not state a verb keeps or changes.
        nft: nft
            .lines()
            .map(|l| match l.find("counter packets ") {
                Some(at) => l[..at].to_string(),
                None => l.to_string(),
            })
            .collect(),
        iptables: iptables
            .lines()
            .filter(|l| !l.starts_with('#') && !l.starts_with(':'))
            .map(str::to_owned)
            .collect(),
        files: state_files,
        vfs: vf_lines(),
    }
}

/// One case's node: a fresh network namespace for the node, the same pods.
struct Harness {
    scratch: PathBuf,
    nets: &'static [Net],
    plant: Plant,
    go_bridge: Option<PathBuf>,
    vlan_filtering: bool,
    model: BTreeMap<Att, Status>,
    touched: BTreeSet<Att>,
    planted_links: Vec<LinkState>,
    planted_rules: Vec<String>,
    planted_files: BTreeMap<PathBuf, Vec<u8>>,
    /// The admin's VF line, which no step may change.
    planted_vf: Option<String>,
    /// The PF of the sriov network, deleted with the case.
    nsim: Option<Netdevsim>,
    log: Vec<String>,
}

fn fresh_node_netns() {
    use nix::mount::{umount2, MntFlags};
    use nix::sched::{unshare, CloneFlags};
    unshare(CloneFlags::CLONE_NEWNET).expect("a fresh node netns");
    umount2("/sys", MntFlags::MNT_DETACH).expect("unmount the old netns's sysfs");
    testkit::mount_sysfs();
    sh(&["ip", "link", "set", "lo", "up"]);
}

/// `OWNERSHIP_VERBOSE`: every case's outcome and every step on stderr.
fn verbose() -> bool {
    std::env::var_os("OWNERSHIP_VERBOSE").is_some()
}

fn fail(message: String) -> TestCaseError {
    TestCaseError::fail(message)
}

impl Harness {
    fn new(
        sb: &Sandbox,
        nets: &'static [Net],
        plant: Plant,
        go_bridge: Option<PathBuf>,
    ) -> Harness {
        fresh_node_netns();
        let scratch = sb.scratch.join("case");
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(&scratch).unwrap();
        // sriov's records of a failed case before this one (its PF is gone).
        let _ = std::fs::remove_dir_all("/var/lib/cni/sriov");
        let vlan_filtering = KernelFeature::BridgeVlanFiltering.is_present();
        Harness::unplanted(scratch, nets, plant, go_bridge, vlan_filtering)
    }

    /// A harness with an empty model and nothing planted yet.
    fn unplanted(
        scratch: PathBuf,
        nets: &'static [Net],
        plant: Plant,
        go_bridge: Option<PathBuf>,
        vlan_filtering: bool,
    ) -> Harness {
        Harness {
            scratch,
            nets,
            plant,
            go_bridge,
            vlan_filtering,
            model: BTreeMap::new(),
            touched: BTreeSet::new(),
            planted_links: Vec::new(),
            planted_rules: Vec::new(),
            planted_files: BTreeMap::new(),
            planted_vf: None,
            nsim: None,
            log: Vec::new(),
        }
    }

    /// A harness for one side of a pair: this one's node and model, nothing planted
    /// to check (the pair's caller checks it) and no steps logged yet.
    fn fork(&self) -> Harness {
        Harness {
            model: self.model.clone(),
            ..Harness::unplanted(
                self.scratch.clone(),
                self.nets,
                self.plant.clone(),
                self.go_bridge.clone(),
                self.vlan_filtering,
            )
        }
    }

    fn sysfs(&self) -> PathBuf {
        self.scratch.join("sys")
    }

    fn pod(pod: usize) -> String {
        format!("/run/netns/opod{pod}")
    }

    fn call(&self, command: &str, att: Att) -> Call {
        let mut conf = att.net.config(&self.scratch, att.pod);
        let prev = match self.model.get(&att) {
            Some(Status::Live(result) | Status::Tampered(result)) => Some(result.clone()),
            _ => None,
        };
        if att.net == Net::Tuning {
            // tuning works on an interface an earlier plugin made: the pod's own tun0.
            conf["prevResult"] = prev.unwrap_or_else(|| {
                json!({"cniVersion": "1.1.0",
                       "interfaces": [{"name": "tun0", "sandbox": Self::pod(att.pod)}]})
            });
        } else if let Some(prev) = prev {
            conf["prevResult"] = prev;
        }
        Call::attach(
            command,
            &att.container_id(),
            &Self::pod(att.pod),
            att.net.ifname(),
        )
        .env("SYSFS_ROOT", &self.sysfs().display().to_string())
        .config(&conf)
    }

    /// The attachments GC is told are valid: the live ones of the network, and the
    /// planted ones of another runtime.
    fn gc_call(&self, net: Net) -> Call {
        let mut valid: Vec<Value> = self
            .model
            .iter()
            .filter(|(att, status)| att.net == net && !matches!(status, Status::Limbo))
            .map(|(att, _)| json!({"containerID": att.container_id(), "ifname": net.ifname()}))
            .collect();
        if self.plant.go_attachments && net == Net::Spoof {
            valid.push(json!({"containerID": "gocid", "ifname": "eth1"}));
        }
        if self.plant.foreign_files {
            valid.push(json!({"containerID": "foreign", "ifname": net.ifname()}));
        }
        let mut conf = net.config(&self.scratch, 0);
        conf["cni.dev/valid-attachments"] = Value::Array(valid);
        Call::new("GC")
            .env("CNI_PATH", &testkit::bin_dir().display().to_string())
            .env("SYSFS_ROOT", &self.sysfs().display().to_string())
            .config(&conf)
    }

    /// The links, rules and files every case starts with: the uplink, and each
    /// network's bridge and nftables scaffolding, made by a first ADD and DEL as on
    /// a node that has run pods before.
    fn prepare(&mut self) -> Result<(), TestCaseError> {
        testkit::veth_pair_up("oup0", "oup1");
        // What an earlier case left in a pod goes with its node netns, but the
        // kernel destroys that asynchronously: start from empty pods.
        for ns in (0..PODS)
            .map(|p| format!("opod{p}"))
            .chain(["ogo".to_string()])
        {
            for link in links(Some(&ns)).iter().map(link_state) {
                if link.name != "lo" {
                    let _ = Command::new("ip")
                        .args(["-n", &ns, "link", "del", &link.name])
                        .output();
                }
            }
        }
        for pod in 0..PODS {
            let ns = format!("opod{pod}");
            // tuning's subject.
            sh(&[
                "ip", "-n", &ns, "link", "add", "tun0", "type", "veth", "peer", "name", "tunp0",
            ]);
            sh(&["ip", "-n", &ns, "link", "set", "tun0", "up"]);
        }
        if self.plant.not_a_bridge {
            testkit::veth_pair_up("obr1", "obr1p");
            self.planted_link("obr1");
        }
        if self.plant.vlan_lookalike {
            testkit::veth_pair_up("obr0.77", "obr0p77");
            sh(&["ip", "addr", "add", "192.0.2.77/24", "dev", "obr0.77"]);
            self.planted_link("obr0.77");
        }
        if self.nets.contains(&Net::Sriov) {
            if verbose() {
                eprintln!("ownership: the PF");
            }
            self.prepare_pf();
        }
        if self.plant.admin_vlan {
            sh(&[
                "ip", "link", "add", "link", "oup0", "name", "oup0.101", "type", "vlan", "id",
                "101",
            ]);
            sh(&["ip", "addr", "add", "192.0.2.101/24", "dev", "oup0.101"]);
            sh(&["ip", "link", "set", "oup0.101", "up"]);
            self.planted_link("oup0.101");
        }
        let mut warm_nets = vec![
            Net::Spoof,
            Net::CnvSpoof,
            Net::Gateway,
            Net::Static,
            Net::Macvlan,
            Net::VlanLink,
            Net::Sriov,
        ];
        if !self.plant.not_a_bridge {
            warm_nets.push(Net::NotABridge);
        }
        if self.vlan_filtering {
            warm_nets.push(Net::Vlan);
        }
        warm_nets.retain(|net| self.nets.contains(net));
        for net in warm_nets {
            if verbose() {
                eprintln!("ownership: warm-up of {net:?}");
            }
            let warm = Att { net, pod: 0 };
            let result = self.call("ADD", warm).run(&net.binary());
            if result.code == 0 {
                self.model.insert(warm, Status::Live(result.json()));
            } else if self.add_must_succeed(warm) == Some(true) {
                return Err(fail(format!("warm-up ADD of {net:?}: {}", result.stdout)));
            }
            self.expect_success("DEL", warm)?;
            self.model.remove(&warm);
        }
        if self.plant.foreign_mark {
            testkit::veth_pair_up("omark0", "omark1");
            let mark = libcni::attach::vlan_gateway_mark("obr0", 78);
            sh(&["ip", "link", "set", "omark0", "alias", &mark]);
            self.planted_link("omark0");
        }
        if self.plant.admin_port {
            testkit::veth_pair_up("vplant0", "vplant1");
            sh(&["ip", "link", "set", "vplant0", "master", "obr0"]);
            sh(&[
                "nft",
                "add rule bridge nat PREROUTING iifname vplant0 comment admin",
            ]);
            self.planted_link("vplant0");
            self.planted_rules.push("comment \"admin\"".into());
        }
        if self.plant.go_attachments {
            self.plant_go_attachments()?;
        }
        if self.plant.foreign_files {
            self.plant_files();
        }
        Ok(())
    }

    /// A netdevsim PF with 4 VFs, their netdevs (veth stand-ins `vfnet0..3`) named
    /// by a fake sysfs tree, and with `admin_vf` the admin's settings on VF 3.
    fn prepare_pf(&mut self) {
        let nsim = Netdevsim::new("ownership", PF, 4).expect("netdevsim, probed before");
        let vfs: Vec<(String, String)> = (0..4).map(|n| (vf_pci(n), format!("vfnet{n}"))).collect();
        fake_vfs(&self.sysfs(), PF_PCI, &nsim.pf, &vfs);
        for (n, (_, name)) in vfs.iter().enumerate() {
            let mac = format!("02:00:00:00:0a:0{n}");
            sh(&["ip", "link", "set", name, "address", &mac]);
        }
        self.nsim = Some(nsim);
        if self.plant.admin_vf {
            let vf = ADMIN_VF.to_string();
            sh(&[
                "ip",
                "link",
                "set",
                PF,
                "vf",
                &vf,
                "vlan",
                "33",
                "trust",
                "on",
                "mac",
                "02:00:00:00:33:33",
            ]);
            self.planted_vf = vf_lines()
                .into_iter()
                .find(|l| l.starts_with(&format!("vf {vf} ")));
            assert!(self.planted_vf.is_some(), "the PF lists VF {vf}");
        }
    }

    fn planted_link(&mut self, name: &str) {
        let link = links(None)
            .iter()
            .map(link_state)
            .find(|l| l.name == name)
            .unwrap_or_else(|| panic!("planted link {name} is there"));
        self.planted_links.push(link);
    }

    /// Go's bridge adds one attachment of `own-spoof` and one of another network on
    /// the same bridge, each with macspoofchk and masquerade.
    fn plant_go_attachments(&mut self) -> Result<(), TestCaseError> {
        let Some(go) = self.go_bridge.clone() else {
            return Ok(());
        };
        for (network, ifname) in [("own-spoof", "eth1"), ("other-net", "eth9")] {
            let mut conf = Net::Spoof.config(&self.scratch, 0);
            conf["name"] = json!(network);
            conf["cniVersion"] = json!("1.0.0");
            let out = Call::attach("ADD", "gocid", "/run/netns/ogo", ifname)
                .config(&conf)
                .run(&go);
            if out.code != 0 {
                return Err(fail(format!("Go's ADD of {network}: {}", out.stdout)));
            }
            self.planted_rules
                .push(format!("comment \"macspoofchk-gocid-{ifname}\""));
        }
        let go_veths: Vec<String> = links(None)
            .iter()
            .map(link_state)
            .filter(|l| l.controller == "obr0" && l.name.starts_with("veth"))
            .map(|l| l.name)
            .collect();
        for name in go_veths {
            self.planted_link(&name);
        }
        Ok(())
    }

    fn plant_files(&mut self) {
        for (net, subnet) in [(Net::Spoof, "10.70.0"), (Net::Macvlan, "10.73.0")] {
            let dir = self.scratch.join("ipam").join(net.name());
            std::fs::create_dir_all(&dir).unwrap();
            let path = dir.join(format!("{subnet}.200"));
            let content = format!("foreign\r\n{}", net.ifname()).into_bytes();
            std::fs::write(&path, &content).unwrap();
            self.planted_files.insert(path, content);
        }
        let tuning = self.scratch.join("tuning");
        std::fs::create_dir_all(&tuning).unwrap();
        let path = tuning.join("foreign_tun0.json");
        let content = b"{\n \"mtu\": 1500\n}".to_vec();
        std::fs::write(&path, &content).unwrap();
        self.planted_files.insert(path, content);
    }

    /// Nothing planted is removed or changed.
    fn planted_intact(&self, step: &str) -> Result<(), TestCaseError> {
        let now: BTreeMap<String, LinkState> = links(None)
            .iter()
            .map(link_state)
            .map(|l| (l.name.clone(), l))
            .collect();
        for planted in &self.planted_links {
            if now.get(&planted.name) != Some(planted) {
                return Err(fail(format!(
                    "after {step}: planted link {planted:?} is now {:?}",
                    now.get(&planted.name)
                )));
            }
        }
        let ruleset = sh(&["nft", "list", "ruleset"]);
        for rule in &self.planted_rules {
            if !ruleset.contains(rule.as_str()) {
                return Err(fail(format!(
                    "after {step}: the planted rule {rule} is gone"
                )));
            }
        }
        for (path, content) in &self.planted_files {
            if std::fs::read(path).ok().as_ref() != Some(content) {
                return Err(fail(format!(
                    "after {step}: planted file {} changed or is gone",
                    path.display()
                )));
            }
        }
        if let Some(planted) = &self.planted_vf {
            if !vf_lines().contains(planted) {
                return Err(fail(format!(
                    "after {step}: the admin's VF {planted:?} changed: {:?}",
                    vf_lines()
                )));
            }
        }
        Ok(())
    }

    fn expect_success(&self, command: &str, att: Att) -> Result<Value, TestCaseError> {
        let out = self.call(command, att).run(&att.net.binary());
        if out.code != 0 {
            return Err(fail(format!(
                "{command} {att:?} failed: {} {}",
                out.stdout, out.stderr
            )));
        }
        Ok(if command == "ADD" {
            out.json()
        } else {
            Value::Null
        })
    }

    /// Whether ADD of this attachment must succeed on this node (`None`: either).
    fn add_must_succeed(&self, att: Att) -> Option<bool> {
        match att.net {
            // A planted non-VLAN link under the gateway's name: a matter of the
            // bridge's own tests (bridge/tests/vlan.rs); here only its safety counts.
            Net::Vlan if self.vlan_filtering && self.plant.vlan_lookalike => None,
            Net::Vlan => Some(self.vlan_filtering),
            Net::NotABridge => Some(!self.plant.not_a_bridge),
            // The kernel allows one link per VLAN ID and master: the admin's has 101.
            Net::VlanLink => Some(!(self.plant.admin_vlan && att.pod == 1)),
            _ => Some(true),
        }
    }

    fn add(&mut self, att: Att) -> Result<(), TestCaseError> {
        match self.model.get(&att) {
            Some(Status::Live(_) | Status::Tampered(_)) => return self.check(att),
            // A runtime deletes what a killed ADD may have left before it retries.
            Some(Status::Limbo) => self.del(att)?,
            None => {}
        }
        self.touched.insert(att);
        let out = self.call("ADD", att).run(&att.net.binary());
        match (out.code == 0, self.add_must_succeed(att)) {
            (true, Some(false)) => Err(fail(format!("ADD {att:?} succeeded: {}", out.stdout))),
            (false, Some(true)) => Err(fail(format!(
                "ADD {att:?} failed: {} {}",
                out.stdout, out.stderr
            ))),
            (true, _) => {
                self.model.insert(att, Status::Live(out.json()));
                Ok(())
            }
            // The runtime's DEL after a failed ADD.
            (false, _) => self.del(att),
        }
    }

    fn check(&mut self, att: Att) -> Result<(), TestCaseError> {
        let expect_ok = match self.model.get(&att) {
            Some(Status::Live(_)) => true,
            Some(Status::Tampered(_)) => false,
            _ => return Ok(()),
        };
        let out = self.call("CHECK", att).run(&att.net.binary());
        if (out.code == 0) != expect_ok {
            return Err(fail(format!(
                "CHECK {att:?} exited {} where {} was due: {} {}",
                out.code,
                if expect_ok { "success" } else { "failure" },
                out.stdout,
                out.stderr
            )));
        }
        Ok(())
    }

    fn del(&mut self, att: Att) -> Result<(), TestCaseError> {
        self.expect_success("DEL", att)?;
        self.model.remove(&att);
        Ok(())
    }

    fn gc(&mut self, net: Net) -> Result<(), TestCaseError> {
        let out = self.gc_call(net).run(&net.binary());
        if out.code != 0 {
            return Err(fail(format!("GC {net:?}: {} {}", out.stdout, out.stderr)));
        }
        Ok(())
    }

    fn killed_add(&mut self, att: Att, delay_us: u64, then_del: bool) -> Result<(), TestCaseError> {
        if self.model.contains_key(&att) {
            return Ok(());
        }
        self.touched.insert(att);
        self.call("ADD", att)
            .run_killed(&att.net.binary(), Duration::from_micros(delay_us));
        self.model.insert(att, Status::Limbo);
        if then_del {
            self.del(att)?;
        }
        Ok(())
    }

    fn tamper(&mut self, att: Att) -> Result<(), TestCaseError> {
        let Some(Status::Live(result)) = self.model.get(&att).cloned() else {
            return Ok(());
        };
        let ns = format!("opod{}", att.pod);
        if att.net == Net::Tuning {
            sh(&["ip", "-n", &ns, "link", "set", "tun0", "mtu", "1500"]);
        } else if att.net == Net::Sriov {
            let vf = att.pod.to_string();
            sh(&["ip", "link", "set", PF, "vf", &vf, "vlan", "999"]);
        } else {
            sh(&["ip", "-n", &ns, "link", "del", att.net.ifname()]);
        }
        self.model.insert(att, Status::Tampered(result));
        Ok(())
    }

    /// A DEL of container `stray` in the attachment's pod with its network's config:
    /// it succeeds, and the attachment (if live) still passes CHECK.
    fn stray_del(&mut self, att: Att, same_ifname: bool) -> Result<(), TestCaseError> {
        let ifname = if same_ifname {
            att.net.ifname()
        } else {
            "stray0"
        };
        let out = Call::attach("DEL", "stray", &Self::pod(att.pod), ifname)
            .env("SYSFS_ROOT", &self.sysfs().display().to_string())
            .config(&att.net.config(&self.scratch, att.pod))
            .run(&att.net.binary());
        if out.code != 0 {
            return Err(fail(format!(
                "stray DEL beside {att:?} failed: {} {}",
                out.stdout, out.stderr
            )));
        }
        self.check(att)
    }

    fn run(&mut self, op: &Op) -> Result<(), TestCaseError> {
        if verbose() {
            eprintln!("ownership: step {op:?}");
        }
        self.log.push(format!("{op:?}"));
        match op {
            Op::Add(att) => self.add(*att),
            Op::Check(att) => self.check(*att),
            Op::Del(att) => self.del(*att),
            Op::Gc(net) => self.gc(*net),
            Op::KilledAdd(att, delay, then_del) => self.killed_add(*att, *delay, *then_del),
            Op::Tamper(att) => self.tamper(*att),
            Op::StrayDel(att, same) => self.stray_del(*att, *same),
            Op::Pair(a, b) => self.pair(a, b),
        }
    }

    /// Two steps at once. Pairs whose outcome depends on their order (ADD or CHECK
    /// beside a step on the same attachment, GC beside an ADD of its network, whose
    /// valid list cannot name an attachment not yet made) run one after the other.
    fn pair(&mut self, a: &Op, b: &Op) -> Result<(), TestCaseError> {
        let concurrent = match (a, b) {
            (Op::Del(_), Op::Del(_)) => true,
            (Op::Add(x) | Op::Check(x) | Op::Del(x), Op::Add(y) | Op::Check(y) | Op::Del(y)) => {
                x != y
            }
            (Op::Gc(_), Op::Del(_)) | (Op::Del(_), Op::Gc(_)) => true,
            (Op::Gc(n), Op::Add(x) | Op::Check(x)) | (Op::Add(x) | Op::Check(x), Op::Gc(n)) => {
                x.net != *n
            }
            (Op::Gc(_), Op::Gc(_)) => true,
            _ => false,
        };
        if !concurrent {
            self.run(a)?;
            return self.run(b);
        }
        self.log.push(format!("at once: {a:?} | {b:?}"));
        // Each side runs on a clone of the model, as if alone; the outcomes join after.
        let mut left = self.fork();
        let mut right = self.fork();
        let (ra, rb) = std::thread::scope(|s| {
            let ha = s.spawn(|| left.run(a));
            let hb = s.spawn(|| right.run(b));
            (ha.join().unwrap(), hb.join().unwrap())
        });
        ra?;
        rb?;
        for side in [&left, &right] {
            for att in &side.touched {
                self.touched.insert(*att);
                match side.model.get(att) {
                    Some(status) => self.model.insert(*att, status.clone()),
                    None => self.model.remove(att),
                };
            }
        }
        for att in [a, b].iter().filter_map(|op| match op {
            Op::Del(att) => Some(*att),
            _ => None,
        }) {
            self.model.remove(&att);
        }
        Ok(())
    }

    /// DEL of every attachment the case touched: each succeeds, and the node is as
    /// it started.
    fn finish(&mut self, start: &NodeState) -> Result<(), TestCaseError> {
        let touched: Vec<Att> = self.touched.iter().copied().collect();
        for att in touched {
            self.del(att)?;
        }
        // tuning's subject is the pod's own link: put back what a tamper changed.
        for pod in 0..PODS {
            let ns = format!("opod{pod}");
            sh(&["ip", "-n", &ns, "link", "set", "tun0", "mtu", "1500"]);
        }
        self.planted_intact("the final DELs")?;
        let end = node_state(&self.scratch);
        if &end != start {
            return Err(fail(format!(
                "the node differs from its start after the final DELs:\n{}",
                difference(start, &end)
            )));
        }
        Ok(())
    }
}

fn difference(start: &NodeState, end: &NodeState) -> String {
    let mut out = Vec::new();
    for (name, link) in &start.links {
        if end.links.get(name) != Some(link) {
            out.push(format!(
                "link {name}: {link:?} -> {:?}",
                end.links.get(name)
            ));
        }
    }
    for name in end.links.keys().filter(|n| !start.links.contains_key(*n)) {
        out.push(format!("new link {:?}", end.links[name]));
    }
    if start.vfs != end.vfs {
        out.push(format!("VFs: {:?} -> {:?}", start.vfs, end.vfs));
    }
    if start.pod_links != end.pod_links {
        out.push(format!(
            "pods: {:?} -> {:?}",
            start.pod_links, end.pod_links
        ));
    }
    let lines = |a: &[String], b: &[String], what: &str, out: &mut Vec<String>| {
        for l in a.iter().filter(|l| !b.contains(l)) {
            out.push(format!("{what} gone: {l}"));
        }
        for l in b.iter().filter(|l| !a.contains(l)) {
            out.push(format!("{what} new: {l}"));
        }
    };
    lines(&start.nft, &end.nft, "nft", &mut out);
    lines(&start.iptables, &end.iptables, "iptables", &mut out);
    for (path, content) in &start.files {
        if end.files.get(path) != Some(content) {
            out.push(format!("file {} changed or gone", path.display()));
        }
    }
    for path in end.files.keys().filter(|p| !start.files.contains_key(*p)) {
        out.push(format!("new file {}", path.display()));
    }
    out.join("\n")
}

/// A number from the environment, decimal or `0x` hexadecimal (as a failure prints
/// its seed).
fn env_number(name: &str, default: u64) -> u64 {
    let Ok(text) = std::env::var(name) else {
        return default;
    };
    let parsed = match text.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => text.parse(),
    };
    parsed.unwrap_or_else(|_| panic!("{name}={text:?} is not a number"))
}

/// Runs `cases` random cases over `nets` in the sandbox `sb`, from the seed of
/// `OWNERSHIP_SEED`; panics with the seed and the shrunk case on a failure.
fn run_cases(
    sb: &Sandbox,
    test: &str,
    nets: &'static [Net],
    full_kernel: bool,
    cases: u32,
    max_shrink_iters: u32,
) {
    let go_bridge = go_plugin(test, "bridge");
    for pod in 0..PODS {
        sb.netns(&format!("opod{pod}"));
    }
    sb.netns("ogo");
    CNV_BRIDGE.get_or_init(|| {
        let cnv = sb.scratch.join("cnv-bridge");
        std::os::unix::fs::symlink(plugin("bridge"), &cnv).unwrap();
        cnv
    });
    let seed = env_number("OWNERSHIP_SEED", 0x0c4e_5eed);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let config = Config {
        cases,
        failure_persistence: None,
        max_shrink_iters,
        ..Config::default()
    };

    let mut runner = TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes),
    );
    let strategy = (
        plant_strategy(full_kernel),
        prop::collection::vec(op_strategy(nets), 1..12),
    );
    let ran = std::cell::Cell::new(0u32);
    let outcome = runner.run(&strategy, |(plant, ops)| {
        ran.set(ran.get() + 1);
        if ran.get() % 250 == 0 {
            eprintln!("ownership: {} runs so far", ran.get());
        }
        let began = std::time::Instant::now();
        let mut harness = Harness::new(sb, nets, plant, go_bridge.clone());
        let outcome = (|| {
            harness.prepare()?;
            let start = node_state(&harness.scratch);
            harness.planted_intact("planting")?;
            for op in &ops {
                harness.run(op)?;
                harness.planted_intact(&format!("{op:?}"))?;
            }
            harness.finish(&start)
        })();
        if verbose() || outcome.is_err() {
            // Under emulation a failure shrinks for minutes: say what failed at once.
            eprintln!(
                "ownership: run {} ({} steps, {:.1} s): {}",
                ran.get(),
                ops.len(),
                began.elapsed().as_secs_f64(),
                match &outcome {
                    Ok(()) => "passed".to_string(),
                    Err(e) => format!("{e}\n  steps: {:?}", harness.log),
                }
            );
        }
        outcome
    });
    let ran = ran.get();
    eprintln!("ownership: {ran} runs (cases and shrinking steps), seed {seed:#x}");
    if let Err(e) = outcome {
        panic!("seed {seed:#x}: {e}");
    }
}

#[test]
fn nothing_a_verb_does_reaches_what_is_not_its_own() {
    let Some(sb) = Sandbox::new("ownership") else {
        return;
    };
    let cases = env_number("OWNERSHIP_CASES", 100) as u32;
    run_cases(
        &sb,
        "nothing_a_verb_does_reaches_what_is_not_its_own",
        HOST_NETS,
        false,
        cases,
        200,
    );
}

/// The same invariants for the networks that need a full kernel: the vlan plugin
/// beside the admin's own VLAN link on the uplink, a bridge VLAN with its gateway
/// interface beside a planted look-alike, and sriov on a netdevsim PF beside a VF
/// the admin set up. Fewer cases: the full-kernel tier runs under emulation.
#[test]
fn nothing_a_verb_does_reaches_what_is_not_its_own_on_a_full_kernel() {
    let test = "nothing_a_verb_does_reaches_what_is_not_its_own_on_a_full_kernel";
    let Some(sb) = Sandbox::new(test) else {
        return;
    };
    if !require_kernel(test, KernelFeature::Vlan8021q)
        || !require_kernel(test, KernelFeature::BridgeVlanFiltering)
    {
        return;
    }
    if !Path::new("/sys/bus/netdevsim").exists() {
        kernel_feature_missing(test, "netdevsim");
        return;
    }
    let cases = env_number("OWNERSHIP_KERNEL_CASES", 3) as u32;
    run_cases(&sb, test, KERNEL_NETS, true, cases, 40);
}
