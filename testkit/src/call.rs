//! Running a plugin as a runtime does (env, stdin, exit code, stdout), and the
//! small command helpers the tests use.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::plugins::bin_dir;

/// What a plugin run printed and returned.
#[derive(Debug)]
pub struct Output {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not one JSON object ({e}): {:?}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }

    /// Asserts that the plugin succeeded (exit 0) and returns the parsed result (or
    /// Null for empty stdout); the assertion message carries what it printed.
    pub fn expect_success(&self) -> Value {
        assert_eq!(
            self.code, 0,
            "plugin failed: stdout {} stderr {}",
            self.stdout, self.stderr
        );
        if self.stdout.trim().is_empty() {
            Value::Null
        } else {
            self.json()
        }
    }

    /// Asserts a failure with exactly one error object of `code`, and returns its msg.
    pub fn error(&self, code: u64) -> String {
        assert_eq!(
            self.code, 1,
            "expected exit status 1, got {}: stdout {} stderr {}",
            self.code, self.stdout, self.stderr
        );
        let mut objects = serde_json::Deserializer::from_str(&self.stdout).into_iter::<Value>();
        let error = objects
            .next()
            .expect("an error object on stdout")
            .expect("valid JSON on stdout");
        assert!(
            objects.next().is_none(),
            "more than one JSON value on stdout: {}",
            self.stdout
        );
        assert_eq!(
            error["code"].as_u64(),
            Some(code),
            "wrong error code: {error} (stderr {})",
            self.stderr
        );
        error["msg"].as_str().unwrap_or_default().to_string()
    }
}

/// One invocation as a runtime makes it.
#[derive(Clone, Debug, Default)]
pub struct Call {
    pub env: BTreeMap<String, String>,
    /// Variables set to bytes that need not be UTF-8 (after `env`).
    pub raw_env: Vec<(String, Vec<u8>)>,
    pub stdin: Vec<u8>,
}

impl Call {
    pub fn new(command: &str) -> Call {
        let mut call = Call::default();
        call.env.insert("CNI_COMMAND".into(), command.into());
        call.env
            .insert("PATH".into(), "/usr/sbin:/usr/bin:/sbin:/bin".into());
        call
    }

    /// ADD/DEL/CHECK with the usual variables; CNI_PATH is the workspace's bin dir.
    pub fn attach(command: &str, container_id: &str, netns: &str, ifname: &str) -> Call {
        Call::new(command)
            .env("CNI_CONTAINERID", container_id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", ifname)
            .env("CNI_PATH", &bin_dir().display().to_string())
    }

    pub fn env(mut self, key: &str, value: &str) -> Call {
        self.env.insert(key.into(), value.into());
        self
    }

    /// Sets a variable to raw bytes (a value the environment can hold that is not text).
    pub fn env_bytes(mut self, key: &str, value: &[u8]) -> Call {
        self.env.remove(key);
        self.raw_env.push((key.to_string(), value.to_vec()));
        self
    }

    pub fn unset(mut self, key: &str) -> Call {
        self.env.remove(key);
        self
    }

    pub fn stdin(mut self, stdin: impl Into<Vec<u8>>) -> Call {
        self.stdin = stdin.into();
        self
    }

    pub fn config(self, config: &Value) -> Call {
        self.stdin(config.to_string())
    }

    /// Starts the call in a process group of its own, its stdin written and closed,
    /// its stderr piped when `stderr` is set.
    fn spawn_in_group(&self, binary: &Path, extra_env: &[(&str, &str)], stderr: bool) -> Child {
        use std::os::unix::process::CommandExt;
        let mut child = Command::new(binary)
            .env_clear()
            .envs(&self.env)
            .envs(extra_env.iter().copied())
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(if stderr {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .spawn()
            .unwrap_or_else(|e| panic!("exec {}: {e}", binary.display()));
        let mut pipe = child.stdin.take().expect("stdin piped");
        let _ = pipe.write_all(&self.stdin);
        child
    }

    /// Kills the child's whole process group with SIGKILL (an IPAM child goes too)
    /// and reaps it.
    fn kill_group(mut child: Child) {
        // SAFETY: kill(2) with a negative pid signals the child's own process group.
        unsafe {
            libc::kill(-(child.id() as i32), libc::SIGKILL);
        }
        let _ = child.wait();
    }

    /// Starts the call in a process group of its own and kills the whole group with
    /// SIGKILL after `after` (as when a runtime or a node dies; an IPAM child goes
    /// too). Returns whether it was still running when killed.
    pub fn run_killed(&self, binary: &Path, after: std::time::Duration) -> bool {
        let mut child = self.spawn_in_group(binary, &[], false);
        std::thread::sleep(after);
        let still_running = child.try_wait().ok().flatten().is_none();
        Self::kill_group(child);
        // Stragglers of the group (an IPAM child) are gone before anything else runs.
        std::thread::sleep(std::time::Duration::from_millis(5));
        still_running
    }

    /// Starts the call with the failpoint `point` set (a test-hooks build), waits
    /// until the plugin stops there, and kills its process group with SIGKILL, as a
    /// crash at that point would. Returns whether it reached the point.
    pub fn run_to_failpoint(&self, binary: &Path, point: &str) -> bool {
        use std::io::{BufRead, BufReader};
        let mut child = self.spawn_in_group(binary, &[("CNI_TEST_FAILPOINT", point)], true);
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr piped"));
        let mut line = String::new();
        let mut reached = false;
        while stderr.read_line(&mut line).unwrap_or(0) > 0 {
            if line.contains("stopped at failpoint") && line.contains(point) {
                reached = true;
                break;
            }
            line.clear();
        }
        Self::kill_group(child);
        reached
    }

    pub fn run(&self, binary: &Path) -> Output {
        let mut child = Command::new(binary)
            .env_clear()
            .envs(&self.env)
            .envs(self.raw_env.iter().map(|(k, v)| {
                use std::os::unix::ffi::OsStringExt;
                (k, std::ffi::OsString::from_vec(v.clone()))
            }))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("exec {}: {e}", binary.display()));
        let mut stdin = child.stdin.take().unwrap();
        let input = self.stdin.clone();
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for plugin");
        let _ = writer.join();
        Output {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `command` (a tool, not a plugin), asserting that it succeeded with its
/// stderr in the message; returns its stdout, trimmed.
pub fn run_checked(command: &mut Command, what: &str) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what}: cannot run: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Runs a command in the sandbox, asserting success, and returns stdout.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `conf` with `prevResult` set, for CHECK and DEL.
pub fn with_prev(conf: &Value, prev: &Value) -> Value {
    let mut c = conf.clone();
    c["prevResult"] = prev.clone();
    c
}
