//! Connecting, pinging and migrating.

use comet_model::{ConversationId, Millis};
use comet_store::{Backend, ConversationWith, MessagePage, Store, StoreError};
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor, Row};

use crate::support::{T0, TestDb, direct_text, guid, new_user, uid};

/// Running the migrations again applies nothing and keeps the data.
async fn migrating_twice_is_a_no_op(db: &TestDb) {
    db.store.create_user(&new_user("alice", "Alice"), T0).await.expect("create alice");

    db.store.migrate().await.expect("the second migration run");
    db.store.migrate().await.expect("the third migration run");

    let mut raw = db.raw().await;
    let applied = sqlx::query("SELECT version FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut raw)
        .await
        .expect("reading _sqlx_migrations");
    let versions: Vec<i64> = applied.iter().map(|row| row.get::<i64, _>("version")).collect();
    assert_eq!(versions, vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 11, 12, 13], "each migration is recorded once, in order");
    raw.close().await.expect("close");
    assert!(db.store.get_user(&uid("alice")).await.expect("get").is_some(), "data survives");
}

async fn ping_answers(db: &TestDb) {
    db.store.ping().await.expect("ping");
}

async fn the_backend_follows_the_url(db: &TestDb) {
    let expected = if db.url.starts_with("sqlite:") { Backend::Sqlite } else { Backend::MySql };
    assert_eq!(db.store.backend(), expected);
}

/// Issue #17 item 7: after an automatic rollback, this release starts on a schema a newer release migrated
/// further (expand-only: a new table, a new nullable column, its version recorded) and keeps working on it.
async fn a_schema_migrated_by_a_newer_release_is_accepted(db: &TestDb) {
    let newer = comet_store::latest_version() + 1000;
    let mut raw = db.raw().await;
    for statement in [
        "CREATE TABLE message_translations (message_id VARCHAR(64) NOT NULL PRIMARY KEY, lang VARCHAR(16) NOT NULL)"
            .to_owned(),
        "ALTER TABLE messages ADD COLUMN translated_text TEXT".to_owned(),
        format!(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES ({newer}, 'a newer release', TRUE, x'00', 1)"
        ),
    ] {
        raw.execute(AssertSqlSafe(statement)).await.expect("the newer release's expand migration");
    }
    raw.close().await.expect("close");

    let migrated = db.store.migrate().await.expect("this release migrates a schema a newer release went past");
    assert_eq!(migrated.newer, vec![newer], "the newer versions are reported");

    // A fresh connection (another process of this release) starts on it too, and the store works as before.
    let again = Store::connect(&db.url).await.expect("connect");
    assert_eq!(again.migrate().await.expect("again").newer, vec![newer]);
    again.create_user(&new_user("alice", "Alice"), T0).await.expect("create alice");
    again.create_user(&new_user("bob", "Bob"), T0).await.expect("create bob");
    let (sent, _) =
        again.send_message(&direct_text("alice", "bob", "after the rollback", None), T0 + 1).await.expect("send");
    assert_eq!(sent.seq, 1);
    let page = MessagePage { after_seq: None, before_seq: None, limit: 10 };
    let history = again.list_messages(&sent.conversation_id, &page).await.expect("history");
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].data["text"], "after the rollback");
}

/// A schema this release knows completely reports no newer versions.
async fn a_schema_this_release_knows_reports_nothing_newer(db: &TestDb) {
    assert_eq!(db.store.migrate().await.expect("migrate").newer, Vec::<i64>::new());
}

on_both_backends!(
    migrating_twice_is_a_no_op,
    ping_answers,
    the_backend_follows_the_url,
    a_schema_migrated_by_a_newer_release_is_accepted,
    a_schema_this_release_knows_reports_nothing_newer
);

#[tokio::test]
async fn other_databases_are_refused_with_the_url_redacted() {
    let error = Store::connect("postgres://comet:s3cret@db/comet").await.expect_err("postgres is not supported");
    assert!(matches!(error, StoreError::BadUrl(_)), "{error:?}");
    let message = error.to_string();
    assert!(!message.contains("s3cret"), "the password is redacted: {message}");
    assert!(message.contains("mysql://") && message.contains("sqlite://"), "says what works: {message}");
}

#[tokio::test]
async fn a_missing_sqlite_file_is_created_in_wal_mode() {
    let folder = tempfile::tempdir().expect("temp dir");
    let path = folder.path().join("new.db");
    let url = format!("sqlite://{}", path.display());
    let store = Store::connect(&url).await.expect("connect");
    store.migrate().await.expect("migrate");
    assert!(path.exists(), "{} was created", path.display());

    let mut raw = sqlx::AnyConnection::connect(&url).await.expect("raw connection");
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut raw).await.expect("journal mode");
    assert_eq!(journal, "wal", "write-ahead logging is on (it is a property of the file)");
    raw.close().await.expect("close");
}

/// Data as release 5 wrote it: two pairs of users and a group with a direct conversation whose display ids
/// collided, so each shared one conversation (one seq counter, one row), beside one that did not collide.
async fn write_release_5_data(raw: &mut AnyConnection) {
    let users = ["a", "x_user_z", "a_user_x", "z", "group", "zz", "owner", "alice", "bob"];
    for user in users {
        raw.execute(AssertSqlSafe(format!(
            "INSERT INTO users (uid, name, created_at, updated_at) VALUES ('{user}', '{user}', {T0}, {T0})"
        )))
        .await
        .expect("user");
    }
    raw.execute(AssertSqlSafe(format!(
        "INSERT INTO chat_groups (guid, name, group_type, owner, members_count, created_at, updated_at) \
         VALUES ('user_zz', 'user_zz', 'private', 'owner', 2, {T0}, {T0})"
    )))
    .await
    .expect("group");
    for member in ["owner", "zz"] {
        raw.execute(AssertSqlSafe(format!(
            "INSERT INTO group_members (guid, uid, scope, joined_at) VALUES ('user_zz', '{member}', 'participant', {T0})"
        )))
        .await
        .expect("member");
    }
    // (id, old conversation id, seq, sender, receiver, receiver type)
    let messages = [
        ("m1", "a_user_x_user_z", 1, "a", "x_user_z", "user"),
        ("m2", "a_user_x_user_z", 2, "a_user_x", "z", "user"),
        ("m3", "a_user_x_user_z", 3, "x_user_z", "a", "user"),
        ("m4", "a_user_x_user_z", 4, "z", "a_user_x", "user"),
        ("g1", "group_user_zz", 1, "owner", "user_zz", "group"),
        ("g2", "group_user_zz", 2, "group", "zz", "user"),
        ("g3", "group_user_zz", 3, "zz", "user_zz", "group"),
        ("b1", "alice_user_bob", 1, "alice", "bob", "user"),
        ("b2", "alice_user_bob", 2, "bob", "alice", "user"),
    ];
    for (n, (id, conversation, seq, sender, receiver, receiver_type)) in messages.into_iter().enumerate() {
        let at = T0 + n as Millis;
        raw.execute(AssertSqlSafe(format!(
            "INSERT INTO messages (id, conversation_id, seq, sender, receiver, receiver_type, category, message_type, \
             data, tags, sent_at, updated_at) VALUES ('{id}', '{conversation}', {seq}, '{sender}', '{receiver}', \
             '{receiver_type}', 'message', 'text', '{{\"text\":\"{id}\"}}', '[]', {at}, {at})"
        )))
        .await
        .expect("message");
        if receiver_type == "user" {
            for (uid, other) in [(sender, receiver), (receiver, sender)] {
                raw.execute(AssertSqlSafe(format!(
                    "DELETE FROM user_conversations WHERE uid = '{uid}' AND conversation_id = '{conversation}'"
                )))
                .await
                .expect("user conversation");
                raw.execute(AssertSqlSafe(format!(
                    "INSERT INTO user_conversations (uid, conversation_id, other_uid, last_at) \
                     VALUES ('{uid}', '{conversation}', '{other}', {at})"
                )))
                .await
                .expect("user conversation");
            }
        }
    }
    for (conversation, last_seq, guid) in
        [("a_user_x_user_z", 4, "NULL"), ("group_user_zz", 3, "'user_zz'"), ("alice_user_bob", 2, "NULL")]
    {
        raw.execute(AssertSqlSafe(format!(
            "INSERT INTO conversations (conversation_id, last_seq, last_message_at, guid) \
             VALUES ('{conversation}', {last_seq}, {T0}, {guid})"
        )))
        .await
        .expect("conversation");
    }
    // (conversation, uid, delivered, read)
    for (conversation, uid, delivered, read) in [
        ("a_user_x_user_z", "x_user_z", 3, 3),
        ("a_user_x_user_z", "z", 4, 2),
        ("a_user_x_user_z", "owner", 4, 4),
        ("group_user_zz", "zz", 3, 3),
        ("group_user_zz", "group", 2, 2),
        ("alice_user_bob", "bob", 2, 1),
    ] {
        raw.execute(AssertSqlSafe(format!(
            "INSERT INTO conversation_receipts (conversation_id, uid, delivered_seq, read_seq, updated_at) \
             VALUES ('{conversation}', '{uid}', {delivered}, {read}, {T0})"
        )))
        .await
        .expect("receipt");
    }
    raw.execute(AssertSqlSafe(format!(
        "INSERT INTO message_reactions (message_id, reaction, uid, conversation_id, reacted_at) \
         VALUES ('m3', 'eyes', 'a', 'a_user_x_user_z', {T0})"
    )))
    .await
    .expect("reaction");
    for (id, key, published) in [
        ("e1", "alice_user_bob", "NULL"),
        ("e2", "a_user_x_user_z", "NULL"),
        ("e3", "alice_user_bob", "1"),
        ("e4", "alice_user_bob", "NULL"),
    ] {
        let event_type = if id == "e4" { "user.updated" } else { "message.sent" };
        raw.execute(AssertSqlSafe(format!(
            "INSERT INTO outbox (id, event_type, event_key, key_seq, event_time, data, published_at) \
             VALUES ('{id}', '{event_type}', '{key}', 1, {T0}, '{{}}', {published})"
        )))
        .await
        .expect("outbox");
    }
}

/// Texts and seqs of one conversation's history.
async fn history(store: &Store, conversation: &ConversationId) -> Vec<(i64, String)> {
    let page = MessagePage { after_seq: None, before_seq: None, limit: 100 };
    let messages = store.list_messages(conversation, &page).await.expect("history");
    messages.iter().map(|message| (message.seq, message.data["text"].as_str().unwrap_or("").to_owned())).collect()
}

fn seqs(pairs: &[(i64, &str)]) -> Vec<(i64, String)> {
    pairs.iter().map(|(seq, text)| (*seq, (*text).to_owned())).collect()
}

/// Issue #17: migration 6 splits every conversation whose display id collided into the conversations its
/// messages were sent in, renumbers their seqs, moves receipts and reactions, and leaves the others as they were.
async fn collided_conversations_are_split(db: &TestDb) {
    let mut raw = db.raw().await;
    write_release_5_data(&mut raw).await;
    db.store.migrate().await.expect("migration 6 on release-5 data");
    let store = &db.store;
    let direct = |a: &str, b: &str| ConversationId::direct(&uid(a), &uid(b));

    assert_eq!(history(store, &direct("a", "x_user_z")).await, seqs(&[(1, "m1"), (2, "m3")]));
    assert_eq!(history(store, &direct("a_user_x", "z")).await, seqs(&[(1, "m2"), (2, "m4")]));
    assert_eq!(history(store, &ConversationId::group(&guid("user_zz"))).await, seqs(&[(1, "g1"), (2, "g3")]));
    assert_eq!(history(store, &direct("group", "zz")).await, seqs(&[(1, "g2")]));
    assert_eq!(history(store, &direct("alice", "bob")).await, seqs(&[(1, "b1"), (2, "b2")]), "unchanged");

    // Receipts follow their user, positions renumbered: z had read up to old seq 2 (its new seq 1).
    let summary = |uid_: &str| {
        let uid_ = uid(uid_);
        async move { store.list_conversations(&uid_, None, 100).await.expect("list") }
    };
    let z = summary("z").await;
    assert_eq!(z.len(), 1, "{z:?}");
    assert_eq!(z[0].with, ConversationWith::User(uid("a_user_x")));
    assert_eq!((z[0].last_seq, z[0].delivered_seq, z[0].read_seq), (2, 2, 1));
    let x = summary("x_user_z").await;
    assert_eq!(x.len(), 1, "{x:?}");
    assert_eq!((x[0].with.clone(), x[0].last_seq, x[0].read_seq), (ConversationWith::User(uid("a")), 2, 2));
    let zz = summary("zz").await;
    let zz_positions: Vec<(String, i64, i64)> = zz
        .iter()
        .map(|summary| (summary.conversation_id.key().to_owned(), summary.last_seq, summary.read_seq))
        .collect();
    assert_eq!(zz_positions.len(), 2, "{zz_positions:?}");
    assert!(zz_positions.contains(&("g:user_zz".to_owned(), 2, 2)), "{zz_positions:?}");
    assert!(zz_positions.contains(&("u:group:zz".to_owned(), 1, 0)), "{zz_positions:?}");
    let group = summary("group").await;
    assert_eq!(group.iter().map(|summary| (summary.last_seq, summary.read_seq)).collect::<Vec<_>>(), [(1, 1)]);
    let bob = summary("bob").await;
    assert_eq!((bob[0].last_seq, bob[0].delivered_seq, bob[0].read_seq), (2, 2, 1), "unchanged");

    let receipt_keys: Vec<String> =
        sqlx::query_scalar("SELECT conversation_id FROM conversation_receipts WHERE uid = 'owner'")
            .fetch_all(&mut raw)
            .await
            .expect("receipts");
    assert!(
        receipt_keys.iter().all(|key| key != "a_user_x_user_z"),
        "a stranger's receipt is dropped: {receipt_keys:?}"
    );
    let reactions = store.list_reactions("m3", None, None, 10).await.expect("reactions");
    assert_eq!(reactions.iter().map(|r| r.conversation_id.key()).collect::<Vec<_>>(), ["u:a:x_user_z"]);

    // Unpublished events of a conversation that did not collide get its key; the others keep theirs.
    let keys: Vec<(String, String)> = sqlx::query("SELECT id, event_key FROM outbox ORDER BY id")
        .fetch_all(&mut raw)
        .await
        .expect("outbox")
        .iter()
        .map(|row| (row.get::<String, _>("id"), row.get::<String, _>("event_key")))
        .collect();
    let expected =
        [("e1", "u:alice:bob"), ("e2", "a_user_x_user_z"), ("e3", "alice_user_bob"), ("e4", "alice_user_bob")];
    assert_eq!(keys, expected.map(|(id, key)| (id.to_owned(), key.to_owned())));
    let old_keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM messages WHERE INSTR(conversation_id, ':') = 0")
        .fetch_one(&mut raw)
        .await
        .expect("count");
    assert_eq!(old_keys, 0);
    raw.close().await.expect("close");

    // The split conversations go on from their new last seq.
    let (next, _) = store.send_message(&direct_text("x_user_z", "a", "after", None), T0 + 100).await.expect("send");
    assert_eq!((next.seq, next.conversation_id.key()), (3, "u:a:x_user_z"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collided_conversations_are_split_on_sqlite() {
    let db = TestDb::sqlite_at(5).await;
    collided_conversations_are_split(&db).await;
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collided_conversations_are_split_on_mariadb() {
    let db = TestDb::mariadb_at(5).await;
    collided_conversations_are_split(&db).await;
    db.finish().await;
}
