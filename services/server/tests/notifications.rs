//! The notifications role as operators run it: `all` (embedded, SQLite) from the REST API (a provider, a token, a
//! message) to a real HTTP receiver behind the webhook provider, with the provider's secret read from the
//! secrets folder, and the decision in the log.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{Value, json};

use crate::support::{Server, post};
use crate::{AUTH, FULL};

const DEADLINE: Duration = Duration::from_secs(90);

#[tokio::test]
async fn embedded_all_pushes_to_an_offline_recipient_through_the_webhook_provider() {
    let received: Arc<Mutex<Vec<(HeaderMap, Value)>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                sink.lock().expect("received").push((headers, serde_json::from_slice(&body).unwrap_or(Value::Null)));
                axum::http::StatusCode::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let receiver = format!("http://{}/push", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let data = tempfile::tempdir().expect("temp dir");
    let secrets = tempfile::tempdir().expect("secrets");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    std::fs::write(secrets.path().join("push-secret"), secret).expect("writing the secret");
    let env = vec![
        ("COMET_API_KEY", FULL.to_owned()),
        ("COMET_AUTH_KEY", AUTH.to_owned()),
        ("COMET_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1".to_owned()),
        ("COMET_NOTIFICATIONS_SECRETS_DIR", secrets.path().display().to_string()),
        ("COMET_NOTIFICATIONS_POLL_MS", "50".to_owned()),
    ];
    let mut server = Server::start("all", data.path(), &env);
    server.wait_ready().await;
    let client = reqwest::Client::new();
    let app = server.app.clone();
    let provider =
        json!({"id": "hook", "kind": "webhook", "url": receiver, "secret": "push-secret", "isDefault": true});
    let (status, body) =
        post(&client, format!("{app}/v3/notifications/providers"), &[("apikey", FULL)], provider).await;
    assert_eq!(status, 200, "{body}");
    assert!(!body.to_string().contains(secret), "the secret is a file name, never its value");
    for uid in ["alice", "bob"] {
        let (status, body) =
            post(&client, format!("{app}/v3/users"), &[("apikey", FULL)], json!({"uid": uid, "name": uid})).await;
        assert_eq!(status, 200, "{body}");
    }
    let token = json!({"token": "device-of-bob", "platform": "android", "sessionId": "phone"});
    let bob = [("apikey", FULL), ("onBehalfOf", "bob")];
    let (status, body) = post(&client, format!("{app}/v3/notifications/tokens"), &bob, token).await;
    assert_eq!(status, 200, "{body}");
    let message = json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": "hello bob"}});
    let alice = [("apikey", FULL), ("onBehalfOf", "alice")];
    let (status, body) = post(&client, format!("{app}/v3/messages"), &alice, message).await;
    assert_eq!(status, 200, "{body}");
    let message_id = body["data"]["id"].as_str().expect("message id").to_owned();

    let deadline = Instant::now() + DEADLINE;
    while received.lock().expect("received").is_empty() {
        assert!(Instant::now() < deadline, "timed out waiting for the push");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (headers, push) = received.lock().expect("received")[0].clone();
    assert_eq!(push["token"], "device-of-bob");
    assert_eq!(push["title"], "alice");
    assert_eq!(push["body"], "hello bob");
    assert_eq!(push["collapseId"], message_id.as_str());
    assert_eq!(push["badge"], 1, "bob's unread count");
    assert!(headers.get("webhook-signature").is_some_and(|value| value.to_str().unwrap_or("").starts_with("v1,")));

    let deadline = Instant::now() + DEADLINE;
    let log = loop {
        let log = client
            .get(format!("{app}/v3/notifications/log?uid=bob"))
            .header("apikey", FULL)
            .send()
            .await
            .expect("log")
            .json::<Value>()
            .await
            .expect("json");
        if log["data"].as_array().is_some_and(|entries| !entries.is_empty()) {
            break log;
        }
        assert!(Instant::now() < deadline, "timed out waiting for the log entry");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(log["data"][0]["outcome"], "sent", "{log}");
    assert_eq!(log["data"][0]["messageId"], message_id.as_str(), "{log}");
    let metrics =
        client.get(format!("{}/metrics", server.admin)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("comet_notifications_sent_total{provider=\"webhook\"} 1"), "{metrics}");
    assert!(metrics.contains("comet_worker_events_consumed_total{worker=\"notifications\"}"), "{metrics}");
    assert_eq!(
        metrics.matches("# HELP comet_worker_events_consumed_total").count(),
        1,
        "one HELP per family with two workers in the process"
    );
    assert_eq!(server.terminate().code(), Some(0));
}
