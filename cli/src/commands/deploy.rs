//! `cometctl deploy compose` and `cometctl diff compose`: render the spec, read the rendered compose.yaml back
//! as the desired state (`deploy`), compare it with what the Engine runs and apply the difference in start
//! order, waiting for each service to be ready before the services that depend on it start.
//!
//! Failure leaves what runs running: a new container that does not become ready is reported (its state, last
//! health checks and log tail) and the deploy stops there; a stateless container being replaced keeps serving
//! until its successor is healthy (start-first) and is put back if the successor fails.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::args::{DeployArgs, DeployTarget, DiffArgs};
use crate::commands::upgrade::HistoryRecord;
use crate::compose::ComposeFile;
use crate::deploy::{self, Changes, ContainerChange, Desired, DesiredContainer, REPLACED_SUFFIX, Ready};
use crate::domain::Target;
use crate::engine::{Engine, Health, SwarmRole};
use crate::folder::{DeploymentFolder, Refusal};
use crate::printer::{Printer, ProgressLine};
use crate::render::{self, TemplateSet};
use crate::spec::Spec;

/// A deploy that stopped because a service did not become ready; what was already running still runs.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DeployFailed(pub String);

/// How often readiness is polled.
const POLL: Duration = Duration::from_millis(500);
/// Log lines shown for a service that failed.
const LOG_TAIL: usize = 25;

/// The rendered compose file of `spec`, written to rendered/ (the containers bind-mount files from there),
/// and the desired state it describes.
pub fn prepare(folder: &DeploymentFolder, spec: &Spec) -> Result<(ComposeFile, Desired)> {
    let tree = render::render(spec, &TemplateSet::embedded(), &[Target::Compose])
        .map_err(|error| Refusal(error.to_string()))?;
    folder.replace_rendered(&tree)?;
    let rendered = folder.root().join(crate::folder::RENDERED_DIR);
    let path = rendered.join("compose.yaml");
    let text = fs_err::read_to_string(&path)?;
    let compose = ComposeFile::parse(&path.display().to_string(), &text).map_err(|error| Refusal(error.to_string()))?;
    let root = std::path::absolute(&rendered)?;
    let digest = |file: &Path| match fs_err::read(file) {
        Ok(bytes) => Sha256::digest(&bytes).iter().map(|byte| format!("{byte:02x}")).collect(),
        Err(_) => "missing".to_owned(),
    };
    let desired = deploy::desired(spec.name.as_str(), &compose, &root, &digest).map_err(Refusal)?;
    let own = std::path::absolute(folder.root())?;
    for source in desired.bind_sources.iter().filter(|source| source.starts_with(&own)) {
        if !source.exists() {
            return Err(Refusal(format!("{} does not exist: containers bind-mount it", source.display())).into());
        }
    }
    Ok((compose, desired))
}

/// The images the spec's deployment runs (services at 0 replicas and observability turned off have none),
/// read from its compose rendering, which every target shares the service set of.
pub fn deployed_images(spec: &Spec) -> Result<Vec<String>> {
    let tree = render::render(spec, &TemplateSet::embedded(), &[Target::Compose])
        .map_err(|error| Refusal(error.to_string()))?;
    let text = tree.get("compose.yaml").map(|bytes| String::from_utf8_lossy(bytes).into_owned()).unwrap_or_default();
    let compose = ComposeFile::parse("rendered/compose.yaml", &text).map_err(|error| Refusal(error.to_string()))?;
    let mut images: Vec<String> = compose.services.values().map(|service| service.image.clone()).collect();
    images.sort();
    images.dedup();
    Ok(images)
}

/// The observed state and the changes that would take it to `desired`.
pub fn plan(engine: &Engine, desired: &Desired) -> Result<Changes> {
    let observed = engine.containers(&desired.deployment)?;
    let networks = engine.networks(&desired.deployment)?;
    let volumes = engine.volumes(&desired.deployment)?;
    let mut image_ids = HashMap::new();
    for reference in &desired.images {
        if let Some(image) = engine.image(reference)? {
            image_ids.insert(reference.clone(), image.id);
        }
    }
    Ok(deploy::changes(desired, &observed, &networks, &volumes, &image_ids))
}

/// One line of `diff` / `deploy` output.
#[derive(Debug, Serialize)]
pub(crate) struct Line {
    action: &'static str,
    kind: &'static str,
    name: String,
    reason: String,
}

impl Line {
    pub(crate) fn new(action: &'static str, kind: &'static str, name: &str, reason: &str) -> Line {
        Line { action, kind, name: name.to_owned(), reason: reason.to_owned() }
    }
}

fn lines(changes: &Changes) -> Vec<Line> {
    let mut lines = Vec::new();
    let line = Line::new;
    lines.extend(changes.networks_to_create.iter().map(|name| line("create", "network", name, "new")));
    lines.extend(changes.volumes_to_create.iter().map(|name| line("create", "volume", name, "new")));
    for (_, service_changes) in &changes.services {
        for change in service_changes {
            match change {
                ContainerChange::Create { desired, reason } => {
                    lines.push(line("create", "container", &desired.name, reason.describe()));
                }
                ContainerChange::Replace { desired, reason } => {
                    let how = if desired.start_first { "start-first" } else { "stop-first" };
                    lines.push(line("replace", "container", &desired.name, &format!("{} ({how})", reason.describe())));
                }
                ContainerChange::Keep { .. } => {}
            }
        }
    }
    lines.extend(
        changes.containers_to_remove.iter().map(|name| line("remove", "container", name, "no longer in the spec")),
    );
    lines
}

pub fn print_lines(printer: &Printer, title: &str, changes: &Changes) -> Result<()> {
    print_change_lines(printer, title, &lines(changes))
}

/// The lines of a `diff` or `deploy` (a JSON array with `--output json`), then a count or "no changes".
pub(crate) fn print_change_lines(printer: &Printer, title: &str, lines: &[Line]) -> Result<()> {
    if printer.is_json() {
        printer.json(&lines)?;
        return Ok(());
    }
    if lines.is_empty() {
        printer.result(&format!("{title}: no changes"))?;
        return Ok(());
    }
    for line in lines {
        printer.result(&format!("{:<8} {:<10} {:<40} {}", line.action, line.kind, line.name, line.reason))?;
    }
    printer.result(&format!("{title}: {} changes", lines.len()))?;
    Ok(())
}

pub fn diff(args: &DiffArgs, printer: &Printer) -> Result<()> {
    if args.target == DeployTarget::Swarm {
        return crate::commands::swarm::diff(args, printer);
    }
    let folder = DeploymentFolder::new(&args.dir);
    let spec = folder.read_spec()?;
    let (_, desired) = prepare(&folder, &spec)?;
    let engine = Engine::connect()?;
    let changes = plan(&engine, &desired)?;
    print_lines(printer, &format!("diff compose {}", spec.name), &changes)
}

pub fn run(args: &DeployArgs, printer: &Printer) -> Result<()> {
    if args.target == DeployTarget::Swarm {
        return crate::commands::swarm::run(args, printer);
    }
    if args.init_swarm {
        return Err(
            Refusal("--init-swarm belongs to `deploy swarm`; `deploy compose` needs no swarm".to_owned()).into()
        );
    }
    let folder = DeploymentFolder::new(&args.dir);
    let spec = folder.read_spec()?;
    let (_, desired) = prepare(&folder, &spec)?;
    for note in folder.share_secrets_with_containers()? {
        printer.note(&note);
    }
    let engine = Engine::connect()?;
    refuse_other_target(&engine, spec.name.as_str(), Target::Compose)?;
    check_capacity(&engine, &desired)?;
    ensure_images(&engine, &desired.images, printer)?;
    let started = Instant::now();
    let changes = plan(&engine, &desired)?;
    if changes.is_empty() {
        printer.result(&format!("deploy compose {}: no changes", spec.name))?;
        return Ok(());
    }
    print_lines(printer, &format!("deploy compose {}", spec.name), &changes)?;
    let outcome = apply(&engine, &desired, &changes, printer, Jobs::Run);
    finish(&folder, &spec, Target::Compose, started, outcome, printer)
}

/// Records a deploy's outcome in history.jsonl, then reports it: the time to every service ready, or the error.
pub(crate) fn finish(
    folder: &DeploymentFolder,
    spec: &Spec,
    target: Target,
    started: Instant,
    outcome: Result<()>,
    printer: &Printer,
) -> Result<()> {
    let seconds = started.elapsed().as_secs_f64();
    let (result, detail) = match &outcome {
        Ok(()) => ("ok", String::new()),
        Err(error) => ("failed", format!("{error:#}").lines().next().unwrap_or_default().to_owned()),
    };
    folder.append_history(&HistoryRecord::new("deploy", target, spec, spec, result, seconds, &detail))?;
    outcome?;
    printer.result(&format!("deploy {target} {}: every service ready in {seconds:.1}s", spec.name))?;
    Ok(())
}

/// Refuses a plan whose containers ask for more CPUs than the host has (the Engine would refuse them one by
/// one, half-way through the deploy).
pub fn check_capacity(engine: &Engine, desired: &Desired) -> Result<()> {
    let capacity = engine.host_capacity()?;
    for container in desired.containers.values().filter_map(|containers| containers.first()) {
        let nanos = container.body["HostConfig"]["NanoCpus"].as_i64().unwrap_or(0);
        if capacity.cpus > 0 && nanos > capacity.cpus * 1_000_000_000 {
            return Err(Refusal(format!(
                "service `{}` is limited to {} CPUs but this Docker host has {}: lower its cpu_millis.limit under \
                 plan.services in cometctl.yaml (at most {})",
                container.service,
                nanos as f64 / 1e9,
                capacity.cpus,
                capacity.cpus * 1000
            ))
            .into());
        }
    }
    Ok(())
}

/// Refuses to deploy `deployment` to `target` while it runs on this Engine with the other target (Compose
/// containers and Swarm services would share names, networks and published ports).
pub fn refuse_other_target(engine: &Engine, deployment: &str, target: Target) -> Result<()> {
    let running_elsewhere = match target {
        Target::Compose => {
            matches!(engine.swarm_role()?, SwarmRole::Manager { .. }) && !engine.services(deployment)?.is_empty()
        }
        _ => !engine.containers(deployment)?.is_empty(),
    };
    if running_elsewhere {
        let other = if target == Target::Compose { "a Swarm stack" } else { "Compose containers" };
        return Err(Refusal(format!(
            "deployment `{deployment}` runs as {other} on this Docker Engine: remove it with `cometctl destroy` \
             (volumes stay) before deploying it with {target}"
        ))
        .into());
    }
    Ok(())
}

/// Every image must be on the Engine before anything changes; missing ones are pulled (a private registry
/// in the spec's images) or named with the fix.
pub fn ensure_images(engine: &Engine, images: &[String], printer: &Printer) -> Result<()> {
    for reference in images {
        if engine.image(reference)?.is_some() {
            continue;
        }
        printer.note(&format!("pulling {reference}"));
        engine.pull_image(reference).map_err(|error| {
            Refusal(format!(
                "image {reference} is not on this Docker Engine and could not be pulled ({error}): build it \
                 (`cometctl images build`), load a bundle (`cometctl images load`) or point the spec's images at \
                 a registry this host can reach"
            ))
        })?;
    }
    Ok(())
}

/// Whether one-shot jobs whose configuration changed run again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Jobs {
    Run,
    /// A rollback: the newer migration already ran, and an older one must not run over its schema.
    Keep,
}

/// The number of changes (networks, volumes, containers).
pub fn count(changes: &Changes) -> usize {
    lines(changes).len()
}

/// Applies `changes` in start order. Services of one start group start together and are waited for
/// together; start-first replacements go one container at a time.
pub fn apply(engine: &Engine, desired: &Desired, changes: &Changes, printer: &Printer, jobs: Jobs) -> Result<()> {
    for (name, body) in &desired.networks {
        if changes.networks_to_create.contains(name) {
            engine.ensure_network(name, body.clone())?;
        }
    }
    for (name, labels) in &desired.volumes {
        if changes.volumes_to_create.contains(name) {
            engine.ensure_volume(name, labels.clone())?;
        }
    }
    let progress = printer.progress();
    // An edge (a container publishing ports: NGINX) resolves the others by name and caches the answers.
    let edge = desired.containers.values().flatten().any(|container| {
        container.body["HostConfig"]["PortBindings"].as_object().is_some_and(|ports| !ports.is_empty())
    });
    for group in &desired.groups {
        let mut waiting: Vec<(DesiredContainer, ProgressLine)> = Vec::new();
        let mut rolling: Vec<(DesiredContainer, ProgressLine)> = Vec::new();
        for service in group {
            let Some((_, service_changes)) = changes.services.iter().find(|(name, _)| name == service) else {
                continue;
            };
            for change in service_changes {
                match change {
                    ContainerChange::Keep { desired } | ContainerChange::Replace { desired, .. }
                        if jobs == Jobs::Keep && desired.ready == Ready::Completed =>
                    {
                        progress.line(&desired.name).finish("kept (a rollback does not run migrations)");
                    }
                    ContainerChange::Keep { desired } => {
                        let line = progress.line(&desired.name);
                        line.set("unchanged; checking");
                        waiting.push((desired.clone(), line));
                    }
                    ContainerChange::Create { desired, .. } => {
                        let line = progress.line(&desired.name);
                        line.set("creating");
                        create_and_start(engine, desired)?;
                        waiting.push((desired.clone(), line));
                    }
                    ContainerChange::Replace { desired, .. } if desired.start_first => {
                        let line = progress.line(&desired.name);
                        line.set("queued for a start-first replacement");
                        rolling.push((desired.clone(), line));
                    }
                    ContainerChange::Replace { desired, .. } => {
                        let line = progress.line(&desired.name);
                        line.set("stopping the old container");
                        engine.stop_container(&desired.name, desired.grace_seconds)?;
                        engine.remove_container(&desired.name)?;
                        line.set("creating");
                        create_and_start(engine, desired)?;
                        waiting.push((desired.clone(), line));
                    }
                }
            }
        }
        wait_all(engine, &waiting)?;
        for (container, line) in &rolling {
            replace_start_first(engine, container, line, edge)?;
        }
    }
    for name in &changes.containers_to_remove {
        let line = progress.line(name);
        line.set("stopping");
        engine.stop_container(name, 30)?;
        engine.remove_container(name)?;
        line.finish("removed");
    }
    Ok(())
}

fn create_and_start(engine: &Engine, container: &DesiredContainer) -> Result<()> {
    engine.create_container(&container.name, container.body.clone(), &container.extra_networks)?;
    engine.start_container(&container.name).map_err(|error| {
        let hint = if error.to_string().contains("rlimit") {
            "; the Docker daemon allows fewer open files than the spec asks for: lower host.nofile in \
             cometctl.yaml (or raise LimitNOFILE of docker.service)"
        } else {
            ""
        };
        anyhow::anyhow!("{error}{hint}")
    })?;
    Ok(())
}

/// How long NGINX keeps a resolved address: `resolver 127.0.0.11 valid=10s` in templates/nginx/nginx.conf.j2,
/// plus a second. Keep the two in step.
const EDGE_DNS_TTL: Duration = Duration::from_secs(11);

/// Start the new container beside the old one and wait until it is ready; give the edge one DNS lifetime
/// to add it to the addresses it balances over; stop the old one (it refuses new connections, which NGINX
/// retries on the new one, and drains the rest); then one more DNS lifetime, so no NGINX worker still holds
/// the freed address when the Engine hands it to the next container. If the new one fails, it is removed
/// and the old one, which never stopped, gets its name back.
///
/// The edge is not reloaded: a reload closes client keep-alive connections, and a request racing that
/// close fails at the client.
fn replace_start_first(engine: &Engine, container: &DesiredContainer, line: &ProgressLine, edge: bool) -> Result<()> {
    let old = format!("{}{REPLACED_SUFFIX}", container.name);
    if engine.container_detail(&old)?.is_some() {
        engine.remove_container(&old)?;
    }
    engine.rename_container(&container.name, &old)?;
    line.set("starting the new container beside the old one");
    let started = engine
        .create_container(&container.name, container.body.clone(), &container.extra_networks)
        .and_then(|()| engine.start_container(&container.name));
    let outcome = match started {
        Ok(()) => wait_ready(engine, container, line),
        Err(error) => Err(error.into()),
    };
    if let Err(error) = outcome {
        line.finish("failed; the old container keeps serving");
        engine.remove_container(&container.name).ok();
        engine.rename_container(&old, &container.name)?;
        return Err(error);
    }
    if edge {
        line.set("healthy; waiting for NGINX to resolve it");
        std::thread::sleep(EDGE_DNS_TTL);
    }
    line.set("draining the old container");
    engine.stop_container(&old, container.grace_seconds)?;
    engine.remove_container(&old)?;
    if edge {
        line.set("waiting for NGINX to forget the old address");
        std::thread::sleep(EDGE_DNS_TTL);
    }
    line.finish("replaced (start-first)");
    Ok(())
}

/// Something a deploy starts and then waits for: a container (compose) or a service (swarm).
pub(crate) trait Awaited {
    /// How long it may take to be ready, in seconds.
    fn timeout_seconds(&self) -> u64;
    fn readiness(&self, engine: &Engine) -> Result<Readiness>;
    /// Why it did not become ready (`what`), with what the Engine can tell: a `DeployFailed`.
    fn failure(&self, engine: &Engine, what: &str) -> anyhow::Error;
}

pub(crate) enum Readiness {
    Ready(String),
    Waiting(String),
    Failed(String),
}

/// Waits until every entry is ready (each line then shows how), or one fails or times out (its report).
pub(crate) fn wait_all<T: Awaited>(engine: &Engine, entries: &[(T, ProgressLine)]) -> Result<()> {
    let mut pending: Vec<&(T, ProgressLine)> = entries.iter().collect();
    let started = Instant::now();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for entry in pending {
            let (awaited, line) = entry;
            match awaited.readiness(engine)? {
                Readiness::Ready(message) => line.finish(&message),
                Readiness::Waiting(message) => {
                    if started.elapsed().as_secs() > awaited.timeout_seconds() {
                        line.finish("timed out");
                        return Err(awaited.failure(engine, &format!("not ready after {}s", awaited.timeout_seconds())));
                    }
                    line.set(&message);
                    still.push(entry);
                }
                Readiness::Failed(message) => {
                    line.finish("failed");
                    return Err(awaited.failure(engine, &message));
                }
            }
        }
        pending = still;
        if !pending.is_empty() {
            std::thread::sleep(POLL);
        }
    }
    Ok(())
}

fn wait_ready(engine: &Engine, container: &DesiredContainer, line: &ProgressLine) -> Result<()> {
    let started = Instant::now();
    loop {
        match container.readiness(engine)? {
            Readiness::Ready(_) => return Ok(()),
            Readiness::Failed(message) => return Err(container.failure(engine, &message)),
            Readiness::Waiting(message) => {
                if started.elapsed().as_secs() > container.ready_timeout_seconds {
                    return Err(
                        container.failure(engine, &format!("not ready after {}s", container.ready_timeout_seconds))
                    );
                }
                line.set(&message);
                std::thread::sleep(POLL);
            }
        }
    }
}

impl Awaited for DesiredContainer {
    fn timeout_seconds(&self) -> u64 {
        self.ready_timeout_seconds
    }

    fn readiness(&self, engine: &Engine) -> Result<Readiness> {
        container_readiness(engine, self)
    }

    fn failure(&self, engine: &Engine, what: &str) -> anyhow::Error {
        let mut report = format!("service `{}` (container {}) {what}", self.service, self.name);
        append_container_report(engine, &self.name, &mut report);
        deploy_failed(report)
    }
}

fn container_readiness(engine: &Engine, container: &DesiredContainer) -> Result<Readiness> {
    let Some(detail) = engine.container_detail(&container.name)? else {
        return Ok(Readiness::Failed("the container disappeared".to_owned()));
    };
    Ok(match container.ready {
        Ready::Completed => match detail.exit_code {
            _ if detail.running => Readiness::Waiting("running".to_owned()),
            Some(0) => Readiness::Ready("completed".to_owned()),
            Some(code) => Readiness::Failed(format!("exited with code {code}")),
            None => Readiness::Waiting(detail.status),
        },
        _ if !detail.running && detail.status != "restarting" && detail.status != "created" => {
            Readiness::Failed(format!("exited with code {}", detail.exit_code.unwrap_or(-1)))
        }
        _ if detail.restart_count > 0 => {
            Readiness::Failed(format!("restarted {} times before becoming ready", detail.restart_count))
        }
        Ready::Running if detail.running => Readiness::Ready("running".to_owned()),
        Ready::Healthy if detail.health == Health::Healthy => Readiness::Ready("healthy".to_owned()),
        Ready::Healthy if detail.health == Health::Unhealthy => Readiness::Failed("unhealthy".to_owned()),
        _ => Readiness::Waiting(if detail.running { "waiting for its health check" } else { "starting" }.to_owned()),
    })
}

/// Appends a container's last health checks and log tail to a failure report.
pub(crate) fn append_container_report(engine: &Engine, container: &str, report: &mut String) {
    if let Ok(Some(detail)) = engine.container_detail(container)
        && !detail.health_log.is_empty()
    {
        report.push_str("\n  last health checks:");
        for probe in detail.health_log.iter().rev().take(3).rev() {
            let _ = write!(report, "\n    {probe}");
        }
    }
    match engine.log_tail(container, LOG_TAIL) {
        Ok(lines) if !lines.is_empty() => {
            let _ = write!(report, "\n  last {} log lines:", lines.len());
            for log_line in lines {
                let _ = write!(report, "\n    {log_line}");
            }
        }
        Ok(_) => report.push_str("\n  (no log output)"),
        Err(error) => {
            let _ = write!(report, "\n  (logs unavailable: {error})");
        }
    }
}

/// A deploy that stopped at a service, with its report.
pub(crate) fn deploy_failed(mut report: String) -> anyhow::Error {
    report.push_str("\n  services that were already running were left running; fix the cause and deploy again");
    anyhow::Error::new(DeployFailed(report)).context("deploy stopped")
}
