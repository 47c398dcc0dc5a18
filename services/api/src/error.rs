//! API errors: a stable code, an HTTP status and a message. 4xx are the caller's doing and are logged at
//! debug; 5xx hide their cause from the client and log the whole chain.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use comet_store::{Refusal, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{message}")]
    Client { status: StatusCode, code: &'static str, message: String },
    /// A refusal the client should retry after `after_seconds` (429, 503): answered with `Retry-After`.
    #[error("{message}")]
    Retry { status: StatusCode, code: &'static str, message: String, after_seconds: u64 },
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Client { status, code, message: message.into() }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, code, message)
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, code, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, message) = match &self {
            ApiError::Retry { status, code, message, after_seconds } => {
                tracing::debug!(code, %message, "request refused for now");
                let body = serde_json::json!({ "error": { "code": code, "message": message } });
                return crate::admission::with_retry_after((*status, Json(body)).into_response(), *after_seconds);
            }
            ApiError::Store(error) if error.is_busy() => {
                return crate::admission::overloaded().into_response();
            }
            ApiError::Client { status, code, message } => {
                tracing::debug!(code, %message, "request refused");
                (*status, *code, message.clone())
            }
            ApiError::Store(StoreError::Conflict(what)) => {
                (StatusCode::CONFLICT, "ERR_ALREADY_EXISTS", format!("the {what} already exists"))
            }
            ApiError::Store(StoreError::NotFound(what)) => {
                (StatusCode::NOT_FOUND, "ERR_NOT_FOUND", format!("the {what} does not exist"))
            }
            ApiError::Store(StoreError::Refused(refusal)) => {
                let code = match refusal {
                    Refusal::Blocked => "ERR_BLOCKED",
                    Refusal::NotAMember => "ERR_NOT_A_MEMBER",
                    Refusal::NotAllowed => "ERR_MESSAGE_NOT_ALLOWED",
                };
                (StatusCode::FORBIDDEN, code, refusal.to_string())
            }
            ApiError::Store(_) | ApiError::Internal(_) => {
                tracing::error!(error = %self, "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "ERR_INTERNAL",
                    "internal error; the server log has the cause".to_owned(),
                )
            }
        };
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    }
}
