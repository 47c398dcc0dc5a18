//! Asynchronous moderation end to end through the real binary: a Custom API rule holds a message as `pending`,
//! the moderation role asks a real HTTP adapter (axum on 127.0.0.1, reached through the allow-list) and decides
//! it — approved delivered once, disapproved never, a timeout and a 5xx following the rule's failure policy —
//! seen from the recipient's and the sender's WebSockets, history, receipts, webhooks and metrics (embedded
//! `all`); and the moderation role killed with SIGKILL mid-decision on MariaDB and tansu, the message decided
//! once after the restart.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use tokio::sync::Notify;

use crate::gateway::{Client, Rest, embedded, is_text, texts};
use crate::support::{Server, fresh_mysql_database, migrate, post, unique};
use crate::{AUTH, FULL};

const DEADLINE: Duration = Duration::from_secs(90);

/// What the adapter and the webhook receiver saw.
#[derive(Default)]
struct Seen {
    /// (Authorization header, request body) of every Custom API request.
    asks: Vec<(String, Value)>,
    /// Webhook payloads.
    hooks: Vec<Value>,
}

/// The test's Custom API, answering by the message's text: `bad…` matches (confidence 0.9), `boom…` answers
/// 500, `slow…` answers after 3 s (past the role's timeout), `hold…` waits until released; anything else does
/// not match.
#[derive(Clone)]
struct Adapter {
    address: SocketAddr,
    seen: Arc<Mutex<Seen>>,
    release: Arc<Notify>,
}

async fn moderate(State(adapter): State<Adapter>, headers: HeaderMap, body: axum::body::Bytes) -> (StatusCode, String) {
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let authorization =
        headers.get("authorization").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let text = request["message"]["data"]["text"].as_str().unwrap_or_default().to_owned();
    adapter.seen.lock().expect("seen").asks.push((authorization, request));
    let answer = |matching: bool, confidence: f64| {
        json!({ "isMatchingCondition": matching, "confidence": confidence, "reason": "the test's verdict" }).to_string()
    };
    if text.starts_with("bad") {
        (StatusCode::OK, answer(true, 0.9))
    } else if text.starts_with("boom") {
        (StatusCode::INTERNAL_SERVER_ERROR, "down".to_owned())
    } else if text.starts_with("slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
        (StatusCode::OK, answer(false, 0.0))
    } else if text.starts_with("hold") {
        adapter.release.notified().await;
        (StatusCode::OK, answer(false, 0.1))
    } else {
        (StatusCode::OK, answer(false, 0.1))
    }
}

async fn hook(State(adapter): State<Adapter>, body: axum::body::Bytes) -> StatusCode {
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    adapter.seen.lock().expect("seen").hooks.push(payload);
    StatusCode::OK
}

impl Adapter {
    async fn start() -> Adapter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        let adapter = Adapter { address, seen: Arc::default(), release: Arc::new(Notify::new()) };
        let app = axum::Router::new()
            .route("/moderate", axum::routing::post(moderate))
            .route("/hook", axum::routing::post(hook))
            .with_state(adapter.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        adapter
    }

    fn url(&self) -> String {
        format!("http://{}/moderate", self.address)
    }

    fn asks_for(&self, text: &str) -> usize {
        let seen = self.seen.lock().expect("seen");
        seen.asks.iter().filter(|(_, request)| request["message"]["data"]["text"] == text).count()
    }

    /// The triggers the webhook receiver got for the message with `id`.
    fn triggers_for(&self, id: &Value) -> Vec<String> {
        let seen = self.seen.lock().expect("seen");
        seen.hooks
            .iter()
            .filter(|payload| &payload["data"]["message"]["id"] == id)
            .filter_map(|payload| payload["trigger"].as_str().map(str::to_owned))
            .collect()
    }
}

async fn wait_for(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A Custom API rule blocking what the adapter matches at 0.8, for messages to `receiver`, with `on_failure`.
fn rule(id: &str, receiver: &str, on_failure: &str) -> Value {
    json!({
        "id": id, "name": id, "action": "block",
        "filters": [{ "field": "receiverId", "operator": "in", "values": [receiver] }],
        "conditions": [{ "type": "customApi", "threshold": 0.8, "onFailure": on_failure, "contextMessages": 2 }],
    })
}

async fn get(rest: &Rest, path: &str, on_behalf_of: Option<&str>) -> (u16, Value) {
    let mut request = rest.client.get(format!("{}{path}", rest.base)).header("apikey", &rest.key);
    if let Some(uid) = on_behalf_of {
        request = request.header("onBehalfOf", uid);
    }
    let response = request.send().await.expect("GET");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

fn history_texts(history: &Value) -> Vec<String> {
    history["data"]
        .as_array()
        .map(|messages| {
            messages.iter().filter_map(|message| message["data"]["text"].as_str().map(str::to_owned)).collect()
        })
        .unwrap_or_default()
}

/// The `message.moderated` frames among `frames`: (message id, status).
fn moderated(frames: &[Value]) -> Vec<(Value, String)> {
    frames
        .iter()
        .filter(|frame| frame["type"] == "message.moderated")
        .map(|frame| (frame["data"]["id"].clone(), frame["data"]["status"].as_str().unwrap_or_default().to_owned()))
        .collect()
}

#[tokio::test]
async fn pending_messages_are_decided_by_the_custom_api_delivered_once_or_never_and_failures_follow_the_policy() {
    let adapter = Adapter::start().await;
    let url = adapter.url();
    let (server, rest, _data) = embedded(&[
        ("COMET_MODERATION_CUSTOM_API_URL", url.as_str()),
        ("COMET_MODERATION_CUSTOM_API_USERNAME", "moderator"),
        ("COMET_MODERATION_CUSTOM_API_PASSWORD", "s3cret-adapter-password"),
        ("COMET_MODERATION_CUSTOM_API_TIMEOUT_MS", "500"),
        ("COMET_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1"),
        ("COMET_WEBHOOKS_POLL_MS", "50"),
    ])
    .await;
    let alice = rest.user("alice").await;
    let bob = rest.user("bob").await;
    let carol = rest.user("carol").await;
    let triggers = [
        "message_sent",
        "moderation_engine_approved",
        "moderation_engine_blocked",
        "moderation_engine_failed",
        "moderation_manual_approved",
    ];
    let webhook = json!({
        "id": "moderation-events", "name": "moderation", "webhookURL": format!("http://{}/hook", adapter.address),
        "triggers": triggers,
    });
    rest.call("/v3/webhooks", None, webhook).await;
    rest.call("/v3/moderation/rules", None, rule("ai-strict", "bob", "drop-message")).await;
    rest.call("/v3/moderation/rules", None, rule("ai-lenient", "carol", "approve-message")).await;
    let (mut bob_socket, _) = Client::join(&server, &bob, "bob", json!([])).await;
    let (mut carol_socket, _) = Client::join(&server, &carol, "carol", json!([])).await;
    let (mut alice_socket, _) = Client::join(&server, &alice, "alice", json!([])).await;

    let fine = rest.send("alice", "bob", "user", "hello friend").await;
    assert_eq!((&fine["data"]["moderation"]["status"], &fine["seq"]), (&json!("pending"), &json!(0)), "{fine}");
    // Bob may not mark a pending message read: it is in no conversation yet.
    let (status, refused) = post(
        &rest.client,
        format!("{}/v3/users/alice/conversation/read", rest.base),
        &[("apikey", rest.key.as_str()), ("onBehalfOf", "bob")],
        json!({ "messageId": fine["id"] }),
    )
    .await;
    assert_eq!(status, 404, "{refused}");
    let bad = rest.send("alice", "bob", "user", "bad words").await;
    let boom = rest.send("alice", "bob", "user", "boom").await;
    let slow = rest.send("alice", "carol", "user", "slow thoughts").await;
    for held in [&bad, &boom, &slow] {
        assert_eq!(held["data"]["moderation"]["status"], "pending", "{held}");
    }

    // The sender hears every decision, once.
    let mut decisions = Vec::new();
    let mut pending = Vec::new();
    while decisions.len() < 4 {
        let frames = alice_socket.until(|frame| frame["type"] == "message.moderated").await;
        decisions.extend(moderated(&frames));
        pending.extend(
            frames.iter().filter(|frame| frame["type"] == "message.pending").map(|frame| frame["data"]["id"].clone()),
        );
    }
    // Its sockets showed each held message first (events of one conversation keep their order).
    let sent_to_bob: Vec<Value> = [&fine, &bad, &boom].iter().map(|held| held["id"].clone()).collect();
    assert_eq!(pending.iter().filter(|id| sent_to_bob.contains(id)).count(), 3, "{pending:?}");
    assert!(pending.contains(&slow["id"]), "{pending:?}");
    decisions.sort_by_key(|(id, _)| id.to_string());
    let mut expected = vec![
        (fine["id"].clone(), "approved".to_owned()),
        (bad["id"].clone(), "disapproved".to_owned()),
        (boom["id"].clone(), "disapproved".to_owned()),
        (slow["id"].clone(), "approved".to_owned()),
    ];
    expected.sort_by_key(|(id, _)| id.to_string());
    assert_eq!(decisions, expected);

    rest.send("alice", "bob", "user", "after").await;
    let frames = bob_socket.until(is_text("after")).await;
    assert!(
        frames.iter().all(|frame| frame["type"] != "message.pending" && frame["type"] != "message.moderated"),
        "the recipient hears nothing of held messages: {frames:?}"
    );
    assert_eq!(texts(&frames), ["hello friend", "after"], "approved delivered once; disapproved never");
    let approved = frames.iter().find(|frame| frame["data"]["data"]["text"] == "hello friend").expect("approved");
    assert_eq!(
        (&approved["data"]["id"], &approved["data"]["data"]["moderation"]["status"]),
        (&fine["id"], &json!("approved"))
    );
    let frames = carol_socket.until(is_text("slow thoughts")).await;
    assert_eq!(texts(&frames), ["slow thoughts"], "a timeout under approve-message delivers");
    let (_, history) = get(&rest, "/v3/users/alice/messages", Some("bob")).await;
    assert_eq!(history_texts(&history), ["hello friend", "after"]);

    // The adapter: basic auth, the message in full, the committed messages before it as context.
    {
        let seen = adapter.seen.lock().expect("seen");
        let expected_auth = format!("Basic {}", base64_of("moderator:s3cret-adapter-password"));
        assert!(seen.asks.iter().all(|(authorization, _)| *authorization == expected_auth), "basic auth on every ask");
        let after = seen.asks.iter().find(|(_, request)| request["message"]["data"]["text"] == "after").expect("after");
        assert_eq!(after.1["contextMessages"], json!(["hello friend"]), "{}", after.1);
        assert_eq!(after.1["message"]["sender"], "alice");
    }
    assert_eq!(adapter.asks_for("hello friend"), 1);

    // Webhooks: the engine's decisions; message_sent only for what was delivered.
    wait_for("the moderation webhooks", || {
        adapter.triggers_for(&slow["id"]).len() >= 2 && adapter.triggers_for(&fine["id"]).len() >= 2
    })
    .await;
    wait_for("the blocked and failed webhooks", || {
        !adapter.triggers_for(&bad["id"]).is_empty() && !adapter.triggers_for(&boom["id"]).is_empty()
    })
    .await;
    let mut fine_triggers = adapter.triggers_for(&fine["id"]);
    fine_triggers.sort();
    assert_eq!(fine_triggers, ["message_sent", "moderation_engine_approved"]);
    assert_eq!(adapter.triggers_for(&bad["id"]), ["moderation_engine_blocked"]);
    assert_eq!(adapter.triggers_for(&boom["id"]), ["moderation_engine_failed"]);
    let mut slow_triggers = adapter.triggers_for(&slow["id"]);
    slow_triggers.sort();
    assert_eq!(slow_triggers, ["message_sent", "moderation_engine_failed"]);
    {
        let seen = adapter.seen.lock().expect("seen");
        let failed = seen
            .hooks
            .iter()
            .find(|payload| {
                payload["trigger"] == "moderation_engine_failed" && payload["data"]["message"]["id"] == boom["id"]
            })
            .expect("failed payload");
        assert_eq!(failed["data"]["moderation"]["status"], "disapproved", "{failed}");
        assert!(!failed.to_string().contains("s3cret"), "no secret in a payload");
    }

    // A receipt before the approval leaves the approved message unread.
    let (status, receipt) = post(
        &rest.client,
        format!("{}/v3/users/alice/conversation/read", rest.base),
        &[("apikey", rest.key.as_str()), ("onBehalfOf", "bob")],
        json!({}),
    )
    .await;
    assert_eq!(status, 200, "{receipt}");
    // The engine-blocked message waits in the blocked queue; a moderator's approval delivers it.
    let (_, queue) = get(&rest, "/v3/moderation/blocked-messages", None).await;
    let item = queue["data"]
        .as_array()
        .expect("items")
        .iter()
        .find(|item| item["messageId"] == bad["id"])
        .cloned()
        .expect("bad words queued");
    assert_eq!(item["ruleId"], "ai-strict");
    let response = rest
        .client
        .patch(format!("{}/v3/moderation/blocked-messages/{}", rest.base, item["id"].as_str().expect("id")))
        .header("apikey", &rest.key)
        .json(&json!({ "status": "approved" }))
        .send()
        .await
        .expect("PATCH");
    assert_eq!(response.status(), 200);
    let frames = bob_socket.until(is_text("bad words")).await;
    assert_eq!(texts(&frames), ["bad words"]);
    let delivered = frames.last().expect("frame");
    assert_eq!(delivered["data"]["id"], bad["id"], "the id the sender got");
    assert_eq!(delivered["data"]["seq"], 3, "the next seq at approval");
    let (_, unread) = post(
        &rest.client,
        format!("{}/v3/users/alice/conversation/delivered", rest.base),
        &[("apikey", rest.key.as_str()), ("onBehalfOf", "bob")],
        json!({}),
    )
    .await;
    assert_eq!(unread["data"]["unreadMessageCount"], 1, "read before it was delivered: {unread}");
    wait_for("the manual approval webhook", || {
        adapter.triggers_for(&bad["id"]).iter().any(|trigger| trigger == "moderation_manual_approved")
    })
    .await;

    let metrics = reqwest::get(format!("{}/metrics", server.admin)).await.expect("metrics").text().await.expect("text");
    for line in [
        "comet_moderation_decisions_total{status=\"approved\"} 3",
        "comet_moderation_decisions_total{status=\"disapproved\"} 2",
        "comet_moderation_adapter_failures_total{category=\"status_5xx\"} 1",
        "comet_moderation_adapter_failures_total{category=\"timeout\"} 1",
        "comet_moderation_pending_messages 0",
    ] {
        assert!(metrics.lines().any(|metric| metric == line), "{line} in\n{metrics}");
    }
    assert!(!metrics.contains("s3cret"));
    server.terminate();
}

fn base64_of(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = text.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let word = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for index in 0..4 {
            if index <= chunk.len() {
                out.push(char::from(ALPHABET[((word >> (18 - 6 * index)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[tokio::test]
async fn a_moderation_role_killed_mid_decision_decides_the_message_once_after_a_restart() {
    let _kafka_groups = crate::support::KAFKA_GROUP_TESTS.lock().await;
    let adapter = Adapter::start().await;
    let database_url = fresh_mysql_database().await;
    let brokers = std::env::var("COMET_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    let data = tempfile::tempdir().expect("temp dir");
    let env = [
        ("COMET_DATABASE_URL", database_url.clone()),
        ("COMET_KAFKA_BROKERS", brokers),
        ("COMET_API_KEY", FULL.to_owned()),
        ("COMET_AUTH_KEY", AUTH.to_owned()),
        ("COMET_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1".to_owned()),
        ("COMET_MODERATION_CUSTOM_API_URL", adapter.url()),
        // Past the adapter's hold, so the first role is killed while it waits.
        ("COMET_MODERATION_CUSTOM_API_TIMEOUT_MS", "15000".to_owned()),
    ];
    migrate(&database_url);
    let mut api = Server::start("api", data.path(), &env);
    let mut relay = Server::start("relay", data.path(), &env);
    let mut first = Server::start("moderation", data.path(), &env);
    for server in [&mut api, &mut relay, &mut first] {
        server.wait_ready().await;
    }
    let rest = Rest { client: reqwest::Client::new(), base: api.app.clone(), key: FULL.to_owned() };
    let (sender, receiver) = (unique("ms"), unique("mr"));
    rest.user(&sender).await;
    rest.user(&receiver).await;
    rest.call("/v3/moderation/rules", None, rule("ai", &receiver, "drop-message")).await;

    let held = rest.send(&sender, &receiver, "user", "hold on").await;
    assert_eq!(held["data"]["moderation"]["status"], "pending", "{held}");
    wait_for("the first role to ask the adapter", || adapter.asks_for("hold on") == 1).await;
    let _ = std::process::Command::new("kill").args(["-KILL", &first.child.id().to_string()]).status();
    let _ = first.child.wait();
    // The killed role's request is answered now, to nobody; the next one is answered when it comes.
    adapter.release.notify_one();

    let mut second = Server::start("moderation", data.path(), &env);
    second.wait_ready().await;
    wait_for("the restarted role to ask again", || {
        if adapter.asks_for("hold on") >= 2 {
            adapter.release.notify_one();
            true
        } else {
            false
        }
    })
    .await;
    let path = format!("/v3/users/{sender}/messages");
    let deadline = Instant::now() + DEADLINE;
    let history = loop {
        let (_, history) = get(&rest, &path, Some(&receiver)).await;
        if !history_texts(&history).is_empty() {
            break history;
        }
        assert!(Instant::now() < deadline, "the held message was not decided after the restart");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(history_texts(&history), ["hold on"], "committed once");
    assert_eq!(history["data"][0]["id"], held["id"]);
    let metrics = reqwest::get(format!("{}/metrics", second.admin)).await.expect("metrics").text().await.expect("text");
    assert!(
        metrics.lines().any(|line| line == "comet_moderation_decisions_total{status=\"approved\"} 1"),
        "decided once, by the restarted role:\n{metrics}"
    );
    assert!(metrics.lines().any(|line| line == "comet_moderation_pending_messages 0"), "{metrics}");
    assert_eq!(second.terminate().code(), Some(0));
    assert_eq!(relay.terminate().code(), Some(0));
    assert_eq!(api.terminate().code(), Some(0));
}
