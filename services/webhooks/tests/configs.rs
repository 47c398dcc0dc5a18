//! The two homes of webhook configurations hold to one contract: the relational store (SQLite, MariaDB) and
//! MongoDB (the SecantusDB server `bash .ci/services.sh` starts), each checked by the same scenario.

use std::sync::Arc;

use comet_documents::Documents;
use comet_model::{EventType, Millis, now_millis};
use comet_store::{Delivery, DeliveryState, Store, StoreError, WebhookRecord};
use comet_testkit::TestDatabase;
use comet_webhooks::{MongoWebhookConfigs, WebhookConfigs};

async fn store_on(database: &TestDatabase) -> Store {
    let store = Store::connect(&database.url).await.expect("connecting");
    store.migrate().await.expect("migrate");
    store
}

async fn mongo(store: &Store) -> (Documents, Arc<dyn WebhookConfigs>) {
    let url = comet_testkit::mongo_url();
    comet_testkit::require_mongo(&url);
    let documents =
        Documents::connect(&url, None, &comet_testkit::mongo_database()).await.expect("connecting to MongoDB");
    let configs: Arc<dyn WebhookConfigs> = Arc::new(MongoWebhookConfigs::new(&documents, store.clone()));
    (documents, configs)
}

fn webhook(id: &str, at: Millis) -> WebhookRecord {
    WebhookRecord::new(
        id.to_owned(),
        format!("{id} hook"),
        format!("https://hooks.example.com/{id}"),
        vec!["group_created".to_owned(), "message_sent".to_owned()],
        format!("whsec_{id}"),
        at,
    )
}

fn delivery(webhook_id: &str, at: Millis) -> Delivery {
    Delivery {
        id: format!("event1_{webhook_id}"),
        webhook_id: webhook_id.to_owned(),
        event_id: "event1".to_owned(),
        trigger: "message_sent".to_owned(),
        payload: "{}".to_owned(),
        state: DeliveryState::Pending,
        attempts: 0,
        round_attempts: 0,
        next_attempt_at: at,
        created_at: at,
        finished_at: None,
        last_status: None,
        last_error: None,
    }
}

/// Every operation of the interface, and what it must refuse, against `configs` (deliveries in `store`).
async fn contract(store: &Store, configs: &dyn WebhookConfigs) {
    let at = now_millis();
    assert!(configs.create(&webhook("b-orders", at), 3).await.expect("create"));
    assert!(configs.create(&webhook("a-audit", at), 3).await.expect("create"));
    assert!(
        matches!(configs.create(&webhook("a-audit", at), 3).await, Err(StoreError::Conflict("webhook"))),
        "a second webhook with a taken id is a conflict"
    );
    assert!(configs.create(&webhook("c-third", at), 3).await.expect("create"));
    assert!(!configs.create(&webhook("d-fourth", at), 3).await.expect("create"), "over the limit: refused");
    assert!(configs.get("d-fourth").await.expect("get").is_none(), "and nothing written");

    let ids: Vec<String> = configs.list().await.expect("list").into_iter().map(|webhook| webhook.id).collect();
    assert_eq!(ids, ["a-audit", "b-orders", "c-third"], "by id");
    let read = configs.get("b-orders").await.expect("get").expect("there");
    assert_eq!(read, webhook("b-orders", at), "read back field for field");
    assert!(configs.get("nope").await.expect("get").is_none());

    let mut changed = read.clone();
    changed.name = "Orders".to_owned();
    changed.url = "https://hooks.example.com/v2".to_owned();
    changed.use_basic_auth = true;
    changed.username = Some("user".to_owned());
    changed.password = Some("pass".to_owned());
    changed.triggers = vec!["message_sent".to_owned()];
    changed.updated_at = at + 1;
    assert!(configs.save(&changed).await.expect("save"));
    assert_eq!(configs.get("b-orders").await.expect("get").as_ref(), Some(&changed));
    assert!(!configs.save(&webhook("nope", at)).await.expect("save"), "saving an unknown webhook changes nothing");

    assert!(configs.rotate("b-orders", "whsec_new", at + 60_000, at + 2).await.expect("rotate"));
    let rotated = configs.get("b-orders").await.expect("get").expect("there");
    assert_eq!(
        (rotated.secret.as_str(), rotated.previous_secret.as_deref(), rotated.previous_until),
        ("whsec_new", Some("whsec_b-orders"), Some(at + 60_000)),
        "the old secret signs beside the new one until the end of the overlap"
    );
    assert!(!configs.rotate("nope", "whsec_x", at, at).await.expect("rotate"));

    assert_eq!(configs.note_attempt("b-orders", false, at + 10).await.expect("note"), Some(at + 10));
    assert_eq!(
        configs.note_attempt("b-orders", false, at + 20).await.expect("note"),
        Some(at + 10),
        "the first failure"
    );
    assert_eq!(configs.note_attempt("b-orders", true, at + 30).await.expect("note"), None, "a delivery clears it");
    assert_eq!(configs.note_attempt("nope", false, at).await.expect("note"), None);

    assert!(configs.disable("b-orders", "every delivery failed", at + 40).await.expect("disable"));
    assert!(!configs.disable("b-orders", "again", at + 50).await.expect("disable"), "only an enabled one");
    let disabled = configs.get("b-orders").await.expect("get").expect("there");
    assert!(!disabled.enabled);
    assert_eq!(disabled.disabled_reason.as_deref(), Some("every delivery failed"));
    let events = store.unpublished_events(100).await.expect("outbox");
    let emitted: Vec<_> = events.iter().filter(|event| event.event_type == EventType::WebhookDisabled).collect();
    assert_eq!(emitted.len(), 1, "one webhook.disabled event");
    assert_eq!(emitted[0].data["id"], "b-orders");

    assert!(store.enqueue_webhook_delivery(&delivery("c-third", at)).await.expect("enqueue"));
    assert_eq!(store.webhook_deliveries("c-third", Default::default(), 10).await.expect("read").len(), 1);
    assert!(configs.delete("c-third").await.expect("delete"));
    assert!(!configs.delete("c-third").await.expect("delete"), "deleting twice finds nothing");
    assert!(configs.get("c-third").await.expect("get").is_none());
    assert!(
        store.webhook_deliveries("c-third", Default::default(), 10).await.expect("read").is_empty(),
        "the deliveries owed to a deleted webhook go with it"
    );
}

#[tokio::test]
async fn the_relational_store_keeps_the_contract_on_sqlite() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    contract(&store, &store).await;
}

#[tokio::test]
async fn the_relational_store_keeps_the_contract_on_mariadb() {
    let database = TestDatabase::mariadb().await;
    let store = store_on(&database).await;
    contract(&store, &store).await;
    database.finish().await;
}

#[tokio::test]
async fn mongodb_keeps_the_contract() {
    let database = TestDatabase::sqlite();
    let store = store_on(&database).await;
    let (documents, configs) = mongo(&store).await;
    contract(&store, configs.as_ref()).await;
    assert!(store.list_webhooks().await.expect("list").is_empty(), "nothing went to the relational table");
    documents.drop_database().await.expect("dropping the test database");
}

/// The batched writes: an event's deliveries in one transaction (those made before are skipped), and several
/// attempts with their next states in one transaction.
async fn batched_writes(store: &Store) {
    use comet_store::{AttemptResult, DeliveryAttempt};
    let at = now_millis();
    let first = [delivery("w-one", at), delivery("w-two", at)];
    assert_eq!(store.enqueue_webhook_deliveries(&first).await.expect("enqueue"), 2);
    let again = [delivery("w-two", at), delivery("w-three", at)];
    assert_eq!(store.enqueue_webhook_deliveries(&again).await.expect("enqueue"), 1, "w-two existed");
    assert_eq!(store.enqueue_webhook_deliveries(&[]).await.expect("enqueue nothing"), 0);
    let attempt = |id: &str, status: i64| DeliveryAttempt {
        delivery_id: format!("event1_{id}"),
        attempt: 1,
        attempted_at: at + 5,
        status: Some(status),
        latency_ms: 3,
        response: None,
        error: None,
    };
    let batch = [
        (attempt("w-one", 200), AttemptResult::Delivered),
        (attempt("w-two", 500), AttemptResult::RetryAt(at + 5_000)),
        (attempt("w-three", 500), AttemptResult::Failed),
    ];
    store.record_webhook_attempts(&batch).await.expect("record");
    for (id, state, next) in [
        ("w-one", DeliveryState::Delivered, at + 5),
        ("w-two", DeliveryState::Pending, at + 5_000),
        ("w-three", DeliveryState::Failed, at + 5),
    ] {
        let (delivery, attempts) =
            store.webhook_delivery(id, &format!("event1_{id}")).await.expect("read").expect("there");
        assert_eq!((delivery.state, delivery.attempts, delivery.next_attempt_at), (state, 1, next), "{id}");
        assert_eq!(attempts.len(), 1, "{id}: one attempt row");
    }
}

#[tokio::test]
async fn batched_delivery_writes_on_sqlite_and_mariadb() {
    let sqlite = TestDatabase::sqlite();
    batched_writes(&store_on(&sqlite).await).await;
    let mariadb = TestDatabase::mariadb().await;
    batched_writes(&store_on(&mariadb).await).await;
    mariadb.finish().await;
}
