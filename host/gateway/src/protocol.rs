//! The client JSON of version 1, as PROTOCOL.md describes it: the bodies of
//! REST requests and the WebSocket messages both ways. Only the gateway
//! knows these shapes; they map onto the workers' requests in
//! [`super::backend`].

use dashdice_proto::ErrorCode;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::error::ApiError;
use dashdice_proto::bus::ErrorBody;
use dashdice_proto::catalog::ModeListing;
use dashdice_proto::matches::{ActionReply, PlayerAction, SequencedEvent, Snapshot};
use dashdice_proto::queue::{
    Connection, Invite, JoinRequest, Notice, Opponent, QueueKind, RematchStatus, Status,
};

/// The protocol version every WebSocket message carries.
pub const VERSION: u32 = 1;

/// Joining a queue: `POST /api/v1/queue/join`'s body and the WebSocket
/// `join` message's fields.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinFields {
    pub mode: String,
    #[serde(default)]
    pub kind: Option<QueueKind>,
    #[serde(default)]
    pub region: Option<String>,
    #[serde(default)]
    pub latency_ms: BTreeMap<String, u32>,
    #[serde(default)]
    pub connection: Connection,
    #[serde(default)]
    pub opponent: Opponent,
}

impl JoinFields {
    /// The matchmaker's request, for the signed-in `player`. Ratings are
    /// never the client's to choose.
    pub fn request(self, player: &str, default_region: &str) -> JoinRequest {
        JoinRequest {
            player: player.to_owned(),
            mode: self.mode,
            kind: self.kind.unwrap_or(QueueKind::Quick),
            region: self.region.unwrap_or_else(|| default_region.to_owned()),
            latency_ms: self.latency_ms,
            connection: self.connection,
            rating: None,
            opponent: self.opponent,
        }
    }
}

/// `POST /api/v1/matches`: make an invite code.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InviteFields {
    pub mode: String,
}

/// `POST /api/v1/matches/join`: join by code.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeFields {
    pub code: String,
}

/// `POST /api/v1/matches/{id}/{action}` (the body is optional; `name` and
/// `payload` are for `custom` actions only).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActFields {
    #[serde(default)]
    pub request_id: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub payload: Option<String>,
}

/// An action a client may name. Custom actions of designer modes travel as
/// `custom` with a `name`.
pub fn player_action(
    action: &str,
    name: Option<String>,
    payload: Option<String>,
) -> Result<PlayerAction, ApiError> {
    Ok(match (action, name) {
        ("roll", None) => PlayerAction::Roll,
        ("bank", None) => PlayerAction::Bank,
        ("forfeit", None) => PlayerAction::Forfeit,
        ("custom", Some(name)) => PlayerAction::Custom {
            name,
            payload: payload.unwrap_or_default(),
        },
        ("custom", None) => return Err(ApiError::bad_request("a custom action needs a `name`")),
        (other, None) => {
            return Err(ApiError::new(
                ErrorCode::UnknownAction,
                format!("unknown action {other:?}: expected roll, bank, forfeit or custom"),
            ));
        }
        (_, Some(_)) => return Err(ApiError::bad_request("only custom actions take a `name`")),
    })
}

/// A request id for a client that sent none (so its retries are not
/// idempotent: PROTOCOL.md says to send one).
pub fn fresh_request_id() -> Result<String, ApiError> {
    let id = dashdice_proto::ids::random_hex::<12>()
        .map_err(|e| ApiError::internal(format!("no randomness for a request id: {e}")))?;
    Ok(format!("gw-{id}"))
}

/// `GET /api/v1/modes`: `{"modes": [{"id", "name", "version", "description",
/// "min_players", "max_players", "turn_time_limit_ms", "actions": [{"name",
/// "description", "needs_dice"}], "hash", "builtin"}]}`.
#[derive(Clone, Debug, Serialize)]
pub struct ModesReply {
    pub modes: Vec<ModeListing>,
}

/// A WebSocket message from the client (without `v` and `id`).
#[derive(Clone, Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    Hello {
        token: String,
    },
    Join(JoinFields),
    Leave,
    Status,
    Invite {
        mode: String,
    },
    JoinCode {
        code: String,
    },
    Act {
        match_id: String,
        action: String,
        #[serde(default)]
        request_id: Option<String>,
        #[serde(default)]
        name: Option<String>,
        #[serde(default)]
        payload: Option<String>,
    },
    Rematch {
        match_id: String,
    },
    Subscribe {
        match_id: String,
        #[serde(default)]
        since: u64,
    },
    Unsubscribe {
        match_id: String,
    },
    /// The playable modes (as `GET /api/v1/modes`).
    Modes,
    Ping,
}

/// A client message as read: its `id` (echoed in the answer) and what it
/// asks. `Err` carries the id, if one could be read, and the refusal.
pub fn read_client_message(
    text: &str,
) -> Result<(Option<String>, ClientMessage), (Option<String>, ApiError)> {
    let mut object: Map<String, Value> = match serde_json::from_str(text) {
        Ok(Value::Object(object)) => object,
        Ok(_) => {
            return Err((
                None,
                ApiError::new(ErrorCode::MalformedJson, "a message is one JSON object"),
            ));
        }
        Err(e) => {
            return Err((
                None,
                ApiError::new(ErrorCode::MalformedJson, format!("not valid JSON: {e}")),
            ));
        }
    };
    let id = match object.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.len() <= 64 => Some(id),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => {
            return Err((
                None,
                ApiError::bad_request("`id` is a string of up to 64 characters, or a number"),
            ));
        }
    };
    match object.remove("v") {
        None => {}
        Some(Value::Number(n)) if n.as_u64() == Some(u64::from(VERSION)) => {}
        Some(other) => {
            return Err((
                id,
                ApiError::bad_request(format!(
                    "protocol version {other} is not served here; this gateway speaks v{VERSION}"
                )),
            ));
        }
    }
    match serde_json::from_value::<ClientMessage>(Value::Object(object)) {
        Ok(message) => Ok((id, message)),
        Err(e) => Err((
            id,
            ApiError::bad_request(format!("not a valid message: {e}")),
        )),
    }
}

/// A WebSocket message to the client (without `v`, which [`encode`] adds).
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    Welcome {
        user_id: String,
        max_message_bytes: usize,
        messages_per_second: u32,
    },
    Queue {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        status: Status,
    },
    Invite {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        invite: Invite,
    },
    Acted {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        reply: Box<ActionReply>,
    },
    Rematch {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        status: RematchStatus,
    },
    Match {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(rename = "match")]
        snapshot: Box<Snapshot>,
    },
    Event {
        match_id: String,
        event: SequencedEvent,
    },
    Unsubscribed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        match_id: String,
    },
    Pong {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        server_ms: u64,
    },
    Modes {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        modes: Vec<ModeListing>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        error: ErrorBody,
    },
}

#[derive(Serialize)]
struct Versioned<'a, T> {
    v: u32,
    #[serde(flatten)]
    message: &'a T,
}

/// A server message as sent: `{"v": 1, "type": ..., ...}`.
pub fn encode(message: &ServerMessage) -> String {
    encode_versioned(message)
}

/// A notice from the matchmaker, forwarded as is (it already has `type`).
pub fn encode_notice(notice: &Notice) -> String {
    encode_versioned(notice)
}

fn encode_versioned<T: Serialize>(message: &T) -> String {
    serde_json::to_string(&Versioned {
        v: VERSION,
        message,
    })
    .unwrap_or_else(|e| {
        format!(
            r#"{{"v":{VERSION},"type":"error","error":{{"code":"internal","message":"encoding a message: {e}"}}}}"#
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_read_with_id_and_version() {
        let (id, message) = read_client_message(
            r#"{"v":1,"type":"act","id":"6","match_id":"m","action":"roll","request_id":"r1"}"#,
        )
        .expect("valid");
        assert_eq!(id.as_deref(), Some("6"));
        assert!(matches!(message, ClientMessage::Act { ref action, .. } if action == "roll"));
        let (_, join) = read_client_message(r#"{"type":"join","mode":"classic","opponent":"bot"}"#)
            .expect("valid");
        assert!(matches!(join, ClientMessage::Join(ref f) if f.opponent == Opponent::Bot));
    }

    #[test]
    fn bad_messages_are_refused_with_a_reason() {
        let (id, e) = read_client_message("{nope").expect_err("not JSON");
        assert_eq!((id, e.code.as_str()), (None, "malformed_json"));
        let (id, e) = read_client_message(
            r#"{"id":"7","type":"act","match_id":"m","action":"roll","dice":[6,6]}"#,
        )
        .expect_err("clients never send dice");
        assert_eq!((id.as_deref(), e.code.as_str()), (Some("7"), "bad_request"));
        let (_, e) = read_client_message(r#"{"v":2,"type":"ping"}"#).expect_err("v2");
        assert_eq!(e.code, "bad_request");
        let (_, e) = read_client_message(r#"{"type":"teleport"}"#).expect_err("unknown");
        assert_eq!(e.code, "bad_request");
    }

    #[test]
    fn server_messages_carry_the_version() {
        let text = encode(&ServerMessage::Pong {
            id: Some("1".into()),
            server_ms: 5,
        });
        assert_eq!(text, r#"{"v":1,"type":"pong","id":"1","server_ms":5}"#);
        let notice = Notice::RematchOffered {
            match_id: "m".into(),
            from: "bob".into(),
            expires_ms: 9,
        };
        let value: Value = serde_json::from_str(&encode_notice(&notice)).expect("json");
        assert_eq!(value["v"], 1);
        assert_eq!(value["type"], "rematch_offered");
    }
}
