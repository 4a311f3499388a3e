//! A mode whose bot always asks for an action the mode does not have: the
//! host must not wait on such a bot forever. Otherwise a plain race to 30
//! (a single one busts the turn), so its games end.

use dashdice_mode_sdk::{
    BankedReason, BotMove, BustReason, EndReason, Event, ModeError, ModeInfo, Rules, Table,
    TwoDice, export_mode, no_options, standard_actions,
};

pub struct BadBot;

impl Rules for BadBot {
    const ID: &'static str = "bad-bot";
    type State = Table;

    fn info() -> ModeInfo {
        ModeInfo {
            id: Self::ID.into(),
            name: "Bad Bot".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Race to 30; its bot asks for a move that does not exist.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 30_000,
            actions: standard_actions(Some("Bank the turn score; 30 wins.")),
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
            if t.seats[t.turn].banked + t.turn_score >= 30 {
                let seat = t.turn;
                t.add_banked(seat, t.turn_score, BankedReason::Bank, events);
                t.finish(EndReason::Won, Some(seat), events);
            }
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

    fn bot(_state: &Table) -> BotMove {
        BotMove::Custom {
            name: "cheat".into(),
            payload: String::new(),
        }
    }
}

export_mode!(BadBot);
