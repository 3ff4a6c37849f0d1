//! API errors: an HTTP status and a JSON body `{"error": {"code", "message"}}`
//! (`operon_api::ErrorBody`).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "NotFound", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ValidationError", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Conflict", message)
    }
}

/// A store conflict (a unique name taken) is the caller's 409; any other
/// store failure is a logged 500 (see `ServiceError`'s conversion).
impl From<operon_store::StoreError> for ApiError {
    fn from(err: operon_store::StoreError) -> Self {
        crate::service::ServiceError::from(err).into()
    }
}

/// The HTTP edge of every service: a kind becomes a status.
impl From<crate::service::ServiceError> for ApiError {
    fn from(err: crate::service::ServiceError) -> Self {
        use crate::service::ErrorKind;
        match err.kind {
            ErrorKind::NotFound => ApiError::not_found(err.message),
            ErrorKind::Invalid => ApiError::invalid(err.message),
            ErrorKind::Conflict => ApiError::conflict(err.message),
            ErrorKind::Forbidden => ApiError::forbidden(err.message),
            ErrorKind::Unavailable => {
                Self::new(StatusCode::SERVICE_UNAVAILABLE, "Unavailable", err.message)
            }
            ErrorKind::Internal => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                err.message,
            ),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = operon_api::ErrorBody::new(self.code, self.message);
        (self.status, Json(body)).into_response()
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Largest framework error text turned into a JSON body (theirs are short).
const REJECTION_TEXT_LIMIT: usize = 16 * 1024;

/// Every error leaves as the documented JSON body, including the ones axum
/// raises before a handler runs (415 without `content-type: application/json`,
/// 400/422 for malformed JSON or a missing field, 405, 413), which it writes as
/// `text/plain`. A router-wide `map_response` layer.
pub async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_text = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.starts_with("text/plain"));
    if !(status.is_client_error() || status.is_server_error()) || !is_text {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = match axum::body::to_bytes(body, REJECTION_TEXT_LIMIT).await {
        Ok(bytes) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(_) => String::new(),
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("error").to_string()
    } else {
        text
    };
    let mut json = ApiError::new(status, rejection_code(status), message).into_response();
    // Keep what the framework said beyond the body (`allow` on a 405).
    for (name, value) in parts.headers.iter() {
        if name != axum::http::header::CONTENT_TYPE && name != axum::http::header::CONTENT_LENGTH {
            json.headers_mut().insert(name.clone(), value.clone());
        }
    }
    json
}

fn rejection_code(status: StatusCode) -> &'static str {
    match status {
        StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => "ValidationError",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UnsupportedMediaType",
        StatusCode::METHOD_NOT_ALLOWED => "MethodNotAllowed",
        StatusCode::PAYLOAD_TOO_LARGE => "PayloadTooLarge",
        StatusCode::NOT_FOUND => "NotFound",
        StatusCode::UNAUTHORIZED => "Unauthorized",
        StatusCode::FORBIDDEN => "Forbidden",
        s if s.is_server_error() => "InternalError",
        _ => "BadRequest",
    }
}
