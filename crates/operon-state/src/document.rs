//! The desired-state document: text (YAML or JSON) to typed resources.
//!
//! Parsing goes through a `serde_json::Value` and a hand-written walk rather
//! than `#[derive(Deserialize)]`, because validation must report every
//! problem at once, each with a JSON pointer and the resource it belongs to;
//! serde stops at the first error.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::template;

/// The only `schemaVersion` this crate understands.
pub const SCHEMA_VERSION: &str = "operon-state/1";

/// One problem in a document: where (a JSON pointer), in which resource, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer to the offending value, such as `/resources/2/mode`.
    pub pointer: String,
    /// The `name` of the resource the problem is in, when it is in one that has a name.
    pub resource: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.pointer, self.message)?;
        if let Some(name) = &self.resource {
            write!(f, " (resource {name:?})")?;
        }
        Ok(())
    }
}

/// Why a document was refused: a syntax error, or every validation problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DocumentError {
    /// The text is neither valid YAML nor valid JSON.
    #[error("the document is not valid YAML or JSON: {0}")]
    Syntax(String),
    /// The text parsed but the document is invalid; all problems, in document order.
    #[error("the document is invalid:\n{}", display_all(.0))]
    Invalid(Vec<FieldError>),
}

fn display_all(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A validated desired-state document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateDocument {
    /// Declared parameters by name.
    pub parameters: BTreeMap<String, Parameter>,
    /// Resources in document order; names are unique.
    pub resources: Vec<Resource>,
}

/// A declared parameter, as in command documents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Parameter {
    pub kind: ParameterType,
    pub description: Option<String>,
    pub default: Option<ParameterValue>,
    pub allowed_values: Vec<String>,
    /// Source text of the regex every value (each element of a list) must match.
    pub allowed_pattern: Option<String>,
}

/// The type of a parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParameterType {
    String,
    StringList,
}

/// A parameter's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParameterValue {
    String(String),
    StringList(Vec<String>),
}

impl ParameterValue {
    /// The text substituted for a reference: lists are joined with newlines.
    pub fn as_text(&self) -> String {
        match self {
            ParameterValue::String(s) => s.clone(),
            ParameterValue::StringList(items) => items.join("\n"),
        }
    }
}

/// One resource: its unique name, its edges and what it manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    /// Names of resources that must be applied (successfully) before this one.
    pub requires: Vec<String>,
    /// Names of services/commands to restart/run when this resource changes.
    pub notify: Vec<String>,
    pub spec: ResourceSpec,
}

/// The typed part of a resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResourceSpec {
    File(FileSpec),
    Directory(DirectorySpec),
    Line(LineSpec),
    Package(PackageSpec),
    Service(ServiceSpec),
    User(UserSpec),
    Group(GroupSpec),
    Command(CommandSpec),
}

impl ResourceSpec {
    /// The `type` name as written in documents.
    pub fn type_name(&self) -> &'static str {
        match self {
            ResourceSpec::File(_) => "file",
            ResourceSpec::Directory(_) => "directory",
            ResourceSpec::Line(_) => "line",
            ResourceSpec::Package(_) => "package",
            ResourceSpec::Service(_) => "service",
            ResourceSpec::User(_) => "user",
            ResourceSpec::Group(_) => "group",
            ResourceSpec::Command(_) => "command",
        }
    }

    /// Whether other resources may `notify` this one (services restart, commands run).
    pub fn is_notifiable(&self) -> bool {
        matches!(self, ResourceSpec::Service(_) | ResourceSpec::Command(_))
    }
}

/// `present` or `absent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Presence {
    #[default]
    Present,
    Absent,
}

/// Where a file's content comes from (only when present).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileContent {
    /// Literal text.
    Content(String),
    /// Text with `{{ parameter }}` and `{{ssm:...}}` references.
    Template(String),
    /// A name in the server's document store.
    Source(String),
    /// Only the metadata (mode, owner, group) is managed.
    Unmanaged,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSpec {
    pub path: String,
    pub content: FileContent,
    /// Permission bits, at most `0o7777`.
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub state: Presence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySpec {
    pub path: String,
    pub mode: Option<u32>,
    pub owner: Option<String>,
    pub group: Option<String>,
    pub state: Presence,
}

/// Ensure a line in a file. With `match`, the first matching line is replaced
/// (present) or every matching line removed (absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineSpec {
    pub path: String,
    pub line: String,
    /// A regex, checked to compile.
    pub match_regex: Option<String>,
    pub state: Presence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PackageVersion {
    /// Any installed version will do.
    Any,
    /// The newest available.
    Latest,
    Exact(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PackageState {
    Installed,
    Absent,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackageSpec {
    pub name: String,
    pub version: PackageVersion,
    pub state: PackageState,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceState {
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceSpec {
    pub name: String,
    /// `None`: whether it runs is not managed.
    pub state: Option<ServiceState>,
    /// `None`: whether it starts at boot is not managed.
    pub enabled: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub name: String,
    pub uid: Option<u32>,
    pub groups: Vec<String>,
    pub shell: Option<String>,
    pub home: Option<String>,
    pub authorized_keys: Vec<String>,
    pub locked: Option<bool>,
    pub state: Presence,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSpec {
    pub name: String,
    pub gid: Option<u32>,
    pub state: Presence,
}

/// A command with guards; see [`crate::guard`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSpec {
    pub run: String,
    /// Skip when this path exists.
    pub creates: Option<String>,
    /// Skip when this command exits 0.
    pub unless: Option<String>,
    /// Skip when this command exits non-zero.
    pub onlyif: Option<String>,
    pub cwd: Option<String>,
    pub user: Option<String>,
}

/// Parse and validate a document from YAML or JSON text (JSON is YAML).
pub fn parse(text: &str) -> Result<StateDocument, DocumentError> {
    let value: Value =
        serde_yaml_ng::from_str(text).map_err(|e| DocumentError::Syntax(e.to_string()))?;
    from_value(&value)
}

/// Validate an already parsed document.
pub fn from_value(value: &Value) -> Result<StateDocument, DocumentError> {
    let mut errors = Errors::default();
    let document = read_document(value, &mut errors);
    match document {
        Some(document) if errors.list.is_empty() => Ok(document),
        _ => Err(DocumentError::Invalid(errors.list)),
    }
}

/// Check caller-given values against the declarations, fill in defaults and
/// return the value of every parameter. All problems are reported.
pub fn resolve_parameters(
    declared: &BTreeMap<String, Parameter>,
    given: &BTreeMap<String, ParameterValue>,
) -> Result<BTreeMap<String, ParameterValue>, DocumentError> {
    let mut errors = Errors::default();
    for name in given.keys().filter(|n| !declared.contains_key(*n)) {
        let known: Vec<&str> = declared.keys().map(String::as_str).collect();
        errors.push(
            &pointer(&["parameters", name]),
            format!(
                "unknown parameter {name:?}; the document declares: {}",
                known.join(", ")
            ),
        );
    }
    let mut values = BTreeMap::new();
    for (name, spec) in declared {
        let at = pointer(&["parameters", name]);
        let value = match (given.get(name), &spec.default) {
            (Some(v), _) => v.clone(),
            (None, Some(default)) => default.clone(),
            (None, None) => {
                errors.push(&at, format!("missing required parameter {name:?}"));
                continue;
            }
        };
        check_parameter_value(spec, &value, &at, &mut errors);
        values.insert(name.clone(), value);
    }
    if errors.list.is_empty() {
        Ok(values)
    } else {
        Err(DocumentError::Invalid(errors.list))
    }
}

fn check_parameter_value(spec: &Parameter, value: &ParameterValue, at: &str, errors: &mut Errors) {
    let items: Vec<&String> = match (spec.kind, value) {
        (ParameterType::String, ParameterValue::String(s)) => vec![s],
        (ParameterType::StringList, ParameterValue::StringList(items)) => items.iter().collect(),
        (ParameterType::String, ParameterValue::StringList(_)) => {
            errors.push(at, "expected a String, got a StringList");
            return;
        }
        (ParameterType::StringList, ParameterValue::String(_)) => {
            errors.push(at, "expected a StringList, got a String");
            return;
        }
    };
    let pattern = spec
        .allowed_pattern
        .as_deref()
        .and_then(|p| regex::Regex::new(p).ok());
    for item in items {
        if !spec.allowed_values.is_empty() && !spec.allowed_values.contains(item) {
            errors.push(
                at,
                format!(
                    "value {item:?} is not one of the allowedValues {:?}",
                    spec.allowed_values
                ),
            );
        }
        if let Some(pattern) = &pattern
            && !pattern.is_match(item)
        {
            errors.push(
                at,
                format!(
                    "value {item:?} does not match allowedPattern {}",
                    pattern.as_str()
                ),
            );
        }
    }
}

/// Collected problems plus the resource being read, so each error names it.
#[derive(Default)]
struct Errors {
    list: Vec<FieldError>,
    resource: Option<String>,
}

impl Errors {
    fn push(&mut self, pointer: &str, message: impl Into<String>) {
        self.list.push(FieldError {
            pointer: pointer.to_string(),
            resource: self.resource.clone(),
            message: message.into(),
        });
    }
}

/// A JSON pointer from raw segments, escaping `~` and `/` (RFC 6901).
fn pointer(segments: &[&str]) -> String {
    segments
        .iter()
        .map(|s| format!("/{}", s.replace('~', "~0").replace('/', "~1")))
        .collect()
}

fn child(at: &str, key: &str) -> String {
    format!("{at}{}", pointer(&[key]))
}

/// An object being read: refuses unknown keys, reads typed fields.
struct Object<'a> {
    map: &'a Map<String, Value>,
    at: String,
}

impl<'a> Object<'a> {
    fn new(value: &'a Value, at: &str, errors: &mut Errors) -> Option<Self> {
        match value {
            Value::Object(map) => Some(Object {
                map,
                at: at.to_string(),
            }),
            other => {
                errors.push(at, format!("expected an object, got {}", kind(other)));
                None
            }
        }
    }

    fn refuse_unknown(&self, allowed: &[&str], errors: &mut Errors) {
        for key in self.map.keys().filter(|k| !allowed.contains(&k.as_str())) {
            errors.push(
                &child(&self.at, key),
                format!(
                    "unknown field {key:?}; expected one of: {}",
                    allowed.join(", ")
                ),
            );
        }
    }

    fn at(&self, key: &str) -> String {
        child(&self.at, key)
    }

    fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    fn string(&self, key: &str, errors: &mut Errors) -> Option<String> {
        match self.map.get(key)? {
            Value::String(s) => Some(s.clone()),
            other => {
                errors.push(
                    &self.at(key),
                    format!("expected a string, got {}", kind(other)),
                );
                None
            }
        }
    }

    fn required_string(&self, key: &str, errors: &mut Errors) -> Option<String> {
        if !self.has(key) {
            errors.push(&self.at(key), format!("{key:?} is required"));
            return None;
        }
        let value = self.string(key, errors)?;
        if value.is_empty() {
            errors.push(&self.at(key), "must not be empty");
            return None;
        }
        Some(value)
    }

    fn bool(&self, key: &str, errors: &mut Errors) -> Option<bool> {
        match self.map.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                errors.push(
                    &self.at(key),
                    format!("expected true or false, got {}", kind(other)),
                );
                None
            }
        }
    }

    fn id(&self, key: &str, errors: &mut Errors) -> Option<u32> {
        let value = self.map.get(key)?;
        match value.as_u64().and_then(|n| u32::try_from(n).ok()) {
            Some(n) => Some(n),
            None => {
                errors.push(
                    &self.at(key),
                    format!("{value} is not a number from 0 to {}", u32::MAX),
                );
                None
            }
        }
    }

    fn strings(&self, key: &str, errors: &mut Errors) -> Vec<String> {
        match self.map.get(key) {
            None => Vec::new(),
            Some(value) => string_list(value, &self.at(key), errors),
        }
    }

    /// One of `choices`, or `default` when absent.
    fn choice<T: Copy>(
        &self,
        key: &str,
        choices: &[(&str, T)],
        default: T,
        errors: &mut Errors,
    ) -> T {
        let Some(text) = self.string(key, errors) else {
            return default;
        };
        match choices.iter().find(|(name, _)| *name == text) {
            Some((_, value)) => *value,
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                errors.push(
                    &self.at(key),
                    format!("{text:?} is not one of: {}", names.join(", ")),
                );
                default
            }
        }
    }

    fn presence(&self, errors: &mut Errors) -> Presence {
        self.choice(
            "state",
            &[("present", Presence::Present), ("absent", Presence::Absent)],
            Presence::Present,
            errors,
        )
    }

    fn path(&self, key: &str, required: bool, errors: &mut Errors) -> Option<String> {
        let path = if required {
            self.required_string(key, errors)?
        } else {
            self.string(key, errors)?
        };
        match path_problem(&path) {
            Some(problem) => {
                errors.push(&self.at(key), format!("{path:?} {problem}"));
                None
            }
            None => Some(path),
        }
    }

    fn mode(&self, errors: &mut Errors) -> Option<u32> {
        let value = self.map.get("mode")?;
        let Value::String(text) = value else {
            errors.push(
                &self.at("mode"),
                format!("{value} is not an octal mode; write it as a string such as \"0644\""),
            );
            return None;
        };
        match parse_mode(text) {
            Some(mode) => Some(mode),
            None => {
                errors.push(&self.at("mode"), format!("{text:?} is not an octal mode"));
                None
            }
        }
    }

    /// The name of the managed package/service/user/group: the field named
    /// after the type, or else the resource's own name.
    fn managed_name(
        &self,
        key: &str,
        resource_name: Option<&str>,
        errors: &mut Errors,
    ) -> Option<String> {
        if self.has(key) {
            self.required_string(key, errors)
        } else {
            resource_name.map(str::to_string)
        }
    }

    fn account(&self, key: &str, errors: &mut Errors) -> Option<String> {
        let name = self.string(key, errors)?;
        self.check_account(key, &name, errors).then_some(name)
    }

    fn check_account(&self, key: &str, name: &str, errors: &mut Errors) -> bool {
        let ok = is_account_name(name);
        if !ok {
            errors.push(
                &self.at(key),
                format!(
                    "{name:?} is not a user or group name (letters, digits, _ . -, not starting with -)"
                ),
            );
        }
        ok
    }
}

fn string_list(value: &Value, at: &str, errors: &mut Errors) -> Vec<String> {
    let Value::Array(items) = value else {
        errors.push(
            at,
            format!("expected a list of strings, got {}", kind(value)),
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => out.push(s.clone()),
            other => errors.push(
                &child(at, &i.to_string()),
                format!("expected a string, got {}", kind(other)),
            ),
        }
    }
    out
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// `"0644"`, `"644"` or `"4755"`: octal digits, at most `0o7777`.
fn parse_mode(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
        return None;
    }
    u32::from_str_radix(text, 8).ok().filter(|m| *m <= 0o7777)
}

fn path_problem(path: &str) -> Option<&'static str> {
    if !path.starts_with('/') {
        Some("is not an absolute path")
    } else if path.contains('\0') {
        Some("contains a NUL byte")
    } else if path.split('/').any(|part| part == "..") {
        Some("contains a \"..\" component")
    } else {
        None
    }
}

/// POSIX-portable names, as `useradd` accepts them.
fn is_account_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 32
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn is_resource_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | ':' | '/'))
}

fn is_package_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | ':'))
}

fn read_document(value: &Value, errors: &mut Errors) -> Option<StateDocument> {
    let top = Object::new(value, "", errors)?;
    top.refuse_unknown(
        &["schemaVersion", "description", "parameters", "resources"],
        errors,
    );
    match top.string("schemaVersion", errors) {
        Some(v) if v == SCHEMA_VERSION => {}
        Some(v) => errors.push(
            "/schemaVersion",
            format!("{v:?} is not supported; expected {SCHEMA_VERSION:?}"),
        ),
        None if !top.has("schemaVersion") => {
            errors.push(
                "/schemaVersion",
                format!("required; expected {SCHEMA_VERSION:?}"),
            );
        }
        None => {}
    }
    top.string("description", errors);
    let parameters = match top.map.get("parameters") {
        Some(value) => read_parameters(value, errors),
        None => BTreeMap::new(),
    };
    let resources = match top.map.get("resources") {
        Some(Value::Array(items)) => read_resources(items, &parameters, errors),
        Some(other) => {
            errors.push(
                "/resources",
                format!("expected a list, got {}", kind(other)),
            );
            Vec::new()
        }
        None => {
            errors.push("/resources", "required (a list of resources)");
            Vec::new()
        }
    };
    Some(StateDocument {
        parameters,
        resources,
    })
}

fn read_parameters(value: &Value, errors: &mut Errors) -> BTreeMap<String, Parameter> {
    let mut out = BTreeMap::new();
    let Some(object) = Object::new(value, "/parameters", errors) else {
        return out;
    };
    for (name, spec) in object.map {
        let at = child("/parameters", name);
        if !template::is_parameter_name(name) {
            errors.push(
                &at,
                format!("{name:?} is not a parameter name (letters, digits, _)"),
            );
            continue;
        }
        if let Some(parameter) = read_parameter(spec, &at, errors) {
            out.insert(name.clone(), parameter);
        }
    }
    out
}

fn read_parameter(value: &Value, at: &str, errors: &mut Errors) -> Option<Parameter> {
    let spec = Object::new(value, at, errors)?;
    spec.refuse_unknown(
        &[
            "type",
            "description",
            "default",
            "allowedValues",
            "allowedPattern",
        ],
        errors,
    );
    let kind = spec.choice(
        "type",
        &[
            ("String", ParameterType::String),
            ("StringList", ParameterType::StringList),
        ],
        ParameterType::String,
        errors,
    );
    if !spec.has("type") {
        errors.push(
            &spec.at("type"),
            "\"type\" is required (String or StringList)",
        );
    }
    let description = spec.string("description", errors);
    let allowed_values = spec.strings("allowedValues", errors);
    let allowed_pattern = spec.string("allowedPattern", errors);
    if let Some(pattern) = &allowed_pattern
        && let Err(e) = regex::Regex::new(pattern)
    {
        errors.push(
            &spec.at("allowedPattern"),
            format!("not a valid regex: {e}"),
        );
    }
    let default = match (kind, spec.map.get("default")) {
        (_, None) => None,
        (ParameterType::String, Some(Value::String(s))) => Some(ParameterValue::String(s.clone())),
        (ParameterType::StringList, Some(list @ Value::Array(_))) => Some(
            ParameterValue::StringList(string_list(list, &spec.at("default"), errors)),
        ),
        (_, Some(other)) => {
            errors.push(
                &spec.at("default"),
                format!(
                    "expected a value of type {kind:?}, got {}",
                    self::kind(other)
                ),
            );
            None
        }
    };
    let parameter = Parameter {
        kind,
        description,
        default,
        allowed_values,
        allowed_pattern,
    };
    if let Some(default) = &parameter.default {
        check_parameter_value(&parameter, default, &spec.at("default"), errors);
    }
    Some(parameter)
}

fn read_resources(
    items: &[Value],
    parameters: &BTreeMap<String, Parameter>,
    errors: &mut Errors,
) -> Vec<Resource> {
    let mut resources = Vec::new();
    // Index of each resource by name, and where it was read, for the cross checks.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut positions = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let at = format!("/resources/{index}");
        errors.resource = item.get("name").and_then(Value::as_str).map(str::to_string);
        if let Some(resource) = read_resource(item, &at, parameters, errors) {
            if let Some(first) = seen.get(&resource.name) {
                errors.push(
                    &child(&at, "name"),
                    format!(
                        "duplicate name {:?}; /resources/{first} has it too",
                        resource.name
                    ),
                );
            } else {
                seen.insert(resource.name.clone(), resources.len());
            }
            resources.push(resource);
            positions.push(index);
        }
    }
    for (resource, index) in resources.iter().zip(&positions) {
        errors.resource = Some(resource.name.clone());
        check_edges(resource, *index, &resources, &seen, errors);
    }
    errors.resource = None;
    resources
}

fn check_edges(
    resource: &Resource,
    index: usize,
    resources: &[Resource],
    by_name: &BTreeMap<String, usize>,
    errors: &mut Errors,
) {
    for (field, targets) in [
        ("requires", &resource.requires),
        ("notify", &resource.notify),
    ] {
        for (i, target) in targets.iter().enumerate() {
            let at = format!("/resources/{index}/{field}/{i}");
            match by_name.get(target).and_then(|t| resources.get(*t)) {
                None => errors.push(&at, format!("no resource is named {target:?}")),
                Some(t) if field == "notify" && !t.spec.is_notifiable() => errors.push(
                    &at,
                    format!(
                        "{target:?} is a {}; only services and commands can be notified",
                        t.spec.type_name()
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

const TYPES: &[&str] = &[
    "file",
    "directory",
    "line",
    "package",
    "service",
    "user",
    "group",
    "command",
];

fn read_resource(
    value: &Value,
    at: &str,
    parameters: &BTreeMap<String, Parameter>,
    errors: &mut Errors,
) -> Option<Resource> {
    let object = Object::new(value, at, errors)?;
    let name = object.required_string("name", errors);
    if let Some(name) = &name
        && !is_resource_name(name)
    {
        errors.push(
            &object.at("name"),
            format!("{name:?} is not a resource name (letters, digits, _ . - : /)"),
        );
    }
    let requires = object.strings("requires", errors);
    let notify = object.strings("notify", errors);
    let type_name = object.required_string("type", errors)?;
    let spec = match type_name.as_str() {
        "file" => ResourceSpec::File(read_file(&object, parameters, errors)?),
        "directory" => ResourceSpec::Directory(read_directory(&object, errors)?),
        "line" => ResourceSpec::Line(read_line(&object, errors)?),
        "package" => ResourceSpec::Package(read_package(&object, name.as_deref(), errors)?),
        "service" => ResourceSpec::Service(read_service(&object, name.as_deref(), errors)?),
        "user" => ResourceSpec::User(read_user(&object, name.as_deref(), errors)?),
        "group" => ResourceSpec::Group(read_group(&object, name.as_deref(), errors)?),
        "command" => ResourceSpec::Command(read_command(&object, errors)?),
        other => {
            errors.push(
                &object.at("type"),
                format!(
                    "{other:?} is not a resource type; expected one of: {}",
                    TYPES.join(", ")
                ),
            );
            return None;
        }
    };
    Some(Resource {
        name: name?,
        requires,
        notify,
        spec,
    })
}

/// Fields every resource has, plus the type's own.
fn allowed<'a>(own: &[&'a str]) -> Vec<&'a str> {
    let mut all = vec!["name", "type", "requires", "notify"];
    all.extend_from_slice(own);
    all
}

fn read_file(
    object: &Object<'_>,
    parameters: &BTreeMap<String, Parameter>,
    errors: &mut Errors,
) -> Option<FileSpec> {
    object.refuse_unknown(
        &allowed(&[
            "path", "content", "template", "source", "mode", "owner", "group", "state",
        ]),
        errors,
    );
    let path = object.path("path", true, errors);
    let state = object.presence(errors);
    let sources: Vec<&str> = ["content", "template", "source"]
        .into_iter()
        .filter(|k| object.has(k))
        .collect();
    if sources.len() > 1 {
        errors.push(
            &object.at(sources[1]),
            format!(
                "give only one of content, template, source (found {})",
                sources.join(", ")
            ),
        );
    }
    if state == Presence::Absent && !sources.is_empty() {
        errors.push(
            &object.at(sources[0]),
            "an absent file has no content; remove it or use state: present",
        );
    }
    let content = if let Some(text) = object.string("content", errors) {
        FileContent::Content(text)
    } else if let Some(text) = object.string("template", errors) {
        for problem in template::check(&text, parameters) {
            errors.push(&object.at("template"), problem);
        }
        FileContent::Template(text)
    } else if let Some(name) = non_empty(object, "source", errors) {
        FileContent::Source(name)
    } else {
        FileContent::Unmanaged
    };
    let mode = object.mode(errors);
    let owner = object.account("owner", errors);
    let group = object.account("group", errors);
    Some(FileSpec {
        path: path?,
        content,
        mode,
        owner,
        group,
        state,
    })
}

fn read_directory(object: &Object<'_>, errors: &mut Errors) -> Option<DirectorySpec> {
    object.refuse_unknown(
        &allowed(&["path", "mode", "owner", "group", "state"]),
        errors,
    );
    let path = object.path("path", true, errors);
    let mode = object.mode(errors);
    let owner = object.account("owner", errors);
    let group = object.account("group", errors);
    let state = object.presence(errors);
    Some(DirectorySpec {
        path: path?,
        mode,
        owner,
        group,
        state,
    })
}

fn read_line(object: &Object<'_>, errors: &mut Errors) -> Option<LineSpec> {
    object.refuse_unknown(&allowed(&["path", "line", "match", "state"]), errors);
    let path = object.path("path", true, errors);
    let state = object.presence(errors);
    let line = match state {
        Presence::Present => object.required_string("line", errors),
        Presence::Absent => object.string("line", errors).or(Some(String::new())),
    };
    if let Some(text) = &line
        && text.contains('\n')
    {
        errors.push(&object.at("line"), "must be a single line (no newline)");
    }
    let match_regex = object.string("match", errors);
    if let Some(pattern) = &match_regex
        && let Err(e) = regex::Regex::new(pattern)
    {
        errors.push(&object.at("match"), format!("not a valid regex: {e}"));
    }
    if state == Presence::Absent && match_regex.is_none() && line.as_deref() == Some("") {
        errors.push(
            &object.at("line"),
            "an absent line needs \"line\" or \"match\"",
        );
    }
    Some(LineSpec {
        path: path?,
        line: line?,
        match_regex,
        state,
    })
}

fn read_package(
    object: &Object<'_>,
    resource_name: Option<&str>,
    errors: &mut Errors,
) -> Option<PackageSpec> {
    object.refuse_unknown(&allowed(&["package", "version", "state"]), errors);
    let name = object.managed_name("package", resource_name, errors);
    if let Some(name) = &name
        && !is_package_name(name)
    {
        errors.push(
            &object.at("package"),
            format!("{name:?} is not a package name"),
        );
    }
    let state = object.choice(
        "state",
        &[
            ("installed", PackageState::Installed),
            ("absent", PackageState::Absent),
        ],
        PackageState::Installed,
        errors,
    );
    let version = match object.string("version", errors) {
        None => PackageVersion::Any,
        Some(v) if v == "latest" => PackageVersion::Latest,
        Some(v) if v.is_empty() || v.chars().any(char::is_whitespace) => {
            errors.push(&object.at("version"), format!("{v:?} is not a version"));
            PackageVersion::Any
        }
        Some(v) => PackageVersion::Exact(v),
    };
    if state == PackageState::Absent && version != PackageVersion::Any {
        errors.push(&object.at("version"), "an absent package has no version");
    }
    Some(PackageSpec {
        name: name?,
        version,
        state,
    })
}

fn read_service(
    object: &Object<'_>,
    resource_name: Option<&str>,
    errors: &mut Errors,
) -> Option<ServiceSpec> {
    object.refuse_unknown(&allowed(&["service", "state", "enabled"]), errors);
    let name = object.managed_name("service", resource_name, errors);
    if let Some(name) = &name
        && (name.starts_with('-') || name.contains(char::is_whitespace) || name.contains('/'))
    {
        errors.push(
            &object.at("service"),
            format!("{name:?} is not a service name"),
        );
    }
    let state = object.has("state").then(|| {
        object.choice(
            "state",
            &[
                ("running", ServiceState::Running),
                ("stopped", ServiceState::Stopped),
            ],
            ServiceState::Running,
            errors,
        )
    });
    let enabled = object.bool("enabled", errors);
    Some(ServiceSpec {
        name: name?,
        state,
        enabled,
    })
}

fn read_user(
    object: &Object<'_>,
    resource_name: Option<&str>,
    errors: &mut Errors,
) -> Option<UserSpec> {
    object.refuse_unknown(
        &allowed(&[
            "user",
            "uid",
            "groups",
            "shell",
            "home",
            "authorized_keys",
            "locked",
            "state",
        ]),
        errors,
    );
    let name = object.managed_name("user", resource_name, errors);
    // A name defaulted from the resource's is reported at `name`.
    let key = if object.has("user") { "user" } else { "name" };
    let name = name.filter(|n| object.check_account(key, n, errors));
    let uid = object.id("uid", errors);
    let groups = object.strings("groups", errors);
    for (i, group) in groups.iter().enumerate() {
        if !is_account_name(group) {
            errors.push(
                &child(&object.at("groups"), &i.to_string()),
                format!("{group:?} is not a group name"),
            );
        }
    }
    let shell = object.path("shell", false, errors);
    let home = object.path("home", false, errors);
    let authorized_keys = object.strings("authorized_keys", errors);
    for (i, key) in authorized_keys.iter().enumerate() {
        if key.contains('\n') || key.trim().is_empty() {
            errors.push(
                &child(&object.at("authorized_keys"), &i.to_string()),
                "an authorized key is one non-empty line",
            );
        }
    }
    let locked = object.bool("locked", errors);
    let state = object.presence(errors);
    Some(UserSpec {
        name: name?,
        uid,
        groups,
        shell,
        home,
        authorized_keys,
        locked,
        state,
    })
}

fn read_group(
    object: &Object<'_>,
    resource_name: Option<&str>,
    errors: &mut Errors,
) -> Option<GroupSpec> {
    object.refuse_unknown(&allowed(&["group", "gid", "state"]), errors);
    let name = object.managed_name("group", resource_name, errors);
    // A name defaulted from the resource's is reported at `name`.
    let key = if object.has("group") { "group" } else { "name" };
    let name = name.filter(|n| object.check_account(key, n, errors));
    let gid = object.id("gid", errors);
    let state = object.presence(errors);
    Some(GroupSpec {
        name: name?,
        gid,
        state,
    })
}

fn read_command(object: &Object<'_>, errors: &mut Errors) -> Option<CommandSpec> {
    object.refuse_unknown(
        &allowed(&["run", "creates", "unless", "onlyif", "cwd", "user"]),
        errors,
    );
    let run = object.required_string("run", errors);
    let creates = object.path("creates", false, errors);
    let unless = non_empty(object, "unless", errors);
    let onlyif = non_empty(object, "onlyif", errors);
    let cwd = object.path("cwd", false, errors);
    let user = object.account("user", errors);
    Some(CommandSpec {
        run: run?,
        creates,
        unless,
        onlyif,
        cwd,
        user,
    })
}

fn non_empty(object: &Object<'_>, key: &str, errors: &mut Errors) -> Option<String> {
    if object.has(key) {
        object.required_string(key, errors)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(resources: &str) -> String {
        format!("schemaVersion: operon-state/1\nresources:\n{resources}")
    }

    /// The `pointer: message (resource)` lines of a refused document.
    fn problems(text: &str) -> Vec<String> {
        match parse(text) {
            Err(DocumentError::Invalid(list)) => list.iter().map(ToString::to_string).collect(),
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn full_document_parses_to_typed_resources() {
        let text = doc(r#"
  - {name: conf, type: file, path: /etc/app.conf, content: "x=1\n", mode: "0640", owner: root, group: app, notify: [app-svc]}
  - {name: gone, type: file, path: /etc/old.conf, state: absent}
  - {name: data, type: directory, path: /srv/data, mode: "2775"}
  - {name: ssh-port, type: line, path: /etc/ssh/sshd_config, line: "Port 2222", match: "^#?Port "}
  - {name: openssl, type: package, version: latest}
  - {name: curl-pkg, type: package, package: curl, version: "7.88.1-10"}
  - {name: telnet, type: package, state: absent}
  - {name: app-svc, type: service, service: app, state: running, enabled: true, requires: [conf]}
  - {name: deploy, type: user, uid: 1500, groups: [app], shell: /bin/bash, home: /home/deploy, authorized_keys: ["ssh-ed25519 AAAA deploy"], locked: false}
  - {name: app, type: group, gid: 1600}
  - {name: migrate, type: command, run: "app migrate", creates: /var/lib/app/migrated, unless: "app status", onlyif: "test -x /usr/bin/app", cwd: /srv, user: deploy}
"#);
        let d = parse(&text).unwrap();
        assert_eq!(d.resources.len(), 11);
        assert_eq!(
            d.resources[0].spec,
            ResourceSpec::File(FileSpec {
                path: "/etc/app.conf".into(),
                content: FileContent::Content("x=1\n".into()),
                mode: Some(0o640),
                owner: Some("root".into()),
                group: Some("app".into()),
                state: Presence::Present,
            })
        );
        assert_eq!(d.resources[0].notify, vec!["app-svc"]);
        assert!(
            matches!(&d.resources[1].spec, ResourceSpec::File(f) if f.state == Presence::Absent && f.content == FileContent::Unmanaged)
        );
        assert!(
            matches!(&d.resources[2].spec, ResourceSpec::Directory(x) if x.mode == Some(0o2775))
        );
        assert!(
            matches!(&d.resources[3].spec, ResourceSpec::Line(l) if l.match_regex.as_deref() == Some("^#?Port "))
        );
        assert_eq!(
            d.resources[4].spec,
            ResourceSpec::Package(PackageSpec {
                name: "openssl".into(),
                version: PackageVersion::Latest,
                state: PackageState::Installed
            })
        );
        assert!(
            matches!(&d.resources[5].spec, ResourceSpec::Package(p) if p.name == "curl" && p.version == PackageVersion::Exact("7.88.1-10".into()))
        );
        assert!(
            matches!(&d.resources[6].spec, ResourceSpec::Package(p) if p.state == PackageState::Absent)
        );
        assert_eq!(
            d.resources[7].spec,
            ResourceSpec::Service(ServiceSpec {
                name: "app".into(),
                state: Some(ServiceState::Running),
                enabled: Some(true)
            })
        );
        assert!(
            matches!(&d.resources[8].spec, ResourceSpec::User(u) if u.name == "deploy" && u.uid == Some(1500) && u.authorized_keys.len() == 1)
        );
        assert!(
            matches!(&d.resources[9].spec, ResourceSpec::Group(g) if g.name == "app" && g.gid == Some(1600))
        );
        assert!(
            matches!(&d.resources[10].spec, ResourceSpec::Command(c) if c.creates.as_deref() == Some("/var/lib/app/migrated") && c.user.as_deref() == Some("deploy"))
        );
    }

    #[test]
    fn json_is_accepted() {
        let text =
            r#"{"schemaVersion": "operon-state/1", "resources": [{"name": "g", "type": "group"}]}"#;
        assert_eq!(parse(text).unwrap().resources[0].name, "g");
    }

    #[test]
    fn syntax_errors_are_reported() {
        assert!(matches!(
            parse("resources: [").unwrap_err(),
            DocumentError::Syntax(_)
        ));
    }

    #[test]
    fn validation_table() {
        let cases: &[(&str, &[&str])] = &[
            (
                "  - {name: d, type: directory, path: /srv, mode: \"0999\"}",
                &["/resources/0/mode: \"0999\" is not an octal mode (resource \"d\")"],
            ),
            (
                "  - {name: d, type: directory, path: /srv, mode: 644}",
                &[
                    "/resources/0/mode: 644 is not an octal mode; write it as a string such as \"0644\" (resource \"d\")",
                ],
            ),
            (
                "  - {name: d, type: directory, path: /srv, mode: \"17777\"}",
                &["/resources/0/mode: \"17777\" is not an octal mode (resource \"d\")"],
            ),
            (
                "  - {name: d, type: directory, path: srv}",
                &["/resources/0/path: \"srv\" is not an absolute path (resource \"d\")"],
            ),
            (
                "  - {name: d, type: directory, path: /srv/../etc}",
                &[
                    "/resources/0/path: \"/srv/../etc\" contains a \"..\" component (resource \"d\")",
                ],
            ),
            (
                "  - {name: d, type: directory}",
                &["/resources/0/path: \"path\" is required (resource \"d\")"],
            ),
            (
                "  - {name: d, type: directory, path: /x, colour: red}",
                &[
                    "/resources/0/colour: unknown field \"colour\"; expected one of: name, type, requires, notify, path, mode, owner, group, state (resource \"d\")",
                ],
            ),
            (
                "  - {name: d, type: dir, path: /x}",
                &[
                    "/resources/0/type: \"dir\" is not a resource type; expected one of: file, directory, line, package, service, user, group, command (resource \"d\")",
                ],
            ),
            (
                "  - {type: group, gid: 1}",
                &["/resources/0/name: \"name\" is required"],
            ),
            (
                "  - {name: a, type: group}\n  - {name: a, type: group}",
                &[
                    "/resources/1/name: duplicate name \"a\"; /resources/0 has it too (resource \"a\")",
                ],
            ),
            (
                "  - {name: a, type: group, requires: [b]}",
                &["/resources/0/requires/0: no resource is named \"b\" (resource \"a\")"],
            ),
            (
                "  - {name: a, type: group, notify: [b]}\n  - {name: b, type: group}",
                &[
                    "/resources/0/notify/0: \"b\" is a group; only services and commands can be notified (resource \"a\")",
                ],
            ),
            (
                "  - {name: f, type: file, path: /f, content: x, source: y}",
                &[
                    "/resources/0/source: give only one of content, template, source (found content, source) (resource \"f\")",
                ],
            ),
            (
                "  - {name: f, type: file, path: /f, content: x, state: absent}",
                &[
                    "/resources/0/content: an absent file has no content; remove it or use state: present (resource \"f\")",
                ],
            ),
            (
                "  - {name: f, type: file, path: /f, template: \"{{ port }}\"}",
                &[
                    "/resources/0/template: unknown parameter \"port\" in {{ port }} (resource \"f\")",
                ],
            ),
            (
                "  - {name: f, type: file, path: /f, state: gone}",
                &["/resources/0/state: \"gone\" is not one of: present, absent (resource \"f\")"],
            ),
            (
                "  - {name: l, type: line, path: /f, line: x, match: \"(\"}",
                &[
                    "/resources/0/match: not a valid regex: regex parse error:\n    (\n    ^\nerror: unclosed group (resource \"l\")",
                ],
            ),
            (
                "  - {name: l, type: line, path: /f, state: absent}",
                &["/resources/0/line: an absent line needs \"line\" or \"match\" (resource \"l\")"],
            ),
            (
                "  - {name: p, type: package, state: absent, version: \"1\"}",
                &["/resources/0/version: an absent package has no version (resource \"p\")"],
            ),
            (
                "  - {name: s, type: service, enabled: yes}",
                &["/resources/0/enabled: expected true or false, got a string (resource \"s\")"],
            ),
            (
                "  - {name: u, type: user, uid: -1, shell: bash, groups: [\"-x\", 3]}",
                &[
                    "/resources/0/uid: -1 is not a number from 0 to 4294967295 (resource \"u\")",
                    "/resources/0/groups/1: expected a string, got a number (resource \"u\")",
                    "/resources/0/groups/0: \"-x\" is not a group name (resource \"u\")",
                    "/resources/0/shell: \"bash\" is not an absolute path (resource \"u\")",
                ],
            ),
            (
                "  - {name: \"bad name\", type: group}",
                &[
                    "/resources/0/name: \"bad name\" is not a resource name (letters, digits, _ . - : /) (resource \"bad name\")",
                    "/resources/0/name: \"bad name\" is not a user or group name (letters, digits, _ . -, not starting with -) (resource \"bad name\")",
                ],
            ),
            (
                "  - {name: c, type: command, run: \"\", creates: tmp}",
                &[
                    "/resources/0/run: must not be empty (resource \"c\")",
                    "/resources/0/creates: \"tmp\" is not an absolute path (resource \"c\")",
                ],
            ),
            ("  - 3", &["/resources/0: expected an object, got a number"]),
        ];
        for (resources, expected) in cases {
            assert_eq!(problems(&doc(resources)), *expected, "{resources}");
        }
    }

    #[test]
    fn all_errors_are_reported_across_resources() {
        let text = "schemaVersion: operon-state/2\nextra: 1\nresources:\n  - {name: a, type: file, path: x}\n  - {name: b, type: group, gid: x, requires: [zz]}\n";
        assert_eq!(
            problems(text),
            vec![
                "/extra: unknown field \"extra\"; expected one of: schemaVersion, description, parameters, resources",
                "/schemaVersion: \"operon-state/2\" is not supported; expected \"operon-state/1\"",
                "/resources/0/path: \"x\" is not an absolute path (resource \"a\")",
                "/resources/1/gid: \"x\" is not a number from 0 to 4294967295 (resource \"b\")",
                "/resources/1/requires/0: no resource is named \"zz\" (resource \"b\")",
            ]
        );
    }

    #[test]
    fn parameters_are_validated_and_resolved() {
        let text = "schemaVersion: operon-state/1\nparameters:\n  env: {type: String, allowedValues: [dev, prod], default: dev}\n  hosts: {type: StringList}\n  port: {type: String, allowedPattern: \"^[0-9]+$\"}\nresources: []\n";
        let d = parse(text).unwrap();
        let given = BTreeMap::from([
            (
                "hosts".to_string(),
                ParameterValue::StringList(vec!["a".into()]),
            ),
            ("port".to_string(), ParameterValue::String("80".into())),
        ]);
        let values = resolve_parameters(&d.parameters, &given).unwrap();
        assert_eq!(values["env"], ParameterValue::String("dev".into()));
        let bad = BTreeMap::from([
            ("port".to_string(), ParameterValue::String("eighty".into())),
            ("env".to_string(), ParameterValue::String("qa".into())),
            ("nope".to_string(), ParameterValue::String("x".into())),
        ]);
        let Err(DocumentError::Invalid(list)) = resolve_parameters(&d.parameters, &bad) else {
            panic!("expected errors");
        };
        let messages: Vec<String> = list.iter().map(ToString::to_string).collect();
        assert_eq!(
            messages,
            vec![
                "/parameters/nope: unknown parameter \"nope\"; the document declares: env, hosts, port",
                "/parameters/env: value \"qa\" is not one of the allowedValues [\"dev\", \"prod\"]",
                "/parameters/hosts: missing required parameter \"hosts\"",
                "/parameters/port: value \"eighty\" does not match allowedPattern ^[0-9]+$",
            ]
        );
    }

    #[test]
    fn parameter_declarations_are_checked() {
        let text = "schemaVersion: operon-state/1\nparameters:\n  a: {type: Number}\n  b: {type: String, allowedPattern: \"[\", default: [x]}\n  c: {default: x}\n  \"d-e\": {type: String}\nresources: []\n";
        let got = problems(text);
        assert_eq!(got.len(), 5, "{got:#?}");
        assert_eq!(
            got[0],
            "/parameters/a/type: \"Number\" is not one of: String, StringList"
        );
        assert!(
            got[1].starts_with("/parameters/b/allowedPattern: not a valid regex"),
            "{}",
            got[1]
        );
        assert_eq!(
            got[2],
            "/parameters/b/default: expected a value of type String, got a list"
        );
        assert_eq!(
            got[3],
            "/parameters/c/type: \"type\" is required (String or StringList)"
        );
        assert_eq!(
            got[4],
            "/parameters/d-e: \"d-e\" is not a parameter name (letters, digits, _)"
        );
    }

    #[test]
    fn a_resource_with_a_bad_field_is_still_known_to_the_others() {
        let text = doc(
            "  - {name: conf, type: file, path: /c, mode: \"9\"}\n  - {name: svc, type: service, requires: [conf]}\n",
        );
        assert_eq!(
            problems(&text),
            vec!["/resources/0/mode: \"9\" is not an octal mode (resource \"conf\")"]
        );
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_parsed_or_refused_without_panic(text in "[a-z:{}\\[\\], \"/0-9\n-]{0,200}") {
            let _ = parse(&text);
        }

        #[test]
        fn any_resource_shape_is_parsed_or_refused_without_panic(
            fields in proptest::collection::btree_map(
                proptest::sample::select(vec!["name", "type", "path", "mode", "content", "state", "requires", "notify", "user", "uid", "run", "creates", "line", "match", "version", "enabled"]),
                proptest::sample::select(vec!["\"a\"", "\"/x\"", "\"file\"", "\"user\"", "\"command\"", "\"service\"", "1", "-1", "true", "[\"a\"]", "{}", "null", "\"0644\"", "\"absent\""]),
                0..8,
            )
        ) {
            let body: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
            let text = format!("{{\"schemaVersion\": \"operon-state/1\", \"resources\": [{{{}}}, {{\"name\": \"a\", \"type\": \"group\"}}]}}", body.join(", "));
            let _ = parse(&text);
        }
    }

    #[test]
    fn pointers_escape_slash_and_tilde() {
        assert_eq!(pointer(&["a/b", "c~d"]), "/a~1b/c~0d");
    }
}
