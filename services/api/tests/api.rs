//! The REST API through its router (no socket), against SQLite and against a real MariaDB.
//! MariaDB comes from `bash .ci/services.sh`; `COMET_TEST_MYSQL_URL` overrides where it is.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use comet_api::{ApiConfig, AppState, router};
use comet_store::Store;
use comet_testkit::TestDatabase;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use self::contract::{content_type_scenario, names_scenario, nulls_scenario, search_key_scenario};
use self::edge::{error_envelope_scenario, identity_headers_scenario};

mod admission;
mod contract;
mod edge;
mod moderation;
mod notifications;
mod openapi;
mod webhooks;

const FULL: &str = "full-key-for-tests";
const AUTH_ONLY: &str = "auth-only-key-for-tests";

struct App {
    router: axum::Router,
    /// Kept for the test's length: a SQLite file lives in a temporary folder.
    _database: TestDatabase,
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
    app_on(TestDatabase::sqlite()).await
}

async fn mysql_app() -> App {
    app_on(TestDatabase::mariadb().await).await
}

/// An app on SQLite whose webhook configurations live in a fresh database on the test MongoDB server; the
/// MongoDB database is returned so the test can drop it.
async fn mongo_app() -> (App, comet_documents::Documents) {
    let url = comet_testkit::mongo_url();
    comet_testkit::require_mongo(&url);
    let documents = comet_documents::Documents::connect(&url, None, &comet_testkit::mongo_database())
        .await
        .expect("connecting to MongoDB");
    let database = TestDatabase::sqlite();
    let store = Store::connect(&database.url).await.expect("connecting to the test database");
    store.migrate().await.expect("migrate");
    let webhooks = std::sync::Arc::new(comet_webhooks::MongoWebhookConfigs::new(&documents, store.clone()));
    let moderation =
        std::sync::Arc::new(comet_moderation::MongoModeration::new(&documents).await.expect("moderation collections"));
    let router = app_router_with(store, webhooks, moderation, comet_api::AdmissionLimits::default());
    (App { router, _database: database }, documents)
}

async fn app_on(database: TestDatabase) -> App {
    app_limited(database, comet_api::AdmissionLimits::default()).await
}

/// An app on `database` with its own admission bounds.
async fn app_limited(database: TestDatabase, limits: comet_api::AdmissionLimits) -> App {
    let store = Store::connect(&database.url).await.expect("connecting to the test database");
    store.migrate().await.expect("migrate");
    App { router: app_router(store, limits), _database: database }
}

fn app_router(store: Store, limits: comet_api::AdmissionLimits) -> axum::Router {
    let webhooks = std::sync::Arc::new(store.clone());
    let moderation = std::sync::Arc::new(store.clone());
    app_router_with(store, webhooks, moderation, limits)
}

/// The router with the webhook configurations in `webhooks` and the moderation data in `moderation`
/// (MongoDB, or the store itself).
fn app_router_with(
    store: Store,
    webhooks: std::sync::Arc<dyn comet_webhooks::WebhookConfigs>,
    moderation: std::sync::Arc<dyn comet_moderation::ModerationStore>,
    limits: comet_api::AdmissionLimits,
) -> axum::Router {
    let store_for_preferences = store.clone();
    router(AppState {
        store,
        webhooks,
        config: std::sync::Arc::new(ApiConfig {
            full_keys: vec![FULL.to_owned()],
            auth_keys: vec![AUTH_ONLY.to_owned()],
            webhook_guard: comet_webhooks::Guard::new(
                comet_webhooks::AllowList::parse("127.0.0.1").expect("allow-list"),
            ),
        }),
        admission: std::sync::Arc::new(comet_api::Admission::new(limits)),
        moderation: comet_moderation::Moderation::new(moderation),
        notifications: std::sync::Arc::new(store_for_preferences),
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
        let reply =
            self.call(Method::POST, "/v3/users", &[("apikey", FULL)], Some(json!({"uid": uid, "name": uid}))).await;
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
both_backends!(blocking, blocking_scenario);
both_backends!(delete_and_restore, delete_and_restore_scenario);
both_backends!(user_updates, update_scenario);
both_backends!(token_list_and_revoke, token_scenario);
both_backends!(user_admin_bad_input, user_admin_bad_input_scenario);
both_backends!(group_bans, bans_scenario);
both_backends!(group_kick_leave_and_scope, kick_leave_scope_scenario);
both_backends!(group_update_and_delete, update_delete_scenario);
both_backends!(group_list, list_groups_scenario);
both_backends!(edit_and_delete, edit_and_delete_scenario);
both_backends!(history_filters_and_threads, history_filters_scenario);
both_backends!(reactions, reactions_scenario);
both_backends!(receipts_and_unread, receipts_scenario);
both_backends!(conversation_list, conversation_list_scenario);
both_backends!(conversations_that_display_alike_stay_apart, display_collision_scenario);
both_backends!(malformed_or_repeated_identity_headers_are_refused, identity_headers_scenario);
both_backends!(every_error_carries_the_envelope, error_envelope_scenario);
both_backends!(names_refuse_control_characters, names_scenario);
both_backends!(null_fields_are_refused_alike, nulls_scenario);
both_backends!(search_keys_are_bounded_on_every_list, search_key_scenario);
both_backends!(bodies_must_be_sent_as_json, content_type_scenario);

async fn users_and_tokens_scenario(app: App) {
    app.create_user("alice").await;
    let again =
        app.call(Method::POST, "/v3/users", &[("apikey", FULL)], Some(json!({"uid": "alice", "name": "A"}))).await;
    assert_eq!((again.status, again.code()), (StatusCode::CONFLICT, "ERR_UID_ALREADY_EXISTS"));

    // The auth-only key may create users and tokens, and nothing else.
    let created = app
        .call(
            Method::POST,
            "/v3/users",
            &[("apikey", AUTH_ONLY)],
            Some(json!({"uid": "bob", "name": "Bob", "withAuthToken": true})),
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    let token = created.body["data"]["authToken"].as_str().expect("authToken").to_owned();
    let by_token = app
        .call(Method::POST, "/v3/users", &[("authtoken", &token)], Some(json!({"uid": "mallory", "name": "M"})))
        .await;
    assert_eq!((by_token.status, by_token.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
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
    let sent = app
        .call(
            Method::POST,
            "/v3/messages",
            &[("authtoken", &token)],
            Some(json!({"receiver": "alice", "receiverType": "user", "type": "text", "data": {"text": "hi"}})),
        )
        .await;
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
        let reply = app
            .send(
                "alice",
                json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": format!("m{n}")}}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body["data"]["seq"], n);
        assert_eq!(reply.body["data"]["conversationId"], "alice_user_bob");
    }
    // Both sides read the same history; a third user sees none of it.
    let from_bob = app
        .call(
            Method::GET,
            "/v3/users/alice/messages?perPage=2&afterSeq=2",
            &[("apikey", FULL), ("onBehalfOf", "bob")],
            None,
        )
        .await;
    let seqs: Vec<i64> =
        from_bob.body["data"].as_array().expect("data").iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, vec![3, 4]);
    let before = app
        .call(Method::GET, "/v3/users/bob/messages?beforeSeq=3", &[("apikey", FULL), ("onBehalfOf", "alice")], None)
        .await;
    let seqs: Vec<i64> =
        before.body["data"].as_array().expect("data").iter().filter_map(|m| m["seq"].as_i64()).collect();
    assert_eq!(seqs, vec![1, 2]);
    let id = from_bob.body["data"][0]["id"].as_str().expect("id").to_owned();
    let carol_reads =
        app.call(Method::GET, &format!("/v3/messages/{id}"), &[("apikey", FULL), ("onBehalfOf", "carol")], None).await;
    assert_eq!((carol_reads.status, carol_reads.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));
    let bob_reads =
        app.call(Method::GET, &format!("/v3/messages/{id}"), &[("apikey", FULL), ("onBehalfOf", "bob")], None).await;
    assert_eq!(bob_reads.status, StatusCode::OK);
    let to_nobody = app
        .send("alice", json!({"receiver": "nobody", "receiverType": "user", "type": "text", "data": {"text": "x"}}))
        .await;
    assert_eq!((to_nobody.status, to_nobody.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));
}

async fn groups_scenario(app: App) {
    for uid in ["owner", "member", "outsider", "moderator"] {
        app.create_user(uid).await;
    }
    let group = app
        .call(
            Method::POST,
            "/v3/groups",
            &[("apikey", FULL), ("onBehalfOf", "owner")],
            Some(json!({"guid": "g1", "name": "G", "type": "private"})),
        )
        .await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    assert_eq!(group.body["data"]["membersCount"], 1);
    let for_someone_else = app
        .call(
            Method::POST,
            "/v3/groups",
            &[("apikey", FULL), ("onBehalfOf", "member")],
            Some(json!({"guid": "g3", "name": "X", "type": "public", "owner": "owner"})),
        )
        .await;
    assert_eq!((for_someone_else.status, for_someone_else.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let password = app
        .call(
            Method::POST,
            "/v3/groups",
            &[("apikey", FULL), ("onBehalfOf", "owner")],
            Some(json!({"guid": "g2", "name": "P", "type": "password"})),
        )
        .await;
    assert_eq!((password.status, password.code()), (StatusCode::BAD_REQUEST, "ERR_GROUP_PASSWORD_MISSING"));

    let added = app
        .call(
            Method::POST,
            "/v3/groups/g1/members",
            &[("apikey", FULL), ("onBehalfOf", "owner")],
            Some(json!({"participants": ["member", "ghost"], "moderators": ["moderator"]})),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    assert_eq!(added.body["data"]["participants"]["member"]["success"], true);
    assert_eq!(added.body["data"]["participants"]["ghost"]["error"]["code"], "ERR_UID_NOT_FOUND");
    // A moderator may add participants but not admins; an outsider may not see the private group at all.
    let moderator_adds_admin = app
        .call(
            Method::POST,
            "/v3/groups/g1/members",
            &[("apikey", FULL), ("onBehalfOf", "moderator")],
            Some(json!({"admins": ["outsider"]})),
        )
        .await;
    assert_eq!(
        (moderator_adds_admin.status, moderator_adds_admin.code()),
        (StatusCode::FORBIDDEN, "ERR_GROUP_NOT_ALLOWED")
    );
    let outsider_reads =
        app.call(Method::GET, "/v3/groups/g1/messages", &[("apikey", FULL), ("onBehalfOf", "outsider")], None).await;
    assert_eq!((outsider_reads.status, outsider_reads.code()), (StatusCode::NOT_FOUND, "ERR_GUID_NOT_FOUND"));
    let outsider_posts = app
        .send("outsider", json!({"receiver": "g1", "receiverType": "group", "type": "text", "data": {"text": "x"}}))
        .await;
    assert_eq!(outsider_posts.status, StatusCode::NOT_FOUND);

    let posted = app.send("member", json!({"receiver": "g1", "receiverType": "group", "type": "text", "data": {"text": "hello"}, "tags": ["a"]})).await;
    assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    assert_eq!(posted.body["data"]["conversationId"], "group_g1");
    let history =
        app.call(Method::GET, "/v3/groups/g1/messages", &[("apikey", FULL), ("onBehalfOf", "owner")], None).await;
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
    let missing_user = app
        .call(
            Method::POST,
            "/v3/messages",
            &[("apikey", FULL)],
            Some(json!({"receiver": "bob", "receiverType": "user", "type": "text", "data": {"text": "x"}})),
        )
        .await;
    assert_eq!((missing_user.status, missing_user.code()), (StatusCode::BAD_REQUEST, "ERR_ON_BEHALF_OF_MISSING"));
    let ghost =
        app.call(Method::GET, "/v3/users/bob/messages", &[("apikey", FULL), ("onBehalfOf", "ghost")], None).await;
    assert_eq!((ghost.status, ghost.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));
    for query in ["perPage=abc", "bogus=1", "perPage=-1"] {
        let reply = app.call(Method::GET, &format!("/v3/users?{query}"), &[("apikey", FULL)], None).await;
        assert_eq!(
            (reply.status, reply.code()),
            (StatusCode::BAD_REQUEST, "ERR_QUERY_INVALID"),
            "{query}: {}",
            reply.body
        );
    }
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
    assert!(
        replies.iter().all(|reply| reply.status == StatusCode::OK),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    assert!(ids.windows(2).all(|pair| pair[0] == pair[1]), "{ids:?}");
    assert!(replies.iter().all(|reply| reply.body["data"]["seq"] == 1));
    let history =
        app.call(Method::GET, "/v3/users/bob/messages", &[("apikey", FULL), ("onBehalfOf", "alice")], None).await;
    assert_eq!(history.body["data"].as_array().map(Vec::len), Some(1));
}

fn text_to(receiver: &str) -> Value {
    json!({"receiver": receiver, "receiverType": "user", "type": "text", "data": {"text": "hi"}})
}

async fn blocking_scenario(app: App) {
    for uid in ["alice", "bob", "carol"] {
        app.create_user(uid).await;
    }
    let as_alice = [("apikey", FULL), ("onBehalfOf", "alice")];
    assert_eq!(app.send("alice", text_to("bob")).await.status, StatusCode::OK);

    // alice blocks bob (and a ghost, and herself): a result per uid.
    let blocked = app
        .call(
            Method::POST,
            "/v3/users/alice/blockedusers",
            &as_alice,
            Some(json!({"blockedUids": ["bob", "ghost", "alice"]})),
        )
        .await;
    assert_eq!(blocked.status, StatusCode::OK, "{}", blocked.body);
    assert_eq!(blocked.body["data"]["bob"]["success"], true);
    assert_eq!(blocked.body["data"]["ghost"]["error"]["code"], "ERR_UID_NOT_FOUND");
    assert_eq!(blocked.body["data"]["alice"]["error"]["code"], "ERR_BLOCK_SELF");

    // Neither direction goes through, and nothing is written.
    for (from, to) in [("alice", "bob"), ("bob", "alice")] {
        let refused = app.send(from, text_to(to)).await;
        assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "ERR_BLOCKED"), "{from} → {to}");
    }
    let history = app.call(Method::GET, "/v3/users/bob/messages", &as_alice, None).await;
    assert_eq!(history.body["data"].as_array().map(Vec::len), Some(1), "{}", history.body);
    // Others are unaffected.
    assert_eq!(app.send("carol", text_to("bob")).await.status, StatusCode::OK);
    assert_eq!(app.send("alice", text_to("carol")).await.status, StatusCode::OK);

    // The list shows bob, paged.
    let listed = app.call(Method::GET, "/v3/users/alice/blockedusers", &[("apikey", FULL)], None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let uids: Vec<&str> =
        listed.body["data"].as_array().expect("data").iter().filter_map(|user| user["uid"].as_str()).collect();
    assert_eq!(uids, ["bob"]);
    let bobs =
        app.call(Method::GET, "/v3/users/bob/blockedusers", &[("apikey", FULL), ("onBehalfOf", "bob")], None).await;
    assert_eq!(bobs.body["data"].as_array().map(Vec::len), Some(0), "blocking is one-sided in the list");

    // Someone else may neither block for alice, nor list or undo her blocks.
    let carol = [("apikey", FULL), ("onBehalfOf", "carol")];
    for method in [Method::POST, Method::DELETE] {
        let refused =
            app.call(method, "/v3/users/alice/blockedusers", &carol, Some(json!({"blockedUids": ["bob"]}))).await;
        assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    }
    let peek = app.call(Method::GET, "/v3/users/alice/blockedusers", &carol, None).await;
    assert_eq!((peek.status, peek.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));

    // Bob blocking alice too, then alice unblocking: still refused while bob's block stands.
    let mutual = app
        .call(Method::POST, "/v3/users/bob/blockedusers", &[("apikey", FULL)], Some(json!({"blockedUids": ["alice"]})))
        .await;
    assert_eq!(mutual.status, StatusCode::OK, "{}", mutual.body);
    let unblocked = app
        .call(Method::DELETE, "/v3/users/alice/blockedusers", &as_alice, Some(json!({"blockedUids": ["bob"]})))
        .await;
    assert_eq!(unblocked.status, StatusCode::OK, "{}", unblocked.body);
    assert_eq!(unblocked.body["data"]["bob"]["success"], true);
    assert_eq!(app.send("alice", text_to("bob")).await.code(), "ERR_BLOCKED");
    let unblocked = app
        .call(
            Method::DELETE,
            "/v3/users/bob/blockedusers",
            &[("apikey", FULL), ("onBehalfOf", "bob")],
            Some(json!({"blockedUids": ["alice"]})),
        )
        .await;
    assert_eq!(unblocked.status, StatusCode::OK, "{}", unblocked.body);
    for (from, to) in [("alice", "bob"), ("bob", "alice")] {
        let sent = app.send(from, text_to(to)).await;
        assert_eq!(sent.status, StatusCode::OK, "{from} → {to} after unblocking: {}", sent.body);
    }
    let listed = app.call(Method::GET, "/v3/users/alice/blockedusers", &[("apikey", FULL)], None).await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(0));
}

async fn delete_and_restore_scenario(app: App) {
    for uid in ["alice", "bob", "carol"] {
        app.create_user(uid).await;
    }
    let token_reply = app.call(Method::POST, "/v3/users/bob/auth_tokens", &[("apikey", FULL)], None).await;
    let token = token_reply.body["data"]["authToken"].as_str().expect("authToken").to_owned();
    assert_eq!(
        app.call(Method::GET, "/v3/users/alice/messages", &[("authtoken", &token)], None).await.status,
        StatusCode::OK
    );

    // carol may not delete bob; the app may.
    let refused = app.call(Method::DELETE, "/v3/users/bob", &[("apikey", FULL), ("onBehalfOf", "carol")], None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let deleted = app.call(Method::DELETE, "/v3/users/bob", &[("apikey", FULL)], None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    assert!(deleted.body["data"]["deactivatedAt"].is_i64(), "{}", deleted.body);
    let again = app.call(Method::DELETE, "/v3/users/bob", &[("apikey", FULL)], None).await;
    assert_eq!((again.status, again.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));

    // Gone from the list; cannot be messaged, cannot send, its token no longer works.
    let listed = app.call(Method::GET, "/v3/users", &[("apikey", FULL)], None).await;
    let uids: Vec<&str> =
        listed.body["data"].as_array().expect("data").iter().filter_map(|user| user["uid"].as_str()).collect();
    assert_eq!(uids, ["alice", "carol"]);
    let to_bob = app.send("alice", text_to("bob")).await;
    assert_eq!((to_bob.status, to_bob.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));
    let from_bob = app.send("bob", text_to("alice")).await;
    assert_eq!((from_bob.status, from_bob.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));
    let with_token = app.call(Method::POST, "/v3/messages", &[("authtoken", &token)], Some(text_to("alice"))).await;
    assert_eq!((with_token.status, with_token.code()), (StatusCode::UNAUTHORIZED, "ERR_AUTH_TOKEN_INVALID"));

    // Only the app restores, and only a deleted user.
    let by_user =
        app.call(Method::PUT, "/v3/users/bob/restore", &[("apikey", FULL), ("onBehalfOf", "alice")], None).await;
    assert_eq!((by_user.status, by_user.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let restored = app.call(Method::PUT, "/v3/users/bob/restore", &[("apikey", FULL)], None).await;
    assert_eq!(restored.status, StatusCode::OK, "{}", restored.body);
    assert!(restored.body["data"].get("deactivatedAt").is_none(), "{}", restored.body);
    let twice = app.call(Method::PUT, "/v3/users/bob/restore", &[("apikey", FULL)], None).await;
    assert_eq!((twice.status, twice.code()), (StatusCode::CONFLICT, "ERR_USER_NOT_DELETED"));
    let ghost = app.call(Method::PUT, "/v3/users/ghost/restore", &[("apikey", FULL)], None).await;
    assert_eq!((ghost.status, ghost.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));

    // Back in the list, messageable, and its token works again.
    let listed = app.call(Method::GET, "/v3/users", &[("apikey", FULL)], None).await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(3));
    assert_eq!(app.send("alice", text_to("bob")).await.status, StatusCode::OK);
    let with_token = app.call(Method::POST, "/v3/messages", &[("authtoken", &token)], Some(text_to("alice"))).await;
    assert_eq!(with_token.status, StatusCode::OK, "{}", with_token.body);

    // A user may delete itself.
    let itself = app.call(Method::DELETE, "/v3/users/carol", &[("apikey", FULL), ("onBehalfOf", "carol")], None).await;
    assert_eq!(itself.status, StatusCode::OK, "{}", itself.body);
}

async fn update_scenario(app: App) {
    app.create_user("alice").await;
    app.create_user("bob").await;
    let updated = app.call(Method::PUT, "/v3/users/alice", &[("apikey", FULL)], Some(json!({"name": " Alice L. ", "avatar": "https://example.com/a.png", "role": "admin", "metadata": {"team": "blue"}}))).await;
    assert_eq!(updated.status, StatusCode::OK, "{}", updated.body);
    assert_eq!(updated.body["data"]["name"], "Alice L.");
    assert_eq!(updated.body["data"]["role"], "admin");
    assert_eq!(updated.body["data"]["avatar"], "https://example.com/a.png");
    assert_eq!(updated.body["data"]["metadata"]["team"], "blue");

    // The user itself changes its profile; fields not named are kept; `unset` clears.
    let as_alice = [("apikey", FULL), ("onBehalfOf", "alice")];
    let own = app
        .call(
            Method::PUT,
            "/v3/users/alice",
            &as_alice,
            Some(json!({"link": "https://example.com/alice", "unset": ["avatar"]})),
        )
        .await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    let got = app.call(Method::GET, "/v3/users/alice", &[("apikey", FULL)], None).await;
    assert_eq!(got.body["data"]["name"], "Alice L.");
    assert_eq!(got.body["data"]["link"], "https://example.com/alice");
    assert_eq!(got.body["data"]["metadata"]["team"], "blue");
    assert!(got.body["data"].get("avatar").is_none(), "{}", got.body);

    // Not its role, and never someone else.
    let own_role = app.call(Method::PUT, "/v3/users/alice", &as_alice, Some(json!({"role": "superuser"}))).await;
    assert_eq!((own_role.status, own_role.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let other = app.call(Method::PUT, "/v3/users/bob", &as_alice, Some(json!({"name": "Mallory"}))).await;
    assert_eq!((other.status, other.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let auth_only =
        app.call(Method::PUT, "/v3/users/bob", &[("apikey", AUTH_ONLY)], Some(json!({"name": "Mallory"}))).await;
    assert_eq!((auth_only.status, auth_only.code()), (StatusCode::FORBIDDEN, "ERR_AUTH_ONLY_KEY"));
    let bob = app.call(Method::GET, "/v3/users/bob", &[("apikey", FULL)], None).await;
    assert_eq!(bob.body["data"]["name"], "bob");
    let ghost = app.call(Method::PUT, "/v3/users/ghost", &[("apikey", FULL)], Some(json!({"name": "Ghost"}))).await;
    assert_eq!((ghost.status, ghost.code()), (StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"));
}

async fn token_scenario(app: App) {
    app.create_user("alice").await;
    app.create_user("bob").await;
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let created = app.call(Method::POST, "/v3/users/alice/auth_tokens", &[("apikey", FULL)], None).await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.body);
        let id = created.body["data"]["id"].as_str().expect("id").to_owned();
        let token = created.body["data"]["authToken"].as_str().expect("authToken").to_owned();
        tokens.push((id, token));
    }
    let listed =
        app.call(Method::GET, "/v3/users/alice/auth_tokens", &[("apikey", FULL), ("onBehalfOf", "alice")], None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    let ids: Vec<&str> =
        listed.body["data"].as_array().expect("data").iter().filter_map(|token| token["id"].as_str()).collect();
    let expected: Vec<&str> = tokens.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, expected);
    let text = listed.body.to_string();
    assert!(tokens.iter().all(|(_, token)| !text.contains(token.as_str())), "the list never shows a token: {text}");
    assert!(listed.body["data"][0]["createdAt"].is_i64());

    // bob may neither list nor revoke alice's tokens.
    let as_bob = [("apikey", FULL), ("onBehalfOf", "bob")];
    let peek = app.call(Method::GET, "/v3/users/alice/auth_tokens", &as_bob, None).await;
    assert_eq!((peek.status, peek.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let (first_id, first_token) = &tokens[0];
    let revoke_path = format!("/v3/users/alice/auth_tokens/{first_id}");
    let by_bob = app.call(Method::DELETE, &revoke_path, &as_bob, None).await;
    assert_eq!((by_bob.status, by_bob.code()), (StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"));
    let wrong_owner =
        app.call(Method::DELETE, &format!("/v3/users/bob/auth_tokens/{first_id}"), &[("apikey", FULL)], None).await;
    assert_eq!((wrong_owner.status, wrong_owner.code()), (StatusCode::NOT_FOUND, "ERR_AUTH_TOKEN_NOT_FOUND"));

    // Alice revokes her first token with the second one: the first is refused from then on, the second works.
    let (_, second_token) = &tokens[1];
    let revoked = app.call(Method::DELETE, &revoke_path, &[("authtoken", second_token)], None).await;
    assert_eq!(revoked.status, StatusCode::OK, "{}", revoked.body);
    let refused = app.call(Method::GET, "/v3/users/bob/messages", &[("authtoken", first_token)], None).await;
    assert_eq!((refused.status, refused.code()), (StatusCode::UNAUTHORIZED, "ERR_AUTH_TOKEN_INVALID"));
    assert_eq!(
        app.call(Method::GET, "/v3/users/bob/messages", &[("authtoken", second_token)], None).await.status,
        StatusCode::OK
    );
    let again = app.call(Method::DELETE, &revoke_path, &[("apikey", FULL)], None).await;
    assert_eq!((again.status, again.code()), (StatusCode::NOT_FOUND, "ERR_AUTH_TOKEN_NOT_FOUND"));
    let listed = app.call(Method::GET, "/v3/users/alice/auth_tokens", &[("apikey", FULL)], None).await;
    assert_eq!(listed.body["data"].as_array().map(Vec::len), Some(1));
}

/// A request (method, path, body) and the status and error code it must get.
type BadCase = (Method, &'static str, Option<Vec<u8>>, StatusCode, &'static str);

async fn user_admin_bad_input_scenario(app: App) {
    app.create_user("alice").await;
    app.create_user("bob").await;
    let full = [("apikey", FULL)];
    let cases: Vec<BadCase> = vec![
        (Method::PUT, "/v3/users/alice", Some(b"{oops".to_vec()), StatusCode::BAD_REQUEST, "ERR_BODY_MALFORMED"),
        (Method::PUT, "/v3/users/alice", None, StatusCode::BAD_REQUEST, "ERR_BODY_MISSING"),
        // A body is an object: an array of the fields in order is not read as one.
        (Method::PUT, "/v3/users/alice", Some(b"[]".to_vec()), StatusCode::BAD_REQUEST, "ERR_BODY_INVALID"),
        (
            Method::POST,
            "/v3/users",
            Some(br#" ["mallory","Mallory"]"#.to_vec()),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_INVALID",
        ),
        (
            Method::PUT,
            "/v3/users/alice",
            Some(json!({}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_UPDATE_EMPTY",
        ),
        (
            Method::PUT,
            "/v3/users/alice",
            Some(json!({"name": "   "}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_NAME_INVALID",
        ),
        (
            Method::PUT,
            "/v3/users/alice",
            Some(json!({"name": 5}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_INVALID",
        ),
        (
            Method::PUT,
            "/v3/users/alice",
            Some(json!({"uid": "other"}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_INVALID",
        ),
        (
            Method::PUT,
            "/v3/users/alice",
            Some(json!({"unset": ["name"]}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_UNSET_INVALID",
        ),
        (
            Method::PUT,
            "/v3/users/alice",
            Some(json!({"link": "x", "unset": ["link"]}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_UNSET_INVALID",
        ),
        (
            Method::PUT,
            "/v3/users/bad%20uid",
            Some(json!({"name": "x"}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_UID_INVALID",
        ),
        (Method::DELETE, "/v3/users/ghost", None, StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"),
        (
            Method::POST,
            "/v3/users/alice/blockedusers",
            Some(json!({"blockedUids": []}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_BLOCKED_UIDS_INVALID",
        ),
        (
            Method::POST,
            "/v3/users/alice/blockedusers",
            Some(json!({"blockedUids": vec!["bob"; 26]}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_BLOCKED_UIDS_INVALID",
        ),
        (
            Method::POST,
            "/v3/users/alice/blockedusers",
            Some(json!({"blockedUids": "bob"}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_INVALID",
        ),
        (
            Method::POST,
            "/v3/users/alice/blockedusers",
            Some(json!({"uids": ["bob"]}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_INVALID",
        ),
        (
            Method::POST,
            "/v3/users/alice/blockedusers",
            Some(json!({"blockedUids": ["bad uid!"]}).to_string().into_bytes()),
            StatusCode::BAD_REQUEST,
            "ERR_UID_INVALID",
        ),
        (Method::POST, "/v3/users/alice/blockedusers", None, StatusCode::BAD_REQUEST, "ERR_BODY_MISSING"),
        (
            Method::DELETE,
            "/v3/users/alice/blockedusers",
            Some(b"[".to_vec()),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_MALFORMED",
        ),
        (
            Method::POST,
            "/v3/users/ghost/blockedusers",
            Some(json!({"blockedUids": ["bob"]}).to_string().into_bytes()),
            StatusCode::NOT_FOUND,
            "ERR_UID_NOT_FOUND",
        ),
        (Method::GET, "/v3/users/alice/blockedusers?perPage=0", None, StatusCode::BAD_REQUEST, "ERR_PER_PAGE_INVALID"),
        (Method::GET, "/v3/users/ghost/auth_tokens", None, StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"),
    ];
    for (method, path, body, status, code) in cases {
        let reply = app.raw(method.clone(), path, &full, body).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{method} {path}: {}", reply.body);
    }
    // Nothing above was written: alice is unchanged and blocks nobody.
    let alice = app.call(Method::GET, "/v3/users/alice", &full, None).await;
    assert_eq!(alice.body["data"]["name"], "alice");
    assert!(alice.body["data"].get("link").is_none(), "{}", alice.body);
    let blocked = app.call(Method::GET, "/v3/users/alice/blockedusers", &full, None).await;
    assert_eq!(blocked.body["data"].as_array().map(Vec::len), Some(0));
    let auth_only = app.call(Method::DELETE, "/v3/users/alice", &[("apikey", AUTH_ONLY)], None).await;
    assert_eq!((auth_only.status, auth_only.code()), (StatusCode::FORBIDDEN, "ERR_AUTH_ONLY_KEY"));
}

fn as_user(uid: &str) -> [(&'static str, &str); 2] {
    [("apikey", FULL), ("onBehalfOf", uid)]
}

impl App {
    /// Creates the users and a group owned by `owner` with the given members.
    async fn group_with(&self, guid: &str, group_type: &str, owner: &str, members: Value) {
        let created = self
            .call(
                Method::POST,
                "/v3/groups",
                &as_user(owner),
                Some(json!({"guid": guid, "name": guid, "type": group_type})),
            )
            .await;
        assert_eq!(created.status, StatusCode::OK, "{}", created.body);
        let added =
            self.call(Method::POST, &format!("/v3/groups/{guid}/members"), &as_user(owner), Some(members)).await;
        assert_eq!(added.status, StatusCode::OK, "{}", added.body);
    }

    async fn members_count(&self, guid: &str) -> Value {
        self.call(Method::GET, &format!("/v3/groups/{guid}"), &[("apikey", FULL)], None).await.body["data"]["membersCount"].clone()
    }

    async fn post_to_group(&self, from: &str, guid: &str) -> Reply {
        self.send(from, json!({"receiver": guid, "receiverType": "group", "type": "text", "data": {"text": "hi"}}))
            .await
    }
}

#[track_caller]
fn expect(reply: &Reply, status: StatusCode, code: &str) {
    assert_eq!((reply.status, reply.code()), (status, code), "{}", reply.body);
}

async fn bans_scenario(app: App) {
    for uid in ["owner", "admin2", "moderator", "member", "member2", "outsider"] {
        app.create_user(uid).await;
    }
    app.group_with(
        "g1",
        "public",
        "owner",
        json!({"admins": ["admin2"], "moderators": ["moderator"], "participants": ["member", "member2"]}),
    )
    .await;
    assert_eq!(app.members_count("g1").await, 5);

    // Who may ban whom.
    expect(
        &app.call(Method::POST, "/v3/groups/g1/bannedusers/member2", &as_user("member"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    expect(
        &app.call(Method::POST, "/v3/groups/g1/bannedusers/admin2", &as_user("moderator"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    expect(
        &app.call(Method::POST, "/v3/groups/g1/bannedusers/owner", &as_user("admin2"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_OWNER",
    );
    expect(
        &app.call(Method::POST, "/v3/groups/g1/bannedusers/member", &[("apikey", AUTH_ONLY)], None).await,
        StatusCode::FORBIDDEN,
        "ERR_AUTH_ONLY_KEY",
    );
    expect(
        &app.call(Method::POST, "/v3/groups/g1/bannedusers/ghost", &as_user("owner"), None).await,
        StatusCode::NOT_FOUND,
        "ERR_UID_NOT_FOUND",
    );
    expect(
        &app.call(Method::POST, "/v3/groups/nope/bannedusers/member", &as_user("owner"), None).await,
        StatusCode::NOT_FOUND,
        "ERR_GUID_NOT_FOUND",
    );
    expect(
        &app.call(Method::POST, "/v3/groups/g1/bannedusers/bad%20uid", &as_user("owner"), None).await,
        StatusCode::BAD_REQUEST,
        "ERR_UID_INVALID",
    );
    assert_eq!(app.members_count("g1").await, 5, "refused bans change nothing");

    let banned = app.call(Method::POST, "/v3/groups/g1/bannedusers/member", &as_user("moderator"), None).await;
    assert_eq!(banned.status, StatusCode::OK, "{}", banned.body);
    assert_eq!(app.members_count("g1").await, 4);

    // A banned user can't post, read the group or its messages, or be added back.
    expect(&app.post_to_group("member", "g1").await, StatusCode::FORBIDDEN, "ERR_BANNED");
    expect(
        &app.call(Method::GET, "/v3/groups/g1/messages", &as_user("member"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_BANNED",
    );
    expect(
        &app.call(Method::GET, "/v3/groups/g1", &as_user("member"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_BANNED",
    );
    let re_added = app
        .call(
            Method::POST,
            "/v3/groups/g1/members",
            &as_user("owner"),
            Some(json!({"participants": ["member", "outsider"]})),
        )
        .await;
    assert_eq!(re_added.status, StatusCode::OK, "{}", re_added.body);
    assert_eq!(re_added.body["data"]["participants"]["member"]["error"]["code"], "ERR_BANNED");
    assert_eq!(re_added.body["data"]["participants"]["outsider"]["success"], true);
    assert_eq!(app.members_count("g1").await, 5, "only the outsider joined");

    let bans = app.call(Method::GET, "/v3/groups/g1/bannedusers", &as_user("moderator"), None).await;
    assert_eq!(bans.status, StatusCode::OK, "{}", bans.body);
    assert_eq!(
        bans.body["data"].as_array().map(|bans| bans.iter().map(|ban| ban["uid"].clone()).collect::<Vec<_>>()),
        Some(vec![json!("member")])
    );
    expect(
        &app.call(Method::GET, "/v3/groups/g1/bannedusers", &as_user("member2"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    expect(
        &app.call(Method::GET, "/v3/groups/g1/bannedusers?perPage=0", &[("apikey", FULL)], None).await,
        StatusCode::BAD_REQUEST,
        "ERR_PER_PAGE_INVALID",
    );

    // Unbanning: admins and moderators, once.
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/bannedusers/member", &as_user("member2"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    let unbanned = app.call(Method::DELETE, "/v3/groups/g1/bannedusers/member", &as_user("owner"), None).await;
    assert_eq!(unbanned.status, StatusCode::OK, "{}", unbanned.body);
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/bannedusers/member", &as_user("owner"), None).await,
        StatusCode::NOT_FOUND,
        "ERR_NOT_BANNED",
    );
    expect(&app.post_to_group("member", "g1").await, StatusCode::FORBIDDEN, "ERR_NOT_A_MEMBER");
    let back = app
        .call(Method::POST, "/v3/groups/g1/members", &as_user("owner"), Some(json!({"participants": ["member"]})))
        .await;
    assert_eq!(back.body["data"]["participants"]["member"]["success"], true, "{}", back.body);
    assert_eq!(app.post_to_group("member", "g1").await.status, StatusCode::OK);
    assert_eq!(app.members_count("g1").await, 6);

    // A private group is invisible to outsiders, banning included.
    app.group_with("g2", "private", "owner", json!({"participants": ["member"]})).await;
    expect(
        &app.call(Method::POST, "/v3/groups/g2/bannedusers/member", &as_user("admin2"), None).await,
        StatusCode::NOT_FOUND,
        "ERR_GUID_NOT_FOUND",
    );
}

async fn kick_leave_scope_scenario(app: App) {
    for uid in ["owner", "admin2", "mod1", "mod2", "p1", "p2", "p3"] {
        app.create_user(uid).await;
    }
    app.group_with(
        "g1",
        "private",
        "owner",
        json!({"admins": ["admin2"], "moderators": ["mod1", "mod2"], "participants": ["p1", "p2", "p3"]}),
    )
    .await;
    assert_eq!(app.members_count("g1").await, 7);

    // Moderators kick participants only; participants kick nobody.
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/members/admin2", &as_user("mod1"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/members/mod2", &as_user("mod1"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/members/p2", &as_user("p1"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    let kicked = app.call(Method::DELETE, "/v3/groups/g1/members/p1", &as_user("mod1"), None).await;
    assert_eq!(kicked.status, StatusCode::OK, "{}", kicked.body);
    assert_eq!(app.members_count("g1").await, 6);
    expect(
        &app.call(Method::GET, "/v3/groups/g1/messages", &as_user("p1"), None).await,
        StatusCode::NOT_FOUND,
        "ERR_GUID_NOT_FOUND",
    );
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/members/p1", &as_user("mod1"), None).await,
        StatusCode::NOT_FOUND,
        "ERR_MEMBER_NOT_FOUND",
    );

    // Anyone but the owner may leave.
    let left = app.call(Method::DELETE, "/v3/groups/g1/members/p2", &as_user("p2"), None).await;
    assert_eq!(left.status, StatusCode::OK, "{}", left.body);
    assert_eq!(app.members_count("g1").await, 5);
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/members/owner", &as_user("owner"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_OWNER",
    );
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/members/owner", &as_user("admin2"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_OWNER",
    );
    assert_eq!(app.members_count("g1").await, 5);

    // Scopes: admins only; the owner stays an admin.
    let to_moderator = Some(json!({"scope": "moderator"}));
    expect(
        &app.call(Method::PUT, "/v3/groups/g1/members/p3", &as_user("mod1"), to_moderator.clone()).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    let promoted = app.call(Method::PUT, "/v3/groups/g1/members/p3", &as_user("admin2"), to_moderator.clone()).await;
    assert_eq!(
        (promoted.status, &promoted.body["data"]["scope"]),
        (StatusCode::OK, &json!("moderator")),
        "{}",
        promoted.body
    );
    expect(
        &app.call(
            Method::PUT,
            "/v3/groups/g1/members/owner",
            &as_user("admin2"),
            Some(json!({"scope": "participant"})),
        )
        .await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_OWNER",
    );
    expect(
        &app.call(Method::PUT, "/v3/groups/g1/members/p3", &as_user("admin2"), Some(json!({"scope": "king"}))).await,
        StatusCode::BAD_REQUEST,
        "ERR_SCOPE_INVALID",
    );
    expect(
        &app.call(Method::PUT, "/v3/groups/g1/members/p3", &as_user("admin2"), Some(json!({"scope": 3}))).await,
        StatusCode::BAD_REQUEST,
        "ERR_BODY_INVALID",
    );
    expect(
        &app.raw(Method::PUT, "/v3/groups/g1/members/p3", &as_user("admin2"), None).await,
        StatusCode::BAD_REQUEST,
        "ERR_BODY_MISSING",
    );
    expect(
        &app.call(Method::PUT, "/v3/groups/g1/members/p1", &as_user("admin2"), to_moderator.clone()).await,
        StatusCode::NOT_FOUND,
        "ERR_MEMBER_NOT_FOUND",
    );
    // The promoted moderator now can't be kicked by another moderator, but the app may.
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1/members/p3", &as_user("mod2"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    assert_eq!(
        app.call(Method::DELETE, "/v3/groups/g1/members/p3", &[("apikey", FULL)], None).await.status,
        StatusCode::OK
    );
    assert_eq!(app.members_count("g1").await, 4);

    // Kicked (unlike banned) users may be added back.
    let back =
        app.call(Method::POST, "/v3/groups/g1/members", &as_user("owner"), Some(json!({"participants": ["p1"]}))).await;
    assert_eq!(back.body["data"]["participants"]["p1"]["success"], true, "{}", back.body);
    assert_eq!(app.members_count("g1").await, 5);
}

async fn update_delete_scenario(app: App) {
    for uid in ["owner", "moderator", "member", "outsider"] {
        app.create_user(uid).await;
    }
    app.group_with("g1", "public", "owner", json!({"moderators": ["moderator"], "participants": ["member"]})).await;
    let rename = Some(json!({"name": "Renamed"}));
    for uid in ["member", "moderator", "outsider"] {
        expect(
            &app.call(Method::PUT, "/v3/groups/g1", &as_user(uid), rename.clone()).await,
            StatusCode::FORBIDDEN,
            "ERR_GROUP_NOT_ALLOWED",
        );
    }
    let renamed = app.call(Method::PUT, "/v3/groups/g1", &as_user("owner"), rename.clone()).await;
    assert_eq!(
        (renamed.status, &renamed.body["data"]["name"]),
        (StatusCode::OK, &json!("Renamed")),
        "{}",
        renamed.body
    );

    let bad: Vec<(Option<Vec<u8>>, &str)> = vec![
        (Some(b"{".to_vec()), "ERR_BODY_MALFORMED"),
        (Some(json!({}).to_string().into_bytes()), "ERR_NOTHING_TO_UPDATE"),
        (Some(json!({"name": " "}).to_string().into_bytes()), "ERR_NAME_INVALID"),
        (Some(json!({"type": "secret"}).to_string().into_bytes()), "ERR_GROUP_TYPE_INVALID"),
        (Some(json!({"type": "password"}).to_string().into_bytes()), "ERR_GROUP_PASSWORD_MISSING"),
        (Some(json!({"password": "x"}).to_string().into_bytes()), "ERR_GROUP_PASSWORD_UNEXPECTED"),
        (Some(json!({"guid": "g9"}).to_string().into_bytes()), "ERR_BODY_INVALID"),
    ];
    for (body, code) in bad {
        expect(&app.raw(Method::PUT, "/v3/groups/g1", &as_user("owner"), body).await, StatusCode::BAD_REQUEST, code);
    }
    let locked = app
        .call(Method::PUT, "/v3/groups/g1", &as_user("owner"), Some(json!({"type": "password", "password": "s3cret"})))
        .await;
    assert_eq!(locked.body["data"]["type"], "password", "{}", locked.body);
    assert!(!locked.body.to_string().contains("s3cret"), "the password is never echoed");
    let described = app
        .call(
            Method::PUT,
            "/v3/groups/g1",
            &[("apikey", FULL)],
            Some(json!({"description": "d", "metadata": {"k": 1}})),
        )
        .await;
    assert_eq!(
        (described.body["data"]["description"].clone(), described.body["data"]["name"].clone()),
        (json!("d"), json!("Renamed"))
    );
    expect(
        &app.call(Method::PUT, "/v3/groups/nope", &as_user("owner"), rename.clone()).await,
        StatusCode::NOT_FOUND,
        "ERR_GUID_NOT_FOUND",
    );

    // Deleting: admins and the app; afterwards the group is gone from reads, lists and writes.
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1", &as_user("moderator"), None).await,
        StatusCode::FORBIDDEN,
        "ERR_GROUP_NOT_ALLOWED",
    );
    let deleted = app.call(Method::DELETE, "/v3/groups/g1", &as_user("owner"), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    expect(
        &app.call(Method::GET, "/v3/groups/g1", &[("apikey", FULL)], None).await,
        StatusCode::NOT_FOUND,
        "ERR_GUID_NOT_FOUND",
    );
    expect(
        &app.call(Method::GET, "/v3/groups/g1/messages", &as_user("member"), None).await,
        StatusCode::NOT_FOUND,
        "ERR_GUID_NOT_FOUND",
    );
    expect(&app.post_to_group("member", "g1").await, StatusCode::NOT_FOUND, "ERR_GUID_NOT_FOUND");
    expect(
        &app.call(Method::DELETE, "/v3/groups/g1", &[("apikey", FULL)], None).await,
        StatusCode::NOT_FOUND,
        "ERR_GUID_NOT_FOUND",
    );
    let listed = app.call(Method::GET, "/v3/groups", &[("apikey", FULL)], None).await;
    assert_eq!(listed.body["data"], json!([]), "{}", listed.body);
    let reuse = app
        .call(
            Method::POST,
            "/v3/groups",
            &as_user("owner"),
            Some(json!({"guid": "g1", "name": "again", "type": "public"})),
        )
        .await;
    expect(&reuse, StatusCode::CONFLICT, "ERR_GUID_ALREADY_EXISTS");
}

async fn list_groups_scenario(app: App) {
    for uid in ["alice", "bob", "carol"] {
        app.create_user(uid).await;
    }
    app.group_with("a-public", "public", "alice", json!({"participants": ["carol"]})).await;
    app.group_with("b-private", "private", "alice", json!({"participants": ["carol"]})).await;
    app.group_with("c-bobs", "private", "bob", json!({"participants": ["carol"]})).await;
    let guids = |reply: &Reply| {
        reply.body["data"]
            .as_array()
            .map(|groups| groups.iter().map(|group| group["guid"].clone()).collect::<Vec<_>>())
            .unwrap_or_default()
    };

    let all = app.call(Method::GET, "/v3/groups", &[("apikey", FULL)], None).await;
    assert_eq!(guids(&all), [json!("a-public"), json!("b-private"), json!("c-bobs")]);
    let first = app.call(Method::GET, "/v3/groups?perPage=2", &[("apikey", FULL)], None).await;
    assert_eq!(
        (guids(&first), &first.body["meta"]["pagination"]["next"]),
        (vec![json!("a-public"), json!("b-private")], &json!("b-private"))
    );
    let second = app.call(Method::GET, "/v3/groups?perPage=2&after=b-private", &[("apikey", FULL)], None).await;
    assert_eq!((guids(&second), &second.body["meta"]["pagination"]["next"]), (vec![json!("c-bobs")], &Value::Null));

    let bob = app.call(Method::GET, "/v3/groups", &as_user("bob"), None).await;
    assert_eq!(guids(&bob), [json!("a-public"), json!("c-bobs")], "public groups and its own");
    let alice = app.call(Method::GET, "/v3/groups", &as_user("alice"), None).await;
    assert_eq!(guids(&alice), [json!("a-public"), json!("b-private")]);
    let search = app.call(Method::GET, "/v3/groups?searchKey=PRIV", &[("apikey", FULL)], None).await;
    assert_eq!(guids(&search), [json!("b-private")]);

    // A user banned from a group no longer sees it listed.
    assert_eq!(
        app.call(Method::POST, "/v3/groups/a-public/bannedusers/carol", &as_user("alice"), None).await.status,
        StatusCode::OK
    );
    let carol = app.call(Method::GET, "/v3/groups", &as_user("carol"), None).await;
    assert_eq!(guids(&carol), [json!("b-private"), json!("c-bobs")]);

    expect(
        &app.call(Method::GET, "/v3/groups?perPage=101", &[("apikey", FULL)], None).await,
        StatusCode::BAD_REQUEST,
        "ERR_PER_PAGE_INVALID",
    );
    expect(
        &app.call(Method::GET, "/v3/groups?after=bad%20guid", &[("apikey", FULL)], None).await,
        StatusCode::BAD_REQUEST,
        "ERR_GUID_INVALID",
    );
    expect(
        &app.call(Method::GET, &format!("/v3/groups?searchKey={}", "x".repeat(101)), &[("apikey", FULL)], None).await,
        StatusCode::BAD_REQUEST,
        "ERR_SEARCH_KEY_INVALID",
    );
    expect(
        &app.call(Method::GET, "/v3/groups", &[("apikey", AUTH_ONLY)], None).await,
        StatusCode::FORBIDDEN,
        "ERR_AUTH_ONLY_KEY",
    );
    expect(&app.call(Method::GET, "/v3/groups", &[], None).await, StatusCode::UNAUTHORIZED, "ERR_AUTH_MISSING");
}

fn seqs_of(reply: &Reply) -> Vec<i64> {
    reply.body["data"]
        .as_array()
        .map(|items| items.iter().filter_map(|m| m["seq"].as_i64()).collect())
        .unwrap_or_default()
}

async fn group_with_roles(app: &App) {
    for uid in ["owner", "member", "other", "moderator", "outsider"] {
        app.create_user(uid).await;
    }
    let group = app
        .call(
            Method::POST,
            "/v3/groups",
            &as_user("owner"),
            Some(json!({"guid": "g1", "name": "G", "type": "private"})),
        )
        .await;
    assert_eq!(group.status, StatusCode::OK, "{}", group.body);
    let added = app
        .call(
            Method::POST,
            "/v3/groups/g1/members",
            &as_user("owner"),
            Some(json!({"participants": ["member", "other"], "moderators": ["moderator"]})),
        )
        .await;
    assert_eq!(added.status, StatusCode::OK, "{}", added.body);
}

async fn post_to_group(app: &App, from: &str, text: &str) -> String {
    let sent = app
        .send(from, json!({"receiver": "g1", "receiverType": "group", "type": "text", "data": {"text": text}}))
        .await;
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
    let edited = app
        .call(
            Method::PUT,
            &path(&first),
            &as_user("member"),
            Some(json!({"data": {"text": "first, fixed"}, "tags": ["fixed"]})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["data"]["data"]["text"], "first, fixed");
    assert_eq!(edited.body["data"]["tags"], json!(["fixed"]));
    assert_eq!(edited.body["data"]["editedBy"], "member");
    assert!(edited.body["data"]["editedAt"].is_i64(), "{}", edited.body);
    let read_back = app.call(Method::GET, &path(&first), &as_user("owner"), None).await;
    assert_eq!(read_back.body["data"]["data"]["text"], "first, fixed");

    // Another participant may neither edit nor delete; an outsider does not see the message at all.
    let other_edits =
        app.call(Method::PUT, &path(&first), &as_user("other"), Some(json!({"data": {"text": "mine now"}}))).await;
    assert_eq!((other_edits.status, other_edits.code()), (StatusCode::FORBIDDEN, "ERR_MESSAGE_NOT_ALLOWED"));
    let other_deletes = app.call(Method::DELETE, &path(&first), &as_user("other"), None).await;
    assert_eq!((other_deletes.status, other_deletes.code()), (StatusCode::FORBIDDEN, "ERR_MESSAGE_NOT_ALLOWED"));
    let outsider_deletes = app.call(Method::DELETE, &path(&first), &as_user("outsider"), None).await;
    assert_eq!((outsider_deletes.status, outsider_deletes.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));
    let auth_only = app.call(Method::DELETE, &path(&first), &[("apikey", AUTH_ONLY)], None).await;
    assert_eq!((auth_only.status, auth_only.code()), (StatusCode::FORBIDDEN, "ERR_AUTH_ONLY_KEY"));

    // A moderator edits and deletes others' messages; the app deletes any.
    let moderator_edits =
        app.call(Method::PUT, &path(&second), &as_user("moderator"), Some(json!({"tags": ["moderated"]}))).await;
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
    let edit_deleted =
        app.call(Method::PUT, &path(&second), &as_user("member"), Some(json!({"data": {"text": "again"}}))).await;
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
    let direct = app
        .send("owner", json!({"receiver": "member", "receiverType": "user", "type": "text", "data": {"text": "dm"}}))
        .await;
    let direct_id = direct.body["data"]["id"].as_str().expect("id").to_owned();
    let receiver_edits =
        app.call(Method::PUT, &path(&direct_id), &as_user("member"), Some(json!({"data": {"text": "x"}}))).await;
    assert_eq!((receiver_edits.status, receiver_edits.code()), (StatusCode::FORBIDDEN, "ERR_MESSAGE_NOT_ALLOWED"));

    // Bad input.
    let bad: Vec<(Method, String, Option<Value>, StatusCode, &str)> = vec![
        (Method::PUT, path(&direct_id), Some(json!({})), StatusCode::BAD_REQUEST, "ERR_EDIT_EMPTY"),
        (
            Method::PUT,
            path(&direct_id),
            Some(json!({"data": {"text": ""}})),
            StatusCode::BAD_REQUEST,
            "ERR_MESSAGE_TEXT_MISSING",
        ),
        (
            Method::PUT,
            path(&direct_id),
            Some(json!({"data": "text"})),
            StatusCode::BAD_REQUEST,
            "ERR_MESSAGE_DATA_INVALID",
        ),
        (
            Method::PUT,
            path(&direct_id),
            Some(json!({"tags": vec!["t"; 26]})),
            StatusCode::BAD_REQUEST,
            "ERR_TAGS_INVALID",
        ),
        (
            Method::PUT,
            path(&direct_id),
            Some(json!({"data": {"text": "x"}, "sender": "member"})),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_INVALID",
        ),
        (
            Method::PUT,
            path("no-such-message"),
            Some(json!({"data": {"text": "x"}})),
            StatusCode::NOT_FOUND,
            "ERR_MESSAGE_NOT_FOUND",
        ),
        (Method::DELETE, path("no-such-message"), None, StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"),
    ];
    for (method, target, body, status, code) in bad {
        let reply = app.call(method.clone(), &target, &as_user("owner"), body).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{method} {target}: {}", reply.body);
    }
    let unchanged = app.call(Method::GET, &path(&direct_id), &as_user("owner"), None).await;
    assert_eq!(
        (unchanged.body["data"]["data"]["text"].clone(), unchanged.body["data"]["editedAt"].clone()),
        (json!("dm"), Value::Null)
    );
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
    let paged = app
        .call(Method::GET, &format!("/v3/messages/{root}/thread?perPage=1&afterSeq=3"), &as_user("owner"), None)
        .await;
    assert_eq!(seqs_of(&paged), vec![4]);
    let by_filter =
        app.call(Method::GET, &format!("/v3/groups/g1/messages?parentId={root}"), &as_user("owner"), None).await;
    assert_eq!(seqs_of(&by_filter), vec![3, 4, 5]);
    let outsider = app.call(Method::GET, &format!("/v3/messages/{root}/thread"), &as_user("outsider"), None).await;
    assert_eq!((outsider.status, outsider.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));

    // updatedSince: only what changed at or after the time. Stored times are ms, the API speaks seconds, so
    // everything so far happened before `later` (one second ahead of the last send).
    // The five sends may straddle a second boundary (a loaded machine): count from the first one's second.
    let history = app.call(Method::GET, "/v3/groups/g1/messages", &as_user("owner"), None).await;
    let first_sent = history.body["data"][0]["sentAt"].as_i64().expect("sentAt");
    let sent_at = thread.body["data"][2]["sentAt"].as_i64().expect("sentAt");
    let all = app
        .call(Method::GET, &format!("/v3/groups/g1/messages?updatedSince={first_sent}"), &as_user("owner"), None)
        .await;
    assert_eq!(seqs_of(&all), vec![1, 2, 3, 4, 5]);
    let later = sent_at + 1;
    tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
    let nothing =
        app.call(Method::GET, &format!("/v3/groups/g1/messages?updatedSince={later}"), &as_user("owner"), None).await;
    assert_eq!(seqs_of(&nothing), Vec::<i64>::new());
    let edited = app
        .call(
            Method::PUT,
            &format!("/v3/messages/{}", replies[1]),
            &as_user("other"),
            Some(json!({"data": {"text": "edited"}})),
        )
        .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    let since =
        app.call(Method::GET, &format!("/v3/groups/g1/messages?updatedSince={later}"), &as_user("owner"), None).await;
    assert_eq!(seqs_of(&since), vec![4]);

    for (query, code) in [
        ("hideDeleted=yes", "ERR_HIDE_DELETED_INVALID"),
        ("updatedSince=soon", "ERR_UPDATED_SINCE_INVALID"),
        ("updatedSince=-1", "ERR_UPDATED_SINCE_INVALID"),
        ("afterSeq=1&beforeSeq=3", "ERR_CURSOR_INVALID"),
    ] {
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
    assert_eq!(
        twice.body["data"]["reactions"],
        json!([{"reaction": "thumbsup", "count": 1}]),
        "adding twice is one reaction"
    );
    add("owner", "thumbsup").await;
    // An emoji, percent-encoded in the path.
    let emoji =
        app.call(Method::POST, &format!("/v3/messages/{id}/reactions/%F0%9F%98%8A"), &as_user("member"), None).await;
    assert_eq!(emoji.status, StatusCode::OK, "{}", emoji.body);

    let listed = app.call(Method::GET, &format!("/v3/messages/{id}/reactions"), &as_user("member"), None).await;
    assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
    assert_eq!(
        listed.body["meta"]["reactions"],
        json!([{"reaction": "thumbsup", "count": 2}, {"reaction": "😊", "count": 1}])
    );
    let who: Vec<(String, String)> = listed.body["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|r| (r["reaction"].as_str().unwrap_or("").to_owned(), r["uid"].as_str().unwrap_or("").to_owned()))
        .collect();
    assert_eq!(
        who,
        vec![
            ("thumbsup".to_owned(), "other".to_owned()),
            ("thumbsup".to_owned(), "owner".to_owned()),
            ("😊".to_owned(), "member".to_owned())
        ]
    );
    let page_one =
        app.call(Method::GET, &format!("/v3/messages/{id}/reactions?perPage=1"), &as_user("member"), None).await;
    assert_eq!(page_one.body["meta"]["pagination"]["next"], json!({"afterReaction": "thumbsup", "afterUid": "other"}));
    let page_two = app
        .call(
            Method::GET,
            &format!("/v3/messages/{id}/reactions?perPage=1&afterReaction=thumbsup&afterUid=other"),
            &as_user("member"),
            None,
        )
        .await;
    assert_eq!(page_two.body["data"][0]["uid"], "owner");

    // Removing; removing again changes nothing.
    let path = format!("/v3/messages/{id}/reactions/thumbsup");
    let removed = app.call(Method::DELETE, &path, &as_user("other"), None).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.body);
    assert_eq!(
        removed.body["data"]["reactions"],
        json!([{"reaction": "thumbsup", "count": 1}, {"reaction": "😊", "count": 1}])
    );
    let again = app.call(Method::DELETE, &path, &as_user("other"), None).await;
    assert_eq!(again.body["data"]["reactions"], removed.body["data"]["reactions"]);
    // History shows the summary.
    let history = app.call(Method::GET, "/v3/groups/g1/messages", &as_user("owner"), None).await;
    assert_eq!(history.body["data"][0]["reactions"], removed.body["data"]["reactions"]);

    // Someone who may not read the message may neither react nor list its reactions.
    let outsider_lists =
        app.call(Method::GET, &format!("/v3/messages/{id}/reactions"), &as_user("outsider"), None).await;
    assert_eq!((outsider_lists.status, outsider_lists.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));
    let outsider_reacts = add("outsider", "thumbsup").await;
    assert_eq!((outsider_reacts.status, outsider_reacts.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));
    let dm = app
        .send("owner", json!({"receiver": "member", "receiverType": "user", "type": "text", "data": {"text": "dm"}}))
        .await;
    let dm_id = dm.body["data"]["id"].as_str().expect("id").to_owned();
    let third_party = app.call(Method::GET, &format!("/v3/messages/{dm_id}/reactions"), &as_user("other"), None).await;
    assert_eq!((third_party.status, third_party.code()), (StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND"));

    // Bad input.
    let long = "x".repeat(65);
    let cases = [
        (
            Method::POST,
            format!("/v3/messages/{id}/reactions/{long}"),
            &as_user("member")[..],
            StatusCode::BAD_REQUEST,
            "ERR_REACTION_INVALID",
        ),
        (
            Method::POST,
            format!("/v3/messages/{id}/reactions/a%20b"),
            &as_user("member")[..],
            StatusCode::BAD_REQUEST,
            "ERR_REACTION_INVALID",
        ),
        (
            Method::POST,
            format!("/v3/messages/{id}/reactions/ok"),
            &[("apikey", FULL)][..],
            StatusCode::BAD_REQUEST,
            "ERR_ON_BEHALF_OF_MISSING",
        ),
        (
            Method::GET,
            format!("/v3/messages/{id}/reactions?perPage=0"),
            &as_user("member")[..],
            StatusCode::BAD_REQUEST,
            "ERR_PER_PAGE_INVALID",
        ),
        (
            Method::GET,
            format!("/v3/messages/{id}/reactions?afterReaction=ok"),
            &as_user("member")[..],
            StatusCode::BAD_REQUEST,
            "ERR_CURSOR_INVALID",
        ),
        (
            Method::POST,
            "/v3/messages/no-such-message/reactions/ok".to_owned(),
            &as_user("member")[..],
            StatusCode::NOT_FOUND,
            "ERR_MESSAGE_NOT_FOUND",
        ),
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

impl App {
    async fn send_text(&self, from: &str, to: &str) -> String {
        let sent = self.send(from, text_to(to)).await;
        assert_eq!(sent.status, StatusCode::OK, "{}", sent.body);
        sent.body["data"]["id"].as_str().expect("id").to_owned()
    }

    async fn conversations(&self, uid: &str) -> Vec<Value> {
        let listed = self.call(Method::GET, &format!("/v3/users/{uid}/conversations"), &as_user(uid), None).await;
        assert_eq!(listed.status, StatusCode::OK, "{}", listed.body);
        listed.body["data"].as_array().expect("a list").clone()
    }

    /// `(conversationId, unreadMessageCount)` of each of the user's conversations, in list order.
    async fn unread(&self, uid: &str) -> Vec<(String, i64)> {
        self.conversations(uid)
            .await
            .iter()
            .map(|item| {
                (
                    item["conversationId"].as_str().unwrap_or("").to_owned(),
                    item["unreadMessageCount"].as_i64().unwrap_or(-1),
                )
            })
            .collect()
    }
}

fn unread_of(conversation: &str, count: i64) -> Vec<(String, i64)> {
    vec![(conversation.to_owned(), count)]
}

async fn receipts_scenario(app: App) {
    for uid in ["alice", "bob", "carol"] {
        app.create_user(uid).await;
    }
    let first = app.send_text("alice", "bob").await;
    let second = app.send_text("alice", "bob").await;
    app.send_text("alice", "bob").await;
    assert_eq!(app.unread("bob").await, unread_of("alice_user_bob", 3));
    assert_eq!(app.unread("alice").await, unread_of("alice_user_bob", 0), "own messages are not unread");

    let read = app
        .call(Method::POST, "/v3/users/alice/conversation/read", &as_user("bob"), Some(json!({"messageId": second})))
        .await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(
        (read.body["data"]["readSeq"].clone(), read.body["data"]["unreadMessageCount"].clone()),
        (json!(2), json!(1))
    );
    // Marking an older message never moves the position back.
    let older = app
        .call(Method::POST, "/v3/users/alice/conversation/read", &as_user("bob"), Some(json!({"messageId": first})))
        .await;
    assert_eq!(
        (older.body["data"]["readSeq"].clone(), older.body["data"]["changed"].clone()),
        (json!(2), json!(false))
    );
    assert_eq!(app.unread("bob").await, unread_of("alice_user_bob", 1));
    app.send_text("alice", "bob").await;
    assert_eq!(app.unread("bob").await, unread_of("alice_user_bob", 2), "a new message counts");

    // Delivered with no body: up to the newest message; the read position stays.
    let delivered = app.call(Method::POST, "/v3/users/alice/conversation/delivered", &as_user("bob"), None).await;
    assert_eq!(delivered.status, StatusCode::OK, "{}", delivered.body);
    assert_eq!(
        (delivered.body["data"]["deliveredSeq"].clone(), delivered.body["data"]["readSeq"].clone()),
        (json!(4), json!(2))
    );
    let listed = app.conversations("bob").await;
    assert_eq!((listed[0]["deliveredSeq"].clone(), listed[0]["readSeq"].clone()), (json!(4), json!(2)));

    // Resetting reads everything.
    let reset = app.call(Method::DELETE, "/v3/users/alice/conversation", &as_user("bob"), None).await;
    assert_eq!(reset.status, StatusCode::OK, "{}", reset.body);
    assert_eq!(app.unread("bob").await, unread_of("alice_user_bob", 0));

    // Refusals, with their codes.
    let cases = [
        (
            Method::POST,
            "/v3/users/alice/conversation/read",
            vec![("apikey", FULL)],
            None,
            StatusCode::BAD_REQUEST,
            "ERR_ON_BEHALF_OF_MISSING",
        ),
        (
            Method::POST,
            "/v3/users/alice/conversation/read",
            vec![("apikey", AUTH_ONLY)],
            None,
            StatusCode::FORBIDDEN,
            "ERR_AUTH_ONLY_KEY",
        ),
        (
            Method::POST,
            "/v3/users/nobody/conversation/read",
            as_user("bob").to_vec(),
            None,
            StatusCode::NOT_FOUND,
            "ERR_UID_NOT_FOUND",
        ),
        (
            Method::POST,
            "/v3/users/carol/conversation/read",
            as_user("bob").to_vec(),
            None,
            StatusCode::NOT_FOUND,
            "ERR_CONVERSATION_NOT_FOUND",
        ),
        (
            Method::DELETE,
            "/v3/users/carol/conversation",
            as_user("bob").to_vec(),
            None,
            StatusCode::NOT_FOUND,
            "ERR_CONVERSATION_NOT_FOUND",
        ),
        (
            Method::POST,
            "/v3/users/alice/conversation/read",
            as_user("bob").to_vec(),
            Some(json!({"messageId": 5})),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_INVALID",
        ),
        (
            Method::POST,
            "/v3/users/alice/conversation/read",
            as_user("bob").to_vec(),
            Some(json!({"upTo": "x"})),
            StatusCode::BAD_REQUEST,
            "ERR_BODY_INVALID",
        ),
        (
            Method::POST,
            "/v3/users/alice/conversation/delivered",
            as_user("bob").to_vec(),
            Some(json!({"messageId": "nope"})),
            StatusCode::NOT_FOUND,
            "ERR_MESSAGE_NOT_FOUND",
        ),
    ];
    for (method, path, headers, body, status, code) in cases {
        let reply = app.call(method.clone(), path, &headers, body).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{method} {path}: {}", reply.body);
    }
    // Carol takes part in her conversation with alice, not in alice's with bob: its messages are not hers to mark.
    app.send_text("carol", "alice").await;
    let foreign = app
        .call(Method::POST, "/v3/users/alice/conversation/read", &as_user("carol"), Some(json!({"messageId": first})))
        .await;
    expect(&foreign, StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND");

    // Groups: members only.
    app.group_with("g1", "private", "alice", json!({"participants": ["bob"]})).await;
    app.group_with("g2", "public", "alice", json!({"participants": ["bob"]})).await;
    for guid in ["g1", "g2"] {
        let posted = app.post_to_group("alice", guid).await;
        assert_eq!(posted.status, StatusCode::OK, "{}", posted.body);
    }
    let bob = app.unread("bob").await;
    assert!(bob.contains(&("group_g1".to_owned(), 1)) && bob.contains(&("group_g2".to_owned(), 1)), "{bob:?}");
    let group_read = app.call(Method::POST, "/v3/groups/g1/conversation/read", &as_user("bob"), None).await;
    assert_eq!(group_read.body["data"]["unreadMessageCount"], json!(0), "{}", group_read.body);
    let group_reset = app.call(Method::DELETE, "/v3/groups/g2/conversation", &as_user("bob"), None).await;
    assert_eq!(group_reset.body["data"]["readSeq"], json!(1), "{}", group_reset.body);
    let group_delivered = app.call(Method::POST, "/v3/groups/g2/conversation/delivered", &as_user("alice"), None).await;
    assert_eq!(
        group_delivered.body["data"]["changed"],
        json!(false),
        "alice's own post is delivered: {}",
        group_delivered.body
    );
    assert!(app.unread("bob").await.iter().all(|(_, count)| *count == 0));
    let hidden = app.call(Method::POST, "/v3/groups/g1/conversation/read", &as_user("carol"), None).await;
    expect(&hidden, StatusCode::NOT_FOUND, "ERR_GUID_NOT_FOUND");
    let outsider = app.call(Method::POST, "/v3/groups/g2/conversation/delivered", &as_user("carol"), None).await;
    expect(&outsider, StatusCode::FORBIDDEN, "ERR_NOT_A_MEMBER");
    let carol: Vec<String> = app.unread("carol").await.into_iter().map(|(id, _)| id).collect();
    assert_eq!(carol, vec!["alice_user_carol".to_owned()], "no group carol is not a member of");
}

async fn conversation_list_scenario(app: App) {
    for uid in ["alice", "bob", "carol", "dave"] {
        app.create_user(uid).await;
    }
    app.group_with("g1", "private", "alice", json!({"participants": ["bob"]})).await;
    // Distinct milliseconds, so the order is by activity and not by the tie-break.
    let pause = || tokio::time::sleep(std::time::Duration::from_millis(3));
    app.send_text("alice", "bob").await;
    pause().await;
    app.send_text("carol", "bob").await;
    pause().await;
    assert_eq!(app.post_to_group("alice", "g1").await.status, StatusCode::OK);
    pause().await;
    let from_dave = app.send_text("dave", "bob").await;
    pause().await;
    app.send_text("alice", "bob").await;

    let all = app.conversations("bob").await;
    let ids: Vec<&str> = all.iter().filter_map(|item| item["conversationId"].as_str()).collect();
    assert_eq!(ids, vec!["alice_user_bob", "bob_user_dave", "group_g1", "bob_user_carol"]);
    assert_eq!(all[0]["conversationType"], json!("user"));
    assert_eq!(
        (all[0]["conversationWith"]["uid"].clone(), all[0]["conversationWith"]["name"].clone()),
        (json!("alice"), json!("alice"))
    );
    assert_eq!(
        (all[2]["conversationType"].clone(), all[2]["conversationWith"]["guid"].clone()),
        (json!("group"), json!("g1"))
    );
    assert_eq!(all[1]["lastMessage"]["id"], json!(from_dave));
    assert_eq!(all[0]["unreadMessageCount"], json!(2));
    assert!(all[0]["updatedAt"].as_i64().is_some_and(|at| at > 1_600_000_000), "{}", all[0]);

    // Pages of two follow the same order; the last full page points to an empty one.
    let mut paged = Vec::new();
    let mut path = "/v3/users/bob/conversations?perPage=2".to_owned();
    for _ in 0..5 {
        let reply = app.call(Method::GET, &path, &as_user("bob"), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        paged.extend(
            reply.body["data"]
                .as_array()
                .expect("list")
                .iter()
                .filter_map(|item| item["conversationId"].as_str().map(str::to_owned)),
        );
        match reply.body["meta"]["pagination"]["next"].as_str() {
            Some(next) => path = format!("/v3/users/bob/conversations?perPage=2&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged, ids);

    // A deleted last message is shown as deleted.
    let deleted = app.call(Method::DELETE, &format!("/v3/messages/{from_dave}"), &as_user("dave"), None).await;
    assert_eq!(deleted.status, StatusCode::OK, "{}", deleted.body);
    let dave = app.conversations("dave").await;
    assert!(dave[0]["lastMessage"]["deletedAt"].is_i64(), "{}", dave[0]);
    assert_eq!(dave[0]["lastMessage"]["data"], json!({}));

    // The app may list anyone's; users only their own.
    let by_app = app.call(Method::GET, "/v3/users/bob/conversations", &[("apikey", FULL)], None).await;
    assert_eq!(by_app.body["data"].as_array().map(Vec::len), Some(4), "{}", by_app.body);
    let cases = [
        ("/v3/users/bob/conversations", as_user("carol").to_vec(), StatusCode::FORBIDDEN, "ERR_NOT_ALLOWED"),
        ("/v3/users/nobody/conversations", vec![("apikey", FULL)], StatusCode::NOT_FOUND, "ERR_UID_NOT_FOUND"),
        ("/v3/users/bob/conversations", vec![("apikey", AUTH_ONLY)], StatusCode::FORBIDDEN, "ERR_AUTH_ONLY_KEY"),
        (
            "/v3/users/bob/conversations?perPage=101",
            as_user("bob").to_vec(),
            StatusCode::BAD_REQUEST,
            "ERR_PER_PAGE_INVALID",
        ),
        (
            "/v3/users/bob/conversations?cursor=yesterday",
            as_user("bob").to_vec(),
            StatusCode::BAD_REQUEST,
            "ERR_CURSOR_INVALID",
        ),
    ];
    for (path, headers, status, code) in cases {
        let reply = app.call(Method::GET, path, &headers, None).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{path}: {}", reply.body);
    }
}

impl App {
    /// The texts of `path`'s history as `uid` reads it.
    async fn history_texts(&self, path: &str, uid: &str) -> Vec<(i64, String)> {
        let reply = self.call(Method::GET, path, &as_user(uid), None).await;
        assert_eq!(reply.status, StatusCode::OK, "{path} as {uid}: {}", reply.body);
        reply.body["data"]
            .as_array()
            .expect("data")
            .iter()
            .map(|m| (m["seq"].as_i64().unwrap_or(-1), m["data"]["text"].as_str().unwrap_or("").to_owned()))
            .collect()
    }

    async fn send_text_saying(&self, from: &str, to: &str, receiver_type: &str, text: &str) -> Value {
        let sent = self
            .send(from, json!({"receiver": to, "receiverType": receiver_type, "type": "text", "data": {"text": text}}))
            .await;
        assert_eq!(sent.status, StatusCode::OK, "{from} → {to}: {}", sent.body);
        sent.body["data"].clone()
    }
}

/// Issue #17, item 1: `a`→`x_user_z` and `a_user_x`→`z` both display as `a_user_x_user_z`, and the direct
/// conversation of `group` and `zz` displays as the private group `user_zz`'s. They used to be one conversation
/// each: strangers read and wrote each other's history. Every path that takes or derives a conversation.
async fn display_collision_scenario(app: App) {
    for uid in ["a", "x_user_z", "a_user_x", "z", "group", "zz", "owner"] {
        app.create_user(uid).await;
    }
    let secret = app.send_text_saying("a", "x_user_z", "user", "secret").await;
    assert_eq!(secret["conversationId"], "a_user_x_user_z", "the display id keeps CometChat's shape");
    let secret_id = secret["id"].as_str().expect("id").to_owned();

    // History: the other pair sees nothing of it, from either side.
    assert_eq!(app.history_texts("/v3/users/a_user_x/messages", "z").await, []);
    assert_eq!(app.history_texts("/v3/users/z/messages", "a_user_x").await, []);
    // Their own conversation starts at seq 1 and holds only their message.
    let other = app.send_text_saying("a_user_x", "z", "user", "other pair").await;
    assert_eq!(other["seq"], 1, "{other}");
    assert_eq!(app.history_texts("/v3/users/x_user_z/messages", "a").await, [(1, "secret".to_owned())]);
    assert_eq!(app.history_texts("/v3/users/a/messages", "x_user_z").await, [(1, "secret".to_owned())]);
    assert_eq!(app.history_texts("/v3/users/z/messages", "a_user_x").await, [(1, "other pair".to_owned())]);
    // The message itself, its reactions and its thread are not the other pair's to read.
    for (method, path) in [
        (Method::GET, format!("/v3/messages/{secret_id}")),
        (Method::GET, format!("/v3/messages/{secret_id}/reactions")),
        (Method::POST, format!("/v3/messages/{secret_id}/reactions/eyes")),
        (Method::GET, format!("/v3/messages/{secret_id}/thread")),
    ] {
        for stranger in ["z", "a_user_x"] {
            let reply = app.call(method.clone(), &path, &as_user(stranger), None).await;
            expect(&reply, StatusCode::NOT_FOUND, "ERR_MESSAGE_NOT_FOUND");
        }
    }
    let reacted =
        app.call(Method::POST, &format!("/v3/messages/{secret_id}/reactions/eyes"), &as_user("x_user_z"), None).await;
    assert_eq!(reacted.status, StatusCode::OK, "{}", reacted.body);

    // Conversation lists and unread counts: each user sees their own pair, with its own count.
    let with = |item: &Value| item["conversationWith"]["uid"].as_str().unwrap_or("").to_owned();
    let z_list = app.conversations("z").await;
    assert_eq!(z_list.iter().map(with).collect::<Vec<_>>(), ["a_user_x"]);
    assert_eq!(z_list[0]["lastMessage"]["data"]["text"], "other pair");
    assert_eq!(app.unread("z").await, unread_of("a_user_x_user_z", 1));
    assert_eq!(app.unread("x_user_z").await, unread_of("a_user_x_user_z", 1));
    // Receipts: reading one pair's conversation leaves the other's unread.
    let read = app.call(Method::POST, "/v3/users/a/conversation/read", &as_user("x_user_z"), None).await;
    assert_eq!(read.status, StatusCode::OK, "{}", read.body);
    assert_eq!(read.body["data"]["readSeq"], 1, "{}", read.body);
    assert_eq!(app.unread("x_user_z").await, unread_of("a_user_x_user_z", 0));
    assert_eq!(app.unread("z").await, unread_of("a_user_x_user_z", 1));
    let stranger_reads = app.call(Method::POST, "/v3/users/a_user_x/conversation/read", &as_user("a"), None).await;
    expect(&stranger_reads, StatusCode::NOT_FOUND, "ERR_CONVERSATION_NOT_FOUND");

    // A direct conversation that displays like a private group's.
    app.group_with("user_zz", "private", "owner", json!({"participants": ["zz"]})).await;
    let group_secret = app.send_text_saying("owner", "user_zz", "group", "group secret").await;
    assert_eq!(group_secret["conversationId"], "group_user_zz");
    let not_member = app.call(Method::GET, "/v3/groups/user_zz", &as_user("group"), None).await;
    assert_eq!(not_member.status, StatusCode::NOT_FOUND, "{}", not_member.body);
    assert_eq!(app.history_texts("/v3/users/zz/messages", "group").await, []);
    let dm = app.send_text_saying("group", "zz", "user", "direct").await;
    assert_eq!((dm["conversationId"].as_str(), dm["seq"].as_i64()), (Some("group_user_zz"), Some(1)));
    assert_eq!(app.history_texts("/v3/groups/user_zz/messages", "owner").await, [(1, "group secret".to_owned())]);
    assert_eq!(app.history_texts("/v3/users/group/messages", "zz").await, [(1, "direct".to_owned())]);
    let zz_unread = app.unread("zz").await;
    assert_eq!(zz_unread.len(), 2, "zz has the group and the direct conversation: {zz_unread:?}");
    assert!(zz_unread.iter().all(|(id, count)| id == "group_user_zz" && *count == 1), "{zz_unread:?}");
}
