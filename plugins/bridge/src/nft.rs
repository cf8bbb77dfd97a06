//! Runs the `nft` binary with JSON, as the Go plugins do (go-nft, knftables): one
//! call is one atomic transaction.

use std::io::Write;
use std::process::{Command, Stdio};

use libcni::CniError;
use serde_json::{json, Value};

/// A failure of `nft`, with what it printed.
#[derive(Debug)]
pub struct NftError {
    pub message: String,
}

impl NftError {
    /// The object does not exist (what DEL treats as already done).
    pub fn is_not_found(&self) -> bool {
        self.message.contains("No such file or directory")
    }
}

impl From<NftError> for CniError {
    fn from(e: NftError) -> CniError {
        CniError::internal(e.message)
    }
}

/// Applies `commands` (the items of the `nftables` array) as one transaction.
pub fn apply(what: &str, commands: Vec<Value>) -> Result<(), NftError> {
    let input = json!({ "nftables": commands }).to_string();
    let mut child = Command::new("nft")
        .args(["-j", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NftError {
            message: format!("failed to {what}: cannot run nft: {e}"),
        })?;
    let _ = child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.as_bytes());
    let out = child.wait_with_output().map_err(|e| NftError {
        message: format!("failed to {what}: {e}"),
    })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NftError {
            message: format!(
                "failed to {what}: nft: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        })
    }
}

/// `nft -j [-a] list <args>`, parsed: the items of the `nftables` array.
pub fn list(args: &[&str]) -> Result<Vec<Value>, NftError> {
    let out = Command::new("nft")
        .args(["-j", "-a", "list"])
        .args(args)
        .output()
        .map_err(|e| NftError {
            message: format!("failed to list {}: cannot run nft: {e}", args.join(" ")),
        })?;
    if !out.status.success() {
        return Err(NftError {
            message: format!(
                "failed to list {}: nft: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ),
        });
    }
    let parsed: Value = serde_json::from_slice(&out.stdout).map_err(|e| NftError {
        message: format!("failed to parse nft output for {}: {e}", args.join(" ")),
    })?;
    Ok(parsed["nftables"].as_array().cloned().unwrap_or_default())
}

/// The rules among listed items.
pub fn rules(items: &[Value]) -> impl Iterator<Item = &Value> {
    items.iter().filter_map(|i| i.get("rule"))
}

/// Whether nftables can be used at all (the binary exists and answers).
pub fn available() -> bool {
    Command::new("nft")
        .args(["-j", "list", "tables"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}
