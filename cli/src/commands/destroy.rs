//! `cometctl destroy`: removes what the Docker Engine runs for a deployment (found by its label): containers
//! and networks. Volumes hold the data and stay unless `--volumes` is given and confirmed (`--yes`, or the
//! deployment's name typed at the prompt).

use std::io::{BufRead as _, IsTerminal as _};

use anyhow::Result;

use crate::args::DestroyArgs;
use crate::engine::Engine;
use crate::folder::{DeploymentFolder, Refusal};
use crate::printer::{Change, FileChange, Printer};

/// Whether the operator confirmed removing the volumes.
fn confirmed(args: &DestroyArgs, deployment: &str, volumes: &[String], printer: &Printer) -> Result<bool> {
    if args.yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        return Err(Refusal(format!(
            "--volumes deletes the data of `{deployment}` ({} volumes) for good: add --yes to confirm when not at \
             a terminal",
            volumes.len()
        ))
        .into());
    }
    printer.warning(&format!(
        "--volumes deletes {} for good; type the deployment name `{deployment}` to confirm:",
        volumes.join(", ")
    ));
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == deployment)
}

pub fn run(args: &DestroyArgs, printer: &Printer) -> Result<()> {
    let spec = DeploymentFolder::new(&args.dir).read_spec()?;
    let deployment = spec.name.as_str();
    let engine = Engine::connect()?;
    let volumes = engine.volumes(deployment)?;
    // Ask before changing anything: a refused confirmation leaves the deployment running.
    let remove_volumes = args.volumes && !volumes.is_empty() && confirmed(args, deployment, &volumes, printer)?;
    if args.volumes && !volumes.is_empty() && !remove_volumes {
        return Err(Refusal("not confirmed: nothing was removed".to_owned()).into());
    }
    let mut changes = Vec::new();
    for name in engine.remove_containers(deployment)? {
        changes.push(FileChange { path: format!("container {name}"), change: Change::Removed });
    }
    for name in engine.networks(deployment)? {
        engine.remove_network(&name)?;
        changes.push(FileChange { path: format!("network {name}"), change: Change::Removed });
    }
    for name in &volumes {
        if remove_volumes {
            engine.remove_volume(name)?;
            changes.push(FileChange { path: format!("volume {name}"), change: Change::Removed });
        } else {
            changes.push(FileChange { path: format!("volume {name}"), change: Change::Kept });
        }
    }
    printer.changes(&format!("destroy {deployment}"), &changes)?;
    Ok(())
}
