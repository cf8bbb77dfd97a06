//! Validation of the identifiers that end up in file names and interface names.

use crate::spec::error::{CniError, ErrorCode};

/// `^[a-zA-Z0-9][a-zA-Z0-9_.\-]*$`: the rule of the spec for container IDs and
/// network names. It also keeps both safe to use as one path component.
fn is_safe_identifier(text: &str) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphanumeric() => {}
        _ => return false,
    }
    chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

pub fn validate_container_id(id: &str) -> Result<(), CniError> {
    if id.is_empty() {
        return Err(CniError::new(
            ErrorCode::UnknownContainer,
            "missing containerID",
        ));
    }
    if !is_safe_identifier(id) {
        return Err(CniError::invalid_env(format!(
            "invalid characters in containerID {id:?}"
        )));
    }
    Ok(())
}

pub fn validate_network_name(name: &str) -> Result<(), CniError> {
    if name.is_empty() {
        return Err(CniError::invalid_config("missing network name"));
    }
    if !is_safe_identifier(name) {
        return Err(CniError::invalid_config(format!(
            "invalid characters found in network name {name:?}"
        )));
    }
    Ok(())
}

/// Linux interface names: 1-15 bytes, not `.`/`..`, no `/`, `:` or whitespace.
pub fn check_interface_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("interface name is empty".into());
    }
    if name.len() > 15 {
        return Err(format!("interface name {name:?} is longer than 15 bytes"));
    }
    if name == "." || name == ".." {
        return Err(format!("interface name {name:?} is not a valid name"));
    }
    if name
        .chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c == '\0')
    {
        return Err(format!(
            "interface name {name:?} contains '/', ':', NUL or whitespace"
        ));
    }
    Ok(())
}

pub fn validate_interface_name(name: &str) -> Result<(), CniError> {
    check_interface_name(name).map_err(CniError::invalid_env)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids() {
        for ok in ["a", "A1", "abc-DEF_1.2", "0"] {
            validate_container_id(ok).unwrap();
        }
        assert_eq!(
            validate_container_id("").unwrap_err().code,
            ErrorCode::UnknownContainer
        );
        for bad in ["../../etc", "-a", ".a", "a/b", "a b", "a;b", "é"] {
            assert_eq!(
                validate_container_id(bad).unwrap_err().code,
                ErrorCode::InvalidEnvironment,
                "{bad}"
            );
        }
    }

    #[test]
    fn network_names() {
        validate_network_name("vlan-net-1223").unwrap();
        for bad in ["", "..", "a/b", "../x", "a\\b"] {
            assert_eq!(
                validate_network_name(bad).unwrap_err().code,
                ErrorCode::InvalidNetworkConfig
            );
        }
    }

    #[test]
    fn interface_names() {
        for ok in ["eth0", "net1", "a", "123456789012345", "veth-x.y"] {
            validate_interface_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "1234567890123456",
            "a/b",
            "a:b",
            "a b",
            "a\tb",
        ] {
            assert!(validate_interface_name(bad).is_err(), "{bad:?}");
        }
    }
}
