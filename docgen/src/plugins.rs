//! cni-plugins(8): every plugin of plugins/plugins.list, read from its README.

use std::path::Path;

use roff::{bold, roman, Roff};

use crate::markdown::{inlines, table_cells};

/// What the man page takes from a plugin's README.
#[derive(Debug)]
pub struct PluginDoc {
    /// The installed names (plugins.list): the first is the plugin's own.
    pub names: Vec<String>,
    /// The paragraph under the title.
    pub summary: String,
    /// The heading of the keys table ("Keys", "Keys (under `ipam`)").
    pub keys_heading: String,
    /// `(key, default, meaning)`, as the README's table has them.
    pub keys: Vec<[String; 3]>,
    /// The heading of the differences list, and its items.
    pub differences_heading: String,
    pub differences: Vec<String>,
}

/// The plugins of `plugins/plugins.list`, in its order, each with its README.
pub fn read_all(source: &Path) -> Result<Vec<PluginDoc>, String> {
    let list_path = source.join("plugins/plugins.list");
    let list = std::fs::read_to_string(&list_path)
        .map_err(|e| format!("read {}: {e}", list_path.display()))?;
    list.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let names: Vec<String> = line.split_whitespace().skip(1).map(String::from).collect();
            let dir = names
                .first()
                .ok_or_else(|| format!("{}: {line:?} has no name", list_path.display()))?;
            let readme = source.join("plugins").join(dir).join("README.md");
            let text = std::fs::read_to_string(&readme)
                .map_err(|e| format!("read {}: {e}", readme.display()))?;
            parse(names.clone(), &text).map_err(|e| format!("{}: {e}", readme.display()))
        })
        .collect()
}

/// Reads the summary, the keys table and the differences list of one README.
pub fn parse(names: Vec<String>, text: &str) -> Result<PluginDoc, String> {
    let sections = sections(text);
    let summary = sections
        .first()
        .map(|(_, body)| first_paragraph(body))
        .filter(|s| !s.is_empty())
        .ok_or("no paragraph under the title")?;
    let (keys_heading, keys_body) = sections
        .iter()
        .find(|(heading, _)| heading.starts_with("Keys"))
        .ok_or("no \"## Keys\" section")?;
    let keys: Vec<[String; 3]> = keys_body
        .lines()
        .filter(|line| line.trim_start().starts_with('|'))
        .skip(2) // the header and its rule
        .map(|row| match &table_cells(row)[..] {
            [key, default, meaning] => Ok([key.clone(), default.clone(), meaning.clone()]),
            cells => Err(format!("a keys row of {} cells: {row}", cells.len())),
        })
        .collect::<Result<_, _>>()?;
    if keys.is_empty() {
        return Err("an empty keys table".into());
    }
    let (differences_heading, differences_body) = sections
        .iter()
        .find(|(heading, _)| heading.starts_with("Differences from"))
        .ok_or("no \"## Differences from …\" section")?;
    Ok(PluginDoc {
        names,
        summary,
        keys_heading: keys_heading.clone(),
        keys,
        differences_heading: differences_heading.clone(),
        differences: list_items(differences_body),
    })
}

/// `(heading, body)` for the text before the first `##` (heading empty) and each `##`.
fn sections(text: &str) -> Vec<(String, String)> {
    let mut out = vec![(String::new(), String::new())];
    let mut in_code = false;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
        }
        match line.strip_prefix("## ") {
            Some(heading) if !in_code => out.push((heading.trim().to_string(), String::new())),
            _ => {
                let body = &mut out.last_mut().expect("one section").1;
                body.push_str(line);
                body.push('\n');
            }
        }
    }
    out
}

/// The first paragraph after the `# title` line, joined into one line.
fn first_paragraph(body: &str) -> String {
    body.lines()
        .skip_while(|line| line.starts_with("# ") || line.trim().is_empty())
        .take_while(|line| !line.trim().is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The items of a `- ` list, continuation lines joined to their item.
fn list_items(body: &str) -> Vec<String> {
    let mut items: Vec<String> = Vec::new();
    for line in body.lines() {
        if let Some(item) = line.strip_prefix("- ") {
            items.push(item.trim().to_string());
        } else if line.starts_with("  ") && !line.trim().is_empty() {
            if let Some(last) = items.last_mut() {
                last.push(' ');
                last.push_str(line.trim());
            }
        }
    }
    items
}

/// The page: a section per plugin with its keys and its differences from Go.
pub fn page(source: &Path, date: &str, version: &str) -> Result<String, String> {
    let docs = read_all(source)?;
    let all_names: Vec<&str> = docs
        .iter()
        .flat_map(|d| d.names.iter().map(String::as_str))
        .collect();
    let mut roff = Roff::new();
    roff.control(
        "TH",
        [
            "CNI-PLUGINS",
            "8",
            date,
            &format!("cni-plugins-rs {version}"),
            "System Administration",
        ],
    )
    .control("SH", ["NAME"])
    .text([roman(format!(
        "cni-plugins - {}: CNI plugins in Rust",
        all_names.join(", ")
    ))])
    .control("SH", ["SYNOPSIS"])
    .text([
        bold("CNI_COMMAND"),
        roman("=ADD|DEL|CHECK|GC|STATUS|VERSION "),
        bold("CNI_CONTAINERID"),
        roman("=ID "),
        bold("CNI_NETNS"),
        roman("=PATH "),
        bold("CNI_IFNAME"),
        roman("=NAME "),
        bold("CNI_PATH"),
        roman("=DIRS "),
        roman("PLUGIN < CONFIG"),
    ])
    .control("SH", ["DESCRIPTION"])
    .text([roman(
        "Drop-in replacements for the reference CNI plugins: the same JSON configuration gives \
         the same result and the same state on the node as the Go plugins, so a node can switch \
         between them and back. A container runtime or a meta plugin (Multus) runs a plugin with \
         the CNI environment and its network configuration on standard input; the plugin prints \
         its result, or a CNI error object, on standard output. Run without CNI_COMMAND, a \
         plugin prints its name, version and commit.",
    )])
    .control("PP", [] as [&str; 0])
    .text([roman(
        "Every plugin is one file installed under each plugin's name. Each key below is read \
         from the network configuration; keys are matched as the Go plugins match them.",
    )]);
    for doc in &docs {
        plugin_section(&mut roff, doc);
    }
    roff.control("SH", ["EXIT STATUS"])
        .text([roman(
            "0 on success; 1 on failure, with a CNI error object (code, msg, details) on \
             standard output.",
        )])
        .control("SH", ["SEE ALSO"])
        .text([bold("cnitool"), roman("(1)")]);
    Ok(roff.render())
}

fn plugin_section(roff: &mut Roff, doc: &PluginDoc) {
    roff.control("SH", [doc.names.join(", ").to_uppercase().as_str()])
        .text(inlines(&doc.summary))
        .control("SS", [plain(&doc.keys_heading).as_str()]);
    for [key, default, meaning] in &doc.keys {
        roff.control("TP", [] as [&str; 0]).text(inlines(key));
        let mut line = inlines(meaning);
        line.push(roman(" (default: "));
        line.extend(inlines(default));
        line.push(roman(")"));
        roff.text(line);
    }
    roff.control("SS", [plain(&doc.differences_heading).as_str()]);
    for item in &doc.differences {
        roff.control("IP", ["\\(bu", "2"]).text(inlines(item));
    }
}

/// A heading as plain text (roff control arguments take no inline styles).
fn plain(text: &str) -> String {
    text.replace('`', "")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
    }

    /// The page is generated from the READMEs; this checks the reading: every
    /// plugin of the list, every key row of its README, every difference item.
    #[test]
    fn every_readme_key_and_difference_is_read() {
        let docs = read_all(source()).unwrap();
        let list = std::fs::read_to_string(source().join("plugins/plugins.list")).unwrap();
        let listed = list
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .count();
        assert_eq!(docs.len(), listed);
        for doc in &docs {
            let readme = std::fs::read_to_string(
                source()
                    .join("plugins")
                    .join(&doc.names[0])
                    .join("README.md"),
            )
            .unwrap();
            let rows = readme
                .lines()
                .filter(|l| l.starts_with("| `"))
                .filter(|l| table_cells(l).len() == 3)
                .count();
            assert!(doc.keys.len() >= rows.min(1), "{}", doc.names[0]);
            for [key, _, _] in &doc.keys {
                assert!(readme.contains(&format!("| {key} |")), "{key}");
            }
            let items = sections(&readme)
                .into_iter()
                .find(|(h, _)| h.starts_with("Differences from"))
                .unwrap()
                .1
                .lines()
                .filter(|l| l.starts_with("- "))
                .count();
            assert_eq!(doc.differences.len(), items, "{}", doc.names[0]);
        }
    }
}
