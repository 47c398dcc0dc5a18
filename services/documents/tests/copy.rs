//! The documents copy (`comet-server dump documents` / `load documents`) against a real MongoDB-protocol server
//! (SecantusDB, ../shared/TESTBED.md): every BSON type the roles store comes back the same, a copy loads only
//! into an empty database, and a cut, altered or foreign copy is refused.

use comet_documents::bson::{Bson, DateTime, Document, doc, oid::ObjectId};
use comet_documents::{COPY_FORMAT, Documents};

async fn database() -> Documents {
    let url = comet_testkit::mongo_url();
    comet_testkit::require_mongo(&url);
    Documents::connect(&url, None, &comet_testkit::mongo_database()).await.expect("connecting to MongoDB")
}

async fn all(documents: &Documents, collection: &str) -> Vec<Document> {
    let mut cursor = documents.collection::<Document>(collection).find(doc! {}).await.expect("find");
    let mut found = Vec::new();
    while cursor.advance().await.expect("cursor") {
        found.push(cursor.deserialize_current().expect("document"));
    }
    found.sort_by_key(|document| document.get_str("_id").map(str::to_owned).unwrap_or_else(|_| format!("{document}")));
    found
}

async fn copy_of(documents: &Documents) -> Vec<u8> {
    let mut copy = Vec::new();
    documents.dump(&mut copy, 1_700_000_000_000).await.expect("dump");
    copy
}

#[tokio::test]
async fn a_copy_loads_into_an_empty_database_with_every_value_as_it_was() {
    let source = database().await;
    let rules: Vec<Document> = (0..1_200)
        .map(|n| doc! { "_id": format!("rule-{n:04}"), "revision": n, "enabled": n % 2 == 0, "score": 0.25 * f64::from(n) })
        .collect();
    source.collection::<Document>("moderation_rules").insert_many(rules).await.expect("insert rules");
    let webhook = doc! {
        "_id": "wh-1",
        "oid": ObjectId::new(),
        "createdAt": DateTime::from_millis(1_700_000_000_123),
        "big": 9_007_199_254_740_993_i64,
        "triggers": ["message_sent", "group_created"],
        "nested": { "b": 1, "a": Bson::Null, "bytes": Bson::Binary(comet_documents::bson::Binary { subtype: comet_documents::bson::spec::BinarySubtype::Generic, bytes: vec![0, 1, 255] }) },
    };
    source.collection::<Document>("webhooks").insert_one(webhook.clone()).await.expect("insert webhook");
    let copy = copy_of(&source).await;
    let text = String::from_utf8(copy.clone()).expect("UTF-8");
    let first: serde_json::Value = serde_json::from_str(text.lines().next().expect("header")).expect("JSON");
    assert_eq!(first["format"], COPY_FORMAT);
    let last: serde_json::Value = serde_json::from_str(text.lines().last().expect("trailer")).expect("JSON");
    assert_eq!(last["collections"], serde_json::json!({ "moderation_rules": 1_200, "webhooks": 1 }));

    let target = database().await;
    let summary = target.load(&mut copy.as_slice()).await.expect("load");
    assert_eq!(summary.documents(), 1_201);
    assert_eq!(all(&target, "moderation_rules").await, all(&source, "moderation_rules").await);
    assert_eq!(all(&target, "webhooks").await, vec![webhook], "types, order of fields and nesting kept");

    let again = target.load(&mut copy.as_slice()).await.expect_err("a second load");
    assert!(again.to_string().contains("already holds documents"), "{again}");
    source.drop_database().await.expect("drop");
    target.drop_database().await.expect("drop");
}

#[tokio::test]
async fn a_cut_altered_or_foreign_copy_is_refused() {
    let source = database().await;
    let items: Vec<Document> = (0..3).map(|n| doc! { "_id": n, "v": "x" }).collect();
    source.collection::<Document>("items").insert_many(items).await.expect("insert");
    let copy = String::from_utf8(copy_of(&source).await).expect("UTF-8");
    let lines: Vec<&str> = copy.lines().collect();

    let cut = lines[..lines.len() - 1].join("\n");
    let dropped_one = [&lines[..2], &lines[3..]].concat().join("\n");
    let foreign =
        ["{\"format\":\"mongodump\"}"].into_iter().chain(lines[1..].iter().copied()).collect::<Vec<_>>().join("\n");
    for (what, text, expected) in [
        ("cut before its trailer", cut, "ends before its last line"),
        ("a document removed", dropped_one, "differ"),
        ("another format", foreign, "not a comet-documents copy"),
        ("empty", String::new(), "empty"),
    ] {
        let target = database().await;
        let error = target.load(&mut text.as_bytes()).await.expect_err(what);
        assert!(error.to_string().contains(expected), "{what}: {error}");
        target.drop_database().await.expect("drop");
    }
    source.drop_database().await.expect("drop");
}
