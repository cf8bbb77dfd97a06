//! The little of Markdown the plugin READMEs use, read into roff inlines: `code`
//! and **strong** as bold, *emphasis* as italic, links as their text.

use roff::{bold, italic, roman, Inline};

/// One line or paragraph of Markdown text as roff inlines (escaping is roff's).
pub fn inlines(text: &str) -> Vec<Inline> {
    let mut out = Vec::new();
    let mut plain = String::new();
    let mut rest = text;
    while let Some(c) = rest.chars().next() {
        let (styled, used) = match c {
            '`' => span(rest, "`").map(|(inner, used)| (bold(inner), used)),
            '*' if rest.starts_with("**") => {
                span(rest, "**").map(|(inner, used)| (bold(inner), used))
            }
            '*' => span(rest, "*").map(|(inner, used)| (italic(inner), used)),
            '[' => link(rest).map(|(inner, used)| (roman(inner), used)),
            '\\' if rest.len() > 1 => {
                let next = rest[1..].chars().next().expect("a char");
                plain.push(next);
                rest = &rest[1 + next.len_utf8()..];
                continue;
            }
            _ => None,
        }
        .map_or((None, 0), |(inline, used)| (Some(inline), used));
        match styled {
            Some(inline) => {
                if !plain.is_empty() {
                    out.push(roman(std::mem::take(&mut plain)));
                }
                out.push(inline);
                rest = &rest[used..];
            }
            None => {
                plain.push(c);
                rest = &rest[c.len_utf8()..];
            }
        }
    }
    if !plain.is_empty() {
        out.push(roman(plain));
    }
    out
}

/// `<mark>inner<mark>` at the start of `text`: the inner text and the bytes used.
fn span<'a>(text: &'a str, mark: &str) -> Option<(&'a str, usize)> {
    let body = &text[mark.len()..];
    let end = body.find(mark)?;
    (end > 0).then(|| (&body[..end], mark.len() * 2 + end))
}

/// `[text](target)` at the start of `text`: the link text and the bytes used.
fn link(text: &str) -> Option<(&str, usize)> {
    let close = text.find("](")?;
    let end = text[close..].find(')')? + close;
    Some((&text[1..close], end + 1))
}

/// The cells of a table row `| a | b \| c | d |`, unescaped `\|` kept in its cell.
pub fn table_cells(row: &str) -> Vec<String> {
    let inner = row.trim().trim_start_matches('|').trim_end_matches('|');
    let mut cells = vec![String::new()];
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                cells.last_mut().expect("one cell").push('|');
                chars.next();
            }
            '|' => cells.push(String::new()),
            _ => cells.last_mut().expect("one cell").push(c),
        }
    }
    cells.iter().map(|c| c.trim().to_string()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(text: &str) -> String {
        let mut roff = roff::Roff::new();
        roff.text(inlines(text));
        roff.render()
    }

    #[test]
    fn code_is_bold_and_links_keep_their_text() {
        let out = rendered("see `mtu` in [the spec](https://x/y) and *this*");
        assert!(out.contains("\\fBmtu\\fR"), "{out}");
        assert!(out.contains("the spec"), "{out}");
        assert!(!out.contains("https"), "{out}");
        assert!(out.contains("\\fIthis\\fR"), "{out}");
    }

    #[test]
    fn escaped_pipes_stay_in_their_cell() {
        assert_eq!(
            table_cells("| `a` | `[{\"id\": N} \\| {\"minID\": A}]` | c |"),
            ["`a`", "`[{\"id\": N} | {\"minID\": A}]`", "c"]
        );
    }
}
