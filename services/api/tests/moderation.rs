//! `/v3/moderation/…` and `POST /v3/messages/{id}/flagged` through the router: who may call what, CometChat's
//! limits, refusals with stable codes that write nothing, revisions, the CSV import, the queues and the audit
//! log; on SQLite, MariaDB and MongoDB.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{AUTH_ONLY, App, FULL, Reply, mongo_app, mysql_app, sqlite_app};

const KEY: [(&str, &str); 1] = [("apikey", FULL)];

fn profanity_rule(id: &str) -> Value {
    json!({
        "id": id,
        "name": format!("{id} rule"),
        "conditions": [{ "type": "keywords", "lists": ["profanity"] }],
        "action": "block",
    })
}

async fn count(app: &App, path: &str) -> usize {
    let reply = app.call(Method::GET, path, &KEY, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{path}: {}", reply.body);
    reply.body["data"].as_array().map_or(0, Vec::len)
}

/// A request with a CSV body.
async fn import(app: &App, path: &str, content_type: &str, body: Vec<u8>) -> Reply {
    let request = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header("apikey", FULL)
        .header("content-type", content_type)
        .body(Body::from(body))
        .expect("request");
    let response = app.router.clone().oneshot(request).await.expect("router answers");
    let status = response.status();
    let bytes = response.into_body().collect().await.expect("body").to_bytes();
    Reply { status, body: serde_json::from_slice(&bytes).unwrap_or(Value::Null) }
}

async fn scenario(app: App) {
    for uid in ["alice", "bob", "carol"] {
        app.create_user(uid).await;
    }
    // Only the app manages moderation.
    let as_user =
        app.call(Method::GET, "/v3/moderation/rules", &[("apikey", FULL), ("onBehalfOf", "alice")], None).await;
    assert_eq!((as_user.status, as_user.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let auth_only = app.call(Method::GET, "/v3/moderation/rules", &[("apikey", AUTH_ONLY)], None).await;
    assert_eq!((auth_only.status, auth_only.code()), (StatusCode::FORBIDDEN, "ERR_AUTH_ONLY_KEY"));
    let nobody = app.call(Method::GET, "/v3/moderation/flagged-messages", &[], None).await;
    assert_eq!(nobody.status, StatusCode::UNAUTHORIZED);

    // Lists and rules.
    let list = json!({ "id": "profanity", "name": "Profanity", "kind": "keywords", "entries": ["fuck"] });
    let created = app.call(Method::POST, "/v3/moderation/lists", &KEY, Some(list.clone())).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["data"]["revision"], 1);
    let again = app.call(Method::POST, "/v3/moderation/lists", &KEY, Some(list)).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "ERR_MODERATION_LIST_EXISTS"));
    let created = app.call(Method::POST, "/v3/moderation/rules", &KEY, Some(profanity_rule("profanity"))).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(
        (created.body["data"]["revision"].clone(), created.body["data"]["enabled"].clone()),
        (json!(1), json!(true))
    );

    // Refused, and nothing written.
    let refusals = [
        (
            "/v3/moderation/rules",
            json!({ "id": "r2", "name": "r2", "conditions": [{ "type": "keywords", "lists": ["nope"] }], "action": "flag" }),
            "ERR_MODERATION_UNKNOWN_LIST",
        ),
        (
            "/v3/moderation/rules",
            json!({ "id": "r2", "name": "r2", "conditions": [{ "type": "keywords", "lists": ["profanity"] }], "action": "shout" }),
            "ERR_BODY_INVALID",
        ),
        (
            "/v3/moderation/rules",
            json!({ "id": "r2", "name": "r2", "conditions": [], "action": "flag" }),
            "ERR_MODERATION_INVALID",
        ),
        (
            "/v3/moderation/rules",
            json!({ "id": "r 2", "name": "r2", "conditions": [{ "type": "keywords", "lists": ["profanity"] }], "action": "flag" }),
            "ERR_MODERATION_INVALID",
        ),
        (
            "/v3/moderation/lists",
            json!({ "id": "bad", "name": "Bad", "kind": "patterns", "entries": ["fine{1,3}", "spam.*"] }),
            "ERR_MODERATION_PATTERN",
        ),
        (
            "/v3/moderation/lists",
            json!({ "id": "bad", "name": "Bad", "kind": "patterns", "entries": ["(a{100}){100}"] }),
            "ERR_MODERATION_PATTERN",
        ),
        (
            "/v3/moderation/lists",
            json!({ "id": "bad", "name": "Bad", "kind": "keywords", "entries": ["x"], "extra": 1 }),
            "ERR_BODY_INVALID",
        ),
    ];
    for (path, body, code) in refusals {
        let reply = app.call(Method::POST, path, &KEY, Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{body}: {}", reply.body);
    }
    assert_eq!(count(&app, "/v3/moderation/rules").await, 1, "no refused rule was written");
    assert_eq!(count(&app, "/v3/moderation/lists").await, 1, "no refused list was written");

    // The rule limit.
    for index in 2..=25 {
        let reply =
            app.call(Method::POST, "/v3/moderation/rules", &KEY, Some(profanity_rule(&format!("r{index}")))).await;
        assert_eq!(reply.status, StatusCode::OK, "rule {index}: {}", reply.body);
    }
    let over = app.call(Method::POST, "/v3/moderation/rules", &KEY, Some(profanity_rule("r26"))).await;
    assert_eq!((over.status, over.code()), (StatusCode::BAD_REQUEST, "ERR_MODERATION_LIMIT"));
    for index in 2..=25 {
        let reply = app.call(Method::DELETE, &format!("/v3/moderation/rules/r{index}"), &KEY, None).await;
        assert_eq!(reply.status, StatusCode::OK);
    }

    // Edits are revisions.
    let mut edited = profanity_rule("profanity");
    edited.as_object_mut().expect("object").remove("id");
    edited["action"] = json!("mask");
    let updated = app.call(Method::PUT, "/v3/moderation/rules/profanity", &KEY, Some(edited.clone())).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(
        (updated.body["data"]["revision"].clone(), updated.body["data"]["action"].clone()),
        (json!(2), json!("mask"))
    );
    edited["id"] = json!("other");
    let mismatch = app.call(Method::PUT, "/v3/moderation/rules/profanity", &KEY, Some(edited)).await;
    assert_eq!((mismatch.status, mismatch.code()), (StatusCode::BAD_REQUEST, "ERR_MODERATION_INVALID"));
    let missing = app.call(Method::PUT, "/v3/moderation/rules/nope", &KEY, Some(profanity_rule("nope"))).await;
    assert_eq!((missing.status, missing.code()), (StatusCode::NOT_FOUND, "ERR_MODERATION_RULE_NOT_FOUND"));
    let revisions = app.call(Method::GET, "/v3/moderation/rules/profanity/revisions", &KEY, None).await;
    let actions: Vec<Value> = revisions.body["data"]
        .as_array()
        .expect("revisions")
        .iter()
        .map(|revision| revision["rule"]["action"].clone())
        .collect();
    assert_eq!(actions, [json!("block"), json!("mask")]);

    // A list in use stays.
    let in_use = app.call(Method::DELETE, "/v3/moderation/lists/profanity", &KEY, None).await;
    assert_eq!((in_use.status, in_use.code()), (StatusCode::CONFLICT, "ERR_MODERATION_LIST_IN_USE"));

    // CSV import.
    let csv = "keyword,notes\nshit,common\n\"ass\",short\nfuck\n\n".as_bytes().to_vec();
    let imported = import(&app, "/v3/moderation/lists/profanity/import", "text/csv", csv).await;
    assert_eq!(imported.status, StatusCode::OK, "{}", imported.body);
    assert_eq!(
        imported.body["data"]["entries"],
        json!(["fuck", "shit", "ass"]),
        "appended, header and repeats left out"
    );
    let replaced = import(
        &app,
        "/v3/moderation/lists/profanity/import?mode=replace",
        "text/csv; charset=utf-8",
        b"damn\n".to_vec(),
    )
    .await;
    assert_eq!(replaced.body["data"]["entries"], json!(["damn"]), "{}", replaced.body);
    let too_large =
        import(&app, "/v3/moderation/lists/profanity/import", "text/csv", vec![b'a'; 1024 * 1024 + 1]).await;
    assert_eq!((too_large.status, too_large.code()), (StatusCode::PAYLOAD_TOO_LARGE, "ERR_BODY_TOO_LARGE"));
    let json_body = import(&app, "/v3/moderation/lists/profanity/import", "application/json", b"[]".to_vec()).await;
    assert_eq!(json_body.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let patterns =
        json!({ "id": "patterns", "name": "Patterns", "kind": "patterns", "entries": ["free\\s{1,3}crypto"] });
    assert_eq!(app.call(Method::POST, "/v3/moderation/lists", &KEY, Some(patterns)).await.status, StatusCode::OK);
    let unbounded =
        import(&app, "/v3/moderation/lists/patterns/import", "text/csv", b"pattern\nspam.*\n".to_vec()).await;
    assert_eq!((unbounded.status, unbounded.code()), (StatusCode::BAD_REQUEST, "ERR_MODERATION_PATTERN"));
    let kept = app.call(Method::GET, "/v3/moderation/lists/patterns", &KEY, None).await;
    assert_eq!(kept.body["data"]["entries"], json!(["free\\s{1,3}crypto"]), "a refused import changes nothing");

    // Reports.
    let sent = app.send("alice", json!({ "receiver": "bob", "receiverType": "user", "category": "message", "type": "text", "data": { "text": "buy my stuff" } })).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    let message = sent.body["data"]["id"].as_str().expect("id").to_owned();
    let report_path = format!("/v3/messages/{message}/flagged");
    let as_bob = [("apikey", FULL), ("onBehalfOf", "bob")];
    let reported =
        app.call(Method::POST, &report_path, &as_bob, Some(json!({ "reasonId": "spam", "remark": "sells" }))).await;
    assert_eq!(reported.status, StatusCode::OK, "{}", reported.body);
    let twice = app.call(Method::POST, &report_path, &as_bob, Some(json!({ "reasonId": "spam" }))).await;
    assert_eq!((twice.status, twice.code()), (StatusCode::CONFLICT, "ERR_MODERATION_ALREADY_REPORTED"));
    let stranger = app
        .call(
            Method::POST,
            &report_path,
            &[("apikey", FULL), ("onBehalfOf", "carol")],
            Some(json!({ "reasonId": "spam" })),
        )
        .await;
    assert_eq!(
        (stranger.status, stranger.code()),
        (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"),
        "carol may not read it"
    );
    let reason = app
        .call(
            Method::POST,
            &report_path,
            &[("apikey", FULL), ("onBehalfOf", "alice")],
            Some(json!({ "reasonId": "boring" })),
        )
        .await;
    assert_eq!((reason.status, reason.code()), (StatusCode::BAD_REQUEST, "ERR_MODERATION_REASON_INVALID"));
    let as_app = app.call(Method::POST, &report_path, &KEY, Some(json!({ "reasonId": "spam" }))).await;
    assert_eq!((as_app.status, as_app.code()), (StatusCode::BAD_REQUEST, "ERR_ON_BEHALF_OF_MISSING"));
    let bob_reads_queue = app.call(Method::GET, "/v3/moderation/flagged-messages", &as_bob, None).await;
    assert_eq!(
        (bob_reads_queue.status, bob_reads_queue.code()),
        (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"),
        "a user cannot read the queues"
    );

    // The queue, a decision, the reviewed list.
    let flagged = app.call(Method::GET, "/v3/moderation/flagged-messages?sender=alice", &KEY, None).await;
    let items = flagged.body["data"].as_array().expect("items").clone();
    assert_eq!(items.len(), 1, "{}", flagged.body);
    assert_eq!(
        (items[0]["messageId"].clone(), items[0]["source"].clone(), items[0]["text"].clone()),
        (json!(message), json!("report"), json!("buy my stuff"))
    );
    assert_eq!(count(&app, "/v3/moderation/flagged-messages?sender=bob").await, 0);
    assert_eq!(count(&app, "/v3/moderation/flagged-messages?ruleId=profanity").await, 0);
    assert_eq!(count(&app, "/v3/moderation/flagged-messages?from=4000000000").await, 0, "from a date in the future");
    assert_eq!(count(&app, "/v3/moderation/blocked-messages").await, 0);
    let review = items[0]["id"].as_str().expect("id").to_owned();
    let wrong_queue = app
        .call(
            Method::PATCH,
            &format!("/v3/moderation/blocked-messages/{review}"),
            &KEY,
            Some(json!({ "status": "approved" })),
        )
        .await;
    assert_eq!((wrong_queue.status, wrong_queue.code()), (StatusCode::NOT_FOUND, "ERR_MODERATION_REVIEW_NOT_FOUND"));
    let bad_status = app
        .call(
            Method::PATCH,
            &format!("/v3/moderation/flagged-messages/{review}"),
            &KEY,
            Some(json!({ "status": "maybe" })),
        )
        .await;
    assert_eq!((bad_status.status, bad_status.code()), (StatusCode::BAD_REQUEST, "ERR_MODERATION_STATUS_INVALID"));
    let approved = app
        .call(
            Method::PATCH,
            &format!("/v3/moderation/flagged-messages/{review}"),
            &KEY,
            Some(json!({ "status": "approved" })),
        )
        .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.body);
    assert_eq!(approved.body["data"]["status"], "approved");
    let again = app
        .call(
            Method::PATCH,
            &format!("/v3/moderation/flagged-messages/{review}"),
            &KEY,
            Some(json!({ "status": "rejected" })),
        )
        .await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "ERR_MODERATION_ALREADY_REVIEWED"));
    assert_eq!(count(&app, "/v3/moderation/flagged-messages").await, 0);
    assert_eq!(count(&app, "/v3/moderation/reviewed-messages").await, 1);

    // The audit log has every moderator action, newest first, and none of the refused ones.
    let audit = app.call(Method::GET, "/v3/moderation/audit?perPage=100", &KEY, None).await;
    let entries = audit.body["data"].as_array().expect("entries");
    let actions: Vec<&str> = entries.iter().filter_map(|entry| entry["action"].as_str()).collect();
    assert_eq!(actions.first(), Some(&"review.approved"), "{actions:?}");
    for expected in
        ["rule.create", "rule.update", "rule.delete", "list.create", "list.import.append", "list.import.replace"]
    {
        assert!(actions.contains(&expected), "{expected} in {actions:?}");
    }
    assert_eq!(
        actions.iter().filter(|action| **action == "rule.create").count(),
        25,
        "refused creations are not actions"
    );
    let actor = entries[0]["actor"].as_str().expect("actor");
    assert!(actor.starts_with("key:") && !actor.contains(FULL), "the key's fingerprint, never the key: {actor}");
}

#[tokio::test]
async fn sqlite() {
    scenario(sqlite_app().await).await;
}

#[tokio::test]
async fn mariadb() {
    scenario(mysql_app().await).await;
}

#[tokio::test]
async fn mongodb() {
    let (app, documents) = mongo_app().await;
    scenario(app).await;
    documents.drop_database().await.expect("dropping the test database");
}

fn text_to(receiver: &str, text: &str) -> Value {
    json!({ "receiver": receiver, "receiverType": "user", "category": "message", "type": "text", "data": { "text": text } })
}

/// The rules in the send path: block never reaches history, mask stores and shows the masked text (the
/// original for moderators only), flag delivers and queues; a client cannot set its own moderation status.
async fn send_path_scenario(app: App) {
    for uid in ["alice", "bob"] {
        app.create_user(uid).await;
    }
    let plain = app.send("alice", text_to("bob", "hello before any rule")).await;
    assert_eq!(plain.status, StatusCode::OK, "{}", plain.body);
    assert!(plain.body["data"]["data"].get("moderation").is_none(), "no rule, no moderation status");

    let lists = [
        json!({ "id": "profanity", "name": "Profanity", "kind": "keywords", "entries": ["fuck", "shit"] }),
        json!({ "id": "threats", "name": "Threats", "kind": "phrases", "entries": ["kill yourself"] }),
    ];
    for list in lists {
        assert_eq!(app.call(Method::POST, "/v3/moderation/lists", &KEY, Some(list)).await.status, StatusCode::OK);
    }
    let rules = [
        json!({ "id": "profanity", "name": "Profanity", "conditions": [{ "type": "keywords", "lists": ["profanity"] }], "action": "block" }),
        json!({ "id": "contacts", "name": "Contacts", "conditions": [{ "type": "contactDetails", "email": true, "phone": true }], "action": "mask" }),
        json!({ "id": "threats", "name": "Threats", "conditions": [{ "type": "keywords", "lists": ["threats"] }], "action": "flag" }),
    ];
    for rule in rules {
        let reply = app.call(Method::POST, "/v3/moderation/rules", &KEY, Some(rule)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    let fine = app.send("alice", text_to("bob", "hello again")).await;
    assert_eq!(fine.body["data"]["data"]["moderation"], json!({ "status": "approved" }));

    let blocked = app.send("alice", text_to("bob", "f.u.c.k you")).await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    assert_eq!(blocked.body["data"]["data"]["moderation"]["status"], "disapproved");
    assert_eq!(blocked.body["data"]["seq"], 0, "not in the conversation");
    let blocked_id = blocked.body["data"]["id"].as_str().expect("id").to_owned();
    let spoofed = app.send("alice", json!({ "receiver": "bob", "receiverType": "user", "category": "message", "type": "text", "data": { "text": "shit", "moderation": { "status": "approved" } } })).await;
    assert_eq!(spoofed.body["data"]["data"]["moderation"]["status"], "disapproved", "a client's status is replaced");

    let masked = app.send("alice", text_to("bob", "mail me at john@gmail.com or +44 20 7946 0958")).await;
    assert_eq!(masked.body["data"]["data"]["text"], "mail me at ************** or *** ** **** ****");
    let flagged = app.send("alice", text_to("bob", "just kill yourself")).await;
    assert_eq!(flagged.body["data"]["data"]["text"], "just kill yourself", "flagged messages are delivered as sent");
    let flagged_id = flagged.body["data"]["id"].as_str().expect("id").to_owned();

    // History: what bob can read.
    let history =
        app.call(Method::GET, "/v3/users/alice/messages", &[("apikey", FULL), ("onBehalfOf", "bob")], None).await;
    assert_eq!(history.status, StatusCode::OK, "{}", history.body);
    let texts: Vec<Value> = history.body["data"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|message| message["data"]["text"].clone())
        .collect();
    assert_eq!(
        texts,
        [
            json!("hello before any rule"),
            json!("hello again"),
            json!("mail me at ************** or *** ** **** ****"),
            json!("just kill yourself")
        ],
        "blocked messages are not in history; masked ones are masked"
    );
    let fetched = app.call(Method::GET, &format!("/v3/messages/{blocked_id}"), &KEY, None).await;
    assert_eq!(fetched.status, StatusCode::NOT_FOUND, "a blocked message is no message of the conversation");

    // The queues.
    let blocked_queue = app.call(Method::GET, "/v3/moderation/blocked-messages", &KEY, None).await;
    let items = blocked_queue.body["data"].as_array().expect("items");
    assert_eq!(items.len(), 2, "{}", blocked_queue.body);
    assert_eq!(
        (items[1]["messageId"].clone(), items[1]["text"].clone(), items[1]["ruleId"].clone()),
        (json!(blocked_id), json!("f.u.c.k you"), json!("profanity"))
    );
    let flagged_queue = app.call(Method::GET, "/v3/moderation/flagged-messages?ruleId=threats", &KEY, None).await;
    let items = flagged_queue.body["data"].as_array().expect("items");
    assert_eq!((items.len(), items[0]["messageId"].clone()), (1, json!(flagged_id)));
    let reviewed = app.call(Method::GET, "/v3/moderation/reviewed-messages?ruleId=contacts", &KEY, None).await;
    let items = reviewed.body["data"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{}", reviewed.body);
    assert_eq!(
        (items[0]["queue"].clone(), items[0]["text"].clone(), items[0]["maskedText"].clone()),
        (
            json!("masked"),
            json!("mail me at john@gmail.com or +44 20 7946 0958"),
            json!("mail me at ************** or *** ** **** ****")
        ),
        "the original is kept for moderators"
    );

    // Edits meet the rules too.
    let fine_id = fine.body["data"]["id"].as_str().expect("id").to_owned();
    let edit = app
        .call(
            Method::PUT,
            &format!("/v3/messages/{fine_id}"),
            &[("apikey", FULL), ("onBehalfOf", "alice")],
            Some(json!({ "data": { "text": "sh1t" } })),
        )
        .await;
    assert_eq!((edit.status, edit.code()), (StatusCode::BAD_REQUEST, "ERR_MODERATION_BLOCKED"));
    let unchanged = app.call(Method::GET, &format!("/v3/messages/{fine_id}"), &KEY, None).await;
    assert_eq!(unchanged.body["data"]["data"]["text"], "hello again", "a blocked edit changes nothing");

    // A disabled rule stops at once.
    let mut off = json!({ "name": "Profanity", "conditions": [{ "type": "keywords", "lists": ["profanity"] }], "action": "block" });
    off["enabled"] = json!(false);
    assert_eq!(app.call(Method::PUT, "/v3/moderation/rules/profanity", &KEY, Some(off)).await.status, StatusCode::OK);
    let passes = app.send("alice", text_to("bob", "shit")).await;
    assert_eq!(
        (passes.body["data"]["data"]["moderation"]["status"].clone(), passes.body["data"]["seq"].clone()),
        (json!("approved"), json!(5))
    );
}

#[tokio::test]
async fn send_path_on_sqlite() {
    send_path_scenario(sqlite_app().await).await;
}

#[tokio::test]
async fn send_path_on_mariadb() {
    send_path_scenario(mysql_app().await).await;
}

#[tokio::test]
async fn send_path_on_mongodb() {
    let (app, documents) = mongo_app().await;
    send_path_scenario(app).await;
    documents.drop_database().await.expect("dropping the test database");
}

/// A rule's sender actions: a ban from the group written to, a block by the user written to (each with its own
/// event, through the store's operations), a kick that spares the group's owner; none for a refused send.
async fn sender_actions_scenario(app: App) {
    for uid in ["owner", "troll", "kind", "bob"] {
        app.create_user(uid).await;
    }
    app.group_with("lounge", "public", "owner", json!({ "participants": ["troll", "kind"] })).await;
    let list = json!({ "id": "profanity", "name": "Profanity", "kind": "keywords", "entries": ["shit"] });
    assert_eq!(app.call(Method::POST, "/v3/moderation/lists", &KEY, Some(list)).await.status, StatusCode::OK);
    let rules = [
        json!({ "id": "ban", "name": "Ban", "action": "block", "senderActions": ["banFromGroup", "blockSender"],
                "filters": [{ "field": "receiverType", "operator": "in", "values": ["group"] }],
                "conditions": [{ "type": "keywords", "lists": ["profanity"] }] }),
        json!({ "id": "block", "name": "Block", "action": "flag", "senderActions": ["blockSender", "kickFromGroup"],
                "filters": [{ "field": "receiverType", "operator": "in", "values": ["user"] }],
                "conditions": [{ "type": "keywords", "lists": ["profanity"] }] }),
    ];
    for rule in rules {
        let reply = app.call(Method::POST, "/v3/moderation/rules", &KEY, Some(rule)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let twice = json!({ "id": "twice", "name": "Twice", "action": "block", "senderActions": ["blockSender", "blockSender"],
                        "conditions": [{ "type": "keywords", "lists": ["profanity"] }] });
    let refused = app.call(Method::POST, "/v3/moderation/rules", &KEY, Some(twice)).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::BAD_REQUEST, "ERR_MODERATION_INVALID"));
    let in_group = |text: &str| json!({ "receiver": "lounge", "receiverType": "group", "category": "message", "type": "text", "data": { "text": text } });

    let banned = app.send("troll", in_group("holy shit")).await;
    assert_eq!(banned.body["data"]["data"]["moderation"]["status"], "disapproved", "{}", banned.body);
    let bans = app.call(Method::GET, "/v3/groups/lounge/bannedusers", &KEY, None).await;
    let banned_uids: Vec<&Value> = bans.body["data"].as_array().expect("bans").iter().map(|ban| &ban["uid"]).collect();
    assert_eq!(banned_uids, [&json!("troll")], "{}", bans.body);
    let after = app.send("troll", in_group("hello?")).await;
    assert_eq!((after.status, after.code()), (StatusCode::FORBIDDEN, "ERR_BANNED"), "banned: no more sends");
    // The owner is never kicked or banned.
    let owner = app.send("owner", in_group("shit happens")).await;
    assert_eq!(owner.body["data"]["data"]["moderation"]["status"], "disapproved");
    let bans = app.call(Method::GET, "/v3/groups/lounge/bannedusers", &KEY, None).await;
    assert_eq!(bans.body["data"].as_array().map(Vec::len), Some(1), "{}", bans.body);

    // One on one: the receiver blocks the sender; the flagged message itself was delivered.
    let flagged = app.send("kind", text_to("bob", "shit, sorry")).await;
    assert_eq!(flagged.status, StatusCode::OK, "{}", flagged.body);
    assert!(flagged.body["data"]["seq"].as_i64().is_some_and(|seq| seq > 0), "delivered: {}", flagged.body);
    let blocked = app.call(Method::GET, "/v3/users/bob/blockedusers", &KEY, None).await;
    let blocked_uids: Vec<&Value> =
        blocked.body["data"].as_array().expect("blocked").iter().map(|user| &user["uid"]).collect();
    assert_eq!(blocked_uids, [&json!("kind")], "{}", blocked.body);
    let again = app.send("kind", text_to("bob", "hi")).await;
    assert_eq!((again.status, again.code()), (StatusCode::FORBIDDEN, "ERR_BLOCKED"));
    let member = app.call(Method::GET, "/v3/groups/lounge/members", &KEY, None).await;
    let members: Vec<&Value> = member.body["data"].as_array().expect("members").iter().map(|m| &m["uid"]).collect();
    assert!(members.contains(&&json!("kind")), "a kick does nothing outside a group: {}", member.body);
}

#[tokio::test]
async fn sender_actions_on_sqlite() {
    sender_actions_scenario(sqlite_app().await).await;
}

#[tokio::test]
async fn sender_actions_on_mariadb() {
    sender_actions_scenario(mysql_app().await).await;
}
