//! What gateway nodes share: presence (which node holds which user, kept alive by heartbeats with a TTL) and
//! ephemeral signals (presence changes, typing) on one pub/sub channel. Redis in production; in the embedded
//! single-node mode, this process's memory.
//!
//! **Architecture Invariant:** only this crate imports `redis`. The gateway writes presence and signals through
//! it; the notifications role will read presence through it.
//!
//! Redis keys, all under the deployment's namespace `<ns>` (`COMET_GATEWAY_NAMESPACE`, default `comet`, so
//! deployments can share a Redis; pub/sub channels ignore Redis database numbers, hence a prefix). The prefix
//! is a hash tag, `{<ns>}`, so on Redis Cluster every key of a deployment lives in one slot:
//! - `{<ns>}:presence:<uid>`: hash node → expiry (ms); the user is online while one field is unexpired.
//! - `{<ns>}:gateway:nodes`: sorted set of nodes scored by heartbeat expiry (ms).
//! - `{<ns>}:gateway:node:<node>`: set of the users a node holds, so a survivor can sweep a dead node's users.
//! - `{<ns>}:gateway:sweep:<node>`: a short lock, so one survivor sweeps a dead node.
//! - channel `{<ns>}:signals`: JSON [`Signal`]s.

use std::sync::Arc;
use std::time::Duration;

use comet_model::{Guid, Millis, ReceiverType, Uid};
use futures::StreamExt as _;
use redis::AsyncCommands as _;
use redis::aio::ConnectionManager;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc};

/// Heartbeats are sent in pipelines of at most this many users.
const HEARTBEAT_CHUNK: usize = 1000;

/// An ephemeral event every node hears: never stored, never on Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", rename_all_fields = "camelCase")]
pub enum Signal {
    /// `uid` came online (first socket anywhere) or went offline (last socket gone, grace passed, or its node
    /// died). `groups` lets every node find the local users who share a group with it.
    Presence { uid: Uid, online: bool, groups: Vec<Guid>, at: Millis },
    /// `from` started or stopped typing to `receiver`.
    Typing { from: Uid, receiver: String, receiver_type: ReceiverType, started: bool, at: Millis, expires_in_ms: u64 },
}

/// Why the shared state could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("redis: {0}")]
pub struct ClusterError(String);

impl From<redis::RedisError> for ClusterError {
    fn from(error: redis::RedisError) -> ClusterError {
        ClusterError(error.to_string())
    }
}

#[derive(Debug)]
enum Backend {
    Local(broadcast::Sender<Arc<Signal>>),
    Redis { client: redis::Client, connection: Conn },
}

/// One standalone Redis (reconnecting), or a Redis Cluster; commands go through either the same way.
#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(redis::cluster_async::ClusterConnection),
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(match self {
            Conn::Single(_) => "Conn::Single",
            Conn::Cluster(_) => "Conn::Cluster",
        })
    }
}

impl redis::aio::ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, command: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Conn::Single(connection) => connection.req_packed_command(command),
            Conn::Cluster(connection) => connection.req_packed_command(command),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Conn::Single(connection) => connection.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(connection) => connection.get_db(),
            Conn::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Where the shared state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    /// `redis://` URLs: one for a standalone server; the seed nodes of a cluster.
    pub urls: Vec<String>,
    /// Redis Cluster: every key of a deployment carries the hash tag `{<namespace>}`, so they live in one slot
    /// (presence is small) and pipelines stay single-slot; pub/sub is cluster-wide.
    pub cluster: bool,
}

/// This node's handle on the shared state.
#[derive(Debug)]
pub struct Cluster {
    backend: Backend,
    node: String,
    ttl: Duration,
    namespace: String,
}

fn now_ms() -> Millis {
    comet_model::now_millis()
}

/// How many fields of a presence hash are unexpired at `now`.
fn live_fields(fields: &[(String, i64)], now: Millis) -> usize {
    fields.iter().filter(|(_, expiry)| *expiry > now).count()
}

impl Cluster {
    /// The embedded single-node state.
    pub fn local(node: String, ttl: Duration) -> Cluster {
        let (sender, _) = broadcast::channel(4096);
        Cluster { backend: Backend::Local(sender), node, ttl, namespace: String::new() }
    }

    /// Connects to Redis (standalone or cluster); fails when it does not answer.
    pub async fn redis(
        target: &RedisTarget,
        namespace: &str,
        node: String,
        ttl: Duration,
    ) -> Result<Cluster, ClusterError> {
        let Some(first) = target.urls.first() else {
            return Err(ClusterError("no Redis URL".to_owned()));
        };
        // Pub/sub: any node of a cluster hears every PUBLISH, so the first seed node serves.
        let client = redis::Client::open(first.as_str())?;
        let connection = if target.cluster {
            let nodes: Vec<&str> = target.urls.iter().map(String::as_str).collect();
            Conn::Cluster(redis::cluster::ClusterClient::new(nodes)?.get_async_connection().await?)
        } else {
            Conn::Single(ConnectionManager::new(client.clone()).await?)
        };
        let backend = Backend::Redis { client, connection };
        let cluster = Cluster { backend, node, ttl, namespace: namespace.to_owned() };
        cluster.ping().await?;
        Ok(cluster)
    }

    fn channel(&self) -> String {
        format!("{{{}}}:signals", self.namespace)
    }

    fn nodes_key(&self) -> String {
        format!("{{{}}}:gateway:nodes", self.namespace)
    }

    fn presence_key(&self, uid: &Uid) -> String {
        format!("{{{}}}:presence:{uid}", self.namespace)
    }

    fn node_key(&self, node: &str) -> String {
        format!("{{{}}}:gateway:node:{node}", self.namespace)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Whether Redis answers (always true in the embedded mode).
    pub async fn ping(&self) -> Result<(), ClusterError> {
        if let Backend::Redis { connection, .. } = &self.backend {
            let _: String = redis::cmd("PING").query_async(&mut connection.clone()).await?;
        }
        Ok(())
    }

    fn expiry(&self) -> Millis {
        now_ms() + self.ttl.as_millis() as Millis
    }

    /// Tells every node (this one included) about `signal`.
    pub async fn publish(&self, signal: &Signal) -> Result<(), ClusterError> {
        match &self.backend {
            Backend::Local(sender) => {
                let _ = sender.send(Arc::new(signal.clone()));
                Ok(())
            }
            Backend::Redis { connection, .. } => {
                let text = serde_json::to_string(signal).map_err(|error| ClusterError(error.to_string()))?;
                let _: i64 = connection.clone().publish(self.channel(), text).await?;
                Ok(())
            }
        }
    }

    /// Every signal from now on. With Redis, a task keeps the subscription alive across reconnects (signals
    /// published while it is reconnecting are lost: they are ephemeral by design).
    pub fn subscribe(&self) -> mpsc::Receiver<Arc<Signal>> {
        let (sender, receiver) = mpsc::channel(4096);
        match &self.backend {
            Backend::Local(broadcaster) => {
                let mut signals = broadcaster.subscribe();
                tokio::spawn(async move {
                    loop {
                        match signals.recv().await {
                            Ok(signal) => {
                                if sender.send(signal).await.is_err() {
                                    return;
                                }
                            }
                            Err(broadcast::error::RecvError::Lagged(missed)) => {
                                tracing::warn!(missed, "signal subscriber fell behind; ephemeral signals dropped");
                            }
                            Err(broadcast::error::RecvError::Closed) => return,
                        }
                    }
                });
            }
            Backend::Redis { client, .. } => {
                let client = client.clone();
                let channel = self.channel();
                tokio::spawn(async move {
                    loop {
                        if let Err(error) = forward_signals(&client, &channel, &sender).await {
                            tracing::warn!(%error, "signal subscription lost; reconnecting");
                        }
                        if sender.is_closed() {
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                });
            }
        }
        receiver
    }

    /// `uid` got its first socket on this node. Returns whether no other node holds it (it just came online).
    pub async fn came_online(&self, uid: &Uid) -> Result<bool, ClusterError> {
        let Backend::Redis { connection, .. } = &self.backend else {
            return Ok(true);
        };
        let key = self.presence_key(uid);
        let (fields,): (Vec<(String, i64)>,) = redis::pipe()
            .hset(&key, &self.node, self.expiry())
            .ignore()
            .pexpire(&key, 2 * self.ttl.as_millis() as i64)
            .ignore()
            .sadd(self.node_key(&self.node), uid.as_str())
            .ignore()
            .hgetall(&key)
            .query_async(&mut connection.clone())
            .await?;
        let others = fields.iter().filter(|(node, expiry)| node != &self.node && *expiry > now_ms()).count();
        Ok(others == 0)
    }

    /// `uid`'s last socket on this node is gone (grace passed). Returns whether no node holds it now.
    pub async fn went_offline(&self, uid: &Uid) -> Result<bool, ClusterError> {
        let Backend::Redis { connection, .. } = &self.backend else {
            return Ok(true);
        };
        let key = self.presence_key(uid);
        let (fields,): (Vec<(String, i64)>,) = redis::pipe()
            .hdel(&key, &self.node)
            .ignore()
            .srem(self.node_key(&self.node), uid.as_str())
            .ignore()
            .hgetall(&key)
            .query_async(&mut connection.clone())
            .await?;
        Ok(live_fields(&fields, now_ms()) == 0)
    }

    /// Keeps this node and its users alive for another TTL.
    pub async fn heartbeat(&self, users: &[Uid]) -> Result<(), ClusterError> {
        let Backend::Redis { connection, .. } = &self.backend else {
            return Ok(());
        };
        let expiry = self.expiry();
        let mut connection = connection.clone();
        let _: () = connection.zadd(self.nodes_key(), &self.node, expiry).await?;
        for chunk in users.chunks(HEARTBEAT_CHUNK) {
            let mut pipe = redis::pipe();
            for uid in chunk {
                let key = self.presence_key(uid);
                pipe.hset(&key, &self.node, expiry).ignore().pexpire(&key, 2 * self.ttl.as_millis() as i64).ignore();
            }
            let _: () = pipe.query_async(&mut connection).await?;
        }
        Ok(())
    }

    /// Finds nodes whose heartbeat expired, takes their users off them, and returns the users now held by no
    /// node (to announce offline). Each dead node is swept by one survivor (a lock in Redis).
    pub async fn sweep_dead_nodes(&self) -> Result<Vec<Uid>, ClusterError> {
        let Backend::Redis { connection, .. } = &self.backend else {
            return Ok(Vec::new());
        };
        let mut connection = connection.clone();
        let now = now_ms();
        let dead: Vec<String> = connection.zrangebyscore(self.nodes_key(), "-inf", now).await?;
        let mut offline = Vec::new();
        for node in dead.into_iter().filter(|node| node != &self.node) {
            let locked: Option<String> = redis::cmd("SET")
                .arg(format!("{{{}}}:gateway:sweep:{node}", self.namespace))
                .arg(&self.node)
                .arg("NX")
                .arg("PX")
                .arg(self.ttl.as_millis() as u64)
                .query_async(&mut connection)
                .await?;
            if locked.is_none() {
                continue;
            }
            let users: Vec<String> = connection.smembers(self.node_key(&node)).await?;
            let users: Vec<Uid> = users.iter().filter_map(|raw| Uid::parse(raw).ok()).collect();
            for chunk in users.chunks(HEARTBEAT_CHUNK) {
                let mut pipe = redis::pipe();
                for uid in chunk {
                    let key = self.presence_key(uid);
                    pipe.hdel(&key, &node).ignore().hgetall(&key);
                }
                let remaining: Vec<Vec<(String, i64)>> = pipe.query_async(&mut connection).await?;
                for (uid, fields) in chunk.iter().zip(remaining) {
                    if live_fields(&fields, now) == 0 {
                        offline.push(uid.clone());
                    }
                }
            }
            let _: () = redis::pipe()
                .del(self.node_key(&node))
                .ignore()
                .zrem(self.nodes_key(), &node)
                .ignore()
                .query_async(&mut connection)
                .await?;
            tracing::info!(%node, "swept a gateway node whose heartbeat expired");
        }
        Ok(offline)
    }

    /// Takes this node out on a clean shutdown, so its users are not left for a sweep.
    pub async fn leave(&self, users: &[Uid]) -> Result<Vec<Uid>, ClusterError> {
        let mut offline = Vec::new();
        for uid in users {
            if self.went_offline(uid).await? {
                offline.push(uid.clone());
            }
        }
        if let Backend::Redis { connection, .. } = &self.backend {
            let _: () = redis::pipe()
                .del(self.node_key(&self.node))
                .ignore()
                .zrem(self.nodes_key(), &self.node)
                .ignore()
                .query_async(&mut connection.clone())
                .await?;
        }
        Ok(offline)
    }

    /// Which of `uids` are online on any node.
    pub async fn online(&self, uids: &[Uid], local: impl Fn(&Uid) -> bool) -> Result<Vec<bool>, ClusterError> {
        let Backend::Redis { connection, .. } = &self.backend else {
            return Ok(uids.iter().map(local).collect());
        };
        let mut pipe = redis::pipe();
        for uid in uids {
            pipe.hgetall(self.presence_key(uid));
        }
        let all: Vec<Vec<(String, i64)>> = pipe.query_async(&mut connection.clone()).await?;
        let now = now_ms();
        Ok(all.iter().map(|fields| live_fields(fields, now) > 0).collect())
    }
}

async fn forward_signals(
    client: &redis::Client,
    channel: &str,
    sender: &mpsc::Sender<Arc<Signal>>,
) -> Result<(), ClusterError> {
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let payload: String = match message.get_payload() {
            Ok(payload) => payload,
            Err(error) => {
                tracing::warn!(%error, "skipping a signal that is not text");
                continue;
            }
        };
        match serde_json::from_str::<Signal>(&payload) {
            Ok(signal) => {
                if sender.send(Arc::new(signal)).await.is_err() {
                    return Ok(());
                }
            }
            Err(error) => tracing::warn!(%error, "skipping a signal that does not parse"),
        }
    }
    Err(ClusterError("the subscription ended".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_round_trip_as_camel_case_json() {
        let signal = Signal::Typing {
            from: Uid::parse("alice").expect("uid"),
            receiver: "g".into(),
            receiver_type: ReceiverType::Group,
            started: true,
            at: 5,
            expires_in_ms: 5000,
        };
        let text = serde_json::to_string(&signal).expect("encode");
        assert!(text.contains("\"kind\":\"typing\"") && text.contains("\"expiresInMs\":5000"), "{text}");
        assert_eq!(serde_json::from_str::<Signal>(&text).expect("decode"), signal);
    }

    #[test]
    fn expired_fields_do_not_count() {
        assert_eq!(live_fields(&[("a".into(), 10), ("b".into(), 30)], 20), 1);
    }
}
