//! Request bodies and query parameters parsed with stable error codes, and the `{"data": …}` envelope.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use crate::ApiError;

/// Largest page a list request may ask for.
pub const MAX_PER_PAGE: u32 = 100;
pub const DEFAULT_PER_PAGE: u32 = 50;

/// Longest `searchKey`, in characters.
pub const MAX_SEARCH_KEY_CHARS: usize = 100;

/// Parses a JSON body; malformed JSON and wrong types are 400 with the field named. Every body is a JSON
/// object: serde would also read a struct from an array of its fields in order (`["alice","Alice"]` as a user),
/// so anything else is refused (400 `ERR_BODY_INVALID`). A field whose value is `null` is refused (400
/// `ERR_BODY_INVALID`) in every body alike: null is neither "leave as it is" nor "clear" (an update clears with
/// `unset`), so it is not guessed at.
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.is_empty() {
        return Err(ApiError::bad_request("ERR_BODY_MISSING", "the request needs a JSON body"));
    }
    let parsed = serde_json::from_slice(bytes).map_err(|error| {
        let code = if error.is_syntax() || error.is_eof() { "ERR_BODY_MALFORMED" } else { "ERR_BODY_INVALID" };
        ApiError::bad_request(code, format!("request body: {error}"))
    })?;
    if bytes.iter().find(|byte| !byte.is_ascii_whitespace()) != Some(&b'{') {
        return Err(ApiError::bad_request("ERR_BODY_INVALID", "request body: expected a JSON object"));
    }
    if let Some(field) = null_field(bytes) {
        return Err(ApiError::bad_request(
            "ERR_BODY_INVALID",
            format!("request body: `{field}` is null; leave the field out (an update clears a field with `unset`)"),
        ));
    }
    Ok(parsed)
}

/// The first top-level field of a JSON object whose value is `null` (the body parsed already).
fn null_field(bytes: &[u8]) -> Option<String> {
    let fields: std::collections::BTreeMap<String, Option<serde::de::IgnoredAny>> =
        serde_json::from_slice(bytes).ok()?;
    fields.into_iter().find(|(_, value)| value.is_none()).map(|(field, _)| field)
}

/// `searchKey` trimmed (empty is no search); over 100 characters is 400 `ERR_SEARCH_KEY_INVALID`, on every list.
pub fn search_key(raw: Option<&str>) -> Result<Option<&str>, ApiError> {
    let search = raw.map(str::trim).filter(|key| !key.is_empty());
    if search.is_some_and(|key| key.chars().count() > MAX_SEARCH_KEY_CHARS) {
        return Err(ApiError::bad_request(
            "ERR_SEARCH_KEY_INVALID",
            format!("searchKey may be at most {MAX_SEARCH_KEY_CHARS} characters"),
        ));
    }
    Ok(search)
}

/// `perPage` checked against the limit.
pub fn per_page(requested: Option<u32>) -> Result<u32, ApiError> {
    match requested {
        None => Ok(DEFAULT_PER_PAGE),
        Some(0) => Err(ApiError::bad_request("ERR_PER_PAGE_INVALID", "perPage must be at least 1")),
        Some(n) if n > MAX_PER_PAGE => {
            Err(ApiError::bad_request("ERR_PER_PAGE_INVALID", format!("perPage may be at most {MAX_PER_PAGE}")))
        }
        Some(n) => Ok(n),
    }
}

/// `{"data": …}`.
pub fn data(value: serde_json::Value) -> Response {
    Json(serde_json::json!({ "data": value })).into_response()
}

/// A page of items listed by a key (uid, guid): `{"data": […], "meta": {"pagination": {"perPage", "next"}}}`,
/// where `next` is the last item's key when the page is full (pass it back as `after`) and null otherwise.
pub fn keyed_page<T>(
    items: &[T],
    limit: u32,
    view: impl Fn(&T) -> serde_json::Value,
    key: impl Fn(&T) -> String,
) -> Response {
    let next = if items.len() == limit as usize { items.last().map(key) } else { None };
    page(items.iter().map(view).collect(), serde_json::json!({ "pagination": { "perPage": limit, "next": next } }))
}

/// `{"data": […], "meta": {…}}`.
pub fn page(items: Vec<serde_json::Value>, meta: serde_json::Value) -> Response {
    Json(serde_json::json!({ "data": items, "meta": meta })).into_response()
}

/// The raw request body, with the size cap's rejection turned into a stable error code.
#[derive(Debug)]
pub struct RawBody(pub bytes::Bytes);

impl<S: Send + Sync> axum::extract::FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(request: axum::extract::Request, state: &S) -> Result<RawBody, ApiError> {
        let too_large = || {
            ApiError::new(
                axum::http::StatusCode::PAYLOAD_TOO_LARGE,
                "ERR_BODY_TOO_LARGE",
                format!("the request body is larger than {} bytes", crate::MAX_BODY_BYTES),
            )
        };
        // A body announced larger than the cap is refused before any of it is read.
        let announced = request.headers().get(axum::http::header::CONTENT_LENGTH);
        if announced
            .and_then(|value| value.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|length| length > crate::MAX_BODY_BYTES as u64)
        {
            return Err(too_large());
        }
        let content_type = request.headers().get(axum::http::header::CONTENT_TYPE).cloned();
        match bytes::Bytes::from_request(request, state).await {
            Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) || is_json(content_type.as_ref()) => {
                Ok(RawBody(bytes))
            }
            Ok(_) => Err(ApiError::new(
                axum::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "ERR_CONTENT_TYPE_UNSUPPORTED",
                "a request body must be JSON, sent with `Content-Type: application/json`",
            )),
            Err(rejection) if rejection.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE => Err(too_large()),
            Err(rejection) if timed_out(&rejection) => Err(crate::edge::request_timeout()),
            Err(rejection) => Err(ApiError::bad_request("ERR_BODY_UNREADABLE", rejection.body_text())),
        }
    }
}

/// Whether the `Content-Type` names JSON: `application/json` or `application/<something>+json`, parameters
/// (`; charset=utf-8`) allowed, case-insensitive.
fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(essence) = content_type.and_then(|value| value.to_str().ok()) else {
        return false;
    };
    let essence = essence.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether reading the body failed because the server's body deadline passed (comet-server's
/// `COMET_HTTP_BODY_TIMEOUT`).
fn timed_out(rejection: &axum::extract::rejection::BytesRejection) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(rejection);
    while let Some(error) = cause {
        if error.is::<tower_http::timeout::TimeoutError>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Query parameters, with axum's plain-text rejection (unknown parameter, wrong type) turned into a stable
/// error code like every other bad input.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> axum::extract::FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Query<T>, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(ApiError::bad_request("ERR_QUERY_INVALID", rejection.body_text())),
        }
    }
}

/// Path parameters, with axum's plain-text rejection (a segment that is not UTF-8 once percent-decoded)
/// turned into a stable error code.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> axum::extract::FromRequestParts<S> for Path<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &S) -> Result<Path<T>, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(ApiError::bad_request("ERR_PATH_INVALID", rejection.body_text())),
        }
    }
}
