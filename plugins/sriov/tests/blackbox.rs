//! The sriov plugin against a real PF: a netdevsim device (real VF netlink state;
//! full-kernel tier) whose VF netdevs are veth ends standing in for real ones,
//! wired together by a fake sysfs tree under SYSFS_ROOT.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use std::collections::BTreeMap;

use serde_json::{json, Value};
use testkit::{
    assert_no_temporary_files, each_undone_fails_check, fake_vfs, fill_leaving, mount_tiny_tmpfs,
    plugin, sh, store_tree, with_prev, Call, Change, Netdevsim, Output, Sandbox, STORE_ERRNOS,
};

const PF_PCI: &str = "0000:af:00.0";

fn ours() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sriov"))
}

fn vf_pci(n: u32) -> String {
    format!("0000:af:06.{n}")
}

/// A sandbox with a netdevsim PF of 4 VFs, veth stand-ins `vfnet0..3` and the
/// fake sysfs tree; None after a loud skip where netdevsim is missing.
struct Rig {
    sb: Sandbox,
    nsim: Netdevsim,
    sysfs: PathBuf,
}

fn rig(test: &str) -> Option<Rig> {
    let sb = Sandbox::new(test)?;
    let nsim = Netdevsim::new(test, "pf0", 4)?;
    let vfs: Vec<(String, String)> = (0..4).map(|n| (vf_pci(n), format!("vfnet{n}"))).collect();
    let sysfs = sb.scratch.join("sys");
    fake_vfs(&sysfs, PF_PCI, &nsim.pf, &vfs);
    for (n, (_, name)) in vfs.iter().enumerate() {
        sh(&[
            "ip",
            "link",
            "set",
            name,
            "address",
            &format!("02:00:00:00:0a:0{n}"),
        ]);
    }
    Some(Rig { sb, nsim, sysfs })
}

impl Rig {
    fn call(&self, command: &str, cid: &str, netns: &str, conf: &Value) -> Output {
        self.call_with(command, cid, netns, conf, &[])
    }

    /// [`Rig::call`] with more environment (a test hook's variable).
    fn call_with(
        &self,
        command: &str,
        cid: &str,
        netns: &str,
        conf: &Value,
        env: &[(&str, &str)],
    ) -> Output {
        self.call_as("net1", command, cid, netns, conf, env)
    }

    /// [`Rig::call_with`] for the interface `ifname`.
    fn call_as(
        &self,
        ifname: &str,
        command: &str,
        cid: &str,
        netns: &str,
        conf: &Value,
        env: &[(&str, &str)],
    ) -> Output {
        plugin("static");
        let mut call = Call::attach(command, cid, netns, ifname)
            .env("SYSFS_ROOT", &self.sysfs.display().to_string())
            .config(conf);
        for (key, value) in env {
            call = call.env(key, value);
        }
        call.run(&ours())
    }

    /// The `vf N` line of `ip link show <pf>`.
    fn vf_line(&self, n: u32) -> String {
        sh(&["ip", "link", "show", &self.nsim.pf])
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("vf {n} ")))
            .unwrap_or_default()
            .to_string()
    }
}

fn conf(vf: u32, extra: Value) -> Value {
    let mut c = json!({"cniVersion": "1.1.0", "name": "sriov-net", "type": "sriov", "deviceID": vf_pci(vf),
        "ipam": {"type": "static", "addresses": [{"address": "10.95.0.5/24"}]}});
    for (k, v) in extra.as_object().unwrap() {
        c[k] = v.clone();
    }
    c
}

/// After the VF's addresses are set, its new location is announced: a gratuitous
/// ARP and an unsolicited neighbour advertisement reach its peer; optimistic DAD is
/// on; `logLevel` decides what the log file gets.
#[test]
fn the_vf_announces_its_addresses_and_logs_at_its_level() {
    let Some(r) = rig("the_vf_announces_its_addresses_and_logs_at_its_level") else {
        return;
    };
    let a = r.sb.netns("a");
    let log = r.sb.scratch.join("sriov.log");
    let c = conf(
        2,
        json!({"logLevel": "debug", "logFile": log,
               "ipam": {"type": "static", "addresses": [{"address": "10.95.0.7/24"}, {"address": "fd00:95::7/64"}]}}),
    );
    // The wire behind the VF stand-in: its peer, up, where the frames arrive.
    sh(&["ip", "link", "set", "peer-vfnet2", "up"]);
    let frames =
        testkit::capture_frames("peer-vfnet2", std::time::Duration::from_millis(800), || {
            r.call("ADD", "ann", &a, &c).expect_success();
        });
    assert!(
        frames
            .iter()
            .any(|f| f.len() >= 42 && f[12..14] == [0x08, 0x06] && f[28..32] == [10, 95, 0, 7]),
        "no gratuitous ARP for 10.95.0.7"
    );
    assert!(
        frames
            .iter()
            .any(|f| f.len() >= 78 && f[12..14] == [0x86, 0xdd] && f[54] == 136),
        "no unsolicited neighbour advertisement"
    );
    let optimistic = sh(&[
        "ip",
        "netns",
        "exec",
        "a",
        "cat",
        "/proc/sys/net/ipv6/conf/net1/optimistic_dad",
    ]);
    assert_eq!(optimistic.trim(), "1");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains(": debug: ") && text.contains(": info: attached VF"),
        "{text}"
    );
    r.call("DEL", "ann", &a, &c).expect_success();

    // At `error`, the same ADD writes no info or debug line.
    std::fs::remove_file(&log).unwrap();
    let quiet = conf(2, json!({"logLevel": "error", "logFile": log}));
    r.call("ADD", "quiet", &a, &quiet).expect_success();
    r.call("DEL", "quiet", &a, &quiet).expect_success();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains(": info: ") && !text.contains(": debug: "),
        "{text}"
    );
}

/// `ip -br link` of the host: names, states and MACs, to compare before and after.
fn host_link_lines() -> String {
    sh(&["ip", "-br", "link"])
}

/// The names of the host's links (`ip -br link`, without the `@peer` part).
fn host_links() -> Vec<String> {
    sh(&["ip", "-br", "link"])
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(|n| n.split('@').next().unwrap_or(n).to_string())
        .collect()
}

#[test]
fn add_configures_the_vf_and_del_puts_everything_back() {
    let Some(r) = rig("add_configures_the_vf_and_del_puts_everything_back") else {
        return;
    };
    let a = r.sb.netns("a");
    let before_vf = r.vf_line(1);
    let c = conf(
        1,
        json!({"vlan": 100, "vlanQoS": 3, "mac": "02:11:22:33:44:55", "spoofchk": "off", "trust": "on",
                          "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 100, "mtu": 1400}),
    );
    let result = r.call("ADD", "c1", &a, &c).expect_success();
    assert_eq!(result["interfaces"][0]["name"], "net1");
    assert_eq!(result["interfaces"][0]["mac"], "02:11:22:33:44:55");
    assert_eq!(result["interfaces"][0]["mtu"], 1400);
    assert_eq!(result["interfaces"][0]["pciID"], vf_pci(1));
    assert_eq!(
        result["ips"][0],
        json!({"interface": 0, "address": "10.95.0.5/24"})
    );
    let vf = r.vf_line(1);
    for part in [
        "link/ether 02:11:22:33:44:55",
        "vlan 100, qos 3",
        "spoof checking off",
        "link-state enable",
        "trust on",
        "max_tx_rate 100Mbps",
        "min_tx_rate 10Mbps",
    ] {
        assert!(vf.contains(part), "missing {part:?} in {vf}");
    }
    let inside = sh(&["ip", "-n", "a", "addr", "show", "net1"]);
    assert!(
        inside.contains("02:11:22:33:44:55")
            && inside.contains("mtu 1400")
            && inside.contains("10.95.0.5/24"),
        "{inside}"
    );
    assert!(
        !host_links().iter().any(|l| l == "vfnet1"),
        "the VF netdev left the host"
    );
    let cache: Value =
        serde_json::from_slice(&std::fs::read("/var/lib/cni/sriov/c1-net1").unwrap()).unwrap();
    assert_eq!(cache["OrigVfState"]["HostIFName"], "vfnet1");
    assert_eq!(cache["VFID"], 1);
    assert_eq!(cache["Master"], "pf0");
    assert_eq!(
        std::fs::read_to_string(format!("/var/lib/cni/sriov/pci/{}", vf_pci(1))).unwrap(),
        a
    );

    let mut check = c.clone();
    check["prevResult"] = result;
    r.call("CHECK", "c1", &a, &check).expect_success();
    sh(&["ip", "link", "set", "pf0", "vf", "1", "vlan", "200"]);
    let msg = r.call("CHECK", "c1", &a, &check).error(999);
    assert!(msg.contains("vlan"), "{msg}");

    r.call("DEL", "c1", &a, &c).expect_success();
    assert_eq!(r.vf_line(1), before_vf, "the PF-side VF settings are back");
    let back = sh(&["ip", "link", "show", "vfnet1"]);
    assert!(
        back.contains("02:00:00:00:0a:01") && back.contains("mtu 1500"),
        "the netdev is back with its MAC and MTU: {back}"
    );
    assert!(!Path::new("/var/lib/cni/sriov/c1-net1").exists());
    assert!(!Path::new(&format!("/var/lib/cni/sriov/pci/{}", vf_pci(1))).exists());
    r.call("DEL", "c1", &a, &c).expect_success();
}

#[test]
fn a_vf_in_use_is_refused_and_a_stale_record_does_not_block() {
    let Some(r) = rig("a_vf_in_use_is_refused_and_a_stale_record_does_not_block") else {
        return;
    };
    let (a, b) = (r.sb.netns("a"), r.sb.netns("b"));
    let c = conf(0, json!({}));
    r.call("ADD", "first", &a, &c).expect_success();
    let msg = r.call("ADD", "second", &b, &c).error(999);
    assert!(msg.contains("already allocated"), "{msg}");
    r.call("DEL", "first", &a, &c).expect_success();
    // A record left by a pod whose netns is gone does not block.
    std::fs::write(
        format!("/var/lib/cni/sriov/pci/{}", vf_pci(0)),
        "/run/netns/long-gone",
    )
    .unwrap();
    r.call("ADD", "third", &b, &c).expect_success();
}

#[test]
fn dpdk_mode_allocates_addresses_but_moves_and_configures_no_netdev() {
    let Some(r) = rig("dpdk_mode_allocates_addresses_but_moves_and_configures_no_netdev") else {
        return;
    };
    // VF 2 is bound to vfio-pci: no netdev.
    let vf_dir = r.sysfs.join(format!("bus/pci/devices/{}", vf_pci(2)));
    std::fs::remove_dir_all(vf_dir.join("net")).unwrap();
    std::fs::create_dir_all(r.sysfs.join("bus/pci/drivers/vfio-pci")).unwrap();
    std::fs::remove_file(vf_dir.join("driver")).unwrap();
    std::os::unix::fs::symlink(
        r.sysfs.join("bus/pci/drivers/vfio-pci"),
        vf_dir.join("driver"),
    )
    .unwrap();
    let a = r.sb.netns("a");
    // A MAC written with dashes, as Go's net.ParseMAC reads it too.
    let c = conf(2, json!({"vlan": 42, "mac": "02-00-00-00-00-9A"}));
    let result = r.call("ADD", "d1", &a, &c).expect_success();
    assert_eq!(
        result["ips"][0]["address"], "10.95.0.5/24",
        "allocated and reported"
    );
    assert_eq!(
        result["interfaces"][0]["mac"], "02-00-00-00-00-9a",
        "as written, lower-cased, as sriov-cni reports it"
    );
    let vf_line = r.vf_line(2);
    assert!(vf_line.contains("vlan 42"), "{vf_line}");
    assert!(
        vf_line.contains("02:00:00:00:00:9a"),
        "the admin MAC: {vf_line}"
    );
    assert!(
        !sh(&["ip", "-n", "a", "link"]).contains("net1"),
        "no netdev in DPDK mode"
    );
    let cache: Value =
        serde_json::from_slice(&std::fs::read("/var/lib/cni/sriov/d1-net1").unwrap()).unwrap();
    assert_eq!(
        cache["DPDKMode"], true,
        "the mode is kept for DEL (sriov-cni drops it)"
    );
    r.call("DEL", "d1", &a, &c).expect_success();
    assert!(!r.vf_line(2).contains("vlan 42"));
}

#[test]
fn del_is_idempotent_and_survives_a_gone_netns() {
    let Some(r) = rig("del_is_idempotent_and_survives_a_gone_netns") else {
        return;
    };
    let a = r.sb.netns("a");
    let c = conf(3, json!({"vlan": 7}));
    r.call("ADD", "x", &a, &c).expect_success();
    sh(&["ip", "netns", "del", "a"]);
    // A veth stand-in dies with its netns (a real VF would come back to the host).
    r.call("DEL", "x", &a, &c).expect_success();
    assert!(
        !r.vf_line(3).contains("vlan 7"),
        "the PF side is restored anyway"
    );
    r.call("DEL", "x", &a, &c).expect_success();
    Call::attach("DEL", "x", "", "net1")
        .unset("CNI_NETNS")
        .env("SYSFS_ROOT", &r.sysfs.display().to_string())
        .config(&c)
        .run(&ours())
        .expect_success();
    r.call("DEL", "never", "/run/netns/none", &conf(0, json!({})))
        .expect_success();
}

/// A DEL retried after the VF went to another pod (its first DEL succeeded, so no
/// cache is left) leaves the new owner's VF settings, its netdev and its
/// allocation record alone: nothing proves the VF is still this attachment's.
#[test]
fn a_retried_del_leaves_the_vf_of_its_next_owner() {
    let Some(r) = rig("a_retried_del_leaves_the_vf_of_its_next_owner") else {
        return;
    };
    let (a, b) = (r.sb.netns("a"), r.sb.netns("b"));
    r.call("ADD", "x", &a, &conf(1, json!({"vlan": 7})))
        .expect_success();
    r.call("DEL", "x", &a, &conf(1, json!({"vlan": 7})))
        .expect_success();
    r.call("ADD", "y", &b, &conf(1, json!({"vlan": 9})))
        .expect_success();
    r.call("DEL", "x", &a, &conf(1, json!({"vlan": 7})))
        .expect_success();
    assert!(r.vf_line(1).contains("vlan 9"), "{}", r.vf_line(1));
    let record = Path::new("/var/lib/cni/sriov/pci").join(vf_pci(1));
    assert_eq!(std::fs::read_to_string(&record).unwrap().trim(), b);
    let in_b = sh(&["ip", "-n", "b", "link", "show", "net1"]);
    assert!(in_b.contains("net1"), "{in_b}");
    r.call("DEL", "y", &b, &conf(1, json!({"vlan": 9})))
        .expect_success();
    assert!(!r.vf_line(1).contains("vlan 9"), "{}", r.vf_line(1));
    assert!(!record.exists());
}

/// Keys spelled as Go also reads them (`"Name"`, `"DeviceID"`): DEL finds the
/// attachment from its cache and returns the VF to the host.
#[test]
fn keys_in_another_letter_case_attach_and_detach() {
    let Some(r) = rig("keys_in_another_letter_case_attach_and_detach") else {
        return;
    };
    let a = r.sb.netns("a");
    let c = json!({"cniVersion": "1.1.0", "Name": "sriov-net", "type": "sriov", "DeviceID": vf_pci(2),
        "ipam": {"type": "static", "addresses": [{"address": "10.95.0.5/24"}]}});
    r.call("ADD", "k1", &a, &c).expect_success();
    assert!(!host_links().iter().any(|l| l == "vfnet2"));
    let cache: Value =
        serde_json::from_slice(&std::fs::read("/var/lib/cni/sriov/k1-net1").unwrap()).unwrap();
    assert_eq!(cache["deviceID"], vf_pci(2), "{cache}");
    r.call("DEL", "k1", &a, &c).expect_success();
    assert!(
        host_links().iter().any(|l| l == "vfnet2"),
        "the VF is back on the host: {:?}",
        host_links()
    );
}

#[test]
fn a_failed_add_restores_the_vf_and_releases_everything() {
    let Some(r) = rig("a_failed_add_restores_the_vf_and_releases_everything") else {
        return;
    };
    let a = r.sb.netns("a");
    let before = (r.vf_line(0), host_link_lines());
    let mut c = conf(0, json!({"vlan": 100, "trust": "on"}));
    c["ipam"]["addresses"] = json!([{"address": "not-an-address"}]);
    r.call("ADD", "f1", &a, &c).error(7);
    assert_eq!((r.vf_line(0), host_link_lines()), before);
    assert!(!Path::new("/var/lib/cni/sriov/f1-net1").exists());
    assert!(!sh(&["ip", "-n", "a", "link"]).contains("net1"));
}

#[test]
fn a_vf_named_like_a_container_interface_and_a_stale_altname() {
    let Some(r) = rig("a_vf_named_like_a_container_interface_and_a_stale_altname") else {
        return;
    };
    let a = r.sb.netns("a");
    // The container already has an interface with the VF's host name.
    sh(&[
        "ip", "-n", "a", "link", "add", "vfnet0", "type", "veth", "peer", "name", "other0",
    ]);
    // And the VF carries the altname an earlier pod left (sriov-cni issue #445).
    sh(&[
        "ip", "link", "property", "add", "dev", "vfnet0", "altname", "net1",
    ]);
    let c = conf(0, json!({}));
    r.call("ADD", "n1", &a, &c).expect_success();
    assert!(sh(&["ip", "-n", "a", "-br", "link"]).contains("net1"));
    r.call("DEL", "n1", &a, &c).expect_success();
    let back = sh(&["ip", "link", "show", "vfnet0"]);
    assert!(
        !back.contains("altname net1"),
        "no stale altname is left: {back}"
    );
    r.call("ADD", "n2", &a, &c).expect_success();
}

/// SIGKILL at a point of ADD, then DEL: the VF, the host and the container are as
/// before the ADD.
#[test]
fn sigkill_mid_add_then_del_restores_everything() {
    let Some(r) = rig("sigkill_mid_add_then_del_restores_everything") else {
        return;
    };
    let a = r.sb.netns("a");
    let c = conf(
        1,
        json!({"vlan": 300, "spoofchk": "off", "mac": "02:aa:bb:cc:dd:ee"}),
    );
    for point in [
        "sriov-after-cache",
        "sriov-after-vf-config",
        "sriov-after-move",
        "sriov-after-ipam",
    ] {
        let before = (
            r.vf_line(1),
            host_link_lines(),
            sh(&["ip", "-n", "a", "-br", "link"]),
        );
        let mut child = Command::new(ours())
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs([
                ("CNI_COMMAND", "ADD"),
                ("CNI_CONTAINERID", "k1"),
                ("CNI_NETNS", a.as_str()),
                ("CNI_IFNAME", "net1"),
            ])
            .env("CNI_PATH", testkit::bin_dir())
            .env("SYSFS_ROOT", &r.sysfs)
            .env("CNI_TEST_FAILPOINT", point)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut child.stdin.take().unwrap(), c.to_string().as_bytes())
            .unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("stopped at failpoint") {
            line.clear();
        }
        assert!(
            line.contains(point),
            "the plugin did not reach {point}: {line}"
        );
        child.kill().unwrap();
        child.wait().unwrap();
        r.call("DEL", "k1", &a, &c).expect_success();
        assert_eq!(
            (
                r.vf_line(1),
                host_link_lines(),
                sh(&["ip", "-n", "a", "-br", "link"])
            ),
            before,
            "after a kill at {point}"
        );
        assert!(!Path::new("/var/lib/cni/sriov/k1-net1").exists());
    }
}

#[test]
fn gc_releases_the_vfs_of_attachments_that_are_gone() {
    let Some(r) = rig("gc_releases_the_vfs_of_attachments_that_are_gone") else {
        return;
    };
    let (a, b) = (r.sb.netns("a"), r.sb.netns("b"));
    r.call("ADD", "keep", &a, &conf(0, json!({"vlan": 10})))
        .expect_success();
    r.call("ADD", "leak", &b, &conf(1, json!({"vlan": 11})))
        .expect_success();
    let mut gc = conf(0, json!({}));
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "net1"}]);
    Call::new("GC")
        .env("CNI_PATH", &testkit::bin_dir().display().to_string())
        .env("SYSFS_ROOT", &r.sysfs.display().to_string())
        .config(&gc)
        .run(&ours())
        .expect_success();
    assert!(r.vf_line(0).contains("vlan 10"));
    assert!(!r.vf_line(1).contains("vlan 11"));
    assert!(
        host_links().iter().any(|l| l == "vfnet1"),
        "the leaked VF is back in the host"
    );
    assert!(
        Path::new("/var/lib/cni/sriov/keep-net1").exists()
            && !Path::new("/var/lib/cni/sriov/leak-net1").exists()
    );
}

/// Config errors need no kernel: they run on every tier.
#[test]
fn bad_configs_are_code_7_and_name_the_key() {
    for (extra, key) in [
        (json!({"deviceID": "../../etc"}), "deviceID"),
        (json!({"spoofchk": "true"}), "spoofchk"),
        (json!({"min_tx_rate": 50, "max_tx_rate": 10}), "min_tx_rate"),
        (json!({"mac": "01:00:00:00:00:01"}), "mac"),
        (json!({"vlanProto": "802.1ad"}), "vlanProto"),
    ] {
        let mut c = conf(0, json!({}));
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        let msg = Call::attach("ADD", "v", "/run/netns/none-here", "net1")
            .config(&c)
            .run(&ours())
            .error(7);
        assert!(msg.starts_with(&format!("{key}:")), "{msg}");
    }
}

/// A DEL with neither this attachment's cache nor an allocation record naming its
/// netns cannot show the VF was ever its own (a DEL after an ADD refused early, or
/// a config naming the admin's VF): the VF's settings stay, with a warning.
#[test]
fn a_del_that_cannot_prove_the_vf_its_own_leaves_it_alone() {
    let Some(r) = rig("a_del_that_cannot_prove_the_vf_its_own_leaves_it_alone") else {
        return;
    };
    let a = r.sb.netns("a");
    sh(&[
        "ip", "link", "set", "pf0", "vf", "3", "vlan", "33", "trust", "on",
    ]);
    sh(&[
        "ip",
        "link",
        "set",
        "pf0",
        "vf",
        "3",
        "mac",
        "02:00:00:00:33:33",
    ]);
    let before = r.vf_line(3);
    let c = conf(
        3,
        json!({"vlan": 55, "trust": "on", "mac": "02:00:00:00:55:55"}),
    );
    let out = r.call("DEL", "never-added", &a, &c);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(r.vf_line(3), before, "the admin's VF settings changed");
    assert!(
        out.stderr.contains("left VF"),
        "a warning says why: {}",
        out.stderr
    );
    assert!(
        host_links().iter().any(|l| l == "vfnet3"),
        "the VF's netdev stays in the host"
    );
}

/// A pod's allocation record names its netns, not which of its attachments holds
/// the VF: a DEL of another interface of that pod whose config names the same VF
/// (a NAD naming one VF twice; the runtime's DEL after the second ADD was refused)
/// leaves the VF, its netdev and its record to the attachment that has them.
#[test]
fn a_del_of_another_interface_of_the_pod_leaves_its_vf() {
    let Some(r) = rig("a_del_of_another_interface_of_the_pod_leaves_its_vf") else {
        return;
    };
    let a = r.sb.netns("a");
    let c = conf(1, json!({"vlan": 41, "trust": "on"}));
    let result = r.call("ADD", "pod", &a, &c).expect_success();
    let before = r.vf_line(1);
    let refused = r.call_as("net2", "ADD", "pod", &a, &c, &[]);
    assert_ne!(refused.code, 0, "a second ADD of a VF in use is refused");
    let out = r.call_as("net2", "DEL", "pod", &a, &c, &[]);
    assert_eq!(out.code, 0, "{} {}", out.stdout, out.stderr);
    assert_eq!(r.vf_line(1), before, "the VF of net1 was reset");
    assert!(
        out.stderr.contains("left VF"),
        "a warning says why: {}",
        out.stderr
    );
    assert!(
        Path::new(&format!("/var/lib/cni/sriov/pci/{}", vf_pci(1))).exists(),
        "the allocation record of net1's VF stays"
    );
    r.call("CHECK", "pod", &a, &with_prev(&c, &result))
        .expect_success();
    r.call("DEL", "pod", &a, &c).expect_success();
    assert!(!r.vf_line(1).contains("vlan 41"));
}

/// The device-info file for Multus, and a DEL that finds no cache (lost with a
/// node's /var/lib) and still puts the VF back.
#[test]
fn device_info_file_and_a_del_without_its_cache() {
    let Some(r) = rig("device_info_file_and_a_del_without_its_cache") else {
        return;
    };
    let a = r.sb.netns("a");
    let info = r.sb.scratch.join("devinfo/net1.json");
    let mut c = conf(2, json!({"vlan": 55, "trust": "on"}));
    c["runtimeConfig"] = json!({"CNIDeviceInfoFile": info});
    r.call("ADD", "di", &a, &c).expect_success();
    let written: Value = serde_json::from_slice(&std::fs::read(&info).unwrap()).unwrap();
    assert_eq!(
        written,
        json!({"type": "pci", "version": "1.1.0", "pci": {"pci-address": vf_pci(2), "pf-pci-address": PF_PCI}})
    );
    std::fs::remove_file("/var/lib/cni/sriov/di-net1").unwrap();
    r.call("DEL", "di", &a, &c).expect_success();
    let vf = r.vf_line(2);
    assert!(
        !vf.contains("vlan 55") && vf.contains("trust off"),
        "reset from the config alone: {vf}"
    );
    assert!(
        !sh(&["ip", "-n", "a", "link"]).contains("net1"),
        "the VF netdev left the container"
    );
    assert!(
        host_links().contains(&format!("vf{}", vf_pci(2).replace([':', '.'], ""))),
        "back in the host under a name made from its PCI address"
    );
}

/// Every setting of `add_configures_the_vf_and_del_puts_everything_back`'s ADD.
fn every_setting(vf: u32) -> Value {
    conf(
        vf,
        json!({"vlan": 100, "vlanQoS": 3, "mac": "02:11:22:33:44:55", "spoofchk": "off", "trust": "on",
               "link_state": "enable", "min_tx_rate": 10, "max_tx_rate": 100, "mtu": 1400}),
    )
}

/// sriov CHECK proves each PF-side setting ADD made (VLAN, QoS, admin MAC,
/// spoofchk, trust, link state, both rates) and the netdev's MTU, MAC and address:
/// each changed in turn, CHECK fails naming it and changes nothing; put back, it
/// passes again.
#[test]
fn check_fails_when_any_setting_of_the_vf_is_undone() {
    let Some(r) = rig("check_fails_when_any_setting_of_the_vf_is_undone") else {
        return;
    };
    let a = r.sb.netns("a");
    let c = every_setting(1);
    let result = r.call("ADD", "c1", &a, &c).expect_success();
    let checked = with_prev(&c, &result);
    r.call("CHECK", "c1", &a, &checked).expect_success();
    let vf = |args: &[&str]| {
        let mut all = vec!["ip", "link", "set", r.nsim.pf.as_str(), "vf", "1"];
        all.extend(args);
        sh(&all);
    };
    let pod = |args: &[&str]| {
        let mut all = vec!["ip", "-n", "a"];
        all.extend(args);
        sh(&all);
    };
    let changes: Vec<Change> = vec![
        (
            "vlan/qos/802.1ad is 200/3/false, the config says 100/3/false",
            Box::new(|| vf(&["vlan", "200", "qos", "3"])),
            Box::new(|| vf(&["vlan", "100", "qos", "3"])),
        ),
        (
            "vlan/qos/802.1ad is 100/5/false, the config says 100/3/false",
            Box::new(|| vf(&["vlan", "100", "qos", "5"])),
            Box::new(|| vf(&["vlan", "100", "qos", "3"])),
        ),
        (
            "the admin MAC is 02:11:22:33:44:66, the config says 02:11:22:33:44:55",
            Box::new(|| vf(&["mac", "02:11:22:33:44:66"])),
            Box::new(|| vf(&["mac", "02:11:22:33:44:55"])),
        ),
        (
            "spoofchk is true, the config says false",
            Box::new(|| vf(&["spoofchk", "on"])),
            Box::new(|| vf(&["spoofchk", "off"])),
        ),
        (
            "trust is false, the config says true",
            Box::new(|| vf(&["trust", "off"])),
            Box::new(|| vf(&["trust", "on"])),
        ),
        (
            "link_state is auto, the config says enable",
            Box::new(|| vf(&["state", "auto"])),
            Box::new(|| vf(&["state", "enable"])),
        ),
        (
            "min_tx_rate is 20 Mbps, the config says 10 Mbps",
            Box::new(|| vf(&["min_tx_rate", "20"])),
            Box::new(|| vf(&["min_tx_rate", "10"])),
        ),
        (
            "max_tx_rate is 200 Mbps, the config says 100 Mbps",
            Box::new(|| vf(&["max_tx_rate", "200"])),
            Box::new(|| vf(&["max_tx_rate", "100"])),
        ),
        (
            "MTU 1300, the config says 1400",
            Box::new(|| pod(&["link", "set", "net1", "mtu", "1300"])),
            Box::new(|| pod(&["link", "set", "net1", "mtu", "1400"])),
        ),
        (
            "MAC 02:11:22:33:44:77, prevResult says 02:11:22:33:44:55",
            Box::new(|| pod(&["link", "set", "net1", "address", "02:11:22:33:44:77"])),
            Box::new(|| pod(&["link", "set", "net1", "address", "02:11:22:33:44:55"])),
        ),
        (
            "address 10.95.0.5/24 is missing",
            Box::new(|| pod(&["addr", "del", "10.95.0.5/24", "dev", "net1"])),
            Box::new(|| pod(&["addr", "add", "10.95.0.5/24", "dev", "net1"])),
        ),
    ];
    let state = || {
        [
            r.vf_line(1),
            sh(&["ip", "-n", "a", "-d", "link", "show", "net1"]),
            // In brief: DAD clears the link-local's `tentative` flag when it ends.
            sh(&["ip", "-n", "a", "-br", "addr", "show", "net1"]),
            sh(&["ip", "-n", "a", "route", "show"]),
        ]
        .join("\n")
    };
    each_undone_fails_check(&|| r.call("CHECK", "c1", &a, &checked), &state, &changes);
    r.call("DEL", "c1", &a, &c).expect_success();
}

const STORE: &str = "/var/lib/cni/sriov";

/// The store's files that a failed ADD must leave as they were: all but the VF
/// locks, which any ADD leaves (as sriov-cni's).
fn store_files() -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = store_tree(Path::new(STORE));
    files.retain(|path, _| !path.is_dir() && !path.to_string_lossy().contains("/vf_lock/"));
    files
}

/// What a failed ADD of VF 1 must leave as it found it: the VF's line on the PF,
/// its netdev in the host (name, MAC, MTU), the store's files.
fn vf1_and_store(r: &Rig) -> (String, String, BTreeMap<PathBuf, Vec<u8>>) {
    // Not `sh`: a failed ADD that moved the netdev must fail the comparison, not here.
    let out = Command::new("ip")
        .args(["link", "show", "vfnet1"])
        .output()
        .unwrap();
    let netdev =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (r.vf_line(1), netdev, store_files())
}

/// A failed ADD: one error object of code 5 naming the store and `cause`, no
/// temporary file, VF 1 and the store as `before`, nothing in the pod; once the
/// cause is gone (`fault` unset), ADD and DEL work.
fn assert_failed_cleanly(
    r: &Rig,
    out: &Output,
    cause: &str,
    before: &(String, String, BTreeMap<PathBuf, Vec<u8>>),
    what: &str,
) {
    let msg = out.error(5);
    assert!(
        msg.contains(cause) && msg.contains(STORE),
        "{what}: {msg:?} does not name the store and {cause:?}"
    );
    assert_no_temporary_files(&store_tree(Path::new(STORE)), what);
    assert_eq!(
        &vf1_and_store(r),
        before,
        "{what}: the failed ADD changed it"
    );
    assert!(
        !sh(&["ip", "-n", "a", "link"]).contains("net1"),
        "{what}: the VF netdev is in the pod"
    );
}

/// sriov's cache and allocation record on a store that cannot be written: each
/// write step of ADD failed in turn (the `test-hooks` build's CNI_TEST_FS_FAIL, each
/// errno, on a store that does not exist yet and on one that holds another
/// attachment), then a real full tmpfs (filled to leave 0 to 3 pages) and a
/// read-only one over the store. Every failed ADD answers one error naming the
/// store and the cause, and leaves the VF, its netdev and the store as it found
/// them; once the cause is gone, ADD and DEL work.
#[test]
fn an_add_that_cannot_write_its_state_leaves_the_vf_as_it_was() {
    let Some(r) = rig("an_add_that_cannot_write_its_state_leaves_the_vf_as_it_was") else {
        return;
    };
    let (a, b) = (r.sb.netns("a"), r.sb.netns("b"));
    let c = every_setting(1);
    let add = |fault: Option<&str>| match fault {
        Some(fault) => r.call_with("ADD", "c1", &a, &c, &[("CNI_TEST_FS_FAIL", fault)]),
        None => r.call("ADD", "c1", &a, &c),
    };
    let add_and_del = |what: &str| {
        add(None).expect_success();
        r.call("DEL", "c1", &a, &c).expect_success();
        assert!(
            !Path::new(STORE).join("c1-net1").exists(),
            "{what}: DEL left the cache"
        );
    };
    let mut record_failures = 0;
    // Every write step with the first errno; the others (only the message differs on
    // a path already walked) at the first and the last step, which keeps the test
    // within the full-kernel tier's time under emulation.
    let mut last_failing = None;
    for (errno, cause) in STORE_ERRNOS {
        for fresh in [true, false] {
            let other = conf(0, json!({"vlan": 7}));
            if !fresh {
                r.call("ADD", "other", &b, &other).expect_success();
            }
            let steps: Vec<u32> = match last_failing {
                Some(last) if errno != STORE_ERRNOS[0].0 => vec![1, last, last + 1],
                _ => (1..30).collect(),
            };
            for n in steps {
                let what = format!("{errno} from write {n} (fresh store: {fresh})");
                if fresh {
                    let _ = std::fs::remove_dir_all(STORE);
                }
                let before = vf1_and_store(&r);
                let out = add(Some(&format!("{n}:{errno}")));
                if out.code == 0 {
                    assert!(n > 1, "{what}: ADD wrote nothing");
                    r.call("DEL", "c1", &a, &c).expect_success();
                    // ADD made n - 1 writes on a fresh store.
                    last_failing.get_or_insert(n - 1);
                    break;
                }
                assert_failed_cleanly(&r, &out, cause, &before, &what);
                let msg = out.json()["msg"].as_str().unwrap_or_default().to_string();
                if msg.contains(&vf_pci(1)) && !msg.contains("vf_lock") {
                    record_failures += 1;
                }
                add_and_del(&what);
                assert!(n < 29, "ADD never got through");
            }
            if !fresh {
                r.call("DEL", "other", &b, &other).expect_success();
            }
        }
    }
    assert!(
        record_failures > 0,
        "no failure came from the allocation record"
    );

    // A real tmpfs over the store: full, then with 1 to 3 pages free.
    let store = Path::new(STORE);
    mount_tiny_tmpfs(store, "64k");
    let filler = store.join("filler");
    let mut failures = 0;
    for pages in 0..4 {
        fill_leaving(&filler, pages);
        let what = format!("a full tmpfs with {pages} pages free");
        let before = vf1_and_store(&r);
        let out = add(None);
        if out.code == 0 {
            r.call("DEL", "c1", &a, &c).expect_success();
        } else {
            failures += 1;
            assert_failed_cleanly(&r, &out, "No space left on device", &before, &what);
            std::fs::remove_file(&filler).unwrap();
            add_and_del(&what);
        }
    }
    assert!(failures > 0, "no fill level made ADD fail");
    let _ = std::fs::remove_file(&filler);

    // The same tmpfs read-only.
    sh(&["mount", "-o", "remount,ro", STORE]);
    let before = vf1_and_store(&r);
    let out = add(None);
    assert_failed_cleanly(
        &r,
        &out,
        "Read-only file system",
        &before,
        "a read-only store",
    );
    sh(&["mount", "-o", "remount,rw", STORE]);
    add_and_del("a read-only store, writable again");
}
