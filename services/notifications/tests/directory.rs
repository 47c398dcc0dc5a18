//! The two homes of preferences hold to one contract: the relational store (SQLite, MariaDB) and MongoDB (the
//! SecantusDB server `bash .ci/services.sh` starts), each checked by the same scenario. The relational-only
//! tables (tokens, providers, pushes, the log) are checked on SQLite and MariaDB.

use std::sync::Arc;

use comet_documents::Documents;
use comet_model::{Uid, now_millis};
use comet_notifications::preferences::{Defaults, Overrides, Preferences, QuietHours, QuietSpan};
use comet_notifications::{MongoPreferences, PreferenceStore, token_hash};
use comet_store::{LogEntry, LogFilter, ProviderRecord, PushJob, PushToken, Store, StoreError, TokenRegistration};
use comet_testkit::TestDatabase;

async fn store_on(database: &TestDatabase) -> Store {
    let store = Store::connect(&database.url).await.expect("connecting");
    store.migrate().await.expect("migrate");
    store
}

fn uid(text: &str) -> Uid {
    Uid::parse(text).expect("uid")
}

/// Every operation of the interface against `preferences`.
async fn contract(preferences: &dyn PreferenceStore) {
    let now = now_millis();
    let (alice, bob, carol) = (uid("alice"), uid("bob"), uid("carol"));
    assert!(preferences.preferences_of(&[alice.clone(), bob.clone()]).await.expect("read").is_empty());
    assert!(preferences.preferences_of(&[]).await.expect("read nobody").is_empty());
    let mine = Preferences {
        dnd: Some(true),
        quiet_hours: Some(QuietHours {
            time_zone: "Europe/Paris".to_owned(),
            spans: vec![QuietSpan { day: "friday".to_owned(), from: "2200".to_owned(), to: "0800".to_owned() }],
        }),
        ..Preferences::default()
    };
    preferences.save_preferences(&alice, &mine, now).await.expect("save");
    let replaced = Preferences { privacy: Some(true), ..mine.clone() };
    preferences.save_preferences(&alice, &replaced, now + 1).await.expect("save again");
    preferences.save_preferences(&carol, &Preferences::default(), now).await.expect("save");
    let found = preferences.preferences_of(&[alice.clone(), bob.clone(), carol.clone()]).await.expect("read");
    assert_eq!(found, vec![(alice.clone(), replaced.clone()), (carol.clone(), Preferences::default())]);

    assert_eq!(preferences.defaults().await.expect("defaults"), None);
    let defaults = Defaults {
        privacy: true,
        user_may_override: Overrides { privacy: false, ..Overrides::default() },
        ..Defaults::default()
    };
    preferences.save_defaults(&defaults, now).await.expect("save defaults");
    preferences.save_defaults(&defaults, now + 1).await.expect("save defaults again");
    assert_eq!(preferences.defaults().await.expect("defaults"), Some(defaults));

    let key = "g:hikers";
    preferences.mute(&alice, key, now + 60_000).await.expect("mute");
    preferences.mute(&alice, key, now + 120_000).await.expect("mute again: replaced");
    preferences.mute(&bob, key, now - 1).await.expect("a mute already over");
    preferences.mute(&alice, "u:alice:bob", now + 5_000).await.expect("mute");
    let muted = preferences.muted_among(&[alice.clone(), bob.clone(), carol.clone()], key, now).await.expect("muted");
    assert_eq!(muted, vec![(alice.clone(), now + 120_000)], "bob's mute ran out");
    assert_eq!(
        preferences.mutes(&alice, now).await.expect("mutes"),
        vec![("g:hikers".to_owned(), now + 120_000), ("u:alice:bob".to_owned(), now + 5_000)]
    );
    assert!(preferences.unmute(&alice, "u:alice:bob").await.expect("unmute"));
    assert!(!preferences.unmute(&alice, "u:alice:bob").await.expect("unmute again"));

    assert!(preferences.reset_preferences(&alice).await.expect("reset"));
    assert!(preferences.preferences_of(std::slice::from_ref(&alice)).await.expect("read").is_empty());
    assert!(preferences.mutes(&alice, now).await.expect("mutes").is_empty(), "a reset forgets the mutes too");
    assert!(!preferences.reset_preferences(&alice).await.expect("reset again"));
}

#[tokio::test]
async fn the_relational_store_keeps_the_contract_on_sqlite() {
    let database = TestDatabase::sqlite();
    contract(&store_on(&database).await).await;
}

#[tokio::test]
async fn the_relational_store_keeps_the_contract_on_mariadb() {
    let database = TestDatabase::mariadb().await;
    contract(&store_on(&database).await).await;
    database.finish().await;
}

#[tokio::test]
async fn mongodb_keeps_the_contract() {
    let url = comet_testkit::mongo_url();
    comet_testkit::require_mongo(&url);
    let documents =
        Documents::connect(&url, None, &comet_testkit::mongo_database()).await.expect("connecting to MongoDB");
    let preferences: Arc<dyn PreferenceStore> = Arc::new(MongoPreferences::new(&documents));
    contract(preferences.as_ref()).await;
    documents.drop_database().await.expect("dropping the test database");
}

fn token(id: &str, owner: &str, session: &str, value: &str, at: i64) -> PushToken {
    PushToken {
        id: id.to_owned(),
        uid: uid(owner),
        session: session.to_owned(),
        platform: "android".to_owned(),
        provider_id: "fcm-main".to_owned(),
        token: value.to_owned(),
        token_hash: token_hash(value),
        created_at: at,
        updated_at: at,
    }
}

fn job(id: &str, token_id: &str, at: i64) -> PushJob {
    PushJob {
        id: id.to_owned(),
        event_id: "e1".to_owned(),
        uid: "bob".to_owned(),
        token_id: token_id.to_owned(),
        provider_id: "fcm-main".to_owned(),
        collapse_id: "m1".to_owned(),
        payload: "{}".to_owned(),
        attempts: 0,
        next_attempt_at: at,
        claimed_until: 0,
        created_at: at,
    }
}

fn entry(id: &str, owner: &str, outcome: &str, at: i64) -> LogEntry {
    LogEntry {
        id: id.to_owned(),
        event_id: "e1".to_owned(),
        message_id: Some("m1".to_owned()),
        uid: Some(owner.to_owned()),
        conversation_key: Some("u:alice:bob".to_owned()),
        provider_id: None,
        outcome: outcome.to_owned(),
        reason: "online".to_owned(),
        status: None,
        collapse_id: Some("m1".to_owned()),
        at,
    }
}

/// Tokens (per session, moved between users, capped), providers (one default), pushes (claims, releases,
/// reschedules, the token deleted with the answer) and the log (filters, the purge).
async fn relational_tables(store: &Store) {
    let at = now_millis();
    let saved = |registration: TokenRegistration| match registration {
        TokenRegistration::Saved(token) => token,
        TokenRegistration::TooMany => panic!("refused"),
    };
    saved(store.register_push_token(&token("t1", "bob", "phone", "tok-A", at), 2).await.expect("register"));
    let replaced =
        saved(store.register_push_token(&token("t2", "bob", "phone", "tok-B", at + 1), 2).await.expect("again"));
    assert_eq!((replaced.id.as_str(), replaced.token.as_str()), ("t1", "tok-B"), "one token per session");
    saved(store.register_push_token(&token("t3", "bob", "tablet", "tok-C", at), 2).await.expect("register"));
    assert_eq!(
        store.register_push_token(&token("t4", "bob", "watch", "tok-D", at), 2).await.expect("register"),
        TokenRegistration::TooMany
    );
    // Carol signs in on bob's tablet: the token moves to her.
    saved(store.register_push_token(&token("t5", "carol", "tablet", "tok-C", at), 2).await.expect("register"));
    let tokens = store.push_tokens_of(&[uid("bob"), uid("carol")]).await.expect("tokens");
    let owned: Vec<(&str, &str)> = tokens.iter().map(|token| (token.uid.as_str(), token.id.as_str())).collect();
    assert_eq!(owned, [("bob", "t1"), ("carol", "t5")]);
    assert!(!store.delete_push_token(&uid("carol"), "t1").await.expect("delete"), "not carol's");
    assert!(store.delete_push_token(&uid("carol"), "t5").await.expect("delete"));

    let provider = |id: &str, default: bool| ProviderRecord {
        id: id.to_owned(),
        kind: "fcm".to_owned(),
        is_default: default,
        body: "{}".to_owned(),
        created_at: at,
        updated_at: at,
    };
    store.create_push_provider(&provider("fcm-main", true)).await.expect("create");
    store.create_push_provider(&provider("fcm-other", true)).await.expect("create");
    assert!(matches!(store.create_push_provider(&provider("fcm-main", false)).await, Err(StoreError::Conflict(_))));
    let defaults: Vec<(String, bool)> =
        store.list_push_providers().await.expect("list").into_iter().map(|p| (p.id, p.is_default)).collect();
    assert_eq!(defaults, [("fcm-main".to_owned(), false), ("fcm-other".to_owned(), true)], "one default");
    assert!(store.save_push_provider(&provider("fcm-main", true)).await.expect("save"));
    assert!(!store.save_push_provider(&provider("nope", true)).await.expect("save"));

    let made = store
        .enqueue_notifications(
            &[job("e1_t1", "t1", at), job("e1_t9", "t9", at)],
            &[entry("e1_carol", "carol", "skipped", at)],
        )
        .await
        .expect("enqueue");
    assert_eq!(made, ["e1_t1", "e1_t9"]);
    let (jobs, log) = ([job("e1_t1", "t1", at)], [entry("e1_carol", "carol", "skipped", at)]);
    let again = store.enqueue_notifications(&jobs, &log).await.expect("enqueue again");
    assert!(again.is_empty(), "a redelivered event makes nothing new");
    assert_eq!(store.due_notification_pushes(at, 10).await.expect("due").len(), 2);
    assert!(store.claim_notification_push("e1_t1", at, at + 60_000).await.expect("claim"));
    assert!(!store.claim_notification_push("e1_t1", at + 1, at + 60_000).await.expect("claimed already"));
    assert_eq!(store.due_notification_pushes(at, 10).await.expect("due").len(), 1, "claimed pushes are not due");
    store.release_notification_pushes(&["e1_t1".to_owned()]).await.expect("release");
    store.reschedule_notification_push("e1_t9", 1, at + 5_000).await.expect("reschedule");
    let due: Vec<String> =
        store.due_notification_pushes(at, 10).await.expect("due").into_iter().map(|job| job.id).collect();
    assert_eq!(due, ["e1_t1"]);
    assert_eq!(store.pending_notification_pushes().await.expect("pending"), 2);
    let sent = LogEntry {
        outcome: "failed".to_owned(),
        reason: "unregistered".to_owned(),
        ..entry("e1_t1_failed", "bob", "failed", at + 2)
    };
    store.finish_notification_push("e1_t1", &sent, Some("t1")).await.expect("finish");
    assert!(store.push_tokens_of(&[uid("bob")]).await.expect("tokens").is_empty(), "the condemned token is gone");
    assert_eq!(store.pending_notification_pushes().await.expect("pending"), 1);

    let failed = LogFilter { outcome: Some("failed".to_owned()), limit: 10, ..LogFilter::default() };
    let found = store.notification_log(&failed).await.expect("log");
    assert_eq!(found.iter().map(|entry| entry.id.as_str()).collect::<Vec<_>>(), ["e1_t1_failed"]);
    let carol = LogFilter { uid: Some("carol".to_owned()), limit: 10, ..LogFilter::default() };
    assert_eq!(store.notification_log(&carol).await.expect("log").len(), 1);
    assert_eq!(store.purge_notification_log(at + 1).await.expect("purge"), 1, "only the older entry");
    assert_eq!(store.notification_log(&LogFilter { limit: 10, ..LogFilter::default() }).await.expect("log").len(), 1);
}

#[tokio::test]
async fn tokens_providers_pushes_and_the_log_on_sqlite_and_mariadb() {
    let sqlite = TestDatabase::sqlite();
    relational_tables(&store_on(&sqlite).await).await;
    let mariadb = TestDatabase::mariadb().await;
    relational_tables(&store_on(&mariadb).await).await;
    mariadb.finish().await;
}
