//! One validated invocation: the verb, the runtime's variables, the config bytes.

use std::path::PathBuf;

use serde_json::Value;

use crate::spec::args::CniArgs;
use crate::spec::attachment::AttachmentId;
use crate::spec::version::SpecVersion;

/// The marker a plugin sets for the IPAM plugin it execs: how deep the chain of
/// delegations is. A plugin named as its own IPAM (`"ipam": {"type": "bridge"}`)
/// would otherwise exec itself without end.
pub const DELEGATION_DEPTH_VARIABLE: &str = "CNI_RS_DELEGATION_DEPTH";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    Add,
    Del,
    Check,
    Version,
    Status,
    Gc,
}

impl Command {
    pub fn parse(text: &str) -> Option<Command> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// The variables the spec requires for the verb.
    pub(crate) fn required_env(self) -> &'static [&'static str] {
        match self {
            Command::Add | Command::Check => &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
            Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME"],
            Command::Gc => &["CNI_PATH"],
            Command::Version | Command::Status => &[],
        }
    }
}

/// One invocation, validated.
#[derive(Clone, Debug)]
pub struct Request {
    pub command: Command,
    /// Empty for GC, STATUS and VERSION.
    pub container_id: String,
    /// `None` when CNI_NETNS is unset or empty (allowed for DEL).
    pub netns: Option<PathBuf>,
    pub ifname: String,
    pub args: CniArgs,
    pub path: Vec<PathBuf>,
    pub stdin: Vec<u8>,
    pub version: SpecVersion,
    /// The network name from the config, already validated.
    pub network_name: String,
}

impl Request {
    /// A request for ADD with this config and CNI_ARGS, as the skel would build it:
    /// for unit tests of a plugin's config handling.
    pub fn for_config(config: &Value, cni_args: &str) -> Request {
        let version =
            SpecVersion::from_config_field(config.get("cniVersion").and_then(Value::as_str))
                .unwrap_or(SpecVersion::LATEST);
        Request {
            command: Command::Add,
            container_id: "test-container".into(),
            netns: None,
            ifname: "eth0".into(),
            args: CniArgs::parse(cni_args).expect("valid CNI_ARGS"),
            path: Vec::new(),
            stdin: config.to_string().into_bytes(),
            version,
            network_name: config
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
        }
    }

    /// The attachment this request names (empty parts for GC, STATUS and VERSION).
    pub fn attachment(&self) -> AttachmentId {
        AttachmentId::new(&self.network_name, &self.container_id, &self.ifname)
    }
}
