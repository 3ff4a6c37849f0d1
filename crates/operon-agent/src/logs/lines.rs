//! Turning shipped bytes into [`LogEntry`]s (pure).
//!
//! A [`LineCollector`] keeps whole lines of a stream that arrives in pieces
//! (like the watchers' counter, but keeping the lines). A line longer than
//! its limit keeps its first bytes and is marked cut; memory stays bounded.
//! [`file_entry`] makes an entry of a file's line (level from its words,
//! [`operon_proto::log_level`]); [`journal_entry`] of one `journalctl -o
//! json` line (level from `PRIORITY`, time from `__REALTIME_TIMESTAMP`).

use std::collections::BTreeMap;

use operon_proto::{LogEntry, UnixMillis, log_level, priority_level};

use crate::monitors::lines::LineFeed;

/// The longest message shipped; longer ones are cut (field [`FIELD_CUT`]).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024;
/// Set on a cut entry: the length in bytes of the whole line.
pub const FIELD_CUT: &str = "cut_from_bytes";

/// Collects complete lines across reads.
#[derive(Debug, Clone)]
pub struct LineCollector {
    max_line: usize,
    partial: Vec<u8>,
    /// Bytes of the current line, kept or not.
    partial_len: usize,
    /// Complete lines and their full lengths in bytes.
    lines: Vec<(String, usize)>,
}

impl LineCollector {
    /// Lines keep at most `max_line` bytes.
    pub fn new(max_line: usize) -> LineCollector {
        LineCollector {
            max_line,
            partial: Vec::new(),
            partial_len: 0,
            lines: Vec::new(),
        }
    }

    /// The complete lines collected so far (text, length of the whole line).
    pub fn take(&mut self) -> Vec<(String, usize)> {
        std::mem::take(&mut self.lines)
    }

    fn keep(&mut self, bytes: &[u8]) {
        self.partial_len += bytes.len();
        let room = self.max_line.saturating_sub(self.partial.len());
        self.partial
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
    }
}

impl LineFeed for LineCollector {
    fn feed(&mut self, mut bytes: &[u8]) -> u64 {
        let mut completed = 0;
        while let Some(newline) = bytes.iter().position(|&b| b == b'\n') {
            self.keep(&bytes[..newline]);
            let line = self.partial.strip_suffix(b"\r").unwrap_or(&self.partial);
            let len = self.partial_len - usize::from(line.len() < self.partial.len());
            self.lines
                .push((String::from_utf8_lossy(line).into_owned(), len));
            self.partial.clear();
            self.partial_len = 0;
            completed += 1;
            bytes = &bytes[newline + 1..];
        }
        self.keep(bytes);
        completed
    }

    fn restart(&mut self) {
        self.partial.clear();
        self.partial_len = 0;
    }
}

/// `message` cut to [`MAX_MESSAGE_BYTES`] on a character boundary, and the
/// fields saying so when it was (`full_len`: the line's length in bytes).
fn cut(mut message: String, full_len: usize) -> (String, BTreeMap<String, String>) {
    let mut fields = BTreeMap::new();
    if message.len() > MAX_MESSAGE_BYTES || full_len > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES.min(message.len());
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        fields.insert(
            FIELD_CUT.to_owned(),
            full_len.max(message.len()).to_string(),
        );
    }
    (message, fields)
}

/// An entry of one line of the file at `path`, read at `at`.
pub fn file_entry(path: &str, line: String, full_len: usize, at: UnixMillis) -> LogEntry {
    let (message, fields) = cut(line, full_len);
    LogEntry {
        at,
        source: format!("file:{path}"),
        level: log_level(&message).map(str::to_owned),
        message,
        fields,
    }
}

/// An entry of one line of `journalctl -o json`; `None` when it is not a
/// journal object (its message is logged by the caller). `at` is used when
/// the line has no readable `__REALTIME_TIMESTAMP`. The source is
/// `journal:UNIT` (`_SYSTEMD_UNIT`), or `journal:` for entries of no unit;
/// `fields` keeps `pid` and `identifier` when present.
pub fn journal_entry(line: &str, at: UnixMillis) -> Option<LogEntry> {
    let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line).ok()?;
    let text = |key: &str| object.get(key).and_then(journal_text);
    // MESSAGE is absent, a string, or an array of bytes when not UTF-8.
    let message = text("MESSAGE").unwrap_or_default();
    let full_len = message.len();
    let (message, mut fields) = cut(message, full_len);
    let level = text("PRIORITY")
        .and_then(|p| p.trim().parse::<u8>().ok())
        .map(|p| priority_level(p).to_owned())
        .or_else(|| log_level(&message).map(str::to_owned));
    let at = text("__REALTIME_TIMESTAMP")
        .and_then(|micros| micros.trim().parse::<i64>().ok())
        .map(|micros| micros / 1000)
        .unwrap_or(at);
    if let Some(pid) = text("_PID") {
        fields.insert("pid".to_owned(), pid);
    }
    if let Some(identifier) = text("SYSLOG_IDENTIFIER") {
        fields.insert("identifier".to_owned(), identifier);
    }
    Some(LogEntry {
        at,
        source: format!("journal:{}", text("_SYSTEMD_UNIT").unwrap_or_default()),
        level,
        message,
        fields,
    })
}

/// A journal field's text: a string, or an array of bytes (read lossily).
fn journal_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(bytes) => {
            let bytes: Option<Vec<u8>> = bytes
                .iter()
                .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                .collect();
            bytes.map(|b| String::from_utf8_lossy(&b).into_owned())
        }
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_whole_lines_across_pieces() {
        let table: &[(&[&str], &[&str])] = &[
            (&["a\nb\n"], &["a", "b"]),
            (&["ERR", "OR x\n"], &["ERROR x"]),
            (&["no newline"], &[]),
            (&["crlf\r\n", "\n"], &["crlf", ""]),
        ];
        for (pieces, expected) in table {
            let mut c = LineCollector::new(100);
            for piece in *pieces {
                c.feed(piece.as_bytes());
            }
            let got: Vec<String> = c.take().into_iter().map(|(l, _)| l).collect();
            assert_eq!(&got, expected, "{pieces:?}");
        }
    }

    #[test]
    fn long_lines_keep_their_start_and_say_they_were_cut() {
        let mut c = LineCollector::new(MAX_MESSAGE_BYTES);
        let long = "é".repeat(MAX_MESSAGE_BYTES); // 2 bytes each
        c.feed(long.as_bytes());
        c.feed(b"\nshort\n");
        let lines = c.take();
        assert_eq!(lines[0].1, 2 * MAX_MESSAGE_BYTES);
        let entry = file_entry("/var/log/a", lines[0].0.clone(), lines[0].1, 5);
        assert!(entry.message.len() <= MAX_MESSAGE_BYTES);
        assert_eq!(entry.fields[FIELD_CUT], (2 * MAX_MESSAGE_BYTES).to_string());
        let short = file_entry("/var/log/a", lines[1].0.clone(), lines[1].1, 5);
        assert!(short.fields.is_empty());
        assert_eq!(short.source, "file:/var/log/a");
    }

    #[test]
    fn file_lines_get_the_level_they_state() {
        for (line, level) in [
            ("2026-12-03 ERROR db down", Some("error")),
            ("[warn] slow", Some("warning")),
            ("all good", None),
        ] {
            let entry = file_entry("/l", line.to_owned(), line.len(), 1);
            assert_eq!(entry.level.as_deref(), level, "{line}");
            assert_eq!(entry.message, line);
        }
    }

    #[test]
    fn journal_json_lines() {
        struct Case {
            line: &'static str,
            source: &'static str,
            level: Option<&'static str>,
            message: &'static str,
            at: i64,
        }
        for case in [
            Case {
                line: r#"{"__REALTIME_TIMESTAMP":"1764730000123456","PRIORITY":"3","_SYSTEMD_UNIT":"nginx.service","MESSAGE":"upstream timed out","_PID":"42"}"#,
                source: "journal:nginx.service",
                level: Some("error"),
                message: "upstream timed out",
                at: 1_764_730_000_123,
            },
            Case {
                line: r#"{"PRIORITY":"6","MESSAGE":[104,105,255]}"#,
                source: "journal:",
                level: Some("info"),
                message: "hi\u{fffd}",
                at: 7,
            },
            Case {
                line: r#"{"MESSAGE":"WARN no priority"}"#,
                source: "journal:",
                level: Some("warning"),
                message: "WARN no priority",
                at: 7,
            },
            Case {
                line: r#"{"PRIORITY":"x","MESSAGE":null}"#,
                source: "journal:",
                level: None,
                message: "",
                at: 7,
            },
        ] {
            let entry = journal_entry(case.line, 7).expect(case.line);
            assert_eq!(entry.source, case.source, "{}", case.line);
            assert_eq!(entry.level.as_deref(), case.level, "{}", case.line);
            assert_eq!(entry.message, case.message, "{}", case.line);
            assert_eq!(entry.at, case.at, "{}", case.line);
        }
        let entry = journal_entry(
            r#"{"_PID":"42","SYSLOG_IDENTIFIER":"nginx","MESSAGE":"m"}"#,
            1,
        )
        .unwrap();
        assert_eq!(entry.fields["pid"], "42");
        assert_eq!(entry.fields["identifier"], "nginx");
        for bad in ["", "not json", "[1,2]", "\"MESSAGE\""] {
            assert_eq!(journal_entry(bad, 1), None, "{bad}");
        }
    }
}
