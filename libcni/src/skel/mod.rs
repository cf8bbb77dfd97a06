//! The plugin entry point: reads the environment and stdin, validates them as the
//! spec says, loads the plugin's config once, dispatches the verb and prints the
//! result or the error object.

use std::io::{Read, Write};
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::spec::args::CniArgs;
use crate::spec::error::{CniError, ErrorCode};
use crate::spec::names::{validate_container_id, validate_interface_name, validate_network_name};
use crate::spec::request::{Command, Request};
use crate::spec::result::CniResult;
use crate::spec::version::{all_version_strings, SpecVersion};

/// Stdin larger than this is refused: a config is a few KiB, a chained prevResult
/// rarely more than tens; a runaway writer must not make us read forever.
pub const MAX_STDIN_BYTES: u64 = 1024 * 1024;

/// What a plugin implements. The skel loads the config a verb needs once, after
/// validating the invocation, and hands it to the verb. Three readings, because
/// the verbs need different things of the same config:
/// - ADD and CHECK: [`Plugin::load`], the config parsed and validated in full;
/// - DEL: [`Plugin::load_for_del`], lenient, so that a config ADD would refuse still
///   tears down what an earlier ADD made (runtimes retry DEL until it succeeds);
/// - GC and STATUS: [`Plugin::load_for_gc`], what the network-wide verbs read.
///
/// Defaults: GC and STATUS succeed with nothing to do.
pub trait Plugin {
    type Config;
    type DelConfig;
    type GcConfig;

    fn load(&self, request: &Request) -> Result<Self::Config, CniError>;
    fn load_for_del(&self, request: &Request) -> Result<Self::DelConfig, CniError>;
    fn load_for_gc(&self, request: &Request) -> Result<Self::GcConfig, CniError>;

    fn add(&self, request: &Request, config: &Self::Config) -> Result<CniResult, CniError>;
    fn del(&self, request: &Request, config: &Self::DelConfig) -> Result<(), CniError>;
    fn check(&self, request: &Request, config: &Self::Config) -> Result<(), CniError>;
    fn gc(&self, _request: &Request, _config: &Self::GcConfig) -> Result<(), CniError> {
        Ok(())
    }
    fn status(&self, _request: &Request, _config: &Self::GcConfig) -> Result<(), CniError> {
        Ok(())
    }
    /// CNI_ARGS keys this plugin reads (the runtime's K8S_POD_* keys are always known).
    fn known_args(&self) -> &'static [&'static str] {
        &[]
    }
    /// Whether the plugin is an IPAM plugin, which another plugin may exec as its
    /// delegate. A main plugin exec'd that way (`"ipam": {"type": "bridge"}`) is a
    /// configuration error, and would exec itself again without end.
    fn is_ipam(&self) -> bool {
        false
    }
}

/// Reads one environment variable as bytes (a value may be any bytes).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<Vec<u8>>;

/// An invocation refused before the plugin runs: the error, and the spec version
/// to print it in (the latest until the config's own version is known).
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
struct Refusal {
    error: CniError,
    version: SpecVersion,
}

impl Refusal {
    fn new(error: CniError, version: SpecVersion) -> Refusal {
        Refusal { error, version }
    }
}

impl From<CniError> for Refusal {
    fn from(error: CniError) -> Refusal {
        Refusal::new(error, SpecVersion::LATEST)
    }
}

/// A variable that must be text: `Ok(None)` when unset, code 4 naming it when its
/// bytes are not UTF-8 (never silently treated as unset).
fn text_var(env: Env<'_>, name: &str) -> Result<Option<String>, CniError> {
    match env(name) {
        None => Ok(None),
        Some(bytes) => String::from_utf8(bytes)
            .map(Some)
            .map_err(|_| CniError::invalid_env(format!("{name} is not valid UTF-8 text"))),
    }
}

/// A variable that names a path: any bytes.
fn path_var(env: Env<'_>, name: &str) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStringExt;
    env(name)
        .filter(|v| !v.is_empty())
        .map(|v| PathBuf::from(std::ffi::OsString::from_vec(v)))
}

/// Who the plugin is, for the line printed when it runs without CNI_COMMAND.
#[derive(Clone, Copy, Debug)]
pub struct About {
    pub name: &'static str,
    pub version: &'static str,
}

impl About {
    pub fn line(&self) -> String {
        format!(
            "CNI {} plugin {} (git {}), spec versions {}",
            self.name,
            self.version,
            crate::GIT_COMMIT,
            all_version_strings().join(", ")
        )
    }
}

/// What one invocation prints and returns; kept apart from the process so that the
/// whole dispatch is unit-tested.
#[derive(Debug, Default)]
pub struct Outcome {
    pub exit_code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Outcome {
    fn error(error: &CniError, version: SpecVersion) -> Outcome {
        Outcome {
            exit_code: 1,
            stdout: serde_json::to_string(&error.to_json(version)).expect("serializes") + "\n",
            stderr: String::new(),
        }
    }

    fn refused(refusal: &Refusal) -> Outcome {
        Outcome::error(&refusal.error, refusal.version)
    }
}

/// Reads at most `MAX_STDIN_BYTES`; more is an error, not a longer read.
fn read_bounded(stdin: &mut dyn Read) -> Result<Vec<u8>, CniError> {
    let mut bytes = Vec::new();
    stdin
        .take(MAX_STDIN_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| {
            CniError::io(format!(
                "failed to read the network configuration from stdin: {e}"
            ))
        })?;
    if bytes.len() as u64 > MAX_STDIN_BYTES {
        return Err(CniError::invalid_config(format!(
            "network configuration on stdin is larger than {MAX_STDIN_BYTES} bytes"
        )));
    }
    Ok(bytes)
}

/// The netns of the plugin itself, which a runtime must never hand us.
fn is_own_netns(path: &std::path::Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (
        std::fs::metadata("/proc/self/ns/net"),
        std::fs::metadata(path),
    ) {
        (Ok(own), Ok(given)) => own.dev() == given.dev() && own.ino() == given.ino(),
        _ => false,
    }
}

/// Validates the invocation, loads the config and runs the verb. `env` reads a
/// variable.
pub fn dispatch<P: Plugin>(
    plugin: &P,
    about: &About,
    env: Env<'_>,
    stdin: &mut dyn Read,
) -> Outcome {
    match prepare(plugin.known_args(), plugin.is_ipam(), about, env, stdin) {
        Ok(request) => run_verb(plugin, &request),
        Err(answer) => answer,
    }
}

/// Everything before the verb, kept out of the generic `dispatch` so that the
/// multi-call binary holds it once, not once per plugin: the request, or the answer
/// that ends the invocation here (the about line, VERSION, a refusal).
fn prepare(
    known_args: &'static [&'static str],
    is_ipam: bool,
    about: &About,
    env: Env<'_>,
    stdin: &mut dyn Read,
) -> Result<Box<Request>, Outcome> {
    let command_text = match text_var(env, "CNI_COMMAND") {
        Err(error) => return Err(Outcome::error(&error, SpecVersion::LATEST)),
        Ok(Some(text)) => text,
        Ok(None) => {
            return Err(Outcome {
                exit_code: 0,
                stdout: String::new(),
                stderr: about.line() + "\n",
            })
        }
    };
    let Some(command) = Command::parse(&command_text) else {
        return Err(Outcome::error(
            &CniError::invalid_env(format!("unknown CNI_COMMAND: {command_text:?}")),
            SpecVersion::LATEST,
        ));
    };
    match validate(known_args, command, env, stdin) {
        Ok(Validated::Request(request)) if delegation_depth(env) > 0 && !is_ipam => {
            // Exec'd as another plugin's IPAM: refuse before any work. DEL has nothing
            // to undo (no ADD of this kind ever succeeded), so it succeeds.
            if request.command == Command::Del {
                return Err(Outcome::default());
            }
            Err(Outcome::error(
                &CniError::invalid_config(format!(
                    "{} is not an IPAM plugin: a configuration names it as \"ipam\" type",
                    about.name
                )),
                request.version,
            ))
        }
        Ok(Validated::Version(reply)) => Err(Outcome {
            exit_code: 0,
            stdout: serde_json::to_string(&reply).expect("serializes") + "\n",
            stderr: String::new(),
        }),
        Ok(Validated::Request(request)) => Ok(request),
        Err(refusal) => Err(Outcome::refused(&refusal)),
    }
}

enum Validated {
    Version(Value),
    Request(Box<Request>),
}

/// How deep in a chain of IPAM delegations this process runs (0: exec'd by the
/// runtime), from the marker `delegate::ipam` sets for the plugins it execs.
pub fn delegation_depth(env: Env<'_>) -> u32 {
    env(crate::spec::request::DELEGATION_DEPTH_VARIABLE)
        .and_then(|v| String::from_utf8(v).ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The spec's checks, in its order: the variables the verb requires, stdin, then
/// (for every verb but VERSION) the variables' values and the config's common keys.
fn validate(
    known_args: &[&str],
    command: Command,
    env: Env<'_>,
    stdin: &mut dyn Read,
) -> Result<Validated, Refusal> {
    require_variables(command, env)?;
    let stdin = read_bounded(stdin)?;
    if command == Command::Version {
        return Ok(Validated::Version(version_reply(&stdin)));
    }
    let vars = RuntimeVars::read(command, env)?;
    let header = ConfigHeader::parse(command, &stdin)?;
    if matches!(command, Command::Add | Command::Check) {
        let in_version = |e| Refusal::new(e, header.version);
        vars.args.check_known(known_args).map_err(in_version)?;
        vars.args.check_text(known_args).map_err(in_version)?;
    }
    Ok(Validated::Request(Box::new(Request {
        command,
        container_id: vars.container_id,
        netns: vars.netns,
        ifname: vars.ifname,
        args: vars.args,
        path: vars.path,
        stdin,
        version: header.version,
        network_name: header.network_name,
    })))
}

/// All the variables the verb requires that are missing, named in one error.
fn require_variables(command: Command, env: Env<'_>) -> Result<(), CniError> {
    let missing: Vec<&str> = command
        .required_env()
        .iter()
        .copied()
        // An empty container ID is set but unknown: code 3 later, not "missing".
        .filter(|name| match *name {
            "CNI_CONTAINERID" => env(name).is_none(),
            _ => env(name).filter(|v| !v.is_empty()).is_none(),
        })
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(CniError::invalid_env(format!(
        "required environment variables missing: {}",
        missing.join(", ")
    )))
}

/// VERSION works with empty stdin; it answers in the version it was asked in.
fn version_reply(stdin: &[u8]) -> Value {
    let asked = serde_json::from_slice::<Value>(stdin)
        .ok()
        .and_then(|v| {
            v.get("cniVersion")
                .and_then(Value::as_str)
                .map(str::to_owned)
        })
        .and_then(|v| v.parse::<SpecVersion>().ok())
        .unwrap_or(SpecVersion::LATEST);
    json!({
        "cniVersion": asked.as_str(),
        "supportedVersions": all_version_strings(),
    })
}

/// The runtime's variables, each validated.
struct RuntimeVars {
    container_id: String,
    ifname: String,
    netns: Option<PathBuf>,
    args: CniArgs,
    path: Vec<PathBuf>,
}

impl RuntimeVars {
    fn read(command: Command, env: Env<'_>) -> Result<RuntimeVars, CniError> {
        let required = command.required_env();
        let container_id = text_var(env, "CNI_CONTAINERID")?.unwrap_or_default();
        if required.contains(&"CNI_CONTAINERID") || !container_id.is_empty() {
            validate_container_id(&container_id)?;
        }
        let ifname = text_var(env, "CNI_IFNAME")?.unwrap_or_default();
        if required.contains(&"CNI_IFNAME") || !ifname.is_empty() {
            validate_interface_name(&ifname)
                .map_err(|e| e.context(format!("invalid CNI_IFNAME {ifname:?}")))?;
        }
        let netns = path_var(env, "CNI_NETNS");
        if let Some(path) = &netns {
            let overridden = env("CNI_NETNS_OVERRIDE")
                .is_some_and(|v| v == b"1" || v.eq_ignore_ascii_case(b"true"));
            if !overridden && is_own_netns(path) {
                return Err(CniError::invalid_env(format!(
                    "CNI_NETNS {} is the plugin's own network namespace; set CNI_NETNS_OVERRIDE=1 to allow it",
                    path.display()
                )));
            }
        }
        let args = CniArgs::parse_bytes(&env("CNI_ARGS").unwrap_or_default())?;
        Ok(RuntimeVars {
            container_id,
            ifname,
            netns,
            args,
            path: search_path(env),
        })
    }
}

/// CNI_PATH: each entry is a path, any bytes; one odd entry never empties the others.
fn search_path(env: Env<'_>) -> Vec<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    env("CNI_PATH")
        .map(|p| {
            p.split(|b| *b == b':')
                .filter(|s| !s.is_empty())
                .map(|s| PathBuf::from(std::ffi::OsStr::from_bytes(s)))
                .collect()
        })
        .unwrap_or_default()
}

/// The common keys the skel itself checks: the version and the network name.
struct ConfigHeader {
    version: SpecVersion,
    network_name: String,
}

impl ConfigHeader {
    fn parse(command: Command, stdin: &[u8]) -> Result<ConfigHeader, Refusal> {
        let mut config: Value = serde_json::from_slice(stdin).map_err(|e| {
            CniError::decoding(format!(
                "failed to parse the network configuration on stdin: {e}"
            ))
        })?;
        let Some(object) = config.as_object_mut() else {
            return Err(CniError::decoding(
                "the network configuration on stdin is not a JSON object",
            )
            .into());
        };
        crate::spec::gojson::canonicalize_keys(object, &[crate::spec::gojson::COMMON_KEYS]);
        let version = config_version(config.get("cniVersion"))?;
        let in_version = |e| Refusal::new(e, version);
        let network_name = match config.get("name") {
            Some(Value::String(name)) => name.clone(),
            None => String::new(),
            Some(other) => {
                return Err(in_version(CniError::invalid_config(format!(
                    "network name must be a string, got {other}"
                ))))
            }
        };
        validate_network_name(&network_name).map_err(in_version)?;
        let gate = match command {
            Command::Check if !version.supports_check() => Some("CHECK"),
            Command::Gc if !version.supports_gc_and_status() => Some("GC"),
            Command::Status if !version.supports_gc_and_status() => Some("STATUS"),
            _ => None,
        };
        if let Some(verb) = gate {
            return Err(in_version(CniError::new(
                ErrorCode::IncompatibleVersion,
                format!("config version {version} does not allow {verb}"),
            )));
        }
        Ok(ConfigHeader {
            version,
            network_name,
        })
    }
}

/// `cniVersion`: a string naming a version this plugin supports; absent is 0.1.0.
fn config_version(field: Option<&Value>) -> Result<SpecVersion, CniError> {
    let text = match field {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(other) => {
            return Err(CniError::invalid_config(format!(
                "cniVersion must be a string, got {other}"
            )))
        }
    };
    SpecVersion::from_config_field(text).map_err(|e| {
        CniError::new(
            ErrorCode::IncompatibleVersion,
            format!("incompatible CNI versions: {e}"),
        )
        .with_details(format!(
            "config is {:?}, plugin supports {:?}",
            text.unwrap_or_default(),
            all_version_strings()
        ))
    })
}

/// Loads the config the verb needs and runs it.
fn run_verb<P: Plugin>(plugin: &P, request: &Request) -> Outcome {
    let version = request.version;
    let done = |r: Result<(), CniError>| match r {
        Ok(()) => Outcome::default(),
        Err(e) => Outcome::error(&e, version),
    };
    match request.command {
        Command::Add => match plugin.load(request).and_then(|c| plugin.add(request, &c)) {
            Err(error) => Outcome::error(&error, version),
            Ok(result) => print_result(plugin, request, &result),
        },
        Command::Del => done(del(plugin, request)),
        Command::Check => done(plugin.load(request).and_then(|c| plugin.check(request, &c))),
        Command::Gc => done(
            plugin
                .load_for_gc(request)
                .and_then(|c| plugin.gc(request, &c)),
        ),
        Command::Status => done(
            plugin
                .load_for_gc(request)
                .and_then(|c| plugin.status(request, &c)),
        ),
        Command::Version => unreachable!("VERSION is answered during validation"),
    }
}

fn del<P: Plugin>(plugin: &P, request: &Request) -> Result<(), CniError> {
    plugin
        .load_for_del(request)
        .and_then(|c| plugin.del(request, &c))
}

/// ADD's result in the request's version.
fn print_result<P: Plugin>(plugin: &P, request: &Request, result: &CniResult) -> Outcome {
    let printed = printed_result(request, result);
    match printed {
        Ok(outcome) => outcome,
        Err(mut outcome) => {
            // A result that the request's version cannot express is found only after
            // the work is done: undo it so that the failed ADD leaves nothing.
            if let Err(undo) = del(plugin, request) {
                outcome.stderr = format!("cleanup after the failed ADD also failed: {undo}\n");
            }
            outcome
        }
    }
}

/// The result printed in the request's version, or the error that it cannot be.
fn printed_result(request: &Request, result: &CniResult) -> Result<Outcome, Outcome> {
    match result.to_value(request.version) {
        Ok(value) => Ok(Outcome {
            exit_code: 0,
            stdout: serde_json::to_string_pretty(&value).expect("serializes") + "\n",
            stderr: String::new(),
        }),
        Err(error) => Err(Outcome::error(&error, request.version)),
    }
}

/// Whether this process runs as plugin `name`: its program name, or the name given
/// to the multi-call binary (`cni-plugins NAME`). For the plugins installed under a
/// second name (`cnv-bridge`, `cnv-tuning`) whose defaults differ.
pub fn invoked_as(name: &str) -> bool {
    let mut args = std::env::args();
    let program = args.next().map(|arg0| {
        std::path::Path::new(&arg0)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string()
    });
    program.as_deref() == Some(name)
        || (program.as_deref() == Some("cni-plugins") && args.next().as_deref() == Some(name))
}

/// The `main` of every plugin binary.
pub fn run<P: Plugin>(plugin: &P, about: About) -> ! {
    use std::os::unix::ffi::OsStringExt;
    let env = |name: &str| std::env::var_os(name).map(|v| v.into_vec());
    let outcome = dispatch(plugin, &about, &env, &mut std::io::stdin().lock());
    exit_with(outcome)
}

/// Prints an invocation's answer and exits with its status.
fn exit_with(outcome: Outcome) -> ! {
    let _ = std::io::stderr().write_all(outcome.stderr.as_bytes());
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(outcome.stdout.as_bytes());
    let _ = stdout.flush();
    std::process::exit(outcome.exit_code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::result::Interface;
    use std::cell::RefCell;
    use std::collections::HashMap;

    /// The config types and loaders of a test plugin that reads no config.
    macro_rules! no_config {
        () => {
            type Config = ();
            type DelConfig = ();
            type GcConfig = ();
            fn load(&self, _r: &Request) -> Result<(), CniError> {
                Ok(())
            }
            fn load_for_del(&self, _r: &Request) -> Result<(), CniError> {
                Ok(())
            }
            fn load_for_gc(&self, _r: &Request) -> Result<(), CniError> {
                Ok(())
            }
        };
    }

    #[derive(Default)]
    struct Recorder {
        calls: RefCell<Vec<&'static str>>,
        l2_only: bool,
    }

    impl Plugin for Recorder {
        no_config!();
        fn add(&self, _r: &Request, _c: &()) -> Result<CniResult, CniError> {
            self.calls.borrow_mut().push("add");
            let mut result = CniResult::default();
            result.add_interface(Interface {
                name: "eth0".into(),
                ..Default::default()
            });
            if !self.l2_only {
                result.ips.push(crate::spec::result::IpConfig {
                    address: "10.0.0.2/24".parse().unwrap(),
                    gateway: None,
                    interface: Some(0),
                });
            }
            Ok(result)
        }
        fn del(&self, _r: &Request, _c: &()) -> Result<(), CniError> {
            self.calls.borrow_mut().push("del");
            Ok(())
        }
        fn check(&self, _r: &Request, _c: &()) -> Result<(), CniError> {
            self.calls.borrow_mut().push("check");
            Ok(())
        }
        fn known_args(&self) -> &'static [&'static str] {
            &["IP"]
        }
    }

    const ABOUT: About = About {
        name: "test",
        version: "0",
    };

    fn invoke(plugin: &Recorder, vars: &[(&str, &str)], stdin: &str) -> (Outcome, Option<Value>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |name: &str| map.get(name).map(|v| v.clone().into_bytes());
        let outcome = dispatch(plugin, &ABOUT, &env, &mut stdin.as_bytes());
        let json = serde_json::from_str(&outcome.stdout).ok();
        (outcome, json)
    }

    fn add_env<'a>() -> Vec<(&'a str, &'a str)> {
        vec![
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/none"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ]
    }

    fn code(json: &Option<Value>) -> u64 {
        json.as_ref().and_then(|j| j["code"].as_u64()).unwrap_or(0)
    }

    const CONF: &str = r#"{"cniVersion":"1.0.0","name":"net","type":"test"}"#;

    #[test]
    fn no_command_prints_about_and_exits_zero() {
        let (o, _) = invoke(&Recorder::default(), &[], "");
        assert_eq!(o.exit_code, 0);
        assert!(o.stdout.is_empty());
        assert!(o.stderr.contains("CNI test plugin"));
    }

    #[test]
    fn version_works_with_empty_stdin_and_lists_all_versions() {
        let (o, json) = invoke(&Recorder::default(), &[("CNI_COMMAND", "VERSION")], "");
        assert_eq!(o.exit_code, 0);
        let json = json.unwrap();
        assert_eq!(json["supportedVersions"].as_array().unwrap().len(), 7);
        let (_, json) = invoke(
            &Recorder::default(),
            &[("CNI_COMMAND", "VERSION")],
            r#"{"cniVersion":"0.3.1"}"#,
        );
        assert_eq!(json.unwrap()["cniVersion"], "0.3.1");
    }

    #[test]
    fn all_missing_variables_are_named_in_one_error() {
        let (o, json) = invoke(&Recorder::default(), &[("CNI_COMMAND", "ADD")], CONF);
        assert_eq!(o.exit_code, 1);
        assert_eq!(code(&json), 4);
        let msg = json.unwrap()["msg"].as_str().unwrap().to_string();
        for var in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"] {
            assert!(msg.contains(var), "{msg}");
        }
    }

    #[test]
    fn unknown_command_is_code_4() {
        let (_, json) = invoke(&Recorder::default(), &[("CNI_COMMAND", "FROB")], CONF);
        assert_eq!(code(&json), 4);
    }

    #[test]
    fn container_id_and_ifname_rules() {
        let p = Recorder::default();
        let mut env = add_env();
        env[1] = ("CNI_CONTAINERID", "");
        assert_eq!(code(&invoke(&p, &env, CONF).1), 3);
        env[1] = ("CNI_CONTAINERID", "../../etc");
        assert_eq!(code(&invoke(&p, &env, CONF).1), 4);
        let mut env = add_env();
        for bad in ["1234567890123456", "a/b", "..", "a:b", "a b"] {
            env[3] = ("CNI_IFNAME", bad);
            assert_eq!(code(&invoke(&p, &env, CONF).1), 4, "{bad}");
        }
        assert!(p.calls.borrow().is_empty());
    }

    #[test]
    fn stdin_errors_have_their_codes() {
        let p = Recorder::default();
        assert_eq!(code(&invoke(&p, &add_env(), "{").1), 6);
        assert_eq!(code(&invoke(&p, &add_env(), "[1]").1), 6);
        assert_eq!(
            code(&invoke(&p, &add_env(), r#"{"cniVersion":"1.0.0"}"#).1),
            7
        );
        assert_eq!(
            code(&invoke(&p, &add_env(), r#"{"cniVersion":"1.0.0","name":"a/b"}"#).1),
            7
        );
        let (_, json) = invoke(&p, &add_env(), r#"{"cniVersion":"0.5.0","name":"n"}"#);
        assert_eq!(code(&json), 1);
        assert!(json.unwrap()["details"].as_str().unwrap().contains("1.1.0"));
        let big = format!(r#"{{"name":"n","pad":"{}"}}"#, "x".repeat(3 * 1024 * 1024));
        assert_eq!(code(&invoke(&p, &add_env(), &big).1), 7);
        assert!(p.calls.borrow().is_empty());
    }

    #[test]
    fn verbs_below_their_version_are_code_1() {
        let p = Recorder::default();
        let mut env = add_env();
        env[0] = ("CNI_COMMAND", "CHECK");
        assert_eq!(
            code(&invoke(&p, &env, r#"{"cniVersion":"0.3.1","name":"n"}"#).1),
            1
        );
        assert_eq!(
            invoke(&p, &env, r#"{"cniVersion":"0.4.0","name":"n"}"#)
                .0
                .exit_code,
            0
        );
        let gc = [("CNI_COMMAND", "GC"), ("CNI_PATH", "/x")];
        assert_eq!(code(&invoke(&p, &gc, CONF).1), 1);
        assert_eq!(
            invoke(&p, &gc, r#"{"cniVersion":"1.1.0","name":"n"}"#)
                .0
                .exit_code,
            0
        );
        let status = [("CNI_COMMAND", "STATUS")];
        assert_eq!(code(&invoke(&p, &status, CONF).1), 1);
    }

    #[test]
    fn unknown_cni_args_key_is_refused_without_ignore_unknown() {
        let p = Recorder::default();
        let mut env = add_env();
        env.push(("CNI_ARGS", "FOO=1"));
        assert_eq!(code(&invoke(&p, &env, CONF).1), 4);
        env.pop();
        env.push((
            "CNI_ARGS",
            "IgnoreUnknown=1;FOO=1;K8S_POD_NAME=x;IP=10.0.0.1",
        ));
        assert_eq!(invoke(&p, &env, CONF).0.exit_code, 0);
    }

    #[test]
    fn add_result_is_printed_in_the_request_version() {
        let p = Recorder::default();
        for (version, has_ip4) in [("0.2.0", true), ("0.4.0", false), ("1.1.0", false)] {
            let conf = format!(r#"{{"cniVersion":"{version}","name":"n"}}"#);
            let (o, json) = invoke(&p, &add_env(), &conf);
            assert_eq!(o.exit_code, 0, "{}", o.stdout);
            let json = json.unwrap();
            assert_eq!(json["cniVersion"], version);
            assert_eq!(json.get("ip4").is_some(), has_ip4);
        }
    }

    #[test]
    fn a_result_the_version_cannot_express_is_undone() {
        let p = Recorder {
            l2_only: true,
            ..Default::default()
        };
        let (o, json) = invoke(&p, &add_env(), r#"{"cniVersion":"0.2.0","name":"n"}"#);
        assert_eq!(o.exit_code, 1);
        assert_eq!(code(&json), 1);
        assert_eq!(*p.calls.borrow(), vec!["add", "del"]);
    }

    struct FailingAdd(RefCell<Vec<&'static str>>);

    impl Plugin for FailingAdd {
        no_config!();
        fn add(&self, _r: &Request, _c: &()) -> Result<CniResult, CniError> {
            self.0.borrow_mut().push("add");
            Err(CniError::invalid_config("duplicate"))
        }
        fn del(&self, _r: &Request, _c: &()) -> Result<(), CniError> {
            self.0.borrow_mut().push("del");
            Ok(())
        }
        fn check(&self, _r: &Request, _c: &()) -> Result<(), CniError> {
            Ok(())
        }
    }

    #[test]
    fn a_failed_add_is_not_followed_by_del() {
        // The plugin undoes its own partial work; a DEL here would release what an
        // earlier, successful ADD of the same attachment holds.
        let p = FailingAdd(RefCell::new(Vec::new()));
        let env: HashMap<String, String> = add_env()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let outcome = dispatch(
            &p,
            &ABOUT,
            &move |n: &str| env.get(n).map(|v| v.clone().into_bytes()),
            &mut CONF.as_bytes(),
        );
        assert_eq!(outcome.exit_code, 1);
        assert_eq!(*p.0.borrow(), vec!["add"]);
    }

    #[test]
    fn own_netns_is_refused_unless_overridden() {
        let p = Recorder::default();
        let mut env = add_env();
        env[2] = ("CNI_NETNS", "/proc/self/ns/net");
        assert_eq!(code(&invoke(&p, &env, CONF).1), 4);
        env.push(("CNI_NETNS_OVERRIDE", "1"));
        assert_eq!(invoke(&p, &env, CONF).0.exit_code, 0);
    }

    #[test]
    fn del_needs_no_netns() {
        let p = Recorder::default();
        let env = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c"),
            ("CNI_IFNAME", "eth0"),
        ];
        assert_eq!(invoke(&p, &env, CONF).0.exit_code, 0);
        assert_eq!(*p.calls.borrow(), vec!["del"]);
    }
}
