//! Presence: who is online, how, and doing what.
//!
//! The gateway reports its sessions (a connection opened, a batch of
//! heartbeats, the client's visibility hint, a connection closed) and what
//! its players start doing (queueing, hosting, leaving) to the presence role
//! on `dd.presence.*` (see [`bus`](crate::bus)). The presence role keeps one
//! entry per user in Redis with an expiry per connection, and publishes a
//! user's [`Presence`] on [`presence_changes`](crate::bus::presence_changes)
//! only when what others see of it changed (status, activity, match,
//! region). Subscribers order what they receive by [`Presence::version`].
//!
//! Nothing here decides anything; these are the shapes.

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::bus::{self, Answer};
use crate::queue::QueueKind;

/// How long a connection stays live without a heartbeat.
pub const CONNECTION_TTL_MS: u64 = 15_000;
/// How often a gateway sends its connections' heartbeats (a third of the
/// TTL, so two may be lost before a live connection expires).
pub const HEARTBEAT_EVERY_MS: u64 = 5_000;
/// The most connections one heartbeat message carries: the project's NATS
/// allows 64 KiB a message, and a connection is under 120 bytes of JSON.
/// A gateway sends its batches one after another (all at once, 10,000
/// connections keep Redis busy for ~0.4 s).
pub const MAX_HEARTBEAT_BATCH: usize = 250;
/// How often the presence role sweeps expired connections.
pub const SWEEP_EVERY_MS: u64 = 1_000;
/// The stated bound: a user whose every gateway died is published offline
/// at most this long after the last heartbeat that reached the presence
/// role (TTL + one sweep + the time to publish, rounded up).
pub const OFFLINE_WITHIN_MS: u64 = 20_000;
/// How long a queued (or hosting) player may have no live connection
/// before their ticket (or invite code) is given up.
pub const QUEUE_GRACE_MS: u64 = 10_000;
/// The most users one WebSocket session may follow at once.
pub const MAX_FOLLOWED: usize = 200;
/// The most user ids one presence query may name.
pub const MAX_QUERY: usize = 200;
/// The most connections one user may have at once (tabs and devices);
/// a further one is still served, but replaces the oldest in presence.
pub const MAX_CONNECTIONS: usize = 16;

/// Whether a user is there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PresenceStatus {
    /// At least one connection whose page is visible.
    Online,
    /// Connected, but every page is hidden (another tab, a locked phone).
    Away,
    /// No live connection.
    #[default]
    Offline,
}

impl PresenceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PresenceStatus::Online => "online",
            PresenceStatus::Away => "away",
            PresenceStatus::Offline => "offline",
        }
    }
}

/// What a user is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activity {
    #[default]
    Menu,
    /// Queued, or hosting an invite code.
    Matchmaking,
    InMatch,
}

impl Activity {
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::Menu => "menu",
            Activity::Matchmaking => "matchmaking",
            Activity::InMatch => "in_match",
        }
    }
}

/// A user's presence, as published and as answered.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Presence {
    pub uid: String,
    pub status: PresenceStatus,
    pub activity: Activity,
    /// The match the user plays (`in_match` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub match_id: Option<String>,
    /// The region of the user's first live connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// When a connection of the user was last heard from (ms since the
    /// epoch; 0 = never).
    pub last_seen_ms: u64,
    /// Live connections (tabs and devices).
    pub connections: u32,
    /// Grows by one with every change others can see; a subscriber keeps
    /// the highest it has seen and drops older ones.
    pub version: u64,
    /// When this version was made (ms since the epoch), for measuring
    /// publish-to-delivery.
    #[serde(default)]
    pub changed_ms: u64,
}

/// A request to the presence role, decoded by the endpoint it came on.
#[derive(Clone, Debug)]
pub enum PresenceRequest {
    Connect(Connect),
    Heartbeat(Heartbeat),
    Visibility(Visibility),
    Disconnect(Disconnect),
    Activity(SetActivity),
    Query(PresenceQuery),
    Lobby(LobbyRequest),
}

impl PresenceRequest {
    /// Decodes `payload` as the request `endpoint` takes; the refusal to
    /// send otherwise (`too_large`, `bad_request`, `unknown_endpoint`).
    pub fn decode(endpoint: &str, payload: &[u8], max_bytes: usize) -> Result<Self, Answer> {
        use crate::bus::decode_request as decode;
        use crate::bus::presence_endpoint as e;
        let max = max_bytes;
        Ok(match endpoint {
            e::CONNECT => PresenceRequest::Connect(decode(payload, max)?),
            e::HEARTBEAT => PresenceRequest::Heartbeat(decode(payload, max)?),
            e::VISIBILITY => PresenceRequest::Visibility(decode(payload, max)?),
            e::DISCONNECT => PresenceRequest::Disconnect(decode(payload, max)?),
            e::ACTIVITY => PresenceRequest::Activity(decode(payload, max)?),
            e::QUERY => PresenceRequest::Query(decode(payload, max)?),
            e::LOBBY => PresenceRequest::Lobby(decode(payload, max)?),
            other => return Err(bus::refuse(ErrorCode::UnknownEndpoint, other)),
        })
    }
}

/// A connection opened (`dd.presence.connect`) → the user's [`Presence`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connect {
    pub uid: String,
    /// The connection's id, unique across gateways (the gateway makes it).
    pub conn: String,
    pub region: String,
    /// The page starts hidden.
    #[serde(default)]
    pub away: bool,
}

/// One gateway's live connections, refreshed (`dd.presence.heartbeat`)
/// every [`HEARTBEAT_EVERY_MS`] → [`HeartbeatReply`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Heartbeat {
    pub conns: Vec<LiveConnection>,
}

/// A connection in a [`Heartbeat`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveConnection {
    pub uid: String,
    pub conn: String,
    pub region: String,
    #[serde(default)]
    pub away: bool,
}

/// What a heartbeat found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatReply {
    /// Connections refreshed.
    pub refreshed: u32,
    /// Connections presence had lost (expired while a gateway was cut off)
    /// and has taken back.
    pub restored: u32,
}

/// The page of a connection was hidden or shown (`dd.presence.visibility`)
/// → the user's [`Presence`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Visibility {
    pub uid: String,
    pub conn: String,
    pub away: bool,
}

/// A connection closed (`dd.presence.disconnect`) → the user's [`Presence`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Disconnect {
    pub uid: String,
    pub conn: String,
}

/// A user started doing something else (`dd.presence.activity`) → the
/// user's [`Presence`]. The gateway sends it when a join, an invite or a
/// leave succeeds; the presence role itself follows match found and match
/// ended.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetActivity {
    pub uid: String,
    pub activity: Activity,
    #[serde(default)]
    pub match_id: Option<String>,
}

/// The presence of some users (`dd.presence.query`) → `[Presence]`, in the
/// order asked. The caller has checked that the asker may see them.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceQuery {
    pub uids: Vec<String>,
}

/// The lobby's figures (`dd.presence.lobby`, `{}`) → [`Lobby`].
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LobbyRequest {}

/// The lobby's figures: who is online where, how long the queues are, and
/// how long players recently waited for a match.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Lobby {
    pub regions: Vec<RegionFigures>,
    pub queues: Vec<QueueFigures>,
    /// When these were read (ms since the epoch).
    pub at_ms: u64,
}

/// Online users in one region.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegionFigures {
    pub region: String,
    /// Users online or away whose first connection is in this region.
    pub online: u64,
}

/// One queue's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QueueFigures {
    pub mode: String,
    pub kind: QueueKind,
    /// Tickets waiting now.
    pub waiting: u64,
    /// The median wait of the queue's recent matches (ms); `None` when no
    /// match was made from it recently.
    pub median_wait_ms: Option<u64>,
    /// How many recent matches that median is of.
    pub recent_matches: u32,
}

/// What a match's other players are told when a player's last connection
/// closes or the first one opens again (on
/// [`match_presence`](crate::bus::match_presence)).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayerConnection {
    pub match_id: String,
    pub player: String,
    pub connected: bool,
    /// Whose turn it is, if the match says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn: Option<String>,
    /// What the turn timer leaves of the current turn, ms (`None` when the
    /// match has no timer running, or could not be read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub turn_ms_left: Option<u64>,
    pub at_ms: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presence_keeps_its_wire_shape() {
        let p = Presence {
            uid: "alice".into(),
            status: PresenceStatus::Away,
            activity: Activity::InMatch,
            match_id: Some("m1".into()),
            region: Some("eu".into()),
            last_seen_ms: 5,
            connections: 2,
            version: 7,
            changed_ms: 6,
        };
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            serde_json::json!({"uid": "alice", "status": "away", "activity": "in_match",
                "match_id": "m1", "region": "eu", "last_seen_ms": 5, "connections": 2,
                "version": 7, "changed_ms": 6})
        );
    }

    #[test]
    fn requests_decode_by_endpoint_and_refuse_strangers() {
        let r =
            PresenceRequest::decode("connect", br#"{"uid":"a","conn":"c1","region":"eu"}"#, 1024);
        assert!(matches!(r, Ok(PresenceRequest::Connect(c)) if !c.away));
        assert!(PresenceRequest::decode("nope", b"{}", 1024).is_err());
        assert!(PresenceRequest::decode("connect", br#"{"uid":"a"}"#, 1024).is_err());
    }
}
