//! State stores that cannot be written: a full filesystem (ENOSPC), a read-only one
//! (EROFS), an exhausted quota (EDQUOT). A failed ADD must answer one error object
//! naming the file and the cause, and leave the store exactly as it found it: no
//! address allocated, no round-robin position moved, no temporary file. Once the
//! cause is gone, ADD and DEL work. Each write step is failed in turn with the
//! `test-hooks` build's `CNI_TEST_FS_FAIL`; a real tiny tmpfs, filled to various
//! levels, makes sure the real kernel errors take the same paths.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use testkit::{
    assert_no_temporary_files, fill_leaving, mount_tiny_tmpfs, plugin, store_tree, Call, Output,
    Sandbox, STORE_ERRNOS as CAUSES,
};

fn conf(data_dir: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": "full", "type": "bridge",
           "ipam": {"type": "host-local", "dataDir": data_dir,
                    "ranges": [[{"subnet": "10.136.0.0/29"}], [{"subnet": "fd00:136::/120"}]]}})
}

/// host-local exec'd as a main plugin's IPAM: the whole config on stdin.
fn host_local(command: &str, cid: &str, data_dir: &Path, fault: Option<&str>) -> Output {
    let mut call = Call::attach(command, cid, "/run/netns/pod", "eth0").config(&conf(data_dir));
    if let Some(fault) = fault {
        call = call.env("CNI_TEST_FS_FAIL", fault);
    }
    call.run(&plugin("host-local"))
}

/// Every file and directory below `dir` with its content (directories: empty), but
/// the index's record of the directory's mtime (`.index/state`), which every run
/// that changed the directory rewrites, failed or not.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut all = store_tree(dir);
    all.retain(|path, _| !path.ends_with(".index/state"));
    all
}

/// A failed ADD: one error object of code 5 naming a path below the store and the
/// cause; the store as it was before.
fn assert_clean_failure(
    out: &Output,
    data: &Path,
    cause: &str,
    before: &BTreeMap<PathBuf, Vec<u8>>,
    what: &str,
) {
    let msg = out.error(5);
    assert!(
        msg.contains(cause) && msg.contains(&data.display().to_string()),
        "{what}: {msg:?} does not name the file and {cause:?}"
    );
    let mut after = tree(data);
    assert_no_temporary_files(&store_tree(data), what);
    // A first ADD may leave the store's empty skeleton, as Go's does: no state.
    let network = data.join("full");
    for skeleton in [network.join(".index"), network.join("lock"), network] {
        if !before.contains_key(&skeleton) && after.get(&skeleton).is_some_and(Vec::is_empty) {
            after.remove(&skeleton);
        }
    }
    assert_eq!(&after, before, "{what}: the failed ADD changed the store");
}

/// Fails the n-th write of host-local and every one after it, for each n until ADD
/// gets through, on a store that already holds another attachment and on a store
/// that does not exist yet.
#[test]
fn host_local_add_that_cannot_write_leaves_nothing() {
    let Some(sb) = Sandbox::new("full_failpoints") else {
        return;
    };
    sb.netns("pod");
    for (errno, cause) in CAUSES {
        for fresh in [false, true] {
            let data = sb.scratch.join(format!("data-{errno}-{fresh}"));
            if !fresh {
                host_local("ADD", "other", &data, None).expect_success();
            }
            let mut n = 1;
            loop {
                let what = format!("{errno} from write {n} (fresh store: {fresh})");
                let before = tree(&data);
                let fault = format!("{n}:{errno}");
                let out = host_local("ADD", "cid", &data, Some(&fault));
                if out.code == 0 {
                    assert!(n > 1, "{what}: ADD wrote nothing");
                    host_local("DEL", "cid", &data, None).expect_success();
                    break;
                }
                assert_clean_failure(&out, &data, cause, &before, &what);
                // The cause gone, the attachment works and goes.
                host_local("ADD", "cid", &data, None).expect_success();
                host_local("DEL", "cid", &data, None).expect_success();
                n += 1;
                assert!(n < 100, "ADD never got through");
            }
        }
    }
}

/// The same on a real 512 KiB tmpfs filled to leave 0 to 9 pages, with and without
/// an earlier allocation: every ADD that fails, fails cleanly, and once space is
/// back ADD and DEL work.
#[test]
fn host_local_add_on_a_full_tmpfs_leaves_nothing() {
    let Some(sb) = Sandbox::new("full_tmpfs") else {
        return;
    };
    sb.netns("pod");
    let tiny = sb.scratch.join("tiny");
    mount_tiny_tmpfs(&tiny, "512k");
    let filler = tiny.join("filler");
    let mut failures = 0;
    for fresh in [true, false] {
        for pages in 0..10 {
            let data = tiny.join("data");
            let _ = std::fs::remove_file(&filler);
            let _ = std::fs::remove_dir_all(&data);
            if !fresh {
                host_local("ADD", "other", &data, None).expect_success();
            }
            fill_leaving(&filler, pages);
            let what = format!("{pages} pages free (fresh store: {fresh})");
            let before = tree(&data);
            let out = host_local("ADD", "cid", &data, None);
            if out.code != 0 {
                failures += 1;
                assert_clean_failure(&out, &data, "No space left on device", &before, &what);
            }
            std::fs::remove_file(&filler).unwrap();
            if out.code != 0 {
                host_local("ADD", "cid", &data, None).expect_success();
            }
            host_local("DEL", "cid", &data, None).expect_success();
            host_local("DEL", "other", &data, None).expect_success();
            let left = tree(&data);
            assert_no_temporary_files(&left, &what);
            assert!(
                !left
                    .keys()
                    .any(|p| p.file_name().unwrap().to_string_lossy().contains("10.136.")),
                "{what}: addresses left after DEL: {left:?}"
            );
        }
    }
    assert!(failures > 0, "no fill level made ADD fail");
}

/// tuning chained after an interface plugin: the pod's `eth0` (MTU 1500) gets MTU
/// 1400, and its state file goes to `data`.
fn tuning_conf(data: &Path) -> Value {
    json!({"cniVersion": "1.0.0", "name": "full", "type": "tuning", "mtu": 1400, "dataDir": data,
           "sysctl": {"net.ipv4.conf.eth0.forwarding": "1"},
           "prevResult": {"cniVersion": "1.0.0",
                          "interfaces": [{"name": "eth0", "sandbox": "/run/netns/pod"}]}})
}

fn pod_mtu() -> String {
    let link = testkit::sh(&["ip", "-n", "pod", "link", "show", "eth0"]);
    link.split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

/// The pod's `eth0` forwarding sysctl, which the tuning config sets (and, as Go,
/// never restores).
fn pod_forwarding(set: Option<&str>) -> String {
    if let Some(value) = set {
        testkit::sh(&[
            "ip",
            "netns",
            "exec",
            "pod",
            "sh",
            "-c",
            &format!("echo {value} > /proc/sys/net/ipv4/conf/eth0/forwarding"),
        ]);
    }
    testkit::sh(&[
        "ip",
        "netns",
        "exec",
        "pod",
        "cat",
        "/proc/sys/net/ipv4/conf/eth0/forwarding",
    ])
    .trim()
    .to_string()
}

fn tuning(command: &str, data: &Path, fault: Option<&str>) -> Output {
    let mut call =
        Call::attach(command, "cid", "/run/netns/pod", "eth0").config(&tuning_conf(data));
    if let Some(fault) = fault {
        call = call.env("CNI_TEST_FS_FAIL", fault);
    }
    call.run(&plugin("tuning"))
}

/// A failed tuning ADD: one error object (code 5) naming the state directory and
/// the cause, no file, the link unchanged; the cause gone, ADD and DEL work.
fn assert_tuning_failed_cleanly(out: &Output, data: &Path, cause: &str, what: &str) {
    let msg = out.error(5);
    assert!(
        msg.contains(cause) && msg.contains(&data.display().to_string()),
        "{what}: {msg:?} does not name the file and {cause:?}"
    );
    let left = tree(data);
    assert!(
        left.keys().all(|p| p.is_dir()),
        "{what}: the failed ADD left {left:?}"
    );
    assert_eq!(pod_mtu(), "1500", "{what}: the failed ADD changed the link");
    assert_eq!(
        pod_forwarding(None),
        "0",
        "{what}: the failed ADD wrote a sysctl"
    );
    tuning("ADD", data, None).expect_success();
    assert_eq!(
        (pod_mtu().as_str(), pod_forwarding(None).as_str()),
        ("1400", "1"),
        "{what}"
    );
    tuning("DEL", data, None).expect_success();
    assert_eq!(pod_mtu(), "1500", "{what}");
    pod_forwarding(Some("0"));
    assert!(
        tree(data).keys().all(|p| p.is_dir()),
        "{what}: DEL left files"
    );
}

/// tuning's state file: each write step failed in turn with each errno, on a
/// fresh and on an existing state directory; then on a full tmpfs.
#[test]
fn tuning_add_that_cannot_write_its_state_leaves_nothing() {
    let Some(sb) = Sandbox::new("full_tuning") else {
        return;
    };
    sb.netns("pod");
    testkit::sh(&[
        "ip", "-n", "pod", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    for (errno, cause) in CAUSES {
        for fresh in [true, false] {
            let data = sb.scratch.join(format!("tuning-{errno}-{fresh}"));
            if !fresh {
                std::fs::create_dir_all(&data).unwrap();
            }
            for n in 1.. {
                let what = format!("{errno} from write {n} (fresh directory: {fresh})");
                let out = tuning("ADD", &data, Some(&format!("{n}:{errno}")));
                if out.code == 0 {
                    assert!(n > 1, "{what}: ADD wrote nothing");
                    tuning("DEL", &data, None).expect_success();
                    pod_forwarding(Some("0"));
                    break;
                }
                assert_tuning_failed_cleanly(&out, &data, cause, &what);
                assert!(n < 20, "ADD never got through");
            }
        }
    }
    let tiny = sb.scratch.join("tiny-tuning");
    mount_tiny_tmpfs(&tiny, "64k");
    let data = tiny.join("tuning");
    std::fs::create_dir_all(&data).unwrap();
    fill_leaving(&tiny.join("filler"), 0);
    let out = tuning("ADD", &data, None);
    std::fs::remove_file(tiny.join("filler")).unwrap();
    assert_tuning_failed_cleanly(&out, &data, "No space left on device", "a full tmpfs");
}

/// cnitool's result cache (the `cni-runtime` crate): a chain of static and tuning,
/// each write step failed in turn (in cnitool and, through the inherited
/// environment, in tuning). Every failure is a message naming the cause and exit
/// 1, and leaves no cache entry, no temporary file, no tuning state and the link
/// as it was (an ADD whose cache cannot be written is undone by DEL); the cause
/// gone, ADD and DEL work.
#[test]
fn cnitool_add_that_cannot_write_its_cache_leaves_nothing() {
    let Some(sb) = Sandbox::new("full_cnitool") else {
        return;
    };
    sb.netns("pod");
    testkit::sh(&[
        "ip", "-n", "pod", "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    let netconf = sb.scratch.join("net.d");
    std::fs::create_dir_all(&netconf).unwrap();
    let tuning_data = sb.scratch.join("tuning");
    std::fs::write(
        netconf.join("full.conflist"),
        json!({"cniVersion": "1.0.0", "name": "full", "plugins": [
            {"type": "static", "ipam": {"type": "static", "addresses": [{"address": "10.137.0.5/24"}]}},
            {"type": "tuning", "mtu": 1400, "dataDir": tuning_data}]})
        .to_string(),
    )
    .unwrap();
    let run = |verb: &str, cache: &Path, fault: Option<&str>| {
        let mut cmd = std::process::Command::new(testkit::bin_dir().join("cnitool"));
        cmd.args([
            "--cache-dir",
            &cache.display().to_string(),
            verb,
            "full",
            "/run/netns/pod",
        ])
        .env("NETCONFPATH", &netconf)
        .env("CNI_PATH", testkit::bin_dir())
        .env_remove("CNI_TEST_FS_FAIL");
        if let Some(fault) = fault {
            cmd.env("CNI_TEST_FS_FAIL", fault);
        }
        cmd.output().unwrap()
    };
    let nothing_left = |cache: &Path, what: &str| {
        let files: Vec<_> = store_tree(cache)
            .into_keys()
            .chain(store_tree(&tuning_data).into_keys())
            .filter(|p| !p.is_dir())
            .collect();
        assert!(files.is_empty(), "{what}: left {files:?}");
        assert_eq!(pod_mtu(), "1500", "{what}: the link was left changed");
    };
    // tuning's directory exists and each try has a fresh cache directory: cnitool
    // makes two directories more than tuning, so its last write steps fail alone.
    std::fs::create_dir_all(&tuning_data).unwrap();
    let mut cache_failures = 0;
    for (errno, cause) in CAUSES {
        for n in 1.. {
            let cache = sb.scratch.join(format!("cache-{errno}-{n}"));
            let what = format!("{errno} from write {n}");
            let out = run("add", &cache, Some(&format!("{n}:{errno}")));
            if out.status.success() {
                assert!(n > 1, "{what}: ADD wrote nothing");
                assert!(run("del", &cache, None).status.success());
                nothing_left(&cache, &what);
                break;
            }
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(1), "{what}: {stderr}");
            assert!(
                stderr.contains(cause),
                "{what}: {stderr:?} does not name {cause:?}"
            );
            if stderr.contains("cached result") {
                cache_failures += 1;
                assert!(
                    stderr.contains(&cache.display().to_string()),
                    "{what}: {stderr}"
                );
            }
            nothing_left(&cache, &what);
            assert!(run("add", &cache, None).status.success(), "{what}");
            assert_eq!(pod_mtu(), "1400", "{what}");
            assert!(run("del", &cache, None).status.success(), "{what}");
            nothing_left(&cache, &what);
            assert!(n < 30, "ADD never got through");
        }
    }
    assert!(cache_failures > 0, "no failure came from the result cache");
}
