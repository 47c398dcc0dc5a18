//! One file per subcommand, each thin: it turns its arguments into domain values and hands the work to the
//! core (`deploy`, `render`, `sizing`, …) with one shared `Context` (folder, spec, Engine, printer, clock).
//! No command imports another, nor this dispatcher: what two share lives below them.

mod backup;
mod bench;
mod deploy;
mod destroy;
mod diff;
mod doctor;
mod images;
mod init;
mod playbook;
mod render;
mod scale;
mod sizing;
mod status;
mod upgrade;

use std::path::Path;

use anyhow::Result;

use crate::args::{Cli, Command, ImagesCommand, PlaybookCommand};
use crate::context::Context;
use crate::printer::Printer;

/// Runs the command; its exit code on success (0, or `doctor`'s verdict: 4 warn, 3 fail; `backup verify`: 3
/// when a part fails).
pub fn run(cli: Cli, printer: &Printer) -> Result<u8> {
    let here = Path::new(".");
    let context = |dir: &Path| Context::new(dir, printer);
    let done = match cli.command {
        Command::Doctor(args) => return doctor::run(&context(&args.folder.dir), &args),
        Command::Bench(args) => return bench::run(&context(&args.folder.dir), &args),
        Command::Backup(args) => return backup::run(&context(&args.folder.dir), &args),
        Command::Restore(args) => return backup::restore(&context(&args.folder.dir), &args),
        Command::Init(args) => init::run(&context(&args.folder.dir), &args),
        Command::Sizing(args) => sizing::run(&context(here), &args),
        Command::Render(args) => render::run(&context(&args.folder.dir), &args),
        Command::Status(args) => status::run(&context(&args.folder.dir)),
        Command::Diff(args) => diff::run(&context(&args.folder.dir), &args),
        Command::Deploy(args) => deploy::run(&context(&args.folder.dir), &args),
        Command::Upgrade(args) => upgrade::run(&context(&args.folder.dir), &args),
        Command::Scale(args) => scale::run(&context(&args.folder.dir), &args),
        Command::Playbook(PlaybookCommand::List(args)) => playbook::list(printer, &args),
        Command::Playbook(PlaybookCommand::Show(args)) => playbook::show(printer, &args),
        Command::Playbook(PlaybookCommand::Run(args)) => playbook::run(printer, &args),
        Command::Destroy(args) => destroy::run(&context(&args.folder.dir), &args),
        Command::Images(ImagesCommand::Build(args)) => images::build(&context(&args.folder.dir), &args),
        Command::Images(ImagesCommand::Save(args)) => images::save(&context(&args.folder.dir), &args),
        Command::Images(ImagesCommand::Load(args)) => images::load(&context(here), &args),
    };
    done.map(|()| crate::error::EXIT_OK)
}
