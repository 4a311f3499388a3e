//! A mode whose games never end: banking adds to the score but nothing wins,
//! as when a designer forgets the target. Only a forfeit ends a game.
//! Everything else is well-behaved, so `dashdice mode check` must fail it on
//! its check that games end, and on nothing else.

use dashdice_mode_sdk::{
    BankedReason, BustReason, Event, ModeError, ModeInfo, Rules, Table, TwoDice, export_mode,
    no_options, standard_actions,
};

pub struct Endless;

impl Rules for Endless {
    const ID: &'static str = "endless";
    type State = Table;

    fn info() -> ModeInfo {
        ModeInfo {
            id: Self::ID.into(),
            name: "Endless".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Bank as much as you like: nobody ever wins.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 30_000,
            actions: standard_actions(Some("Bank the turn score (it wins nothing).")),
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
        if dice.0 == 1 || dice.1 == 1 {
            t.bust(BustReason::SingleOne, events);
        } else {
            t.add_turn_score(dice.sum(), events);
        }
        Ok(())
    }

    fn bank(t: &mut Table, events: &mut Vec<Event>) -> Result<(), ModeError> {
        if t.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        let seat = t.turn;
        t.add_banked(seat, t.turn_score, BankedReason::Bank, events);
        t.pass_turn(events);
        Ok(())
    }
}

export_mode!(Endless);
