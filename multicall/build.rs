// Generates the multi-call binary's names and dispatch from plugins/plugins.list,
// the suite's one list of plugins.
use std::fmt::Write;

fn main() {
    let list_path = "../plugins/plugins.list";
    println!("cargo:rerun-if-changed={list_path}");
    let list = std::fs::read_to_string(list_path).expect("plugins/plugins.list");
    let mut names = Vec::new();
    let mut arms = String::new();
    for line in list.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut words = line.split_whitespace();
        let library = words.next().expect("a library name");
        let aliases: Vec<&str> = words.collect();
        assert!(!aliases.is_empty(), "{library}: no installed name");
        let pattern: Vec<String> = aliases.iter().map(|n| format!("{n:?}")).collect();
        writeln!(arms, "        {} => {library}::run(),", pattern.join(" | ")).unwrap();
        names.extend(aliases.iter().map(|n| format!("{n:?}")));
    }
    let code = format!(
        "/// Every plugin name the binary answers to, as installed.\n\
         pub const NAMES: [&str; {}] = [{}];\n\n\
         fn dispatch(name: &str) -> Option<std::process::ExitCode> {{\n    match name {{\n{arms}        _ => None,\n    }}\n}}\n",
        names.len(),
        names.join(", ")
    );
    let out = std::path::Path::new(&std::env::var("OUT_DIR").unwrap()).join("plugins.rs");
    std::fs::write(out, code).unwrap();
}
