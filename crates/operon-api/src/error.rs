//! The error body of every 4xx and 5xx answer: `{"error": {"code", "message"}}`.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Every error answer (4xx and 5xx), also the framework's own refusals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// Machine-readable kind: `ValidationError`, `Unauthorized`, `Forbidden`,
    /// `NotFound`, `Conflict`, ...
    pub code: String,
    /// What was wrong, for people.
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.into(),
                message: message.into(),
            },
        }
    }
}
