//! Human output: tables and times.
//!
//! Everything printed here comes from the server, and much of it from nodes
//! (names, tags, inventory) and other users: every cell and label has its
//! control characters escaped ([`escape`]), so a hostile node name cannot
//! move the cursor, rewrite the screen or set the window title of the
//! operator's terminal. `--json` output is JSON's own escaping; the output
//! of a command (`operon run`) is the user's data and printed as it is.

use std::borrow::Cow;
use std::fmt::Write;

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(header.iter().map(|h| escape(h).into_owned()));
    for row in rows {
        table.add_row(row.iter().map(|cell| escape(cell).into_owned()));
    }
    table.to_string()
}

/// Whether a terminal could act on `c` rather than show it: C0 and C1
/// controls and DEL (ESC starts every escape sequence, U+009B is a one-byte
/// CSI), and the bidirectional controls that reorder what is shown.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `text` with every character a terminal would act on written as an
/// escape: `\n`, `\r`, `\t`, `\x1b` (below U+0100), `\u{202e}` (above).
/// Text without any is returned as it is; escaping twice changes nothing.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) && u32::from(c) < 0x100 => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:04x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Milliseconds since the epoch as RFC 3339 (UTC, seconds).
pub fn time(value: &Value) -> String {
    match value.as_i64() {
        Some(ms) if ms > 0 => {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms as u64);
            humantime::format_rfc3339_seconds(at).to_string()
        }
        _ => "-".to_string(),
    }
}

/// A duration between two millisecond timestamps, e.g. `1.25s`.
pub fn duration(start: &Value, end: &Value) -> String {
    match (start.as_i64(), end.as_i64()) {
        (Some(a), Some(b)) if b >= a => format!("{:.2}s", (b - a) as f64 / 1000.0),
        _ => "-".to_string(),
    }
}

/// A value for a label or a cell: strings as they are, other values as
/// JSON, control characters escaped either way.
pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => escape(s).into_owned(),
        other => escape(&other.to_string()).into_owned(),
    }
}

/// Text from a typed answer, control characters escaped.
pub fn esc(text: &str) -> String {
    escape(text).into_owned()
}

/// A typed optional value for a cell: `-` when absent.
pub fn opt<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| esc(&v.to_string()))
}

/// Optional milliseconds since the epoch, as [`time`] shows them.
pub fn millis(ms: Option<i64>) -> String {
    time(&ms.map_or(Value::Null, Value::from))
}

/// A duration between two optional millisecond timestamps, as [`duration`].
pub fn millis_between(start: Option<i64>, end: Option<i64>) -> String {
    duration(
        &start.map_or(Value::Null, Value::from),
        &end.map_or(Value::Null, Value::from),
    )
}

/// Tags as `k=v,k=v`, escaped.
pub fn tag_map(tags: &std::collections::BTreeMap<String, String>) -> String {
    tags.iter()
        .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape("web-1"), "web-1");
        assert!(matches!(escape("web-1"), Cow::Borrowed(_)));
        assert_eq!(
            escape("web\u{1b}]0;pwned\u{7}\r\n\t\u{7f}\u{9b}2J"),
            "web\\x1b]0;pwned\\x07\\r\\n\\t\\x7f\\x9b2J"
        );
        assert_eq!(escape("abc\u{202e}def"), "abc\\u{202e}def");
        let once = escape("a\u{1b}b").into_owned();
        assert_eq!(escape(&once), once, "escaping twice changes nothing");
        assert_eq!(escape("é ü 日本"), "é ü 日本");
    }

    #[test]
    fn cells_labels_and_tags_never_carry_control_characters() {
        let node = json!({"name": "evil\u{1b}[2J\u{1b}[H"});
        let hostile = |s: &str| s.chars().any(needs_escape);
        assert_eq!(text(&node["name"]), "evil\\x1b[2J\\x1b[H");
        assert_eq!(esc("evil\u{1b}[2J"), "evil\\x1b[2J");
        assert_eq!(opt(Some("a\u{9b}x")), "a\\x9bx");
        let tags = tag_map(
            &[
                ("env\u{1b}[31m".to_string(), "prod\r".to_string()),
                ("role".to_string(), "\u{9b}x".to_string()),
            ]
            .into(),
        );
        assert!(!hostile(&tags), "{tags:?}");
        assert!(tags.contains("env\\x1b[31m=prod\\r"), "{tags}");
        let rendered = table(
            &["NAME\u{7}", "TAGS"],
            vec![vec!["raw\u{1b}[1mcell".into(), tags.clone()]],
        );
        // The table's own borders are plain characters; no cell adds any.
        assert!(!hostile(&rendered.replace('\n', "")), "{rendered:?}");
        assert!(rendered.contains("raw\\x1b[1mcell"), "{rendered}");
        assert!(rendered.contains("NAME\\x07"), "{rendered}");
    }
}
