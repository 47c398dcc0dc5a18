//! `upgrade` under load: a client sends continuously through NGINX while the roles move to a new version
//! (0 failed requests, every acknowledged message in history, in order); then an upgrade to a comet-server
//! that never becomes healthy rolls back by itself, again without a failed request.

use std::sync::Arc;

use crate::chat::Chat;
use crate::harness::{Deployment, assert_all_healthy, serial};
use crate::load;

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
    let upgrade = load::during(&runtime, &deployment, &chat, &["upgrade", "--version", &new]);
    let (run, acknowledged) = (&upgrade.run, &upgrade.acknowledged);
    assert_eq!(run.code, 0, "upgrade failed\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(upgrade.failures.is_empty(), "during the upgrade: {}", upgrade.explain(&deployment));
    assert!(acknowledged.len() > 10, "the load generator barely ran: {}", acknowledged.len());
    let history = runtime.block_on(chat.history_ids("alice", "bob"));
    assert_eq!(&history, acknowledged, "history differs from the acknowledged sends");
    assert_eq!(deployment.spec().images.comet.tag, new, "the spec records the new version");
    let status = deployment.status();
    assert_all_healthy(&status);
    let api =
        status["services"].as_array().expect("services").iter().find(|s| s["service"] == "api").expect("api").clone();
    assert!(api["images"].to_string().contains(&new), "{api}");

    // A version that migrates but never becomes healthy: rolled back by itself, still no failed request.
    let broken = format!("{old}-broken");
    crate::harness::build_broken_comet(&deployment, &broken);
    let rollback = load::during(&runtime, &deployment, &chat, &["upgrade", "--version", &broken]);
    let run = &rollback.run;
    assert_eq!(run.code, 3, "a failed upgrade exits 3\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("rolled back"), "{}", run.stderr);
    assert!(rollback.failures.is_empty(), "during the rollback: {}", rollback.explain(&deployment));
    assert!(!rollback.acknowledged.is_empty());
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

    // `scale` under load, through the same flow as upgrade: the plan diff, a second API container behind
    // NGINX, cometctl.yaml edited in place, no failed request.
    let scaled = load::during(&runtime, &deployment, &chat, &["scale", "api=2", "--yes"]);
    let run = &scaled.run;
    assert_eq!(run.code, 0, "scale failed\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("plan.services.api.replicas"), "the plan diff: {}", run.stdout);
    assert!(scaled.failures.is_empty(), "during the scale: {}", scaled.explain(&deployment));
    assert_eq!(deployment.spec().plan.replicas(cometctl::domain::ServiceKey::Api), 2);
    let api_containers = || -> Vec<(String, String, bool)> {
        deployment.containers().into_iter().filter(|(name, _, _)| name.starts_with("e2e-upgrade-api-")).collect()
    };
    let before = api_containers();
    assert_eq!(before.len(), 2, "two API containers: {before:?}");
    assert_all_healthy(&deployment.status());

    // The rolling-restart playbook under load: each API container replaced start-first, one at a time.
    let restart = load::during(
        &runtime,
        &deployment,
        &chat,
        &["playbook", "run", "rolling-restart", "--input", "service=api", "--yes"],
    );
    let run = &restart.run;
    assert_eq!(run.code, 0, "rolling restart failed\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(restart.failures.is_empty(), "during the rolling restart: {}", restart.explain(&deployment));
    let after = api_containers();
    assert_eq!(after.len(), 2, "{after:?}");
    for (name, id, _) in &before {
        assert!(!after.iter().any(|(_, new_id, _)| new_id == id), "{name} was not replaced: {after:?}");
    }
    let history = runtime.block_on(chat.history_ids("alice", "bob"));
    let tail: Vec<_> = scaled.acknowledged.iter().chain(&restart.acknowledged).cloned().collect();
    assert!(history.ends_with(&tail), "every send acknowledged during scale and restart is in history, in order");
    let journal = std::fs::read_dir(deployment.dir.join("journal")).expect("the run's journal").count();
    assert_eq!(journal, 1, "one run journal (the lock is gone)");
    let records = std::fs::read_to_string(deployment.dir.join("history.jsonl")).expect("history.jsonl");
    assert!(records.lines().last().is_some_and(|line| line.contains("\"action\":\"scale\"")), "{records}");

    // The rotate-secrets playbook: a new API key, the roles rolled onto it; the old key is refused, the new one
    // works, and a user's token from before the rotation still opens a socket.
    let carol = runtime.block_on(chat.user("carol"));
    let old_key = std::fs::read_to_string(deployment.dir.join("secrets/api_key")).expect("the API key");
    let rotated = deployment.run(&["playbook", "run", "rotate-secrets", "--input", "secret=api_key", "--yes"]);
    assert_eq!(rotated.code, 0, "rotation failed\nstdout:\n{}\nstderr:\n{}", rotated.stdout, rotated.stderr);
    let new_key = std::fs::read_to_string(deployment.dir.join("secrets/api_key")).expect("the API key");
    assert_ne!(old_key, new_key, "a new value");
    let body = serde_json::json!({"uid": "dave", "name": "dave"});
    let (status, reply) = runtime.block_on(chat.call("/v3/users", None, &body)).expect("a reply");
    assert_eq!(status, 401, "the old key is refused: {reply}");
    let fresh = Chat::new(&deployment);
    runtime.block_on(async {
        fresh.user("dave").await;
        let _socket = fresh.connect(&carol).await;
    });
    assert_all_healthy(&deployment.status());
}
