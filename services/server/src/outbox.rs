//! `comet-server outbox …`: what an operator does with the outbox's dead letters (docs/events.md). It connects
//! to the database of `COMET_DATABASE_URL` like every role and exits; the running relays need not stop.
//!
//! - `outbox dead-letters`: one JSON object per line and dead letter, oldest first: `id`, `type`, `key`, `time`,
//!   `attempts`, `deadAt`, `reason`, `dataBytes` (the data itself stays in the table: it may be megabytes).
//! - `outbox replay ID`: moves the dead letter back into the outbox, unpublished; the relay publishes it at its
//!   next round. Do it once the cause is fixed, or it is refused and dead-lettered again.
//! - `outbox worker-dead-letters WORKER`: the events the worker `WORKER` (`webhooks`, …) gave up on, one JSON
//!   object per line, the latest failure first: `id`, `type`, `key`, `time`, `attempts`, `failedAt`, `reason`,
//!   `dataBytes`.
//! - `outbox worker-replay WORKER ID`: hands that event back to that worker: the dead letter is replaced, in one
//!   transaction, by a `worker.replay` event in the outbox, which only that worker's group handles.

use anyhow::{Context as _, Result, bail};
use comet_model::{Event, Millis};
use comet_store::Store;
use serde_json::json;

use crate::config::Settings;

/// The most dead letters `dead-letters` lists.
const LIST_LIMIT: u32 = 1_000;

/// What `comet-server outbox` was asked to do, from the words after `outbox`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    List,
    Replay(String),
    WorkerList(String),
    WorkerReplay { worker: String, id: String },
}

impl Action {
    pub fn parse(words: &[String]) -> Result<Action> {
        match words {
            [list] if list == "dead-letters" => Ok(Action::List),
            [replay, id] if replay == "replay" => Ok(Action::Replay(id.clone())),
            [list, worker] if list == "worker-dead-letters" => Ok(Action::WorkerList(worker.clone())),
            [replay, worker, id] if replay == "worker-replay" => {
                Ok(Action::WorkerReplay { worker: worker.clone(), id: id.clone() })
            }
            _ => bail!(
                "usage: comet-server outbox dead-letters | outbox replay ID | outbox worker-dead-letters WORKER | \
                 outbox worker-replay WORKER ID (got `{}`)",
                words.join(" ")
            ),
        }
    }
}

pub async fn run(settings: &Settings, action: Action) -> Result<()> {
    let store = Store::connect(&settings.database_url()?).await.context("connecting to the database")?;
    match action {
        Action::List => {
            let dead = store.dead_letters(LIST_LIMIT).await.context("reading outbox_dead_letters")?;
            for letter in dead {
                let when = ("deadAt", letter.dead_at);
                print_line(&letter_line(&letter.event, i64::from(letter.attempts), when, &letter.reason));
            }
        }
        Action::Replay(id) => {
            if !store.replay_dead_letter(&id).await.context("replaying a dead letter")? {
                bail!("no dead letter {id} (`comet-server outbox dead-letters` lists them)");
            }
            print_line(&format!("{id} is back in the outbox: the relay publishes it at its next round"));
        }
        Action::WorkerList(worker) => {
            let dead = store.worker_dead_letters(&worker, LIST_LIMIT).await.context("reading worker_dead_letters")?;
            for letter in dead {
                let when = ("failedAt", letter.failed_at);
                print_line(&letter_line(&letter.event, letter.attempts, when, &letter.reason));
            }
        }
        Action::WorkerReplay { worker, id } => {
            let now = comet_model::now_millis();
            if !store.replay_worker_dead_letter(&worker, &id, now).await.context("replaying a dead letter")? {
                bail!("no dead letter {id} of worker {worker} (`comet-server outbox worker-dead-letters {worker}`)");
            }
            print_line(&format!("{id} goes back to the {worker} worker once the relay publishes its replay"));
        }
    }
    Ok(())
}

/// One dead letter as listed: the event without its data (which may be megabytes), and when and why it failed.
fn letter_line(event: &Event, attempts: i64, (when_name, when): (&str, Millis), reason: &str) -> String {
    let mut line = json!({
        "id": event.id,
        "type": event.event_type,
        "key": event.key,
        "time": event.time,
        "attempts": attempts,
        "reason": reason,
        "dataBytes": event.data.to_string().len(),
    });
    line[when_name] = json!(when);
    line.to_string()
}

/// The command's output, on stdout.
#[allow(clippy::print_stdout)]
fn print_line(line: &str) {
    println!("{line}");
}
