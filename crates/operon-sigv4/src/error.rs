//! The errors a SigV4 check can end in, shaped like the answers of AWS JSON-protocol services.

use crate::amz_date::format_amz_date;

/// The reason a request's signature was refused.
///
/// [`SigError::code`] and [`SigError::message`] give the `__type` and `message` an AWS
/// JSON 1.1 service (such as SSM) answers, and [`SigError::status`] the HTTP status. The
/// messages never contain the secret access key or the signature the server computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// The request carries no `Authorization` header at all.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The `Authorization` header, or a header it depends on, is malformed or incomplete.
    /// The text says what is wrong, in AWS's wording where AWS has one.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The date in the credential scope is not the date of the request's timestamp.
    #[error(
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{credential_date}' != '{request_date}', from '{request_timestamp}'."
    )]
    CredentialDateMismatch {
        /// The `YYYYMMDD` of the `Credential=` scope.
        credential_date: String,
        /// The `YYYYMMDD` of the request timestamp.
        request_date: String,
        /// The request timestamp, `YYYYMMDD'T'HHMMSS'Z'`.
        request_timestamp: String,
    },
    /// The request was signed more than the allowed skew before `now`.
    #[error(
        "Signature expired: {} is now earlier than {} ({} - 5 min.)",
        format_amz_date(*.signed_at),
        format_amz_date(.now.saturating_sub(crate::MAX_CLOCK_SKEW_SECS)),
        format_amz_date(*.now)
    )]
    SignatureExpired {
        /// Unix seconds of the request timestamp.
        signed_at: i64,
        /// Unix seconds of the server's clock.
        now: i64,
    },
    /// The request was signed more than the allowed skew after `now`.
    #[error(
        "Signature not yet current: {} is still later than {} ({} + 5 min.)",
        format_amz_date(*.signed_at),
        format_amz_date(.now.saturating_add(crate::MAX_CLOCK_SKEW_SECS)),
        format_amz_date(*.now)
    )]
    SignatureNotYetCurrent {
        /// Unix seconds of the request timestamp.
        signed_at: i64,
        /// Unix seconds of the server's clock.
        now: i64,
    },
    /// The signature in the request is not the one computed with the secret access key.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    SignatureMismatch,
    /// A signed `x-amz-content-sha256` header is not the SHA-256 of the body received (or is
    /// `UNSIGNED-PAYLOAD`, which this crate does not accept: the body would be unprotected).
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,
    /// The access key id is not known to the server (decided by the server, see
    /// [`SigError::unknown_access_key`]).
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
}

impl SigError {
    /// The error the server answers when no secret exists for the request's access key id.
    pub fn unknown_access_key() -> SigError {
        SigError::UnrecognizedClient
    }

    /// The AWS JSON protocol error code (the `__type` of the answer).
    pub fn code(&self) -> &'static str {
        match self {
            SigError::MissingAuthenticationToken => "MissingAuthenticationTokenException",
            SigError::IncompleteSignature(_) => "IncompleteSignatureException",
            SigError::CredentialDateMismatch { .. }
            | SigError::SignatureExpired { .. }
            | SigError::SignatureNotYetCurrent { .. }
            | SigError::SignatureMismatch
            | SigError::ContentSha256Mismatch => "InvalidSignatureException",
            SigError::UnrecognizedClient => "UnrecognizedClientException",
        }
    }

    /// The human-readable message (the `message` of the answer).
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// The HTTP status: AWS JSON 1.1 services (SSM among them) answer every one of these
    /// with 400 Bad Request. (The Query-protocol "Common Errors" pages list 403 for
    /// `MissingAuthenticationToken`; the JSON services answer 400.)
    pub fn status(&self) -> u16 {
        400
    }
}
