//! `upgrade` under load: a client sends continuously through NGINX while the roles move to a new version
//! (0 failed requests, every acknowledged message in history, in order); then an upgrade to a comet-server
//! that never becomes healthy rolls back by itself, again without a failed request.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::chat::Chat;
use crate::harness::{Deployment, assert_all_healthy, serial};

/// Sends alice → bob until `stop`, one request at a time; the acknowledged ids in order and the failures.
async fn load(chat: Arc<Chat>, stop: Arc<AtomicBool>) -> (Vec<String>, Vec<String>) {
    let mut acknowledged = Vec::new();
    let mut failures = Vec::new();
    let mut n = 0_u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        match chat.send("alice", "bob", &format!("load {n}")).await {
            Ok(message) => acknowledged.push(message["id"].to_string()),
            Err(error) => failures.push(error),
        }
    }
    (acknowledged, failures)
}

/// Runs `cometctl upgrade` with `args` while the load runs; returns the upgrade's outcome and the load's.
fn upgrade_under_load(
    runtime: &tokio::runtime::Runtime,
    deployment: &Deployment,
    chat: &Arc<Chat>,
    args: &[&str],
) -> (crate::support::Run, Vec<String>, Vec<String>) {
    let stop = Arc::new(AtomicBool::new(false));
    let generator = runtime.spawn(load(chat.clone(), stop.clone()));
    let mut all = vec!["upgrade"];
    all.extend_from_slice(args);
    let run = deployment.run(&all);
    stop.store(true, Ordering::Relaxed);
    let (acknowledged, failures) = runtime.block_on(generator).expect("load generator");
    (run, acknowledged, failures)
}

#[test]
fn upgrade_under_load_drops_no_request_and_a_broken_version_rolls_back() {
    let _serial = serial();
    let deployment = Deployment::new("e2e-upgrade", 28080, 28443);
    let old = deployment.spec().images.comet.tag.clone();
    deployment.build_comet(&old);
    let deploy = deployment.run(&["deploy", "compose"]);
    assert_eq!(deploy.code, 0, "deploy failed\nstdout:\n{}\nstderr:\n{}", deploy.stdout, deploy.stderr);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let chat = Arc::new(Chat::new(&deployment));
    runtime.block_on(async {
        chat.user("alice").await;
        chat.user("bob").await;
    });

    // A new version: same program, new tag, so every comet container is replaced.
    let new = format!("{old}-next");
    deployment.build_comet(&new);
    let (run, acknowledged, failures) = upgrade_under_load(&runtime, &deployment, &chat, &["--version", &new]);
    assert_eq!(run.code, 0, "upgrade failed\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    if !failures.is_empty() {
        let (_, logs, errors) = crate::harness::docker(&["logs", "e2e-upgrade-nginx-1"]);
        let failed: Vec<&str> = logs
            .lines()
            .chain(errors.lines())
            .filter(|line| line.contains("\"status\":\"4") || line.contains("\"status\":\"5") || line.contains("error"))
            .collect();
        eprintln!("NGINX lines of failed requests:\n{}", failed.join("\n"));
        eprintln!("upgrade output:\n{}\n{}", run.stdout, run.stderr);
        let (_, network, _) = crate::harness::docker(&[
            "network",
            "inspect",
            "e2e-upgrade_backend",
            "--format",
            "{{range .Containers}}{{.Name}} {{.IPv4Address}}\n{{end}}",
        ]);
        eprintln!("backend network now:\n{network}");
    }
    assert!(
        failures.is_empty(),
        "{} failed requests during the upgrade: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(acknowledged.len() > 10, "the load generator barely ran: {}", acknowledged.len());
    let history = runtime.block_on(chat.history_ids("alice", "bob"));
    assert_eq!(history, acknowledged, "history differs from the acknowledged sends");
    assert_eq!(deployment.spec().images.comet.tag, new, "the spec records the new version");
    let status = deployment.status();
    assert_all_healthy(&status);
    let api =
        status["services"].as_array().expect("services").iter().find(|s| s["service"] == "api").expect("api").clone();
    assert!(api["images"].to_string().contains(&new), "{api}");

    // A version that migrates but never becomes healthy: rolled back by itself, still no failed request.
    let broken = format!("{old}-broken");
    crate::harness::build_broken_comet(&deployment, &broken);
    let (run, acknowledged_too, failures) = upgrade_under_load(&runtime, &deployment, &chat, &["--version", &broken]);
    assert_eq!(run.code, 3, "a failed upgrade exits 3\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("rolled back"), "{}", run.stderr);
    assert!(
        failures.is_empty(),
        "{} failed requests during the rollback: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(!acknowledged_too.is_empty());
    assert_eq!(deployment.spec().images.comet.tag, new, "a rolled-back upgrade leaves the spec alone");
    let status = deployment.status();
    assert_all_healthy(&status);
    // The migration job keeps the record of its last run (the broken version's, which exited 0); a rollback
    // does not run the older migration over a newer schema. Everything that runs is the previous version.
    for service in status["services"].as_array().expect("services").iter().filter(|s| s["service"] != "migrate") {
        assert!(!service["images"].to_string().contains(&broken), "the broken version still runs: {service}");
    }
    let api =
        status["services"].as_array().expect("services").iter().find(|s| s["service"] == "api").expect("api").clone();
    assert!(api["images"].to_string().contains(&new), "{api}");
    let history = std::fs::read_to_string(deployment.dir.join("history.jsonl")).expect("history.jsonl");
    let results: Vec<serde_json::Value> =
        history.lines().map(|line| serde_json::from_str(line).expect("JSON line")).collect();
    let outcomes: Vec<(&str, &str)> = results
        .iter()
        .map(|record| (record["action"].as_str().unwrap_or_default(), record["result"].as_str().unwrap_or_default()))
        .collect();
    assert_eq!(outcomes, [("deploy", "ok"), ("upgrade", "ok"), ("upgrade", "rolled-back")], "{history}");
}
