//! `cometctl scale`: the request from the arguments, the work in `scale`.

use anyhow::Result;

use crate::args::ScaleArgs;
use crate::context::Context;
use crate::error::Refusal;
use crate::folder;
use crate::scale::{self, Request};

pub fn run(context: &Context<'_>, args: &ScaleArgs) -> Result<()> {
    let replicas = args
        .replicas
        .iter()
        .map(|text| scale::assignment(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| Refusal(error.to_string()))?;
    let request = Request { mau: args.mau, concurrency: args.concurrency, replicas };
    let profile = folder::read_profile(args.profile.as_deref())?;
    scale::run(context, &profile, &request, args.yes).map(|_| ())
}
