//! A hostile mode, for proving containment. It plays like a plain race to 100
//! until asked to misbehave, by custom action (during a match) or by its
//! `options` string (at start):
//!
//! | name | what it does |
//! |---|---|
//! | `spin` | loops forever |
//! | `bomb` | allocates until memory runs out |
//! | `panic` | panics with a message |
//! | `recurse` | recurses until the stack overflows |
//! | `huge-state` | returns a 256 KiB state |
//! | `exit` | calls `std::process::exit` |
//! | `probe` | reports what the sandbox lets it see (clock, env, files, randomness) as a custom event |

use std::hint::black_box;

use dashdice_mode_sdk::{
    ActionInfo, BankedReason, EndReason, Event, ModeError, ModeInfo, Rules, Table, TwoDice,
    export_mode, standard_actions,
};
use serde::{Deserialize, Serialize};

pub struct Hostile;

/// The custom actions (and `options`) that misbehave, as in the table above.
pub const MISBEHAVIOURS: [&str; 7] = [
    "spin",
    "bomb",
    "panic",
    "recurse",
    "huge-state",
    "exit",
    "probe",
];

#[derive(Serialize, Deserialize)]
pub struct State {
    table: Table,
    ballast: Vec<u8>,
}

fn misbehave(what: &str, state: Option<&mut State>) -> Result<Option<String>, ModeError> {
    match what {
        "spin" => loop {
            black_box(());
        },
        "bomb" => {
            let mut hoard: Vec<Vec<u8>> = Vec::new();
            loop {
                hoard.push(black_box(vec![1u8; 1 << 20]));
            }
        }
        "panic" => panic!("hostile mode panicked on purpose"),
        "recurse" => Ok(Some(recurse(black_box(1)).to_string())),
        "huge-state" => {
            if let Some(state) = state {
                state.ballast = vec![7; 256 << 10];
            }
            Ok(None)
        }
        "exit" => std::process::exit(3),
        "probe" => Ok(Some(probe())),
        other => Err(ModeError::UnknownAction(other.to_owned())),
    }
}

/// Recursion on the wasm stack itself (scalars only, so no shadow stack in
/// linear memory), opaque enough that LLVM cannot turn it into a loop.
#[inline(never)]
fn recurse(n: u64) -> u64 {
    if black_box(n) == 0 {
        return 0;
    }
    black_box(recurse(black_box(n + 1))) ^ n
}

/// What the outside world looks like from inside the sandbox.
fn probe() -> String {
    use std::hash::{BuildHasher, RandomState};
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(u64::MAX);
    serde_json::json!({
        "wall_clock_secs": now,
        "env_vars": std::env::vars().count(),
        "args": std::env::args().count(),
        "root_dir_readable": std::fs::read_dir("/").is_ok(),
        "random_hash": RandomState::new().hash_one(42u64),
    })
    .to_string()
}

/// The standard actions, and each misbehaviour as a custom action: a mode
/// that lists an action which traps is what `dashdice mode check` must catch.
fn actions() -> Vec<ActionInfo> {
    let mut actions = standard_actions(Some("Bank the turn score."));
    for name in MISBEHAVIOURS {
        actions.push(ActionInfo {
            name: name.into(),
            description: format!("Misbehave: {name}."),
            needs_dice: false,
        });
    }
    actions
}

impl Rules for Hostile {
    const ID: &'static str = "hostile";
    type State = State;

    fn info() -> ModeInfo {
        ModeInfo {
            id: Self::ID.into(),
            name: "Hostile".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Misbehaves on request, for containment tests.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 30_000,
            actions: actions(),
        }
    }

    fn start(table: Table, options: &str) -> Result<State, ModeError> {
        let mut state = State {
            table,
            ballast: Vec::new(),
        };
        if !options.is_empty() {
            misbehave(options, Some(&mut state))?;
        }
        Ok(state)
    }

    fn table(state: &State) -> &Table {
        &state.table
    }

    fn table_mut(state: &mut State) -> &mut Table {
        &mut state.table
    }

    fn roll(s: &mut State, dice: &[u8], events: &mut Vec<Event>) -> Result<(), ModeError> {
        let dice = TwoDice::parse(dice)?;
        s.table.rolled(dice, events);
        s.table.add_turn_score(dice.sum(), events);
        Ok(())
    }

    fn bank(s: &mut State, events: &mut Vec<Event>) -> Result<(), ModeError> {
        let t = &mut s.table;
        if t.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        let seat = t.turn;
        t.add_banked(seat, t.turn_score, BankedReason::Bank, events);
        if t.seats[seat].banked >= 100 {
            t.finish(EndReason::Won, Some(seat), events);
        } else {
            t.pass_turn(events);
        }
        Ok(())
    }

    fn custom(
        s: &mut State,
        name: &str,
        _payload: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), ModeError> {
        if let Some(payload) = misbehave(name, Some(s))? {
            events.push(Event::Custom {
                name: name.to_owned(),
                payload,
            });
        }
        Ok(())
    }
}

export_mode!(Hostile);
