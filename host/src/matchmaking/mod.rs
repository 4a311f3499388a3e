//! Matchmaking: queues, pairing, private matches by invite code, rematches,
//! and handing pairs to the match host.
//!
//! Architecture invariant: like [`crate::matches`], this knows the rules (who
//! may queue, who may meet, what happens when creating a match fails) but
//! neither NATS nor Redis commands. It reaches the match host and the players
//! through the [`Matches`] and [`Notify`] traits, and the store through
//! [`QueueStore`].
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
//!
//! ## One pairing
//!
//! find candidates in the window (store) → choose the best (policy) → take
//! both tickets (atomic) → mark both players `matching` (CAS) → create the
//! match (match host) → mark both `playing` (CAS) → tell both.
//!
//! ## Private matches
//!
//! The host asks for a code: the code is stored first (`mm:code:{CODE}`,
//! expiring with [`PrivatePolicy::code_ttl_ms`]), then the host's state
//! becomes `hosting` with the same expiry, so nobody can learn a code whose
//! host is not waiting yet. A guest: free → `matching` (CAS) → claims the
//! code (one script: the first guest wins) → host `hosting` this code →
//! `matching` (CAS) → create the match (unranked, no bots) → both `playing`
//! → tell both. If the host left meanwhile the code is dead and is deleted.
//! If the match host cannot create the match, nothing is lost: the code is
//! given back and the host waits on it again for the rest of its life, the
//! guest is free and may simply retry.
//!
//! ## Rematch
//!
//! A finished match's record (from the record stream, or from the match
//! host if an offer comes first) opens a rematch slot
//! (`mm:rematch:{match_id}`) until [`PrivatePolicy::rematch_window_ms`]
//! after the match ended. Each human player may offer; the first offer tells
//! the others ([`Notice::RematchOffered`]); the offer that makes everyone
//! agree ("accept") marks the slot `starting` in the same script, so exactly
//! one caller makes the new match: same mode, same seats, unranked. Bots
//! always agree, so a rematch of a bot match starts on the human's offer,
//! against a new bot of the host. A rematch needs every human free: an offer
//! from a player who is queued, hosting or playing again is refused, and so
//! is an accept while the other is busy (`opponent_busy`); neither changes
//! anything.

pub mod policy;
pub mod ratings;

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use policy::{Policy, PrivatePolicy, QueueKind, Ticket, Window};
pub use ratings::{Rating, Ratings, RatingsStore};

use crate::matches::now_ms;
use crate::store::StoreError;
use crate::store::queues::{
    InviteClaim, QueueKeys, QueueStore, RematchOffer, StoredInvite, StoredRematch, StoredTicket,
};

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
/// The characters of invite codes: no 0/O, 1/I/L, so a code read aloud or
/// off a screen is typed right.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in an invite code: 31^6, about 887 million codes, against a
/// few live ones that expire in minutes.
pub const CODE_LEN: usize = 6;
/// Codes drawn before giving up when each one drawn is taken.
const CODE_ATTEMPTS: usize = 8;
/// Longest match id a rematch request may name.
const MAX_MATCH_ID: usize = 64;

/// Ask to join a queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub player: String,
    pub mode: String,
    pub kind: QueueKind,
    pub region: String,
    /// The client's measured round trip to other regions, ms.
    #[serde(default)]
    pub latency_ms: BTreeMap<String, u32>,
    #[serde(default)]
    pub connection: Connection,
    /// For quick queues only: a rating to match on instead of the stored one
    /// (ranked queues always use the stored rating).
    #[serde(default)]
    pub rating: Option<f64>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    #[default]
    Good,
    Poor,
}

/// Ask to leave, or for the status of, a player's queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayerRequest {
    pub player: String,
}

/// Ask for an invite code to a private match (`dd.queue.private.create`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteRequest {
    pub player: String,
    pub mode: String,
}

/// An invite code, for its host to pass on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub code: String,
    pub mode: String,
    /// When the code stops working (ms since the epoch).
    pub expires_ms: u64,
}

/// Join a private match by its code (`dd.queue.private.join`). The code is
/// case-insensitive.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinInviteRequest {
    pub player: String,
    pub code: String,
}

/// Offer, or accept, a rematch of a finished match (`dd.queue.rematch`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RematchRequest {
    pub player: String,
    /// The match that ended.
    pub match_id: String,
}

/// Where a rematch stands, as the reply to an offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RematchStatus {
    /// The offer stands; the others have until `expires_ms` to agree.
    Offered {
        /// The match that ended.
        match_id: String,
        expires_ms: u64,
    },
    /// Everyone agreed: the new match (also told as [`Notice::MatchFound`]).
    Started { match_id: String },
}

/// A player's state, as stored (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PlayerState {
    Queued {
        mode: String,
        kind: QueueKind,
        region: String,
        ticket_id: String,
        since_ms: u64,
    },
    /// Made an invite code and waits for a guest; stored with the code's
    /// expiry, so a host nobody joins is free again when the code dies.
    Hosting {
        code: String,
        mode: String,
        since_ms: u64,
        expires_ms: u64,
    },
    Matching {
        /// What is being made into a match: a ticket id, `code:<CODE>` or
        /// `rematch:<match id>`.
        ticket_id: String,
        since_ms: u64,
    },
    Playing {
        match_id: String,
        since_ms: u64,
    },
}

/// What a player is doing, for `status` and `join` replies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Idle,
    Queued {
        mode: String,
        kind: QueueKind,
        region: String,
        /// 1 = the longest waiting.
        position: u64,
        queue_size: u64,
        waited_ms: u64,
        /// From the recent average wait in this queue; 0 = any moment now.
        estimated_wait_ms: u64,
    },
    /// Waiting for a guest to join with `code`.
    Hosting {
        code: String,
        mode: String,
        expires_ms: u64,
    },
    Matching,
    Playing {
        match_id: String,
    },
}

/// How a match came about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Paired from a queue.
    #[default]
    Queue,
    /// A private match: the guest joined the host's invite code.
    Invite,
    /// The players of a finished match agreed to play again.
    Rematch,
}

impl Origin {
    fn label(self, kind: QueueKind) -> &'static str {
        match self {
            Origin::Queue => kind.as_str(),
            Origin::Invite => "invite",
            Origin::Rematch => "rematch",
        }
    }
}

/// Told to a player (on their notification subject) when their match exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchFound {
    pub match_id: String,
    pub mode: String,
    pub kind: QueueKind,
    pub players: Vec<String>,
    /// The opponent is one of the host's bots.
    pub bot: bool,
    /// Queue, invite code or rematch. Private matches and rematches are
    /// never ranked, and their `kind` is `quick`.
    #[serde(default)]
    pub origin: Origin,
}

/// Notices to a player.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    MatchFound(MatchFound),
    /// `from` offers a rematch of `match_id`: answer with an offer of one's
    /// own before `expires_ms` to play again.
    RematchOffered {
        match_id: String,
        from: String,
        expires_ms: u64,
    },
}

/// What the matchmaker asks of the match host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewMatch {
    pub mode: String,
    pub players: Vec<String>,
    pub ranked: bool,
    /// Which of `players` the host plays itself.
    pub bots: Vec<String>,
}

/// The match host, as the matchmaker needs it.
pub trait Matches: Send + Sync {
    /// Creates a match; returns its id, or why not.
    fn create(&self, new: &NewMatch) -> impl Future<Output = Result<String, String>> + Send;
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
    ) -> impl Future<Output = Option<crate::fair_dice::MatchRecord>> + Send {
        let _ = match_id;
        async { None }
    }
}

/// The players' notification channel.
pub trait Notify: Send + Sync {
    fn notify(&self, player: &str, notice: &Notice) -> impl Future<Output = ()> + Send;
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
    pub fn code(&self) -> &'static str {
        match self {
            MatchmakingError::UnknownMode(_) => "unknown_mode",
            MatchmakingError::UnknownRegion(..) => "unknown_region",
            MatchmakingError::BadRequest(_) => "bad_request",
            MatchmakingError::AlreadyQueued { .. } => "already_queued",
            MatchmakingError::InMatch(_) => "in_match",
            MatchmakingError::Matching => "matching",
            MatchmakingError::Hosting(_) => "hosting",
            MatchmakingError::UnknownCode => "unknown_code",
            MatchmakingError::CodeUsed => "code_used",
            MatchmakingError::OwnCode => "own_code",
            MatchmakingError::RematchExpired(_) => "rematch_expired",
            MatchmakingError::NotInMatch { .. } => "not_in_match",
            MatchmakingError::OpponentBusy(_) => "opponent_busy",
            MatchmakingError::Unavailable(_) => "unavailable",
            MatchmakingError::Store(_) => "unavailable",
            MatchmakingError::Corrupt(_) => "internal",
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
    modes: BTreeSet<String>,
    regions: BTreeSet<String>,
    matches: M,
    notify: N,
}

fn random_id(prefix: &str) -> String {
    let mut bytes = [0u8; 12];
    // The OS being out of randomness is not recoverable here; fall back to
    // the clock, which still makes ids unique enough to tell tickets apart.
    if getrandom::fill(&mut bytes).is_err() {
        bytes[..8].copy_from_slice(&now_ms().to_be_bytes());
    }
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{prefix}{hex}")
}

/// A fresh invite code. Codes are the only thing keeping strangers out of a
/// private match, so without the OS's randomness there is no code (unlike
/// ticket ids, which only need to differ).
fn random_code() -> Result<String, MatchmakingError> {
    let n = CODE_ALPHABET.len();
    // The largest multiple of n that fits a byte: taking bytes below it
    // keeps every character equally likely.
    let limit = 256 - 256 % n;
    let mut code = String::with_capacity(CODE_LEN);
    let mut bytes = [0u8; 16];
    while code.len() < CODE_LEN {
        getrandom::fill(&mut bytes)
            .map_err(|e| MatchmakingError::Unavailable(format!("no randomness for a code: {e}")))?;
        for b in bytes.iter().map(|b| usize::from(*b)).filter(|b| *b < limit) {
            if code.len() < CODE_LEN {
                code.push(char::from(CODE_ALPHABET[b % n]));
            }
        }
    }
    Ok(code)
}

/// An invite code as a player typed it, in its stored form: letters in any
/// case, blanks around it ignored.
pub fn normalize_code(input: &str) -> Result<String, MatchmakingError> {
    let code = input.trim().to_ascii_uppercase();
    if code.len() != CODE_LEN || !code.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return Err(MatchmakingError::BadRequest(format!(
            "invite codes are {CODE_LEN} characters from {}",
            String::from_utf8_lossy(CODE_ALPHABET)
        )));
    }
    Ok(code)
}

fn check_match_id(match_id: &str) -> Result<(), MatchmakingError> {
    if match_id.is_empty()
        || match_id.len() > MAX_MATCH_ID
        || !match_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(MatchmakingError::BadRequest(format!(
            "match ids are 1 to {MAX_MATCH_ID} letters, digits, '-' and '_'"
        )));
    }
    Ok(())
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
            modes: modes.into_iter().collect(),
            regions: regions.into_iter().collect(),
            matches,
            notify,
        }
    }

    pub fn ratings(&self) -> &Ratings {
        &self.ratings
    }

    pub fn modes(&self) -> impl Iterator<Item = &String> {
        self.modes.iter()
    }

    fn check(&self, request: &JoinRequest) -> Result<(), MatchmakingError> {
        check_player(&request.player)?;
        if !self.modes.contains(&request.mode) {
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
        let now = now_ms();
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
        let queued = PlayerState::Queued {
            mode: ticket.mode.clone(),
            kind: ticket.kind,
            region: ticket.region.clone(),
            ticket_id: ticket.ticket_id.clone(),
            since_ms: now,
        };
        if let Some(status) = self.claim_player(&ticket, &queued).await? {
            return Ok(status);
        }
        if let Err(e) = self.enqueue(&ticket).await {
            let state = serde_json::to_string(&queued)?;
            let _ = self
                .store
                .swap(&ticket.player, Some(&state), None, None)
                .await;
            return Err(e);
        }
        if self.try_pair(&ticket).await? {
            return self.status(&ticket.player).await;
        }
        let keys = QueueKeys::new(&ticket.mode, ticket.kind.as_str());
        let at = self.store.position(&keys, &ticket.player).await?;
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
        at: crate::store::queues::QueuePosition,
    ) -> Status {
        let waited_ms = now_ms().saturating_sub(since_ms);
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
                now_ms().saturating_sub(*since_ms) >= STALE_MATCHING.as_millis() as u64
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
        self.store
            .enqueue(
                &keys,
                &StoredTicket {
                    player: &ticket.player,
                    ticket_id: &ticket.ticket_id,
                    region: &ticket.region,
                    rating: ticket.rating,
                    joined_ms: ticket.joined_ms,
                    json: &json,
                },
            )
            .await?;
        Ok(())
    }

    /// Looks for `ticket`'s best opponent now and, if there is one, makes
    /// the match. Returns whether a match was made.
    async fn try_pair(&self, ticket: &Ticket) -> Result<bool, MatchmakingError> {
        let keys = QueueKeys::new(&ticket.mode, ticket.kind.as_str());
        // A lost race for a candidate means looking again, a few times.
        for _ in 0..3 {
            let now = now_ms();
            let window = self.policy.window(ticket.kind, policy::waited(ticket, now));
            let regions = self.policy.regions(ticket, now);
            let found = self
                .store
                .candidates(
                    &keys,
                    &regions,
                    ticket.rating,
                    window.range(ticket.rating),
                    CANDIDATES_PER_SIDE,
                )
                .await?;
            let candidates: Vec<Ticket> = found
                .iter()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect();
            let Some(partner) = self.policy.best_partner(ticket, &candidates, now) else {
                return Ok(false);
            };
            match self.take(&keys, &[ticket, partner]).await? {
                Taken::All(pair) => return Ok(self.make_match(pair, false).await),
                // Our own ticket is gone: we left, or someone paired us.
                Taken::None if !self.still_waiting(ticket).await? => return Ok(false),
                Taken::None => continue,
            }
        }
        Ok(false)
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
        Ok(match self.store.take(keys, &ids, now_ms()).await? {
            Some(_) => Taken::All(tickets.iter().map(|t| (*t).clone()).collect()),
            None => Taken::None,
        })
    }

    /// Turns taken tickets into a match (with a bot if `bot`). Players who
    /// left meanwhile are dropped and the rest go back to the queue; if the
    /// host cannot create the match, everyone goes back. Returns whether a
    /// match was made.
    async fn make_match(&self, tickets: Vec<Ticket>, bot: bool) -> bool {
        let now = now_ms();
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
            return false;
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
                metrics::counter!(crate::telemetry::names::REQUEUED).increment(1);
                self.requeue(marked).await;
                return false;
            }
        };
        for (t, _) in &marked {
            metrics::histogram!(crate::telemetry::names::TIME_TO_MATCH_SECONDS, "kind" => t.kind.as_str())
                .record(policy::waited(t, now) as f64 / 1000.0);
        }
        let marked: Vec<(&str, &str)> = marked
            .iter()
            .map(|(t, matching)| (t.player.as_str(), matching.as_str()))
            .collect();
        self.announce(&match_id, &new, first.kind, Origin::Queue, &marked)
            .await;
        true
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
        metrics::counter!(crate::telemetry::names::MATCHES_MADE, "kind" => origin.label(kind), "opponent" => opponent)
            .increment(1);
        let playing = PlayerState::Playing {
            match_id: match_id.to_owned(),
            since_ms: now_ms(),
        };
        let found = Notice::MatchFound(MatchFound {
            match_id: match_id.to_owned(),
            mode: new.mode.clone(),
            kind,
            players: new.players.clone(),
            bot,
            origin,
        });
        for (player, matching) in marked {
            if let Ok(playing) = serde_json::to_string(&playing) {
                let _ = self
                    .store
                    .swap(player, Some(matching), Some(&playing), Some(PLAYING_TTL))
                    .await;
            }
            self.notify.notify(player, &found).await;
        }
    }

    /// `queued` (with this ticket) → `matching`; the `matching` state as
    /// stored, or `None` if the player left.
    async fn mark_matching(&self, t: &Ticket, now: u64) -> Option<String> {
        let current = self.store.state(&t.player).await.ok()??;
        match serde_json::from_str(&current) {
            Ok(PlayerState::Queued { ticket_id, .. }) if ticket_id == t.ticket_id => {}
            _ => return None,
        }
        let matching = serde_json::to_string(&PlayerState::Matching {
            ticket_id: t.ticket_id.clone(),
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
            let queued = PlayerState::Queued {
                mode: t.mode.clone(),
                kind: t.kind,
                region: t.region.clone(),
                ticket_id: t.ticket_id.clone(),
                since_ms: t.joined_ms,
            };
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
                    .take(&keys, &[(&t.player, &t.ticket_id, &t.region)], now_ms())
                    .await;
            }
        }
    }

    /// Leaves the player's queue, or cancels the invite code they host.
    /// Returns the status after: `idle`, or `matching`/`playing` if it was
    /// too late to leave.
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
            self.store.cancel_invite(code, player).await?;
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
            .take(&keys, &[(player, &ticket_id, &region)], now_ms())
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

    /// Makes an invite code to a private match in `mode` and has the player
    /// wait for a guest. Asking again for the same mode while waiting is a
    /// no-op that answers the same code.
    pub async fn create_invite(
        &self,
        request: &CreateInviteRequest,
    ) -> Result<Invite, MatchmakingError> {
        let player = &request.player;
        check_player(player)?;
        if !self.modes.contains(&request.mode) {
            return Err(MatchmakingError::UnknownMode(request.mode.clone()));
        }
        let ttl = Duration::from_millis(self.private.code_ttl_ms.max(1));
        // Two attempts: a state replaced under us is read again once.
        for _ in 0..2 {
            let raw = match self.current(player).await? {
                Current::Busy(PlayerState::Hosting {
                    code,
                    mode,
                    expires_ms,
                    ..
                }) if mode == request.mode => {
                    return Ok(Invite {
                        code,
                        mode,
                        expires_ms,
                    });
                }
                Current::Busy(state) => return Err(busy(state)),
                Current::Free(raw) => raw,
            };
            let now = now_ms();
            let mut invite = StoredInvite {
                host: player.clone(),
                mode: request.mode.clone(),
                created_ms: now,
                expires_ms: now + ttl.as_millis() as u64,
                guest: None,
            };
            // The code first: until the host's state says `hosting`, nobody
            // knows the code, and a host is never `hosting` a missing code.
            let code = self.store_new_code(&invite, ttl).await?;
            let hosting = serde_json::to_string(&PlayerState::Hosting {
                code: code.clone(),
                mode: invite.mode.clone(),
                since_ms: now,
                expires_ms: invite.expires_ms,
            })?;
            if self
                .store
                .swap(player, raw.as_deref(), Some(&hosting), Some(ttl))
                .await?
            {
                return Ok(Invite {
                    code,
                    mode: std::mem::take(&mut invite.mode),
                    expires_ms: invite.expires_ms,
                });
            }
            self.store.cancel_invite(&code, player).await?;
        }
        Err(MatchmakingError::Matching)
    }

    /// Stores `invite` under a fresh code; returns the code.
    async fn store_new_code(
        &self,
        invite: &StoredInvite,
        ttl: Duration,
    ) -> Result<String, MatchmakingError> {
        for _ in 0..CODE_ATTEMPTS {
            let code = random_code()?;
            if self.store.create_invite(&code, invite, ttl).await? {
                return Ok(code);
            }
        }
        Err(MatchmakingError::Unavailable(
            "no free invite code was found; try again".into(),
        ))
    }

    /// Joins the private match of an invite code: both players are told of
    /// the match (unranked, no bots) and the reply says `playing`.
    ///
    /// Refused, changing nothing: a malformed code (`bad_request`), a code
    /// that expired, was cancelled or never existed (`unknown_code`), one
    /// another guest used (`code_used`), one's own code (`own_code`), and a
    /// guest who is queued, hosting or playing (`already_queued`, `hosting`,
    /// `in_match`). If the match host cannot create the match the error is
    /// `unavailable`, and the code works again: the host waits on it for the
    /// rest of its life, so a retry needs nothing new from either player.
    pub async fn join_invite(
        &self,
        request: &JoinInviteRequest,
    ) -> Result<Status, MatchmakingError> {
        let guest = request.player.as_str();
        check_player(guest)?;
        let code = normalize_code(&request.code)?;
        // A look first, so the refusals that need no claim change nothing.
        let Some(invite) = self.store.invite(&code).await? else {
            return Err(MatchmakingError::UnknownCode);
        };
        if invite.host == guest {
            return Err(MatchmakingError::OwnCode);
        }
        if invite.guest.is_some() {
            return Err(MatchmakingError::CodeUsed);
        }
        let matching = serde_json::to_string(&PlayerState::Matching {
            ticket_id: format!("code:{code}"),
            since_ms: now_ms(),
        })?;
        if let Claimed::Busy(state) = self.claim_free(guest, &matching, None).await? {
            return Err(busy(state));
        }
        // The guest is `matching` now: every way out but success frees them.
        let joined = self.join_claimed(&code, guest, &matching).await;
        if joined.is_err() {
            let _ = self.store.swap(guest, Some(&matching), None, None).await;
        }
        joined
    }

    async fn join_claimed(
        &self,
        code: &str,
        guest: &str,
        guest_matching: &str,
    ) -> Result<Status, MatchmakingError> {
        let invite = match self.store.claim_invite(code, guest).await? {
            InviteClaim::Claimed(invite) => invite,
            InviteClaim::Used => return Err(MatchmakingError::CodeUsed),
            InviteClaim::Gone => return Err(MatchmakingError::UnknownCode),
        };
        let host = invite.host.as_str();
        // Until the host is `matching`, a failure to reach the store gives
        // the code back, so it is not left claimed by nobody.
        let release = |e: StoreError| async move {
            let _ = self.store.release_invite(code, guest).await;
            MatchmakingError::from(e)
        };
        // The host, still `hosting` this code → `matching`.
        let hosting = match self.store.state(host).await {
            Ok(hosting) => hosting,
            Err(e) => return Err(release(e).await),
        };
        let waits = hosting
            .as_deref()
            .and_then(|s| serde_json::from_str::<PlayerState>(s).ok())
            .is_some_and(|s| matches!(s, PlayerState::Hosting { code: c, .. } if c == code));
        let host_matching = serde_json::to_string(&PlayerState::Matching {
            ticket_id: format!("code:{code}"),
            since_ms: now_ms(),
        })?;
        let (true, Some(hosting)) = (waits, hosting) else {
            // The host left, or the code outlived its state: it is dead.
            self.store.cancel_invite(code, host).await?;
            return Err(MatchmakingError::UnknownCode);
        };
        match self
            .store
            .swap(host, Some(&hosting), Some(&host_matching), None)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.store.cancel_invite(code, host).await?;
                return Err(MatchmakingError::UnknownCode);
            }
            Err(e) => return Err(release(e).await),
        }
        let new = NewMatch {
            mode: invite.mode.clone(),
            players: vec![host.to_owned(), guest.to_owned()],
            ranked: false,
            bots: Vec::new(),
        };
        let match_id = match self.matches.create(&new).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(mode = %new.mode, error = %e, "could not create a private match; the code goes back");
                self.host_again(code, &invite, guest, &host_matching, &hosting)
                    .await;
                return Err(MatchmakingError::Unavailable(e));
            }
        };
        self.announce(
            &match_id,
            &new,
            QueueKind::Quick,
            Origin::Invite,
            &[(host, &host_matching), (guest, guest_matching)],
        )
        .await;
        // The claimed code stays until it expires, so a late guest hears
        // `code_used` rather than `unknown_code`.
        Ok(Status::Playing { match_id })
    }

    /// A private match could not be made: the code is given back and its
    /// host waits on it again until it expires (or, if it just did, is free).
    async fn host_again(
        &self,
        code: &str,
        invite: &StoredInvite,
        guest: &str,
        host_matching: &str,
        hosting: &str,
    ) {
        let left = invite.expires_ms.saturating_sub(now_ms());
        let released = left > 0 && matches!(self.store.release_invite(code, guest).await, Ok(true));
        let back = released.then_some(hosting);
        let ttl = Some(Duration::from_millis(left.max(1)));
        let restored = self
            .store
            .swap(&invite.host, Some(host_matching), back, ttl)
            .await;
        if !released || !matches!(restored, Ok(true)) {
            let _ = self.store.cancel_invite(code, &invite.host).await;
        }
    }

    /// Offers a rematch of a finished match, or accepts one: the offer that
    /// makes every human player agree starts the new match (same mode and
    /// seats, unranked; bots always agree and are replaced by new ones).
    ///
    /// Refused, changing nothing: after the window (`rematch_expired`), by
    /// someone who did not play (`not_in_match`), by a player who is queued,
    /// hosting or playing again (`already_queued`, `hosting`, `in_match`),
    /// and an accept while another player is busy (`opponent_busy`). If the
    /// match host cannot create the match (`unavailable`), the accept is
    /// withdrawn and the other offers stand, so it may be tried again within
    /// the window.
    pub async fn offer_rematch(
        &self,
        request: &RematchRequest,
    ) -> Result<RematchStatus, MatchmakingError> {
        let (player, match_id) = (request.player.as_str(), request.match_id.as_str());
        check_player(player)?;
        check_match_id(match_id)?;
        let expired = || MatchmakingError::RematchExpired(match_id.to_owned());
        let stranger = || MatchmakingError::NotInMatch {
            player: player.to_owned(),
            match_id: match_id.to_owned(),
        };
        let slot = match self.store.rematch(match_id).await? {
            Some(slot) => slot,
            // The end may not have come through the record stream yet: the
            // host's record opens the same window (from the same end time,
            // so a long-finished match stays closed).
            None => match self.matches.finished_record(match_id).await {
                Some(record) if record.match_id == match_id => {
                    self.open_rematch(&record).await?;
                    self.store.rematch(match_id).await?.ok_or_else(expired)?
                }
                _ => return Err(expired()),
            },
        };
        if !slot.humans.iter().any(|p| p == player) {
            return Err(stranger());
        }
        if let Some(id) = slot.match_id {
            return Ok(RematchStatus::Started { match_id: id });
        }
        if let Current::Busy(state) = self.current(player).await? {
            return Err(busy(state));
        }
        let others: Vec<&String> = slot.humans.iter().filter(|p| *p != player).collect();
        if others.iter().all(|p| slot.offered.contains(p)) {
            for other in &others {
                if let Current::Busy(_) = self.current(other).await? {
                    return Err(MatchmakingError::OpponentBusy((*other).clone()));
                }
            }
        }
        let token = random_id("r-");
        match self
            .store
            .offer_rematch(match_id, player, now_ms(), &token)
            .await?
        {
            RematchOffer::Expired => Err(expired()),
            RematchOffer::Stranger => Err(stranger()),
            RematchOffer::Started(id) => Ok(RematchStatus::Started { match_id: id }),
            RematchOffer::Starting => Err(MatchmakingError::Matching),
            RematchOffer::Offered { new, ttl_ms } => {
                let expires_ms = now_ms() + ttl_ms;
                if new {
                    let offered = Notice::RematchOffered {
                        match_id: match_id.to_owned(),
                        from: player.to_owned(),
                        expires_ms,
                    };
                    for other in others {
                        self.notify.notify(other, &offered).await;
                    }
                }
                Ok(RematchStatus::Offered {
                    match_id: match_id.to_owned(),
                    expires_ms,
                })
            }
            RematchOffer::Start => self.start_rematch(match_id, &slot, player, &token).await,
        }
    }

    /// Everyone agreed and `token` holds the slot: make the rematch, or
    /// undo the accept.
    async fn start_rematch(
        &self,
        match_id: &str,
        slot: &StoredRematch,
        accepter: &str,
        token: &str,
    ) -> Result<RematchStatus, MatchmakingError> {
        let matching = serde_json::to_string(&PlayerState::Matching {
            ticket_id: format!("rematch:{match_id}"),
            since_ms: now_ms(),
        })?;
        let mut marked: Vec<&str> = Vec::new();
        let mut refused = None;
        for p in &slot.humans {
            match self.claim_free(p, &matching, None).await {
                Ok(Claimed::Done) => marked.push(p),
                Ok(Claimed::Busy(state)) if p == accepter => refused = Some(busy(state)),
                Ok(Claimed::Busy(_)) => refused = Some(MatchmakingError::OpponentBusy(p.clone())),
                Err(e) => refused = Some(e),
            }
            if refused.is_some() {
                break;
            }
        }
        let created = match refused {
            Some(e) => Err(e),
            None => {
                // Same seats; each bot seat gets a new bot.
                let mut bots = Vec::new();
                let players = slot
                    .players
                    .iter()
                    .map(|p| {
                        if slot.bots.contains(p) {
                            let bot = random_id(BOT_PREFIX);
                            bots.push(bot.clone());
                            bot
                        } else {
                            p.clone()
                        }
                    })
                    .collect();
                let new = NewMatch {
                    mode: slot.mode.clone(),
                    players,
                    ranked: false,
                    bots,
                };
                match self.matches.create(&new).await {
                    Ok(id) => Ok((id, new)),
                    Err(e) => {
                        tracing::warn!(mode = %new.mode, error = %e, "could not create a rematch; the accept is withdrawn");
                        Err(MatchmakingError::Unavailable(e))
                    }
                }
            }
        };
        let (id, new) = match created {
            Ok(made) => made,
            Err(e) => {
                for p in marked {
                    let _ = self.store.swap(p, Some(&matching), None, None).await;
                }
                let _ = self
                    .store
                    .settle_rematch(match_id, token, None, accepter)
                    .await;
                return Err(e);
            }
        };
        if let Err(e) = self
            .store
            .settle_rematch(match_id, token, Some(&id), accepter)
            .await
        {
            // The match exists and its players are told; later offers of the
            // old match hear `matching` until the window closes.
            tracing::warn!(%match_id, error = %e, "could not record a rematch in its slot");
        }
        let marked: Vec<(&str, &str)> = marked.iter().map(|p| (*p, matching.as_str())).collect();
        self.announce(&id, &new, QueueKind::Quick, Origin::Rematch, &marked)
            .await;
        Ok(RematchStatus::Started { match_id: id })
    }

    /// One periodic pass over every queue: pairs tickets whose windows have
    /// widened enough, and gives bots to quick-queue tickets that waited long
    /// enough. Returns the matches made.
    pub async fn pass(&self) -> Result<usize, MatchmakingError> {
        let mut made = 0;
        for mode in &self.modes {
            for kind in [QueueKind::Quick, QueueKind::Ranked] {
                made += self.pass_queue(mode, kind).await?;
            }
        }
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
        let now = now_ms();
        let mut made = 0;
        let mut paired = vec![false; waiting.len()];
        for (i, j) in self.policy.pair_all(&waiting, now) {
            paired[i] = true;
            paired[j] = true;
            if let Taken::All(pair) = self.take(&keys, &[&waiting[i], &waiting[j]]).await?
                && self.make_match(pair, false).await
            {
                made += 1;
            }
        }
        for (t, _) in waiting.iter().zip(&paired).filter(|(_, p)| !**p) {
            if self.policy.wants_bot(t, now)
                && let Taken::All(one) = self.take(&keys, &[t]).await?
                && self.make_match(one, true).await
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

    /// A finished match, from the record stream: its rematch window opens,
    /// its players are free again, and a ranked result moves their ratings
    /// (once per match). Each step may be repeated, so a record handled
    /// twice changes nothing more.
    pub async fn record_finished(
        &self,
        record: &crate::fair_dice::MatchRecord,
    ) -> Result<(), MatchmakingError> {
        // The window first: a player the end frees may offer at once.
        self.open_rematch(record).await?;
        self.match_ended(&record.match_id, &record.players).await?;
        if record.ranked && record.bots.is_empty() {
            self.ratings
                .rate_match(&record.match_id, &record.mode, &record.standings)
                .await?;
        }
        Ok(())
    }

    /// Opens the rematch window of a finished match, until
    /// `rematch_window_ms` after it ended: the last action's time as the host
    /// recorded it, or now if the record does not say. So a record that
    /// arrives late (or again) cannot open a window that has closed.
    async fn open_rematch(
        &self,
        record: &crate::fair_dice::MatchRecord,
    ) -> Result<(), MatchmakingError> {
        let humans: Vec<String> = record
            .players
            .iter()
            .filter(|p| !record.bots.contains(p) && !p.starts_with(BOT_PREFIX))
            .cloned()
            .collect();
        if humans.is_empty() || record.players.len() < 2 {
            return Ok(());
        }
        let now = now_ms();
        let ended_ms = record
            .actions
            .iter()
            .filter_map(|a| a.at_ms)
            .max()
            .unwrap_or(now)
            .min(now);
        let left = (ended_ms + self.private.rematch_window_ms).saturating_sub(now);
        if left == 0 {
            return Ok(());
        }
        let slot = StoredRematch {
            mode: record.mode.clone(),
            players: record.players.clone(),
            bots: record.bots.clone(),
            humans,
            ended_ms,
            offered: Vec::new(),
            match_id: None,
        };
        self.store
            .open_rematch(&record.match_id, &slot, Duration::from_millis(left))
            .await?;
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

enum Taken {
    All(Vec<Ticket>),
    None,
}

fn check_player(player: &str) -> Result<(), MatchmakingError> {
    if player.is_empty() || player.len() > crate::matches::MAX_PLAYER_ID {
        return Err(MatchmakingError::BadRequest(format!(
            "player ids are 1 to {} bytes",
            crate::matches::MAX_PLAYER_ID
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_six_unambiguous_characters_and_vary() {
        let codes: BTreeSet<String> = (0..200).map(|_| random_code().unwrap()).collect();
        assert!(codes.len() > 190, "random: {} distinct", codes.len());
        for code in &codes {
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
            assert_eq!(normalize_code(code).unwrap(), *code);
        }
        for ambiguous in b"01OIL" {
            assert!(!CODE_ALPHABET.contains(ambiguous));
        }
    }

    #[test]
    fn codes_are_read_in_any_case_and_malformed_ones_are_refused() {
        assert_eq!(normalize_code(" k7qx2m ").unwrap(), "K7QX2M");
        for bad in ["", "K7QX2", "K7QX2MM", "K7QX2O", "K7-X2M", "К7QX2M"] {
            let err = normalize_code(bad).expect_err(bad);
            assert_eq!(err.code(), "bad_request", "{bad:?}");
        }
    }

    #[test]
    fn states_and_notices_keep_their_wire_shape() {
        let hosting = PlayerState::Hosting {
            code: "K7QX2M".into(),
            mode: "classic".into(),
            since_ms: 1,
            expires_ms: 2,
        };
        assert_eq!(
            serde_json::to_value(&hosting).unwrap(),
            serde_json::json!({"state": "hosting", "code": "K7QX2M", "mode": "classic", "since_ms": 1, "expires_ms": 2})
        );
        let offered = Notice::RematchOffered {
            match_id: "m1".into(),
            from: "alice".into(),
            expires_ms: 3,
        };
        assert_eq!(
            serde_json::to_value(&offered).unwrap(),
            serde_json::json!({"type": "rematch_offered", "match_id": "m1", "from": "alice", "expires_ms": 3})
        );
        // A match-found notice from before `origin` existed reads as a queue's.
        let old = r#"{"type":"match_found","match_id":"m","mode":"classic","kind":"quick","players":["a","b"],"bot":false}"#;
        let Notice::MatchFound(found) = serde_json::from_str(old).unwrap() else {
            panic!("a match found");
        };
        assert_eq!(found.origin, Origin::Queue);
        assert_eq!(
            serde_json::to_value(RematchStatus::Started {
                match_id: "m2".into()
            })
            .unwrap(),
            serde_json::json!({"state": "started", "match_id": "m2"})
        );
    }
}
