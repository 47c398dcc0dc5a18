//! `cometctl deploy swarm` and `cometctl diff swarm`: render the spec, read the rendered stack.yaml back as the
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
//! `upgrade` of a Swarm deployment is a deploy of the new spec, and of the previous one if that fails.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use sha2::{Digest as _, Sha256};

use crate::args::{DeployArgs, DiffArgs};
use crate::commands::deploy::{
    Awaited, Jobs, Line, Readiness, append_container_report, deploy_failed, ensure_images, finish, print_change_lines,
    wait_all,
};
use crate::commands::upgrade::HistoryRecord;
use crate::compose::ComposeFile;
use crate::deploy::{Ready, Reason};
use crate::domain::Target;
use crate::engine::{Engine, Health, ObjectKind, ObservedService, ObservedTask, ServiceMode, SwarmNode, SwarmRole};
use crate::folder::{DeploymentFolder, Refusal};
use crate::printer::{Printer, ProgressLine};
use crate::render::{self, TemplateSet};
use crate::spec::Spec;
use crate::stack::StackFile;
use crate::swarm::{self, Changes, Desired, DesiredService, JobOutcome, ServiceChange, TASK_HASH_LABEL};

/// New tasks of one service that may fail before the deploy gives up on it (Swarm keeps restarting them).
const FAILED_TASKS_TOLERATED: usize = 3;
/// How long a task may wait for a node before "no suitable node" is reported rather than waited out.
const UNPLACEABLE_SECONDS: u64 = 20;
/// The address a single-node swarm made by `--init-swarm` advertises and listens on.
const SINGLE_NODE_ADDRESS: &str = "127.0.0.1";

/// The rendered stack file and what its deploy needs besides: the start order and the rendered folder.
pub struct Prepared {
    stack: StackFile,
    groups: Vec<Vec<String>>,
    rendered: PathBuf,
}

/// Renders `spec` for Swarm into rendered/ (secrets and configs are read from there and from secrets/),
/// parses stack.yaml, and takes the start order from the Compose rendering of the same spec.
pub fn prepare(folder: &DeploymentFolder, spec: &Spec) -> Result<Prepared> {
    let templates = TemplateSet::embedded();
    let tree = render::render(spec, &templates, &[Target::Swarm]).map_err(|error| Refusal(error.to_string()))?;
    folder.replace_rendered(&tree)?;
    let rendered = std::path::absolute(folder.root().join(crate::folder::RENDERED_DIR))?;
    let path = rendered.join("stack.yaml");
    let text = fs_err::read_to_string(&path)?;
    let stack = StackFile::parse(&path.display().to_string(), &text).map_err(|error| Refusal(error.to_string()))?;
    // The same services rendered for Compose carry the dependencies Swarm ignores.
    let compose_tree =
        render::render(spec, &templates, &[Target::Compose]).map_err(|error| Refusal(error.to_string()))?;
    let compose_text = compose_tree
        .get("compose.yaml")
        .map(|bytes| String::from_utf8_lossy(bytes).into_owned())
        .ok_or_else(|| Refusal("the Compose rendering has no compose.yaml to take the start order from".to_owned()))?;
    let compose = ComposeFile::parse("compose.yaml (rendered for the start order)", &compose_text)
        .map_err(|error| Refusal(error.to_string()))?;
    let groups = compose.start_order().map_err(Refusal)?;
    for object in stack.secrets.values().chain(stack.configs.values()) {
        let source = crate::deploy::resolve(&rendered, &object.file);
        if !source.is_file() {
            return Err(Refusal(format!(
                "{} does not exist: stack.yaml makes a Swarm secret or config of it (secrets/ and tls/ are written by \
                 `cometctl init`)",
                source.display()
            ))
            .into());
        }
    }
    Ok(Prepared { stack, groups, rendered })
}

fn sha256_file(path: &Path) -> String {
    match fs_err::read(path) {
        Ok(bytes) => Sha256::digest(&bytes).iter().map(|byte| format!("{byte:02x}")).collect(),
        Err(_) => "missing".to_owned(),
    }
}

/// The desired state, with the local image id of each image reference (for "image changed").
pub fn desired_state(engine: &Engine, prepared: &Prepared, spec: &Spec) -> Result<Desired> {
    let mut image_ids = HashMap::new();
    for service in prepared.stack.services.values() {
        if !image_ids.contains_key(&service.image)
            && let Some(image) = engine.image(&service.image)?
        {
            image_ids.insert(service.image.clone(), image.id);
        }
    }
    swarm::desired(spec.name.as_str(), &prepared.stack, &prepared.groups, &prepared.rendered, &sha256_file, &image_ids)
        .map_err(|error| Refusal(error).into())
}

/// The observed state and the changes that would take it to `desired`; everything is new on an Engine that
/// is not a swarm manager.
pub fn plan(engine: &Engine, desired: &Desired) -> Result<Changes> {
    let deployment = &desired.deployment;
    if !matches!(engine.swarm_role()?, SwarmRole::Manager { .. }) {
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

fn lines(changes: &Changes) -> Vec<Line> {
    let line = Line::new;
    let mut lines = Vec::new();
    lines.extend(changes.networks_to_create.iter().map(|name| line("create", "network", name, "new")));
    lines.extend(
        changes.objects_to_create.iter().map(|(kind, name)| line("create", kind.as_str(), name, "new content")),
    );
    for change in &changes.services {
        match change {
            ServiceChange::Create { desired } => lines.push(line("create", "service", &desired.name, "new")),
            ServiceChange::Update { desired, reason, .. } => {
                let how = if desired.ready == Ready::Completed { "run again" } else { "rolling update" };
                lines.push(line("update", "service", &desired.name, &format!("{} ({how})", reason.describe())));
            }
            ServiceChange::Keep { .. } => {}
        }
    }
    lines
        .extend(changes.services_to_remove.iter().map(|name| line("remove", "service", name, "no longer in the spec")));
    lines.extend(
        changes.objects_to_remove.iter().map(|(kind, name)| line("remove", kind.as_str(), name, "replaced or unused")),
    );
    lines
}

fn print_lines(printer: &Printer, title: &str, changes: &Changes) -> Result<()> {
    print_change_lines(printer, title, &lines(changes))
}

pub fn diff(args: &DiffArgs, printer: &Printer) -> Result<()> {
    let folder = DeploymentFolder::new(&args.dir);
    let spec = folder.read_spec()?;
    let prepared = prepare(&folder, &spec)?;
    let engine = Engine::connect()?;
    if !matches!(engine.swarm_role()?, SwarmRole::Manager { .. }) {
        printer.note("this Docker Engine is not a swarm manager: everything would be created");
    }
    let desired = desired_state(&engine, &prepared, &spec)?;
    let changes = plan(&engine, &desired)?;
    print_lines(printer, &format!("diff swarm {}", spec.name), &changes)
}

pub fn run(args: &DeployArgs, printer: &Printer) -> Result<()> {
    let folder = DeploymentFolder::new(&args.dir);
    let spec = folder.read_spec()?;
    let prepared = prepare(&folder, &spec)?;
    let engine = Engine::connect()?;
    ensure_manager(&engine, args.init_swarm, printer)?;
    crate::commands::deploy::refuse_other_target(&engine, spec.name.as_str(), Target::Swarm)?;
    let images: Vec<String> = prepared.stack.services.values().map(|service| service.image.clone()).collect();
    ensure_images(&engine, &images, printer)?;
    let desired = desired_state(&engine, &prepared, &spec)?;
    for service in desired.services.values() {
        crate::engine::check_service_spec(service.spec.clone()).map_err(|error| Refusal(error.to_string()))?;
    }
    let nodes = ensure_node_labels(&engine, &desired, printer)?;
    check_capacity(&nodes, &desired)?;
    let started = Instant::now();
    let changes = plan(&engine, &desired)?;
    if changes.is_empty() {
        printer.result(&format!("deploy swarm {}: no changes", spec.name))?;
        return Ok(());
    }
    print_lines(printer, &format!("deploy swarm {}", spec.name), &changes)?;
    let outcome = apply(&engine, &desired, &changes, printer);
    finish(&folder, &spec, Target::Swarm, started, outcome, printer)
}

/// Refuses unless this Engine manages a swarm; with `init`, makes an Engine in no swarm a single-node one.
fn ensure_manager(engine: &Engine, init: bool, printer: &Printer) -> Result<()> {
    match engine.swarm_role()? {
        SwarmRole::Manager { .. } => Ok(()),
        SwarmRole::Inactive if init => {
            let listen = format!("{SINGLE_NODE_ADDRESS}:2377");
            engine.init_swarm(SINGLE_NODE_ADDRESS, &listen)?;
            printer.note(&format!(
                "this Docker Engine is now a single-node swarm (advertised at {SINGLE_NODE_ADDRESS}, listening on \
                 {listen} only, so no other node can join it); `docker swarm leave --force` undoes it"
            ));
            Ok(())
        }
        SwarmRole::Inactive => Err(Refusal(
            "this Docker Engine is not part of a swarm: run `docker swarm init --advertise-addr <this host's address>` \
             (other nodes can then join), or `cometctl deploy swarm --init-swarm` for a single-node swarm on this host"
                .to_owned(),
        )
        .into()),
        SwarmRole::Other { state } => Err(Refusal(format!(
            "this Docker Engine is {state} in its swarm, not a manager: run cometctl where DOCKER_HOST reaches a \
             manager node (`docker node ls` on a manager lists them)"
        ))
        .into()),
    }
}

/// Makes sure the node labels the services are pinned to exist. On a single-node swarm every pinned service
/// can only run on that node, so it gets the labels (and a note says so); with more nodes the operator decides
/// where the data lives, and missing labels are refused with the commands that set them.
fn ensure_node_labels(engine: &Engine, desired: &Desired, printer: &Printer) -> Result<Vec<SwarmNode>> {
    let mut nodes: Vec<SwarmNode> = engine.nodes()?.into_iter().filter(|node| node.schedulable).collect();
    let needed: BTreeSet<(String, String)> =
        desired.services.values().flat_map(|service| service.node_labels.iter().cloned()).collect();
    let missing: Vec<(String, String)> = needed
        .into_iter()
        .filter(|(key, value)| !nodes.iter().any(|node| node.labels.get(key) == Some(value)))
        .collect();
    if !missing.is_empty() {
        let text = missing.iter().map(|(key, value)| format!("{key}={value}")).collect::<Vec<_>>().join(", ");
        match nodes.as_mut_slice() {
            [only] => {
                engine.add_node_labels(&only.id, &missing)?;
                only.labels.extend(missing.iter().cloned());
                printer.note(&format!(
                    "labelled node {} with {text}: on a single-node swarm every pinned service runs there",
                    only.hostname
                ));
            }
            [] => return Err(Refusal("the swarm has no node that is ready and active".to_owned()).into()),
            _ => {
                let commands: Vec<String> = missing
                    .iter()
                    .map(|(key, value)| format!("docker node update --label-add {key}={value} <node>"))
                    .collect();
                return Err(Refusal(format!(
                    "no node of the swarm carries {text}, which services are pinned to (their data lives on that \
                     node): label the nodes first, e.g.\n  {}\n(rendered/stack.yaml lists every label)",
                    commands.join("\n  ")
                ))
                .into());
            }
        }
    }
    for service in desired.services.values() {
        let (Some(per_node), Some(tasks)) = (service.max_replicas_per_node, service.tasks) else { continue };
        let eligible = nodes
            .iter()
            .filter(|node| service.node_labels.iter().all(|(key, value)| node.labels.get(key) == Some(value)))
            .count() as u64;
        let room = per_node.saturating_mul(eligible);
        if u64::from(tasks) > room {
            return Err(Refusal(format!(
                "service `{}` wants {tasks} tasks, at most {per_node} per node, and {eligible} node(s) can run it: \
                 lower its replicas under plan.services in cometctl.yaml to {}, or label more nodes",
                service.service, room
            ))
            .into());
        }
    }
    Ok(nodes)
}

/// Refuses a plan Swarm could not place: a CPU limit above every node's CPUs (the container would not start),
/// or more CPU or memory reserved than the nodes have together (tasks would stay pending).
fn check_capacity(nodes: &[SwarmNode], desired: &Desired) -> Result<()> {
    let largest = nodes.iter().map(|node| node.nano_cpus).max().unwrap_or(0);
    for service in desired.services.values() {
        if let Some(limit) = service.cpu_limit_nanos
            && largest > 0
            && limit > largest
        {
            return Err(Refusal(format!(
                "service `{}` is limited to {} CPUs but the largest node has {}: lower its cpu_millis.limit under \
                 plan.services in cometctl.yaml (at most {})",
                service.service,
                limit as f64 / 1e9,
                largest as f64 / 1e9,
                largest / 1_000_000
            ))
            .into());
        }
    }
    let per_node = u32::try_from(nodes.len()).unwrap_or(u32::MAX);
    let count = |service: &DesiredService| i64::from(service.tasks.unwrap_or(per_node));
    let cpus: i64 = nodes.iter().map(|node| node.nano_cpus).sum();
    let memory: i64 = nodes.iter().map(|node| node.memory_bytes).sum();
    let total = |amount: &dyn Fn(&DesiredService) -> i64| {
        desired.services.values().fold(0_i64, |sum, s| sum.saturating_add(count(s).saturating_mul(amount(s))))
    };
    let reserved_cpus = total(&|service| service.reserved_nano_cpus);
    let reserved_memory = total(&|service| service.reserved_memory);
    let largest_reservers = |amount: &dyn Fn(&DesiredService) -> i64, unit: f64, suffix: &str| {
        let mut services: Vec<&DesiredService> = desired.services.values().collect();
        services.sort_by_key(|service| std::cmp::Reverse(count(service).saturating_mul(amount(service))));
        services
            .iter()
            .take(3)
            .map(|service| {
                format!("{} {}×{:.2}{suffix}", service.service, count(service), amount(service) as f64 / unit)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    if cpus > 0 && reserved_cpus > cpus {
        return Err(Refusal(format!(
            "the services reserve {:.2} CPUs in all and the swarm's nodes have {:.2}: Swarm would leave tasks \
             pending. Lower cpu_millis.request under plan.services in cometctl.yaml (largest: {})",
            reserved_cpus as f64 / 1e9,
            cpus as f64 / 1e9,
            largest_reservers(&|service| service.reserved_nano_cpus, 1e9, "")
        ))
        .into());
    }
    if memory > 0 && reserved_memory > memory {
        let gib = f64::from(1u32 << 30);
        return Err(Refusal(format!(
            "the services reserve {:.1} GiB of memory in all and the swarm's nodes have {:.1} GiB: Swarm would \
             leave tasks pending. Lower memory_mib.request under plan.services in cometctl.yaml (largest: {})",
            reserved_memory as f64 / gib,
            memory as f64 / gib,
            largest_reservers(&|service| service.reserved_memory, gib, " GiB")
        ))
        .into());
    }
    Ok(())
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
        let content = fs_err::read(&object.source)?;
        let digest: String = Sha256::digest(&content).iter().map(|byte| format!("{byte:02x}")).collect();
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
                append_container_report(engine, &id, &mut report);
            }
            None => report.push_str("\n  (no container of it on this node to read logs from)"),
        }
        deploy_failed(report)
    }
}

/// Whether `deployment` runs as Swarm services on this Engine.
pub fn runs_on_swarm(engine: &Engine, deployment: &str) -> Result<bool> {
    Ok(matches!(engine.swarm_role()?, SwarmRole::Manager { .. }) && !engine.services(deployment)?.is_empty())
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

/// Renders `spec` and applies it: the change lines under `title`, then the changes. With `Jobs::Keep` (a
/// rollback) a job whose spec changed is left as it is: the newer migration already ran, and an older one must
/// not run over its schema.
fn deploy_spec(
    engine: &Engine,
    folder: &DeploymentFolder,
    spec: &Spec,
    title: &str,
    jobs: Jobs,
    printer: &Printer,
) -> Result<()> {
    let prepared = prepare(folder, spec)?;
    let images: Vec<String> = prepared.stack.services.values().map(|service| service.image.clone()).collect();
    ensure_images(engine, &images, printer)?;
    let desired = desired_state(engine, &prepared, spec)?;
    let nodes = ensure_node_labels(engine, &desired, printer)?;
    check_capacity(&nodes, &desired)?;
    let mut changes = plan(engine, &desired)?;
    if jobs == Jobs::Keep {
        for change in &mut changes.services {
            if let ServiceChange::Update { desired, observed, .. } = change
                && desired.ready == Ready::Completed
            {
                *change = ServiceChange::Keep { desired: desired.clone(), observed: observed.clone() };
            }
        }
    }
    print_lines(printer, title, &changes)?;
    apply(engine, &desired, &changes, printer)
}

/// `upgrade` of a deployment on Swarm: refused unless the swarm runs exactly what cometctl.yaml renders and every
/// service is healthy; then `deploy swarm` of the new spec, where Swarm's `update_config` rolls the roles
/// (start-first) and rolls a failing one back by itself. On failure the previous spec is deployed again (jobs
/// kept), the command exits 3, and cometctl.yaml keeps the previous version. Recorded in history.jsonl.
pub fn upgrade(engine: &Engine, folder: &DeploymentFolder, spec: &Spec, next: &Spec, printer: &Printer) -> Result<()> {
    let deployment = spec.name.as_str();
    let current = prepare(folder, spec)?;
    let drift = plan(engine, &desired_state(engine, &current, spec)?)?;
    if !drift.is_empty() {
        return Err(Refusal(format!(
            "the deployment differs from cometctl.yaml ({} changes; see `cometctl diff swarm`): deploy it with \
             `cometctl deploy swarm` before upgrading",
            lines(&drift).len()
        ))
        .into());
    }
    let sick = sick_services(engine, deployment)?;
    if !sick.is_empty() {
        return Err(Refusal(format!(
            "refusing to upgrade an unhealthy deployment: {}; fix it first (`cometctl status`)",
            sick.join(", ")
        ))
        .into());
    }
    let (from, to) = (spec.images.comet.reference(), next.images.comet.reference());
    let title = format!("upgrade {deployment} {from} → {to}");
    let started = Instant::now();
    let record = |result: &str, detail: &str| {
        let seconds = started.elapsed().as_secs_f64();
        folder.append_history(&HistoryRecord::new("upgrade", Target::Swarm, spec, next, result, seconds, detail))
    };
    match deploy_spec(engine, folder, next, &title, Jobs::Run, printer) {
        Ok(()) => {
            folder.write_spec(next)?;
            record("ok", "")?;
            printer.result(&format!("{title}: done in {:.1}s", started.elapsed().as_secs_f64()))?;
            Ok(())
        }
        Err(error) => {
            printer.warning(&format!("{error:#}"));
            printer.warning(&format!("rolling back to {from}"));
            let rolled_back =
                deploy_spec(engine, folder, spec, &format!("rollback {deployment} to {from}"), Jobs::Keep, printer);
            let detail = format!("{error:#}").lines().next().unwrap_or_default().to_owned();
            record(if rolled_back.is_ok() { "rolled-back" } else { "failed" }, &detail)?;
            rolled_back?;
            Err(error.context(format!(
                "upgrade to {to} failed and was rolled back to {from} in {:.1}s",
                started.elapsed().as_secs_f64()
            )))
        }
    }
}
