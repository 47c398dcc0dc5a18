//! `comet-server dump | comet-server load` as an operator runs them: a copy of a running embedded server's
//! SQLite database, taken while it serves, loaded into a fresh MariaDB database that a second server then
//! serves with the same history, auth tokens and API keys; a second load into it is refused.

use std::io::Write as _;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

use crate::support::{Server, fresh_mysql_database, post};
use crate::{AUTH, FULL};

fn command(role: &str, env: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_comet-server"));
    command.arg(role).env_clear().env("COMET_LOG_FORMAT", "json");
    for (name, value) in env {
        command.env(name, value);
    }
    command
}

async fn history(client: &reqwest::Client, app: &str, token: &str) -> Vec<String> {
    let reply: Value = client
        .get(format!("{app}/v3/users/alice/messages"))
        .header("authtoken", token)
        .send()
        .await
        .expect("history")
        .json()
        .await
        .expect("json");
    reply["data"].as_array().expect("a list").iter().map(|message| message["data"]["text"].to_string()).collect()
}

#[tokio::test]
async fn a_copy_of_a_running_embedded_server_serves_again_on_mariadb() {
    let data = tempfile::tempdir().expect("temp dir");
    let keys = [("COMET_API_KEY", FULL.to_owned()), ("COMET_AUTH_KEY", AUTH.to_owned())];
    let mut source = Server::start("all", data.path(), &keys);
    source.wait_ready().await;
    let client = reqwest::Client::new();
    for uid in ["alice", "bob"] {
        let (status, body) =
            post(&client, format!("{}/v3/users", source.app), &[("apikey", FULL)], json!({"uid": uid, "name": uid}))
                .await;
        assert_eq!(status, 200, "{body}");
    }
    for n in 0..5 {
        let (status, body) = post(
            &client,
            format!("{}/v3/messages", source.app),
            &[("apikey", FULL), ("onBehalfOf", "bob")],
            json!({"receiver": "alice", "receiverType": "user", "type": "text", "data": {"text": format!("hello {n}")}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, token) =
        post(&client, format!("{}/v3/users/bob/auth_tokens", source.app), &[("apikey", FULL)], json!({})).await;
    assert_eq!(status, 200, "{token}");
    let token = token["data"]["authToken"].as_str().expect("a token").to_owned();
    let before = history(&client, &source.app, &token).await;
    assert_eq!(before.len(), 5);

    // The copy is taken while the source keeps running.
    let sqlite = format!("sqlite://{}", data.path().join("comet.db").display());
    let dump = command("dump", &[("COMET_DATABASE_URL", sqlite)]).output().expect("dump runs");
    assert!(dump.status.success(), "dump failed: {}", String::from_utf8_lossy(&dump.stderr));
    assert_eq!(source.terminate().code(), Some(0));

    let mariadb = fresh_mysql_database().await;
    let load_into = |copy: &[u8]| {
        let mut child = command("load", &[("COMET_DATABASE_URL", mariadb.clone())])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("load runs");
        child.stdin.take().expect("stdin").write_all(copy).expect("the copy goes in");
        child.wait_with_output().expect("load ends")
    };
    let loaded = load_into(&dump.stdout);
    assert!(loaded.status.success(), "load failed: {}", String::from_utf8_lossy(&loaded.stderr));
    let summary: Value = serde_json::from_slice(&loaded.stdout).expect("the summary is JSON");
    assert_eq!(summary["tables"]["messages"], 5, "{summary}");
    assert_eq!(summary["backend"], "sqlite", "{summary}");

    let target = tempfile::tempdir().expect("temp dir");
    let mut env = keys.to_vec();
    env.push(("COMET_DATABASE_URL", mariadb.clone()));
    let mut restored = Server::start("all", target.path(), &env);
    restored.wait_ready().await;
    assert_eq!(history(&client, &restored.app, &token).await, before, "the same history, and bob's token still works");
    assert_eq!(restored.terminate().code(), Some(0));

    let again = load_into(&dump.stdout);
    assert!(!again.status.success(), "a second load into the same database is refused");
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("not empty"), "and says why: {stderr}");
}

/// `comet-server dump documents | comet-server load documents`: the webhook a server keeps in MongoDB comes back
/// from a copy loaded into another MongoDB database, which a server then lists; a second load is refused, and
/// `documents` without COMET_MONGODB_URL exits 1 naming the setting.
#[tokio::test]
async fn a_documents_copy_brings_the_mongodb_data_back() {
    let mongo_url = comet_testkit::mongo_url();
    comet_testkit::require_mongo(&mongo_url);
    let (source_db, target_db) = (comet_testkit::mongo_database(), comet_testkit::mongo_database());
    let data = tempfile::tempdir().expect("temp dir");
    let env = |database: &str| {
        vec![
            ("COMET_API_KEY", FULL.to_owned()),
            ("COMET_AUTH_KEY", AUTH.to_owned()),
            ("COMET_WEBHOOKS_ALLOW_HOSTS", "127.0.0.1".to_owned()),
            ("COMET_MONGODB_URL", mongo_url.clone()),
            ("COMET_MONGODB_DATABASE", database.to_owned()),
        ]
    };
    let mut source = Server::start("all", data.path(), &env(&source_db));
    source.wait_ready().await;
    let client = reqwest::Client::new();
    let body = json!({"id": "copied", "name": "copied", "webhookURL": "http://127.0.0.1:9/hook", "triggers": ["message_sent"]});
    let (status, reply) = post(&client, format!("{}/v3/webhooks", source.app), &[("apikey", FULL)], body).await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(source.terminate().code(), Some(0));

    let dump = command("dump", &env(&source_db)).arg("documents").output().expect("dump runs");
    assert!(dump.status.success(), "dump failed: {}", String::from_utf8_lossy(&dump.stderr));
    let load = || {
        let mut child = command("load", &env(&target_db))
            .arg("documents")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("load runs");
        child.stdin.take().expect("stdin").write_all(&dump.stdout).expect("the copy goes in");
        child.wait_with_output().expect("load ends")
    };
    let loaded = load();
    assert!(loaded.status.success(), "load failed: {}", String::from_utf8_lossy(&loaded.stderr));
    let summary: Value = serde_json::from_slice(&loaded.stdout).expect("the summary is JSON");
    assert_eq!(summary["collections"]["webhooks"], 1, "{summary}");

    let mut restored = Server::start("all", data.path(), &env(&target_db));
    restored.wait_ready().await;
    let listed: Value = client
        .get(format!("{}/v3/webhooks", restored.app))
        .header("apikey", FULL)
        .send()
        .await
        .expect("list")
        .json()
        .await
        .expect("json");
    let ids: Vec<&str> =
        listed["data"].as_array().expect("a list").iter().filter_map(|hook| hook["id"].as_str()).collect();
    assert_eq!(ids, ["copied"], "{listed}");
    assert_eq!(restored.terminate().code(), Some(0));

    let again = load();
    assert_eq!(again.status.code(), Some(1), "a second load into the same database is refused");
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds documents"));
    let without = command("dump", &[]).arg("documents").output().expect("dump runs");
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("COMET_MONGODB_URL"));
    for database in [source_db, target_db] {
        let documents = comet_documents::Documents::connect(&mongo_url, None, &database).await.expect("MongoDB");
        documents.drop_database().await.expect("dropping a test database");
    }
}
