//! Checks of the stores and the comet-server roles, live, from the answers their own tools gave inside their
//! own containers (`engine::exec`; stores publish no port). Pure: the commands are here as data
//! (`commands`), the answers come back as `Probe`s, and the evaluation reads them. A store that is not
//! deployed, or a tool its image does not have, is a skip that says so.

use std::collections::BTreeMap;

use super::Check;
use crate::domain::thresholds::THRESHOLDS;
use crate::plan::observed::ExecOutput;

/// A command's answer, or why it could not run.
pub type Probe = Result<ExecOutput, String>;

/// The secret Redis's password is mounted as (templates: `redis_password`).
const REDIS_SECRET: &str = "/run/secrets/redis_password";
/// The Kafka image's tools (the upstream image's layout).
const KAFKA_BIN: &str = "/opt/kafka/bin";

fn words(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| (*part).to_owned()).collect()
}

/// The commands, by what they ask.
pub mod commands {
    use super::{KAFKA_BIN, REDIS_SECRET, words};

    /// INFO, the save setting and (cluster mode) CLUSTER INFO, authenticated from the mounted secret so the
    /// password is on no command line.
    pub fn redis(cluster: bool) -> Vec<String> {
        let cluster_info = if cluster { "; echo '# cluster-info'; redis-cli CLUSTER INFO" } else { "" };
        let script = format!(
            "export REDISCLI_AUTH=\"$(cat {REDIS_SECRET})\"; redis-cli INFO && echo '# save' && redis-cli CONFIG GET \
             save{cluster_info}"
        );
        words(&["/bin/sh", "-c", &script])
    }

    /// The node's role, key count and version, one per line (`master`, `42`, `7.0.15`): what a backup records.
    pub fn redis_identity() -> Vec<String> {
        let script = format!(
            "export REDISCLI_AUTH=\"$(cat {REDIS_SECRET})\"; redis-cli ROLE | head -n 1 && redis-cli DBSIZE && \
             redis-cli INFO server | sed -n 's/^redis_version:\\([^[:space:]]*\\).*/\\1/p'"
        );
        words(&["/bin/sh", "-c", &script])
    }

    /// A point-in-time RDB of the node on stdout (`redis-cli --rdb -`: the server forks a snapshot, as a replica
    /// sync would).
    pub fn redis_rdb() -> Vec<String> {
        let script = format!("export REDISCLI_AUTH=\"$(cat {REDIS_SECRET})\"; exec redis-cli --rdb -");
        words(&["/bin/sh", "-c", &script])
    }

    /// TiDB's status API (version, connections).
    pub fn tidb_status() -> Vec<String> {
        words(&["/bin/busybox", "wget", "-q", "-O", "-", "http://127.0.0.1:10080/status"])
    }

    /// One of PD's API paths (`/pd/api/v1/stores`, `/pd/api/v1/regions/check/miss-peer`, …).
    pub fn pd(path: &str) -> Vec<String> {
        words(&["/bin/busybox", "wget", "-q", "-O", "-", &format!("http://127.0.0.1:2379{path}")])
    }

    /// The broker answers a Kafka-protocol request (the image's own health-check tool).
    pub fn kafka_api_versions() -> Vec<String> {
        words(&[&format!("{KAFKA_BIN}/kafka-broker-api-versions.sh"), "--bootstrap-server", "localhost:9092"])
    }

    /// `kafka-topics.sh --describe` with extra options (`--under-replicated-partitions`, …).
    pub fn kafka_topics(extra: &[&str]) -> Vec<String> {
        let mut command =
            words(&[&format!("{KAFKA_BIN}/kafka-topics.sh"), "--bootstrap-server", "localhost:9092", "--describe"]);
        command.extend(words(extra));
        command
    }

    pub fn kafka_groups() -> Vec<String> {
        words(&[
            &format!("{KAFKA_BIN}/kafka-consumer-groups.sh"),
            "--bootstrap-server",
            "localhost:9092",
            "--describe",
            "--all-groups",
        ])
    }

    /// The replica set's members as `name state health` lines.
    pub fn mongodb_members() -> Vec<String> {
        words(&[
            "mongosh",
            "--quiet",
            "--eval",
            "rs.status().members.forEach(m => print(m.name + ' ' + m.stateStr + ' ' + m.health))",
        ])
    }

    /// comet-server asks its own admin port (`/ready`, `/metrics`) and prints the answer.
    pub fn comet(path: &str) -> Vec<String> {
        words(&["comet-server", "health", path])
    }
}

/// What the spec deploys, as the store checks need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StorePlan {
    pub standalone_tidb: bool,
    pub kafka_partitions: u32,
    pub kafka_replication_factor: u32,
    pub kafka_min_insync_replicas: u32,
    pub redis_cluster: bool,
    pub mongodb: bool,
    /// Open WebSocket connections the deployed gateways are planned for.
    pub gateway_capacity: u64,
}

/// Every answer, by container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreFacts {
    pub plan: StorePlan,
    pub tidb: Vec<(String, Probe)>,
    /// PD's `/stores`, `/regions/check/miss-peer` and `/regions/check/down-peer` (without PD: none).
    pub pd: Option<[Probe; 3]>,
    pub kafka: Vec<(String, Probe)>,
    /// From the first broker: topics described, under-replicated partitions, unavailable partitions,
    /// consumer groups.
    pub kafka_tools: Option<[Probe; 4]>,
    pub redis: Vec<(String, Probe)>,
    pub mongodb: Option<(String, Probe)>,
    /// `/ready` of every role container, by service and container.
    pub ready: Vec<(String, String, Probe)>,
    /// `/metrics` of every role container, by service and container.
    pub metrics: Vec<(String, String, Probe)>,
}

pub const IDS: &[&str] = &[
    "tidb.reachable",
    "tidb.tikv",
    "kafka.reachable",
    "kafka.topics",
    "kafka.under_replicated",
    "kafka.consumer_lag",
    "redis.ping",
    "redis.maxmemory",
    "redis.policy",
    "redis.memory",
    "redis.persistence",
    "redis.cluster",
    "mongodb.replica_set",
    "comet.ready",
    "comet.relay_lease",
    "comet.outbox_backlog",
    "comet.gateway_connections",
];

/// The answer's text when the command ran and exited 0; otherwise why not.
fn answered(probe: &Probe) -> Result<&str, String> {
    match probe {
        Ok(output) if output.exit_code == Some(0) => Ok(&output.output),
        Ok(output) => Err(format!(
            "exited {}: {}",
            output.exit_code.map_or("without a code".to_owned(), |code| code.to_string()),
            first_line(&output.output)
        )),
        Err(error) => Err(error.clone()),
    }
}

/// Whether the command's program is missing from the image (exec's 126/127, or the runtime's message).
fn tool_missing(probe: &Probe) -> bool {
    match probe {
        Ok(output) => {
            matches!(output.exit_code, Some(126 | 127))
                || output.output.contains("no such file or directory")
                || output.output.contains("executable file not found")
        }
        Err(error) => error.contains("no such file or directory") || error.contains("executable file not found"),
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|line| !line.is_empty()).unwrap_or("(no output)");
    line.chars().take(200).collect()
}

pub fn evaluate(facts: &StoreFacts) -> Vec<Check> {
    let mut checks = tidb(facts);
    checks.extend(kafka(facts));
    checks.extend(redis(facts));
    checks.push(mongodb(facts));
    checks.extend(comet(facts));
    checks
}

fn tidb(facts: &StoreFacts) -> Vec<Check> {
    let mut failed = Vec::new();
    let mut versions = Vec::new();
    for (container, probe) in &facts.tidb {
        match answered(probe).and_then(|text| {
            serde_json::from_str::<serde_json::Value>(text).map_err(|error| format!("not TiDB's status JSON: {error}"))
        }) {
            Ok(status) => versions.push(format!("{container}: {}", status["version"].as_str().unwrap_or("?"))),
            Err(why) => failed.push(format!("{container}: {why}")),
        }
    }
    let reachable = if facts.tidb.is_empty() {
        Check::fail("tidb.reachable", "no TiDB container runs", "`cometctl deploy` starts it")
    } else if failed.is_empty() {
        Check::pass("tidb.reachable", versions.join(", "))
    } else {
        Check::fail(
            "tidb.reachable",
            format!("TiDB's status API does not answer: {}", failed.join("; ")),
            "read `docker logs <tidb container>`; the deployment's roles cannot write without it",
        )
    };
    let tikv = match &facts.pd {
        None if facts.plan.standalone_tidb => {
            Check::skip("tidb.tikv", "standalone TiDB: PD and TiKV are not deployed (no regions to check)")
        }
        None => Check::fail("tidb.tikv", "no PD container runs", "`cometctl deploy` starts PD"),
        Some([stores, miss, down]) => pd_health(stores, miss, down),
    };
    vec![reachable, tikv]
}

/// PD's `/stores`: every store `Up`; `regions/check/miss-peer` and `down-peer`: no region short of a replica.
fn pd_health(stores: &Probe, miss: &Probe, down: &Probe) -> Check {
    let parse = |probe: &Probe| -> Result<serde_json::Value, String> {
        serde_json::from_str(answered(probe)?).map_err(|error| format!("not PD's JSON: {error}"))
    };
    let stores = match parse(stores) {
        Ok(stores) => stores,
        Err(why) => {
            return Check::fail("tidb.tikv", format!("PD's API does not answer: {why}"), "read `docker logs <pd>`");
        }
    };
    let all = stores["stores"].as_array().cloned().unwrap_or_default();
    let not_up: Vec<String> = all
        .iter()
        .filter(|store| store["store"]["state_name"].as_str() != Some("Up"))
        .map(|store| {
            format!(
                "{} {}",
                store["store"]["address"].as_str().unwrap_or("?"),
                store["store"]["state_name"].as_str().unwrap_or("?")
            )
        })
        .collect();
    let count = |probe: &Probe| parse(probe).ok().and_then(|value| value["count"].as_u64()).unwrap_or(0);
    let (missing, downed) = (count(miss), count(down));
    if !not_up.is_empty() {
        Check::fail(
            "tidb.tikv",
            format!("TiKV stores not Up: {}", not_up.join(", ")),
            "start the stopped TiKV (`docker start`, or `cometctl deploy`); PD re-replicates after max-store-down-time",
        )
    } else if missing + downed > 0 {
        Check::warn(
            "tidb.tikv",
            format!("{} stores Up; {missing} regions miss a peer, {downed} have a down peer", all.len()),
            "wait for PD to re-replicate; if it does not, check `pd-ctl region check miss-peer`",
        )
    } else {
        Check::pass("tidb.tikv", format!("{} TiKV stores Up, every region fully replicated", all.len()))
    }
}

fn kafka(facts: &StoreFacts) -> Vec<Check> {
    let failed: Vec<String> = facts
        .kafka
        .iter()
        .filter_map(|(container, probe)| answered(probe).err().map(|why| format!("{container}: {why}")))
        .collect();
    let reachable = if facts.kafka.is_empty() {
        Check::fail("kafka.reachable", "no Kafka broker runs", "`cometctl deploy` starts the brokers")
    } else if failed.is_empty() {
        Check::pass("kafka.reachable", format!("{} brokers answer the Kafka protocol", facts.kafka.len()))
    } else {
        Check::fail(
            "kafka.reachable",
            format!("brokers not answering: {}", failed.join("; ")),
            "read `docker logs <broker>`; the relay holds events in the outbox meanwhile",
        )
    };
    let mut checks = vec![reachable];
    let ids = ["kafka.topics", "kafka.under_replicated", "kafka.consumer_lag"];
    let Some([topics, under, unavailable, groups]) = &facts.kafka_tools else {
        checks.extend(ids.iter().map(|id| Check::skip(id, "no broker answers")));
        return checks;
    };
    if tool_missing(topics) {
        let why = format!(
            "the broker image has no {KAFKA_BIN}/kafka-topics.sh (the stand-in broker of tests/images is not \
             Apache Kafka)"
        );
        checks.extend(ids.iter().map(|id| Check::skip(id, why.clone())));
        return checks;
    }
    checks.push(match answered(topics) {
        Err(why) => Check::fail("kafka.topics", format!("topics could not be described: {why}"), ""),
        Ok(text) => topic_settings(text, &facts.plan),
    });
    checks.push(match (answered(under), answered(unavailable)) {
        (Ok(under), Ok(unavailable)) => {
            let count = |text: &str| text.lines().filter(|line| line.contains("Partition:")).count();
            let (under, offline) = (count(under), count(unavailable));
            if offline > 0 {
                Check::fail(
                    "kafka.under_replicated",
                    format!("{offline} partitions offline, {under} under-replicated"),
                    "start the stopped brokers; writes to offline partitions fail",
                )
            } else if under > 0 {
                Check::warn(
                    "kafka.under_replicated",
                    format!("{under} partitions under-replicated"),
                    "start the stopped brokers, or wait for them to catch up",
                )
            } else {
                Check::pass("kafka.under_replicated", "no partition under-replicated or offline")
            }
        }
        (Err(why), _) | (_, Err(why)) => Check::fail("kafka.under_replicated", why, ""),
    });
    checks.push(match answered(groups) {
        Err(why) => Check::fail("kafka.consumer_lag", format!("consumer groups could not be described: {why}"), ""),
        Ok(text) => consumer_lag(text),
    });
    checks
}

/// `Topic: t  TopicId: …  PartitionCount: 12  ReplicationFactor: 3  Configs: min.insync.replicas=2,…`.
fn topic_settings(text: &str, plan: &StorePlan) -> Check {
    let field = |line: &str, name: &str| -> Option<String> {
        let rest = line.split(name).nth(1)?;
        rest.split_whitespace().next().map(str::to_owned)
    };
    let mut problems = Vec::new();
    let mut topics = 0;
    for line in text.lines().filter(|line| line.contains("PartitionCount:")) {
        let Some(topic) = field(line, "Topic:").filter(|topic| !topic.starts_with("__")) else { continue };
        topics += 1;
        let partitions: u32 = field(line, "PartitionCount:").and_then(|value| value.parse().ok()).unwrap_or(0);
        let replication: u32 = field(line, "ReplicationFactor:").and_then(|value| value.parse().ok()).unwrap_or(0);
        let min_isr: Option<u32> = field(line, "min.insync.replicas=")
            .and_then(|value| value.split(',').next().and_then(|value| value.parse().ok()));
        if partitions < plan.kafka_partitions {
            problems.push(format!("{topic}: {partitions} partitions (spec {})", plan.kafka_partitions));
        }
        if replication != plan.kafka_replication_factor {
            problems.push(format!("{topic}: RF {replication} (spec {})", plan.kafka_replication_factor));
        }
        if let Some(min_isr) = min_isr.filter(|value| *value != plan.kafka_min_insync_replicas) {
            problems.push(format!("{topic}: min.insync.replicas {min_isr} (spec {})", plan.kafka_min_insync_replicas));
        }
    }
    let threshold = format!(
        "partitions ≥ {}, RF = {}, min.insync.replicas = {}",
        plan.kafka_partitions, plan.kafka_replication_factor, plan.kafka_min_insync_replicas
    );
    if topics == 0 {
        Check::warn("kafka.topics", "no topics yet (the relay creates them with its first events)", "")
    } else if problems.is_empty() {
        Check::pass("kafka.topics", format!("{topics} topics as the spec says"))
    } else {
        Check::fail(
            "kafka.topics",
            problems.join("; "),
            "kafka-topics.sh --alter --partitions N (partitions only grow); RF needs kafka-reassign-partitions.sh; \
             kafka-configs.sh --alter --add-config min.insync.replicas=N",
        )
    }
    .with_threshold(threshold)
}

/// `kafka-consumer-groups.sh --describe --all-groups`: the lag summed per group and topic, the worst held
/// against the table (the KafkaConsumerLagHigh alert).
fn consumer_lag(text: &str) -> Check {
    let mut lag: BTreeMap<(String, String), u64> = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG …
        if fields.len() >= 6
            && fields[2].parse::<u32>().is_ok()
            && let Ok(value) = fields[5].parse::<u64>()
        {
            *lag.entry((fields[0].to_owned(), fields[1].to_owned())).or_default() += value;
        }
    }
    match lag.iter().max_by_key(|(_, value)| **value) {
        None => Check::pass("kafka.consumer_lag", "no consumer group has committed offsets")
            .with_threshold(THRESHOLDS.kafka_consumer_lag.describe()),
        Some(((group, topic), value)) => Check::against(
            "kafka.consumer_lag",
            &THRESHOLDS.kafka_consumer_lag,
            *value,
            format!("largest lag: group {group} on {topic}, {value} messages"),
            "scale the role that consumes with this group (plan.services.<role>.replicas), or find why it is slow",
        ),
    }
}

/// INFO's `key:value` lines, plus the lines after `# save` (CONFIG GET's key and value).
fn info_fields(text: &str) -> BTreeMap<String, String> {
    let mut fields: BTreeMap<String, String> = text
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .collect();
    let mut lines = text.lines().map(str::trim).skip_while(|line| *line != "# save").skip(1);
    if lines.next() == Some("save") {
        fields.insert("config_save".to_owned(), lines.next().unwrap_or_default().to_owned());
    }
    fields
}

fn redis(facts: &StoreFacts) -> Vec<Check> {
    let ids = ["redis.maxmemory", "redis.policy", "redis.memory", "redis.persistence", "redis.cluster"];
    if facts.redis.is_empty() {
        let mut checks = vec![Check::fail("redis.ping", "no Redis container runs", "`cometctl deploy` starts it")];
        checks.extend(ids.iter().map(|id| Check::skip(id, "no Redis container runs")));
        return checks;
    }
    let mut silent = Vec::new();
    let mut nodes = Vec::new();
    for (container, probe) in &facts.redis {
        match answered(probe) {
            Ok(text) if text.contains("redis_version:") => nodes.push((container.as_str(), info_fields(text))),
            Ok(text) => silent.push(format!("{container}: {}", first_line(text))),
            Err(why) => silent.push(format!("{container}: {why}")),
        }
    }
    let mut checks = vec![if silent.is_empty() {
        let version = nodes.first().and_then(|(_, fields)| fields.get("redis_version")).cloned().unwrap_or_default();
        Check::pass("redis.ping", format!("{} Redis nodes answer (Redis {version})", nodes.len()))
    } else {
        Check::fail(
            "redis.ping",
            format!("Redis does not answer: {}", silent.join("; ")),
            "start it (`docker start <container>` or `cometctl deploy`); presence, typing and rate limits stop without it",
        )
    }];
    if nodes.is_empty() {
        checks.extend(ids.iter().map(|id| Check::skip(id, "Redis does not answer")));
        return checks;
    }
    let number = |fields: &BTreeMap<String, String>, key: &str| -> u64 {
        fields.get(key).and_then(|value| value.trim().parse().ok()).unwrap_or(0)
    };
    let unset: Vec<&str> =
        nodes.iter().filter(|(_, fields)| number(fields, "maxmemory") == 0).map(|(name, _)| *name).collect();
    checks.push(if unset.is_empty() {
        let mib = number(&nodes[0].1, "maxmemory") >> 20;
        Check::pass("redis.maxmemory", format!("maxmemory {mib} MiB"))
    } else {
        Check::fail(
            "redis.maxmemory",
            format!("no maxmemory on {}: Redis grows until the kernel kills it", unset.join(", ")),
            "`cometctl deploy` renders maxmemory at 3/4 of the memory limit",
        )
    });
    let policies: Vec<(&str, String)> = nodes
        .iter()
        .map(|(name, fields)| (*name, fields.get("maxmemory_policy").cloned().unwrap_or_default().trim().to_owned()))
        .collect();
    let fix = "redis-cli CONFIG SET maxmemory-policy noeviction (what cometctl renders; a restart restores it too)";
    let worst = policies.iter().find(|(_, policy)| policy.starts_with("allkeys") || policy == "volatile-random");
    let evicting = policies.iter().find(|(_, policy)| policy.starts_with("volatile"));
    checks.push(
        match (worst, evicting) {
            (Some((name, policy)), _) => Check::fail(
                "redis.policy",
                format!("{name}: maxmemory-policy {policy} evicts keys without a TTL (locks, presence, rate limits)"),
                fix,
            ),
            (None, Some((name, policy))) => Check::warn(
                "redis.policy",
                format!("{name}: maxmemory-policy {policy} evicts keys with a TTL before they expire"),
                fix,
            ),
            (None, None) => Check::pass(
                "redis.policy",
                format!("maxmemory-policy {}", policies.first().map_or("", |(_, policy)| policy.as_str())),
            ),
        }
        .with_threshold("noeviction (writes fail at the limit, nothing is lost)"),
    );
    let fullest = nodes
        .iter()
        .filter(|(_, fields)| number(fields, "maxmemory") > 0)
        .map(|(name, fields)| (*name, number(fields, "used_memory") * 100 / number(fields, "maxmemory")))
        .max_by_key(|(_, percent)| *percent);
    checks.push(match fullest {
        None => Check::skip("redis.memory", "no maxmemory to compare with"),
        Some((name, percent)) => Check::against(
            "redis.memory",
            &THRESHOLDS.redis_memory_percent,
            percent,
            format!("{name} uses {percent} % of maxmemory"),
            "raise plan.services.redis.memory_mib.limit in cometctl.yaml (maxmemory follows), or shard (cluster mode)",
        ),
    });
    let volatile: Vec<&str> = nodes
        .iter()
        .filter(|(_, fields)| {
            number(fields, "aof_enabled") == 0 && fields.get("config_save").is_none_or(|s| s.trim().is_empty())
        })
        .map(|(name, _)| *name)
        .collect();
    checks.push(if volatile.is_empty() {
        Check::pass("redis.persistence", "append-only file or snapshots configured")
    } else {
        Check::warn(
            "redis.persistence",
            format!("no appendonly and no save on {}: a restart loses rate limits and presence", volatile.join(", ")),
            "redis-cli CONFIG SET appendonly yes (what cometctl renders)",
        )
    });
    checks.push(if !facts.plan.redis_cluster {
        Check::skip("redis.cluster", "Redis runs standalone (cluster mode is for larger plans)")
    } else {
        let bad: Vec<String> = nodes
            .iter()
            .filter(|(_, fields)| fields.get("cluster_state").map(|state| state.trim()) != Some("ok"))
            .map(|(name, fields)| format!("{name}: {}", fields.get("cluster_state").map_or("unknown", |s| s.trim())))
            .collect();
        if bad.is_empty() {
            Check::pass("redis.cluster", format!("cluster_state ok on {} nodes", nodes.len()))
        } else {
            Check::fail(
                "redis.cluster",
                format!("cluster not ok: {}", bad.join(", ")),
                "start the missing nodes; `redis-cli --cluster check <node>:6379` says which slots are uncovered",
            )
        }
    });
    checks
}

fn mongodb(facts: &StoreFacts) -> Check {
    if !facts.plan.mongodb {
        return Check::skip("mongodb.replica_set", "MongoDB is not deployed");
    }
    let Some((container, probe)) = &facts.mongodb else {
        return Check::fail("mongodb.replica_set", "no MongoDB container runs", "`cometctl deploy` starts it");
    };
    if tool_missing(probe) {
        return Check::skip("mongodb.replica_set", format!("{container} has no mongosh"));
    }
    match answered(probe) {
        Err(why) => {
            Check::fail("mongodb.replica_set", format!("{container}: {why}"), "read `docker logs` of the members")
        }
        Ok(text) => {
            let members: Vec<&str> = text.lines().filter(|line| !line.trim().is_empty()).collect();
            let sick: Vec<&&str> = members
                .iter()
                .filter(|line| !(line.ends_with(" 1") && (line.contains("PRIMARY") || line.contains("SECONDARY"))))
                .collect();
            if members.is_empty() || !members.iter().any(|line| line.contains("PRIMARY")) {
                Check::fail("mongodb.replica_set", "no primary", "start the members; the replica set elects one")
            } else if sick.is_empty() {
                Check::pass("mongodb.replica_set", format!("{} members healthy", members.len()))
            } else {
                Check::warn(
                    "mongodb.replica_set",
                    format!(
                        "unhealthy members: {}",
                        sick.iter().map(|line| line.trim()).collect::<Vec<_>>().join(", ")
                    ),
                    "start the stopped members",
                )
            }
        }
    }
}

/// The sum of a metric's samples in Prometheus text (`name value` or `name{labels} value`).
fn metric(text: &str, name: &str) -> Option<u64> {
    let values: Vec<u64> = text
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let key = key.split('{').next()?;
            (key == name).then(|| value.trim().parse::<f64>().ok().map(|value| value as u64))?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

fn comet(facts: &StoreFacts) -> Vec<Check> {
    let not_ready: Vec<String> = facts
        .ready
        .iter()
        .filter_map(|(_, container, probe)| answered(probe).err().map(|why| format!("{container}: {why}")))
        .collect();
    let ready = if facts.ready.is_empty() {
        Check::fail("comet.ready", "no comet-server role container runs", "`cometctl deploy` starts them")
    } else if not_ready.is_empty() {
        Check::pass("comet.ready", format!("{} role containers answer /ready", facts.ready.len()))
    } else {
        Check::fail(
            "comet.ready",
            format!("not ready: {}", not_ready.join("; ")),
            "the reason names the store it cannot reach; check that store first",
        )
    };
    let scraped: Vec<(&str, &str, &str)> = facts
        .metrics
        .iter()
        .filter_map(|(service, container, probe)| {
            answered(probe).ok().map(|text| (service.as_str(), container.as_str(), text))
        })
        .collect();
    let relays: Vec<(&str, u64)> = scraped
        .iter()
        .filter(|(service, _, _)| *service == "relay")
        .filter_map(|(_, container, text)| metric(text, "comet_relay_holds_lease").map(|held| (*container, held)))
        .collect();
    let relay_containers = facts.metrics.iter().filter(|(service, _, _)| service == "relay").count();
    let holders: Vec<&str> = relays.iter().filter(|(_, held)| *held > 0).map(|(name, _)| *name).collect();
    let lease = match holders.as_slice() {
        [_] => Check::pass("comet.relay_lease", format!("{} holds the lease ({} relays)", holders[0], relays.len())),
        [] if relay_containers == 0 => Check::fail(
            "comet.relay_lease",
            "no relay container runs: committed events are not published",
            "start it (`docker start <deployment>-relay-1` or `cometctl deploy`)",
        ),
        [] => Check::fail(
            "comet.relay_lease",
            format!("none of {} relays holds the lease: committed events are not published", relays.len()),
            "read the relays' logs (`docker logs <relay>`); the lease row is in the database's relay_lease table",
        ),
        _ => Check::fail(
            "comet.relay_lease",
            format!("{} relays hold the lease: {}", holders.len(), holders.join(", ")),
            "restart the relays one at a time; consumers deduplicate, but ordering per key is at risk",
        ),
    }
    .with_threshold("exactly one holder");
    let backlog = scraped
        .iter()
        .find_map(|(_, container, text)| metric(text, "comet_outbox_backlog").map(|backlog| (*container, backlog)));
    let backlog = match backlog {
        None => Check::skip("comet.outbox_backlog", "no role container reports comet_outbox_backlog"),
        Some((container, backlog)) => Check::against(
            "comet.outbox_backlog",
            &THRESHOLDS.outbox_backlog,
            backlog,
            format!("{backlog} events waiting (from {container})"),
            "check comet.relay_lease and kafka.reachable: the relay publishes the outbox",
        ),
    };
    let gateways: Vec<u64> = scraped
        .iter()
        .filter(|(service, _, _)| *service == "gateway")
        .filter_map(|(_, _, text)| metric(text, "comet_gateway_connections"))
        .collect();
    let connections = if gateways.is_empty() || facts.plan.gateway_capacity == 0 {
        Check::skip("comet.gateway_connections", "no gateway reports comet_gateway_connections")
    } else {
        let open: u64 = gateways.iter().sum();
        let percent = open * 100 / facts.plan.gateway_capacity;
        Check::against(
            "comet.gateway_connections",
            &THRESHOLDS.gateway_connections_percent,
            percent,
            format!(
                "{open} connections on {} gateways, {percent} % of the plan's {}",
                gateways.len(),
                facts.plan.gateway_capacity
            ),
            "raise plan.services.gateway.replicas in cometctl.yaml, then `cometctl deploy`",
        )
    };
    vec![ready, lease, backlog, connections]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Outcome;

    fn ok(text: &str) -> Probe {
        Ok(ExecOutput { exit_code: Some(0), output: text.to_owned() })
    }

    const REDIS_INFO: &str = "# Server\r\nredis_version:7.0.15\r\n# Memory\r\nused_memory:1048576\r\nmaxmemory:100663296\r\n\
                              maxmemory_policy:noeviction\r\n# Persistence\r\naof_enabled:1\r\n# save\nsave\n3600 1\n";
    const METRICS_API: &str = "# TYPE comet_outbox_backlog gauge\ncomet_outbox_backlog 3\n";
    const METRICS_RELAY: &str = "comet_relay_holds_lease 1\ncomet_outbox_backlog 3\n";
    const METRICS_GATEWAY: &str = "comet_gateway_connections 12\n";

    fn healthy() -> StoreFacts {
        StoreFacts {
            plan: StorePlan {
                standalone_tidb: true,
                kafka_partitions: 3,
                kafka_replication_factor: 1,
                kafka_min_insync_replicas: 1,
                redis_cluster: false,
                mongodb: false,
                gateway_capacity: 15_000,
            },
            tidb: vec![("t-tidb-1".into(), ok(r#"{"connections":0,"version":"8.0.11-TiDB-v8.5.1","git_hash":"x"}"#))],
            pd: None,
            kafka: vec![("t-kafka-1".into(), ok(""))],
            kafka_tools: Some([
                ok("Topic: comet.messages\tTopicId: x\tPartitionCount: 3\tReplicationFactor: 1\tConfigs: \
                    min.insync.replicas=1\n\tTopic: comet.messages\tPartition: 0\tLeader: 1\tReplicas: 1\tIsr: 1\n"),
                ok(""),
                ok(""),
                ok(
                    "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID\nwebhooks comet.messages 0 10 12 2 c1\n",
                ),
            ]),
            redis: vec![("t-redis-1".into(), ok(REDIS_INFO))],
            mongodb: None,
            ready: vec![("api".into(), "t-api-1".into(), ok("ready\n"))],
            metrics: vec![
                ("api".into(), "t-api-1".into(), ok(METRICS_API)),
                ("relay".into(), "t-relay-1".into(), ok(METRICS_RELAY)),
                ("gateway".into(), "t-gateway-1".into(), ok(METRICS_GATEWAY)),
            ],
        }
    }

    fn moved(facts: &StoreFacts) -> Vec<(&'static str, Outcome)> {
        evaluate(facts)
            .into_iter()
            .filter(|check| !matches!(check.outcome, Outcome::Pass | Outcome::Skip))
            .map(|check| (check.id, check.outcome))
            .collect()
    }

    #[test]
    fn recorded_answers_pass_and_each_break_moves_its_check() {
        assert_eq!(moved(&healthy()), vec![]);
        let skips: Vec<&str> =
            evaluate(&healthy()).into_iter().filter(|c| c.outcome == Outcome::Skip).map(|c| c.id).collect();
        assert_eq!(skips, vec!["tidb.tikv", "redis.cluster", "mongodb.replica_set"]);
        type Change = fn(&mut StoreFacts);
        let stopped: Probe = Err("container t-redis-1 is not running".into());
        let cases: Vec<(Change, Vec<(&str, Outcome)>)> = vec![
            (|f| f.redis[0].1 = Err("container t-redis-1 is not running".into()), vec![("redis.ping", Outcome::Fail)]),
            (
                |f| f.redis[0].1 = ok(&REDIS_INFO.replace("noeviction", "allkeys-random")),
                vec![("redis.policy", Outcome::Fail)],
            ),
            (
                |f| f.redis[0].1 = ok(&REDIS_INFO.replace("noeviction", "volatile-lru")),
                vec![("redis.policy", Outcome::Warn)],
            ),
            (
                |f| f.redis[0].1 = ok(&REDIS_INFO.replace("used_memory:1048576", "used_memory:96000000")),
                vec![("redis.memory", Outcome::Fail)],
            ),
            (
                |f| f.redis[0].1 = ok(&REDIS_INFO.replace("aof_enabled:1", "aof_enabled:0").replace("3600 1", "")),
                vec![("redis.persistence", Outcome::Warn)],
            ),
            (
                |f| f.redis[0].1 = ok(&REDIS_INFO.replace("maxmemory:100663296", "maxmemory:0")),
                vec![("redis.maxmemory", Outcome::Fail)],
            ),
            (|f| f.metrics[1].2 = ok("comet_relay_holds_lease 0\n"), vec![("comet.relay_lease", Outcome::Fail)]),
            (|f| f.metrics[0].2 = ok("comet_outbox_backlog 12000\n"), vec![("comet.outbox_backlog", Outcome::Fail)]),
            (
                |f| f.metrics[2].2 = ok("comet_gateway_connections 11000\n"),
                vec![("comet.gateway_connections", Outcome::Warn)],
            ),
            (
                |f| f.ready[0].2 = Ok(ExecOutput { exit_code: Some(1), output: "database: refused\n".into() }),
                vec![("comet.ready", Outcome::Fail)],
            ),
            (|f| f.tidb[0].1 = Err("container is not running".into()), vec![("tidb.reachable", Outcome::Fail)]),
            (|f| f.kafka[0].1 = Err("container is not running".into()), vec![("kafka.reachable", Outcome::Fail)]),
            (
                |f| {
                    if let Some(tools) = &mut f.kafka_tools {
                        tools[3] = ok(
                            "GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG\nw t 0 0 6000 6000\nw t 1 0 6000 6000\n",
                        );
                    }
                },
                vec![("kafka.consumer_lag", Outcome::Fail)],
            ),
            (
                |f| {
                    if let Some(tools) = &mut f.kafka_tools {
                        tools[1] = ok("\tTopic: t\tPartition: 0\tLeader: 1\tReplicas: 1,2\tIsr: 1\n");
                    }
                },
                vec![("kafka.under_replicated", Outcome::Warn)],
            ),
            (|f| f.plan.kafka_partitions = 6, vec![("kafka.topics", Outcome::Fail)]),
        ];
        for (index, (change, expected)) in cases.into_iter().enumerate() {
            let mut facts = healthy();
            change(&mut facts);
            assert_eq!(moved(&facts), expected, "case {index}");
        }
        let mut facts = healthy();
        facts.redis[0].1 = stopped;
        let checks = evaluate(&facts);
        let policy = checks.iter().find(|check| check.id == "redis.policy").expect("policy");
        assert_eq!(policy.outcome, Outcome::Skip, "a silent Redis skips the rest, with why");
    }

    #[test]
    fn a_missing_tool_is_a_skip_with_its_reason() {
        let mut facts = healthy();
        let missing: Probe = Ok(ExecOutput {
            exit_code: Some(126),
            output: "OCI runtime exec failed: exec: \"/opt/kafka/bin/kafka-topics.sh\": no such file or directory"
                .into(),
        });
        facts.kafka_tools = Some([missing.clone(), missing.clone(), missing.clone(), missing]);
        let checks = evaluate(&facts);
        for id in ["kafka.topics", "kafka.under_replicated", "kafka.consumer_lag"] {
            let check = checks.iter().find(|check| check.id == id).expect("present");
            assert_eq!(check.outcome, Outcome::Skip, "{id}");
            assert!(check.evidence.contains("kafka-topics.sh"), "{}", check.evidence);
        }
    }

    #[test]
    fn pd_reports_are_read() {
        let stores = ok(
            r#"{"count":2,"stores":[{"store":{"address":"tikv-1:20160","state_name":"Up"}},{"store":{"address":"tikv-2:20160","state_name":"Down"}}]}"#,
        );
        let zero = ok(r#"{"count":0}"#);
        assert_eq!(pd_health(&stores, &zero, &zero).outcome, Outcome::Fail);
        let up = ok(r#"{"count":1,"stores":[{"store":{"address":"tikv-1:20160","state_name":"Up"}}]}"#);
        assert_eq!(pd_health(&up, &zero, &zero).outcome, Outcome::Pass);
        assert_eq!(pd_health(&up, &ok(r#"{"count":3}"#), &zero).outcome, Outcome::Warn);
    }
}
