//! The contract's types in plain Rust.
//!
//! These mirror `wit/mode.wit` one to one. The guest glue (`guest.rs`) and the
//! host's bindings convert between the generated types and these, so rules code
//! and host code never touch generated bindings. Serde gives the JSON shapes that
//! clients and tooling see (`snake_case`, events tagged by `"type"`).

use serde::{Deserialize, Serialize};

/// A player's id as the host knows it.
pub type PlayerId = String;

/// An action a mode accepts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionInfo {
    pub name: String,
    pub description: String,
    pub needs_dice: bool,
}

/// How a mode describes itself.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModeInfo {
    pub id: String,
    pub name: String,
    pub version: String,
    pub description: String,
    pub min_players: u32,
    pub max_players: u32,
    pub turn_time_limit_ms: u32,
    pub actions: Vec<ActionInfo>,
}

/// What the host asks for when it starts a match.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchConfig {
    pub players: Vec<PlayerId>,
    pub first_player: Option<PlayerId>,
    /// Mode options as a JSON object; empty means defaults.
    pub options: String,
}

/// A player's action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Roll { dice: Vec<u8> },
    Bank,
    Timeout,
    Forfeit,
    Custom { name: String, payload: String },
}

impl Action {
    /// The action's name as listed in [`ModeInfo::actions`].
    pub fn name(&self) -> &str {
        match self {
            Action::Roll { .. } => "roll",
            Action::Bank => "bank",
            Action::Timeout => "timeout",
            Action::Forfeit => "forfeit",
            Action::Custom { name, .. } => name,
        }
    }
}

/// What a bot does on its turn, as its mode decides ([`crate::Rules::bot`]).
/// There are no dice in [`BotMove::Roll`]: the host throws them, as for any
/// player, so a bot cannot choose its luck.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "move", rename_all = "snake_case")]
pub enum BotMove {
    Roll,
    Bank,
    Custom { name: String, payload: String },
}

/// Classification of a two-dice roll, in order of precedence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RollKind {
    SnakeEyes,
    Double,
    SingleOne,
    Normal,
}

/// Why a banked score changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BankedReason {
    Bank,
    Penalty,
    Reset,
    Attacked,
    Kept,
}

/// Why a turn score was thrown away.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BustReason {
    SingleOne,
    Reset,
    Timeout,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchResult {
    Win,
    Loss,
    Draw,
}

/// Why the game ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    Won,
    Completed,
    Forfeit,
}

/// One player's place when the game is over.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Standing {
    pub player: PlayerId,
    pub score: i32,
    pub rank: u32,
    pub result: MatchResult,
}

/// Something that happened, in order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    TurnStarted {
        player: PlayerId,
    },
    Rolled {
        player: PlayerId,
        dice: Vec<u8>,
        kind: RollKind,
    },
    TurnScoreChanged {
        player: PlayerId,
        delta: i32,
        total: i32,
    },
    BankedScoreChanged {
        player: PlayerId,
        delta: i32,
        total: i32,
        reason: BankedReason,
    },
    MultiplierChanged {
        player: PlayerId,
        multiplier: u32,
    },
    Busted {
        player: PlayerId,
        lost: i32,
        reason: BustReason,
    },
    TimedOut {
        player: PlayerId,
    },
    Forfeited {
        player: PlayerId,
    },
    TurnPassed {
        from: PlayerId,
        to: PlayerId,
    },
    GameOver {
        reason: EndReason,
        standings: Vec<Standing>,
    },
    Custom {
        name: String,
        payload: String,
    },
}

/// The result of starting a match or applying an action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The mode's serialized state; opaque outside the mode.
    #[serde(skip)]
    pub state: Vec<u8>,
    pub events: Vec<Event>,
    pub turn: Option<PlayerId>,
    pub standings: Option<Vec<Standing>>,
}

/// Why a mode refused a call. The state is unchanged.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum ModeError {
    #[error("not your turn: it is {0}'s turn")]
    NotYourTurn(PlayerId),
    #[error("{0} is not a player in this match")]
    NotAPlayer(PlayerId),
    #[error("nothing to bank: the turn score is 0")]
    NothingToBank,
    #[error("the game is over")]
    GameOver,
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    #[error("not allowed: {0}")]
    NotAllowed(String),
    #[error("invalid dice: {0}")]
    InvalidDice(String),
    #[error("invalid match config: {0}")]
    InvalidConfig(String),
    #[error("invalid entropy: {0}")]
    InvalidEntropy(String),
    #[error("corrupt state: {0}")]
    CorruptState(String),
}
