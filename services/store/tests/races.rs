//! Issue #17, item 3: the rules of a change (blocks, membership, scope) are decided inside its transaction,
//! under the conversation's lock. Each race holds that lock in a transaction of its own, commits a block, a kick
//! or a demotion in it while the change waits for the lock, and then lets the change through: the change must
//! see what committed first and be refused. Before the fix these changes were checked by the API before their
//! transaction began, so each of them slipped through.

use std::time::{Duration, Instant};

use comet_model::{ConversationId, MessageEdit, Scope};
use comet_store::{Refusal, StoreError};
use sqlx::{AnyConnection, AssertSqlSafe, Connection, Executor};

use crate::support::{T0, TestDb, create_group, direct_text, group_text, guid, new_user, uid};

/// On MariaDB: takes `conversation`'s lock in a transaction of its own, runs `change_sql` in it, starts
/// `contender`, waits until the contender waits for a lock, and commits. Returns what the contender ended with.
async fn race<T: Send + 'static>(
    db: &TestDb,
    conversation: &ConversationId,
    change_sql: &[String],
    contender: impl std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
) -> Result<T, StoreError> {
    let mut holder = db.raw().await;
    holder.execute("BEGIN").await.expect("begin");
    holder
        .execute(AssertSqlSafe(format!(
            "SELECT last_seq FROM conversations WHERE conversation_id = '{}' FOR UPDATE",
            conversation.key()
        )))
        .await
        .expect("the conversation's lock");
    for sql in change_sql {
        holder.execute(AssertSqlSafe(sql.clone())).await.expect("the competing change");
    }
    let contender = tokio::spawn(contender);
    wait_for_a_lock_wait(db, &contender).await;
    holder.execute("COMMIT").await.expect("commit");
    holder.close().await.expect("close");
    contender.await.expect("the contender finished")
}

/// Waits until the contender waits for the conversation's lock (queued behind the holder).
async fn wait_for_a_lock_wait<T>(db: &TestDb, contender: &tokio::task::JoinHandle<T>) {
    let database = db.url.rsplit('/').next().unwrap_or_default().to_owned();
    let mut watcher: AnyConnection = db.raw().await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        // The contender's statement that takes the conversation's lock, executing while the holder has it:
        // it waits for the holder (InnoDB's own lock-wait tables name threads by another id on MariaDB).
        let waiting: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = ? AND COMMAND IN ('Execute', 'Query') \
             AND (INFO LIKE 'UPDATE conversations SET last_seq%' \
                  OR INFO LIKE 'SELECT last_seq FROM conversations WHERE conversation_id = ?%')",
        )
        .bind(database.as_str())
        .fetch_one(&mut watcher)
        .await
        .expect("reading the lock waits");
        if waiting > 0 {
            break;
        }
        assert!(!contender.is_finished(), "the contender finished without waiting for the conversation's lock");
        assert!(Instant::now() < deadline, "the contender never waited for the conversation's lock");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    watcher.close().await.expect("close");
}

async fn users(db: &TestDb, names: &[&str]) {
    for name in names {
        db.store.create_user(&new_user(name, name), T0).await.expect("user");
    }
}

#[track_caller]
fn refused<T: std::fmt::Debug>(outcome: Result<T, StoreError>, expected: Refusal) {
    match outcome {
        Err(StoreError::Refused(refusal)) => assert_eq!(refusal, expected),
        other => panic!("expected a refusal ({expected:?}), got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_waiting_on_the_conversation_sees_a_block_that_committed_first() {
    let db = TestDb::mariadb().await;
    users(&db, &["alice", "bob"]).await;
    db.store.send_message(&direct_text("alice", "bob", "before", None), T0).await.expect("first message");
    let store = db.store.clone();
    // With a muid the send reads before it waits: its plain reads' snapshot predates the block.
    let send = async move { store.send_message(&direct_text("alice", "bob", "after", Some("m-2")), T0 + 1).await };
    let block = format!("INSERT INTO blocked_users (blocker, blocked, created_at) VALUES ('bob', 'alice', {T0})");
    refused(race(&db, &ConversationId::direct(&uid("alice"), &uid("bob")), &[block], send).await, Refusal::Blocked);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_changes_waiting_on_the_conversation_see_a_kick_that_committed_first() {
    let db = TestDb::mariadb().await;
    users(&db, &["alice", "bob"]).await;
    create_group(&db, "g", &["bob"]).await;
    let (first, _) = db.store.send_message(&group_text("bob", "g", "before", None), T0).await.expect("first");
    let conversation = ConversationId::group(&guid("g"));
    let kick = vec!["DELETE FROM group_members WHERE guid = 'g' AND uid = 'bob'".to_owned()];
    let rejoin = || async {
        let member = comet_model::NewMember { uid: uid("bob"), scope: Scope::Participant };
        db.store.add_members(&guid("g"), &[member], T0).await.expect("bob is back");
    };

    let store = db.store.clone();
    let send = async move { store.send_message(&group_text("bob", "g", "after", None), T0 + 1).await };
    refused(race(&db, &conversation, &kick, send).await, Refusal::NotAMember);

    rejoin().await;
    let (store, id) = (db.store.clone(), first.id.clone());
    let react = async move { store.add_reaction(&id, &uid("bob"), "eyes", T0 + 2).await };
    refused(race(&db, &conversation, &kick, react).await, Refusal::NotAMember);

    rejoin().await;
    let store = db.store.clone();
    let mark = async move {
        store
            .mark_conversation(
                &ConversationId::group(&guid("g")),
                &uid("bob"),
                comet_store::ReceiptKind::Read,
                None,
                T0 + 3,
            )
            .await
    };
    refused(race(&db, &conversation, &kick, mark).await, Refusal::NotAMember);
    db.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_waiting_on_the_conversation_sees_a_demotion_that_committed_first() {
    let db = TestDb::mariadb().await;
    users(&db, &["alice", "bob", "carol"]).await;
    create_group(&db, "g", &["bob", "carol"]).await;
    db.store.change_scope(&guid("g"), &uid("carol"), Scope::Moderator, T0).await.expect("carol moderates");
    let (message, _) = db.store.send_message(&group_text("bob", "g", "hi", None), T0).await.expect("bob posts");
    let demote = vec!["UPDATE group_members SET scope = 'participant' WHERE guid = 'g' AND uid = 'carol'".to_owned()];
    let store = db.store.clone();
    let edit = async move {
        let edit = MessageEdit { data: Some(serde_json::json!({"text": "moderated"})), tags: None };
        store.edit_message(&message.id, &edit, Some(&uid("carol")), T0 + 1).await
    };
    refused(race(&db, &ConversationId::group(&guid("g")), &demote, edit).await, Refusal::NotAllowed);
    db.finish().await;
}

/// Without a race, on both backends: the store itself refuses what the rules refuse.
async fn the_store_refuses_what_the_rules_refuse(db: &TestDb) {
    users(db, &["alice", "bob", "carol"]).await;
    db.store.block_users(&uid("bob"), &[uid("alice")], T0).await.expect("block");
    refused(db.store.send_message(&direct_text("alice", "bob", "hi", None), T0).await, Refusal::Blocked);
    refused(db.store.send_message(&direct_text("bob", "alice", "hi", None), T0).await, Refusal::Blocked);
    create_group(db, "g", &["bob"]).await;
    refused(db.store.send_message(&group_text("carol", "g", "hi", None), T0).await, Refusal::NotAMember);
    let (message, _) = db.store.send_message(&group_text("bob", "g", "hi", None), T0).await.expect("bob posts");
    refused(db.store.add_reaction(&message.id, &uid("carol"), "eyes", T0).await, Refusal::NotAMember);
    let edit = MessageEdit { data: Some(serde_json::json!({"text": "x"})), tags: None };
    refused(db.store.edit_message(&message.id, &edit, Some(&uid("carol")), T0).await, Refusal::NotAllowed);
    refused(db.store.delete_message(&message.id, Some(&uid("carol")), T0).await, Refusal::NotAllowed);
    let conversation = ConversationId::group(&guid("g"));
    refused(
        db.store.mark_conversation(&conversation, &uid("carol"), comet_store::ReceiptKind::Read, None, T0).await,
        Refusal::NotAMember,
    );
    // The app, the sender and the owner (an admin) may change it.
    db.store.edit_message(&message.id, &edit, None, T0).await.expect("the app edits");
    db.store.edit_message(&message.id, &edit, Some(&uid("bob")), T0).await.expect("the sender edits");
    db.store.delete_message(&message.id, Some(&uid("alice")), T0).await.expect("the owner deletes");
}

/// Two first messages at once, in both directions, create one conversation with seqs 1 and 2.
async fn two_first_messages_at_once_make_one_conversation(db: &TestDb) {
    users(db, &["alice", "bob"]).await;
    for round in 0..5 {
        let (alice, bob) = (format!("a{round}"), format!("b{round}"));
        users(db, &[alice.as_str(), bob.as_str()]).await;
        let (one_way, other_way) =
            (direct_text(&alice, &bob, "one way", None), direct_text(&bob, &alice, "back", None));
        let (first, second) = tokio::join!(db.store.send_message(&one_way, T0), db.store.send_message(&other_way, T0));
        let mut seqs = [first.expect("first").0.seq, second.expect("second").0.seq];
        seqs.sort_unstable();
        assert_eq!(seqs, [1, 2], "round {round}");
    }
}

on_both_backends!(the_store_refuses_what_the_rules_refuse, two_first_messages_at_once_make_one_conversation);
