//! A playbook as written in YAML: a name, a description, inputs and typed steps — the same requests the
//! subcommands build, never free-form shell. Pure: text in, a `Playbook` or a `file:line:col` error out.
//!
//! A value a step takes may be an input: `"${to}"` names one of the playbook's inputs, resolved when the step
//! runs. Literal values are checked when the playbook is read, inputs when the run starts.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize};

use crate::checks::catalog::Selection;
use crate::domain::{Concurrency, Mau, ServiceKey};
use crate::yaml::YamlError;

/// Parts a `backup` step may name (those of `cometctl backup --only`).
pub const BACKUP_PARTS: [&str; 5] = ["tidb", "redis", "kafka", "mongodb", "config"];

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Playbook {
    pub name: String,
    pub description: String,
    #[serde(default)]
    pub inputs: Vec<Input>,
    pub steps: Vec<Step>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub name: String,
    pub description: String,
    /// Without a default the input must be given (`--input name=value`).
    #[serde(default)]
    pub default: Option<String>,
}

/// One step: exactly one of these keys.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Runs doctor checks; the step fails when the worst outcome is worse than `allow`.
    Doctor(DoctorStep),
    /// Takes a backup set (`cometctl backup`).
    Backup(BackupStep),
    /// Re-sizes or sets replicas (`cometctl scale`).
    Scale(ScaleStep),
    /// Deploys cometctl.yaml as it is (`cometctl deploy`).
    Deploy(DeployStep),
    /// Waits until every long-running service runs all its containers or tasks healthy.
    WaitHealthy(WaitStep),
    /// Restarts a stateless service's containers one at a time, each healthy before the next.
    RollingRestart(RestartStep),
    /// Waits a while (a settle time before checking again).
    Pause(PauseStep),
    /// Sets a Swarm node's availability (drain before maintenance, active after).
    Node(NodeStep),
    /// A new value for a secret the stores do not keep a copy of (`api_key`, `auth_key`), written into
    /// secrets/; a `deploy` step after it rolls the roles onto it.
    RotateSecret(RotateStep),
    /// The restore drill of a backup set (`cometctl restore ID --verify`); fails when the drill does.
    RestoreDrill(DrillStep),
    /// Loads the deployment through NGINX (`cometctl bench`); the step fails when the bench does not pass.
    Bench(BenchStep),
    /// Asks the operator to go on (`--yes` answers it).
    Confirm(String),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoctorStep {
    /// Check ids or areas, as `doctor --only`.
    #[serde(default)]
    pub only: Vec<CheckName>,
    #[serde(default)]
    pub skip: Vec<CheckName>,
    /// The worst outcome the step accepts: pass, warn (the default) or fail (report only).
    #[serde(default)]
    pub allow: Allow,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Allow {
    Pass,
    #[default]
    Warn,
    Fail,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackupStep {
    #[serde(default)]
    pub only: Vec<BackupPart>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleStep {
    #[serde(default)]
    pub mau: Option<Param<Mau>>,
    #[serde(default)]
    pub concurrency: Option<Param<Concurrency>>,
    /// Replicas of stateless services set directly (`api: 4`).
    #[serde(default)]
    pub replicas: BTreeMap<Scalable, Param<u32>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeployStep {}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WaitStep {
    /// How long to wait at most (default 10m).
    #[serde(default = "ten_minutes")]
    pub timeout: Param<Span>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BenchStep {
    /// WebSockets to hold (default: the plan's peak connections within the edge's limits).
    #[serde(default)]
    pub sockets: Option<Param<u32>>,
    /// Sends per second (default: the plan's peak within the edge's limits).
    #[serde(default)]
    pub rate: Option<Param<f64>>,
    /// How long to send (default 30s).
    #[serde(default)]
    pub duration: Option<Param<Span>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeStep {
    /// The node's id or hostname.
    pub node: Param<String>,
    pub availability: Availability,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Availability {
    Active,
    Pause,
    Drain,
}

impl Availability {
    pub fn as_str(self) -> &'static str {
        match self {
            Availability::Active => "active",
            Availability::Pause => "pause",
            Availability::Drain => "drain",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RotateStep {
    pub secret: Param<Rotatable>,
}

/// A secret that a new file and a deploy rotate: nothing else holds a copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotatable(pub &'static str);

/// Secrets whose file is the only copy (the roles read it at start).
pub const ROTATABLE: [&str; 2] = ["api_key", "auth_key"];

impl FromStr for Rotatable {
    type Err = String;

    fn from_str(text: &str) -> Result<Rotatable, String> {
        let text = text.trim();
        if let Some(name) = ROTATABLE.iter().find(|name| **name == text) {
            return Ok(Rotatable(name));
        }
        Err(match text {
            "db_password" | "db_root_password" | "redis_password" | "mongodb_password" => format!(
                "`{text}` is also kept by its store: a new file alone would lock the roles out; change it in the store \
                 first (ALTER USER, CONFIG SET requirepass, …), then write secrets/{text} and deploy (not automated)"
            ),
            "grafana_admin_password" => "Grafana keeps the admin password it started with in its own database: \
                                         change it in Grafana"
                .to_owned(),
            _ => format!("`{text}` is not a secret this step rotates ({})", ROTATABLE.join(", ")),
        })
    }
}

impl fmt::Display for Rotatable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DrillStep {
    /// The set's id, or `latest` (the default): the newest complete set of the spec's destination.
    #[serde(default)]
    pub backup: Option<String>,
    /// The recovery time objective the drill is held to (default 1h).
    #[serde(default)]
    pub rto: Option<Param<Span>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartStep {
    pub service: Param<Scalable>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PauseStep {
    #[serde(rename = "for")]
    pub duration: Param<Span>,
    /// Why the run waits, shown while it does.
    pub reason: String,
}

fn ten_minutes() -> Param<Span> {
    Param::Value(Span(Duration::from_secs(600)))
}

/// A value, or the name of an input that gives it when the step runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Param<T> {
    Value(T),
    Input(String),
}

impl<T: FromStr + Clone> Param<T>
where
    T::Err: fmt::Display,
{
    /// The value, with inputs looked up in `inputs` (every input has a value by the time a step runs).
    pub fn resolve(&self, inputs: &BTreeMap<String, String>) -> Result<T, String> {
        match self {
            Param::Value(value) => Ok(value.clone()),
            Param::Input(name) => {
                let text = inputs.get(name).ok_or_else(|| format!("input `{name}` has no value"))?;
                text.parse().map_err(|error| format!("input `{name}` = `{text}`: {error}"))
            }
        }
    }

    /// The input it names, if any.
    pub fn input(&self) -> Option<&str> {
        match self {
            Param::Input(name) => Some(name),
            Param::Value(_) => None,
        }
    }
}

impl<'de, T: FromStr> Deserialize<'de> for Param<T>
where
    T::Err: fmt::Display,
{
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Param<T>, D::Error> {
        deserializer.deserialize_any(ParamVisitor(PhantomData))
    }
}

struct ParamVisitor<T>(PhantomData<T>);

impl<T: FromStr> ParamVisitor<T>
where
    T::Err: fmt::Display,
{
    fn text<E: de::Error>(text: &str) -> Result<Param<T>, E> {
        if let Some(name) = text.strip_prefix("${").and_then(|rest| rest.strip_suffix('}')) {
            if !is_input_name(name) {
                return Err(E::custom(format!("`${{{name}}}` is not an input name (letters, digits, `_` and `-`)")));
            }
            return Ok(Param::Input(name.to_owned()));
        }
        text.parse().map(Param::Value).map_err(E::custom)
    }
}

impl<T: FromStr> Visitor<'_> for ParamVisitor<T>
where
    T::Err: fmt::Display,
{
    type Value = Param<T>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a value or \"${input}\"")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Param<T>, E> {
        Self::text(text)
    }

    fn visit_u64<E: de::Error>(self, number: u64) -> Result<Param<T>, E> {
        Self::text(&number.to_string())
    }

    fn visit_i64<E: de::Error>(self, number: i64) -> Result<Param<T>, E> {
        Self::text(&number.to_string())
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Param<T>, E> {
        Self::text(&number.to_string())
    }
}

pub fn is_input_name(name: &str) -> bool {
    !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A duration written like 10m, 1h30m or 45s.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span(pub Duration);

impl FromStr for Span {
    type Err = String;

    fn from_str(text: &str) -> Result<Span, String> {
        let nanos = crate::manifest::values::parse_duration_nanos(text.trim())?;
        u64::try_from(nanos).map(|nanos| Span(Duration::from_nanos(nanos))).map_err(|_| format!("`{text}` is negative"))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        match (seconds / 60, seconds % 60) {
            (0, seconds) => write!(f, "{seconds}s"),
            (minutes, 0) => write!(f, "{minutes}m"),
            (minutes, seconds) => write!(f, "{minutes}m{seconds}s"),
        }
    }
}

/// A service whose replicas are interchangeable (the roles, NGINX): what `scale` and `rolling-restart` take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scalable(pub ServiceKey);

impl FromStr for Scalable {
    type Err = String;

    fn from_str(text: &str) -> Result<Scalable, String> {
        crate::scale::scalable_service(text).map(Scalable).map_err(|error| error.to_string())
    }
}

impl fmt::Display for Scalable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.key())
    }
}

impl<'de> Deserialize<'de> for Scalable {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Scalable, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(de::Error::custom)
    }
}

/// A check id or area that `doctor --only` knows, checked when the playbook is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckName(pub String);

impl<'de> Deserialize<'de> for CheckName {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CheckName, D::Error> {
        let text = String::deserialize(deserializer)?;
        Selection::new(std::slice::from_ref(&text), &[]).map_err(|error| de::Error::custom(error.to_string()))?;
        Ok(CheckName(text))
    }
}

/// A part of a backup set, checked when the playbook is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupPart(pub String);

impl<'de> Deserialize<'de> for BackupPart {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<BackupPart, D::Error> {
        let text = String::deserialize(deserializer)?;
        if !BACKUP_PARTS.contains(&text.as_str()) {
            return Err(de::Error::custom(format!("`{text}` is not a backup part ({})", BACKUP_PARTS.join(", "))));
        }
        Ok(BackupPart(text))
    }
}

impl Step {
    /// The step's kind as written (`wait-healthy`).
    pub fn kind(&self) -> &'static str {
        match self {
            Step::Doctor(_) => "doctor",
            Step::Backup(_) => "backup",
            Step::Scale(_) => "scale",
            Step::Deploy(_) => "deploy",
            Step::WaitHealthy(_) => "wait-healthy",
            Step::RollingRestart(_) => "rolling-restart",
            Step::Pause(_) => "pause",
            Step::Bench(_) => "bench",
            Step::RestoreDrill(_) => "restore-drill",
            Step::RotateSecret(_) => "rotate-secret",
            Step::Node(_) => "node",
            Step::Confirm(_) => "confirm",
        }
    }

    /// The inputs the step names.
    pub fn inputs(&self) -> Vec<&str> {
        match self {
            Step::Scale(scale) => {
                let mut names: Vec<&str> = scale.mau.iter().filter_map(Param::input).collect();
                names.extend(scale.concurrency.iter().filter_map(Param::input));
                names.extend(scale.replicas.values().filter_map(Param::input));
                names
            }
            Step::WaitHealthy(wait) => wait.timeout.input().into_iter().collect(),
            Step::RollingRestart(restart) => restart.service.input().into_iter().collect(),
            Step::Pause(pause) => pause.duration.input().into_iter().collect(),
            Step::RestoreDrill(drill) => drill.rto.iter().filter_map(Param::input).collect(),
            Step::RotateSecret(rotate) => rotate.secret.input().into_iter().collect(),
            Step::Node(node) => node.node.input().into_iter().collect(),
            Step::Bench(bench) => {
                let mut names: Vec<&str> = bench.sockets.iter().filter_map(Param::input).collect();
                names.extend(bench.rate.iter().filter_map(Param::input));
                names.extend(bench.duration.iter().filter_map(Param::input));
                names
            }
            Step::Doctor(_) | Step::Backup(_) | Step::Deploy(_) | Step::Confirm(_) => vec![],
        }
    }

    /// One line saying what the step does, with inputs shown as `${name}`.
    pub fn title(&self) -> String {
        let shown = |param: &dyn ParamText| param.text();
        match self {
            Step::Doctor(doctor) => {
                let only: Vec<&str> = doctor.only.iter().map(|name| name.0.as_str()).collect();
                let what = if only.is_empty() { "every check".to_owned() } else { only.join(", ") };
                let allow = match doctor.allow {
                    Allow::Pass => "nothing may warn",
                    Allow::Warn => "a fail stops the run",
                    Allow::Fail => "report only",
                };
                format!("doctor: {what} ({allow})")
            }
            Step::Backup(backup) => {
                let only: Vec<&str> = backup.only.iter().map(|part| part.0.as_str()).collect();
                if only.is_empty() { "backup: every part".to_owned() } else { format!("backup: {}", only.join(", ")) }
            }
            Step::Scale(scale) => {
                let mut parts = Vec::new();
                if let Some(mau) = &scale.mau {
                    parts.push(format!("--mau {}", shown(mau)));
                }
                if let Some(concurrency) = &scale.concurrency {
                    parts.push(format!("--concurrency {}", shown(concurrency)));
                }
                for (service, replicas) in &scale.replicas {
                    parts.push(format!("{}={}", service.0.key(), shown(replicas)));
                }
                format!("scale {}", parts.join(" "))
            }
            Step::Deploy(_) => "deploy cometctl.yaml".to_owned(),
            Step::WaitHealthy(wait) => {
                format!("wait until every service is healthy (at most {})", shown(&wait.timeout))
            }
            Step::RollingRestart(restart) => format!("rolling restart of {}", shown(&restart.service)),
            Step::Pause(pause) => format!("pause {}: {}", shown(&pause.duration), pause.reason),
            Step::Bench(bench) => {
                let mut parts = vec!["bench".to_owned()];
                if let Some(sockets) = &bench.sockets {
                    parts.push(format!("--sockets {}", shown(sockets)));
                }
                if let Some(rate) = &bench.rate {
                    parts.push(format!("--rate {}", shown(rate)));
                }
                if let Some(duration) = &bench.duration {
                    parts.push(format!("--duration {}", shown(duration)));
                }
                parts.join(" ")
            }
            Step::RotateSecret(rotate) => format!("rotate the secret {}", shown(&rotate.secret)),
            Step::Node(node) => format!("node {}: {}", shown(&node.node), node.availability.as_str()),
            Step::RestoreDrill(drill) => {
                let rto = drill.rto.as_ref().map_or_else(|| "1h".to_owned(), |rto| shown(rto));
                format!("restore drill of {} (RTO {rto})", drill.backup.as_deref().unwrap_or("latest"))
            }
            Step::Confirm(question) => format!("confirm: {question}"),
        }
    }
}

/// How a parameter is shown in a step's title.
trait ParamText {
    fn text(&self) -> String;
}

impl<T: fmt::Display> ParamText for Param<T> {
    fn text(&self) -> String {
        match self {
            Param::Value(value) => value.to_string(),
            Param::Input(name) => format!("${{{name}}}"),
        }
    }
}

/// Parses a playbook (`file` names it in errors) and checks what the parser cannot: a name, at least one
/// step, input names unique and well formed, every `${input}` declared.
pub fn parse(file: &str, text: &str) -> Result<Playbook, YamlError> {
    let playbook: Playbook = crate::yaml::from_str(file, text)?;
    let problem = |message: String, at: Option<(u64, u64)>| YamlError::at(file, at, message);
    if !is_input_name(&playbook.name) {
        return Err(problem(
            format!("`name` `{}` must be letters, digits, `_` and `-`", playbook.name),
            locate_key(text, "name"),
        ));
    }
    if playbook.steps.is_empty() {
        return Err(problem(
            "`steps` is empty: a playbook needs at least one step".to_owned(),
            locate_key(text, "steps"),
        ));
    }
    let mut seen = Vec::new();
    for input in &playbook.inputs {
        if !is_input_name(&input.name) || seen.contains(&input.name.as_str()) {
            return Err(problem(
                format!("input `{}` is not a unique name of letters, digits, `_` and `-`", input.name),
                locate_key(text, "inputs"),
            ));
        }
        seen.push(&input.name);
    }
    for (index, step) in playbook.steps.iter().enumerate() {
        if let Some(unknown) = step.inputs().into_iter().find(|name| !seen.contains(name)) {
            let declared = if seen.is_empty() { "none".to_owned() } else { seen.join(", ") };
            return Err(problem(
                format!(
                    "step {} ({}) uses `${{{unknown}}}`, which is not an input (inputs: {declared})",
                    index + 1,
                    step.kind()
                ),
                locate_item(text, "steps", index),
            ));
        }
    }
    Ok(playbook)
}

/// 1-based line and column of a top-level key.
fn locate_key(text: &str, key: &str) -> Option<(u64, u64)> {
    text.lines()
        .position(|line| line.strip_prefix(key).is_some_and(|rest| rest.starts_with(':')))
        .map(|index| (index as u64 + 1, 1))
}

/// 1-based line and column of item `index` of the top-level block list under `key`.
fn locate_item(text: &str, key: &str, index: usize) -> Option<(u64, u64)> {
    let (start, _) = locate_key(text, key)?;
    let mut items = 0;
    let mut item_indent = None;
    for (number, line) in text.lines().enumerate().skip(usize::try_from(start).ok()?) {
        let content = line.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = line.len() - content.len();
        if indent == 0 && !content.starts_with('-') {
            return None;
        }
        if content.starts_with('-') && *item_indent.get_or_insert(indent) == indent {
            if items == index {
                return Some((number as u64 + 1, indent as u64 + 1));
            }
            items += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests;
