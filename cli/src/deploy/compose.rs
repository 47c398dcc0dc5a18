//! The Compose backend: `deploy compose`, `diff compose`, and upgrades of a deployment that runs as Compose
//! containers. Renders the spec, reads the rendered compose.yaml back as the desired state (`plan::compose`),
//! compares it with what the Engine runs and applies the difference in start order, waiting for each
//! service to be ready before the services that depend on it start.
//!
//! Failure leaves what runs running: a new container that does not become ready is reported (its state, last
//! health checks and log tail) and the deploy stops there; a stateless container being replaced keeps serving
//! until its successor is healthy (start-first) and is put back if the successor fails. A rollback runs the
//! previous spec's containers again without running its older migration (`Jobs::Keep`).

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Result;

use super::backend::{Backend, Jobs, Purpose, Staged};
use super::wait::{self, Awaited, Readiness, deploy_failed, wait_all};
use crate::checks::host;
use crate::context::Context;
use crate::domain::Target;
use crate::engine::Engine;
use crate::error::Refusal;
use crate::folder;
use crate::manifest::compose::ComposeFile;
use crate::plan::compose::{self, Changes, ContainerChange, Desired, DesiredContainer, REPLACED_SUFFIX};
use crate::plan::lines::ChangeLine;
use crate::plan::observed::Health;
use crate::plan::status::{self, Status};
use crate::plan::{Ready, Reason};
use crate::printer::{Printer, ProgressLine};
use crate::render::{self, TemplateSet};
use crate::spec::Spec;

/// Compose containers on this Docker Engine.
#[derive(Debug)]
pub struct ComposeBackend<'c> {
    pub context: &'c Context<'c>,
    /// Whether the deployment runs as a Swarm stack here (`backend_for` answers; a deploy refuses then).
    pub runs_on_swarm: fn(&Context<'_>) -> Result<bool>,
}

/// A compose file rendered, read back and compared with what runs.
struct ComposeStaged<'s> {
    engine: &'s Engine,
    printer: &'s Printer,
    desired: Desired,
    changes: Changes,
}

impl ComposeBackend<'_> {
    /// The rendered compose file of `spec`, written to rendered/ (the containers bind-mount files from
    /// there), and the desired state it describes.
    fn prepare(&self, spec: &Spec) -> Result<Desired> {
        let folder = &self.context.folder;
        let tree = render::render(spec, &TemplateSet::embedded(), &[Target::Compose])
            .map_err(|error| Refusal(error.to_string()))?;
        folder.replace_rendered(&tree)?;
        let (path, text) = folder.read_rendered("compose.yaml")?;
        let compose =
            ComposeFile::parse(&path.display().to_string(), &text).map_err(|error| Refusal(error.to_string()))?;
        let root = std::path::absolute(folder.root().join(folder::RENDERED_DIR))?;
        let desired = compose::desired(spec.name.as_str(), &compose, &root, &folder::file_digest).map_err(Refusal)?;
        let own = std::path::absolute(folder.root())?;
        for source in desired.bind_sources.iter().filter(|source| source.starts_with(&own)) {
            if !folder::exists(source) {
                return Err(Refusal(format!(
                    "{} does not exist: containers bind-mount it ({})",
                    source.display(),
                    render::missing_file_hint(source)
                ))
                .into());
            }
        }
        Ok(desired)
    }

    /// The observed state and the changes that would take it to `desired`.
    fn changes(&self, desired: &Desired) -> Result<Changes> {
        let engine = self.context.engine()?;
        let observed = engine.containers(&desired.deployment)?;
        let networks = engine.networks(&desired.deployment)?;
        let volumes = engine.volumes(&desired.deployment)?;
        let mut image_ids = HashMap::new();
        for reference in &desired.images {
            if let Some(image) = engine.image(reference)? {
                image_ids.insert(reference.clone(), image.id);
            }
        }
        Ok(compose::changes(desired, &observed, &networks, &volumes, &image_ids))
    }
}

impl Backend for ComposeBackend<'_> {
    fn target(&self) -> Target {
        Target::Compose
    }

    fn stage<'s>(&'s self, spec: &Spec, purpose: Purpose) -> Result<Box<dyn Staged + 's>> {
        let (context, printer) = (self.context, self.context.printer);
        let desired = self.prepare(spec)?;
        if let Purpose::Deploy { .. } = purpose {
            for note in context.folder.share_secrets_with_containers()? {
                printer.note(&note);
            }
        }
        let engine = context.engine()?;
        if let Purpose::Deploy { .. } = purpose {
            let on_swarm = (self.runs_on_swarm)(context)?;
            host::one_target(spec.name.as_str(), Target::Compose, on_swarm).refuse_if_failed()?;
        }
        if let Purpose::Deploy { .. } | Purpose::Upgrade = purpose {
            host::cpus_within_host(engine, &desired)?.refuse_if_failed()?;
            host::images_present(engine, &desired.images, printer)?.refuse_if_failed()?;
        }
        let mut changes = self.changes(&desired)?;
        if purpose == Purpose::Drift {
            // A job that last ran from another version (the newer migration of a rolled-back upgrade) is not
            // drift: jobs do not run, and the upgrade runs its own migration anyway.
            for (_, service_changes) in &mut changes.services {
                service_changes.retain(|change| match change {
                    ContainerChange::Replace { desired, .. } => desired.ready != Ready::Completed,
                    _ => true,
                });
            }
        }
        Ok(Box::new(ComposeStaged { engine, printer, desired, changes }))
    }

    fn status(&self, spec: &Spec) -> Result<Status> {
        let engine = self.context.engine()?;
        let now = i64::try_from(self.context.clock.now_unix_seconds()).unwrap_or(i64::MAX);
        let services = status::summarise(&engine.containers(spec.name.as_str())?, now);
        let target = if services.is_empty() { spec.target } else { Target::Compose };
        Ok(Status { deployment: spec.name.to_string(), target: target.as_str().to_owned(), services })
    }

    fn shows_rollback(&self) -> bool {
        false
    }
}

impl Staged for ComposeStaged<'_> {
    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    fn lines(&self) -> Vec<ChangeLine> {
        self.changes.lines()
    }

    fn apply(&self, jobs: Jobs) -> Result<()> {
        apply(self.engine, &self.desired, &self.changes, self.printer, jobs)
    }

    /// Every long-running container that does not run healthy.
    fn unhealthy(&self) -> Result<Vec<String>> {
        let jobs: Vec<&str> = self
            .desired
            .containers
            .values()
            .flatten()
            .filter(|container| container.ready == Ready::Completed)
            .map(|container| container.name.as_str())
            .collect();
        Ok(self
            .engine
            .containers(&self.desired.deployment)?
            .into_iter()
            .filter(|container| !jobs.contains(&container.name.as_str()))
            .filter(|container| !container.running || matches!(container.health, Health::Unhealthy | Health::Starting))
            .map(|container| {
                format!("{} ({})", container.name, if container.running { "not healthy" } else { "not running" })
            })
            .collect())
    }

    /// Each container of `service` replaced by a new one from the same configuration, one at a time, the way
    /// a deploy replaces them: start-first for the stateless roles (the old one serves until its successor is
    /// ready and NGINX knows it), stop-first for the rest.
    fn restart(&self, service: &str) -> Result<usize> {
        let containers = self.desired.containers.get(service).cloned().unwrap_or_default();
        let replacements: Vec<ContainerChange> = containers
            .iter()
            .map(|desired| ContainerChange::Replace { desired: desired.clone(), reason: Reason::Restart })
            .collect();
        let changes = Changes {
            networks_to_create: vec![],
            volumes_to_create: vec![],
            services: vec![(service.to_owned(), replacements)],
            containers_to_remove: vec![],
        };
        apply(self.engine, &self.desired, &changes, self.printer, Jobs::Run)?;
        Ok(containers.len())
    }
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

/// Applies `changes` in start order. Services of one start group start together and are waited for
/// together; start-first replacements go one container at a time.
fn apply(engine: &Engine, desired: &Desired, changes: &Changes, printer: &Printer, jobs: Jobs) -> Result<()> {
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
    if edge && !changes.containers_to_remove.is_empty() {
        // The next command may create a container on a freed address (see EDGE_FORGET).
        std::thread::sleep(EDGE_FORGET);
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
/// plus a second (NGINX counts validity in whole seconds of its cached clock). Keep the two in step.
const EDGE_DNS_TTL: Duration = Duration::from_secs(11);

/// How long after a container behind the edge has stopped no NGINX request can still reach its address: a
/// request that resolved just before the stop holds the address for EDGE_DNS_TTL and may then spend up to
/// `proxy_connect_timeout 5s` (templates/nginx/nginx.conf.j2) connecting to it, with SYN retransmissions. The
/// Engine hands a freed address to the next container it creates (Docker 20.10 takes the lowest free one), so
/// a connect still in flight when that happens reaches the wrong container (a gateway answering a REST call
/// with 404). Nothing is created before this has passed.
const EDGE_FORGET: Duration = Duration::from_secs(11 + 5 + 1);

/// Start the new container beside the old one and wait until it is ready; give the edge one DNS lifetime
/// to add it to the addresses it balances over; stop the old one (it refuses new connections, which NGINX
/// retries on the new one, and drains the rest); then EDGE_FORGET, so no NGINX request still holds or dials
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
        Ok(()) => wait::wait_one(engine, container, line),
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
        std::thread::sleep(EDGE_FORGET);
    }
    line.finish("replaced (start-first)");
    Ok(())
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
        wait::append_container_report(engine, &self.name, &mut report);
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
