//! The Swarm backend: `deploy swarm`, `diff swarm`, and upgrades of a deployment that runs as a Swarm stack.
//! Renders the spec, read the rendered stack.yaml back as the
//! desired state, compare it with what the swarm runs (services, networks, secrets and configs found by their
//! labels) and apply the difference in start order, waiting for each group of services to be ready before the
//! next starts.
//!
//! Swarm has no `depends_on`, so the order is the Compose rendering's (stores, then `migrate`, then the roles,
//! then NGINX). A new service is created and waited for; an existing one is updated with the version it was
//! read at, and Swarm's own `update_config` rolls its tasks (start-first for the roles, rollback on failure);
//! a rollback or a paused update fails the deploy with the tasks' errors and the log tail of a failed task's
//! container. Failure leaves what runs running. `migrate` runs as a replicated job (Engine API 1.41): Swarm
//! records that it completed, a changed spec runs it again, and a failed run is run again on the next deploy.
//! An upgrade is a deploy of the new spec, and of the previous one (jobs kept) if that fails.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Result;

use super::backend::{Backend, Jobs, Purpose, Staged};
use super::wait::{self, Awaited, Readiness, deploy_failed, wait_all};
use crate::checks::{host, swarm as swarm_checks};
use crate::context::Context;
use crate::domain::Target;
use crate::engine::Engine;
use crate::error::Refusal;
use crate::folder;
use crate::manifest::compose::ComposeFile;
use crate::manifest::stack::StackFile;
use crate::plan::labels::TASK_HASH_LABEL;
use crate::plan::lines::ChangeLine;
use crate::plan::observed::{Health, ObjectKind, ObservedService, ObservedTask, ServiceMode};
use crate::plan::status::{self, Status};
use crate::plan::swarm::{self, Changes, Desired, DesiredService, JobOutcome, ServiceChange};
use crate::plan::{Ready, Reason, sha256_hex};
use crate::printer::{Printer, ProgressLine};
use crate::render::{self, TemplateSet};
use crate::spec::Spec;

/// New tasks of one service that may fail before the deploy gives up on it (Swarm keeps restarting them).
const FAILED_TASKS_TOLERATED: usize = 3;
/// How long a task may wait for a node before "no suitable node" is reported rather than waited out.
const UNPLACEABLE_SECONDS: u64 = 20;

/// A Swarm stack on the swarm this Docker Engine manages.
#[derive(Debug)]
pub struct SwarmBackend<'c> {
    pub context: &'c Context<'c>,
}

/// The rendered stack file and what its deploy needs besides: the start order and the rendered folder.
struct Prepared {
    stack: StackFile,
    groups: Vec<Vec<String>>,
    rendered: PathBuf,
}

/// A stack file rendered, read back and compared with what the swarm runs.
struct SwarmStaged<'s> {
    engine: &'s Engine,
    printer: &'s Printer,
    desired: Desired,
    changes: Changes,
}

impl SwarmBackend<'_> {
    /// Renders `spec` for Swarm into rendered/ (secrets and configs are read from there and from secrets/),
    /// parses stack.yaml, and takes the start order from the Compose rendering of the same spec.
    fn prepare(&self, spec: &Spec) -> Result<Prepared> {
        let folder = &self.context.folder;
        let templates = TemplateSet::embedded();
        let tree = render::render(spec, &templates, &[Target::Swarm]).map_err(|error| Refusal(error.to_string()))?;
        folder.replace_rendered(&tree)?;
        let rendered = std::path::absolute(folder.root().join(folder::RENDERED_DIR))?;
        let (path, text) = folder.read_rendered("stack.yaml")?;
        let path = rendered.join(path.file_name().unwrap_or_default());
        let stack = StackFile::parse(&path.display().to_string(), &text).map_err(|error| Refusal(error.to_string()))?;
        // The same services rendered for Compose carry the dependencies Swarm ignores.
        let compose_tree =
            render::render(spec, &templates, &[Target::Compose]).map_err(|error| Refusal(error.to_string()))?;
        let compose_text =
            compose_tree.get("compose.yaml").map(|bytes| String::from_utf8_lossy(bytes).into_owned()).ok_or_else(
                || Refusal("the Compose rendering has no compose.yaml to take the start order from".to_owned()),
            )?;
        let compose = ComposeFile::parse("compose.yaml (rendered for the start order)", &compose_text)
            .map_err(|error| Refusal(error.to_string()))?;
        let groups = compose.start_order().map_err(Refusal)?;
        for object in stack.secrets.values().chain(stack.configs.values()) {
            let source = crate::plan::compose::resolve(&rendered, &object.file);
            if !folder::is_file(&source) {
                return Err(Refusal(format!(
                    "{} does not exist: stack.yaml makes a Swarm secret or config of it ({})",
                    source.display(),
                    render::missing_file_hint(&source)
                ))
                .into());
            }
        }
        Ok(Prepared { stack, groups, rendered })
    }

    /// The desired state, with the local image id of each image reference (for "image changed").
    fn desired(&self, engine: &Engine, prepared: &Prepared, spec: &Spec) -> Result<Desired> {
        let mut image_ids = HashMap::new();
        for service in prepared.stack.services.values() {
            if !image_ids.contains_key(&service.image)
                && let Some(image) = engine.image(&service.image)?
            {
                image_ids.insert(service.image.clone(), image.id);
            }
        }
        let (stack, groups, rendered) = (&prepared.stack, &prepared.groups, &prepared.rendered);
        swarm::desired(spec.name.as_str(), stack, groups, rendered, &folder::file_digest, &image_ids)
            .map_err(|error| Refusal(error).into())
    }
}

impl Backend for SwarmBackend<'_> {
    fn target(&self) -> Target {
        Target::Swarm
    }

    fn stage<'s>(&'s self, spec: &Spec, purpose: Purpose) -> Result<Box<dyn Staged + 's>> {
        let (context, printer) = (self.context, self.context.printer);
        let prepared = self.prepare(spec)?;
        let engine = context.engine()?;
        if purpose == Purpose::Diff && !engine.manages_swarm()? {
            printer.note("this Docker Engine is not a swarm manager: everything would be created");
        }
        if let Purpose::Deploy { init_swarm } = purpose {
            swarm_checks::manager(engine, init_swarm, printer)?.refuse_if_failed()?;
            let has_containers = !engine.containers(spec.name.as_str())?.is_empty();
            host::one_target(spec.name.as_str(), Target::Swarm, has_containers).refuse_if_failed()?;
        }
        let checked = matches!(purpose, Purpose::Deploy { .. } | Purpose::Upgrade | Purpose::Rollback);
        if checked {
            let images: Vec<String> = prepared.stack.services.values().map(|service| service.image.clone()).collect();
            host::images_present(engine, &images, printer)?.refuse_if_failed()?;
        }
        let desired = self.desired(engine, &prepared, spec)?;
        if let Purpose::Deploy { .. } = purpose {
            swarm_checks::service_specs(&desired).refuse_if_failed()?;
        }
        if checked {
            let (labelled, nodes) = swarm_checks::node_labels(engine, &desired, printer)?;
            labelled.refuse_if_failed()?;
            swarm_checks::placeable(&nodes, &desired).refuse_if_failed()?;
        }
        let mut changes = changes(engine, &desired)?;
        if purpose == Purpose::Rollback {
            // The newer migration already ran, and an older one must not run over its schema.
            for change in &mut changes.services {
                if let ServiceChange::Update { desired, observed, .. } = change
                    && desired.ready == Ready::Completed
                {
                    *change = ServiceChange::Keep { desired: desired.clone(), observed: observed.clone() };
                }
            }
        }
        Ok(Box::new(SwarmStaged { engine, printer, desired, changes }))
    }

    fn status(&self, spec: &Spec) -> Result<Status> {
        let engine = self.context.engine()?;
        let deployment = spec.name.as_str();
        let now = i64::try_from(self.context.clock.now_unix_seconds()).unwrap_or(i64::MAX);
        let mut services = status::summarise(&engine.containers(deployment)?, now);
        let mut swarm_services = Vec::new();
        for service in engine.services(deployment)? {
            let tasks = engine.tasks(&service.id)?;
            swarm_services.push((service, tasks));
        }
        services.extend(status::summarise_swarm(
            deployment,
            &swarm_services,
            &engine.task_containers(deployment)?,
            now,
        ));
        Ok(Status { deployment: spec.name.to_string(), target: Target::Swarm.as_str().to_owned(), services })
    }

    fn shows_rollback(&self) -> bool {
        true
    }
}

impl Staged for SwarmStaged<'_> {
    fn is_empty(&self) -> bool {
        self.changes.is_empty()
    }

    fn lines(&self) -> Vec<ChangeLine> {
        self.changes.lines()
    }

    /// Jobs a rollback keeps were left out of the changes when they were staged.
    fn apply(&self, _jobs: Jobs) -> Result<()> {
        apply(self.engine, &self.desired, &self.changes, self.printer)
    }

    fn unhealthy(&self) -> Result<Vec<String>> {
        sick_services(self.engine, &self.desired.deployment)
    }

    /// A forced update of the service: Swarm replaces its tasks as its update config says (one at a time,
    /// start-first for the roles), and this waits until the update completed and every task runs healthy.
    fn restart(&self, service: &str) -> Result<usize> {
        let desired = self
            .desired
            .services
            .get(service)
            .ok_or_else(|| Refusal(format!("{service} is not deployed (0 replicas in cometctl.yaml)")))?;
        let observed = self
            .engine
            .service(&desired.name)?
            .ok_or_else(|| Refusal(format!("service {} does not run: deploy first", desired.name)))?;
        let known_tasks: HashSet<String> = self.engine.tasks(&observed.id)?.into_iter().map(|task| task.id).collect();
        let previous_update = observed.update.as_ref().map(|update| update.started_at.clone());
        self.engine.force_update_service(&desired.name)?;
        let line = self.printer.progress().line(&format!("restart {}", desired.name));
        wait::wait_one(
            self.engine,
            &ServiceWait::new(desired, Action::Updated { previous_update }, known_tasks),
            &line,
        )?;
        line.finish("ready");
        Ok(desired.tasks.map_or(1, |tasks| tasks as usize))
    }
}

/// The observed state and the changes that would take it to `desired`; everything is new on an Engine that
/// is not a swarm manager.
fn changes(engine: &Engine, desired: &Desired) -> Result<Changes> {
    let deployment = &desired.deployment;
    if !engine.manages_swarm()? {
        return Ok(swarm::changes(desired, &[], &[], &[], &HashMap::new()));
    }
    let services = engine.services(deployment)?;
    let networks = engine.networks(deployment)?;
    let mut objects = Vec::new();
    for kind in [ObjectKind::Secret, ObjectKind::Config] {
        objects.extend(engine.swarm_objects(kind, deployment)?.into_iter().map(|object| (kind, object)));
    }
    let mut jobs = HashMap::new();
    for service in &services {
        if matches!(service.mode, ServiceMode::ReplicatedJob(_) | ServiceMode::GlobalJob) {
            jobs.insert(service.name.clone(), job_outcome(service, &engine.tasks(&service.id)?));
        }
    }
    Ok(swarm::changes(desired, &services, &networks, &objects, &jobs))
}

/// How the current run of a job service went.
fn job_outcome(service: &ObservedService, tasks: &[ObservedTask]) -> JobOutcome {
    let current: Vec<&ObservedTask> = tasks.iter().filter(|task| task.job_iteration == service.job_iteration).collect();
    if current.iter().any(|task| task.state == "complete") {
        JobOutcome::Succeeded
    } else if current.is_empty() || current.iter().any(|task| !is_terminal(&task.state)) {
        JobOutcome::Pending
    } else {
        JobOutcome::Failed
    }
}

fn is_terminal(state: &str) -> bool {
    matches!(state, "complete" | "shutdown" | "failed" | "rejected" | "remove" | "orphaned")
}

/// Applies `changes`: networks, secrets and configs first, then each group of services, waiting for the
/// group to be ready; then removes the services and the secrets and configs nothing wants any more.
fn apply(engine: &Engine, desired: &Desired, changes: &Changes, printer: &Printer) -> Result<()> {
    for (name, body) in &desired.networks {
        if changes.networks_to_create.contains(name) {
            engine.ensure_network(name, body.clone())?;
        }
    }
    for object in &desired.objects {
        if !changes.objects_to_create.iter().any(|(kind, name)| *kind == object.kind && *name == object.name) {
            continue;
        }
        let content = folder::read_bytes(&object.source)?;
        let digest = sha256_hex(&content);
        if !object.name.ends_with(&digest[..10]) {
            return Err(Refusal(format!("{} changed during the deploy: deploy again", object.source.display())).into());
        }
        engine.create_swarm_object(object.kind, &object.name, &content, object.labels.clone())?;
    }
    let mut ids = HashMap::new();
    for kind in [ObjectKind::Secret, ObjectKind::Config] {
        ids.extend(engine.swarm_objects(kind, &desired.deployment)?.into_iter().map(|object| (object.name, object.id)));
    }
    let progress = printer.progress();
    for group in &desired.groups {
        let mut waiting: Vec<(ServiceWait, ProgressLine)> = Vec::new();
        for change in changes.services.iter().filter(|change| group.contains(&change.desired().service)) {
            let service = change.desired();
            let line = progress.line(&service.service);
            let spec = swarm::with_object_ids(&service.spec, &ids).map_err(Refusal)?;
            let wait = match change {
                ServiceChange::Create { .. } => {
                    line.set("creating");
                    engine.create_service(spec)?;
                    ServiceWait::new(service, Action::Created, HashSet::new())
                }
                ServiceChange::Update { reason, observed, .. } => {
                    line.set(&format!("updating ({})", reason.describe()));
                    let known = engine.tasks(&observed.id)?.into_iter().map(|task| task.id).collect();
                    let mut spec = spec;
                    let rerun = u64::from(*reason == Reason::JobFailed);
                    spec["TaskTemplate"]["ForceUpdate"] = observed.force_update.saturating_add(rerun).into();
                    engine.update_service(&observed.id, observed.version, spec)?;
                    let previous = observed.update.as_ref().map(|update| update.started_at.clone());
                    ServiceWait::new(service, Action::Updated { previous_update: previous }, known)
                }
                ServiceChange::Keep { .. } => {
                    line.set("unchanged; checking");
                    ServiceWait::new(service, Action::Kept, HashSet::new())
                }
            };
            waiting.push((wait, line));
        }
        wait_all(engine, &waiting)?;
    }
    for name in &changes.services_to_remove {
        let line = progress.line(name);
        engine.remove_service(name)?;
        line.finish("removed");
    }
    for (kind, name) in &changes.objects_to_remove {
        let Some(id) = ids.get(name) else { continue };
        let line = progress.line(name);
        match engine.remove_swarm_object(*kind, id) {
            Ok(()) => line.finish(&format!("{} removed (replaced)", kind.as_str())),
            Err(error) => line.finish(&format!("kept: {error}")),
        }
    }
    Ok(())
}

/// What the deploy did to a service it now waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    Created,
    /// Updated; `previous_update` is when the update before ours started (its status is not ours).
    Updated {
        previous_update: Option<String>,
    },
    Kept,
}

/// A service the deploy waits for.
struct ServiceWait {
    desired: DesiredService,
    action: Action,
    /// Tasks that existed before the change: their failures are history, not this deploy's.
    known_tasks: HashSet<String>,
    started: Instant,
}

impl ServiceWait {
    fn new(desired: &DesiredService, action: Action, known_tasks: HashSet<String>) -> ServiceWait {
        ServiceWait { desired: desired.clone(), action, known_tasks, started: Instant::now() }
    }

    /// Whether `task` belongs to the spec this deploy applied: it carries the current task hash. A service the
    /// deploy left alone runs the tasks Swarm made for its spec, whatever they carry.
    fn is_current(&self, task: &ObservedTask) -> bool {
        self.action == Action::Kept || task.labels.get(TASK_HASH_LABEL) == Some(&self.desired.task_hash)
    }

    /// The tasks of the current spec (and, for a job, of its current run).
    fn current<'a>(&self, service: &ObservedService, tasks: &'a [ObservedTask]) -> Vec<&'a ObservedTask> {
        tasks
            .iter()
            .filter(|task| self.is_current(task))
            .filter(|task| self.desired.ready != Ready::Completed || task.job_iteration == service.job_iteration)
            .collect()
    }

    fn failed_new<'a>(&self, current: &[&'a ObservedTask]) -> Vec<&'a ObservedTask> {
        current
            .iter()
            .copied()
            .filter(|task| matches!(task.state.as_str(), "failed" | "rejected") && !self.known_tasks.contains(&task.id))
            .collect()
    }
}

/// A task's state in a few words: its error, else its message.
fn describe_task(task: &ObservedTask) -> String {
    let detail = if task.error.is_empty() { &task.message } else { &task.error };
    let exit = task.exit_code.filter(|code| *code != 0).map(|code| format!(", exit {code}")).unwrap_or_default();
    format!("{}{exit}: {detail}", task.state)
}

impl Awaited for ServiceWait {
    fn timeout_seconds(&self) -> u64 {
        match self.action {
            Action::Updated { .. } => self.desired.update_timeout_seconds,
            Action::Created | Action::Kept => self.desired.ready_timeout_seconds,
        }
    }

    fn readiness(&self, engine: &Engine) -> Result<Readiness> {
        let Some(service) = engine.service(&self.desired.name)? else {
            return Ok(Readiness::Failed("the service disappeared".to_owned()));
        };
        if let Some(update) = &service.update {
            // The status of an update before ours (a finished rollback of an earlier deploy) is not ours.
            let ours = matches!(&self.action, Action::Updated { previous_update }
                if previous_update.as_ref() != Some(&update.started_at));
            let state = update.state.replace('_', " ");
            match update.state.as_str() {
                "rollback_completed" | "rollback_paused" | "paused" if ours => {
                    let detail = if update.message.is_empty() || update.message == state {
                        String::new()
                    } else {
                        format!(" ({})", update.message)
                    };
                    return Ok(Readiness::Failed(format!("did not update: {state}{detail}")));
                }
                "updating" | "rollback_started" => {
                    return Ok(Readiness::Waiting(format!("{state}: {}", update.message)));
                }
                _ => {}
            }
        }
        let tasks = engine.tasks(&service.id)?;
        let current = self.current(&service, &tasks);
        let failed = self.failed_new(&current);
        // An update's failures are Swarm's to handle (rollback); a new or unchanged service's are ours to report.
        let give_up = failed.len() >= FAILED_TASKS_TOLERATED && !matches!(self.action, Action::Updated { .. });
        if self.desired.ready == Ready::Completed {
            if current.iter().any(|task| task.state == "complete") {
                return Ok(Readiness::Ready("completed".to_owned()));
            }
            if give_up {
                return Ok(Readiness::Failed(format!(
                    "failed {} times; last: {}",
                    failed.len(),
                    describe_task(failed[0])
                )));
            }
            let latest = current.first().map_or_else(|| "waiting for its task".to_owned(), |task| describe_task(task));
            return Ok(Readiness::Waiting(latest));
        }
        let running: Vec<&ObservedTask> =
            current.iter().copied().filter(|task| task.desired_state == "running" && task.state == "running").collect();
        let mut ready = 0;
        let mut unhealthy = 0;
        for task in &running {
            // Swarm reports a task with a health check running only once it was healthy; its container (on
            // this node) tells whether it still is.
            let health = match &task.container_id {
                Some(id) => engine.container_detail(id)?.map_or(Health::None, |detail| detail.health),
                None => Health::None,
            };
            match (self.desired.ready, health) {
                (_, Health::Unhealthy) => unhealthy += 1,
                (Ready::Healthy, Health::Starting) => {}
                _ => ready += 1,
            }
        }
        let wanted = self.desired.tasks.map_or_else(
            || current.iter().filter(|task| task.desired_state == "running").count().max(1),
            |tasks| tasks as usize,
        );
        let old = tasks.iter().filter(|task| task.desired_state == "running" && !self.is_current(task)).count();
        if ready >= wanted && old == 0 {
            let how = if self.desired.ready == Ready::Healthy { "healthy" } else { "running" };
            return Ok(Readiness::Ready(format!("{ready}/{wanted} {how}")));
        }
        if give_up {
            return Ok(Readiness::Failed(format!("{} tasks failed; last: {}", failed.len(), describe_task(failed[0]))));
        }
        let pending: Vec<&&ObservedTask> =
            current.iter().filter(|task| task.desired_state == "running" && task.state == "pending").collect();
        if let Some(stuck) = pending
            .iter()
            .find(|task| task.error.contains("no suitable node") || task.message.contains("no suitable node"))
            && self.started.elapsed().as_secs() > UNPLACEABLE_SECONDS
        {
            return Ok(Readiness::Failed(format!("cannot be placed: {}", describe_task(stuck))));
        }
        let mut message = format!("{ready}/{wanted} ready");
        if unhealthy > 0 {
            let _ = write!(message, ", {unhealthy} unhealthy");
        }
        if old > 0 {
            let _ = write!(message, ", {old} old tasks still running");
        }
        if let Some(latest) = current.iter().find(|task| task.state != "running") {
            let _ = write!(message, "; {}", describe_task(latest));
        }
        Ok(Readiness::Waiting(message))
    }

    fn failure(&self, engine: &Engine, what: &str) -> anyhow::Error {
        let desired = &self.desired;
        let mut report = format!("service `{}` (Swarm service {}) {what}", desired.service, desired.name);
        let tasks = engine.service(&desired.name).ok().flatten().and_then(|service| engine.tasks(&service.id).ok());
        let tasks = tasks.unwrap_or_default();
        let troubled: Vec<&ObservedTask> = tasks
            .iter()
            .filter(|task| self.is_current(task))
            .filter(|task| matches!(task.state.as_str(), "failed" | "rejected") || !task.error.is_empty())
            .collect();
        if !troubled.is_empty() {
            report.push_str("\n  its tasks, newest first:");
            // Identical failures once, with how many tasks had them.
            let mut seen: Vec<(String, &str, usize)> = Vec::new();
            for task in &troubled {
                let description = describe_task(task);
                match seen.iter_mut().find(|(known, _, _)| *known == description) {
                    Some((_, _, times)) => *times += 1,
                    None => seen.push((description, task.timestamp.get(..19).unwrap_or(&task.timestamp), 1)),
                }
            }
            for (description, time, times) in seen.iter().take(5) {
                let repeated = if *times > 1 { format!(" ({times} tasks)") } else { String::new() };
                let _ = write!(report, "\n    {time} {description}{repeated}");
            }
        }
        // The newest failed task whose container is on this node, else any task's.
        let container = troubled.iter().chain(tasks.iter().collect::<Vec<_>>().iter()).find_map(|task| {
            task.container_id.clone().filter(|id| engine.container_detail(id).ok().flatten().is_some())
        });
        match container {
            Some(id) => {
                let _ = write!(report, "\n  container {}:", id.get(..12).unwrap_or(&id));
                wait::append_container_report(engine, &id, &mut report);
            }
            None => report.push_str("\n  (no container of it on this node to read logs from)"),
        }
        deploy_failed(report)
    }
}

/// The long-running services that do not run all their tasks healthy, each with what it runs.
fn sick_services(engine: &Engine, deployment: &str) -> Result<Vec<String>> {
    let mut sick = Vec::new();
    for service in engine.services(deployment)? {
        let tasks = engine.tasks(&service.id)?;
        let running: Vec<&ObservedTask> =
            tasks.iter().filter(|task| task.desired_state == "running" && task.state == "running").collect();
        let wanted = match service.mode {
            ServiceMode::Replicated(count) => usize::try_from(count).unwrap_or(usize::MAX),
            ServiceMode::Global => tasks.iter().filter(|task| task.desired_state == "running").count(),
            ServiceMode::ReplicatedJob(_) | ServiceMode::GlobalJob => continue,
        };
        let mut healthy = 0;
        for task in &running {
            let health = match &task.container_id {
                Some(id) => engine.container_detail(id)?.map_or(Health::None, |detail| detail.health),
                None => Health::None,
            };
            if !matches!(health, Health::Unhealthy | Health::Starting) {
                healthy += 1;
            }
        }
        if healthy < wanted {
            sick.push(format!("{} ({healthy}/{wanted} running and healthy)", service.name));
        }
    }
    Ok(sick)
}
