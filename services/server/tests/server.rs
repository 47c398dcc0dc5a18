//! The comet-server binary as operators run it: embedded mode, roles, signals, health checks, and the full
//! path to Kafka (tansu) with MariaDB. Servers come from `bash .ci/services.sh`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod bootstrap;
mod copy;
mod custom_api;
mod edge;
mod gateway;
mod moderation;
mod notifications;
mod openapi;
mod support;
mod webhooks;

use support::{Server, free_port, fresh_mysql_database, migrate, post};

const FULL: &str = "server-test-full-key";
const AUTH: &str = "server-test-auth-key";

#[tokio::test]
async fn embedded_mode_generates_keys_serves_the_api_and_stops_cleanly() {
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start("all", data.path(), &[]);
    server.wait_ready().await;
    let keys = std::fs::read_to_string(data.path().join("api-keys.env")).expect("generated keys");
    let full = keys.lines().find_map(|line| line.strip_prefix("COMET_API_KEY=")).expect("full key").to_owned();
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.path().join("api-keys.env")).expect("meta").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    let client = reqwest::Client::new();
    for uid in ["alice", "bob"] {
        let (status, body) =
            post(&client, format!("{}/v3/users", server.app), &[("apikey", &full)], json!({"uid": uid, "name": uid}))
                .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = post(
        &client,
        format!("{}/v3/messages", server.app),
        &[("apikey", &full), ("onBehalfOf", "alice")],
        json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": "hi"}}),
    )
    .await;
    assert_eq!((status, body["data"]["seq"].as_i64()), (200, Some(1)), "{body}");
    let metrics =
        client.get(format!("{}/metrics", server.admin)).send().await.expect("metrics").text().await.expect("text");
    // Counted by method, route template and status (issue #17, item 6), never by the raw path.
    assert!(
        metrics.contains("comet_http_requests_total{method=\"POST\",route=\"/v3/users\",status=\"200\"} 2\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("comet_http_requests_total{method=\"POST\",route=\"/v3/messages\",status=\"200\"} 1\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "comet_http_request_duration_seconds_count{method=\"POST\",route=\"/v3/messages\",status=\"200\"} 1\n"
        ),
        "{metrics}"
    );
    // The relay's retention job reports the rows it keeps after its first pass (nothing is a day old yet).
    let deadline = Instant::now() + Duration::from_secs(30);
    let metrics = loop {
        let metrics =
            client.get(format!("{}/metrics", server.admin)).send().await.expect("metrics").text().await.expect("text");
        if metrics.contains("\ncomet_outbox_rows ") {
            break metrics;
        }
        assert!(Instant::now() < deadline, "no comet_outbox_rows after 30 s: {metrics}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(metrics.contains("\ncomet_outbox_rows_deleted_total 0\n"), "{metrics}");

    let health = Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .arg("health")
        .env_clear()
        .env("COMET_ADMIN_LISTEN", server.admin.trim_start_matches("http://"))
        .status()
        .expect("health runs");
    assert!(health.success(), "health check failed against a ready server");
    // `health PATH` prints the admin port's answer (how `cometctl doctor` reads a role inside its container).
    let admin_only = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_comet-server"))
            .args(["health", path])
            .env_clear()
            .env("COMET_ADMIN_LISTEN", server.admin.trim_start_matches("http://"))
            .output()
            .expect("health runs")
    };
    let printed = admin_only("/metrics");
    assert!(printed.status.success());
    assert!(String::from_utf8_lossy(&printed.stdout).contains("comet_build_info"), "{printed:?}");
    let ready = admin_only("/ready");
    assert_eq!(String::from_utf8_lossy(&ready.stdout), "ready\n");
    assert_eq!(admin_only("/secret").status.code(), Some(2), "only the admin paths are asked");

    let status = server.terminate();
    assert_eq!(status.code(), Some(0), "SIGTERM must stop comet-server cleanly");

    // Restarted on the same data folder: same keys, same history.
    let mut again = Server::start("all", data.path(), &[]);
    again.wait_ready().await;
    let history = client
        .get(format!("{}/v3/users/alice/messages", again.app))
        .header("apikey", &full)
        .header("onBehalfOf", "bob")
        .send()
        .await
        .expect("history")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(history["data"][0]["data"]["text"], "hi", "{history}");
}

#[test]
fn health_fails_when_nothing_answers_and_bad_config_exits_2() {
    let port = free_port();
    let health = Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .arg("health")
        .env_clear()
        .env("COMET_ADMIN_LISTEN", format!("127.0.0.1:{port}"))
        .status()
        .expect("health runs");
    assert_eq!(health.code(), Some(1));

    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("comet.env");
    std::fs::write(&config, "COMET_LISTEN=127.0.0.1:1\nCOMET_COLOUR=yes\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .args(["api", "--config"])
        .arg(&config)
        .env_clear()
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("comet.env:2") && stderr.contains("COMET_COLOUR"), "{stderr}");

    let bad_retention = Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .arg("all")
        .env_clear()
        .env("COMET_DATA_DIR", dir.path())
        .env("COMET_OUTBOX_RETENTION_MS", "1d")
        .output()
        .expect("runs");
    assert_eq!(bad_retention.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_retention.stderr).contains("COMET_OUTBOX_RETENTION_MS"));

    let bad_listen = Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .arg("api")
        .env_clear()
        .env("COMET_DATA_DIR", dir.path())
        .env("COMET_LISTEN", "not-an-address")
        .env("COMET_LOG_FORMAT", "json")
        .output()
        .expect("runs");
    assert_ne!(bad_listen.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&bad_listen.stderr).contains("COMET_LISTEN"));
}

#[tokio::test]
async fn split_roles_on_mariadb_and_kafka_deliver_every_message_in_order() {
    let database_url = fresh_mysql_database().await;
    let brokers = std::env::var("COMET_TEST_KAFKA_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".to_owned());
    let data = tempfile::tempdir().expect("temp dir");
    let env = [
        ("COMET_DATABASE_URL", database_url),
        ("COMET_KAFKA_BROKERS", brokers.clone()),
        ("COMET_API_KEY", FULL.to_owned()),
        ("COMET_AUTH_KEY", AUTH.to_owned()),
    ];

    // migrate runs once and exits 0; api and relay then run as separate processes, as in production.
    migrate(&env[0].1);
    let mut api = Server::start("api", data.path(), &env);
    let mut relay = Server::start("relay", data.path(), &env);
    api.wait_ready().await;
    relay.wait_ready().await;

    let client = reqwest::Client::new();
    let conversation_users = format!("u{}", free_port());
    for suffix in ["a", "b"] {
        let uid = format!("{conversation_users}{suffix}");
        let (status, body) =
            post(&client, format!("{}/v3/users", api.app), &[("apikey", FULL)], json!({"uid": uid, "name": uid})).await;
        assert_eq!(status, 200, "{body}");
    }
    let sender = format!("{conversation_users}a");
    let receiver = format!("{conversation_users}b");
    let mut ids = Vec::new();
    for n in 0..20 {
        let (status, body) = post(
            &client,
            format!("{}/v3/messages", api.app),
            &[("apikey", FULL), ("onBehalfOf", &sender)],
            json!({"receiver": receiver, "receiverType": "user", "type": "text", "data": {"text": format!("m{n}")}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["data"]["id"].as_str().expect("id").to_owned());
    }

    let config =
        comet_bus::KafkaConfig { brokers, partitions: 1, replication_factor: 1, client_id: "server-test".to_owned() };
    let mut subscription =
        comet_bus::GroupSubscription::kafka(&config, &format!("server-test-{}", free_port())).await.expect("consumer");
    let uid = |raw: &str| comet_model::Uid::parse(raw).expect("uid");
    let conversation = comet_model::ConversationId::direct(&uid(&sender), &uid(&receiver)).key().to_owned();
    let mut seen: Vec<(i64, String)> = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.len() < ids.len() {
        assert!(Instant::now() < deadline, "only {} of {} messages reached Kafka", seen.len(), ids.len());
        let mut received = None;
        let handled = subscription.handle(async |event| {
            received = Some(event.clone());
            Ok::<(), std::convert::Infallible>(())
        });
        let Ok(Ok(())) = tokio::time::timeout(Duration::from_secs(1), handled).await else { continue };
        let Some(event) = received else { continue };
        if event.key == conversation && event.event_type == comet_model::EventType::MessageSent {
            let id = event.data["id"].as_str().unwrap_or_default().to_owned();
            // At least once: a redelivered event is recognised by id.
            if !seen.iter().any(|(_, known)| known == &id) {
                seen.push((event.data["seq"].as_i64().unwrap_or(-1), id));
            }
        }
    }
    drop(subscription);
    let seqs: Vec<i64> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (1..=20).collect::<Vec<i64>>(), "events out of order or missing");
    assert_eq!(seen.into_iter().map(|(_, id)| id).collect::<Vec<_>>(), ids);

    assert_eq!(api.terminate().code(), Some(0));
    assert_eq!(relay.terminate().code(), Some(0));
}

/// `comet-server outbox dead-letters` lists what the relay dead-lettered and `outbox replay ID` puts it back
/// into the outbox; `worker-dead-letters` and `worker-replay` do it for a worker's; wrong words exit 2.
#[tokio::test]
async fn the_outbox_command_lists_and_replays_dead_letters() {
    let data = tempfile::tempdir().expect("temp dir");
    let database_url = format!("sqlite://{}", data.path().join("comet.db").display());
    migrate(&database_url);
    let store = comet_store::Store::connect(&database_url).await.expect("store");
    let user = comet_model::NewUser {
        uid: comet_model::Uid::parse("dead-letter-user").expect("uid"),
        name: "Dead Letter".to_owned(),
        avatar: None,
        link: None,
        role: None,
        metadata: None,
    };
    store.create_user(&user, 1_700_000_000_000).await.expect("create user");
    let event = store.unpublished_events(10).await.expect("outbox").remove(0);
    assert!(store.dead_letter(&event.id, "refused by the test", 5, 1_700_000_000_500).await.expect("dead letter"));

    let outbox = |words: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_comet-server"))
            .arg("outbox")
            .args(words)
            .env_clear()
            .env("COMET_DATABASE_URL", &database_url)
            .env("COMET_LOG_FORMAT", "json")
            .output()
            .expect("comet-server outbox runs")
    };
    let listed = outbox(&["dead-letters"]);
    assert_eq!(listed.status.code(), Some(0), "{}", String::from_utf8_lossy(&listed.stderr));
    let lines: Vec<Value> = String::from_utf8_lossy(&listed.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["id"], event.id.as_str());
    assert_eq!(lines[0]["type"], "user.created");
    assert_eq!(lines[0]["key"], "dead-letter-user");
    assert_eq!(lines[0]["attempts"], 5);
    assert_eq!(lines[0]["deadAt"], 1_700_000_000_500_i64);
    assert_eq!(lines[0]["reason"], "refused by the test");

    let replayed = outbox(&["replay", &event.id]);
    assert_eq!(replayed.status.code(), Some(0), "{}", String::from_utf8_lossy(&replayed.stderr));
    assert_eq!(store.outbox_backlog().await.expect("backlog"), 1, "the event is unpublished again");
    assert_eq!(store.dead_letter_count().await.expect("count"), 0);
    assert!(outbox(&["dead-letters"]).stdout.is_empty(), "no dead letter is left");
    let again = outbox(&["replay", &event.id]);
    assert_eq!(again.status.code(), Some(1), "a replayed dead letter is gone");
    assert!(String::from_utf8_lossy(&again.stderr).contains(&event.id));

    // A worker's dead letter: listed by worker, handed back as a `worker.replay` event for that worker only.
    let given_up = store.unpublished_events(10).await.expect("outbox").remove(0);
    store.mark_published(std::slice::from_ref(&given_up.id), 1_700_000_000_600).await.expect("published");
    store
        .dead_letter_event("webhooks", &given_up, "the receiver refused it", 8, 1_700_000_000_700)
        .await
        .expect("letter");
    let listed = outbox(&["worker-dead-letters", "webhooks"]);
    assert_eq!(listed.status.code(), Some(0), "{}", String::from_utf8_lossy(&listed.stderr));
    let line: Value = serde_json::from_slice(&listed.stdout).expect("one JSON object");
    assert_eq!(
        (&line["id"], &line["attempts"], &line["failedAt"]),
        (&json!(given_up.id), &json!(8), &json!(1_700_000_000_700_i64))
    );
    assert_eq!(line["reason"], "the receiver refused it");
    assert!(outbox(&["worker-dead-letters", "notifications"]).stdout.is_empty(), "another worker has none");
    let replayed = outbox(&["worker-replay", "webhooks", &given_up.id]);
    assert_eq!(replayed.status.code(), Some(0), "{}", String::from_utf8_lossy(&replayed.stderr));
    let replay = store.unpublished_events(10).await.expect("outbox").remove(0);
    assert_eq!(replay.event_type, comet_model::EventType::WorkerReplay);
    assert_eq!((replay.key.as_str(), &replay.data["worker"]), (given_up.key.as_str(), &json!("webhooks")));
    let inner: comet_model::Event = serde_json::from_value(replay.data["event"].clone()).expect("the event whole");
    assert_eq!(inner, given_up);
    assert!(store.worker_dead_letters("webhooks", 10).await.expect("letters").is_empty());
    assert_eq!(outbox(&["worker-replay", "webhooks", &given_up.id]).status.code(), Some(1), "replayed once");
    assert_eq!(outbox(&["worker-replay", "webhooks"]).status.code(), Some(2), "worker-replay needs an id");

    assert_eq!(outbox(&["purge"]).status.code(), Some(2), "an unknown outbox action is invalid");
    assert_eq!(outbox(&[]).status.code(), Some(2), "outbox needs an action");
    let extra = Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .args(["api", "dead-letters"])
        .env_clear()
        .env("COMET_DATA_DIR", data.path())
        .output()
        .expect("runs");
    assert_eq!(extra.status.code(), Some(2), "only outbox takes more words");
}
