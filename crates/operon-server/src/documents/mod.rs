//! Command documents in the SSM schemaVersion 2.2 shape: validation and rendering.
//!
//! A document declares typed `parameters` and `mainSteps`. Validation happens
//! when a document is stored, so a bad document is refused with a JSON pointer
//! to the problem rather than failing on a node later. Rendering takes the
//! caller's parameter values, checks them against the declarations
//! (type, `allowedValues`, `allowedPattern`), applies defaults and substitutes
//! `{{ name }}` references, giving the [`Step`]s agents run.
//!
//! Pure: no I/O.

//!
//! The module itself is the pure document format; [`service`] stores and
//! reads documents, [`http`] is the `/v1/documents` edge.

pub(crate) mod http;
pub(crate) mod service;
pub mod state;

impl crate::AppState {
    /// The documents service over this server's store.
    pub(crate) fn documents(&self) -> service::DocumentService<'_> {
        service::DocumentService { store: &self.store }
    }
}

use std::collections::BTreeMap;

use operon_proto::Step;
use serde_json::{Map, Value};

/// Name of the built-in document behind `operon run -- COMMAND`.
pub const RUN_SHELL_SCRIPT: &str = "AWS-RunShellScript";

/// Which version of a document to use, as SSM's `DocumentVersion`: the
/// default version (`$DEFAULT`, also what is used when none is given), the
/// newest (`$LATEST`) or a version number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DocumentVersion {
    #[default]
    Default,
    Latest,
    Number(i64),
}

impl DocumentVersion {
    /// `$DEFAULT`, `$LATEST` or a version number (1 or more).
    pub fn parse(text: &str) -> Result<DocumentVersion, String> {
        match text {
            "$DEFAULT" => Ok(DocumentVersion::Default),
            "$LATEST" => Ok(DocumentVersion::Latest),
            _ => match text.parse::<i64>() {
                Ok(n) if n >= 1 => Ok(DocumentVersion::Number(n)),
                _ => Err(format!(
                    "document version {text:?} is not a version number, $DEFAULT or $LATEST"
                )),
            },
        }
    }

    /// A JSON number (1 or more), or a string [`parse`](Self::parse) accepts.
    pub fn from_json(value: &Value) -> Result<DocumentVersion, String> {
        match value {
            Value::Number(n) => match n.as_i64() {
                Some(n) if n >= 1 => Ok(DocumentVersion::Number(n)),
                _ => Err(format!(
                    "document version {n} is not a version number (1 or more)"
                )),
            },
            Value::String(s) => DocumentVersion::parse(s),
            other => Err(format!(
                "document version must be a number, $DEFAULT or $LATEST, got {other}"
            )),
        }
    }
}

impl std::fmt::Display for DocumentVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DocumentVersion::Default => f.write_str("$DEFAULT"),
            DocumentVersion::Latest => f.write_str("$LATEST"),
            DocumentVersion::Number(n) => write!(f, "{n}"),
        }
    }
}

/// Step actions accepted: SSM's name and our alias.
const SHELL_ACTIONS: [&str; 2] = ["aws:runShellScript", "operon:runShellScript"];

/// A validation or rendering error: what is wrong, and where (JSON pointer).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{pointer}: {message}")]
pub struct DocumentError {
    pub pointer: String,
    pub message: String,
}

fn err(pointer: impl Into<String>, message: impl Into<String>) -> DocumentError {
    DocumentError {
        pointer: pointer.into(),
        message: message.into(),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    StringList,
    Integer,
    Boolean,
    StringMap,
    MapList,
}

impl ParamType {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "String" => Self::String,
            "StringList" => Self::StringList,
            "Integer" => Self::Integer,
            "Boolean" => Self::Boolean,
            "StringMap" => Self::StringMap,
            "MapList" => Self::MapList,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ParamSpec {
    pub kind: ParamType,
    pub default: Option<Value>,
    pub allowed_values: Option<Vec<Value>>,
    pub allowed_pattern: Option<regex::Regex>,
}

#[derive(Debug, Clone, PartialEq)]
struct StepSpec {
    name: String,
    run_command: Value,
    working_directory: Option<String>,
    timeout_secs: Option<u64>,
}

/// A validated document.
#[derive(Debug, Clone)]
pub struct CommandDocument {
    pub parameters: BTreeMap<String, ParamSpec>,
    steps: Vec<StepSpec>,
}

/// The built-in `AWS-RunShellScript` document.
pub fn run_shell_script_document() -> Value {
    serde_json::json!({
        "schemaVersion": "2.2",
        "description": "Run a shell script.",
        "parameters": {
            "commands": {"type": "StringList", "description": "The commands to run."},
            "workingDirectory": {"type": "String", "default": ""},
            "executionTimeout": {"type": "String", "default": "3600", "allowedPattern": "^[0-9]{1,6}$"}
        },
        "mainSteps": [{
            "action": "aws:runShellScript",
            "name": "runShellScript",
            "inputs": {
                "runCommand": "{{ commands }}",
                "workingDirectory": "{{ workingDirectory }}",
                "timeoutSeconds": "{{ executionTimeout }}"
            }
        }]
    })
}

/// A stored document of any kind.
#[derive(Debug, Clone)]
pub enum AnyDocument {
    /// SSM `schemaVersion: "2.2"`: steps run with `/bin/sh`.
    Command(CommandDocument),
    /// `operon-state/1`: resources the agent makes so ([`state`]).
    State(operon_state::document::StateDocument),
    /// `operon-file/1`: the content of a state document's `source` file.
    File(String),
}

/// Validate a document of any kind, told apart by its `schemaVersion`.
pub fn parse_any(doc: &Value) -> Result<AnyDocument, DocumentError> {
    match doc.get("schemaVersion").and_then(Value::as_str) {
        Some(operon_state::document::SCHEMA_VERSION) => operon_state::document::from_value(doc)
            .map(AnyDocument::State)
            .map_err(state::state_error),
        Some(state::FILE_SCHEMA) => {
            let root = doc
                .as_object()
                .ok_or_else(|| err("", "a document must be an object"))?;
            state::parse_file(root).map(AnyDocument::File)
        }
        _ => parse_document(doc).map(AnyDocument::Command),
    }
}

/// Validate a command document's JSON.
pub fn parse_document(doc: &Value) -> Result<CommandDocument, DocumentError> {
    let root = doc
        .as_object()
        .ok_or_else(|| err("", "a document must be a JSON/YAML object"))?;
    match root.get("schemaVersion") {
        Some(Value::String(v)) if v == "2.2" => {}
        Some(other) => {
            return Err(err(
                "/schemaVersion",
                format!(
                    "unsupported schemaVersion {other}; use \"2.2\" (commands), \"{}\" (desired state) or \"{}\" (a file)",
                    operon_state::document::SCHEMA_VERSION,
                    state::FILE_SCHEMA
                ),
            ));
        }
        None => return Err(err("/schemaVersion", "missing schemaVersion (use \"2.2\")")),
    }
    let parameters = parse_parameters(root.get("parameters"))?;
    let steps = parse_steps(root.get("mainSteps"))?;
    for (i, step) in steps.iter().enumerate() {
        check_references(
            &step.run_command,
            &parameters,
            &format!("/mainSteps/{i}/inputs/runCommand"),
        )?;
    }
    Ok(CommandDocument { parameters, steps })
}

fn parse_parameters(value: Option<&Value>) -> Result<BTreeMap<String, ParamSpec>, DocumentError> {
    let Some(value) = value else {
        return Ok(BTreeMap::new());
    };
    let map = value
        .as_object()
        .ok_or_else(|| err("/parameters", "parameters must be an object"))?;
    let mut out = BTreeMap::new();
    for (name, spec) in map {
        let at = format!("/parameters/{}", escape_pointer(name));
        if !is_identifier(name) {
            return Err(err(
                at,
                "parameter names may hold only letters, digits, '_' and '-'",
            ));
        }
        out.insert(name.clone(), parse_param_spec(spec, &at)?);
    }
    Ok(out)
}

fn parse_param_spec(spec: &Value, at: &str) -> Result<ParamSpec, DocumentError> {
    let spec = spec
        .as_object()
        .ok_or_else(|| err(at, "a parameter must be an object with a \"type\""))?;
    let kind_text = spec
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| err(format!("{at}/type"), "missing parameter type"))?;
    let kind = ParamType::parse(kind_text).ok_or_else(|| {
        err(
            format!("{at}/type"),
            format!(
                "unknown type {kind_text:?}; expected String, StringList, Integer, Boolean, StringMap or MapList"
            ),
        )
    })?;
    let allowed_pattern = match spec.get("allowedPattern") {
        None => None,
        Some(Value::String(p)) => Some(regex::Regex::new(p).map_err(|e| {
            err(
                format!("{at}/allowedPattern"),
                format!("invalid regular expression: {e}"),
            )
        })?),
        Some(_) => return Err(err(format!("{at}/allowedPattern"), "must be a string")),
    };
    let allowed_values = match spec.get("allowedValues") {
        None => None,
        Some(Value::Array(values)) => Some(values.clone()),
        Some(_) => return Err(err(format!("{at}/allowedValues"), "must be an array")),
    };
    let mut parsed = ParamSpec {
        kind,
        default: None,
        allowed_values,
        allowed_pattern,
    };
    if let Some(default) = spec.get("default") {
        let value = coerce(kind, default).map_err(|m| err(format!("{at}/default"), m))?;
        parsed.default = Some(value);
    }
    Ok(parsed)
}

fn parse_steps(value: Option<&Value>) -> Result<Vec<StepSpec>, DocumentError> {
    let steps = value
        .and_then(Value::as_array)
        .ok_or_else(|| err("/mainSteps", "mainSteps must be a non-empty array"))?;
    if steps.is_empty() {
        return Err(err("/mainSteps", "mainSteps must be a non-empty array"));
    }
    let mut names = std::collections::HashSet::new();
    steps
        .iter()
        .enumerate()
        .map(|(i, step)| {
            let at = format!("/mainSteps/{i}");
            let parsed = parse_step(step, &at)?;
            if !names.insert(parsed.name.clone()) {
                return Err(err(
                    format!("{at}/name"),
                    format!("duplicate step name {:?}", parsed.name),
                ));
            }
            Ok(parsed)
        })
        .collect()
}

fn parse_step(step: &Value, at: &str) -> Result<StepSpec, DocumentError> {
    let step = step
        .as_object()
        .ok_or_else(|| err(at, "a step must be an object"))?;
    let action = step
        .get("action")
        .and_then(Value::as_str)
        .ok_or_else(|| err(format!("{at}/action"), "missing action"))?;
    if !SHELL_ACTIONS.contains(&action) {
        return Err(err(
            format!("{at}/action"),
            format!(
                "unsupported action {action:?}; supported: aws:runShellScript, operon:runShellScript"
            ),
        ));
    }
    let name = step
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or_else(|| err(format!("{at}/name"), "missing step name"))?
        .to_string();
    let inputs = step
        .get("inputs")
        .and_then(Value::as_object)
        .ok_or_else(|| err(format!("{at}/inputs"), "missing inputs object"))?;
    let run_command = inputs
        .get("runCommand")
        .cloned()
        .ok_or_else(|| err(format!("{at}/inputs/runCommand"), "missing runCommand"))?;
    match &run_command {
        Value::String(_) => {}
        Value::Array(lines) if lines.iter().all(Value::is_string) => {}
        _ => {
            return Err(err(
                format!("{at}/inputs/runCommand"),
                "runCommand must be a string or an array of strings",
            ));
        }
    }
    let working_directory = match inputs.get("workingDirectory") {
        None => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(err(
                format!("{at}/inputs/workingDirectory"),
                "must be a string",
            ));
        }
    };
    let timeout_secs = match inputs.get("timeoutSeconds") {
        None => None,
        Some(Value::Number(n)) => Some(n.as_u64().ok_or_else(|| {
            err(
                format!("{at}/inputs/timeoutSeconds"),
                "must be a positive integer",
            )
        })?),
        // A `{{ parameter }}` reference, resolved at render time.
        Some(Value::String(_)) => None,
        Some(_) => {
            return Err(err(
                format!("{at}/inputs/timeoutSeconds"),
                "must be a number",
            ));
        }
    };
    let timeout_template = inputs
        .get("timeoutSeconds")
        .filter(|v| v.is_string())
        .cloned();
    let mut run = run_command;
    if let Some(template) = timeout_template {
        // Keep the template beside the script so render() can resolve it.
        run = serde_json::json!({"script": run, "timeout": template});
    }
    Ok(StepSpec {
        name,
        run_command: run,
        working_directory,
        timeout_secs,
    })
}

fn check_references(
    value: &Value,
    params: &BTreeMap<String, ParamSpec>,
    at: &str,
) -> Result<(), DocumentError> {
    let mut texts = Vec::new();
    collect_strings(value, &mut texts);
    for text in texts {
        for name in references(text) {
            if !params.contains_key(name) {
                return Err(err(
                    at,
                    format!("{{{{ {name} }}}} refers to an undeclared parameter"),
                ));
            }
        }
    }
    Ok(())
}

fn collect_strings<'a>(value: &'a Value, out: &mut Vec<&'a str>) {
    match value {
        Value::String(s) => out.push(s),
        Value::Array(items) => items.iter().for_each(|v| collect_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| collect_strings(v, out)),
        _ => {}
    }
}

/// The parameter names referenced as `{{ name }}` in a string.
fn references(text: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else { break };
        let name = after[..end].trim();
        if is_identifier(name) {
            names.push(name);
        }
        rest = &after[end + 2..];
    }
    names
}

fn is_identifier(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

pub(crate) fn escape_pointer(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

/// Coerce a caller's value to the declared type. Strings from the command
/// line are accepted for every type where the conversion is unambiguous.
fn coerce(kind: ParamType, value: &Value) -> Result<Value, String> {
    match (kind, value) {
        (ParamType::String, Value::String(_)) => Ok(value.clone()),
        (ParamType::String, Value::Number(n)) => Ok(Value::String(n.to_string())),
        (ParamType::String, Value::Bool(b)) => Ok(Value::String(b.to_string())),
        (ParamType::StringList, Value::String(s)) => {
            Ok(Value::Array(vec![Value::String(s.clone())]))
        }
        (ParamType::StringList, Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(value.clone())
        }
        (ParamType::Integer, Value::Number(n)) if n.is_i64() => Ok(value.clone()),
        (ParamType::Integer, Value::String(s)) => s
            .trim()
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("expected an Integer, got {s:?}")),
        (ParamType::Boolean, Value::Bool(_)) => Ok(value.clone()),
        (ParamType::Boolean, Value::String(s)) => match s.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("expected a Boolean (true or false), got {s:?}")),
        },
        (ParamType::StringMap, Value::Object(_)) => Ok(value.clone()),
        (ParamType::StringMap, Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(v @ Value::Object(_)) => Ok(v),
            _ => Err("expected a StringMap (a JSON object)".to_string()),
        },
        (ParamType::MapList, Value::Array(items)) if items.iter().all(Value::is_object) => {
            Ok(value.clone())
        }
        (ParamType::MapList, Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Array(items)) if items.iter().all(Value::is_object) => {
                Ok(Value::Array(items))
            }
            _ => Err("expected a MapList (a JSON array of objects)".to_string()),
        },
        (kind, other) => Err(format!("expected a {kind:?}, got {other}")),
    }
}

impl CommandDocument {
    /// Check the caller's parameters, apply defaults and render the steps.
    pub fn render(
        &self,
        given: &Map<String, Value>,
    ) -> Result<(Map<String, Value>, Vec<Step>), DocumentError> {
        let values = self.resolve_parameters(given)?;
        let steps = self
            .steps
            .iter()
            .enumerate()
            .map(|(i, step)| render_step(step, &values, i))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((values, steps))
    }

    fn resolve_parameters(
        &self,
        given: &Map<String, Value>,
    ) -> Result<Map<String, Value>, DocumentError> {
        if let Some(unknown) = given.keys().find(|k| !self.parameters.contains_key(*k)) {
            let known: Vec<&str> = self.parameters.keys().map(String::as_str).collect();
            return Err(err(
                format!("/parameters/{}", escape_pointer(unknown)),
                format!(
                    "unknown parameter {unknown:?}; the document declares: {}",
                    known.join(", ")
                ),
            ));
        }
        let mut values = Map::new();
        for (name, spec) in &self.parameters {
            let at = format!("/parameters/{}", escape_pointer(name));
            let value = match (given.get(name), &spec.default) {
                (Some(v), _) => coerce(spec.kind, v).map_err(|m| err(&at, m))?,
                (None, Some(default)) => default.clone(),
                (None, None) => {
                    return Err(err(at, format!("missing required parameter {name:?}")));
                }
            };
            check_allowed(spec, &value, &at)?;
            values.insert(name.clone(), value);
        }
        Ok(values)
    }
}

fn check_allowed(spec: &ParamSpec, value: &Value, at: &str) -> Result<(), DocumentError> {
    let items: Vec<&Value> = match value {
        Value::Array(items) if spec.kind == ParamType::StringList => items.iter().collect(),
        other => vec![other],
    };
    for item in items {
        if let Some(allowed) = &spec.allowed_values
            && !allowed.contains(item)
        {
            return Err(err(
                at,
                format!(
                    "value {item} is not one of the allowedValues {}",
                    Value::Array(allowed.clone())
                ),
            ));
        }
        if let (Some(pattern), Value::String(s)) = (&spec.allowed_pattern, item)
            && !pattern.is_match(s)
        {
            return Err(err(
                at,
                format!(
                    "value {s:?} does not match allowedPattern {}",
                    pattern.as_str()
                ),
            ));
        }
    }
    Ok(())
}

fn render_step(
    step: &StepSpec,
    values: &Map<String, Value>,
    index: usize,
) -> Result<Step, DocumentError> {
    let at = format!("/mainSteps/{index}/inputs");
    let (script_template, timeout_template) = match &step.run_command {
        Value::Object(o) => (
            o.get("script").cloned().unwrap_or(Value::Null),
            o.get("timeout").cloned(),
        ),
        other => (other.clone(), None),
    };
    let lines = render_lines(&script_template, values);
    let working_directory = step
        .working_directory
        .as_deref()
        .map(|w| substitute(w, values))
        .filter(|w| !w.is_empty());
    let timeout_secs = match timeout_template {
        Some(Value::String(t)) => {
            let text = substitute(&t, values);
            if text.is_empty() {
                None
            } else {
                Some(text.trim().parse::<u64>().map_err(|_| {
                    err(
                        format!("{at}/timeoutSeconds"),
                        format!("{text:?} is not a number of seconds"),
                    )
                })?)
            }
        }
        _ => step.timeout_secs,
    };
    Ok(Step {
        name: step.name.clone(),
        script: lines.join("\n"),
        working_directory,
        timeout_secs,
        state: None,
    })
}

/// Render runCommand: an element that is exactly `{{ list }}` splices the list.
fn render_lines(template: &Value, values: &Map<String, Value>) -> Vec<String> {
    let elements: Vec<&str> = match template {
        Value::String(s) => vec![s.as_str()],
        Value::Array(items) => items.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let mut lines = Vec::new();
    for element in elements {
        let whole = references(element)
            .first()
            .filter(|name| {
                element.trim() == format!("{{{{ {name} }}}}")
                    || element.trim() == format!("{{{{{name}}}}}")
            })
            .and_then(|name| values.get(*name));
        match whole {
            Some(Value::Array(items)) => lines.extend(items.iter().map(value_text)),
            _ => lines.push(substitute(element, values)),
        }
    }
    lines
}

fn substitute(text: &str, values: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) if values.contains_key(after[..end].trim()) => {
                out.push_str(&value_text(&values[after[..end].trim()]));
                rest = &after[end + 2..];
            }
            _ => {
                out.push_str("{{");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(items) => items.iter().map(value_text).collect::<Vec<_>>().join("\n"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn params(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn builtin_run_shell_script_splices_commands_into_lines() {
        let doc = parse_document(&run_shell_script_document()).unwrap();
        let (_, steps) = doc
            .render(&params(json!({"commands": ["echo a", "echo b"]})))
            .unwrap();
        assert_eq!(steps.len(), 1);
        assert_eq!(steps[0].script, "echo a\necho b");
        assert_eq!(steps[0].working_directory, None);
        assert_eq!(steps[0].timeout_secs, Some(3600));
    }

    fn deploy_doc() -> Value {
        json!({
            "schemaVersion": "2.2",
            "parameters": {
                "version": {"type": "String", "allowedPattern": "^v[0-9]+$"},
                "env": {"type": "String", "default": "staging", "allowedValues": ["staging", "prod"]},
                "restart": {"type": "Boolean", "default": true}
            },
            "mainSteps": [
                {"action": "aws:runShellScript", "name": "fetch", "inputs": {"runCommand": ["echo fetch {{ version }} for {{env}}"]}},
                {"action": "operon:runShellScript", "name": "restart", "inputs": {"runCommand": "echo restart={{ restart }}", "workingDirectory": "/tmp"}}
            ]
        })
    }

    #[test]
    fn parameters_are_checked_defaulted_and_substituted() {
        let doc = parse_document(&deploy_doc()).unwrap();
        let (values, steps) = doc.render(&params(json!({"version": "v7"}))).unwrap();
        assert_eq!(values["env"], "staging");
        assert_eq!(steps[0].script, "echo fetch v7 for staging");
        assert_eq!(steps[1].script, "echo restart=true");
        assert_eq!(steps[1].working_directory.as_deref(), Some("/tmp"));
    }

    #[test]
    fn bad_parameters_say_which_and_why() {
        let doc = parse_document(&deploy_doc()).unwrap();
        let missing = doc.render(&params(json!({}))).unwrap_err();
        assert_eq!(missing.pointer, "/parameters/version");
        assert!(missing.message.contains("missing required"), "{missing}");
        let pattern = doc
            .render(&params(json!({"version": "latest"})))
            .unwrap_err();
        assert!(pattern.message.contains("allowedPattern"), "{pattern}");
        let allowed = doc
            .render(&params(json!({"version": "v1", "env": "qa"})))
            .unwrap_err();
        assert!(allowed.message.contains("allowedValues"), "{allowed}");
        let unknown = doc
            .render(&params(json!({"version": "v1", "colour": "red"})))
            .unwrap_err();
        assert_eq!(unknown.pointer, "/parameters/colour");
        let typed = doc
            .render(&params(json!({"version": "v1", "restart": "maybe"})))
            .unwrap_err();
        assert!(typed.message.contains("Boolean"), "{typed}");
    }

    #[test]
    fn invalid_documents_are_refused_with_a_pointer() {
        let cases = [
            (json!({"mainSteps": []}), "/schemaVersion"),
            (
                json!({"schemaVersion": "2.2", "mainSteps": []}),
                "/mainSteps",
            ),
            (
                json!({"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runPowerShellScript", "name": "a", "inputs": {"runCommand": ["x"]}}]}),
                "/mainSteps/0/action",
            ),
            (
                json!({"schemaVersion": "2.2", "mainSteps": [{"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": ["{{ nope }}"]}}]}),
                "/mainSteps/0/inputs/runCommand",
            ),
            (
                json!({"schemaVersion": "2.2", "parameters": {"p": {"type": "Float"}}, "mainSteps": [{"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": ["x"]}}]}),
                "/parameters/p/type",
            ),
            (
                json!({"schemaVersion": "2.2", "parameters": {"p": {"type": "String", "allowedPattern": "("}}, "mainSteps": [{"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": ["x"]}}]}),
                "/parameters/p/allowedPattern",
            ),
            (
                json!({"schemaVersion": "2.2", "mainSteps": [
                    {"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": ["x"]}},
                    {"action": "aws:runShellScript", "name": "a", "inputs": {"runCommand": ["y"]}}]}),
                "/mainSteps/1/name",
            ),
        ];
        for (doc, pointer) in cases {
            let error = parse_document(&doc).unwrap_err();
            assert_eq!(error.pointer, pointer, "{doc} -> {error}");
        }
    }

    mod never_panics {
        use proptest::prelude::*;
        use serde_json::{Map, Value, json};

        use super::super::*;

        /// Arbitrary JSON, biased towards the words documents use.
        fn json_value() -> impl Strategy<Value = Value> {
            let word = prop_oneof![
                Just("schemaVersion".to_string()),
                Just("2.2".to_string()),
                Just("parameters".to_string()),
                Just("mainSteps".to_string()),
                Just("aws:runShellScript".to_string()),
                Just("inputs".to_string()),
                Just("runCommand".to_string()),
                Just("type".to_string()),
                Just("StringList".to_string()),
                Just("{{ p }}".to_string()),
                Just("{{".to_string()),
                "[a-z{} ]{0,8}",
            ];
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                word.clone().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 48, 6, move |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
                    prop::collection::vec((word.clone(), inner), 0..5)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        proptest! {
            #[test]
            fn parsing_and_rendering_arbitrary_input_never_panics(doc in json_value(), params in json_value()) {
                let _ = parse_document(&doc);
                let given: Map<String, Value> = params.as_object().cloned().unwrap_or_default();
                if let Ok(parsed) = parse_document(&doc) {
                    let _ = parsed.render(&given);
                }
                let builtin = parse_document(&run_shell_script_document()).unwrap();
                let _ = builtin.render(&given);
                let _ = builtin.render(&json!({"commands": params}).as_object().unwrap().clone());
            }
        }
    }

    #[test]
    fn document_versions_are_numbers_default_or_latest() {
        use DocumentVersion::*;
        for (json, want) in [
            (json!(3), Ok(Number(3))),
            (json!("3"), Ok(Number(3))),
            (json!("$DEFAULT"), Ok(Default)),
            (json!("$LATEST"), Ok(Latest)),
        ] {
            assert_eq!(DocumentVersion::from_json(&json), want, "{json}");
        }
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("latest"),
            json!("$default"),
            json!(""),
            json!(null),
            json!([1]),
        ] {
            assert!(DocumentVersion::from_json(&bad).is_err(), "{bad}");
        }
        assert_eq!(Latest.to_string(), "$LATEST");
        assert_eq!(
            DocumentVersion::parse(&Number(7).to_string()),
            Ok(Number(7))
        );
    }
}
