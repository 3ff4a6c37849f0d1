//! The error every feature service speaks: a kind (what a caller can do about
//! it), a stable code naming the rule that refused, and a message for people.
//!
//! Services never return HTTP types. The HTTP edge maps a kind to a status
//! (`impl From<ServiceError> for ApiError` in `error.rs`); other callers (the
//! workflow runner, event delivery) map it to their own terms, for example a
//! delivery retries `Unavailable`/`Internal` and dead-letters the rest.

use std::fmt;

/// What kind of failure, independent of any transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The thing named does not exist.
    NotFound,
    /// The input breaks a rule; the same input will fail again.
    Invalid,
    /// The input conflicts with the current state (already exists, already finished).
    Conflict,
    /// The caller may not do this.
    Forbidden,
    /// A dependency is not available right now; trying again may succeed.
    Unavailable,
    /// A fault of the server (storage, a bug); details are in the server log.
    Internal,
}

impl ErrorKind {
    /// Whether the same call may succeed later without a change of input.
    pub fn is_transient(self) -> bool {
        matches!(self, ErrorKind::Unavailable | ErrorKind::Internal)
    }
}

/// A service's refusal or failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub kind: ErrorKind,
    /// A stable name of the rule that refused (`UnknownNode`, `NoMatchingNodes`, ...).
    pub code: &'static str,
    pub message: String,
}

impl ServiceError {
    pub fn new(kind: ErrorKind, code: &'static str, message: impl Into<String>) -> Self {
        ServiceError {
            kind,
            code,
            message: message.into(),
        }
    }

    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Conflict, code, message)
    }

    /// A fault of the server; `message` goes to the log, the caller gets a
    /// generic one.
    pub fn internal(message: impl Into<String>) -> Self {
        tracing::error!(error = %message.into(), "internal error");
        Self::new(
            ErrorKind::Internal,
            "InternalError",
            "internal error; see the server log",
        )
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Forbidden, "Forbidden", message)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Storage failures: a store conflict is the caller's (a unique name taken),
/// anything else is ours and is logged here, so the message can stay generic.
impl From<operon_store::StoreError> for ServiceError {
    fn from(err: operon_store::StoreError) -> Self {
        match err {
            operon_store::StoreError::Conflict(message) => {
                ServiceError::conflict("Conflict", message)
            }
            other => {
                tracing::error!(error = %other, "store error");
                ServiceError::new(
                    ErrorKind::Internal,
                    "InternalError",
                    "internal storage error; see the server log",
                )
            }
        }
    }
}

pub type ServiceResult<T> = Result<T, ServiceError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_conflicts_stay_conflicts_and_other_store_errors_are_internal() {
        let conflict: ServiceError = operon_store::StoreError::Conflict("taken".into()).into();
        assert_eq!(conflict.kind, ErrorKind::Conflict);
        assert_eq!(conflict.message, "taken");
        let corrupt: ServiceError = operon_store::StoreError::Corrupt {
            context: "reading",
            detail: "secret detail".into(),
        }
        .into();
        assert_eq!(corrupt.kind, ErrorKind::Internal);
        assert!(!corrupt.message.contains("secret detail"));
        assert!(corrupt.kind.is_transient());
        assert!(!ErrorKind::Invalid.is_transient());
    }
}
