//! Helpers shared by the identity nouns (`users.rs`, `tokens.rs`, `policies.rs`, `roles.rs`, `audit.rs`).

use anyhow::{Result, bail};
use serde_json::Value;

use super::client::ClientArgs;
use super::output::{print_json, text};

pub(super) fn segment(kind: &str, value: &str) -> Result<String> {
    if value.is_empty() || value.contains(['/', '?', '#', '%', ' ']) {
        bail!("invalid {kind} {value:?}");
    }
    Ok(value.to_string())
}

pub(super) fn rows(value: &Value) -> Vec<Value> {
    value.as_array().cloned().unwrap_or_default()
}

pub(super) fn list(value: &Value) -> String {
    match value.as_array() {
        Some(items) if !items.is_empty() => items.iter().map(text).collect::<Vec<_>>().join(","),
        _ => "-".into(),
    }
}

/// Print JSON, or a one-line summary for people.
pub(super) fn show(args: &ClientArgs, value: &Value, summary: impl FnOnce(&Value) -> String) {
    if args.json {
        print_json(value);
    } else {
        println!("{}", summary(value));
    }
}

// ----- users -----------------------------------------------------------------------
