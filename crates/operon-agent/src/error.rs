//! The agent's errors: each says what failed and where (file, server URL, the
//! server's own message).

use std::io;
use std::path::PathBuf;

use crate::journal::JournalError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The server answered enrollment with an error (used-up, expired or
    /// unknown token...). Not retried.
    #[error("enrollment refused by {server}: {message}")]
    EnrollmentRefused { server: String, message: String },
    /// The server refused the stored credential (revoked or unknown node). Not
    /// retried.
    #[error(
        "connection refused by {server}: {message} (the node credential in {path} was rejected; re-enroll with a new token)"
    )]
    CredentialRejected {
        server: String,
        message: String,
        path: PathBuf,
    },
    #[error("no node credential in {path} and no enrollment token given (use --enroll-token)")]
    NotEnrolled { path: PathBuf },
    /// The server's certificate is not the pinned one. Not retried: the
    /// operator has to decide whether the new certificate is legitimate.
    #[error(
        "refusing {server}: {mismatch}. If the server's certificate was replaced on purpose, restart the agent with --server-fingerprint {presented}; otherwise something is impersonating the server",
        presented = mismatch.presented
    )]
    ServerCertificateMismatch {
        server: String,
        mismatch: crate::tls::PinMismatch,
    },
    #[error("TLS setup for {server} failed: {message}")]
    Tls { server: String, message: String },
    #[error("--server-fingerprint: {0}")]
    BadFingerprint(String),
    #[error("the pinned server fingerprint in {path} is not valid: {message}")]
    BadCredentialPin { path: PathBuf, message: String },
    #[error("cannot reach {server}: {message}")]
    Unreachable { server: String, message: String },
    #[error("invalid server URL '{url}': {message}")]
    BadServerUrl { url: String, message: String },
    #[error("unexpected answer from {server}: {message}")]
    Protocol { server: String, message: String },
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("credential file {path} is not valid: {source}")]
    BadCredentialFile {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("another agent is already running with state directory {path}")]
    StateDirLocked { path: PathBuf },
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// Plain HTTP where a secret would be exposed (see [`crate::transport`]).
    #[error(transparent)]
    Transport(#[from] crate::transport::Refusal),
}

impl AgentError {
    /// A refusal of enrollment, without repeating "enrollment refused" when
    /// the server's message already says it.
    pub fn enrollment_refused(server: &str, message: String) -> Self {
        let message = match message.strip_prefix("enrollment refused: ") {
            Some(rest) => rest.to_owned(),
            None => message,
        };
        AgentError::EnrollmentRefused {
            server: server.to_owned(),
            message,
        }
    }

    /// Whether retrying later may help (the server may be down or restarting),
    /// as opposed to a refusal that will not change by itself.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            AgentError::Unreachable { .. } | AgentError::Protocol { .. }
        )
    }
}

/// Extract the message of the server's `{"error": {"code", "message"}}` body,
/// falling back to the raw text (shortened) or the status line.
pub fn server_error_message(status: u16, body: &[u8]) -> String {
    #[derive(serde::Deserialize)]
    struct Body {
        error: Inner,
    }
    #[derive(serde::Deserialize)]
    struct Inner {
        message: String,
    }
    if let Ok(parsed) = serde_json::from_slice::<Body>(body) {
        return parsed.error.message;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        format!("HTTP {status}")
    } else {
        let short: String = text.chars().take(300).collect();
        format!("HTTP {status}: {short}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_message_prefers_the_json_message() {
        let body = br#"{"error":{"code":"token_expired","message":"enrollment token expired"}}"#;
        assert_eq!(server_error_message(403, body), "enrollment token expired");
        assert_eq!(server_error_message(502, b""), "HTTP 502");
        assert_eq!(server_error_message(500, b"oops"), "HTTP 500: oops");
    }
}
