//! The WebSocket gateway as clients and operators meet it: two gateway nodes + api + relay on MariaDB, tansu and
//! Redis (from `bash .ci/services.sh`); a node killed mid-stream; presence, typing, receipts; bad frames; and
//! the embedded `all` mode. Every wait is for a frame or condition, bounded by a deadline.

use std::process::Command;
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::support::{Server, fresh_mysql_database, migrate, post, unique};

const FULL: &str = "gateway-test-full-key";
const AUTH: &str = "gateway-test-auth-key";
/// The longest any single expected frame may take.
const FRAME_WAIT: Duration = Duration::from_secs(20);

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

fn ws_url(server: &Server) -> String {
    format!("{}/v3/ws", server.app.replacen("http://", "ws://", 1))
}

/// A connected test client that has read its `hello`.
pub(crate) struct Client {
    socket: Socket,
    name: String,
}

impl Client {
    pub(crate) async fn connect(server: &Server, token: &str, name: &str) -> Client {
        let mut request = ws_url(server).into_client_request().expect("request");
        request.headers_mut().insert("authtoken", HeaderValue::from_str(token).expect("header"));
        let (socket, _) = tokio_tungstenite::connect_async(request).await.expect("WebSocket connects");
        let mut client = Client { socket, name: name.to_owned() };
        let hello = client.next().await;
        assert_eq!(hello["type"], "hello", "{name}: {hello}");
        client
    }

    /// Connects and resyncs `cursors` (none: starts live), returning the frames up to `resync.done`.
    pub(crate) async fn join(server: &Server, token: &str, name: &str, cursors: Value) -> (Client, Vec<Value>) {
        let mut client = Client::connect(server, token, name).await;
        client.send(json!({"type": "resync", "conversations": cursors})).await;
        let frames = client.until(|frame| frame["type"] == "resync.done").await;
        (client, frames)
    }

    async fn send(&mut self, frame: Value) {
        self.socket.send(Message::text(frame.to_string())).await.expect("send");
    }

    /// The next text frame as JSON.
    async fn next(&mut self) -> Value {
        let deadline = Instant::now() + FRAME_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => panic!("{}: no frame within {FRAME_WAIT:?}", self.name),
                Ok(None) => panic!("{}: socket closed", self.name),
                Ok(Some(Err(error))) => panic!("{}: {error}", self.name),
                Ok(Some(Ok(Message::Text(text)))) => return serde_json::from_str(&text).expect("JSON frame"),
                Ok(Some(Ok(Message::Close(frame)))) => panic!("{}: closed with {frame:?}", self.name),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Every frame up to and including the first one matching `done`.
    pub(crate) async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut frames = Vec::new();
        loop {
            let frame = self.next().await;
            let finished = done(&frame);
            frames.push(frame);
            if finished {
                return frames;
            }
        }
    }

    /// The text frames up to the server's close, the close code, and when it came.
    async fn until_closed(&mut self) -> (Vec<Value>, u16, Instant) {
        let deadline = Instant::now() + FRAME_WAIT;
        let mut frames = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => panic!("{}: not closed within {FRAME_WAIT:?}", self.name),
                Ok(Some(Ok(Message::Text(text)))) => frames.push(serde_json::from_str(&text).expect("JSON frame")),
                Ok(Some(Ok(Message::Close(Some(frame))))) => return (frames, u16::from(frame.code), Instant::now()),
                Ok(Some(Ok(Message::Close(None)))) => return (frames, u16::from(CloseCode::Status), Instant::now()),
                Ok(None) | Ok(Some(Err(_))) => panic!("{}: dropped without a close frame", self.name),
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// The close code the server ends the socket with (frames before it are skipped).
    async fn close_code(&mut self) -> u16 {
        let deadline = Instant::now() + FRAME_WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.socket.next()).await {
                Err(_) => panic!("{}: not closed within {FRAME_WAIT:?}", self.name),
                Ok(Some(Ok(Message::Close(Some(frame))))) => return u16::from(frame.code),
                Ok(Some(Ok(Message::Close(None)))) => return u16::from(CloseCode::Status),
                Ok(None) | Ok(Some(Err(_))) => panic!("{}: dropped without a close frame", self.name),
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// The texts of the `message.new` frames among `frames`, in arrival order.
pub(crate) fn texts(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .filter(|frame| frame["type"] == "message.new")
        .map(|frame| frame["data"]["data"]["text"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn seqs(frames: &[Value]) -> Vec<i64> {
    frames
        .iter()
        .filter(|frame| frame["type"] == "message.new")
        .map(|frame| frame["data"]["seq"].as_i64().unwrap_or(-1))
        .collect()
}

pub(crate) fn is_text(text: &'static str) -> impl Fn(&Value) -> bool {
    move |frame| frame["type"] == "message.new" && frame["data"]["data"]["text"] == text
}

/// `comet-server all` (SQLite, in-process bus, in-memory presence) with the test keys and `extra` settings,
/// ready, with a REST client; the data folder lives as long as the returned guard.
pub(crate) async fn embedded(extra: &[(&str, &str)]) -> (Server, Rest, tempfile::TempDir) {
    let data = tempfile::tempdir().expect("temp dir");
    let mut env = vec![("COMET_API_KEY", FULL.to_owned()), ("COMET_AUTH_KEY", AUTH.to_owned())];
    env.extend(extra.iter().map(|(name, value)| (*name, (*value).to_owned())));
    let mut server = Server::start("all", data.path(), &env);
    server.wait_ready().await;
    let rest = Rest { client: reqwest::Client::new(), base: server.app.clone(), key: FULL.to_owned() };
    (server, rest, data)
}

/// REST calls with the app key.
#[derive(Clone)]
pub(crate) struct Rest {
    pub(crate) client: reqwest::Client,
    pub(crate) base: String,
    pub(crate) key: String,
}

impl Rest {
    pub(crate) async fn call(&self, path: &str, on_behalf_of: Option<&str>, body: Value) -> Value {
        let mut headers = vec![("apikey", self.key.as_str())];
        if let Some(uid) = on_behalf_of {
            headers.push(("onBehalfOf", uid));
        }
        let (status, reply) = post(&self.client, format!("{}{path}", self.base), &headers, body.clone()).await;
        assert_eq!(status, 200, "POST {path} {body}: {reply}");
        reply
    }

    /// Creates a user and returns an auth token for it.
    pub(crate) async fn user(&self, uid: &str) -> String {
        self.call("/v3/users", None, json!({"uid": uid, "name": uid})).await;
        self.user_token(uid).await
    }

    /// Another auth token for an existing user.
    async fn user_token(&self, uid: &str) -> String {
        let reply = self.call(&format!("/v3/users/{uid}/auth_tokens"), None, json!({})).await;
        reply["data"]["authToken"].as_str().expect("authToken").to_owned()
    }

    async fn group(&self, guid: &str, owner: &str, members: &[&str]) {
        self.call("/v3/groups", None, json!({"guid": guid, "name": guid, "type": "public", "owner": owner})).await;
        self.call(&format!("/v3/groups/{guid}/members"), None, json!({"participants": members})).await;
    }

    pub(crate) async fn send(&self, from: &str, to: &str, receiver_type: &str, text: &str) -> Value {
        let body = json!({"receiver": to, "receiverType": receiver_type, "type": "text", "data": {"text": text}});
        self.call("/v3/messages", Some(from), body).await["data"].clone()
    }
}

/// api + relay + two gateways on one fresh MariaDB database, tansu and Redis.
struct Cluster {
    api: Server,
    gateways: Vec<Server>,
    relay: Server,
    data: tempfile::TempDir,
    /// The settings every role of this deployment was started with (the gateways' own extras aside).
    env: Vec<(&'static str, String)>,
    rest: Rest,
    prefix: String,
}

async fn cluster(gateway_env: &[(&'static str, &str)]) -> Cluster {
    let database_url = fresh_mysql_database().await;
    let brokers = comet_testkit::kafka_brokers();
    let redis = comet_testkit::redis_url();
    let data = tempfile::tempdir().expect("temp dir");
    let mut env = vec![
        ("COMET_DATABASE_URL", database_url.clone()),
        ("COMET_KAFKA_BROKERS", brokers),
        ("COMET_REDIS_URL", redis),
        ("COMET_API_KEY", FULL.to_owned()),
        ("COMET_AUTH_KEY", AUTH.to_owned()),
    ];
    migrate(&database_url);
    let mut api = Server::start("api", data.path(), &env);
    let mut relay = Server::start("relay", data.path(), &env);
    let shared = env.clone();
    env.extend(gateway_env.iter().map(|(name, value)| (*name, (*value).to_owned())));
    // Tests run concurrently on one Redis: each cluster is its own deployment.
    let prefix = unique("t");
    env.push(("COMET_GATEWAY_NAMESPACE", format!("test-{prefix}")));
    let mut gateways = vec![Server::start("gateway", data.path(), &env), Server::start("gateway", data.path(), &env)];
    api.wait_ready().await;
    relay.wait_ready().await;
    for gateway in &mut gateways {
        gateway.wait_ready().await;
    }
    let rest = Rest { client: reqwest::Client::new(), base: api.app.clone(), key: FULL.to_owned() };
    Cluster { api, gateways, relay, data, env: shared, rest, prefix }
}

impl Cluster {
    /// One more process of this deployment, in `role`, ready.
    async fn start_role(&self, role: &str) -> Server {
        let mut server = Server::start(role, self.data.path(), &self.env);
        server.wait_ready().await;
        server
    }

    /// Alice, Bob and Carol with their tokens, all three in the group `<prefix>team` (owner Alice).
    async fn team(&self) -> [(String, String); 3] {
        let mut team = Vec::new();
        for name in ["alice", "bob", "carol"] {
            let uid = format!("{}{name}", self.prefix);
            let token = self.rest.user(&uid).await;
            team.push((uid, token));
        }
        let members = [team[1].0.as_str(), team[2].0.as_str()];
        self.rest.group(&format!("{}team", self.prefix), &team[0].0, &members).await;
        team.try_into().expect("three users")
    }
}

#[tokio::test]
async fn two_nodes_deliver_every_message_to_every_socket_once_in_seq_order() {
    let cluster = cluster(&[]).await;
    let (rest, [node1, node2]) = (&cluster.rest, [&cluster.gateways[0], &cluster.gateways[1]]);
    let [(alice, alice_token), (bob, bob_token), (carol, carol_token)] = cluster.team().await;

    // Alice on node 1 (plus a second device on node 2); Bob on node 2 and again on node 1; Carol on node 2.
    let (mut alice_phone, _) = Client::join(node1, &alice_token, "alice@1", json!([])).await;
    let (mut alice_laptop, _) = Client::join(node2, &alice_token, "alice@2", json!([])).await;
    let (mut bob_phone, _) = Client::join(node2, &bob_token, "bob@2", json!([])).await;
    let (mut bob_laptop, _) = Client::join(node1, &bob_token, "bob@1", json!([])).await;
    let (mut carol_phone, _) = Client::join(node2, &carol_token, "carol@2", json!([])).await;

    let sent: Vec<String> = (1..=10).map(|n| format!("direct {n}")).collect();
    for text in &sent {
        rest.send(&alice, &bob, "user", text).await;
    }
    rest.send(&alice, &bob, "user", "direct end").await;
    for client in [&mut alice_phone, &mut alice_laptop, &mut bob_phone, &mut bob_laptop] {
        let frames = client.until(is_text("direct end")).await;
        let mut expected = sent.clone();
        expected.push("direct end".to_owned());
        assert_eq!(texts(&frames), expected, "{}: every direct message once, in order", client.name);
        assert_eq!(seqs(&frames), (1..=11).collect::<Vec<_>>(), "{}", client.name);
    }

    let guid = format!("{}team", cluster.prefix);
    rest.send(&bob, &guid, "group", "group 1").await;
    rest.send(&carol, &guid, "group", "group 2").await;
    for client in [&mut alice_phone, &mut alice_laptop, &mut bob_phone, &mut bob_laptop, &mut carol_phone] {
        let frames = client.until(is_text("group 2")).await;
        // For Carol this also shows the direct messages never reached her.
        assert_eq!(texts(&frames), vec!["group 1", "group 2"], "{}: both group messages once", client.name);
        assert_eq!(seqs(&frames), vec![1, 2], "{}", client.name);
    }
    wait_for_metric(node1, |line| {
        line.starts_with("comet_kafka_consumer_lag{group=\"gateway\",topic=\"comet.messages\"")
    })
    .await;

    // Issue #17, item 6: every comet_* metric the rendered alert rules and Grafana dashboards name is one that
    // this deployment's roles export, with the labels the rules select on.
    let webhooks = cluster.start_role("webhooks").await;
    let mut exported = std::collections::BTreeMap::<String, String>::new();
    let roles = [("api", &cluster.api), ("relay", &cluster.relay), ("gateway", node1), ("gateway", node2)];
    for (role, server) in roles.into_iter().chain([("webhooks", &webhooks)]) {
        let text =
            reqwest::get(format!("{}/metrics", server.admin)).await.expect("metrics").text().await.expect("text");
        for name in exported_metric_names(&text) {
            exported.entry(name).or_insert_with(|| role.to_owned());
        }
        if role == "api" {
            assert!(
                text.contains("comet_http_requests_total{method=\"POST\",route=\"/v3/messages\",status=\"2"),
                "the api counts sends under their route template:\n{text}"
            );
            assert!(!text.contains(&format!("route=\"/v3/users/{}", cluster.prefix)), "a raw path became a label");
        }
        if role == "relay" {
            assert!(
                !text.contains("comet_kafka_messages_produced_total{topic=\"comet.messages\"} 0\n"),
                "the relay counts what Kafka acknowledged:\n{text}"
            );
        }
    }
    let node1_text =
        reqwest::get(format!("{}/metrics", node1.admin)).await.expect("metrics").text().await.expect("text");
    assert!(
        !node1_text.contains("comet_kafka_messages_consumed_total{group=\"gateway\",topic=\"comet.messages\"} 0\n"),
        "the gateway counts the events it read:\n{node1_text}"
    );
    let missing: Vec<String> = names_the_rules_and_dashboards_use()
        .into_iter()
        .filter(|(name, _)| !exported.contains_key(name))
        .map(|(name, file)| format!("{name} (named in {file})"))
        .collect();
    assert!(missing.is_empty(), "metrics named by templates/ that no role exports: {missing:#?}");
}

/// The metric names of a Prometheus text page, histogram series under their family's name.
fn exported_metric_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .flat_map(|name| {
            let family = ["_bucket", "_sum", "_count"].iter().find_map(|suffix| name.strip_suffix(suffix));
            [Some(name.to_owned()), family.map(str::to_owned)].into_iter().flatten()
        })
        .collect()
}

/// Every `comet_*` metric name in the alert rules and dashboard templates, with the file that names it. A name is
/// `comet_` not preceded by a word character (so `container_label_io_comet_service`, a cAdvisor label, is not
/// one); recording rules (`comet:…`) are the rules' own.
fn names_the_rules_and_dashboards_use() -> std::collections::BTreeMap<String, String> {
    let templates = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../templates");
    let mut files = vec![templates.join("prometheus/alerts.yml.j2")];
    let dashboards = std::fs::read_dir(templates.join("grafana/dashboards")).expect("the dashboard templates");
    files.extend(dashboards.filter_map(Result::ok).map(|entry| entry.path()));
    let mut names = std::collections::BTreeMap::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a template");
        let label = file.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
        let bytes = text.as_bytes();
        let mut from = 0;
        while let Some(found) = text[from..].find("comet_") {
            let start = from + found;
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |length| start + length);
            let preceded = start > 0 && (bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            // A bare `comet_` is prose ("the comet_ contract"), not a name.
            if !preceded && end > start + "comet_".len() {
                names.entry(text[start..end].to_owned()).or_insert_with(|| label.clone());
            }
            from = end;
        }
    }
    assert!(names.len() > 10, "too few metric names found in {}: {names:?}", templates.display());
    names
}

#[tokio::test]
async fn a_killed_node_s_users_resync_on_the_other_node_exactly_once_and_its_lone_users_go_offline() {
    let cluster =
        cluster(&[("COMET_GATEWAY_PRESENCE_TTL_MS", "3000"), ("COMET_GATEWAY_PRESENCE_GRACE_MS", "200")]).await;
    let rest = &cluster.rest;
    let [(alice, alice_token), (bob, bob_token), (carol, carol_token)] = cluster.team().await;
    let [mut node1, node2]: [Server; 2] = cluster.gateways.try_into().ok().expect("two gateways");
    let node2 = &node2;

    let (mut watcher, _) = Client::join(node2, &alice_token, "alice@2", json!([])).await;
    let (mut bob_socket, _) = Client::join(&node1, &bob_token, "bob@1", json!([])).await;
    let (_carol_socket, _) = Client::join(&node1, &carol_token, "carol@1", json!([])).await;
    let online =
        watcher.until(|frame| frame["type"] == "presence.online" && frame["data"]["uid"] == carol.as_str()).await;
    assert!(!online.is_empty());

    for n in 1..=5 {
        rest.send(&alice, &bob, "user", &format!("before {n}")).await;
    }
    let frames = bob_socket.until(is_text("before 5")).await;
    let conversation = frames.last().expect("frame")["data"]["conversationId"].as_str().expect("id").to_owned();
    assert_eq!(seqs(&frames), vec![1, 2, 3, 4, 5]);

    // Node 1 dies without a goodbye; messages keep coming while Bob is away.
    node1.child.kill().expect("kill node 1");
    let _ = node1.child.wait();
    for n in 6..=15 {
        rest.send(&alice, &bob, "user", &format!("missed {n}")).await;
    }
    let (mut bob_again, replayed) =
        Client::join(node2, &bob_token, "bob@2", json!([{"conversationId": conversation, "lastSeq": 5}])).await;
    assert_eq!(seqs(&replayed), (6..=15).collect::<Vec<_>>(), "the gap, replayed once, in order");
    let done = replayed.last().expect("resync.done");
    assert_eq!(done["data"]["conversations"][0]["status"], "replayed", "{done}");
    for n in 16..=20 {
        rest.send(&alice, &bob, "user", &format!("after {n}")).await;
    }
    let live = bob_again.until(is_text("after 20")).await;
    assert_eq!(seqs(&live), (16..=20).collect::<Vec<_>>(), "live resumes after the replay with no duplicate");

    // Carol was only on node 1: once its heartbeat expires, node 2 sweeps it and Alice hears she went offline.
    // Bob reconnected to node 2, so he stays online.
    let frames =
        watcher.until(|frame| frame["type"] == "presence.offline" && frame["data"]["uid"] == carol.as_str()).await;
    rest.send(&bob, &alice, "user", "sentinel").await;
    let mut frames = frames;
    frames.extend(watcher.until(is_text("sentinel")).await);
    assert!(
        !frames.iter().any(|frame| frame["type"] == "presence.offline" && frame["data"]["uid"] == bob.as_str()),
        "bob reconnected elsewhere and must not go offline: {frames:?}"
    );
}

#[tokio::test]
async fn a_draining_node_closes_in_batches_with_a_reconnect_hint_and_its_clients_resync_elsewhere_exactly_once() {
    let cluster = cluster(&[("COMET_GATEWAY_DRAIN_MS", "2000"), ("COMET_GATEWAY_RECONNECT_JITTER_MS", "300")]).await;
    let rest = &cluster.rest;
    let [(alice, _), (bob, bob_token), _] = cluster.team().await;
    let [node1, node2]: [Server; 2] = cluster.gateways.try_into().ok().expect("two gateways");
    let mut sockets = Vec::new();
    for n in 0..8 {
        sockets.push(Client::join(&node1, &bob_token, &format!("bob@1#{n}"), json!([])).await.0);
    }
    rest.send(&alice, &bob, "user", "before").await;
    let mut seen: Vec<Vec<i64>> = Vec::new();
    let mut conversation = String::new();
    for socket in &mut sockets {
        let frames = socket.until(is_text("before")).await;
        conversation = frames.last().expect("frame")["data"]["conversationId"].as_str().expect("id").to_owned();
        seen.push(seqs(&frames));
    }

    // Node 1 drains while Alice keeps sending.
    let stop = tokio::task::spawn_blocking(move || node1.terminate());
    let sender = {
        let (rest, alice, bob) = (cluster.rest.clone(), alice.clone(), bob.clone());
        tokio::spawn(async move {
            for n in 1..=20 {
                rest.send(&alice, &bob, "user", &format!("during {n}")).await;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let mut closes = Vec::new();
    for (socket, seqs_seen) in sockets.iter_mut().zip(&mut seen) {
        let (frames, code, at) = socket.until_closed().await;
        assert_eq!(code, 1001, "{}: {frames:?}", socket.name);
        let hint = frames.last().expect("a frame before the close");
        assert_eq!(hint["type"], "reconnect", "{}: the last frame is the hint: {frames:?}", socket.name);
        assert!(hint["data"]["afterMs"].as_u64().is_some_and(|after| after <= 300), "{hint}");
        seqs_seen.extend(seqs(&frames));
        closes.push(at);
    }
    assert_eq!(stop.await.expect("joined").code(), Some(0));
    let (first, last) = (closes.iter().min().expect("closes"), closes.iter().max().expect("closes"));
    assert!(
        last.duration_since(*first) >= std::time::Duration::from_millis(400),
        "8 sockets closed in batches one per 100 ms, not at once: {:?}",
        last.duration_since(*first)
    );
    sender.await.expect("sender");

    // Each reconnects to node 2 from the last seq it holds: the rest, once, in order.
    for (n, seqs_seen) in seen.iter_mut().enumerate() {
        let last = seqs_seen.last().copied().unwrap_or(0);
        let cursor = json!([{"conversationId": conversation, "lastSeq": last}]);
        let (mut again, replayed) = Client::join(&node2, &bob_token, &format!("bob@2#{n}"), cursor).await;
        seqs_seen.extend(seqs(&replayed));
        if seqs_seen.last() != Some(&21) {
            seqs_seen.extend(seqs(&again.until(is_text("during 20")).await));
        }
        assert_eq!(*seqs_seen, (1..=21).collect::<Vec<_>>(), "socket {n}: no gap, no duplicate");
    }
}

#[tokio::test]
async fn presence_typing_and_receipts_cross_nodes() {
    let cluster = cluster(&[("COMET_GATEWAY_TYPING_TTL_MS", "800"), ("COMET_GATEWAY_PRESENCE_GRACE_MS", "300")]).await;
    let rest = &cluster.rest;
    let (node1, node2) = (&cluster.gateways[0], &cluster.gateways[1]);
    let alice = format!("{}alice", cluster.prefix);
    let bob = format!("{}bob", cluster.prefix);
    let (alice_token, bob_token) = (rest.user(&alice).await, rest.user(&bob).await);
    rest.send(&bob, &alice, "user", "hello").await;

    let (mut alice_socket, _) = Client::join(node1, &alice_token, "alice@1", json!([])).await;
    let (mut bob_socket, _) = Client::join(node2, &bob_token, "bob@2", json!([])).await;
    alice_socket.until(|frame| frame["type"] == "presence.online" && frame["data"]["uid"] == bob.as_str()).await;
    alice_socket.send(json!({"type": "presence.query", "uids": [bob, format!("{}nobody", cluster.prefix)]})).await;
    let state = alice_socket.until(|frame| frame["type"] == "presence.state").await.pop().expect("state");
    assert_eq!(state["data"][&bob], "online", "{state}");
    assert_eq!(state["data"][format!("{}nobody", cluster.prefix)], "offline", "{state}");

    // Typing: started, never ended by the client, so it ends by itself after the TTL.
    bob_socket.send(json!({"type": "typing.start", "receiver": alice, "receiverType": "user"})).await;
    let started = alice_socket.until(|frame| frame["type"] == "typing.started").await.pop().expect("started");
    assert_eq!(started["data"]["sender"], bob.as_str());
    let ended = alice_socket.until(|frame| frame["type"] == "typing.ended").await.pop().expect("ended");
    assert_eq!(ended["data"]["sender"], bob.as_str());

    // Receipts: Alice reads on node 1; Bob, on node 2, gets receipt.read; Alice gets mark.done.
    rest.send(&bob, &alice, "user", "read me").await;
    alice_socket.until(is_text("read me")).await;
    alice_socket.send(json!({"type": "mark.read", "receiver": bob, "receiverType": "user"})).await;
    let done = alice_socket.until(|frame| frame["type"] == "mark.done").await.pop().expect("mark.done");
    assert_eq!(done["data"]["readSeq"], 2, "{done}");
    let receipt = bob_socket.until(|frame| frame["type"] == "receipt.read").await.pop().expect("receipt");
    assert_eq!(receipt["data"]["uid"], alice.as_str());
    assert_eq!(receipt["data"]["seq"], 2);

    // Bob closes his only socket: after the grace period Alice hears he went offline.
    bob_socket.socket.close(None).await.expect("close");
    alice_socket.until(|frame| frame["type"] == "presence.offline" && frame["data"]["uid"] == bob.as_str()).await;

    // Revoking Alice's token signs her socket out (4001) on whichever node holds it.
    let tokens = rest.client.get(format!("{}/v3/users/{alice}/auth_tokens", rest.base)).header("apikey", &rest.key);
    let tokens: Value = tokens.send().await.expect("list tokens").json().await.expect("JSON");
    let id = tokens["data"][0]["id"].as_str().expect("token id");
    let revoked =
        rest.client.delete(format!("{}/v3/users/{alice}/auth_tokens/{id}", rest.base)).header("apikey", &rest.key);
    assert_eq!(revoked.send().await.expect("revoke").status().as_u16(), 200);
    assert_eq!(alice_socket.close_code().await, 4001);
}

async fn handshake_status(url: &str, headers: &[(&'static str, &str)]) -> u16 {
    let headers: Vec<(&'static str, &[u8])> = headers.iter().map(|(name, value)| (*name, value.as_bytes())).collect();
    handshake_status_raw(url, &headers).await
}

/// [`handshake_status`] with header values as bytes (not always text), each appended (so a name may repeat).
async fn handshake_status_raw(url: &str, headers: &[(&'static str, &[u8])]) -> u16 {
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().append(*name, HeaderValue::from_bytes(value).expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => 101,
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(error) => panic!("unexpected handshake error: {error}"),
    }
}

#[tokio::test]
async fn the_embedded_server_serves_the_protocol_and_bad_input_gets_errors_not_crashes() {
    let (server, rest, _data) = embedded(&[
        ("COMET_GATEWAY_ALLOWED_ORIGINS", "https://chat.example.com"),
        ("COMET_GATEWAY_MAX_FRAME_BYTES", "1024"),
    ])
    .await;
    let (alice_token, _) = (rest.user("alice").await, rest.user("bob").await);
    let url = ws_url(&server);

    // Handshakes: no token, a bad token, a foreign Origin are refused before the upgrade.
    assert_eq!(handshake_status(&url, &[]).await, 401);
    assert_eq!(handshake_status(&url, &[("authtoken", "not-a-token")]).await, 401);
    // A malformed or repeated token header, or a token given both ways, is refused, never resolved by picking
    // one (issue #17): a valid token beside it changes nothing.
    let token = alice_token.as_bytes();
    let offered = format!("comet.v1, authtoken.{alice_token}");
    for headers in [
        vec![("authtoken", token), ("authtoken", token)],
        vec![("authtoken", &b"al\xffice"[..])],
        vec![("authtoken", &b"   "[..])],
        vec![("authtoken", token), ("sec-websocket-protocol", offered.as_bytes())],
    ] {
        assert_eq!(handshake_status_raw(&url, &headers).await, 400, "{headers:?}");
    }
    assert_eq!(handshake_status(&url, &[("authtoken", &alice_token), ("origin", "https://evil.example")]).await, 403);
    assert_eq!(
        handshake_status(&url, &[("authtoken", &alice_token), ("origin", "https://chat.example.com")]).await,
        101
    );
    let plain = reqwest::get(format!("{}/v3/ws", server.app)).await.expect("GET");
    assert_eq!(plain.status().as_u16(), 400, "a plain GET is not a WebSocket");

    // Browsers send the token as a subprotocol; the server selects comet.v1.
    let mut request = url.as_str().into_client_request().expect("request");
    let offered = format!("comet.v1, authtoken.{alice_token}");
    request.headers_mut().insert("sec-websocket-protocol", HeaderValue::from_str(&offered).expect("header"));
    let (browser, response) = tokio_tungstenite::connect_async(request).await.expect("subprotocol auth");
    assert_eq!(response.headers().get("sec-websocket-protocol").and_then(|v| v.to_str().ok()), Some("comet.v1"));
    let mut browser = Client { socket: browser, name: "browser".to_owned() };
    assert_eq!(browser.next().await["type"], "hello");

    // Bad frames get error frames and the socket keeps working.
    let mut good = Client::connect(&server, &alice_token, "good").await;
    for (frame, code) in [
        ("{not json", "ERR_FRAME_INVALID"),
        (r#"{"type":"launch"}"#, "ERR_FRAME_UNKNOWN_TYPE"),
        (r#"{"type":"typing.start","receiver":"bob"}"#, "ERR_FRAME_INVALID"),
        (r#"{"type":"typing.start","receiver":"nogroup","receiverType":"group"}"#, "ERR_NOT_A_MEMBER"),
        (r#"{"type":"mark.read","receiver":"bob","receiverType":"user"}"#, "ERR_CONVERSATION_NOT_FOUND"),
    ] {
        good.socket.send(Message::text(frame)).await.expect("send");
        let error = good.next().await;
        assert_eq!(error["type"], "error", "{frame}: {error}");
        assert_eq!(error["data"]["code"], code, "{frame}: {error}");
        if code == "ERR_NOT_A_MEMBER" {
            assert_eq!(error["data"]["about"], "typing.start", "{error}");
        }
    }
    good.send(json!({"type": "resync", "conversations": [{"conversationId": "bob_user_carol", "lastSeq": 0}]})).await;
    let done = good.until(|frame| frame["type"] == "resync.done").await.pop().expect("done");
    assert_eq!(done["data"]["conversations"][0]["status"], "refused", "not alice's conversation: {done}");

    // An oversize frame closes that socket with 1009; ten invalid frames in a row close with 4003.
    let mut big = Client::connect(&server, &alice_token, "big").await;
    big.socket.send(Message::text("x".repeat(4096))).await.expect("send");
    assert_eq!(big.close_code().await, 1009);
    let mut noisy = Client::connect(&server, &alice_token, "noisy").await;
    for _ in 0..10 {
        noisy.socket.send(Message::text("nope")).await.expect("send");
    }
    assert_eq!(noisy.close_code().await, 4003);

    // The node keeps serving: a REST send reaches the good socket and the browser one, and ping answers.
    rest.send("bob", "alice", "user", "still here").await;
    assert_eq!(texts(&good.until(is_text("still here")).await), vec!["still here"]);
    browser.send(json!({"type": "ping", "id": 1})).await;
    let mut frames = browser.until(|frame| frame["type"] == "pong").await;
    assert_eq!(frames.last().expect("pong")["data"]["id"], 1);
    if !texts(&frames).contains(&"still here".to_owned()) {
        // Held until the browser's first frame (or the hold timeout), then delivered.
        frames.extend(browser.until(is_text("still here")).await);
    }
    assert_eq!(texts(&frames), vec!["still here"], "delivered once: {frames:?}");

    let metrics = reqwest::get(format!("{}/metrics", server.admin)).await.expect("metrics").text().await.expect("text");
    // Two without a valid token, four with a malformed or repeated one.
    assert!(metrics.contains("comet_gateway_connection_errors_total{reason=\"auth\"} 6"), "{metrics}");
    assert!(metrics.contains("comet_gateway_connection_errors_total{reason=\"protocol\"} 2"), "{metrics}");
    assert!(!metrics.contains("comet_gateway_deliveries_total 0\n"), "{metrics}");

    // SIGTERM: every socket gets 1001 (go away, reconnect elsewhere) before the process exits 0, including one
    // that has not sent its first frame yet (its live frames are still held).
    let mut held = Client::connect(&server, &alice_token, "held").await;
    assert_eq!(server.terminate().code(), Some(0));
    assert_eq!(good.close_code().await, 1001);
    assert_eq!(held.close_code().await, 1001);
}

#[test]
fn invalid_gateway_settings_exit_2_naming_the_variable() {
    for (name, value) in [
        ("COMET_GATEWAY_QUEUE_FRAMES", "0"),
        ("COMET_GATEWAY_PING_INTERVAL_MS", "soon"),
        ("COMET_REDIS_MODE", "sentinel"),
    ] {
        let output = Command::new(env!("CARGO_BIN_EXE_comet-server"))
            .arg("gateway")
            .env_clear()
            .env("COMET_REDIS_URL", "redis://127.0.0.1:1")
            .env(name, value)
            .output()
            .expect("runs");
        assert_eq!(output.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(name), "{name}={value}: {stderr}");
    }
}

/// Polls the admin `/metrics` until a line matches (a counter reached its value, a gauge appeared).
async fn wait_for_metric(server: &Server, wanted: impl Fn(&str) -> bool) {
    let deadline = Instant::now() + FRAME_WAIT;
    loop {
        let metrics = reqwest::get(format!("{}/metrics", server.admin)).await.expect("metrics").text().await;
        if metrics.as_deref().is_ok_and(|text| text.lines().any(&wanted)) {
            return;
        }
        assert!(Instant::now() < deadline, "the wanted line did not appear in /metrics within {FRAME_WAIT:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_client_that_stops_reading_is_dropped_as_a_slow_consumer_and_others_are_unaffected() {
    let (server, rest, _data) = embedded(&[("COMET_GATEWAY_QUEUE_FRAMES", "4")]).await;
    let (slow_token, bob_token) = (rest.user("slow").await, rest.user("bob").await);
    rest.user("alice").await;

    // A socket with a tiny receive buffer that never reads after its first frame.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small receive buffer");
    let address = server.app.trim_start_matches("http://").parse().expect("address");
    let stream = socket.connect(address).await.expect("connect");
    let mut request = ws_url(&server).into_client_request().expect("request");
    request.headers_mut().insert("authtoken", HeaderValue::from_str(&slow_token).expect("header"));
    let (slow, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)).await.expect("handshake");
    let mut slow = Client { socket: slow, name: "slow".to_owned() };
    assert_eq!(slow.next().await["type"], "hello");
    slow.send(json!({"type": "ping"})).await;
    let (mut bob, _) = Client::join(&server, &bob_token, "bob", json!([])).await;

    // 60 KiB messages fill the kernel buffers quickly; then the gateway's queue of 4 fills and it gives up on
    // the slow socket instead of buffering more.
    let big = "x".repeat(60 * 1024);
    for _ in 0..200 {
        rest.send("alice", "slow", "user", &big).await;
    }
    wait_for_metric(&server, |line| line == "comet_gateway_connection_errors_total{reason=\"slow_consumer\"} 1").await;
    rest.send("alice", "bob", "user", "unaffected").await;
    assert_eq!(texts(&bob.until(is_text("unaffected")).await), vec!["unaffected"]);
    drop(slow);
}

#[tokio::test]
async fn a_socket_that_answers_no_ping_is_closed_after_the_idle_timeout() {
    let (server, rest, _data) =
        embedded(&[("COMET_GATEWAY_PING_INTERVAL_MS", "100"), ("COMET_GATEWAY_IDLE_TIMEOUT_MS", "400")]).await;
    let token = rest.user("quiet").await;
    let mut quiet = Client::connect(&server, &token, "quiet").await;
    // The client reads nothing, so it answers no ping; the next frame it reads is the server's close.
    wait_for_metric(&server, |line| line == "comet_gateway_connection_errors_total{reason=\"timeout\"} 1").await;
    assert_eq!(quiet.close_code().await, 4002);
    assert_eq!(server.terminate().code(), Some(0));
}

#[tokio::test]
async fn resync_replays_edits_and_deletes_since_the_clients_last_sync() {
    let (server, rest, _data) = embedded(&[]).await;
    let (bob_token, _) = (rest.user("bob").await, rest.user("alice").await);
    let first = rest.send("alice", "bob", "user", "one").await;
    let second = rest.send("alice", "bob", "user", "two").await;
    rest.send("alice", "bob", "user", "three").await;
    // The client synced up to seq 3 at this moment, then went away.
    let synced_at = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_millis();
    let id = |message: &Value| message["id"].as_str().expect("id").to_owned();
    let edited = rest
        .client
        .put(format!("{}/v3/messages/{}", rest.base, id(&first)))
        .header("apikey", FULL)
        .header("onBehalfOf", "alice")
        .json(&json!({"data": {"text": "one, edited"}}))
        .send()
        .await
        .expect("edit");
    assert_eq!(edited.status().as_u16(), 200);
    let deleted = rest
        .client
        .delete(format!("{}/v3/messages/{}", rest.base, id(&second)))
        .header("apikey", FULL)
        .header("onBehalfOf", "alice")
        .send()
        .await
        .expect("delete");
    assert_eq!(deleted.status().as_u16(), 200);
    rest.send("alice", "bob", "user", "four").await;

    let cursor = json!([{"conversationId": "alice_user_bob", "lastSeq": 3, "changesSince": synced_at as u64}]);
    let (_bob, frames) = Client::join(&server, &bob_token, "bob", cursor).await;
    let kinds: Vec<(&str, i64)> = frames
        .iter()
        .filter(|frame| frame["type"] != "resync.done")
        .map(|frame| (frame["type"].as_str().unwrap_or(""), frame["data"]["seq"].as_i64().unwrap_or(-1)))
        .collect();
    assert_eq!(kinds, vec![("message.new", 4), ("message.edited", 1), ("message.deleted", 2)], "{frames:?}");
    assert_eq!(frames[1]["data"]["data"]["text"], "one, edited");
    let done = frames.last().expect("resync.done");
    assert_eq!(
        (done["data"]["conversations"][0]["replayed"].as_u64(), done["data"]["conversations"][0]["changes"].as_u64()),
        (Some(1), Some(2)),
        "{done}"
    );
    assert_eq!(server.terminate().code(), Some(0));
}

#[tokio::test]
async fn presence_and_typing_cross_nodes_on_a_redis_cluster() {
    let urls = comet_testkit::redis_cluster_urls();
    let cluster =
        cluster(&[("COMET_REDIS_URL", &urls), ("COMET_REDIS_MODE", "cluster"), ("COMET_GATEWAY_TYPING_TTL_MS", "800")])
            .await;
    let rest = &cluster.rest;
    let (node1, node2) = (&cluster.gateways[0], &cluster.gateways[1]);
    let [(alice, alice_token), (bob, bob_token), _] = cluster.team().await;

    let (mut alice_socket, _) = Client::join(node1, &alice_token, "alice@1", json!([])).await;
    let (mut bob_socket, _) = Client::join(node2, &bob_token, "bob@2", json!([])).await;
    alice_socket.until(|frame| frame["type"] == "presence.online" && frame["data"]["uid"] == bob.as_str()).await;
    alice_socket.send(json!({"type": "presence.query", "uids": [bob]})).await;
    let state = alice_socket.until(|frame| frame["type"] == "presence.state").await.pop().expect("state");
    assert_eq!(state["data"][&bob], "online", "{state}");

    bob_socket.send(json!({"type": "typing.start", "receiver": alice, "receiverType": "user"})).await;
    alice_socket.until(|frame| frame["type"] == "typing.started" && frame["data"]["sender"] == bob.as_str()).await;
    alice_socket.until(|frame| frame["type"] == "typing.ended" && frame["data"]["sender"] == bob.as_str()).await;

    rest.send(&bob, &alice, "user", "over the cluster").await;
    assert_eq!(texts(&alice_socket.until(is_text("over the cluster")).await), vec!["over the cluster"]);
}

/// Issue #17, item 1, on the WebSocket: `a`→`x_user_z` and `a_user_x`→`z` display alike (`a_user_x_user_z`),
/// and so do the direct conversation of `group` and `zz` and the private group `user_zz`. Live delivery reaches
/// only the conversation's own users; a resync by display id replays only what the caller takes part in and
/// refuses what could mean two conversations; `receiver` + `receiverType` name each exactly.
async fn display_alike_conversations_stay_apart(server: &Server, rest: &Rest) {
    let mut tokens = std::collections::HashMap::new();
    for uid in ["a", "x_user_z", "a_user_x", "z", "group", "zz", "owner"] {
        tokens.insert(uid, rest.user(uid).await);
    }
    let (mut z, _) = Client::join(server, &tokens["z"], "z", json!([])).await;
    let (mut x, _) = Client::join(server, &tokens["x_user_z"], "x_user_z", json!([])).await;
    let (mut group, _) = Client::join(server, &tokens["group"], "group", json!([])).await;
    rest.send("a", "x_user_z", "user", "secret").await;
    rest.send("a_user_x", "z", "user", "other pair").await;
    assert_eq!(texts(&z.until(is_text("other pair")).await), ["other pair"], "z hears only its own pair");
    assert_eq!(texts(&x.until(is_text("secret")).await), ["secret"]);

    let display = json!([{"conversationId": "a_user_x_user_z", "lastSeq": 0}]);
    let (_z2, frames) = Client::join(server, &tokens["z"], "z again", display.clone()).await;
    assert_eq!(texts(&frames), ["other pair"], "{frames:?}");
    let (_a, frames) = Client::join(server, &rest.user_token("a").await, "a", display).await;
    assert_eq!(texts(&frames), ["secret"], "{frames:?}");
    let exact = json!([{"receiver": "a_user_x", "receiverType": "user", "lastSeq": 0}]);
    let (_z3, frames) = Client::join(server, &tokens["z"], "z exact", exact).await;
    assert_eq!(texts(&frames), ["other pair"], "{frames:?}");
    let done = frames.last().expect("resync.done");
    assert_eq!(done["data"]["conversations"][0]["receiver"], "a_user_x", "{done}");

    // The group `user_zz` and the direct conversation of `group` and `zz`.
    let created = json!({"guid": "user_zz", "name": "user_zz", "type": "private", "owner": "owner"});
    rest.call("/v3/groups", None, created).await;
    rest.call("/v3/groups/user_zz/members", None, json!({"participants": ["zz"]})).await;
    rest.send("owner", "user_zz", "group", "group secret").await;
    rest.send("group", "zz", "user", "direct").await;
    assert_eq!(texts(&group.until(is_text("direct")).await), ["direct"], "the non-member hears no group message");
    let display = json!([{"conversationId": "group_user_zz", "lastSeq": 0}]);
    let (_g, frames) = Client::join(server, &tokens["group"], "group again", display.clone()).await;
    assert_eq!(texts(&frames), ["direct"], "{frames:?}");
    // Once `group` is a member too, the display id could mean either: refused, and each is named exactly.
    rest.call("/v3/groups/user_zz/members", None, json!({"participants": ["group"]})).await;
    let (_g2, frames) = Client::join(server, &tokens["group"], "group ambiguous", display).await;
    assert_eq!(texts(&frames), Vec::<String>::new());
    let done = frames.last().expect("resync.done");
    assert_eq!(done["data"]["conversations"][0]["status"], "ambiguous", "{done}");
    let both = json!([
        {"receiver": "zz", "receiverType": "user", "lastSeq": 0},
        {"receiver": "user_zz", "receiverType": "group", "lastSeq": 0},
    ]);
    let (_g3, frames) = Client::join(server, &tokens["group"], "group exact", both).await;
    assert_eq!(texts(&frames), ["direct", "group secret"], "{frames:?}");
}

#[tokio::test]
async fn conversations_that_display_alike_stay_apart_on_the_embedded_server() {
    let (server, rest, _data) = embedded(&[]).await;
    display_alike_conversations_stay_apart(&server, &rest).await;
    assert_eq!(server.terminate().code(), Some(0));
}

#[tokio::test]
async fn conversations_that_display_alike_stay_apart_across_mariadb_kafka_and_redis() {
    let cluster = cluster(&[]).await;
    display_alike_conversations_stay_apart(&cluster.gateways[0], &cluster.rest).await;
}

/// Issue #17, item 7: refused handshakes and the server's own closes are logged at info with their reason, and
/// never with the token.
#[tokio::test]
async fn refused_handshakes_and_server_closes_are_logged_without_the_token() {
    let data = tempfile::tempdir().expect("temp dir");
    let log_path = data.path().join("server.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let env = [("COMET_API_KEY", FULL.to_owned()), ("COMET_AUTH_KEY", AUTH.to_owned())];
    let mut server = Server::start_logging("all", data.path(), &env, log.into());
    server.wait_ready().await;
    let rest = Rest { client: reqwest::Client::new(), base: server.app.clone(), key: FULL.to_owned() };
    let logged = |wanted: &'static str| {
        let log_path = log_path.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let text = std::fs::read_to_string(&log_path).unwrap_or_default();
                if text.lines().any(|line| line.contains(wanted)) {
                    return text;
                }
                assert!(Instant::now() < deadline, "no log line with `{wanted}` in:\n{text}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let forged = "forged-token-that-must-never-be-logged";
    assert_eq!(handshake_status(&ws_url(&server), &[("authtoken", forged)]).await, 401);
    let text = logged("ERR_AUTH_TOKEN_INVALID").await;
    assert!(text.contains("WebSocket handshake refused"), "{text}");

    let token = rest.user("bob").await;
    let mut bob = Client::connect(&server, &token, "bob").await;
    let tokens = rest.client.get(format!("{}/v3/users/bob/auth_tokens", rest.base)).header("apikey", FULL).send();
    let listed: Value = tokens.await.expect("list tokens").json().await.expect("JSON");
    let id = listed["data"][0]["id"].as_str().expect("token id").to_owned();
    let revoked = rest.client.delete(format!("{}/v3/users/bob/auth_tokens/{id}", rest.base)).header("apikey", FULL);
    assert_eq!(revoked.send().await.expect("revoke").status().as_u16(), 200);
    assert_eq!(bob.close_code().await, 4001);
    let text = logged("WebSocket closed by the server").await;
    assert!(
        text.lines().any(|line| line.contains("WebSocket closed by the server") && line.contains("4001")),
        "{text}"
    );
    assert!(!text.contains(forged) && !text.contains(&token), "a token reached the log:\n{text}");
    assert_eq!(server.terminate().code(), Some(0));
}
