//! The entry points of the fuzz targets (fuzz/), kept here so that the crashes they
//! find replay as ordinary tests (tests/fuzz_regressions.rs) on stable Rust.

use crate::spec::args::CniArgs;
use crate::spec::config::{parse_netconf, NoPluginKeys};
use crate::spec::result::CniResult;
use crate::spec::version::{SpecVersion, ALL_VERSIONS};

/// A plugin's network configuration and its prevResult (configuration lists are
/// the runtime crate's `conflist::fuzz`).
pub fn config(data: &[u8]) {
    if let Ok(conf) = parse_netconf::<NoPluginKeys>(data) {
        let _ = conf.gc_valid_attachments();
        let _ = conf.requested_ips();
        for version in ALL_VERSIONS {
            let _ = conf.parsed_prev_result(version);
        }
    }
}

/// A result read in any version is printed in every version, and a result printed
/// in the current layout reads back unchanged.
pub fn result(data: &[u8]) {
    let Ok((parsed, _)) = CniResult::from_plugin_output(data, SpecVersion::V1_0_0) else {
        return;
    };
    for version in ALL_VERSIONS {
        if let Ok(value) = parsed.to_value(version) {
            let again =
                CniResult::from_value(&value, version).expect("a result we printed reads back");
            if version == SpecVersion::V1_1_0 {
                assert_eq!(again, parsed, "1.1.0 holds everything the model holds");
            }
        }
    }
}

pub fn cni_args(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(args) = CniArgs::parse(text) {
        let _ = args.check_known(&["IP", "MAC", "GATEWAY"]);
        let _ = args.ignore_unknown();
        for (key, _) in args.pairs() {
            assert!(args.get(key).is_some());
        }
    }
}
