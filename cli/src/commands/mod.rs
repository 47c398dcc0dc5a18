//! One file per subcommand. Each turns its arguments into domain values, calls the pure core, and hands
//! IO to `folder` and output to `printer`.

mod deploy;
mod destroy;
mod images;
mod init;
mod render;
mod sizing;
mod status;
mod swarm;
mod upgrade;

use anyhow::Result;

pub use deploy::DeployFailed;

use crate::args::{Cli, Command, ImagesCommand};
use crate::printer::Printer;

pub fn run(cli: Cli, printer: &Printer) -> Result<()> {
    match cli.command {
        Command::Init(args) => init::run(&args, printer),
        Command::Sizing(args) => sizing::run(&args, printer),
        Command::Render(args) => render::run(&args, printer),
        Command::Status(args) => status::run(&args, printer),
        Command::Diff(args) => deploy::diff(&args, printer),
        Command::Deploy(args) => deploy::run(&args, printer),
        Command::Upgrade(args) => upgrade::run(&args, printer),
        Command::Destroy(args) => destroy::run(&args, printer),
        Command::Images(ImagesCommand::Build(args)) => images::build(&args, printer),
        Command::Images(ImagesCommand::Save(args)) => images::save(&args, printer),
        Command::Images(ImagesCommand::Load(args)) => images::load(&args, printer),
    }
}
