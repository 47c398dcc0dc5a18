//! `cometctl init` + `cometctl render --target all` for a 250k MAU deployment, as an operator runs them:
//! two processes, a fresh folder each time. Prints min / median / p95 / max wall time.
//!
//! Run: `cargo bench -p cometctl --bench init_render` (release profile). Target: ≤ 50 ms for the pair.
#![allow(clippy::print_stdout, clippy::unwrap_used)]

use std::process::Command;
use std::time::{Duration, Instant};

const ROUNDS: usize = 50;

fn run(args: &[&str]) {
    let status = Command::new(env!("CARGO_BIN_EXE_cometctl")).args(args).env("NO_COLOR", "1").output().unwrap();
    assert!(status.status.success(), "cometctl {args:?} failed: {}", String::from_utf8_lossy(&status.stderr));
}

fn main() {
    let root = tempfile::tempdir().unwrap();
    let mut init_times = Vec::with_capacity(ROUNDS);
    let mut render_times = Vec::with_capacity(ROUNDS);
    let mut pair_times = Vec::with_capacity(ROUNDS);
    // One warm-up round so the page cache holds the binary.
    for round in 0..=ROUNDS {
        let dir = root.path().join(format!("d{round}"));
        let dir = dir.to_string_lossy().into_owned();
        let start = Instant::now();
        run(&["init", "--quiet", "--mau", "250k", "--concurrency", "high", "--dir", &dir, "--output", "json"]);
        let after_init = Instant::now();
        run(&["render", "--quiet", "--target", "all", "--dir", &dir]);
        let end = Instant::now();
        if round > 0 {
            init_times.push(after_init - start);
            render_times.push(end - after_init);
            pair_times.push(end - start);
        }
    }
    println!("cometctl init + render --target all, 250k MAU high concurrency, {ROUNDS} rounds (fresh folder each)");
    report("init", &mut init_times);
    report("render --target all", &mut render_times);
    report("init + render", &mut pair_times);
}

fn report(label: &str, times: &mut [Duration]) {
    times.sort();
    let at = |fraction: f64| times[((times.len() as f64 - 1.0) * fraction).round() as usize];
    let ms = |duration: Duration| duration.as_secs_f64() * 1000.0;
    println!(
        "{label:>22}: min {:6.2} ms  median {:6.2} ms  p95 {:6.2} ms  max {:6.2} ms",
        ms(at(0.0)),
        ms(at(0.5)),
        ms(at(0.95)),
        ms(at(1.0))
    );
}
