//! A finished match's record: what the match host stores in JetStream when a
//! match ends, what the matchmaker rates, and what `dashdice match verify`
//! replays (see `dashdice_runtime::fair_dice`).

use dashdice_mode_sdk::{Action, Standing};
use serde::{Deserialize, Serialize};

use crate::ModeHash;

/// Everything needed to audit a finished match: who played which mode
/// version, the revealed seed and its commitment, and every applied action in
/// order (rolls with the dice they showed).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MatchRecord {
    pub match_id: String,
    pub mode: String,
    pub mode_version: ModeHash,
    pub players: Vec<String>,
    /// The mode options the match was started with (a JSON object as text;
    /// empty = the mode's defaults).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub options: String,
    /// When the match was created (ms since the Unix epoch; 0 = not recorded).
    #[serde(default)]
    pub created_ms: u64,
    /// A ranked match: its result moves ratings.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub ranked: bool,
    /// Which players were the host's bots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub bots: Vec<String>,
    /// `SHA-256(seed)` as published when the match started.
    pub seed_hash: String,
    /// The seed, revealed when the match ended.
    pub seed: String,
    pub actions: Vec<RecordedAction>,
    /// The final standings the host announced.
    pub standings: Vec<Standing>,
    /// Set when the host ended the match as void (its mode version was
    /// quarantined for faulting): why. A void match has no result: ratings
    /// ignore it, and its standings are all draws.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub void: Option<String>,
}

/// One applied action. For a roll, `dice` is what the match showed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedAction {
    pub actor: String,
    #[serde(flatten)]
    pub action: Action,
    /// When the host applied it (ms since the Unix epoch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at_ms: Option<u64>,
}
