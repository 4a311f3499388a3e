//! Last Line: a tug of war over 100 points.
//!
//! | roll | effect |
//! |---|---|
//! | normal | turn score += d1+d2, ×2 while the multiplier is on |
//! | single one | turn score lost, turn ends |
//! | 1-1 | turn score += 20 (not multiplied), multiplier on |
//! | 2-2..6-6 | turn score += 2×(d1+d2), always; multiplier on |
//!
//! Bank ("attack") moves min(turn score, opponent's banked) from the opponent to
//! the roller; an opponent left at 0 loses. Scores always sum to 100. Timer: 30 s.

use dashdice_mode_sdk::{
    BankedReason, BustReason, EndReason, Event, ModeError, ModeInfo, RollKind, Rules, Table,
    TwoDice, export_mode, no_options, standard_actions,
};

/// Where both players start; the scores always sum to twice this.
pub const START: i32 = 50;

pub struct LastLine;

impl Rules for LastLine {
    const ID: &'static str = "last-line";
    type State = Table;

    fn info() -> ModeInfo {
        ModeInfo {
            id: Self::ID.into(),
            name: "Last Line".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Both start at 50 and the scores always sum to 100. Bank to attack: take your turn score from your opponent; leave them at 0 to win.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 30_000,
            actions: standard_actions(Some(
                "Attack: take the turn score (at most all they have) from your opponent.",
            )),
        }
    }

    fn start(mut table: Table, options: &str) -> Result<Table, ModeError> {
        no_options(options)?;
        for seat in &mut table.seats {
            seat.banked = START;
        }
        Ok(table)
    }

    fn table(state: &Table) -> &Table {
        state
    }

    fn table_mut(state: &mut Table) -> &mut Table {
        state
    }

    fn roll(t: &mut Table, dice: &[u8], events: &mut Vec<Event>) -> Result<(), ModeError> {
        let dice = TwoDice::parse(dice)?;
        t.rolled(dice, events);
        match dice.kind() {
            RollKind::SingleOne => t.bust(BustReason::SingleOne, events),
            RollKind::SnakeEyes => {
                t.add_turn_score(20, events);
                t.set_multiplier(2, events);
            }
            RollKind::Double => {
                t.add_turn_score(2 * dice.sum(), events);
                t.set_multiplier(2, events);
            }
            RollKind::Normal => t.add_turn_score(dice.sum() * t.multiplier as i32, events),
        }
        Ok(())
    }

    fn bank(t: &mut Table, events: &mut Vec<Event>) -> Result<(), ModeError> {
        if t.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        let (seat, opponent) = (t.turn, t.next_seat());
        let moved = t.turn_score.min(t.seats[opponent].banked);
        t.add_banked(seat, moved, BankedReason::Bank, events);
        t.add_banked(opponent, -moved, BankedReason::Attacked, events);
        if t.seats[opponent].banked <= 0 {
            t.finish(EndReason::Won, Some(seat), events);
        } else {
            t.pass_turn(events);
        }
        Ok(())
    }
}

export_mode!(LastLine);
