//! History events, named as Step Functions names them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;

/// One history event. `kind` is the Step Functions event type
/// (`ExecutionStarted`, `PassStateEntered`, `TaskScheduled`, `MapIterationStarted`, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub id: u64,
    #[serde(rename = "type")]
    pub kind: Cow<'static, str>,
    pub timestamp_millis: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(rename = "assignedVariables", skip_serializing_if = "Option::is_none")]
    pub assigned_variables: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u64>,
    /// EvaluationFailed: the state whose evaluation failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// EvaluationFailed: the field (e.g. `Output/result`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub length: Option<u64>,
}

impl HistoryEvent {
    pub fn new(id: u64, kind: impl Into<Cow<'static, str>>, timestamp_millis: i64) -> HistoryEvent {
        HistoryEvent {
            id,
            kind: kind.into(),
            timestamp_millis,
            name: None,
            input: None,
            output: None,
            assigned_variables: None,
            error: None,
            cause: None,
            resource: None,
            index: None,
            state: None,
            location: None,
            length: None,
        }
    }
}
