//! The workers behind the gateway, as typed calls: the match host, the
//! matchmaker, the archiver, presence and the notifier over NATS
//! request/reply, and the live subjects a connection listens to, through
//! `dashdice_proto`'s typed clients: every request carries the current
//! span's trace context, so one trace runs gateway → worker → Redis.
//! Nothing is retried here: a client that saw `timeout` repeats its request
//! with the same request id. (The archive and notifier clients retry their
//! own calls when nothing answered: they are reads, or set a value.)

use std::time::Duration;

use super::error::ApiError;
use super::protocol::{Archived, MatchAnswer};
use dashdice_proto::ErrorCode;
use dashdice_proto::archive::{
    ArchivedMatch, HistoryPage, HistoryRequest, Leaderboard, LeaderboardRequest, Profile,
    RenameRequest,
};
use dashdice_proto::bus;
use dashdice_proto::client::{
    ArchiveClient, MatchHostClient, MatchmakerClient, NotifierClient, PresenceClient, Requester,
};
use dashdice_proto::friends::{FriendLink, FriendList};
use dashdice_proto::matches::{ActRequest, ActionReply, SequencedEvent, Snapshot};
use dashdice_proto::notify::{
    Devices, InboxDelete, InboxList, InboxMark, InboxPage, RegisterDevice, Unread, UnregisterDevice,
};
use dashdice_proto::presence::{Activity, Lobby, Presence, SetActivity};
use dashdice_proto::queue::{
    CreateInviteRequest, DirectInviteRequest, Invite, JoinInviteRequest, JoinRequest,
    RematchRequest, RematchStatus, Status,
};

/// The longest a player's request waits on a presence report.
pub const REPORT_WITHIN: Duration = Duration::from_millis(500);

#[derive(Clone)]
pub struct Backend {
    bus: Requester,
    host: MatchHostClient,
    queue: MatchmakerClient,
    archive: ArchiveClient,
    presence: PresenceClient,
    notifier: NotifierClient,
}

impl Backend {
    pub fn new(nats: async_nats::Client, timeout: Duration) -> Self {
        let bus = Requester::new(nats, timeout);
        Backend {
            host: MatchHostClient::new(bus.clone()),
            queue: MatchmakerClient::new(bus.clone()),
            archive: ArchiveClient::new(bus.clone()),
            presence: PresenceClient::new(bus.clone()),
            notifier: NotifierClient::new(bus.clone()),
            bus,
        }
    }

    /// Whether the NATS connection is up (for `/ready`).
    pub fn connected(&self) -> bool {
        self.bus.connected()
    }

    /// Joins a queue; presence learns the player is matchmaking (or
    /// playing, when the join made a match at once).
    pub async fn join(&self, request: &JoinRequest) -> Result<Status, ApiError> {
        let status = self.queue.join(request).await?;
        self.follow_status(&request.player, &status).await;
        Ok(status)
    }

    pub async fn leave(&self, player: &str) -> Result<Status, ApiError> {
        let status = self.queue.leave(player).await?;
        self.follow_status(player, &status).await;
        Ok(status)
    }

    /// Tells presence what a queue answer says the player does now.
    async fn follow_status(&self, player: &str, status: &Status) {
        let (activity, match_id) = match status {
            Status::Idle => (Activity::Menu, None),
            Status::Queued { .. } | Status::Hosting { .. } | Status::Matching => {
                (Activity::Matchmaking, None)
            }
            Status::Playing { match_id } => (Activity::InMatch, Some(match_id.clone())),
        };
        self.set_activity(player, activity, match_id).await;
    }

    pub async fn status(&self, player: &str) -> Result<Status, ApiError> {
        Ok(self.queue.status(player).await?)
    }

    pub async fn create_invite(&self, request: &CreateInviteRequest) -> Result<Invite, ApiError> {
        let invite = self.queue.create_invite(request).await?;
        self.set_activity(&request.player, Activity::Matchmaking, None)
            .await;
        Ok(invite)
    }

    pub async fn join_invite(&self, request: &JoinInviteRequest) -> Result<Status, ApiError> {
        let status = self.queue.join_invite(request).await?;
        self.follow_status(&request.player, &status).await;
        Ok(status)
    }

    pub async fn rematch(&self, request: &RematchRequest) -> Result<RematchStatus, ApiError> {
        Ok(self.queue.rematch(request).await?)
    }

    pub async fn act(&self, request: &ActRequest) -> Result<ActionReply, ApiError> {
        Ok(self.host.act(request).await?)
    }

    pub async fn get(&self, match_id: &str) -> Result<Snapshot, ApiError> {
        Ok(self.host.get(match_id).await?)
    }

    /// The match's events with `seq > after`, oldest first.
    pub async fn events(
        &self,
        match_id: &str,
        after: u64,
    ) -> Result<Vec<SequencedEvent>, ApiError> {
        Ok(self.host.events(match_id, after).await?)
    }

    /// A player's public profile (`unknown_user` if the archive has none).
    pub async fn profile(&self, uid: &str) -> Result<Profile, ApiError> {
        Ok(self.archive.profile(uid).await?)
    }

    /// The caller's own profile: a signed-in player always has one, so one
    /// the archive does not know yet (no match, no name) is empty.
    pub async fn own_profile(&self, uid: &str) -> Result<Profile, ApiError> {
        match self.archive.profile(uid).await {
            Err(e) if e.code() == ErrorCode::UnknownUser => Ok(Profile {
                uid: uid.to_owned(),
                ..Profile::default()
            }),
            answer => Ok(answer?),
        }
    }

    pub async fn rename(&self, request: &RenameRequest) -> Result<Profile, ApiError> {
        Ok(self.archive.rename(request).await?)
    }

    /// A page of a player's history, newest first.
    pub async fn history(&self, request: &HistoryRequest) -> Result<HistoryPage, ApiError> {
        Ok(self.archive.history(request).await?)
    }

    /// A finished match as the archive keeps it.
    pub async fn archived_match(&self, match_id: &str) -> Result<ArchivedMatch, ApiError> {
        Ok(self.archive.archived_match(match_id).await?)
    }

    pub async fn leaderboard(&self, request: &LeaderboardRequest) -> Result<Leaderboard, ApiError> {
        Ok(self.archive.leaderboard(request).await?)
    }

    /// The match as the host has it, or once the host has let it go
    /// (`unknown_match`), as the archive keeps it. Without an archive to ask,
    /// the host's `unknown_match` stands.
    pub async fn live_or_archived(&self, match_id: &str) -> Result<MatchAnswer, ApiError> {
        let expired = match self.host.get(match_id).await {
            Ok(snapshot) => return Ok(MatchAnswer::Live(Box::new(snapshot))),
            Err(e) if e.code() == ErrorCode::UnknownMatch => ApiError::from(e),
            Err(e) => return Err(e.into()),
        };
        match self.archive.archived_match(match_id).await {
            Ok(archived) => Ok(MatchAnswer::Archived(Box::new(Archived {
                archived_match: archived,
                archived: true,
            }))),
            Err(e) if e.code() == ErrorCode::UnknownMatch => Err(e.into()),
            Err(e) => Err(ApiError::new(
                expired.code,
                format!("{}; the archive could not be asked ({e})", expired.message),
            )),
        }
    }

    /// The match's live events (core NATS: at most once; see `ws` for how
    /// gaps are filled).
    pub async fn live_events(&self, match_id: &str) -> Result<async_nats::Subscriber, ApiError> {
        self.bus
            .nats()
            .subscribe(bus::match_events(match_id))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("nats: {e}")))
    }

    /// The player's notices: match found, rematch offered.
    pub async fn notices(&self, player: &str) -> Result<async_nats::Subscriber, ApiError> {
        self.bus
            .nats()
            .subscribe(bus::user_notify(player))
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("nats: {e}")))
    }
}

/// Presence, friends, direct invites and the lobby: the presence role
/// (`dd.presence.*`), the archiver's friends (`dd.archive.friends.*`) and
/// the matchmaker's direct invites.
impl Backend {
    /// Reports a connection, a heartbeat batch, a visibility change, a
    /// close or an activity to the presence role, waiting at most
    /// [`REPORT_WITHIN`]. Presence is a courtesy to other players: a failed
    /// report is logged and the player's own request goes on (the next
    /// heartbeat repairs a lost connection).
    pub async fn report<F, T>(&self, what: &'static str, call: F)
    where
        F: std::future::Future<Output = Result<T, dashdice_proto::client::CallError>>,
    {
        match tokio::time::timeout(REPORT_WITHIN, call).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::debug!(report = what, error = %e, "presence report failed"),
            Err(_) => tracing::debug!(report = what, "presence report timed out"),
        }
    }

    pub fn presence(&self) -> &PresenceClient {
        &self.presence
    }

    /// Sets the player's activity, as a join, an invite or a leave changed it.
    pub async fn set_activity(&self, uid: &str, activity: Activity, match_id: Option<String>) {
        let request = SetActivity {
            uid: uid.to_owned(),
            activity,
            match_id,
        };
        self.report("activity", self.presence.activity(&request))
            .await;
    }

    /// The presence of `uids`, in that order.
    pub async fn presences(&self, uids: Vec<String>) -> Result<Vec<Presence>, ApiError> {
        Ok(self.presence.query(uids).await?)
    }

    pub async fn lobby(&self) -> Result<Lobby, ApiError> {
        Ok(self.presence.lobby().await?)
    }

    pub async fn friends(&self, uid: &str) -> Result<FriendList, ApiError> {
        Ok(self.archive.friends(uid).await?)
    }

    /// `uid` does `verb` (an `archive_endpoint::FRIENDS_*`) about `other`.
    pub async fn befriend(
        &self,
        verb: &'static str,
        uid: &str,
        other: &str,
    ) -> Result<Option<FriendLink>, ApiError> {
        Ok(self.archive.befriend(verb, uid, other).await?)
    }

    /// Invites a friend (the caller checked the friendship).
    pub async fn invite_player(&self, request: &DirectInviteRequest) -> Result<Invite, ApiError> {
        let invite = self.queue.invite_player(request).await?;
        self.set_activity(&request.player, Activity::Matchmaking, None)
            .await;
        Ok(invite)
    }

    pub async fn decline_invite(&self, request: &JoinInviteRequest) -> Result<Status, ApiError> {
        Ok(self.queue.decline_invite(request).await?)
    }

    /// A user's presence as it changes (core NATS; ordered by `version`).
    pub async fn presence_changes(&self, uid: &str) -> Result<async_nats::Subscriber, ApiError> {
        self.subscribe(bus::presence_changes(uid)).await
    }

    /// A match's players losing or regaining their connection.
    pub async fn match_presence(&self, match_id: &str) -> Result<async_nats::Subscriber, ApiError> {
        self.subscribe(bus::match_presence(match_id)).await
    }

    async fn subscribe(&self, subject: String) -> Result<async_nats::Subscriber, ApiError> {
        self.bus
            .nats()
            .subscribe(subject)
            .await
            .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("nats: {e}")))
    }
}

/// The user's inbox and devices: the notifier's endpoints (`dd.notify.*`).
/// Every call is safe to repeat, and the notifier client retries when
/// nothing answered; the caller checked the request (`inbox`).
impl Backend {
    /// A page of the user's inbox, newest first.
    pub async fn inbox(&self, request: &InboxList) -> Result<InboxPage, ApiError> {
        Ok(self.notifier.list(request).await?)
    }

    pub async fn unread(&self, uid: &str) -> Result<Unread, ApiError> {
        Ok(self.notifier.unread(uid).await?)
    }

    /// `not_found` if the user has no such notification.
    pub async fn mark_read(&self, request: &InboxMark) -> Result<Unread, ApiError> {
        Ok(self.notifier.mark_read(request).await?)
    }

    pub async fn mark_all_read(&self, uid: &str) -> Result<Unread, ApiError> {
        Ok(self.notifier.mark_all_read(uid).await?)
    }

    /// `not_found` if the user has no such notification.
    pub async fn delete_notification(&self, request: &InboxDelete) -> Result<Unread, ApiError> {
        Ok(self.notifier.delete(request).await?)
    }

    pub async fn register_device(&self, request: &RegisterDevice) -> Result<Devices, ApiError> {
        Ok(self.notifier.register_device(request).await?)
    }

    pub async fn unregister_device(&self, request: &UnregisterDevice) -> Result<Devices, ApiError> {
        Ok(self.notifier.unregister_device(request).await?)
    }
}
