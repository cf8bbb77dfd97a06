//! The differential harness in CI: a fixed seed and a bounded count of generated
//! cases, each through Debian's Go plugin and ours (see testkit::differential).
//! `scripts/dev/differential.sh [CASES] [SEED]` runs it longer.

fn report(test: &str, seed: u64, outcome: Result<testkit::differential::Coverage, String>) {
    match outcome {
        Ok(c) => {
            eprintln!(
                "{test}: {} cases (seed {seed}) agree with the Go plugins; ADD succeeded in {}",
                c.cases, c.added
            );
            for (plugin, (n, added)) in &c.by_plugin {
                eprintln!("  {plugin}: {n} cases, {added} successful ADDs");
            }
            assert!(
                c.added * 5 >= c.cases,
                "too few cases get past ADD to compare state"
            );
        }
        Err(e) => panic!("differential (seed {seed}): {e}"),
    }
}

/// Debian's Go plugins' directory, or `None` after a loud skip (not root, none
/// installed).
fn go_plugins(test: &str) -> Option<std::path::PathBuf> {
    if !nix::unistd::geteuid().is_root() {
        testkit::skip_or_fail(test, "needs root for the sandboxes");
        return None;
    }
    let go_bridge = testkit::go_plugin(test, "bridge")?;
    Some(go_bridge.parent().unwrap().to_path_buf())
}

fn setting(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(default)
}

/// The VLAN cases (the vlan plugin, cnv-bridge's `vlan`): full-kernel tier.
#[test]
fn vlan_cases_agree_with_go() {
    let test = "vlan_cases_agree_with_go";
    if !nix::unistd::geteuid().is_root() {
        testkit::skip_or_fail(test, "needs root for the sandboxes");
        return;
    }
    let probe = std::thread::spawn(move || {
        let _sb = testkit::Sandbox::new(test)?;
        Some(
            testkit::require_kernel(test, testkit::KernelFeature::Vlan8021q)
                && testkit::require_kernel(test, testkit::KernelFeature::BridgeVlanFiltering),
        )
    });
    if probe.join().unwrap() != Some(true) {
        return;
    }
    let Some(go_bridge) = testkit::go_plugin(test, "bridge") else {
        return;
    };
    let go = go_bridge.parent().unwrap().to_path_buf();
    let (cases, seed) = (
        setting("CNI_DIFF_VLAN_CASES", 15) as u32,
        setting("CNI_DIFF_SEED", 20261201),
    );
    let outcome = testkit::differential::run_strategy(
        testkit::differential::vlan_case_strategy(),
        cases,
        seed,
        &testkit::bin_dir(),
        &go,
    );
    report(test, seed, outcome);
}

#[test]
fn ours_and_go_agree_on_generated_cases() {
    let test = "ours_and_go_agree_on_generated_cases";
    let Some(go) = go_plugins(test) else {
        return;
    };
    let (cases, seed) = (
        setting("CNI_DIFF_CASES", 300) as u32,
        setting("CNI_DIFF_SEED", 20261201),
    );
    report(
        test,
        seed,
        testkit::differential::run(cases, seed, &testkit::bin_dir(), &go),
    );
}

/// The same comparison with ours as packagers install it: the multi-call binary
/// under every name, so that bridge and macvlan run their IPAM plugin in-process
/// (`libcni::delegate::builtin`). Another seed, fewer cases: the code under test is
/// the one-plugin binaries' above; what differs is how IPAM is reached.
#[test]
fn ours_as_installed_and_go_agree_on_generated_cases() {
    let test = "ours_as_installed_and_go_agree_on_generated_cases";
    let Some(go) = go_plugins(test) else {
        return;
    };
    let installed = testkit::tempdir("differential-installed");
    testkit::run_checked(
        std::process::Command::new(testkit::plugin("cni-plugins"))
            .arg("install")
            .arg(&installed),
        "cni-plugins install",
    );
    let (cases, seed) = (
        setting("CNI_DIFF_INSTALLED_CASES", 100) as u32,
        setting("CNI_DIFF_SEED", 20261201) + 1,
    );
    let outcome = testkit::differential::run(cases, seed, &installed, &go);
    let _ = std::fs::remove_dir_all(&installed);
    report(test, seed, outcome);
}
