//! True Grit: one turn each, no banking.
//!
//! | roll | effect |
//! |---|---|
//! | normal | turn score += (d1+d2) × multiplier (2 once any double was rolled this turn) |
//! | 1-1 | turn score += 20 (not multiplied), multiplier 2 |
//! | other double (6-6 too) | turn score += d1+d2 (not multiplied), multiplier 2 |
//! | single one | the turn ends and the player keeps the turn score |
//!
//! The second player wins as soon as their turn score exceeds the first
//! player's total. After both turns the higher total wins; equal totals draw.
//! A timeout ends the turn and keeps the score. Timer: 60 s.
//!
//! The live game has a defect (a single one wipes the turn and the game never
//! ends); this implements the rules as designed.

use dashdice_mode_sdk::{
    BankedReason, EndReason, Event, JsonObject, ModeError, ModeInfo, RollKind, Rules, Table,
    TwoDice, export_mode, no_options, standard_actions,
};
use serde::{Deserialize, Serialize};

pub struct TrueGrit;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    pub table: Table,
    /// Turns completed so far; every player gets exactly one.
    pub turns_done: u32,
}

impl TrueGrit {
    /// The turn ends and its score is kept. After the last turn the totals
    /// decide.
    fn end_turn(s: &mut State, events: &mut Vec<Event>) {
        let t = &mut s.table;
        let seat = t.turn;
        t.add_banked(seat, t.turn_score, BankedReason::Kept, events);
        s.turns_done += 1;
        if s.turns_done as usize >= t.seats.len() {
            let best = t.seats.iter().map(|p| p.banked).max().unwrap_or(0);
            let leaders: Vec<usize> = (0..t.seats.len())
                .filter(|&i| t.seats[i].banked == best)
                .collect();
            let winner = match leaders.as_slice() {
                [only] => Some(*only),
                _ => None,
            };
            t.finish(EndReason::Completed, winner, events);
        } else {
            t.pass_turn(events);
        }
    }

    /// On the last turn, beating every earlier total wins at once.
    fn check_early_win(s: &mut State, events: &mut Vec<Event>) {
        let t = &mut s.table;
        if s.turns_done as usize + 1 != t.seats.len() {
            return;
        }
        let seat = t.turn;
        let best_other = (0..t.seats.len())
            .filter(|&i| i != seat)
            .map(|i| t.seats[i].banked)
            .max()
            .unwrap_or(0);
        if t.turn_score > best_other {
            t.add_banked(seat, t.turn_score, BankedReason::Kept, events);
            s.turns_done += 1;
            t.finish(EndReason::Won, Some(seat), events);
        }
    }
}

impl Rules for TrueGrit {
    const ID: &'static str = "true-grit";
    type State = State;

    fn info() -> ModeInfo {
        ModeInfo {
            id: Self::ID.into(),
            name: "True Grit".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "One turn each and no banking: roll until a single one ends your turn, and keep what you built. Beat your opponent's total to win.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 60_000,
            actions: standard_actions(None),
        }
    }

    fn start(table: Table, options: &str) -> Result<State, ModeError> {
        no_options(options)?;
        Ok(State {
            table,
            turns_done: 0,
        })
    }

    fn table(state: &State) -> &Table {
        &state.table
    }

    fn table_mut(state: &mut State) -> &mut Table {
        &mut state.table
    }

    fn roll(s: &mut State, dice: &[u8], events: &mut Vec<Event>) -> Result<(), ModeError> {
        let dice = TwoDice::parse(dice)?;
        let t = &mut s.table;
        t.rolled(dice, events);
        match dice.kind() {
            RollKind::SingleOne => {
                Self::end_turn(s, events);
                return Ok(());
            }
            RollKind::SnakeEyes => {
                t.add_turn_score(20, events);
                t.set_multiplier(2, events);
            }
            RollKind::Double => {
                t.add_turn_score(dice.sum(), events);
                t.set_multiplier(2, events);
            }
            RollKind::Normal => t.add_turn_score(dice.sum() * t.multiplier as i32, events),
        }
        Self::check_early_win(s, events);
        Ok(())
    }

    fn bank(_state: &mut State, _events: &mut Vec<Event>) -> Result<(), ModeError> {
        Err(ModeError::NotAllowed(
            "True Grit has no banking: your turn ends on a single one and you keep its score"
                .into(),
        ))
    }

    fn timeout(s: &mut State, events: &mut Vec<Event>) -> Result<(), ModeError> {
        Self::end_turn(s, events);
        Ok(())
    }

    fn view_extra(s: &State, view: &mut JsonObject) {
        view.int("turns_done", s.turns_done);
    }
}

export_mode!(TrueGrit);
