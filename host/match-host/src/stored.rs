//! How a match is encoded for the store, and how one action moves it on.
//!
//! Compact postcard records, because every live match sits in Redis memory:
//! [`Meta`] is written once, [`Progress`] and the mode's state on every
//! action, and one [`LogEntry`] is appended per action. [`begin`] and
//! [`advance`] are the only places that compute a match's progress, so the live
//! path and a replay of the log cannot disagree.

use dashdice_mode_sdk::{Action, Event, Outcome, Standing};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use dashdice_runtime::ModeHash;
use dashdice_runtime::fair_dice::{RecordedAction, Seed};
use dashdice_store::Fingerprint;

use dashdice_proto::matches::SequencedEvent;

/// A match's stored bytes could not be read (a bug, or a foreign writer).
#[derive(Debug, thiserror::Error)]
#[error("match {match_id} has a malformed `{field}`: {detail}")]
pub struct Corrupt {
    pub match_id: String,
    pub field: &'static str,
    pub detail: String,
}

/// What never changes once a match is created.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Meta {
    pub mode: String,
    pub mode_version: [u8; 32],
    pub players: Vec<String>,
    /// Mode options (a JSON object as text; empty = the defaults).
    pub options: String,
    pub seed: [u8; 32],
    pub created_ms: u64,
    pub ranked: bool,
    /// The seats the host plays itself.
    pub bots: Vec<u8>,
}

impl Meta {
    pub fn mode_hash(&self) -> ModeHash {
        ModeHash::from_bytes(self.mode_version)
    }

    pub fn seed(&self) -> Seed {
        Seed::from_bytes(self.seed)
    }

    pub fn seat_of(&self, player: &str) -> Option<u8> {
        self.players
            .iter()
            .position(|p| p == player)
            .and_then(|i| u8::try_from(i).ok())
    }

    pub fn is_bot(&self, seat: u8) -> bool {
        self.bots.contains(&seat)
    }

    pub fn player(&self, seat: u8) -> &str {
        self.players
            .get(usize::from(seat))
            .map_or("", String::as_str)
    }
}

/// Where a match stands; rewritten by every action.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    /// The sequence number of the last event.
    pub seq: u64,
    /// Rolls so far: the index of the next roll's entropy.
    pub rolls: u64,
    /// Actions applied so far (the length of the log).
    pub actions: u64,
    /// The seat on turn; `None` once finished.
    pub turn: Option<u8>,
    /// When the player on turn times out (ms since the epoch); 0 = no timer.
    pub deadline_ms: u64,
    /// Consecutive timeouts per seat.
    pub timeouts: Vec<u32>,
    /// The result, once the match is over.
    pub standings: Option<Vec<Standing>>,
}

impl Progress {
    pub fn finished(&self) -> bool {
        self.standings.is_some()
    }
}

/// One applied action, as the log keeps it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seat: u8,
    pub action: Logged,
    /// When it was applied, in ms after the match was created.
    pub at_ms: u64,
    /// The deadline it set, in ms after the match was created; 0 = none.
    pub deadline_ms: u64,
}

/// [`Action`] in a form postcard can store (the SDK's is tagged for JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Logged {
    Roll(Vec<u8>),
    Bank,
    Timeout,
    Forfeit,
    Custom {
        name: String,
        payload: String,
    },
    /// The host ended the match as void, without the mode (its version was
    /// quarantined). Last in the enum: postcard numbers variants, so logs
    /// written before it still decode.
    Void {
        reason: String,
    },
}

impl From<&Action> for Logged {
    fn from(a: &Action) -> Self {
        match a {
            Action::Roll { dice } => Logged::Roll(dice.clone()),
            Action::Bank => Logged::Bank,
            Action::Timeout => Logged::Timeout,
            Action::Forfeit => Logged::Forfeit,
            Action::Custom { name, payload } => Logged::Custom {
                name: name.clone(),
                payload: payload.clone(),
            },
        }
    }
}

impl Logged {
    /// The player's (or timer's) action; `None` for the host's void.
    pub fn action(&self) -> Option<Action> {
        Some(match self {
            Logged::Roll(dice) => Action::Roll { dice: dice.clone() },
            Logged::Bank => Action::Bank,
            Logged::Timeout => Action::Timeout,
            Logged::Forfeit => Action::Forfeit,
            Logged::Custom { name, payload } => Action::Custom {
                name: name.clone(),
                payload: payload.clone(),
            },
            Logged::Void { .. } => return None,
        })
    }

    pub fn void_reason(&self) -> Option<&str> {
        match self {
            Logged::Void { reason } => Some(reason),
            _ => None,
        }
    }
}

impl LogEntry {
    /// The entry as the public match record shows it; a void is not an
    /// action (the record's `void` says it).
    pub fn recorded(&self, meta: &Meta) -> Option<RecordedAction> {
        Some(RecordedAction {
            actor: meta.player(self.seat).to_owned(),
            action: self.action.action()?,
            at_ms: Some(meta.created_ms + self.at_ms),
        })
    }
}

/// What a void does: no mode call, the state kept as it was, every player
/// drawn at rank 1 with score 0, and two events: `match_void` (a custom
/// event whose payload is `{"reason": ...}`, so clients can say why) and
/// `game_over`. Deterministic, so a replay rebuilds the same events.
pub fn void_outcome(meta: &Meta, state: &[u8], reason: &str) -> Outcome {
    let standings: Vec<Standing> = meta
        .players
        .iter()
        .map(|p| Standing {
            player: p.clone(),
            score: 0,
            rank: 1,
            result: dashdice_mode_sdk::MatchResult::Draw,
        })
        .collect();
    let payload = serde_json::json!({ "reason": reason }).to_string();
    Outcome {
        state: state.to_vec(),
        events: vec![
            Event::Custom {
                name: VOID_EVENT.to_owned(),
                payload,
            },
            Event::GameOver {
                reason: dashdice_mode_sdk::EndReason::Completed,
                standings: standings.clone(),
            },
        ],
        turn: None,
        standings: Some(standings),
    }
}

/// The custom event a void match ends with.
pub const VOID_EVENT: &str = "match_void";

/// The public view of a void match, made by the host (the mode is not
/// asked): the contract's fields, no winner, and why.
pub fn void_view(meta: &Meta, reason: &str) -> String {
    let players: Vec<serde_json::Value> = meta
        .players
        .iter()
        .map(|p| serde_json::json!({ "id": p, "score": 0 }))
        .collect();
    serde_json::json!({
        "mode": meta.mode,
        "status": "finished",
        "players": players,
        "turn": null,
        "turn_score": 0,
        "winner": null,
        "draw": true,
        "void": reason,
    })
    .to_string()
}

pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    // Serializing these plain structs into a Vec cannot fail.
    postcard::to_allocvec(value).unwrap_or_default()
}

pub fn decode<'a, T: Deserialize<'a>>(
    match_id: &str,
    field: &'static str,
    bytes: &'a [u8],
) -> Result<T, Corrupt> {
    postcard::from_bytes(bytes).map_err(|e| Corrupt {
        match_id: match_id.to_owned(),
        field,
        detail: e.to_string(),
    })
}

/// Splits the log into its entries.
pub fn decode_log(match_id: &str, mut log: &[u8]) -> Result<Vec<LogEntry>, Corrupt> {
    let mut entries = Vec::new();
    while !log.is_empty() {
        let (entry, rest) = postcard::take_from_bytes(log).map_err(|e| Corrupt {
            match_id: match_id.to_owned(),
            field: "log",
            detail: format!("entry {}: {e}", entries.len()),
        })?;
        entries.push(entry);
        log = rest;
    }
    Ok(entries)
}

/// The fingerprint of a player's request id.
pub fn player_request(player: &str, request_id: &str) -> Fingerprint {
    fingerprint(&[b"player", player.as_bytes(), request_id.as_bytes()])
}

/// The fingerprint of a turn timer firing when the match has applied
/// `actions` actions. Firing is exactly-once by compare-and-set (a second
/// host firing the same timer loses the race, reloads and finds the turn moved
/// on); the fingerprint only has to differ from every other action's.
pub fn timer_request(actions: u64) -> Fingerprint {
    fingerprint(&[b"timer", &actions.to_be_bytes()])
}

fn fingerprint(parts: &[&[u8]]) -> Fingerprint {
    let mut hash = Sha256::new();
    for part in parts {
        // Length-prefixed, so ("ab", "c") and ("a", "bc") differ.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part);
    }
    let digest = hash.finalize();
    let mut fp = [0; 8];
    fp.copy_from_slice(&digest[..8]);
    fp
}

/// The progress right after `start`, and its events numbered from 1.
pub fn begin(meta: &Meta, outcome: Outcome, deadline_ms: u64) -> (Progress, Vec<SequencedEvent>) {
    let before = Progress {
        timeouts: vec![0; meta.players.len()],
        ..Progress::default()
    };
    let mut progress = before.clone();
    progress.deadline_ms = deadline_ms;
    let events = number(&mut progress, outcome.events);
    progress.turn = outcome.turn.as_deref().and_then(|p| meta.seat_of(p));
    progress.standings = outcome.standings;
    (progress, events)
}

/// The progress after `entry`, whose mode call gave `outcome`, and its events.
pub fn advance(
    meta: &Meta,
    before: &Progress,
    entry: &LogEntry,
    outcome: Outcome,
) -> (Progress, Vec<SequencedEvent>) {
    let mut after = before.clone();
    after.actions += 1;
    if matches!(entry.action, Logged::Roll(_)) {
        after.rolls += 1;
    }
    // A timeout adds to the actor's streak; anything they do ends it.
    if let Some(count) = after.timeouts.get_mut(usize::from(entry.seat)) {
        *count = if entry.action == Logged::Timeout {
            *count + 1
        } else {
            0
        };
    }
    let events = number(&mut after, outcome.events);
    after.turn = outcome.turn.as_deref().and_then(|p| meta.seat_of(p));
    after.standings = outcome.standings;
    after.deadline_ms = if after.finished() || entry.deadline_ms == 0 {
        0
    } else {
        meta.created_ms + entry.deadline_ms
    };
    (after, events)
}

/// Numbers new events after the last sequence number.
fn number(progress: &mut Progress, events: Vec<Event>) -> Vec<SequencedEvent> {
    events
        .into_iter()
        .map(|event| {
            progress.seq += 1;
            SequencedEvent {
                seq: progress.seq,
                event,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> Meta {
        Meta {
            mode: "classic".into(),
            mode_version: [7; 32],
            players: vec!["alice".into(), "bob".into()],
            options: String::new(),
            seed: [9; 32],
            created_ms: 1_700_000_000_000,
            ranked: false,
            bots: vec![],
        }
    }

    #[test]
    fn records_round_trip_and_stay_small() {
        let m = meta();
        let bytes = encode(&m);
        assert_eq!(decode::<Meta>("m", "meta", &bytes).unwrap(), m);
        let entries = [
            LogEntry {
                seat: 0,
                action: Logged::Roll(vec![3, 5]),
                at_ms: 61_000,
                deadline_ms: 91_000,
            },
            LogEntry {
                seat: 1,
                action: Logged::Custom {
                    name: "double".into(),
                    payload: "{}".into(),
                },
                at_ms: 62_000,
                deadline_ms: 0,
            },
        ];
        let log: Vec<u8> = entries.iter().flat_map(encode).collect();
        assert_eq!(decode_log("m", &log).unwrap(), entries);
        assert!(
            encode(&entries[0]).len() <= 12,
            "a roll is {} bytes",
            encode(&entries[0]).len()
        );
        assert!(decode_log("m", &log[..log.len() - 1]).is_err());
    }

    #[test]
    fn fingerprints_separate_players_ids_and_timers() {
        assert_eq!(player_request("a", "1"), player_request("a", "1"));
        assert_ne!(player_request("a", "1"), player_request("b", "1"));
        assert_ne!(player_request("ab", "c"), player_request("a", "bc"));
        assert_ne!(player_request("a", "1"), timer_request(1));
        assert_ne!(timer_request(1), timer_request(2));
    }

    #[test]
    fn advance_counts_rolls_streaks_and_events() {
        let m = meta();
        let start = Progress {
            seq: 2,
            turn: Some(0),
            timeouts: vec![2, 1],
            ..Progress::default()
        };
        let outcome = |turn: &str, events: usize| Outcome {
            state: vec![],
            events: (0..events)
                .map(|_| Event::TurnStarted {
                    player: turn.into(),
                })
                .collect(),
            turn: Some(turn.into()),
            standings: None,
        };
        let timeout = LogEntry {
            seat: 0,
            action: Logged::Timeout,
            at_ms: 5,
            deadline_ms: 30_005,
        };
        let (after, events) = advance(&m, &start, &timeout, outcome("bob", 2));
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 4]);
        assert_eq!(
            (after.seq, after.rolls, after.actions, after.turn),
            (4, 0, 1, Some(1))
        );
        assert_eq!(after.timeouts, [3, 1]);
        assert_eq!(after.deadline_ms, m.created_ms + 30_005);
        let roll = LogEntry {
            seat: 1,
            action: Logged::Roll(vec![1, 2]),
            ..timeout
        };
        let (after, _) = advance(&m, &after, &roll, outcome("bob", 1));
        assert_eq!((after.rolls, after.timeouts.clone()), (1, vec![3, 0]));
    }
}
