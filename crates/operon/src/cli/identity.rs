//! Helpers shared by the identity nouns (`users.rs`, `tokens.rs`, `policies.rs`, `roles.rs`, `audit.rs`).

use anyhow::{Result, bail};

use super::client::{Answer, ClientArgs};
use super::output::{esc, print_json};

pub(super) fn segment(kind: &str, value: &str) -> Result<String> {
    if value.is_empty() || value.contains(['/', '?', '#', '%', ' ']) {
        bail!("invalid {kind} {value:?}");
    }
    Ok(value.to_string())
}

/// Names as `a,b`, escaped; `-` for none.
pub(super) fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.iter().map(|s| esc(s)).collect::<Vec<_>>().join(",")
    }
}

/// Print the answer's JSON, or a one-line summary for people.
pub(super) fn show<T>(args: &ClientArgs, answer: &Answer<T>, summary: impl FnOnce(&T) -> String) {
    if args.json {
        print_json(&answer.json);
    } else {
        println!("{}", summary(&answer.value));
    }
}
