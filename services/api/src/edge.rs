//! What is refused before a handler runs, in the error envelope like everything else: a URI or a header
//! section over the limits, a method the path does not serve, and (as a last resort) any error response a
//! layer below the handlers produced without the envelope.

use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::ApiError;

/// Longest request target (path and query) accepted; longer is 414 `ERR_URI_TOO_LONG`.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest header section (names and values) accepted; larger is 431 `ERR_HEADERS_TOO_LARGE`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Most header fields accepted; more is 431 `ERR_HEADERS_TOO_LARGE`.
pub const MAX_HEADERS: usize = 64;

/// Refuses requests over the URI and header limits. The HTTP server's own parser limits are set above these
/// (comet-server), so a request just over them is answered here, with the envelope.
pub async fn limits(request: Request, next: Next) -> Response {
    let uri_bytes = request.uri().path_and_query().map_or(0, |target| target.as_str().len());
    if uri_bytes > MAX_URI_BYTES {
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            "ERR_URI_TOO_LONG",
            format!("the request target is {uri_bytes} bytes; at most {MAX_URI_BYTES} are accepted"),
        )
        .into_response();
    }
    let headers = request.headers();
    let header_bytes: usize = headers.iter().map(|(name, value)| name.as_str().len() + value.len()).sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return headers_too_large().into_response();
    }
    next.run(request).await
}

fn headers_too_large() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        "ERR_HEADERS_TOO_LARGE",
        format!("send at most {MAX_HEADERS} header fields and {MAX_HEADER_BYTES} bytes of them"),
    )
}

/// The answer to a method the path does not serve; the router adds `Allow`.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "ERR_METHOD_NOT_ALLOWED",
        "this path does not serve that method; the Allow header lists the ones it does",
    )
}

/// The answer when the request body did not arrive within the server's body timeout.
pub fn request_timeout() -> ApiError {
    ApiError::new(
        StatusCode::REQUEST_TIMEOUT,
        "ERR_REQUEST_TIMEOUT",
        "the request did not arrive in time; send it again without pausing",
    )
}

/// The last resort: an error response that is not JSON (from a layer or extractor that bypassed
/// `ApiError`) gets the envelope, with a code for its status and its headers (such as `Allow`) kept.
pub async fn envelope(request: Request, next: Next) -> Response {
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|value| value.to_str().is_ok_and(|value| value.starts_with("application/json")));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (parts, _) = response.into_parts();
    let error = match status {
        StatusCode::METHOD_NOT_ALLOWED => return with_parts(parts, method_not_allowed().await.into_response()),
        StatusCode::REQUEST_TIMEOUT => request_timeout(),
        StatusCode::URI_TOO_LONG => ApiError::new(status, "ERR_URI_TOO_LONG", "the request target is too long"),
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => headers_too_large(),
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::new(
            status,
            "ERR_BODY_TOO_LARGE",
            format!("the request body is larger than {} bytes", crate::MAX_BODY_BYTES),
        ),
        _ if status.is_client_error() => {
            ApiError::new(status, "ERR_REQUEST_INVALID", format!("the request was refused ({status})"))
        }
        _ => ApiError::Internal(format!("a layer answered {status} without a body")),
    };
    with_parts(parts, error.into_response())
}

/// `response` with the status and headers of `parts` kept (the envelope's content type wins).
fn with_parts(mut parts: axum::http::response::Parts, response: Response) -> Response {
    let (_, body) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    Response::from_parts(parts, body)
}
