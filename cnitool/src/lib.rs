//! cnitool: add, check, delete, garbage-collect or ask the status of a network
//! configuration list against a network namespace, as a container runtime would.
//! A drop-in for the Go cnitool: same environment, same default container ID,
//! same result cache, so either tool can finish what the other started.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand};
use cni_runtime::{cnitool_container_id, load_network_list, NetworkList, Runtime, RuntimeConf};
use libcni::spec::config::Attachment;
use libcni::CniError;
use serde_json::{Map, Value};

#[derive(Parser)]
#[command(
    name = "cnitool",
    version,
    about = "Run a CNI network configuration list against a network namespace"
)]
struct Cli {
    /// Directory of network configurations.
    #[arg(
        long,
        env = "NETCONFPATH",
        default_value = "/etc/cni/net.d",
        global = true
    )]
    netconf_dir: PathBuf,
    /// Where plugins are looked up (colon-separated).
    #[arg(long, env = "CNI_PATH", default_value = "", global = true)]
    cni_path: String,
    /// Interface name inside the namespace.
    #[arg(long, env = "CNI_IFNAME", default_value = "eth0", global = true)]
    ifname: String,
    /// CNI_ARGS for the plugins: `K=V;K=V`.
    #[arg(long = "args", env = "CNI_ARGS", default_value = "", global = true)]
    cni_args: String,
    /// Capability arguments as a JSON object (`{"portMappings": [...]}`).
    #[arg(long, env = "CAP_ARGS", default_value = "", global = true)]
    cap_args: String,
    /// Container ID (default: `cnitool-` and a hash of the netns path, as the Go tool).
    #[arg(long, global = true)]
    container_id: Option<String>,
    /// Result cache directory (results are kept under `<dir>/results`).
    #[arg(long, default_value = cni_runtime::DEFAULT_CACHE_DIR, global = true, hide = true)]
    cache_dir: PathBuf,
    /// Print the result as JSON (the default).
    #[arg(long, global = true, conflicts_with = "quiet")]
    json: bool,
    /// Print nothing on success.
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Attach: ADD through the chain, and cache the result.
    Add { network: String, netns: PathBuf },
    /// CHECK the attachment against the cached result.
    Check { network: String, netns: PathBuf },
    /// Detach: DEL through the chain in reverse.
    Del { network: String, netns: PathBuf },
    /// DEL the cached attachments of the network whose netns is gone, then GC each
    /// plugin with the others as the valid attachments.
    Gc {
        network: String,
        netns: Option<PathBuf>,
        /// Treat every cached attachment as stale (the Go cnitool's behaviour).
        #[arg(long)]
        all: bool,
    },
    /// Ask each plugin whether it is ready.
    Status {
        network: String,
        netns: Option<PathBuf>,
    },
    /// VERSION of a plugin.
    Version { plugin: String },
}

/// `K=V;K=V` with both parts non-empty, as the Go tool requires.
fn parse_cni_args(text: &str) -> Result<Vec<(String, String)>, CniError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(';')
        .map(|pair| match pair.split('=').collect::<Vec<_>>()[..] {
            [k, v] if !k.is_empty() && !v.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(CniError::invalid_env(format!(
                "invalid CNI_ARGS pair {pair:?}"
            ))),
        })
        .collect()
}

fn parse_cap_args(text: &str) -> Result<Map<String, Value>, CniError> {
    if text.is_empty() {
        return Ok(Map::new());
    }
    serde_json::from_str(text)
        .map_err(|e| CniError::decoding(format!("CAP_ARGS is not a JSON object: {e}")))
}

fn absolute(path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    }
}

impl Cli {
    fn runtime(&self) -> Runtime {
        let path = self
            .cni_path
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        Runtime {
            path,
            cache_dir: self.cache_dir.clone(),
        }
    }

    fn attachment(&self, netns: &Path) -> Result<RuntimeConf, CniError> {
        let netns = absolute(netns);
        Ok(RuntimeConf {
            container_id: self
                .container_id
                .clone()
                .unwrap_or_else(|| cnitool_container_id(&netns)),
            netns: netns.display().to_string(),
            ifname: self.ifname.clone(),
            args: parse_cni_args(&self.cni_args)?,
            capability_args: parse_cap_args(&self.cap_args)?,
        })
    }

    fn list(&self, network: &str) -> Result<NetworkList, CniError> {
        load_network_list(&self.netconf_dir, network)
    }

    fn run(&self) -> Result<Option<Value>, CniError> {
        let runtime = self.runtime();
        match &self.command {
            Verb::Add { network, netns } => {
                let list = self.list(network)?;
                runtime.validate(&list)?;
                runtime.add(&list, &self.attachment(netns)?).map(Some)
            }
            Verb::Check { network, netns } => {
                let list = self.list(network)?;
                runtime.validate(&list)?;
                runtime.check(&list, &self.attachment(netns)?).map(|_| None)
            }
            // DEL is never refused up front: it must clean up whatever it can.
            Verb::Del { network, netns } => runtime
                .del(&self.list(network)?, &self.attachment(netns)?)
                .map(|_| None),
            Verb::Gc { network, all, .. } => {
                let list = self.list(network)?;
                if *all {
                    // As the Go tool: no valid-attachment list, every cached one is stale.
                    return runtime.gc(&list, None).map(|_| None);
                }
                // An attachment whose netns still exists is live: only the others go.
                let live: Vec<Attachment> = runtime
                    .cached_attachments()
                    .into_iter()
                    .filter(|c| c.network_name == list.name)
                    .filter(|c| libcni::netns::NetNs::open(Path::new(&c.netns)).is_ok())
                    .map(|c| Attachment {
                        container_id: c.container_id,
                        ifname: c.ifname,
                    })
                    .collect();
                runtime.gc(&list, Some(&live)).map(|_| None)
            }
            Verb::Status { network, .. } => runtime.status(&self.list(network)?).map(|_| None),
            Verb::Version { plugin } => runtime.version_info(plugin).map(Some),
        }
    }
}

/// The plugin's error object, readably: what failed, the code and its meaning, the
/// message, and the details.
fn describe(error: &CniError) -> String {
    let mut text = format!(
        "{} (code {}: {})",
        error.msg,
        error.code.number(),
        error.code.title()
    );
    if !error.details.is_empty() {
        text.push_str(&format!("\n  details: {}", error.details));
    }
    text
}

/// The tool's entry point, for its own binary and for the multi-call binary.
/// The command line's definition, for its man page (generated from the same
/// definition as `--help`).
pub fn command() -> clap::Command {
    Cli::command()
}

pub fn run() -> ExitCode {
    run_from(std::env::args_os())
}

/// As `run`, with the command line given (the first item is the program name).
pub fn run_from<I: IntoIterator<Item = std::ffi::OsString>>(args: I) -> ExitCode {
    let cli = Cli::parse_from(args);
    match cli.run() {
        Ok(result) => {
            if let (Some(result), false) = (result, cli.quiet) {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&result).expect("serializes")
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("cnitool: {}", describe(&error));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cni_args_pairs_must_have_both_parts() {
        assert_eq!(
            parse_cni_args("A=1;B=2").unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "2".into())]
        );
        for bad in ["A=", "=1", "A", "A=1;", "A=1=2"] {
            assert!(parse_cni_args(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn errors_are_described_with_code_and_details() {
        let e = CniError::invalid_config("plugin type=\"bridge\" failed (add): bad")
            .with_details("more");
        assert_eq!(describe(&e), "plugin type=\"bridge\" failed (add): bad (code 7: invalid network config)\n  details: more");
    }
}
