//! What the Engine runs, as plain data: `engine` converts bollard's types into these, so the code that
//! reasons about state (plans, changes, checks, status) never depends on the Engine client.

use std::collections::HashMap;

/// A local image, as the Engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalImage {
    pub id: String,
    pub size: i64,
}

/// Health as the Engine reports it for a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    Healthy,
    Unhealthy,
    Starting,
    /// The container has no health check.
    None,
}

/// One container of a deployment, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedContainer {
    pub id: String,
    pub name: String,
    pub service: String,
    pub image: String,
    pub running: bool,
    pub health: Health,
    /// When it was created, seconds since the epoch.
    pub created: i64,
    /// Published ports as `host:container`.
    pub ports: Vec<String>,
    /// The image the container runs, by id (`sha256:…`).
    pub image_id: String,
    /// The exit code of a stopped container (from the Engine's status line), if it has exited.
    pub exit_code: Option<i64>,
    pub labels: HashMap<String, String>,
}

/// A container's state in detail (`GET /containers/{id}/json`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerDetail {
    pub running: bool,
    /// `created`, `running`, `exited`, `restarting`, …
    pub status: String,
    pub exit_code: Option<i64>,
    pub health: Health,
    /// The output of the last health probes, oldest first.
    pub health_log: Vec<String>,
    pub restart_count: i64,
}

/// The Engine's version and its host, as `/version` and `/info` report them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineHost {
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub kernel: String,
    pub cpus: i64,
    pub memory_bytes: i64,
    /// Where the Engine keeps images, containers and volumes.
    pub root_dir: String,
}

/// One command to run in one container (`Engine::exec_all`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub container: String,
    pub command: Vec<String>,
}

/// How a command whose stdout was streamed ended (`Engine::exec_streaming`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamedExec {
    pub exit_code: Option<i64>,
    /// The start of what it wrote to stderr (its log), for the error when it failed.
    pub stderr: String,
    /// Bytes of stdout passed on.
    pub stdout_bytes: u64,
}

/// What a command run in a container returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub exit_code: Option<i64>,
    /// stdout and stderr as they came.
    pub output: String,
}

/// How a container is configured and has fared, for the security and restart checks (`GET
/// /containers/{id}/json`). `env` holds values: it is compared, never shown.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContainerConfig {
    pub name: String,
    pub user: String,
    pub read_only: bool,
    pub cap_drop: Vec<String>,
    pub env: Vec<(String, String)>,
    pub restart_count: i64,
    pub oom_killed: bool,
    pub running: bool,
    pub image: String,
}

/// What the Engine's host offers containers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostCapacity {
    pub cpus: i64,
    pub memory_bytes: i64,
}

/// Where this Engine stands in a swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SwarmRole {
    /// Not part of a swarm.
    Inactive,
    /// A manager: services can be created and inspected from here.
    Manager { node_id: String },
    /// A worker, or a node joining, leaving or in error (`state` says which).
    Other { state: String },
}

/// One node of the swarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmNode {
    pub id: String,
    pub hostname: String,
    pub labels: HashMap<String, String>,
    /// Ready and available for tasks (not paused or drained).
    pub schedulable: bool,
    /// Ready (whatever its availability).
    pub ready: bool,
    pub manager: bool,
    /// The managers' leader.
    pub leader: bool,
    pub nano_cpus: i64,
    pub memory_bytes: i64,
}

/// How a service runs its tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceMode {
    Replicated(u64),
    Global,
    /// Runs to completion this many times.
    ReplicatedJob(u64),
    GlobalJob,
}

/// A rolling update of a service, as the Engine reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdateStatus {
    /// `updating`, `paused`, `completed`, `rollback_started`, `rollback_paused`, `rollback_completed`.
    pub state: String,
    pub message: String,
    pub started_at: String,
}

/// One Swarm service of a deployment, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedService {
    pub id: String,
    pub name: String,
    /// The version index an update must name.
    pub version: u64,
    /// The service's own labels (not its containers').
    pub labels: HashMap<String, String>,
    pub image: String,
    pub mode: ServiceMode,
    pub force_update: u64,
    pub update: Option<UpdateStatus>,
    /// The job's current run (jobs only).
    pub job_iteration: Option<u64>,
    /// Published ports as `published:target` (with `/host` for host-mode ports).
    pub ports: Vec<String>,
}

/// One task of a service, as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedTask {
    pub id: String,
    pub node_id: String,
    /// `running`, `shutdown`, `complete`, …: what the orchestrator wants.
    pub desired_state: String,
    /// What the task is: `new` … `starting`, `running`, `complete`, `failed`, `rejected`, `shutdown`, …
    pub state: String,
    pub message: String,
    pub error: String,
    pub container_id: Option<String>,
    pub exit_code: Option<i64>,
    /// The labels of its container (from the task's spec).
    pub labels: HashMap<String, String>,
    pub job_iteration: Option<u64>,
    /// When the task last changed state (RFC 3339).
    pub timestamp: String,
}

/// A Swarm secret or config: name, id and labels (never the content).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwarmObject {
    pub id: String,
    pub name: String,
    pub labels: HashMap<String, String>,
}

/// Which kind of Swarm object holds a file for services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ObjectKind {
    Secret,
    Config,
}

impl ObjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectKind::Secret => "secret",
            ObjectKind::Config => "config",
        }
    }
}
