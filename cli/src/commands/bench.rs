//! `cometctl bench`: the request from the arguments, the run in `bench`, the report on stdout; exit 3 when
//! it did not pass.

use anyhow::Result;

use crate::args::BenchArgs;
use crate::bench::{self, Request};
use crate::context::Context;
use crate::error::{EXIT_CHECK_FAILED, EXIT_OK};
use crate::folder;

pub fn run(context: &Context<'_>, args: &BenchArgs) -> Result<u8> {
    let request = Request { sockets: args.sockets, rate: args.rate, duration: args.duration };
    let profile = folder::read_profile(args.profile.as_deref())?;
    let report = bench::run(context, &profile, &request)?;
    context.printer.bench_report(&report)?;
    Ok(if report.pass { EXIT_OK } else { EXIT_CHECK_FAILED })
}
