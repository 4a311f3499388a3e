//! The guest edge: bindings generated from `wit/mode.wit`, and the adapter that
//! serves them from a [`Rules`] type.
//!
//! Only this module sees generated types. It converts them to and from
//! [`crate::types`] and calls the driver in [`crate::rules`], so the component
//! and the native tests run the same code.
#![allow(unsafe_code)] // generated canonical-ABI glue

use core::marker::PhantomData;

use crate::rules::{self, Rules};
use crate::types as sdk;

wit_bindgen::generate!({
    world: "mode",
    path: "../../wit",
    pub_export_macro: true,
    default_bindings_module: "dashdice_mode_sdk::guest",
});

use dashdice::mode::types as wit;
use exports::dashdice::mode::game::Guest;

/// Serves the `game` interface from the rules `R`.
pub struct Adapter<R>(PhantomData<R>);

impl<R: Rules> Guest for Adapter<R> {
    fn info() -> wit::ModeInfo {
        info(R::info())
    }

    fn start(config: wit::MatchConfig, entropy: Vec<u8>) -> Result<wit::Outcome, wit::ActionError> {
        let config = sdk::MatchConfig {
            players: config.players,
            first_player: config.first_player,
            options: config.options,
        };
        rules::start::<R>(&config, &entropy)
            .map(outcome)
            .map_err(error)
    }

    fn throw_dice(state: Vec<u8>, entropy: Vec<u8>) -> Result<Vec<u8>, wit::ActionError> {
        rules::throw_dice::<R>(&state, &entropy).map_err(error)
    }

    fn apply(
        state: Vec<u8>,
        actor: String,
        action: wit::Action,
    ) -> Result<wit::Outcome, wit::ActionError> {
        let action = match action {
            wit::Action::Roll(dice) => sdk::Action::Roll { dice },
            wit::Action::Bank => sdk::Action::Bank,
            wit::Action::Timeout => sdk::Action::Timeout,
            wit::Action::Forfeit => sdk::Action::Forfeit,
            wit::Action::Custom(c) => sdk::Action::Custom {
                name: c.name,
                payload: c.payload,
            },
        };
        rules::apply::<R>(&state, &actor, &action)
            .map(outcome)
            .map_err(error)
    }

    fn view(state: Vec<u8>) -> Result<String, wit::ActionError> {
        rules::view::<R>(&state).map_err(error)
    }

    fn bot(state: Vec<u8>) -> Result<wit::BotMove, wit::ActionError> {
        rules::bot::<R>(&state).map(bot_move).map_err(error)
    }
}

fn bot_move(m: sdk::BotMove) -> wit::BotMove {
    match m {
        sdk::BotMove::Roll => wit::BotMove::Roll,
        sdk::BotMove::Bank => wit::BotMove::Bank,
        sdk::BotMove::Custom { name, payload } => {
            wit::BotMove::Custom(wit::CustomAction { name, payload })
        }
    }
}

fn info(i: sdk::ModeInfo) -> wit::ModeInfo {
    wit::ModeInfo {
        id: i.id,
        name: i.name,
        version: i.version,
        description: i.description,
        min_players: i.min_players,
        max_players: i.max_players,
        turn_time_limit_ms: i.turn_time_limit_ms,
        actions: i
            .actions
            .into_iter()
            .map(|a| wit::ActionInfo {
                name: a.name,
                description: a.description,
                needs_dice: a.needs_dice,
            })
            .collect(),
    }
}

fn error(e: sdk::ModeError) -> wit::ActionError {
    use sdk::ModeError as E;
    match e {
        E::NotYourTurn(p) => wit::ActionError::NotYourTurn(p),
        E::NotAPlayer(p) => wit::ActionError::NotAPlayer(p),
        E::NothingToBank => wit::ActionError::NothingToBank,
        E::GameOver => wit::ActionError::GameOver,
        E::UnknownAction(a) => wit::ActionError::UnknownAction(a),
        E::NotAllowed(m) => wit::ActionError::NotAllowed(m),
        E::InvalidDice(m) => wit::ActionError::InvalidDice(m),
        E::InvalidConfig(m) => wit::ActionError::InvalidConfig(m),
        E::InvalidEntropy(m) => wit::ActionError::InvalidEntropy(m),
        E::CorruptState(m) => wit::ActionError::CorruptState(m),
    }
}

fn outcome(o: sdk::Outcome) -> wit::Outcome {
    wit::Outcome {
        state: o.state,
        events: o.events.into_iter().map(event).collect(),
        turn: o.turn,
        standings: o.standings.map(standings),
    }
}

fn standings(s: Vec<sdk::Standing>) -> Vec<wit::Standing> {
    s.into_iter()
        .map(|s| wit::Standing {
            player: s.player,
            score: s.score,
            rank: s.rank,
            result: match s.result {
                sdk::MatchResult::Win => wit::MatchResult::Win,
                sdk::MatchResult::Loss => wit::MatchResult::Loss,
                sdk::MatchResult::Draw => wit::MatchResult::Draw,
            },
        })
        .collect()
}

fn event(e: sdk::Event) -> wit::Event {
    use sdk::Event as E;
    match e {
        E::TurnStarted { player } => wit::Event::TurnStarted(player),
        E::Rolled { player, dice, kind } => wit::Event::Rolled(wit::Rolled {
            player,
            dice,
            kind: match kind {
                sdk::RollKind::SnakeEyes => wit::RollKind::SnakeEyes,
                sdk::RollKind::Double => wit::RollKind::Double,
                sdk::RollKind::SingleOne => wit::RollKind::SingleOne,
                sdk::RollKind::Normal => wit::RollKind::Normal,
            },
        }),
        E::TurnScoreChanged {
            player,
            delta,
            total,
        } => wit::Event::TurnScoreChanged(wit::ScoreChange {
            player,
            delta,
            total,
        }),
        E::BankedScoreChanged {
            player,
            delta,
            total,
            reason,
        } => wit::Event::BankedScoreChanged(wit::BankedChange {
            player,
            delta,
            total,
            reason: match reason {
                sdk::BankedReason::Bank => wit::BankedReason::Bank,
                sdk::BankedReason::Penalty => wit::BankedReason::Penalty,
                sdk::BankedReason::Reset => wit::BankedReason::Reset,
                sdk::BankedReason::Attacked => wit::BankedReason::Attacked,
                sdk::BankedReason::Kept => wit::BankedReason::Kept,
            },
        }),
        E::MultiplierChanged { player, multiplier } => {
            wit::Event::MultiplierChanged(wit::MultiplierChange { player, multiplier })
        }
        E::Busted {
            player,
            lost,
            reason,
        } => wit::Event::Busted(wit::Bust {
            player,
            lost,
            reason: match reason {
                sdk::BustReason::SingleOne => wit::BustReason::SingleOne,
                sdk::BustReason::Reset => wit::BustReason::Reset,
                sdk::BustReason::Timeout => wit::BustReason::Timeout,
            },
        }),
        E::TimedOut { player } => wit::Event::TimedOut(player),
        E::Forfeited { player } => wit::Event::Forfeited(player),
        E::TurnPassed { from, to } => wit::Event::TurnPassed(wit::TurnPassed { from, to }),
        E::GameOver {
            reason,
            standings: s,
        } => wit::Event::GameOver(wit::GameOver {
            reason: match reason {
                sdk::EndReason::Won => wit::EndReason::Won,
                sdk::EndReason::Completed => wit::EndReason::Completed,
                sdk::EndReason::Forfeit => wit::EndReason::Forfeit,
            },
            standings: standings(s),
        }),
        E::Custom { name, payload } => wit::Event::Custom(wit::CustomEvent { name, payload }),
    }
}
