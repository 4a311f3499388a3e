//! A DashDice game mode: race to 50 banked points, and once a turn bet your
//! turn score on a showdown roll.
//!
//! | roll | effect |
//! |---|---|
//! | normal | turn score += d1+d2 |
//! | double 2-2..6-6 | turn score += 2×(d1+d2) |
//! | single one, or 1-1 | turn score lost, turn ends |
//!
//! Bank (turn score > 0) adds the turn score to the banked score; 50 or more
//! wins. A timeout loses the turn score. Timer: 30 s.
//!
//! **Double down** (the custom action `double-down`, no payload): with a turn
//! score to bet, the player's next roll becomes the showdown. A sum of 8 or
//! more doubles the turn score, adds the roll, and banks it at once (50 wins);
//! 7 or less (single ones included) loses it all. Either way the turn ends. A
//! player may not bank between doubling down and the showdown.
//!
//! Is it worth it? The showdown is won 15 times in 36, so doubling down pays
//! off in expectation only on a small turn score (below about 23), and is a
//! comeback gamble on a big one.
//!
//! Where to start changing the rules: `roll`, `bank` and `custom` below, and
//! `bot`, which says how a bot seat plays them.

use dashdice_mode_sdk::{
    ActionInfo, BankedReason, BotMove, BustReason, DEFAULT_BOT_BANKS_AT, EndReason, Event,
    JsonObject, ModeError, ModeInfo, RollKind, Rules, Table, TwoDice, export_mode, no_options,
    standard_actions,
};
use serde::{Deserialize, Serialize};

/// Banked points that win.
pub const TARGET: i32 = 50;

/// The least sum a showdown roll needs to win.
pub const SHOWDOWN_NEEDS: i32 = 8;

/// The custom action's name, as clients send it.
pub const DOUBLE_DOWN: &str = "double-down";

/// The custom event of a double-down: `{"player": id, "stake": turn score}`.
pub const DOUBLED_DOWN_EVENT: &str = "doubled_down";

/// The custom event of a showdown roll: `{"player": id, "sum": n, "won": bool}`.
pub const SHOWDOWN_EVENT: &str = "showdown";

pub struct Template;

/// The whole match state, stored by the host between calls (postcard bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// Seats, scores, turn and status: the part every mode shares.
    pub table: Table,
    /// The player on turn has doubled down: their next roll is the showdown.
    /// Turn-local, so every way a turn can end must clear it (the table
    /// clears only its own turn score and multiplier).
    pub showdown: bool,
}

impl Template {
    /// The turn score goes to the bank; reaching the target wins, else the
    /// turn passes.
    fn bank_turn(t: &mut Table, events: &mut Vec<Event>) {
        let seat = t.turn;
        t.add_banked(seat, t.turn_score, BankedReason::Bank, events);
        if t.seats[seat].banked >= TARGET {
            t.finish(EndReason::Won, Some(seat), events);
        } else {
            t.pass_turn(events);
        }
    }

    /// The roll after a double-down decides the bet, and ends the turn.
    fn showdown(s: &mut State, dice: TwoDice, events: &mut Vec<Event>) {
        s.showdown = false;
        let t = &mut s.table;
        // A single one sums to 7 at most, so it always loses.
        let won = dice.sum() >= SHOWDOWN_NEEDS;
        let mut payload = JsonObject::new();
        payload
            .str("player", t.on_turn())
            .int("sum", dice.sum())
            .bool("won", won);
        events.push(Event::Custom {
            name: SHOWDOWN_EVENT.into(),
            payload: payload.finish(),
        });
        if won {
            // Doubled, plus the roll itself.
            t.add_turn_score(t.turn_score + dice.sum(), events);
            Self::bank_turn(t, events);
        } else {
            // The contract's bust reasons are fixed; the showdown event above
            // tells clients what really happened.
            t.bust(BustReason::SingleOne, events);
        }
    }
}

impl Rules for Template {
    const ID: &'static str = "template";
    type State = State;

    fn info() -> ModeInfo {
        let mut actions =
            standard_actions(Some("Add the turn score to your banked score; 50 wins."));
        actions.push(ActionInfo {
            name: DOUBLE_DOWN.into(),
            description: "Bet your turn score on your next roll: 8 or more doubles it and banks it, 7 or less loses it.".into(),
            needs_dice: false,
        });
        ModeInfo {
            id: Self::ID.into(),
            name: "Template".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "Race to 50. Doubles count twice and a single one loses your turn. Once a turn you may double down: your next roll doubles your turn score and banks it on 8 or more, and loses it all on 7 or less.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 30_000,
            actions,
        }
    }

    fn start(table: Table, options: &str) -> Result<State, ModeError> {
        no_options(options)?;
        Ok(State {
            table,
            showdown: false,
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
        s.table.rolled(dice, events);
        if s.showdown {
            Self::showdown(s, dice, events);
            return Ok(());
        }
        let t = &mut s.table;
        match dice.kind() {
            RollKind::SingleOne | RollKind::SnakeEyes => t.bust(BustReason::SingleOne, events),
            RollKind::Double => t.add_turn_score(2 * dice.sum(), events),
            RollKind::Normal => t.add_turn_score(dice.sum(), events),
        }
        Ok(())
    }

    fn bank(s: &mut State, events: &mut Vec<Event>) -> Result<(), ModeError> {
        if s.showdown {
            return Err(ModeError::NotAllowed(
                "you doubled down: roll the showdown first".into(),
            ));
        }
        if s.table.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        Self::bank_turn(&mut s.table, events);
        Ok(())
    }

    fn timeout(s: &mut State, events: &mut Vec<Event>) -> Result<(), ModeError> {
        s.showdown = false;
        s.table.bust(BustReason::Timeout, events);
        Ok(())
    }

    fn custom(
        s: &mut State,
        name: &str,
        payload: &str,
        events: &mut Vec<Event>,
    ) -> Result<(), ModeError> {
        if name != DOUBLE_DOWN {
            return Err(ModeError::UnknownAction(name.to_owned()));
        }
        // `""` or `{}`: refusing anything else keeps the door open for a
        // payload with a meaning later.
        no_options(payload)
            .map_err(|_| ModeError::NotAllowed(format!("{DOUBLE_DOWN} takes no payload")))?;
        if s.showdown {
            return Err(ModeError::NotAllowed(
                "you already doubled down this turn".into(),
            ));
        }
        if s.table.turn_score <= 0 {
            return Err(ModeError::NotAllowed(
                "double down needs a turn score to bet".into(),
            ));
        }
        s.showdown = true;
        let mut payload = JsonObject::new();
        payload
            .str("player", s.table.on_turn())
            .int("stake", s.table.turn_score);
        events.push(Event::Custom {
            name: DOUBLED_DOWN_EVENT.into(),
            payload: payload.finish(),
        });
        Ok(())
    }

    /// The SDK's default bot banks from a turn score of 20, which would be
    /// refused while a showdown is pending: so this one rolls then. It also
    /// gambles: far behind, it doubles down on a turn score of 10 or more.
    fn bot(s: &State) -> BotMove {
        let t = &s.table;
        if s.showdown || t.turn_score == 0 {
            return BotMove::Roll;
        }
        let mine = t.seats[t.turn].banked;
        let best_other = (0..t.seats.len())
            .filter(|&seat| seat != t.turn)
            .map(|seat| t.seats[seat].banked)
            .max()
            .unwrap_or(0);
        if best_other - mine >= TARGET / 2 && t.turn_score >= 10 {
            BotMove::Custom {
                name: DOUBLE_DOWN.into(),
                payload: String::new(),
            }
        } else if t.turn_score >= DEFAULT_BOT_BANKS_AT {
            BotMove::Bank
        } else {
            BotMove::Roll
        }
    }

    fn view_extra(s: &State, view: &mut JsonObject) {
        view.int("target", TARGET)
            .int("showdown_needs", SHOWDOWN_NEEDS)
            .bool("showdown", s.showdown && !s.table.is_over());
    }
}

export_mode!(Template);
