//! Logging for plugins: stderr (stdout belongs to the protocol), and a file when a
//! plugin's config asks for one; lines below the configured level are dropped.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;

static LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

/// The plugin a line names when it is not this process's own (argv[0]): an IPAM
/// plugin that runs inside its caller's process (`delegate::builtin`).
static PROGRAM: Mutex<Option<String>> = Mutex::new(None);

/// The levels, most severe first: a line is written when its level is at most the
/// configured one.
const LEVELS: [&str; 5] = ["panic", "error", "warning", "info", "debug"];
const INFO: u8 = 3;
static LEVEL: AtomicU8 = AtomicU8::new(INFO);

/// Sets the level by name (`panic`, `error`, `warning`, `info`, `debug`); anything
/// else means `info`, as sriov-cni reads its `logLevel`. Returns the level set.
pub fn set_level(name: &str) -> &'static str {
    let level = LEVELS
        .iter()
        .position(|l| l.eq_ignore_ascii_case(name))
        .unwrap_or(INFO as usize);
    LEVEL.store(level as u8, Ordering::Relaxed);
    LEVELS[level]
}

/// Also appends log lines to `path` (created 0600 if missing). Opened without
/// blocking, so that a FIFO without a reader fails instead of hanging the plugin.
pub fn set_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    *LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

/// Names `program` in log lines until the returned guard is dropped.
pub fn speak_as(program: &str) -> ProgramGuard {
    *PROGRAM.lock().unwrap_or_else(|e| e.into_inner()) = Some(program.to_string());
    ProgramGuard
}

/// Gives log lines back to this process's own name when dropped.
pub struct ProgramGuard;

impl Drop for ProgramGuard {
    fn drop(&mut self) {
        *PROGRAM.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }
}

pub fn write(level: &str, message: std::fmt::Arguments<'_>) {
    let rank = LEVELS
        .iter()
        .position(|l| *l == level)
        .unwrap_or(INFO as usize);
    if rank > LEVEL.load(Ordering::Relaxed) as usize {
        return;
    }
    let speaking_as = PROGRAM.lock().unwrap_or_else(|e| e.into_inner()).clone();
    let argv0 = std::env::args().next().unwrap_or_default();
    let program = speaking_as.as_deref().unwrap_or_else(|| {
        Path::new(&argv0)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("cni")
    });
    let line = format!("{program}: {level}: {message}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
    if let Some(file) = LOG_FILE.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        let _ = file.write_all(line.as_bytes());
    }
}

#[macro_export]
macro_rules! log_error {
    ($($arg:tt)*) => { $crate::log::write("error", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! log_warn {
    ($($arg:tt)*) => { $crate::log::write("warning", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! log_info {
    ($($arg:tt)*) => { $crate::log::write("info", format_args!($($arg)*)) };
}

#[macro_export]
macro_rules! log_debug {
    ($($arg:tt)*) => { $crate::log::write("debug", format_args!($($arg)*)) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_levels_mean_info() {
        assert_eq!(set_level("DEBUG"), "debug");
        assert_eq!(set_level("verbose"), "info");
        assert_eq!(set_level("error"), "error");
        set_level("info");
    }
}
