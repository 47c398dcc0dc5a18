//! The WebSocket gateway: `GET /v3/ws`, live delivery of message events to every socket of every recipient on
//! any node, resync from the database after a reconnect, presence, typing and receipts.
//! docs/protocol.md is the client contract; ARCHITECTURE.md explains the multi-node design.
//!
//! - [`connection`]: the handshake and one socket's session.
//! - [`hub`]: this node's sockets and routing indexes; never blocks.
//! - [`routing`]: bus events and cluster signals → frames → the hub.
//! - `cluster` (the `comet-cluster` crate): presence and signals shared by nodes (Redis), or this process's
//!   memory when embedded.
//! - [`typing`]: typing indicators started here, with their expiry.
//!
//! Data flows one way: bus / cluster → routing → hub → socket queues → sockets.

mod connection;
mod hub;
mod metrics;
pub mod protocol;
mod refusal;
mod routing;
mod typing;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use comet_bus::{InProcessBus, KafkaConfig, KafkaTail, Seen};
// The shared state is `cluster` here, as it was when it was a module of this crate.
use comet_cluster as cluster;
use comet_model::{Event, Guid, Uid};
use comet_store::Store;
use serde_json::json;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

pub use cluster::{ClusterError, RedisTarget};
pub use metrics::{ErrorReason, Metrics};

use crate::cluster::{Cluster, Signal};
use crate::hub::{Frame, Hub};
use crate::protocol::Target;
use crate::typing::Typing;

/// How long a shutdown waits for sockets to send their close frames.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(5);
/// How often a drain closes its next batch of sockets.
const DRAIN_TICK: Duration = Duration::from_millis(100);

/// The route the gateway serves.
pub const WS_PATH: &str = "/v3/ws";

/// Limits and timings of a gateway node (docs/configuration.md lists the variables that set them).
#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// This node's name in Redis; unique per process.
    pub node_id: String,
    /// The prefix of every Redis key and channel of this deployment.
    pub namespace: String,
    /// Browser origins allowed to connect (`*` allows any). Requests without an Origin header (native
    /// clients) are always allowed; browsers always send one.
    pub allowed_origins: Vec<String>,
    pub max_sockets_per_user: usize,
    /// Frames queued per socket before it counts as a slow consumer and is closed with 4008.
    pub queue_capacity: usize,
    /// The largest client frame; larger ones close the socket with 1009.
    pub max_frame_bytes: usize,
    /// How much the WebSocket reader buffers per socket.
    pub read_buffer_bytes: usize,
    pub ping_interval: Duration,
    /// A socket that sends nothing (not even a pong) for this long is closed with 4002.
    pub idle_timeout: Duration,
    /// A user's last socket closing makes it offline only after this long.
    pub presence_grace: Duration,
    /// Heartbeat TTL in Redis: a node that stops heartbeating is swept after this long.
    pub presence_ttl: Duration,
    /// A typing indicator not renewed within this long ends by itself.
    pub typing_ttl: Duration,
    /// Most messages one conversation's resync replays; beyond, the client pages with REST.
    pub resync_max_messages: u32,
    pub resync_max_conversations: usize,
    /// Live events wait at most this long for the client's first frame (its resync).
    pub hold_live_for: Duration,
    /// A shutdown closes the node's sockets in batches spread over this long, so their reconnects reach the
    /// other nodes as a stream rather than a storm.
    pub drain: Duration,
    /// The `reconnect` frame before each drain close tells the client to wait a random time up to this long.
    pub reconnect_jitter: Duration,
}

impl Default for GatewayConfig {
    fn default() -> GatewayConfig {
        GatewayConfig {
            node_id: format!("gw-{}", uuid::Uuid::new_v4().simple()),
            namespace: "comet".to_owned(),
            allowed_origins: Vec::new(),
            max_sockets_per_user: 10,
            queue_capacity: 256,
            max_frame_bytes: 16 * 1024,
            read_buffer_bytes: 1024,
            ping_interval: Duration::from_secs(25),
            idle_timeout: Duration::from_secs(60),
            presence_grace: Duration::from_secs(5),
            presence_ttl: Duration::from_secs(30),
            typing_ttl: Duration::from_secs(5),
            resync_max_messages: 500,
            resync_max_conversations: 100,
            hold_live_for: Duration::from_secs(5),
            drain: Duration::from_secs(10),
            reconnect_jitter: Duration::from_secs(5),
        }
    }
}

impl GatewayConfig {
    fn origin_allowed(&self, origin: &str) -> bool {
        self.allowed_origins.iter().any(|allowed| allowed == "*" || allowed.eq_ignore_ascii_case(origin))
    }
}

/// Where the gateway reads committed events from.
#[derive(Debug, Clone)]
pub enum EventSource {
    /// The embedded mode's in-process bus (the relay in this process publishes to it).
    InProcess(InProcessBus),
    /// Kafka: every partition from its end at start-up, no consumer group.
    Kafka(KafkaConfig),
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Cluster(#[from] ClusterError),
    #[error(transparent)]
    Bus(#[from] comet_bus::BusError),
}

/// Everything the sockets and background tasks of one node share.
#[derive(Debug)]
struct Shared {
    config: GatewayConfig,
    store: Store,
    hub: Hub,
    cluster: Cluster,
    typing: Typing,
    metrics: Arc<Metrics>,
    next_socket: AtomicU64,
    stopping: AtomicBool,
}

impl Shared {
    fn next_socket_id(&self) -> u64 {
        self.next_socket.fetch_add(1, Ordering::Relaxed)
    }

    async fn publish(&self, signal: Signal) {
        if let Err(error) = self.cluster.publish(&signal).await {
            tracing::warn!(%error, "could not publish a presence or typing signal");
        }
    }

    /// Tells the other nodes (a presence signal) and the workers (a `user.connection_status_changed` event in
    /// the outbox: the `user_connection_status_changed` webhook) that `uid` came online or went offline
    /// everywhere. A store that refuses the event is logged; the signal still goes out.
    async fn announce_presence(&self, uid: Uid, online: bool, groups: Vec<Guid>) {
        let at = now();
        if let Err(error) = self.store.record_connection_status(&uid, online, at).await {
            tracing::warn!(%error, %uid, "could not record the connection status change");
        }
        self.publish(Signal::Presence { uid, online, groups, at }).await;
    }

    async fn announce_online(&self, uid: &Uid) {
        match self.cluster.came_online(uid).await {
            Ok(true) => {
                let groups = self.hub.groups_of(uid);
                self.announce_presence(uid.clone(), true, groups).await;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, %uid, "could not record presence"),
        }
    }

    /// After the grace period: if `uid` did not come back here, take it off this node and announce offline
    /// when no node holds it.
    async fn expire_presence(&self, uid: &Uid, generation: u64) {
        let Some(groups) = self.hub.expire(uid, generation) else { return };
        match self.cluster.went_offline(uid).await {
            Ok(true) => self.announce_presence(uid.clone(), false, groups).await,
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, %uid, "could not record presence"),
        }
    }

    async fn announce_typing(&self, uid: &Uid, target: &Target, started: bool) {
        self.publish(Signal::Typing {
            from: uid.clone(),
            receiver: target.receiver.clone(),
            receiver_type: target.receiver_type,
            started,
            at: now(),
            expires_in_ms: self.typing.ttl().as_millis() as u64,
        })
        .await;
    }

    fn route(&self, seen: &mut Seen, event: &Event) {
        self.metrics.event_consumed();
        if seen.first_time(&event.id) {
            routing::route_event(&self.hub, event);
        }
    }

    /// The bus lost events for this node: tell every socket to resync.
    fn lost_events(&self) {
        let text = protocol::server_frame("resync.required", json!({ "reason": "the gateway missed events" }));
        let frame = Arc::new(Frame { text: text.into(), order: None, event_time: 0 });
        self.hub.deliver(&self.hub.online_users(), &frame, None);
    }
}

fn now() -> comet_model::Millis {
    comet_model::now_millis()
}

/// A running gateway node: its background tasks stop when it is dropped.
#[derive(Debug)]
pub struct Gateway {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        self.tasks.iter().for_each(JoinHandle::abort);
    }
}

impl Gateway {
    /// Starts a node: connects to Redis when `redis` is given (in-memory presence otherwise) and starts
    /// reading events. Once this returns, every event committed afterwards reaches the node's sockets.
    pub async fn start(
        config: GatewayConfig,
        store: Store,
        events: EventSource,
        redis: Option<&RedisTarget>,
    ) -> Result<Gateway, GatewayError> {
        let cluster = match redis {
            Some(target) => {
                Cluster::redis(target, &config.namespace, config.node_id.clone(), config.presence_ttl).await?
            }
            None => Cluster::local(config.node_id.clone(), config.presence_ttl),
        };
        let metrics = Arc::new(Metrics::default());
        let shared = Arc::new(Shared {
            typing: Typing::new(config.typing_ttl),
            hub: Hub::new(metrics.clone()),
            config,
            store,
            cluster,
            metrics,
            next_socket: AtomicU64::new(1),
            stopping: AtomicBool::new(false),
        });
        let mut tasks = Vec::new();
        match events {
            EventSource::InProcess(bus) => {
                let receiver = bus.subscribe();
                tasks.push(tokio::spawn(read_in_process(shared.clone(), receiver)));
            }
            EventSource::Kafka(config) => {
                let tail = Arc::new(KafkaTail::start(&config).await?);
                shared.metrics.read_kafka_through(tail.consumed());
                tasks.push(tokio::spawn(read_kafka(shared.clone(), tail.clone())));
                tasks.push(tokio::spawn(measure_lag(shared.clone(), tail)));
            }
        }
        tasks.push(tokio::spawn(route_signals(shared.clone())));
        tasks.push(tokio::spawn(keep_presence(shared.clone())));
        tasks.push(tokio::spawn(expire_typing(shared.clone())));
        tracing::info!(node = %shared.config.node_id, "gateway started");
        Ok(Gateway { shared, tasks })
    }

    /// `GET /v3/ws`.
    pub fn router(&self) -> Router {
        Router::new().route(WS_PATH, get(connection::upgrade)).with_state(self.shared.clone())
    }

    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// Whether `uid` has a socket on this node (with in-memory presence, the only node).
    pub fn holds(&self, uid: &comet_model::Uid) -> bool {
        self.shared.hub.socket_count(uid) > 0
    }

    pub fn node_id(&self) -> &str {
        &self.shared.config.node_id
    }

    /// Whether the node can serve: Redis answers (when used) and it is not shutting down.
    pub async fn ready(&self) -> Result<(), String> {
        if self.shared.stopping.load(Ordering::Acquire) {
            return Err("shutting down".to_owned());
        }
        self.shared.cluster.ping().await.map_err(|error| error.to_string())
    }

    /// Drains the node: refuses new sockets, closes every socket with 1001 after a `reconnect` frame (clients
    /// reconnect elsewhere after its jittered delay and resync), in batches spread over `drain`, waits up to
    /// `SHUTDOWN_WAIT` for the close frames to go out, and takes the node's users off presence, announcing
    /// offline those no other node holds.
    pub async fn shutdown(&self) {
        self.shared.stopping.store(true, Ordering::Release);
        let users = self.shared.hub.online_users();
        let sockets = self.shared.hub.sockets();
        let ticks = (self.shared.config.drain.as_millis() / DRAIN_TICK.as_millis()).max(1);
        let per_tick = sockets.len().div_ceil(usize::try_from(ticks).unwrap_or(usize::MAX)).max(1);
        let mut batches = sockets.chunks(per_tick).peekable();
        while let Some(batch) = batches.next() {
            batch.iter().for_each(|socket| socket.close_with(protocol::close::GOING_AWAY));
            if batches.peek().is_some() {
                tokio::time::sleep(DRAIN_TICK).await;
            }
        }
        let deadline = tokio::time::Instant::now() + SHUTDOWN_WAIT;
        while self.shared.metrics.connections() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        match self.shared.cluster.leave(&users).await {
            Ok(offline) => {
                for uid in offline {
                    let groups = self.shared.hub.groups_of(&uid);
                    self.shared.announce_presence(uid, false, groups).await;
                }
            }
            Err(error) => tracing::warn!(%error, "could not take this node off presence; a survivor will sweep it"),
        }
    }
}

async fn read_in_process(shared: Arc<Shared>, mut receiver: broadcast::Receiver<Event>) {
    let mut seen = Seen::default();
    loop {
        match receiver.recv().await {
            Ok(event) => shared.route(&mut seen, &event),
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                tracing::warn!(missed, "the gateway fell behind the in-process bus");
                shared.lost_events();
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

async fn read_kafka(shared: Arc<Shared>, tail: Arc<KafkaTail>) {
    let mut seen = Seen::default();
    loop {
        match tail.next().await {
            Ok(event) => shared.route(&mut seen, &event),
            Err(error) => {
                tracing::warn!(%error, "reading events from Kafka failed; retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// How often the Kafka lag gauge is refreshed.
const LAG_INTERVAL: Duration = Duration::from_secs(15);

/// Refreshes `comet_kafka_consumer_lag` (group `gateway`) for the alert on consumers falling behind.
async fn measure_lag(shared: Arc<Shared>, tail: Arc<KafkaTail>) {
    let mut ticks = tokio::time::interval(LAG_INTERVAL);
    loop {
        ticks.tick().await;
        let tail = tail.clone();
        match tokio::task::spawn_blocking(move || tail.lag_blocking()).await {
            Ok(Ok(lags)) => shared.metrics.set_kafka_lag(lags),
            Ok(Err(error)) => tracing::warn!(%error, "measuring the Kafka lag failed"),
            Err(error) => tracing::warn!(%error, "measuring the Kafka lag panicked"),
        }
    }
}

async fn route_signals(shared: Arc<Shared>) {
    let mut signals = shared.cluster.subscribe();
    while let Some(signal) = signals.recv().await {
        routing::route_signal(&shared.hub, &signal);
    }
}

/// Heartbeats this node's users and sweeps dead nodes, every third of the presence TTL.
async fn keep_presence(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval(shared.config.presence_ttl / 3);
    loop {
        ticks.tick().await;
        if let Err(error) = shared.cluster.heartbeat(&shared.hub.online_users()).await {
            tracing::warn!(%error, "presence heartbeat failed");
        }
        match shared.cluster.sweep_dead_nodes().await {
            Ok(offline) => {
                for uid in offline {
                    let groups = match shared.store.reach(&uid, 5_000).await {
                        Ok(reach) => reach.groups,
                        Err(error) => {
                            tracing::warn!(%error, %uid, "could not read the groups of a swept user");
                            Vec::<Guid>::new()
                        }
                    };
                    shared.announce_presence(uid, false, groups).await;
                }
            }
            Err(error) => tracing::warn!(%error, "sweeping dead gateway nodes failed"),
        }
    }
}

/// Ends typing indicators nobody renewed.
async fn expire_typing(shared: Arc<Shared>) {
    let mut ticks = tokio::time::interval((shared.config.typing_ttl / 10).max(Duration::from_millis(50)));
    loop {
        ticks.tick().await;
        for (uid, target) in shared.typing.expired(tokio::time::Instant::now()) {
            shared.announce_typing(&uid, &target, false).await;
        }
    }
}
