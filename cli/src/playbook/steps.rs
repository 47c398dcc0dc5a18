//! What each kind of step does, and what it would do (`--dry-run`): the same flows the subcommands run
//! (`doctor`, `backup`, `scale`, `deploy`), with one fresh `Context` per step, so a step sees the spec as the
//! steps before it left it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Result;

use super::model::{Allow, DoctorStep, Param, Step};
use crate::backup;
use crate::bench;
use crate::checks::Outcome;
use crate::checks::catalog::Selection;
use crate::context::Context;
use crate::deploy::{self, Choice, Purpose};
use crate::doctor;
use crate::domain::Target;
use crate::error::{CheckFailed, Refusal};
use crate::printer::Confirmation;
use crate::scale::{self, Request};
use crate::sizing::Profile;

/// The inputs of a run, by name.
pub type Inputs = BTreeMap<String, String>;

/// Runs `step`; its output in one line (for the journal), or why it failed.
pub fn execute(context: &Context<'_>, profile: &Profile, step: &Step, inputs: &Inputs, yes: bool) -> Result<String> {
    let printer = context.printer;
    match step {
        Step::Doctor(doctor_step) => {
            let report = doctor::run(context, &doctor_request(doctor_step)?)?;
            printer.doctor_report(&report)?;
            let summary = &report.summary;
            let line =
                format!("{} pass, {} warn, {} fail, {} skip", summary.pass, summary.warn, summary.fail, summary.skip);
            let worst = report.checks.iter().map(|finding| finding.outcome).max_by_key(|outcome| rank(*outcome));
            let allowed = match doctor_step.allow {
                Allow::Pass => 0,
                Allow::Warn => 1,
                Allow::Fail => 2,
            };
            match worst {
                Some(outcome) if rank(outcome) > allowed => {
                    let named: Vec<&str> = report
                        .checks
                        .iter()
                        .filter(|finding| rank(finding.outcome) > allowed)
                        .map(|finding| finding.id)
                        .collect();
                    Err(CheckFailed(format!("{line}: {} (see the fixes above)", named.join(", "))).into())
                }
                _ => Ok(line),
            }
        }
        Step::Backup(backup_step) => {
            let only = backup_step.only.iter().map(|part| part.0.clone()).collect();
            let manifest = backup::create(context, &backup::Request { only, to: None })?;
            printer.backup_manifest(&manifest)?;
            Ok(format!("set {} ({} parts, {} skipped)", manifest.id, manifest.parts.len(), manifest.skipped.len()))
        }
        Step::Scale(_) => {
            let request = scale_request(step, inputs)?;
            scale::run(context, profile, &request, yes)
        }
        Step::Deploy(_) => {
            let spec = context.spec()?;
            let backend = deploy::backend_for(context, Choice::Named(deployable(spec.target)?))?;
            deploy::deploy(context, backend.as_ref(), false)?;
            Ok("deployed".to_owned())
        }
        Step::WaitHealthy(wait) => {
            let timeout = resolve(&wait.timeout, inputs)?.0;
            let took = deploy::wait_healthy(context, timeout)?;
            Ok(format!("every service healthy after {:.0}s", took.as_secs_f64()))
        }
        Step::RollingRestart(restart) => {
            let service = resolve(&restart.service, inputs)?.0;
            let restarted = deploy::rolling_restart(context, service)?;
            Ok(format!("{restarted} of {service} restarted one at a time, each healthy before the next"))
        }
        Step::Pause(pause) => {
            let span = resolve(&pause.duration, inputs)?;
            let line = printer.progress().line(&format!("pause {span}"));
            let started = Instant::now();
            while started.elapsed() < span.0 {
                let left = span.0.saturating_sub(started.elapsed());
                line.set(&format!("{}s left: {}", left.as_secs(), pause.reason));
                std::thread::sleep(left.min(Duration::from_secs(1)));
            }
            line.finish("done");
            Ok(format!("paused {span}"))
        }
        Step::Bench(bench_step) => {
            let report = bench::run(context, profile, &bench_request(bench_step, inputs)?)?;
            printer.bench_report(&report)?;
            let line = format!(
                "{:.1} sends/s acknowledged, p99 {:.0} ms, {} of {} sockets",
                report.sends.acknowledged_per_second,
                report.latency_ms.p99,
                report.sockets.held,
                report.sockets.requested
            );
            if report.pass { Ok(line) } else { Err(CheckFailed(format!("{line}: {}", report.notes.join("; "))).into()) }
        }
        Step::Node(node_step) => {
            let (node, others) = swarm_node(context, node_step, inputs)?;
            let availability = node_step.availability.as_str();
            context.engine()?.set_node_availability(&node.id, availability)?;
            Ok(format!("node {} ({}) is {availability}; {others} other nodes take tasks", node.hostname, node.id))
        }
        Step::RotateSecret(rotate) => {
            let name = resolve(&rotate.secret, inputs)?.0;
            let path = format!("{}/{name}", crate::folder::SECRETS_DIR);
            if context.folder.read_existing(&path)?.is_none() {
                return Err(
                    Refusal(format!("{path} does not exist: nothing to rotate (`cometctl init` makes it)")).into()
                );
            }
            context.folder.write_file(&path, &crate::secrets::generate()?, 0o600)?;
            Ok(format!("{path} has a new value; the roles take it when they are deployed"))
        }
        Step::RestoreDrill(drill_step) => {
            let request = drill_request(context, drill_step, inputs)?;
            let drill = backup::drill(context, profile, &request)?;
            printer.restore_drill(&drill)?;
            let line =
                format!("{} restored and checked in {:.0}s (RTO {:.0}s)", drill.id, drill.seconds, drill.rto_seconds);
            if drill.pass {
                Ok(line)
            } else {
                let failed: Vec<&str> = drill.steps.iter().filter(|step| !step.ok).map(|step| step.step).collect();
                Err(CheckFailed(format!("{line}: failed at {}", failed.join(", "))).into())
            }
        }
        Step::Confirm(question) => {
            if yes {
                return Ok("confirmed by --yes".to_owned());
            }
            match printer.confirm(question, "yes")? {
                Confirmation::Confirmed => Ok("confirmed".to_owned()),
                Confirmation::Declined => Err(Refusal(format!("not confirmed: {question}")).into()),
                Confirmation::NoTerminal => Err(Refusal(format!(
                    "`{question}` needs an answer: run at a terminal, or add --yes to confirm every step"
                ))
                .into()),
            }
        }
    }
}

/// What `step` would do, as lines, without doing it (the render of rendered/ aside).
pub fn describe(context: &Context<'_>, profile: &Profile, step: &Step, inputs: &Inputs) -> Result<Vec<String>> {
    Ok(match step {
        Step::Doctor(doctor_step) => {
            let request = doctor_request(doctor_step)?;
            vec![format!("would run {} checks: {}", request.selection.ids().len(), request.selection.ids().join(", "))]
        }
        Step::Backup(backup_step) => {
            let target = backup::location(context, None)?;
            let parts: Vec<&str> = backup_step.only.iter().map(|part| part.0.as_str()).collect();
            let parts = if parts.is_empty() { "every part".to_owned() } else { parts.join(", ") };
            vec![format!("would back up {parts} into {target}")]
        }
        Step::Scale(_) => {
            let preview = scale::preview(context, profile, &scale_request(step, inputs)?)?;
            let mut lines: Vec<String> = preview.warnings.iter().map(|warning| format!("warning: {warning}")).collect();
            if preview.differences.is_empty() {
                lines.push("the plan is already this: nothing would change".to_owned());
            }
            for difference in &preview.differences {
                lines.push(format!("{}: {} → {}", difference.path, difference.from_text(), difference.to_text()));
            }
            if !preview.deployed {
                lines.push("nothing of the deployment runs here: only cometctl.yaml would change".to_owned());
            }
            lines.extend(preview.lines.iter().map(change_line));
            lines
        }
        Step::Deploy(_) => {
            let spec = context.spec()?;
            let backend = deploy::backend_for(context, Choice::Named(deployable(spec.target)?))?;
            let staged = backend.stage(spec, Purpose::Diff)?;
            let mut lines: Vec<String> = staged.lines().iter().map(change_line).collect();
            if lines.is_empty() {
                lines.push("no changes".to_owned());
            }
            lines
        }
        Step::WaitHealthy(wait) => vec![format!("would wait at most {}", resolve(&wait.timeout, inputs)?)],
        Step::RollingRestart(restart) => {
            let service = resolve(&restart.service, inputs)?.0;
            vec![format!("would restart each container or task of {service} in turn, each healthy before the next")]
        }
        Step::Pause(pause) => vec![format!("would wait {}", resolve(&pause.duration, inputs)?)],
        Step::Bench(bench_step) => {
            let request = bench_request(bench_step, inputs)?;
            let or_plan = |value: Option<String>| value.unwrap_or_else(|| "the plan's figure".to_owned());
            vec![format!(
                "would hold {} sockets and send {} per second for {} through NGINX",
                or_plan(request.sockets.map(|sockets| sockets.to_string())),
                or_plan(request.rate.map(|rate| rate.to_string())),
                request.duration.map_or_else(|| "30s".to_owned(), |duration| format!("{}s", duration.as_secs()))
            )]
        }
        Step::Node(node_step) => {
            let (node, others) = swarm_node(context, node_step, inputs)?;
            vec![format!(
                "would set node {} ({}) {}; {others} other nodes take tasks",
                node.hostname,
                node.id,
                node_step.availability.as_str()
            )]
        }
        Step::RotateSecret(rotate) => {
            let name = resolve(&rotate.secret, inputs)?.0;
            vec![format!("would write a new value into {}/{name} (0600)", crate::folder::SECRETS_DIR)]
        }
        Step::RestoreDrill(drill_step) => {
            let request = drill_request(context, drill_step, inputs)?;
            vec![format!(
                "would restore set {} from {} into a scratch deployment, check and smoke-test it, and remove it",
                request.id, request.from
            )]
        }
        Step::Confirm(question) => vec![format!("would ask: {question}")],
    })
}

fn doctor_request(step: &DoctorStep) -> Result<doctor::Request> {
    let only: Vec<String> = step.only.iter().map(|name| name.0.clone()).collect();
    let skip: Vec<String> = step.skip.iter().map(|name| name.0.clone()).collect();
    let selection = Selection::new(&only, &skip).map_err(|error| Refusal(error.to_string()))?;
    Ok(doctor::Request { selection, host_only: false })
}

/// The node a `node` step names (by id or hostname) and how many other nodes take tasks; draining or pausing
/// the last node that takes tasks is refused (the deployment would stop).
fn swarm_node(
    context: &Context<'_>,
    step: &super::model::NodeStep,
    inputs: &Inputs,
) -> Result<(crate::plan::observed::SwarmNode, usize)> {
    let wanted = resolve(&step.node, inputs)?;
    let engine = context.engine()?;
    if !engine.manages_swarm()? {
        return Err(Refusal("this Docker Engine manages no swarm: a node step needs a swarm manager".to_owned()).into());
    }
    let nodes = engine.nodes()?;
    let names: Vec<&str> = nodes.iter().map(|node| node.hostname.as_str()).collect();
    let node = nodes
        .iter()
        .find(|node| node.id == wanted || node.hostname == wanted)
        .cloned()
        .ok_or_else(|| Refusal(format!("no swarm node `{wanted}` (nodes: {})", names.join(", "))))?;
    let others = nodes.iter().filter(|other| other.id != node.id && other.schedulable).count();
    if step.availability != super::model::Availability::Active && others == 0 {
        return Err(Refusal(format!(
            "node {} is the only node that takes tasks: {} it would stop the deployment; add a node first",
            node.hostname,
            step.availability.as_str()
        ))
        .into());
    }
    Ok((node, others))
}

fn drill_request(
    context: &Context<'_>,
    step: &super::model::DrillStep,
    inputs: &Inputs,
) -> Result<backup::DrillRequest> {
    let from = backup::location(context, None)?;
    let id = match step.backup.as_deref() {
        Some(id) if id != "latest" => id.to_owned(),
        _ => backup::Target::open(&from)?
            .list()?
            .into_iter()
            .rev()
            .find(|set| matches!(set, backup::Listed::Complete { .. }))
            .map(|set| set.id().to_owned())
            .ok_or_else(|| Refusal(format!("no complete backup set in {from} to drill: `cometctl backup` first")))?,
    };
    let rto = step.rto.as_ref().map(|rto| resolve(rto, inputs).map(|span| span.0)).transpose()?;
    Ok(backup::DrillRequest { id, from, rto: rto.unwrap_or(Duration::from_secs(3600)), keep_scratch: false })
}

fn bench_request(step: &super::model::BenchStep, inputs: &Inputs) -> Result<bench::Request> {
    Ok(bench::Request {
        sockets: step.sockets.as_ref().map(|sockets| resolve(sockets, inputs)).transpose()?,
        rate: step.rate.as_ref().map(|rate| resolve(rate, inputs)).transpose()?,
        duration: step.duration.as_ref().map(|duration| resolve(duration, inputs).map(|span| span.0)).transpose()?,
    })
}

fn scale_request(step: &Step, inputs: &Inputs) -> Result<Request> {
    let Step::Scale(scale) = step else {
        return Err(Refusal("not a scale step".to_owned()).into());
    };
    let mut request = Request {
        mau: scale.mau.as_ref().map(|mau| resolve(mau, inputs)).transpose()?,
        concurrency: scale.concurrency.as_ref().map(|concurrency| resolve(concurrency, inputs)).transpose()?,
        replicas: Vec::new(),
    };
    for (service, replicas) in &scale.replicas {
        request.replicas.push((service.0, resolve(replicas, inputs)?));
    }
    Ok(request)
}

fn resolve<T: std::str::FromStr + Clone>(param: &Param<T>, inputs: &Inputs) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    param.resolve(inputs).map_err(|error| Refusal(error).into())
}

/// Playbooks deploy where cometctl deploys: Compose and Swarm.
fn deployable(target: Target) -> Result<Target> {
    match target {
        Target::Compose | Target::Swarm => Ok(target),
        Target::K8s => Err(Refusal(
            "the spec's target is k8s: cometctl renders Kubernetes manifests but does not deploy them, so a deploy \
             step cannot run"
                .to_owned(),
        )
        .into()),
    }
}

/// One change a deploy would make, in a line.
fn change_line(line: &crate::plan::lines::ChangeLine) -> String {
    format!("{} {} {} ({})", line.action, line.kind, line.name, line.reason)
}

/// Outcomes ordered by how bad they are (a skip is as good as a pass: the check did not apply).
fn rank(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Pass | Outcome::Skip => 0,
        Outcome::Warn => 1,
        Outcome::Fail => 2,
    }
}
