//! The CNI specification versions this suite speaks.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One released version of the CNI specification.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SpecVersion {
    V0_1_0,
    V0_2_0,
    V0_3_0,
    V0_3_1,
    V0_4_0,
    V1_0_0,
    V1_1_0,
}

/// Every version, oldest first: what VERSION reports and what a request may carry.
pub const ALL_VERSIONS: [SpecVersion; 7] = [
    SpecVersion::V0_1_0,
    SpecVersion::V0_2_0,
    SpecVersion::V0_3_0,
    SpecVersion::V0_3_1,
    SpecVersion::V0_4_0,
    SpecVersion::V1_0_0,
    SpecVersion::V1_1_0,
];

/// How a version lays out its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResultLayout {
    /// 0.1.0 and 0.2.0: `ip4`/`ip6` objects with nested routes.
    Legacy,
    /// 0.3.0 to 0.4.0: `interfaces`, `ips[]` with `version`.
    Versioned,
    /// 1.0.0 and later: `ips[]` without `version`.
    Current,
}

impl SpecVersion {
    pub const LATEST: SpecVersion = SpecVersion::V1_1_0;

    pub fn as_str(self) -> &'static str {
        match self {
            SpecVersion::V0_1_0 => "0.1.0",
            SpecVersion::V0_2_0 => "0.2.0",
            SpecVersion::V0_3_0 => "0.3.0",
            SpecVersion::V0_3_1 => "0.3.1",
            SpecVersion::V0_4_0 => "0.4.0",
            SpecVersion::V1_0_0 => "1.0.0",
            SpecVersion::V1_1_0 => "1.1.0",
        }
    }

    /// The version a config without `cniVersion` means (the Go libcni's rule).
    pub fn from_config_field(field: Option<&str>) -> Result<SpecVersion, UnknownVersion> {
        match field {
            None | Some("") => Ok(SpecVersion::V0_1_0),
            Some(text) => text.parse(),
        }
    }

    pub fn result_layout(self) -> ResultLayout {
        match self {
            SpecVersion::V0_1_0 | SpecVersion::V0_2_0 => ResultLayout::Legacy,
            SpecVersion::V0_3_0 | SpecVersion::V0_3_1 | SpecVersion::V0_4_0 => {
                ResultLayout::Versioned
            }
            SpecVersion::V1_0_0 | SpecVersion::V1_1_0 => ResultLayout::Current,
        }
    }

    pub fn supports_check(self) -> bool {
        self >= SpecVersion::V0_4_0
    }

    pub fn supports_gc_and_status(self) -> bool {
        self >= SpecVersion::V1_1_0
    }

    /// Whether a result in this version may list several addresses of one family.
    pub fn allows_multiple_ips_per_family(self) -> bool {
        self >= SpecVersion::V0_3_0
    }
}

impl fmt::Display for SpecVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown CNI version {0:?}")]
pub struct UnknownVersion(pub String);

impl FromStr for SpecVersion {
    type Err = UnknownVersion;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ALL_VERSIONS
            .iter()
            .copied()
            .find(|v| v.as_str() == text)
            .ok_or_else(|| UnknownVersion(text.to_string()))
    }
}

impl Serialize for SpecVersion {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for SpecVersion {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Compares dotted version strings numerically ("0.10.0" > "0.4.0"); text that is
/// not a version sorts lowest. Used where a list names versions we may not know.
pub fn compare_version_text(a: &str, b: &str) -> std::cmp::Ordering {
    fn parts(text: &str) -> Option<Vec<u64>> {
        text.split('.').map(|p| p.parse().ok()).collect()
    }
    parts(a).cmp(&parts(b))
}

/// The supported-version list as JSON, for VERSION replies and error details.
pub fn all_version_strings() -> Vec<&'static str> {
    ALL_VERSIONS.iter().map(|v| v.as_str()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_version_round_trips_through_its_text() {
        for v in ALL_VERSIONS {
            assert_eq!(v.as_str().parse::<SpecVersion>().unwrap(), v);
        }
        assert!("0.5.0".parse::<SpecVersion>().is_err());
        assert!("1.1".parse::<SpecVersion>().is_err());
    }

    #[test]
    fn missing_version_means_0_1_0() {
        assert_eq!(
            SpecVersion::from_config_field(None).unwrap(),
            SpecVersion::V0_1_0
        );
        assert_eq!(
            SpecVersion::from_config_field(Some("")).unwrap(),
            SpecVersion::V0_1_0
        );
    }

    #[test]
    fn version_gates_follow_the_spec() {
        assert!(!SpecVersion::V0_3_1.supports_check());
        assert!(SpecVersion::V0_4_0.supports_check());
        assert!(!SpecVersion::V1_0_0.supports_gc_and_status());
        assert!(SpecVersion::V1_1_0.supports_gc_and_status());
    }

    #[test]
    fn numeric_comparison_of_version_text() {
        use std::cmp::Ordering::*;
        assert_eq!(compare_version_text("0.10.0", "0.4.0"), Greater);
        assert_eq!(compare_version_text("1.1.0", "1.1.0"), Equal);
        assert_eq!(compare_version_text("junk", "0.1.0"), Less);
    }
}
