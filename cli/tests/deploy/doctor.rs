//! `cometctl doctor` on a running compose deployment (the stand-in stores): healthy → every deployment,
//! store, edge and security check passes or skips with its reason, exit 0, the JSON carries every id; then one
//! thing broken at a time in the same stack, and exactly the checks it concerns change, with their fix:
//! Redis's eviction policy, a certificate expiring in 3 days, the relay stopped, the spec changed (drift),
//! Redis stopped. The host, swarm and backups areas are left out (`--skip host,swarm,backups`): this machine's kernel settings
//! warn, which tests/doctor.rs covers.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{Deployment, docker, serial};

/// The checks that cannot pass on the stand-ins, each with the words of its reason.
const SKIPPED: &[(&str, &str)] = &[
    ("tidb.tikv", "standalone TiDB"),
    ("kafka.topics", "kafka-topics.sh"),
    ("kafka.under_replicated", "kafka-topics.sh"),
    ("kafka.consumer_lag", "kafka-topics.sh"),
    ("redis.cluster", "standalone"),
    ("mongodb.replica_set", "MongoDB is not deployed"),
    ("security.encrypted_networks", "Compose"),
    ("observability.targets", "Prometheus is turned off"),
];

struct Verdict {
    code: i32,
    outcomes: BTreeMap<String, String>,
    checks: Vec<Value>,
}

impl Verdict {
    fn check(&self, id: &str) -> &Value {
        self.checks.iter().find(|check| check["id"] == id).unwrap_or_else(|| panic!("{id} missing"))
    }

    /// The checks whose outcome differs from `baseline`, with their new outcome.
    fn changed(&self, baseline: &Verdict) -> Vec<(String, String)> {
        self.outcomes
            .iter()
            .filter(|(id, outcome)| baseline.outcomes.get(*id) != Some(outcome))
            .map(|(id, outcome)| (id.clone(), outcome.clone()))
            .collect()
    }
}

fn doctor(deployment: &Deployment) -> Verdict {
    let run = deployment.run(&["doctor", "--skip", "host,swarm,backups", "--output", "json"]);
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|error| panic!("doctor JSON: {error}\nstdout:\n{}\nstderr:\n{}", run.stdout, run.stderr));
    let checks = report["checks"].as_array().cloned().unwrap_or_default();
    let outcomes = checks
        .iter()
        .map(|check| {
            (
                check["id"].as_str().unwrap_or_default().to_owned(),
                check["outcome"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    Verdict { code: run.code, outcomes, checks }
}

/// Runs doctor until `done` holds (a reload or a restart takes effect), at most a minute.
fn doctor_until(deployment: &Deployment, what: &str, done: impl Fn(&Verdict) -> bool) -> Verdict {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let verdict = doctor(deployment);
        if done(&verdict) {
            return verdict;
        }
        assert!(Instant::now() < deadline, "{what} within a minute: {:?}", verdict.checks);
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn redis_cli(deployment: &Deployment, args: &str) {
    let container = format!("{}-redis-1-1", deployment.name);
    let script = format!("REDISCLI_AUTH=\"$(cat /run/secrets/redis_password)\" redis-cli {args}");
    let (code, stdout, stderr) = docker(&["exec", &container, "/bin/sh", "-c", &script]);
    assert!(code == 0 && stdout.contains("OK"), "redis-cli {args}: {stdout} {stderr}");
}

/// A self-signed certificate for `domain` that expires in `days` days, and its key (PEM).
fn certificate(domain: &str, days: i64) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).expect("params");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64;
    let (year, month, day) = cometctl::plan::history::civil_from_days((now + days * 86_400) / 86_400);
    let year = i32::try_from(year).expect("year");
    params.not_after = rcgen::date_time_ymd(year, month, day);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

#[test]
fn doctor_passes_a_healthy_compose_deployment_and_names_exactly_what_breaks() {
    let _serial = serial();
    let deployment = Deployment::new("e2e-doctor", 18090, 18453);
    deployment.build_comet(&deployment.spec().images.comet.tag);
    let deployed = deployment.run(&["deploy", "compose"]);
    assert_eq!(deployed.code, 0, "deploy failed\nstdout:\n{}\nstderr:\n{}", deployed.stdout, deployed.stderr);

    // Healthy: everything passes but what the stand-ins cannot have, each skipped with its reason.
    let started = Instant::now();
    let healthy = doctor(&deployment);
    let seconds = started.elapsed().as_secs_f64();
    #[allow(clippy::print_stderr)]
    {
        eprintln!("doctor --skip host,swarm on the running deployment: {seconds:.2} s");
    }
    for check in &healthy.checks {
        let id = check["id"].as_str().unwrap_or_default();
        match SKIPPED.iter().find(|(skipped, _)| *skipped == id) {
            Some((_, why)) => {
                assert_eq!(check["outcome"], "skip", "{check}");
                assert!(check["evidence"].as_str().unwrap_or_default().contains(why), "{check}");
            }
            None => assert_eq!(check["outcome"], "pass", "{check}"),
        }
    }
    assert_eq!(healthy.code, 0, "{:?}", healthy.checks);
    // No backup set yet: backups.age fails with the command that takes one (tests/deploy/compose.rs sees it pass
    // after a backup and its restore drill).
    let backups = deployment.run(&["doctor", "--only", "backups.age"]);
    assert_eq!(backups.code, 3, "{}\n{}", backups.stdout, backups.stderr);
    assert!(
        backups.stdout.contains("no complete backup set") && backups.stdout.contains("cometctl backup"),
        "{}",
        backups.stdout
    );
    let catalogue: Vec<&str> = cometctl::checks::catalog::CATALOG
        .iter()
        .filter(|entry| {
            !matches!(
                entry.area,
                cometctl::checks::catalog::Area::Host
                    | cometctl::checks::catalog::Area::Swarm
                    | cometctl::checks::catalog::Area::Backups
            )
        })
        .map(|entry| entry.id)
        .collect();
    let ids: Vec<&str> = healthy.checks.iter().filter_map(|check| check["id"].as_str()).collect();
    assert_eq!(ids, catalogue);
    // The whole doctor (this host's checks too) and the host checks alone, timed for docs/benchmarks.md
    // (shown with `--nocapture`; their outcomes depend on this machine's kernel settings).
    for args in [&["doctor", "--output", "json"][..], &["doctor", "--host-only", "--output", "json"][..]] {
        let started = Instant::now();
        let run = deployment.run(args);
        let seconds = started.elapsed().as_secs_f64();
        assert!(matches!(run.code, 0 | 3 | 4), "{}\n{}", run.stdout, run.stderr);
        #[allow(clippy::print_stderr)]
        {
            eprintln!("cometctl {} on the running deployment: {seconds:.2} s", args.join(" "));
        }
    }

    // An eviction policy that drops keys without a TTL: redis.policy fails with the command that restores it.
    redis_cli(&deployment, "CONFIG SET maxmemory-policy allkeys-random");
    let evicting = doctor(&deployment);
    assert_eq!(evicting.changed(&healthy), vec![("redis.policy".to_owned(), "fail".to_owned())]);
    assert_eq!(evicting.code, 3);
    assert!(evicting.check("redis.policy")["fix"].as_str().unwrap_or_default().contains("noeviction"));
    redis_cli(&deployment, "CONFIG SET maxmemory-policy noeviction");
    assert!(doctor(&deployment).changed(&healthy).is_empty());

    // A certificate that expires in 3 days, put in place and NGINX reloaded: the expiry fails; the
    // bind-mounted file's digest is part of the container's configuration, so drift says so too.
    let spec = deployment.spec();
    let (cert_path, key_path) = (deployment.dir.join(&spec.tls.cert_file), deployment.dir.join(&spec.tls.key_file));
    let (original_cert, original_key) =
        (std::fs::read(&cert_path).expect("cert"), std::fs::read(&key_path).expect("key"));
    let (pem, key) = certificate(&spec.domain, 3);
    std::fs::write(&cert_path, pem).expect("write cert");
    std::fs::write(&key_path, key).expect("write key");
    let nginx = format!("{}-nginx-1", deployment.name);
    assert_eq!(docker(&["kill", "-s", "HUP", &nginx]).0, 0);
    let expiring = doctor_until(&deployment, "NGINX serves the new certificate", |verdict| {
        verdict.outcomes.get("edge.certificate_expiry").map(String::as_str) == Some("fail")
    });
    assert_eq!(
        expiring.changed(&healthy),
        vec![
            ("deployment.drift".to_owned(), "warn".to_owned()),
            ("edge.certificate_expiry".to_owned(), "fail".to_owned())
        ]
    );
    assert!(expiring.check("edge.certificate_expiry")["evidence"].as_str().unwrap_or_default().contains("expires in"));
    std::fs::write(&cert_path, original_cert).expect("restore cert");
    std::fs::write(&key_path, original_key).expect("restore key");
    assert_eq!(docker(&["kill", "-s", "HUP", &nginx]).0, 0);
    doctor_until(&deployment, "NGINX serves the original certificate", |verdict| verdict.changed(&healthy).is_empty());

    // The relay stopped: it runs below its count, no replica holds the lease, and `cometctl diff` would start
    // it again (drift).
    let relay = format!("{}-relay-1", deployment.name);
    assert_eq!(docker(&["stop", &relay]).0, 0);
    let stopped = doctor(&deployment);
    assert_eq!(
        stopped.changed(&healthy),
        vec![
            ("comet.relay_lease".to_owned(), "fail".to_owned()),
            ("deployment.drift".to_owned(), "warn".to_owned()),
            ("deployment.running".to_owned(), "fail".to_owned())
        ]
    );
    assert_eq!(stopped.code, 3);
    assert!(stopped.check("deployment.running")["evidence"].as_str().unwrap_or_default().contains("relay 0/1"));
    assert_eq!(docker(&["start", &relay]).0, 0);
    doctor_until(&deployment, "the relay holds the lease again", |verdict| verdict.changed(&healthy).is_empty());

    // The spec changed without a deploy: drift warns (exit 4) with `cometctl diff`'s lines and nothing else moves.
    let limit = deployment.spec().edge.rate_limit_per_second;
    deployment.edit(|spec| spec.edge.rate_limit_per_second = limit + 1);
    let drifted = doctor(&deployment);
    assert_eq!(drifted.changed(&healthy), vec![("deployment.drift".to_owned(), "warn".to_owned())]);
    assert_eq!(drifted.code, 4);
    assert!(drifted.check("deployment.drift")["evidence"].as_str().unwrap_or_default().contains("nginx"));
    assert!(drifted.check("deployment.drift")["fix"].as_str().unwrap_or_default().contains("cometctl diff compose"));
    deployment.edit(|spec| spec.edge.rate_limit_per_second = limit);
    assert!(doctor(&deployment).changed(&healthy).is_empty());

    // Redis stopped: redis.ping fails with the fix, the other Redis checks skip saying why.
    assert_eq!(docker(&["stop", &format!("{}-redis-1-1", deployment.name)]).0, 0);
    let silent = doctor(&deployment);
    assert_eq!(silent.code, 3);
    assert_eq!(silent.outcomes["redis.ping"], "fail");
    assert!(silent.check("redis.ping")["fix"].as_str().unwrap_or_default().contains("start"));
    for id in ["redis.maxmemory", "redis.policy", "redis.memory", "redis.persistence"] {
        assert_eq!(silent.outcomes[id], "skip", "{id}");
    }
}
