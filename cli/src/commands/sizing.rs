//! `cometctl sizing`: the plan for a number of monthly active users, written nowhere.

use anyhow::Result;

use crate::args::SizingArgs;
use crate::context::Context;
use crate::error::Refusal;
use crate::folder;
use crate::sizing;

pub fn run(context: &Context<'_>, args: &SizingArgs) -> Result<()> {
    let input = &args.sizing;
    let profile = folder::read_profile(input.profile.as_deref())?;
    let plan = sizing::plan_for_recommended(&profile, input.request(), input.target.is_some())
        .map_err(|error| Refusal(error.to_string()))?;
    context.printer.plan(&plan)?;
    Ok(())
}
