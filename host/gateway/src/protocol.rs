//! The client JSON of version 1, as PROTOCOL.md describes it: the bodies of
//! REST requests and the WebSocket messages both ways. Only the gateway
//! knows these shapes; they map onto the workers' requests in
//! [`super::backend`].

use dashdice_proto::ErrorCode;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::social::FriendEntry;
use dashdice_proto::friends::FriendLink;
use dashdice_proto::presence::{Lobby, PlayerConnection, Presence};
use serde_json::{Map, Value};

use super::auth::valid_user_id;
use super::error::ApiError;
use dashdice_proto::archive::{
    ArchivedMatch, DEFAULT_PAGE, HistoryPage, HistoryRequest, Leaderboard, LeaderboardRequest,
    MAX_PAGE, Profile, RenameRequest, display_name_problem,
};
use dashdice_proto::bus::ErrorBody;
use dashdice_proto::catalog::ModeListing;
use dashdice_proto::matches::{ActionReply, PlayerAction, SequencedEvent, Snapshot};
use dashdice_proto::notify::InboxPage;
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

/// `PUT /api/v1/users/me`'s body and the WebSocket `rename` message's
/// fields: `{"display_name": "..."}` and nothing else.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameFields {
    pub display_name: String,
}

impl RenameFields {
    /// The archive's request, for the signed-in `caller`; a name the archive
    /// would refuse is refused here first (`bad_request`).
    pub fn request(self, caller: &str) -> Result<RenameRequest, ApiError> {
        if let Some(problem) = display_name_problem(&self.display_name) {
            return Err(ApiError::bad_request(problem));
        }
        Ok(RenameRequest {
            uid: caller.to_owned(),
            display_name: self.display_name,
        })
    }
}

/// The player a request names: `me`, or none, is the caller; anyone else
/// by their user id (`bad_request` if it is not one).
pub fn player_named(uid: Option<&str>, caller: &str) -> Result<String, ApiError> {
    match uid {
        None | Some("me") => Ok(caller.to_owned()),
        Some(uid) if valid_user_id(uid) => Ok(uid.to_owned()),
        Some(_) => Err(ApiError::bad_request(
            "not a user id: user ids are 1 to 64 letters, digits, `-` or `_` (or `me`)",
        )),
    }
}

/// Renaming the player `uid` names: only the caller themselves
/// (`forbidden` otherwise).
pub fn renaming_self(uid: &str, caller: &str) -> Result<(), ApiError> {
    if player_named(Some(uid), caller)? == caller {
        Ok(())
    } else {
        Err(ApiError::new(
            ErrorCode::Forbidden,
            "you may only rename yourself",
        ))
    }
}

fn bad_limit(got: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(format!(
        "`limit` is a whole number from 1 to {MAX_PAGE} (default {DEFAULT_PAGE}); got {got}"
    ))
}

/// A page size as asked: none (the archive's default) or 1 to [`MAX_PAGE`].
pub fn page_limit(limit: Option<u32>) -> Result<Option<u32>, ApiError> {
    match limit {
        Some(n) if n == 0 || n > MAX_PAGE => Err(bad_limit(n)),
        limit => Ok(limit),
    }
}

/// A page size from a query string (`?limit=20`).
pub fn parse_page_limit(text: Option<&str>) -> Result<Option<u32>, ApiError> {
    match text {
        None => Ok(None),
        Some(text) => match text.parse::<u32>() {
            Ok(n) => page_limit(Some(n)),
            Err(_) => Err(bad_limit(format_args!("{text:?}"))),
        },
    }
}

/// Whether a leaderboard is asked around the caller (`?around=me`): only
/// `me` or nothing is accepted.
pub fn around_me(around: Option<&str>) -> Result<bool, ApiError> {
    match around {
        None => Ok(false),
        Some("me") => Ok(true),
        Some(_) => Err(ApiError::bad_request(
            "`around` is `me` (the page around your own rank) or absent (the top)",
        )),
    }
}

/// A page of `uid`'s history (validated: a user id, a page size).
pub fn history_request(
    uid: Option<&str>,
    caller: &str,
    limit: Option<u32>,
    cursor: Option<String>,
) -> Result<HistoryRequest, ApiError> {
    Ok(HistoryRequest {
        uid: player_named(uid, caller)?,
        limit: page_limit(limit)?,
        cursor,
    })
}

/// A leaderboard page of `mode`: the top, or around the caller.
pub fn leaderboard_request(
    mode: String,
    limit: Option<u32>,
    around_me: bool,
    caller: &str,
) -> Result<LeaderboardRequest, ApiError> {
    Ok(LeaderboardRequest {
        mode,
        limit: page_limit(limit)?,
        around: around_me.then(|| caller.to_owned()),
    })
}

/// `GET /api/v1/users/{uid}/matches?limit=N&cursor=C`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryQuery {
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub cursor: Option<String>,
}

impl HistoryQuery {
    pub fn request(self, uid: &str, caller: &str) -> Result<HistoryRequest, ApiError> {
        let limit = parse_page_limit(self.limit.as_deref())?;
        history_request(Some(uid), caller, limit, self.cursor)
    }
}

/// `GET /api/v1/leaderboards/{mode}?limit=N&around=me`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardQuery {
    #[serde(default)]
    pub limit: Option<String>,
    #[serde(default)]
    pub around: Option<String>,
}

impl LeaderboardQuery {
    pub fn request(self, mode: String, caller: &str) -> Result<LeaderboardRequest, ApiError> {
        let limit = parse_page_limit(self.limit.as_deref())?;
        leaderboard_request(mode, limit, around_me(self.around.as_deref())?, caller)
    }
}

/// `GET /api/v1/matches/{id}`: the match while the host has it, then as the
/// archive keeps it.
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
pub enum MatchAnswer {
    Live(Box<Snapshot>),
    Archived(Box<Archived>),
}

/// An archived match as `GET /api/v1/matches/{id}` answers it: its fields,
/// and `"archived": true`.
#[derive(Clone, Debug, Serialize)]
pub struct Archived {
    #[serde(flatten)]
    pub archived_match: ArchivedMatch,
    pub archived: bool,
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
    /// A player's profile; without `uid`, the caller's.
    Profile {
        #[serde(default)]
        uid: Option<String>,
    },
    /// The caller renames themselves.
    Rename(RenameFields),
    /// A page of a player's history (without `uid`, the caller's).
    History {
        #[serde(default)]
        uid: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        cursor: Option<String>,
    },
    /// A mode's leaderboard this season: the top, or around the caller.
    Leaderboard {
        mode: String,
        #[serde(default)]
        limit: Option<u32>,
        #[serde(default)]
        around_me: bool,
    },
    /// A finished match as the archive keeps it.
    ArchivedMatch {
        match_id: String,
    },
    /// The page was hidden or shown (the browser's `visibilitychange`):
    /// every connection hidden is `away`.
    Visibility {
        hidden: bool,
    },
    /// The presence of some users, once.
    Presence {
        uids: Vec<String>,
    },
    /// Follow some users' presence: their presence now, then each change.
    FollowPresence {
        uids: Vec<String>,
    },
    UnfollowPresence {
        uids: Vec<String>,
    },
    /// The caller's friends (with presence), requests and blocks.
    Friends,
    /// Request, accept, decline, remove, block or unblock a player.
    Friend {
        verb: String,
        uid: String,
    },
    /// Invite a friend to a private match.
    InviteFriend {
        uid: String,
        mode: String,
    },
    /// Decline a friend's invite.
    DeclineInvite {
        code: String,
    },
    /// Online users per region, queue sizes, recent median waits.
    Lobby,
    /// A page of the caller's inbox, newest first (as `GET
    /// /api/v1/notifications`): older than `before` (a page's `next`).
    Notifications {
        #[serde(default)]
        before: Option<String>,
        #[serde(default)]
        limit: Option<u32>,
    },
    /// The caller's unread count. (Braced, as the other inbox messages
    /// without fields: serde refuses stray fields only in a struct variant,
    /// and `{"type":"unread","uid":"bob"}` should not look as if it asked
    /// about bob.)
    Unread {},
    /// Marks one of the caller's notifications read. (Named
    /// `notification_id`: `id` is the message's own.)
    NotificationRead {
        notification_id: String,
    },
    /// Marks every notification of the caller's read.
    NotificationsReadAll {},
    /// Deletes one of the caller's notifications.
    NotificationDelete {
        notification_id: String,
    },
    /// The caller's device (an FCM registration token) gets pushes.
    RegisterDevice {
        token: String,
        platform: String,
    },
    /// The caller's device gets no more pushes.
    UnregisterDevice {
        token: String,
    },
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
    /// The answer to `profile` and `rename`.
    Profile {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        profile: Box<Profile>,
    },
    History {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        uid: String,
        page: HistoryPage,
    },
    Leaderboard {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        leaderboard: Leaderboard,
    },
    ArchivedMatch {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(rename = "match")]
        archived: Box<ArchivedMatch>,
    },
    Error {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        error: ErrorBody,
    },
    /// A followed user's presence changed (or, with an `id`, the caller's
    /// own presence after `visibility`).
    Presence {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        presence: Presence,
    },
    /// The answer to `presence` and `follow_presence`.
    Presences {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        presences: Vec<Presence>,
    },
    PresenceUnfollowed {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        uids: Vec<String>,
    },
    Friends {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        links: Vec<FriendEntry>,
    },
    /// The answer to `friend`: the link as the caller now sees it, or
    /// `null` when none is left.
    Friend {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        uid: String,
        link: Option<FriendLink>,
    },
    Lobby {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        lobby: Lobby,
    },
    /// A player of a followed match lost, or got back, their connection.
    PlayerConnection(PlayerConnection),
    /// The answer to `notifications`: the page's fields (`notifications`,
    /// `unread`, `next`), as `GET /api/v1/notifications` answers them.
    Notifications {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        #[serde(flatten)]
        page: InboxPage,
    },
    /// The answer to `unread`, `notification_read`,
    /// `notifications_read_all` and `notification_delete`: the unread count
    /// after it. (Changes are also pushed as `inbox_changed`.)
    Unread {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        unread: u32,
    },
    /// The answer to `register_device` and `unregister_device`: how many
    /// devices the caller has registered now.
    Devices {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        devices: u32,
    },
}

/// `GET /friends`: the caller's list.
#[derive(Clone, Debug, Serialize)]
pub struct FriendsReply {
    pub links: Vec<FriendEntry>,
}

/// The answer to a friends verb over REST.
#[derive(Clone, Debug, Serialize)]
pub struct FriendReply {
    pub uid: String,
    pub link: Option<FriendLink>,
}

/// `GET /presence`: the presence asked for.
#[derive(Clone, Debug, Serialize)]
pub struct PresencesReply {
    pub presences: Vec<Presence>,
}

/// `GET /presence?uids=a,b`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceParams {
    pub uids: String,
}

impl PresenceParams {
    /// The ids, split at commas (blanks around them ignored).
    pub fn uids(&self) -> Vec<String> {
        self.uids
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_owned)
            .collect()
    }
}

/// `POST /invites`: whom to invite, to what.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectInviteFields {
    pub to: String,
    pub mode: String,
}

/// A REST body that must be one JSON object with exactly `T`'s fields:
/// anything else (an array, a string, a stray field, a wrong type) is
/// `malformed_json`. (serde would read a struct from an array of its
/// fields in order; a body is never one.)
pub fn read_object<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ApiError> {
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorCode::MalformedJson,
            "the body is one JSON object",
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| ApiError::new(ErrorCode::MalformedJson, format!("not a valid body: {e}")))
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
    fn presence_and_friends_messages_read_and_refuse_strays() {
        let (_, m) = read_client_message(r#"{"type":"visibility","hidden":true}"#).expect("valid");
        assert!(matches!(m, ClientMessage::Visibility { hidden: true }));
        let (_, m) =
            read_client_message(r#"{"type":"follow_presence","uids":["a","b"]}"#).expect("valid");
        assert!(matches!(m, ClientMessage::FollowPresence { ref uids } if uids.len() == 2));
        let (_, m) =
            read_client_message(r#"{"type":"friend","verb":"block","uid":"bob"}"#).expect("valid");
        assert!(matches!(m, ClientMessage::Friend { ref verb, .. } if verb == "block"));
        let (_, m) =
            read_client_message(r#"{"type":"invite_friend","uid":"bob","mode":"classic"}"#)
                .expect("valid");
        assert!(matches!(m, ClientMessage::InviteFriend { .. }));
        assert!(read_client_message(r#"{"type":"visibility"}"#).is_err());
        assert!(read_client_message(r#"{"type":"presence","uids":"bob"}"#).is_err());
    }

    #[test]
    fn presence_queries_split_at_commas() {
        let params = PresenceParams {
            uids: " bob, carol,,dave ".into(),
        };
        assert_eq!(params.uids(), ["bob", "carol", "dave"]);
    }

    #[test]
    fn a_player_connection_is_pushed_flat_with_its_type() {
        let text = encode(&ServerMessage::PlayerConnection(PlayerConnection {
            match_id: "m1".into(),
            player: "bob".into(),
            connected: false,
            turn: Some("bob".into()),
            turn_ms_left: Some(21_500),
            at_ms: 7,
        }));
        let value: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            value,
            serde_json::json!({"v": 1, "type": "player_connection", "match_id": "m1",
                "player": "bob", "connected": false, "turn": "bob", "turn_ms_left": 21500, "at_ms": 7})
        );
    }

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

    #[test]
    fn a_rename_body_is_exactly_a_display_name() {
        let fields: RenameFields =
            serde_json::from_str(r#"{"display_name":"Ann"}"#).expect("valid");
        let request = fields.request("alice").expect("a fine name");
        assert_eq!(
            (request.uid.as_str(), request.display_name.as_str()),
            ("alice", "Ann")
        );
        for body in [
            r#"{"display_name":"Ann","uid":"bob"}"#,
            r#"{"name":"Ann"}"#,
            r#"{}"#,
            r#""Ann""#,
            r#"{"display_name":7}"#,
        ] {
            assert!(
                serde_json::from_str::<RenameFields>(body).is_err(),
                "{body}"
            );
        }
        for name in ["", "   ", &"x".repeat(33), "a\nb"] {
            let e = RenameFields {
                display_name: name.to_owned(),
            }
            .request("alice")
            .expect_err("refused before the archive is asked");
            assert_eq!(e.code, ErrorCode::BadRequest, "{name:?}");
            assert!(e.message.contains("display name"), "{}", e.message);
        }
    }

    #[test]
    fn players_rename_only_themselves() {
        assert!(renaming_self("me", "alice").is_ok());
        assert!(renaming_self("alice", "alice").is_ok());
        let e = renaming_self("bob", "alice").expect_err("someone else");
        assert_eq!(e.code, ErrorCode::Forbidden);
        assert_eq!(e.message, "you may only rename yourself");
        let e = renaming_self("b.o.b", "alice").expect_err("not a user id");
        assert_eq!(e.code, ErrorCode::BadRequest);
    }

    #[test]
    fn players_are_named_by_id_or_me() {
        assert_eq!(player_named(None, "alice").ok().as_deref(), Some("alice"));
        assert_eq!(
            player_named(Some("me"), "alice").ok().as_deref(),
            Some("alice")
        );
        assert_eq!(
            player_named(Some("bob"), "alice").ok().as_deref(),
            Some("bob")
        );
        for bad in ["", "a b", "a/b", &"x".repeat(65)] {
            let e = player_named(Some(bad), "alice").expect_err(bad);
            assert_eq!(e.code, ErrorCode::BadRequest);
        }
    }

    #[test]
    fn page_limits_are_1_to_100() {
        assert_eq!(parse_page_limit(None).ok(), Some(None));
        assert_eq!(parse_page_limit(Some("1")).ok(), Some(Some(1)));
        assert_eq!(parse_page_limit(Some("100")).ok(), Some(Some(100)));
        for bad in ["0", "101", "-1", "ten", "", "2.5", "99999999999"] {
            let e = parse_page_limit(Some(bad)).expect_err(bad);
            assert_eq!(e.code, ErrorCode::BadRequest);
            assert!(
                e.message
                    .contains("`limit` is a whole number from 1 to 100"),
                "{}",
                e.message
            );
        }
        assert!(page_limit(Some(0)).is_err());
        assert!(page_limit(Some(101)).is_err());
        assert_eq!(page_limit(None).ok(), Some(None));
    }

    #[test]
    fn leaderboards_are_asked_around_me_or_not_at_all() {
        assert_eq!(around_me(None).ok(), Some(false));
        assert_eq!(around_me(Some("me")).ok(), Some(true));
        for bad in ["bob", "ME", "", "true"] {
            assert_eq!(
                around_me(Some(bad)).expect_err(bad).code,
                ErrorCode::BadRequest
            );
        }
    }

    fn query<T: serde::de::DeserializeOwned>(uri: &str) -> Result<T, ApiError> {
        let uri: axum::http::Uri = uri.parse().expect("uri");
        axum::extract::Query::<T>::try_from_uri(&uri)
            .map(|q| q.0)
            .map_err(ApiError::from)
    }

    #[test]
    fn history_queries_are_read_and_checked() {
        let request = query::<HistoryQuery>("/users/me/matches?limit=5&cursor=abc")
            .and_then(|q| q.request("me", "alice"))
            .expect("valid");
        assert_eq!(request.uid, "alice");
        assert_eq!(request.limit, Some(5));
        assert_eq!(request.cursor.as_deref(), Some("abc"));
        let request = query::<HistoryQuery>("/users/bob/matches")
            .and_then(|q| q.request("bob", "alice"))
            .expect("valid");
        assert_eq!((request.uid.as_str(), request.limit), ("bob", None));
        for uri in [
            "/users/bob/matches?limit=0",
            "/users/bob/matches?limit=101",
            "/users/bob/matches?limit=many",
            "/users/bob/matches?page=2",
        ] {
            let e = query::<HistoryQuery>(uri)
                .and_then(|q| q.request("bob", "alice"))
                .expect_err(uri);
            assert_eq!(e.code, ErrorCode::BadRequest, "{uri}");
        }
    }

    #[test]
    fn leaderboard_queries_are_read_and_checked() {
        let request = query::<LeaderboardQuery>("/leaderboards/classic?limit=10&around=me")
            .and_then(|q| q.request("classic".into(), "alice"))
            .expect("valid");
        assert_eq!(request.mode, "classic");
        assert_eq!(request.limit, Some(10));
        assert_eq!(request.around.as_deref(), Some("alice"), "me is the caller");
        let request = query::<LeaderboardQuery>("/leaderboards/classic")
            .and_then(|q| q.request("classic".into(), "alice"))
            .expect("valid");
        assert_eq!((request.limit, request.around), (None, None));
        for uri in [
            "/leaderboards/classic?around=bob",
            "/leaderboards/classic?limit=0",
            "/leaderboards/classic?limit=x",
            "/leaderboards/classic?season=s1",
        ] {
            let e = query::<LeaderboardQuery>(uri)
                .and_then(|q| q.request("classic".into(), "alice"))
                .expect_err(uri);
            assert_eq!(e.code, ErrorCode::BadRequest, "{uri}");
        }
    }

    #[test]
    fn archive_messages_read() {
        let (id, message) =
            read_client_message(r#"{"v":1,"type":"profile","id":"p"}"#).expect("valid");
        assert_eq!(id.as_deref(), Some("p"));
        assert!(matches!(message, ClientMessage::Profile { uid: None }));
        let (_, message) =
            read_client_message(r#"{"type":"rename","display_name":"Ann"}"#).expect("valid");
        assert!(matches!(message, ClientMessage::Rename(ref f) if f.display_name == "Ann"));
        let (_, message) =
            read_client_message(r#"{"type":"history","uid":"bob","limit":5,"cursor":"c"}"#)
                .expect("valid");
        assert!(matches!(
            message,
            ClientMessage::History { limit: Some(5), .. }
        ));
        let (_, message) =
            read_client_message(r#"{"type":"leaderboard","mode":"classic","around_me":true}"#)
                .expect("valid");
        assert!(matches!(
            message,
            ClientMessage::Leaderboard {
                around_me: true,
                limit: None,
                ..
            }
        ));
        let (_, message) =
            read_client_message(r#"{"type":"archived_match","match_id":"m"}"#).expect("valid");
        assert!(
            matches!(message, ClientMessage::ArchivedMatch { ref match_id } if match_id == "m")
        );
        for bad in [
            r#"{"id":"r","type":"rename","display_name":"Ann","uid":"bob"}"#,
            r#"{"id":"r","type":"rename"}"#,
            r#"{"id":"r","type":"history","limit":-1}"#,
            r#"{"id":"r","type":"leaderboard","mode":"classic","around":"bob"}"#,
        ] {
            let (id, e) = read_client_message(bad).expect_err(bad);
            assert_eq!(
                (id.as_deref(), e.code),
                (Some("r"), ErrorCode::BadRequest),
                "{bad}"
            );
        }
        // Read, then checked as REST checks them.
        assert!(history_request(None, "alice", Some(0), None).is_err());
        assert!(leaderboard_request("classic".into(), Some(101), false, "alice").is_err());
        let request = leaderboard_request("classic".into(), None, true, "alice").expect("valid");
        assert_eq!(request.around.as_deref(), Some("alice"));
    }

    #[test]
    fn an_archived_match_is_its_fields_and_archived_true() {
        let archived: ArchivedMatch = serde_json::from_value(serde_json::json!({
            "match_id": "m1", "mode": "classic", "ranked": true, "players": ["a", "b"],
            "standings": [], "started_ms": 1, "ended_ms": 2, "duration_ms": 1,
            "reason": "finished", "season": "2026-12", "rating_changes": [],
            "record": {
                "match_id": "m1", "mode": "classic", "mode_version": "00".repeat(32),
                "players": ["a", "b"], "seed_hash": "h", "seed": "s", "actions": [], "standings": [],
            },
        }))
        .expect("an archived match");
        let answer = MatchAnswer::Archived(Box::new(Archived {
            archived_match: archived,
            archived: true,
        }));
        let value = serde_json::to_value(&answer).expect("json");
        assert_eq!(value["archived"], true);
        assert_eq!(value["match_id"], "m1");
        assert_eq!(value["season"], "2026-12");
        assert_eq!(value["record"]["seed"], "s");
    }

    #[test]
    fn inbox_and_device_messages_read() {
        let (id, m) = read_client_message(
            r#"{"v":1,"type":"notifications","id":"n1","before":"c9","limit":5}"#,
        )
        .expect("valid");
        assert_eq!(id.as_deref(), Some("n1"));
        assert!(matches!(
            m,
            ClientMessage::Notifications { before: Some(ref c), limit: Some(5) } if c == "c9"
        ));
        let (_, m) = read_client_message(r#"{"type":"notifications"}"#).expect("valid");
        assert!(matches!(
            m,
            ClientMessage::Notifications {
                before: None,
                limit: None
            }
        ));
        let (_, m) = read_client_message(r#"{"type":"unread","id":2}"#).expect("valid");
        assert!(matches!(m, ClientMessage::Unread {}));
        let (id, m) = read_client_message(
            r#"{"type":"notification_read","id":"3","notification_id":"friend_request:bob:1"}"#,
        )
        .expect("valid");
        assert_eq!(
            id.as_deref(),
            Some("3"),
            "the message's id is not the notification's"
        );
        assert!(matches!(
            m,
            ClientMessage::NotificationRead { ref notification_id } if notification_id == "friend_request:bob:1"
        ));
        let (_, m) = read_client_message(r#"{"type":"notifications_read_all"}"#).expect("valid");
        assert!(matches!(m, ClientMessage::NotificationsReadAll {}));
        let (_, m) =
            read_client_message(r#"{"type":"notification_delete","notification_id":"n-1"}"#)
                .expect("valid");
        assert!(matches!(m, ClientMessage::NotificationDelete { .. }));
        let (_, m) = read_client_message(
            r#"{"type":"register_device","token":"fcm:AB_c-1","platform":"web"}"#,
        )
        .expect("valid");
        assert!(matches!(
            m,
            ClientMessage::RegisterDevice { ref token, ref platform } if token == "fcm:AB_c-1" && platform == "web"
        ));
        let (_, m) =
            read_client_message(r#"{"type":"unregister_device","token":"fcm:AB"}"#).expect("valid");
        assert!(matches!(m, ClientMessage::UnregisterDevice { ref token } if token == "fcm:AB"));
    }

    #[test]
    fn inbox_messages_name_no_user_and_refuse_strays() {
        for bad in [
            // The notification is `notification_id`: `id` is the message's.
            r#"{"id":"r","type":"notification_read"}"#,
            r#"{"id":"r","type":"notification_delete","notification":"n1"}"#,
            r#"{"id":"r","type":"notifications","uid":"bob"}"#,
            r#"{"id":"r","type":"unread","uid":"bob"}"#,
            r#"{"id":"r","type":"notifications_read_all","uid":"bob"}"#,
            r#"{"id":"r","type":"notifications","limit":-1}"#,
            r#"{"id":"r","type":"notifications","limit":"5"}"#,
            r#"{"id":"r","type":"register_device","token":"t"}"#,
            r#"{"id":"r","type":"register_device","token":"t","platform":"web","uid":"bob"}"#,
            r#"{"id":"r","type":"unregister_device"}"#,
        ] {
            let (id, e) = read_client_message(bad).expect_err(bad);
            assert_eq!(
                (id.as_deref(), e.code),
                (Some("r"), ErrorCode::BadRequest),
                "{bad}"
            );
        }
        let (_, e) = read_client_message(r#"{"id":"r","type":"notification_read"}"#)
            .expect_err("no notification");
        assert!(e.message.contains("notification_id"), "{}", e.message);
    }

    fn notification() -> dashdice_proto::notify::Notification {
        dashdice_proto::notify::Notification {
            id: "match_invite:K7Q2MX".into(),
            kind: dashdice_proto::notify::NotificationKind::MatchInvite,
            title: "Bob invites you".into(),
            body: "A game of Classic".into(),
            data: BTreeMap::from([("code".to_owned(), "K7Q2MX".to_owned())]),
            created_ms: 5,
            expires_ms: 9,
            read: false,
        }
    }

    #[test]
    fn inbox_answers_carry_the_request_id() {
        let page = InboxPage {
            notifications: vec![notification()],
            unread: 1,
            next: Some("c2".into()),
        };
        let value: Value = serde_json::from_str(&encode(&ServerMessage::Notifications {
            id: Some("n1".into()),
            page: page.clone(),
        }))
        .expect("json");
        let mut rest = serde_json::to_value(&page).expect("json");
        if let Value::Object(fields) = &mut rest {
            fields.insert("v".into(), 1.into());
            fields.insert("type".into(), "notifications".into());
            fields.insert("id".into(), "n1".into());
        }
        assert_eq!(value, rest, "the page's fields, as REST answers them");
        assert_eq!(value["notifications"][0]["kind"], "match_invite");
        let last = encode(&ServerMessage::Notifications {
            id: None,
            page: InboxPage {
                notifications: vec![],
                unread: 0,
                next: None,
            },
        });
        assert_eq!(
            last,
            r#"{"v":1,"type":"notifications","notifications":[],"unread":0}"#
        );
        assert_eq!(
            encode(&ServerMessage::Unread {
                id: Some("3".into()),
                unread: 4
            }),
            r#"{"v":1,"type":"unread","id":"3","unread":4}"#
        );
        assert_eq!(
            encode(&ServerMessage::Devices {
                id: Some("4".into()),
                devices: 2
            }),
            r#"{"v":1,"type":"devices","id":"4","devices":2}"#
        );
    }

    #[test]
    fn notifications_are_pushed_flat_and_unread_counts_as_inbox_changed() {
        let value: Value =
            serde_json::from_str(&encode_notice(&Notice::Notification(notification())))
                .expect("json");
        assert_eq!(
            value,
            serde_json::json!({"v": 1, "type": "notification", "id": "match_invite:K7Q2MX",
                "kind": "match_invite", "title": "Bob invites you", "body": "A game of Classic",
                "data": {"code": "K7Q2MX"}, "created_ms": 5, "expires_ms": 9, "read": false})
        );
        assert_eq!(
            encode_notice(&Notice::InboxChanged { unread: 3 }),
            r#"{"v":1,"type":"inbox_changed","unread":3}"#
        );
    }

    #[test]
    fn a_body_is_one_object_with_its_fields() {
        use crate::inbox::{DeviceFields, DeviceTokenFields};
        let fields: DeviceFields =
            read_object(serde_json::json!({"token": "t1", "platform": "ios"})).expect("valid");
        assert_eq!(
            (fields.token.as_str(), fields.platform.as_str()),
            ("t1", "ios")
        );
        for body in [
            serde_json::json!(["t1", "ios"]),
            serde_json::json!("t1"),
            serde_json::json!(null),
            serde_json::json!(7),
            serde_json::json!({"token": "t1"}),
            serde_json::json!({"token": "t1", "platform": "ios", "uid": "bob"}),
            serde_json::json!({"token": 7, "platform": "ios"}),
        ] {
            let e = read_object::<DeviceFields>(body.clone()).expect_err("refused");
            assert_eq!(e.code, ErrorCode::MalformedJson, "{body}");
        }
        assert!(read_object::<DeviceTokenFields>(serde_json::json!({"token": "t1"})).is_ok());
        let e = read_object::<DeviceTokenFields>(serde_json::json!(["t1"])).expect_err("array");
        assert_eq!(e.message, "the body is one JSON object");
    }
}
