//! A mode that breaks determinism the way a designer might by accident: it
//! keeps a counter in a `static`, outside the state the host stores, and shows
//! it in the view. On a fresh instance per call (the match host) every view
//! says `"calls":1`; on a warm instance the count climbs, so the same inputs
//! give different views. Otherwise it plays like a plain race to 100.
//! `dashdice mode check` must fail it on determinism, and on nothing else.

use std::sync::atomic::{AtomicU32, Ordering};

use dashdice_mode_sdk::{
    BankedReason, EndReason, Event, JsonObject, ModeError, ModeInfo, Rules, Table, TwoDice,
    export_mode, no_options, standard_actions,
};

/// Views rendered by this instance: the hidden state.
static CALLS: AtomicU32 = AtomicU32::new(0);

pub struct Nondeterministic;

impl Rules for Nondeterministic {
    const ID: &'static str = "nondeterministic";
    type State = Table;

    fn info() -> ModeInfo {
        ModeInfo {
            id: Self::ID.into(),
            name: "Nondeterministic".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Race to 100, with a hidden call counter in its view.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 30_000,
            actions: standard_actions(Some("Bank the turn score; 100 wins.")),
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
            t.bust(dashdice_mode_sdk::BustReason::SingleOne, events);
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
        if t.seats[seat].banked >= 100 {
            t.finish(EndReason::Won, Some(seat), events);
        } else {
            t.pass_turn(events);
        }
        Ok(())
    }

    fn view_extra(_state: &Table, view: &mut JsonObject) {
        let calls = CALLS.fetch_add(1, Ordering::Relaxed) + 1;
        view.int("calls", calls);
    }
}

export_mode!(Nondeterministic);
