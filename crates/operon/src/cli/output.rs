//! Human output: tables and times.

use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde_json::Value;

pub fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_preset(UTF8_BORDERS_ONLY)
        .set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    table.to_string()
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

pub fn text(value: &Value) -> String {
    match value {
        Value::Null => "-".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn tags(value: &Value) -> String {
    value
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", text(v)))
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}

pub fn print_json(value: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
}
