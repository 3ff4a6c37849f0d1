//! Why a policy document was refused.

/// A policy document that could not be parsed or is not a valid policy.
///
/// `Invalid` names where the problem is with a path in the document's own
/// terms (`Statement[2].Effect`, `Statement[0].Condition.StringLike["operon:NodeTag/env"]`),
/// so the author can find it without counting braces.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The text is not JSON at all.
    #[error("policy is not valid JSON: {0}")]
    Json(String),
    /// The JSON is not a valid policy; `path` says where.
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl PolicyError {
    pub(crate) fn at(path: &str, message: impl Into<String>) -> PolicyError {
        PolicyError::Invalid {
            path: path.to_owned(),
            message: message.into(),
        }
    }
}
