//! Logs and metrics. Logs go to stderr: JSON when `COMET_LOG_FORMAT=json` or stderr is not a terminal,
//! readable text otherwise; `COMET_LOG` filters them (`info` by default).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Result;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use tracing_subscriber::EnvFilter;

use crate::config::{LOG, LOG_FORMAT, Settings};

pub fn init(settings: &Settings) -> Result<()> {
    let filter = EnvFilter::try_new(settings.get(LOG)?.unwrap_or_else(|| "info".to_owned()))?;
    let json = match settings.get(LOG_FORMAT)?.as_deref() {
        Some("json") => true,
        Some("text") => false,
        Some(other) => anyhow::bail!("{LOG_FORMAT}=`{other}`: use json or text"),
        None => !std::io::stderr().is_terminal(),
    };
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour);
    let result = if json { builder.json().try_init() } else { builder.try_init() };
    result.map_err(|error| anyhow::anyhow!("{error}"))
}

/// Before logging is set up, errors go to stderr as one line.
#[allow(clippy::print_stderr)]
pub fn report_startup_error(error: &anyhow::Error) {
    eprintln!("comet-server: {error:#}");
}

/// Upper bounds, in seconds, of `comet_http_request_duration_seconds`: 1 ms to 10 s.
const HTTP_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The app port's requests, by method, route and status: `comet_http_requests_total` and
/// `comet_http_request_duration_seconds` (the contract in templates/prometheus/alerts.yml.j2). Every label is
/// bounded: `route` is the matched route template (`/v3/users/{uid}`), never the raw path, and `unmatched`
/// for a path no route serves; `method` is one of the standard methods or `other`.
#[derive(Debug, Default)]
pub struct Metrics {
    http: Mutex<BTreeMap<HttpKey, HttpSeries>>,
    /// The app port's connections.
    pub app_connections: std::sync::Arc<crate::http::Connections>,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct HttpKey {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Debug, Default)]
struct HttpSeries {
    /// Requests at or under each bound of `HTTP_BUCKETS` (not cumulative; summed when rendered).
    buckets: [u64; HTTP_BUCKETS.len()],
    count: u64,
    sum_seconds: f64,
}

impl Metrics {
    /// Counts one answered request.
    pub fn observe(&self, method: &Method, route: Option<&str>, status: StatusCode, elapsed: Duration) {
        let key = HttpKey {
            method: method_label(method),
            route: route.unwrap_or(UNMATCHED_ROUTE).to_owned(),
            status: status.as_u16(),
        };
        let seconds = elapsed.as_secs_f64();
        let mut http = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        let series = http.entry(key).or_default();
        if let Some(bucket) = HTTP_BUCKETS.iter().position(|bound| seconds <= *bound) {
            series.buckets[bucket] += 1;
        }
        series.count += 1;
        series.sum_seconds += seconds;
    }

    /// Appends the HTTP series in the Prometheus text format.
    pub fn render(&self, out: &mut String) {
        let http = self.http.lock().unwrap_or_else(PoisonError::into_inner);
        out.push_str("# HELP comet_http_requests_total Requests answered on the app port.\n");
        out.push_str("# TYPE comet_http_requests_total counter\n");
        for (key, series) in http.iter() {
            let _ = writeln!(out, "comet_http_requests_total{{{}}} {}", key.labels(), series.count);
        }
        out.push_str("# HELP comet_http_request_duration_seconds From a request's arrival to its response.\n");
        out.push_str("# TYPE comet_http_request_duration_seconds histogram\n");
        for (key, series) in http.iter() {
            let labels = key.labels();
            let mut cumulative = 0;
            for (bound, count) in HTTP_BUCKETS.iter().zip(series.buckets) {
                cumulative += count;
                let _ =
                    writeln!(out, "comet_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}");
            }
            let _ =
                writeln!(out, "comet_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}", series.count);
            let _ = writeln!(out, "comet_http_request_duration_seconds_sum{{{labels}}} {}", series.sum_seconds);
            let _ = writeln!(out, "comet_http_request_duration_seconds_count{{{labels}}} {}", series.count);
        }
    }
}

impl HttpKey {
    /// The label set; no value needs escaping (methods and statuses are fixed, routes are our own templates).
    fn labels(&self) -> String {
        format!("method=\"{}\",route=\"{}\",status=\"{}\"", self.method, self.route, self.status)
    }
}

/// The `route` of a request no route matched (a 404 from the fallback, or a path that is not UTF-8).
const UNMATCHED_ROUTE: &str = "unmatched";

fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// `router` with every request counted in `metrics` under its matched route.
pub fn count_requests(router: Router, metrics: Arc<Metrics>) -> Router {
    router.layer(middleware::from_fn(move |request: Request, next: Next| {
        let metrics = metrics.clone();
        async move {
            let started = Instant::now();
            let method = request.method().clone();
            let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
            let response = next.run(request).await;
            metrics.observe(&method, route.as_deref(), response.status(), started.elapsed());
            response
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_carry_the_route_template_and_cumulative_buckets() {
        let metrics = Metrics::default();
        let route = Some("/v3/users/{uid}");
        metrics.observe(&Method::GET, route, StatusCode::OK, Duration::from_millis(3));
        metrics.observe(&Method::GET, route, StatusCode::OK, Duration::from_secs(60));
        metrics.observe(&Method::from_bytes(b"BREW").expect("a method"), None, StatusCode::NOT_FOUND, Duration::ZERO);
        let mut out = String::new();
        metrics.render(&mut out);
        let get = "method=\"GET\",route=\"/v3/users/{uid}\",status=\"200\"";
        assert!(out.contains(&format!("comet_http_requests_total{{{get}}} 2\n")), "{out}");
        assert!(
            out.contains(&format!("comet_http_request_duration_seconds_bucket{{{get},le=\"0.0025\"}} 0\n")),
            "{out}"
        );
        assert!(
            out.contains(&format!("comet_http_request_duration_seconds_bucket{{{get},le=\"0.005\"}} 1\n")),
            "{out}"
        );
        assert!(out.contains(&format!("comet_http_request_duration_seconds_bucket{{{get},le=\"10\"}} 1\n")), "{out}");
        assert!(out.contains(&format!("comet_http_request_duration_seconds_bucket{{{get},le=\"+Inf\"}} 2\n")), "{out}");
        assert!(out.contains(&format!("comet_http_request_duration_seconds_count{{{get}}} 2\n")), "{out}");
        let other = "method=\"other\",route=\"unmatched\",status=\"404\"";
        assert!(out.contains(&format!("comet_http_requests_total{{{other}}} 1\n")), "{out}");
    }
}
