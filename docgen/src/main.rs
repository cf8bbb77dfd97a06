//! `cni-docgen man SOURCE_DIR OUT_DIR`: writes the suite's man pages.
//!
//! - `cnitool.1` from cnitool's command-line definition, the one `--help` prints;
//! - `cni-plugins.8` from the plugin READMEs (plugins/plugins.list names them), the
//!   same text the READMEs show: each plugin's description, its keys with their
//!   defaults, and where it differs from the Go plugin.
//!
//! The date on both pages is the date of the version's entry in CHANGELOG.md, so
//! that two builds of one release write the same bytes.

mod markdown;
mod plugins;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use roff::{bold, roman, Roff};

const VERSION: &str = env!("CARGO_PKG_VERSION");

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [command, source, out] = &args[..] else {
        eprintln!("usage: cni-docgen man SOURCE_DIR OUT_DIR");
        return ExitCode::from(2);
    };
    if command != "man" {
        eprintln!("cni-docgen: unknown command {command:?} (only `man`)");
        return ExitCode::from(2);
    }
    match write_pages(Path::new(source), Path::new(out)) {
        Ok(paths) => {
            for path in paths {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("cni-docgen: {message}");
            ExitCode::FAILURE
        }
    }
}

fn write_pages(source: &Path, out: &Path) -> Result<Vec<PathBuf>, String> {
    let date = release_date(source)?;
    std::fs::create_dir_all(out).map_err(|e| format!("create {}: {e}", out.display()))?;
    let pages = [
        ("cnitool.1", cnitool_page(&date)?),
        ("cni-plugins.8", plugins::page(source, &date, VERSION)?),
    ];
    pages
        .into_iter()
        .map(|(name, text)| {
            let path = out.join(name);
            std::fs::write(&path, ascii_roff(&text))
                .map_err(|e| format!("write {}: {e}", path.display()))?;
            Ok(path)
        })
        .collect()
}

/// Non-ASCII characters as groff's `\[uXXXX]` escapes: troff reads its input as
/// Latin-1 and warns on UTF-8.
fn ascii_roff(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii() {
                c.to_string()
            } else {
                format!("\\[u{:04X}]", u32::from(c))
            }
        })
        .collect()
}

/// The date of this version's entry in CHANGELOG.md (`## [VERSION] - YYYY-MM-DD`).
fn release_date(source: &Path) -> Result<String, String> {
    let path = source.join("CHANGELOG.md");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let heading = format!("## [{VERSION}] - ");
    text.lines()
        .find_map(|line| line.strip_prefix(&heading))
        .map(|date| date.trim().to_string())
        .ok_or_else(|| format!("{} has no entry for version {VERSION}", path.display()))
}

fn cnitool_page(date: &str) -> Result<String, String> {
    let command = cnitool::command();
    let man = clap_mangen::Man::new(command.clone())
        .date(date)
        .source(format!("cni-plugins-rs {VERSION}"))
        .manual("User Commands");
    let mut page = Vec::new();
    man.render_title(&mut page).map_err(|e| e.to_string())?;
    man.render_name_section(&mut page)
        .map_err(|e| e.to_string())?;
    man.render_synopsis_section(&mut page)
        .map_err(|e| e.to_string())?;
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]).text([roman(
        "cnitool runs a CNI network configuration list against a network namespace as a \
         container runtime does: it reads the list from the configuration directory, executes \
         each plugin of the chain with the CNI environment and the configuration on standard \
         input, and keeps the result in the runtime's cache, so that CHECK, DEL and GC can \
         follow. Its environment, default container ID and cache match the Go cnitool's, so \
         either tool can finish what the other started.",
    )]);
    roff.control("SH", ["COMMANDS"]);
    for sub in command.get_subcommands() {
        let operands: Vec<String> = sub
            .get_positionals()
            .map(|arg| {
                let name = arg.get_id().as_str().to_uppercase();
                if arg.is_required_set() {
                    name
                } else {
                    format!("[{name}]")
                }
            })
            .collect();
        roff.control("TP", [] as [&str; 0]).text([
            bold(format!("cnitool {}", sub.get_name())),
            roman(format!(" {}", operands.join(" "))),
        ]);
        let about = sub.get_about().map(|a| a.to_string()).unwrap_or_default();
        roff.text([roman(about)]);
    }
    page.extend(roff.render().into_bytes());
    man.render_options_section(&mut page)
        .map_err(|e| e.to_string())?;
    let mut tail = Roff::new();
    tail.control("SH", ["EXIT STATUS"])
        .text([roman(
            "0 when every plugin of the chain succeeded; 1 otherwise, with the plugin's CNI \
             error (its code, message and details) on standard error.",
        )])
        .control("SH", ["FILES"])
        .control("TP", [] as [&str; 0])
        .text([bold("/etc/cni/net.d")])
        .text([roman(
            "network configuration lists (*.conflist) and single configurations (*.conf, *.json)",
        )])
        .control("TP", [] as [&str; 0])
        .text([bold(format!(
            "{}/results",
            cni_runtime_cache_dir().to_string_lossy()
        ))])
        .text([roman(
            "the result cache, one file per network and attachment",
        )])
        .control("SH", ["SEE ALSO"])
        .text([bold("cni-plugins"), roman("(8)")]);
    page.extend(tail.render().into_bytes());
    String::from_utf8(page).map_err(|e| e.to_string())
}

fn cni_runtime_cache_dir() -> PathBuf {
    let command = cnitool::command();
    let default = command
        .get_arguments()
        .find(|arg| arg.get_id() == "cache_dir")
        .and_then(|arg| arg.get_default_values().first().cloned());
    default
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/lib/cni"))
}
