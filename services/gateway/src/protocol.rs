//! The wire protocol, version 1 (docs/protocol.md): JSON text frames `{"v":1,"type":…,"data":…}` from the
//! server, `{"type":…, …fields}` from the client, and the close codes the gateway ends a socket with.

use comet_model::{Event, EventType, ReceiverType};
use serde::Deserialize;
use serde_json::{Value, json};

/// The protocol version every server frame carries in `v`.
pub const VERSION: u32 = 1;
/// The WebSocket subprotocol the gateway selects when the client offers it.
pub const SUBPROTOCOL: &str = "comet.v1";
/// A browser, which cannot set headers on a WebSocket, sends its token as a second subprotocol with this prefix.
pub const TOKEN_SUBPROTOCOL_PREFIX: &str = "authtoken.";

/// Close codes (docs/protocol.md). 1000–1015 are RFC 6455's; 4000–4999 are the application's.
pub mod close {
    /// The server is shutting down or draining: reconnect (to another node) and resync.
    pub const GOING_AWAY: u16 = 1001;
    /// A frame larger than the limit.
    pub const TOO_BIG: u16 = 1009;
    /// The user was deleted or its token revoked.
    pub const AUTH_REVOKED: u16 = 4001;
    /// No frame (not even a pong) arrived within the idle timeout.
    pub const IDLE_TIMEOUT: u16 = 4002;
    /// Too many invalid frames in a row.
    pub const PROTOCOL: u16 = 4003;
    /// The client read too slowly: its send queue filled up.
    pub const SLOW_CONSUMER: u16 = 4008;
    /// The user already holds the most sockets allowed on this node (lost a race at the handshake).
    pub const TOO_MANY_SOCKETS: u16 = 4009;
}

/// One conversation's position in a resync request: the last seq the client holds. The conversation is named
/// by `receiver` and `receiverType` (exact), or by its `conversationId` (a display id, which may be ambiguous:
/// the gateway then answers `ambiguous`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ResyncCursor {
    #[serde(default)]
    pub conversation_id: Option<String>,
    #[serde(default)]
    pub receiver: Option<String>,
    #[serde(default)]
    pub receiver_type: Option<ReceiverType>,
    pub last_seq: i64,
    /// When the client last synced this conversation (ms): edits and deletes since then, of messages at or
    /// below `last_seq`, are replayed too.
    #[serde(default)]
    pub changes_since: Option<i64>,
}

/// Where a typing indicator or a receipt is aimed: a user (direct conversation) or a group.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Target {
    pub receiver: String,
    pub receiver_type: ReceiverType,
}

/// A receipt mark: the target conversation and, optionally, the message it reaches (the newest otherwise).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Mark {
    pub receiver: String,
    pub receiver_type: ReceiverType,
    #[serde(default)]
    pub message_id: Option<String>,
}

/// Every frame a client may send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientFrame {
    Ping(Option<Value>),
    TypingStart(Target),
    TypingEnd(Target),
    MarkDelivered(Mark),
    MarkRead(Mark),
    Resync(Vec<ResyncCursor>),
    /// Which of these users are online now (at most [`MAX_PRESENCE_QUERY`]).
    PresenceQuery(Vec<String>),
}

/// Most uids one `presence.query` may ask about.
pub const MAX_PRESENCE_QUERY: usize = 100;

impl ClientFrame {
    /// The frame's `type`, for the `about` of an error answering it.
    pub fn kind(&self) -> &'static str {
        match self {
            ClientFrame::Ping(_) => "ping",
            ClientFrame::TypingStart(_) => "typing.start",
            ClientFrame::TypingEnd(_) => "typing.end",
            ClientFrame::MarkDelivered(_) => "mark.delivered",
            ClientFrame::MarkRead(_) => "mark.read",
            ClientFrame::Resync(_) => "resync",
            ClientFrame::PresenceQuery(_) => "presence.query",
        }
    }
}

/// Why a client frame was refused: an `error` frame carries `code` and `message`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameError {
    pub code: &'static str,
    pub message: String,
    /// The client frame type it answers, when the frame's `type` was read (null only when it could not be).
    pub about: Option<&'static str>,
}

impl FrameError {
    pub fn new(code: &'static str, message: impl Into<String>) -> FrameError {
        FrameError { code, message: message.into(), about: None }
    }

    /// The same error, answering a frame of type `about`.
    pub fn about(self, about: Option<&'static str>) -> FrameError {
        FrameError { about, ..self }
    }
}

/// The client frame types, as they appear in `type`.
pub const CLIENT_TYPES: [&str; 7] =
    ["ping", "typing.start", "typing.end", "mark.delivered", "mark.read", "resync", "presence.query"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PingBody {
    #[serde(rename = "type")]
    _type: String,
    #[serde(default)]
    id: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TargetBody {
    #[serde(rename = "type")]
    _type: String,
    receiver: String,
    receiver_type: ReceiverType,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct MarkBody {
    #[serde(rename = "type")]
    _type: String,
    receiver: String,
    receiver_type: ReceiverType,
    #[serde(default)]
    message_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResyncBody {
    #[serde(rename = "type")]
    _type: String,
    conversations: Vec<ResyncCursor>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PresenceQueryBody {
    #[serde(rename = "type")]
    _type: String,
    uids: Vec<String>,
}

fn fields<T: for<'de> Deserialize<'de>>(value: Value, kind: &str) -> Result<T, FrameError> {
    serde_json::from_value(value).map_err(|error| {
        FrameError::new("ERR_FRAME_INVALID", format!("`{kind}` frame: {error} (see docs/protocol.md)"))
    })
}

/// Reads one client text frame. An error about a frame whose `type` is a client type says so in `about`.
pub fn parse_client(text: &str) -> Result<ClientFrame, FrameError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|error| FrameError::new("ERR_FRAME_INVALID", format!("not a JSON frame: {error}")))?;
    let about = value
        .get("type")
        .and_then(Value::as_str)
        .and_then(|kind| CLIENT_TYPES.iter().find(|known| **known == kind))
        .copied();
    parse_value(value).map_err(|error| error.about(about))
}

fn parse_value(value: Value) -> Result<ClientFrame, FrameError> {
    let kind = match value.get("type") {
        Some(Value::String(kind)) => kind.clone(),
        _ => return Err(FrameError::new("ERR_FRAME_INVALID", "a frame is a JSON object with a string `type`")),
    };
    let frame = match kind.as_str() {
        "ping" => ClientFrame::Ping(fields::<PingBody>(value, &kind)?.id),
        "typing.start" | "typing.end" => {
            let body: TargetBody = fields(value, &kind)?;
            let target = Target { receiver: body.receiver, receiver_type: body.receiver_type };
            if kind == "typing.start" { ClientFrame::TypingStart(target) } else { ClientFrame::TypingEnd(target) }
        }
        "mark.delivered" | "mark.read" => {
            let body: MarkBody = fields(value, &kind)?;
            let mark = Mark { receiver: body.receiver, receiver_type: body.receiver_type, message_id: body.message_id };
            if kind == "mark.read" { ClientFrame::MarkRead(mark) } else { ClientFrame::MarkDelivered(mark) }
        }
        "resync" => ClientFrame::Resync(fields::<ResyncBody>(value, &kind)?.conversations),
        "presence.query" => {
            let uids = fields::<PresenceQueryBody>(value, &kind)?.uids;
            if uids.len() > MAX_PRESENCE_QUERY {
                return Err(FrameError::new(
                    "ERR_FRAME_INVALID",
                    format!("`presence.query` asks about at most {MAX_PRESENCE_QUERY} uids"),
                ));
            }
            ClientFrame::PresenceQuery(uids)
        }
        _ => {
            return Err(FrameError::new(
                "ERR_FRAME_UNKNOWN_TYPE",
                format!("unknown frame type `{kind}`; the client types are {}", CLIENT_TYPES.join(", ")),
            ));
        }
    };
    Ok(frame)
}

/// A server frame's text.
pub fn server_frame(kind: &str, data: Value) -> String {
    json!({ "v": VERSION, "type": kind, "data": data }).to_string()
}

/// An `error` frame; `about` names the client frame type it answers, when known (the error's own, or `about`).
pub fn error_frame(error: &FrameError, about: Option<&str>) -> String {
    let about = error.about.or(about);
    server_frame("error", json!({ "code": error.code, "message": error.message, "about": about }))
}

/// The frame type a bus event is delivered as, or `None` for events clients do not see.
pub fn frame_type(event: EventType) -> Option<&'static str> {
    Some(match event {
        EventType::MessageSent => "message.new",
        EventType::MessageEdited => "message.edited",
        EventType::MessageDeleted => "message.deleted",
        EventType::ReactionAdded => "reaction.added",
        EventType::ReactionRemoved => "reaction.removed",
        EventType::ReceiptDelivered => "receipt.delivered",
        EventType::ReceiptRead => "receipt.read",
        EventType::GroupMemberAdded => "group.member_added",
        EventType::GroupMemberJoined => "group.member_joined",
        EventType::GroupMemberKicked => "group.member_kicked",
        EventType::GroupMemberLeft => "group.member_left",
        EventType::GroupMemberBanned => "group.member_banned",
        EventType::GroupMemberScopeChanged => "group.member_scope_changed",
        EventType::GroupDeleted => "group.deleted",
        EventType::MessagePending => "message.pending",
        EventType::MessageModerated => "message.moderated",
        EventType::UserCreated
        | EventType::UserUpdated
        | EventType::UserDeleted
        | EventType::UserRestored
        | EventType::UserBlocked
        | EventType::UserUnblocked
        | EventType::UserAuthTokenRevoked
        | EventType::GroupCreated
        | EventType::GroupUpdated
        | EventType::GroupMemberUnbanned
        | EventType::WebhookDisabled
        | EventType::UserConnectionStatusChanged
        | EventType::GroupOwnerTransferred
        | EventType::WorkerReplay => return None,
    })
}

/// The frame an event is delivered as. A `message.moderated` frame (for the sender alone) says the message,
/// its status and the reason, not who decided.
pub fn event_frame(kind: &str, event: &Event) -> String {
    if event.event_type == EventType::MessageModerated {
        let field = |name: &str| event.data.get(name).cloned().unwrap_or(Value::Null);
        return server_frame(
            kind,
            json!({ "id": field("id"), "status": field("status"), "reason": field("reason"), "message": field("message") }),
        );
    }
    server_frame(kind, event.data.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse() {
        assert_eq!(parse_client(r#"{"type":"ping","id":7}"#), Ok(ClientFrame::Ping(Some(json!(7)))));
        assert_eq!(
            parse_client(r#"{"type":"typing.start","receiver":"bob","receiverType":"user"}"#),
            Ok(ClientFrame::TypingStart(Target { receiver: "bob".into(), receiver_type: ReceiverType::User }))
        );
        assert_eq!(
            parse_client(r#"{"type":"resync","conversations":[{"conversationId":"group_g","lastSeq":4}]}"#),
            Ok(ClientFrame::Resync(vec![ResyncCursor {
                conversation_id: Some("group_g".into()),
                receiver: None,
                receiver_type: None,
                last_seq: 4,
                changes_since: None
            }]))
        );
        assert_eq!(
            parse_client(r#"{"type":"mark.read","receiver":"g","receiverType":"group"}"#),
            Ok(ClientFrame::MarkRead(Mark {
                receiver: "g".into(),
                receiver_type: ReceiverType::Group,
                message_id: None
            }))
        );
    }

    #[test]
    fn bad_frames_name_the_problem() {
        let too_many = format!(r#"{{"type":"presence.query","uids":{}}}"#, json!(vec!["u"; MAX_PRESENCE_QUERY + 1]));
        // Issue #17: `about` names the frame's type whenever it was read; null only when it could not be.
        for (text, code, about) in [
            ("not json", "ERR_FRAME_INVALID", None),
            ("[1,2]", "ERR_FRAME_INVALID", None),
            (r#"{"type":7}"#, "ERR_FRAME_INVALID", None),
            (r#"{"type":"launch"}"#, "ERR_FRAME_UNKNOWN_TYPE", None),
            (r#"{"type":"typing.start","receiver":"bob"}"#, "ERR_FRAME_INVALID", Some("typing.start")),
            (
                r#"{"type":"typing.start","receiver":"bob","receiverType":"planet"}"#,
                "ERR_FRAME_INVALID",
                Some("typing.start"),
            ),
            (r#"{"type":"ping","extra":1}"#, "ERR_FRAME_INVALID", Some("ping")),
            (
                r#"{"type":"resync","conversations":[{"conversationId":"x","lastSeq":"a"}]}"#,
                "ERR_FRAME_INVALID",
                Some("resync"),
            ),
            (too_many.as_str(), "ERR_FRAME_INVALID", Some("presence.query")),
        ] {
            let error = parse_client(text).expect_err(text);
            assert_eq!((error.code, error.about), (code, about), "{text}: {}", error.message);
            let frame: Value = serde_json::from_str(&error_frame(&error, None)).expect("JSON");
            assert_eq!(frame["data"]["about"], json!(about), "{text}");
        }
    }

    #[test]
    fn every_client_visible_event_has_a_frame_type() {
        assert_eq!(frame_type(EventType::MessageSent), Some("message.new"));
        assert_eq!(frame_type(EventType::UserCreated), None);
    }
}
