//! The benchmark driver behind scripts/bench.sh: our plugins and the Go ones from
//! Debian's containernetworking-plugins, with the same configs, in alternating runs,
//! inside namespaces of its own. Prints and writes median, p95 and peak RSS, and
//! the ratio ours/Go. Not a test: figures, side by side.
//!
//!   cni-bench OURS_DIR GO_DIR OUT.md OUT.svg   the host scenarios
//!   cni-bench sriov OURS_DIR OUT.md            SR-IOV, on the full-kernel tier
//!   cni-bench nftables OURS_DIR GO_DIR         only the rows of the nftables goals,
//!                                              printed (a quick look while working)
//!   cni-bench ipspoofchk OURS_DIR GO_DIR       only ipspoofchk's rows and goals,
//!                                              printed

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use libcni::netlink::nftables::Expr;
use serde_json::{json, Value};
use testkit::{sh, Sandbox};

/// One run: wall time and the peak RSS of the plugin process (wait4's rusage).
#[derive(Clone, Copy)]
struct Sample {
    time: Duration,
    rss_kib: i64,
}

fn run(binary: &Path, env: &[(&str, String)], stdin: &[u8], expect_ok: bool) -> Sample {
    run_with_output(binary, env, stdin, expect_ok).0
}

/// [`run`], with what the plugin printed. The plugin is started by a launcher (this
/// binary, `--launch`), which forks and execs it, times it and reads its rusage: a
/// process's peak RSS starts at the size of the process it was forked from, and the
/// launcher is small while this process grows with the scenarios' setups.
fn run_with_output(
    binary: &Path,
    env: &[(&str, String)],
    stdin: &[u8],
    expect_ok: bool,
) -> (Sample, Vec<u8>) {
    let report = tempfile_path();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("--launch")
        .arg(&report)
        .arg(binary)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{}: {e}", binary.display()));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_default();
    let _ = std::fs::remove_file(&report);
    let fields: Vec<i64> = text
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    let [status, nanos, rss_kib] = fields[..] else {
        panic!("the launcher of {} reported {text:?}", binary.display());
    };
    if expect_ok && status != 0 {
        panic!(
            "{} failed: {}{}",
            binary.display(),
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    (
        Sample {
            time: Duration::from_nanos(nanos as u64),
            rss_kib,
        },
        output.stdout,
    )
}

static REPORT_DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// Removes the launchers' report directory, once the run is over.
fn remove_reports() {
    if let Some(dir) = REPORT_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// A fresh path for one launcher's report, in a directory of this run's own (made
/// 0700 and new: the launcher, as root, never writes through someone's symlink).
fn tempfile_path() -> PathBuf {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let dir = REPORT_DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("cni-bench-{}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        dir
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    dir.join(format!("report-{n}"))
}

/// `cni-bench --launch REPORT PLUGIN`: runs PLUGIN with this process's environment
/// and standard streams, and writes "<wait status> <nanoseconds> <peak RSS KiB>" to
/// REPORT. Forked from this small process, the plugin's peak RSS is its own.
fn launch(report: &str, plugin: &str) -> ! {
    use std::ffi::CString;
    let path = CString::new(plugin).unwrap();
    let argv = [path.as_ptr(), std::ptr::null()];
    let start = Instant::now();
    // SAFETY: this process is single-threaded here; the child only execs or exits.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        unsafe {
            libc::execv(path.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    assert!(pid > 0, "fork failed");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, into locals.
    unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let nanos = start.elapsed().as_nanos();
    std::fs::write(report, format!("{status} {nanos} {}", usage.ru_maxrss)).unwrap();
    std::process::exit(if status == 0 { 0 } else { 1 });
}

struct Stats {
    median: Duration,
    p95: Duration,
    rss_kib: i64,
}

fn stats(samples: &[Sample]) -> Stats {
    let mut times: Vec<Duration> = samples.iter().map(|s| s.time).collect();
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    Stats {
        median: at(0.5),
        p95: at(0.95),
        rss_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
    }
}

struct Row {
    scenario: String,
    ours: Stats,
    go: Option<Stats>,
}

fn attach_env(
    command: &str,
    cid: &str,
    netns: &str,
    ifname: &str,
    cni_path: &Path,
) -> Vec<(&'static str, String)> {
    vec![
        ("CNI_COMMAND", command.to_string()),
        ("CNI_CONTAINERID", cid.to_string()),
        ("CNI_NETNS", netns.to_string()),
        ("CNI_IFNAME", ifname.to_string()),
        ("CNI_PATH", cni_path.display().to_string()),
    ]
}

struct Impl {
    name: &'static str,
    dir: PathBuf,
}

/// ADD then DEL `iterations` times for each implementation, in turn.
fn add_del(
    impls: &[Impl],
    iterations: usize,
    plugin: &str,
    netns: &str,
    conf: &dyn Fn(&Impl) -> Value,
) -> (Vec<Vec<Sample>>, Vec<Vec<Sample>>) {
    add_del_then(impls, iterations, plugin, netns, conf, &mut || {})
}

/// [`add_del`], running `after_each` after each measured round.
fn add_del_then(
    impls: &[Impl],
    iterations: usize,
    plugin: &str,
    netns: &str,
    conf: &dyn Fn(&Impl) -> Value,
    after_each: &mut dyn FnMut(),
) -> (Vec<Vec<Sample>>, Vec<Vec<Sample>>) {
    let mut adds = vec![Vec::new(); impls.len()];
    let mut dels = vec![Vec::new(); impls.len()];
    for i in 0..iterations + 2 {
        // Each round starts one implementation later, so that over the rounds each
        // one follows each (itself included) about as often: a plugin's time depends
        // on what ran just before it (our DEL right after a Go DEL is faster).
        for n in (0..impls.len()).map(|k| (k + i) % impls.len()) {
            let imp = &impls[n];
            let mut c = conf(imp);
            let cid = format!("bench{i}");
            let binary = imp.dir.join(plugin);
            let (add, result) = run_with_output(
                &binary,
                &attach_env("ADD", &cid, netns, "eth0", &imp.dir),
                c.to_string().as_bytes(),
                true,
            );
            // DEL gets the ADD's result as prevResult, as a runtime passes it.
            c["prevResult"] = serde_json::from_slice(&result).expect("ADD printed a result");
            let del = run(
                &binary,
                &attach_env("DEL", &cid, netns, "eth0", &imp.dir),
                c.to_string().as_bytes(),
                true,
            );
            if i >= 2 {
                // The first two rounds warm up (bridge, nftables table, data directories).
                adds[n].push(add);
                dels[n].push(del);
            }
        }
        if i >= 2 {
            after_each();
        }
    }
    (adds, dels)
}

fn pair(scenario: &str, samples: &[Vec<Sample>]) -> Row {
    Row {
        scenario: scenario.to_string(),
        ours: stats(&samples[0]),
        go: samples.get(1).map(|s| stats(s)),
    }
}

/// `count` attachments' worth of macspoofchk rules, as the Go plugin writes them,
/// each with `ip_rules` (ipspoofchk's, as `nft list` prints them without their
/// comment: see [`ipspoofchk_rule_text`]) after its jump, as ours writes them.
fn populate_spoofcheck(count: usize, ip_rules: &[String]) {
    let mut script = String::from("add table bridge nat\nadd chain bridge nat PREROUTING { type filter hook prerouting priority -300; policy accept; }\n");
    for i in 0..count {
        let r = format!("filler{i}-eth0");
        let _ = writeln!(
            script,
            "add chain bridge nat cni-br-iface-{r}\nadd chain bridge nat cni-br-iface-{r}-mac"
        );
        let _ = writeln!(script, "add rule bridge nat PREROUTING iifname \"vfill{i}\" jump cni-br-iface-{r} comment \"macspoofchk-{r}\"");
        let _ = writeln!(script, "add rule bridge nat cni-br-iface-{r} jump cni-br-iface-{r}-mac comment \"macspoofchk-{r}\"");
        let _ = writeln!(script, "add rule bridge nat cni-br-iface-{r}-mac ether saddr 02:00:00:00:00:01 return comment \"macspoofchk-{r}\"");
        let _ = writeln!(
            script,
            "add rule bridge nat cni-br-iface-{r}-mac drop comment \"macspoofchk-{r}\""
        );
        for rule in ip_rules {
            let _ = writeln!(
                script,
                "add rule bridge nat cni-br-iface-{r} {rule} comment \"ipspoofchk-{r}\""
            );
        }
    }
    let mut nft = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    nft.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(nft.wait().unwrap().success());
}

fn populate_host_local(dir: &Path, network: &str, count: u32) {
    let net = dir.join(network);
    std::fs::create_dir_all(&net).unwrap();
    for n in 0..count {
        let ip = std::net::Ipv4Addr::from(u32::from(std::net::Ipv4Addr::new(10, 140, 0, 10)) + n);
        std::fs::write(net.join(ip.to_string()), format!("filler{n}\r\neth0")).unwrap();
    }
}

/// Bridge ADD and DEL with no IPAM, ours beside Go.
fn layer2_rows(impls: &[Impl], n: usize, netns: &str) -> Vec<Row> {
    let (a, d) = add_del(
        impls,
        n,
        "bridge",
        netns,
        &|imp| json!({"cniVersion": "1.0.0", "name": "l2", "type": "bridge", "bridge": format!("l2{}", imp.name)}),
    );
    vec![
        pair("bridge ADD, layer 2", &a),
        pair("bridge DEL, layer 2", &d),
    ]
}

/// The kernel's share of a macspoofchk ADD and DEL: bridge's own two transactions
/// (the ADD's creates and rules, the DEL's deletions), sent from this process and
/// timed around the commit alone, which the kernel carries out inside the send. One
/// sample after each plugin ADD and DEL, so that the caches are as a plugin finds
/// them, each on a socket of its own, closed (waiting out the DEL's RCU grace period)
/// before the next plugin runs. With `ip_rules`, the ADD's transaction carries
/// ipspoofchk's rules too, as ours sends them.
#[derive(Default)]
struct KernelShare {
    adds: Vec<Sample>,
    dels: Vec<Sample>,
    /// DEL's read before its transaction (`installed`: both chains, the rules of
    /// `cni-br-iface-<ref>` and the jump into it), timed by itself: the kernel's
    /// dumps and our parsing of them. Only ipspoofchk's rows report it.
    reads: Vec<Sample>,
    /// ipspoofchk's rules (empty: macspoofchk alone).
    ip_rules: Vec<Vec<Expr>>,
    /// Tells the rows apart from other scenarios' (see [`kernel_row`]).
    scope: &'static str,
}

/// The name of a [`KernelShare`] row of `scope` ("" or " (...)"): `part` is "ADD
/// transaction", "DEL transaction" or [`DEL_READ`].
fn kernel_row(scope: &str, what: &str, part: &str, others: &str) -> String {
    let kind = if part == DEL_READ {
        "kernel and parse"
    } else {
        "kernel"
    };
    format!("{kind}{scope}: {what} {part}, {others} other attachments")
}

const DEL_READ: &str = "DEL's read of its rules";

impl KernelShare {
    fn sample(&mut self) {
        use bridge::spoofcheck;
        let timed = |f: &mut dyn FnMut()| {
            let start = Instant::now();
            f();
            Sample {
                time: start.elapsed(),
                rss_kib: 0,
            }
        };
        let mut nft = libcni::netlink::nftables::Nftables::open().expect("nf_tables");
        let tag = if self.ip_rules.is_empty() { "" } else { "ip" };
        let reference = format!("kfloor{tag}{}-eth0", self.adds.len());
        let existing = spoofcheck::existing(&mut nft, &reference).unwrap();
        assert!(existing.base_chain, "the plugin runs made the base chain");
        self.adds.push(timed(&mut || {
            spoofcheck::setup(
                &mut nft,
                "vkfloor",
                libcni::mac::MacAddr([2, 0, 0, 0, 0, 1]),
                &reference,
                &existing,
                &self.ip_rules,
            )
            .unwrap()
        }));
        let mut installed = None;
        self.reads.push(timed(&mut || {
            installed = Some(spoofcheck::installed(&mut nft, &reference).unwrap())
        }));
        let installed = installed.unwrap();
        self.dels.push(timed(&mut || {
            nft.commit(spoofcheck::teardown_batch(&reference, &installed))
                .unwrap()
        }));
    }

    fn what(&self) -> &'static str {
        if self.ip_rules.is_empty() {
            "macspoofchk"
        } else {
            "ipspoofchk"
        }
    }

    /// The row of DEL's reads (see `reads`).
    fn read_row(&mut self, others: &str) -> Row {
        pair(
            &kernel_row(self.scope, self.what(), DEL_READ, others),
            &[std::mem::take(&mut self.reads)],
        )
    }

    fn rows(self, others: &str) -> Vec<Row> {
        let (scope, what) = (self.scope, self.what());
        vec![
            pair(
                &kernel_row(scope, what, "ADD transaction", others),
                &[self.adds],
            ),
            pair(
                &kernel_row(scope, what, "DEL transaction", others),
                &[self.dels],
            ),
        ]
    }
}

/// The name of a row of the goals' pairs: our macspoofchk and layer-2 bridge, run in
/// turn with nothing else between them.
fn goal_row(verb: &str, macspoofchk: bool, others: &str) -> String {
    let what = if macspoofchk {
        "macspoofchk"
    } else {
        "layer 2"
    };
    format!("goal pair, {others} other attachments: ours, bridge {verb}, {what}")
}

/// Our macspoofchk ADD and DEL in turn with our layer-2 ones, for the goals. A
/// plugin's time depends on what ran just before it (the kernel's RCU work left by
/// the previous DEL, and a Go run with its `nft` leaves the next one faster), so
/// the two sides of a ratio are measured alternately, as the ours/Go pairs are.
fn goal_pair_rows(ours: &Impl, netns: &str, others: &str) -> Vec<Row> {
    // DEL's spread (RCU waits) makes a median of 40 move by more than the goals'
    // margins between runs (and one of 200 by up to 7%): the pairs take more rounds.
    let n = 400;
    let pair_impls = [
        Impl {
            name: "gsp",
            dir: ours.dir.clone(),
        },
        Impl {
            name: "gl2",
            dir: ours.dir.clone(),
        },
    ];
    let conf = |imp: &Impl| json!({"cniVersion": "1.0.0", "name": "gp", "type": "bridge", "bridge": imp.name, "macspoofchk": imp.name == "gsp"});
    let (a, d) = add_del(&pair_impls, n, "bridge", netns, &conf);
    let mut rows = Vec::new();
    for (verb, samples) in [("ADD", &a), ("DEL", &d)] {
        for (k, macspoofchk) in [(0, true), (1, false)] {
            rows.push(pair(&goal_row(verb, macspoofchk, others), &samples[k..=k]));
        }
    }
    rows
}

/// The kernel rows: our macspoofchk ADD and DEL (unmeasured, so that the caches are
/// as a plugin finds them) each followed by a [`KernelShare`] sample.
fn kernel_rows(ours: &Impl, n: usize, netns: &str, others: &str) -> Vec<Row> {
    let conf = |_: &Impl| json!({"cniVersion": "1.0.0", "name": "ks", "type": "bridge", "bridge": "ks", "macspoofchk": true});
    let mut kernel = KernelShare::default();
    let own = Impl {
        name: ours.name,
        dir: ours.dir.clone(),
    };
    add_del_then(&[own], n, "bridge", netns, &conf, &mut || kernel.sample());
    kernel.rows(others)
}

/// macspoofchk with 0, 2,000 and 10,000 other attachments on the node: ours beside
/// Go (not at 10,000, where Go reads the whole ruleset per call), the goals' pairs,
/// and the kernel's share.
fn spoofcheck_rows(impls: &[Impl], n: usize, netns: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let spoof = |imp: &Impl| json!({"cniVersion": "1.0.0", "name": "sp", "type": "bridge", "bridge": format!("sp{}", imp.name), "macspoofchk": true});
    let (a, d) = add_del(impls, n, "bridge", netns, &spoof);
    rows.push(pair("bridge ADD, macspoofchk, 0 other attachments", &a));
    rows.push(pair("bridge DEL, macspoofchk, 0 other attachments", &d));
    rows.extend(goal_pair_rows(&impls[0], netns, "0"));
    rows.extend(kernel_rows(&impls[0], n, netns, "0"));
    populate_spoofcheck(2000, &[]);
    let (a, d) = add_del(impls, 20, "bridge", netns, &spoof);
    rows.push(pair("bridge ADD, macspoofchk, 2,000 other attachments", &a));
    rows.push(pair("bridge DEL, macspoofchk, 2,000 other attachments", &d));
    sh(&["nft", "flush", "ruleset"]);
    populate_spoofcheck(10_000, &[]);
    rows.extend(goal_pair_rows(&impls[0], netns, "10,000"));
    rows.extend(kernel_rows(&impls[0], n, netns, "10,000"));
    sh(&["nft", "flush", "ruleset"]);
    rows
}

/// ipspoofchk's config on `bridge` (with `ipspoofchk` false: macspoofchk alone, the
/// same IPAM). The IPAM is our `static`, one address and no gateway: ipspoofchk
/// needs an IPAM, and this is the cheapest (run in-process from the multi-call
/// binary, no files written or locked, nothing on the host), so beside a layer-2
/// ADD, which has none, the ratio counts as little of the IPAM as an ipspoofchk
/// ADD can have.
/// host-local would add its lock, its files and their release to both verbs, a cost
/// of IPAM rather than of the filter (the layer-3 rows show it).
fn ipspoofchk_conf(bridge: &str, ipspoofchk: bool) -> Value {
    json!({"cniVersion": "1.0.0", "name": "ipsp", "type": "bridge", "bridge": bridge, "macspoofchk": true, "ipspoofchk": ipspoofchk,
        "ipam": {"type": "static", "addresses": [{"address": "10.170.0.2/24"}]}})
}

/// The sides of ipspoofchk's pairs beside the ipspoofchk bridge.
const IPSPOOFCHK: &str = "ipspoofchk (static)";
const MACSPOOFCHK_STATIC: &str = "macspoofchk (static)";
const LAYER2: &str = "layer 2";

/// The name of a row of ipspoofchk's pairs: our ipspoofchk bridge and `against` (our
/// layer-2 bridge, or our macspoofchk bridge with the same IPAM), run in turn with
/// nothing else between them; `side` is the row's own.
fn ipspoofchk_row(verb: &str, side: &str, against: &str, others: &str) -> String {
    format!(
        "ipspoofchk pair with {against}, {others} other attachments: ours, bridge {verb}, {side}"
    )
}

/// Our ipspoofchk ADD and DEL in turn with `against`'s (`conf`, on a bridge of its
/// own), as [`goal_pair_rows`] runs its pair, with `after_each` after each measured
/// round.
fn ipspoofchk_pair_rows(
    ours: &Impl,
    n: usize,
    netns: &str,
    others: &str,
    (against, conf): (&str, Value),
    after_each: &mut dyn FnMut(),
) -> Vec<Row> {
    let sides = [
        Impl {
            name: "gip",
            dir: ours.dir.clone(),
        },
        Impl {
            name: "against",
            dir: ours.dir.clone(),
        },
    ];
    let ip = ipspoofchk_conf("gip", true);
    let conf = |imp: &Impl| {
        if imp.name == "gip" {
            ip.clone()
        } else {
            conf.clone()
        }
    };
    let (a, d) = add_del_then(&sides, n, "bridge", netns, &conf, after_each);
    let mut rows = Vec::new();
    for (verb, samples) in [("ADD", &a), ("DEL", &d)] {
        for (k, side) in [(0, IPSPOOFCHK), (1, against)] {
            rows.push(pair(
                &ipspoofchk_row(verb, side, against, others),
                &samples[k..=k],
            ));
        }
    }
    rows
}

/// ipspoofchk's rules as `nft list chain` prints them for a real attachment (one ADD
/// of ours with [`ipspoofchk_conf`], then its DEL), each without its comment: the
/// text a script would give `nft`. And that ADD's result, for the kernel's share.
fn ipspoofchk_rule_text(ours: &Impl, netns: &str) -> (Vec<String>, libcni::CniResult) {
    let mut conf = ipspoofchk_conf("gip", true);
    let binary = ours.dir.join("bridge");
    let (_, result) = run_with_output(
        &binary,
        &attach_env("ADD", "iptext", netns, "eth0", &ours.dir),
        conf.to_string().as_bytes(),
        true,
    );
    let comment = " comment \"ipspoofchk-iptext-eth0\"";
    let text: Vec<String> = sh(&[
        "nft",
        "list",
        "chain",
        "bridge",
        "nat",
        "cni-br-iface-iptext-eth0",
    ])
    .lines()
    .filter_map(|l| l.trim().strip_suffix(comment).map(str::to_string))
    .collect();
    assert!(!text.is_empty(), "ipspoofchk wrote no rules");
    let (parsed, _) =
        libcni::CniResult::from_plugin_output(&result, libcni::spec::version::SpecVersion::V1_0_0)
            .expect("ADD printed a result");
    conf["prevResult"] = serde_json::from_slice(&result).unwrap();
    run(
        &binary,
        &attach_env("DEL", "iptext", netns, "eth0", &ours.dir),
        conf.to_string().as_bytes(),
        true,
    );
    (text, parsed)
}

/// Goal 2's floor: `nft -f FILE` adding ipspoofchk's rules (`text`, as
/// [`ipspoofchk_rule_text`] read them) to an attachment's `cni-br-iface-<ref>`
/// chain, as a script would after a macspoofchk ADD; `nft` runs as a process. The
/// attachment's macspoofchk chains are written before (over netlink, as the
/// [`KernelShare`] writes them) and removed after, untimed, each on a socket of its
/// own. nft's bytecode for the text is the same rules (it matches the ethertype
/// with a payload load where ours loads `meta protocol`, and merges two adjacent
/// loads: 162 expressions to our 164).
#[derive(Default)]
struct NftFloor {
    samples: Vec<Sample>,
}

impl NftFloor {
    fn sample(&mut self, text: &[String]) {
        use bridge::spoofcheck;
        use libcni::netlink::nftables::Nftables;
        let reference = format!("nfloor{}-eth0", self.samples.len());
        {
            let mut nft = Nftables::open().expect("nf_tables");
            let existing = spoofcheck::existing(&mut nft, &reference).unwrap();
            spoofcheck::setup(
                &mut nft,
                "vnfloor",
                libcni::mac::MacAddr([2, 0, 0, 0, 0, 1]),
                &reference,
                &existing,
                &[],
            )
            .unwrap();
        }
        let mut script = String::new();
        for rule in text {
            let _ = writeln!(
                script,
                "add rule bridge nat cni-br-iface-{reference} {rule} comment \"ipspoofchk-{reference}\""
            );
        }
        let file = tempfile_path();
        std::fs::write(&file, script).unwrap();
        let start = Instant::now();
        let status = Command::new("nft").arg("-f").arg(&file).status().unwrap();
        let time = start.elapsed();
        assert!(status.success(), "nft -f {} failed", file.display());
        let _ = std::fs::remove_file(&file);
        self.samples.push(Sample { time, rss_kib: 0 });
        let mut nft = Nftables::open().expect("nf_tables");
        let installed = spoofcheck::installed(&mut nft, &reference).unwrap();
        nft.commit(spoofcheck::teardown_batch(&reference, &installed))
            .unwrap();
    }

    fn row(self, others: &str) -> Row {
        pair(&nft_floor_row(others), &[self.samples])
    }
}

fn nft_floor_row(others: &str) -> String {
    format!("floor: nft -f adding ipspoofchk's rules to an attachment's chain, {others} other attachments")
}

/// Rounds of the ipspoofchk pairs with no other attachment: as [`goal_pair_rows`]'s.
const IPSPOOFCHK_PAIR_ROUNDS: usize = 400;
/// Rounds with 10,000, where an ADD takes tens of milliseconds: each round also
/// takes the kernel's two samples and the floor's, and goal 2 compares a difference
/// of a few milliseconds with a floor of about a hundred.
const IPSPOOFCHK_CROWDED_ROUNDS: usize = 100;

/// ipspoofchk (macspoofchk and the IP filter, static IPAM): ours beside Go, which
/// ignores the key (so Go's is its macspoofchk layer-3 ADD); our pairs with our
/// layer-2 bridge (goal 1) and with our macspoofchk bridge of the same IPAM (the
/// filter's own cost); and, with 10,000 other attachments, that pair again, the
/// kernel's share with and without the filter's rules, and `nft` adding those rules
/// (goal 2).
fn ipspoofchk_rows(impls: &[Impl], n: usize, netns: &str) -> Vec<Row> {
    let mut rows = Vec::new();
    let (a, d) = add_del(impls, n, "bridge", netns, &|imp| {
        ipspoofchk_conf(&format!("ip{}", imp.name), true)
    });
    rows.push(pair(
        "bridge ADD, ipspoofchk (static; Go ignores the key), 0 other attachments",
        &a,
    ));
    rows.push(pair(
        "bridge DEL, ipspoofchk (static; Go ignores the key), 0 other attachments",
        &d,
    ));
    let ours = &impls[0];
    let layer2 = json!({"cniVersion": "1.0.0", "name": "ipsp", "type": "bridge", "bridge": "gl2"});
    rows.extend(ipspoofchk_pair_rows(
        ours,
        IPSPOOFCHK_PAIR_ROUNDS,
        netns,
        "0",
        (LAYER2, layer2),
        &mut || {},
    ));
    let (text, result) = ipspoofchk_rule_text(ours, netns);
    println!(
        "ipspoofchk: {} rules per attachment (static IPAM, one IPv4 address)",
        text.len()
    );
    let mac = libcni::mac::MacAddr([2, 0, 0, 0, 0, 1]);
    let ip_rules = bridge::spoofcheck::IpFilter::of(mac, &result)
        .expect("the ADD's addresses")
        .rules();
    rows.extend(ipspoofchk_filter_rows(
        ours,
        IPSPOOFCHK_PAIR_ROUNDS,
        netns,
        "0",
        &ip_rules,
        None,
    ));
    // The other attachments have ipspoofchk's rules too: a node whose network turns
    // it on has them in every attachment's chain. That is also the harder case for
    // an ADD: each transaction with a jump makes the kernel validate every chain
    // reachable from PREROUTING, so their rules are walked at every ADD (ours with
    // or without the filter alike, and nft's).
    populate_spoofcheck(10_000, &text);
    rows.extend(ipspoofchk_filter_rows(
        ours,
        IPSPOOFCHK_CROWDED_ROUNDS,
        netns,
        CROWDED,
        &ip_rules,
        Some(&text),
    ));
    sh(&["nft", "flush", "ruleset"]);
    rows
}

/// The scope of the kernel rows of ipspoofchk's pairs: the macspoofchk rows have
/// their own.
const IPSPOOFCHK_SCOPE: &str = " (ipspoofchk pairs)";

/// The 10,000 other attachments of ipspoofchk's rows, each with macspoofchk's
/// chains and ipspoofchk's rules (see [`ipspoofchk_rows`]); in row names, beside
/// the macspoofchk rows' 10,000 without them.
const CROWDED: &str = "10,000 (ipspoofchk)";

/// Our ipspoofchk bridge in turn with our macspoofchk bridge of the same IPAM (the
/// filter's own cost), with `others` other attachments. Each round is followed by
/// the kernel's samples with `ip_rules` and without (in turn), and, given the
/// rules' `floor` text, by the floor's sample.
fn ipspoofchk_filter_rows(
    ours: &Impl,
    n: usize,
    netns: &str,
    others: &str,
    ip_rules: &[Vec<Expr>],
    floor: Option<&[String]>,
) -> Vec<Row> {
    let mut kernel = [
        KernelShare {
            ip_rules: ip_rules.to_vec(),
            scope: IPSPOOFCHK_SCOPE,
            ..KernelShare::default()
        },
        KernelShare {
            scope: IPSPOOFCHK_SCOPE,
            ..KernelShare::default()
        },
    ];
    let mut nft_floor = NftFloor::default();
    let mut round = 0;
    let mut rows = ipspoofchk_pair_rows(
        ours,
        n,
        netns,
        others,
        (MACSPOOFCHK_STATIC, ipspoofchk_conf("gm3", false)),
        &mut || {
            // Each round starts with the other one, as the plugins' rounds do.
            for k in [round % 2, 1 - round % 2] {
                kernel[k].sample();
            }
            if let Some(text) = floor {
                nft_floor.sample(text);
            }
            round += 1;
        },
    );
    for mut share in kernel {
        rows.push(share.read_row(others));
        rows.extend(share.rows(others));
    }
    if floor.is_some() {
        rows.push(nft_floor.row(others));
    }
    rows
}

/// ipspoofchk's goals, from our own medians: 1. its ADD and DEL against the layer-2
/// ones; 2. what it adds to an ADD with 10,000 other attachments against `nft`
/// adding the same rules. Beside them, not goals: the filter's own cost (against
/// macspoofchk with the same IPAM), and its parts the benchmark times alone.
fn ipspoofchk_goals(rows: &[Row]) -> String {
    let median = |name: &str| {
        rows.iter()
            .find(|r| r.scenario == name)
            .map(|r| r.ours.median.as_secs_f64())
    };
    let verdict = |met: bool| if met { "met" } else { "missed" };
    let mut out = String::from("\n### ipspoofchk: the goals\n\nFrom the ipspoofchk pairs: our ipspoofchk bridge run in turn with our layer-2 bridge, and with our macspoofchk bridge of the same IPAM (static). \"10,000 (ipspoofchk)\": 10,000 other attachments, each with macspoofchk's chains and ipspoofchk's rules.\n\n| figure (ours, medians) | goal | measured |\n|---|---|---|\n");
    for verb in ["ADD", "DEL"] {
        let goal = if verb == "ADD" { 1.3 } else { 1.1 };
        for (what, against, others, goal) in [
            (
                format!("ipspoofchk {verb} / layer-2 {verb}"),
                LAYER2,
                "0",
                Some(goal),
            ),
            // Not goals: the filter's own share, against the same config without it.
            (
                format!("ipspoofchk {verb} / macspoofchk {verb} (static)"),
                MACSPOOFCHK_STATIC,
                "0",
                None,
            ),
            (
                format!(
                    "ipspoofchk {verb} / macspoofchk {verb} (static), {CROWDED} other attachments"
                ),
                MACSPOOFCHK_STATIC,
                CROWDED,
                None,
            ),
        ] {
            let over = median(&ipspoofchk_row(verb, IPSPOOFCHK, against, others));
            let under = median(&ipspoofchk_row(verb, against, against, others));
            if let (Some(a), Some(b)) = (over, under) {
                let ratio = a / b;
                let _ = match goal {
                    Some(goal) => writeln!(
                        out,
                        "| {what} | at most {goal:.1}x | {ratio:.2}x ({}) |",
                        verdict(ratio <= goal)
                    ),
                    None => writeln!(out, "| {what} | (not a goal) | {ratio:.2}x |"),
                };
            }
        }
    }
    let ms = |seconds: f64| format!("{:.2} ms", seconds * 1000.0);
    let crowded_add =
        |side: &str| median(&ipspoofchk_row("ADD", side, MACSPOOFCHK_STATIC, CROWDED));
    if let (Some(with), Some(without), Some(floor)) = (
        crowded_add(IPSPOOFCHK),
        crowded_add(MACSPOOFCHK_STATIC),
        median(&nft_floor_row(CROWDED)),
    ) {
        let added = with - without;
        let _ = writeln!(
            out,
            "| what ipspoofchk adds to an ADD, {CROWDED} other attachments (ipspoofchk ADD - macspoofchk ADD) | at most nft -f's {} | {} ({}) |",
            ms(floor),
            ms(added),
            verdict(added <= floor)
        );
    }
    for others in ["0", CROWDED] {
        for (what, part) in [
            (
                "the filter's kernel share of ADD (ADD transactions)",
                "ADD transaction",
            ),
            (
                "the filter's kernel share of DEL (DEL transactions)",
                "DEL transaction",
            ),
            ("the filter's cost in DEL's read of its rules", DEL_READ),
        ] {
            let kernel =
                |spoofchk: &str| median(&kernel_row(IPSPOOFCHK_SCOPE, spoofchk, part, others));
            if let (Some(with), Some(without)) = (kernel("ipspoofchk"), kernel("macspoofchk")) {
                let _ = writeln!(
                    out,
                    "| {what}, {others} other attachments: ipspoofchk - macspoofchk | (not a goal) | {} |",
                    ms(with - without)
                );
            }
        }
    }
    out
}

fn both(ours: &Path, go: &Path) -> [Impl; 2] {
    [
        Impl {
            name: "ours",
            dir: ours.to_path_buf(),
        },
        Impl {
            name: "go",
            dir: go.to_path_buf(),
        },
    ]
}

/// ipspoofchk's rows, alone.
fn ipspoofchk_scenarios(ours: &Path, go: &Path) -> Vec<Row> {
    let _sb = Sandbox::new("cni-bench").expect("the benchmark needs root");
    let impls = both(ours, go);
    sh(&["ip", "netns", "add", "p"]);
    ipspoofchk_rows(&impls, 40, "/run/netns/p")
}

/// The rows the nftables goals are computed from, alone.
fn nftables_scenarios(ours: &Path, go: &Path) -> Vec<Row> {
    let _sb = Sandbox::new("cni-bench").expect("the benchmark needs root");
    let impls = both(ours, go);
    sh(&["ip", "netns", "add", "p"]);
    let mut rows = layer2_rows(&impls, 40, "/run/netns/p");
    rows.extend(spoofcheck_rows(&impls, 40, "/run/netns/p"));
    rows
}

fn host_scenarios(ours: &Path, go: &Path) -> Vec<Row> {
    let _sb = Sandbox::new("cni-bench").expect("the benchmark needs root");
    let scratch = PathBuf::from("/var/lib/cni/bench");
    std::fs::create_dir_all(&scratch).unwrap();
    let impls = both(ours, go);
    sh(&["ip", "netns", "add", "p"]);
    let netns = "/run/netns/p";
    let n = 40;
    let mut rows = vec![version_row(&impls)];
    rows.extend(layer2_rows(&impls, n, netns));
    rows.extend(layer3_rows(&impls, n, netns, &scratch));
    rows.extend(spoofcheck_rows(&impls, n, netns));
    rows.extend(ipspoofchk_rows(&impls, n, netns));
    rows.extend(macvlan_rows(&impls, n, netns, &scratch));
    rows.extend(host_local_rows(&impls, n, netns, &scratch));
    rows.push(parallel_row(&impls, &scratch));
    rows.extend(floor_rows(n));
    rows
}

fn version_row(impls: &[Impl]) -> Row {
    let mut version = vec![Vec::new(), Vec::new()];
    for _ in 0..200 {
        for (i, imp) in impls.iter().enumerate() {
            version[i].push(run(
                &imp.dir.join("bridge"),
                &[("CNI_COMMAND", "VERSION".into())],
                b"",
                true,
            ));
        }
    }
    pair("VERSION", &version)
}

/// host-local's data directory of one implementation for one scenario.
fn data_dir(scratch: &Path, imp: &Impl, tag: &str) -> PathBuf {
    scratch.join(format!("{tag}-{}", imp.name))
}

fn host_local_ipam(scratch: &Path, imp: &Impl, tag: &str, subnet: &str) -> Value {
    json!({"type": "host-local", "ranges": [[{"subnet": subnet}]], "dataDir": data_dir(scratch, imp, tag)})
}

fn layer3_rows(impls: &[Impl], n: usize, netns: &str, scratch: &Path) -> Vec<Row> {
    let (a, d) = add_del(
        impls,
        n,
        "bridge",
        netns,
        &|imp| json!({"cniVersion": "1.0.0", "name": "l3", "type": "bridge", "bridge": format!("l3{}", imp.name), "isGateway": true, "ipam": host_local_ipam(scratch, imp, "l3", "10.130.0.0/24")}),
    );
    vec![
        pair("bridge ADD, layer 3 (host-local)", &a),
        pair("bridge DEL, layer 3 (host-local)", &d),
    ]
}

fn macvlan_rows(impls: &[Impl], n: usize, netns: &str, scratch: &Path) -> Vec<Row> {
    testkit::veth_pair_up("bup0", "bup1");
    let (a, d) = add_del(
        impls,
        n,
        "macvlan",
        netns,
        &|imp| json!({"cniVersion": "1.0.0", "name": "mv", "type": "macvlan", "master": "bup0", "ipam": host_local_ipam(scratch, imp, "mv", "10.131.0.0/24")}),
    );
    vec![
        pair("macvlan ADD (host-local)", &a),
        pair("macvlan DEL (host-local)", &d),
    ]
}

/// host-local in an empty range, then in one with 10,000 allocations.
fn host_local_rows(impls: &[Impl], n: usize, netns: &str, scratch: &Path) -> Vec<Row> {
    let hl = |imp: &Impl, tag: &str| json!({"cniVersion": "1.0.0", "name": "hl", "type": "bridge", "ipam": host_local_ipam(scratch, imp, tag, "10.140.0.0/16")});
    let (a, d) = add_del(impls, n, "host-local", netns, &|imp| hl(imp, "hl-empty"));
    let mut rows = vec![
        pair("host-local ADD, empty range", &a),
        pair("host-local DEL, empty range", &d),
    ];
    for imp in impls {
        populate_host_local(&data_dir(scratch, imp, "hl-full"), "hl", 10_000);
    }
    let (a, d) = add_del(impls, n, "host-local", netns, &|imp| hl(imp, "hl-full"));
    rows.push(pair("host-local ADD, 10,000 allocated", &a));
    rows.push(pair("host-local DEL, 10,000 allocated", &d));
    rows
}

/// 50 parallel ADDs on one new bridge: the time until all are done.
fn parallel_row(impls: &[Impl], scratch: &Path) -> Row {
    let namespaces: Vec<String> = (0..50)
        .map(|i| {
            sh(&["ip", "netns", "add", &format!("par{i}")]);
            format!("/run/netns/par{i}")
        })
        .collect();
    let mut parallel = vec![Vec::new(), Vec::new()];
    for round in 0..5 {
        for (i, imp) in impls.iter().enumerate() {
            let conf = json!({"cniVersion": "1.0.0", "name": "par", "type": "bridge", "bridge": "parbr", "ipam": host_local_ipam(scratch, imp, &format!("par{round}"), "10.150.0.0/24")}).to_string();
            parallel[i].push(parallel_adds(imp, &namespaces, &conf));
            for (k, ns) in namespaces.iter().enumerate() {
                run(
                    &imp.dir.join("bridge"),
                    &attach_env("DEL", &format!("par{k}"), ns, "eth0", &imp.dir),
                    conf.as_bytes(),
                    true,
                );
            }
            sh(&["ip", "link", "del", "parbr"]);
        }
    }
    pair(
        "50 parallel bridge ADDs on a new bridge (all done)",
        &parallel,
    )
}

/// One ADD into each of `namespaces` at once: the time until all are done, and
/// the largest peak RSS among them.
fn parallel_adds(imp: &Impl, namespaces: &[String], conf: &str) -> Sample {
    let start = Instant::now();
    let handles: Vec<_> = namespaces
        .iter()
        .enumerate()
        .map(|(k, ns)| {
            let (binary, dir, conf, ns) = (
                imp.dir.join("bridge"),
                imp.dir.clone(),
                conf.to_string(),
                ns.clone(),
            );
            std::thread::spawn(move || {
                run(
                    &binary,
                    &attach_env("ADD", &format!("par{k}"), &ns, "eth0", &dir),
                    conf.as_bytes(),
                    true,
                )
            })
        })
        .collect();
    let rss = handles
        .into_iter()
        .map(|h| h.join().unwrap().rss_kib)
        .max()
        .unwrap_or(0);
    Sample {
        time: start.elapsed(),
        rss_kib: rss,
    }
}

/// The floor: the kernel's own cost, through `ip`, for the shape a plugin makes:
/// a veth pair whose container end is in another netns.
fn floor_rows(n: usize) -> Vec<Row> {
    let ip = PathBuf::from("/usr/sbin/ip");
    let timed = |args: &[&str]| {
        let start = Instant::now();
        let _ = Command::new(&ip).args(args).status();
        Sample {
            time: start.elapsed(),
            rss_kib: 0,
        }
    };
    let (mut add_veth, mut del_veth) = (Vec::new(), Vec::new());
    for _ in 0..n {
        add_veth.push(timed(&[
            "link", "add", "vfloorA", "type", "veth", "peer", "name", "eth0", "netns", "p",
        ]));
        del_veth.push(timed(&["-n", "p", "link", "del", "eth0"]));
    }
    vec![
        pair("floor: ip link add (veth, one end in a netns)", &[add_veth]),
        pair(
            "floor: ip link del (that veth, from its netns)",
            &[del_veth],
        ),
    ]
}

fn sriov_scenario(ours: &Path) -> Vec<Row> {
    let sb = Sandbox::new("cni-bench-sriov").expect("root");
    let nsim =
        testkit::Netdevsim::new("cni-bench-sriov", "pf0", 64).expect("netdevsim on this kernel");
    let sysfs = sb.scratch.join("sys");
    let vfs: Vec<(String, String)> = (0..64)
        .map(|n| {
            (
                format!("0000:af:{:02x}.{}", 6 + n / 8, n % 8),
                format!("vfn{n}"),
            )
        })
        .collect();
    testkit::fake_vfs(&sysfs, "0000:af:00.0", &nsim.pf, &vfs);
    sh(&["ip", "netns", "add", "s"]);
    let (mut adds, mut dels) = (Vec::new(), Vec::new());
    let mut phases = SriovPhases::default();
    for (i, (pci, _)) in vfs.iter().enumerate() {
        let conf = json!({"cniVersion": "1.1.0", "name": "sr", "type": "sriov", "deviceID": pci, "vlan": 100, "spoofchk": "off",
            "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.160.0.0/24"}]], "dataDir": sb.scratch.join("ipam")}}).to_string();
        adds.push(sriov_add(ours, &sysfs, i, &conf, &mut phases));
        let mut env = attach_env("DEL", &format!("s{i}"), "/run/netns/s", "net1", ours);
        env.push(("SYSFS_ROOT", sysfs.display().to_string()));
        dels.push(run(&ours.join("sriov"), &env, conf.as_bytes(), true));
    }
    let breakdown = phases.breakdown();
    vec![
        Row {
            scenario: format!("sriov ADD, PF with 64 VFs{breakdown}"),
            ours: stats(&adds),
            go: None,
        },
        Row {
            scenario: "sriov DEL, PF with 64 VFs".into(),
            ours: stats(&dels),
            go: None,
        },
    ]
}

/// Microseconds sriov's ADDs spent in all, in sysfs and in IPAM (its
/// `CNI_TRACE_TIMINGS` lines).
#[derive(Default)]
struct SriovPhases {
    total: u128,
    sysfs: u128,
    ipam: u128,
}

impl SriovPhases {
    /// Adds one ADD's trace (its stderr) to the sums.
    fn record(&mut self, log: &str) {
        let field = |name: &str| {
            log.split_whitespace()
                .find_map(|w| {
                    w.strip_prefix(&format!("{name}="))?
                        .strip_suffix("us")?
                        .parse::<u128>()
                        .ok()
                })
                .unwrap_or(0)
        };
        self.total += field("total");
        self.sysfs += field("sysfs");
        self.ipam += field("ipam");
    }

    /// The shares, printed and as the row's suffix. The per-phase traces exist only
    /// in builds with the `test-hooks` feature; a release build reports no breakdown
    /// rather than a made-up one.
    fn breakdown(&self) -> String {
        if self.total == 0 {
            println!("sriov ADD breakdown: not measured (build without the test-hooks feature)");
            return String::new();
        }
        let pct = |part: u128| part as f64 * 100.0 / self.total as f64;
        let (sysfs_pct, ipam_pct) = (pct(self.sysfs), pct(self.ipam));
        println!(
            "sriov ADD time in the plugin: sysfs {sysfs_pct:.1}%, IPAM {ipam_pct:.1}%, netlink and the rest {:.1}%",
            100.0 - sysfs_pct - ipam_pct
        );
        format!(
            " (sysfs {sysfs_pct:.0}%, IPAM {ipam_pct:.0}%, netlink and rest {:.0}%)",
            100.0 - sysfs_pct - ipam_pct
        )
    }
}

/// One timed sriov ADD of attachment `s<i>`, its phases added to `phases`.
fn sriov_add(ours: &Path, sysfs: &Path, i: usize, conf: &str, phases: &mut SriovPhases) -> Sample {
    let mut env = attach_env("ADD", &format!("s{i}"), "/run/netns/s", "net1", ours);
    env.push(("SYSFS_ROOT", sysfs.display().to_string()));
    env.push(("CNI_TRACE_TIMINGS", "1".into()));
    let start = Instant::now();
    let out = Command::new(ours.join("sriov"))
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin.take().unwrap().write_all(conf.as_bytes())?;
            c.wait_with_output()
        })
        .unwrap();
    let sample = Sample {
        time: start.elapsed(),
        rss_kib: 0,
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    phases.record(&String::from_utf8_lossy(&out.stderr));
    sample
}

/// The nftables goals, from our own medians: macspoofchk against the same ADD/DEL
/// without it, and with 10,000 other attachments against none.
fn goals(rows: &[Row]) -> String {
    let median = |name: &str| {
        rows.iter()
            .find(|r| r.scenario == name)
            .map(|r| r.ours.median.as_secs_f64())
    };
    let mut out = String::from("\n### nftables over netlink: the goals\n\nFrom the goal pairs: our macspoofchk and layer-2 bridge run in turn.\n\n| ratio (ours, medians) | goal | measured |\n|---|---|---|\n");
    for verb in ["ADD", "DEL"] {
        let goal = if verb == "ADD" { 1.3 } else { 1.1 };
        for (what, over, under, goal) in [
            (
                format!("macspoofchk {verb} / layer-2 {verb}"),
                goal_row(verb, true, "0"),
                goal_row(verb, false, "0"),
                Some(goal),
            ),
            (
                format!("macspoofchk {verb}, 10,000 / 0 other attachments"),
                goal_row(verb, true, "10,000"),
                goal_row(verb, true, "0"),
                Some(1.1),
            ),
            // Not a goal: the control, layer 2, has no nf_tables work.
            (
                format!("layer-2 {verb}, 10,000 / 0 other attachments"),
                goal_row(verb, false, "10,000"),
                goal_row(verb, false, "0"),
                None,
            ),
        ] {
            if let (Some(a), Some(b)) = (median(&over), median(&under)) {
                let ratio = a / b;
                let _ = match goal {
                    Some(goal) => {
                        let verdict = if ratio <= goal { "met" } else { "missed" };
                        writeln!(
                            out,
                            "| {what} | at most {goal:.1}x | {ratio:.2}x ({verdict}) |"
                        )
                    }
                    None => writeln!(out, "| {what} | (not a goal) | {ratio:.2}x |"),
                };
            }
        }
    }
    if out.contains("(missed)") {
        out.push_str("\nWhere the time goes: docs/design.md, Performance.\n");
    }
    out
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn table(rows: &[Row]) -> String {
    let mut t = String::from("| scenario | ours median ms | ours p95 ms | ours peak RSS MiB | Go median ms | Go p95 ms | Go peak RSS MiB | ours/Go (median) |\n|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let rss = |k: i64| {
            if k == 0 {
                "-".to_string()
            } else {
                format!("{:.1}", k as f64 / 1024.0)
            }
        };
        let (gm, gp, gr, ratio) = match &r.go {
            Some(g) => (
                ms(g.median),
                ms(g.p95),
                rss(g.rss_kib),
                format!(
                    "{:.2}",
                    r.ours.median.as_secs_f64() / g.median.as_secs_f64()
                ),
            ),
            None => ("-".into(), "-".into(), "-".into(), "-".into()),
        };
        let _ = writeln!(
            t,
            "| {} | {} | {} | {} | {gm} | {gp} | {gr} | {ratio} |",
            r.scenario,
            ms(r.ours.median),
            ms(r.ours.p95),
            rss(r.ours.rss_kib)
        );
    }
    t
}

/// A horizontal bar per scenario: ours/Go, with the line at 1.
fn chart(rows: &[Row]) -> String {
    let rows: Vec<(&str, f64)> = rows
        .iter()
        .filter_map(|r| {
            r.go.as_ref().map(|g| {
                (
                    r.scenario.as_str(),
                    r.ours.median.as_secs_f64() / g.median.as_secs_f64(),
                )
            })
        })
        .collect();
    let (label_w, bar_w, row_h) = (430.0, 420.0, 22.0);
    let max = rows.iter().map(|r| r.1).fold(1.2f64, f64::max);
    let height = 50.0 + row_h * rows.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{height}" font-family="sans-serif" font-size="12">"#,
        label_w + bar_w + 60.0
    );
    let _ = write!(
        svg,
        r#"<text x="10" y="20" font-size="14">Time of our plugins relative to the Go plugins (median; shorter is faster)</text>"#
    );
    for (i, (name, ratio)) in rows.iter().enumerate() {
        let y = 35.0 + row_h * i as f64;
        let w = bar_w * ratio / max;
        let color = if *ratio <= 1.0 {
            "seagreen"
        } else {
            "firebrick"
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" text-anchor="end">{}</text><rect x="{label_w}" y="{}" width="{w:.1}" height="{}" fill="{color}"/><text x="{}" y="{}">{ratio:.2}</text>"#,
            label_w - 6.0,
            y + 14.0,
            name.replace('&', "&amp;").replace('<', "&lt;"),
            y + 3.0,
            row_h - 6.0,
            label_w + w + 4.0,
            y + 14.0
        );
    }
    let one = label_w + bar_w / max;
    let _ = write!(
        svg,
        r#"<line x1="{one:.1}" y1="30" x2="{one:.1}" y2="{}" stroke="black" stroke-dasharray="4 3"/><text x="{one:.1}" y="{}" text-anchor="middle">Go = 1</text></svg>"#,
        height - 12.0,
        height - 2.0
    );
    svg
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|l| l.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_default();
    let go_version = Command::new("dpkg-query")
        .args(["-W", "-f", "${Version}", "containernetworking-plugins"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    format!("- machine: {} cores, {cpu}, kernel {}\n- ours: git {} (release build, statically linked multi-call binary)\n- Go: Debian containernetworking-plugins {go_version}\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), sh(&["uname", "-r"]).trim(), libcni::GIT_COMMIT)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--launch") {
        launch(&args[2], &args[3]);
    }
    if args.get(1).map(String::as_str) == Some("sriov") {
        let rows = sriov_scenario(Path::new(&args[2]));
        let text = table(&rows);
        print!("{text}");
        std::fs::write(&args[3], text).unwrap();
        remove_reports();
        return;
    }
    if args.get(1).map(String::as_str) == Some("ipspoofchk") {
        let rows = ipspoofchk_scenarios(Path::new(&args[2]), Path::new(&args[3]));
        print!("{}{}", table(&rows), ipspoofchk_goals(&rows));
        remove_reports();
        return;
    }
    if args.get(1).map(String::as_str) == Some("nftables") {
        let rows = nftables_scenarios(Path::new(&args[2]), Path::new(&args[3]));
        print!("{}{}", table(&rows), goals(&rows));
        remove_reports();
        return;
    }
    let (ours, go, md, svg) = (
        PathBuf::from(&args[1]),
        PathBuf::from(&args[2]),
        PathBuf::from(&args[3]),
        PathBuf::from(&args[4]),
    );
    let rows = host_scenarios(&ours, &go);
    remove_reports();
    let text = table(&rows) + &goals(&rows) + &ipspoofchk_goals(&rows);
    print!("{text}");
    std::fs::write(&md, format!("{}\n{text}", machine())).unwrap();
    std::fs::write(&svg, chart(&rows)).unwrap();
}
