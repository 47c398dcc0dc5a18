//! The admin port: `/health` (the process is up), `/ready` (its stores answer), `/metrics` (Prometheus text).
//! It is private: only NGINX's port is published, and the admin port is never routed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use comet_store::Store;

use crate::telemetry::Metrics;

pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9100";

#[derive(Clone)]
pub struct AdminState {
    pub role: &'static str,
    pub store: Option<Store>,
    pub kafka: Option<Arc<comet_bus::KafkaPublisher>>,
    pub metrics: Arc<Metrics>,
    pub relay: Option<Arc<comet_bus::relay::RelayStats>>,
    pub gateway: Option<Arc<comet_gateway::Gateway>>,
    /// The API's admission bounds, when this role serves the API.
    pub admission: Option<Arc<comet_api::Admission>>,
    pub webhooks: Option<Arc<WebhooksRunning>>,
    pub notifications: Option<Arc<NotificationsRunning>>,
    /// The moderation rules of the API part, when this role serves the API.
    pub moderation: Option<comet_moderation::Moderation>,
    /// The moderation role's decisions, when this role runs it.
    pub decisions: Option<Arc<ModerationRunning>>,
}

/// The counters the admin port shows for a running moderation role.
#[derive(Debug)]
pub struct ModerationRunning {
    pub worker: Arc<comet_worker::WorkerMetrics>,
    pub decisions: Arc<comet_moderation::DecisionMetrics>,
}

/// The counters the admin port shows for a running webhooks role.
#[derive(Debug)]
pub struct WebhooksRunning {
    pub worker: Arc<comet_worker::WorkerMetrics>,
    pub deliveries: Arc<comet_webhooks::WebhookMetrics>,
}

/// The counters the admin port shows for a running notifications role.
#[derive(Debug)]
pub struct NotificationsRunning {
    pub worker: Arc<comet_worker::WorkerMetrics>,
    pub pushes: Arc<comet_notifications::NotificationMetrics>,
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/health", get(|| async { "ok\n" }))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(state)
}

async fn ready(State(state): State<AdminState>) -> Response {
    if let Some(store) = &state.store
        && let Err(error) = store.ping().await
    {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("database: {error}\n")).into_response();
    }
    if let Some(kafka) = &state.kafka
        && let Err(error) = kafka.ping().await
    {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("kafka: {error}\n")).into_response();
    }
    if let Some(gateway) = &state.gateway
        && let Err(error) = gateway.ready().await
    {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("gateway: {error}\n")).into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

async fn metrics(State(state): State<AdminState>) -> Response {
    let mut out = String::new();
    out.push_str("# HELP comet_build_info The running build.\n# TYPE comet_build_info gauge\n");
    out.push_str(&format!("comet_build_info{{version=\"{}\",role=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"), state.role));
    state.metrics.render(&mut out);
    if let Some(kafka) = &state.kafka {
        let help = "Messages the Kafka brokers acknowledged, per topic.";
        kafka.produced().render("comet_kafka_messages_produced_total", help, "", &mut out);
    }
    if let Some(admission) = &state.admission {
        render_admission(admission, &mut out);
    }
    if let Some(moderation) = &state.moderation {
        out.push_str(&moderation.render_metrics());
    }
    let connections = &state.metrics.app_connections;
    out.push_str("# HELP comet_http_connections_open Open connections on the app port, WebSockets included.\n");
    out.push_str(&format!(
        "# TYPE comet_http_connections_open gauge\ncomet_http_connections_open {}\n",
        connections.open.load(Ordering::Relaxed)
    ));
    out.push_str(
        "# HELP comet_http_connections_refused_total App port connections closed at COMET_HTTP_MAX_CONNECTIONS.\n",
    );
    out.push_str(&format!(
        "# TYPE comet_http_connections_refused_total counter\ncomet_http_connections_refused_total {}\n",
        connections.refused.load(Ordering::Relaxed)
    ));
    if let Some(store) = &state.store
        && let Ok(backlog) = store.outbox_backlog().await
    {
        out.push_str("# HELP comet_outbox_backlog Events committed but not yet published.\n");
        out.push_str(&format!("# TYPE comet_outbox_backlog gauge\ncomet_outbox_backlog {backlog}\n"));
    }
    if let Some(relay) = &state.relay {
        let counters = [
            (
                "comet_relay_events_published_total",
                "counter",
                "Events published and marked (re-publishes count again).",
                relay.published_total(),
            ),
            ("comet_relay_batches_total", "counter", "Non-empty outbox batches published.", relay.batches_total()),
            (
                "comet_relay_publish_errors_total",
                "counter",
                "Publish attempts that failed and were retried.",
                relay.publish_errors_total(),
            ),
            (
                "comet_relay_store_errors_total",
                "counter",
                "Outbox reads, marks or lease calls that failed and were retried.",
                relay.store_errors_total(),
            ),
            (
                "comet_relay_holds_lease",
                "gauge",
                "1 on the one relay replica that publishes.",
                u64::from(relay.holds_lease()),
            ),
            (
                "comet_outbox_rows_deleted_total",
                "counter",
                "Published events the retention job deleted.",
                relay.rows_deleted_total(),
            ),
            (
                "comet_outbox_dead_letters_total",
                "counter",
                "Events this relay moved to outbox_dead_letters after the bus refused them max_attempts times.",
                relay.dead_letters_total(),
            ),
        ];
        let kept = relay.outbox_rows().map(|rows| {
            ("comet_outbox_rows", "gauge", "Outbox rows (published and not) after the last retention pass.", rows)
        });
        for (name, kind, help, value) in counters.into_iter().chain(kept) {
            out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
        }
        if let Some(store) = &state.store
            && let Ok(dead) = store.dead_letter_count().await
        {
            out.push_str("# HELP comet_outbox_dead_letters Events in outbox_dead_letters, waiting for an operator.\n");
            out.push_str(&format!("# TYPE comet_outbox_dead_letters gauge\ncomet_outbox_dead_letters {dead}\n"));
        }
    }
    if let Some(gateway) = &state.gateway {
        gateway.metrics().render(&mut out);
    }
    let workers: Vec<&comet_worker::WorkerMetrics> = [
        state.webhooks.as_ref().map(|webhooks| webhooks.worker.as_ref()),
        state.decisions.as_ref().map(|decisions| decisions.worker.as_ref()),
        state.notifications.as_ref().map(|notifications| notifications.worker.as_ref()),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !workers.is_empty() {
        out.push_str(&comet_worker::WorkerMetrics::render_all(&workers));
    }
    if let Some(webhooks) = &state.webhooks {
        let pending = match &state.store {
            Some(store) => store.pending_webhook_deliveries().await.ok(),
            None => None,
        };
        out.push_str(&webhooks.deliveries.render(pending));
    }
    if let Some(decisions) = &state.decisions {
        let pending = match &state.store {
            Some(store) => store.pending_held().await.ok(),
            None => None,
        };
        out.push_str(&decisions.decisions.render(pending));
    }
    if let Some(notifications) = &state.notifications {
        let pending = match &state.store {
            Some(store) => store.pending_notification_pushes().await.ok(),
            None => None,
        };
        out.push_str(&notifications.pushes.render(pending));
    }
    render_kafka_lag(&state, &workers, &mut out);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// The one `comet_kafka_consumer_lag` family of the process: the gateway's tail (group `gateway`) and each
/// worker's group member.
fn render_kafka_lag(state: &AdminState, workers: &[&comet_worker::WorkerMetrics], out: &mut String) {
    let gateway = state.gateway.as_ref().map(|gateway| ("gateway".to_owned(), gateway.metrics().kafka_lag()));
    let workers = workers.iter().map(|worker| worker.partition_lag());
    let consumers: Vec<(String, Vec<comet_bus::PartitionLag>)> = gateway.into_iter().chain(workers).collect();
    let groups: Vec<(&str, &[comet_bus::PartitionLag])> =
        consumers.iter().map(|(group, lags)| (group.as_str(), lags.as_slice())).collect();
    comet_bus::render_lag(&groups, out);
}

/// The API's in-flight requests against their bound, and what the bounds refused.
fn render_admission(admission: &comet_api::Admission, out: &mut String) {
    out.push_str("# HELP comet_api_in_flight API requests being handled now.\n# TYPE comet_api_in_flight gauge\n");
    out.push_str(&format!("comet_api_in_flight {}\n", admission.in_flight()));
    out.push_str("# HELP comet_api_max_in_flight The bound on API requests in flight (COMET_API_MAX_IN_FLIGHT).\n");
    out.push_str(&format!(
        "# TYPE comet_api_max_in_flight gauge\ncomet_api_max_in_flight {}\n",
        admission.limits().max_in_flight
    ));
    out.push_str(
        "# HELP comet_api_shed_total API requests refused before any work: 503 overloaded, 429 rate limited.\n",
    );
    out.push_str("# TYPE comet_api_shed_total counter\n");
    for (reason, counter) in [("overloaded", &admission.overloaded), ("rate_limited", &admission.rate_limited)] {
        out.push_str(&format!("comet_api_shed_total{{reason=\"{reason}\"}} {}\n", counter.load(Ordering::Relaxed)));
    }
}
