//! What the API refuses before a handler runs, through the router: identity headers that are malformed or
//! repeated (issue #17: an unreadable `onBehalfOf` used to run the request with the app's rights), and the
//! requests axum and hyper used to refuse without the error envelope (a path that is not UTF-8, a method the
//! path does not serve, a URI or a header section over the limits).

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::{App, FULL, Reply};

/// Header names with their raw values, appended in order.
type RawHeaders<'a> = Vec<(&'a str, &'a [u8])>;

impl App {
    /// A request with header values given as bytes (which need not be UTF-8), each appended in order.
    async fn with_header_bytes(&self, method: Method, uri: &str, headers: &[(&str, &[u8])]) -> (Reply, Option<String>) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, HeaderValue::from_bytes(value).expect("header value bytes"));
        }
        let response =
            self.router.clone().oneshot(request.body(Body::empty()).expect("request")).await.expect("answer");
        let status = response.status();
        let allow = response.headers().get("allow").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let content_type =
            response.headers().get("content-type").and_then(|value| value.to_str().ok()).map(str::to_owned);
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        if status.is_client_error() || status.is_server_error() {
            assert_eq!(content_type.as_deref(), Some("application/json"), "{status} {uri}: {bytes:?}");
        }
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        (Reply { status, body }, allow)
    }
}

pub(super) async fn identity_headers_scenario(app: App) {
    app.create_user("alice").await;
    app.create_user("bob").await;
    let token_reply = app.call(Method::POST, "/v3/users/bob/auth_tokens", &[("apikey", FULL)], None).await;
    let token = token_reply.body["data"]["authToken"].as_str().expect("a token").to_owned();
    let path = "/v3/users/bob/auth_tokens";

    // The baseline: the app may list bob's tokens, alice may not, bob himself may.
    let (app_reply, _) = app.with_header_bytes(Method::GET, path, &[("apikey", FULL.as_bytes())]).await;
    assert_eq!(app_reply.status, StatusCode::OK, "{}", app_reply.body);
    let (alice, _) =
        app.with_header_bytes(Method::GET, path, &[("apikey", FULL.as_bytes()), ("onBehalfOf", b"alice")]).await;
    assert_eq!(alice.status, StatusCode::FORBIDDEN, "{}", alice.body);
    let (bob, _) = app.with_header_bytes(Method::GET, path, &[("authtoken", token.as_bytes())]).await;
    assert_eq!(bob.status, StatusCode::OK, "{}", bob.body);

    let key = FULL.as_bytes();
    let cases: Vec<(&str, RawHeaders)> = vec![
        ("onBehalfOf not UTF-8", vec![("apikey", key), ("onBehalfOf", b"al\xffice")]),
        ("onBehalfOf empty", vec![("apikey", key), ("onBehalfOf", b"")]),
        ("onBehalfOf blank", vec![("apikey", key), ("onBehalfOf", b"   ")]),
        ("onBehalfOf twice", vec![("apikey", key), ("onBehalfOf", b"bob"), ("onBehalfOf", b"alice")]),
        ("onBehalfOf twice, same value", vec![("apikey", key), ("onBehalfOf", b"bob"), ("onBehalfOf", b"bob")]),
        ("apikey twice", vec![("apikey", key), ("apikey", key)]),
        ("apikey not UTF-8", vec![("apikey", b"full-key-\xff")]),
        ("apikey empty", vec![("apikey", b""), ("authtoken", token.as_bytes())]),
        ("authtoken twice", vec![("authtoken", token.as_bytes()), ("authtoken", token.as_bytes())]),
        ("authtoken not UTF-8", vec![("authtoken", b"\xfe\xff")]),
        ("authtoken empty", vec![("authtoken", b"")]),
        ("onBehalfOf beside a token, not UTF-8", vec![("authtoken", token.as_bytes()), ("onBehalfOf", b"b\x80b")]),
    ];
    for (case, headers) in cases {
        let (reply, _) = app.with_header_bytes(Method::GET, path, &headers).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "ERR_HEADER_INVALID"),
            "{case}: {}",
            reply.body
        );
    }
}

pub(super) async fn error_envelope_scenario(app: App) {
    app.create_user("alice").await;
    let key = FULL.as_bytes();

    // A path segment that is not UTF-8 once percent-decoded.
    let (reply, _) = app.with_header_bytes(Method::GET, "/v3/users/al%FFice", &[("apikey", key)]).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "ERR_PATH_INVALID"), "{}", reply.body);
    let (reply, _) = app.with_header_bytes(Method::GET, "/v3/messages/%C3%28/thread", &[("apikey", key)]).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, "ERR_PATH_INVALID"), "{}", reply.body);

    // A method the path does not serve: 405 with `Allow` and the envelope, with or without credentials.
    for headers in [vec![("apikey", key)], vec![]] {
        let (reply, allow) = app.with_header_bytes(Method::PATCH, "/v3/users/alice", &headers).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::METHOD_NOT_ALLOWED, "ERR_METHOD_NOT_ALLOWED"));
        let mut allowed: Vec<String> =
            allow.expect("an Allow header").split(',').map(|m| m.trim().to_owned()).collect();
        allowed.sort();
        assert_eq!(allowed, ["DELETE", "GET", "HEAD", "PUT"], "{}", reply.body);
    }
    let (reply, allow) = app.with_header_bytes(Method::DELETE, "/v3/messages", &[("apikey", key)]).await;
    assert_eq!(
        (reply.status, reply.code(), allow.as_deref()),
        (StatusCode::METHOD_NOT_ALLOWED, "ERR_METHOD_NOT_ALLOWED", Some("POST"))
    );

    // A URI over the limit: 414; a header section over the limits (bytes or count): 431.
    let long = format!("/v3/users?searchKey={}", "a".repeat(comet_api::MAX_URI_BYTES));
    let (reply, _) = app.with_header_bytes(Method::GET, &long, &[("apikey", key)]).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::URI_TOO_LONG, "ERR_URI_TOO_LONG"), "{}", reply.body);
    let big = vec![b'x'; comet_api::MAX_HEADER_BYTES];
    let (reply, _) = app.with_header_bytes(Method::GET, "/v3/users", &[("apikey", key), ("x-big", &big)]).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "ERR_HEADERS_TOO_LARGE"));
    let names: Vec<String> = (0..=comet_api::MAX_HEADERS).map(|n| format!("x-h{n}")).collect();
    let mut many: Vec<(&str, &[u8])> = names.iter().map(|name| (name.as_str(), b"1".as_slice())).collect();
    many.push(("apikey", key));
    let (reply, _) = app.with_header_bytes(Method::GET, "/v3/users", &many).await;
    assert_eq!((reply.status, reply.code()), (StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE, "ERR_HEADERS_TOO_LARGE"));

    // Just under the limits still works.
    let fits = format!("/v3/users?searchKey={}", "a".repeat(50));
    let (reply, _) = app.with_header_bytes(Method::GET, &fits, &[("apikey", key), ("x-big", &big[..1024])]).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}
