//! `{{ name }}` parameter substitution, with the rules of command documents.
//!
//! A reference is `{{`, optional spaces, a parameter name (letters, digits,
//! `_`), optional spaces, `}}`. `{{ssm:NAME}}` (also with spaces) is a Parameter
//! Store reference: it is left in place for the server to resolve and listed
//! by [`ssm_references`]. Any other `{{ ... }}` text (say a Go or Jinja
//! template inside a managed file) is not ours and is left as is. A name that
//! is not declared is an error naming the field.

use std::collections::BTreeMap;

use crate::document::{Parameter, ParameterValue};

/// A template referred to a parameter that has no value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: unknown parameter {name:?} in {{{{ {name} }}}}")]
pub struct TemplateError {
    /// Where the template is, as a JSON pointer or any label the caller gave.
    pub field: String,
    pub name: String,
}

/// One `{{ ... }}` found in a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reference<'a> {
    Parameter(&'a str),
    Ssm(&'a str),
    Other,
}

/// Every `{{ ... }}` in `text`: (byte range of the whole reference, its kind).
fn references(text: &str) -> Vec<(std::ops::Range<usize>, Reference<'_>)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(open) = text[from..].find("{{").map(|i| from + i) {
        let inner_start = open + 2;
        let Some(close) = text[inner_start..].find("}}").map(|i| inner_start + i) else {
            break;
        };
        let inner = text[inner_start..close].trim();
        let kind = if let Some(name) = inner.strip_prefix("ssm:") {
            Reference::Ssm(name.trim())
        } else if is_parameter_name(inner) {
            Reference::Parameter(inner)
        } else {
            Reference::Other
        };
        // An unrecognised `{{` may open a real reference one character later (`{{{x}}`).
        if kind == Reference::Other {
            out.push((open..close + 2, kind));
            from = open + 1;
        } else {
            out.push((open..close + 2, kind));
            from = close + 2;
        }
    }
    out
}

/// Letters, digits and `_`, not empty: what a parameter may be called.
pub fn is_parameter_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The parameter names referenced in `text`, in order of first appearance.
pub fn parameter_references(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for (_, reference) in references(text) {
        if let Reference::Parameter(name) = reference
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

/// The Parameter Store names referenced as `{{ssm:NAME}}` in `text`, in order
/// of first appearance; they stay in the rendered text for the server.
pub fn ssm_references(text: &str) -> Vec<&str> {
    let mut names: Vec<&str> = Vec::new();
    for (_, reference) in references(text) {
        if let Reference::Ssm(name) = reference
            && !names.contains(&name)
        {
            names.push(name);
        }
    }
    names
}

/// Problems with `text` as a template against the declared parameters (used
/// when a document is validated, before any value is known).
pub fn check(text: &str, declared: &BTreeMap<String, Parameter>) -> Vec<String> {
    parameter_references(text)
        .into_iter()
        .filter(|name| !declared.contains_key(*name))
        .map(|name| format!("unknown parameter {name:?} in {{{{ {name} }}}}"))
        .collect()
}

/// Substitute every `{{ name }}` with its value (lists joined with newlines);
/// `{{ssm:...}}` and other braces stay as written. `field` names the template
/// in the error.
pub fn render(
    text: &str,
    values: &BTreeMap<String, ParameterValue>,
    field: &str,
) -> Result<String, TemplateError> {
    let mut out = String::with_capacity(text.len());
    let mut copied_to = 0;
    for (range, reference) in references(text) {
        let Reference::Parameter(name) = reference else {
            continue;
        };
        // Overlapping `Other` matches were skipped above; parameters never overlap.
        if range.start < copied_to {
            continue;
        }
        let value = values.get(name).ok_or_else(|| TemplateError {
            field: field.to_string(),
            name: name.to_string(),
        })?;
        out.push_str(&text[copied_to..range.start]);
        out.push_str(&value.as_text());
        copied_to = range.end;
    }
    out.push_str(&text[copied_to..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, ParameterValue> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), ParameterValue::String(v.to_string())))
            .collect()
    }

    #[test]
    fn render_table() {
        let vals = values(&[("port", "8080"), ("host", "db.local")]);
        let cases: &[(&str, &str)] = &[
            ("", ""),
            ("plain", "plain"),
            ("{{ port }}", "8080"),
            ("{{port}}", "8080"),
            ("listen {{  port  }};", "listen 8080;"),
            ("{{host}}:{{port}}", "db.local:8080"),
            ("{{ssm:/app/pw}}", "{{ssm:/app/pw}}"),
            (
                "pw={{ ssm:/app/pw }} p={{port}}",
                "pw={{ ssm:/app/pw }} p=8080",
            ),
            ("{{ .Values.x }}", "{{ .Values.x }}"),
            ("{{{port}}}", "{8080}"),
            ("{{ port", "{{ port"),
            ("}} {{", "}} {{"),
            ("{{}}", "{{}}"),
            ("é{{port}}é", "é8080é"),
        ];
        for (text, expected) in cases {
            assert_eq!(
                render(text, &vals, "/t").as_deref(),
                Ok(*expected),
                "{text:?}"
            );
        }
    }

    #[test]
    fn render_joins_lists_with_newlines() {
        let mut vals = BTreeMap::new();
        vals.insert(
            "hosts".to_string(),
            ParameterValue::StringList(vec!["a".into(), "b".into()]),
        );
        assert_eq!(render("[{{hosts}}]", &vals, "/t").unwrap(), "[a\nb]");
    }

    #[test]
    fn unknown_parameter_names_the_field() {
        let err = render("x {{ nope }}", &values(&[]), "/resources/0/template").unwrap_err();
        assert_eq!(err.name, "nope");
        assert_eq!(
            err.to_string(),
            "/resources/0/template: unknown parameter \"nope\" in {{ nope }}"
        );
    }

    #[test]
    fn reference_listing() {
        let text = "{{a}} {{ssm:/x}} {{ b }} {{a}} {{ ssm:/y }} {{ssm:/x}} {{ - }}";
        assert_eq!(parameter_references(text), vec!["a", "b"]);
        assert_eq!(ssm_references(text), vec!["/x", "/y"]);
        assert!(ssm_references("none").is_empty());
    }
}
