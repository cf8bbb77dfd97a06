//! Sysctls under /proc/sys. Those of net/ resolve against the netns of the calling
//! thread, so call these from inside [`crate::netns::NetNs::run`].

use std::path::PathBuf;

use crate::spec::error::CniError;

fn path_of(key: &str) -> PathBuf {
    PathBuf::from("/proc/sys").join(key.replace('.', "/"))
}

/// Writes `value` to a sysctl given as `net/ipv4/ip_forward` or `net.ipv4.ip_forward`.
/// Interface names may contain dots, so pass those in slash form.
pub fn write(key: &str, value: &str) -> Result<(), CniError> {
    let path = if key.contains('/') {
        PathBuf::from("/proc/sys").join(key)
    } else {
        path_of(key)
    };
    std::fs::write(&path, value).map_err(|e| {
        CniError::io(format!(
            "failed to set sysctl {} to {value}: {e}",
            path.display()
        ))
    })
}

pub fn read(key: &str) -> Result<String, CniError> {
    let path = if key.contains('/') {
        PathBuf::from("/proc/sys").join(key)
    } else {
        path_of(key)
    };
    std::fs::read_to_string(&path)
        .map(|v| v.trim().to_string())
        .map_err(|e| CniError::io(format!("failed to read sysctl {}: {e}", path.display())))
}
