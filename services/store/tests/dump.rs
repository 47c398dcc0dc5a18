//! The database's logical copy (issue #12): everything comes back, on either backend from either backend; a copy
//! taken while sends go on is consistent; a cut, altered or misdirected copy is refused.

use std::collections::{BTreeMap, BTreeSet};

use comet_model::{ConversationId, MessageEdit};
use comet_store::{DumpError, ReceiptKind, Store, TABLES};
use serde_json::{Value, json};
use tokio::io::BufReader;

use crate::support::{T0, TestDb, create_group, direct_text, group_text, new_user, uid};

/// Users, a group, direct and group messages (one edited, one deleted, one reacted to), a receipt.
async fn some_chat(store: &Store) {
    for user in ["alice", "bob", "carol"] {
        store.create_user(&new_user(user, &format!("{user} \"quoted\" ☃")), T0).await.expect("user");
    }
    let first = store.send_message(&direct_text("alice", "bob", "hi ☃ \n\t bob", Some("m-1")), T0 + 1).await;
    let first = first.expect("send").0;
    store.send_message(&direct_text("bob", "alice", "hello", None), T0 + 2).await.expect("send");
    let edit = MessageEdit { data: Some(json!({"text": "hi, edited"})), tags: None };
    store.edit_message(&first.id, &edit, Some(&uid("alice")), T0 + 3).await.expect("edit");
    store.add_reaction(&first.id, &uid("bob"), "👍", T0 + 4).await.expect("react");
    let conversation = ConversationId::direct(&uid("alice"), &uid("bob"));
    store
        .mark_conversation(&conversation, &uid("bob"), ReceiptKind::Read, Some(&first.id), T0 + 5)
        .await
        .expect("read");
}

/// Every row of every copied table, as the copy's lines, per table and sorted (the copy has no order).
fn rows_of(copy: &[u8]) -> BTreeMap<String, BTreeSet<String>> {
    let mut tables = BTreeMap::new();
    let mut current = None;
    for line in String::from_utf8_lossy(copy).lines() {
        let value: Value = serde_json::from_str(line).expect("every line is JSON");
        match value {
            Value::Array(_) => {
                let table: &String = current.as_ref().expect("a row inside a table");
                tables.entry(table.clone()).or_insert_with(BTreeSet::new).insert(line.to_owned());
            }
            Value::Object(object) => {
                if let Some(table) = object.get("table").and_then(Value::as_str) {
                    tables.entry(table.to_owned()).or_insert_with(BTreeSet::new);
                    current = Some(table.to_owned());
                }
            }
            _ => panic!("unexpected line {line}"),
        }
    }
    tables
}

async fn copy_of(store: &Store) -> Vec<u8> {
    let mut copy = Vec::new();
    store.dump(&mut copy, T0 + 100).await.expect("dump");
    copy
}

async fn load(store: &Store, copy: &[u8]) -> Result<comet_store::DumpSummary, DumpError> {
    store.load(&mut BufReader::new(copy)).await
}

async fn a_copy_loads_into_fresh_databases_of_both_kinds_with_every_row(db: &TestDb) {
    some_chat(&db.store).await;
    let copy = copy_of(&db.store).await;
    let original = rows_of(&copy);
    assert_eq!(original.keys().map(String::as_str).collect::<Vec<_>>(), {
        let mut names = TABLES.to_vec();
        names.sort_unstable();
        names
    });
    assert_eq!(original["users"].len(), 3);
    assert_eq!(original["messages"].len(), 2);
    assert!(!original["outbox"].is_empty() && original["message_reactions"].len() == 1);

    for target in [TestDb::sqlite().await, TestDb::mariadb().await] {
        let summary = load(&target.store, &copy).await.expect("load");
        assert_eq!(summary.tables.get("messages"), Some(&2));
        assert_eq!(rows_of(&copy_of(&target.store).await), original, "the same rows, value for value");
        // The loaded database works: history reads back the edited text and the next send takes seq 3.
        let sent = target.store.send_message(&direct_text("bob", "alice", "after", None), T0 + 200).await;
        assert_eq!(sent.expect("send after the load").0.seq, 3);
        target.finish().await;
    }
}

async fn a_copy_taken_while_sends_go_on_is_consistent(db: &TestDb) {
    some_chat(&db.store).await;
    create_group(db, "busy", &["bob", "carol"]).await;
    let send = |n: i64| {
        if n % 2 == 0 {
            group_text("bob", "busy", &format!("g{n}"), None)
        } else {
            direct_text("carol", "alice", &format!("d{n}"), None)
        }
    };
    for n in 0..30 {
        db.store.send_message(&send(n), T0 + 1_000 + n).await.expect("send");
    }
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicI64::new(30));
    let writer = {
        let store = db.store.clone();
        let sent = sent.clone();
        tokio::spawn(async move {
            for n in 30..400_i64 {
                let message = if n % 2 == 0 {
                    group_text("bob", "busy", &format!("g{n}"), None)
                } else {
                    direct_text("carol", "alice", &format!("d{n}"), None)
                };
                store.send_message(&message, T0 + 1_000 + n).await.expect("send");
                sent.store(n + 1, std::sync::atomic::Ordering::SeqCst);
            }
        })
    };
    // The copy is taken by a store of its own, as `comet-server dump` does (the embedded store has one
    // connection, which a copy would hold for its whole length).
    let dumper = Store::connect(&db.url).await.expect("a second store");
    while sent.load(std::sync::atomic::Ordering::SeqCst) < 100 {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    let copy = copy_of(&dumper).await;
    let after = sent.load(std::sync::atomic::Ordering::SeqCst);
    writer.await.expect("the writer");
    let total: usize = rows_of(&copy_of(&db.store).await)["messages"].len();

    let mut seqs: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut sent_events: BTreeSet<(String, i64)> = BTreeSet::new();
    let mut current = String::new();
    let mut columns: Vec<String> = Vec::new();
    for line in String::from_utf8_lossy(&copy).lines() {
        let value: Value = serde_json::from_str(line).expect("JSON");
        if let Some(table) = value.get("table").and_then(Value::as_str) {
            current = table.to_owned();
            columns = serde_json::from_value(value["columns"].clone()).expect("columns");
            continue;
        }
        let Value::Array(values) = value else { continue };
        let field = |name: &str| values[columns.iter().position(|column| column == name).expect(name)].clone();
        match current.as_str() {
            "messages" => seqs
                .entry(field("conversation_id").as_str().expect("key").to_owned())
                .or_default()
                .push(field("seq").as_i64().expect("seq")),
            "outbox" if field("event_type") == "message.sent" => {
                sent_events.insert((
                    field("event_key").as_str().expect("key").to_owned(),
                    field("key_seq").as_i64().expect("seq"),
                ));
            }
            _ => {}
        }
    }
    for (conversation, mut numbers) in seqs.clone() {
        numbers.sort_unstable();
        assert_eq!(numbers, (1..=numbers.len() as i64).collect::<Vec<_>>(), "gap-free seqs in {conversation}");
        for seq in numbers {
            assert!(sent_events.contains(&(conversation.clone(), seq)), "message {conversation}#{seq} has its event");
        }
    }
    let in_copy: usize = seqs.values().map(Vec::len).sum();
    assert_eq!(sent_events.len(), in_copy, "and no event of a message the copy lacks");
    let sent_by_its_end = usize::try_from(after).expect("a count") + 2;
    assert!(
        (102..=sent_by_its_end).contains(&in_copy) && in_copy < total,
        "the copy holds what was sent before it and nothing after it ended ({in_copy} of {total})"
    );
}

/// A table added by a migration must be copied or left out on purpose: this fails until it is one or the other.
async fn every_table_of_the_schema_is_copied_or_left_out_on_purpose(db: &TestDb) {
    use sqlx::Row as _;
    let mut raw = db.raw().await;
    let sql = if db.url.starts_with("sqlite") {
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    } else {
        "SELECT CAST(table_name AS CHAR) FROM information_schema.tables WHERE table_schema = DATABASE()"
    };
    let rows = sqlx::query(sql).fetch_all(&mut raw).await.expect("tables");
    let schema: BTreeSet<String> = rows.iter().map(|row| row.get::<String, _>(0)).collect();
    let known: BTreeSet<String> =
        TABLES.iter().chain(comet_store::NOT_COPIED.iter()).map(|name| (*name).to_owned()).collect();
    assert_eq!(schema, known, "add the new table to comet_store::TABLES (or NOT_COPIED, saying why)");
}

async fn a_cut_altered_or_misdirected_copy_is_refused(db: &TestDb) {
    some_chat(&db.store).await;
    let copy = copy_of(&db.store).await;
    let text = String::from_utf8(copy.clone()).expect("text");
    let lines: Vec<&str> = text.lines().collect();

    let cut = lines[..lines.len() - 1].join("\n");
    let target = TestDb::sqlite().await;
    let refused = load(&target.store, cut.as_bytes()).await.expect_err("a copy without its last line");
    assert!(refused.to_string().contains("cut short"), "{refused}");
    target.finish().await;

    let row = lines.iter().position(|line| line.starts_with('[')).expect("a row");
    let without_a_row: Vec<&str> = lines.iter().enumerate().filter(|(n, _)| *n != row).map(|(_, line)| *line).collect();
    let target = TestDb::sqlite().await;
    let refused = load(&target.store, without_a_row.join("\n").as_bytes()).await.expect_err("a row missing");
    assert!(matches!(refused, DumpError::Format { .. }), "{refused}");
    assert!(refused.to_string().contains("rows announced"), "{refused}");
    target.finish().await;

    let refused = load(&db.store, &copy).await.expect_err("into a database that has data");
    assert!(matches!(&refused, DumpError::Target(message) if message.contains("not empty")), "{refused}");
    assert_eq!(rows_of(&copy_of(&db.store).await), rows_of(&copy), "and nothing was written");

    let older = TestDb::sqlite_at(5).await;
    let refused = load(&older.store, &copy).await.expect_err("into another schema version");
    assert!(matches!(&refused, DumpError::Target(message) if message.contains("schema version")), "{refused}");
    older.finish().await;

    let target = TestDb::sqlite().await;
    let refused = load(&target.store, b"{\"hello\":1}\n").await.expect_err("not a copy");
    assert!(matches!(refused, DumpError::Format { line: 1, .. }), "{refused}");
    target.finish().await;
}

on_both_backends!(
    every_table_of_the_schema_is_copied_or_left_out_on_purpose,
    a_copy_loads_into_fresh_databases_of_both_kinds_with_every_row,
    a_copy_taken_while_sends_go_on_is_consistent,
    a_cut_altered_or_misdirected_copy_is_refused,
);
