//! `deploy swarm` end to end on a single-node swarm: a 10k spec on the stand-in stores with two api and two
//! gateway replicas → refused without a swarm, then `deploy swarm --init-swarm` → every service healthy
//! (status JSON) → chat through NGINX's host-mode port (REST in, WebSocket out) → deploy again changes nothing
//! → upgrade to a new image (Swarm rolls the roles) → a second deployment whose store cannot start fails, naming it, and leaves the first alone → destroy leaves
//! nothing but the volumes and the secrets.
//!
//! The swarm is left at the end only if this test made it (CI starts without one).

use std::time::Instant;

use cometctl::domain::{ServiceKey, Target};
use serde_json::Value;

use crate::chat::assert_one_message_delivered;
use crate::harness::{Deployment, docker, serial};

/// Leaves the swarm when dropped, if the test initialised it.
struct SwarmGuard {
    leave: bool,
}

impl Drop for SwarmGuard {
    fn drop(&mut self) {
        if self.leave {
            let (code, _, stderr) = docker(&["swarm", "leave", "--force"]);
            // A drop cannot fail the test; say why the Engine is left in a swarm.
            #[allow(clippy::print_stderr)]
            if code != 0 {
                eprintln!("docker swarm leave --force failed: {stderr}");
            }
        }
    }
}

fn swarm_state() -> String {
    let (code, stdout, stderr) = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
    assert_eq!(code, 0, "{stderr}");
    stdout.trim().to_owned()
}

/// Names of the deployment's objects of one kind (`service`, `network`, `volume`, `secret`, `config`).
fn labelled(kind: &str, deployment: &str) -> Vec<String> {
    let filter = format!("label=io.comet.deployment={deployment}");
    let (code, stdout, stderr) = docker(&[kind, "ls", "--filter", &filter, "--format", "{{.Name}}"]);
    assert_eq!(code, 0, "docker {kind} ls: {stderr}");
    let mut names: Vec<String> = stdout.lines().map(str::to_owned).collect();
    names.sort();
    names
}

/// Each service's id and version: a deploy that changes nothing leaves both.
fn service_versions(deployment: &str) -> Vec<String> {
    let filter = format!("label=io.comet.deployment={deployment}");
    let (_, ids, _) = docker(&["service", "ls", "-q", "--filter", &filter]);
    let mut versions: Vec<String> = ids
        .lines()
        .map(|id| {
            let (code, version, stderr) = docker(&["service", "inspect", id, "--format", "{{.ID}} {{.Version.Index}}"]);
            assert_eq!(code, 0, "{stderr}");
            version.trim().to_owned()
        })
        .collect();
    versions.sort();
    versions
}

/// Every service runs all its tasks and they are healthy; the job completed.
fn assert_swarm_healthy(status: &Value) {
    assert_eq!(status["target"], "swarm", "{status}");
    let services = status["services"].as_array().expect("services");
    assert!(!services.is_empty(), "{status}");
    for service in services {
        let name = service["service"].as_str().unwrap_or_default();
        assert!(service["desired"].as_u64().is_some_and(|desired| desired > 0), "{name}: {status}");
        if name == "migrate" {
            assert_eq!(service["completed"], service["desired"], "migrate did not complete: {status}");
            continue;
        }
        assert_eq!(service["running"], service["desired"], "{name} is not fully running: {status}");
        assert_eq!(service["unhealthy"], 0, "{name} is unhealthy: {status}");
        assert_eq!(service["healthy"], service["running"], "{name} is not healthy: {status}");
    }
}

#[test]
fn deploy_swarm_serves_chat_through_nginx_and_a_second_deploy_changes_nothing() {
    let _serial = serial();
    let was_in_a_swarm = swarm_state() == "active";
    // Declared before the deployment, so dropped after it: the deployment is destroyed first.
    let _swarm = SwarmGuard { leave: !was_in_a_swarm };
    let deployment = Deployment::new("e2e-swarm", 38080, 38443);
    let name = deployment.name.clone();
    deployment.edit(|spec| {
        spec.target = Target::Swarm;
        let plan = &mut spec.plan;
        for (key, replicas) in [(ServiceKey::Api, 2), (ServiceKey::Gateway, 2), (ServiceKey::Nginx, 1)] {
            // One node: NGINX's host-mode ports allow one task per node.
            plan.services.get_mut(&key).expect("planned").replicas = replicas;
        }
        // Swarm places tasks by what they reserve, and this node has 2 CPUs for a dozen tasks.
        for service in plan.services.values_mut() {
            service.cpu_millis.request = service.cpu_millis.request.min(50);
        }
    });
    deployment.build_comet(&deployment.spec().images.comet.tag);

    let diff = deployment.run(&["diff", "swarm"]).success();
    assert!(diff.stdout.contains(&format!("create   service    {name}_api")), "{}", diff.stdout);

    if !was_in_a_swarm {
        let refused = deployment.run(&["deploy", "swarm"]);
        assert_eq!(refused.code, 2, "stdout:\n{}\nstderr:\n{}", refused.stdout, refused.stderr);
        assert!(refused.stderr.contains("docker swarm init"), "{}", refused.stderr);
        assert!(refused.stderr.contains("--init-swarm"), "{}", refused.stderr);
        assert_eq!(swarm_state(), "inactive", "a refused deploy changed the Engine");
    }

    let started = Instant::now();
    let first = deployment.run(&["deploy", "swarm", "--init-swarm"]);
    let seconds = started.elapsed().as_secs_f64();
    assert_eq!(first.code, 0, "deploy failed\nstdout:\n{}\nstderr:\n{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("every service ready"), "{}", first.stdout);
    // The measured time, shown with `--nocapture`.
    #[allow(clippy::print_stderr)]
    {
        eprintln!("deploy swarm to every service ready: {seconds:.1}s ({})", first.stdout.lines().last().unwrap_or(""));
    }
    if !was_in_a_swarm {
        assert!(first.stderr.contains("single-node swarm"), "{}", first.stderr);
    }
    let status = deployment.status();
    assert_swarm_healthy(&status);
    let services: Vec<&str> =
        status["services"].as_array().expect("services").iter().filter_map(|s| s["service"].as_str()).collect();
    for expected in [
        "api",
        "gateway",
        "relay",
        "webhooks",
        "moderation",
        "notifications",
        "migrate",
        "nginx",
        "tidb",
        "kafka-1",
        "redis-1",
    ] {
        assert!(services.contains(&expected), "{expected} missing from {services:?}");
    }
    for absent in ["pd-1", "tikv-1", "mongodb-1", "prometheus"] {
        assert!(!services.contains(&absent), "{absent} should not be deployed: {services:?}");
    }
    let api = status["services"].as_array().and_then(|all| all.iter().find(|s| s["service"] == "api")).expect("api");
    assert_eq!(api["desired"], 2, "{status}");
    let backend = format!("{name}_backend");
    let (_, network, _) =
        docker(&["network", "inspect", &backend, "--format", "{{.Driver}} {{index .Options \"encrypted\"}}"]);
    assert_eq!(network.trim(), "overlay true", "the backend network is an encrypted overlay");
    let nginx = status["services"].as_array().and_then(|all| all.iter().find(|s| s["service"] == "nginx"));
    assert_eq!(nginx.map(|nginx| nginx["ports"].clone()), Some(serde_json::json!(["38080:80/host", "38443:443/host"])));

    // doctor's swarm checks on this single-node swarm, and the deployment checks through Swarm's tasks.
    let only = "swarm,deployment.running,deployment.healthy,deployment.images,security.published_ports,\
                security.encrypted_networks,redis.ping,comet.relay_lease";
    let doctor = deployment.run(&["doctor", "--only", only, "--output", "json"]);
    let report: Value =
        serde_json::from_str(&doctor.stdout).unwrap_or_else(|error| panic!("{error}: {}", doctor.stdout));
    for check in report["checks"].as_array().expect("checks") {
        assert_eq!(check["outcome"], "pass", "{check}");
    }
    assert_eq!(doctor.code, 0, "{}", doctor.stderr);

    // Chat through NGINX's published port: two users, a REST send, delivered on the WebSocket.
    assert_one_message_delivered(&deployment, "hello through the swarm");

    let before = service_versions(&name);
    let again = deployment.run(&["deploy", "swarm"]).success();
    assert!(again.stdout.contains("no changes"), "second deploy: {}", again.stdout);
    assert_eq!(service_versions(&name), before, "a deploy with no changes updated services");
    assert!(deployment.run(&["diff", "swarm"]).success().stdout.contains("no changes"));
    assert_eq!(deployment.spec().target, Target::Swarm);

    // upgrade: `deploy swarm` of the new image, rolled by Swarm's update_config; the spec records it.
    let next = format!("{}-next", deployment.spec().images.comet.tag);
    deployment.build_comet(&next);
    let upgraded = deployment.run(&["upgrade", "--version", &next]);
    assert_eq!(upgraded.code, 0, "upgrade failed\nstdout:\n{}\nstderr:\n{}", upgraded.stdout, upgraded.stderr);
    assert!(upgraded.stdout.contains("rolling update"), "{}", upgraded.stdout);
    assert_eq!(deployment.spec().images.comet.tag, next, "the spec records the new version");
    let status = deployment.status();
    assert_swarm_healthy(&status);
    let api = status["services"].as_array().and_then(|all| all.iter().find(|s| s["service"] == "api")).expect("api");
    assert!(api["images"].to_string().contains(&next), "{api}");
    let history = std::fs::read_to_string(deployment.dir.join("history.jsonl")).expect("history.jsonl");
    assert!(
        history
            .lines()
            .last()
            .is_some_and(|line| line.contains(r#""target":"swarm","#) && line.contains(r#""result":"ok""#)),
        "{history}"
    );
    let before = service_versions(&name);

    // A second deployment whose Redis cannot start (its image is not Redis): the deploy stops at that store,
    // names it with its tasks' errors and log tail, exits 3, starts no role, and leaves the first one alone.
    let broken = Deployment::new("e2e-swarm-broken", 38081, 38444);
    let not_redis = crate::harness::stand_ins()["kafka"].clone();
    broken.edit(|spec| {
        spec.target = Target::Swarm;
        *spec.images.get_mut("redis").expect("redis") = cometctl::spec::ImageRef::parse(&not_redis).expect("ref");
        let plan = &mut spec.plan;
        plan.services.get_mut(&ServiceKey::Nginx).expect("planned").replicas = 1;
        for service in plan.services.values_mut() {
            service.cpu_millis.request = service.cpu_millis.request.min(50);
        }
    });
    broken.build_comet(&broken.spec().images.comet.tag);
    let failed = broken.run(&["deploy", "swarm"]);
    assert_eq!(failed.code, 3, "stdout:\n{}\nstderr:\n{}", failed.stdout, failed.stderr);
    assert!(failed.stderr.contains("service `redis-1`"), "{}", failed.stderr);
    assert!(failed.stderr.contains("its tasks"), "{}", failed.stderr);
    assert!(failed.stderr.contains("log lines"), "{}", failed.stderr);
    let broken_services = labelled("service", &broken.name);
    assert!(!broken_services.iter().any(|service| service.ends_with("_api")), "roles started: {broken_services:?}");
    assert_eq!(service_versions(&name), before, "the failed deploy of another deployment touched this one");
    drop(broken);
    assert_swarm_healthy(&deployment.status());

    // destroy: services and networks go; the volumes (data) and the secrets and configs stay.
    let secrets = labelled("secret", &name);
    assert!(!secrets.is_empty(), "the deploy made no secrets");
    let destroyed = deployment.run(&["destroy"]).success();
    assert!(destroyed.stderr.contains("kept"), "{}", destroyed.stderr);
    assert!(labelled("service", &name).is_empty(), "services left");
    // A swarm manager removes an overlay network in the background after `docker network rm` answered, so
    // the list may still name it for a moment: wait for the condition, up to a minute.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !labelled("network", &name).is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    assert!(labelled("network", &name).is_empty(), "networks left: {:?}", labelled("network", &name));
    let filter = format!("label=io.comet.deployment={name}");
    let (_, containers, _) = docker(&["ps", "-aq", "--filter", &filter]);
    assert!(containers.trim().is_empty(), "containers left: {containers}");
    assert!(labelled("volume", &name).len() >= 3, "the store volumes should remain");
    assert_eq!(labelled("secret", &name), secrets, "secrets go only with --secrets");
    assert!(!labelled("config", &name).is_empty(), "configs go only with --secrets");
    let status = deployment.status();
    assert_eq!(status["services"], Value::Array(Vec::new()), "{status}");
}
