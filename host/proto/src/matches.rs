//! The match host's requests and replies, as they travel (JSON).

use dashdice_mode_sdk::{Event, Standing};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ErrorCode;
use crate::bus::{self, Answer, EventsRequest, MatchIdRequest};
use crate::record::{MatchRecord, RecordedAction};

/// A request to the match host, decoded by the endpoint it came on.
#[derive(Clone, Debug)]
pub enum MatchRequest {
    Create(CreateMatch),
    Act(ActRequest),
    Get(MatchIdRequest),
    Events(EventsRequest),
    Record(MatchIdRequest),
}

impl MatchRequest {
    /// Decodes `payload` as the request `endpoint` takes; the refusal to
    /// send otherwise (`too_large`, `bad_request`, `unknown_endpoint`).
    pub fn decode(endpoint: &str, payload: &[u8], max_bytes: usize) -> Result<Self, Answer> {
        use bus::decode_request as decode;
        Ok(match endpoint {
            bus::endpoint::CREATE => MatchRequest::Create(decode(payload, max_bytes)?),
            bus::endpoint::ACT => MatchRequest::Act(decode(payload, max_bytes)?),
            bus::endpoint::GET => MatchRequest::Get(decode(payload, max_bytes)?),
            bus::endpoint::EVENTS => MatchRequest::Events(decode(payload, max_bytes)?),
            bus::endpoint::RECORD => MatchRequest::Record(decode(payload, max_bytes)?),
            other => return Err(bus::refuse(ErrorCode::UnknownEndpoint, other)),
        })
    }
}

/// Ask to start a match.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateMatch {
    pub mode: String,
    pub players: Vec<String>,
    /// Mode options (a JSON object), if any.
    #[serde(default)]
    pub options: Option<Value>,
    /// The caller's id for the new match (32 hex digits), so a retried
    /// request cannot create two matches: the second gets `match_exists`.
    /// Without it the host picks one.
    #[serde(default)]
    pub match_id: Option<String>,
    /// A ranked match: its result moves ratings.
    #[serde(default)]
    pub ranked: bool,
    /// Which of `players` are the host's bots; the host plays their turns.
    #[serde(default)]
    pub bots: Vec<String>,
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
    /// The mode options the match started with, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<Value>,
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
    /// When the match was created (ms since the epoch).
    pub created_ms: u64,
    /// A ranked match: its result moves ratings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ranked: bool,
    /// Which players are the host's bots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bots: Vec<String>,
    /// The mode's public view.
    pub view: Value,
    /// Once finished: the final standings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub standings: Option<Vec<Standing>>,
    /// Once finished: every applied action with its dice and time, so that
    /// `dashdice match verify` can re-derive every roll from the seed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<RecordedAction>>,
    /// Why the host ended the match as void (its mode version was withdrawn
    /// for faulting); the match has no result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub void: Option<String>,
}

impl Snapshot {
    /// The audit record a final view carries; `None` while the match is on.
    pub fn record(&self) -> Option<MatchRecord> {
        Some(MatchRecord {
            match_id: self.match_id.clone(),
            mode: self.mode.clone(),
            mode_version: self.mode_version.parse().ok()?,
            players: self.players.clone(),
            options: self
                .options
                .as_ref()
                .map(Value::to_string)
                .unwrap_or_default(),
            created_ms: self.created_ms,
            ranked: self.ranked,
            bots: self.bots.clone(),
            seed_hash: self.seed_hash.clone(),
            seed: self.seed.clone()?,
            actions: self.actions.clone()?,
            standings: self.standings.clone()?,
            void: self.void.clone(),
        })
    }
}

/// The reply to an action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ActionReply {
    pub events: Vec<SequencedEvent>,
    #[serde(rename = "match")]
    pub snapshot: Snapshot,
}

/// The match record in a JSON document that is one of: a finished match's
/// [`Snapshot`] (the final view), an [`ActionReply`] holding one, either inside
/// the bus's `{"ok": ...}` envelope, or a [`MatchRecord`] itself.
pub fn verifiable_record(json: &[u8]) -> Result<MatchRecord, String> {
    let mut doc: Value = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    // A reply envelope, a `match` wrapper, or an archived match (whose
    // `record` is the record).
    for wrapper in ["ok", "match", "record"] {
        if let Some(inner) = doc.get_mut(wrapper).filter(|v| v.is_object()) {
            doc = inner.take();
        }
    }
    if doc.get("view").is_some() {
        let snapshot: Snapshot = serde_json::from_value(doc).map_err(|e| e.to_string())?;
        snapshot
            .record()
            .ok_or_else(|| "the match is not over yet: its seed is still secret".to_owned())
    } else {
        serde_json::from_value(doc).map_err(|e| e.to_string())
    }
}
