//! Test and debug hooks. They exist only in builds with the `test-hooks` feature
//! (the workspace's test builds, through testkit); release builds, which leave the
//! feature out, compile every hook to nothing.

use std::time::Duration;

/// A named point in a plugin's work where a test can stop it: when the environment
/// variable `CNI_TEST_FAILPOINT` equals `name`, the process stops there for good (a
/// test then kills it, as a crash or a node failure would).
#[inline]
pub fn failpoint(name: &str) {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("CNI_TEST_FAILPOINT").is_some_and(|v| v == name) {
        crate::log_warn!("stopped at failpoint {name}");
        loop {
            std::thread::sleep(Duration::from_secs(3600));
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = name;
}

/// A write to a state directory that a test makes fail, as a full or read-only
/// filesystem would: when `CNI_TEST_FS_FAIL` is `<n>:<errno>` (`ENOSPC`, `EROFS` or
/// `EDQUOT`), the n-th write step of this process (a directory or file created, data
/// written or synced, a rename, a link) and every one after it fail with that errno.
/// `what` names the step in the log.
#[inline]
pub fn write_fault(what: &str) -> Option<std::io::Error> {
    #[cfg(feature = "test-hooks")]
    {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static WRITES: AtomicUsize = AtomicUsize::new(0);
        let spec = std::env::var("CNI_TEST_FS_FAIL").ok()?;
        let (n, errno) = spec.split_once(':')?;
        let errno = match errno {
            "ENOSPC" => libc::ENOSPC,
            "EROFS" => libc::EROFS,
            "EDQUOT" => libc::EDQUOT,
            _ => return None,
        };
        let count = WRITES.fetch_add(1, Ordering::Relaxed) + 1;
        if count >= n.parse::<usize>().ok()? {
            crate::log_warn!("failed write {count} ({what}) with errno {errno} for a test");
            return Some(std::io::Error::from_raw_os_error(errno));
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = what;
    None
}

/// Logs where an operation spent its time, when `CNI_TRACE_TIMINGS` is set (for
/// the benchmark scripts).
#[inline]
pub fn trace_timings(what: &str, parts: &[(&str, Duration)]) {
    #[cfg(feature = "test-hooks")]
    if std::env::var_os("CNI_TRACE_TIMINGS").is_some() {
        let parts: Vec<String> = parts
            .iter()
            .map(|(name, d)| format!("{name}={}us", d.as_micros()))
            .collect();
        crate::log_info!("timings of {what}: {}", parts.join(" "));
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = (what, parts);
}
