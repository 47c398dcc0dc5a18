//! `doctor`: one verdict on this host and the deployment running on it. The flow gathers facts (this
//! machine through `checks::facts`, the Engine, the stores and roles through `engine::exec` inside their own
//! containers, the edge through `checks::probe`), hands them to the pure evaluations of `checks`, and returns
//! the `Report` of the selected checks. The machine's facts and the edge are gathered on threads of their own
//! while the Engine is asked; every probe has a bounded timeout.
//!
//! Without a deployment folder (no cometctl.yaml) or with `--host-only`, only the host and swarm checks run,
//! against the default 10k plan or the folder's spec; every other check is a skip that says why. `apply`
//! is `--apply`: the few safe, local fixes.

pub mod apply;
mod live;

use anyhow::Result;

use crate::checks::catalog::{Area, CATALOG, Selection};
use crate::checks::host::{self, HostNeeds};
use crate::checks::report::Report;
use crate::checks::{Check, facts, swarm};
use crate::context::Context;
use crate::domain::{Concurrency, Mau, Target};
use crate::error::Refusal;
use crate::spec::{DeploymentName, InitialSpec, Spec, TlsMode};

/// What `doctor` was asked to do.
#[derive(Debug, Clone)]
pub struct Request {
    pub selection: Selection,
    pub host_only: bool,
}

/// Runs the selected checks and returns the verdict.
pub fn run(context: &Context<'_>, request: &Request) -> Result<Report> {
    let engine = context.engine()?;
    let has_folder = context.folder.has_spec();
    let default_spec;
    let spec = if has_folder {
        context.spec()?
    } else {
        default_spec = default_plan()?;
        &default_spec
    };
    let selection = &request.selection;
    let live = has_folder && !request.host_only;
    let needs = HostNeeds::of(spec);
    let engine_host = engine.engine_host()?;
    let published = if has_folder { crate::deploy::edge_ports(engine, spec)? } else { Vec::new() };
    let measure_fsync = selection.contains("host.fsync");
    let wants_host = selection.any(&crate::checks::catalog::ids_in(Area::Host));
    let edge_deployed = live && spec.plan.deploys(crate::domain::ServiceKey::Nginx);
    let wants_edge = edge_deployed && selection.any(crate::checks::edge::EDGE_IDS);
    let mut checks: Vec<Check> = Vec::new();
    std::thread::scope(|scope| -> Result<()> {
        let host_facts =
            wants_host.then(|| scope.spawn(|| facts::gather(&engine_host, &needs.ports, &published, measure_fsync)));
        let domain = spec.domain.clone();
        let (http_port, https_port) = (spec.edge.http_port.get(), spec.edge.https_port.get());
        let edge = wants_edge.then(|| scope.spawn(move || crate::checks::probe::edge(&domain, http_port, https_port)));

        if selection.any(swarm::DOCTOR_IDS) {
            checks.extend(swarm::doctor_checks(engine, spec.name.as_str())?);
        }
        if live {
            checks.extend(live::checks(context, spec, selection, edge)?);
        } else {
            let why = if has_folder {
                "--host-only".to_owned()
            } else {
                format!("no cometctl.yaml in {}: host checks only (default 10k plan)", context.folder.root().display())
            };
            for entry in CATALOG.iter().filter(|entry| !matches!(entry.area, Area::Host | Area::Swarm)) {
                checks.push(Check::skip(entry.id, why.clone()));
            }
        }
        if let Some(handle) = host_facts {
            let facts =
                handle.join().map_err(|_| anyhow::anyhow!("gathering the host's facts stopped unexpectedly"))?;
            checks.extend(host::evaluate(&facts, &needs));
        }
        Ok(())
    })?;
    Ok(Report::new(selection, checks))
}

/// The spec `init --mau 10k` would write, for a host with no deployment folder yet.
fn default_plan() -> Result<Spec> {
    let profile = crate::folder::read_profile(None)?;
    let request = crate::sizing::SizingRequest {
        mau: "10k".parse::<Mau>().map_err(|error| Refusal(error.to_string()))?,
        concurrency: Concurrency::Baseline,
        target: Target::Swarm,
        message_retention_days: 365,
    };
    let plan =
        crate::sizing::plan_for_recommended(&profile, request, false).map_err(|error| Refusal(error.to_string()))?;
    Ok(Spec::initial(InitialSpec {
        name: DeploymentName::parse("comet").map_err(Refusal)?,
        target: plan.target,
        domain: "chat.example.com".to_owned(),
        mau: plan.mau,
        concurrency: plan.concurrency,
        message_retention_days: 365,
        kafka_retention_hours: 168,
        comet_version: env!("CARGO_PKG_VERSION").to_owned(),
        tls_mode: TlsMode::SelfSigned,
        plan: plan.allocation.clone(),
    }))
}
