//! `cometctl sizing`: the plan for a number of monthly active users, written nowhere.

use anyhow::Result;

use crate::args::SizingArgs;
use crate::context::Context;

pub fn run(context: &Context<'_>, args: &SizingArgs) -> Result<()> {
    let plan = super::plan_from(&args.sizing)?;
    context.printer.plan(&plan)?;
    Ok(())
}
