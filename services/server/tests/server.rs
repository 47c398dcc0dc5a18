//! The comet-server binary as operators run it: embedded mode, roles, signals, health checks, and the full
//! path to Kafka (tansu) with MariaDB. Servers come from `bash .ci/services.sh`.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

mod bootstrap;
mod edge;
mod gateway;
mod support;

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
    assert!(metrics.contains("comet_http_requests_total{status=\"2xx\"} 3"), "{metrics}");

    let health = Command::new(env!("CARGO_BIN_EXE_comet-server"))
        .arg("health")
        .env_clear()
        .env("COMET_ADMIN_LISTEN", server.admin.trim_start_matches("http://"))
        .status()
        .expect("health runs");
    assert!(health.success(), "health check failed against a ready server");

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
