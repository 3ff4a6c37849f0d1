//! What a sync's file holds: the parameters under a path, as a dotenv,
//! JSON or YAML file. Pure.
//!
//! Keys are the names below the path, so `/app/prod/db_url` under
//! `/app/prod/` is `db_url` (deeper levels keep their slashes as `_` in
//! dotenv, as nested names in JSON and YAML would be surprising). dotenv
//! keys are upper-cased with every character outside `A-Z0-9_` written
//! `_` (`DB_URL`), since that is what applications read from an
//! environment; JSON and YAML keep the names as they are. Every value is
//! quoted so no value can break the file's syntax:
//!
//! - dotenv: `KEY="value"` with `\`, `"`, `$` and `` ` `` escaped and
//!   newlines written `\n` (what `docker --env-file`-style and
//!   systemd-style readers and `dotenv` libraries accept; shells `source` it
//!   too);
//! - JSON: one object, keys in name order;
//! - YAML: `key: "value"` lines with JSON string quoting (valid YAML).
//!
//! The content ends with a newline; the same parameters always give the
//! same bytes, so the digest tells whether a node is up to date.

use std::fmt;

/// The file formats a sync writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Dotenv,
    Json,
    Yaml,
}

impl Format {
    pub fn parse(text: &str) -> Result<Format, String> {
        match text {
            "dotenv" | "env" => Ok(Format::Dotenv),
            "json" => Ok(Format::Json),
            "yaml" | "yml" => Ok(Format::Yaml),
            other => Err(format!(
                "unknown format {other:?}: use dotenv, json or yaml"
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Dotenv => "dotenv",
            Format::Json => "json",
            Format::Yaml => "yaml",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The key of `name` under `path` (`None` if it is not under it).
pub fn relative_key(path: &str, name: &str) -> Option<String> {
    let prefix = if path.ends_with('/') {
        path.to_string()
    } else {
        format!("{path}/")
    };
    name.strip_prefix(&prefix)
        .filter(|rest| !rest.is_empty())
        .map(str::to_string)
}

/// A dotenv key: upper case, `A-Z0-9_` only, not starting with a digit.
pub fn env_key(key: &str) -> String {
    let mut out: String = key
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

fn dotenv_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '$' => out.push_str("\\$"),
            '`' => out.push_str("\\`"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_quote(value: &str) -> String {
    serde_json::Value::String(value.to_string()).to_string()
}

/// The file for `entries` (key, value), sorted by key. Two names mapping
/// to the same dotenv key is an error naming both.
pub fn render(format: Format, entries: &[(String, String)]) -> Result<String, String> {
    let mut sorted: Vec<(String, &str)> = entries
        .iter()
        .map(|(k, v)| {
            let key = match format {
                Format::Dotenv => env_key(k),
                _ => k.clone(),
            };
            (key, v.as_str())
        })
        .collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    if let Some(pair) = sorted.windows(2).find(|w| w[0].0 == w[1].0) {
        return Err(format!(
            "two parameters become the key {}: rename one (keys are the names below the path)",
            pair[0].0
        ));
    }
    Ok(match format {
        Format::Dotenv => sorted
            .iter()
            .map(|(k, v)| format!("{k}={}\n", dotenv_quote(v)))
            .collect(),
        Format::Yaml => sorted
            .iter()
            .map(|(k, v)| format!("{}: {}\n", json_quote(k), json_quote(v)))
            .collect(),
        Format::Json => {
            let map: serde_json::Map<String, serde_json::Value> = sorted
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.to_string())))
                .collect();
            let mut text = serde_json::to_string_pretty(&serde_json::Value::Object(map))
                .unwrap_or_else(|_| "{}".into());
            text.push('\n');
            text
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keys_are_the_names_below_the_path() {
        assert_eq!(
            relative_key("/app/prod/", "/app/prod/db_url").as_deref(),
            Some("db_url")
        );
        assert_eq!(
            relative_key("/app/prod", "/app/prod/a/b").as_deref(),
            Some("a/b")
        );
        assert_eq!(relative_key("/app/prod", "/app/production/x"), None);
        assert_eq!(relative_key("/app/prod", "/app/prod"), None);
        assert_eq!(env_key("db-url.v2"), "DB_URL_V2");
        assert_eq!(env_key("a/b"), "A_B");
        assert_eq!(env_key("9lives"), "_9LIVES");
    }

    #[test]
    fn dotenv_quotes_every_value_so_none_breaks_the_file() {
        let text = render(
            Format::Dotenv,
            &e(&[("pw", "a\"b$c`d\\e\nf"), ("db_url", "postgres://x")]),
        )
        .unwrap();
        assert_eq!(
            text,
            "DB_URL=\"postgres://x\"\nPW=\"a\\\"b\\$c\\`d\\\\e\\nf\"\n"
        );
        // The shell reads back exactly the values.
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("{text}printf '%s|%s' \"$DB_URL\" \"$PW\""))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            "postgres://x|a\"b$c`d\\e\\nf"
        );
    }

    #[test]
    fn json_and_yaml_keep_names_and_parse_back() {
        let entries = e(&[("b", "2"), ("a", "x: \"y\"\n")]);
        let json = render(Format::Json, &entries).unwrap();
        let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(parsed, serde_json::json!({"a": "x: \"y\"\n", "b": "2"}));
        let yaml = render(Format::Yaml, &entries).unwrap();
        assert_eq!(yaml, "\"a\": \"x: \\\"y\\\"\\n\"\n\"b\": \"2\"\n");
    }

    #[test]
    fn colliding_keys_and_unknown_formats_are_refused() {
        let err = render(Format::Dotenv, &e(&[("db-url", "1"), ("db_url", "2")])).unwrap_err();
        assert!(err.contains("DB_URL"), "{err}");
        assert!(Format::parse("toml").is_err());
        assert_eq!(render(Format::Dotenv, &[]).unwrap(), "");
    }
}
