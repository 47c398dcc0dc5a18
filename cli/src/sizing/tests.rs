//! The sizing model as data: one row per tier, one assertion per boundary the plan promises.

use super::*;

fn profile() -> Profile {
    Profile::embedded().expect("the embedded profile parses")
}

fn request(mau: &str, concurrency: Concurrency, target: Target) -> SizingRequest {
    SizingRequest { mau: mau.parse().expect("valid MAU"), concurrency, target, message_retention_days: 365 }
}

/// What a row of the table expects.
struct Expect {
    peak_connections: u64,
    gateway: u32,
    api: u32,
    tidb_topology: (u32, u32, u32),
    kafka: (u32, u32, u32, u32),
    redis: RedisMode,
    /// MongoDB members once it is turned on (the plan holds it at 0: it is optional).
    mongodb: u32,
    recommended: Target,
}

/// The replicas a service the plan holds at 0 gets once it is turned on.
fn replicas_when_deployed(plan: &Plan, key: ServiceKey) -> Option<u32> {
    plan.not_deployed.iter().find(|held| held.service == key).map(|held| held.replicas_when_deployed)
}

#[track_caller]
fn check(mau: &str, concurrency: Concurrency, target: Target, expect: Expect) {
    let plan = plan(&profile(), &request(mau, concurrency, target)).expect("plan");
    let allocation = &plan.allocation;
    let count = |key| allocation.replicas(key);
    let kafka = &allocation.stores.kafka;
    let got = (
        plan.load.peak_connections,
        count(ServiceKey::Gateway),
        count(ServiceKey::Api),
        (count(ServiceKey::Pd), count(ServiceKey::Tikv), count(ServiceKey::Tidb)),
        (count(ServiceKey::Kafka), kafka.partitions, kafka.replication_factor, kafka.min_insync_replicas),
        allocation.stores.redis.mode,
        replicas_when_deployed(&plan, ServiceKey::Mongodb),
        plan.recommended_target,
    );
    let want = (
        expect.peak_connections,
        expect.gateway,
        expect.api,
        expect.tidb_topology,
        expect.kafka,
        expect.redis,
        Some(expect.mongodb),
        expect.recommended,
    );
    assert_eq!(got, want, "{mau} {concurrency} {target}");
    assert!(allocation.problems().is_empty(), "{mau}: {:?}", allocation.problems());
}

#[test]
fn tiers() {
    use Concurrency::{Baseline, High};
    use RedisMode::{Cluster, Standalone};
    use Target::{Compose, K8s, Swarm};
    // Worked by hand from profiles/default.yaml: gateways = PCC / (15000 x 70%) rounded up; API replicas =
    // peak sends (MAU x 30% x 40 / 86400 x 5) / (150 x 70%); TiDB = SQL/s / (4000 x 70%); TiKV = the larger of
    // SQL/s / (3000 x 70%) and 360 days of messages (1536 B x 3 copies) / 70% / 1000 GiB. Production floors:
    // 2 per role, 3 PD, 3 TiKV, 2 TiDB, 3 brokers.
    check(
        "10k",
        Baseline,
        Swarm,
        Expect {
            peak_connections: 500,
            gateway: 2,
            api: 2,
            tidb_topology: (3, 3, 2),
            kafka: (3, 12, 3, 2),
            redis: Standalone,
            mongodb: 3,
            recommended: Swarm,
        },
    );
    check(
        "25k",
        Baseline,
        Swarm,
        Expect {
            peak_connections: 1250,
            gateway: 2,
            api: 2,
            tidb_topology: (3, 3, 2),
            kafka: (3, 12, 3, 2),
            redis: Standalone,
            mongodb: 3,
            recommended: Swarm,
        },
    );
    check(
        "50k",
        Baseline,
        Swarm,
        Expect {
            peak_connections: 2500,
            gateway: 2,
            api: 2,
            tidb_topology: (3, 3, 2),
            kafka: (3, 24, 3, 2),
            redis: Standalone,
            mongodb: 3,
            recommended: Swarm,
        },
    );
    check(
        "100k",
        Baseline,
        Swarm,
        Expect {
            peak_connections: 5000,
            gateway: 2,
            api: 2,
            tidb_topology: (3, 3, 2),
            kafka: (3, 24, 3, 2),
            redis: Standalone,
            mongodb: 3,
            recommended: Swarm,
        },
    );
    check(
        "200k",
        Baseline,
        Swarm,
        Expect {
            peak_connections: 10000,
            gateway: 2,
            api: 2,
            tidb_topology: (3, 6, 2),
            kafka: (3, 48, 3, 2),
            redis: Standalone,
            mongodb: 3,
            recommended: Swarm,
        },
    );
    check(
        "200k",
        High,
        K8s,
        Expect {
            peak_connections: 20000,
            gateway: 2,
            api: 2,
            tidb_topology: (3, 6, 2),
            kafka: (3, 48, 3, 2),
            redis: Standalone,
            mongodb: 3,
            recommended: Swarm,
        },
    );
    check(
        "250k",
        Baseline,
        K8s,
        Expect {
            peak_connections: 12500,
            gateway: 2,
            api: 2,
            tidb_topology: (3, 7, 2),
            kafka: (3, 96, 3, 2),
            redis: Cluster,
            mongodb: 3,
            recommended: K8s,
        },
    );
    check(
        "250k",
        High,
        K8s,
        Expect {
            peak_connections: 25000,
            gateway: 3,
            api: 2,
            tidb_topology: (3, 7, 2),
            kafka: (3, 96, 3, 2),
            redis: Cluster,
            mongodb: 3,
            recommended: K8s,
        },
    );
    check(
        "1m",
        Baseline,
        K8s,
        Expect {
            peak_connections: 50000,
            gateway: 5,
            api: 7,
            tidb_topology: (3, 27, 3),
            kafka: (3, 96, 3, 2),
            redis: Cluster,
            mongodb: 3,
            recommended: K8s,
        },
    );
    check(
        "5m",
        Baseline,
        K8s,
        Expect {
            peak_connections: 250000,
            gateway: 24,
            api: 34,
            tidb_topology: (3, 134, 13),
            kafka: (3, 192, 3, 2),
            redis: Cluster,
            mongodb: 3,
            recommended: K8s,
        },
    );
    // Compose gets one of each whatever the MAU, and Kafka without replication.
    check(
        "100k",
        Baseline,
        Compose,
        Expect {
            peak_connections: 5000,
            gateway: 1,
            api: 1,
            tidb_topology: (1, 1, 1),
            kafka: (1, 24, 1, 1),
            redis: Standalone,
            mongodb: 1,
            recommended: Swarm,
        },
    );
    check(
        "250k",
        High,
        Compose,
        Expect {
            peak_connections: 25000,
            gateway: 1,
            api: 1,
            tidb_topology: (1, 1, 1),
            kafka: (1, 96, 1, 1),
            redis: Standalone,
            mongodb: 1,
            recommended: K8s,
        },
    );
}

#[test]
fn explicit_concurrency_percent_scales_connections() {
    let plan = plan(&profile(), &request("100k", Concurrency::Percent(7.5), Target::Swarm)).expect("plan");
    assert_eq!(plan.load.peak_connections, 7500);
    assert_eq!(plan.allocation.replicas(ServiceKey::Gateway), 2);
}

#[test]
fn production_targets_keep_high_availability_minimums() {
    for target in [Target::Swarm, Target::K8s] {
        let plan = plan(&profile(), &request("1k", Concurrency::Baseline, target)).expect("plan");
        for role in ServiceKey::roles() {
            let replicas = replicas_when_deployed(&plan, role).unwrap_or(plan.allocation.replicas(role));
            assert!(replicas >= 2, "{role} on {target}");
        }
        assert!(plan.allocation.replicas(ServiceKey::Nginx) >= 2);
    }
}

#[test]
fn services_comet_server_cannot_run_yet_are_sized_but_held_at_zero() {
    let profile = profile();
    for (mau, target) in [("10k", Target::Compose), ("100k", Target::Swarm), ("250k", Target::K8s)] {
        let plan = plan(&profile, &request(mau, Concurrency::Baseline, target)).expect("plan");
        let held: Vec<ServiceKey> = plan.not_deployed.iter().map(|held| held.service).collect();
        assert_eq!(held, [ServiceKey::Mongodb], "{mau} {target}");
        for line in &plan.not_deployed {
            let service = plan.allocation.services[&line.service];
            assert_eq!(service.replicas, 0, "{} on {target}", line.service);
            // Turning it on is one edit: resources (and MongoDB's volume) are sized as if it ran.
            assert!(line.replicas_when_deployed >= 1, "{} on {target}", line.service);
            assert!(service.cpu_millis.request > 0 && service.memory_mib.request > 0, "{}", line.service);
            assert!(!line.reason.is_empty(), "{}", line.service);
            assert!(plan.storage.iter().all(|storage| storage.service != line.service), "{}", line.service);
        }
        for role in ServiceKey::NOT_YET_IMPLEMENTED {
            let reason = &plan.not_deployed.iter().find(|held| held.service == role).expect("held").reason;
            assert!(reason.contains(&format!("comet-server {}", env!("CARGO_PKG_VERSION"))), "{reason}");
        }
        assert!(plan.allocation.services[&ServiceKey::Mongodb].storage_gib >= 20, "{mau} {target}");
        assert!(plan.allocation.problems().is_empty(), "{:?}", plan.allocation.problems());
    }
    // Nothing held back counts towards the totals.
    let plan = plan(&profile, &request("100k", Concurrency::Baseline, Target::Swarm)).expect("plan");
    let mut everything = plan.allocation.clone();
    for held in &plan.not_deployed {
        everything.services.get_mut(&held.service).expect("service").replicas = held.replicas_when_deployed;
    }
    assert!(totals(&everything).vcpu_request > plan.totals.vcpu_request);
}

/// Plans edited the way an operator would, and what `problems` says about them.
#[test]
fn replicas_zero_is_allowed_only_where_a_deployment_can_do_without_the_service() {
    let base = plan(&profile(), &request("10k", Concurrency::Baseline, Target::Compose)).expect("plan").allocation;
    let problems_after = |edits: &[(ServiceKey, u32)]| {
        let mut allocation = base.clone();
        for &(key, replicas) in edits {
            allocation.services.get_mut(&key).expect("service").replicas = replicas;
        }
        allocation.problems()
    };
    use ServiceKey::{Api, Kafka, Migrate, Moderation, Mongodb, Nginx, Pd, Prometheus, Tidb, Tikv};
    // Allowed: the default (notifications and mongodb at 0), standalone TiDB, moderation without MongoDB (its
    // data in the relational store) and with it.
    assert_eq!(problems_after(&[]), []);
    assert_eq!(problems_after(&[(Pd, 0), (Tikv, 0)]), []);
    assert_eq!(problems_after(&[(Moderation, 2), (Mongodb, 3)]), []);
    assert_eq!(problems_after(&[(Moderation, 2), (Mongodb, 0)]), []);
    // Refused, each at the path to edit, with the fix.
    for (edits, path, fix) in [
        (vec![(Api, 0)], "plan.services.api.replicas", "must be at least 1"),
        (vec![(Nginx, 0)], "plan.services.nginx.replicas", "must be at least 1"),
        (vec![(Migrate, 0)], "plan.services.migrate.replicas", "must be at least 1"),
        (vec![(Kafka, 0)], "plan.services.kafka.replicas", "must be at least 1"),
        (vec![(Prometheus, 0)], "plan.services.prometheus.replicas", "observability.prometheus: false"),
        (vec![(Pd, 0), (Tikv, 3)], "plan.services.pd.replicas", "set tikv to 0 too"),
        (vec![(Pd, 3), (Tikv, 0)], "plan.services.tikv.replicas", "set pd to 0 too"),
        (vec![(Pd, 0), (Tikv, 0), (Tidb, 2)], "plan.services.tidb.replicas", "must be 1 while pd and tikv are 0"),
    ] {
        // The first problem is the one `cometctl.yaml` errors report.
        let problems = problems_after(&edits);
        assert!(
            problems.first().is_some_and(|(at, problem)| at == path && problem.contains(fix)),
            "{edits:?}: expected {path} {fix:?} first, got {problems:?}"
        );
    }
}

#[test]
fn warnings_name_the_reason() {
    let profile = profile();
    let warnings =
        |mau: &str, target| plan(&profile, &request(mau, Concurrency::Baseline, target)).expect("plan").warnings;
    assert!(warnings("100k", Target::Compose).iter().any(|w| w.contains("development and QA")));
    assert!(warnings("300k", Target::Swarm).iter().any(|w| w.contains("use k8s")));
    assert!(warnings("500", Target::Swarm).iter().any(|w| w.contains("below 1000")));
    assert!(warnings("100k", Target::Swarm).is_empty());
}

#[test]
fn refuses_beyond_the_model() {
    let error =
        plan(&profile(), &request("6m", Concurrency::Baseline, Target::K8s)).expect_err("6m is beyond the model");
    assert!(error.to_string().contains("5000000"), "{error}");
    let mut zero_retention = request("10k", Concurrency::Baseline, Target::Swarm);
    zero_retention.message_retention_days = 0;
    assert!(plan(&profile(), &zero_retention).is_err());
}

#[test]
fn storage_grows_with_retention_and_mau() {
    let profile = profile();
    let tikv = |mau: &str, days: u32| {
        let mut request = request(mau, Concurrency::Baseline, Target::Swarm);
        request.message_retention_days = days;
        let plan = plan(&profile, &request).expect("plan");
        let line = plan.storage.iter().find(|line| line.service == ServiceKey::Tikv).expect("tikv line");
        line.per_replica_gib * line.replicas
    };
    assert!(tikv("200k", 365) > tikv("100k", 365));
    assert!(tikv("200k", 365) > tikv("200k", 90));
    // Small deployments never go below the profile's minimum volume.
    assert_eq!(tikv("1k", 1), 3 * 100);
}

#[test]
fn plans_snapshot_per_tier() {
    let profile = profile();
    for (mau, concurrency, target) in [
        ("10k", Concurrency::Baseline, Target::Compose),
        ("25k", Concurrency::Baseline, Target::Swarm),
        ("50k", Concurrency::Baseline, Target::Swarm),
        ("100k", Concurrency::Baseline, Target::Swarm),
        ("200k", Concurrency::High, Target::Swarm),
        ("250k", Concurrency::Baseline, Target::K8s),
    ] {
        let plan = plan(&profile, &request(mau, concurrency, target)).expect("plan");
        // The reasons name the comet-server version; a release must not change every snapshot.
        let mut settings = insta::Settings::clone_current();
        settings.add_filter(&env!("CARGO_PKG_VERSION").replace('.', r"\.").replace('+', r"\+"), "[VERSION]");
        settings.bind(|| insta::assert_json_snapshot!(format!("plan_{mau}_{concurrency}_{target}"), plan));
    }
}
