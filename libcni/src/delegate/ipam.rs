//! IPAM delegation: exec the plugin that `ipam.type` names from CNI_PATH with the
//! byte-identical config and the inherited environment, only CNI_COMMAND replaced.

use std::path::PathBuf;

use crate::delegate::invoke;
pub use crate::delegate::invoke::find_plugin;
use crate::spec::error::{CniError, ErrorCode};
use crate::spec::request::{Command, Request, DELEGATION_DEPTH_VARIABLE};
use crate::spec::result::CniResult;
use crate::spec::version::SpecVersion;

/// The deepest chain of delegations allowed (an IPAM plugin may itself delegate).
pub const MAX_DEPTH: u32 = 4;

/// Execs a delegated plugin for `verb` and returns its result (ADD only).
pub fn exec_plugin(
    plugin_type: &str,
    verb: Command,
    stdin: &[u8],
    search_path: &[PathBuf],
    config_version: SpecVersion,
) -> Result<Option<CniResult>, CniError> {
    let binary = find_plugin(plugin_type, search_path)?;
    let depth = std::env::var(DELEGATION_DEPTH_VARIABLE)
        .ok()
        .and_then(|d| d.parse::<u32>().ok())
        .unwrap_or(0)
        + 1;
    if depth > MAX_DEPTH {
        return Err(CniError::invalid_config(format!(
            "IPAM plugin {plugin_type:?} not run: {MAX_DEPTH} plugins already delegate to each other (a configuration names a plugin as its own IPAM?)"
        )));
    }
    // Everything else is inherited: the delegate sees our CNI_* variables.
    let stdout = invoke::run(
        &binary,
        &[
            ("CNI_COMMAND", verb.as_str().to_string()),
            (DELEGATION_DEPTH_VARIABLE, depth.to_string()),
        ],
        stdin,
    )
    // The delegate's error reaches the runtime as the delegate wrote it (clients
    // match on its text, as with the Go plugins); stderr says who failed.
    .inspect_err(|e| {
        crate::log_warn!(
            "{} of IPAM plugin {plugin_type:?} failed: {}",
            verb.as_str(),
            e.msg
        )
    })?;
    if verb != Command::Add {
        return Ok(None);
    }
    let (result, _) = CniResult::from_plugin_output(&stdout, config_version).map_err(|e| {
        e.context(format!(
            "IPAM plugin {plugin_type:?} returned an unusable result"
        ))
    })?;
    Ok(Some(result))
}

/// CHECK, GC or STATUS of the IPAM plugin a config names; nothing without one.
pub fn forward(
    request: &Request,
    ipam: Option<&crate::spec::config::IpamConfig>,
) -> Result<(), CniError> {
    let Some(ipam) = ipam else { return Ok(()) };
    match request.command {
        Command::Check => check(request, &ipam.plugin_type),
        Command::Gc => gc(request, &ipam.plugin_type),
        Command::Status => status(request, &ipam.plugin_type),
        other => Err(CniError::internal(format!(
            "{} is not forwarded to IPAM",
            other.as_str()
        ))),
    }
}

/// Checks before any work that the IPAM plugin a config names is installed (and is
/// a plain name), so that a config error never costs a link created and removed.
pub fn require_installed(
    request: &Request,
    ipam: Option<&crate::spec::config::IpamConfig>,
) -> Result<(), CniError> {
    match ipam {
        Some(ipam) => find_plugin(&ipam.plugin_type, &request.path).map(|_| ()),
        None => Ok(()),
    }
}

/// An address allocation that is released (IPAM DEL) when dropped, unless the ADD
/// that made it succeeded and called [`Allocation::keep`].
pub struct Allocation<'a> {
    pub result: CniResult,
    /// How long the IPAM plugin took (for timing traces).
    pub elapsed: std::time::Duration,
    request: &'a Request,
    plugin_type: String,
    keep: bool,
}

impl Allocation<'_> {
    /// Puts the allocation into a plugin's result: the addresses (pointing at the
    /// plugin's interface `interface`), the routes and the DNS.
    pub fn merge_into(&self, result: &mut CniResult, interface: usize) {
        result.ips = self
            .result
            .ips
            .iter()
            .cloned()
            .map(|mut ip| {
                ip.interface = Some(interface);
                ip
            })
            .collect();
        result.routes = self.result.routes.clone();
        result.dns = self.result.dns.clone();
    }
    /// The ADD succeeded: the addresses stay allocated.
    pub fn keep(mut self) -> CniResult {
        self.keep = true;
        std::mem::take(&mut self.result)
    }
}

impl Drop for Allocation<'_> {
    fn drop(&mut self) {
        if self.keep {
            return;
        }
        if let Err(e) = del(self.request, &self.plugin_type) {
            crate::log_warn!("releasing the IPAM allocation after a failed ADD: {e}");
        }
    }
}

/// IPAM ADD. Every address must reference no interface yet (the caller decides).
pub fn add<'a>(request: &'a Request, plugin_type: &str) -> Result<Allocation<'a>, CniError> {
    let started = std::time::Instant::now();
    let result = exec_plugin(
        plugin_type,
        Command::Add,
        &request.stdin,
        &request.path,
        request.version,
    )?;
    let elapsed = started.elapsed();
    let Some(result) = result else {
        return Err(CniError::internal(format!(
            "IPAM plugin {plugin_type:?} printed no result"
        )));
    };
    let allocation = Allocation {
        result,
        elapsed,
        request,
        plugin_type: plugin_type.to_string(),
        keep: false,
    };
    if allocation.result.ips.is_empty() {
        // Dropping it releases whatever the delegate may have recorded.
        return Err(CniError::new(
            ErrorCode::InvalidNetworkConfig,
            format!("IPAM plugin {plugin_type:?} returned no IP configuration"),
        ));
    }
    Ok(allocation)
}

pub fn del(request: &Request, plugin_type: &str) -> Result<(), CniError> {
    exec_plugin(
        plugin_type,
        Command::Del,
        &request.stdin,
        &request.path,
        request.version,
    )
    .map(|_| ())
}

pub fn check(request: &Request, plugin_type: &str) -> Result<(), CniError> {
    exec_plugin(
        plugin_type,
        Command::Check,
        &request.stdin,
        &request.path,
        request.version,
    )
    .map(|_| ())
}

pub fn gc(request: &Request, plugin_type: &str) -> Result<(), CniError> {
    exec_plugin(
        plugin_type,
        Command::Gc,
        &request.stdin,
        &request.path,
        request.version,
    )
    .map(|_| ())
}

pub fn status(request: &Request, plugin_type: &str) -> Result<(), CniError> {
    exec_plugin(
        plugin_type,
        Command::Status,
        &request.stdin,
        &request.path,
        request.version,
    )
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    /// A stand-in IPAM plugin: a shell script that logs its env and stdin.
    fn fake_plugin(dir: &Path, name: &str, body: &str) {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("libcni-ipam-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn names_with_a_separator_are_refused() {
        for bad in ["../host-local", "a/b", "a\\b", ".."] {
            let e = find_plugin(bad, &[PathBuf::from("/usr/bin")]).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidNetworkConfig, "{bad}");
        }
    }

    #[test]
    fn a_missing_plugin_names_itself_and_the_path() {
        let e = find_plugin(
            "no-such-ipam",
            &[PathBuf::from("/nonexistent/a"), PathBuf::from("/b")],
        )
        .unwrap_err();
        assert!(
            e.msg.contains("no-such-ipam") && e.msg.contains("/nonexistent/a /b"),
            "{}",
            e.msg
        );
    }

    #[test]
    fn delegate_gets_identical_stdin_and_the_command_replaced() {
        let dir = tempdir("echo");
        fake_plugin(
            &dir,
            "fake-ipam",
            &format!(
                "cat > {d}/stdin; echo \"$CNI_COMMAND $CNI_CONTAINERID\" > {d}/env; echo 'log line' >&2\n\
                 echo '{{\"cniVersion\":\"0.4.0\",\"ips\":[{{\"version\":\"4\",\"address\":\"10.1.0.7/24\",\"gateway\":\"10.1.0.1\"}}]}}'",
                d = dir.display()
            ),
        );
        let stdin = br#"{"cniVersion":"1.0.0","name":"n","ipam":{"type":"fake-ipam"}}"#;
        let result = exec_plugin(
            "fake-ipam",
            Command::Add,
            stdin,
            std::slice::from_ref(&dir),
            SpecVersion::V1_0_0,
        )
        .unwrap()
        .unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.1.0.7/24");
        assert_eq!(std::fs::read(dir.join("stdin")).unwrap(), stdin);
        assert!(std::fs::read_to_string(dir.join("env"))
            .unwrap()
            .starts_with("ADD"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_delegate_error_object_reaches_the_runtime_unchanged() {
        let dir = tempdir("err");
        fake_plugin(
            &dir,
            "bad-ipam",
            "echo '{\"code\":11,\"msg\":\"range is full\"}'; exit 1",
        );
        fake_plugin(&dir, "crashy-ipam", "echo 'panic: oops' >&2; exit 2");
        let failure = |plugin: &str, command: Command| {
            exec_plugin(
                plugin,
                command,
                b"{}",
                std::slice::from_ref(&dir),
                SpecVersion::V1_0_0,
            )
            .unwrap_err()
        };
        let e = failure("bad-ipam", Command::Add);
        assert_eq!(e.code, ErrorCode::TryAgainLater);
        assert_eq!(e.msg, "range is full", "the delegate's own message");
        let e = failure("crashy-ipam", Command::Del);
        assert!(e.msg.contains("panic: oops"), "{}", e.msg);
        std::fs::remove_dir_all(dir).unwrap();
    }

    /// A delegate's output is read bounded: endless stdout fails the call at once
    /// (the plugin killed), endless stderr is cut and the result still read.
    #[test]
    fn a_delegate_that_prints_without_end_is_cut_off() {
        let dir = tempdir("endless");
        fake_plugin(&dir, "endless-ipam", "cat /dev/zero");
        fake_plugin(
            &dir,
            "chatty-ipam",
            "head -c 5000000 /dev/zero >&2\n\
             echo '{\"cniVersion\":\"1.0.0\",\"ips\":[{\"address\":\"10.1.0.8/24\"}]}'",
        );
        let run = |plugin: &str| {
            exec_plugin(
                plugin,
                Command::Add,
                b"{}",
                std::slice::from_ref(&dir),
                SpecVersion::V1_0_0,
            )
        };
        let started = std::time::Instant::now();
        let e = run("endless-ipam").unwrap_err();
        assert!(e.msg.contains("printed more than"), "{}", e.msg);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let result = run("chatty-ipam").unwrap().unwrap();
        assert_eq!(result.ips[0].address.to_string(), "10.1.0.8/24");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
