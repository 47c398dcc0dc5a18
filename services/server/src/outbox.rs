//! `comet-server outbox …`: what an operator does with the outbox's dead letters (docs/events.md). It connects
//! to the database of `COMET_DATABASE_URL` like every role and exits; the running relays need not stop.
//!
//! - `outbox dead-letters`: one JSON object per line and dead letter, oldest first: `id`, `type`, `key`, `time`,
//!   `attempts`, `deadAt`, `reason`, `dataBytes` (the data itself stays in the table: it may be megabytes).
//! - `outbox replay ID`: moves the dead letter back into the outbox, unpublished; the relay publishes it at its
//!   next round. Do it once the cause is fixed, or it is refused and dead-lettered again.

use anyhow::{Context as _, Result, bail};
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
}

impl Action {
    pub fn parse(words: &[String]) -> Result<Action> {
        match words {
            [list] if list == "dead-letters" => Ok(Action::List),
            [replay, id] if replay == "replay" => Ok(Action::Replay(id.clone())),
            _ => bail!(
                "usage: comet-server outbox dead-letters | comet-server outbox replay ID (got `{}`)",
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
                let line = json!({
                    "id": letter.event.id,
                    "type": letter.event.event_type,
                    "key": letter.event.key,
                    "time": letter.event.time,
                    "attempts": letter.attempts,
                    "deadAt": letter.dead_at,
                    "reason": letter.reason,
                    "dataBytes": letter.event.data.to_string().len(),
                });
                print_line(&line.to_string());
            }
        }
        Action::Replay(id) => {
            if !store.replay_dead_letter(&id).await.context("replaying a dead letter")? {
                bail!("no dead letter {id} (`comet-server outbox dead-letters` lists them)");
            }
            print_line(&format!("{id} is back in the outbox: the relay publishes it at its next round"));
        }
    }
    Ok(())
}

/// The command's output, on stdout.
#[allow(clippy::print_stdout)]
fn print_line(line: &str) {
    println!("{line}");
}
