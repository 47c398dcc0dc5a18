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
