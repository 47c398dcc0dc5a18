//! `cometctl deploy compose|swarm`: every preflight check, then the changes in start order, each group ready
//! before the next starts (`deploy`).

use anyhow::Result;

use crate::args::{DeployArgs, DeployTarget};
use crate::context::Context;
use crate::deploy::{self, Choice};
use crate::error::Refusal;

pub fn run(context: &Context<'_>, args: &DeployArgs) -> Result<()> {
    if args.init_swarm && args.target == DeployTarget::Compose {
        return Err(
            Refusal("--init-swarm belongs to `deploy swarm`; `deploy compose` needs no swarm".to_owned()).into()
        );
    }
    let backend = deploy::backend_for(context, Choice::Named(args.target.into()))?;
    deploy::deploy(context, backend.as_ref(), args.init_swarm)
}
