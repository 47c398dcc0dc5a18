//! cometctl: sizes, renders, deploys and operates a Comet in a Box chat platform.
//!
//! Data flows one way: `args` → `spec` → `sizing` → `render` → `manifest` → `plan` → `deploy` (through
//! `checks` and `engine`) → `printer`; `doctor` gathers facts and hands them to `checks`. `domain`, `spec`, `sizing`, `render`, `manifest`, `plan` and `image`
//! do no IO; `folder` owns the deployment folder on disk; only `engine` talks to the Docker Engine; only
//! `printer` writes to the terminal. See ARCHITECTURE.md.

pub mod args;
pub mod backup;
pub mod bench;
pub mod checks;
mod commands;
pub mod context;
pub mod deploy;
pub mod doctor;
pub mod domain;
pub mod engine;
pub mod env;
pub mod error;
pub mod folder;
pub mod image;
pub mod manifest;
pub mod plan;
pub mod playbook;
pub mod printer;
pub mod render;
pub mod scale;
mod secrets;
pub mod sizing;
pub mod spec;
mod tls;
pub mod yaml;

use std::process::ExitCode;

use clap::Parser;

/// Parses the process arguments, runs the command and maps the outcome to an exit code.
pub fn main_entry() -> ExitCode {
    let cli = args::Cli::parse();
    let printer = printer::Printer::new(&cli.global);
    match commands::run(cli, &printer) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            // A closed pipe (`cometctl sizing ... | head`) is not a failure.
            let broken_pipe = error
                .chain()
                .filter_map(|cause| cause.downcast_ref::<std::io::Error>())
                .any(|io| io.kind() == std::io::ErrorKind::BrokenPipe);
            if broken_pipe {
                return ExitCode::from(crate::error::EXIT_OK);
            }
            printer.error(&error);
            ExitCode::from(crate::error::exit_code(&error))
        }
    }
}
