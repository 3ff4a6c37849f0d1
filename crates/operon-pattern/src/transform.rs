//! What a rule's target receives: the whole event, a constant `Input`, the
//! part selected by `InputPath`, or an `InputTransformer` (values picked by
//! `InputPathsMap`, substituted into `InputTemplate`).
//!
//! Quoting follows EventBridge. In a JSON template (one starting with `{` or
//! `[`), a placeholder outside a string literal is replaced by the value's JSON
//! (a missing value becomes `""`), and one inside a string literal by the
//! value's text; the result must be valid JSON or nothing is delivered. Any
//! other template is a string template: every placeholder is replaced by the
//! value's text, objects and arrays written without quotes (`{a:1,b:x}`).

use std::fmt;

use serde_json::{Map, Value};

use crate::json::write_json_string_content;

/// Predefined placeholders, available without an `InputPathsMap` entry.
const RULE_NAME: &str = "aws.events.rule-name";
const RULE_ARN: &str = "aws.events.rule-arn";
const EVENT: &str = "aws.events.event";
const EVENT_JSON: &str = "aws.events.event.json";
const INGESTION_TIME: &str = "aws.events.event.ingestion-time";

/// Facts about the delivery that predefined placeholders expose.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryContext {
    pub rule_name: String,
    pub rule_arn: String,
    pub event_bus_name: String,
    /// When the event was accepted, as an RFC 3339 timestamp.
    pub ingestion_time: String,
}

/// A target configuration EventBridge would reject (PutTargets `ValidationException`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetInputError {
    pub message: String,
}

impl fmt::Display for TargetInputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TargetInputError {}

/// How a target's payload is built from a matched event.
#[derive(Debug, Clone, PartialEq)]
pub enum TargetInput {
    /// No Input, InputPath or InputTransformer: the whole event.
    WholeEvent,
    /// `Input`: this JSON text, whatever the event.
    Constant(String),
    /// `InputPath`: the part of the event at this JSONPath.
    Path(JsonPath),
    /// `InputTransformer`.
    Transformer(InputTransformer),
}

impl TargetInput {
    /// Builds the target input from the three optional settings of a target;
    /// at most one may be given.
    pub fn new(
        target_id: &str,
        input: Option<&str>,
        input_path: Option<&str>,
        transformer: Option<(&[(String, String)], &str)>,
    ) -> Result<TargetInput, TargetInputError> {
        let given = usize::from(input.is_some())
            + usize::from(input_path.is_some())
            + usize::from(transformer.is_some());
        if given > 1 {
            return Err(TargetInputError {
                message: format!(
                    "Only one of Input, InputPath, or InputTransformer must be provided for target {target_id}."
                ),
            });
        }
        if let Some(text) = input {
            serde_json::from_str::<Value>(text).map_err(|e| TargetInputError {
                message: format!("Input for target {target_id} is not valid JSON: {e}"),
            })?;
            return Ok(TargetInput::Constant(text.to_string()));
        }
        if let Some(path) = input_path {
            return JsonPath::parse(path)
                .map(TargetInput::Path)
                .map_err(|m| TargetInputError {
                    message: format!("InputPath for target {target_id} is not valid: {m}"),
                });
        }
        match transformer {
            Some((paths, template)) => {
                InputTransformer::new(target_id, paths, template).map(TargetInput::Transformer)
            }
            None => Ok(TargetInput::WholeEvent),
        }
    }

    /// The payload to deliver, or None when EventBridge would deliver nothing.
    pub fn apply(&self, event: &Value, context: &DeliveryContext) -> Option<String> {
        match self {
            TargetInput::WholeEvent => Some(event.to_string()),
            TargetInput::Constant(text) => Some(text.clone()),
            TargetInput::Path(path) => path.select(event).map(Value::to_string),
            TargetInput::Transformer(t) => t.apply(event, context),
        }
    }
}

/// A JSONPath of the simple form EventBridge accepts: `$`, `.name`, `['name']`, `[index]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JsonPath {
    steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Step {
    Key(String),
    Index(usize),
}

impl JsonPath {
    pub fn parse(text: &str) -> Result<JsonPath, String> {
        let rest = text
            .trim()
            .strip_prefix('$')
            .ok_or_else(|| format!("{text:?} must start with '$'"))?;
        let mut steps = Vec::new();
        let mut chars = rest;
        while !chars.is_empty() {
            if let Some(after) = chars.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return Err(format!("empty field name in {text:?}"));
                }
                steps.push(Step::Key(after[..end].to_string()));
                chars = &after[end..];
            } else if let Some(after) = chars.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| format!("unclosed '[' in {text:?}"))?;
                let inside = after[..end].trim();
                let quoted = inside.strip_prefix('\'').and_then(|s| s.strip_suffix('\''));
                let quoted =
                    quoted.or_else(|| inside.strip_prefix('"').and_then(|s| s.strip_suffix('"')));
                steps.push(match quoted {
                    Some(key) => Step::Key(key.to_string()),
                    None => Step::Index(
                        inside
                            .parse()
                            .map_err(|_| format!("bad index {inside:?} in {text:?}"))?,
                    ),
                });
                chars = &after[end + 1..];
            } else {
                return Err(format!("unexpected {chars:?} in {text:?}"));
            }
        }
        Ok(JsonPath { steps })
    }

    /// The value at this path, if there is one.
    pub fn select<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        self.steps.iter().try_fold(value, |v, step| match step {
            Step::Key(k) => v.get(k.as_str()),
            Step::Index(i) => v.get(*i),
        })
    }
}

/// `InputPathsMap` + `InputTemplate`.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTransformer {
    paths: Vec<(String, JsonPath)>,
    parts: Vec<TemplatePart>,
    json_template: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TemplatePart {
    Text(String),
    Placeholder { name: String, in_string: bool },
}

impl InputTransformer {
    /// Validates the map and the template as PutTargets does.
    pub fn new(
        target_id: &str,
        input_paths: &[(String, String)],
        template: &str,
    ) -> Result<InputTransformer, TargetInputError> {
        let invalid = |message: String| TargetInputError { message };
        let mut paths = Vec::new();
        for (name, path) in input_paths {
            if name.starts_with("aws.") {
                return Err(invalid(format!(
                    "InputPathsMap for target {target_id} uses the reserved name {name}."
                )));
            }
            let parsed = JsonPath::parse(path).map_err(|m| {
                invalid(format!(
                    "InputPathsMap for target {target_id} has an invalid path for {name}: {m}"
                ))
            })?;
            paths.push((name.clone(), parsed));
        }
        let json_template = matches!(template.trim_start().as_bytes().first(), Some(b'{' | b'['));
        let parts = split_template(template, json_template);
        for part in &parts {
            if let TemplatePart::Placeholder { name, .. } = part
                && !is_predefined(name)
                && !paths.iter().any(|(n, _)| n == name)
            {
                return Err(invalid(format!(
                    "InputTemplate for target {target_id} contains invalid placeholder {name}."
                )));
            }
        }
        Ok(InputTransformer {
            paths,
            parts,
            json_template,
        })
    }

    /// The transformed payload, or None when the result is not valid JSON (a
    /// JSON template) and EventBridge would deliver nothing.
    pub fn apply(&self, event: &Value, context: &DeliveryContext) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                TemplatePart::Text(text) => out.push_str(text),
                TemplatePart::Placeholder { name, in_string } => {
                    let value = self.resolve(name, event, context);
                    if self.json_template && !in_string {
                        out.push_str(&value.map_or_else(|| "\"\"".to_string(), |v| v.to_string()));
                    } else if let Some(v) = value {
                        write_text(&mut out, &v, self.json_template);
                    }
                }
            }
        }
        if self.json_template && serde_json::from_str::<Value>(&out).is_err() {
            return None;
        }
        Some(out)
    }

    fn resolve(&self, name: &str, event: &Value, context: &DeliveryContext) -> Option<Value> {
        match name {
            RULE_NAME => Some(Value::String(context.rule_name.clone())),
            RULE_ARN => Some(Value::String(context.rule_arn.clone())),
            INGESTION_TIME => Some(Value::String(context.ingestion_time.clone())),
            EVENT_JSON => Some(event.clone()),
            EVENT => Some(envelope(event, context)),
            _ => self
                .paths
                .iter()
                .find(|(n, _)| n == name)
                .and_then(|(_, p)| p.select(event))
                .cloned(),
        }
    }
}

fn is_predefined(name: &str) -> bool {
    [RULE_NAME, RULE_ARN, EVENT, EVENT_JSON, INGESTION_TIME].contains(&name)
}

/// `<aws.events.event>`: the envelope without `detail`, `detail-type` spelled
/// `detailType`, and the ingestion time as `time`.
fn envelope(event: &Value, context: &DeliveryContext) -> Value {
    let mut out = Map::new();
    if let Value::Object(fields) = event {
        for (key, value) in fields {
            match key.as_str() {
                "detail" => {}
                "detail-type" => {
                    out.insert("detailType".to_string(), value.clone());
                }
                "time" => {
                    out.insert(
                        "time".to_string(),
                        Value::String(context.ingestion_time.clone()),
                    );
                }
                _ => {
                    out.insert(key.clone(), value.clone());
                }
            }
        }
    }
    Value::Object(out)
}

/// A value as text: strings without quotes (escaped when inside a JSON
/// string), objects and arrays in EventBridge's unquoted form.
fn write_text(out: &mut String, value: &Value, inside_json_string: bool) {
    match value {
        Value::String(s) => write_json_string_content(out, s),
        Value::Object(_) | Value::Array(_) if inside_json_string => {
            out.push_str(&value.to_string())
        }
        Value::Object(fields) => {
            out.push('{');
            for (i, (k, v)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(k);
                out.push(':');
                write_text(out, v, false);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, v) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_text(out, v, false);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// Splits a template into text and `<name>` placeholders, noting for JSON
/// templates whether each placeholder sits inside a string literal.
fn split_template(template: &str, json_template: bool) -> Vec<TemplatePart> {
    let mut parts = Vec::new();
    let mut text = String::new();
    let mut in_string = false;
    let mut escaped = false;
    let mut rest = template;
    while let Some(ch) = rest.chars().next() {
        if ch == '<'
            && let Some(len) = placeholder_len(&rest[1..])
        {
            if !text.is_empty() {
                parts.push(TemplatePart::Text(std::mem::take(&mut text)));
            }
            parts.push(TemplatePart::Placeholder {
                name: rest[1..1 + len].to_string(),
                in_string: json_template && in_string,
            });
            rest = &rest[len + 2..];
            continue;
        }
        if json_template {
            match (ch, escaped) {
                ('\\', false) if in_string => escaped = true,
                ('"', false) => in_string = !in_string,
                _ => escaped = false,
            }
        }
        text.push(ch);
        rest = &rest[ch.len_utf8()..];
    }
    if !text.is_empty() {
        parts.push(TemplatePart::Text(text));
    }
    parts
}

/// Length of a placeholder name followed by '>' at the start of `s`.
fn placeholder_len(s: &str) -> Option<usize> {
    let len = s.find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')))?;
    (len > 0 && s[len..].starts_with('>')).then_some(len)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_path_selects() {
        let event = json!({"a": {"b": [1, {"c": "x"}]}});
        assert_eq!(
            JsonPath::parse("$.a.b[1].c").unwrap().select(&event),
            Some(&json!("x"))
        );
        assert_eq!(
            JsonPath::parse("$['a']").unwrap().select(&event),
            Some(&json!({"b": [1, {"c": "x"}]}))
        );
        assert_eq!(JsonPath::parse("$.nope").unwrap().select(&event), None);
        assert!(JsonPath::parse("a.b").is_err());
    }

    #[test]
    fn string_templates_unquote_values() {
        let paths = vec![
            ("p".to_string(), "$.p".to_string()),
            ("s".to_string(), "$.s".to_string()),
        ];
        let t = InputTransformer::new("t", &paths, "\"<s> and <p>\"").unwrap();
        let out = t.apply(
            &json!({"s": "x", "p": {"a": "b", "n": [1, true]}}),
            &DeliveryContext::default(),
        );
        assert_eq!(out.as_deref(), Some("\"x and {a:b,n:[1,true]}\""));
    }

    #[test]
    fn json_templates_quote_by_position() {
        let paths = vec![
            ("s".to_string(), "$.s".to_string()),
            ("o".to_string(), "$.o".to_string()),
        ];
        let t = InputTransformer::new("t", &paths, r#"{"a": <s>, "b": "x-<s>", "c": <missing>}"#);
        assert!(t.is_err());
        let t =
            InputTransformer::new("t", &paths, r#"{"a": <s>, "b": "x-<s>", "c": <o>}"#).unwrap();
        let out = t
            .apply(&json!({"s": "q\""}), &DeliveryContext::default())
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap(),
            json!({"a": "q\"", "b": "x-q\"", "c": ""})
        );
        let bad = InputTransformer::new("t", &paths, r#"{"b": "<o>"}"#).unwrap();
        assert_eq!(
            bad.apply(&json!({"o": {"k": 1}}), &DeliveryContext::default()),
            None
        );
    }
}
