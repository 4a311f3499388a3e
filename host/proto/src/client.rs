//! Typed clients of the match host, the matchmaker and the archiver, for every caller on
//! the bus (the gateway, the matchmaker calling the host, tools, tests).
//!
//! Each call encodes one request, sends it on the endpoint's subject with the
//! current span's trace context in the headers (so one trace runs from the
//! caller through the worker into Redis), waits at most the client's timeout,
//! and decodes the reply envelope into the answer or a [`CallError`] whose
//! [`code`](CallError::code) is the worker's [`ErrorCode`].
//!
//! Retries: a call is retried (with exponential backoff and jitter) only when
//! the caller says it is safe ([`Retry::Idempotent`]) and only when nothing
//! answered: a timeout or no responders. A refusal is an answer and is never
//! retried. The gateway does not retry: it tells its client, who retries with
//! the same request id.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::ErrorCode;
use crate::archive::{
    ArchivedMatch, HistoryPage, HistoryRequest, Leaderboard, LeaderboardRequest, Profile,
    ProfileRequest, RenameRequest,
};
use crate::bus::{
    self, ErrorBody, EventsRequest, MatchIdRequest, Reply, archive_endpoint, endpoint,
    notify_endpoint, presence_endpoint, queue_endpoint,
};
use crate::friends::{FriendAction, FriendLink, FriendList, FriendListRequest};
use crate::matches::{ActRequest, ActionReply, CreateMatch, SequencedEvent, Snapshot};
use crate::notify::{
    Broadcast, Broadcasted, Devices, InboxDelete, InboxList, InboxMark, InboxMarkAll, InboxPage,
    InboxUnread, NotifyRequest, RegisterDevice, Unread, UnregisterDevice,
};
use crate::presence::{
    Connect, Disconnect, Heartbeat, HeartbeatReply, Lobby, LobbyRequest, Presence, PresenceQuery,
    SetActivity, Visibility,
};
use crate::queue::{
    CreateInviteRequest, DirectInviteRequest, Invite, JoinInviteRequest, JoinRequest,
    PlayerRequest, RematchRequest, RematchStatus, Status,
};

/// Why a call got no answer, or what the worker refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The worker answered with a refusal.
    #[error("{}: {}", .0.code, .0.message)]
    Refused(ErrorBody),
    /// Nobody answered within the timeout. The request may have been applied:
    /// repeat it with the same request id.
    #[error("the service did not answer in time; retrying with the same request_id is safe")]
    Timeout,
    /// No worker is subscribed right now.
    #[error("no service is answering right now; try again shortly")]
    NoResponders,
    /// The connection failed.
    #[error("nats: {0}")]
    Transport(String),
    /// The request could not be encoded or the reply decoded (a bug, or a
    /// peer of another version).
    #[error("an unreadable message: {0}")]
    Codec(String),
}

impl CallError {
    /// The stable code a client sees for this failure.
    pub fn code(&self) -> ErrorCode {
        match self {
            CallError::Refused(body) => body.code,
            CallError::Timeout => ErrorCode::Timeout,
            CallError::NoResponders | CallError::Transport(_) => ErrorCode::Unavailable,
            CallError::Codec(_) => ErrorCode::Internal,
        }
    }

    /// Whether nothing answered, so an idempotent request may be sent again.
    fn unanswered(&self) -> bool {
        matches!(self, CallError::Timeout | CallError::NoResponders)
    }
}

/// Whether a call may be sent again when nothing answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retry {
    /// Send once; the caller decides.
    Never,
    /// Repeating the request cannot apply it twice (a caller-chosen id, a
    /// request id, or a read).
    Idempotent,
}

/// Request/reply on the bus with trace headers, a timeout and retries.
#[derive(Clone, Debug)]
pub struct Requester {
    nats: async_nats::Client,
    timeout: Duration,
    backoff: ExponentialBuilder,
}

impl Requester {
    /// Calls time out after `timeout`; idempotent ones are tried three times
    /// in all, 50 ms then 100 ms apart (with jitter).
    pub fn new(nats: async_nats::Client, timeout: Duration) -> Self {
        Requester {
            nats,
            timeout,
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(50))
                .with_max_delay(Duration::from_secs(1))
                .with_max_times(2)
                .with_jitter(),
        }
    }

    /// The NATS connection, for subscriptions.
    pub fn nats(&self) -> &async_nats::Client {
        &self.nats
    }

    /// Whether the NATS connection is up.
    pub fn connected(&self) -> bool {
        self.nats.connection_state() == async_nats::connection::State::Connected
    }

    /// Sends `request` on `subject` and decodes the answer.
    pub async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        subject: String,
        request: &Q,
        retry: Retry,
    ) -> Result<A, CallError> {
        let body = bytes::Bytes::from(
            serde_json::to_vec(request).map_err(|e| CallError::Codec(e.to_string()))?,
        );
        let once = || self.send::<A>(subject.clone(), body.clone());
        match retry {
            Retry::Never => once().await,
            Retry::Idempotent => once.retry(self.backoff).when(CallError::unanswered).await,
        }
    }

    async fn send<A: DeserializeOwned>(
        &self,
        subject: String,
        body: bytes::Bytes,
    ) -> Result<A, CallError> {
        let headers = bus::trace_headers(&tracing::Span::current().context());
        let call = self.nats.request_with_headers(subject, headers, body);
        let reply = match tokio::time::timeout(self.timeout, call).await {
            Err(_) => return Err(CallError::Timeout),
            Ok(Err(e)) => return Err(request_error(e)),
            Ok(Ok(reply)) => reply,
        };
        serde_json::from_slice::<Reply<A>>(&reply.payload)
            .map_err(|e| CallError::Codec(e.to_string()))?
            .into_result()
            .map_err(CallError::Refused)
    }
}

fn request_error(e: async_nats::RequestError) -> CallError {
    use async_nats::RequestErrorKind;
    match e.kind() {
        RequestErrorKind::NoResponders => CallError::NoResponders,
        RequestErrorKind::TimedOut => CallError::Timeout,
        _ => CallError::Transport(e.to_string()),
    }
}

/// The match host's endpoints (`dd.match.*`).
#[derive(Clone, Debug)]
pub struct MatchHostClient {
    bus: Requester,
}

impl MatchHostClient {
    pub fn new(bus: Requester) -> Self {
        MatchHostClient { bus }
    }

    /// Applies a player's action (idempotent by its request id; not retried
    /// here, so the caller sees a timeout and decides).
    pub async fn act(&self, request: &ActRequest) -> Result<ActionReply, CallError> {
        let subject = bus::match_request(endpoint::ACT);
        self.bus.call(subject, request, Retry::Never).await
    }

    /// Starts a match; only whether it exists matters to the caller (the
    /// matchmaker), so the reply is not decoded beyond its envelope. With a
    /// caller-chosen `match_id` this is idempotent (a repeat is refused with
    /// `match_exists`), and it is retried.
    pub async fn start(&self, request: &CreateMatch) -> Result<(), CallError> {
        let retry = match request.match_id {
            Some(_) => Retry::Idempotent,
            None => Retry::Never,
        };
        let subject = bus::match_request(endpoint::CREATE);
        let _: serde::de::IgnoredAny = self.bus.call(subject, request, retry).await?;
        Ok(())
    }

    /// The match's current public view.
    pub async fn get(&self, match_id: &str) -> Result<Snapshot, CallError> {
        let request = MatchIdRequest {
            match_id: match_id.to_owned(),
        };
        let subject = bus::match_request(endpoint::GET);
        self.bus.call(subject, &request, Retry::Never).await
    }

    /// The match's events with `seq > after`, oldest first.
    pub async fn events(
        &self,
        match_id: &str,
        after: u64,
    ) -> Result<Vec<SequencedEvent>, CallError> {
        let request = EventsRequest {
            match_id: match_id.to_owned(),
            after,
        };
        let subject = bus::match_request(endpoint::EVENTS);
        self.bus.call(subject, &request, Retry::Never).await
    }
}

/// The matchmaker's endpoints (`dd.queue.*`). None is retried: joins and
/// invites start work, and the caller's client decides.
#[derive(Clone, Debug)]
pub struct MatchmakerClient {
    bus: Requester,
}

impl MatchmakerClient {
    pub fn new(bus: Requester) -> Self {
        MatchmakerClient { bus }
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        endpoint: &str,
        request: &Q,
    ) -> Result<A, CallError> {
        let subject = bus::queue_request(endpoint);
        self.bus.call(subject, request, Retry::Never).await
    }

    pub async fn join(&self, request: &JoinRequest) -> Result<Status, CallError> {
        self.call(queue_endpoint::JOIN, request).await
    }

    pub async fn leave(&self, player: &str) -> Result<Status, CallError> {
        let request = PlayerRequest {
            player: player.to_owned(),
        };
        self.call(queue_endpoint::LEAVE, &request).await
    }

    pub async fn status(&self, player: &str) -> Result<Status, CallError> {
        let request = PlayerRequest {
            player: player.to_owned(),
        };
        self.call(queue_endpoint::STATUS, &request).await
    }

    pub async fn create_invite(&self, request: &CreateInviteRequest) -> Result<Invite, CallError> {
        self.call(queue_endpoint::PRIVATE_CREATE, request).await
    }

    pub async fn join_invite(&self, request: &JoinInviteRequest) -> Result<Status, CallError> {
        self.call(queue_endpoint::PRIVATE_JOIN, request).await
    }

    pub async fn rematch(&self, request: &RematchRequest) -> Result<RematchStatus, CallError> {
        self.call(queue_endpoint::REMATCH, request).await
    }

    /// Invites `request.to` to a private match (the caller checked they
    /// are friends).
    pub async fn invite_player(&self, request: &DirectInviteRequest) -> Result<Invite, CallError> {
        self.call(queue_endpoint::PRIVATE_INVITE, request).await
    }

    /// Declines a direct invite made to `request.player`.
    pub async fn decline_invite(&self, request: &JoinInviteRequest) -> Result<Status, CallError> {
        self.call(queue_endpoint::PRIVATE_DECLINE, request).await
    }
}

/// The archiver's endpoints (`dd.archive.*`). Every call is a read except
/// `rename`, which sets a value (so repeating it is harmless too): all are
/// retried when nothing answered.
#[derive(Clone, Debug)]
pub struct ArchiveClient {
    bus: Requester,
}

impl ArchiveClient {
    pub fn new(bus: Requester) -> Self {
        ArchiveClient { bus }
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        endpoint: &str,
        request: &Q,
    ) -> Result<A, CallError> {
        let subject = bus::archive_request(endpoint);
        self.bus.call(subject, request, Retry::Idempotent).await
    }

    pub async fn profile(&self, uid: &str) -> Result<Profile, CallError> {
        let request = ProfileRequest {
            uid: uid.to_owned(),
        };
        self.call(archive_endpoint::PROFILE, &request).await
    }

    pub async fn rename(&self, request: &RenameRequest) -> Result<Profile, CallError> {
        self.call(archive_endpoint::RENAME, request).await
    }

    pub async fn history(&self, request: &HistoryRequest) -> Result<HistoryPage, CallError> {
        self.call(archive_endpoint::HISTORY, request).await
    }

    pub async fn archived_match(&self, match_id: &str) -> Result<ArchivedMatch, CallError> {
        let request = MatchIdRequest {
            match_id: match_id.to_owned(),
        };
        self.call(archive_endpoint::MATCH, &request).await
    }

    pub async fn leaderboard(
        &self,
        request: &LeaderboardRequest,
    ) -> Result<Leaderboard, CallError> {
        self.call(archive_endpoint::LEADERBOARD, request).await
    }
}

/// The archiver's friends endpoints (`dd.archive.friends.*`), on the
/// archive client: friends live beside profiles, in Firestore.
impl ArchiveClient {
    /// A player's friends, requests both ways and blocks.
    pub async fn friends(&self, uid: &str) -> Result<FriendList, CallError> {
        let request = FriendListRequest {
            uid: uid.to_owned(),
        };
        self.call(archive_endpoint::FRIENDS_LIST, &request).await
    }

    /// `uid` does `verb` (one of `archive_endpoint::FRIENDS_*` but list)
    /// about `other`: the link as `uid` now sees it, or `None` when none is
    /// left.
    pub async fn befriend(
        &self,
        verb: &'static str,
        uid: &str,
        other: &str,
    ) -> Result<Option<FriendLink>, CallError> {
        let request = FriendAction {
            uid: uid.to_owned(),
            other: other.to_owned(),
        };
        self.call(verb, &request).await
    }
}

/// The presence role's endpoints (`dd.presence.*`). Reports from gateways
/// (a connection is live, hidden, gone; an activity) are sent once: they
/// ride along players' requests, which must not wait on presence, and the
/// next heartbeat repairs a lost one. Reads are retried when nothing
/// answered.
#[derive(Clone, Debug)]
pub struct PresenceClient {
    bus: Requester,
}

impl PresenceClient {
    pub fn new(bus: Requester) -> Self {
        PresenceClient { bus }
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        endpoint: &str,
        request: &Q,
        retry: Retry,
    ) -> Result<A, CallError> {
        let subject = bus::presence_request(endpoint);
        self.bus.call(subject, request, retry).await
    }

    pub async fn connect(&self, request: &Connect) -> Result<Presence, CallError> {
        self.call(presence_endpoint::CONNECT, request, Retry::Never)
            .await
    }

    pub async fn heartbeat(&self, request: &Heartbeat) -> Result<HeartbeatReply, CallError> {
        self.call(presence_endpoint::HEARTBEAT, request, Retry::Never)
            .await
    }

    pub async fn visibility(&self, request: &Visibility) -> Result<Presence, CallError> {
        self.call(presence_endpoint::VISIBILITY, request, Retry::Never)
            .await
    }

    pub async fn disconnect(&self, request: &Disconnect) -> Result<Presence, CallError> {
        self.call(presence_endpoint::DISCONNECT, request, Retry::Never)
            .await
    }

    pub async fn activity(&self, request: &SetActivity) -> Result<Presence, CallError> {
        self.call(presence_endpoint::ACTIVITY, request, Retry::Never)
            .await
    }

    /// The presence of `uids`, in that order.
    pub async fn query(&self, uids: Vec<String>) -> Result<Vec<Presence>, CallError> {
        let request = PresenceQuery { uids };
        self.call(presence_endpoint::QUERY, &request, Retry::Idempotent)
            .await
    }

    pub async fn lobby(&self) -> Result<Lobby, CallError> {
        self.call(
            presence_endpoint::LOBBY,
            &LobbyRequest {},
            Retry::Idempotent,
        )
        .await
    }
}

/// The notifier's endpoints (`dd.notify.*`): the inbox, devices and
/// broadcasts. Every call is safe to repeat (reads; marks and deletes that
/// end in the same state; registrations keyed by token; broadcasts by id),
/// so all are retried when nothing answered.
#[derive(Clone, Debug)]
pub struct NotifierClient {
    bus: Requester,
}

impl NotifierClient {
    pub fn new(bus: Requester) -> Self {
        NotifierClient { bus }
    }

    async fn call<Q: Serialize, A: DeserializeOwned>(
        &self,
        endpoint: &str,
        request: &Q,
    ) -> Result<A, CallError> {
        let subject = bus::notify_request(endpoint);
        self.bus.call(subject, request, Retry::Idempotent).await
    }

    pub async fn list(&self, request: &InboxList) -> Result<InboxPage, CallError> {
        self.call(notify_endpoint::INBOX_LIST, request).await
    }

    pub async fn unread(&self, uid: &str) -> Result<Unread, CallError> {
        let request = InboxUnread {
            uid: uid.to_owned(),
        };
        self.call(notify_endpoint::INBOX_UNREAD, &request).await
    }

    pub async fn mark_read(&self, request: &InboxMark) -> Result<Unread, CallError> {
        self.call(notify_endpoint::INBOX_READ, request).await
    }

    pub async fn mark_all_read(&self, uid: &str) -> Result<Unread, CallError> {
        let request = InboxMarkAll {
            uid: uid.to_owned(),
        };
        self.call(notify_endpoint::INBOX_READ_ALL, &request).await
    }

    pub async fn delete(&self, request: &InboxDelete) -> Result<Unread, CallError> {
        self.call(notify_endpoint::INBOX_DELETE, request).await
    }

    pub async fn register_device(&self, request: &RegisterDevice) -> Result<Devices, CallError> {
        self.call(notify_endpoint::DEVICES_REGISTER, request).await
    }

    pub async fn unregister_device(
        &self,
        request: &UnregisterDevice,
    ) -> Result<Devices, CallError> {
        self.call(notify_endpoint::DEVICES_UNREGISTER, request)
            .await
    }

    /// Operators only: the NATS server refuses this subject to other users.
    pub async fn broadcast(&self, request: &Broadcast) -> Result<Broadcasted, CallError> {
        self.call(notify_endpoint::BROADCAST, request).await
    }
}

/// Why a notification request was not stored on the stream.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("the notification request is invalid: {0}")]
    Invalid(String),
    #[error("the notification stream did not take the request: {0}")]
    Stream(String),
}

/// How roles ask for a notification: a [`NotifyRequest`] published on
/// [`bus::NOTIFY_STREAM`] with its id as the JetStream message id (a repeat
/// is dropped by the stream), waiting for the stream's acknowledgement and
/// retrying across a NATS reconnect. Callers that must not wait (a request
/// path) spawn [`Notifications::send`]; nothing here calls FCM.
#[derive(Clone)]
pub struct Notifications {
    js: async_nats::jetstream::Context,
    backoff: ExponentialBuilder,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications").finish_non_exhaustive()
    }
}

impl Notifications {
    /// Tries five times in all, 100 ms to 2 s apart (with jitter).
    pub fn new(nats: async_nats::Client) -> Self {
        Notifications {
            js: async_nats::jetstream::new(nats),
            backoff: ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(2))
                .with_max_times(4)
                .with_jitter(),
        }
    }

    /// Stores `request` on the stream (checked first: a bad request is a
    /// bug of the caller, refused here rather than by the notifier).
    pub async fn send(&self, request: &NotifyRequest) -> Result<(), NotifyError> {
        crate::notify::check_request(request).map_err(NotifyError::Invalid)?;
        let body = bytes::Bytes::from(
            serde_json::to_vec(request).map_err(|e| NotifyError::Invalid(e.to_string()))?,
        );
        let subject = bus::notify_stream_subject(request.kind);
        let once = || async {
            let mut headers = bus::trace_headers(&tracing::Span::current().context());
            headers.insert("Nats-Msg-Id", request.id.as_str());
            let ack = self
                .js
                .publish_with_headers(subject.clone(), headers, body.clone())
                .await
                .map_err(|e| NotifyError::Stream(e.to_string()))?;
            ack.await
                .map(|_| ())
                .map_err(|e| NotifyError::Stream(e.to_string()))
        };
        once.retry(self.backoff).await
    }

    /// [`Self::send`] in the background: a failure after every retry is
    /// logged and counted, and the caller's request goes on.
    pub fn spawn(&self, request: NotifyRequest) {
        let me = self.clone();
        tokio::spawn(
            async move {
                if let Err(e) = me.send(&request).await {
                    tracing::warn!(error = %e, kind = request.kind.as_str(), "notification request lost");
                }
            }
            .in_current_span(),
        );
    }
}
