//! The checks of a running deployment: what the Engine reports (services, containers, events, drift), what
//! the stores and roles answer inside their own containers (one batch of concurrent execs), what the edge
//! answered (`checks::probe`, joined here), and the folder's secrets and certificate.

use std::thread::ScopedJoinHandle;
use std::time::Duration;

use anyhow::Result;

use crate::checks::catalog::Selection;
use crate::checks::deployment::{self, DeploymentFacts};
use crate::checks::edge::{self, EdgeExpected, SecurityFacts};
use crate::checks::probe::EdgeAnswers;
use crate::checks::stores::{self, Probe, StoreFacts, StorePlan, commands};
use crate::checks::{Check, observability, skip_all};
use crate::context::Context;
use crate::deploy::{self, Choice, Purpose};
use crate::domain::{ServiceKey, ServiceKind, Target};
use crate::engine::Engine;
use crate::manifest::compose::ComposeFile;
use crate::plan::observed::{ContainerConfig, ExecRequest, ObservedContainer};
use crate::render::{self, TemplateSet};
use crate::sizing::RedisMode;
use crate::spec::Spec;

/// How long one command inside a container may take.
const EXEC_TIMEOUT: Duration = Duration::from_secs(8);
/// The window of `deployment.oom`.
const OOM_WINDOW_SECONDS: u64 = 3600;

pub fn checks(
    context: &Context<'_>,
    spec: &Spec,
    selection: &Selection,
    edge_probe: Option<ScopedJoinHandle<'_, EdgeAnswers>>,
) -> Result<Vec<Check>> {
    let engine = context.engine()?;
    let deployment = spec.name.as_str();
    let now = context.clock.now_unix_seconds();
    let backend = deploy::backend_for(context, Choice::Observed)?;
    let target = backend.target();
    let observed =
        if target == Target::Swarm { engine.task_containers(deployment)? } else { engine.containers(deployment)? };
    let mut configs: Vec<(ObservedContainer, ContainerConfig)> = Vec::new();
    for container in &observed {
        if let Some(config) = engine.container_config(&container.id)? {
            configs.push((container.clone(), config));
        }
    }
    let tree = render::render(spec, &TemplateSet::embedded(), &[Target::Compose])
        .map_err(|error| crate::error::Refusal(error.to_string()))?;
    let text = |suffix: &str| {
        tree.iter()
            .find(|(path, _)| path.ends_with(suffix))
            .map(|(_, bytes)| String::from_utf8_lossy(bytes).into_owned())
            .unwrap_or_default()
    };
    let compose = ComposeFile::parse("rendered/compose.yaml", &text("compose.yaml"))
        .map_err(|error| crate::error::Refusal(error.to_string()))?;
    let mut checks = Vec::new();

    if selection.any(deployment::IDS) {
        let status = backend.status(spec)?;
        let drift = if selection.contains("deployment.drift") {
            backend.stage(spec, Purpose::Drift)?.lines()
        } else {
            Vec::new()
        };
        let mut images: Vec<String> = compose.services.values().map(|service| service.image.clone()).collect();
        images.sort();
        images.dedup();
        let jobs: Vec<String> =
            compose.services.iter().filter(|(_, service)| service.is_job()).map(|(name, _)| name.clone()).collect();
        let long_running = configs
            .iter()
            .filter(|(container, _)| !jobs.contains(&container.service))
            .map(|(_, config)| config.clone())
            .collect();
        let facts = DeploymentFacts {
            deployment: deployment.to_owned(),
            target,
            services: status.services,
            jobs,
            containers: long_running,
            oom_kills: engine.oom_kills(deployment, now.saturating_sub(OOM_WINDOW_SECONDS), now)?,
            images,
            drift,
        };
        checks.extend(deployment::evaluate(&facts));
    }

    if selection.any(stores::IDS) || selection.contains("observability.targets") {
        let (store_facts, prometheus) = store_facts(engine, spec, &observed)?;
        checks.extend(stores::evaluate(&store_facts));
        checks.push(observability::targets(spec.observability.prometheus, prometheus.as_ref()));
    }

    match edge_probe {
        Some(handle) => {
            let answers = handle.join().map_err(|_| anyhow::anyhow!("the edge probe stopped unexpectedly"))?;
            let certificate = context
                .folder
                .read_optional(&spec.tls.cert_file)?
                .and_then(|pem| crate::tls::first_certificate_der(&pem));
            let nginx_conf = text("nginx.conf");
            let ssl_protocols = nginx_conf
                .lines()
                .map(str::trim)
                .find_map(|line| line.strip_prefix("ssl_protocols "))
                .map(|rest| rest.trim_end_matches(';').trim().to_owned());
            let expected = EdgeExpected { certificate, ssl_protocols, now: i64::try_from(now).unwrap_or(i64::MAX) };
            checks.extend(edge::evaluate_edge(&answers, &expected));
        }
        None if !spec.plan.deploys(ServiceKey::Nginx) => {
            checks.extend(skip_all(edge::EDGE_IDS, "NGINX is not deployed"));
        }
        None => {}
    }

    if selection.any(edge::SECURITY_IDS) {
        let rendered = compose
            .services
            .iter()
            .map(|(name, service)| {
                let drops_all = service.cap_drop.iter().any(|cap| cap.eq_ignore_ascii_case("ALL"));
                (name.clone(), service.user.clone(), service.read_only, drops_all)
            })
            .collect();
        let secrets = context
            .folder
            .secret_files()?
            .into_iter()
            .map(|(name, value, written)| (name, value, now.saturating_sub(written)))
            .collect();
        let overlay_networks = if target == Target::Swarm { Some(engine.overlay_networks(deployment)?) } else { None };
        let facts = SecurityFacts {
            containers: configs
                .iter()
                .map(|(container, config)| (container.service.clone(), container.ports.clone(), config.clone()))
                .collect(),
            rendered,
            secrets,
            overlay_networks,
            edge_service: ServiceKey::Nginx.key().to_owned(),
        };
        checks.extend(edge::evaluate_security(&facts));
    }
    if selection.contains("backups.age") {
        checks.push(observability::backups(&backup_facts(context, now)));
    }
    Ok(checks)
}

/// The newest complete backup set of the spec's destination, and the last restore drill of history.jsonl.
fn backup_facts(context: &Context<'_>, now: u64) -> observability::BackupFacts {
    let location = crate::backup::location(context, None);
    let shown = location.as_ref().map_or_else(|error| format!("{error:#}"), ToString::to_string);
    let newest = location
        .and_then(|location| crate::backup::Target::open(&location)?.list())
        .map(|sets| {
            sets.into_iter().rev().find_map(|set| match set {
                crate::backup::Listed::Complete { id, manifest } => {
                    Some((id, manifest.finished_at, manifest.parts.iter().map(|part| part.name.clone()).collect()))
                }
                crate::backup::Listed::Incomplete { .. } => None,
            })
        })
        .map_err(|error| format!("{error:#}"));
    let records: Vec<serde_json::Value> = context.folder.history().unwrap_or_default();
    let last_drill = records
        .iter()
        .rev()
        .find(|record| record["action"] == "restore-drill")
        .and_then(|record| Some((record["at"].as_u64()?, record["result"] == "ok")));
    observability::BackupFacts { location: shown, newest, last_drill, now }
}

fn is_role(service: &str) -> bool {
    ServiceKey::ALL.iter().any(|key| key.kind() == ServiceKind::Role && key.key() == service)
}

/// Asks every store and role container, in one batch; also Prometheus's targets.
fn store_facts(engine: &Engine, spec: &Spec, observed: &[ObservedContainer]) -> Result<(StoreFacts, Option<Probe>)> {
    let plan = &spec.plan;
    let redis_cluster = plan.stores.redis.mode == RedisMode::Cluster;
    let gateway_capacity = {
        let profile = crate::folder::read_profile(None)?;
        let per_replica = profile.capacities.gateway_connections.value.max(0.0) as u64;
        u64::from(plan.replicas(ServiceKey::Gateway)) * per_replica
    };
    let mut requests: Vec<ExecRequest> = Vec::new();
    // Each entry: which request answers it (None: the container is not running).
    let mut ask = |container: &ObservedContainer, command: Vec<String>| -> Option<usize> {
        container.running.then(|| {
            requests.push(ExecRequest { container: container.id.clone(), command });
            requests.len() - 1
        })
    };
    let of = |key: ServiceKey| -> Vec<&ObservedContainer> {
        observed.iter().filter(|container| key.has_node(&container.service)).collect()
    };
    let first_running = |key: ServiceKey| of(key).into_iter().find(|container| container.running);
    let tidb: Vec<(String, Option<usize>)> =
        of(ServiceKey::Tidb).into_iter().map(|c| (c.name.clone(), ask(c, commands::tidb_status()))).collect();
    let pd = if plan.standalone_tidb() {
        None
    } else {
        first_running(ServiceKey::Pd).map(|container| {
            ["/pd/api/v1/stores", "/pd/api/v1/regions/check/miss-peer", "/pd/api/v1/regions/check/down-peer"]
                .map(|path| ask(container, commands::pd(path)))
        })
    };
    let kafka: Vec<(String, Option<usize>)> =
        of(ServiceKey::Kafka).into_iter().map(|c| (c.name.clone(), ask(c, commands::kafka_api_versions()))).collect();
    let kafka_tools = first_running(ServiceKey::Kafka).map(|container| {
        [
            commands::kafka_topics(&[]),
            commands::kafka_topics(&["--under-replicated-partitions"]),
            commands::kafka_topics(&["--unavailable-partitions"]),
            commands::kafka_groups(),
        ]
        .map(|command| ask(container, command))
    });
    let redis: Vec<(String, Option<usize>)> =
        of(ServiceKey::Redis).into_iter().map(|c| (c.name.clone(), ask(c, commands::redis(redis_cluster)))).collect();
    let mongodb = first_running(ServiceKey::Mongodb)
        .map(|container| (container.name.clone(), ask(container, commands::mongodb_members())));
    // Stopped role containers are `deployment.running`'s finding; these ask the running ones.
    let roles: Vec<&ObservedContainer> =
        observed.iter().filter(|container| container.running && is_role(&container.service)).collect();
    let ready: Vec<(String, String, Option<usize>)> =
        roles.iter().map(|c| (c.service.clone(), c.name.clone(), ask(c, commands::comet("/ready")))).collect();
    let metrics: Vec<(String, String, Option<usize>)> =
        roles.iter().map(|c| (c.service.clone(), c.name.clone(), ask(c, commands::comet("/metrics")))).collect();
    let prometheus = first_running(ServiceKey::Prometheus).map(|c| ask(c, observability::targets_command()));

    let answers: Vec<Probe> = engine
        .exec_all(&requests, EXEC_TIMEOUT)
        .into_iter()
        .map(|answer| answer.map_err(|error| error.to_string()))
        .collect();
    let answer = |index: Option<usize>| -> Probe {
        match index.and_then(|index| answers.get(index)) {
            Some(probe) => probe.clone(),
            None => Err("the container is not running".to_owned()),
        }
    };
    let facts = StoreFacts {
        plan: StorePlan {
            standalone_tidb: plan.standalone_tidb(),
            kafka_partitions: plan.stores.kafka.partitions,
            kafka_replication_factor: plan.stores.kafka.replication_factor,
            kafka_min_insync_replicas: plan.stores.kafka.min_insync_replicas,
            redis_cluster,
            mongodb: plan.deploys(ServiceKey::Mongodb),
            gateway_capacity,
        },
        tidb: tidb.into_iter().map(|(name, index)| (name, answer(index))).collect(),
        pd: pd.map(|indices| indices.map(answer)),
        kafka: kafka.into_iter().map(|(name, index)| (name, answer(index))).collect(),
        kafka_tools: kafka_tools.map(|indices| indices.map(answer)),
        redis: redis.into_iter().map(|(name, index)| (name, answer(index))).collect(),
        mongodb: mongodb.map(|(name, index)| (name, answer(index))),
        ready: ready.into_iter().map(|(service, name, index)| (service, name, answer(index))).collect(),
        metrics: metrics.into_iter().map(|(service, name, index)| (service, name, answer(index))).collect(),
    };
    Ok((facts, prometheus.map(answer)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_names_map_to_their_store() {
        assert!(ServiceKey::Redis.has_node("redis-1"));
        assert!(ServiceKey::Tidb.has_node("tidb"));
        assert!(!ServiceKey::Redis.has_node("redis-cluster-init"));
        assert!(!ServiceKey::Tidb.has_node("tikv-1"));
        assert!(is_role("relay"));
        assert!(!is_role("migrate"));
    }
}
