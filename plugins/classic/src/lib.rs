//! Classic: race to 100 banked points.
//!
//! | roll | effect |
//! |---|---|
//! | normal | turn score += d1+d2, ×2 while the multiplier is on |
//! | single one | turn score lost, turn ends |
//! | 1-1 | turn score += 20 (never multiplied), multiplier on |
//! | 6-6 | banked score reset to 0, turn score lost, turn ends |
//! | 2-2..5-5 | turn score += d1+d2 (not multiplied), multiplier on |
//!
//! Bank (turn score > 0) adds the turn score; 100 or more wins. Timer: 30 s.

use dashdice_mode_sdk::{
    BankedReason, BustReason, EndReason, Event, ModeError, ModeInfo, RollKind, Rules, Table,
    TwoDice, export_mode, no_options, standard_actions,
};

/// Banked points that win.
pub const TARGET: i32 = 100;

pub struct Classic;

impl Rules for Classic {
    const ID: &'static str = "classic";
    type State = Table;

    fn info() -> ModeInfo {
        ModeInfo {
            id: Self::ID.into(),
            name: "Classic".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Race to 100. Doubles switch on a x2 multiplier, snake eyes score 20, a single one loses the turn, and 6-6 wipes your bank.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 30_000,
            actions: standard_actions(Some("Add the turn score to your banked score; 100 wins.")),
        }
    }

    fn start(table: Table, options: &str) -> Result<Table, ModeError> {
        no_options(options)?;
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
            RollKind::Double if dice == TwoDice(6, 6) => {
                t.set_banked(t.turn, 0, BankedReason::Reset, events);
                t.bust(BustReason::Reset, events);
            }
            RollKind::Double => {
                t.add_turn_score(dice.sum(), events);
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
        let seat = t.turn;
        t.add_banked(seat, t.turn_score, BankedReason::Bank, events);
        if t.seats[seat].banked >= TARGET {
            t.finish(EndReason::Won, Some(seat), events);
        } else {
            t.pass_turn(events);
        }
        Ok(())
    }
}

export_mode!(Classic);
