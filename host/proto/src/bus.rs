//! The NATS side of dashdice: every subject name and the reply envelope.
//!
//! Architecture invariant: this is the only module that spells subject names.
//! Roles ask it for subjects; clients (the gateway, tests, tools) use the same
//! functions, so a subject cannot drift between publisher and subscriber.
//!
//! | subject | kind | who answers / listens | payload |
//! |---|---|---|---|
//! | `dd.match.create` | request/reply, queue group `match-host` | match hosts | [`CreateMatch`](crate::matches::CreateMatch) → [`ActionReply`](crate::matches::ActionReply) |
//! | `dd.match.act` | request/reply, queue group `match-host` | match hosts | [`ActRequest`](crate::matches::ActRequest) → `ActionReply` |
//! | `dd.match.get` | request/reply, queue group `match-host` | match hosts | `{"match_id"}` → [`Snapshot`](crate::matches::Snapshot) |
//! | `dd.match.events` | request/reply, queue group `match-host` | match hosts | `{"match_id","after"}` → `[SequencedEvent]` |
//! | `dd.match.record` | request/reply, queue group `match-host` | match hosts | `{"match_id"}` → [`MatchRecord`](crate::record::MatchRecord) (finished matches) |
//! | `dd.match.<id>.events` | pub/sub | gateways, clients | one [`SequencedEvent`](crate::matches::SequencedEvent) per message, `seq` gap-free |
//! | `dd.match.ended` | pub/sub | anyone watching (dashboards; the roles use the record stream) | [`MatchEnded`] |
//! | `dd.match.<id>.record` | JetStream stream [`RECORD_STREAM`] | archivers (durable consumer [`ARCHIVER_RECORDS_CONSUMER`]), matchmakers (durable consumer [`MATCHMAKER_RECORDS_CONSUMER`]) | the finished match's [`MatchRecord`](crate::record::MatchRecord), deduplicated by match id |
//! | `dd.archive.profile` | request/reply, queue group `archiver` | archivers | [`ProfileRequest`](crate::archive::ProfileRequest) `{"uid"}` → [`Profile`](crate::archive::Profile) |
//! | `dd.archive.rename` | request/reply, queue group `archiver` | archivers | [`RenameRequest`](crate::archive::RenameRequest) `{"uid","display_name"}` → `Profile` |
//! | `dd.archive.history` | request/reply, queue group `archiver` | archivers | [`HistoryRequest`](crate::archive::HistoryRequest) `{"uid","limit","cursor"}` → [`HistoryPage`](crate::archive::HistoryPage) |
//! | `dd.archive.match` | request/reply, queue group `archiver` | archivers | `{"match_id"}` → [`ArchivedMatch`](crate::archive::ArchivedMatch) |
//! | `dd.archive.leaderboard` | request/reply, queue group `archiver` | archivers | [`LeaderboardRequest`](crate::archive::LeaderboardRequest) `{"mode","limit","around"}` → [`Leaderboard`](crate::archive::Leaderboard) |
//! | `dd.archive.friends.{request,accept,decline,remove,block,unblock}` | request/reply, queue group `archiver` | archivers | [`FriendAction`](crate::friends::FriendAction) `{"uid","other"}` → [`FriendLink`](crate::friends::FriendLink) or `null` |
//! | `dd.archive.friends.list` | request/reply, queue group `archiver` | archivers | [`FriendListRequest`](crate::friends::FriendListRequest) `{"uid"}` → [`FriendList`](crate::friends::FriendList) |
//! | `dd.presence.{connect,heartbeat,visibility,disconnect,activity}` | request/reply, queue group `presence` | presence | [`Connect`](crate::presence::Connect), [`Heartbeat`](crate::presence::Heartbeat), [`Visibility`](crate::presence::Visibility), [`Disconnect`](crate::presence::Disconnect), [`SetActivity`](crate::presence::SetActivity) → [`Presence`](crate::presence::Presence) (heartbeat: [`HeartbeatReply`](crate::presence::HeartbeatReply)) |
//! | `dd.presence.query` | request/reply, queue group `presence` | presence | [`PresenceQuery`](crate::presence::PresenceQuery) `{"uids"}` → `[Presence]` |
//! | `dd.presence.lobby` | request/reply, queue group `presence` | presence | `{}` → [`Lobby`](crate::presence::Lobby) |
//! | `dd.presence.user.<uid>` | pub/sub | gateways (for the sessions following `uid`) | the user's [`Presence`](crate::presence::Presence), when what others see changed |
//! | `dd.match.<id>.presence` | pub/sub | gateways (for the sessions following the match) | [`PlayerConnection`](crate::presence::PlayerConnection): a player's last connection closed, or one opened again |
//! | `dd.queue.join` | request/reply, queue group `matchmaker` | matchmakers | [`JoinRequest`](crate::queue::JoinRequest) → [`Status`](crate::queue::Status) |
//! | `dd.queue.leave` | request/reply, queue group `matchmaker` | matchmakers | `{"player"}` → `Status` |
//! | `dd.queue.status` | request/reply, queue group `matchmaker` | matchmakers | `{"player"}` → `Status` |
//! | `dd.queue.private.create` | request/reply, queue group `matchmaker` | matchmakers | [`CreateInviteRequest`](crate::queue::CreateInviteRequest) `{"player","mode"}` → [`Invite`](crate::queue::Invite) `{"code","mode","expires_ms"}` |
//! | `dd.queue.private.join` | request/reply, queue group `matchmaker` | matchmakers | [`JoinInviteRequest`](crate::queue::JoinInviteRequest) `{"player","code"}` → `Status` (`playing`) |
//! | `dd.queue.rematch` | request/reply, queue group `matchmaker` | matchmakers | [`RematchRequest`](crate::queue::RematchRequest) `{"player","match_id"}` → [`RematchStatus`](crate::queue::RematchStatus) (`offered` or `started`) |
//! | `dd.queue.private.invite` | request/reply, queue group `matchmaker` | matchmakers | [`DirectInviteRequest`](crate::queue::DirectInviteRequest) `{"player","to","mode"}` → `Invite` (the code, told to `to` only) |
//! | `dd.queue.private.decline` | request/reply, queue group `matchmaker` | matchmakers | `JoinInviteRequest` `{"player","code"}` → `Status` |
//! | `dd.user.<player>.notify` | pub/sub | gateways, presence (queue group `presence`, for match found) | [`Notice`](crate::queue::Notice): match found, rematch offered, friends' requests and answers, direct invites and their end |
//! | `dd.notify.request.<kind>` | JetStream stream [`NOTIFY_STREAM`] (work queue) | the notifier (durable consumer [`NOTIFIER_CONSUMER`]) | [`NotifyRequest`](crate::notify::NotifyRequest), deduplicated by its id |
//! | `dd.notify.inbox.{list,unread,read,read_all,delete}` | request/reply, queue group `notifier` | notifiers | [`InboxList`](crate::notify::InboxList) → [`InboxPage`](crate::notify::InboxPage); the others → [`Unread`](crate::notify::Unread) |
//! | `dd.notify.devices.{register,unregister}` | request/reply, queue group `notifier` | notifiers | [`RegisterDevice`](crate::notify::RegisterDevice), [`UnregisterDevice`](crate::notify::UnregisterDevice) → [`Devices`](crate::notify::Devices) |
//! | `dd.notify.broadcast` | request/reply, queue group `notifier`; ops only | notifiers | [`Broadcast`](crate::notify::Broadcast) → [`Broadcasted`](crate::notify::Broadcasted) |
//! | `$O.dashdice_mode_objects.>` | JetStream object store [`MODE_OBJECTS_BUCKET`] | designers write; match hosts read | component bytes, named by SHA-256, with the publisher's signature |
//! | `$KV.dashdice_modes.<id>` | JetStream KV [`MODE_INDEX_BUCKET`] | designers write; every role watches | [`ModePointer`](crate::catalog::ModePointer) |
//! | `$KV.dashdice_mode_health.<hash>` | JetStream KV [`MODE_HEALTH_BUCKET`] | match hosts write; every role watches | [`Quarantine`](crate::catalog::Quarantine) |
//!
//! Every stream the roles create (the two above and the catalog's buckets)
//! gets [`stream_replicas`] copies: `DASHDICE_STREAM_REPLICAS`, 1 by default,
//! 3 on a three-node cluster.
//!
//! Every reply is an envelope: `{"ok": <payload>}` or
//! `{"error": {"code": "not_your_turn", "message": "..."}}`.
//!
//! Requests and published events may carry W3C trace context in the NATS
//! headers `traceparent` and `tracestate` ([`trace_headers`],
//! [`trace_context`]), so one trace follows a request from role to role.

use async_nats::HeaderMap;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use serde::{Deserialize, Serialize};

/// The NATS micro service name of the match host (`$SRV.PING.dashdice-match-host`).
pub const MATCH_SERVICE: &str = "dashdice-match-host";
/// The queue group match hosts share, so each request reaches one of them.
pub const MATCH_QUEUE_GROUP: &str = "match-host";
/// Prefix of the match host's request subjects.
pub const MATCH_GROUP: &str = "dd.match";

/// Request endpoints of the match host, relative to [`MATCH_GROUP`].
pub mod endpoint {
    pub const CREATE: &str = "create";
    pub const ACT: &str = "act";
    pub const GET: &str = "get";
    pub const EVENTS: &str = "events";
    pub const RECORD: &str = "record";
}

/// The full subject of a match-host endpoint, e.g. `dd.match.act`.
pub fn match_request(endpoint: &str) -> String {
    format!("{MATCH_GROUP}.{endpoint}")
}

/// Where a match's events are published.
pub fn match_events(match_id: &str) -> String {
    format!("{MATCH_GROUP}.{match_id}.events")
}

/// Where a finished match's final standings are announced.
pub const MATCH_ENDED: &str = "dd.match.ended";
/// The environment variable that sets [`stream_replicas`].
pub const STREAM_REPLICAS_ENV: &str = "DASHDICE_STREAM_REPLICAS";

/// How many copies a JetStream cluster keeps of every stream the roles
/// create (the record and notification streams, the catalog's buckets):
/// `DASHDICE_STREAM_REPLICAS`, read once per process; 1 when unset or not a
/// number, clamped to 1..=5 (JetStream's range). Set it to 3 on a
/// three-node cluster, so a stream stays writable with one node down. It
/// applies when a stream is created: an existing stream keeps its replicas.
pub fn stream_replicas() -> usize {
    static REPLICAS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *REPLICAS
        .get_or_init(|| parse_stream_replicas(std::env::var(STREAM_REPLICAS_ENV).ok().as_deref()))
}

/// [`stream_replicas`] from the variable's value.
pub fn parse_stream_replicas(value: Option<&str>) -> usize {
    value
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(1)
        .clamp(1, 5)
}

/// The JetStream stream holding every finished match's record.
pub const RECORD_STREAM: &str = "DASHDICE_MATCH_RECORDS";
/// The subjects of [`RECORD_STREAM`].
pub const RECORD_SUBJECTS: &str = "dd.match.*.record";

/// The configuration of [`RECORD_STREAM`]; every role that uses the stream
/// creates it if missing, so none depends on another starting first.
pub fn record_stream_config() -> async_nats::jetstream::stream::Config {
    use async_nats::jetstream::stream::{Config, StorageType};
    Config {
        name: RECORD_STREAM.to_owned(),
        subjects: vec![RECORD_SUBJECTS.to_owned()],
        storage: StorageType::File,
        // Publishing a record twice (a retry, a second host, the sweep) is
        // dropped: the message id is the match id.
        duplicate_window: std::time::Duration::from_secs(600),
        // Records wait here while their readers (the archiver above all)
        // are down; these limits bound the wait. At ~2 KB a record, 1 GiB is
        // about half a million matches (the server allows 4 GB of file store in all), and a week is longer than any outage
        // we would sit through. Past either limit the oldest go first.
        max_age: RECORD_MAX_AGE,
        max_bytes: RECORD_MAX_BYTES,
        discard: async_nats::jetstream::stream::DiscardPolicy::Old,
        num_replicas: stream_replicas(),
        ..Default::default()
    }
}

/// How long [`RECORD_STREAM`] keeps a record.
pub const RECORD_MAX_AGE: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 3600);
/// How many bytes [`RECORD_STREAM`] keeps at most.
pub const RECORD_MAX_BYTES: i64 = 1 << 30;

/// Opens [`RECORD_STREAM`], creating it if missing. Roles starting at the
/// same moment may both try to create it; the one that loses the race
/// (older servers then answer "subjects overlap") finds it made.
pub async fn open_record_stream(
    js: &async_nats::jetstream::Context,
) -> Result<async_nats::jetstream::stream::Stream, String> {
    match js.get_or_create_stream(record_stream_config()).await {
        Ok(stream) => Ok(stream),
        Err(first) => {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            js.get_stream(RECORD_STREAM)
                .await
                .map_err(|_| first.to_string())
        }
    }
}

/// [`RECORD_STREAM`] as the match host writes it.
#[derive(Clone)]
pub struct RecordStream(async_nats::jetstream::Context);

impl RecordStream {
    /// Opens the stream, creating it if missing.
    pub async fn open(client: &async_nats::Client) -> Result<Self, String> {
        let js = async_nats::jetstream::new(client.clone());
        open_record_stream(&js).await?;
        Ok(RecordStream(js))
    }

    /// Stores a record, deduplicated by match id (the `Nats-Msg-Id` header),
    /// waiting for the stream's ack; three tries, 50 then 100 ms apart (a
    /// repeat is harmless: the stream drops the duplicate).
    pub async fn store(&self, record: &crate::record::MatchRecord) -> Result<(), String> {
        use backon::{ExponentialBuilder, Retryable};
        let body = bytes::Bytes::from(serde_json::to_vec(record).map_err(|e| e.to_string())?);
        let mut headers = HeaderMap::new();
        headers.insert(MSG_ID_HEADER, record.match_id.as_str());
        let once = || async {
            let subject = match_record(&record.match_id);
            let ack = self
                .0
                .publish_with_headers(subject, headers.clone(), body.clone())
                .await
                .map_err(|e| e.to_string())?;
            ack.await.map(|_| ()).map_err(|e| e.to_string())
        };
        let backoff = ExponentialBuilder::default()
            .with_min_delay(std::time::Duration::from_millis(50))
            .with_max_times(2);
        once.retry(backoff).await
    }
}

/// JetStream's deduplication header: a second message with the same id in
/// the stream's duplicate window is dropped.
const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The W3C trace context headers, the same names on NATS and HTTP.
pub const TRACE_HEADERS: [&str; 2] = ["traceparent", "tracestate"];

/// Where a match's record is stored in [`RECORD_STREAM`].
pub fn match_record(match_id: &str) -> String {
    format!("{MATCH_GROUP}.{match_id}.record")
}

/// The NATS micro service name of the matchmaker.
pub const MATCHMAKER_SERVICE: &str = "dashdice-matchmaker";
/// The queue group matchmakers share.
pub const MATCHMAKER_QUEUE_GROUP: &str = "matchmaker";
/// Prefix of the matchmaker's request subjects.
pub const QUEUE_GROUP: &str = "dd.queue";

/// Request endpoints of the matchmaker, relative to [`QUEUE_GROUP`].
pub mod queue_endpoint {
    pub const JOIN: &str = "join";
    pub const LEAVE: &str = "leave";
    pub const STATUS: &str = "status";
    /// Make an invite code to a private match.
    pub const PRIVATE_CREATE: &str = "private.create";
    /// Join a private match by its code.
    pub const PRIVATE_JOIN: &str = "private.join";
    /// Offer or accept a rematch of a finished match.
    pub const REMATCH: &str = "rematch";
    /// Invite one player (a friend) to a private match by user id.
    pub const PRIVATE_INVITE: &str = "private.invite";
    /// Decline a direct invite.
    pub const PRIVATE_DECLINE: &str = "private.decline";
}

/// The full subject of a matchmaker endpoint, e.g. `dd.queue.join`.
pub fn queue_request(endpoint: &str) -> String {
    format!("{QUEUE_GROUP}.{endpoint}")
}

/// A player's notifications (match found, ...), which the gateway forwards.
/// Player ids are limited to letters, digits, `-` and `_`, so they are
/// always one subject token.
pub fn user_notify(player: &str) -> String {
    format!("dd.user.{player}.notify")
}

/// Every player's notifications, for a subscriber that follows them all
/// (the presence role, which learns of matches found there).
pub const ALL_USER_NOTICES: &str = "dd.user.*.notify";

/// The durable JetStream consumer through which matchmakers read finished
/// matches' records (to free players and update ratings), each record once.
pub const MATCHMAKER_RECORDS_CONSUMER: &str = "matchmaker";

/// The durable JetStream consumer through which archivers read finished
/// matches' records into Firestore; archivers share it, so each record goes
/// to one of them (and again, after a crash, until one acknowledges it).
pub const ARCHIVER_RECORDS_CONSUMER: &str = "archiver";

/// The NATS micro service name of the archiver.
pub const ARCHIVER_SERVICE: &str = "dashdice-archiver";
/// The queue group archivers share.
pub const ARCHIVER_QUEUE_GROUP: &str = "archiver";
/// Prefix of the archiver's request subjects.
pub const ARCHIVE_GROUP: &str = "dd.archive";

/// Request endpoints of the archiver, relative to [`ARCHIVE_GROUP`].
pub mod archive_endpoint {
    pub const PROFILE: &str = "profile";
    pub const RENAME: &str = "rename";
    pub const HISTORY: &str = "history";
    pub const MATCH: &str = "match";
    pub const LEADERBOARD: &str = "leaderboard";
    pub const FRIENDS_LIST: &str = "friends.list";
    pub const FRIENDS_REQUEST: &str = "friends.request";
    pub const FRIENDS_ACCEPT: &str = "friends.accept";
    pub const FRIENDS_DECLINE: &str = "friends.decline";
    pub const FRIENDS_REMOVE: &str = "friends.remove";
    pub const FRIENDS_BLOCK: &str = "friends.block";
    pub const FRIENDS_UNBLOCK: &str = "friends.unblock";
}

/// The full subject of an archiver endpoint, e.g. `dd.archive.profile`.
pub fn archive_request(endpoint: &str) -> String {
    format!("{ARCHIVE_GROUP}.{endpoint}")
}

/// The NATS micro service name of the presence role.
pub const PRESENCE_SERVICE: &str = "dashdice-presence";
/// The queue group presence instances share (requests, and the notices and
/// match ends they follow, each to one of them).
pub const PRESENCE_QUEUE_GROUP: &str = "presence";
/// Prefix of the presence role's request subjects.
pub const PRESENCE_GROUP: &str = "dd.presence";

/// Request endpoints of the presence role, relative to [`PRESENCE_GROUP`].
pub mod presence_endpoint {
    pub const CONNECT: &str = "connect";
    pub const HEARTBEAT: &str = "heartbeat";
    pub const VISIBILITY: &str = "visibility";
    pub const DISCONNECT: &str = "disconnect";
    pub const ACTIVITY: &str = "activity";
    pub const QUERY: &str = "query";
    pub const LOBBY: &str = "lobby";
}

/// The full subject of a presence endpoint, e.g. `dd.presence.connect`.
pub fn presence_request(endpoint: &str) -> String {
    format!("{PRESENCE_GROUP}.{endpoint}")
}

/// Where a user's presence is published when what others see of it
/// changed. (Under `user.`, so no user id can name an endpoint.)
pub fn presence_changes(uid: &str) -> String {
    format!("{PRESENCE_GROUP}.user.{uid}")
}

/// Where a match's players are told that one of them lost, or got back,
/// their connection.
pub fn match_presence(match_id: &str) -> String {
    format!("{MATCH_GROUP}.{match_id}.presence")
}

/// The NATS micro service name of the notifier role.
pub const NOTIFIER_SERVICE: &str = "dashdice-notifier";
/// The queue group notifier instances share for requests.
pub const NOTIFIER_QUEUE_GROUP: &str = "notifier";
/// Prefix of the notifier's request subjects.
pub const NOTIFY_GROUP: &str = "dd.notify";

/// Request endpoints of the notifier, relative to [`NOTIFY_GROUP`].
pub mod notify_endpoint {
    pub const INBOX_LIST: &str = "inbox.list";
    pub const INBOX_UNREAD: &str = "inbox.unread";
    pub const INBOX_READ: &str = "inbox.read";
    pub const INBOX_READ_ALL: &str = "inbox.read_all";
    pub const INBOX_DELETE: &str = "inbox.delete";
    pub const DEVICES_REGISTER: &str = "devices.register";
    pub const DEVICES_UNREGISTER: &str = "devices.unregister";
    /// Operators only (the NATS permissions allow it to the ops user).
    pub const BROADCAST: &str = "broadcast";
}

/// The full subject of a notifier endpoint, e.g. `dd.notify.inbox.list`.
pub fn notify_request(endpoint: &str) -> String {
    format!("{NOTIFY_GROUP}.{endpoint}")
}

/// The JetStream stream of notification requests: roles publish, the
/// notifier consumes (durable consumer [`NOTIFIER_CONSUMER`]), so nothing is
/// lost while it restarts.
pub const NOTIFY_STREAM: &str = "DASHDICE_NOTIFY";
/// The subjects of [`NOTIFY_STREAM`]: `dd.notify.request.<kind>`.
pub const NOTIFY_SUBJECTS: &str = "dd.notify.request.*";
/// The notifier's durable consumer of [`NOTIFY_STREAM`].
pub const NOTIFIER_CONSUMER: &str = "notifier";

/// Where a notification request of `kind` is published.
pub fn notify_stream_subject(kind: crate::notify::NotificationKind) -> String {
    format!("{NOTIFY_GROUP}.request.{}", kind.as_str())
}

/// The configuration of [`NOTIFY_STREAM`] (work queue: a request is gone
/// once the notifier acknowledged it; a day at most, 256 MiB at most).
pub fn notify_stream_config() -> async_nats::jetstream::stream::Config {
    use async_nats::jetstream::stream::{Config, DiscardPolicy, RetentionPolicy, StorageType};
    Config {
        name: NOTIFY_STREAM.to_owned(),
        subjects: vec![NOTIFY_SUBJECTS.to_owned()],
        storage: StorageType::File,
        retention: RetentionPolicy::WorkQueue,
        // The same request published twice (a retry across a reconnect) is
        // stored once: the message id is the request's id.
        duplicate_window: std::time::Duration::from_secs(120),
        max_age: std::time::Duration::from_secs(24 * 3600),
        max_bytes: 256 << 20,
        discard: DiscardPolicy::Old,
        num_replicas: stream_replicas(),
        ..Default::default()
    }
}

/// Opens [`NOTIFY_STREAM`], creating it if missing (see
/// [`open_record_stream`] for the race).
pub async fn open_notify_stream(
    js: &async_nats::jetstream::Context,
) -> Result<async_nats::jetstream::stream::Stream, String> {
    match js.get_or_create_stream(notify_stream_config()).await {
        Ok(stream) => Ok(stream),
        Err(first) => {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            js.get_stream(NOTIFY_STREAM)
                .await
                .map_err(|_| first.to_string())
        }
    }
}

/// The object store of mode components, each named by its SHA-256.
pub const MODE_OBJECTS_BUCKET: &str = "dashdice_mode_objects";
/// The KV of mode pointers, one key per mode id.
pub const MODE_INDEX_BUCKET: &str = "dashdice_modes";
/// The KV of quarantined mode versions, one key per version hash.
pub const MODE_HEALTH_BUCKET: &str = "dashdice_mode_health";
/// The stream behind a KV bucket, as the client library would make it.
/// Made by hand because the library's `create_key_value` first asks for the
/// account's info, which servers before 2.10 (Debian's 2.9) answer in a shape
/// it cannot read; the stream and `get_key_value` work everywhere.
pub fn kv_stream_config(
    bucket: &str,
    description: &str,
    history: i64,
) -> async_nats::jetstream::stream::Config {
    use async_nats::jetstream::stream::{Config, DiscardPolicy, StorageType};
    Config {
        name: format!("KV_{bucket}"),
        description: Some(description.to_owned()),
        subjects: vec![format!("$KV.{bucket}.>")],
        max_messages_per_subject: history,
        storage: StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: DiscardPolicy::New,
        num_replicas: stream_replicas(),
        ..Default::default()
    }
}

/// Metadata keys on a component object: who signed it, and the signature.
pub const OBJECT_PUBLIC_KEY: &str = "dashdice-public-key";
pub const OBJECT_SIGNATURE: &str = "dashdice-signature";
pub const OBJECT_MODE: &str = "dashdice-mode";

/// Announced on [`MATCH_ENDED`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchEnded {
    pub match_id: String,
    pub mode: String,
    pub mode_version: String,
    pub standings: Vec<dashdice_mode_sdk::Standing>,
}

/// `{"match_id": ...}`
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MatchIdRequest {
    pub match_id: String,
}

/// `{"match_id": ..., "after": N}`: events with `seq > N`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsRequest {
    pub match_id: String,
    #[serde(default)]
    pub after: u64,
}

/// The error half of a reply.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// Every reply: exactly one of `ok` and `error`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply<T> {
    Ok(T),
    Error(ErrorBody),
}

/// An encoded reply, and its outcome for metrics and spans: `ok` or the
/// error's stable code.
pub type Answer = (bytes::Bytes, &'static str);

pub use crate::error::ErrorCode;

impl<T: Serialize> Reply<T> {
    /// The reply as sent. (Encoding these plain types cannot fail; if it
    /// ever did, the client still gets a well-formed `internal` error.)
    pub fn encode(&self) -> bytes::Bytes {
        serde_json::to_vec(self)
            .map(bytes::Bytes::from)
            .unwrap_or_else(|e| {
                bytes::Bytes::from(format!(
                    r#"{{"error":{{"code":"internal","message":"{e}"}}}}"#
                ))
            })
    }
}

/// A refusal with a stable `code`.
pub fn refuse(code: ErrorCode, message: impl ToString) -> Answer {
    (Reply::<()>::error(code, message).encode(), code.as_str())
}

/// A request payload decoded, or the refusal to send: `too_large` past
/// `max_bytes`, `bad_request` if it is not the expected JSON.
pub fn decode_request<T: serde::de::DeserializeOwned>(
    payload: &[u8],
    max_bytes: usize,
) -> Result<T, Answer> {
    if payload.len() > max_bytes {
        return Err(refuse(
            ErrorCode::TooLarge,
            format!(
                "requests are limited to {max_bytes} bytes, got {}",
                payload.len()
            ),
        ));
    }
    serde_json::from_slice(payload)
        .map_err(|e| refuse(ErrorCode::BadRequest, format!("malformed request: {e}")))
}

/// The answer to a handled request: `{"ok": …}`, or the error with its code.
pub fn answer<T: Serialize, E: std::fmt::Display>(
    result: Result<T, E>,
    code: impl Fn(&E) -> ErrorCode,
) -> Answer {
    match result {
        Ok(t) => (Reply::Ok(t).encode(), "ok"),
        Err(e) => refuse(code(&e), &e),
    }
}

impl<T> Reply<T> {
    pub fn error(code: ErrorCode, message: impl ToString) -> Self {
        Reply::Error(ErrorBody {
            code,
            message: message.to_string(),
        })
    }

    pub fn into_result(self) -> Result<T, ErrorBody> {
        match self {
            Reply::Ok(t) => Ok(t),
            Reply::Error(e) => Err(e),
        }
    }
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key, value.as_str());
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|v| v.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

/// NATS headers carrying `cx`'s trace context (W3C `traceparent`), for a
/// request or a publish made on its behalf.
pub fn trace_headers(cx: &opentelemetry::Context) -> HeaderMap {
    let mut headers = HeaderMap::new();
    TraceContextPropagator::new().inject_context(cx, &mut HeaderInjector(&mut headers));
    headers
}

/// The trace context a message carries (an empty context if none).
pub fn trace_context(headers: Option<&HeaderMap>) -> opentelemetry::Context {
    match headers {
        Some(headers) => TraceContextPropagator::new().extract(&HeaderExtractor(headers)),
        None => opentelemetry::Context::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_and_envelopes() {
        assert_eq!(match_request(endpoint::ACT), "dd.match.act");
        assert_eq!(match_events("abc"), "dd.match.abc.events");
        assert_eq!(
            queue_request(queue_endpoint::PRIVATE_JOIN),
            "dd.queue.private.join"
        );
        let ok = serde_json::to_string(&Reply::Ok(1)).unwrap();
        assert_eq!(ok, r#"{"ok":1}"#);
        let err = serde_json::to_string(&Reply::<()>::error(ErrorCode::GameOver, "y")).unwrap();
        assert_eq!(err, r#"{"error":{"code":"game_over","message":"y"}}"#);
    }

    #[test]
    fn stream_replicas_default_to_one_and_stay_in_range() {
        assert_eq!(parse_stream_replicas(None), 1);
        assert_eq!(parse_stream_replicas(Some("3")), 3);
        assert_eq!(parse_stream_replicas(Some(" 3 ")), 3);
        assert_eq!(parse_stream_replicas(Some("0")), 1);
        assert_eq!(parse_stream_replicas(Some("9")), 5);
        assert_eq!(parse_stream_replicas(Some("three")), 1);
        assert_eq!(parse_stream_replicas(Some("")), 1);
    }
}
