//! A refused WebSocket upgrade: an HTTP error in the REST API's envelope (`{"error": {"code", "message"}}`,
//! docs/protocol.md), so a client reads a refused handshake like a refused request.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why the handshake was refused: a stable code, its HTTP status and a message for the client.
#[derive(Debug)]
pub(crate) struct Refusal {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Refusal {
        Refusal { status, code, message: message.into() }
    }
}

impl IntoResponse for Refusal {
    /// The caller's doing, so logged at debug like the API's 4xx; the 503s name no internal cause either.
    fn into_response(self) -> Response {
        let Refusal { status, code, message } = self;
        tracing::debug!(code, %message, "request refused");
        let body = serde_json::json!({ "error": { "code": code, "message": message } });
        (status, Json(body)).into_response()
    }
}
