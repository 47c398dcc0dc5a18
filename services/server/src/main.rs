//! comet-server: every Comet chat service in one binary, chosen by role.

mod admin;
mod config;
mod copy;
mod http;
mod keys;
mod outbox;
mod probe;
mod roles;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, ValueEnum};

#[derive(Debug, Parser)]
#[command(name = "comet-server", version, about = "Comet chat services in one binary, chosen by role")]
#[command(after_help = "Every setting is an environment variable COMET_* (see docs/configuration.md); \
secrets may be given as COMET_*_FILE. Exit codes: 0 clean stop; 1 failure; 2 invalid configuration.")]
struct Cli {
    /// What to run.
    #[arg(value_enum)]
    role: Role,
    /// A file of NAME=value lines presetting COMET_* settings; the environment wins.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// For `outbox`: `dead-letters` (list them) or `replay ID`; for `health`: an admin path to print; for
    /// `dump` and `load`: `documents` (MongoDB's copy).
    #[arg(value_name = "ACTION")]
    action: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    /// Every role in one process; with no store URLs, SQLite in the data folder and an in-process bus.
    All,
    /// The REST API.
    Api,
    /// Publishes the outbox to Kafka.
    Relay,
    /// The WebSocket gateway (`/v3/ws`): live delivery, presence, typing, receipts.
    Gateway,
    /// Delivers webhooks: reads events in the consumer group `comet-webhooks`, sends them to the registered
    /// endpoints, retries them from the database.
    Webhooks,
    /// Decides the messages asynchronous moderation rules hold: reads `message.pending` in the consumer group
    /// `comet-moderation`, asks the Custom API, commits the decision.
    Moderation,
    /// Pushes to recipients with no live socket: reads events in the consumer group `comet-notifications`,
    /// decides per recipient, sends through FCM, APNs or the webhook provider, retries from the database.
    Notifications,
    /// Applies the database schema and exits.
    Migrate,
    /// Exits 0 when this container's comet-server answers /ready (the container health check); `health
    /// /metrics` (or `/ready`, `/health`) also prints the admin port's answer (how `cometctl doctor` reads a
    /// role from inside its container).
    Health,
    /// Dead letters: `outbox dead-letters` lists the outbox's, `outbox replay ID` publishes one again;
    /// `outbox worker-dead-letters WORKER` lists a worker's, `outbox worker-replay WORKER ID` hands one back.
    Outbox,
    /// Writes a consistent copy of the database to stdout (docs/operations/backup.md); `dump documents`
    /// writes the copy of the MongoDB database (COMET_MONGODB_URL) instead.
    Dump,
    /// Loads a copy from stdin into an empty database and prints its summary (docs/operations/backup.md);
    /// `load documents` loads a documents copy into an empty MongoDB database.
    Load,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.role == Role::Health {
        return probe::run(&cli.action);
    }
    let settings = match config::Settings::load(cli.config.as_deref()) {
        Ok(settings) => settings,
        Err(error) => {
            telemetry::report_startup_error(&error);
            return ExitCode::from(2);
        }
    };
    let outbox_action = match (cli.role, cli.action.as_slice()) {
        (Role::Outbox, _) => outbox::Action::parse(&cli.action).map(Some),
        (_, []) => Ok(None),
        (Role::Dump | Role::Load, [documents]) if documents == copy::DOCUMENTS => Ok(None),
        (_, _) => Err(anyhow::anyhow!(
            "unexpected `{}`: only outbox takes more words, and dump and load the one word `documents`",
            cli.action.join(" ")
        )),
    };
    let checked = telemetry::init(&settings).and_then(|()| roles::check(cli.role, &settings)).and(outbox_action);
    let outbox_action = match checked {
        Ok(action) => action,
        Err(error) => {
            telemetry::report_startup_error(&error);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            telemetry::report_startup_error(&anyhow::Error::from(error));
            return ExitCode::from(1);
        }
    };
    let outcome = match (outbox_action, cli.role) {
        (Some(action), _) => runtime.block_on(outbox::run(&settings, action)),
        (None, Role::Dump) if cli.action.is_empty() => runtime.block_on(copy::dump(&settings)),
        (None, Role::Load) if cli.action.is_empty() => runtime.block_on(copy::load(&settings)),
        (None, Role::Dump) => runtime.block_on(copy::dump_documents(&settings)),
        (None, Role::Load) => runtime.block_on(copy::load_documents(&settings)),
        (None, role) => runtime.block_on(roles::run(role, settings)),
    };
    // Tasks cut by the shutdown deadline are dropped here; a blocking call still running does not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = format!("{error:#}"), "comet-server stopped on an error");
            ExitCode::from(1)
        }
    }
}
