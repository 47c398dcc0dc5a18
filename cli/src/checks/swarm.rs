//! Checks a Swarm deploy runs: this Engine manages a swarm, the node labels services are pinned to exist,
//! the plan is placeable on the nodes, and every service spec survives the Engine client's model whole.

use std::collections::BTreeSet;

use anyhow::Result;

use super::Check;
use crate::engine::Engine;
use crate::plan::observed::{SwarmNode, SwarmRole};
use crate::plan::swarm::{Desired, DesiredService};
use crate::printer::Printer;

/// The address a single-node swarm made by `--init-swarm` advertises and listens on.
const SINGLE_NODE_ADDRESS: &str = "127.0.0.1";

/// This Engine must manage a swarm; with `init`, an Engine in no swarm becomes a single-node one.
pub fn manager(engine: &Engine, init: bool, printer: &Printer) -> Result<Check> {
    Ok(match engine.swarm_role()? {
        SwarmRole::Manager { .. } => Check::pass("swarm.role", "this Docker Engine is a swarm manager"),
        SwarmRole::Inactive if init => {
            let listen = format!("{SINGLE_NODE_ADDRESS}:2377");
            engine.init_swarm(SINGLE_NODE_ADDRESS, &listen)?;
            printer.note(&format!(
                "this Docker Engine is now a single-node swarm (advertised at {SINGLE_NODE_ADDRESS}, listening on \
                 {listen} only, so no other node can join it); `docker swarm leave --force` undoes it"
            ));
            Check::pass("swarm.role", "this Docker Engine is the manager of a new single-node swarm")
        }
        SwarmRole::Inactive => Check::fail(
            "swarm.role",
            "this Docker Engine is not part of a swarm",
            "run `docker swarm init --advertise-addr <this host's address>` (other nodes can then join), or \
             `cometctl deploy swarm --init-swarm` for a single-node swarm on this host",
        ),
        SwarmRole::Other { state } => Check::fail(
            "swarm.role",
            format!("this Docker Engine is {state} in its swarm, not a manager"),
            "run cometctl where DOCKER_HOST reaches a manager node (`docker node ls` on a manager lists them)",
        ),
    })
}

/// The node labels the services are pinned to must exist, and enough nodes carry them for each service's
/// tasks. On a single-node swarm every pinned service can only run on that node, so it gets the labels (and a
/// note says so); with more nodes the operator decides where the data lives, and missing labels fail with
/// the commands that set them. Returns the schedulable nodes as labelled.
pub fn node_labels(engine: &Engine, desired: &Desired, printer: &Printer) -> Result<(Check, Vec<SwarmNode>)> {
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
            [] => {
                let check = Check::fail("swarm.node-labels", "the swarm has no node that is ready and active", "");
                return Ok((check, nodes));
            }
            _ => {
                let commands: Vec<String> = missing
                    .iter()
                    .map(|(key, value)| format!("docker node update --label-add {key}={value} <node>"))
                    .collect();
                let check = Check::fail(
                    "swarm.node-labels",
                    format!(
                        "no node of the swarm carries {text}, which services are pinned to (their data lives on \
                         that node)"
                    ),
                    format!(
                        "label the nodes first, e.g.\n  {}\n(rendered/stack.yaml lists every label)",
                        commands.join("\n  ")
                    ),
                );
                return Ok((check, nodes));
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
            let check = Check::fail(
                "swarm.node-labels",
                format!(
                    "service `{}` wants {tasks} tasks, at most {per_node} per node, and {eligible} node(s) can run it",
                    service.service
                ),
                format!("lower its replicas under plan.services in cometctl.yaml to {room}, or label more nodes"),
            );
            return Ok((check, nodes));
        }
    }
    Ok((Check::pass("swarm.node-labels", "every pinned service has nodes to run on"), nodes))
}

/// A plan Swarm could not place fails here: a CPU limit above every node's CPUs (the container would not
/// start), or more CPU or memory reserved than the nodes have together (tasks would stay pending).
pub fn placeable(nodes: &[SwarmNode], desired: &Desired) -> Check {
    let largest = nodes.iter().map(|node| node.nano_cpus).max().unwrap_or(0);
    for service in desired.services.values() {
        if let Some(limit) = service.cpu_limit_nanos
            && largest > 0
            && limit > largest
        {
            return Check::fail(
                "swarm.placeable",
                format!(
                    "service `{}` is limited to {} CPUs but the largest node has {}",
                    service.service,
                    limit as f64 / 1e9,
                    largest as f64 / 1e9
                ),
                format!(
                    "lower its cpu_millis.limit under plan.services in cometctl.yaml (at most {})",
                    largest / 1_000_000
                ),
            );
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
        return Check::fail(
            "swarm.placeable",
            format!(
                "the services reserve {:.2} CPUs in all and the swarm's nodes have {:.2}",
                reserved_cpus as f64 / 1e9,
                cpus as f64 / 1e9
            ),
            format!(
                "Swarm would leave tasks pending. Lower cpu_millis.request under plan.services in cometctl.yaml \
                 (largest: {})",
                largest_reservers(&|service| service.reserved_nano_cpus, 1e9, "")
            ),
        );
    }
    if memory > 0 && reserved_memory > memory {
        let gib = f64::from(1u32 << 30);
        return Check::fail(
            "swarm.placeable",
            format!(
                "the services reserve {:.1} GiB of memory in all and the swarm's nodes have {:.1} GiB",
                reserved_memory as f64 / gib,
                memory as f64 / gib
            ),
            format!(
                "Swarm would leave tasks pending. Lower memory_mib.request under plan.services in cometctl.yaml \
                 (largest: {})",
                largest_reservers(&|service| service.reserved_memory, gib, " GiB")
            ),
        );
    }
    Check::pass("swarm.placeable", "the nodes can place every task")
}

/// Every service spec must survive the Engine client's model whole (no unknown or misspelt field).
pub fn service_specs(desired: &Desired) -> Check {
    for service in desired.services.values() {
        if let Err(error) = crate::engine::check_service_spec(service.spec.clone()) {
            return Check::fail("swarm.service-specs", error.to_string(), "");
        }
    }
    Check::pass("swarm.service-specs", "the Engine client's model takes every service spec")
}

pub const DOCTOR_IDS: &[&str] = &["swarm.state", "swarm.nodes", "swarm.managers"];

/// `doctor`'s swarm checks for `deployment`, from the Engine: its role, the nodes, the deployment's running
/// tasks on managers (asked only with more than one node).
pub fn doctor_checks(engine: &Engine, deployment: &str) -> Result<Vec<Check>> {
    let role = engine.swarm_role()?;
    let nodes = match role {
        SwarmRole::Manager { .. } => engine.nodes()?,
        _ => Vec::new(),
    };
    let mut on_managers = Vec::new();
    if nodes.len() > 1 {
        let managers: Vec<&str> = nodes.iter().filter(|node| node.manager).map(|node| node.id.as_str()).collect();
        for service in engine.services(deployment)? {
            for task in engine.tasks(&service.id)? {
                if task.desired_state == "running" && managers.contains(&task.node_id.as_str()) {
                    let node = nodes.iter().find(|node| node.id == task.node_id).map_or("?", |node| &node.hostname);
                    on_managers.push(format!("{} on {node}", service.name));
                }
            }
        }
        on_managers.sort();
        on_managers.dedup();
    }
    Ok(evaluate(&role, &nodes, &on_managers))
}

/// `doctor`'s swarm checks: the swarm active with a leader, every node Ready and active, an odd number of
/// managers, and (with more than one node) no application task on a manager. `app_tasks_on_managers`: the
/// deployment's running tasks placed on manager nodes, as `service on node`.
pub fn evaluate(role: &SwarmRole, nodes: &[SwarmNode], app_tasks_on_managers: &[String]) -> Vec<Check> {
    match role {
        SwarmRole::Inactive => {
            return super::skip_all(DOCTOR_IDS, "this Docker Engine is in no swarm (Compose, or not yet deployed)");
        }
        SwarmRole::Other { state } => {
            let mut checks = vec![Check::fail(
                "swarm.state",
                format!("this Docker Engine is {state} in its swarm, not a manager"),
                "run cometctl where DOCKER_HOST reaches a manager node",
            )];
            checks.extend(DOCTOR_IDS[1..].iter().map(|id| Check::skip(id, "only a manager sees the nodes")));
            return checks;
        }
        SwarmRole::Manager { .. } => {}
    }
    let leader = nodes.iter().find(|node| node.leader);
    let state = match leader {
        Some(leader) => Check::pass("swarm.state", format!("swarm active; {} leads", leader.hostname)),
        None => Check::fail(
            "swarm.state",
            "the swarm has no leader: a majority of managers is unreachable",
            "bring the managers back, or `docker swarm init --force-new-cluster` on a surviving one",
        ),
    };
    let down: Vec<String> = nodes
        .iter()
        .filter(|node| !node.schedulable)
        .map(|node| format!("{} ({})", node.hostname, if node.ready { "not active" } else { "not ready" }))
        .collect();
    let node_check = if down.is_empty() {
        Check::pass("swarm.nodes", format!("{} nodes Ready and active", nodes.len()))
    } else {
        Check::warn(
            "swarm.nodes",
            format!("nodes out of service: {}", down.join(", ")),
            "`docker node ls`; restart the node's Engine, or `docker node update --availability active <node>`",
        )
    };
    let managers = nodes.iter().filter(|node| node.manager).count();
    let manager_check = if managers % 2 == 0 {
        Check::warn(
            "swarm.managers",
            format!("{managers} managers: an even count tolerates no more failures than one fewer"),
            "promote or demote one (`docker node promote|demote <node>`) for 1, 3 or 5 managers",
        )
    } else if nodes.len() > 1 && !app_tasks_on_managers.is_empty() {
        Check::warn(
            "swarm.managers",
            format!("application tasks on managers: {}", app_tasks_on_managers.join(", ")),
            "`docker node update --availability drain <manager>` keeps managers for the control plane",
        )
    } else if nodes.len() == 1 {
        Check::pass("swarm.managers", "a single-node swarm: its one manager runs every task")
    } else {
        Check::pass("swarm.managers", format!("{managers} managers, running no application task"))
    }
    .with_threshold("odd count; no app tasks on managers with more than one node");
    vec![state, node_check, manager_check]
}

#[cfg(test)]
mod doctor_tests {
    use super::*;
    use crate::checks::Outcome;

    fn node(name: &str, manager: bool, leader: bool) -> SwarmNode {
        SwarmNode {
            id: name.into(),
            hostname: name.into(),
            labels: Default::default(),
            schedulable: true,
            ready: true,
            manager,
            leader,
            nano_cpus: 2_000_000_000,
            memory_bytes: 1 << 33,
        }
    }

    #[test]
    fn swarm_state_from_recorded_nodes() {
        let manager = SwarmRole::Manager { node_id: "a".into() };
        let outcomes = |nodes: &[SwarmNode], tasks: &[String]| -> Vec<Outcome> {
            evaluate(&manager, nodes, tasks).iter().map(|check| check.outcome).collect()
        };
        assert_eq!(outcomes(&[node("a", true, true)], &[]), vec![Outcome::Pass; 3]);
        let three = [node("a", true, true), node("b", true, false), node("c", false, false)];
        assert_eq!(outcomes(&three, &[]), vec![Outcome::Pass, Outcome::Pass, Outcome::Warn]);
        let mut down = vec![node("a", true, true), node("b", false, false), node("c", false, false)];
        down[1].schedulable = false;
        down[1].ready = false;
        assert_eq!(outcomes(&down, &["api on a".into()]), vec![Outcome::Pass, Outcome::Warn, Outcome::Warn]);
        assert_eq!(outcomes(&[node("a", true, false)], &[])[0], Outcome::Fail);
        let inactive = evaluate(&SwarmRole::Inactive, &[], &[]);
        assert!(inactive.iter().all(|check| check.outcome == Outcome::Skip));
    }
}
