//! `/v3/notifications` through the router: a user's own tokens, preferences and mutes; the app's providers,
//! defaults and log; the refusals (stable codes, nothing written), on SQLite and MariaDB.

use axum::http::{Method, StatusCode};
use serde_json::json;

use crate::{App, FULL, as_user, expect, mysql_app, sqlite_app};

const KEY: [(&str, &str); 1] = [("apikey", FULL)];

async fn scenario(app: App) {
    for uid in ["alice", "bob", "carol"] {
        app.create_user(uid).await;
    }
    // No provider yet: a token has nowhere to go.
    let token = json!({"token": "fcm-token-1", "platform": "android", "sessionId": "phone"});
    let refused = app.call(Method::POST, "/v3/notifications/tokens", &as_user("bob"), Some(token.clone())).await;
    expect(&refused, StatusCode::NOT_FOUND, "ERR_PUSH_PROVIDER_NOT_FOUND");

    // Providers are the app's: users may not manage them.
    let fcm = json!({"id": "fcm-main", "kind": "fcm", "serviceAccount": "fcm.json", "isDefault": true});
    let by_user = app.call(Method::POST, "/v3/notifications/providers", &as_user("bob"), Some(fcm.clone())).await;
    expect(&by_user, StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED");
    let created = app.call(Method::POST, "/v3/notifications/providers", &KEY, Some(fcm.clone())).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.body["data"]["serviceAccount"], "fcm.json", "a reference, not a credential");
    expect(
        &app.call(Method::POST, "/v3/notifications/providers", &KEY, Some(fcm)).await,
        StatusCode::CONFLICT,
        "ERR_PUSH_PROVIDER_ALREADY_EXISTS",
    );
    for (bad, why) in [
        (json!({"id": "x", "kind": "fcm", "serviceAccount": "../etc/passwd"}), "a path, not a secret name"),
        (json!({"id": "x", "kind": "fcm", "serviceAccount": "a", "password": "p"}), "an unknown field"),
        (json!({"id": "x", "kind": "carrier-pigeon"}), "an unknown kind"),
        (json!({"id": "x", "kind": "webhook", "url": "https://169.254.169.254/latest", "secret": "s"}), "SSRF"),
        (json!({"id": "bad id!", "kind": "fcm", "serviceAccount": "a"}), "a bad id"),
    ] {
        let reply = app.call(Method::POST, "/v3/notifications/providers", &KEY, Some(bad)).await;
        expect(&reply, StatusCode::BAD_REQUEST, "ERR_PUSH_PROVIDER_INVALID");
        assert!(!reply.body.to_string().contains("passwd") || why != "a path", "{why}");
    }
    let apns = json!({"id": "apns-main", "kind": "apns", "key": "apns.p8", "keyId": "ABC123DEFG",
        "teamId": "TEAM123456", "bundleId": "com.example.chat", "production": false});
    assert_eq!(app.call(Method::POST, "/v3/notifications/providers", &KEY, Some(apns)).await.status, StatusCode::OK);
    let listed = app.call(Method::GET, "/v3/notifications/providers", &KEY, None).await;
    let defaults: Vec<(String, bool)> = listed.body["data"]
        .as_array()
        .expect("providers")
        .iter()
        .map(|provider| (provider["id"].as_str().unwrap_or_default().to_owned(), provider["isDefault"] == true))
        .collect();
    assert_eq!(defaults, [("apns-main".to_owned(), false), ("fcm-main".to_owned(), true)]);

    // Tokens: the caller's own, one per session, at most 100.
    let registered = app.call(Method::POST, "/v3/notifications/tokens", &as_user("bob"), Some(token.clone())).await;
    assert_eq!(registered.status, StatusCode::OK, "{}", registered.body);
    assert_eq!(registered.body["data"]["providerId"], "fcm-main", "the default provider");
    assert_eq!(registered.body["data"]["tokenEnd"], "oken-1");
    assert!(registered.body["data"].get("token").is_none(), "the token itself is not echoed");
    let id = registered.body["data"]["id"].as_str().expect("id").to_owned();
    for (bad, code) in [
        (json!({"token": "a/b", "platform": "android", "sessionId": "s"}), "ERR_PUSH_TOKEN_INVALID"),
        (json!({"token": "x".repeat(4097), "platform": "android", "sessionId": "s"}), "ERR_PUSH_TOKEN_INVALID"),
        (json!({"token": "t", "platform": "fax", "sessionId": "s"}), "ERR_PUSH_PLATFORM_INVALID"),
        (json!({"token": "t", "platform": "android", "sessionId": ""}), "ERR_PUSH_SESSION_INVALID"),
        (
            json!({"token": "t", "platform": "android", "sessionId": "s", "providerId": "apns-main"}),
            "ERR_PUSH_PLATFORM_INVALID",
        ),
    ] {
        expect(
            &app.call(Method::POST, "/v3/notifications/tokens", &as_user("bob"), Some(bad)).await,
            StatusCode::BAD_REQUEST,
            code,
        );
    }
    let app_key = app.call(Method::POST, "/v3/notifications/tokens", &KEY, Some(token.clone())).await;
    expect(&app_key, StatusCode::BAD_REQUEST, "ERR_ON_BEHALF_OF_MISSING");
    for n in 1..100 {
        let more = json!({"token": format!("tok-{n}"), "platform": "web", "sessionId": format!("s{n}")});
        let reply = app.call(Method::POST, "/v3/notifications/tokens", &as_user("carol"), Some(more)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }
    let last = json!({"token": "tok-100", "platform": "web", "sessionId": "s100"});
    let one_more = app.call(Method::POST, "/v3/notifications/tokens", &as_user("carol"), Some(last.clone())).await;
    assert_eq!(one_more.status, StatusCode::OK, "the 100th");
    let over = json!({"token": "tok-101", "platform": "web", "sessionId": "s101"});
    let reply = app.call(Method::POST, "/v3/notifications/tokens", &as_user("carol"), Some(over)).await;
    expect(&reply, StatusCode::BAD_REQUEST, "ERR_PUSH_TOKENS_LIMIT_REACHED");
    let mine = app.call(Method::GET, "/v3/notifications/tokens", &as_user("bob"), None).await;
    assert_eq!(mine.body["data"].as_array().map(Vec::len), Some(1), "only bob's");
    let theirs = app.call(Method::DELETE, &format!("/v3/notifications/tokens/{id}"), &as_user("carol"), None).await;
    expect(&theirs, StatusCode::NOT_FOUND, "ERR_PUSH_TOKEN_NOT_FOUND");
    let deleted = app.call(Method::DELETE, &format!("/v3/notifications/tokens/{id}"), &as_user("bob"), None).await;
    assert_eq!(deleted.status, StatusCode::OK);

    // Preferences: the user's own, within what the app allows.
    let quiet = json!({"dnd": true, "quietHours": {"timeZone": "Asia/Tokyo",
        "spans": [{"day": "monday", "from": "2200", "to": "0700"}]}});
    let saved = app.call(Method::PUT, "/v3/notifications/preferences", &as_user("bob"), Some(quiet)).await;
    assert_eq!(saved.status, StatusCode::OK, "{}", saved.body);
    assert_eq!(saved.body["data"]["effective"]["dnd"], true);
    assert_eq!(saved.body["data"]["effective"]["quietHours"]["timeZone"], "Asia/Tokyo");
    let bad_zone = json!({"quietHours": {"timeZone": "Mars/Olympus", "spans": []}});
    let reply = app.call(Method::PUT, "/v3/notifications/preferences", &as_user("bob"), Some(bad_zone)).await;
    expect(&reply, StatusCode::BAD_REQUEST, "ERR_QUIET_HOURS_INVALID");
    let unknown =
        app.call(Method::PUT, "/v3/notifications/preferences", &as_user("bob"), Some(json!({"loud": 1}))).await;
    expect(&unknown, StatusCode::BAD_REQUEST, "ERR_BODY_INVALID");
    let locked = json!({"dnd": false, "privacy": true, "mentionBypass": true, "reactions": true,
        "userMayOverride": {"dnd": true, "privacy": false, "mentionBypass": true, "reactions": true, "quietHours": true}});
    let by_user = app.call(Method::PUT, "/v3/notifications/defaults", &as_user("bob"), Some(locked.clone())).await;
    expect(&by_user, StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED");
    assert_eq!(app.call(Method::PUT, "/v3/notifications/defaults", &KEY, Some(locked)).await.status, StatusCode::OK);
    let privacy = json!({"privacy": false});
    let reply = app.call(Method::PUT, "/v3/notifications/preferences", &as_user("bob"), Some(privacy)).await;
    expect(&reply, StatusCode::FORBIDDEN, "ERR_PREFERENCE_LOCKED");
    let got = app.call(Method::GET, "/v3/notifications/preferences", &as_user("bob"), None).await;
    assert_eq!(got.body["data"]["effective"]["privacy"], true, "the app's privacy default holds");
    assert_eq!(got.body["data"]["preferences"]["dnd"], true, "the refused request wrote nothing");

    // Mutes: a conversation the caller takes part in, until a time in the future.
    app.group_with("hikers", "public", "alice", json!({"participants": ["bob"]})).await;
    let until = comet_model::now_millis() / 1000 + 3600;
    let muted = app
        .call(Method::PUT, "/v3/notifications/mutes/group/hikers", &as_user("bob"), Some(json!({"until": until})))
        .await;
    assert_eq!(muted.status, StatusCode::OK, "{}", muted.body);
    let outsider = app
        .call(Method::PUT, "/v3/notifications/mutes/group/hikers", &as_user("carol"), Some(json!({"until": until})))
        .await;
    expect(&outsider, StatusCode::NOT_FOUND, "ERR_GUID_NOT_FOUND");
    let past =
        app.call(Method::PUT, "/v3/notifications/mutes/user/alice", &as_user("bob"), Some(json!({"until": 5}))).await;
    expect(&past, StatusCode::BAD_REQUEST, "ERR_MUTE_INVALID");
    let kind = app
        .call(Method::PUT, "/v3/notifications/mutes/planet/alice", &as_user("bob"), Some(json!({"until": until})))
        .await;
    expect(&kind, StatusCode::BAD_REQUEST, "ERR_RECEIVER_TYPE_INVALID");
    let direct = app
        .call(Method::PUT, "/v3/notifications/mutes/user/alice", &as_user("bob"), Some(json!({"until": until})))
        .await;
    assert_eq!(direct.status, StatusCode::OK);
    let mutes = app.call(Method::GET, "/v3/notifications/mutes", &as_user("bob"), None).await;
    let listed: Vec<(String, String)> = mutes.body["data"]
        .as_array()
        .expect("mutes")
        .iter()
        .map(|mute| {
            (mute["receiverType"].as_str().unwrap_or("").to_owned(), mute["receiver"].as_str().unwrap_or("").to_owned())
        })
        .collect();
    assert_eq!(listed, [("group".to_owned(), "hikers".to_owned()), ("user".to_owned(), "alice".to_owned())]);
    let unmuted = app.call(Method::DELETE, "/v3/notifications/mutes/user/alice", &as_user("bob"), None).await;
    assert_eq!(unmuted.status, StatusCode::OK);
    let again = app.call(Method::DELETE, "/v3/notifications/mutes/user/alice", &as_user("bob"), None).await;
    expect(&again, StatusCode::NOT_FOUND, "ERR_MUTE_NOT_FOUND");
    let reset = app.call(Method::DELETE, "/v3/notifications/preferences", &as_user("bob"), None).await;
    assert_eq!(reset.body["data"]["preferences"], json!({}));
    let after = app.call(Method::GET, "/v3/notifications/mutes", &as_user("bob"), None).await;
    assert_eq!(after.body["data"], json!([]), "a reset forgets the mutes");

    // The log is the app's.
    expect(
        &app.call(Method::GET, "/v3/notifications/log", &as_user("bob"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_NOT_ALLOWED",
    );
    let log = app.call(Method::GET, "/v3/notifications/log?outcome=skipped&perPage=10", &KEY, None).await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.body);
    let bad = app.call(Method::GET, "/v3/notifications/log?outcome=maybe", &KEY, None).await;
    expect(&bad, StatusCode::BAD_REQUEST, "ERR_LOG_FILTER_INVALID");

    // Deleting a provider takes its tokens with it.
    assert_eq!(
        app.call(Method::DELETE, "/v3/notifications/providers/fcm-main", &KEY, None).await.status,
        StatusCode::OK
    );
    let carol = app.call(Method::GET, "/v3/notifications/tokens", &as_user("carol"), None).await;
    assert_eq!(carol.body["data"], json!([]));
    expect(
        &app.call(Method::GET, "/v3/notifications/providers/fcm-main", &KEY, None).await,
        StatusCode::NOT_FOUND,
        "ERR_PUSH_PROVIDER_NOT_FOUND",
    );
}

#[tokio::test]
async fn notifications_on_sqlite() {
    scenario(sqlite_app().await).await;
}

#[tokio::test]
async fn notifications_on_mariadb() {
    scenario(mysql_app().await).await;
}
