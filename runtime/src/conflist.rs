//! A configuration list (`.conflist`), as a runtime loads it.

use libcni::spec::error::{CniError, ErrorCode};
use libcni::spec::version::{compare_version_text, SpecVersion, ALL_VERSIONS};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// A boolean that configuration lists also write as "true"/"false" (any case).
pub fn flexible_bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match Value::deserialize(d)? {
        Value::Bool(b) => Ok(b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        Value::Null => Ok(false),
        other => Err(serde::de::Error::custom(format!(
            "expected a boolean, got {other}"
        ))),
    }
}

/// A configuration list, as a runtime loads it.
#[derive(Clone, Debug, Deserialize)]
pub struct NetConfList {
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    #[serde(rename = "cniVersions", default)]
    pub cni_versions: Vec<String>,
    #[serde(default)]
    pub name: String,
    #[serde(rename = "disableCheck", default, deserialize_with = "flexible_bool")]
    pub disable_check: bool,
    #[serde(rename = "disableGC", default, deserialize_with = "flexible_bool")]
    pub disable_gc: bool,
    #[serde(
        rename = "loadOnlyInlinedPlugins",
        default,
        deserialize_with = "flexible_bool"
    )]
    pub load_only_inlined_plugins: bool,
    /// The plugin objects, kept raw: unknown keys go to the plugin untouched.
    #[serde(default)]
    pub plugins: Option<Vec<Map<String, Value>>>,
}

impl NetConfList {
    pub fn parse(bytes: &[u8]) -> Result<NetConfList, CniError> {
        let list: NetConfList = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decoding(format!("error parsing configuration list: {e}")))?;
        if list.name.is_empty() {
            return Err(CniError::invalid_config(
                "error parsing configuration list: no name",
            ));
        }
        libcni::spec::names::validate_network_name(&list.name)?;
        if list.load_only_inlined_plugins && list.plugins.is_none() {
            return Err(CniError::invalid_config(
                "error parsing configuration list: loadOnlyInlinedPlugins is true but there is no plugins key",
            ));
        }
        for plugin in list.plugins.iter().flatten() {
            let plugin_type = plugin.get("type").and_then(Value::as_str).unwrap_or("");
            if plugin_type.is_empty() {
                return Err(CniError::invalid_config("a plugin in the list has no type"));
            }
            if plugin_type.contains('/') || plugin_type.contains('\\') {
                return Err(CniError::invalid_config(format!(
                    "invalid plugin type {plugin_type:?}: it must not contain a path separator"
                )));
            }
        }
        Ok(list)
    }

    /// The version the list runs at: the highest of `cniVersion` and `cniVersions`
    /// that this library knows; versions above the newest we speak are ignored.
    pub fn effective_version(&self) -> Result<SpecVersion, CniError> {
        let candidates = self
            .cni_versions
            .iter()
            .chain(std::iter::once(&self.cni_version))
            .filter(|v| !v.is_empty())
            .filter(|v| {
                compare_version_text(v, SpecVersion::LATEST.as_str()) != std::cmp::Ordering::Greater
            });
        let mut best: Option<SpecVersion> = None;
        let mut unknown = Vec::new();
        for text in candidates {
            match text.parse::<SpecVersion>() {
                Ok(v) => best = best.max(Some(v)),
                Err(_) => unknown.push(text.clone()),
            }
        }
        match best {
            Some(v) => Ok(v),
            None if self.cni_version.is_empty() && self.cni_versions.is_empty() => {
                Ok(SpecVersion::V0_1_0)
            }
            None => Err(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!(
                    "configuration list {:?} names no supported CNI version",
                    self.name
                ),
            )
            .with_details(format!(
                "it names {:?}; supported are {:?}",
                unknown,
                ALL_VERSIONS.iter().map(|v| v.as_str()).collect::<Vec<_>>()
            ))),
        }
    }
}

/// The fuzz target of configuration lists (fuzz/), replayed by the tests.
pub fn fuzz(data: &[u8]) {
    if let Ok(list) = NetConfList::parse(data) {
        let _ = list.effective_version();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_picks_the_highest_known_version() {
        let list = NetConfList::parse(
            br#"{"cniVersion":"0.4.0","cniVersions":["1.0.0","0.3.1","9.0.0"],"name":"n","plugins":[{"type":"bridge"}]}"#,
        )
        .unwrap();
        assert_eq!(list.effective_version().unwrap(), SpecVersion::V1_0_0);
    }

    #[test]
    fn list_booleans_accept_strings() {
        let list = NetConfList::parse(
            br#"{"cniVersion":"1.1.0","name":"n","disableCheck":"TRUE","disableGC":"false","loadOnlyInlinedPlugins":true,"plugins":[]}"#,
        )
        .unwrap();
        assert!(list.disable_check);
        assert!(!list.disable_gc);
        assert!(list.load_only_inlined_plugins);
        assert!(NetConfList::parse(br#"{"name":"n","disableCheck":"yes"}"#).is_err());
    }

    #[test]
    fn list_rules() {
        assert!(NetConfList::parse(
            br#"{"cniVersion":"1.0.0","name":"n","loadOnlyInlinedPlugins":true}"#
        )
        .is_err());
        assert!(NetConfList::parse(br#"{"cniVersion":"1.0.0","plugins":[]}"#).is_err());
        assert!(NetConfList::parse(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"../x"}]}"#
        )
        .is_err());
        let unknown =
            NetConfList::parse(br#"{"cniVersion":"0.9.9","name":"n","plugins":[]}"#).unwrap();
        assert_eq!(
            unknown.effective_version().unwrap_err().code,
            ErrorCode::IncompatibleVersion
        );
    }
}
