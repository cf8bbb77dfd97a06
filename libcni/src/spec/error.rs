//! The spec's error object: what a plugin prints on stdout when it fails.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::spec::version::SpecVersion;

/// Error codes of the spec (0-99 reserved), plus the plugin-specific range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    IncompatibleVersion,
    UnsupportedField,
    UnknownContainer,
    InvalidEnvironment,
    IoFailure,
    DecodingFailure,
    InvalidNetworkConfig,
    TryAgainLater,
    PluginNotAvailable,
    LimitedConnectivity,
    /// 100 and above: defined by a plugin.
    Plugin(u32),
}

impl ErrorCode {
    pub fn number(self) -> u32 {
        match self {
            ErrorCode::IncompatibleVersion => 1,
            ErrorCode::UnsupportedField => 2,
            ErrorCode::UnknownContainer => 3,
            ErrorCode::InvalidEnvironment => 4,
            ErrorCode::IoFailure => 5,
            ErrorCode::DecodingFailure => 6,
            ErrorCode::InvalidNetworkConfig => 7,
            ErrorCode::TryAgainLater => 11,
            ErrorCode::PluginNotAvailable => 50,
            ErrorCode::LimitedConnectivity => 51,
            ErrorCode::Plugin(n) => n,
        }
    }

    pub fn from_number(n: u32) -> ErrorCode {
        match n {
            1 => ErrorCode::IncompatibleVersion,
            2 => ErrorCode::UnsupportedField,
            3 => ErrorCode::UnknownContainer,
            4 => ErrorCode::InvalidEnvironment,
            5 => ErrorCode::IoFailure,
            6 => ErrorCode::DecodingFailure,
            7 => ErrorCode::InvalidNetworkConfig,
            11 => ErrorCode::TryAgainLater,
            50 => ErrorCode::PluginNotAvailable,
            51 => ErrorCode::LimitedConnectivity,
            other => ErrorCode::Plugin(other),
        }
    }

    /// The short text the spec gives each code, used as `msg` when a caller has none.
    pub fn title(self) -> &'static str {
        match self {
            ErrorCode::IncompatibleVersion => "incompatible CNI version",
            ErrorCode::UnsupportedField => "unsupported field in network configuration",
            ErrorCode::UnknownContainer => "container unknown or does not exist",
            ErrorCode::InvalidEnvironment => "invalid necessary environment variables",
            ErrorCode::IoFailure => "I/O failure",
            ErrorCode::DecodingFailure => "failed to decode content",
            ErrorCode::InvalidNetworkConfig => "invalid network config",
            ErrorCode::TryAgainLater => "try again later",
            ErrorCode::PluginNotAvailable => "plugin not available",
            ErrorCode::LimitedConnectivity => {
                "plugin not available, existing containers may have limited connectivity"
            }
            ErrorCode::Plugin(_) => "plugin error",
        }
    }
}

/// The code a plugin uses for an internal failure that has no spec code of its own
/// (the Go skel uses 999 for the same purpose).
pub const INTERNAL_ERROR_CODE: u32 = 999;

/// A CNI error: a code, a message that names the object and the cause, and details.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct CniError {
    pub code: ErrorCode,
    pub msg: String,
    pub details: String,
}

impl fmt::Display for CniError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)?;
        if !self.details.is_empty() {
            write!(f, ": {}", self.details)?;
        }
        Ok(())
    }
}

impl CniError {
    pub fn new(code: ErrorCode, msg: impl Into<String>) -> CniError {
        CniError {
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> CniError {
        self.details = details.into();
        self
    }

    pub fn invalid_config(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidNetworkConfig, msg)
    }

    pub fn invalid_env(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::InvalidEnvironment, msg)
    }

    pub fn io(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::IoFailure, msg)
    }

    pub fn decoding(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::DecodingFailure, msg)
    }

    pub fn internal(msg: impl Into<String>) -> CniError {
        CniError::new(ErrorCode::Plugin(INTERNAL_ERROR_CODE), msg)
    }

    /// Adds context in front of the message, keeping code and details.
    pub fn context(mut self, what: impl fmt::Display) -> CniError {
        self.msg = format!("{what}: {}", self.msg);
        self
    }

    /// The error object as the spec prints it.
    pub fn to_json(&self, version: SpecVersion) -> serde_json::Value {
        let wire = WireError {
            cni_version: Some(version.as_str().to_string()),
            code: self.code.number(),
            msg: self.msg.clone(),
            details: (!self.details.is_empty()).then(|| self.details.clone()),
        };
        serde_json::to_value(wire).expect("an error object always serializes")
    }

    /// Parses the error object another plugin printed.
    pub fn from_json(bytes: &[u8]) -> Option<CniError> {
        let wire: WireError = serde_json::from_slice(bytes).ok()?;
        if wire.code == 0 {
            return None;
        }
        Some(CniError {
            code: ErrorCode::from_number(wire.code),
            msg: wire.msg,
            details: wire.details.unwrap_or_default(),
        })
    }
}

#[derive(Serialize, Deserialize)]
struct WireError {
    #[serde(
        rename = "cniVersion",
        skip_serializing_if = "Option::is_none",
        default
    )]
    cni_version: Option<String>,
    code: u32,
    #[serde(default)]
    msg: String,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    details: Option<String>,
}

/// Collects the failures of a best-effort operation (DEL, GC) that goes on past them.
#[derive(Debug, Default)]
pub struct ErrorList(Vec<CniError>);

impl ErrorList {
    pub fn new() -> ErrorList {
        ErrorList::default()
    }

    pub fn push(&mut self, error: CniError) {
        self.0.push(error);
    }

    /// Keeps the error of a step and goes on.
    pub fn record<T>(&mut self, step: Result<T, CniError>) -> Option<T> {
        match step {
            Ok(value) => Some(value),
            Err(error) => {
                self.0.push(error);
                None
            }
        }
    }

    /// Ok when nothing failed; else the first error's code with every message joined.
    pub fn into_result(self) -> Result<(), CniError> {
        let mut errors = self.0.into_iter();
        let Some(first) = errors.next() else {
            return Ok(());
        };
        let rest: Vec<String> = errors.map(|e| e.to_string()).collect();
        if rest.is_empty() {
            return Err(first);
        }
        let mut all = vec![first.to_string()];
        all.extend(rest);
        Err(CniError::new(first.code, all.join("; ")))
    }
}

// The lower layers (netlink, netns, state files) have their own error types and know nothing of
// the protocol; their errors become CNI errors here, with a code.

impl From<crate::netlink::NetlinkError> for CniError {
    fn from(e: crate::netlink::NetlinkError) -> CniError {
        let code = match e.errno() {
            Some(libc::EAGAIN) | Some(libc::EBUSY) => ErrorCode::TryAgainLater,
            _ => ErrorCode::Plugin(INTERNAL_ERROR_CODE),
        };
        CniError::new(code, e.to_string())
    }
}

impl From<crate::netns::NetnsError> for CniError {
    fn from(e: crate::netns::NetnsError) -> CniError {
        use crate::netns::NetnsError;
        let code = match e {
            NetnsError::Open { .. } | NetnsError::NotNetns { .. } => ErrorCode::InvalidEnvironment,
            NetnsError::Enter { .. } => ErrorCode::IoFailure,
            NetnsError::Panicked { .. } => ErrorCode::Plugin(INTERNAL_ERROR_CODE),
            NetnsError::Netlink { .. } => ErrorCode::Plugin(INTERNAL_ERROR_CODE),
        };
        CniError::new(code, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_object_has_the_spec_fields() {
        let e = CniError::invalid_config("bad").with_details("more");
        let v = e.to_json(SpecVersion::V1_0_0);
        assert_eq!(
            v,
            serde_json::json!({"cniVersion":"1.0.0","code":7,"msg":"bad","details":"more"})
        );
        let no_details = CniError::io("x").to_json(SpecVersion::V0_4_0);
        assert!(no_details.get("details").is_none());
    }

    #[test]
    fn error_object_parses_back() {
        let e = CniError::from_json(br#"{"code":11,"msg":"busy"}"#).unwrap();
        assert_eq!(e.code, ErrorCode::TryAgainLater);
        assert_eq!(e.msg, "busy");
        assert!(CniError::from_json(b"{}").is_none());
        assert!(CniError::from_json(b"not json").is_none());
    }

    #[test]
    fn codes_round_trip() {
        for n in [1, 2, 3, 4, 5, 6, 7, 11, 50, 51, 100, 999] {
            assert_eq!(ErrorCode::from_number(n).number(), n);
        }
    }

    #[test]
    fn error_list_joins_messages() {
        let mut list = ErrorList::new();
        assert!(list.record(Ok::<_, CniError>(1)).is_some());
        list.push(CniError::io("first"));
        list.push(CniError::invalid_config("second"));
        let e = list.into_result().unwrap_err();
        assert_eq!(e.code, ErrorCode::IoFailure);
        assert_eq!(e.msg, "first; second");
        assert!(ErrorList::new().into_result().is_ok());
    }
}
