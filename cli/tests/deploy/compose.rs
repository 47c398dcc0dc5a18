//! `deploy compose` end to end: a 10k spec on the stand-in stores → every service healthy → chat through
//! NGINX (REST in, WebSocket out) → `bench` through NGINX → a verified backup and its restore drill of it, restored into a fresh deployment → deploy again changes nothing → a second deployment whose store cannot
//! start fails, naming it, and leaves the first untouched → destroy keeps only the volumes.

use serde_json::Value;

use crate::chat::{Chat, assert_one_message_delivered};
use crate::harness::{Deployment, assert_all_healthy, serial};

#[test]
fn deploy_compose_serves_chat_through_nginx_and_a_second_deploy_changes_nothing() {
    let _serial = serial();
    let deployment = Deployment::new("e2e-compose", 18080, 18443);
    deployment.build_comet(&deployment.spec().images.comet.tag);

    let diff = deployment.run(&["diff", "compose"]).success();
    assert!(diff.stdout.contains("create   container  e2e-compose-api-1"), "{}", diff.stdout);

    let first = deployment.run(&["deploy", "compose"]);
    assert_eq!(first.code, 0, "deploy failed\nstdout:\n{}\nstderr:\n{}", first.stdout, first.stderr);
    assert!(first.stdout.contains("every service ready"), "{}", first.stdout);
    let status = deployment.status();
    assert_all_healthy(&status);
    let services: Vec<&str> =
        status["services"].as_array().expect("services").iter().filter_map(|s| s["service"].as_str()).collect();
    for expected in
        ["api", "gateway", "relay", "webhooks", "moderation", "notifications", "nginx", "tidb", "kafka-1", "redis-1"]
    {
        assert!(services.contains(&expected), "{expected} missing from {services:?}");
    }
    for absent in ["pd-1", "tikv-1", "mongodb-1", "prometheus"] {
        assert!(!services.contains(&absent), "{absent} should not be deployed: {services:?}");
    }

    // Chat through the published NGINX port: two users, a REST send, delivered on the WebSocket.
    assert_one_message_delivered(&deployment, "hello through nginx");

    // `bench` through NGINX: 20 sockets of their own users, 10 sends/s for 5 s, each timed to its recipient.
    let bench = deployment.run(&["bench", "--sockets", "20", "--rate", "10", "--duration", "5s", "--output", "json"]);
    assert_eq!(bench.code, 0, "bench did not pass\nstdout:\n{}\nstderr:\n{}", bench.stdout, bench.stderr);
    let report: Value = serde_json::from_str(&bench.stdout).expect("the bench report");
    assert_eq!(report["sockets"]["held"], 20, "{report}");
    assert!(report["sends"]["acknowledged"].as_u64() >= Some(45), "{report}");
    assert_eq!(report["deliveries"]["delivered"], report["sends"]["acknowledged"], "{report}");
    assert!(report["latencyMs"]["p99"].as_f64().is_some_and(|p99| p99 > 0.0), "{report}");
    assert!(report["plan"]["peakConnections"].as_u64() > Some(0), "{report}");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("bench through NGINX (20 sockets, 10/s, 5 s): {report}");
    }
    let over = deployment.run(&["bench", "--sockets", "500"]);
    assert_eq!(over.code, 2, "more sockets than the edge allows one address: {}", over.stderr);
    assert!(over.stderr.contains("edge.ws_connections_per_ip"), "{}", over.stderr);

    // A backup of the running deployment: the database copied in one snapshot through a role's container,
    // encrypted, counted in the manifest, and verified part by part.
    let backup = deployment.run(&["backup", "--output", "json"]);
    assert_eq!(backup.code, 0, "backup failed\nstdout:\n{}\nstderr:\n{}", backup.stdout, backup.stderr);
    let manifest: Value = serde_json::from_str(&backup.stdout).expect("the manifest");
    let parts = manifest["parts"].as_array().expect("parts");
    let tidb = parts.iter().find(|part| part["name"] == "tidb").expect("a tidb part");
    assert!(tidb["items"]["users"].as_u64() >= Some(2), "the chat's users are in it: {tidb}");
    assert!(tidb["items"]["messages"].as_u64() >= Some(1), "and its message: {tidb}");
    assert!(tidb["items"]["outbox"].as_u64() >= tidb["items"]["messages"].as_u64(), "with their events: {tidb}");
    assert!(tidb["snapshotAt"].as_i64().is_some() && tidb["schema"].as_i64() >= Some(9), "{tidb}");
    assert!(tidb["engine"].as_str().is_some_and(|engine| engine.contains("MariaDB")), "the stand-in's engine: {tidb}");
    assert!(parts.iter().any(|part| part["name"] == "config"), "{manifest}");
    // Redis's primary as an RDB snapshot, with its key count (the gateways' presence keys at least).
    let redis = parts.iter().find(|part| part["name"] == "redis").expect("a redis part");
    assert_eq!(redis["file"], "redis-1.rdb.enc", "{redis}");
    assert!(redis["engine"].as_str().is_some_and(|engine| engine.starts_with("Redis 7")), "{redis}");
    assert!(redis["items"]["keys"].as_u64().is_some(), "{redis}");
    let id = manifest["id"].as_str().expect("id");
    let verified = deployment.run(&["backup", "verify", id]);
    assert_eq!(verified.code, 0, "verify failed\nstdout:\n{}\nstderr:\n{}", verified.stdout, verified.stderr);

    // The restore drill: the set restored into a scratch deployment beside this one, its counts checked, a
    // smoke test through its own NGINX, then removed; the live deployment is not touched.
    let live = deployment.containers();
    let drill = deployment.run(&["restore", id, "--verify", "--output", "json"]);
    assert_eq!(drill.code, 0, "the drill failed\nstdout:\n{}\nstderr:\n{}", drill.stdout, drill.stderr);
    let report: Value = serde_json::from_str(&drill.stdout).expect("the drill report");
    let steps = report["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 6, "{report}");
    assert!(steps.iter().all(|step| step["ok"] == true), "{report}");
    assert_eq!(report["scratch"], "e2e-compose-drill");
    #[allow(clippy::print_stderr)]
    {
        eprintln!("restore drill of the 10k compose deployment: {report}");
    }
    assert_eq!(deployment.containers(), live, "the drill left the live deployment as it was");
    let filter = "label=io.comet.deployment=e2e-compose-drill";
    let (_, left, _) = crate::harness::docker(&["ps", "-aq", "--filter", filter]);
    let (_, volumes, _) = crate::harness::docker(&["volume", "ls", "-q", "--filter", filter]);
    assert!(left.trim().is_empty() && volumes.trim().is_empty(), "the scratch deployment is gone: {left} {volumes}");
    assert!(!deployment.dir.join("drill").join(id).exists(), "and its folder");
    let age = deployment.run(&["doctor", "--only", "backups.age", "--output", "json"]);
    assert_eq!(age.code, 0, "a fresh set and a passed drill: {}\n{}", age.stdout, age.stderr);

    // The database goes with its volumes; a fresh deployment gets the backup's copy and serves the same history
    // with the same keys. Restoring into a database that has data is refused.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let history = || runtime.block_on(Chat::new(&deployment).history_ids("bob", "alice"));
    let before = history();
    assert_eq!(before.len(), 1, "the one message sent through nginx");
    let refused = deployment.run(&["restore", id, "--only", "tidb"]);
    assert_eq!(refused.code, 2, "into a database with data\nstdout:\n{}\nstderr:\n{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("not a fresh one"), "{}", refused.stderr);
    deployment.run(&["destroy", "--volumes", "--yes"]).success();
    let fresh = deployment.run(&["deploy", "compose"]);
    assert_eq!(fresh.code, 0, "redeploy failed\nstdout:\n{}\nstderr:\n{}", fresh.stdout, fresh.stderr);
    let restored = deployment.run(&["restore", id, "--only", "tidb"]);
    assert_eq!(restored.code, 0, "restore failed\nstdout:\n{}\nstderr:\n{}", restored.stdout, restored.stderr);
    assert!(restored.stdout.contains("every count as in the manifest"), "{}", restored.stdout);
    assert_eq!(history(), before, "the restored deployment serves the same history");

    let before = deployment.containers();
    let again = deployment.run(&["deploy", "compose"]).success();
    assert!(again.stdout.contains("no changes"), "second deploy: {}", again.stdout);
    assert_eq!(deployment.containers(), before, "a deploy with no changes recreated containers");
    assert!(deployment.run(&["diff", "compose"]).success().stdout.contains("no changes"));

    // A second deployment whose Redis cannot start (its image is not Redis): the deploy stops at that store,
    // names it with its log tail, exits 3, and the first deployment still runs exactly as before.
    let broken = Deployment::new("e2e-broken", 18081, 18444);
    let not_redis = crate::harness::stand_ins()["kafka"].clone();
    broken.edit(|spec| {
        *spec.images.get_mut("redis").expect("redis") = cometctl::spec::ImageRef::parse(&not_redis).expect("ref")
    });
    // Its comet-server image is not built yet: refused up front (exit 2), naming the image, nothing created.
    broken.remove_comet_image();
    let missing = broken.run(&["deploy", "compose"]);
    assert_eq!(missing.code, 2, "stdout:\n{}\nstderr:\n{}", missing.stdout, missing.stderr);
    assert!(missing.stderr.contains("is not on this Docker Engine"), "{}", missing.stderr);
    assert!(broken.containers().is_empty(), "a refused deploy created containers");
    broken.build_comet(&broken.spec().images.comet.tag);
    let failed = broken.run(&["deploy", "compose"]);
    assert_eq!(failed.code, 3, "stdout:\n{}\nstderr:\n{}", failed.stdout, failed.stderr);
    assert!(failed.stderr.contains("service `redis-1`"), "{}", failed.stderr);
    assert!(failed.stderr.contains("log lines"), "{}", failed.stderr);
    let broken_containers = broken.containers();
    let broken_names: Vec<String> = broken_containers.iter().map(|(name, _, _)| name.clone()).collect();
    // The stores that started beside Redis were left running, not torn down.
    assert!(
        broken_containers.iter().any(|(name, _, running)| name == "e2e-broken-tidb-1" && *running),
        "{broken_containers:?}"
    );
    assert!(
        !broken_names.iter().any(|name| name.contains("-api-")),
        "roles started after a failed store: {broken_names:?}"
    );
    assert_eq!(deployment.containers(), before, "the failed deploy of another deployment touched this one");
    assert_all_healthy(&deployment.status());
    drop(broken);

    // destroy: no containers or networks left, the volumes stay.
    let destroyed = deployment.run(&["destroy"]).success();
    assert!(destroyed.stderr.contains("kept"), "{}", destroyed.stderr);
    assert!(deployment.containers().is_empty());
    let status = deployment.status();
    assert_eq!(status["services"], Value::Array(Vec::new()), "{status}");
    let filter = format!("label=io.comet.deployment={}", deployment.name);
    let (_, volumes, _) = crate::harness::docker(&["volume", "ls", "-q", "--filter", &filter]);
    assert!(volumes.lines().count() >= 3, "the store volumes should remain: {volumes}");
    let (_, networks, _) = crate::harness::docker(&["network", "ls", "-q", "--filter", &filter]);
    assert!(networks.trim().is_empty(), "networks left: {networks}");
}
