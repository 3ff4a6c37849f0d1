//! Parsing and validation of state machine definitions.
//!
//! A definition is parsed once into a [`StateMachine`]: every nested branch
//! (Parallel branches, Map item processors) becomes a [`Processor`] in one flat
//! list, states refer to each other by index, and every path, intrinsic call,
//! template and JSONata expression is compiled ahead of time.

use crate::error::{ValidationError, ValidationErrors};
use crate::intrinsics::{self, Call};
use crate::jsonpath::JsonPath;
use crate::template::{Jsonata, Template, escape_pointer};
use serde_json::{Map, Value};
use std::collections::{HashMap, HashSet};

/// `JSONPath` (the default) or `JSONata`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryLanguage {
    JsonPath,
    Jsonata,
}

/// A parsed, validated state machine.
#[derive(Debug, Clone)]
pub struct StateMachine {
    /// Index 0 is the top level.
    pub processors: Vec<Processor>,
    pub timeout_seconds: Option<u64>,
    pub comment: Option<String>,
}

/// One list of states with a start state: the top level, a branch or an item processor.
#[derive(Debug, Clone)]
pub struct Processor {
    pub start_at: usize,
    pub states: Vec<State>,
}

/// `InputPath` / `OutputPath` / `ItemsPath`: absent, `null`, or a path.
#[derive(Debug, Clone)]
pub enum PathField {
    Default,
    Null,
    Path(JsonPath),
}

/// A state.
#[derive(Debug, Clone)]
pub struct State {
    pub name: String,
    pub kind: Kind,
    pub ql: QueryLanguage,
    /// `None` means `End: true` (or a terminal state).
    pub next: Option<usize>,
    pub input_path: PathField,
    pub output_path: PathField,
    pub result_path: PathField,
    /// `Parameters` (JSONPath) or `Arguments` (JSONata).
    pub parameters: Option<Template>,
    pub result_selector: Option<Template>,
    /// JSONata `Output`.
    pub output: Option<Template>,
    pub assign: Option<Template>,
    pub retry: Vec<Retrier>,
    pub catch: Vec<Catcher>,
}

/// What a state does.
#[derive(Debug, Clone)]
pub enum Kind {
    Pass { result: Option<Value> },
    Task(Box<TaskSpec>),
    Choice(Box<ChoiceSpec>),
    Wait(WaitSpec),
    Succeed,
    Fail(Box<FailSpec>),
    Parallel { branches: Vec<usize> },
    Map(Box<MapSpec>),
}

macro_rules! event_names {
    ($($v:ident $pat:pat => $enter:literal, $exit:literal;)*) => {
        /// The `<Type>StateEntered` history event name.
        pub fn entered_event(&self) -> &'static str {
            match self { $($pat => $enter,)* }
        }
        /// The `<Type>StateExited` history event name.
        pub fn exited_event(&self) -> &'static str {
            match self { $($pat => $exit,)* }
        }
    };
}

impl Kind {
    event_names! {
        Pass Kind::Pass { .. } => "PassStateEntered", "PassStateExited";
        Task Kind::Task(_) => "TaskStateEntered", "TaskStateExited";
        Choice Kind::Choice(_) => "ChoiceStateEntered", "ChoiceStateExited";
        Wait Kind::Wait(_) => "WaitStateEntered", "WaitStateExited";
        Succeed Kind::Succeed => "SucceedStateEntered", "SucceedStateExited";
        Fail Kind::Fail(_) => "FailStateEntered", "FailStateExited";
        Parallel Kind::Parallel { .. } => "ParallelStateEntered", "ParallelStateExited";
        Map Kind::Map(_) => "MapStateEntered", "MapStateExited";
    }

    /// The type name as used in history event names (`Pass`, `Task`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            Kind::Pass { .. } => "Pass",
            Kind::Task(_) => "Task",
            Kind::Choice(_) => "Choice",
            Kind::Wait(_) => "Wait",
            Kind::Succeed => "Succeed",
            Kind::Fail(_) => "Fail",
            Kind::Parallel { .. } => "Parallel",
            Kind::Map(_) => "Map",
        }
    }
}

/// A number given literally, by path, or by a JSONata expression.
#[derive(Debug, Clone)]
pub enum NumberField {
    Literal(Value),
    Path(JsonPath),
    Jsonata(Jsonata),
}

/// A string given literally, by path, by intrinsic or by JSONata.
#[derive(Debug, Clone)]
pub enum StringField {
    Literal(String),
    Path(JsonPath),
    Intrinsic(Box<Call>),
    Jsonata(Jsonata),
}

#[derive(Debug, Clone)]
pub struct TaskSpec {
    pub resource: String,
    pub timeout: Option<NumberField>,
    pub heartbeat: Option<NumberField>,
}

#[derive(Debug, Clone)]
pub enum WaitSpec {
    Seconds(NumberField),
    Timestamp(StringField),
}

#[derive(Debug, Clone)]
pub struct FailSpec {
    pub error: Option<StringField>,
    pub cause: Option<StringField>,
}

#[derive(Debug, Clone)]
pub struct ChoiceSpec {
    pub choices: Vec<ChoiceRule>,
    pub default: Option<usize>,
}

#[derive(Debug, Clone)]
pub struct ChoiceRule {
    pub condition: Condition,
    pub next: usize,
    pub assign: Option<Template>,
    pub output: Option<Template>,
}

/// A boolean condition of a Choice rule.
#[derive(Debug, Clone)]
pub enum Condition {
    And(Vec<Condition>),
    Or(Vec<Condition>),
    Not(Box<Condition>),
    Compare {
        variable: JsonPath,
        op: CompareOp,
        operand: Operand,
    },
    /// JSONata `Condition`: a literal boolean or an expression.
    Jsonata(Template),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    StringEquals,
    StringLessThan,
    StringGreaterThan,
    StringLessThanEquals,
    StringGreaterThanEquals,
    StringMatches,
    NumericEquals,
    NumericLessThan,
    NumericGreaterThan,
    NumericLessThanEquals,
    NumericGreaterThanEquals,
    BooleanEquals,
    TimestampEquals,
    TimestampLessThan,
    TimestampGreaterThan,
    TimestampLessThanEquals,
    TimestampGreaterThanEquals,
    IsNull,
    IsPresent,
    IsNumeric,
    IsString,
    IsBoolean,
    IsTimestamp,
}

const COMPARE_OPS: &[(&str, CompareOp)] = &[
    ("StringEquals", CompareOp::StringEquals),
    ("StringLessThan", CompareOp::StringLessThan),
    ("StringGreaterThan", CompareOp::StringGreaterThan),
    ("StringLessThanEquals", CompareOp::StringLessThanEquals),
    (
        "StringGreaterThanEquals",
        CompareOp::StringGreaterThanEquals,
    ),
    ("StringMatches", CompareOp::StringMatches),
    ("NumericEquals", CompareOp::NumericEquals),
    ("NumericLessThan", CompareOp::NumericLessThan),
    ("NumericGreaterThan", CompareOp::NumericGreaterThan),
    ("NumericLessThanEquals", CompareOp::NumericLessThanEquals),
    (
        "NumericGreaterThanEquals",
        CompareOp::NumericGreaterThanEquals,
    ),
    ("BooleanEquals", CompareOp::BooleanEquals),
    ("TimestampEquals", CompareOp::TimestampEquals),
    ("TimestampLessThan", CompareOp::TimestampLessThan),
    ("TimestampGreaterThan", CompareOp::TimestampGreaterThan),
    (
        "TimestampLessThanEquals",
        CompareOp::TimestampLessThanEquals,
    ),
    (
        "TimestampGreaterThanEquals",
        CompareOp::TimestampGreaterThanEquals,
    ),
    ("IsNull", CompareOp::IsNull),
    ("IsPresent", CompareOp::IsPresent),
    ("IsNumeric", CompareOp::IsNumeric),
    ("IsString", CompareOp::IsString),
    ("IsBoolean", CompareOp::IsBoolean),
    ("IsTimestamp", CompareOp::IsTimestamp),
];

#[derive(Debug, Clone)]
pub enum Operand {
    Literal(Value),
    Path(JsonPath),
}

#[derive(Debug, Clone)]
pub struct Retrier {
    pub errors: Vec<String>,
    pub interval_seconds: f64,
    pub max_attempts: u32,
    pub backoff_rate: f64,
    pub max_delay_seconds: Option<f64>,
    pub full_jitter: bool,
}

#[derive(Debug, Clone)]
pub struct Catcher {
    pub errors: Vec<String>,
    pub next: usize,
    pub result_path: PathField,
    pub assign: Option<Template>,
    pub output: Option<Template>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapMode {
    Inline,
    Distributed,
}

#[derive(Debug, Clone)]
pub struct MapSpec {
    pub processor: usize,
    pub mode: MapMode,
    pub items_path: PathField,
    /// JSONata `Items`.
    pub items: Option<Template>,
    /// `ItemSelector` or legacy `Parameters`.
    pub item_selector: Option<Template>,
    pub max_concurrency: Option<NumberField>,
    pub tolerated_failure_count: Option<NumberField>,
    pub tolerated_failure_percentage: Option<NumberField>,
    pub item_reader: Option<ItemReader>,
    pub item_batcher: Option<ItemBatcher>,
    pub result_writer: Option<ResultWriter>,
    /// `Label`: replaces the state name in the Map Run ARN.
    pub label: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ItemReader {
    pub resource: String,
    pub parameters: Option<Template>,
    pub input_type: String,
    pub csv_header_location: String,
    pub csv_headers: Vec<String>,
    pub csv_delimiter: String,
    pub max_items: Option<NumberField>,
}

#[derive(Debug, Clone)]
pub struct ItemBatcher {
    pub max_items_per_batch: Option<NumberField>,
    pub max_input_bytes_per_batch: Option<NumberField>,
    pub batch_input: Option<Template>,
}

#[derive(Debug, Clone)]
pub struct ResultWriter {
    pub resource: String,
    pub parameters: Option<Template>,
}

impl StateMachine {
    /// Parses and validates a definition given as JSON text.
    pub fn parse_str(text: &str) -> Result<StateMachine, ValidationErrors> {
        let v: Value = serde_json::from_str(text).map_err(|e| {
            ValidationErrors(vec![ValidationError::new(
                "",
                format!("the definition is not valid JSON: {e}"),
            )])
        })?;
        StateMachine::from_value(&v)
    }

    /// Parses and validates a definition.
    pub fn from_value(v: &Value) -> Result<StateMachine, ValidationErrors> {
        let mut b = Builder {
            errors: Vec::new(),
            processors: Vec::new(),
        };
        let Some(obj) = v.as_object() else {
            return Err(ValidationErrors(vec![ValidationError::new(
                "",
                "the definition must be a JSON object",
            )]));
        };
        let ql = b.query_language(obj, "", QueryLanguage::JsonPath);
        b.check_fields(
            obj,
            "",
            &[
                "Comment",
                "StartAt",
                "States",
                "Version",
                "TimeoutSeconds",
                "QueryLanguage",
            ],
        );
        let timeout_seconds = obj.get("TimeoutSeconds").and_then(Value::as_u64);
        let comment = obj
            .get("Comment")
            .and_then(Value::as_str)
            .map(str::to_string);
        b.processor(obj, "", ql);
        if b.errors.is_empty() {
            Ok(StateMachine {
                processors: b.processors,
                timeout_seconds,
                comment,
            })
        } else {
            Err(ValidationErrors(b.errors))
        }
    }
}

struct Builder {
    errors: Vec<ValidationError>,
    processors: Vec<Processor>,
}

const COMMON: &[&str] = &[
    "Type",
    "Comment",
    "QueryLanguage",
    "Next",
    "End",
    "InputPath",
    "OutputPath",
    "Assign",
    "Output",
];

fn allowed_fields(ty: &str) -> &'static [&'static str] {
    match ty {
        "Pass" => &["Result", "ResultPath", "Parameters"],
        "Task" => &[
            "Resource",
            "Parameters",
            "Arguments",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "TimeoutSeconds",
            "TimeoutSecondsPath",
            "HeartbeatSeconds",
            "HeartbeatSecondsPath",
            "Credentials",
        ],
        "Choice" => &["Choices", "Default"],
        "Wait" => &["Seconds", "SecondsPath", "Timestamp", "TimestampPath"],
        "Succeed" => &[],
        "Fail" => &["Error", "ErrorPath", "Cause", "CausePath"],
        "Parallel" => &[
            "Branches",
            "Parameters",
            "Arguments",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
        ],
        "Map" => &[
            "Iterator",
            "ItemProcessor",
            "ItemsPath",
            "Items",
            "ItemSelector",
            "Parameters",
            "Arguments",
            "MaxConcurrency",
            "MaxConcurrencyPath",
            "ResultPath",
            "ResultSelector",
            "Retry",
            "Catch",
            "ItemReader",
            "ItemBatcher",
            "ResultWriter",
            "ToleratedFailurePercentage",
            "ToleratedFailurePercentagePath",
            "ToleratedFailureCount",
            "ToleratedFailureCountPath",
            "Label",
        ],
        _ => &[],
    }
}

const JSONPATH_ONLY: &[&str] = &[
    "InputPath",
    "OutputPath",
    "Parameters",
    "ResultPath",
    "ResultSelector",
    "ItemsPath",
    "SecondsPath",
    "TimestampPath",
    "ErrorPath",
    "CausePath",
    "MaxConcurrencyPath",
    "ToleratedFailurePercentagePath",
    "ToleratedFailureCountPath",
    "TimeoutSecondsPath",
    "HeartbeatSecondsPath",
];
const JSONATA_ONLY: &[&str] = &["Arguments", "Output", "Items"];

impl Builder {
    fn err(&mut self, ptr: impl Into<String>, msg: impl Into<String>) {
        self.errors.push(ValidationError::new(ptr, msg));
    }

    fn check_fields(&mut self, obj: &Map<String, Value>, ptr: &str, allowed: &[&str]) {
        for k in obj.keys() {
            if !allowed.contains(&k.as_str()) {
                self.err(
                    format!("{ptr}/{}", escape_pointer(k)),
                    format!("Field '{k}' is not supported here"),
                );
            }
        }
    }

    fn query_language(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        inherited: QueryLanguage,
    ) -> QueryLanguage {
        match obj.get("QueryLanguage") {
            None => inherited,
            Some(Value::String(s)) if s == "JSONPath" => {
                if inherited == QueryLanguage::Jsonata && ptr.is_empty() {
                    inherited
                } else {
                    QueryLanguage::JsonPath
                }
            }
            Some(Value::String(s)) if s == "JSONata" => QueryLanguage::Jsonata,
            Some(_) => {
                self.err(
                    format!("{ptr}/QueryLanguage"),
                    "QueryLanguage must be 'JSONPath' or 'JSONata'",
                );
                inherited
            }
        }
    }

    /// Parses `StartAt` + `States` into a new processor and returns its index.
    fn processor(&mut self, obj: &Map<String, Value>, ptr: &str, ql: QueryLanguage) -> usize {
        let id = self.processors.len();
        self.processors.push(Processor {
            start_at: 0,
            states: Vec::new(),
        });
        let Some(states) = obj.get("States").and_then(Value::as_object) else {
            self.err(
                format!("{ptr}/States"),
                "The field 'States' is required and must be an object",
            );
            return id;
        };
        if states.is_empty() {
            self.err(
                format!("{ptr}/States"),
                "'States' must contain at least one state",
            );
            return id;
        }
        let index: HashMap<&str, usize> = states
            .keys()
            .enumerate()
            .map(|(i, k)| (k.as_str(), i))
            .collect();
        let start_at = match obj.get("StartAt").and_then(Value::as_str) {
            Some(s) => match index.get(s) {
                Some(i) => *i,
                None => {
                    self.err(
                        format!("{ptr}/StartAt"),
                        format!("Missing 'Next' target: {s}"),
                    );
                    0
                }
            },
            None => {
                self.err(format!("{ptr}/StartAt"), "The field 'StartAt' is required");
                0
            }
        };
        let mut parsed = Vec::with_capacity(states.len());
        for (name, sv) in states {
            let sptr = format!("{ptr}/States/{}", escape_pointer(name));
            if name.is_empty() || name.chars().count() > 80 {
                self.err(&sptr, "State names must be 1 to 80 characters long");
            }
            parsed.push(self.state(name, sv, &sptr, ql, &index));
        }
        self.check_reachable(&parsed, start_at, ptr);
        self.processors[id] = Processor {
            start_at,
            states: parsed,
        };
        id
    }

    fn check_reachable(&mut self, states: &[State], start: usize, ptr: &str) {
        if states.is_empty() {
            return;
        }
        let mut seen = HashSet::new();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if i >= states.len() || !seen.insert(i) {
                continue;
            }
            let s = &states[i];
            stack.extend(s.next);
            stack.extend(s.catch.iter().map(|c| c.next));
            if let Kind::Choice(c) = &s.kind {
                stack.extend(c.choices.iter().map(|r| r.next));
                stack.extend(c.default);
            }
        }
        for (i, s) in states.iter().enumerate() {
            if !seen.contains(&i) {
                self.err(
                    format!("{ptr}/States/{}", escape_pointer(&s.name)),
                    format!("State '{}' is not reachable", s.name),
                );
            }
        }
    }

    fn target(
        &mut self,
        v: Option<&Value>,
        ptr: &str,
        index: &HashMap<&str, usize>,
    ) -> Option<usize> {
        match v {
            Some(Value::String(s)) => match index.get(s.as_str()) {
                Some(i) => Some(*i),
                None => {
                    self.err(ptr, format!("Missing 'Next' target: {s}"));
                    None
                }
            },
            Some(_) => {
                self.err(ptr, "A transition target must be a state name");
                None
            }
            None => None,
        }
    }

    fn state(
        &mut self,
        name: &str,
        v: &Value,
        ptr: &str,
        inherited: QueryLanguage,
        index: &HashMap<&str, usize>,
    ) -> State {
        let mut st = State {
            name: name.to_string(),
            kind: Kind::Succeed,
            ql: inherited,
            next: None,
            input_path: PathField::Default,
            output_path: PathField::Default,
            result_path: PathField::Default,
            parameters: None,
            result_selector: None,
            output: None,
            assign: None,
            retry: Vec::new(),
            catch: Vec::new(),
        };
        let Some(obj) = v.as_object() else {
            self.err(ptr, "A state must be a JSON object");
            return st;
        };
        let ql = self.query_language(obj, ptr, inherited);
        st.ql = ql;
        let ty = obj.get("Type").and_then(Value::as_str).unwrap_or("");
        if ![
            "Pass", "Task", "Choice", "Wait", "Succeed", "Fail", "Parallel", "Map",
        ]
        .contains(&ty)
        {
            self.err(format!("{ptr}/Type"), format!("Unknown state type '{ty}'"));
            return st;
        }
        let mut allowed: Vec<&str> = COMMON.to_vec();
        allowed.extend_from_slice(allowed_fields(ty));
        self.check_fields(obj, ptr, &allowed);
        self.check_language_fields(obj, ptr, ql);
        self.transition(obj, ptr, ty, index, &mut st);
        self.io_fields(obj, ptr, ql, &mut st);
        st.kind = match ty {
            "Pass" => Kind::Pass {
                result: obj.get("Result").cloned(),
            },
            "Task" => self.task(obj, ptr, ql),
            "Choice" => self.choice(obj, ptr, ql, index),
            "Wait" => self.wait(obj, ptr, ql),
            "Fail" => self.fail(obj, ptr, ql),
            "Parallel" => self.parallel(obj, ptr, ql),
            "Map" => self.map(obj, ptr, ql),
            _ => Kind::Succeed,
        };
        if matches!(ty, "Task" | "Parallel" | "Map") {
            st.retry = self.retriers(obj.get("Retry"), &format!("{ptr}/Retry"));
            st.catch = self.catchers(obj.get("Catch"), &format!("{ptr}/Catch"), ql, index);
        }
        st
    }

    fn check_language_fields(&mut self, obj: &Map<String, Value>, ptr: &str, ql: QueryLanguage) {
        let (forbidden, lang) = match ql {
            QueryLanguage::Jsonata => (JSONPATH_ONLY, "JSONata"),
            QueryLanguage::JsonPath => (JSONATA_ONLY, "JSONPath"),
        };
        for k in obj.keys() {
            if forbidden.contains(&k.as_str()) {
                self.err(
                    format!("{ptr}/{k}"),
                    format!("The field '{k}' is not supported when the QueryLanguage is {lang}"),
                );
            }
        }
    }

    fn transition(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        ty: &str,
        index: &HashMap<&str, usize>,
        st: &mut State,
    ) {
        let terminal = matches!(ty, "Choice" | "Succeed" | "Fail");
        let has_next = obj.contains_key("Next");
        let end = obj.get("End");
        if terminal {
            if has_next || end.is_some() {
                self.err(ptr, format!("A {ty} state cannot have 'Next' or 'End'"));
            }
            return;
        }
        match (has_next, end) {
            (true, Some(_)) => self.err(ptr, "A state cannot have both 'Next' and 'End'"),
            (true, None) => st.next = self.target(obj.get("Next"), &format!("{ptr}/Next"), index),
            (false, Some(Value::Bool(true))) => {}
            (false, Some(_)) => self.err(format!("{ptr}/End"), "'End' must be true"),
            (false, None) => self.err(ptr, "A state must have 'Next' or 'End: true'"),
        }
    }

    fn path_field(&mut self, obj: &Map<String, Value>, key: &str, ptr: &str) -> PathField {
        match obj.get(key) {
            None => PathField::Default,
            Some(Value::Null) => PathField::Null,
            Some(Value::String(s)) => match JsonPath::parse(s) {
                Ok(p) => PathField::Path(p),
                Err(e) => {
                    self.err(
                        format!("{ptr}/{key}"),
                        format!("The value for the field '{key}' must be a valid JSONPath: {e}"),
                    );
                    PathField::Default
                }
            },
            Some(_) => {
                self.err(
                    format!("{ptr}/{key}"),
                    format!("The value for the field '{key}' must be a string or null"),
                );
                PathField::Default
            }
        }
    }

    fn template(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        ptr: &str,
        ql: QueryLanguage,
    ) -> Option<Template> {
        let v = obj.get(key)?;
        let fptr = format!("{ptr}/{key}");
        let res = match ql {
            QueryLanguage::JsonPath => Template::jsonpath(v, &fptr),
            QueryLanguage::Jsonata => Template::jsonata(v, key, &fptr),
        };
        match res {
            Ok(t) => Some(t),
            Err(e) => {
                self.errors.push(e);
                None
            }
        }
    }

    fn io_fields(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        ql: QueryLanguage,
        st: &mut State,
    ) {
        st.input_path = self.path_field(obj, "InputPath", ptr);
        st.output_path = self.path_field(obj, "OutputPath", ptr);
        st.result_path = self.path_field(obj, "ResultPath", ptr);
        if let PathField::Path(p) = &st.result_path
            && !p.is_reference_path()
        {
            self.err(
                format!("{ptr}/ResultPath"),
                "ResultPath must be a reference path ($ followed by fields and indexes)",
            );
        }
        let is_map = obj.get("Type").and_then(Value::as_str) == Some("Map");
        st.parameters = match ql {
            QueryLanguage::JsonPath if !is_map => self.template(obj, "Parameters", ptr, ql),
            QueryLanguage::Jsonata => self.template(obj, "Arguments", ptr, ql),
            _ => None,
        };
        st.result_selector = self.template(obj, "ResultSelector", ptr, ql);
        if ql == QueryLanguage::Jsonata {
            st.output = self.template(obj, "Output", ptr, ql);
        }
        st.assign = self.assign(obj.get("Assign"), &format!("{ptr}/Assign"), ql);
    }

    fn assign(&mut self, v: Option<&Value>, ptr: &str, ql: QueryLanguage) -> Option<Template> {
        let v = v?;
        if !v.is_object() {
            self.err(ptr, "Assign must be a JSON object");
            return None;
        }
        let res = match ql {
            QueryLanguage::JsonPath => Template::jsonpath(v, ptr),
            QueryLanguage::Jsonata => Template::jsonata(v, "Assign", ptr),
        };
        res.map_err(|e| self.errors.push(e)).ok()
    }

    fn number_field(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        ptr: &str,
        ql: QueryLanguage,
    ) -> Option<NumberField> {
        if let Some(v) = obj.get(key) {
            if let Some(inner) = v.as_str().and_then(Jsonata::inner) {
                if ql != QueryLanguage::Jsonata {
                    self.err(format!("{ptr}/{key}"), format!("'{key}' must be a number"));
                    return None;
                }
                return match Jsonata::parse(inner) {
                    Ok(j) => Some(NumberField::Jsonata(j)),
                    Err(e) => {
                        self.err(
                            format!("{ptr}/{key}"),
                            format!("invalid JSONata expression: {e}"),
                        );
                        None
                    }
                };
            }
            if !v.is_number() {
                self.err(format!("{ptr}/{key}"), format!("'{key}' must be a number"));
                return None;
            }
            return Some(NumberField::Literal(v.clone()));
        }
        let pkey = format!("{key}Path");
        match obj.get(&pkey)?.as_str().map(JsonPath::parse) {
            Some(Ok(p)) => Some(NumberField::Path(p)),
            _ => {
                self.err(
                    format!("{ptr}/{pkey}"),
                    format!("'{pkey}' must be a valid JSONPath"),
                );
                None
            }
        }
    }

    fn string_field(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        ptr: &str,
        ql: QueryLanguage,
    ) -> Option<StringField> {
        if let Some(v) = obj.get(key) {
            let Some(s) = v.as_str() else {
                self.err(format!("{ptr}/{key}"), format!("'{key}' must be a string"));
                return None;
            };
            if ql == QueryLanguage::Jsonata
                && let Some(inner) = Jsonata::inner(s)
            {
                return match Jsonata::parse(inner) {
                    Ok(j) => Some(StringField::Jsonata(j)),
                    Err(e) => {
                        self.err(
                            format!("{ptr}/{key}"),
                            format!("invalid JSONata expression: {e}"),
                        );
                        None
                    }
                };
            }
            return Some(StringField::Literal(s.to_string()));
        }
        let pkey = format!("{key}Path");
        let s = obj.get(&pkey)?.as_str().unwrap_or("");
        if intrinsics::is_intrinsic(s) {
            return match intrinsics::parse(s) {
                Ok(c) => Some(StringField::Intrinsic(Box::new(c))),
                Err(e) => {
                    self.err(
                        format!("{ptr}/{pkey}"),
                        format!("invalid intrinsic function: {e}"),
                    );
                    None
                }
            };
        }
        match JsonPath::parse(s) {
            Ok(p) => Some(StringField::Path(p)),
            Err(e) => {
                self.err(
                    format!("{ptr}/{pkey}"),
                    format!("'{pkey}' must be a valid JSONPath: {e}"),
                );
                None
            }
        }
    }

    fn task(&mut self, obj: &Map<String, Value>, ptr: &str, ql: QueryLanguage) -> Kind {
        let resource = match obj.get("Resource").and_then(Value::as_str) {
            Some(r) => r.to_string(),
            None => {
                self.err(
                    format!("{ptr}/Resource"),
                    "A Task state requires a 'Resource' string",
                );
                String::new()
            }
        };
        for k in ["TimeoutSeconds", "HeartbeatSeconds"] {
            if obj.contains_key(k) && obj.contains_key(&format!("{k}Path")) {
                self.err(
                    ptr,
                    format!("A Task state cannot have both '{k}' and '{k}Path'"),
                );
            }
            if let Some(v) = obj.get(k).filter(|v| v.is_number())
                && v.as_u64().is_none_or(|n| n == 0)
            {
                self.err(
                    format!("{ptr}/{k}"),
                    format!("'{k}' must be a positive integer"),
                );
            }
        }
        if let (Some(t), Some(h)) = (
            obj.get("TimeoutSeconds").and_then(Value::as_u64),
            obj.get("HeartbeatSeconds").and_then(Value::as_u64),
        ) && h >= t
        {
            self.err(
                format!("{ptr}/HeartbeatSeconds"),
                "'HeartbeatSeconds' must be smaller than 'TimeoutSeconds'",
            );
        }
        let timeout = self.number_field(obj, "TimeoutSeconds", ptr, ql);
        let heartbeat = self.number_field(obj, "HeartbeatSeconds", ptr, ql);
        Kind::Task(Box::new(TaskSpec {
            resource,
            timeout,
            heartbeat,
        }))
    }

    fn wait(&mut self, obj: &Map<String, Value>, ptr: &str, ql: QueryLanguage) -> Kind {
        let n = ["Seconds", "SecondsPath", "Timestamp", "TimestampPath"]
            .iter()
            .filter(|k| obj.contains_key(**k))
            .count();
        if n != 1 {
            self.err(ptr, "A Wait state needs exactly one of 'Seconds', 'SecondsPath', 'Timestamp', 'TimestampPath'");
            return Kind::Wait(WaitSpec::Seconds(NumberField::Literal(Value::from(0))));
        }
        if obj.contains_key("Seconds") || obj.contains_key("SecondsPath") {
            if let Some(Value::Number(n)) = obj.get("Seconds")
                && n.as_f64().is_some_and(|f| f < 0.0 || f.fract() != 0.0)
            {
                self.err(
                    format!("{ptr}/Seconds"),
                    "'Seconds' must be a non-negative integer",
                );
            }
            let f = self
                .number_field(obj, "Seconds", ptr, ql)
                .unwrap_or(NumberField::Literal(Value::from(0)));
            return Kind::Wait(WaitSpec::Seconds(f));
        }
        if let Some(Value::String(s)) = obj.get("Timestamp")
            && Jsonata::inner(s).is_none()
            && crate::time::parse_rfc3339(s).is_none()
        {
            self.err(
                format!("{ptr}/Timestamp"),
                "'Timestamp' must be an ISO-8601 extended offset date-time",
            );
        }
        let f = self
            .string_field(obj, "Timestamp", ptr, ql)
            .unwrap_or(StringField::Literal(String::new()));
        Kind::Wait(WaitSpec::Timestamp(f))
    }

    fn fail(&mut self, obj: &Map<String, Value>, ptr: &str, ql: QueryLanguage) -> Kind {
        for k in ["Error", "Cause"] {
            if obj.contains_key(k) && obj.contains_key(&format!("{k}Path")) {
                self.err(
                    ptr,
                    format!("A Fail state cannot have both '{k}' and '{k}Path'"),
                );
            }
        }
        let error = self.string_field(obj, "Error", ptr, ql);
        let cause = self.string_field(obj, "Cause", ptr, ql);
        Kind::Fail(Box::new(FailSpec { error, cause }))
    }

    fn parallel(&mut self, obj: &Map<String, Value>, ptr: &str, ql: QueryLanguage) -> Kind {
        let Some(branches) = obj.get("Branches").and_then(Value::as_array) else {
            self.err(
                format!("{ptr}/Branches"),
                "A Parallel state requires a 'Branches' array",
            );
            return Kind::Parallel {
                branches: Vec::new(),
            };
        };
        let mut ids = Vec::new();
        for (i, b) in branches.iter().enumerate() {
            let bptr = format!("{ptr}/Branches/{i}");
            match b.as_object() {
                Some(bo) => {
                    let bql = self.query_language(bo, &bptr, ql);
                    ids.push(self.processor(bo, &bptr, bql));
                }
                None => self.err(bptr, "A branch must be an object"),
            }
        }
        Kind::Parallel { branches: ids }
    }

    fn map(&mut self, obj: &Map<String, Value>, ptr: &str, ql: QueryLanguage) -> Kind {
        let (key, proc_v) = match (obj.get("ItemProcessor"), obj.get("Iterator")) {
            (Some(p), None) => ("ItemProcessor", p),
            (None, Some(p)) => ("Iterator", p),
            _ => {
                self.err(
                    ptr,
                    "A Map state requires exactly one of 'ItemProcessor' or 'Iterator'",
                );
                ("ItemProcessor", &Value::Null)
            }
        };
        let pptr = format!("{ptr}/{key}");
        let empty = Map::new();
        let pobj = proc_v.as_object().unwrap_or(&empty);
        let mode = match pobj
            .get("ProcessorConfig")
            .and_then(|c| c.get("Mode"))
            .and_then(Value::as_str)
        {
            Some("DISTRIBUTED") => MapMode::Distributed,
            _ => MapMode::Inline,
        };
        let mut pfields = pobj.clone();
        pfields.remove("ProcessorConfig");
        let pql = self.query_language(pobj, &pptr, ql);
        let processor = self.processor(&pfields, &pptr, pql);
        if obj.contains_key("ItemSelector") && obj.contains_key("Parameters") {
            self.err(
                ptr,
                "A Map state cannot have both 'ItemSelector' and 'Parameters'",
            );
        }
        let sel_key = if obj.contains_key("Parameters") {
            "Parameters"
        } else {
            "ItemSelector"
        };
        let item_selector = self.template(obj, sel_key, ptr, ql);
        let items = if ql == QueryLanguage::Jsonata {
            self.template(obj, "Items", ptr, ql)
        } else {
            None
        };
        let label = match obj.get("Label") {
            None => None,
            Some(Value::String(l)) => Some(l.clone()),
            Some(_) => {
                self.err(format!("{ptr}/Label"), "'Label' must be a string");
                None
            }
        };
        let spec = MapSpec {
            label,
            processor,
            mode,
            items_path: self.path_field(obj, "ItemsPath", ptr),
            items,
            item_selector,
            max_concurrency: self.number_field(obj, "MaxConcurrency", ptr, ql),
            tolerated_failure_count: self.number_field(obj, "ToleratedFailureCount", ptr, ql),
            tolerated_failure_percentage: self.number_field(
                obj,
                "ToleratedFailurePercentage",
                ptr,
                ql,
            ),
            item_reader: self.item_reader(obj.get("ItemReader"), &format!("{ptr}/ItemReader"), ql),
            item_batcher: self.item_batcher(
                obj.get("ItemBatcher"),
                &format!("{ptr}/ItemBatcher"),
                ql,
            ),
            result_writer: self.result_writer(
                obj.get("ResultWriter"),
                &format!("{ptr}/ResultWriter"),
                ql,
            ),
        };
        Kind::Map(Box::new(spec))
    }

    fn args_template(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        ql: QueryLanguage,
    ) -> Option<Template> {
        match ql {
            QueryLanguage::JsonPath => self.template(obj, "Parameters", ptr, ql),
            QueryLanguage::Jsonata => self.template(obj, "Arguments", ptr, ql),
        }
    }

    fn item_reader(
        &mut self,
        v: Option<&Value>,
        ptr: &str,
        ql: QueryLanguage,
    ) -> Option<ItemReader> {
        let obj = v?.as_object()?;
        let resource = obj
            .get("Resource")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let parameters = self.args_template(obj, ptr, ql);
        let empty = Map::new();
        let cfg = obj
            .get("ReaderConfig")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let s = |k: &str, d: &str| cfg.get(k).and_then(Value::as_str).unwrap_or(d).to_string();
        let csv_headers = cfg
            .get("CSVHeaders")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|h| h.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        let max_items = self.number_field(cfg, "MaxItems", &format!("{ptr}/ReaderConfig"), ql);
        Some(ItemReader {
            resource,
            parameters,
            input_type: s("InputType", "JSON"),
            csv_header_location: s("CSVHeaderLocation", "FIRST_ROW"),
            csv_headers,
            csv_delimiter: s("CSVDelimiter", "COMMA"),
            max_items,
        })
    }

    fn item_batcher(
        &mut self,
        v: Option<&Value>,
        ptr: &str,
        ql: QueryLanguage,
    ) -> Option<ItemBatcher> {
        let obj = v?.as_object()?;
        Some(ItemBatcher {
            max_items_per_batch: self.number_field(obj, "MaxItemsPerBatch", ptr, ql),
            max_input_bytes_per_batch: self.number_field(obj, "MaxInputBytesPerBatch", ptr, ql),
            batch_input: self.template(obj, "BatchInput", ptr, ql),
        })
    }

    fn result_writer(
        &mut self,
        v: Option<&Value>,
        ptr: &str,
        ql: QueryLanguage,
    ) -> Option<ResultWriter> {
        let obj = v?.as_object()?;
        Some(ResultWriter {
            resource: obj
                .get("Resource")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            parameters: self.args_template(obj, ptr, ql),
        })
    }

    fn error_list(&mut self, v: Option<&Value>, ptr: &str) -> Vec<String> {
        match v.and_then(Value::as_array) {
            Some(a) if !a.is_empty() => a
                .iter()
                .filter_map(|e| e.as_str().map(str::to_string))
                .collect(),
            _ => {
                self.err(ptr, "'ErrorEquals' must be a non-empty array of strings");
                Vec::new()
            }
        }
    }

    fn retriers(&mut self, v: Option<&Value>, ptr: &str) -> Vec<Retrier> {
        let Some(arr) = v.and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, r) in arr.iter().enumerate() {
            let rptr = format!("{ptr}/{i}");
            let empty = Map::new();
            let o = r.as_object().unwrap_or(&empty);
            self.check_fields(
                o,
                &rptr,
                &[
                    "ErrorEquals",
                    "IntervalSeconds",
                    "MaxAttempts",
                    "BackoffRate",
                    "MaxDelaySeconds",
                    "JitterStrategy",
                    "Comment",
                ],
            );
            let retrier = Retrier {
                errors: self.error_list(o.get("ErrorEquals"), &format!("{rptr}/ErrorEquals")),
                interval_seconds: o
                    .get("IntervalSeconds")
                    .and_then(Value::as_f64)
                    .unwrap_or(1.0),
                max_attempts: o
                    .get("MaxAttempts")
                    .and_then(Value::as_u64)
                    .unwrap_or(3)
                    .min(99_999_999) as u32,
                backoff_rate: o.get("BackoffRate").and_then(Value::as_f64).unwrap_or(2.0),
                max_delay_seconds: o.get("MaxDelaySeconds").and_then(Value::as_f64),
                full_jitter: o.get("JitterStrategy").and_then(Value::as_str) == Some("FULL"),
            };
            if retrier.backoff_rate < 1.0 {
                self.err(
                    format!("{rptr}/BackoffRate"),
                    "'BackoffRate' must be at least 1.0",
                );
            }
            out.push(retrier);
        }
        self.check_all_last(
            &out.iter().map(|r| r.errors.clone()).collect::<Vec<_>>(),
            ptr,
        );
        out
    }

    fn check_all_last(&mut self, lists: &[Vec<String>], ptr: &str) {
        for (i, l) in lists.iter().enumerate() {
            if l.iter().any(|e| e == crate::error::names::ALL)
                && (l.len() > 1 || i + 1 != lists.len())
            {
                self.err(
                    format!("{ptr}/{i}/ErrorEquals"),
                    "'States.ALL' must appear alone and in the last retrier or catcher",
                );
            }
        }
    }

    fn catchers(
        &mut self,
        v: Option<&Value>,
        ptr: &str,
        ql: QueryLanguage,
        index: &HashMap<&str, usize>,
    ) -> Vec<Catcher> {
        let Some(arr) = v.and_then(Value::as_array) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (i, c) in arr.iter().enumerate() {
            let cptr = format!("{ptr}/{i}");
            let empty = Map::new();
            let o = c.as_object().unwrap_or(&empty);
            self.check_fields(
                o,
                &cptr,
                &[
                    "ErrorEquals",
                    "Next",
                    "ResultPath",
                    "Assign",
                    "Output",
                    "Comment",
                ],
            );
            let errors = self.error_list(o.get("ErrorEquals"), &format!("{cptr}/ErrorEquals"));
            let next = self.target(o.get("Next"), &format!("{cptr}/Next"), index);
            if o.get("Next").is_none() {
                self.err(format!("{cptr}/Next"), "A catcher requires 'Next'");
            }
            let result_path = self.path_field(o, "ResultPath", &cptr);
            let assign = self.assign(o.get("Assign"), &format!("{cptr}/Assign"), ql);
            let output = if ql == QueryLanguage::Jsonata {
                self.template(o, "Output", &cptr, ql)
            } else {
                None
            };
            out.push(Catcher {
                errors,
                next: next.unwrap_or(0),
                result_path,
                assign,
                output,
            });
        }
        self.check_all_last(
            &out.iter().map(|c| c.errors.clone()).collect::<Vec<_>>(),
            ptr,
        );
        out
    }

    fn choice(
        &mut self,
        obj: &Map<String, Value>,
        ptr: &str,
        ql: QueryLanguage,
        index: &HashMap<&str, usize>,
    ) -> Kind {
        let default = self.target(obj.get("Default"), &format!("{ptr}/Default"), index);
        let mut choices = Vec::new();
        match obj.get("Choices").and_then(Value::as_array) {
            Some(arr) if !arr.is_empty() => {
                for (i, r) in arr.iter().enumerate() {
                    let rptr = format!("{ptr}/Choices/{i}");
                    if let Some(rule) = self.choice_rule(r, &rptr, ql, index) {
                        choices.push(rule);
                    }
                }
            }
            _ => self.err(
                format!("{ptr}/Choices"),
                "A Choice state requires a non-empty 'Choices' array",
            ),
        }
        Kind::Choice(Box::new(ChoiceSpec { choices, default }))
    }

    fn choice_rule(
        &mut self,
        v: &Value,
        ptr: &str,
        ql: QueryLanguage,
        index: &HashMap<&str, usize>,
    ) -> Option<ChoiceRule> {
        let obj = v.as_object()?;
        let next = self.target(obj.get("Next"), &format!("{ptr}/Next"), index);
        if !obj.contains_key("Next") {
            self.err(format!("{ptr}/Next"), "A choice rule requires 'Next'");
        }
        let condition = match ql {
            QueryLanguage::Jsonata => {
                self.check_fields(
                    obj,
                    ptr,
                    &["Condition", "Next", "Assign", "Output", "Comment"],
                );
                match obj.get("Condition") {
                    Some(c) => match Template::jsonata(c, "Condition", &format!("{ptr}/Condition"))
                    {
                        Ok(t) => Condition::Jsonata(t),
                        Err(e) => {
                            self.errors.push(e);
                            return None;
                        }
                    },
                    None => {
                        self.err(
                            format!("{ptr}/Condition"),
                            "A JSONata choice rule requires 'Condition'",
                        );
                        return None;
                    }
                }
            }
            QueryLanguage::JsonPath => self.condition(obj, ptr, true)?,
        };
        let assign = self.assign(obj.get("Assign"), &format!("{ptr}/Assign"), ql);
        let output = if ql == QueryLanguage::Jsonata {
            self.template(obj, "Output", ptr, ql)
        } else {
            None
        };
        Some(ChoiceRule {
            condition,
            next: next.unwrap_or(0),
            assign,
            output,
        })
    }

    fn condition(&mut self, obj: &Map<String, Value>, ptr: &str, top: bool) -> Option<Condition> {
        let mut allowed: Vec<&str> = vec!["Variable", "And", "Or", "Not", "Comment"];
        if top {
            allowed.extend(["Next", "Assign"]);
        }
        let mut op_keys = Vec::new();
        for k in obj.keys() {
            let base = k.strip_suffix("Path").unwrap_or(k);
            if COMPARE_OPS.iter().any(|(n, _)| {
                *n == k || (*n == base && !n.starts_with("Is") && *n != "StringMatches")
            }) {
                op_keys.push(k.as_str());
            } else if !allowed.contains(&k.as_str()) {
                self.err(
                    format!("{ptr}/{}", escape_pointer(k)),
                    format!("Field '{k}' is not supported in a choice rule"),
                );
            }
        }
        for (key, ctor) in [("And", 0), ("Or", 1)] {
            if let Some(v) = obj.get(key) {
                let Some(arr) = v.as_array().filter(|a| !a.is_empty()) else {
                    self.err(
                        format!("{ptr}/{key}"),
                        format!("'{key}' must be a non-empty array"),
                    );
                    return None;
                };
                let mut subs = Vec::new();
                for (i, s) in arr.iter().enumerate() {
                    subs.push(self.condition(
                        s.as_object()?,
                        &format!("{ptr}/{key}/{i}"),
                        false,
                    )?);
                }
                return Some(if ctor == 0 {
                    Condition::And(subs)
                } else {
                    Condition::Or(subs)
                });
            }
        }
        if let Some(v) = obj.get("Not") {
            let inner = self.condition(v.as_object()?, &format!("{ptr}/Not"), false)?;
            return Some(Condition::Not(Box::new(inner)));
        }
        if op_keys.len() != 1 {
            self.err(
                ptr,
                "A choice rule needs exactly one comparison operator (or And/Or/Not)",
            );
            return None;
        }
        let key = op_keys[0];
        let variable = match obj
            .get("Variable")
            .and_then(Value::as_str)
            .map(JsonPath::parse)
        {
            Some(Ok(p)) => p,
            _ => {
                self.err(
                    format!("{ptr}/Variable"),
                    "'Variable' must be a valid JSONPath",
                );
                return None;
            }
        };
        let (op, operand) = self.operand(key, &obj[key], ptr)?;
        Some(Condition::Compare {
            variable,
            op,
            operand,
        })
    }

    fn operand(&mut self, key: &str, v: &Value, ptr: &str) -> Option<(CompareOp, Operand)> {
        let kptr = format!("{ptr}/{key}");
        if let Some((_, op)) = COMPARE_OPS.iter().find(|(n, _)| *n == key) {
            let ok = match op {
                CompareOp::StringEquals
                | CompareOp::StringLessThan
                | CompareOp::StringGreaterThan
                | CompareOp::StringLessThanEquals
                | CompareOp::StringGreaterThanEquals
                | CompareOp::StringMatches => v.is_string(),
                CompareOp::NumericEquals
                | CompareOp::NumericLessThan
                | CompareOp::NumericGreaterThan
                | CompareOp::NumericLessThanEquals
                | CompareOp::NumericGreaterThanEquals => v.is_number(),
                CompareOp::TimestampEquals
                | CompareOp::TimestampLessThan
                | CompareOp::TimestampGreaterThan
                | CompareOp::TimestampLessThanEquals
                | CompareOp::TimestampGreaterThanEquals => {
                    v.as_str().and_then(crate::time::parse_rfc3339).is_some()
                }
                _ => v.is_boolean(),
            };
            if !ok {
                self.err(kptr, format!("The value of '{key}' has the wrong type"));
                return None;
            }
            return Some((*op, Operand::Literal(v.clone())));
        }
        let base = key.strip_suffix("Path")?;
        let (_, op) = COMPARE_OPS.iter().find(|(n, _)| *n == base)?;
        match v.as_str().map(JsonPath::parse) {
            Some(Ok(p)) => Some((*op, Operand::Path(p))),
            _ => {
                self.err(kptr, format!("'{key}' must be a valid JSONPath"));
                None
            }
        }
    }
}
