//! `/v3/webhooks` through the router: the management API's fields, limits and refusals (stable codes, nothing
//! written), on SQLite and MariaDB. Delivery itself is tested in services/webhooks/tests.

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use crate::{App, FULL, mongo_app, mysql_app, sqlite_app};

const KEY: [(&str, &str); 1] = [("apikey", FULL)];

fn hook(id: &str) -> Value {
    json!({ "id": id, "name": format!("{id} hook"), "webhookURL": "http://127.0.0.1:9/hook", "triggers": ["message_sent"] })
}

async fn listed(app: &App) -> usize {
    let reply = app.call(Method::GET, "/v3/webhooks", &KEY, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    reply.body["data"].as_array().map_or(0, Vec::len)
}

async fn management_scenario(app: App) {
    let created = app.call(Method::POST, "/v3/webhooks", &KEY, Some(hook("orders"))).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let secret = created.body["data"]["signingSecret"].as_str().expect("the secret, once").to_owned();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(created.body["data"]["webhookURL"], "http://127.0.0.1:9/hook");
    assert_eq!(created.body["data"]["enabled"], true);

    let got = app.call(Method::GET, "/v3/webhooks/orders", &KEY, None).await;
    assert_eq!(got.status, StatusCode::OK);
    let text = got.body.to_string();
    assert!(!text.contains(&secret) && got.body["data"].get("signingSecret").is_none(), "never shown again");

    let with_auth = json!({ "useBasicAuth": true, "username": "u", "password": "pass-word-secret" });
    let updated = app.call(Method::PUT, "/v3/webhooks/orders", &KEY, Some(with_auth)).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["data"]["useBasicAuth"], true);
    assert!(!updated.body.to_string().contains("pass-word-secret"), "the password is never shown");

    let added = app
        .call(
            Method::POST,
            "/v3/webhooks/orders/triggers",
            &KEY,
            Some(json!({ "triggerIds": ["group_created", "message_sent"] })),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    let names: Vec<&str> =
        added.body["data"].as_array().expect("list").iter().filter_map(|item| item["trigger"].as_str()).collect();
    assert_eq!(names, ["group_created", "message_sent"]);
    let removed = app
        .call(Method::DELETE, "/v3/webhooks/orders/triggers", &KEY, Some(json!({ "triggerIds": ["message_sent"] })))
        .await;
    assert_eq!(removed.body["data"].as_array().map(Vec::len), Some(1));

    let rotated = app.call(Method::POST, "/v3/webhooks/orders/secret/rotate", &KEY, None).await;
    assert_eq!(rotated.status, StatusCode::OK, "{}", rotated.body);
    assert_ne!(rotated.body["data"]["signingSecret"].as_str(), Some(secret.as_str()));

    let log = app.call(Method::GET, "/v3/webhooks/orders/deliveries", &KEY, None).await;
    assert_eq!((log.status, log.body["data"].as_array().map(Vec::len)), (StatusCode::OK, Some(0)));
    let missing = app.call(Method::POST, "/v3/webhooks/orders/deliveries/nope/replay", &KEY, None).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "ERR_DELIVERY_NOT_FOUND"));

    let deleted = app.call(Method::DELETE, "/v3/webhooks/orders", &KEY, None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let gone = app.call(Method::GET, "/v3/webhooks/orders", &KEY, None).await;
    assert_eq!((gone.status, gone.code()), (StatusCode::NOT_FOUND, "ERR_WEBHOOK_NOT_FOUND"));
}

async fn bad_input_scenario(app: App) {
    let refused = |body: Value, code: &'static str| (body, code);
    let long_url = format!("https://example.com/{}", "a".repeat(250));
    for (body, code) in [
        refused(
            json!({ "id": "bad id!", "name": "n", "webhookURL": "https://example.com/" }),
            "ERR_WEBHOOK_ID_INVALID",
        ),
        refused(
            json!({ "id": "a".repeat(51), "name": "n", "webhookURL": "https://example.com/" }),
            "ERR_WEBHOOK_ID_INVALID",
        ),
        refused(json!({ "id": "x", "name": "", "webhookURL": "https://example.com/" }), "ERR_WEBHOOK_NAME_INVALID"),
        refused(json!({ "id": "x", "name": "n", "webhookURL": "not a url" }), "ERR_WEBHOOK_URL_INVALID"),
        refused(json!({ "id": "x", "name": "n", "webhookURL": long_url }), "ERR_WEBHOOK_URL_INVALID"),
        refused(json!({ "id": "x", "name": "n", "webhookURL": "http://example.com/" }), "ERR_WEBHOOK_URL_INVALID"),
        refused(json!({ "id": "x", "name": "n", "webhookURL": "ftp://example.com/" }), "ERR_WEBHOOK_URL_INVALID"),
        refused(json!({ "id": "x", "name": "n", "webhookURL": "https://u:p@example.com/" }), "ERR_WEBHOOK_URL_INVALID"),
        refused(json!({ "id": "x", "name": "n", "webhookURL": "https://127.0.0.2/" }), "ERR_WEBHOOK_URL_FORBIDDEN"),
        refused(json!({ "id": "x", "name": "n", "webhookURL": "https://10.0.0.1/" }), "ERR_WEBHOOK_URL_FORBIDDEN"),
        refused(
            json!({ "id": "x", "name": "n", "webhookURL": "https://169.254.169.254/latest/meta-data" }),
            "ERR_WEBHOOK_URL_FORBIDDEN",
        ),
        refused(json!({ "id": "x", "name": "n", "webhookURL": "https://[::1]/" }), "ERR_WEBHOOK_URL_FORBIDDEN"),
        refused(
            json!({ "id": "x", "name": "n", "webhookURL": "https://example.com/", "triggers": ["before_message"] }),
            "ERR_TRIGGER_INVALID",
        ),
        refused(
            json!({ "id": "x", "name": "n", "webhookURL": "https://example.com/", "useBasicAuth": true }),
            "ERR_WEBHOOK_BASIC_AUTH_INVALID",
        ),
        refused(
            json!({ "id": "x", "name": "n", "webhookURL": "https://example.com/", "extra": 1 }),
            "ERR_BODY_INVALID",
        ),
    ] {
        let reply = app.call(Method::POST, "/v3/webhooks", &KEY, Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{body}: {}", reply.body);
    }
    assert_eq!(listed(&app).await, 0, "nothing written by a refused request");

    // Only the app: not a user acting through the key, not the auth-only key.
    app.create_user("alice").await;
    let as_user = app.call(Method::GET, "/v3/webhooks", &[("apikey", FULL), ("onBehalfOf", "alice")], None).await;
    assert_eq!((as_user.status, as_user.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let auth_only = app.call(Method::POST, "/v3/webhooks", &[("apikey", crate::AUTH_ONLY)], Some(hook("x"))).await;
    assert_eq!((auth_only.status, auth_only.code()), (StatusCode::FORBIDDEN, "ERR_AUTH_ONLY_KEY"));

    // 25 per app; the 26th is refused and not written.
    for n in 0..25 {
        let reply = app.call(Method::POST, "/v3/webhooks", &KEY, Some(hook(&format!("h{n}")))).await;
        assert_eq!(reply.status, StatusCode::OK, "webhook {n}: {}", reply.body);
    }
    let over = app.call(Method::POST, "/v3/webhooks", &KEY, Some(hook("h25"))).await;
    assert_eq!((over.status, over.code()), (StatusCode::BAD_REQUEST, "ERR_WEBHOOKS_LIMIT_REACHED"));
    assert_eq!(listed(&app).await, 25);
    let again = app.call(Method::DELETE, "/v3/webhooks/h0", &KEY, None).await;
    assert_eq!(again.status, StatusCode::OK);
    let taken = app.call(Method::POST, "/v3/webhooks", &KEY, Some(hook("h1"))).await;
    assert_eq!((taken.status, taken.code()), (StatusCode::CONFLICT, "ERR_WEBHOOK_ALREADY_EXISTS"));

    // Changes that are refused change nothing.
    let before = app.call(Method::GET, "/v3/webhooks/h1", &KEY, None).await.body;
    for (method, path, body, code) in [
        (Method::PUT, "/v3/webhooks/h1", json!({ "webhookURL": "https://192.168.1.1/" }), "ERR_WEBHOOK_URL_FORBIDDEN"),
        (Method::PUT, "/v3/webhooks/h1", json!({ "name": "n".repeat(51) }), "ERR_WEBHOOK_NAME_INVALID"),
        (Method::POST, "/v3/webhooks/h1/triggers", json!({ "triggerIds": [] }), "ERR_TRIGGER_IDS_INVALID"),
        (Method::POST, "/v3/webhooks/h1/triggers", json!({ "triggerIds": ["nope"] }), "ERR_TRIGGER_INVALID"),
        (Method::POST, "/v3/webhooks/h1/secret/rotate", json!({ "overlapSeconds": -1 }), "ERR_OVERLAP_INVALID"),
        (Method::POST, "/v3/webhooks/h1/deliveries/replay", json!({ "since": 10, "until": 5 }), "ERR_RANGE_INVALID"),
    ] {
        let reply = app.call(method, path, &KEY, Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{path} {body}: {}", reply.body);
    }
    let after = app.call(Method::GET, "/v3/webhooks/h1", &KEY, None).await.body;
    assert_eq!(before, after, "refused changes left the webhook as it was");
    let unknown = app.call(Method::PUT, "/v3/webhooks/nope", &KEY, Some(json!({ "name": "x" }))).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "ERR_WEBHOOK_NOT_FOUND"));
}

#[tokio::test]
async fn management_on_sqlite() {
    management_scenario(sqlite_app().await).await;
}

#[tokio::test]
async fn management_on_mariadb() {
    management_scenario(mysql_app().await).await;
}

#[tokio::test]
async fn management_with_the_configurations_in_mongodb() {
    let (app, documents) = mongo_app().await;
    management_scenario(app).await;
    documents.drop_database().await.expect("dropping the test database");
}

#[tokio::test]
async fn bad_input_with_the_configurations_in_mongodb() {
    let (app, documents) = mongo_app().await;
    bad_input_scenario(app).await;
    documents.drop_database().await.expect("dropping the test database");
}

#[tokio::test]
async fn bad_input_on_sqlite() {
    bad_input_scenario(sqlite_app().await).await;
}

#[tokio::test]
async fn bad_input_on_mariadb() {
    bad_input_scenario(mysql_app().await).await;
}
