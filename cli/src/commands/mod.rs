//! One file per subcommand, each thin: it turns its arguments into domain values and hands the work to the
//! core (`deploy`, `render`, `sizing`, …) with one shared `Context` (folder, spec, Engine, printer, clock).
//! No command imports another; what two share lives here or below.

mod deploy;
mod destroy;
mod diff;
mod images;
mod init;
mod render;
mod sizing;
mod status;
mod upgrade;

use std::path::Path;

use anyhow::{Context as _, Result};

use crate::args::{Cli, Command, ImagesCommand, SizingInputArgs};
use crate::context::Context;
use crate::error::Refusal;
use crate::printer::Printer;
use crate::sizing::{Plan, Profile, SizingRequest};

pub fn run(cli: Cli, printer: &Printer) -> Result<()> {
    let here = Path::new(".");
    let context = |dir: &Path| Context::new(dir, printer);
    match cli.command {
        Command::Init(args) => init::run(&context(&args.folder.dir), &args),
        Command::Sizing(args) => sizing::run(&context(here), &args),
        Command::Render(args) => render::run(&context(&args.folder.dir), &args),
        Command::Status(args) => status::run(&context(&args.folder.dir)),
        Command::Diff(args) => diff::run(&context(&args.folder.dir), &args),
        Command::Deploy(args) => deploy::run(&context(&args.folder.dir), &args),
        Command::Upgrade(args) => upgrade::run(&context(&args.folder.dir), &args),
        Command::Destroy(args) => destroy::run(&context(&args.folder.dir), &args),
        Command::Images(ImagesCommand::Build(args)) => images::build(&context(&args.folder.dir), &args),
        Command::Images(ImagesCommand::Save(args)) => images::save(&context(&args.folder.dir), &args),
        Command::Images(ImagesCommand::Load(args)) => images::load(&context(here), &args),
    }
}

/// Loads the profile and computes the plan `init` and `sizing` print.
fn plan_from(args: &SizingInputArgs) -> Result<Plan> {
    let profile = match &args.profile {
        None => Profile::embedded().context("the embedded sizing profile is broken (a build bug)")?,
        Some(path) => {
            let text = crate::folder::read_text(path)?;
            Profile::parse(&path.display().to_string(), &text).map_err(|error| Refusal(error.to_string()))?
        }
    };
    // Without --target, size for the target the plan itself recommends.
    let provisional = SizingRequest {
        mau: args.mau,
        concurrency: args.concurrency,
        target: args.target.unwrap_or(crate::domain::Target::Swarm),
        message_retention_days: args.retention_days,
    };
    let first = crate::sizing::plan(&profile, &provisional).map_err(|error| Refusal(error.to_string()))?;
    match args.target {
        Some(_) => Ok(first),
        None if first.recommended_target == provisional.target => Ok(first),
        None => {
            let request = SizingRequest { target: first.recommended_target, ..provisional };
            crate::sizing::plan(&profile, &request).map_err(|error| Refusal(error.to_string()).into())
        }
    }
}

/// The deploy target an argument names.
fn target_of(target: crate::args::DeployTarget) -> crate::domain::Target {
    match target {
        crate::args::DeployTarget::Compose => crate::domain::Target::Compose,
        crate::args::DeployTarget::Swarm => crate::domain::Target::Swarm,
    }
}
