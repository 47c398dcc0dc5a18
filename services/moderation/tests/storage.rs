//! The two homes of moderation data hold to one contract: the relational store (SQLite, MariaDB) and MongoDB
//! (the SecantusDB server `bash .ci/services.sh` starts), each checked by the same scenario.
#![allow(clippy::unwrap_used)]

use comet_documents::Documents;
use comet_model::{Millis, now_millis};
use comet_moderation::{Action, Condition, ListKind, ListSpec, ModerationStore, MongoModeration, RuleSpec};
use comet_store::{AuditEntry, ReviewFilter, ReviewItem, ReviewQueue, ReviewStatus, Store, StoreError, UserReport};
use comet_testkit::TestDatabase;

async fn store_on(database: &TestDatabase) -> Store {
    let store = Store::connect(&database.url).await.expect("connecting");
    store.migrate().await.expect("migrate");
    store
}

fn rule(id: &str, action: Action) -> RuleSpec {
    RuleSpec {
        id: id.to_owned(),
        name: format!("{id} rule"),
        description: "what it is for".to_owned(),
        enabled: true,
        filters: Vec::new(),
        conditions: vec![Condition::Keywords { lists: vec!["words".to_owned()] }],
        action,
        sender_actions: Vec::new(),
    }
}

fn list(id: &str, entries: &[&str]) -> ListSpec {
    ListSpec {
        id: id.to_owned(),
        name: format!("{id} list"),
        description: String::new(),
        kind: ListKind::Keywords,
        entries: entries.iter().map(|entry| (*entry).to_owned()).collect(),
    }
}

fn item(id: &str, queue: ReviewQueue, message: &str, sender: &str, rule: Option<&str>, at: Millis) -> ReviewItem {
    ReviewItem {
        id: id.to_owned(),
        queue,
        message_id: message.to_owned(),
        conversation: "group_lobby".to_owned(),
        sender: sender.to_owned(),
        receiver_type: "group".to_owned(),
        receiver: "lobby".to_owned(),
        text: format!("original text of {message}"),
        masked: Some("masked ****".to_owned()),
        rule_id: rule.map(str::to_owned),
        status: ReviewStatus::Pending,
        created_at: at,
        reviewed_by: None,
        reviewed_at: None,
    }
}

/// Every operation of the interface, and what it must refuse.
async fn contract(store: &dyn ModerationStore) {
    let at = now_millis();
    let version = store.version().await.expect("version");

    // Rules: limits, conflicts, revisions.
    assert!(store.create_rule(&rule("b-profanity", Action::Block), "key-1", at, 2).await.expect("create"));
    assert!(store.create_rule(&rule("a-contacts", Action::Mask), "key-1", at, 2).await.expect("create"));
    assert!(
        matches!(
            store.create_rule(&rule("a-contacts", Action::Mask), "key-1", at, 3).await,
            Err(StoreError::Conflict(_))
        ),
        "a taken id is a conflict"
    );
    assert!(
        !store.create_rule(&rule("c-third", Action::Flag), "key-1", at, 2).await.expect("create"),
        "over the limit"
    );
    assert!(store.rule("c-third").await.expect("get").is_none(), "and nothing written");
    let ids: Vec<String> = store.rules().await.expect("rules").into_iter().map(|stored| stored.spec.id).collect();
    assert_eq!(ids, ["a-contacts", "b-profanity"], "by id");
    let read = store.rule("b-profanity").await.expect("get").expect("there");
    assert_eq!((read.spec.clone(), read.revision, read.created_at), (rule("b-profanity", Action::Block), 1, at));
    assert!(store.version().await.expect("version") > version, "a change bumps the version");

    let mut changed = rule("b-profanity", Action::Flag);
    changed.enabled = false;
    let before_update = store.version().await.expect("version");
    assert_eq!(store.update_rule(&changed, "key-2", at + 1).await.expect("update"), Some(2));
    assert_eq!(store.update_rule(&changed, "key-2", at + 2).await.expect("update"), Some(3));
    assert!(store.version().await.expect("version") > before_update);
    let read = store.rule("b-profanity").await.expect("get").expect("there");
    assert_eq!((read.spec, read.revision, read.updated_at), (changed.clone(), 3, at + 2));
    assert_eq!(store.update_rule(&rule("nope", Action::Flag), "key-2", at).await.expect("update"), None);

    assert!(store.delete_rule("b-profanity", "key-3", at + 3).await.expect("delete"));
    assert!(!store.delete_rule("b-profanity", "key-3", at + 3).await.expect("delete"), "deleting twice finds nothing");
    assert!(store.rule("b-profanity").await.expect("get").is_none());
    let revisions = store.revisions("b-profanity").await.expect("revisions");
    let summary: Vec<(i64, Option<Action>, &str, Millis)> = revisions
        .iter()
        .map(|revision| {
            (
                revision.revision,
                revision.rule.as_ref().map(|rule| rule.action),
                revision.changed_by.as_str(),
                revision.changed_at,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, Some(Action::Block), "key-1", at),
            (2, Some(Action::Flag), "key-2", at + 1),
            (3, Some(Action::Flag), "key-2", at + 2),
            (4, None, "key-3", at + 3)
        ],
        "every edit is a revision, the deletion too"
    );
    assert!(store.create_rule(&rule("b-profanity", Action::Block), "key-4", at + 4, 2).await.expect("made again"));
    assert_eq!(store.rule("b-profanity").await.expect("get").expect("there").revision, 5, "numbering goes on");
    assert_eq!(store.revisions("b-profanity").await.expect("revisions").len(), 5);

    // Lists.
    let big: Vec<String> = (0..5_000).map(|index| format!("word{index}")).collect();
    let mut large = list("words", &[]);
    large.entries = big;
    assert!(store.create_list(&large, at, 2).await.expect("create"));
    assert!(store.create_list(&list("other", &["x"]), at, 2).await.expect("create"));
    assert!(!store.create_list(&list("third", &["x"]), at, 2).await.expect("create"), "over the limit");
    assert!(matches!(store.create_list(&list("other", &["y"]), at, 5).await, Err(StoreError::Conflict(_))));
    assert_eq!(store.list("words").await.expect("get").expect("there").spec, large, "5,000 entries read back");
    let edited = list("other", &["y", "z"]);
    assert_eq!(store.update_list(&edited, at + 1).await.expect("update"), Some(2));
    assert_eq!(store.list("other").await.expect("get").expect("there").spec, edited);
    assert_eq!(store.update_list(&list("nope", &["y"]), at).await.expect("update"), None);
    let ids: Vec<String> = store.lists().await.expect("lists").into_iter().map(|stored| stored.spec.id).collect();
    assert_eq!(ids, ["other", "words"]);
    assert!(store.delete_list("other").await.expect("delete"));
    assert!(!store.delete_list("other").await.expect("delete"));

    // Review queues.
    let first = item("r1", ReviewQueue::Blocked, "m1", "alice", Some("b-profanity"), at);
    assert!(store.enqueue(&first).await.expect("enqueue"));
    assert!(
        !store.enqueue(&item("r1-again", ReviewQueue::Blocked, "m1", "alice", None, at)).await.expect("enqueue"),
        "a message is in a queue once"
    );
    assert!(store.enqueue(&item("r2", ReviewQueue::Flagged, "m1", "alice", None, at + 1)).await.expect("enqueue"));
    assert!(
        store
            .enqueue(&item("r3", ReviewQueue::Flagged, "m2", "bob", Some("a-contacts"), at + 2))
            .await
            .expect("enqueue")
    );
    assert_eq!(store.review_item("r1").await.expect("get"), Some(first.clone()), "read back field for field");
    let ids = |items: Vec<ReviewItem>| items.into_iter().map(|item| item.id).collect::<Vec<_>>();
    let all = ReviewFilter { limit: 10, ..ReviewFilter::default() };
    assert_eq!(ids(store.review_items(&all).await.expect("list")), ["r3", "r2", "r1"], "newest first");
    let flagged = ReviewFilter { queue: Some(ReviewQueue::Flagged), ..all.clone() };
    assert_eq!(ids(store.review_items(&flagged).await.expect("list")), ["r3", "r2"]);
    let by_rule = ReviewFilter { rule_id: Some("a-contacts".to_owned()), ..all.clone() };
    assert_eq!(ids(store.review_items(&by_rule).await.expect("list")), ["r3"]);
    let by_sender = ReviewFilter { sender: Some("alice".to_owned()), ..all.clone() };
    assert_eq!(ids(store.review_items(&by_sender).await.expect("list")), ["r2", "r1"]);
    let dated = ReviewFilter { since: Some(at + 1), until: Some(at + 1), ..all.clone() };
    assert_eq!(ids(store.review_items(&dated).await.expect("list")), ["r2"]);
    let page = ReviewFilter { before: Some(at + 2), limit: 1, ..all.clone() };
    assert_eq!(ids(store.review_items(&page).await.expect("list")), ["r2"], "a page after the newest");

    assert!(store.decide("r1", ReviewStatus::Approved, "mod-1", at + 10).await.expect("decide"));
    assert!(!store.decide("r1", ReviewStatus::Rejected, "mod-2", at + 11).await.expect("decide"), "decided once");
    assert!(!store.decide("nope", ReviewStatus::Rejected, "mod-2", at).await.expect("decide"));
    let decided = store.review_item("r1").await.expect("get").expect("there");
    assert_eq!(
        (decided.status, decided.reviewed_by.as_deref(), decided.reviewed_at),
        (ReviewStatus::Approved, Some("mod-1"), Some(at + 10))
    );
    let reviewed = ReviewFilter { reviewed: Some(true), ..all.clone() };
    assert_eq!(ids(store.review_items(&reviewed).await.expect("list")), ["r1"]);
    let pending = ReviewFilter { reviewed: Some(false), ..all.clone() };
    assert_eq!(ids(store.review_items(&pending).await.expect("list")), ["r3", "r2"]);

    // Reports.
    let report = |id: &str, reporter: &str, at: Millis| UserReport {
        id: id.to_owned(),
        message_id: "m2".to_owned(),
        reporter: reporter.to_owned(),
        reason_id: "spam".to_owned(),
        remark: Some("sells things".to_owned()),
        created_at: at,
    };
    store.add_report(&report("p1", "carol", at)).await.expect("report");
    store.add_report(&report("p2", "dave", at + 1)).await.expect("report");
    assert!(
        matches!(store.add_report(&report("p3", "carol", at + 2)).await, Err(StoreError::Conflict("report"))),
        "one report per user and message"
    );
    assert_eq!(
        store.reports_of("m2").await.expect("reports"),
        [report("p1", "carol", at), report("p2", "dave", at + 1)]
    );
    assert!(store.reports_of("m1").await.expect("reports").is_empty());

    // The audit log.
    let entry = |id: &str, at: Millis| AuditEntry {
        id: id.to_owned(),
        actor: "key-1".to_owned(),
        action: "review.approve".to_owned(),
        target_kind: "review".to_owned(),
        target_id: "r1".to_owned(),
        detail: r#"{"status":"approved"}"#.to_owned(),
        at,
    };
    for (index, offset) in [0, 1, 2].into_iter().enumerate() {
        store.append_audit(&entry(&format!("a{index}"), at + offset)).await.expect("audit");
    }
    assert_eq!(
        store.audit(None, 10).await.expect("audit"),
        [entry("a2", at + 2), entry("a1", at + 1), entry("a0", at)]
    );
    assert_eq!(store.audit(Some(at + 2), 1).await.expect("audit"), [entry("a1", at + 1)], "a page");
}

#[tokio::test]
async fn the_relational_store_keeps_the_contract_on_sqlite() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    contract(&store).await;
}

#[tokio::test]
async fn the_relational_store_keeps_the_contract_on_mariadb() {
    let database = TestDatabase::mariadb().await;
    let store = store_on(&database).await;
    contract(&store).await;
    database.finish().await;
}

#[tokio::test]
async fn mongodb_keeps_the_contract() {
    let url = comet_testkit::mongo_url();
    comet_testkit::require_mongo(&url);
    let documents =
        Documents::connect(&url, None, &comet_testkit::mongo_database()).await.expect("connecting to MongoDB");
    let moderation = MongoModeration::new(&documents).await.expect("indexes");
    contract(&moderation).await;
    MongoModeration::new(&documents).await.expect("making the indexes again changes nothing");
    documents.drop_database().await.expect("dropping the test database");
}
