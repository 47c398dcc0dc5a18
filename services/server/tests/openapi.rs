//! The served `/v3/openapi.json` and the server agree (issue #17 item 7): schemathesis (PyPI, installed by
//! `.ci/install-tools.sh`) generates requests from the document comet-server serves, sends them to that server
//! (`all` on its embedded default, in a temp dir) and checks every answer against the document: no 5xx, only
//! documented statuses, content types and response schemas, requests the document allows accepted, requests it
//! forbids refused, and its stateful checks (a created resource is found, a deleted one is gone). The run is
//! bounded (a fixed seed, a few examples per operation) so it is the same run every time; what the document
//! cannot say is in `tests/openapi/schemathesis.toml`, each exception with its reason.

use std::path::PathBuf;
use std::process::Command;

use serde_json::json;

use crate::support::{Server, post};

/// Where `.ci/install-tools.sh` installs schemathesis.
const SCHEMATHESIS_VENV_BIN: &str = "/opt/comet-tools/schemathesis-venv/bin/schemathesis";
/// The user the operations that act as a user act as (`onBehalfOf`, set in schemathesis.toml).
const ACTING_USER: &str = "schemathesis-user";
/// The uid and guid the dictionaries in schemathesis.toml name.
const FRIEND: &str = "schemathesis-friend";
const GROUP: &str = "schemathesis-group";
/// Examples per operation and the seed: enough to meet every kind of disagreement found so far, in well
/// under two minutes on a debug build.
const MAX_EXAMPLES: &str = "20";
const SEED: &str = "1";

/// The schemathesis program: the venv's, else one on PATH. Missing is a failure, never a skip.
fn schemathesis() -> PathBuf {
    let venv = PathBuf::from(SCHEMATHESIS_VENV_BIN);
    if venv.is_file() {
        return venv;
    }
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).map(|dir| dir.join("schemathesis")).find(|file| file.is_file()));
    match on_path.flatten() {
        Some(program) => program,
        None => panic!(
            "schemathesis is not installed (looked for {SCHEMATHESIS_VENV_BIN} and on PATH): run `bash .ci/install-tools.sh`"
        ),
    }
}

#[tokio::test]
async fn schemathesis_finds_the_served_document_and_the_server_in_agreement() {
    let program = schemathesis();
    let data = tempfile::tempdir().expect("temp dir");
    let mut server = Server::start("all", data.path(), &[]);
    server.wait_ready().await;
    let keys = std::fs::read_to_string(data.path().join("api-keys.env")).expect("generated keys");
    let key = keys
        .lines()
        .find_map(|line| line.strip_prefix("COMET_API_KEY="))
        .expect("api-keys.env has COMET_API_KEY")
        .to_owned();
    let client = reqwest::Client::new();
    let (status, body) = post(
        &client,
        format!("{}/v3/users", server.app),
        &[("apikey", key.as_str())],
        json!({ "uid": ACTING_USER, "name": "Schemathesis" }),
    )
    .await;
    assert_eq!(status, 200, "creating the acting user: {body}");
    // What the dictionaries of schemathesis.toml name: a second user, and a public group of both with a message.
    let app = server.app.clone();
    let acting = [("apikey", key.as_str()), ("onBehalfOf", ACTING_USER)];
    let setup = [
        (format!("{app}/v3/users"), &acting[..1], json!({ "uid": FRIEND, "name": "Friend" })),
        (format!("{app}/v3/groups"), &acting[..], json!({ "guid": GROUP, "name": "Schemathesis", "type": "public" })),
        (format!("{app}/v3/groups/{GROUP}/members"), &acting[..], json!({ "participants": [FRIEND] })),
        (
            format!("{app}/v3/messages"),
            &acting[..],
            json!({ "receiver": GROUP, "receiverType": "group", "type": "text", "data": { "text": "hello" } }),
        ),
    ];
    for (url, headers, body) in setup {
        let (status, answer) = post(&client, url.clone(), headers, body).await;
        assert_eq!(status, 200, "POST {url}: {answer}");
    }

    let config = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openapi/schemathesis.toml");
    let document = format!("{}/v3/openapi.json", server.app);
    let work = data.path().to_owned();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(&program)
            .arg("--config-file")
            .arg(&config)
            .arg("--no-color")
            .args(["run", &document, "--header", &format!("apikey: {key}")])
            .args(["--seed", SEED, "--max-examples", MAX_EXAMPLES])
            // Nothing kept between runs (an example database would make the next run differ) or left in the tree.
            .args(["--generation-database", "none", "--workers", "1", "--request-timeout", "20"])
            .env("COMET_SCHEMATHESIS_USER", ACTING_USER)
            .current_dir(&work)
            .output()
    })
    .await
    .expect("schemathesis thread")
    .unwrap_or_else(|error| panic!("running schemathesis: {error}"));
    let report = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert!(
        output.status.success(),
        "schemathesis found the document and the server disagreeing ({}):\n{report}",
        output.status
    );
    assert!(report.contains(" generated, "), "schemathesis exited 0 without generating a test case:\n{report}");
    server.terminate();
}
