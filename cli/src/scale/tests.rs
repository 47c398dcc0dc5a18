use super::*;
use crate::domain::{ServiceKey, Target};
use crate::sizing::RedisMode;
use crate::spec::{differences, sized_for_tests};

fn profile() -> Profile {
    Profile::embedded().expect("the embedded profile")
}

fn mau(text: &str) -> Request {
    Request { mau: Some(text.parse().expect("mau")), ..Request::default() }
}

#[test]
fn a_resize_takes_the_profiles_replicas_and_keeps_what_is_a_migration() {
    let spec = sized_for_tests("100k", Target::Swarm);
    let resized = resize(&spec, &profile(), &mau("200k")).expect("resized");
    let next = &resized.next;
    assert_eq!(next.mau.get(), 200_000);
    assert!(
        next.plan.replicas(ServiceKey::Tikv) > spec.plan.replicas(ServiceKey::Tikv),
        "twice the users need more TiKV stores: {} → {}",
        spec.plan.replicas(ServiceKey::Tikv),
        next.plan.replicas(ServiceKey::Tikv)
    );
    // The tier above 100k has 48 partitions; the topics keep theirs, and the operator is told.
    assert_eq!(next.plan.stores.kafka, spec.plan.stores.kafka);
    assert!(
        resized.warnings.iter().any(|warning| warning.contains("partitions only ever grow")),
        "{:?}",
        resized.warnings
    );
    // Services left at 0 stay at 0.
    for key in ServiceKey::ALL.into_iter().filter(|key| !spec.plan.deploys(*key)) {
        assert_eq!(next.plan.replicas(key), 0, "{key} was not deployed and must stay so");
    }
    assert!(!differences(&spec, next).is_empty());
}

#[test]
fn standalone_tidb_stays_standalone_with_a_warning() {
    let mut spec = sized_for_tests("10k", Target::Compose);
    for key in [ServiceKey::Pd, ServiceKey::Tikv] {
        spec.plan.services.get_mut(&key).expect("sized").replicas = 0;
    }
    assert!(spec.plan.standalone_tidb());
    let resized = resize(&spec, &profile(), &mau("50k")).expect("resized");
    assert!(resized.next.plan.standalone_tidb());
    assert_eq!(resized.next.plan.replicas(ServiceKey::Tidb), spec.plan.replicas(ServiceKey::Tidb));
    assert_eq!(resized.next.mau.get(), 50_000);
    assert!(resized.warnings.iter().any(|warning| warning.contains("TiDB stays standalone")), "{:?}", resized.warnings);
}

#[test]
fn a_change_of_redis_mode_is_refused() {
    let spec = sized_for_tests("150k", Target::K8s);
    assert_eq!(spec.plan.stores.redis.mode, RedisMode::Standalone);
    let error = resize(&spec, &profile(), &mau("300k")).expect_err("standalone → cluster is a migration");
    assert!(matches!(error, ResizeError::RedisMode { .. }), "{error}");
    assert!(error.to_string().contains("docs/operations/scaling.md"), "{error}");
}

#[test]
fn replicas_set_directly_change_only_those_services() {
    let spec = sized_for_tests("10k", Target::Compose);
    let request = Request { replicas: vec![assignment("api=3").expect("api=3")], ..Request::default() };
    let resized = resize(&spec, &profile(), &request).expect("resized");
    let changed: Vec<String> = differences(&spec, &resized.next).into_iter().map(|d| d.path).collect();
    assert_eq!(changed, ["plan.services.api.replicas"]);
    assert!(resized.warnings.is_empty(), "{:?}", resized.warnings);
}

#[test]
fn assignments_name_scalable_services_only() {
    assert_eq!(assignment("gateway=4"), Ok((ServiceKey::Gateway, 4)));
    assert_eq!(assignment(" nginx = 2"), Ok((ServiceKey::Nginx, 2)));
    assert!(matches!(assignment("api"), Err(ResizeError::Assignment(_))));
    assert!(matches!(assignment("api=-1"), Err(ResizeError::Assignment(_))));
    assert!(matches!(assignment("api=two"), Err(ResizeError::Assignment(_))));
    let unknown = assignment("chat=2").expect_err("no such service");
    assert!(unknown.to_string().contains("api, gateway"), "{unknown}");
    assert!(matches!(assignment("tikv=5"), Err(ResizeError::NotStateless(ServiceKey::Tikv, "store", _))));
    assert!(matches!(assignment("migrate=2"), Err(ResizeError::NotStateless(ServiceKey::Migrate, _, _))));
}

#[test]
fn a_scale_that_leaves_a_required_service_without_replicas_is_refused() {
    let spec = sized_for_tests("10k", Target::Compose);
    let request = Request { replicas: vec![(ServiceKey::Api, 0)], ..Request::default() };
    let error = resize(&spec, &profile(), &request).expect_err("api needs a replica");
    assert!(matches!(error, ResizeError::Invalid(ref path, _) if path == "plan.services.api.replicas"), "{error}");
    assert_eq!(resize(&spec, &profile(), &Request::default()).expect_err("empty"), ResizeError::Empty);
}

#[test]
fn the_same_size_again_changes_nothing() {
    let spec = sized_for_tests("10k", Target::Compose);
    let resized = resize(&spec, &profile(), &mau("10k")).expect("resized");
    assert_eq!(differences(&spec, &resized.next), vec![]);
}
