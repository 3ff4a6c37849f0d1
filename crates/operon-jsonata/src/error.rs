//! The error type shared by the parser, the evaluator and host functions.

use std::fmt;

/// A JSONata error: the jsonata-js error code (`S0201`, `T1006`, `D3030`, ...), the rendered
/// message, and the character offset in the source expression where it was detected.
///
/// Codes starting with `S` are syntax errors (from [`crate::Expression::parse`]), `T` type
/// errors, `D` dynamic errors, and `U` resource limits (see [`crate::Limits`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    /// The JSONata error code, e.g. `"T2001"`.
    pub code: String,
    /// Human readable message, as jsonata-js renders it.
    pub message: String,
    /// Character (not byte) offset into the expression source, when known.
    pub position: Option<usize>,
}

impl Error {
    /// An error with a code and message, without position.
    pub fn new(code: &str, message: impl Into<String>) -> Error {
        Error {
            code: code.to_string(),
            message: message.into(),
            position: None,
        }
    }

    /// An error with a code, message and character position.
    pub fn at(code: &str, position: usize, message: impl Into<String>) -> Error {
        Error {
            code: code.to_string(),
            message: message.into(),
            position: Some(position),
        }
    }

    /// Sets the position unless one is already recorded.
    pub(crate) fn or_position(mut self, position: usize) -> Error {
        if self.position.is_none() {
            self.position = Some(position);
        }
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for Error {}

pub(crate) type Result<T> = std::result::Result<T, Error>;
