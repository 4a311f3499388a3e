//! Running matches authoritatively: create, act, read, time out.
//!
//! Architecture invariant: this module knows the rules of *hosting* (who may
//! act, where dice come from, timers, idempotency, retries) but nothing of NATS
//! or of Redis commands. It talks to modes through `dashdice_runtime`, to the
//! store through [`dashdice_store::MatchStore`], and returns typed results; the
//! bus layer turns them into messages.
//!
//! One action, two Redis round trips: load the match (which also says if this
//! request was applied before) → check the actor → derive the roll's entropy
//! from the match seed → call the mode on a fresh instance → commit with
//! compare-and-set on the version (retrying from a fresh load on conflict) →
//! return the new events, numbered gap-free.
//!
//! Nothing derived is stored: a request applied before gets its first reply
//! rebuilt by replaying the log (modes are deterministic), and so do the
//! events a reconnecting client missed. See `stored.rs` for the encoding.

use std::ops::ControlFlow;
use std::sync::Arc;

use dashdice_mode_sdk::{Action, BotMove, MatchConfig, ModeError};
use serde_json::Value;

use dashdice_proto::ErrorCode;
use dashdice_proto::clock::now_ms;
use dashdice_proto::ids::{NoRandomness, new_match_id};
use dashdice_runtime::fair_dice::{MatchRecord, Purpose, Seed, SeedError};
use dashdice_runtime::registry::ModeRegistry;

use crate::abandon::{Player, Seen, Verdict};
use crate::versions::{ModeSource, Versions};
use dashdice_runtime::{Acted, CallError, Mode, Step};
use dashdice_store::{
    Commit, Committed, Fingerprint, MatchStore, NewMatch, StoreError, StoredMatch,
};

pub use crate::stored::Corrupt;
pub use dashdice_proto::ids::{MAX_PLAYER_ID, MAX_PLAYERS};
pub use dashdice_proto::matches::{
    ActRequest, ActionReply, Applied, CreateMatch, PlayerAction, SequencedEvent, Snapshot,
    verifiable_record,
};

use crate::stored::{
    LogEntry, Logged, Meta, Progress, decode, decode_log, encode, void_outcome, void_view,
};

/// Consecutive timeouts that forfeit the match.
pub const TIMEOUTS_TO_FORFEIT: u32 = 3;
/// How often an action is retried after losing a compare-and-set race.
const MAX_ATTEMPTS: usize = 16;

/// Why a request failed. The match is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("unknown mode {0:?}")]
    UnknownMode(String),
    #[error("{0}")]
    Withdrawn(String),
    #[error("the mode's component was refused: {0}")]
    Refused(String),
    #[error("the mode catalog is unreachable: {0}")]
    Unreachable(String),
    #[error("no match {0:?}")]
    UnknownMatch(String),
    #[error("a match with id {0:?} exists already")]
    MatchExists(String),
    #[error("{player} is not a player in match {match_id}")]
    NotAPlayer { player: String, match_id: String },
    #[error(transparent)]
    Rejected(ModeError),
    #[error("the match kept changing while this action was applied; try again")]
    Contention,
    #[error("the mode failed: {0}")]
    ModeFault(CallError),
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("randomness: {0}")]
    Seed(#[from] SeedError),
    #[error("randomness: {0}")]
    NoRandomness(#[from] NoRandomness),
    #[error("stored match data could not be read: {0}")]
    Corrupt(#[from] Corrupt),
    #[error("a view could not be read: {0}")]
    View(#[from] serde_json::Error),
    #[error("the work was interrupted: {0}")]
    Interrupted(String),
}

impl MatchError {
    /// A stable, machine-readable code for clients.
    pub fn code(&self) -> ErrorCode {
        match self {
            MatchError::UnknownMode(_) => ErrorCode::UnknownMode,
            MatchError::Withdrawn(_) => ErrorCode::ModeWithdrawn,
            MatchError::Refused(_) => ErrorCode::ModeFault,
            MatchError::Unreachable(_) => ErrorCode::Unavailable,
            MatchError::UnknownMatch(_) => ErrorCode::UnknownMatch,
            MatchError::MatchExists(_) => ErrorCode::MatchExists,
            MatchError::NotAPlayer { .. } => ErrorCode::NotAPlayer,
            MatchError::Rejected(ModeError::NotYourTurn(_)) => ErrorCode::NotYourTurn,
            MatchError::Rejected(ModeError::GameOver) => ErrorCode::GameOver,
            MatchError::Rejected(ModeError::NothingToBank) => ErrorCode::NothingToBank,
            MatchError::Rejected(ModeError::UnknownAction(_)) => ErrorCode::UnknownAction,
            MatchError::Rejected(ModeError::InvalidConfig(_)) => ErrorCode::InvalidConfig,
            MatchError::Rejected(_) => ErrorCode::Rejected,
            MatchError::Contention => ErrorCode::Conflict,
            MatchError::ModeFault(_) => ErrorCode::ModeFault,
            MatchError::Store(_) => ErrorCode::Unavailable,
            MatchError::Seed(_) | MatchError::NoRandomness(_) => ErrorCode::Unavailable,
            MatchError::Corrupt(_) | MatchError::View(_) | MatchError::Interrupted(_) => {
                ErrorCode::Internal
            }
        }
    }
}

impl From<CallError> for MatchError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rejected(e) => MatchError::Rejected(e),
            fault => MatchError::ModeFault(fault),
        }
    }
}

/// The match host's logic, shared by every worker; it keeps no match in memory.
#[derive(Clone)]
pub struct MatchHost {
    versions: Versions,
    store: MatchStore,
    /// How long a finished match stays readable.
    pub finished_ttl_secs: u64,
    /// Overrides every mode's turn timer (development and tests).
    pub turn_time_ms: Option<u64>,
    /// A bot thinks for this long (ms, uniformly between the two).
    pub bot_delay_ms: (u64, u64),
}

/// A live match's players, as the abandonment check needs them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LivePlayers {
    /// The players who are not the host's bots.
    pub humans: Vec<String>,
    /// When the match was created (ms since the epoch).
    pub created_ms: u64,
}

/// A stored match, decoded.
struct Live {
    id: String,
    version: u64,
    meta: Meta,
    progress: Progress,
    state: Vec<u8>,
}

impl Live {
    fn decode(stored: StoredMatch) -> Result<Self, MatchError> {
        Ok(Live {
            meta: decode(&stored.id, "meta", &stored.meta)?,
            progress: decode(&stored.id, "progress", &stored.progress)?,
            id: stored.id,
            version: stored.version,
            state: stored.state,
        })
    }
}

/// What `decide` chose: who acts, and what.
type Decision = (u8, Move);

/// What the actor does.
#[derive(Clone, Debug)]
enum Move {
    /// The host throws the dice for them.
    Roll,
    Act(Action),
    /// The host ends the match as void, without calling the mode (the
    /// reason); logged as the actor's seat.
    Void(String),
}

impl From<Option<Action>> for Move {
    fn from(action: Option<Action>) -> Self {
        action.map_or(Move::Roll, Move::Act)
    }
}

impl MatchHost {
    /// A host of the modes in `registry` only.
    pub fn new(registry: Arc<ModeRegistry>, store: MatchStore) -> Self {
        MatchHost {
            versions: Versions::new(registry, None),
            store,
            finished_ttl_secs: 3600,
            turn_time_ms: None,
            bot_delay_ms: (600, 1_400),
        }
    }

    /// Also hosts the modes `source` publishes: new matches get the version
    /// it names, and pinned versions are fetched from it when missing.
    pub fn with_source(mut self, source: Arc<dyn ModeSource>) -> Self {
        self.versions = self.versions.with_source(source);
        self
    }

    pub fn versions(&self) -> &Versions {
        &self.versions
    }

    fn turn_time(&self, mode: &Mode) -> u64 {
        self.turn_time_ms
            .unwrap_or_else(|| u64::from(mode.info().turn_time_limit_ms))
    }

    /// When the turn of `turn` (a player id) times out, or, for a bot, when
    /// it acts: after a short, human-like pause. Always in the future.
    fn deadline(&self, mode: &Mode, meta: &Meta, turn: Option<&str>, now: u64) -> u64 {
        let bot = turn
            .and_then(|p| meta.seat_of(p))
            .is_some_and(|seat| meta.is_bot(seat));
        let wait = if bot {
            let (lo, hi) = self.bot_delay_ms;
            let mut jitter = [0u8; 2];
            let _ = getrandom::fill(&mut jitter);
            lo + u64::from(u16::from_le_bytes(jitter)) % (hi.saturating_sub(lo) + 1)
        } else {
            self.turn_time(mode)
        };
        now + wait.max(1)
    }

    pub fn store(&self) -> &MatchStore {
        &self.store
    }

    /// The exact version the match was started on.
    async fn mode_of(&self, meta: &Meta) -> Result<Arc<Mode>, MatchError> {
        self.versions.pinned(&meta.mode, meta.mode_hash()).await
    }

    /// Starts a match on the mode's current version; returns its snapshot and
    /// first events.
    pub async fn create(&self, request: &CreateMatch) -> Result<ActionReply, MatchError> {
        check_players(&request.players)?;
        let match_id = match &request.match_id {
            Some(id) if is_match_id(id) => id.clone(),
            Some(_) => {
                return Err(MatchError::Rejected(ModeError::InvalidConfig(
                    "match_id must be 32 lowercase hex digits".into(),
                )));
            }
            None => new_match_id()?,
        };
        // The match id is random: its first byte spreads new matches over a
        // canary and the current version.
        let roll = u8::from_str_radix(match_id.get(..2).unwrap_or("0"), 16).unwrap_or(0) % 100;
        let mode = self.versions.for_new_match(&request.mode, roll).await?;
        let mut bots = Vec::new();
        for bot in &request.bots {
            let seat = request
                .players
                .iter()
                .position(|p| p == bot)
                .and_then(|i| u8::try_from(i).ok())
                .ok_or_else(|| {
                    MatchError::Rejected(ModeError::InvalidConfig(format!(
                        "bot {bot:?} is not one of the players"
                    )))
                })?;
            bots.push(seat);
        }
        let seed = Seed::generate()?;
        let options = match &request.options {
            None | Some(Value::Null) => String::new(),
            Some(o @ Value::Object(_)) => o.to_string(),
            Some(_) => {
                return Err(MatchError::Rejected(ModeError::InvalidConfig(
                    "options must be a JSON object".into(),
                )));
            }
        };
        let now = now_ms();
        let meta = Meta {
            mode: mode.info().id.clone(),
            mode_version: mode.hash().to_bytes(),
            players: request.players.clone(),
            options,
            seed: seed.to_bytes(),
            created_ms: now,
            ranked: request.ranked,
            bots,
        };
        let started = self.versions.observe(
            &mode,
            mode.start(&config(&meta), &seed.entropy(&match_id, Purpose::Start)),
        )?;
        let state = started.outcome.state.clone();
        let first = started.outcome.turn.clone();
        let (mut progress, events) = crate::stored::begin(&meta, started.outcome, 0);
        progress.deadline_ms = self.deadline(&mode, &meta, first.as_deref(), now);
        self.store
            .create(&NewMatch {
                id: &match_id,
                meta: &encode(&meta),
                progress: &encode(&progress),
                state: &state,
                deadline_ms: progress.deadline_ms,
            })
            .await
            .map_err(|e| match e {
                StoreError::Exists(id) => MatchError::MatchExists(id),
                other => MatchError::Store(other),
            })?;
        Ok(ActionReply {
            events,
            snapshot: snapshot(&match_id, &meta, &progress, &started.view, None)?,
        })
    }

    /// The match's public state.
    pub async fn get(&self, match_id: &str) -> Result<Snapshot, MatchError> {
        let (live, log) = self.history(match_id).await?;
        let mode = self.mode_of(&live.meta).await?;
        let view = mode.view(&live.state)?;
        let log = live.progress.finished().then_some(&log[..]);
        snapshot(&live.id, &live.meta, &live.progress, &view, log)
    }

    /// Events after sequence number `after`, for clients catching up. Rebuilt
    /// by replaying the match, unless the client is up to date.
    pub async fn events_since(
        &self,
        match_id: &str,
        after: u64,
    ) -> Result<Vec<SequencedEvent>, MatchError> {
        let (live, log) = self.history(match_id).await?;
        if live.progress.seq <= after {
            return Ok(Vec::new());
        }
        let mode = self.mode_of(&live.meta).await?;
        blocking(move || {
            let mut missed = Vec::new();
            replay(&mode, &live, &log, |step| {
                missed.extend(step.events.iter().filter(|e| e.seq > after).cloned());
                ControlFlow::Continue(())
            })?;
            Ok(missed)
        })
        .await
    }

    /// A player's action, applied exactly once per request id.
    pub async fn act(&self, request: &ActRequest) -> Result<Applied, MatchError> {
        let id = &request.match_id;
        let action = match &request.action {
            PlayerAction::Roll => None,
            PlayerAction::Bank => Some(Action::Bank),
            PlayerAction::Forfeit => Some(Action::Forfeit),
            PlayerAction::Custom { name, payload } => Some(Action::Custom {
                name: name.clone(),
                payload: payload.clone(),
            }),
        };
        let fingerprint = crate::stored::player_request(&request.player, &request.request_id);
        let applied = self
            .apply_with_retry(id, Some(fingerprint), |live, _| {
                let (meta, progress) = (&live.meta, &live.progress);
                let seat = meta.seat_of(&request.player).filter(|s| !meta.is_bot(*s));
                let Some(seat) = seat else {
                    return Err(MatchError::NotAPlayer {
                        player: request.player.clone(),
                        match_id: id.clone(),
                    });
                };
                if progress.finished() {
                    return Err(MatchError::Rejected(ModeError::GameOver));
                }
                Ok(Some((seat, action.clone().into())))
            })
            .await?;
        // `decide` above always asks for an action.
        applied.ok_or(MatchError::Contention)
    }

    /// Fires the turn timer of `match_id` if it is still due at `deadline_ms`:
    /// applies `timeout` for the player on turn, or `forfeit` on their third
    /// timeout in a row. Returns `None` if the timer was stale (the player
    /// acted, or another worker fired it first).
    pub async fn fire_timeout(
        &self,
        match_id: &str,
        deadline_ms: u64,
    ) -> Result<Option<Applied>, MatchError> {
        // A bot plays the mode's choice; if the mode refuses its own bot's
        // move (or its bot call fails), the bot rolls instead, and if even
        // that is refused it forfeits, so a match never waits on a bot.
        let mut fired = Err(MatchError::Contention);
        for plan in [BotPlan::ModesChoice, BotPlan::Roll, BotPlan::Forfeit] {
            fired = self
                .apply_with_retry(match_id, None, |live, mode| {
                    let progress = &live.progress;
                    let Some(seat) = progress.turn else {
                        return Ok(None);
                    };
                    if progress.finished() || progress.deadline_ms != deadline_ms {
                        return Ok(None);
                    }
                    if live.meta.is_bot(seat) {
                        let action = match plan {
                            BotPlan::ModesChoice => bot_action(mode, &live.state)?,
                            BotPlan::Roll => None,
                            BotPlan::Forfeit => Some(Action::Forfeit),
                        };
                        return Ok(Some((seat, action.into())));
                    }
                    let strikes = progress
                        .timeouts
                        .get(usize::from(seat))
                        .copied()
                        .unwrap_or(0)
                        + 1;
                    let action = if strikes >= TIMEOUTS_TO_FORFEIT {
                        Action::Forfeit
                    } else {
                        Action::Timeout
                    };
                    Ok(Some((seat, Move::Act(action))))
                })
                .await;
            match &fired {
                Err(MatchError::Rejected(e)) => {
                    tracing::warn!(%match_id, error = %e, ?plan, "the mode refused a bot's move; the bot falls back");
                }
                Err(MatchError::ModeFault(e)) if plan == BotPlan::ModesChoice => {
                    tracing::warn!(%match_id, error = %e, "the mode's bot call failed; the bot falls back");
                }
                _ => break,
            }
        }
        let fired = fired?;
        // A repeated firing is another host's: it announced it already.
        Ok(fired.filter(|applied| applied.new))
    }

    /// The audit record of a finished match.
    pub async fn record(&self, match_id: &str) -> Result<MatchRecord, MatchError> {
        let snapshot = self.get(match_id).await?;
        snapshot.record().ok_or_else(|| {
            MatchError::Rejected(ModeError::NotAllowed(
                "the record (and the seed) are published when the match ends".into(),
            ))
        })
    }

    /// A live match's human players and start, for the abandonment check;
    /// `None` once it is over (or gone).
    pub async fn live_players(&self, match_id: &str) -> Result<Option<LivePlayers>, MatchError> {
        let Some(loaded) = self.store.load(match_id, None).await? else {
            return Ok(None);
        };
        let live = Live::decode(loaded.stored)?;
        if live.progress.finished() {
            return Ok(None);
        }
        let humans = (0..live.meta.players.len())
            .filter_map(|seat| u8::try_from(seat).ok())
            .filter(|&seat| !live.meta.is_bot(seat))
            .map(|seat| live.meta.player(seat).to_owned())
            .collect();
        Ok(Some(LivePlayers {
            humans,
            created_ms: live.meta.created_ms,
        }))
    }

    /// Ends `match_id` if its players are gone by the rules of
    /// [`abandon`](crate::abandon), given what presence says of each
    /// (`seen`) and a reconnect window of `window_ms`: the first to leave
    /// forfeits, or, with every player gone, the match ends as void
    /// ([`ABANDONED`](crate::abandon::ABANDONED)). Applied as the host's
    /// own action, by compare-and-set, and only if the match has not moved
    /// since its log was read (a player who acts meanwhile is present), so
    /// of several hosts deciding at once one applies it. `None`: the match
    /// stays (or is over, or someone else moved first).
    pub async fn end_abandoned(
        &self,
        match_id: &str,
        seen: impl Fn(&str) -> Seen,
        now_ms: u64,
        window_ms: u64,
    ) -> Result<Option<(Applied, Verdict)>, MatchError> {
        let (live, log) = self.history(match_id).await?;
        if live.progress.finished() {
            return Ok(None);
        }
        let mut last_action = vec![None::<u64>; live.meta.players.len()];
        for entry in decode_log(match_id, &log)? {
            // The player's own moves: a timeout is the host's, a void ends it.
            if matches!(entry.action, Logged::Timeout | Logged::Void { .. }) {
                continue;
            }
            if let Some(at) = last_action.get_mut(usize::from(entry.seat)) {
                *at = Some(live.meta.created_ms + entry.at_ms);
            }
        }
        let players: Vec<Player> = last_action
            .iter()
            .enumerate()
            .filter_map(|(seat, &last_action_ms)| {
                let seat = u8::try_from(seat).ok()?;
                Some(Player {
                    seat,
                    bot: live.meta.is_bot(seat),
                    seen: seen(live.meta.player(seat)),
                    last_action_ms,
                })
            })
            .collect();
        let verdict = crate::abandon::verdict(&players, live.meta.created_ms, now_ms, window_ms);
        if verdict == Verdict::Stays {
            return Ok(None);
        }
        let observed = live.progress.actions;
        let applied = self
            .apply_with_retry(match_id, None, |live, _| {
                let progress = &live.progress;
                if progress.finished() || progress.actions != observed {
                    return Ok(None);
                }
                Ok(match &verdict {
                    Verdict::Stays => None,
                    Verdict::Forfeit { seat } => Some((*seat, Move::Act(Action::Forfeit))),
                    Verdict::Void => Some((
                        progress.turn.unwrap_or(0),
                        Move::Void(crate::abandon::ABANDONED.to_owned()),
                    )),
                })
            })
            .await?;
        Ok(applied
            .filter(|applied| applied.new)
            .map(|applied| (applied, verdict)))
    }

    async fn history(&self, match_id: &str) -> Result<(Live, Vec<u8>), MatchError> {
        let (stored, log) = self
            .store
            .history(match_id)
            .await?
            .ok_or_else(|| MatchError::UnknownMatch(match_id.to_owned()))?;
        Ok((Live::decode(stored)?, log))
    }

    /// Load → decide → call the mode → compare-and-set, retried on conflict.
    /// `decide` returns the actor's seat and the action (`None` = roll), or
    /// `None` to do nothing (then so does this). A player's `request` applied
    /// before gets its first reply; the host's own actions (`None`) rely on
    /// compare-and-set alone.
    async fn apply_with_retry(
        &self,
        match_id: &str,
        request: Option<Fingerprint>,
        decide: impl Fn(&Live, &Mode) -> Result<Option<Decision>, MatchError>,
    ) -> Result<Option<Applied>, MatchError> {
        for _ in 0..MAX_ATTEMPTS {
            let loaded = self
                .store
                .load(match_id, request)
                .await?
                .ok_or_else(|| MatchError::UnknownMatch(match_id.to_owned()))?;
            if let Some(index) = loaded.applied_before {
                return self.earlier_reply(match_id, index).await.map(Some);
            }
            let live = Live::decode(loaded.stored)?;
            let mode = self.mode_of(&live.meta).await?;
            let Some((seat, chosen)) = decide(&live, &mode)? else {
                return Ok(None);
            };
            let is_timer = request.is_none();
            let request = request.unwrap_or(crate::stored::timer_request(live.progress.actions));
            // A version withdrawn for faulting plays no more: the first
            // action or timer on one of its matches ends it as void, without
            // calling the mode. So does the host's own void (an abandoned
            // match).
            let void = match &chosen {
                Move::Void(reason) => Some(reason.clone()),
                _ => self.versions.withdrawn(&mode),
            };
            let (logged, outcome, view) = match void {
                Some(reason) => (
                    Logged::Void {
                        reason: reason.clone(),
                    },
                    void_outcome(&live.meta, &live.state, &reason),
                    void_view(&live.meta, &reason),
                ),
                None => {
                    let action = match &chosen {
                        Move::Act(action) => Some(action),
                        Move::Roll | Move::Void(_) => None,
                    };
                    let step = match action {
                        None => Step::Roll {
                            entropy: live
                                .meta
                                .seed()
                                .entropy(match_id, Purpose::Roll(live.progress.rolls)),
                        },
                        Some(a) => Step::Apply(a.clone()),
                    };
                    let acted = self
                        .versions
                        .observe(&mode, mode.act(&live.state, live.meta.player(seat), &step))?;
                    let applied = match (action, &acted.dice) {
                        (Some(a), _) => a.clone(),
                        (None, dice) => Action::Roll {
                            dice: dice.clone().unwrap_or_default(),
                        },
                    };
                    let Acted { outcome, view, .. } = acted;
                    (Logged::from(&applied), outcome, view)
                }
            };
            let now = now_ms();
            let mut deadline = self.deadline(&mode, &live.meta, outcome.turn.as_deref(), now);
            if is_timer {
                // A timer fired (perhaps early, by hand): the next one must
                // not carry its deadline, or a second host firing the old
                // timer would find it still due.
                deadline = deadline.max(live.progress.deadline_ms + 1);
            }
            let entry = LogEntry {
                seat,
                action: logged,
                at_ms: now.saturating_sub(live.meta.created_ms),
                deadline_ms: deadline.saturating_sub(live.meta.created_ms),
            };
            let state = outcome.state.clone();
            let (progress, events) =
                crate::stored::advance(&live.meta, &live.progress, &entry, outcome);
            let committed = self
                .store
                .commit(&Commit {
                    id: match_id,
                    expected_version: live.version,
                    request,
                    progress: &encode(&progress),
                    state: &state,
                    log_entry: &encode(&entry),
                    deadline_ms: progress.deadline_ms,
                    expire_after_secs: progress.finished().then_some(self.finished_ttl_secs),
                    now_ms: now,
                })
                .await?;
            match committed {
                Committed::Ok { .. } => {
                    let snapshot = if progress.finished() {
                        // The final view carries the whole log for verifiers.
                        let (_, log) = self.history(match_id).await?;
                        snapshot(match_id, &live.meta, &progress, &view, Some(&log))?
                    } else {
                        snapshot(match_id, &live.meta, &progress, &view, None)?
                    };
                    return Ok(Some(Applied {
                        reply: ActionReply { events, snapshot },
                        new: true,
                    }));
                }
                Committed::Duplicate { index } => {
                    return self.earlier_reply(match_id, index).await.map(Some);
                }
                Committed::Conflict { .. } => {
                    metrics::counter!(dashdice_service::telemetry::names::CAS_RETRIES).increment(1);
                    continue;
                }
                Committed::Missing => return Err(MatchError::UnknownMatch(match_id.to_owned())),
            }
        }
        Err(MatchError::Contention)
    }

    /// The reply the action at `index` got when it was applied, rebuilt by
    /// replaying the match up to it.
    async fn earlier_reply(&self, match_id: &str, index: u64) -> Result<Applied, MatchError> {
        let (live, log) = self.history(match_id).await?;
        let mode = self.mode_of(&live.meta).await?;
        let reply = blocking(move || {
            let mut reply = None;
            replay(&mode, &live, &log, |step| {
                if step.index != Some(index) {
                    return ControlFlow::Continue(());
                }
                let log = step.progress.finished().then_some(&log[..]);
                reply = Some(
                    snapshot(&live.id, &live.meta, step.progress, step.view, log).map(|snapshot| {
                        ActionReply {
                            events: step.events.to_vec(),
                            snapshot,
                        }
                    }),
                );
                ControlFlow::Break(())
            })?;
            Ok(reply)
        })
        .await?;
        match reply {
            Some(reply) => Ok(Applied {
                reply: reply?,
                new: false,
            }),
            None => Err(MatchError::Corrupt(Corrupt {
                match_id: match_id.to_owned(),
                field: "seen",
                detail: format!("names action {index}, which the log does not have"),
            })),
        }
    }
}

/// Live matches by the mode version they play (at most `limit` looked at):
/// what `dashdice mode list` shows next to each version.
pub async fn live_by_version(
    store: &MatchStore,
    limit: usize,
) -> Result<std::collections::HashMap<dashdice_proto::ModeHash, u64>, MatchError> {
    let mut counts = std::collections::HashMap::new();
    for meta in store.live_metas(limit).await? {
        if let Ok(meta) = decode::<Meta>("(live)", "meta", &meta) {
            *counts.entry(meta.mode_hash()).or_insert(0) += 1;
        }
    }
    Ok(counts)
}

/// Runs whole-match work (a replay: many synchronous mode calls) on the
/// blocking pool, so it never holds up an async worker thread.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, MatchError> + Send + 'static,
) -> Result<T, MatchError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| MatchError::Interrupted(e.to_string()))?
}

/// Replays a match from its seed through its log on fresh instances,
/// showing `visit` the start and then each action, until it breaks.
fn replay(
    mode: &Mode,
    live: &Live,
    log: &[u8],
    mut visit: impl FnMut(Replayed<'_>) -> ControlFlow<()>,
) -> Result<(), MatchError> {
    let meta = &live.meta;
    let started = mode.start(
        &config(meta),
        &meta.seed().entropy(&live.id, Purpose::Start),
    )?;
    let mut state = started.outcome.state.clone();
    let (mut progress, events) = crate::stored::begin(meta, started.outcome, 0);
    let step = Replayed {
        index: None,
        progress: &progress,
        events: &events,
        view: &started.view,
    };
    if visit(step).is_break() {
        return Ok(());
    }
    for (index, entry) in decode_log(&live.id, log)?.into_iter().enumerate() {
        let (outcome, view) = match entry.action.action() {
            Some(action) => {
                let acted = mode.act(&state, meta.player(entry.seat), &Step::Apply(action))?;
                (acted.outcome, acted.view)
            }
            // The host's void: rebuilt without the mode, as it was made.
            None => {
                let reason = entry.action.void_reason().unwrap_or_default();
                (void_outcome(meta, &state, reason), void_view(meta, reason))
            }
        };
        state = outcome.state.clone();
        let (next, events) = crate::stored::advance(meta, &progress, &entry, outcome);
        progress = next;
        let step = Replayed {
            index: Some(index as u64),
            progress: &progress,
            events: &events,
            view: &view,
        };
        if visit(step).is_break() {
            break;
        }
    }
    Ok(())
}

/// One step of a replay: the start (`index` None) or the action at `index`.
struct Replayed<'a> {
    index: Option<u64>,
    progress: &'a Progress,
    events: &'a [SequencedEvent],
    view: &'a str,
}

/// What a bot tries, in order, when its turn comes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BotPlan {
    ModesChoice,
    Roll,
    Forfeit,
}

/// What a bot does on its turn, as its mode decides (the `bot` export): the
/// host knows no mode's rules, so it neither reads the view nor picks a
/// strategy. A roll is `None`, so the host throws the dice as for anyone.
fn bot_action(mode: &Mode, state: &[u8]) -> Result<Option<Action>, MatchError> {
    Ok(match mode.bot(state)? {
        BotMove::Roll => None,
        BotMove::Bank => Some(Action::Bank),
        BotMove::Custom { name, payload } => Some(Action::Custom { name, payload }),
    })
}

fn is_match_id(id: &str) -> bool {
    id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn check_players(players: &[String]) -> Result<(), MatchError> {
    let invalid = |why: String| Err(MatchError::Rejected(ModeError::InvalidConfig(why)));
    if players.is_empty() || players.len() > MAX_PLAYERS {
        return invalid(format!("a match has 1 to {MAX_PLAYERS} players"));
    }
    for (i, p) in players.iter().enumerate() {
        if p.is_empty() || p.len() > MAX_PLAYER_ID {
            return invalid(format!("player ids are 1 to {MAX_PLAYER_ID} bytes"));
        }
        if players[..i].contains(p) {
            return invalid(format!("player {p:?} is listed twice"));
        }
    }
    Ok(())
}

fn config(meta: &Meta) -> MatchConfig {
    MatchConfig {
        players: meta.players.clone(),
        first_player: None,
        options: meta.options.clone(),
    }
}

/// The public state; `log` (the whole log) is given once the match is over,
/// when the snapshot reveals the seed and carries the record.
fn snapshot(
    match_id: &str,
    meta: &Meta,
    progress: &Progress,
    view: &str,
    log: Option<&[u8]>,
) -> Result<Snapshot, MatchError> {
    let finished = progress.finished();
    let entries = match log.filter(|_| finished) {
        Some(log) => Some(decode_log(match_id, log)?),
        None => None,
    };
    let actions = entries.as_ref().map(|entries| {
        entries
            .iter()
            .filter_map(|entry| entry.recorded(meta))
            .collect()
    });
    let void = entries.as_ref().and_then(|entries| {
        entries
            .iter()
            .find_map(|entry| entry.action.void_reason().map(str::to_owned))
    });
    Ok(Snapshot {
        match_id: match_id.to_owned(),
        mode: meta.mode.clone(),
        mode_version: meta.mode_hash().to_string(),
        players: meta.players.clone(),
        options: (!meta.options.is_empty())
            .then(|| serde_json::from_str(&meta.options))
            .transpose()?,
        seq: progress.seq,
        turn: progress.turn.map(|seat| meta.player(seat).to_owned()),
        deadline_ms: (!finished && progress.deadline_ms > 0).then_some(progress.deadline_ms),
        seed_hash: meta.seed().commitment(),
        seed: finished.then(|| meta.seed().reveal()),
        finished,
        created_ms: meta.created_ms,
        ranked: meta.ranked,
        bots: meta
            .bots
            .iter()
            .map(|&seat| meta.player(seat).to_owned())
            .collect(),
        view: serde_json::from_str(view)?,
        standings: progress.standings.clone(),
        actions,
        void,
    })
}
