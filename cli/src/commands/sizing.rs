use anyhow::{Context as _, Result};

use crate::args::{SizingArgs, SizingInputArgs};
use crate::folder::Refusal;
use crate::printer::Printer;
use crate::sizing::{self, Plan, Profile, SizingRequest};

pub fn run(args: &SizingArgs, printer: &Printer) -> Result<()> {
    let plan = plan_from(&args.sizing)?;
    printer.plan(&plan)?;
    Ok(())
}

/// Loads the profile and computes the plan `init` and `sizing` print.
pub fn plan_from(args: &SizingInputArgs) -> Result<Plan> {
    let profile = match &args.profile {
        None => Profile::embedded().context("the embedded sizing profile is broken (a build bug)")?,
        Some(path) => {
            let text = fs_err::read_to_string(path)?;
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
    let first = sizing::plan(&profile, &provisional).map_err(|error| Refusal(error.to_string()))?;
    match args.target {
        Some(_) => Ok(first),
        None if first.recommended_target == provisional.target => Ok(first),
        None => {
            let request = SizingRequest { target: first.recommended_target, ..provisional };
            sizing::plan(&profile, &request).map_err(|error| Refusal(error.to_string()).into())
        }
    }
}
