//! Desired-state documents (`schemaVersion: operon-state/1`, validated by
//! the `operon-state` crate) and file documents (`schemaVersion:
//! operon-file/1`, a `content` string a state document's `file` resource
//! names as its `source`), as the document store keeps them beside the
//! command documents.
//!
//! Rendering a state document gives one [`Step`] carrying a [`StateStep`]:
//! the document as JSON with the parameters checked and substituted into
//! every `template` (the only templated field), `{{ssm:...}}` references
//! left for the dispatcher to resolve when the step is sent. Its `script`
//! is a failing fallback, so an agent that cannot apply state never does
//! something else instead.
//!
//! Pure: no I/O.

use std::collections::BTreeMap;

use operon_proto::{STATE_STEP_FALLBACK_SCRIPT, Secret, StateMode, StateStep, Step};
use operon_state::document::{self as state_doc, FileContent, ParameterValue, StateDocument};
use serde_json::{Map, Value};

use super::DocumentError;

/// `schemaVersion` of a file document.
pub const FILE_SCHEMA: &str = "operon-file/1";

/// The name of the one step a state document renders to.
pub const STATE_STEP_NAME: &str = "applyState";

/// The error of the state crate, as the document store reports errors: the
/// first problem's pointer, every problem in the message.
pub fn state_error(error: state_doc::DocumentError) -> DocumentError {
    match error {
        state_doc::DocumentError::Syntax(message) => DocumentError {
            pointer: String::new(),
            message,
        },
        state_doc::DocumentError::Invalid(list) => {
            let pointer = list.first().map(|e| e.pointer.clone()).unwrap_or_default();
            let message = list
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let text = match &e.resource {
                        Some(name) => format!("{} (resource {name:?})", e.message),
                        None => e.message.clone(),
                    };
                    if i == 0 {
                        text
                    } else {
                        format!("{}: {text}", e.pointer)
                    }
                })
                .collect::<Vec<_>>()
                .join("; ");
            DocumentError { pointer, message }
        }
    }
}

/// Validate a file document, giving its content.
pub fn parse_file(root: &Map<String, Value>) -> Result<String, DocumentError> {
    if let Some(unknown) = root
        .keys()
        .find(|k| !["schemaVersion", "content", "description"].contains(&k.as_str()))
    {
        return Err(DocumentError {
            pointer: format!("/{unknown}"),
            message: format!(
                "unknown field {unknown:?}; a file document has schemaVersion, content, description"
            ),
        });
    }
    match root.get("content") {
        Some(Value::String(text)) => Ok(text.clone()),
        Some(other) => Err(DocumentError {
            pointer: "/content".into(),
            message: format!("content must be a string, got {other}"),
        }),
        None => Err(DocumentError {
            pointer: "/content".into(),
            message: "a file document needs content".into(),
        }),
    }
}

/// The `source` documents a state document's files name: (resource, document).
pub fn sources(document: &StateDocument) -> Vec<(String, String)> {
    document
        .resources
        .iter()
        .filter_map(|r| match &r.spec {
            state_doc::ResourceSpec::File(file) => match &file.content {
                FileContent::Source(name) => Some((r.name.clone(), name.clone())),
                _ => None,
            },
            _ => None,
        })
        .collect()
}

/// A caller's parameter value as the state crate types them: strings and
/// lists of strings; numbers and booleans as their text.
fn state_value(value: &Value) -> Option<ParameterValue> {
    let text = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    };
    match value {
        Value::Array(items) => items
            .iter()
            .map(text)
            .collect::<Option<Vec<_>>>()
            .map(ParameterValue::StringList),
        other => text(other).map(ParameterValue::String),
    }
}

fn json_value(value: &ParameterValue) -> Value {
    match value {
        ParameterValue::String(s) => Value::String(s.clone()),
        ParameterValue::StringList(items) => {
            Value::Array(items.iter().cloned().map(Value::String).collect())
        }
    }
}

/// Check the caller's parameters, apply defaults, and render the document
/// to its one step (in `mode`, for `association` when it is one's).
pub fn render(
    document: &StateDocument,
    raw: &Value,
    given: &Map<String, Value>,
    mode: StateMode,
    association: Option<&str>,
) -> Result<(Map<String, Value>, Step), DocumentError> {
    let mut typed = BTreeMap::new();
    for (name, value) in given {
        let value = state_value(value).ok_or_else(|| DocumentError {
            pointer: format!("/parameters/{}", super::escape_pointer(name)),
            message: format!("expected a string or a list of strings, got {value}"),
        })?;
        typed.insert(name.clone(), value);
    }
    let values =
        state_doc::resolve_parameters(&document.parameters, &typed).map_err(state_error)?;
    let mut rendered = raw.clone();
    let mut sensitive = Vec::new();
    if let Some(resources) = rendered.get_mut("resources").and_then(Value::as_array_mut) {
        for (i, resource) in resources.iter_mut().enumerate() {
            let name = resource
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            let Some(Value::String(template)) = resource.get_mut("template") else {
                continue;
            };
            let field = format!("/resources/{i}/template");
            let text = operon_state::template::render(template, &values, &field).map_err(|e| {
                DocumentError {
                    pointer: e.field.clone(),
                    message: e.to_string(),
                }
            })?;
            if crate::params::refs::references(&text)
                .iter()
                .any(|r| r.secure)
            {
                sensitive.push(name);
            }
            *template = text;
        }
    }
    let step = Step {
        name: STATE_STEP_NAME.into(),
        script: STATE_STEP_FALLBACK_SCRIPT.into(),
        working_directory: None,
        timeout_secs: None,
        state: Some(StateStep {
            association: association.map(str::to_string),
            mode,
            document: Secret(rendered.to_string()),
            sources: BTreeMap::new(),
            sensitive,
        }),
    };
    let values = values
        .iter()
        .map(|(name, value)| (name.clone(), json_value(value)))
        .collect();
    Ok((values, step))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "schemaVersion": "operon-state/1",
            "parameters": {"port": {"type": "String", "default": "8080", "allowedPattern": "^[0-9]+$"}},
            "resources": [
                {"name": "conf", "type": "file", "path": "/etc/app.conf",
                 "template": "port={{ port }}\npass={{ssm-secure:/app/pass}}\n"},
                {"name": "motd", "type": "file", "path": "/etc/motd", "template": "hello {{ssm:/app/who}}\n"},
                {"name": "logo", "type": "file", "path": "/srv/logo.txt", "source": "logo"},
                {"name": "literal", "type": "file", "path": "/srv/x", "content": "{{ port }} stays"}
            ]
        })
    }

    #[test]
    fn templates_are_rendered_references_kept_and_secrets_marked() {
        let raw = doc();
        let parsed = state_doc::from_value(&raw).unwrap();
        let given: Map<String, Value> = [("port".to_string(), json!(9090))].into_iter().collect();
        let (values, step) = render(&parsed, &raw, &given, StateMode::Check, Some("web")).unwrap();
        assert_eq!(values["port"], json!("9090"));
        let state = step.state.unwrap();
        assert_eq!(state.mode, StateMode::Check);
        assert_eq!(state.association.as_deref(), Some("web"));
        assert_eq!(state.sensitive, vec!["conf".to_string()]);
        let sent: Value = serde_json::from_str(state.document.expose()).unwrap();
        assert_eq!(
            sent["resources"][0]["template"],
            "port=9090\npass={{ssm-secure:/app/pass}}\n"
        );
        assert_eq!(sent["resources"][3]["content"], "{{ port }} stays");
        assert_eq!(step.script, STATE_STEP_FALLBACK_SCRIPT);
        assert_eq!(
            sources(&parsed),
            vec![("logo".to_string(), "logo".to_string())]
        );
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let raw = doc();
        let parsed = state_doc::from_value(&raw).unwrap();
        let given: Map<String, Value> = [("port".to_string(), json!("http"))].into_iter().collect();
        let err = render(&parsed, &raw, &given, StateMode::Apply, None).unwrap_err();
        assert_eq!(err.pointer, "/parameters/port");
        let given: Map<String, Value> = [("nope".to_string(), json!("1"))].into_iter().collect();
        let err = render(&parsed, &raw, &given, StateMode::Apply, None).unwrap_err();
        assert!(err.message.contains("unknown parameter"), "{err}");
        let given: Map<String, Value> = [("port".to_string(), json!({"a": 1}))]
            .into_iter()
            .collect();
        assert!(render(&parsed, &raw, &given, StateMode::Apply, None).is_err());
    }

    #[test]
    fn every_problem_is_reported_with_the_first_pointer() {
        let raw = json!({"schemaVersion": "operon-state/1", "resources": [
            {"name": "d", "type": "directory", "path": "/srv", "mode": "0999"},
            {"name": "e", "type": "file", "path": "relative"}
        ]});
        let err = state_error(state_doc::from_value(&raw).unwrap_err());
        assert_eq!(err.pointer, "/resources/0/mode");
        assert!(err.message.contains("(resource \"d\")"), "{err}");
        assert!(err.message.contains("/resources/1/path"), "{err}");
    }

    #[test]
    fn file_documents_hold_one_string() {
        let ok = json!({"schemaVersion": FILE_SCHEMA, "content": "hi\n"});
        assert_eq!(parse_file(ok.as_object().unwrap()).unwrap(), "hi\n");
        let bad = json!({"schemaVersion": FILE_SCHEMA, "content": 3});
        assert_eq!(
            parse_file(bad.as_object().unwrap()).unwrap_err().pointer,
            "/content"
        );
        let extra = json!({"schemaVersion": FILE_SCHEMA, "content": "", "mode": "0644"});
        assert_eq!(
            parse_file(extra.as_object().unwrap()).unwrap_err().pointer,
            "/mode"
        );
    }
}
