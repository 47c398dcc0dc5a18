//! What the served OpenAPI document promises and the server used to do otherwise (issue #17 item 7, found by
//! schemathesis; `services/server/tests/openapi.rs` keeps running it): control characters in names, `null`
//! fields, the users' `searchKey` limit, and request bodies that are not sent as JSON.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{App, FULL, Reply};

impl App {
    /// A request whose body is sent with `content_type` as given (`None`: no Content-Type header).
    async fn with_content_type(&self, method: Method, uri: &str, content_type: Option<&str>, body: &str) -> Reply {
        let mut request = Request::builder().method(method).uri(uri).header("apikey", FULL);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        let request = request.body(Body::from(body.to_owned())).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("answer");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
    }
}

#[track_caller]
fn refused(reply: &Reply, status: StatusCode, code: &str, what: &str) {
    assert_eq!((reply.status, reply.code()), (status, code), "{what}: {}", reply.body);
}

pub(super) async fn names_scenario(app: App) {
    let app_key = [("apikey", FULL)];
    for name in ["nul\u{0}inside", "tab\tinside", "line\nbreak", "escape\u{1b}[31m", "del\u{7f}", "c1\u{85}"] {
        let reply = app.call(Method::POST, "/v3/users", &app_key, Some(json!({"uid": "u1", "name": name}))).await;
        refused(&reply, StatusCode::BAD_REQUEST, "ERR_NAME_INVALID", &format!("user name {name:?}"));
        let group = json!({"guid": "g1", "name": name, "type": "public", "owner": "alice"});
        let reply = app.call(Method::POST, "/v3/groups", &app_key, Some(group)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "ERR_NAME_INVALID", &format!("group name {name:?}"));
        let webhook = json!({"id": "w1", "name": name, "webhookURL": "http://127.0.0.1:9/hook"});
        let reply = app.call(Method::POST, "/v3/webhooks", &app_key, Some(webhook)).await;
        refused(&reply, StatusCode::BAD_REQUEST, "ERR_WEBHOOK_NAME_INVALID", &format!("webhook name {name:?}"));
    }
    app.create_user("alice").await;
    let reply = app.call(Method::PUT, "/v3/users/alice", &app_key, Some(json!({"name": "a\u{0}"}))).await;
    refused(&reply, StatusCode::BAD_REQUEST, "ERR_NAME_INVALID", "updated user name with NUL");
    // Blank, or over 100 characters as sent (surrounding spaces count), is refused as before; the rest is trimmed.
    let reply = app.call(Method::POST, "/v3/users", &app_key, Some(json!({"uid": "u2", "name": " \u{3000} "}))).await;
    refused(&reply, StatusCode::BAD_REQUEST, "ERR_NAME_INVALID", "blank name");
    let long = format!(" {}", "a".repeat(100));
    let reply = app.call(Method::POST, "/v3/users", &app_key, Some(json!({"uid": "u2", "name": long}))).await;
    refused(&reply, StatusCode::BAD_REQUEST, "ERR_NAME_INVALID", "101 characters as sent");
    let reply = app.call(Method::POST, "/v3/users", &app_key, Some(json!({"uid": "u2", "name": "  Zoë 🙂 "}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    assert_eq!(reply.body["data"]["name"], "Zoë 🙂");
}

pub(super) async fn nulls_scenario(app: App) {
    let app_key = [("apikey", FULL)];
    let reply =
        app.call(Method::POST, "/v3/users", &app_key, Some(json!({"uid": "alice", "name": "A", "avatar": null}))).await;
    refused(&reply, StatusCode::BAD_REQUEST, "ERR_BODY_INVALID", "avatar: null on create");
    app.create_user("alice").await;
    let group = json!({"guid": "team", "name": "Team", "type": "public", "owner": "alice"});
    let reply = app.call(Method::POST, "/v3/groups", &app_key, Some(group)).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    // `{"metadata": null}` is the same refusal for users and groups (it was ERR_UPDATE_EMPTY and ERR_NOTHING_TO_UPDATE).
    for path in ["/v3/users/alice", "/v3/groups/team"] {
        let reply = app.call(Method::PUT, path, &app_key, Some(json!({"metadata": null}))).await;
        refused(&reply, StatusCode::BAD_REQUEST, "ERR_BODY_INVALID", &format!("metadata: null on {path}"));
        assert!(reply.body["error"]["message"].as_str().is_some_and(|m| m.contains("`metadata` is null")));
    }
    // A null beside a real change is refused too, and changes nothing.
    let reply = app.call(Method::PUT, "/v3/users/alice", &app_key, Some(json!({"name": "B", "role": null}))).await;
    refused(&reply, StatusCode::BAD_REQUEST, "ERR_BODY_INVALID", "role: null on update");
    let reply = app.call(Method::PUT, "/v3/groups/team", &app_key, Some(json!({"name": "B", "password": null}))).await;
    refused(&reply, StatusCode::BAD_REQUEST, "ERR_BODY_INVALID", "password: null on a group update");
    let reply = app.call(Method::GET, "/v3/users/alice", &app_key, None).await;
    assert_eq!(reply.body["data"]["name"], "alice");
    // Clearing stays `unset`'s job.
    let reply = app.call(Method::PUT, "/v3/users/alice", &app_key, Some(json!({"unset": ["metadata"]}))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

pub(super) async fn search_key_scenario(app: App) {
    let app_key = [("apikey", FULL)];
    for list in ["/v3/users", "/v3/groups"] {
        let reply = app.call(Method::GET, &format!("{list}?searchKey={}", "a".repeat(101)), &app_key, None).await;
        refused(&reply, StatusCode::BAD_REQUEST, "ERR_SEARCH_KEY_INVALID", &format!("101 characters on {list}"));
        let reply = app.call(Method::GET, &format!("{list}?searchKey={}", "a".repeat(100)), &app_key, None).await;
        assert_eq!(reply.status, StatusCode::OK, "100 characters on {list}: {}", reply.body);
    }
}

pub(super) async fn content_type_scenario(app: App) {
    let body = r#"{"uid": "alice", "name": "Alice"}"#;
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), Some("application/xml"), None] {
        let reply = app.with_content_type(Method::POST, "/v3/users", content_type, body).await;
        refused(
            &reply,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "ERR_CONTENT_TYPE_UNSUPPORTED",
            &format!("{content_type:?}"),
        );
    }
    let reply = app.call(Method::GET, "/v3/users/alice", &[("apikey", FULL)], None).await;
    refused(&reply, StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND", "no user made by a refused body");
    let reply = app.with_content_type(Method::POST, "/v3/users", Some("Application/JSON; charset=utf-8"), body).await;
    assert_eq!(reply.status, StatusCode::OK, "JSON with a charset: {}", reply.body);
    // A request without a body needs no Content-Type (an optional body, or a missing one reported as such).
    let reply = app.with_content_type(Method::POST, "/v3/users", None, "").await;
    refused(&reply, StatusCode::BAD_REQUEST, "ERR_BODY_MISSING", "no body at all");
}
