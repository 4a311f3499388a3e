//! Matchmaking: queues, pairing, private matches by invite code (shared, or
//! sent to one player: direct invites), rematches, and handing pairs to the
//! match host.
//!
//! Architecture invariant: like the match host's hosting logic, this knows the rules (who
//! may queue, who may meet, what happens when creating a match fails) but
//! neither NATS nor Redis commands. It reaches the match host and the players
//! through the [`Matches`] and [`Notify`] traits, the store through
//! [`QueueStore`], and the notifier (direct invites and rematch offers kept
//! in the invitee's inbox and pushed when they are away) through the typed
//! [`Notifications`] publisher, if given ([`Matchmaker::with_notifications`]).
//!
//! ## Invariants
//!
//! - A player holds at most one ticket, and is never in a queue while in a
//!   match: the player's state (`queued` or `hosting` → `matching` →
//!   `playing`) changes only by compare-and-set, and a join, a new invite
//!   code, joining by code or agreeing to a rematch is refused unless the
//!   state is free. So nobody queues while hosting a code, or hosts while
//!   queued.
//! - A ticket is in at most one match: tickets are claimed by one atomic
//!   script that takes all of a pair or none.
//! - No ticket is lost: a pair whose match cannot be created goes back to the
//!   queue with its original join time; if one player left meanwhile, the
//!   other goes back alone.
//! - A direct invite's end (accepted, declined, expired, withdrawn) is told
//!   once: the matchmaker that removes its entry from the store's due set
//!   tells the players, and only it (see `private.rs`).
//!
//! ## One pairing
//!
//! find candidates in the window (store) → choose the best (policy) → take
//! both tickets (atomic) → mark both players `matching` (CAS) → create the
//! match (match host) → mark both `playing` (CAS) → tell both.
//!
//! ## Where things are
//!
//! - here: the [`Matches`] and [`Notify`] traits, [`MatchmakingError`], and
//!   the [`Matchmaker`] with what every part shares (player states, claims,
//!   telling players of a match) and the queues: join, leave, status, the
//!   periodic pass (which also expires direct invites), pairing, and freeing
//!   the players of a finished match;
//! - `dashdice_proto::queue`: the JSON shapes of requests, replies, notices
//!   and stored player states (re-exported here);
//! - `private.rs`: private matches by invite code, and direct invites (a
//!   code only one player may join, told to them);
//! - `rematch.rs`: rematches of finished matches;
//! - [`policy`]: who may meet whom, and when; [`ratings`]: Glicko-2 ratings;
//! - [`service`]: the `dashdice matchmaker` role on NATS.

pub mod policy;
pub mod ratings;

mod private;
mod rematch;
pub mod service;

use std::collections::BTreeSet;
use std::future::Future;
use std::time::Duration;

pub use dashdice_proto::queue::QueueKind;
pub use dashdice_proto::queue::{
    Connection, CreateInviteRequest, DirectInviteRequest, Invite, JoinInviteRequest, JoinRequest,
    MatchFound, MatchingFor, NewMatch, Notice, Opponent, Origin, PlayerRequest, PlayerState,
    RematchRequest, RematchStatus, Status,
};
pub use policy::{Policy, PrivatePolicy, Ticket, Window};
pub use private::{CODE_ALPHABET, CODE_LEN, normalize_code};
pub use ratings::{Rating, Ratings, RatingsStore};

use dashdice_proto::ErrorCode;
use dashdice_proto::client::{CallError, Notifications};
use dashdice_proto::clock::{self, SharedClock, now_ms};
use dashdice_proto::notify::{NotificationKind, NotifyRequest};
use dashdice_store::StoreError;
use dashdice_store::queues::{QueueKeys, QueuePosition, QueueStore, StoredTicket};

/// A `matching` state older than this is taken to be left behind by a
/// matchmaker that died mid-pairing, and a new join may replace it.
pub const STALE_MATCHING: Duration = Duration::from_secs(60);
/// Candidates fetched per region and side (above and below the rating) for
/// one search: the nearest ones, which are the best by the policy's first
/// criterion.
const CANDIDATES_PER_SIDE: usize = 8;
/// Tickets looked at per queue by one periodic pass.
const PASS_LIMIT: usize = 1_000;
/// How long a `playing` state lasts if the end of its match is never heard.
const PLAYING_TTL: Duration = Duration::from_secs(24 * 3600);
/// Player ids that start with this are the host's bots.
pub const BOT_PREFIX: &str = "bot:";

/// The match host, as the matchmaker needs it.
pub trait Matches: Send + Sync {
    /// Creates a match; returns its id, or why not.
    fn create(&self, new: &NewMatch) -> impl Future<Output = Result<String, CallError>> + Send;
    /// Whether the match is over (`Some(true)` also for unknown matches), or
    /// `None` if the host cannot say now.
    fn is_over(&self, match_id: &str) -> impl Future<Output = Option<bool>> + Send;
    /// The record of a finished match the host still has, if any. A rematch
    /// offered the moment a match ends may beat its record through the
    /// stream; this opens the window anyway. By default there is none, and
    /// such an offer waits for the stream.
    fn finished_record(
        &self,
        match_id: &str,
    ) -> impl Future<Output = Option<dashdice_proto::record::MatchRecord>> + Send {
        let _ = match_id;
        async { None }
    }
}

/// The players' notification channel.
pub trait Notify: Send + Sync {
    /// Tells `player` (core NATS: at most once; a player who missed a
    /// notice sees the same in their status).
    fn notify(
        &self,
        player: &str,
        notice: &Notice,
    ) -> impl Future<Output = Result<(), CallError>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum MatchmakingError {
    #[error("unknown mode {0:?}")]
    UnknownMode(String),
    #[error("unknown region {0:?}; known regions: {1}")]
    UnknownRegion(String, String),
    #[error("{0}")]
    BadRequest(String),
    #[error("already queued for {mode} ({kind}); leave that queue first")]
    AlreadyQueued { mode: String, kind: &'static str },
    #[error("already in match {0}")]
    InMatch(String),
    #[error("a match is being made for this player")]
    Matching,
    #[error("waiting for a guest with invite code {0}; leave to cancel it first")]
    Hosting(String),
    #[error("no such invite code: it expired, was cancelled, or never existed")]
    UnknownCode,
    #[error("this invite code has already been used")]
    CodeUsed,
    #[error("this is your own invite code; another player must join with it")]
    OwnCode,
    #[error("players cannot invite themselves")]
    Yourself,
    #[error("this invite was made to another player, or no longer stands")]
    NotInvited,
    #[error("no rematch of match {0} can be offered: its window has closed (or it is unknown)")]
    RematchExpired(String),
    #[error("{player} did not play in match {match_id}")]
    NotInMatch { player: String, match_id: String },
    #[error("{0} is busy elsewhere now and cannot play the rematch")]
    OpponentBusy(String),
    #[error("the match could not be created now: {0}")]
    Unavailable(String),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("a stored record could not be read: {0}")]
    Corrupt(#[from] serde_json::Error),
}

impl MatchmakingError {
    /// A stable, machine-readable code for clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            MatchmakingError::UnknownMode(_) => ErrorCode::UnknownMode,
            MatchmakingError::UnknownRegion(..) => ErrorCode::UnknownRegion,
            MatchmakingError::BadRequest(_) => ErrorCode::BadRequest,
            MatchmakingError::AlreadyQueued { .. } => ErrorCode::AlreadyQueued,
            MatchmakingError::InMatch(_) => ErrorCode::InMatch,
            MatchmakingError::Matching => ErrorCode::Matching,
            MatchmakingError::Hosting(_) => ErrorCode::Hosting,
            MatchmakingError::UnknownCode => ErrorCode::UnknownCode,
            MatchmakingError::CodeUsed => ErrorCode::CodeUsed,
            MatchmakingError::OwnCode => ErrorCode::OwnCode,
            MatchmakingError::Yourself => ErrorCode::Yourself,
            MatchmakingError::NotInvited => ErrorCode::NotInvited,
            MatchmakingError::RematchExpired(_) => ErrorCode::RematchExpired,
            MatchmakingError::NotInMatch { .. } => ErrorCode::NotInMatch,
            MatchmakingError::OpponentBusy(_) => ErrorCode::OpponentBusy,
            MatchmakingError::Unavailable(_) => ErrorCode::Unavailable,
            MatchmakingError::Store(_) => ErrorCode::Unavailable,
            MatchmakingError::Corrupt(_) => ErrorCode::Internal,
        }
    }
}

/// The matchmaker's logic; stateless, any number run side by side.
pub struct Matchmaker<M, N> {
    store: QueueStore,
    ratings: Ratings,
    pub policy: Policy,
    /// Invite codes' lifetime and the rematch window.
    pub private: PrivatePolicy,
    /// Where "now" comes from: the system clock, or a test's.
    pub clock: SharedClock,
    modes: ModeSet,
    regions: BTreeSet<String>,
    matches: M,
    notify: N,
    /// Where notification requests go; `None` asks for none.
    notifications: Option<Notifications>,
}

/// A notification request for `uid` (see `dashdice_proto::notify`); `id`
/// comes from the event, so asking again is harmless.
fn notify_request(
    id: String,
    uid: &str,
    kind: NotificationKind,
    data: &[(&str, &str)],
    created_ms: u64,
) -> NotifyRequest {
    NotifyRequest::new(id, uid, kind, data.iter().copied(), created_ms)
}

fn random_id(prefix: &str) -> String {
    // The OS being out of randomness is not recoverable here; fall back to
    // the clock, which still makes ids unique enough to tell tickets apart.
    let hex =
        dashdice_proto::ids::random_hex::<12>().unwrap_or_else(|_| format!("{:024x}", now_ms()));
    format!("{prefix}{hex}")
}

/// The modes a matchmaker takes queues for.
enum ModeSet {
    /// A list fixed at start (tests, a matchmaker without a catalog).
    Fixed(BTreeSet<String>),
    /// Whatever the catalog makes playable now: built-in modes and
    /// published ones, minus retired and quarantined.
    Book(dashdice_catalog::ModeBook),
}

/// Why a busy player cannot start something new.
fn busy(state: PlayerState) -> MatchmakingError {
    match state {
        PlayerState::Queued { mode, kind, .. } => MatchmakingError::AlreadyQueued {
            mode,
            kind: kind.as_str(),
        },
        PlayerState::Hosting { code, .. } => MatchmakingError::Hosting(code),
        PlayerState::Matching { .. } => MatchmakingError::Matching,
        PlayerState::Playing { match_id, .. } => MatchmakingError::InMatch(match_id),
    }
}

/// A player's state, as far as starting something new goes.
enum Current {
    /// Nothing, or a state left behind; what is stored, to compare-and-set
    /// against.
    Free(Option<String>),
    /// Queued, hosting a live code, being matched, or in a live match.
    Busy(PlayerState),
}

/// What [`Matchmaker::claim_free`] did.
enum Claimed {
    Done,
    Busy(PlayerState),
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

impl<M: Matches, N: Notify> Matchmaker<M, N> {
    pub fn new(
        store: QueueStore,
        policy: Policy,
        modes: impl IntoIterator<Item = String>,
        regions: impl IntoIterator<Item = String>,
        matches: M,
        notify: N,
    ) -> Self {
        Matchmaker {
            ratings: Ratings::new(store.clone()),
            store,
            policy,
            private: PrivatePolicy::default(),
            clock: clock::system(),
            modes: ModeSet::Fixed(modes.into_iter().collect()),
            regions: regions.into_iter().collect(),
            matches,
            notify,
            notifications: None,
        }
    }

    /// Asks the notifier to tell invitees of direct invites and players of
    /// rematch offers (in the background: no request waits on it).
    pub fn with_notifications(mut self, notifications: Notifications) -> Self {
        self.notifications = Some(notifications);
        self
    }

    /// Whether notification requests are made.
    pub fn notifies(&self) -> bool {
        self.notifications.is_some()
    }

    /// Sends `request` to the notifier in the background, if notifications
    /// are on.
    pub(crate) fn request_notification(&self, request: NotifyRequest) {
        if let Some(notifications) = &self.notifications {
            notifications.spawn(request);
        }
    }

    pub fn ratings(&self) -> &Ratings {
        &self.ratings
    }

    /// Takes queues for the modes `book` makes playable, as they change,
    /// instead of a fixed list.
    pub fn with_book(mut self, book: dashdice_catalog::ModeBook) -> Self {
        self.modes = ModeSet::Book(book);
        self
    }

    /// The modes queues are taken for now.
    pub fn modes(&self) -> Vec<String> {
        match &self.modes {
            ModeSet::Fixed(modes) => modes.iter().cloned().collect(),
            ModeSet::Book(book) => book.playable_ids(),
        }
    }

    pub(crate) fn is_playable(&self, mode: &str) -> bool {
        match &self.modes {
            ModeSet::Fixed(modes) => modes.contains(mode),
            ModeSet::Book(book) => book.is_playable(mode),
        }
    }

    fn check(&self, request: &JoinRequest) -> Result<(), MatchmakingError> {
        check_player(&request.player)?;
        if !self.is_playable(&request.mode) {
            return Err(MatchmakingError::UnknownMode(request.mode.clone()));
        }
        let unknown = |r: &str| {
            MatchmakingError::UnknownRegion(
                r.to_owned(),
                self.regions.iter().cloned().collect::<Vec<_>>().join(", "),
            )
        };
        if !self.regions.contains(&request.region) {
            return Err(unknown(&request.region));
        }
        if let Some(r) = request
            .latency_ms
            .keys()
            .find(|r| !self.regions.contains(*r))
        {
            return Err(unknown(r));
        }
        if request.opponent == Opponent::Bot
            && (request.kind == QueueKind::Ranked || self.policy.bot_after_ms.is_none())
        {
            return Err(MatchmakingError::BadRequest(
                "bots play only in quick queues, and only where bots are enabled".into(),
            ));
        }
        if let Some(rating) = request.rating
            && !(0.0..=10_000.0).contains(&rating)
        {
            return Err(MatchmakingError::BadRequest(
                "rating must be between 0 and 10000".into(),
            ));
        }
        Ok(())
    }

    /// Joins a queue, and pairs at once if a compatible opponent is waiting.
    /// Joining the same queue again is a no-op that answers the status.
    pub async fn join(&self, request: &JoinRequest) -> Result<Status, MatchmakingError> {
        self.check(request)?;
        let now = self.clock.now_ms();
        let rating = match (request.kind, request.rating) {
            (QueueKind::Quick, Some(r)) => r,
            _ => {
                self.ratings
                    .get(&request.player, &request.mode)
                    .await?
                    .rating
            }
        };
        let ticket = Ticket {
            player: request.player.clone(),
            mode: request.mode.clone(),
            kind: request.kind,
            region: request.region.clone(),
            rating,
            joined_ms: now,
            poor_connection: request.connection == Connection::Poor,
            latency_ms: request.latency_ms.clone(),
            ticket_id: random_id("t-"),
        };
        let queued = queued_state(&ticket);
        if let Some(status) = self.claim_player(&ticket, &queued).await? {
            return Ok(status);
        }
        if request.opponent == Opponent::Bot {
            // Straight to a bot match; the ticket never waits. If the host
            // cannot make it, the ticket goes to the queue like any other.
            if let Some(match_id) = self.make_match(vec![ticket.clone()], true).await {
                return Ok(Status::Playing { match_id });
            }
            return self.status(&ticket.player).await;
        }
        let (found, queued_at) = match self.enqueue_and_search(&ticket).await {
            Ok(found) => found,
            Err(e) => {
                let state = serde_json::to_string(&queued)?;
                let _ = self
                    .store
                    .swap(&ticket.player, Some(&state), None, None)
                    .await;
                return Err(e);
            }
        };
        let at = match self.try_pair(&ticket, found).await? {
            Paired::Match(match_id) => return Ok(Status::Playing { match_id }),
            // Nothing changed since the ticket went in: where it stood then
            // is where it stands.
            Paired::NoPartner => queued_at,
            Paired::Lost => {
                let keys = QueueKeys::new(&ticket.mode, ticket.kind.as_str());
                self.store.position(&keys, &ticket.player).await?
            }
        };
        if at.position.is_none() {
            // Paired meanwhile by another matchmaker, or left.
            return self.status(&ticket.player).await;
        }
        Ok(self.queued_status(&ticket.mode, ticket.kind, &ticket.region, now, at))
    }

    fn queued_status(
        &self,
        mode: &str,
        kind: QueueKind,
        region: &str,
        since_ms: u64,
        at: dashdice_store::queues::QueuePosition,
    ) -> Status {
        let waited_ms = self.clock.now_ms().saturating_sub(since_ms);
        let estimate = at
            .avg_wait_ms
            .map_or(0, |avg| (avg as u64).saturating_sub(waited_ms));
        let bot_by = match kind {
            QueueKind::Quick => self
                .policy
                .bot_after_ms
                .map(|b| b.saturating_sub(waited_ms)),
            QueueKind::Ranked => None,
        };
        Status::Queued {
            mode: mode.to_owned(),
            kind,
            region: region.to_owned(),
            position: at.position.unwrap_or(0),
            queue_size: at.size,
            waited_ms,
            estimated_wait_ms: bot_by.map_or(estimate, |b| estimate.min(b)),
        }
    }

    /// Makes `state` the player's, unless they are busy. `Some(status)`: they
    /// already queued for this very queue (the join is a no-op).
    async fn claim_player(
        &self,
        ticket: &Ticket,
        state: &PlayerState,
    ) -> Result<Option<Status>, MatchmakingError> {
        let new = serde_json::to_string(state)?;
        match self.claim_free(&ticket.player, &new, None).await? {
            Claimed::Done => Ok(None),
            Claimed::Busy(PlayerState::Queued { mode, kind, .. })
                if mode == ticket.mode && kind == ticket.kind =>
            {
                self.status(&ticket.player).await.map(Some)
            }
            Claimed::Busy(state) => Err(busy(state)),
        }
    }

    /// The player's state, and whether it still binds them. A state is left
    /// behind (and may be replaced) when it is unreadable, `matching` for
    /// longer than [`STALE_MATCHING`], `playing` a match that is over, or
    /// `hosting` a code that no longer exists.
    async fn current(&self, player: &str) -> Result<Current, MatchmakingError> {
        let raw = self.store.state(player).await?;
        let Some(Ok(state)) = raw.as_deref().map(serde_json::from_str::<PlayerState>) else {
            return Ok(Current::Free(raw));
        };
        let stale = match &state {
            PlayerState::Queued { .. } => false,
            PlayerState::Hosting { code, .. } => self
                .store
                .invite(code)
                .await?
                .is_none_or(|invite| invite.host != player),
            PlayerState::Matching { since_ms, .. } => {
                self.clock.now_ms().saturating_sub(*since_ms) >= STALE_MATCHING.as_millis() as u64
            }
            PlayerState::Playing { match_id, .. } => {
                self.matches.is_over(match_id).await == Some(true)
            }
        };
        Ok(if stale {
            Current::Free(raw)
        } else {
            Current::Busy(state)
        })
    }

    /// Makes `new` (JSON) the player's state if they are free, by
    /// compare-and-set on what was read. Two attempts: a state replaced under
    /// us is read again once.
    async fn claim_free(
        &self,
        player: &str,
        new: &str,
        ttl: Option<Duration>,
    ) -> Result<Claimed, MatchmakingError> {
        // Most players who ask have no state at all: try that first, which
        // is one round trip instead of a read and a compare-and-set.
        if self.store.set_if_absent(player, new, ttl).await? {
            return Ok(Claimed::Done);
        }
        for _ in 0..2 {
            match self.current(player).await? {
                Current::Busy(state) => return Ok(Claimed::Busy(state)),
                Current::Free(raw) => {
                    if self
                        .store
                        .swap(player, raw.as_deref(), Some(new), ttl)
                        .await?
                    {
                        return Ok(Claimed::Done);
                    }
                }
            }
        }
        Err(MatchmakingError::Matching)
    }

    async fn enqueue(&self, ticket: &Ticket) -> Result<(), MatchmakingError> {
        let json = serde_json::to_string(ticket)?;
        let keys = QueueKeys::new(&ticket.mode, ticket.kind.as_str());
        self.store.enqueue(&keys, &stored(ticket, &json)).await?;
        Ok(())
    }

    /// Puts a new ticket in its queue and finds its candidates (JSON), in
    /// one round trip; also says where it stands.
    async fn enqueue_and_search(
        &self,
        ticket: &Ticket,
    ) -> Result<(Vec<String>, QueuePosition), MatchmakingError> {
        let json = serde_json::to_string(ticket)?;
        let keys = QueueKeys::new(&ticket.mode, ticket.kind.as_str());
        let (regions, range) = self.search_bounds(ticket, self.clock.now_ms());
        Ok(self
            .store
            .enqueue_and_search(
                &keys,
                &stored(ticket, &json),
                &regions,
                range,
                CANDIDATES_PER_SIDE,
            )
            .await?)
    }

    /// Where `ticket`'s opponents may be found at `now`: the regions, and
    /// the rating range its window has widened to.
    fn search_bounds(&self, ticket: &Ticket, now: u64) -> (Vec<String>, (f64, f64)) {
        let window = self.policy.window(ticket.kind, policy::waited(ticket, now));
        (
            self.policy.regions(ticket, now),
            window.range(ticket.rating),
        )
    }

    /// Pairs `ticket` with its best opponent among `found` (its candidates,
    /// JSON) and makes the match. A lost race for a candidate means looking
    /// again, a few times.
    async fn try_pair(
        &self,
        ticket: &Ticket,
        mut found: Vec<String>,
    ) -> Result<Paired, MatchmakingError> {
        let keys = QueueKeys::new(&ticket.mode, ticket.kind.as_str());
        for attempt in 0..3 {
            let now = self.clock.now_ms();
            if attempt > 0 {
                let (regions, range) = self.search_bounds(ticket, now);
                found = self
                    .store
                    .candidates(&keys, &regions, ticket.rating, range, CANDIDATES_PER_SIDE)
                    .await?;
            }
            let candidates: Vec<Ticket> = found
                .iter()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect();
            let Some(partner) = self.policy.best_partner(ticket, &candidates, now) else {
                return Ok(if attempt == 0 {
                    Paired::NoPartner
                } else {
                    Paired::Lost
                });
            };
            match self.take(&keys, &[ticket, partner]).await? {
                Taken::All(pair) => {
                    return Ok(match self.make_match(pair, false).await {
                        Some(match_id) => Paired::Match(match_id),
                        None => Paired::Lost,
                    });
                }
                // Our own ticket is gone: we left, or someone paired us.
                Taken::None if !self.still_waiting(ticket).await? => return Ok(Paired::Lost),
                Taken::None => continue,
            }
        }
        Ok(Paired::Lost)
    }

    async fn still_waiting(&self, ticket: &Ticket) -> Result<bool, MatchmakingError> {
        let keys = QueueKeys::new(&ticket.mode, ticket.kind.as_str());
        Ok(self
            .store
            .position(&keys, &ticket.player)
            .await?
            .position
            .is_some())
    }

    async fn take(&self, keys: &QueueKeys, tickets: &[&Ticket]) -> Result<Taken, MatchmakingError> {
        let ids: Vec<(&str, &str, &str)> = tickets
            .iter()
            .map(|t| (t.player.as_str(), t.ticket_id.as_str(), t.region.as_str()))
            .collect();
        Ok(
            match self.store.take(keys, &ids, self.clock.now_ms()).await? {
                Some(_) => Taken::All(tickets.iter().map(|t| (*t).clone()).collect()),
                None => Taken::None,
            },
        )
    }

    /// Turns taken tickets into a match (with a bot if `bot`). Players who
    /// left meanwhile are dropped and the rest go back to the queue; if the
    /// host cannot create the match, everyone goes back. Returns the match
    /// made, if any.
    async fn make_match(&self, tickets: Vec<Ticket>, bot: bool) -> Option<String> {
        let now = self.clock.now_ms();
        let mut marked: Vec<(Ticket, String)> = Vec::new();
        let mut left = false;
        let marking = tickets.into_iter().map(|t| async move {
            let state = self.mark_matching(&t, now).await;
            (t, state)
        });
        for (t, state) in futures_util::future::join_all(marking).await {
            match state {
                Some(state) => marked.push((t, state)),
                None => left = true,
            }
        }
        if left || marked.is_empty() {
            self.requeue(marked).await;
            return None;
        }
        let first = &marked[0].0;
        let mut players: Vec<String> = marked.iter().map(|(t, _)| t.player.clone()).collect();
        let mut bots = Vec::new();
        if bot {
            let id = random_id(BOT_PREFIX);
            players.push(id.clone());
            bots.push(id);
        }
        let new = NewMatch {
            mode: first.mode.clone(),
            players,
            ranked: first.kind == QueueKind::Ranked,
            bots,
        };
        let match_id = match self.matches.create(&new).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(mode = %new.mode, error = %e, "could not create a match; the tickets go back");
                metrics::counter!(dashdice_service::telemetry::names::REQUEUED).increment(1);
                self.requeue(marked).await;
                return None;
            }
        };
        for (t, _) in &marked {
            metrics::histogram!(dashdice_service::telemetry::names::TIME_TO_MATCH_SECONDS, "kind" => t.kind.as_str())
                .record(policy::waited(t, now) as f64 / 1000.0);
        }
        let marked: Vec<(&str, &str)> = marked
            .iter()
            .map(|(t, matching)| (t.player.as_str(), matching.as_str()))
            .collect();
        self.announce(&match_id, &new, first.kind, Origin::Queue, &marked)
            .await;
        Some(match_id)
    }

    /// The match exists: its players, `matching` for it (`marked`: player
    /// and the `matching` state as stored), become `playing` and are told.
    async fn announce(
        &self,
        match_id: &str,
        new: &NewMatch,
        kind: QueueKind,
        origin: Origin,
        marked: &[(&str, &str)],
    ) {
        let bot = !new.bots.is_empty();
        let opponent = if bot { "bot" } else { "human" };
        metrics::counter!(dashdice_service::telemetry::names::MATCHES_MADE, "kind" => origin.label(kind), "opponent" => opponent)
            .increment(1);
        let playing = PlayerState::Playing {
            match_id: match_id.to_owned(),
            since_ms: self.clock.now_ms(),
        };
        let found = Notice::MatchFound(MatchFound {
            match_id: match_id.to_owned(),
            mode: new.mode.clone(),
            kind,
            players: new.players.clone(),
            bot,
            origin,
        });
        let Ok(playing) = serde_json::to_string(&playing) else {
            return;
        };
        // Each player's state, then their notice; the players side by side.
        let tell = marked.iter().map(|(player, matching)| {
            let (playing, found) = (&playing, &found);
            async move {
                let _ = self
                    .store
                    .swap(player, Some(matching), Some(playing), Some(PLAYING_TTL))
                    .await;
                if let Err(e) = self.notify.notify(player, found).await {
                    tracing::warn!(%player, error = %e, "could not tell a player of their match");
                }
            }
        });
        futures_util::future::join_all(tell).await;
    }

    /// `queued` (with this ticket) → `matching`; the `matching` state as
    /// stored, or `None` if the player left.
    async fn mark_matching(&self, t: &Ticket, now: u64) -> Option<String> {
        // The `queued` state this ticket's join (or requeue) wrote, byte for
        // byte: one compare-and-set, no read first.
        let current = serde_json::to_string(&queued_state(t)).ok()?;
        let matching = serde_json::to_string(&PlayerState::Matching {
            making: MatchingFor::Ticket(t.ticket_id.clone()),
            since_ms: now,
        })
        .ok()?;
        self.store
            .swap(&t.player, Some(&current), Some(&matching), None)
            .await
            .ok()?
            .then_some(matching)
    }

    /// Puts tickets back with their original join time, their players back
    /// to `queued`.
    async fn requeue(&self, tickets: Vec<(Ticket, String)>) {
        for (t, matching) in tickets {
            let queued = queued_state(&t);
            let Ok(queued) = serde_json::to_string(&queued) else {
                continue;
            };
            if let Err(e) = self.enqueue(&t).await {
                tracing::error!(player = %t.player, error = %e, "could not put a ticket back");
                let _ = self
                    .store
                    .swap(&t.player, Some(&matching), None, None)
                    .await;
                continue;
            }
            if !matches!(
                self.store
                    .swap(&t.player, Some(&matching), Some(&queued), None)
                    .await,
                Ok(true)
            ) {
                // The state moved on (it went stale and the player joined
                // again): the old ticket must not stay.
                let keys = QueueKeys::new(&t.mode, t.kind.as_str());
                let _ = self
                    .store
                    .withdraw(
                        &keys,
                        &[(&t.player, &t.ticket_id, &t.region)],
                        self.clock.now_ms(),
                    )
                    .await;
            }
        }
    }

    /// Leaves the player's queue, or cancels the invite code they host (the
    /// invitee of a direct invite is told it was withdrawn). Returns the
    /// status after: `idle`, or `matching`/`playing` if it was too late to
    /// leave.
    pub async fn leave(&self, player: &str) -> Result<Status, MatchmakingError> {
        check_player(player)?;
        let Some(current) = self.store.state(player).await? else {
            return Ok(Status::Idle);
        };
        let state: PlayerState = serde_json::from_str(&current)?;
        if let PlayerState::Hosting { code, .. } = &state {
            // State first: a guest who has claimed the code meanwhile finds
            // the host gone and gets `unknown_code`.
            if !self.store.swap(player, Some(&current), None, None).await? {
                return self.status(player).await;
            }
            self.cancel_hosted(code, player).await?;
            return Ok(Status::Idle);
        }
        let PlayerState::Queued {
            mode,
            kind,
            region,
            ticket_id,
            ..
        } = state
        else {
            return self.status(player).await;
        };
        // State first: a matcher that has taken the ticket meanwhile sees the
        // player gone and puts the opponent back.
        if !self.store.swap(player, Some(&current), None, None).await? {
            return self.status(player).await;
        }
        let keys = QueueKeys::new(&mode, kind.as_str());
        self.store
            .withdraw(&keys, &[(player, &ticket_id, &region)], self.clock.now_ms())
            .await?;
        Ok(Status::Idle)
    }

    /// What the player is doing.
    pub async fn status(&self, player: &str) -> Result<Status, MatchmakingError> {
        check_player(player)?;
        let Some(current) = self.store.state(player).await? else {
            return Ok(Status::Idle);
        };
        Ok(match serde_json::from_str(&current)? {
            PlayerState::Queued {
                mode,
                kind,
                region,
                since_ms,
                ..
            } => {
                let keys = QueueKeys::new(&mode, kind.as_str());
                let at = self.store.position(&keys, player).await?;
                self.queued_status(&mode, kind, &region, since_ms, at)
            }
            PlayerState::Hosting {
                code,
                mode,
                expires_ms,
                ..
            } => Status::Hosting {
                code,
                mode,
                expires_ms,
            },
            PlayerState::Matching { .. } => Status::Matching,
            PlayerState::Playing { match_id, .. } => Status::Playing { match_id },
        })
    }

    /// One periodic pass over every queue: pairs tickets whose windows have
    /// widened enough, and gives bots to quick-queue tickets that waited long
    /// enough; then ends the direct invites that ran out
    /// ([`Self::expire_invites`]). Returns the matches made.
    pub async fn pass(&self) -> Result<usize, MatchmakingError> {
        let mut made = 0;
        for mode in self.modes() {
            for kind in [QueueKind::Quick, QueueKind::Ranked] {
                made += self.pass_queue(&mode, kind).await?;
            }
        }
        self.expire_invites().await?;
        Ok(made)
    }

    async fn pass_queue(&self, mode: &str, kind: QueueKind) -> Result<usize, MatchmakingError> {
        let keys = QueueKeys::new(mode, kind.as_str());
        let waiting: Vec<Ticket> = self
            .store
            .waiting(&keys, PASS_LIMIT)
            .await?
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect();
        if waiting.is_empty() {
            return Ok(0);
        }
        let now = self.clock.now_ms();
        let mut made = 0;
        let mut paired = vec![false; waiting.len()];
        for (i, j) in self.policy.pair_all(&waiting, now) {
            paired[i] = true;
            paired[j] = true;
            if let Taken::All(pair) = self.take(&keys, &[&waiting[i], &waiting[j]]).await?
                && self.make_match(pair, false).await.is_some()
            {
                made += 1;
            }
        }
        for (t, _) in waiting.iter().zip(&paired).filter(|(_, p)| !**p) {
            if self.policy.wants_bot(t, now)
                && let Taken::All(one) = self.take(&keys, &[t]).await?
                && self.make_match(one, true).await.is_some()
            {
                made += 1;
            }
        }
        Ok(made)
    }

    /// How many tickets wait in a queue.
    pub async fn queue_size(&self, keys: &QueueKeys) -> Result<u64, MatchmakingError> {
        Ok(self.store.size(keys).await?)
    }

    /// A finished match, from the record stream: its rematch window opens
    /// and its players are free again. Each step may be repeated, so a
    /// record handled twice changes nothing more. (Ratings move in the
    /// archiver, which keeps them in Firestore and copies them here.)
    pub async fn record_finished(
        &self,
        record: &dashdice_proto::record::MatchRecord,
    ) -> Result<(), MatchmakingError> {
        // The window first: a player the end frees may offer at once.
        self.open_rematch(record).await?;
        self.match_ended(&record.match_id, &record.players).await?;
        Ok(())
    }

    /// A match ended: its players are free again.
    pub async fn match_ended(
        &self,
        match_id: &str,
        players: &[String],
    ) -> Result<(), MatchmakingError> {
        for player in players.iter().filter(|p| !p.starts_with(BOT_PREFIX)) {
            let Some(current) = self.store.state(player).await? else {
                continue;
            };
            if let Ok(PlayerState::Playing { match_id: m, .. }) = serde_json::from_str(&current)
                && m == match_id
            {
                self.store.swap(player, Some(&current), None, None).await?;
            }
        }
        Ok(())
    }
}

/// A ticket as the store keeps it, with its JSON.
fn stored<'a>(t: &'a Ticket, json: &'a str) -> StoredTicket<'a> {
    StoredTicket {
        player: &t.player,
        ticket_id: &t.ticket_id,
        region: &t.region,
        rating: t.rating,
        joined_ms: t.joined_ms,
        json,
    }
}

/// The `queued` state of a player waiting with `t`.
fn queued_state(t: &Ticket) -> PlayerState {
    PlayerState::Queued {
        mode: t.mode.clone(),
        kind: t.kind,
        region: t.region.clone(),
        ticket_id: t.ticket_id.clone(),
        since_ms: t.joined_ms,
    }
}

/// What a join's pairing attempt came to.
enum Paired {
    Match(String),
    /// The first search found nobody: the queue is as the join left it.
    NoPartner,
    /// Candidates were raced away, or the match could not be made: the
    /// queue has moved on.
    Lost,
}

enum Taken {
    All(Vec<Ticket>),
    None,
}

fn check_player(player: &str) -> Result<(), MatchmakingError> {
    if player.is_empty() || player.len() > dashdice_proto::ids::MAX_PLAYER_ID {
        return Err(MatchmakingError::BadRequest(format!(
            "player ids are 1 to {} bytes",
            dashdice_proto::ids::MAX_PLAYER_ID
        )));
    }
    // One NATS subject token (their notifications) and never a bot's id.
    if !player
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(MatchmakingError::BadRequest(
            "player ids are letters, digits, '-' and '_'".into(),
        ));
    }
    Ok(())
}

/// Whether `name` is a valid region or mode name (lowercase, digits, `-`).
pub fn valid_region(name: &str) -> bool {
    valid_name(name)
}
