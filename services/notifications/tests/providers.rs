//! The providers against local servers that implement FCM's and APNs' documented contracts (tests/support):
//! signatures verified with the test keys' public halves, answers and error bodies as documented.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use comet_model::now_millis;
use comet_notifications::provider::apns::TOKEN_LIFETIME_MS;
use comet_notifications::provider::{Answer, Apns, ApnsSettings, Fcm, FcmSettings, Provider, Push, ServiceAccount};
use support::{ApnsServer, FcmServer, TestClock};

fn push(token: &str) -> Push {
    let mut data = BTreeMap::new();
    data.insert("messageId".to_owned(), "m1".to_owned());
    data.insert("type".to_owned(), "message.sent".to_owned());
    Push {
        id: format!("e1_{token}"),
        uid: "bob".to_owned(),
        token: token.to_owned(),
        platform: "android".to_owned(),
        title: "Alice".to_owned(),
        body: "hello".to_owned(),
        badge: Some(3),
        collapse_id: "m1".to_owned(),
        data,
    }
}

fn fcm(server: &FcmServer, clock: Arc<TestClock>) -> Fcm {
    let account = ServiceAccount::parse(&server.service_account()).expect("service account");
    let settings = FcmSettings { base_url: server.url.clone(), timeout: Duration::from_secs(5) };
    Fcm::new(account, &settings, clock).expect("fcm")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_fetches_one_access_token_for_many_sends_and_renews_it_after_expiry() {
    let server = FcmServer::start().await;
    let clock = TestClock::at(now_millis());
    let fcm = Arc::new(fcm(&server, clock.clone()));
    let sends = (0..20).map(|n| {
        let fcm = fcm.clone();
        tokio::spawn(async move { fcm.send(&push(&format!("device-{n}"))).await })
    });
    for send in sends {
        assert_eq!(send.await.expect("send"), Answer::Delivered { status: 200 });
    }
    assert_eq!(fcm.exchanges(), 1, "twenty concurrent sends share one token exchange");
    assert_eq!(server.state.token_requests.load(std::sync::atomic::Ordering::SeqCst), 1);
    let delivered = server.state.delivered.lock().expect("lock").clone();
    assert_eq!(delivered.len(), 20);
    let message = &delivered[0];
    assert_eq!(message["notification"]["title"], "Alice");
    assert_eq!(message["android"]["collapse_key"], "m1");
    assert_eq!(message["apns"]["headers"]["apns-collapse-id"], "m1");
    assert_eq!(message["apns"]["payload"]["aps"]["badge"], 3);
    assert_eq!(message["data"]["messageId"], "m1");

    // An hour later the token has expired (renewed a minute early): one more exchange, then cached again.
    clock.advance(3600 * 1000 - 59_000);
    assert_eq!(fcm.send(&push("device-a")).await, Answer::Delivered { status: 200 });
    assert_eq!(fcm.send(&push("device-b")).await, Answer::Delivered { status: 200 });
    assert_eq!(fcm.exchanges(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_answers_drive_the_push_state() {
    let server = FcmServer::start().await;
    let fcm = fcm(&server, TestClock::at(now_millis()));
    assert_eq!(fcm.send(&push("gone-1")).await, Answer::TokenGone { status: 404, reason: "unregistered".to_owned() });
    assert_eq!(
        fcm.send(&push("throttle-1")).await,
        Answer::Retry { status: Some(429), reason: "quota_exceeded".to_owned(), after: Some(Duration::from_secs(2)) }
    );
    assert_eq!(fcm.send(&push("throttle-1")).await, Answer::Delivered { status: 200 }, "the retry goes through");
    assert!(matches!(fcm.send(&push("down-1")).await, Answer::Retry { status: Some(503), after: None, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fcm_refuses_a_key_the_token_endpoint_does_not_know() {
    let server = FcmServer::start().await;
    let (other_key, _) = support::rsa_key();
    let mut account: serde_json::Value = serde_json::from_str(&server.service_account()).expect("json");
    account["private_key"] = serde_json::Value::String(other_key);
    let account = ServiceAccount::parse(&account.to_string()).expect("service account");
    let settings = FcmSettings { base_url: server.url.clone(), timeout: Duration::from_secs(5) };
    let fcm = Fcm::new(account, &settings, TestClock::at(now_millis())).expect("fcm");
    assert_eq!(
        fcm.send(&push("device-1")).await,
        Answer::Failed { status: Some(400), reason: "token_refused".to_owned() },
        "a signature made with another key is refused by the token endpoint"
    );
    assert!(server.state.delivered.lock().expect("lock").is_empty());
}

fn apns_client(server: &ApnsServer, clock: Arc<TestClock>) -> Apns {
    let settings = ApnsSettings {
        key_pem: server.key_pem.clone(),
        key_id: server.state.key_id.clone(),
        team_id: server.state.team_id.clone(),
        topic: server.state.topic.clone(),
        base_url: server.url.clone(),
        timeout: Duration::from_secs(5),
        extra_roots: vec![server.ca_pem.clone()],
    };
    Apns::new(&settings, clock).expect("apns")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_sends_over_http2_with_a_verified_provider_token_and_the_documented_headers() {
    let server = ApnsServer::start().await;
    let apns = apns_client(&server, TestClock::at(now_millis()));
    let mut ios = push("a1b2c3");
    ios.platform = "ios".to_owned();
    assert_eq!(apns.send(&ios).await, Answer::Delivered { status: 200 });
    let mut voip = push("d4e5f6");
    voip.platform = "ios_voip".to_owned();
    assert_eq!(apns.send(&voip).await, Answer::Delivered { status: 200 });
    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    let first = &requests[0];
    assert!(first.http2, "HTTP/2 negotiated with ALPN h2");
    assert_eq!(first.device, "a1b2c3");
    assert_eq!(first.headers["apns-topic"], "com.example.chat");
    assert_eq!(first.headers["apns-push-type"], "alert");
    assert_eq!(first.headers["apns-collapse-id"], "m1");
    assert_eq!(first.body["aps"]["alert"]["body"], "hello");
    assert_eq!(first.body["aps"]["badge"], 3);
    assert_eq!(first.body["messageId"], "m1");
    assert_eq!(requests[1].headers["apns-topic"], "com.example.chat.voip");
    assert_eq!(requests[1].headers["apns-push-type"], "voip");
    assert_eq!(apns.signings(), 1, "one provider token for both");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_answers_drive_the_push_state() {
    let server = ApnsServer::start().await;
    let apns = apns_client(&server, TestClock::at(now_millis()));
    assert_eq!(apns.send(&push("gone1")).await, Answer::TokenGone { status: 410, reason: "Unregistered".to_owned() });
    assert_eq!(apns.send(&push("bad1")).await, Answer::TokenGone { status: 400, reason: "BadDeviceToken".to_owned() });
    assert!(matches!(apns.send(&push("throttle1")).await, Answer::Retry { status: Some(429), .. }));
    assert_eq!(apns.send(&push("throttle1")).await, Answer::Delivered { status: 200 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apns_re_signs_its_provider_token_when_it_is_old() {
    let server = ApnsServer::start().await;
    // The provider's clock starts 55 minutes in the past: its first token is accepted (under an hour old).
    let clock = TestClock::at(now_millis() - 55 * 60 * 1000);
    let apns = apns_client(&server, clock.clone());
    assert_eq!(apns.send(&push("a1")).await, Answer::Delivered { status: 200 });
    clock.advance(TOKEN_LIFETIME_MS - 1);
    assert_eq!(apns.send(&push("a2")).await, Answer::Delivered { status: 200 });
    assert_eq!(apns.signings(), 1, "still within its lifetime");
    clock.advance(2);
    assert_eq!(apns.send(&push("a3")).await, Answer::Delivered { status: 200 });
    assert_eq!(apns.signings(), 2, "re-signed once the token reached its lifetime");
    let requests = server.requests();
    assert_eq!(requests[0].jwt, requests[1].jwt);
    assert_ne!(requests[1].jwt, requests[2].jwt);

    // A provider whose clock is more than an hour behind signs tokens APNs calls expired: it drops the token
    // and asks for a retry.
    let stale = apns_client(&server, TestClock::at(now_millis() - 2 * 3600 * 1000));
    assert_eq!(
        stale.send(&push("a4")).await,
        Answer::Retry { status: Some(403), reason: "ExpiredProviderToken".to_owned(), after: None }
    );
}

/// What the webhook receiver captured of one request.
#[derive(Debug, Clone)]
struct Captured {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

/// A receiver that captures every request and answers 410 for `gone` tokens, 503 once for `down` ones.
async fn webhook_receiver() -> (String, Arc<std::sync::Mutex<Vec<Captured>>>) {
    use axum::http::{HeaderMap, StatusCode};
    let captured = Arc::new(std::sync::Mutex::new(Vec::new()));
    let store = captured.clone();
    let app = axum::Router::new().route(
        "/push",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let store = store.clone();
            async move {
                let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                let push: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                let token = push["token"].as_str().unwrap_or("").to_owned();
                let mut all = store.lock().expect("lock");
                let seen_before = all.iter().any(|c: &Captured| c.id == header("webhook-id"));
                all.push(Captured {
                    id: header("webhook-id"),
                    timestamp: header("webhook-timestamp"),
                    signature: header("webhook-signature"),
                    body: body.to_vec(),
                });
                if token.starts_with("gone") {
                    StatusCode::GONE
                } else if token.starts_with("down") && !seen_before {
                    StatusCode::SERVICE_UNAVAILABLE
                } else {
                    StatusCode::NO_CONTENT
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binding");
    let url = format!("http://{}/push", listener.local_addr().expect("address"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, captured)
}

/// Verifies a captured request with the Standard Webhooks reference library (PyPI `standardwebhooks`).
fn reference_library_accepts(secret: &str, captured: &Captured, folder: &std::path::Path) -> bool {
    const PYTHON: &str = "/opt/comet-tools/venv/bin/python";
    let body_path = folder.join("body");
    std::fs::write(&body_path, &captured.body).expect("writing the body");
    let script = "import sys\nfrom standardwebhooks import Webhook\n\
        body = open(sys.argv[2], 'rb').read()\n\
        headers = {'webhook-id': sys.argv[3], 'webhook-timestamp': sys.argv[4], 'webhook-signature': sys.argv[5]}\n\
        Webhook(sys.argv[1]).verify(body, headers)\n";
    let output = std::process::Command::new(PYTHON)
        .args(["-c", script, secret])
        .arg(&body_path)
        .args([&captured.id, &captured.timestamp, &captured.signature])
        .output()
        .unwrap_or_else(|error| panic!("running {PYTHON} (run `bash .ci/install-tools.sh`): {error}"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("ModuleNotFoundError"), "standardwebhooks is missing: run `bash .ci/install-tools.sh`");
    output.status.success()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_provider_posts_one_signed_request_per_push() {
    use comet_notifications::provider::{WebhookProvider, WebhookProviderSettings};
    let (url, captured) = webhook_receiver().await;
    let secret = comet_webhooks::signature::new_secret().expect("secret");
    let settings = WebhookProviderSettings { url, secret: secret.clone(), timeout: Duration::from_secs(5) };
    let private = comet_webhooks::Guard::new(comet_webhooks::AllowList::default());
    assert!(
        WebhookProvider::new(&settings, &private, TestClock::at(now_millis())).is_err(),
        "127.0.0.1 needs the allow-list"
    );
    let guard = comet_webhooks::Guard::new(comet_webhooks::AllowList::parse("127.0.0.1").expect("allow-list"));
    let provider =
        WebhookProvider::new(&settings, &guard, Arc::new(comet_notifications::SystemClock)).expect("provider");
    assert_eq!(provider.send(&push("device-1")).await, Answer::Delivered { status: 204 });
    assert_eq!(provider.send(&push("gone-1")).await, Answer::TokenGone { status: 410, reason: "gone".to_owned() });
    assert!(matches!(provider.send(&push("down-1")).await, Answer::Retry { status: Some(503), .. }));
    assert_eq!(provider.send(&push("down-1")).await, Answer::Delivered { status: 204 });
    let all = captured.lock().expect("lock").clone();
    assert_eq!(all.len(), 4, "one request per push and attempt");
    assert_eq!(all[2].id, all[3].id, "a retry keeps its webhook-id");
    let folder = tempfile::tempdir().expect("folder");
    assert!(reference_library_accepts(&secret, &all[0], folder.path()), "the reference library verifies it");
    let other = comet_webhooks::signature::new_secret().expect("secret");
    assert!(!reference_library_accepts(&other, &all[0], folder.path()), "and refuses another secret");
    let body: serde_json::Value = serde_json::from_slice(&all[0].body).expect("json");
    assert_eq!(
        (body["token"].as_str(), body["collapseId"].as_str(), body["badge"].as_i64()),
        (Some("device-1"), Some("m1"), Some(3))
    );
}
