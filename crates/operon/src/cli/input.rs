//! The one way to give the CLI JSON, and to read JSON or YAML files.
//!
//! Every flag that takes a JSON value (`--pattern`, `--event`, `--input`,
//! `--output`, ...) accepts the same forms:
//!
//! - inline JSON: `--input '{"n": 1}'`, `--input 42`, `--input '"text"'`;
//! - `@FILE`: the file's content (`--input @input.json`), `@-` for stdin;
//! - a bare path to an existing file, kept for scripts written before `@`.

use std::io::Read;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// A JSON value given inline, as `@FILE`, `@-`, or as a path.
pub fn json_arg(what: &str, arg: &str) -> Result<Value> {
    if let Some(source) = arg.strip_prefix('@') {
        let text = if source == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .with_context(|| format!("{what}: reading stdin"))?;
            text
        } else {
            std::fs::read_to_string(source).with_context(|| format!("{what}: reading {source}"))?
        };
        return serde_json::from_str(&text)
            .with_context(|| format!("{what}: {source} is not valid JSON"));
    }
    match serde_json::from_str(arg) {
        Ok(value) => Ok(value),
        Err(_) if Path::new(arg).is_file() => read_json_file(what, Path::new(arg)),
        Err(e) => bail!("{what}: not valid JSON ({e}); give inline JSON or @FILE"),
    }
}

/// A JSON file, with serde_json's line and column on error.
pub fn read_json_file(what: &str, path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what}: reading {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{what}: {} is not valid JSON", path.display()))
}

/// A JSON or YAML file (documents, definitions): `.yaml`/`.yml` is YAML;
/// otherwise JSON, falling back to YAML when the text does not look like a
/// JSON object, so JSON mistakes get JSON's clearer errors.
pub fn read_json_or_yaml_file(what: &str, path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{what}: reading {}", path.display()))?;
    let yaml_ext = matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml")
    );
    if !yaml_ext {
        match serde_json::from_str(&text) {
            Ok(value) => return Ok(value),
            Err(e)
                if text.trim_start().starts_with('{')
                    || path.extension().is_some_and(|e| e == "json") =>
            {
                bail!("{what}: {} is not valid JSON: {e}", path.display())
            }
            Err(_) => {}
        }
    }
    serde_yaml_ng::from_str(&text)
        .with_context(|| format!("{what}: {} is not valid YAML", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn inline_at_file_and_bare_path_give_the_same_value() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("p.json");
        std::fs::write(&file, r#"{"source": ["a"]}"#).unwrap();
        let expected = json!({"source": ["a"]});
        assert_eq!(
            json_arg("--pattern", r#"{"source": ["a"]}"#).unwrap(),
            expected
        );
        assert_eq!(
            json_arg("--pattern", &format!("@{}", file.display())).unwrap(),
            expected
        );
        assert_eq!(
            json_arg("--pattern", file.to_str().unwrap()).unwrap(),
            expected
        );
        assert_eq!(json_arg("--input", "42").unwrap(), json!(42));
        assert_eq!(json_arg("--input", "\"text\"").unwrap(), json!("text"));
    }

    #[test]
    fn errors_name_the_flag_and_the_problem() {
        let err = format!("{:#}", json_arg("--input", "{nope").unwrap_err());
        assert!(err.starts_with("--input: not valid JSON"), "{err}");
        let err = format!("{:#}", json_arg("--input", "@/no/such/file").unwrap_err());
        assert!(err.contains("--input: reading /no/such/file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.json");
        std::fs::write(&bad, "{\"a\": }").unwrap();
        let err = format!(
            "{:#}",
            json_arg("--event", &format!("@{}", bad.display())).unwrap_err()
        );
        assert!(
            err.contains("is not valid JSON") && err.contains("line 1"),
            "{err}"
        );
    }

    #[test]
    fn documents_are_read_as_json_or_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let yaml = dir.path().join("d.yaml");
        std::fs::write(&yaml, "schemaVersion: '2.2'\nmainSteps: []\n").unwrap();
        assert_eq!(
            read_json_or_yaml_file("--file", &yaml).unwrap(),
            json!({"schemaVersion": "2.2", "mainSteps": []})
        );
        let json_file = dir.path().join("d.json");
        std::fs::write(&json_file, "{\"a\": 1,}").unwrap();
        let err = format!(
            "{:#}",
            read_json_or_yaml_file("--file", &json_file).unwrap_err()
        );
        assert!(err.contains("is not valid JSON"), "{err}");
        let untyped = dir.path().join("d");
        std::fs::write(&untyped, "a: [1, 2]\n").unwrap();
        assert_eq!(
            read_json_or_yaml_file("--file", &untyped).unwrap(),
            json!({"a": [1, 2]})
        );
    }
}
