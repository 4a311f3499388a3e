//! Running matches authoritatively: create, act, read, time out.
//!
//! Architecture invariant: this module knows the rules of *hosting* (who may
//! act, where dice come from, timers, idempotency, retries) but nothing of NATS
//! or of Redis commands. It talks to modes through [`crate::runtime`], to the
//! store through [`crate::store::MatchStore`], and returns typed results; the
//! bus layer turns them into messages.
//!
//! One action: load the match → check the actor → derive the roll's entropy
//! from the match seed → call the mode on a fresh instance → commit with
//! compare-and-set on the version (retrying from a fresh load on conflict) →
//! return the new events, numbered gap-free. A request id seen before returns
//! the first reply and changes nothing.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use dashdice_mode_sdk::{Action, Event, MatchConfig, ModeError, Standing};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::fair_dice::{MatchRecord, Purpose, RecordedAction, Seed, SeedError};
use crate::registry::ModeRegistry;
use crate::runtime::{Acted, CallError, Mode, Step};
use crate::store::{Commit, Committed, MatchStore, StoreError, StoredMatch};

/// Consecutive timeouts that forfeit the match.
pub const TIMEOUTS_TO_FORFEIT: u32 = 3;
/// How often an action is retried after losing a compare-and-set race.
const MAX_ATTEMPTS: usize = 16;

/// Ask to start a match.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMatch {
    pub mode: String,
    pub players: Vec<String>,
    /// Mode options (a JSON object), if any.
    #[serde(default)]
    pub options: Option<Value>,
}

/// What a player may ask for. Dice are never sent by clients; timeouts come
/// only from the host's timers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlayerAction {
    Roll,
    Bank,
    Forfeit,
    Custom { name: String, payload: String },
}

/// An action's reply, and whether this call applied it (`false`: the request
/// id was applied before and this is the first reply again; publish nothing).
#[derive(Clone, Debug, PartialEq)]
pub struct Applied {
    pub reply: ActionReply,
    pub new: bool,
}

/// Ask to act in a match. On the wire it is flat:
/// `{"match_id","player","request_id","action":"roll"|"bank"|"forfeit"|"custom","name"?,"payload"?}`;
/// any other field (dice, say) is refused.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(try_from = "ActWire", into = "ActWire")]
pub struct ActRequest {
    pub match_id: String,
    pub player: String,
    /// The client's id for this request: the same id is applied at most once.
    pub request_id: String,
    pub action: PlayerAction,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActWire {
    match_id: String,
    player: String,
    request_id: String,
    action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    payload: Option<String>,
}

impl TryFrom<ActWire> for ActRequest {
    type Error = String;
    fn try_from(w: ActWire) -> Result<Self, String> {
        let action = match (w.action.as_str(), w.name) {
            ("roll", None) => PlayerAction::Roll,
            ("bank", None) => PlayerAction::Bank,
            ("forfeit", None) => PlayerAction::Forfeit,
            ("custom", Some(name)) => PlayerAction::Custom {
                name,
                payload: w.payload.unwrap_or_default(),
            },
            ("custom", None) => return Err("a custom action needs a `name`".into()),
            (other, None) => {
                return Err(format!(
                    "unknown action {other:?}: expected roll, bank, forfeit or custom"
                ));
            }
            (_, Some(_)) => return Err("only custom actions take a `name`".into()),
        };
        if w.request_id.is_empty() || w.request_id.len() > 128 {
            return Err("request_id must be 1 to 128 characters".into());
        }
        Ok(ActRequest {
            match_id: w.match_id,
            player: w.player,
            request_id: w.request_id,
            action,
        })
    }
}

impl From<ActRequest> for ActWire {
    fn from(r: ActRequest) -> Self {
        let (action, name, payload) = match r.action {
            PlayerAction::Roll => ("roll", None, None),
            PlayerAction::Bank => ("bank", None, None),
            PlayerAction::Forfeit => ("forfeit", None, None),
            PlayerAction::Custom { name, payload } => ("custom", Some(name), Some(payload)),
        };
        ActWire {
            match_id: r.match_id,
            player: r.player,
            request_id: r.request_id,
            action: action.to_owned(),
            name,
            payload,
        }
    }
}

/// An event with its place in the match's gap-free sequence.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SequencedEvent {
    pub seq: u64,
    #[serde(flatten)]
    pub event: Event,
}

/// The public state of a match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub match_id: String,
    pub mode: String,
    pub mode_version: String,
    pub players: Vec<String>,
    /// The last event's sequence number.
    pub seq: u64,
    pub turn: Option<String>,
    /// When the player on turn times out (ms since the epoch).
    pub deadline_ms: Option<u64>,
    /// SHA-256 of the match's secret seed, published from the start.
    pub seed_hash: String,
    /// The seed itself, revealed once the match is over.
    pub seed: Option<String>,
    pub finished: bool,
    /// The mode's public view.
    pub view: Value,
}

/// The reply to an action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionReply {
    pub events: Vec<SequencedEvent>,
    #[serde(rename = "match")]
    pub snapshot: Snapshot,
}

/// Why a request failed. The match is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum MatchError {
    #[error("unknown mode {0:?}")]
    UnknownMode(String),
    #[error("no match {0:?}")]
    UnknownMatch(String),
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
    #[error("a stored reply could not be read: {0}")]
    Reply(#[from] serde_json::Error),
}

impl MatchError {
    /// A stable, machine-readable code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            MatchError::UnknownMode(_) => "unknown_mode",
            MatchError::UnknownMatch(_) => "unknown_match",
            MatchError::NotAPlayer { .. } => "not_a_player",
            MatchError::Rejected(ModeError::NotYourTurn(_)) => "not_your_turn",
            MatchError::Rejected(ModeError::GameOver) => "game_over",
            MatchError::Rejected(ModeError::NothingToBank) => "nothing_to_bank",
            MatchError::Rejected(ModeError::UnknownAction(_)) => "unknown_action",
            MatchError::Rejected(ModeError::InvalidConfig(_)) => "invalid_config",
            MatchError::Rejected(_) => "rejected",
            MatchError::Contention => "conflict",
            MatchError::ModeFault(_) => "mode_fault",
            MatchError::Store(_) => "unavailable",
            MatchError::Seed(_) => "unavailable",
            MatchError::Reply(_) => "internal",
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
    registry: Arc<ModeRegistry>,
    store: MatchStore,
    /// How long a finished match stays readable.
    pub finished_ttl_secs: u64,
    /// Overrides every mode's turn timer (development and tests).
    pub turn_time_ms: Option<u64>,
}

/// Milliseconds since the Unix epoch: the clock of turn deadlines.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn new_match_id() -> Result<String, SeedError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| SeedError::Os(e.to_string()))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

impl MatchHost {
    pub fn new(registry: Arc<ModeRegistry>, store: MatchStore) -> Self {
        MatchHost {
            registry,
            store,
            finished_ttl_secs: 3600,
            turn_time_ms: None,
        }
    }

    fn turn_time(&self, mode: &Mode) -> u64 {
        self.turn_time_ms
            .unwrap_or_else(|| u64::from(mode.info().turn_time_limit_ms))
    }

    pub fn store(&self) -> &MatchStore {
        &self.store
    }

    fn mode_of(&self, m: &StoredMatch) -> Result<Arc<Mode>, MatchError> {
        let version = m
            .mode_version
            .parse()
            .map_err(|_| MatchError::UnknownMode(format!("{}@{}", m.mode, m.mode_version)))?;
        self.registry
            .version(&m.mode, version)
            .ok_or_else(|| MatchError::UnknownMode(format!("{}@{}", m.mode, m.mode_version)))
    }

    /// Starts a match on the mode's current version; returns its snapshot and
    /// first events.
    pub async fn create(&self, request: &CreateMatch) -> Result<ActionReply, MatchError> {
        let mode = self
            .registry
            .current(&request.mode)
            .ok_or_else(|| MatchError::UnknownMode(request.mode.clone()))?;
        let match_id = new_match_id()?;
        let seed = Seed::generate()?;
        let config = MatchConfig {
            players: request.players.clone(),
            first_player: None,
            options: request
                .options
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
        };
        let started = mode.start(&config, &seed.entropy(&match_id, Purpose::Start))?;
        let now = now_ms();
        let m = StoredMatch {
            id: match_id,
            version: 1,
            mode: mode.info().id.clone(),
            mode_version: mode.hash().to_string(),
            players: request.players.clone(),
            state: started.outcome.state.clone(),
            view: started.view.clone(),
            turn: started.outcome.turn.clone(),
            seq: 0,
            rolls: 0,
            seed: seed.reveal(),
            seed_hash: seed.commitment(),
            deadline_ms: now + self.turn_time(&mode),
            timeouts: vec![0; request.players.len()],
            finished: false,
            created_ms: now,
        };
        let (m, events) = number(m, started.outcome.events);
        let encoded = encode_events(&events)?;
        self.store.create(&m, &encoded).await?;
        Ok(ActionReply {
            events,
            snapshot: snapshot(&m)?,
        })
    }

    /// The match's public state.
    pub async fn get(&self, match_id: &str) -> Result<Snapshot, MatchError> {
        let m = self.load(match_id).await?;
        snapshot(&m)
    }

    /// Events after sequence number `after`, for clients catching up.
    pub async fn events_since(
        &self,
        match_id: &str,
        after: u64,
    ) -> Result<Vec<SequencedEvent>, MatchError> {
        let raw = self.store.events_since(match_id, after).await?;
        if raw.is_empty() && self.store.load(match_id).await?.is_none() {
            return Err(MatchError::UnknownMatch(match_id.to_owned()));
        }
        raw.iter()
            .map(|e| serde_json::from_str(e).map_err(MatchError::from))
            .collect()
    }

    async fn load(&self, match_id: &str) -> Result<StoredMatch, MatchError> {
        self.store
            .load(match_id)
            .await?
            .ok_or_else(|| MatchError::UnknownMatch(match_id.to_owned()))
    }

    /// A player's action, applied exactly once per request id.
    pub async fn act(&self, request: &ActRequest) -> Result<Applied, MatchError> {
        let id = &request.match_id;
        if let Some(first) = self.store.reply_for(id, &request.request_id).await? {
            return Ok(Applied {
                reply: serde_json::from_str(&first)?,
                new: false,
            });
        }
        let action = match &request.action {
            PlayerAction::Roll => None,
            PlayerAction::Bank => Some(Action::Bank),
            PlayerAction::Forfeit => Some(Action::Forfeit),
            PlayerAction::Custom { name, payload } => Some(Action::Custom {
                name: name.clone(),
                payload: payload.clone(),
            }),
        };
        let reply = self
            .apply_with_retry(id, Some(&request.request_id), |m| {
                if !m.players.contains(&request.player) {
                    return Err(MatchError::NotAPlayer {
                        player: request.player.clone(),
                        match_id: id.clone(),
                    });
                }
                if m.finished {
                    return Err(MatchError::Rejected(ModeError::GameOver));
                }
                Ok(Some((request.player.clone(), action.clone())))
            })
            .await?;
        // `decide` above always asks for an action.
        reply.ok_or(MatchError::Contention)
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
        // The deadline names this firing: two workers firing the same timer
        // send the same request id, so at most one of them applies it.
        let request_id = format!("timeout@{deadline_ms}");
        self.apply_with_retry(match_id, Some(&request_id), |m| {
            let Some(player) = m.turn.clone() else {
                return Ok(None);
            };
            if m.finished || m.deadline_ms != deadline_ms {
                return Ok(None);
            }
            let seat = m.players.iter().position(|p| *p == player).unwrap_or(0);
            let strikes = m.timeouts.get(seat).copied().unwrap_or(0) + 1;
            let action = if strikes >= TIMEOUTS_TO_FORFEIT {
                Action::Forfeit
            } else {
                Action::Timeout
            };
            Ok(Some((player, Some(action))))
        })
        .await
    }

    /// The audit record of a finished match.
    pub async fn record(&self, match_id: &str) -> Result<MatchRecord, MatchError> {
        let m = self.load(match_id).await?;
        if !m.finished {
            return Err(MatchError::Rejected(ModeError::NotAllowed(
                "the record (and the seed) are published when the match ends".into(),
            )));
        }
        let actions = self
            .store
            .actions(match_id)
            .await?
            .iter()
            .map(|a| serde_json::from_str(a))
            .collect::<Result<Vec<RecordedAction>, _>>()?;
        let standings: Vec<Standing> = self
            .events_since(match_id, 0)
            .await?
            .into_iter()
            .rev()
            .find_map(|e| match e.event {
                Event::GameOver { standings, .. } => Some(standings),
                _ => None,
            })
            .unwrap_or_default();
        Ok(MatchRecord {
            match_id: m.id.clone(),
            mode: m.mode.clone(),
            mode_version: m
                .mode_version
                .parse()
                .map_err(|_| MatchError::UnknownMode(m.mode_version.clone()))?,
            players: m.players.clone(),
            seed_hash: m.seed_hash.clone(),
            seed: m.seed.clone(),
            actions,
            standings,
        })
    }

    /// Load → decide → call the mode → compare-and-set, retried on conflict.
    /// `decide` returns the actor and the action (`None` = roll), or `None` to
    /// do nothing (then so does this).
    async fn apply_with_retry(
        &self,
        match_id: &str,
        request_id: Option<&str>,
        decide: impl Fn(&StoredMatch) -> Result<Option<(String, Option<Action>)>, MatchError>,
    ) -> Result<Option<Applied>, MatchError> {
        for _ in 0..MAX_ATTEMPTS {
            let m = self.load(match_id).await?;
            let Some((actor, action)) = decide(&m)? else {
                return Ok(None);
            };
            let mode = self.mode_of(&m)?;
            let step = match &action {
                None => Step::Roll {
                    entropy: Seed::parse(&m.seed)?.entropy(match_id, Purpose::Roll(m.rolls)),
                },
                Some(a) => Step::Apply(a.clone()),
            };
            let acted = mode.act(&m.state, &actor, &step)?;
            let (commit, reply) = self.commit_for(&m, &mode, &actor, &action, acted, request_id)?;
            match self.store.commit(&commit).await? {
                Committed::Ok { .. } => return Ok(Some(Applied { reply, new: true })),
                Committed::Duplicate { reply } => {
                    return Ok(Some(Applied {
                        reply: serde_json::from_str(&reply)?,
                        new: false,
                    }));
                }
                Committed::Conflict { .. } => continue,
                Committed::Missing => return Err(MatchError::UnknownMatch(match_id.to_owned())),
            }
        }
        Err(MatchError::Contention)
    }

    fn commit_for(
        &self,
        before: &StoredMatch,
        mode: &Mode,
        actor: &str,
        action: &Option<Action>,
        acted: Acted,
        request_id: Option<&str>,
    ) -> Result<(Commit, ActionReply), MatchError> {
        let applied = match (action, &acted.dice) {
            (Some(a), _) => a.clone(),
            (None, dice) => Action::Roll {
                dice: dice.clone().unwrap_or_default(),
            },
        };
        let mut after = before.clone();
        after.state = acted.outcome.state;
        after.view = acted.view;
        after.turn = acted.outcome.turn;
        after.finished = acted.outcome.standings.is_some();
        if matches!(applied, Action::Roll { .. }) {
            after.rolls += 1;
        }
        // A timeout adds to the actor's streak; anything they do ends it.
        let seat = before.players.iter().position(|p| p == actor);
        if let Some(count) = seat.and_then(|s| after.timeouts.get_mut(s)) {
            *count = if applied == Action::Timeout {
                *count + 1
            } else {
                0
            };
        }
        // Deadlines only move forward, even for two actions in one
        // millisecond: a deadline names its timer firing (`timeout@<ms>`), so
        // two timers of one match must never share one.
        after.deadline_ms = if after.finished {
            0
        } else {
            (now_ms() + self.turn_time(mode)).max(before.deadline_ms + 1)
        };
        let (after, events) = number(after, acted.outcome.events);
        let reply = ActionReply {
            events,
            snapshot: snapshot(&after)?,
        };
        let commit = Commit {
            expected_version: before.version,
            request_id: request_id.map(str::to_owned),
            reply: serde_json::to_string(&reply)?,
            events: encode_events(&reply.events)?,
            action: Some(serde_json::to_string(&RecordedAction {
                actor: actor.to_owned(),
                action: applied,
            })?),
            after,
            finished_ttl_secs: self.finished_ttl_secs,
        };
        Ok((commit, reply))
    }
}

/// Numbers new events after the match's last sequence number.
fn number(mut m: StoredMatch, events: Vec<Event>) -> (StoredMatch, Vec<SequencedEvent>) {
    let first = m.seq + 1;
    let numbered: Vec<SequencedEvent> = events
        .into_iter()
        .enumerate()
        .map(|(i, event)| SequencedEvent {
            seq: first + i as u64,
            event,
        })
        .collect();
    m.seq += numbered.len() as u64;
    (m, numbered)
}

fn encode_events(events: &[SequencedEvent]) -> Result<Vec<String>, MatchError> {
    events
        .iter()
        .map(|e| serde_json::to_string(e).map_err(MatchError::from))
        .collect()
}

fn snapshot(m: &StoredMatch) -> Result<Snapshot, MatchError> {
    Ok(Snapshot {
        match_id: m.id.clone(),
        mode: m.mode.clone(),
        mode_version: m.mode_version.clone(),
        players: m.players.clone(),
        seq: m.seq,
        turn: m.turn.clone(),
        deadline_ms: (!m.finished && m.deadline_ms > 0).then_some(m.deadline_ms),
        seed_hash: m.seed_hash.clone(),
        seed: m.finished.then(|| m.seed.clone()),
        finished: m.finished,
        view: serde_json::from_str(&m.view)?,
    })
}
