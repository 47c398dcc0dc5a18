//! Connecting, pinging and migrating.

use comet_store::{Backend, Store, StoreError};
use sqlx::{Connection, Row};

use crate::support::{T0, TestDb, new_user, uid};

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
    assert_eq!(versions, vec![1, 2, 3, 4, 5], "each migration is recorded once, in order");
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

on_both_backends!(migrating_twice_is_a_no_op, ping_answers, the_backend_follows_the_url);

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
