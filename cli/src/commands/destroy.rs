//! `cometctl destroy`: removes what the Docker Engine runs for a deployment (found by its label): containers,
//! Swarm services and networks. Volumes hold the data and stay unless `--volumes` is given; Swarm secrets and
//! configs stay unless `--secrets` is given; each is confirmed (`--yes`, or the deployment's name typed at the
//! prompt). Whatever target made them, everything labelled with the deployment goes, so destroy asks no
//! backend which one the deployment has.

use anyhow::Result;

use crate::args::DestroyArgs;
use crate::context::Context;
use crate::deploy::{self, Keep};
use crate::error::Refusal;
use crate::plan::observed::ObjectKind;
use crate::printer::{Confirmation, Printer};

/// Whether the operator confirmed deleting `names` (`what`: "the data", "the secrets and configs") for good.
fn confirmed(
    args: &DestroyArgs,
    flag: &str,
    what: &str,
    deployment: &str,
    names: &[String],
    printer: &Printer,
) -> Result<bool> {
    if args.yes {
        return Ok(true);
    }
    let question = format!("{flag} deletes {} for good", names.join(", "));
    match printer.confirm(&question, deployment)? {
        Confirmation::Confirmed => Ok(true),
        Confirmation::Declined => Ok(false),
        Confirmation::NoTerminal => Err(Refusal(format!(
            "{flag} deletes {what} of `{deployment}` ({} objects) for good: add --yes to confirm when not at a \
             terminal",
            names.len()
        ))
        .into()),
    }
}

pub fn run(context: &Context<'_>, args: &DestroyArgs) -> Result<()> {
    let (spec, printer) = (context.spec()?, context.printer);
    let deployment = spec.name.as_str();
    let engine = context.engine()?;
    // Whatever either target left (a destroy without --secrets leaves a Swarm stack's secrets and configs):
    // the Swarm side is read wherever the Engine manages a swarm.
    let manager = engine.manages_swarm()?;
    let volumes = engine.volumes(deployment)?;
    let mut objects = Vec::new();
    if manager {
        for kind in [ObjectKind::Secret, ObjectKind::Config] {
            objects.extend(engine.swarm_objects(kind, deployment)?.into_iter().map(|object| (kind, object)));
        }
    }
    // Ask before changing anything: a refused confirmation leaves the deployment running.
    for (wanted, flag, what, names) in [
        (args.volumes, "--volumes", "the data", volumes.clone()),
        (args.secrets, "--secrets", "the secrets and configs", objects.iter().map(|(_, o)| o.name.clone()).collect()),
    ] {
        if wanted && !names.is_empty() && !confirmed(args, flag, what, deployment, &names, printer)? {
            return Err(Refusal("not confirmed: nothing was removed".to_owned()).into());
        }
    }
    let changes = deploy::remove(
        engine,
        deployment,
        &volumes,
        &objects,
        Keep { volumes: !args.volumes, secrets: !args.secrets },
    )?;
    printer.changes(&format!("destroy {deployment}"), &changes)?;
    Ok(())
}
