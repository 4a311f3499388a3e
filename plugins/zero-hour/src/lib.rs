//! Zero Hour: count down from 100 to zero.
//!
//! | roll | effect |
//! |---|---|
//! | normal | turn score += (d1+d2) × level; level = 1 + doubles rolled this turn |
//! | single one | turn score lost, turn ends (penalties already paid stay) |
//! | 1-1 | turn score += 20 and opponent's banked += 20; level += 1 |
//! | other double (6-6 too) | turn score += d1+d2 and opponent's banked += d1+d2; level += 1 |
//!
//! After every roll that keeps the turn, a turn score at or above the roller's
//! banked score wins at once (shown as 0). Bank subtracts the turn score; at or
//! below 0 wins. The dice are loaded: with probability 1/4 both show one uniform
//! value, so P(double) = 3/8. Timer: 45 s.

use dashdice_mode_sdk::{
    BankedReason, BustReason, EndReason, Entropy, Event, JsonObject, ModeError, ModeInfo, RollKind,
    Rules, Table, TwoDice, export_mode, no_options, standard_actions,
};

/// Where both players start.
pub const START: i32 = 100;

pub struct ZeroHour;

impl ZeroHour {
    /// The roller wins as soon as the turn score covers their banked score.
    fn check_win(t: &mut Table, events: &mut Vec<Event>) {
        let seat = t.turn;
        if t.turn_score >= t.seats[seat].banked {
            t.set_banked(seat, 0, BankedReason::Bank, events);
            t.finish(EndReason::Won, Some(seat), events);
        }
    }
}

impl Rules for ZeroHour {
    const ID: &'static str = "zero-hour";
    type State = Table;

    fn info() -> ModeInfo {
        ModeInfo {
            id: Self::ID.into(),
            name: "Zero Hour".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Count down from 100. Every double raises your level (x1, x2, x3...) and hands its points to your opponent as a penalty; reach zero to win.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 45_000,
            actions: standard_actions(Some(
                "Subtract the turn score from your banked score; reaching 0 wins.",
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

    fn throw_dice(_state: &Table, entropy: &mut Entropy) -> Vec<u8> {
        if entropy.chance(1, 4) {
            let face = entropy.die(6);
            vec![face, face]
        } else {
            TwoDice::fair(entropy).to_vec()
        }
    }

    fn roll(t: &mut Table, dice: &[u8], events: &mut Vec<Event>) -> Result<(), ModeError> {
        let dice = TwoDice::parse(dice)?;
        t.rolled(dice, events);
        let penalty = match dice.kind() {
            RollKind::SingleOne => {
                t.bust(BustReason::SingleOne, events);
                return Ok(());
            }
            RollKind::SnakeEyes => Some(20),
            RollKind::Double => Some(dice.sum()),
            RollKind::Normal => None,
        };
        match penalty {
            Some(points) => {
                t.add_turn_score(points, events);
                t.add_banked(t.next_seat(), points, BankedReason::Penalty, events);
                t.set_multiplier(t.multiplier + 1, events);
            }
            None => t.add_turn_score(dice.sum() * t.multiplier as i32, events),
        }
        Self::check_win(t, events);
        Ok(())
    }

    fn bank(t: &mut Table, events: &mut Vec<Event>) -> Result<(), ModeError> {
        if t.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        let seat = t.turn;
        let left = t.seats[seat].banked - t.turn_score;
        if left <= 0 {
            t.set_banked(seat, 0, BankedReason::Bank, events);
            t.finish(EndReason::Won, Some(seat), events);
        } else {
            t.add_banked(seat, -t.turn_score, BankedReason::Bank, events);
            t.pass_turn(events);
        }
        Ok(())
    }

    fn view_extra(t: &Table, view: &mut JsonObject) {
        view.int("level", t.multiplier);
    }
}

export_mode!(ZeroHour);
