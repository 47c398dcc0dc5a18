//! `cometctl diff compose|swarm`: what `deploy` would create, replace, update or remove.

use anyhow::Result;

use crate::args::DiffArgs;
use crate::context::Context;
use crate::deploy::{self, Choice};

pub fn run(context: &Context<'_>, args: &DiffArgs) -> Result<()> {
    let backend = deploy::backend_for(context, Choice::Named(args.target.into()))?;
    deploy::diff(context, backend.as_ref())
}
