//! `cometctl status`: what the Docker Engine runs for this deployment, found by its labels, one row per
//! service: containers (compose) or tasks (swarm) running of those wanted, health, image, published ports,
//! uptime.

use anyhow::Result;

use crate::context::Context;
use crate::deploy::{self, Choice};

pub fn run(context: &Context<'_>) -> Result<()> {
    let spec = context.spec()?;
    let status = deploy::backend_for(context, Choice::Observed)?.status(spec)?;
    let printer = context.printer;
    if printer.is_json() {
        printer.json(&status)?;
    } else if status.services.is_empty() {
        printer.note(&format!("nothing of deployment `{}` runs on this Docker Engine", status.deployment));
    } else {
        printer.service_status(&status.services)?;
    }
    Ok(())
}
