//! Skips that say why: a test that cannot run on this kernel or machine says so
//! loudly, and fails instead under CI or on the full-kernel tier.

use std::io::Write;
use std::process::Command;

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
