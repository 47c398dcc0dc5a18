//! The webhooks role as operators run it: in `all` (embedded, SQLite) from the REST API to a real HTTP receiver,
//! across a restart with a retry pending; and split (MariaDB + tansu), two `webhooks` replicas sharing the
//! consumer group, one killed with SIGKILL mid-delivery.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};

use crate::support::{Server, fresh_mysql_database, migrate, post, unique};
use crate::{AUTH, FULL};

const DEADLINE: Duration = Duration::from_secs(90);

#[derive(Default)]
struct Received {
    /// (webhook-id, payload, status answered)
    requests: Vec<(String, Value, u16)>,
    attempts: HashMap<String, u32>,
}

#[derive(Clone)]
struct Receiver {
    address: SocketAddr,
    received: Arc<Mutex<Received>>,
}

#[derive(Clone)]
struct Behaviour {
    received: Arc<Mutex<Received>>,
    fail_first: u32,
    hold: Duration,
}

async fn receive(State(behaviour): State<Behaviour>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    tokio::time::sleep(behaviour.hold).await;
    let id = headers.get("webhook-id").and_then(|value| value.to_str().ok()).unwrap_or_default().to_owned();
    let payload: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut received = behaviour.received.lock().expect("received");
    let attempt = {
        let count = received.attempts.entry(id.clone()).or_insert(0);
        *count += 1;
        *count
    };
    let status = if attempt <= behaviour.fail_first { 500 } else { 200 };
    received.requests.push((id, payload, status));
    StatusCode::from_u16(status).expect("status")
}

impl Receiver {
    async fn start(fail_first: u32, hold: Duration) -> Receiver {
        let received = Arc::new(Mutex::new(Received::default()));
        let behaviour = Behaviour { received: received.clone(), fail_first, hold };
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(behaviour);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address");
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { address, received }
    }

    /// Distinct `webhook-id`s answered 200 whose message was sent by `sender`, and the requests for them.
    fn delivered_from(&self, sender: &str) -> (HashSet<String>, usize) {
        let received = self.received.lock().expect("received");
        let ours: Vec<&(String, Value, u16)> =
            received.requests.iter().filter(|(_, payload, _)| payload["data"]["message"]["sender"] == sender).collect();
        let delivered = ours.iter().filter(|(_, _, status)| *status == 200).map(|(id, _, _)| id.clone()).collect();
        (delivered, ours.len())
    }
}

async fn create_webhook(client: &reqwest::Client, app: &str, receiver: &Receiver) {
    let body = json!({
        "id": "chat-events", "name": "chat events", "webhookURL": format!("http://{}/hook", receiver.address),
        "triggers": ["message_sent"],
    });
    let (status, reply) = post(client, format!("{app}/v3/webhooks"), &[("apikey", FULL)], body).await;
    assert_eq!(status, 200, "{reply}");
}

async fn send_messages(client: &reqwest::Client, app: &str, sender: &str, receiver: &str, count: usize) {
    for uid in [sender, receiver] {
        let (status, body) =
            post(client, format!("{app}/v3/users"), &[("apikey", FULL)], json!({"uid": uid, "name": uid})).await;
        assert_eq!(status, 200, "{body}");
    }
    for n in 0..count {
        let (status, body) = post(
            client,
            format!("{app}/v3/messages"),
            &[("apikey", FULL), ("onBehalfOf", sender)],
            json!({"receiver": receiver, "receiverType": "user", "type": "text", "data": {"text": format!("m{n}")}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
}

async fn wait_for(what: &str, check: impl FnMut() -> bool) {
    wait_long(what, DEADLINE, check).await;
}

/// How long a new consumer group's first assignment may take on the test broker. Inside or right after a full
/// suite, tansu has held two new members of `comet-webhooks` without an assignment for more than 90 s (3 of 13
/// reruns) and once for more than 300 s; alone they are assigned in seconds. The cause in the broker is not
/// found. A rebalance there may wait for librdkafka's rebalance timeout (max.poll.interval.ms, 300 s) more than
/// once, hence twice that.
const JOIN_DEADLINE: Duration = Duration::from_secs(600);

/// The relay's and the members' own view (published events, consumed events, lag and bus errors), for a
/// failure message that says whether the events reached Kafka and whether a member was assigned any.
async fn members_report(client: &reqwest::Client, servers: &[(&str, &Server)]) -> String {
    let mut report = String::new();
    for (name, server) in servers {
        let text = match client.get(format!("{}/metrics", server.admin)).send().await {
            Ok(response) => response.text().await.unwrap_or_default(),
            Err(error) => format!("(no /metrics: {error})"),
        };
        let wanted = [
            "comet_relay_",
            "comet_worker_events_consumed",
            "comet_worker_lag",
            "comet_worker_bus_errors",
            "comet_kafka_consumer_lag",
        ];
        let lines: Vec<&str> =
            text.lines().filter(|line| !line.starts_with('#') && wanted.iter().any(|w| line.starts_with(w))).collect();
        report.push_str(&format!("{name}:\n  {}\n", lines.join("\n  ")));
    }
    report
}

async fn wait_long(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The settings of an embedded `all` server delivering to this host's receivers, plus `extra`.
fn embedded_env(extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = vec![
        ("COMET_API_KEY", FULL.to_owned()),
        ("COMET_AUTH_KEY", AUTH.to_owned()),
        ("COMET_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1".to_owned()),
        ("COMET_WEBHOOKS_POLL_MS", "50".to_owned()),
    ];
    env.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
    env
}

#[tokio::test]
async fn embedded_all_delivers_from_the_api_and_resumes_a_pending_retry_after_a_restart() {
    let data = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(1, Duration::ZERO).await;
    // The retry after the first failure waits 3 s: long enough to restart the whole server meanwhile.
    let env = embedded_env(&[("COMET_WEBHOOKS_RETRY_SCHEDULE_MS", "3000")]);
    let mut server = Server::start("all", data.path(), &env);
    server.wait_ready().await;
    let client = reqwest::Client::new();
    create_webhook(&client, &server.app, &receiver).await;
    send_messages(&client, &server.app, "alice", "bob", 1).await;
    wait_for("the first attempt", || receiver.delivered_from("alice").1 == 1).await;
    let first_attempt = Instant::now();
    assert_eq!(server.terminate().code(), Some(0), "SIGTERM stops cleanly with a retry pending");

    let mut server = Server::start("all", data.path(), &env);
    server.wait_ready().await;
    wait_for("the retry after the restart", || receiver.delivered_from("alice").0.len() == 1).await;
    assert!(first_attempt.elapsed() >= Duration::from_millis(2500), "the retry kept its time, less jitter");
    assert_eq!(receiver.delivered_from("alice").1, 2, "one failure, one success: nothing lost, nothing extra");

    let metrics =
        client.get(format!("{}/metrics", server.admin)).send().await.expect("metrics").text().await.expect("text");
    assert!(metrics.contains("comet_webhook_attempts_total{outcome=\"delivered\"} 1"), "{metrics}");
    assert!(metrics.contains("comet_worker_events_consumed_total{worker=\"webhooks\"}"), "{metrics}");
    let log = client
        .get(format!("{}/v3/webhooks/chat-events/deliveries", server.app))
        .header("apikey", FULL)
        .send()
        .await
        .expect("log")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(log["data"][0]["state"], "delivered", "{log}");
    assert_eq!(log["data"][0]["attempts"], 2, "{log}");
    assert_eq!(server.terminate().code(), Some(0));
}

#[tokio::test]
async fn two_webhooks_replicas_share_the_group_and_a_killed_one_loses_nothing() {
    let _kafka_groups = crate::support::KAFKA_GROUP_TESTS.lock().await;
    let database_url = fresh_mysql_database().await;
    let brokers = std::env::var("COMET_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    let data = tempfile::tempdir().expect("temp dir");
    // Each request is held 100 ms, so a replica is always mid-delivery when it is killed.
    let receiver = Receiver::start(0, Duration::from_millis(100)).await;
    let env = [
        ("COMET_DATABASE_URL", database_url.clone()),
        ("COMET_KAFKA_BROKERS", brokers),
        ("COMET_API_KEY", FULL.to_owned()),
        ("COMET_AUTH_KEY", AUTH.to_owned()),
        ("COMET_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1".to_owned()),
        ("COMET_WEBHOOKS_RETRY_SCHEDULE_MS", "50,50,50,50,50".to_owned()),
        ("COMET_WEBHOOKS_CLAIM_MS", "2000".to_owned()),
        ("COMET_WEBHOOKS_TIMEOUT_MS", "1000".to_owned()),
        ("COMET_WEBHOOKS_POLL_MS", "50".to_owned()),
    ];
    migrate(&database_url);
    let mut api = Server::start("api", data.path(), &env);
    let mut relay = Server::start("relay", data.path(), &env);
    let mut first = Server::start("webhooks", data.path(), &env);
    let mut second = Server::start("webhooks", data.path(), &env);
    for server in [&mut api, &mut relay, &mut first, &mut second] {
        server.wait_ready().await;
    }
    let client = reqwest::Client::new();
    create_webhook(&client, &api.app, &receiver).await;
    let sender = unique("wh");
    let count = 30;
    send_messages(&client, &api.app, &sender, &format!("{sender}b"), count).await;

    // Two new members joining one group on the test broker (tansu) have taken from 6 s to over 90 s to get their
    // first assignment on these machines, whatever the code under test does: the first delivery is waited for
    // longer than the rest.
    let started = Instant::now();
    while receiver.delivered_from(&sender).1 < 3 {
        if started.elapsed() > JOIN_DEADLINE {
            let report = members_report(&client, &[("relay", &relay), ("first", &first), ("second", &second)]).await;
            panic!(
                "timed out waiting for deliveries to start after {JOIN_DEADLINE:?}; what each process reports:\n{report}"
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = std::process::Command::new("kill").args(["-KILL", &first.child.id().to_string()]).status();
    let _ = first.child.wait();

    wait_for("every event delivered by the survivor", || receiver.delivered_from(&sender).0.len() == count).await;
    let (delivered, requests) = receiver.delivered_from(&sender);
    assert_eq!(delivered.len(), count, "every message_sent delivered: nothing lost");
    let received = receiver.received.lock().expect("received");
    let ids: HashSet<&String> = received
        .requests
        .iter()
        .filter(|(_, payload, _)| payload["data"]["message"]["sender"] == sender.as_str())
        .map(|(id, _, _)| id)
        .collect();
    assert_eq!(ids.len(), count, "duplicates ({} requests) only ever repeat a webhook-id", requests);
    drop(received);
    assert_eq!(second.terminate().code(), Some(0));
    assert_eq!(relay.terminate().code(), Some(0));
    assert_eq!(api.terminate().code(), Some(0));
}

#[tokio::test]
async fn with_mongodb_configured_the_webhooks_live_there_and_deliveries_still_flow() {
    let mongo_url = comet_testkit::mongo_url();
    comet_testkit::require_mongo(&mongo_url);
    let database = comet_testkit::mongo_database();
    let data = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let env = [
        ("COMET_API_KEY", FULL.to_owned()),
        ("COMET_AUTH_KEY", AUTH.to_owned()),
        ("COMET_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1".to_owned()),
        ("COMET_WEBHOOKS_POLL_MS", "50".to_owned()),
        ("COMET_MONGODB_URL", mongo_url.clone()),
        ("COMET_MONGODB_DATABASE", database.clone()),
    ];
    let mut server = Server::start("all", data.path(), &env);
    server.wait_ready().await;
    let client = reqwest::Client::new();
    create_webhook(&client, &server.app, &receiver).await;
    send_messages(&client, &server.app, "carol", "dave", 2).await;
    wait_for("both deliveries", || receiver.delivered_from("carol").0.len() == 2).await;
    assert_eq!(server.terminate().code(), Some(0));

    let documents = comet_documents::Documents::connect(&mongo_url, None, &database).await.expect("MongoDB");
    let stored: Vec<comet_documents::bson::Document> = {
        use futures::TryStreamExt as _;
        let collection = documents.collection::<comet_documents::bson::Document>("webhooks");
        collection.find(comet_documents::bson::doc! {}).await.expect("find").try_collect().await.expect("read")
    };
    assert_eq!(stored.len(), 1, "the webhook is a MongoDB document: {stored:?}");
    assert_eq!(stored[0].get_str("_id").ok(), Some("chat-events"));

    // Without MongoDB's configuration the same data folder has no webhook: it was never in SQLite.
    let mut plain = Server::start("all", data.path(), &env[..4]);
    plain.wait_ready().await;
    let reply = client.get(format!("{}/v3/webhooks", plain.app)).header("apikey", FULL).send().await.expect("list");
    assert_eq!(reply.status(), 200);
    let listed: Value = reply.json().await.expect("json");
    assert_eq!(listed["data"].as_array().map(Vec::len), Some(0), "{listed}");
    assert_eq!(plain.terminate().code(), Some(0));
    documents.drop_database().await.expect("dropping the test database");
}

#[tokio::test]
async fn an_unreachable_mongodb_stops_the_start_with_the_setting_named() {
    let data = tempfile::tempdir().expect("temp dir");
    let port = crate::support::free_port();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .arg("all")
        .env_clear()
        .env("COMET_DATA_DIR", data.path())
        .env("COMET_LISTEN", format!("127.0.0.1:{}", crate::support::free_port()))
        .env("COMET_ADMIN_LISTEN", format!("127.0.0.1:{}", crate::support::free_port()))
        .env("COMET_MONGODB_URL", format!("mongodb://comet@127.0.0.1:{port}/?directConnection=true"))
        .env("COMET_MONGODB_PASSWORD", "s3cret-value")
        .output()
        .expect("comet-server runs");
    assert!(!output.status.success(), "it must not start without its MongoDB");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("COMET_MONGODB_URL"), "names the setting: {stderr}");
    assert!(!stderr.contains("s3cret-value"), "never prints the password: {stderr}");
}

impl Receiver {
    /// The payloads answered 200 whose trigger is `trigger`, in arrival order.
    fn payloads_of(&self, trigger: &str) -> Vec<Value> {
        let received = self.received.lock().expect("received");
        received
            .requests
            .iter()
            .filter(|(_, payload, status)| *status == 200 && payload["trigger"] == trigger)
            .map(|(_, payload, _)| payload.clone())
            .collect()
    }
}

/// A PATCH with the app key (and `onBehalfOf`), its status and body.
async fn patch(client: &reqwest::Client, url: String, on_behalf_of: Option<&str>, body: Value) -> (u16, Value) {
    let mut request = client.patch(url).header("apikey", FULL).json(&body);
    if let Some(uid) = on_behalf_of {
        request = request.header("onBehalfOf", uid);
    }
    let response = request.send().await.expect("PATCH");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn presence_joins_and_ownership_transfers_reach_a_subscribed_webhook_in_cometchat_s_envelope() {
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

    let data = tempfile::tempdir().expect("temp dir");
    let receiver = Receiver::start(0, Duration::ZERO).await;
    let env = embedded_env(&[("COMET_GATEWAY_PRESENCE_GRACE_MS", "200")]);
    let mut server = Server::start("all", data.path(), &env);
    server.wait_ready().await;
    let client = reqwest::Client::new();
    let app = server.app.clone();
    let body = json!({
        "id": "people", "name": "people", "webhookURL": format!("http://{}/hook", receiver.address),
        "triggers": ["user_connection_status_changed", "group_owner_transferred", "group_member_joined"],
    });
    let (status, reply) = post(&client, format!("{app}/v3/webhooks"), &[("apikey", FULL)], body).await;
    assert_eq!(status, 200, "{reply}");
    for uid in ["alice", "bob", "carol"] {
        let (status, body) =
            post(&client, format!("{app}/v3/users"), &[("apikey", FULL)], json!({"uid": uid, "name": uid})).await;
        assert_eq!(status, 200, "{body}");
    }
    let group = json!({"guid": "crew", "name": "crew", "type": "public", "owner": "alice"});
    let (status, body) = post(&client, format!("{app}/v3/groups"), &[("apikey", FULL)], group).await;
    assert_eq!(status, 200, "{body}");
    let members = json!({"participants": ["bob"]});
    let (status, body) = post(&client, format!("{app}/v3/groups/crew/members"), &[("apikey", FULL)], members).await;
    assert_eq!(status, 200, "{body}");

    // Refused transfers change nothing: a non-member heir, a caller that is not the owner, a bad body.
    let owner_url = format!("{app}/v3/groups/crew/owner");
    let (status, body) = patch(&client, owner_url.clone(), None, json!({"uid": "carol"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (404, Some("ERR_MEMBER_NOT_FOUND")), "{body}");
    let (status, body) = patch(&client, owner_url.clone(), Some("bob"), json!({"uid": "bob"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("ERR_GROUP_NOT_ALLOWED")), "{body}");
    let (status, body) = patch(&client, owner_url.clone(), None, json!({"uid": "bob", "extra": 1})).await;
    assert_eq!(status, 400, "{body}");
    // The owner hands the group to bob, who becomes an admin.
    let (status, body) = patch(&client, owner_url.clone(), Some("alice"), json!({"uid": "bob"})).await;
    assert_eq!((status, body["data"]["owner"].as_str()), (200, Some("bob")), "{body}");
    let member = client
        .get(format!("{app}/v3/groups/crew/members"))
        .header("apikey", FULL)
        .send()
        .await
        .expect("members")
        .json::<Value>()
        .await
        .expect("json");
    let bob = member["data"].as_array().expect("members").iter().find(|m| m["uid"] == "bob").cloned();
    assert_eq!(bob.map(|bob| bob["scope"].clone()), Some(json!("admin")), "{member}");

    // carol joins the public group by adding herself; adding anyone else as a non-member is refused.
    let members_url = format!("{app}/v3/groups/crew/members");
    let headers = [("apikey", FULL), ("onBehalfOf", "carol")];
    let (status, body) = post(&client, members_url.clone(), &headers, json!({"participants": ["alice"]})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("ERR_GROUP_NOT_ALLOWED")), "{body}");
    let (status, body) = post(&client, members_url.clone(), &headers, json!({"participants": ["carol"]})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["participants"]["carol"]["success"], true, "{body}");
    wait_for("the join delivery", || !receiver.payloads_of("group_member_joined").is_empty()).await;
    let joined = receiver.payloads_of("group_member_joined");
    assert_eq!(joined.len(), 1, "{joined:?}");
    assert_eq!(joined[0]["data"]["group"]["guid"], "crew", "{joined:?}");
    assert_eq!(joined[0]["data"]["member"]["uid"], "carol", "{joined:?}");
    assert_eq!(joined[0]["data"]["member"]["scope"], "participant", "{joined:?}");
    assert_eq!(joined[0]["webhook"], "people", "{joined:?}");

    wait_for("the ownership transfer delivery", || !receiver.payloads_of("group_owner_transferred").is_empty()).await;
    let transferred = receiver.payloads_of("group_owner_transferred");
    assert_eq!(transferred.len(), 1, "one transfer, the refused ones fired nothing: {transferred:?}");
    let payload = &transferred[0];
    assert_eq!(payload["webhook"], "people", "{payload}");
    assert!(payload.get("appId").is_some() && payload.get("region").is_some(), "{payload}");
    assert_eq!(payload["data"]["group"]["guid"], "crew", "{payload}");
    assert_eq!(payload["data"]["group"]["owner"], "bob", "{payload}");
    assert_eq!(payload["data"]["newOwner"]["uid"], "bob", "{payload}");
    assert_eq!(payload["data"]["oldOwner"]["uid"], "alice", "{payload}");

    // alice connects (online) and leaves (offline after the grace period).
    let (status, token) =
        post(&client, format!("{app}/v3/users/alice/auth_tokens"), &[("apikey", FULL)], json!({})).await;
    assert_eq!(status, 200, "{token}");
    let token = token["data"]["authToken"].as_str().expect("authToken").to_owned();
    let mut request = format!("{}/v3/ws", app.replacen("http://", "ws://", 1)).into_client_request().expect("request");
    request.headers_mut().insert("authtoken", token.parse().expect("header"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("WebSocket connects");
    let hello = socket.next().await.expect("a frame").expect("hello");
    assert!(hello.to_text().expect("text").contains("hello"), "{hello:?}");
    wait_for("the online delivery", || !receiver.payloads_of("user_connection_status_changed").is_empty()).await;
    socket.close(None).await.expect("close");
    while socket.next().await.is_some_and(|frame| frame.is_ok()) {}
    wait_for("the offline delivery", || receiver.payloads_of("user_connection_status_changed").len() >= 2).await;
    let statuses = receiver.payloads_of("user_connection_status_changed");
    assert_eq!(statuses.len(), 2, "one online, one offline: {statuses:?}");
    for (payload, status) in statuses.iter().zip(["online", "offline"]) {
        assert_eq!(payload["trigger"], "user_connection_status_changed", "{payload}");
        assert_eq!(payload["webhook"], "people", "{payload}");
        let user = &payload["data"]["user"];
        assert_eq!((user["uid"].as_str(), user["status"].as_str()), (Some("alice"), Some(status)), "{payload}");
        let seconds = user["lastActiveAt"].as_i64().expect("lastActiveAt");
        assert!(seconds > 1_600_000_000 && seconds < 10_000_000_000, "Unix seconds, not ms: {payload}");
    }
    assert_eq!(server.terminate().code(), Some(0));
}
