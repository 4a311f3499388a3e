//! Playing a scripted game: `dashdice mode replay`.
//!
//! A script names the players (the first listed starts) and the steps:
//!
//! ```json
//! {"players": ["alice", "bob"],
//!  "steps": [{"action": "roll", "dice": [3, 4]}, {"action": "bank"}]}
//! ```
//!
//! A step's `player` defaults to whoever is on turn. A `roll` without `dice`
//! throws them through the mode from a seeded entropy stream. Any other action
//! name is sent as a custom action with the step's `payload`. Every step runs on
//! a fresh instance, exactly as the match host runs it, and prints one JSON line:
//! the step, the dice, the events and the public view, or the error.

use std::io::Write;

use dashdice_mode_sdk::{Action, MatchConfig};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use dashdice_runtime::{CallError, Mode, Step};

/// A scripted game.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub players: Vec<String>,
    /// Mode options (a JSON object), if any.
    #[serde(default)]
    pub options: Option<Value>,
    pub steps: Vec<ScriptStep>,
}

/// One scripted action.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptStep {
    pub action: String,
    #[serde(default)]
    pub dice: Option<Vec<u8>>,
    #[serde(default)]
    pub player: Option<String>,
    #[serde(default)]
    pub payload: Option<Value>,
}

/// One printed line.
#[derive(Debug, Serialize)]
pub struct Line<'a> {
    pub step: usize,
    pub action: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub player: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dice: Option<Vec<u8>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events: Option<Vec<dashdice_mode_sdk::Event>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub view: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorLine>,
}

#[derive(Debug, Serialize)]
pub struct ErrorLine {
    pub code: &'static str,
    pub message: String,
}

/// How a replay went.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub steps: usize,
    /// Steps the mode refused (the game carried on from the unchanged state).
    pub rejected: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the match could not start: {0}")]
    Start(CallError),
    /// The mode itself failed (trap, limit): the replay cannot go on.
    #[error("step {step}: {source}")]
    ModeFault { step: usize, source: CallError },
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
    #[error("the mode returned a view that is not JSON: {0}")]
    View(#[from] serde_json::Error),
}

/// Plays `script` on `mode`, writing one JSON line per step (step 0 is the
/// start).
pub fn replay(
    mode: &Mode,
    script: &Script,
    seed: u64,
    out: &mut dyn Write,
) -> Result<Summary, ReplayError> {
    let config = MatchConfig {
        players: script.players.clone(),
        first_player: script.players.first().cloned(),
        options: script
            .options
            .as_ref()
            .map(Value::to_string)
            .unwrap_or_default(),
    };
    let mut entropy = ChaCha8Rng::seed_from_u64(seed);
    let started = mode
        .start(&config, &draw(&mut entropy))
        .map_err(ReplayError::Start)?;
    print(
        out,
        &Line {
            step: 0,
            action: "start",
            player: None,
            dice: None,
            events: Some(started.outcome.events),
            view: Some(serde_json::from_str(&started.view)?),
            error: None,
        },
    )?;
    let mut state = started.outcome.state;
    let mut turn = started.outcome.turn;
    let mut summary = Summary::default();
    for (i, step) in script.steps.iter().enumerate() {
        let n = i + 1;
        let actor = step
            .player
            .clone()
            .or_else(|| turn.clone())
            .unwrap_or_default();
        let request = to_step(step, &mut entropy);
        summary.steps += 1;
        let line = match mode.act(&state, &actor, &request) {
            Ok(acted) => {
                state = acted.outcome.state;
                turn = acted.outcome.turn;
                Line {
                    step: n,
                    action: &step.action,
                    player: Some(&actor),
                    dice: acted.dice.or_else(|| step.dice.clone()),
                    events: Some(acted.outcome.events),
                    view: Some(serde_json::from_str(&acted.view)?),
                    error: None,
                }
            }
            Err(e @ CallError::Rejected(_)) => {
                summary.rejected += 1;
                Line {
                    step: n,
                    action: &step.action,
                    player: Some(&actor),
                    dice: step.dice.clone(),
                    events: None,
                    view: None,
                    error: Some(ErrorLine {
                        code: e.code(),
                        message: e.to_string(),
                    }),
                }
            }
            Err(source) => return Err(ReplayError::ModeFault { step: n, source }),
        };
        print(out, &line)?;
    }
    Ok(summary)
}

fn to_step(step: &ScriptStep, entropy: &mut ChaCha8Rng) -> Step {
    let action = match step.action.as_str() {
        "roll" => match &step.dice {
            Some(dice) => Action::Roll { dice: dice.clone() },
            None => {
                return Step::Roll {
                    entropy: draw(entropy),
                };
            }
        },
        "bank" => Action::Bank,
        "timeout" => Action::Timeout,
        "forfeit" => Action::Forfeit,
        name => Action::Custom {
            name: name.to_owned(),
            payload: match &step.payload {
                None => String::new(),
                Some(Value::String(s)) => s.clone(),
                Some(v) => v.to_string(),
            },
        },
    };
    Step::Apply(action)
}

/// 32 bytes of entropy for one decision.
pub fn draw(rng: &mut ChaCha8Rng) -> Vec<u8> {
    let mut bytes = vec![0; 32];
    rng.fill_bytes(&mut bytes);
    bytes
}

fn print(out: &mut dyn Write, line: &Line<'_>) -> Result<(), ReplayError> {
    // Serialize first, so a closed pipe is an I/O error and not a JSON one.
    let text = serde_json::to_string(line)?;
    writeln!(out, "{text}")?;
    Ok(())
}
