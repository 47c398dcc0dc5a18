//! The REST API through its router (no socket), against SQLite and against a real MariaDB.
//! MariaDB comes from `bash .ci/services.sh`; `COMET_TEST_MYSQL_URL` overrides where it is.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use comet_api::{router, ApiConfig, AppState};
use comet_store::Store;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;

const FULL: &str = "full-key-for-tests";
const AUTH_ONLY: &str = "auth-only-key-for-tests";

struct App {
    router: axum::Router,
    _dir: Option<tempfile::TempDir>,
}

struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("<no error code>")
    }
}

async fn sqlite_app() -> App {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("api.db").display());
    let store = Store::connect(&url).await.expect("sqlite store");
    store.migrate().await.expect("migrate");
    App { router: app_router(store), _dir: Some(dir) }
}

async fn mysql_app() -> App {
    let server = std::env::var("COMET_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://app:app@127.0.0.1:3306/app".to_owned());
    let admin = sqlx::mysql::MySqlPool::connect(&server)
        .await
        .unwrap_or_else(|error| panic!("MariaDB at {server} is unreachable ({error}); run `bash .ci/services.sh`"));
    let database = format!("comet_api_{}", uuid_like());
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {database}"))).execute(&admin).await.expect("create database");
    let base = server.rsplit_once('/').map_or(server.as_str(), |(base, _)| base).to_owned();
    let store = Store::connect(&format!("{base}/{database}")).await.expect("mysql store");
    store.migrate().await.expect("migrate");
    App { router: app_router(store), _dir: None }
}

fn uuid_like() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    format!("{:x}_{nanos:x}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
}

fn app_router(store: Store) -> axum::Router {
    router(AppState {
        store,
        config: std::sync::Arc::new(ApiConfig { full_keys: vec![FULL.to_owned()], auth_keys: vec![AUTH_ONLY.to_owned()] }),
    })
}

impl App {
    async fn call(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Reply {
        self.raw(method, path, headers, body.map(|value| value.to_string().into_bytes())).await
    }

    async fn raw(&self, method: Method, path: &str, headers: &[(&str, &str)], body: Option<Vec<u8>>) -> Reply {
        let mut request = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request.body(body.map_or_else(Body::empty, Body::from)).expect("request");
        let response = self.router.clone().oneshot(request).await.expect("router answers");
        let status = response.status();
        let bytes = response.into_body().collect().await.expect("body").to_bytes();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply { status, body }
    }

    async fn create_user(&self, uid: &str) {
        let reply = self.call(Method::POST, "/v3/users", &[("apikey", FULL)], Some(json!({"uid": uid, "name": uid}))).await;
        assert_eq!(reply.status, StatusCode::OK, "create {uid}: {}", reply.body);
    }

    async fn send(&self, from: &str, body: Value) -> Reply {
        self.call(Method::POST, "/v3/messages", &[("apikey", FULL), ("onBehalfOf", from)], Some(body)).await
    }
}

/// Runs `scenario` against SQLite and MariaDB.
macro_rules! both_backends {
    ($name:ident, $scenario:ident) => {
        mod $name {
            #[tokio::test]
            async fn sqlite() {
                super::$scenario(super::sqlite_app().await).await;
            }
            #[tokio::test]
            async fn mariadb() {
                super::$scenario(super::mysql_app().await).await;
            }
        }
    };
}

both_backends!(users_and_tokens, users_and_tokens_scenario);
both_backends!(direct_messages, direct_messages_scenario);
both_backends!(groups_and_authorization, groups_scenario);
both_backends!(bad_input, bad_input_scenario);
both_backends!(idempotent_sends, idempotency_scenario);
both_backends!(edit_and_delete, edit_and_delete_scenario);
both_backends!(history_filters_and_threads, history_filters_scenario);
both_backends!(reactions, reactions_scenario);

async fn users_and_tokens_scenario(app: App) {
    app.create_user("alice").await;
    let again = app.call(Method::POST, "/v3/users", &[("apikey", FULL)], Some(json!({"uid": "alice", "name": "A"}))).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "ERR_UID_ALREADY_EXISTS"));

    // The auth-only key may create users and tokens, and nothing else.
    let created = app.call(Method::POST, "/v3/users", &[("apikey", AUTH_ONLY)], Some(json!({"uid": "bob", "name": "Bob", "withAuthToken": true}))).await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let token = created.body["data"]["authToken"].as_str().expect("authToken").to_owned();
    let listed = app.call(Method::GET, "/v3/users", &[("apikey", AUTH_ONLY)], None).await;
    assert_eq!((listed.status, listed.code()), (StatusCode::FORBIDDEN, "ERR_AUTH_ONLY_KEY"));

    let got = app.call(Method::GET, "/v3/users/bob", &[("apikey", FULL)], None).await;
    assert_eq!(got.body["data"]["name"], "Bob");
    let page = app.call(Method::GET, "/v3/users?perPage=1", &[("apikey", FULL)], None).await;
    assert_eq!(page.body["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page.body["meta"]["pagination"]["next"], "alice");
    let next = app.call(Method::GET, "/v3/users?perPage=1&after=alice", &[("apikey", FULL)], None).await;
    assert_eq!(next.body["data"][0]["uid"], "bob");

    // The token acts as bob.
    let sent = app.call(Method::POST, "/v3/messages", &[("authtoken", &token)], Some(json!({"receiver": "alice", "receiverType": "user", "type": "text", "data": {"text": "hi"}}))).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    assert_eq!(sent.body["data"]["sender"], "bob");
    let bad_token = app.call(Method::GET, "/v3/users/alice/messages", &[("authtoken", "nope")], None).await;
    assert_eq!((bad_token.status, bad_token.code()), (StatusCode::UNAUTHORIZED, "ERR_AUTH_TOKEN_INVALID"));
    let no_auth = app.call(Method::GET, "/v3/users", &[], None).await;
    assert_eq!((no_auth.status, no_auth.code()), (StatusCode::UNAUTHORIZED, "ERR_AUTH_MISSING"));
    let wrong_key = app.call(Method::GET, "/v3/users", &[("apikey", "wrong")], None).await;
    assert_eq!((wrong_key.status, wrong_key.code()), (StatusCode::UNAUTHORIZED, "ERR_API_KEY_INVALID"));
}

async fn direct_messages_scenario(app: App) {
    app.create_user("alice").await;
    app.create_user("bob").await;
    app.create_user("carol").await;
    for n in 1..=5 {
        let reply = app.send("alice", json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": format!("m{n}")}})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["data"]["seq"], n);
        assert_eq!(reply.body["data"]["conversationId"], "alice_user_bob");
    }
    // Both sides read the same history; a third user sees none of it.
    let from_bob = app.call(Method::GET, "/v3/users/alice/messages?perPage=2&afterSeq=2", &[("apikey", FULL), ("onBehalfOf", "bob")], None).await;
    let seqs: Vec<i64> = from_bob.body["data"].as_array().expect("data").iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, vec![3, 4]);
    let before = app.call(Method::GET, "/v3/users/bob/messages?beforeSeq=3", &[("apikey", FULL), ("onBehalfOf", "alice")], None).await;
    let seqs: Vec<i64> = before.body["data"].as_array().expect("data").iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, vec![1, 2]);
    let id = from_bob.body["data"][0]["id"].as_str().expect("id").to_owned();
    let carol_reads = app.call(Method::GET, &format!("/v3/messages/{id}"), &[("apikey", FULL), ("onBehalfOf", "carol")], None).await;
    assert_eq!((carol_reads.status, carol_reads.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));
    let bob_reads = app.call(Method::GET, &format!("/v3/messages/{id}"), &[("apikey", FULL), ("onBehalfOf", "bob")], None).await;
    assert_eq!(bob_reads.status, StatusCode::OK);
    let to_nobody = app.send("alice", json!({"receiver": "nobody", "receiverType": "user", "type": "text", "data": {"text": "x"}})).await;
    assert_eq!((to_nobody.status, to_nobody.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));
}

async fn groups_scenario(app: App) {
    for uid in ["owner", "member", "outsider", "moderator"] {
        app.create_user(uid).await;
    }
    let group = app.call(Method::POST, "/v3/groups", &[("apikey", FULL), ("onBehalfOf", "owner")], Some(json!({"guid": "g1", "name": "G", "type": "private"}))).await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    assert_eq!(group.body["data"]["membersCount"], 1);
    let password = app.call(Method::POST, "/v3/groups", &[("apikey", FULL), ("onBehalfOf", "owner")], Some(json!({"guid": "g2", "name": "P", "type": "password"}))).await;
    assert_eq!((password.status, password.code()), (StatusCode::BAD_REQUEST, "ERR_GROUP_PASSWORD_MISSING"));

    let added = app.call(Method::POST, "/v3/groups/g1/members", &[("apikey", FULL), ("onBehalfOf", "owner")], Some(json!({"participants": ["member", "ghost"], "moderators": ["moderator"]}))).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["data"]["participants"]["member"]["success"], true);
    assert_eq!(added.body["data"]["participants"]["ghost"]["error"]["code"], "ERR_UID_NOT_FOUND");
    // A moderator may add participants but not admins; an outsider may not see the private group at all.
    let moderator_adds_admin = app.call(Method::POST, "/v3/groups/g1/members", &[("apikey", FULL), ("onBehalfOf", "moderator")], Some(json!({"admins": ["outsider"]}))).await;
    assert_eq!((moderator_adds_admin.status, moderator_adds_admin.code()), (StatusCode::FORBIDDEN, "ERR_GROUP_NOT_ALLOWED"));
    let outsider_reads = app.call(Method::GET, "/v3/groups/g1/messages", &[("apikey", FULL), ("onBehalfOf", "outsider")], None).await;
    assert_eq!((outsider_reads.status, outsider_reads.code()), (StatusCode::NOT_FOUND, "ERR_GUID_NOT_FOUND"));
    let outsider_posts = app.send("outsider", json!({"receiver": "g1", "receiverType": "group", "type": "text", "data": {"text": "x"}})).await;
    assert_eq!(outsider_posts.status, StatusCode::NOT_FOUND);

    let posted = app.send("member", json!({"receiver": "g1", "receiverType": "group", "type": "text", "data": {"text": "hello"}, "tags": ["a"]})).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    assert_eq!(posted.body["data"]["conversationId"], "group_g1");
    let history = app.call(Method::GET, "/v3/groups/g1/messages", &[("apikey", FULL), ("onBehalfOf", "owner")], None).await;
    assert_eq!(history.body["data"][0]["data"]["text"], "hello");
    let members = app.call(Method::GET, "/v3/groups/g1/members", &[("apikey", FULL)], None).await;
    assert_eq!(members.body["data"].as_array().map(Vec::len), Some(3));
    let reply = app.send("owner", json!({"receiver": "g1", "receiverType": "group", "type": "text", "data": {"text": "re"}, "parentId": posted.body["data"]["id"]})).await;
    assert_eq!(reply.body["data"]["parentId"], posted.body["data"]["id"]);
}

async fn bad_input_scenario(app: App) {
    app.create_user("alice").await;
    app.create_user("bob").await;
    let as_alice = [("apikey", FULL), ("onBehalfOf", "alice")];
    let cases: Vec<(Option<Vec<u8>>, StatusCode, &str)> = vec![
        (Some(b"{not json".to_vec()), StatusCode::BAD_REQUEST, "ERR_BODY_MALFORMED"),
        (None, StatusCode::BAD_REQUEST, "ERR_BODY_MISSING"),
        (Some(json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": 5}}).to_string().into_bytes()), StatusCode::BAD_REQUEST, "ERR_MESSAGE_TEXT_MISSING"),
        (Some(json!({"receiver": "bob", "receiverType": "planet", "type": "text", "data": {"text": "x"}}).to_string().into_bytes()), StatusCode::BAD_REQUEST, "ERR_RECEIVER_TYPE_INVALID"),
        (Some(json!({"receiver": "bob", "receiverType": "user", "type": "hologram", "data": {"text": "x"}}).to_string().into_bytes()), StatusCode::BAD_REQUEST, "ERR_MESSAGE_TYPE_INVALID"),
        (Some(json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": "x"}).to_string().into_bytes()), StatusCode::BAD_REQUEST, "ERR_MESSAGE_DATA_INVALID"),
        (Some(json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": "x"}, "extra": 1}).to_string().into_bytes()), StatusCode::BAD_REQUEST, "ERR_BODY_INVALID"),
        (Some(json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": "x"}, "tags": vec!["t"; 26]}).to_string().into_bytes()), StatusCode::BAD_REQUEST, "ERR_TAGS_INVALID"),
        (Some(json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": "x".repeat(70_000)}}).to_string().into_bytes()), StatusCode::PAYLOAD_TOO_LARGE, "ERR_MESSAGE_TOO_LARGE"),
        (Some(vec![b' '; 200 * 1024]), StatusCode::PAYLOAD_TOO_LARGE, "ERR_BODY_TOO_LARGE"),
        (Some(json!({"receiver": "bad uid!", "receiverType": "user", "type": "text", "data": {"text": "x"}}).to_string().into_bytes()), StatusCode::BAD_REQUEST, "ERR_UID_INVALID"),
    ];
    for (body, status, code) in cases {
        let reply = app.raw(Method::POST, "/v3/messages", &as_alice, body).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{}", reply.body);
    }
    let missing_user = app.call(Method::POST, "/v3/messages", &[("apikey", FULL)], Some(json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": "x"}}))).await;
    assert_eq!((missing_user.status, missing_user.code()), (StatusCode::BAD_REQUEST, "ERR_ON_BEHALF_OF_MISSING"));
    let ghost = app.call(Method::GET, "/v3/users/bob/messages", &[("apikey", FULL), ("onBehalfOf", "ghost")], None).await;
    assert_eq!((ghost.status, ghost.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));
    let big_page = app.call(Method::GET, "/v3/users?perPage=101", &[("apikey", FULL)], None).await;
    assert_eq!((big_page.status, big_page.code()), (StatusCode::BAD_REQUEST, "ERR_PER_PAGE_INVALID"));
    let unknown = app.call(Method::GET, "/v3/planets", &[("apikey", FULL)], None).await;
    assert_eq!((unknown.status, unknown.code()), (StatusCode::NOT_FOUND, "ERR_ROUTE_NOT_FOUND"));
    // Nothing above was written.
    let history = app.call(Method::GET, "/v3/users/bob/messages", &as_alice, None).await;
    assert_eq!(history.body["data"].as_array().map(Vec::len), Some(0), "{}", history.body);
}

async fn idempotency_scenario(app: App) {
    app.create_user("alice").await;
    app.create_user("bob").await;
    let body = json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": "once"}, "muid": "client-1"});
    let replies = futures::future::join_all((0..5).map(|_| app.send("alice", body.clone()))).await;
    let ids: Vec<&Value> = replies.iter().map(|reply| &reply.body["data"]["id"]).collect();
    assert!(replies.iter().all(|reply| reply.status == StatusCode::OK), "{:?}", replies.iter().map(|r| &r.body).collect::<Vec<_>>());
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "{ids:?}");
    assert!(replies.iter().all(|reply| reply.body["data"]["seq"] == 1));
    let history = app.call(Method::GET, "/v3/users/bob/messages", &[("apikey", FULL), ("onBehalfOf", "alice")], None).await;
    assert_eq!(history.body["data"].as_array().map(Vec::len), Some(1));
}

fn as_user(uid: &str) -> [(&'static str, &str); 2] {
    [("apikey", FULL), ("onBehalfOf", uid)]
}

fn seqs_of(reply: &Reply) -> Vec<i64> {
    reply.body["data"].as_array().map(|items| items.iter().filter_map(|m| m["seq"].as_i64()).collect()).unwrap_or_default()
}

async fn group_with_roles(app: &App) {
    for uid in ["owner", "member", "other", "moderator", "outsider"] {
        app.create_user(uid).await;
    }
    let group = app.call(Method::POST, "/v3/groups", &as_user("owner"), Some(json!({"guid": "g1", "name": "G", "type": "private"}))).await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    let added = app.call(Method::POST, "/v3/groups/g1/members", &as_user("owner"), Some(json!({"participants": ["member", "other"], "moderators": ["moderator"]}))).await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
}

async fn post_to_group(app: &App, from: &str, text: &str) -> String {
    let sent = app.send(from, json!({"receiver": "g1", "receiverType": "group", "type": "text", "data": {"text": text}})).await;
    assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
    sent.body["data"]["id"].as_str().expect("id").to_owned()
}

async fn edit_and_delete_scenario(app: App) {
    group_with_roles(&app).await;
    let first = post_to_group(&app, "member", "first").await;
    let second = post_to_group(&app, "member", "second").await;
    let third = post_to_group(&app, "member", "third").await;
    let path = |id: &str| format!("/v3/messages/{id}");

    // The sender edits; data and tags are replaced, editedAt and editedBy are set.
    let edited = app.call(Method::PUT, &path(&first), &as_user("member"), Some(json!({"data": {"text": "first, fixed"}, "tags": ["fixed"]}))).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["data"]["data"]["text"], "first, fixed");
    assert_eq!(edited.body["data"]["tags"], json!(["fixed"]));
    assert_eq!(edited.body["data"]["editedBy"], "member");
    assert!(edited.body["data"]["editedAt"].is_i64(), "{}", edited.body);
    let read_back = app.call(Method::GET, &path(&first), &as_user("owner"), None).await;
    assert_eq!(read_back.body["data"]["data"]["text"], "first, fixed");

    // Another participant may neither edit nor delete; an outsider does not see the message at all.
    let other_edits = app.call(Method::PUT, &path(&first), &as_user("other"), Some(json!({"data": {"text": "mine now"}}))).await;
    assert_eq!((other_edits.status, other_edits.code()), (StatusCode::FORBIDDEN, "ERR_MESSAGE_NOT_ALLOWED"));
    let other_deletes = app.call(Method::DELETE, &path(&first), &as_user("other"), None).await;
    assert_eq!((other_deletes.status, other_deletes.code()), (StatusCode::FORBIDDEN, "ERR_MESSAGE_NOT_ALLOWED"));
    let outsider_deletes = app.call(Method::DELETE, &path(&first), &as_user("outsider"), None).await;
    assert_eq!((outsider_deletes.status, outsider_deletes.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));
    let auth_only = app.call(Method::DELETE, &path(&first), &[("apikey", AUTH_ONLY)], None).await;
    assert_eq!((auth_only.status, auth_only.code()), (StatusCode::FORBIDDEN, "ERR_AUTH_ONLY_KEY"));

    // A moderator edits and deletes others' messages; the app deletes any.
    let moderator_edits = app.call(Method::PUT, &path(&second), &as_user("moderator"), Some(json!({"tags": ["moderated"]}))).await;
    assert_eq!(moderator_edits.status, StatusCode::OK, "{}", moderator_edits.body);
    assert_eq!(moderator_edits.body["data"]["editedBy"], "moderator");
    assert_eq!(moderator_edits.body["data"]["data"]["text"], "second", "data is kept when only tags change");
    let moderator_deletes = app.call(Method::DELETE, &path(&second), &as_user("moderator"), None).await;
    assert_eq!(moderator_deletes.status, StatusCode::OK, "{}", moderator_deletes.body);
    assert_eq!(moderator_deletes.body["data"]["deletedBy"], "moderator");
    assert_eq!(moderator_deletes.body["data"]["data"], json!({}), "a deleted message's content is cleared");
    let app_deletes = app.call(Method::DELETE, &path(&third), &[("apikey", FULL)], None).await;
    assert_eq!(app_deletes.status, StatusCode::OK, "{}", app_deletes.body);
    assert_eq!(app_deletes.body["data"]["deletedBy"], Value::Null);

    // A deleted message no longer changes.
    let edit_deleted = app.call(Method::PUT, &path(&second), &as_user("member"), Some(json!({"data": {"text": "again"}}))).await;
    assert_eq!((edit_deleted.status, edit_deleted.code()), (StatusCode::CONFLICT, "ERR_MESSAGE_DELETED"));
    let delete_again = app.call(Method::DELETE, &path(&second), &as_user("member"), None).await;
    assert_eq!((delete_again.status, delete_again.code()), (StatusCode::CONFLICT, "ERR_MESSAGE_DELETED"));

    // Deleted messages keep their seq: history has no gap, and hideDeleted leaves them out.
    let history = app.call(Method::GET, "/v3/groups/g1/messages", &as_user("owner"), None).await;
    assert_eq!(seqs_of(&history), vec![1, 2, 3]);
    assert!(history.body["data"][1]["deletedAt"].is_i64(), "{}", history.body);
    assert_eq!(history.body["data"][0]["deletedAt"], Value::Null);
    let visible = app.call(Method::GET, "/v3/groups/g1/messages?hideDeleted=true", &as_user("owner"), None).await;
    assert_eq!(seqs_of(&visible), vec![1]);

    // In a direct conversation only the sender may change a message.
    let direct = app.send("owner", json!({"receiver": "member", "receiverType": "user", "type": "text", "data": {"text": "dm"}})).await;
    let direct_id = direct.body["data"]["id"].as_str().expect("id").to_owned();
    let receiver_edits = app.call(Method::PUT, &path(&direct_id), &as_user("member"), Some(json!({"data": {"text": "x"}}))).await;
    assert_eq!((receiver_edits.status, receiver_edits.code()), (StatusCode::FORBIDDEN, "ERR_MESSAGE_NOT_ALLOWED"));

    // Bad input.
    let bad: Vec<(Method, String, Option<Value>, StatusCode, &str)> = vec![
        (Method::PUT, path(&direct_id), Some(json!({})), StatusCode::BAD_REQUEST, "ERR_EDIT_EMPTY"),
        (Method::PUT, path(&direct_id), Some(json!({"data": {"text": ""}})), StatusCode::BAD_REQUEST, "ERR_MESSAGE_TEXT_MISSING"),
        (Method::PUT, path(&direct_id), Some(json!({"data": "text"})), StatusCode::BAD_REQUEST, "ERR_MESSAGE_DATA_INVALID"),
        (Method::PUT, path(&direct_id), Some(json!({"tags": vec!["t"; 26]})), StatusCode::BAD_REQUEST, "ERR_TAGS_INVALID"),
        (Method::PUT, path(&direct_id), Some(json!({"data": {"text": "x"}, "sender": "member"})), StatusCode::BAD_REQUEST, "ERR_BODY_INVALID"),
        (Method::PUT, path("no-such-message"), Some(json!({"data": {"text": "x"}})), StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"),
        (Method::DELETE, path("no-such-message"), None, StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"),
    ];
    for (method, target, body, status, code) in bad {
        let reply = app.call(method.clone(), &target, &as_user("owner"), body).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{method} {target}: {}", reply.body);
    }
    let unchanged = app.call(Method::GET, &path(&direct_id), &as_user("owner"), None).await;
    assert_eq!((unchanged.body["data"]["data"]["text"].clone(), unchanged.body["data"]["editedAt"].clone()), (json!("dm"), Value::Null));
}

async fn history_filters_scenario(app: App) {
    group_with_roles(&app).await;
    let root = post_to_group(&app, "member", "root").await;
    post_to_group(&app, "member", "plain").await;
    let mut replies = Vec::new();
    for n in 0..3 {
        let reply = app.send("other", json!({"receiver": "g1", "receiverType": "group", "type": "text", "data": {"text": format!("re {n}")}, "parentId": root})).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        replies.push(reply.body["data"]["id"].as_str().expect("id").to_owned());
    }
    // Seqs: root 1, plain 2, replies 3, 4, 5.
    let thread = app.call(Method::GET, &format!("/v3/messages/{root}/thread"), &as_user("owner"), None).await;
    assert_eq!(thread.status, StatusCode::OK, "{}", thread.body);
    assert_eq!(seqs_of(&thread), vec![3, 4, 5]);
    let paged = app.call(Method::GET, &format!("/v3/messages/{root}/thread?perPage=1&afterSeq=3"), &as_user("owner"), None).await;
    assert_eq!(seqs_of(&paged), vec![4]);
    let by_filter = app.call(Method::GET, &format!("/v3/groups/g1/messages?parentId={root}"), &as_user("owner"), None).await;
    assert_eq!(seqs_of(&by_filter), vec![3, 4, 5]);
    let outsider = app.call(Method::GET, &format!("/v3/messages/{root}/thread"), &as_user("outsider"), None).await;
    assert_eq!((outsider.status, outsider.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));

    // updatedSince: only what changed at or after the time. Stored times are ms, the API speaks seconds, so
    // everything so far happened before `later` (one second ahead of the last send).
    let sent_at = thread.body["data"][2]["sentAt"].as_i64().expect("sentAt");
    let all = app.call(Method::GET, &format!("/v3/groups/g1/messages?updatedSince={sent_at}"), &as_user("owner"), None).await;
    assert_eq!(seqs_of(&all), vec![1, 2, 3, 4, 5]);
    let later = sent_at + 1;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let nothing = app.call(Method::GET, &format!("/v3/groups/g1/messages?updatedSince={later}"), &as_user("owner"), None).await;
    assert_eq!(seqs_of(&nothing), Vec::<i64>::new());
    let edited = app.call(Method::PUT, &format!("/v3/messages/{}", replies[1]), &as_user("other"), Some(json!({"data": {"text": "edited"}}))).await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let since = app.call(Method::GET, &format!("/v3/groups/g1/messages?updatedSince={later}"), &as_user("owner"), None).await;
    assert_eq!(seqs_of(&since), vec![4]);

    for (query, code) in [("hideDeleted=yes", "ERR_HIDE_DELETED_INVALID"), ("updatedSince=soon", "ERR_UPDATED_SINCE_INVALID"), ("updatedSince=-1", "ERR_UPDATED_SINCE_INVALID"), ("afterSeq=1&beforeSeq=3", "ERR_CURSOR_INVALID")] {
        let reply = app.call(Method::GET, &format!("/v3/groups/g1/messages?{query}"), &as_user("owner"), None).await;
        assert_eq!((reply.status, reply.code()), (StatusCode::BAD_REQUEST, code), "{query}: {}", reply.body);
    }
}

async fn reactions_scenario(app: App) {
    group_with_roles(&app).await;
    let id = post_to_group(&app, "member", "react to me").await;
    let add = |uid: &'static str, reaction: &'static str| {
        let path = format!("/v3/messages/{id}/reactions/{reaction}");
        let app = &app;
        async move { app.call(Method::POST, &path, &as_user(uid), None).await }
    };
    let first = add("other", "thumbsup").await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_eq!(first.body["data"]["reactions"], json!([{"reaction": "thumbsup", "count": 1}]));
    let twice = add("other", "thumbsup").await;
    assert_eq!(twice.body["data"]["reactions"], json!([{"reaction": "thumbsup", "count": 1}]), "adding twice is one reaction");
    add("owner", "thumbsup").await;
    // An emoji, percent-encoded in the path.
    let emoji = app.call(Method::POST, &format!("/v3/messages/{id}/reactions/%F0%9F%98%8A"), &as_user("member"), None).await;
    assert_eq!(emoji.status, StatusCode::OK, "{}", emoji.body);

    let listed = app.call(Method::GET, &format!("/v3/messages/{id}/reactions"), &as_user("member"), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(listed.body["meta"]["reactions"], json!([{"reaction": "thumbsup", "count": 2}, {"reaction": "😊", "count": 1}]));
    let who: Vec<(String, String)> = listed.body["data"].as_array().expect("data").iter().map(|r| (r["reaction"].as_str().unwrap_or("").to_owned(), r["uid"].as_str().unwrap_or("").to_owned())).collect();
    assert_eq!(who, vec![("thumbsup".to_owned(), "other".to_owned()), ("thumbsup".to_owned(), "owner".to_owned()), ("😊".to_owned(), "member".to_owned())]);
    let page_one = app.call(Method::GET, &format!("/v3/messages/{id}/reactions?perPage=1"), &as_user("member"), None).await;
    assert_eq!(page_one.body["meta"]["pagination"]["next"], json!({"afterReaction": "thumbsup", "afterUid": "other"}));
    let page_two = app.call(Method::GET, &format!("/v3/messages/{id}/reactions?perPage=1&afterReaction=thumbsup&afterUid=other"), &as_user("member"), None).await;
    assert_eq!(page_two.body["data"][0]["uid"], "owner");

    // Removing; removing again changes nothing.
    let path = format!("/v3/messages/{id}/reactions/thumbsup");
    let removed = app.call(Method::DELETE, &path, &as_user("other"), None).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert_eq!(removed.body["data"]["reactions"], json!([{"reaction": "thumbsup", "count": 1}, {"reaction": "😊", "count": 1}]));
    let again = app.call(Method::DELETE, &path, &as_user("other"), None).await;
    assert_eq!(again.body["data"]["reactions"], removed.body["data"]["reactions"]);
    // History shows the summary.
    let history = app.call(Method::GET, "/v3/groups/g1/messages", &as_user("owner"), None).await;
    assert_eq!(history.body["data"][0]["reactions"], removed.body["data"]["reactions"]);

    // Someone who may not read the message may neither react nor list its reactions.
    let outsider_lists = app.call(Method::GET, &format!("/v3/messages/{id}/reactions"), &as_user("outsider"), None).await;
    assert_eq!((outsider_lists.status, outsider_lists.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));
    let outsider_reacts = add("outsider", "thumbsup").await;
    assert_eq!((outsider_reacts.status, outsider_reacts.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));
    let dm = app.send("owner", json!({"receiver": "member", "receiverType": "user", "type": "text", "data": {"text": "dm"}})).await;
    let dm_id = dm.body["data"]["id"].as_str().expect("id").to_owned();
    let third_party = app.call(Method::GET, &format!("/v3/messages/{dm_id}/reactions"), &as_user("other"), None).await;
    assert_eq!((third_party.status, third_party.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));

    // Bad input.
    let long = "x".repeat(65);
    let cases = [
        (Method::POST, format!("/v3/messages/{id}/reactions/{long}"), &as_user("member")[..], StatusCode::BAD_REQUEST, "ERR_REACTION_INVALID"),
        (Method::POST, format!("/v3/messages/{id}/reactions/a%20b"), &as_user("member")[..], StatusCode::BAD_REQUEST, "ERR_REACTION_INVALID"),
        (Method::POST, format!("/v3/messages/{id}/reactions/ok"), &[("apikey", FULL)][..], StatusCode::BAD_REQUEST, "ERR_ON_BEHALF_OF_MISSING"),
        (Method::GET, format!("/v3/messages/{id}/reactions?perPage=0"), &as_user("member")[..], StatusCode::BAD_REQUEST, "ERR_PER_PAGE_INVALID"),
        (Method::GET, format!("/v3/messages/{id}/reactions?afterReaction=ok"), &as_user("member")[..], StatusCode::BAD_REQUEST, "ERR_CURSOR_INVALID"),
        (Method::POST, "/v3/messages/no-such-message/reactions/ok".to_owned(), &as_user("member")[..], StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"),
    ];
    for (method, target, headers, status, code) in cases {
        let reply = app.call(method.clone(), &target, headers, None).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{method} {target}: {}", reply.body);
    }
    let max = "y".repeat(64);
    let longest = app.call(Method::POST, &format!("/v3/messages/{id}/reactions/{max}"), &as_user("member"), None).await;
    assert_eq!(longest.status, StatusCode::OK, "64 characters is allowed: {}", longest.body);

    // A deleted message takes no reactions.
    let deleted = app.call(Method::DELETE, &format!("/v3/messages/{id}"), &as_user("member"), None).await;
    assert_eq!(deleted.status, StatusCode::OK);
    let late = add("other", "thumbsup").await;
    assert_eq!((late.status, late.code()), (StatusCode::CONFLICT, "ERR_MESSAGE_DELETED"));
}
