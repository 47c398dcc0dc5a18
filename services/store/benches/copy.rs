//! The database copy's throughput (issue #12): `comet-server load` and `dump` of a copy holding
//! `BENCH_MESSAGES` messages (default 1,000,000), on SQLite (default) or MariaDB (`BENCH_MARIADB=1`, through
//! `COMET_TEST_MYSQL_URL`, like the tests).
//!
//! A small real database is made through the store (two users, 200 messages sent), copied, and its messages
//! table multiplied to the wanted count (new ids and seqs, the rest of each row as sent); that copy is loaded
//! into a fresh database, and the loaded database is dumped again. Reported: rows/s and MiB/s of each, with
//! the copy's size. `cargo bench -p comet-store --bench copy`; docs/benchmarks.md has the figures.
#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use comet_model::{Category, ConversationId, NewMessage, NewUser, ReceiverType, Uid};
use comet_store::Store;
use comet_testkit::{TestDatabase, env_number};
use serde_json::{Value, json};

const SENT: i64 = 200;

async fn database() -> TestDatabase {
    if std::env::var_os("BENCH_MARIADB").is_some() { TestDatabase::mariadb().await } else { TestDatabase::sqlite() }
}

async fn store(database: &TestDatabase) -> Store {
    let store = Store::connect(&database.url).await.expect("store");
    store.migrate().await.expect("migrate");
    store
}

/// The copy with its messages table grown to `messages` rows: every added row is the last sent one with a new
/// id and the next seq of its conversation.
fn multiplied(copy: &[u8], messages: u64) -> Vec<u8> {
    let text = std::str::from_utf8(copy).expect("UTF-8");
    let mut out = String::with_capacity(copy.len() + usize::try_from(messages).unwrap_or(0) * 400);
    let (mut columns, mut in_messages, mut template): (Vec<String>, bool, Option<Vec<Value>>) = (vec![], false, None);
    for line in text.lines() {
        let value: Value = serde_json::from_str(line).expect("JSON");
        if value.get("table").is_some() {
            in_messages = value["table"] == "messages";
            columns = serde_json::from_value(value["columns"].clone()).expect("columns");
        } else if in_messages && value.is_array() {
            template = Some(serde_json::from_value(value.clone()).expect("row"));
        } else if value.get("end") == Some(&json!("messages")) {
            let row = template.take().expect("a sent message");
            let at = |name: &str| columns.iter().position(|column| column == name).expect(name);
            let (id, seq, muid) = (at("id"), at("seq"), at("muid"));
            for n in u64::try_from(SENT).unwrap_or(0)..messages {
                let mut added = row.clone();
                added[id] = json!(format!("bench{n:012}"));
                added[seq] = json!(n + 1);
                added[muid] = Value::Null;
                out.push_str(&serde_json::to_string(&added).expect("row"));
                out.push('\n');
            }
            out.push_str(&json!({ "end": "messages", "rows": messages }).to_string());
            out.push('\n');
            continue;
        } else if value.get("done").is_some() {
            let mut trailer = value.clone();
            let sent = trailer["tables"]["messages"].as_u64().unwrap_or(0);
            trailer["tables"]["messages"] = json!(messages);
            trailer["rows"] = json!(trailer["rows"].as_u64().unwrap_or(0) - sent + messages);
            out.push_str(&trailer.to_string());
            out.push('\n');
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    out.into_bytes()
}

#[tokio::main]
async fn main() {
    let messages = env_number("BENCH_MESSAGES", 1_000_000);
    let source_database = database().await;
    let source = store(&source_database).await;
    let (alice, bob) = (Uid::parse("alice").unwrap(), Uid::parse("bob").unwrap());
    for uid in [&alice, &bob] {
        let user =
            NewUser { uid: uid.clone(), name: uid.to_string(), avatar: None, link: None, role: None, metadata: None };
        source.create_user(&user, 1_700_000_000_000).await.expect("user");
    }
    for n in 0..SENT {
        let message = NewMessage {
            conversation_id: ConversationId::direct(&alice, &bob),
            sender: alice.clone(),
            receiver: bob.to_string(),
            receiver_type: ReceiverType::User,
            category: Category::Message,
            message_type: "text".to_owned(),
            data: json!({ "text": format!("a message of a usual length, number {n}, with some words in it") }),
            muid: None,
            parent_id: None,
            tags: Vec::new(),
        };
        source.send_message(&message, 1_700_000_000_000 + n).await.expect("send");
    }
    let mut small = Vec::new();
    source.dump(&mut small, 1_700_000_001_000).await.expect("dump");
    let copy = multiplied(&small, messages);
    let mib = copy.len() as f64 / 1_048_576.0;
    let backend = if std::env::var_os("BENCH_MARIADB").is_some() { "MariaDB" } else { "SQLite" };

    let target_database = database().await;
    let target = store(&target_database).await;
    let started = Instant::now();
    let loaded = target.load(&mut copy.as_slice()).await.expect("load");
    let load_seconds = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let mut again = Vec::with_capacity(copy.len());
    let dumped = target.dump(&mut again, 1_700_000_002_000).await.expect("dump again");
    let dump_seconds = started.elapsed().as_secs_f64();
    assert_eq!(dumped.tables, loaded.tables, "the dump holds what was loaded");
    let rows = loaded.rows() as f64;
    println!("{backend}: a copy of {messages} messages, {} rows, {mib:.0} MiB", loaded.rows());
    println!("  load: {load_seconds:.1} s = {:.0} rows/s, {:.1} MiB/s", rows / load_seconds, mib / load_seconds);
    println!(
        "  dump: {dump_seconds:.1} s = {:.0} rows/s, {:.1} MiB/s",
        rows / dump_seconds,
        again.len() as f64 / 1_048_576.0 / dump_seconds
    );
    source_database.finish().await;
    target_database.finish().await;
}
