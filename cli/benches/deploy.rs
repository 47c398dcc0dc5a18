//! Deploy and upgrade timings on this machine's Docker Engine (docs/benchmarks.md):
//! - `deploy compose` of a 10k spec (stand-in stores, images already built) until every service is ready;
//! - a redeploy with no change;
//! - `upgrade` to a new comet-server tag under continuous load through NGINX: wall time, requests
//!   acknowledged and failed, latency;
//! - `upgrade` to a comet-server that never becomes healthy: time to the automatic rollback, same figures.
//!
//! Run: `cargo build --release -p comet-server && cargo bench -p cometctl --bench deploy` (needs root for the stand-in images' apt packages on first
//! use, the Docker Engine, and `bash .ci/services.sh` for the tansu binary).
#![allow(clippy::print_stdout, clippy::unwrap_used)]

#[allow(dead_code)] // Each module is shared with the tests, which use more of it.
#[path = "../tests/deploy/chat.rs"]
mod chat;
#[allow(dead_code)]
#[path = "../tests/deploy/harness.rs"]
mod harness;
#[path = "../tests/deploy/load.rs"]
mod load;
#[path = "../tests/support.rs"]
mod support;

use std::sync::Arc;
use std::time::Instant;

fn report(name: &str, outcome: &load::Outcome) {
    println!(
        "{name}: exit {}, {:.1} s, {} requests acknowledged, {} failed, latency p50 {:.1} ms / p99 {:.1} ms / max {:.1} ms",
        outcome.run.code,
        outcome.elapsed.as_secs_f64(),
        outcome.acknowledged.len(),
        outcome.failures.len(),
        outcome.latency(0.5).as_secs_f64() * 1e3,
        outcome.latency(0.99).as_secs_f64() * 1e3,
        outcome.latency(1.0).as_secs_f64() * 1e3,
    );
}

fn main() {
    let deployment = harness::Deployment::new("bench-deploy", 38080, 38443);
    let tag = deployment.spec().images.comet.tag.clone();
    deployment.build_comet(&tag);

    let started = Instant::now();
    let deploy = deployment.run(&["deploy", "compose"]);
    assert_eq!(deploy.code, 0, "{}\n{}", deploy.stdout, deploy.stderr);
    println!("deploy compose (10k spec, images present) to all ready: {:.1} s", started.elapsed().as_secs_f64());
    let started = Instant::now();
    let again = deployment.run(&["deploy", "compose"]);
    assert!(again.stdout.contains("no changes"), "{}", again.stdout);
    println!("deploy compose again (no changes): {:.2} s", started.elapsed().as_secs_f64());

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let chat = Arc::new(chat::Chat::new(&deployment));
    runtime.block_on(async {
        chat.user("alice").await;
        chat.user("bob").await;
    });
    let next = format!("{tag}-next");
    deployment.build_comet(&next);
    let upgrade = load::during(&runtime, &deployment, &chat, &["upgrade", "--version", &next]);
    report("upgrade under load", &upgrade);

    let broken = format!("{tag}-broken");
    harness::build_broken_comet(&deployment, &broken);
    let rollback = load::during(&runtime, &deployment, &chat, &["upgrade", "--version", &broken]);
    report("upgrade to a never-healthy build (automatic rollback)", &rollback);
    let containers = deployment.status()["services"].as_array().map_or(0, Vec::len);
    println!("services after the rollback: {containers}");
}
