//! The black-box harness: run a plugin binary as a runtime does (env, stdin, exit
//! code, stdout), inside namespaces the test makes for itself, and look at what it
//! left in the kernel and on disk.
//!
//! A privileged test starts with `let Some(sb) = Sandbox::new("name") else { return };`.
//! The sandbox moves the test's thread into a new network namespace (the "host") and
//! a private mount namespace with its own tmpfs on /run/netns, /var/lib/cni and a
//! scratch directory. Processes the test spawns inherit both, so tests run in
//! parallel and never see the machine's interfaces or state.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

pub mod differential;

/// Records a skip where the test script collects them (CNI_TEST_SKIP_LOG), so that
/// the run reports it as skipped and not as passed, and says it on stderr.
fn record_skip(test: &str, reason: &str) {
    // The test harness names the thread after the test: that name, not the one the
    // test passed, is what a runner's filter matches when the next tier reruns it.
    let thread = std::thread::current();
    let test = thread.name().filter(|n| *n != "main").unwrap_or(test);
    eprintln!("SKIPPED {test}: {reason}");
    if let Ok(log) = std::env::var("CNI_TEST_SKIP_LOG") {
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
        {
            // One write of the whole line: appends from parallel tests never interleave.
            let _ = file.write_all(format!("{test}: {reason}\n").as_bytes());
        }
    }
}

/// Whether a test that cannot run may skip: never under CI.
pub fn skip_or_fail(test: &str, reason: &str) {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run here ({reason}) and CI=true forbids skipping");
    }
    record_skip(test, reason);
}

/// A kernel feature this machine lacks: a loud skip here. On the full-kernel tier
/// (`CNI_TEST_TIER=full-kernel`) every feature must be there, so it fails.
pub fn kernel_feature_missing(test: &str, feature: &str) {
    if std::env::var("CNI_TEST_TIER").is_ok_and(|t| t == "full-kernel") {
        panic!("{test}: the kernel lacks {feature} on the full-kernel tier");
    }
    record_skip(
        test,
        &format!("this kernel has no {feature}; the full-kernel tier runs it"),
    );
}

/// Kernel features some tests need, probed for real in the sandbox's netns.
#[derive(Clone, Copy, Debug)]
pub enum KernelFeature {
    BridgeVlanFiltering,
    Vlan8021q,
    Dummy,
}

impl KernelFeature {
    fn describe(self) -> &'static str {
        match self {
            KernelFeature::BridgeVlanFiltering => "bridge VLAN filtering",
            KernelFeature::Vlan8021q => "802.1Q VLAN links",
            KernelFeature::Dummy => "dummy links",
        }
    }

    /// Probes the feature for real (creating and deleting a link in the current netns).
    pub fn is_present(self) -> bool {
        let ok = |args: &[&str]| {
            Command::new("ip")
                .args(args)
                .output()
                .is_ok_and(|o| o.status.success())
        };
        let _ = ok(&["link", "del", "cniprobe0"]);
        let present = match self {
            KernelFeature::BridgeVlanFiltering => {
                ok(&[
                    "link",
                    "add",
                    "cniprobe0",
                    "type",
                    "bridge",
                    "vlan_filtering",
                    "1",
                ]) && std::fs::read_to_string("/sys/class/net/cniprobe0/bridge/vlan_filtering")
                    .is_ok_and(|v| v.trim() == "1")
            }
            KernelFeature::Vlan8021q => {
                ok(&[
                    "link",
                    "add",
                    "cniprobe0",
                    "type",
                    "veth",
                    "peer",
                    "name",
                    "cniprobe1",
                ]) && ok(&[
                    "link",
                    "add",
                    "link",
                    "cniprobe0",
                    "name",
                    "cniprobe0.5",
                    "type",
                    "vlan",
                    "id",
                    "5",
                ])
            }
            KernelFeature::Dummy => ok(&["link", "add", "cniprobe0", "type", "dummy"]),
        };
        let _ = ok(&["link", "del", "cniprobe0"]);
        present
    }
}

/// Whether the kernel has `feature`; if not, a loud skip (a failure on the
/// full-kernel tier). Call it inside the test's sandbox.
pub fn require_kernel(test: &str, feature: KernelFeature) -> bool {
    if feature.is_present() {
        if std::env::var("CNI_TEST_TIER").is_ok_and(|t| t == "full-kernel") {
            eprintln!(
                "{test}: running on the full-kernel tier ({})",
                feature.describe()
            );
        }
        return true;
    }
    kernel_feature_missing(test, feature.describe());
    false
}

/// The directory of the workspace's built binaries (target/<profile>).
pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("CNI_TEST_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/<test> -> target/<profile>
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// The path of a workspace plugin binary; panics with the fix when it is not built.
pub fn plugin(name: &str) -> PathBuf {
    let path = bin_dir().join(name);
    assert!(
        path.is_file(),
        "{} is not built: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Debian's Go reference plugins, for interop tests.
pub const GO_PLUGIN_DIR: &str = "/usr/lib/cni";

/// A Go reference plugin, or `None` after a loud skip (a failure under CI).
pub fn go_plugin(test: &str, name: &str) -> Option<PathBuf> {
    let path = Path::new(GO_PLUGIN_DIR).join(name);
    if path.is_file() {
        Some(path)
    } else {
        skip_or_fail(
            test,
            &format!(
                "the Go plugin {} is not installed (apt-get install containernetworking-plugins)",
                path.display()
            ),
        );
        None
    }
}

/// What a plugin run printed and returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts that the plugin succeeded (exit 0) and returns the parsed result (or
    /// Null for empty stdout); the assertion message carries what it printed.
    pub fn expect_success(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: stdout {} stderr {}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a failure with exactly one error object of `code`, and returns its msg.
    pub fn error(&self, code: u64) -> String {
        assert_eq!(
            self.code, 1,
            "expected exit status 1, got {}: stdout {} stderr {}",
            self.code, self.stdout, self.stderr
        );
        let mut objects = serde_json::Deserializer::from_str(&self.stdout).into_iter::<Value>();
        let error = objects
            .next()
            .expect("an error object on stdout")
            .expect("valid JSON on stdout");
        assert!(
            objects.next().is_none(),
            "more than one JSON value on stdout: {}",
            self.stdout
        );
        assert_eq!(
            error["code"].as_u64(),
            Some(code),
            "wrong error code: {error} (stderr {})",
            self.stderr
        );
        error["msg"].as_str().unwrap_or_default().to_string()
    }
}

/// One invocation as a runtime makes it.
#[derive(Clone, Debug, Default)]
pub struct Call {
    pub env: BTreeMap<String, String>,
    /// Variables set to bytes that need not be UTF-8 (after `env`).
    pub raw_env: Vec<(String, Vec<u8>)>,
    pub stdin: Vec<u8>,
}

impl Call {
    pub fn new(command: &str) -> Call {
        let mut call = Call::default();
        call.env.insert("CNI_COMMAND".into(), command.into());
        call.env
            .insert("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into());
        call
    }

    /// ADD/DEL/CHECK with the usual variables; CNI_PATH is the workspace's bin dir.
    pub fn attach(command: &str, container_id: &str, netns: &str, ifname: &str) -> Call {
        Call::new(command)
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &bin_dir().display().to_string())
    }

    pub fn env(mut self, key: &str, value: &str) -> Call {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets a variable to raw bytes (a value the environment can hold that is not text).
    pub fn env_bytes(mut self, key: &str, value: &[u8]) -> Call {
        self.env.remove(key);
        self.raw_env.push((key.to_string(), value.to_vec()));
        self
    }

    pub fn unset(mut self, key: &str) -> Call {
        self.env.remove(key);
        self
    }

    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Call {
        self.stdin = stdin.into();
        self
    }

    pub fn config(self, config: &Value) -> Call {
        self.stdin(config.to_string())
    }

    pub fn run(&self, binary: &Path) -> Output {
        let mut child = Command::new(binary)
            .env_clear()
            .envs(&self.env)
            .envs(self.raw_env.iter().map(|(k, v)| {
                use std::os::unix::ffi::OsStringExt;
                (k, std::ffi::OsString::from_vec(v.clone()))
            }))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("exec {}: {e}", binary.display()));
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for plugin");
        let _ = writer.join();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `command` (a tool, not a plugin), asserting that it succeeded with its
/// stderr in the message; returns its stdout, trimmed.
pub fn run_checked(command: &mut Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a command in the sandbox, asserting success, and returns stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A veth pair with both ends up, in the current netns: a master with a carrier,
/// as macvlan and vlan need one.
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
        // A sysfs of our own, so that /sys/class/net shows this netns's links.
        mount(
            Some("sysfs"),
            "/sys",
            Some("sysfs"),
            MsFlags::empty(),
            None::<&str>,
        )
        .expect("mount sysfs for the sandbox");
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
}

/// The state a failed ADD must leave exactly as it found it.
#[derive(Debug, PartialEq, Eq)]
pub struct Snapshot {
    pub links: BTreeMap<String, Vec<String>>,
    pub cni_files: BTreeMap<PathBuf, Vec<u8>>,
    pub scratch_files: BTreeMap<PathBuf, Vec<u8>>,
    pub nft: String,
}

/// One plugin of the suite, as `plugins/plugins.list` names it.
#[derive(Clone, Debug)]
pub struct SuitePlugin {
    /// The library (crate) name.
    pub library: String,
    /// The installed names: the plugin's own first, then its aliases.
    pub names: Vec<String>,
}

impl SuitePlugin {
    pub fn name(&self) -> &str {
        &self.names[0]
    }
}

/// The suite's plugins, from `plugins/plugins.list` (the one list every table of
/// plugins is made from).
pub fn suite_plugins() -> Vec<SuitePlugin> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugins/plugins.list");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let mut words = line.split_whitespace().map(str::to_owned);
            SuitePlugin {
                library: words.next().expect("a library"),
                names: words.collect(),
            }
        })
        .collect()
}

/// Every installed plugin name (aliases included).
pub fn plugin_names() -> Vec<String> {
    suite_plugins().into_iter().flat_map(|p| p.names).collect()
}

/// Frames received on `ifname` (of the calling thread's netns) for `wait`.
/// (the test's own packet socket, open before `during` runs). For checking what a
/// plugin puts on the wire, e.g. gratuitous ARPs.
pub fn capture_frames(
    ifname: &str,
    wait: std::time::Duration,
    during: impl FnOnce(),
) -> Vec<Vec<u8>> {
    let link: Value = serde_json::from_str(&sh(&["ip", "-j", "link", "show", ifname])).unwrap();
    let index = link[0]["ifindex"].as_u64().expect("ifindex") as u32;
    let mut frames = Vec::new();
    unsafe {
        let fd = libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            (libc::ETH_P_ALL as u16).to_be() as i32,
        );
        assert!(fd >= 0);
        let mut address: libc::sockaddr_ll = std::mem::zeroed();
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = index as i32;
        assert_eq!(
            libc::bind(
                fd,
                (&address as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32
            ),
            0
        );
        let timeout = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&timeout as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as u32,
        );
        during();
        let deadline = std::time::Instant::now() + wait;
        while std::time::Instant::now() < deadline {
            let mut buffer = [0u8; 2048];
            let n = libc::recv(fd, buffer.as_mut_ptr().cast(), buffer.len(), 0);
            if n > 0 {
                frames.push(buffer[..n as usize].to_vec());
            }
        }
        libc::close(fd);
    }
    frames
}

/// Replays every input kept in `testdata/fuzz-regressions/<target>/` (the fuzzers'
/// seeds and every input they ever crashed on) through `run`, the fuzz target's
/// entry point. A folder with no input fails: a replay of nothing proves nothing.
pub fn replay_fuzz_inputs(target: &str, run: fn(&[u8])) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testdata/fuzz-regressions")
        .join(target);
    let mut count = 0;
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
    {
        run(&std::fs::read(entry.path()).unwrap());
        count += 1;
    }
    assert!(count > 0, "{} holds no input to replay", dir.display());
}

/// Whether `target` answers one ping from `netns` (a namespace the test made).
pub fn ping(netns: &str, target: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", netns, "ping", "-c", "1", "-W", "1", target])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// `conf` with `prevResult` set, for CHECK and DEL.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}

/// VF stand-ins for the sriov tests: for each `(pci, netdev)` a veth named `netdev`
/// (its peer `peer-<netdev>`) in the current netns, and a fake sysfs tree under `sysfs`
/// that names them the VFs of `pf_name` at `pf_pci` (driver iavf).
pub fn fake_vfs(sysfs: &Path, pf_pci: &str, pf_name: &str, vfs: &[(String, String)]) {
    for (_, name) in vfs {
        sh(&[
            "ip",
            "link",
            "add",
            name,
            "type",
            "veth",
            "peer",
            "name",
            &format!("peer-{name}"),
        ]);
    }
    let entries: Vec<(&str, Option<&str>, &str)> = vfs
        .iter()
        .map(|(pci, name)| (pci.as_str(), Some(name.as_str()), "iavf"))
        .collect();
    build_fake_sriov_sysfs(sysfs, pf_pci, pf_name, &entries).unwrap();
}

/// Builds a fake sysfs tree (for `SYSFS_ROOT`) of one PF and its VFs: `vfs` is (VF PCI address, netdev name or None, driver).
pub fn build_fake_sriov_sysfs(
    root: &Path,
    pf_pci: &str,
    pf_name: &str,
    vfs: &[(&str, Option<&str>, &str)],
) -> std::io::Result<()> {
    use std::os::unix::fs::symlink;
    let devices = root.join("bus/pci/devices");
    let pf_dir = devices.join(pf_pci);
    std::fs::create_dir_all(pf_dir.join("net").join(pf_name))?;
    std::fs::write(pf_dir.join("sriov_numvfs"), format!("{}\n", vfs.len()))?;
    for (n, (vf, netdev, driver)) in vfs.iter().enumerate() {
        let vf_dir = devices.join(vf);
        std::fs::create_dir_all(&vf_dir)?;
        let _ = std::fs::remove_file(pf_dir.join(format!("virtfn{n}")));
        symlink(format!("../{vf}"), pf_dir.join(format!("virtfn{n}")))?;
        let _ = std::fs::remove_file(vf_dir.join("physfn"));
        symlink(format!("../{pf_pci}"), vf_dir.join("physfn"))?;
        let drivers = root.join("bus/pci/drivers").join(driver);
        std::fs::create_dir_all(&drivers)?;
        let _ = std::fs::remove_file(vf_dir.join("driver"));
        symlink(&drivers, vf_dir.join("driver"))?;
        if let Some(name) = netdev {
            std::fs::create_dir_all(vf_dir.join("net").join(name))?;
        }
    }
    Ok(())
}

/// A netdevsim device: a PF with real VF netlink state (full-kernel tier only). It
/// is created in the calling thread's netns (the sandbox's) and deleted on drop.
pub struct Netdevsim {
    pub id: u32,
    pub pf: String,
}

impl Netdevsim {
    /// `None` after a loud skip when the kernel has no netdevsim.
    pub fn new(test: &str, pf_name: &str, vfs: u32) -> Option<Netdevsim> {
        let bus = Path::new("/sys/bus/netdevsim");
        if !bus.exists() {
            kernel_feature_missing(test, "netdevsim");
            return None;
        }
        // A device ID unique on the machine while tests run in parallel.
        let id = 1000 + (std::process::id() % 50_000) * 7 % 40_000 + rand_small();
        std::fs::write(bus.join("new_device"), format!("{id} 1"))
            .expect("create a netdevsim device");
        let net = bus.join(format!("devices/netdevsim{id}/net"));
        let mut current = None;
        for _ in 0..100 {
            current = std::fs::read_dir(&net)
                .ok()
                .and_then(|mut d| d.next())
                .and_then(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned());
            if current.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let current = current.expect("netdevsim created its PF netdev");
        if vfs > 4 {
            // netdevsim allows 4 VFs unless debugfs raises the limit (the sandbox's
            // fresh sysfs has debugfs unmounted).
            if !Path::new("/sys/kernel/debug/netdevsim").exists() {
                let _ = nix::mount::mount(
                    Some("debugfs"),
                    "/sys/kernel/debug",
                    Some("debugfs"),
                    nix::mount::MsFlags::empty(),
                    None::<&str>,
                );
            }
            std::fs::write(
                format!("/sys/kernel/debug/netdevsim/netdevsim{id}/max_vfs"),
                vfs.to_string(),
            )
            .expect("raise netdevsim's VF limit");
        }
        std::fs::write(
            bus.join(format!("devices/netdevsim{id}/sriov_numvfs")),
            vfs.to_string(),
        )
        .expect("enable VFs");
        sh(&["ip", "link", "set", &current, "name", pf_name]);
        sh(&["ip", "link", "set", pf_name, "up"]);
        Some(Netdevsim {
            id,
            pf: pf_name.to_string(),
        })
    }
}

fn rand_small() -> u32 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    nanos % 997
}

impl Drop for Netdevsim {
    fn drop(&mut self) {
        let _ = std::fs::write("/sys/bus/netdevsim/del_device", self.id.to_string());
    }
}

/// A throwaway dpkg root (`dpkg --root`): packages install into it, and the
/// machine's own package database is never touched.
pub struct DpkgRoot {
    pub path: PathBuf,
}

impl DpkgRoot {
    pub fn new(path: PathBuf) -> Self {
        for dir in [
            "var/lib/dpkg/info",
            "var/lib/dpkg/updates",
            "var/lib/dpkg/triggers",
        ] {
            std::fs::create_dir_all(path.join(dir)).unwrap();
        }
        std::fs::write(path.join("var/lib/dpkg/status"), "").unwrap();
        DpkgRoot { path }
    }

    /// `dpkg ARGS` on this root (maintainer scripts run outside a chroot).
    pub fn dpkg(&self, args: &[&str]) -> String {
        run_checked(
            Command::new("dpkg")
                .arg(format!("--root={}", self.path.display()))
                .arg("--force-script-chrootless")
                .args(args),
            &format!("dpkg {args:?}"),
        )
    }
}

/// A scratch directory for tests that need no namespaces (no root needed).
pub fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("cni-test-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
