//! Command-line arguments: clap types only. Commands turn them into domain values before doing anything.

mod folder;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

pub use folder::FolderArg;

use crate::domain::{Concurrency, Mau, Target};
use crate::env;
use crate::sizing::SizingRequest;

#[derive(Debug, Parser)]
#[command(name = "cometctl", version, about = "Size, render, deploy and operate a Comet in a Box chat platform")]
#[command(
    after_help = "Exit codes: 0 success; 1 failure (IO, environment); 2 invalid input (arguments, spec, refused action); \
3 a deploy or upgrade stopped, or a doctor check fails; 4 a doctor check warns."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Output format of read commands: a human table or JSON on stdout.
    #[arg(long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    /// Colour: auto (a terminal and no NO_COLOR), always or never.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto)]
    pub color: ColorChoice,
    /// Hide progress bars (they are hidden anyway when stderr is not a terminal).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Print only results and errors.
    #[arg(long, short, global = true)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Size a deployment and write its folder: cometctl.yaml, secrets/ and a development TLS certificate.
    Init(InitArgs),
    /// Print the sizing plan for a number of monthly active users without writing anything.
    Sizing(SizingArgs),
    /// Render Compose, Swarm and Kubernetes manifests and service configuration into <dir>/rendered/.
    Render(RenderArgs),
    /// What `deploy` would create, replace or remove, compared with what the Docker Engine runs.
    Diff(DiffArgs),
    /// Deploy the spec to the Docker Engine and wait until every service is ready ("no changes" when nothing
    /// differs).
    Deploy(DeployArgs),
    /// Move a healthy deployment (compose or swarm) to new images: migrate once, replace roles start-first,
    /// roll back by itself on failure.
    Upgrade(UpgradeArgs),
    /// What the Docker Engine runs for this deployment: one row per service (`--output json` for scripts).
    Status(StatusArgs),
    /// Remove the deployment's containers, Swarm services and networks from the Docker Engine; volumes stay
    /// unless --volumes, Swarm secrets and configs unless --secrets.
    Destroy(DestroyArgs),
    /// Re-size the deployment for a new number of users (`--mau`) or set replicas (`api=4`): shows the plan
    /// diff and the deploy diff, asks (`--yes` for scripts), deploys, rolls back by itself on failure.
    Scale(ScaleArgs),
    /// Load the running deployment through its NGINX (HTTPS and WSS, on this host): sockets, 1:1 sends at a
    /// rate, send→deliver latency, against what the plan was sized for (`--output json` for scripts).
    Bench(BenchArgs),
    /// Playbooks: routine procedures as typed step lists (grow, rolling-restart, troubleshooting), with a dry
    /// run, a journal and resume.
    #[command(subcommand)]
    Playbook(PlaybookCommand),
    /// Back up the deployment: the database (one consistent snapshot) and the deployment folder, encrypted,
    /// with an authenticated manifest; `backup list` and `backup verify ID` read sets back.
    Backup(BackupArgs),
    /// Put a verified backup set back: the deployment folder's files (`config`) and the database (`tidb`,
    /// into a fresh deployment's empty database), each count checked against the manifest.
    Restore(RestoreArgs),
    /// Build and move container images (no registry needed).
    #[command(subcommand)]
    Images(ImagesCommand),
    /// One verdict on this host and the running deployment: every check with its evidence, threshold and fix
    /// (`--output json` for scripts). Without a deployment folder, the host checks against the default 10k plan.
    Doctor(DoctorArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 nothing warns or fails; 4 the worst outcome is a warn; 3 a check fails; 2 invalid arguments (an unknown --only/--skip id lists the ids) or --apply refused; 1 doctor itself cannot run (no Docker Engine). The checks are listed in docs/operations/doctor.md."
)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub folder: FolderArg,
    /// Only the host checks (the preflight `deploy` runs), even in a deployment folder.
    #[arg(long)]
    pub host_only: bool,
    /// Only these checks: ids (host.nofile) or areas (host, swarm, deployment, stores, edge, security,
    /// observability, backups), comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub only: Vec<String>,
    /// Leave out these checks (ids or areas, comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "ID")]
    pub skip: Vec<String>,
    /// Fix what is safe and local (sysctl values, transparent huge pages; the Docker daemon's open-files
    /// drop-in is printed), after showing what will change; at a terminal it asks, elsewhere it needs --yes.
    #[arg(long)]
    pub apply: bool,
    /// Confirm --apply without a prompt (scripts).
    #[arg(long)]
    pub yes: bool,
}

/// Where `deploy` and `diff` apply the spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DeployTarget {
    /// Containers on this Docker Engine, as Docker Compose would run them.
    Compose,
    /// A Docker Swarm stack.
    Swarm,
}

impl From<DeployTarget> for Target {
    fn from(target: DeployTarget) -> Target {
        match target {
            DeployTarget::Compose => Target::Compose,
            DeployTarget::Swarm => Target::Swarm,
        }
    }
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    #[arg(value_enum)]
    pub target: DeployTarget,
    #[command(flatten)]
    pub folder: FolderArg,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 every service ready (or no changes); 1 failure of the environment; \
2 invalid input or refused; 3 a service did not become ready (what ran before still runs).")]
pub struct DeployArgs {
    #[arg(value_enum)]
    pub target: DeployTarget,
    #[command(flatten)]
    pub folder: FolderArg,
    /// swarm: if this Docker Engine is in no swarm, make it a single-node swarm (advertised and listening on
    /// 127.0.0.1 only; `docker swarm leave --force` undoes it).
    #[arg(long)]
    pub init_swarm: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 upgraded (or already there); 1 failure of the environment; 2 invalid input or \
refused (an unhealthy or drifted deployment); 3 the new version did not become ready and was rolled back.")]
pub struct UpgradeArgs {
    /// The comet-server image tag to move to (`images.comet.tag`).
    #[arg(long)]
    pub version: Option<String>,
    /// Override one image of the spec: KEY=REPOSITORY:TAG (keys as under `images:` in cometctl.yaml).
    #[arg(long, value_name = "KEY=REF")]
    pub image: Vec<String>,
    #[command(flatten)]
    pub folder: FolderArg,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 scaled (or nothing to change); 1 failure of the environment; 2 invalid input or \
refused, nothing changed (not confirmed, a Redis mode change, a drifted or unhealthy deployment); 3 the new plan did not \
become ready and the previous one runs again. What scale keeps as it is and why: docs/operations/scaling.md."
)]
pub struct ScaleArgs {
    /// Replicas of stateless services to set directly: SERVICE=REPLICAS (api=4 gateway=3), after any re-size.
    #[arg(value_name = "SERVICE=REPLICAS")]
    pub replicas: Vec<String>,
    /// Re-size for this many monthly active users: 10k, 250k, 1.5m or 100000.
    #[arg(long, value_parser = parse_mau)]
    pub mau: Option<Mau>,
    /// Re-size for this peak concurrency: baseline, high or a percent such as 7.5%.
    #[arg(long, value_parser = parse_concurrency)]
    pub concurrency: Option<Concurrency>,
    /// A sizing profile (YAML) instead of the embedded profiles/default.yaml.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
    /// Confirm without a prompt (scripts).
    #[arg(long)]
    pub yes: bool,
    #[command(flatten)]
    pub folder: FolderArg,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 the run passed; 3 it ran and did not pass (the notes say why); 2 refused before it \
began (nothing deployed, a bound exceeded); 1 failure of the environment. Users named bench-<time>-<n> are created for the \
run and soft-deleted after it."
)]
pub struct BenchArgs {
    #[command(flatten)]
    pub folder: FolderArg,
    /// WebSockets to hold, one per user (default: the plan's peak connections, at most 1000 and the edge's per-IP cap).
    #[arg(long)]
    pub sockets: Option<u32>,
    /// 1:1 sends per second (default: the plan's peak, within 80% of the edge's per-IP rate limit).
    #[arg(long)]
    pub rate: Option<f64>,
    /// How long to send: 30s, 2m (default 30s, at most 10m).
    #[arg(long, value_parser = parse_span)]
    pub duration: Option<std::time::Duration>,
    /// A sizing profile (YAML) for the plan's figures instead of the embedded profiles/default.yaml.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

fn parse_span(input: &str) -> Result<std::time::Duration, String> {
    let nanos = crate::manifest::values::parse_duration_nanos(input.trim())?;
    u64::try_from(nanos).map(std::time::Duration::from_nanos).map_err(|_| format!("`{input}` is negative"))
}

#[derive(Debug, Subcommand)]
pub enum PlaybookCommand {
    /// The playbooks cometctl knows: name, description, steps (`--output json` for scripts).
    List(PlaybookListArgs),
    /// One playbook: its inputs and steps.
    Show(PlaybookShowArgs),
    /// Run a playbook (by name, or the path of a playbook file), or with --dry-run say what each step would do.
    Run(PlaybookRunArgs),
}

/// Where playbooks come from besides the embedded ones.
#[derive(Debug, Args)]
pub struct PlaybookSourceArgs {
    /// A folder of playbooks (`NAME.yaml`) overriding or adding to the embedded ones.
    #[arg(long, env = env::COMETCTL_PLAYBOOKS, value_name = "DIR")]
    pub playbooks: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PlaybookListArgs {
    #[command(flatten)]
    pub source: PlaybookSourceArgs,
}

#[derive(Debug, Args)]
pub struct PlaybookShowArgs {
    /// A playbook's name, or the path of a playbook file.
    pub playbook: String,
    #[command(flatten)]
    pub source: PlaybookSourceArgs,
}

#[derive(Debug, Args)]
#[command(
    after_help = "Exit codes: 0 every step done (or the dry run printed); 1 failure of the environment; 2 invalid \
input or refused, nothing run (a malformed playbook names file:line:col, an unknown or missing input, the lock held, \
nothing to resume); 3 a step failed: the run stopped there, and --resume continues from it. The journal of each run is \
<dir>/journal/<run>.jsonl (docs/operations/playbooks.md)."
)]
pub struct PlaybookRunArgs {
    /// A playbook's name, or the path of a playbook file.
    pub playbook: String,
    #[command(flatten)]
    pub folder: FolderArg,
    #[command(flatten)]
    pub source: PlaybookSourceArgs,
    /// A value for one of the playbook's inputs: NAME=VALUE (repeatable).
    #[arg(long = "input", value_name = "NAME=VALUE")]
    pub inputs: Vec<String>,
    /// Say what each step would do; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Continue the newest run of this playbook from its first step that did not finish.
    #[arg(long)]
    pub resume: bool,
    /// Remove a playbook lock that a run left behind (a run that was killed) before starting.
    #[arg(long)]
    pub force_unlock: bool,
    /// Confirm every step that asks (scripts).
    #[arg(long)]
    pub yes: bool,
    /// A sizing profile (YAML) for scale steps instead of the embedded profiles/default.yaml.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    pub folder: FolderArg,
}

#[derive(Debug, Args)]
#[command(
    args_conflicts_with_subcommands = true,
    after_help = "Exit codes: 0 the set is complete (or verified); 1 failure (IO, the Docker Engine); 2 invalid input \
(an unknown part or id, no running deployment to copy the database from); 3 `verify` found a part that was changed, \
cut or made with another key. Sets live in <dir>/backups/<id>/ or s3://bucket/prefix/<id>/ (docs/operations/backup.md)."
)]
pub struct BackupArgs {
    #[command(subcommand)]
    pub action: Option<BackupAction>,
    #[command(flatten)]
    pub folder: FolderArg,
    /// Where backup sets go: a folder or s3://bucket/prefix (default: the spec's backup.destination).
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX")]
    pub to: Option<String>,
    /// Only these parts, comma-separated: tidb, redis, kafka, mongodb, config.
    #[arg(long, value_delimiter = ',', value_name = "PART")]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
#[command(after_help = "Exit codes: 0 restored; 1 failure (IO, the Docker Engine); 2 refused, nothing changed (the \
set does not verify, no backup key, files that differ without --yes, a database that is not empty); 3 the restored \
database's counts differ from the manifest, or a drill (--verify) failed. On a new host: restore --only config, deploy, then \
restore --only tidb.")]
pub struct RestoreArgs {
    /// The set's id (`cometctl backup list`).
    pub id: String,
    #[command(flatten)]
    pub folder: FolderArg,
    /// Where the backup sets are: a folder or s3://bucket/prefix (default: the spec's backup.destination).
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX")]
    pub from: Option<String>,
    /// Only these parts, comma-separated: config, tidb.
    #[arg(long, value_delimiter = ',', value_name = "PART")]
    pub only: Vec<String>,
    /// Overwrite files of the deployment folder that differ from the set's.
    #[arg(long, conflicts_with = "verify")]
    pub yes: bool,
    /// The restore drill: restore the set into a scratch deployment beside this one (Compose), check every count,
    /// smoke-test it through its NGINX, remove it; exit 0 only when every step passes within --rto.
    #[arg(long, conflicts_with = "only")]
    pub verify: bool,
    /// The recovery time objective the drill is held to: 30m, 1h (default 1h).
    #[arg(long, value_parser = parse_span, requires = "verify")]
    pub rto: Option<std::time::Duration>,
    /// Leave the drill's scratch deployment running to look at it.
    #[arg(long, requires = "verify")]
    pub keep_scratch: bool,
}

#[derive(Debug, Subcommand)]
pub enum BackupAction {
    /// The backup sets, oldest first: id, parts, size, complete or not (`--output json` for scripts).
    List(BackupListArgs),
    /// Re-hash every part of a set against its manifest, decrypt every chunk and check the manifest's MAC.
    Verify(BackupVerifyArgs),
    /// Show which sets a retention policy keeps and which go; delete those with --yes.
    Prune(BackupPruneArgs),
}

#[derive(Debug, Args)]
pub struct BackupPruneArgs {
    #[command(flatten)]
    pub folder: FolderArg,
    /// Where the backup sets are: a folder or s3://bucket/prefix (default: the spec's backup.destination).
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX")]
    pub from: Option<String>,
    /// Keep the newest set of each of the last N days that have one.
    #[arg(long, default_value_t = 30, value_name = "N")]
    pub keep_daily: u32,
    /// Keep the newest set of each of the last N ISO weeks that have one.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub keep_weekly: u32,
    /// Keep the newest set of each of the last N months that have one.
    #[arg(long, default_value_t = 3, value_name = "N")]
    pub keep_monthly: u32,
    /// Delete the sets that go (without it, prune only shows them).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct BackupListArgs {
    #[command(flatten)]
    pub folder: FolderArg,
    /// Where the backup sets are: a folder or s3://bucket/prefix (default: the spec's backup.destination).
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX")]
    pub from: Option<String>,
}

#[derive(Debug, Args)]
pub struct BackupVerifyArgs {
    /// The set's id (`cometctl backup list`).
    pub id: String,
    #[command(flatten)]
    pub folder: FolderArg,
    /// Where the backup sets are: a folder or s3://bucket/prefix (default: the spec's backup.destination).
    #[arg(long, value_name = "PATH|s3://BUCKET/PREFIX")]
    pub from: Option<String>,
}

#[derive(Debug, Args)]
pub struct DestroyArgs {
    #[command(flatten)]
    pub folder: FolderArg,
    /// Also delete the deployment's volumes (its data), after confirmation.
    #[arg(long)]
    pub volumes: bool,
    /// Also delete the deployment's Swarm secrets and configs, after confirmation (the files in the
    /// deployment folder stay).
    #[arg(long)]
    pub secrets: bool,
    /// Confirm --volumes and --secrets without a prompt (scripts).
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Subcommand)]
pub enum ImagesCommand {
    /// Build the comet-server image from a release binary, with no base image, and load it into the Engine.
    Build(ImagesBuildArgs),
    /// Write every image the deployment runs into one bundle file, for hosts without a registry.
    Save(ImagesSaveArgs),
    /// Load a bundle written by `images save` into the Engine.
    Load(ImagesLoadArgs),
}

#[derive(Debug, Args)]
pub struct ImagesSaveArgs {
    /// The bundle to write (replaced atomically).
    pub file: PathBuf,
    #[command(flatten)]
    pub folder: FolderArg,
    /// Only these images (spec keys such as comet,redis); every image of the spec by default.
    #[arg(long, value_delimiter = ',')]
    pub only: Vec<String>,
}

#[derive(Debug, Args)]
pub struct ImagesLoadArgs {
    /// A bundle written by `images save` (or `docker save`).
    pub file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ImagesBuildArgs {
    #[command(flatten)]
    pub folder: FolderArg,
    /// The image tag; the spec's `images.comet.tag` by default.
    #[arg(long)]
    pub version: Option<String>,
    /// The comet-server executable; the one beside cometctl by default.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// The CA certificates put into the image.
    #[arg(long, value_name = "FILE", default_value = "/etc/ssl/certs/ca-certificates.crt")]
    pub ca_bundle: PathBuf,
}

/// What sizing needs; shared by `init` and `sizing`.
#[derive(Debug, Args)]
pub struct SizingInputArgs {
    /// Monthly active users: 10k, 250k, 1.5m or 100000.
    #[arg(long, value_parser = parse_mau, allow_hyphen_values = true)]
    pub mau: Mau,
    /// Peak concurrency: baseline (5% of MAU), high (10%) or a percent such as 7.5%.
    #[arg(long, default_value = "baseline", value_parser = parse_concurrency)]
    pub concurrency: Concurrency,
    /// Deployment target; defaults to the one the plan recommends (swarm or k8s).
    #[arg(long, value_enum)]
    pub target: Option<Target>,
    /// Days messages are kept.
    #[arg(long, default_value_t = 365)]
    pub retention_days: u32,
    /// A sizing profile (YAML) instead of the embedded profiles/default.yaml.
    #[arg(long, value_name = "FILE")]
    pub profile: Option<PathBuf>,
}

impl SizingInputArgs {
    /// The sizing request; without `--target`, sized for Swarm first (the plan then says what it recommends).
    pub fn request(&self) -> SizingRequest {
        SizingRequest {
            mau: self.mau,
            concurrency: self.concurrency,
            target: self.target.unwrap_or(Target::Swarm),
            message_retention_days: self.retention_days,
        }
    }
}

#[derive(Debug, Args)]
pub struct InitArgs {
    #[command(flatten)]
    pub sizing: SizingInputArgs,
    /// Public host name of the chat service.
    #[arg(long, default_value = "chat.example.com")]
    pub domain: String,
    /// Deployment name (a DNS label): Compose project, Swarm stack, Kubernetes namespace.
    #[arg(long, default_value = "comet")]
    pub name: String,
    #[command(flatten)]
    pub folder: FolderArg,
    /// Overwrite an existing cometctl.yaml. Existing secrets and certificates are always kept.
    #[arg(long)]
    pub force: bool,
    /// Do not generate a development certificate: the spec expects yours at tls/cert.pem and tls/key.pem.
    #[arg(long)]
    pub provided_tls: bool,
}

#[derive(Debug, Args)]
pub struct SizingArgs {
    #[command(flatten)]
    pub sizing: SizingInputArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum RenderTarget {
    /// The spec's own target.
    Spec,
    Compose,
    Swarm,
    K8s,
    All,
}

#[derive(Debug, Args)]
pub struct RenderArgs {
    /// What to render: the spec's target (default), one target, or all three.
    #[arg(long, value_enum, default_value_t = RenderTarget::Spec)]
    pub target: RenderTarget,
    #[command(flatten)]
    pub folder: FolderArg,
    /// A folder of templates overriding the embedded ones (same layout as the project's templates/).
    #[arg(long, env = env::COMETCTL_TEMPLATES, value_name = "DIR")]
    pub templates: Option<PathBuf>,
}

fn parse_mau(input: &str) -> Result<Mau, String> {
    input.parse().map_err(|error: crate::domain::MauError| error.to_string())
}

fn parse_concurrency(input: &str) -> Result<Concurrency, String> {
    input.parse().map_err(|error: crate::domain::ConcurrencyError| error.to_string())
}
