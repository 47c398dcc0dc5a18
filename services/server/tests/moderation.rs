//! Moderation end to end through the real binary: the rules in the send path seen from a recipient's
//! WebSocket and from history (embedded `all`), and a rule change made through one `api` process applying on
//! another (two `api` processes on one MariaDB database), waited for as a condition.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::gateway::{Client, Rest, embedded, is_text, texts};
use crate::support::{Server, fresh_mysql_database, migrate};

const FULL: &str = "moderation-test-full-key";

async fn get(rest: &Rest, path: &str, on_behalf_of: Option<&str>) -> Value {
    let mut request = rest.client.get(format!("{}{path}", rest.base)).header("apikey", &rest.key);
    if let Some(uid) = on_behalf_of {
        request = request.header("onBehalfOf", uid);
    }
    let response = request.send().await.expect("GET");
    assert_eq!(response.status(), 200, "GET {path}");
    response.json().await.expect("JSON")
}

async fn rules(rest: &Rest) {
    let lists = [
        json!({ "id": "profanity", "name": "Profanity", "kind": "keywords", "entries": ["fuck", "shit"] }),
        json!({ "id": "threats", "name": "Threats", "kind": "phrases", "entries": ["kill yourself"] }),
    ];
    for list in lists {
        rest.call("/v3/moderation/lists", None, list).await;
    }
    let rules = [
        json!({ "id": "profanity", "name": "Profanity", "conditions": [{ "type": "keywords", "lists": ["profanity"] }], "action": "block" }),
        json!({ "id": "contacts", "name": "Contacts", "conditions": [{ "type": "contactDetails", "email": true, "phone": true, "url": true }], "action": "mask" }),
        json!({ "id": "threats", "name": "Threats", "conditions": [{ "type": "keywords", "lists": ["threats"] }], "action": "flag" }),
    ];
    for rule in rules {
        rest.call("/v3/moderation/rules", None, rule).await;
    }
}

#[tokio::test]
async fn blocked_never_reaches_a_socket_or_history_masked_arrives_masked_flagged_arrives_and_is_queued() {
    let (server, rest, _data) = embedded(&[]).await;
    let _alice = rest.user("alice").await;
    let bob = rest.user("bob").await;
    rules(&rest).await;
    let (mut socket, _) = Client::join(&server, &bob, "bob", json!([])).await;

    let blocked = rest.send("alice", "bob", "user", "f.u.c.k you").await;
    assert_eq!(blocked["data"]["moderation"]["status"], "disapproved", "{blocked}");
    let masked = rest.send("alice", "bob", "user", "write to john@gmail.com").await;
    assert_eq!(masked["data"]["text"], "write to **************");
    let flagged = rest.send("alice", "bob", "user", "go kill yourself").await;
    rest.send("alice", "bob", "user", "after").await;

    // Bob's socket, up to the message sent after them all: the blocked one never came.
    let frames = socket.until(is_text("after")).await;
    assert_eq!(texts(&frames), ["write to **************", "go kill yourself", "after"]);
    let history = get(&rest, "/v3/users/alice/messages", Some("bob")).await;
    let stored: Vec<&str> = history["data"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|message| message["data"]["text"].as_str())
        .collect();
    assert_eq!(stored, ["write to **************", "go kill yourself", "after"]);

    let queue = get(&rest, "/v3/moderation/flagged-messages", None).await;
    let queued: Vec<&Value> = queue["data"].as_array().expect("items").iter().collect();
    assert_eq!(queued.len(), 1, "{queue}");
    assert_eq!((&queued[0]["messageId"], &queued[0]["ruleId"]), (&flagged["id"], &json!("threats")));
    let blocked_queue = get(&rest, "/v3/moderation/blocked-messages", None).await;
    assert_eq!(blocked_queue["data"][0]["messageId"], blocked["id"]);
    assert_eq!(blocked_queue["data"][0]["text"], "f.u.c.k you", "the original, for moderators");

    let metrics = reqwest::get(format!("{}/metrics", server.admin)).await.expect("metrics").text().await.expect("text");
    for line in [
        "comet_moderation_checks_total{outcome=\"blocked\"} 1",
        "comet_moderation_checks_total{outcome=\"masked\"} 1",
        "comet_moderation_checks_total{outcome=\"flagged\"} 1",
        "comet_moderation_checks_total{outcome=\"passed\"} 1",
        "comet_moderation_rule_matches_total{rule=\"profanity\"} 1",
        "comet_moderation_rules 3",
    ] {
        assert!(metrics.lines().any(|metric| metric == line), "{line} in\n{metrics}");
    }
    server.terminate();
}

/// Sends `text` from alice to bob through `rest` until the answer's moderation status is `status`; the
/// number of sends it took. Fails after `limit` (a bound against hanging, not a latency assertion).
async fn send_until(rest: &Rest, text: &str, status: &str, limit: Duration) -> usize {
    let deadline = Instant::now() + limit;
    let mut sends = 0;
    loop {
        sends += 1;
        let sent = rest.send("alice", "bob", "user", text).await;
        if sent["data"]["moderation"]["status"] == status {
            return sends;
        }
        assert!(Instant::now() < deadline, "{text:?} was not {status} within {limit:?}: {sent}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_rule_changed_through_one_api_process_applies_on_another() {
    let database_url = fresh_mysql_database().await;
    migrate(&database_url);
    let data = tempfile::tempdir().expect("temp dir");
    let env = [
        ("COMET_DATABASE_URL", database_url),
        ("COMET_API_KEY", FULL.to_owned()),
        ("COMET_AUTH_KEY", "moderation-test-auth-key".to_owned()),
    ];
    let mut first = Server::start("api", data.path(), &env);
    let mut second = Server::start("api", data.path(), &env);
    first.wait_ready().await;
    second.wait_ready().await;
    let rest =
        |server: &Server| Rest { client: reqwest::Client::new(), base: server.app.clone(), key: FULL.to_owned() };
    let (one, two) = (rest(&first), rest(&second));
    one.user("alice").await;
    one.user("bob").await;
    let before = two.send("alice", "bob", "user", "shit").await;
    assert!(before["data"].get("moderation").is_none(), "no rule yet: {before}");

    rules(&one).await;
    // The poll runs every second; the bound only keeps a broken refresh from hanging the test.
    send_until(&two, "shit", "disapproved", Duration::from_secs(15)).await;

    let disable = json!({ "name": "Profanity", "enabled": false, "conditions": [{ "type": "keywords", "lists": ["profanity"] }], "action": "block" });
    let response = two
        .client
        .put(format!("{}/v3/moderation/rules/profanity", two.base))
        .header("apikey", FULL)
        .json(&disable)
        .send()
        .await
        .expect("PUT");
    assert_eq!(response.status(), 200);
    send_until(&one, "shit", "approved", Duration::from_secs(15)).await;
    first.terminate();
    second.terminate();
}
