//! Group commit of sends on SQLite: one writer task commits the sends waiting for it together.
//!
//! SQLite has one writer and syncs its log on every commit, so one transaction per send makes every send wait
//! for the sends queued before it, each with its own sync. Here [`Store::send_message`] hands the send to the
//! store's writer task and waits for its answer. The task takes every send waiting (up to [`BATCH`]) and runs
//! them in ONE transaction, each inside its own savepoint, then commits once:
//!
//! - a send the rules refuse, or that fails, is rolled back to its savepoint alone and answered with its error;
//!   the others of the batch go on;
//! - a send is answered only after the commit that holds it: an answered send is on disk, as before;
//! - a commit that fails answers every send of the batch with that error (none of them is stored);
//! - sends are taken in the order they arrived, so the seqs of a conversation follow that order;
//! - a retry with the `muid` of a send earlier in the same batch sees it (same transaction) and gets it back.
//!
//! A send waiting alone is committed at once: the batch is whatever queued up during the previous commit, so
//! nothing waits for a batch to fill.

use comet_model::{Message, Millis, NewMessage, ReceiverType, new_id};
use sqlx::{Any, AnyPool, Transaction};
use tokio::sync::{mpsc, oneshot};

use super::row::message_by_muid;
use super::send::{Committed, commit_to_conversation};
use crate::{Backend, StoreError};

/// The most sends one transaction commits.
const BATCH: usize = 256;

/// Sends waiting for the writer; beyond it a sender waits to queue (back-pressure, not an error).
const QUEUE: usize = 4_096;

/// A send waiting for the writer task, and where its answer goes.
struct Job {
    message: NewMessage,
    now: Millis,
    answer: oneshot::Sender<Result<(Message, bool), StoreError>>,
}

/// The sending side of the writer task; the task ends when every clone of its store is dropped.
#[derive(Clone, Debug)]
pub(crate) struct SendQueue {
    jobs: mpsc::Sender<Job>,
}

impl SendQueue {
    /// Starts the writer task on `pool` (the one writer connection); `committed` is woken after each commit.
    pub(crate) fn start(pool: AnyPool, committed: std::sync::Arc<tokio::sync::Notify>) -> SendQueue {
        let (jobs, queued) = mpsc::channel(QUEUE);
        tokio::spawn(write(pool, committed, queued));
        SendQueue { jobs }
    }

    /// Sends `message` through the writer task and waits for the commit that holds it.
    pub(crate) async fn send(&self, message: &NewMessage, now: Millis) -> Result<(Message, bool), StoreError> {
        let (answer, answered) = oneshot::channel();
        let job = Job { message: message.clone(), now, answer };
        self.jobs.send(job).await.map_err(|_| writer_gone())?;
        answered.await.map_err(|_| writer_gone())?
    }
}

fn writer_gone() -> StoreError {
    StoreError::Database(sqlx::Error::PoolClosed)
}

/// The writer task: a batch at a time, until every sender is gone.
async fn write(pool: AnyPool, committed: std::sync::Arc<tokio::sync::Notify>, mut queued: mpsc::Receiver<Job>) {
    let mut jobs = Vec::with_capacity(BATCH);
    while queued.recv_many(&mut jobs, BATCH).await > 0 {
        let batch: Vec<Job> = std::mem::take(&mut jobs);
        match commit_batch(&pool, &batch).await {
            Ok(outcomes) => {
                committed.notify_one();
                for (job, outcome) in batch.into_iter().zip(outcomes) {
                    let _ = job.answer.send(outcome);
                }
            }
            Err(error) => {
                tracing::warn!(sends = batch.len(), %error, "a batch of sends failed to commit; none of them is stored");
                let reason = error.to_string();
                for job in batch {
                    let _ = job.answer.send(Err(StoreError::Database(sqlx::Error::Protocol(reason.clone()))));
                }
            }
        }
    }
}

/// Runs every send of `batch` in one transaction, each in its own savepoint, and commits. `Ok` holds each
/// send's own outcome, in order; `Err` means nothing was committed.
async fn commit_batch(pool: &AnyPool, batch: &[Job]) -> Result<Vec<Result<(Message, bool), StoreError>>, sqlx::Error> {
    let mut transaction = pool.begin_with("BEGIN IMMEDIATE").await?;
    let mut outcomes = Vec::with_capacity(batch.len());
    for job in batch {
        sqlx::query("SAVEPOINT send").execute(&mut *transaction).await?;
        let outcome = send_in(&mut transaction, &job.message, job.now).await;
        let keep = matches!(outcome, Ok((_, true)));
        if !keep {
            sqlx::query("ROLLBACK TO send").execute(&mut *transaction).await?;
        }
        sqlx::query("RELEASE send").execute(&mut *transaction).await?;
        outcomes.push(outcome);
    }
    transaction.commit().await?;
    Ok(outcomes)
}

/// One send inside the batch's transaction: the earlier message with its `muid`, or the next seq of its
/// conversation (creating the conversation's row first when it has none: this transaction holds the database's
/// one write lock, so nobody can create it meanwhile).
async fn send_in(
    transaction: &mut Transaction<'static, Any>,
    new_message: &NewMessage,
    now: Millis,
) -> Result<(Message, bool), StoreError> {
    if let Some(muid) = &new_message.muid
        && let Some(existing) = message_by_muid(transaction, &new_message.sender, muid).await?
    {
        return Ok((existing, false));
    }
    let id = new_id();
    for _ in 0..2 {
        match commit_to_conversation(transaction, Backend::Sqlite, new_message, id.clone(), now).await? {
            Committed::Sent(message) => return Ok((*message, true)),
            Committed::NoConversation => {
                let guid = (new_message.receiver_type == ReceiverType::Group).then_some(new_message.receiver.as_str());
                sqlx::query("INSERT INTO conversations (conversation_id, last_seq, guid) VALUES (?, 0, ?)")
                    .bind(new_message.conversation_id.key())
                    .bind(guid)
                    .execute(&mut **transaction)
                    .await?;
            }
            Committed::Refused(refusal) => return Err(StoreError::Refused(refusal)),
            Committed::Retry(error) | Committed::Duplicate(error) => return Err(error.into()),
        }
    }
    Err(StoreError::NotFound("conversation"))
}
