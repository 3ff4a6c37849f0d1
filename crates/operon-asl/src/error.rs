//! Error names as Step Functions reports them, and the failure value carried
//! through the engine.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Well-known error names.
pub mod names {
    pub const ALL: &str = "States.ALL";
    pub const RUNTIME: &str = "States.Runtime";
    pub const TASK_FAILED: &str = "States.TaskFailed";
    pub const TIMEOUT: &str = "States.Timeout";
    pub const HEARTBEAT_TIMEOUT: &str = "States.HeartbeatTimeout";
    pub const NO_CHOICE_MATCHED: &str = "States.NoChoiceMatched";
    pub const INTRINSIC_FAILURE: &str = "States.IntrinsicFailure";
    pub const PARAMETER_PATH_FAILURE: &str = "States.ParameterPathFailure";
    pub const RESULT_PATH_MATCH_FAILURE: &str = "States.ResultPathMatchFailure";
    pub const BRANCH_FAILED: &str = "States.BranchFailed";
    pub const EXCEED_TOLERATED_FAILURE_THRESHOLD: &str = "States.ExceedToleratedFailureThreshold";
    pub const QUERY_EVALUATION_ERROR: &str = "States.QueryEvaluationError";
    pub const ITEM_READER_FAILED: &str = "States.ItemReaderFailed";
    pub const RESULT_WRITER_FAILED: &str = "States.ResultWriterFailed";
    pub const PERMISSIONS: &str = "States.Permissions";
    pub const DATA_LIMIT_EXCEEDED: &str = "States.DataLimitExceeded";
}

/// An error raised in a state: name and cause, each possibly absent (AWS
/// distinguishes an absent cause from an empty one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    pub error: Option<String>,
    pub cause: Option<String>,
}

impl Failure {
    pub fn new(error: &str, cause: impl Into<String>) -> Failure {
        Failure {
            error: Some(error.to_string()),
            cause: Some(cause.into()),
        }
    }

    /// The name used for Retry/Catch matching (absent names match nothing but `States.ALL`).
    pub fn name(&self) -> &str {
        self.error.as_deref().unwrap_or("")
    }

    /// The `{"Error","Cause"}` object Catch passes on.
    pub fn to_error_output(&self) -> serde_json::Value {
        let mut m = serde_json::Map::new();
        if let Some(e) = &self.error {
            m.insert("Error".into(), e.clone().into());
        }
        if let Some(c) = &self.cause {
            m.insert("Cause".into(), c.clone().into());
        }
        serde_json::Value::Object(m)
    }

    /// True for errors that no Retry or Catch may handle, even by name:
    /// `States.Runtime` ("isn't retriable, and will always cause the
    /// execution to fail").
    pub fn is_uncatchable(&self) -> bool {
        self.error.as_deref() == Some(names::RUNTIME)
    }

    /// True for the terminal errors, `States.Runtime` and
    /// `States.DataLimitExceeded`: `States.ALL` does not match them (only a
    /// Retry or Catch that names `States.DataLimitExceeded` handles it), and
    /// they fail a Map regardless of its tolerated failures.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self.error.as_deref(),
            Some(names::RUNTIME) | Some(names::DATA_LIMIT_EXCEEDED)
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}",
            self.error.as_deref().unwrap_or("-"),
            self.cause.as_deref().unwrap_or("-")
        )
    }
}

/// A definition that Step Functions would reject, with the JSON pointer of the
/// offending field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationError {
    pub pointer: String,
    pub message: String,
}

impl ValidationError {
    pub fn new(pointer: impl Into<String>, message: impl Into<String>) -> ValidationError {
        ValidationError {
            pointer: pointer.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at {}",
            self.message,
            if self.pointer.is_empty() {
                "/"
            } else {
                &self.pointer
            }
        )
    }
}

impl std::error::Error for ValidationError {}

/// All problems found in a definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidationErrors(pub Vec<ValidationError>);

impl fmt::Display for ValidationErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|e| e.to_string()).collect();
        write!(f, "Invalid State Machine Definition: {}", parts.join("; "))
    }
}

impl std::error::Error for ValidationErrors {}
