//! `GET /v3/openapi.json`: the API's OpenAPI 3.1 document, written by hand in `services/api/openapi.json` and
//! kept in step with the router and the error codes by `tests/openapi.rs`.

use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;

/// The OpenAPI document, embedded at build time.
pub const OPENAPI_JSON: &str = include_str!("../openapi.json");

/// Served without authentication.
pub async fn document() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}
