//! CNI_ARGS: `K=V;K=V`, parsed as the Go `types.LoadArgs` does.

use crate::spec::error::CniError;

/// Keys that kubelet, CRI-O and containerd send: every plugin knows them.
pub const RUNTIME_KEYS: [&str; 5] = [
    "IgnoreUnknown",
    "K8S_POD_NAMESPACE",
    "K8S_POD_NAME",
    "K8S_POD_INFRA_CONTAINER_ID",
    "K8S_POD_UID",
];

/// The parsed pairs of CNI_ARGS, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CniArgs {
    pairs: Vec<(String, String)>,
    /// Keys whose value is not UTF-8 (the value is left out of `pairs`).
    not_text: Vec<String>,
}

impl CniArgs {
    /// Splits on `;` then on `=`; each pair must have exactly one `=` (Go's rule).
    pub fn parse(text: &str) -> Result<CniArgs, CniError> {
        let mut pairs = Vec::new();
        if text.is_empty() {
            return Ok(CniArgs {
                pairs,
                not_text: Vec::new(),
            });
        }
        for item in text.split(';') {
            let parts: Vec<&str> = item.split('=').collect();
            if parts.len() != 2 {
                return Err(CniError::invalid_env(format!(
                    "ARGS: invalid pair {item:?}"
                )));
            }
            pairs.push((parts[0].to_string(), parts[1].to_string()));
        }
        Ok(CniArgs {
            pairs,
            not_text: Vec::new(),
        })
    }

    /// Parses CNI_ARGS as the bytes the environment holds: a pair whose bytes are not
    /// UTF-8 is set aside (its key noted), so that one odd value never drops the
    /// others; [`CniArgs::check_text`] refuses it where the plugin reads the key.
    pub fn parse_bytes(bytes: &[u8]) -> Result<CniArgs, CniError> {
        if let Ok(text) = std::str::from_utf8(bytes) {
            return CniArgs::parse(text);
        }
        let mut args = CniArgs::default();
        for item in bytes.split(|b| *b == b';') {
            match std::str::from_utf8(item) {
                Ok(text) => args.pairs.extend(CniArgs::parse(text)?.pairs),
                Err(_) => {
                    let key = item.split(|b| *b == b'=').next().unwrap_or_default();
                    args.not_text
                        .push(String::from_utf8_lossy(key).into_owned());
                }
            }
        }
        Ok(args)
    }

    /// Refuses (code 4) a pair whose value is not UTF-8 when the plugin reads its
    /// key; others are ignored as unknown keys are.
    pub fn check_text(&self, plugin_keys: &[&str]) -> Result<(), CniError> {
        match self
            .not_text
            .iter()
            .find(|k| plugin_keys.contains(&k.as_str()) || !self.ignore_unknown())
        {
            Some(key) => Err(CniError::invalid_env(format!(
                "CNI_ARGS: the pair of {key:?} is not valid UTF-8 text"
            ))),
            None => Ok(()),
        }
    }

    /// The last value of a key (a later pair overrides an earlier one, as in Go).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// `IgnoreUnknown=1|true` (any case).
    pub fn ignore_unknown(&self) -> bool {
        self.get("IgnoreUnknown")
            .map(|v| v == "1" || v.eq_ignore_ascii_case("true"))
            .unwrap_or(false)
    }

    /// Refuses a key the plugin does not know, unless `IgnoreUnknown` is set. The
    /// runtime keys (`K8S_POD_*`) are always known.
    pub fn check_known(&self, plugin_keys: &[&str]) -> Result<(), CniError> {
        if self.ignore_unknown() {
            return Ok(());
        }
        for (key, _) in &self.pairs {
            if !plugin_keys.contains(&key.as_str()) && !RUNTIME_KEYS.contains(&key.as_str()) {
                return Err(CniError::invalid_env(format!(
                    "ARGS: can not find field {key:?} (set IgnoreUnknown=1 to ignore unknown keys)"
                )));
            }
        }
        Ok(())
    }

    /// A non-empty value of a key.
    pub fn value(&self, key: &str) -> Option<&str> {
        self.get(key).filter(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pairs_as_go_does() {
        let a =
            CniArgs::parse("IgnoreUnknown=1;K8S_POD_NAME=web;IP=10.0.0.5/24;MAC=0a:00:00:00:00:01")
                .unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5/24"));
        assert_eq!(a.get("MAC"), Some("0a:00:00:00:00:01"));
        assert!(a.ignore_unknown());
        assert_eq!(CniArgs::parse("").unwrap(), CniArgs::default());
        assert!(CniArgs::parse("a=b=c").is_err());
        assert!(CniArgs::parse("novalue").is_err());
        assert!(CniArgs::parse("a=b;").is_err());
    }

    #[test]
    fn unknown_keys_need_ignore_unknown() {
        let a = CniArgs::parse("FOO=bar;K8S_POD_NAMESPACE=ns").unwrap();
        let e = a.check_known(&["IP"]).unwrap_err();
        assert_eq!(e.code.number(), 4);
        assert!(e.msg.contains("FOO"));
        CniArgs::parse("IgnoreUnknown=TRUE;FOO=bar")
            .unwrap()
            .check_known(&[])
            .unwrap();
        CniArgs::parse("IgnoreUnknown=0;K8S_POD_UID=u")
            .unwrap()
            .check_known(&[])
            .unwrap();
        assert!(CniArgs::parse("IgnoreUnknown=0;FOO=bar")
            .unwrap()
            .check_known(&[])
            .is_err());
    }

    #[test]
    fn a_pair_that_is_not_text_drops_only_itself() {
        let a =
            CniArgs::parse_bytes(b"IgnoreUnknown=1;K8S_POD_NAME=w\xffb;IP=10.0.0.5/24").unwrap();
        assert_eq!(a.get("IP"), Some("10.0.0.5/24"));
        a.check_text(&["IP"]).unwrap();
        let bad = CniArgs::parse_bytes(b"IgnoreUnknown=1;IP=10.0.0.\xff").unwrap();
        let e = bad.check_text(&["IP"]).unwrap_err();
        assert_eq!(e.code.number(), 4);
        assert!(e.msg.contains("IP"), "{}", e.msg);
    }

    #[test]
    fn later_pair_wins() {
        let a = CniArgs::parse("IP=1.1.1.1;IP=2.2.2.2").unwrap();
        assert_eq!(a.get("IP"), Some("2.2.2.2"));
    }
}
