//! One WebSocket: the handshake (Origin, auth token, per-user cap) and the session loop that writes queued
//! frames, answers client frames, pings, and closes on idle, slowness, abuse or shutdown.
//!
//! A session holds live events back until the client's first frame (or `hold_live_for`): a reconnecting client
//! sends `resync` first, gets the gap replayed from the database, then the live events queued meanwhile, minus
//! those the replay already covered. So it sees every message once, in seq order.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use comet_model::auth::{AUTH_TOKEN_HEADER, identity_value, token_hash};
use comet_model::{ConversationId, Guid, ReceiverType, Uid};
use comet_store::{MessageFilter, MessagePage, ReceiptKind, StoreError};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Shared;
use crate::hub::{Attached, Frame, SocketHandle};
use crate::metrics::{ErrorReason, ResyncOutcome};
use crate::protocol::{self, ClientFrame, FrameError, Mark, ResyncCursor, Target, close};
use crate::refusal::Refusal;

/// How many groups and direct peers of a connecting user are loaded for routing.
const REACH_LIMIT: u32 = 5_000;
/// A write that takes longer than this means the client stopped reading.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a socket may have unwritten while the client reads slowly: above the largest frame the server
/// sends (a message of up to 64 KiB of data, JSON-escaped). Slower clients fill their queue and are closed.
const MAX_WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// How often a socket holding live frames (before the client's first frame) checks whether it must close.
const HOLD_CHECK: Duration = Duration::from_millis(200);
/// How long a closing socket waits for the client's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(1);
/// After this many invalid frames in a row the socket is closed.
const MAX_INVALID_IN_ROW: u8 = 10;
/// Client frames: a burst of this many, refilled at `FRAME_RATE` per second.
const FRAME_BURST: f64 = 40.0;
const FRAME_RATE: f64 = 20.0;

fn refuse(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    let message = message.into();
    // Never the token: the reason is one of this module's own sentences.
    tracing::info!(status = status.as_u16(), code, reason = %message, "WebSocket handshake refused");
    Refusal::new(status, code, message).into_response()
}

/// The token from the `authtoken` header, or from a `authtoken.<token>` subprotocol (browsers); `Ok(None)`
/// when there is none. A malformed or repeated header, or a token given twice (twice as a subprotocol, or both
/// ways), is refused like the API refuses it, never resolved by picking one (issue #17).
fn token(headers: &HeaderMap) -> Result<Option<String>, String> {
    let header = identity_value(headers.get_all(AUTH_TOKEN_HEADER).iter().map(|value| value.as_bytes()))
        .map_err(|problem| format!("the `{AUTH_TOKEN_HEADER}` header {problem}"))?;
    let mut offered =
        offered_protocols(headers).filter_map(|offered| offered.strip_prefix(protocol::TOKEN_SUBPROTOCOL_PREFIX));
    let subprotocol = offered.next();
    if offered.next().is_some() || (header.is_some() && subprotocol.is_some()) {
        return Err("the auth token is given more than once; send it once, in the `authtoken` header or as the \
                    subprotocol `authtoken.<token>`"
            .to_owned());
    }
    Ok(header.or(subprotocol).map(str::to_owned).filter(|token| !token.is_empty()))
}

fn offered_protocols(headers: &HeaderMap) -> impl Iterator<Item = &str> {
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .map(str::trim)
}

/// `GET /v3/ws`: checks the Origin, the token and the per-user cap before upgrading.
pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    let metrics = &shared.metrics;
    if shared.stopping.load(std::sync::atomic::Ordering::Acquire) {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "ERR_UNAVAILABLE", "this node is shutting down; reconnect");
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => {
            metrics.error(ErrorReason::Handshake);
            return refuse(
                StatusCode::BAD_REQUEST,
                "ERR_NOT_A_WEBSOCKET",
                format!("this endpoint only speaks WebSocket: {rejection}"),
            );
        }
    };
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|value| value.to_str().ok())
        && !shared.config.origin_allowed(origin)
    {
        metrics.error(ErrorReason::Handshake);
        return refuse(
            StatusCode::FORBIDDEN,
            "ERR_ORIGIN_NOT_ALLOWED",
            format!("origin `{origin}` is not in COMET_GATEWAY_ALLOWED_ORIGINS"),
        );
    }
    let token = match token(&headers) {
        Ok(token) => token,
        Err(problem) => {
            metrics.error(ErrorReason::Auth);
            return refuse(StatusCode::BAD_REQUEST, "ERR_HEADER_INVALID", problem);
        }
    };
    let Some(token) = token else {
        metrics.error(ErrorReason::Auth);
        return refuse(
            StatusCode::UNAUTHORIZED,
            "ERR_AUTH_MISSING",
            "send the user's auth token in the `authtoken` header, or as the subprotocol `authtoken.<token>` \
             beside `comet.v1`",
        );
    };
    let (uid, token_id) = match shared.store.session_for_token(&token_hash(&token)).await {
        Ok(Some(session)) => session,
        Ok(None) => {
            metrics.error(ErrorReason::Auth);
            return refuse(StatusCode::UNAUTHORIZED, "ERR_AUTH_TOKEN_INVALID", "the auth token is not valid");
        }
        Err(error) => return unavailable(&shared, &error),
    };
    if shared.hub.socket_count(&uid) >= shared.config.max_sockets_per_user {
        metrics.error(ErrorReason::RateLimited);
        return refuse(
            StatusCode::TOO_MANY_REQUESTS,
            "ERR_TOO_MANY_SOCKETS",
            format!("user `{uid}` already has {} sockets on this node", shared.config.max_sockets_per_user),
        );
    }
    let reach = if shared.hub.knows(&uid) {
        None
    } else {
        match shared.store.reach(&uid, REACH_LIMIT).await {
            Ok(reach) => Some(reach),
            Err(error) => return unavailable(&shared, &error),
        }
    };
    let config = &shared.config;
    let mut upgrade = upgrade
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_WRITE_BUFFER_BYTES)
        .max_message_size(config.max_frame_bytes)
        .max_frame_size(config.max_frame_bytes);
    if offered_protocols(&headers).any(|offered| offered == protocol::SUBPROTOCOL) {
        upgrade = upgrade.protocols([protocol::SUBPROTOCOL]);
    }
    let failed = shared.clone();
    upgrade
        .on_failed_upgrade(move |error| {
            failed.metrics.error(ErrorReason::Handshake);
            tracing::debug!(%error, "WebSocket upgrade failed");
        })
        .on_upgrade(move |socket| run(shared, uid, token_id, reach, socket))
}

fn unavailable(shared: &Shared, error: &StoreError) -> Response {
    shared.metrics.error(ErrorReason::Internal);
    tracing::warn!(%error, "WebSocket handshake: the database did not answer");
    refuse(StatusCode::SERVICE_UNAVAILABLE, "ERR_UNAVAILABLE", "the database did not answer; retry with backoff")
}

async fn run(
    shared: Arc<Shared>,
    uid: Uid,
    token_id: String,
    reach: Option<comet_store::Reach>,
    mut socket: WebSocket,
) {
    let id = shared.next_socket_id();
    let (queue, mut queued) = mpsc::channel(shared.config.queue_capacity);
    let kick = Arc::new(AtomicU16::new(0));
    let handle = SocketHandle::new(id, &token_id, queue, kick.clone());
    drop(token_id);
    match shared.hub.attach(&uid, handle, reach, shared.config.max_sockets_per_user) {
        Ok(Attached::FirstSocket) => {
            let shared = shared.clone();
            let uid = uid.clone();
            tokio::spawn(async move { shared.announce_online(&uid).await });
        }
        Ok(Attached::Another) => {}
        Err(_) => {
            shared.metrics.error(ErrorReason::RateLimited);
            let _ = socket.send(close_message(close::TOO_MANY_SOCKETS, "too many sockets for this user")).await;
            return;
        }
    }
    shared.metrics.opened();
    let mut session = Session::new(&shared, uid.clone(), id, kick);
    let ending = session.serve(&mut socket, &mut queued).await;
    if let Some((code, reason)) = ending {
        tracing::info!(%uid, socket = id, code, reason, "WebSocket closed by the server");
    }
    if let Some((close::GOING_AWAY, _)) = ending {
        // Where to go next: another node, after a random wait, so a drained node's clients do not all arrive there
        // at once.
        let jitter = u64::try_from(shared.config.reconnect_jitter.as_millis()).unwrap_or(u64::MAX);
        let after = u64::try_from(uuid::Uuid::new_v4().as_u128() % u128::from(jitter.saturating_add(1))).unwrap_or(0);
        let hint = protocol::server_frame("reconnect", json!({ "afterMs": after, "reason": "the node is draining" }));
        let _ = tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::text(hint))).await;
    }
    if let Some((code, reason)) = ending
        && let Ok(Ok(())) = tokio::time::timeout(WRITE_TIMEOUT, socket.send(close_message(code, reason))).await
    {
        // RFC 6455: wait (briefly) for the client's close before dropping the connection, so the client reads
        // our close frame instead of a reset.
        let _ = tokio::time::timeout(CLOSE_WAIT, async {
            while let Some(Ok(message)) = socket.recv().await {
                if matches!(message, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    shared.metrics.closed();
    drop(socket);
    for (typist, target) in shared.typing.socket_closed(id) {
        shared.announce_typing(&typist, &target, false).await;
    }
    if let Some(generation) = shared.hub.detach(&uid, id) {
        let shared = shared.clone();
        tokio::spawn(async move {
            tokio::time::sleep(shared.config.presence_grace).await;
            shared.expire_presence(&uid, generation).await;
        });
    }
}

fn close_message(code: u16, reason: &'static str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: Utf8Bytes::from_static(reason) }))
}

type Ending = Option<(u16, &'static str)>;

/// A client frame budget: `FRAME_BURST` at once, refilled at `FRAME_RATE` per second.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn take(&mut self, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.at).as_secs_f64() * FRAME_RATE).min(FRAME_BURST);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

struct Session<'a> {
    shared: &'a Shared,
    uid: Uid,
    id: u64,
    /// Live frames flow once the client spoke first or the hold passed.
    live: bool,
    hold_until: Instant,
    last_heard: Instant,
    bucket: Bucket,
    invalid_in_row: u8,
    /// Set by the hub (or by a stalled write) to the close code the session must end with.
    kick: Arc<AtomicU16>,
    /// Per conversation, the highest seq a resync replayed: live `message.new` at or below it is skipped.
    // Boxed: most sessions never resync, and an empty map inline would cost every idle socket 40 bytes more.
    #[allow(clippy::box_collection)]
    replayed: Option<Box<HashMap<Box<str>, i64>>>,
}

impl<'a> Session<'a> {
    fn new(shared: &'a Shared, uid: Uid, id: u64, kick: Arc<AtomicU16>) -> Session<'a> {
        let now = Instant::now();
        Session {
            shared,
            uid,
            id,
            live: false,
            hold_until: now + shared.config.hold_live_for,
            last_heard: now,
            bucket: Bucket { tokens: FRAME_BURST, at: now },
            invalid_in_row: 0,
            replayed: None,
            kick,
        }
    }

    async fn serve(&mut self, socket: &mut WebSocket, queued: &mut mpsc::Receiver<Arc<Frame>>) -> Ending {
        let config = &self.shared.config;
        let hello = protocol::server_frame(
            "hello",
            json!({
                "uid": self.uid,
                "node": self.shared.cluster.node(),
                "socketId": self.id,
                "pingIntervalMs": config.ping_interval.as_millis() as u64,
                "idleTimeoutMs": config.idle_timeout.as_millis() as u64,
                "holdLiveMs": config.hold_live_for.as_millis() as u64,
                "maxFrameBytes": config.max_frame_bytes,
                "resyncMaxMessages": config.resync_max_messages,
            }),
        );
        if let Err(ending) = self.write(socket, hello).await {
            return ending;
        }
        let mut pings = tokio::time::interval_at(Instant::now() + config.ping_interval, config.ping_interval);
        loop {
            tokio::select! {
                incoming = socket.recv() => {
                    let ending = match incoming {
                        None | Some(Ok(Message::Close(_))) => return None,
                        Some(Err(error)) => return self.read_failed(&error),
                        Some(Ok(message)) => self.on_message(socket, message).await,
                    };
                    if ending.is_some() {
                        return ending;
                    }
                }
                frame = queued.recv(), if self.live => {
                    let Some(frame) = frame else { return Some((close::GOING_AWAY, "server closing")) };
                    if let Some(ending) = kicked(&self.kick) {
                        return Some(ending);
                    }
                    if let Err(ending) = self.forward(socket, &frame).await {
                        return ending;
                    }
                }
                // While live frames are held the queue is not read, so a close request (shutdown, revoked
                // token) is looked for at short intervals instead of waiting for the end of the hold.
                () = tokio::time::sleep_until(self.hold_until.min(Instant::now() + HOLD_CHECK)), if !self.live => {
                    if let Some(ending) = kicked(&self.kick) {
                        return Some(ending);
                    }
                    self.live = Instant::now() >= self.hold_until;
                }
                _ = pings.tick() => {
                    if let Some(ending) = kicked(&self.kick) {
                        return Some(ending);
                    }
                    if self.last_heard.elapsed() > config.idle_timeout {
                        self.shared.metrics.error(ErrorReason::Timeout);
                        return Some((close::IDLE_TIMEOUT, "idle timeout"));
                    }
                    if tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Ping(Default::default()))).await.is_err() {
                        return self.too_slow();
                    }
                }
            }
        }
    }

    fn read_failed(&self, error: &axum::Error) -> Ending {
        let text = error.to_string();
        if text.contains("Space limit exceeded") || text.contains("too long") || text.contains("Message too long") {
            self.shared.metrics.error(ErrorReason::Protocol);
            return Some((close::TOO_BIG, "frame too big"));
        }
        tracing::debug!(%error, "WebSocket read failed");
        None
    }

    /// A write stalled: the client stopped reading. Counted once per socket, whoever noticed first.
    fn too_slow(&self) -> Ending {
        if self.kick.compare_exchange(0, close::SLOW_CONSUMER, Ordering::AcqRel, Ordering::Acquire).is_ok() {
            self.shared.metrics.error(ErrorReason::SlowConsumer);
        }
        None
    }

    /// Writes a text frame; a write that does not finish in time ends the session.
    async fn write(&self, socket: &mut WebSocket, text: String) -> Result<(), Ending> {
        self.write_bytes(socket, Utf8Bytes::from(text)).await
    }

    async fn write_bytes(&self, socket: &mut WebSocket, text: Utf8Bytes) -> Result<(), Ending> {
        match tokio::time::timeout(WRITE_TIMEOUT, socket.send(Message::Text(text))).await {
            Ok(Ok(())) => {
                self.shared.metrics.frame_out();
                Ok(())
            }
            Ok(Err(_)) => Err(None),
            Err(_) => Err(self.too_slow()),
        }
    }

    /// Writes a live frame unless a resync already replayed it.
    async fn forward(&self, socket: &mut WebSocket, frame: &Frame) -> Result<(), Ending> {
        if frame.text.as_str().is_empty() {
            return Ok(());
        }
        if let (Some(replayed), Some((conversation, seq))) = (&self.replayed, &frame.order)
            && replayed.get(conversation).is_some_and(|high| seq <= high)
        {
            return Ok(());
        }
        self.write_bytes(socket, frame.text.clone()).await?;
        if frame.event_time > 0 {
            self.shared.metrics.delivered(comet_model::now_millis() - frame.event_time);
        }
        Ok(())
    }

    async fn on_message(&mut self, socket: &mut WebSocket, message: Message) -> Ending {
        self.last_heard = Instant::now();
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => {
                return self.refuse(socket, FrameError::new("ERR_FRAME_INVALID", "send JSON text frames"), None).await;
            }
            Message::Ping(_) | Message::Pong(_) | Message::Close(_) => return None,
        };
        self.shared.metrics.frame_in();
        if !self.bucket.take(self.last_heard) {
            let error = FrameError::new("ERR_RATE_LIMITED", "too many frames; slow down");
            return self.refuse(socket, error, None).await;
        }
        let frame = match protocol::parse_client(text.as_str()) {
            Ok(frame) => frame,
            Err(error) => return self.refuse(socket, error, None).await,
        };
        self.invalid_in_row = 0;
        let kind = frame.kind();
        let reply = match frame {
            ClientFrame::Ping(id) => Ok(protocol::server_frame("pong", json!({ "id": id }))),
            ClientFrame::TypingStart(target) => self.typing(&target, true).await.map(|()| String::new()),
            ClientFrame::TypingEnd(target) => self.typing(&target, false).await.map(|()| String::new()),
            ClientFrame::MarkDelivered(mark) => self.mark(&mark, ReceiptKind::Delivered).await,
            ClientFrame::MarkRead(mark) => self.mark(&mark, ReceiptKind::Read).await,
            ClientFrame::PresenceQuery(uids) => self.presence(&uids).await,
            ClientFrame::Resync(cursors) => {
                let result = self.resync(socket, &cursors).await;
                self.live = true;
                result
            }
        };
        self.live = true;
        match reply {
            Ok(text) if text.is_empty() => None,
            Ok(text) => self.write(socket, text).await.err().flatten(),
            Err(Reply::Error(error)) => self.refuse(socket, error, Some(kind)).await,
            Err(Reply::Ending(ending)) => ending,
        }
    }

    /// Answers an invalid frame with an error frame, and closes after too many in a row.
    async fn refuse(&mut self, socket: &mut WebSocket, error: FrameError, about: Option<&str>) -> Ending {
        if error.code == "ERR_FRAME_INVALID" || error.code == "ERR_FRAME_UNKNOWN_TYPE" {
            self.invalid_in_row = self.invalid_in_row.saturating_add(1);
            if self.invalid_in_row >= MAX_INVALID_IN_ROW {
                self.shared.metrics.error(ErrorReason::Protocol);
                return Some((close::PROTOCOL, "too many invalid frames"));
            }
        }
        self.write(socket, protocol::error_frame(&error, about)).await.err().flatten()
    }

    async fn typing(&self, target: &Target, started: bool) -> Result<(), Reply> {
        match target.receiver_type {
            ReceiverType::User => {
                let receiver = Uid::parse(&target.receiver).map_err(|_| invalid_receiver(target))?;
                if receiver == self.uid {
                    return Err(Reply::error("ERR_RECEIVER_INVALID", "typing to yourself is not sent"));
                }
            }
            ReceiverType::Group => {
                let guid = Guid::parse(&target.receiver).map_err(|_| invalid_receiver(target))?;
                if !self.shared.hub.is_member(&self.uid, &guid) {
                    return Err(not_a_member(&self.uid, &guid));
                }
            }
        }
        let announce = if started {
            self.shared.typing.start(&self.uid, self.id, target, Instant::now())
        } else {
            self.shared.typing.end(&self.uid, target)
        };
        if announce {
            self.shared.announce_typing(&self.uid, target, started).await;
        }
        Ok(())
    }

    async fn mark(&self, mark: &Mark, kind: ReceiptKind) -> Result<String, Reply> {
        let target = Target { receiver: mark.receiver.clone(), receiver_type: mark.receiver_type };
        let conversation = match mark.receiver_type {
            ReceiverType::User => {
                let other = Uid::parse(&mark.receiver).map_err(|_| invalid_receiver(&target))?;
                ConversationId::direct(&self.uid, &other)
            }
            ReceiverType::Group => {
                let guid = Guid::parse(&mark.receiver).map_err(|_| invalid_receiver(&target))?;
                if self.shared.store.member(&guid, &self.uid).await.map_err(Reply::store)?.is_none() {
                    return Err(not_a_member(&self.uid, &guid));
                }
                ConversationId::group(&guid)
            }
        };
        let now = comet_model::now_millis();
        let receipt = match self
            .shared
            .store
            .mark_conversation(&conversation, &self.uid, kind, mark.message_id.as_deref(), now)
            .await
        {
            Ok(receipt) => receipt,
            Err(StoreError::NotFound("conversation")) => {
                return Err(Reply::error(
                    "ERR_CONVERSATION_NOT_FOUND",
                    format!("conversation `{conversation}` has no messages yet"),
                ));
            }
            Err(StoreError::Refused(_)) => {
                return Err(Reply::error(
                    "ERR_NOT_A_MEMBER",
                    format!("`{}` does not take part in `{conversation}`", self.uid),
                ));
            }
            Err(StoreError::NotFound(_)) => {
                return Err(Reply::error(
                    "ERR_MESSAGE_NOT_FOUND",
                    format!("messageId names no message of conversation `{conversation}`"),
                ));
            }
            Err(error) => return Err(Reply::store(error)),
        };
        Ok(protocol::server_frame(
            "mark.done",
            json!({
                "conversationId": receipt.conversation_id,
                "deliveredSeq": receipt.delivered_seq,
                "readSeq": receipt.read_seq,
                "lastSeq": receipt.last_seq,
            }),
        ))
    }

    async fn presence(&self, raw: &[String]) -> Result<String, Reply> {
        let uids: Vec<Uid> = raw
            .iter()
            .map(|uid| Uid::parse(uid).map_err(|_| Reply::error("ERR_UID_INVALID", format!("`{uid}` is not a uid"))))
            .collect::<Result<_, _>>()?;
        let hub = &self.shared.hub;
        let online = self.shared.cluster.online(&uids, |uid| hub.socket_count(uid) > 0).await.map_err(|error| {
            tracing::warn!(%error, "presence query failed");
            Reply::error("ERR_UNAVAILABLE", "presence is not available; retry")
        })?;
        let states: serde_json::Map<String, Value> = uids
            .iter()
            .zip(online)
            .map(|(uid, online)| (uid.to_string(), json!(if online { "online" } else { "offline" })))
            .collect();
        Ok(protocol::server_frame("presence.state", Value::Object(states)))
    }

    /// The conversation a resync cursor names, if this socket's user takes part in it (groups: by the
    /// authoritative store). `receiver` + `receiverType` name it exactly; a `conversationId` is a display id,
    /// resolved among the conversations the user takes part in, and refused when it could mean more than one.
    async fn resync_target(&self, cursor: &ResyncCursor) -> Result<Result<ConversationId, &'static str>, Reply> {
        let candidates = match (&cursor.conversation_id, &cursor.receiver, cursor.receiver_type) {
            (None, Some(receiver), Some(ReceiverType::User)) => match Uid::parse(receiver) {
                Ok(other) => vec![ConversationId::direct(&self.uid, &other)],
                Err(_) => Vec::new(),
            },
            (None, Some(receiver), Some(ReceiverType::Group)) => match Guid::parse(receiver) {
                Ok(guid) => vec![ConversationId::group(&guid)],
                Err(_) => Vec::new(),
            },
            (Some(display), None, None) => ConversationId::resolve_display(&self.uid, display),
            _ => {
                return Err(Reply::error(
                    "ERR_RESYNC_CURSOR_INVALID",
                    "name each conversation by conversationId, or by receiver and receiverType",
                ));
            }
        };
        let mut taking_part = Vec::with_capacity(candidates.len());
        for candidate in candidates {
            if self.shared.store.takes_part(&candidate, &self.uid).await.map_err(Reply::store)? {
                taking_part.push(candidate);
            }
        }
        Ok(match <[ConversationId; 1]>::try_from(taking_part) {
            Ok([conversation]) => Ok(conversation),
            Err(found) if found.is_empty() => Err("refused"),
            Err(_) => Err("ambiguous"),
        })
    }

    /// Sends `message.edited` / `message.deleted` for the messages at or below `last_seq` edited or deleted
    /// since `since`, oldest seq first; beyond the replay limit it sends none and says so.
    async fn replay_changes(
        &self,
        socket: &mut WebSocket,
        conversation: &ConversationId,
        last_seq: i64,
        since: i64,
    ) -> Result<Changes, Reply> {
        let limit = self.shared.config.resync_max_messages;
        let page = MessagePage { after_seq: None, before_seq: Some(last_seq.saturating_add(1)), limit: limit + 1 };
        let filter = MessageFilter { hide_deleted: false, updated_since: Some(since), parent_id: None };
        let found =
            self.shared.store.list_messages_filtered(conversation, &page, &filter).await.map_err(Reply::store)?;
        let changed: Vec<_> = found
            .into_iter()
            .filter(|message| {
                message.deleted_at.is_some_and(|at| at >= since) || message.edited_at.is_some_and(|at| at >= since)
            })
            .collect();
        if changed.len() > limit as usize {
            return Ok(Changes { sent: 0, too_far: true });
        }
        for message in &changed {
            let kind = if message.deleted_at.is_some() { "message.deleted" } else { "message.edited" };
            let data = serde_json::to_value(message).unwrap_or(Value::Null);
            self.write(socket, protocol::server_frame(kind, data)).await.map_err(Reply::Ending)?;
        }
        Ok(Changes { sent: changed.len(), too_far: false })
    }

    /// Replays, per conversation, the messages after the client's last seq, then answers `resync.done`.
    async fn resync(&mut self, socket: &mut WebSocket, cursors: &[ResyncCursor]) -> Result<String, Reply> {
        let config = &self.shared.config;
        if cursors.len() > config.resync_max_conversations {
            return Err(Reply::error(
                "ERR_RESYNC_TOO_MANY",
                format!("resync at most {} conversations per frame", config.resync_max_conversations),
            ));
        }
        let metrics = &self.shared.metrics;
        let mut outcomes = Vec::with_capacity(cursors.len());
        for cursor in cursors {
            let target = if cursor.last_seq < 0 { Err("refused") } else { self.resync_target(cursor).await? };
            let named = |conversation_id: &str| {
                let mut named = json!({ "conversationId": conversation_id });
                if let (Some(receiver), Some(receiver_type)) = (&cursor.receiver, cursor.receiver_type) {
                    named["receiver"] = json!(receiver);
                    named["receiverType"] = json!(receiver_type);
                }
                named
            };
            let outcome = match target {
                Err(status) => {
                    metrics.resync(ResyncOutcome::Refused, 0);
                    let mut outcome = named(cursor.conversation_id.as_deref().unwrap_or_default());
                    outcome["status"] = json!(status);
                    outcome
                }
                Ok(conversation) => {
                    let mut outcome = named(&conversation.display_id());
                    let page = MessagePage {
                        after_seq: Some(cursor.last_seq),
                        before_seq: None,
                        limit: config.resync_max_messages + 1,
                    };
                    let messages = self.shared.store.list_messages(&conversation, &page).await.map_err(Reply::store)?;
                    if messages.len() > config.resync_max_messages as usize {
                        metrics.resync(ResyncOutcome::TooFar, 0);
                        outcome["status"] = json!("too_far");
                        outcome["maxMessages"] = json!(config.resync_max_messages);
                    } else {
                        let mut high = cursor.last_seq;
                        for message in &messages {
                            high = high.max(message.seq);
                            let data = serde_json::to_value(message).unwrap_or(Value::Null);
                            self.write(socket, protocol::server_frame("message.new", data))
                                .await
                                .map_err(Reply::Ending)?;
                        }
                        let changes = match cursor.changes_since {
                            Some(since) => self.replay_changes(socket, &conversation, cursor.last_seq, since).await?,
                            None => Changes::default(),
                        };
                        // Keyed like live frames' order (the event key), so what was replayed is skipped live.
                        let entry = self
                            .replayed
                            .get_or_insert_with(Default::default)
                            .entry(Box::from(conversation.key()))
                            .or_insert(high);
                        *entry = (*entry).max(high);
                        metrics.resync(ResyncOutcome::Replayed, messages.len());
                        outcome["status"] = json!("replayed");
                        outcome["replayed"] = json!(messages.len());
                        outcome["lastSeq"] = json!(high);
                        outcome["changes"] = json!(changes.sent);
                        outcome["changesTooFar"] = json!(changes.too_far);
                    }
                    outcome
                }
            };
            outcomes.push(outcome);
        }
        Ok(protocol::server_frame("resync.done", json!({ "conversations": outcomes })))
    }
}

/// What a resync sent of the changes to messages the client already had.
#[derive(Debug, Default)]
struct Changes {
    sent: usize,
    /// More changed messages than the replay limit: none were sent; page with REST (`updatedAt`).
    too_far: bool,
}

fn kicked(kick: &AtomicU16) -> Ending {
    match kick.load(Ordering::Acquire) {
        0 => None,
        close::SLOW_CONSUMER => Some((close::SLOW_CONSUMER, "slow consumer")),
        close::AUTH_REVOKED => Some((close::AUTH_REVOKED, "signed out: token revoked or user deleted")),
        _ => Some((close::GOING_AWAY, "server closing")),
    }
}

/// How a client frame failed: an error frame to send, or the end of the session.
enum Reply {
    Error(FrameError),
    Ending(Ending),
}

impl Reply {
    fn error(code: &'static str, message: impl Into<String>) -> Reply {
        Reply::Error(FrameError::new(code, message))
    }

    fn store(error: StoreError) -> Reply {
        tracing::warn!(%error, "WebSocket request: the database failed");
        Reply::error("ERR_UNAVAILABLE", "the database did not answer; retry")
    }
}

fn invalid_receiver(target: &Target) -> Reply {
    Reply::error(
        "ERR_RECEIVER_INVALID",
        format!("`{}` is not a valid {}", target.receiver, target.receiver_type.as_str()),
    )
}

fn not_a_member(uid: &Uid, guid: &Guid) -> Reply {
    Reply::error("ERR_NOT_A_MEMBER", format!("`{uid}` is not a member of group `{guid}`"))
}
