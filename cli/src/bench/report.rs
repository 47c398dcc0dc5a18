//! What a bench measured, beside what the plan was sized for, and the verdict. Pure.

use std::time::Duration;

use serde::Serialize;

/// The p99 send→deliver latency a pass allows.
pub const P99_LIMIT: Duration = Duration::from_secs(1);
/// The share of the offered send rate that must be acknowledged for a pass.
pub const ACKNOWLEDGED_SHARE: f64 = 0.95;

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub duration_seconds: f64,
    pub sockets: Sockets,
    pub sends: Sends,
    pub deliveries: Deliveries,
    pub latency_ms: Latency,
    pub plan: PlanFigures,
    pub pass: bool,
    /// Why it did not pass, or what it did not cover.
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sockets {
    pub requested: u64,
    pub held: u64,
    /// Held at the start and closed before the end.
    pub dropped: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Sends {
    pub offered_per_second: f64,
    pub acknowledged: u64,
    pub acknowledged_per_second: f64,
    pub errors: u64,
    /// The first few errors, as they were.
    pub first_errors: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Deliveries {
    pub delivered: u64,
    pub per_second: f64,
    /// Acknowledged sends whose recipient's socket never got them.
    pub missing: u64,
    pub duplicates: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// What the deployment was sized for.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PlanFigures {
    pub mau: u64,
    pub peak_connections: u64,
    pub peak_sends_per_second: f64,
}

impl Latency {
    /// Quantiles of `samples` (any order), in milliseconds; zeros when there are none.
    pub fn of(samples: &mut [Duration]) -> Latency {
        samples.sort();
        let at = |q: f64| {
            if samples.is_empty() {
                return 0.0;
            }
            let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
            samples[index.min(samples.len() - 1)].as_secs_f64() * 1000.0
        };
        Latency { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1.0) }
    }
}

/// The verdict: a pass holds every socket it asked for to the end, has every offered send acknowledged (at
/// least `ACKNOWLEDGED_SHARE` of the rate, no error) and delivered once, with p99 within `P99_LIMIT`; the notes
/// say what failed, and how much of the plan's figures the run covered.
pub fn verdict(report: &mut Report) {
    let mut failed = Vec::new();
    let sockets = &report.sockets;
    if sockets.held < sockets.requested || sockets.dropped > 0 {
        failed.push(format!("held {} of {} sockets ({} dropped)", sockets.held, sockets.requested, sockets.dropped));
    }
    let sends = &report.sends;
    if sends.errors > 0 {
        failed.push(format!("{} sends failed", sends.errors));
    }
    if sends.acknowledged_per_second < sends.offered_per_second * ACKNOWLEDGED_SHARE {
        failed.push(format!(
            "{:.1} sends/s acknowledged of {:.1} offered",
            sends.acknowledged_per_second, sends.offered_per_second
        ));
    }
    let deliveries = &report.deliveries;
    if deliveries.missing > 0 || deliveries.duplicates > 0 {
        failed.push(format!("{} deliveries missing, {} duplicated", deliveries.missing, deliveries.duplicates));
    }
    if report.latency_ms.p99 > P99_LIMIT.as_secs_f64() * 1000.0 {
        failed.push(format!("p99 {:.0} ms above {} ms", report.latency_ms.p99, P99_LIMIT.as_millis()));
    }
    report.pass = failed.is_empty();
    report.notes = failed;
    let plan = &report.plan;
    if report.sockets.requested < plan.peak_connections {
        report.notes.push(format!(
            "{} sockets cover {:.0}% of the {} peak connections the plan was sized for",
            report.sockets.requested,
            100.0 * report.sockets.requested as f64 / plan.peak_connections.max(1) as f64,
            plan.peak_connections
        ));
    }
    if report.sends.offered_per_second < plan.peak_sends_per_second {
        report.notes.push(format!(
            "{:.1} sends/s offered, below the plan's peak of {:.1}",
            report.sends.offered_per_second, plan.peak_sends_per_second
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        Report {
            duration_seconds: 10.0,
            sockets: Sockets { requested: 10, held: 10, dropped: 0 },
            sends: Sends {
                offered_per_second: 20.0,
                acknowledged: 200,
                acknowledged_per_second: 20.0,
                errors: 0,
                first_errors: vec![],
            },
            deliveries: Deliveries { delivered: 200, per_second: 20.0, missing: 0, duplicates: 0 },
            latency_ms: Latency { p50: 5.0, p90: 8.0, p99: 20.0, max: 40.0 },
            plan: PlanFigures { mau: 10_000, peak_connections: 500, peak_sends_per_second: 12.0 },
            pass: false,
            notes: vec![],
        }
    }

    #[test]
    fn a_clean_run_passes_and_says_what_it_did_not_cover() {
        let mut clean = report();
        verdict(&mut clean);
        assert!(clean.pass, "{:?}", clean.notes);
        assert_eq!(clean.notes, ["10 sockets cover 2% of the 500 peak connections the plan was sized for"]);
    }

    #[test]
    fn each_shortfall_fails_the_run_by_name() {
        let mut lost = report();
        lost.deliveries.missing = 1;
        lost.sockets.dropped = 1;
        lost.latency_ms.p99 = 1500.0;
        lost.sends.acknowledged_per_second = 10.0;
        verdict(&mut lost);
        assert!(!lost.pass);
        let notes = lost.notes.join("; ");
        for expected in ["1 dropped", "1 deliveries missing", "p99 1500 ms", "10.0 sends/s acknowledged of 20.0"] {
            assert!(notes.contains(expected), "{notes}");
        }
    }

    #[test]
    fn quantiles_come_from_the_samples() {
        let mut samples: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        let latency = Latency::of(&mut samples);
        assert_eq!((latency.p50.round(), latency.p99.round(), latency.max), (51.0, 99.0, 100.0));
        assert_eq!(Latency::of(&mut []).max, 0.0);
    }
}
