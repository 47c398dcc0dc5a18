//! cometctl: sizes, renders, deploys and operates a Comet in a Box chat platform.
//!
//! Data flows one way: `args` → `spec` → `sizing` → `render` → (later `diff`) → `engine` → `printer`.
//! `domain`, `spec`, `sizing`, `render` and `image` do no IO; `folder` owns the deployment folder on disk;
//! only `engine` talks to the Docker Engine; only `printer` writes to the terminal. See ARCHITECTURE.md.

pub mod args;
mod commands;
pub mod compose;
pub mod deploy;
pub mod domain;
pub mod engine;
pub mod env;
pub mod folder;
pub mod image;
pub mod printer;
pub mod render;
mod secrets;
pub mod sizing;
pub mod spec;
pub mod stack;
pub mod swarm;
mod tls;
pub mod yaml;

use std::process::ExitCode;

use clap::Parser;

/// Exit code for success.
pub const EXIT_OK: u8 = 0;
/// Exit code for a failure of the environment (IO, permissions).
pub const EXIT_FAILURE: u8 = 1;
/// Exit code for invalid input: arguments, spec, or an action refused to protect existing state.
pub const EXIT_INVALID_INPUT: u8 = 2;

/// Exit code for a deploy or upgrade that stopped because a service did not become ready (what ran before
/// still runs; an upgrade has rolled back).
pub const EXIT_DEPLOY_FAILED: u8 = 3;

/// Parses the process arguments, runs the command and maps the outcome to an exit code.
pub fn main_entry() -> ExitCode {
    let cli = args::Cli::parse();
    let printer = printer::Printer::new(&cli.global);
    match commands::run(cli, &printer) {
        Ok(()) => ExitCode::from(EXIT_OK),
        Err(error) => {
            // A closed pipe (`cometctl sizing ... | head`) is not a failure.
            let broken_pipe = error
                .chain()
                .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
                .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if broken_pipe {
                return ExitCode::from(EXIT_OK);
            }
            printer.error(&error);
            if error.chain().any(|cause| cause.is::<commands::DeployFailed>()) {
                ExitCode::from(EXIT_DEPLOY_FAILED)
            } else if error.chain().any(|cause| cause.is::<folder::Refusal>()) {
                ExitCode::from(EXIT_INVALID_INPUT)
            } else {
                ExitCode::from(EXIT_FAILURE)
            }
        }
    }
}
