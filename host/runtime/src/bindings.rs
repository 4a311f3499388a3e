//! The host edge of the contract: bindings generated from `wit/mode.wit`, and
//! conversions to the domain types in [`dashdice_mode_sdk`].
//!
//! Architecture invariant: nothing outside this module names a generated type.

use dashdice_mode_sdk as sdk;

wasmtime::component::bindgen!({
    world: "mode",
    path: "../../wit",
});

use self::dashdice::mode::types as wit;

pub use self::exports::dashdice::mode::game::Guest as Game;

pub fn info(i: wit::ModeInfo) -> sdk::ModeInfo {
    sdk::ModeInfo {
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
            .map(|a| sdk::ActionInfo {
                name: a.name,
                description: a.description,
                needs_dice: a.needs_dice,
            })
            .collect(),
    }
}

pub fn config(c: &sdk::MatchConfig) -> wit::MatchConfig {
    wit::MatchConfig {
        players: c.players.clone(),
        first_player: c.first_player.clone(),
        options: c.options.clone(),
    }
}

pub fn action(a: &sdk::Action) -> wit::Action {
    match a {
        sdk::Action::Roll { dice } => wit::Action::Roll(dice.clone()),
        sdk::Action::Bank => wit::Action::Bank,
        sdk::Action::Timeout => wit::Action::Timeout,
        sdk::Action::Forfeit => wit::Action::Forfeit,
        sdk::Action::Custom { name, payload } => wit::Action::Custom(wit::CustomAction {
            name: name.clone(),
            payload: payload.clone(),
        }),
    }
}

pub fn error(e: wit::ActionError) -> sdk::ModeError {
    use wit::ActionError as E;
    match e {
        E::NotYourTurn(p) => sdk::ModeError::NotYourTurn(p),
        E::NotAPlayer(p) => sdk::ModeError::NotAPlayer(p),
        E::NothingToBank => sdk::ModeError::NothingToBank,
        E::GameOver => sdk::ModeError::GameOver,
        E::UnknownAction(a) => sdk::ModeError::UnknownAction(a),
        E::NotAllowed(m) => sdk::ModeError::NotAllowed(m),
        E::InvalidDice(m) => sdk::ModeError::InvalidDice(m),
        E::InvalidConfig(m) => sdk::ModeError::InvalidConfig(m),
        E::InvalidEntropy(m) => sdk::ModeError::InvalidEntropy(m),
        E::CorruptState(m) => sdk::ModeError::CorruptState(m),
    }
}

pub fn bot_move(m: wit::BotMove) -> sdk::BotMove {
    match m {
        wit::BotMove::Roll => sdk::BotMove::Roll,
        wit::BotMove::Bank => sdk::BotMove::Bank,
        wit::BotMove::Custom(c) => sdk::BotMove::Custom {
            name: c.name,
            payload: c.payload,
        },
    }
}

pub fn outcome(o: wit::Outcome) -> sdk::Outcome {
    sdk::Outcome {
        state: o.state,
        events: o.events.into_iter().map(event).collect(),
        turn: o.turn,
        standings: o.standings.map(standings),
    }
}

fn standings(s: Vec<wit::Standing>) -> Vec<sdk::Standing> {
    s.into_iter()
        .map(|s| sdk::Standing {
            player: s.player,
            score: s.score,
            rank: s.rank,
            result: match s.result {
                wit::MatchResult::Win => sdk::MatchResult::Win,
                wit::MatchResult::Loss => sdk::MatchResult::Loss,
                wit::MatchResult::Draw => sdk::MatchResult::Draw,
            },
        })
        .collect()
}

fn event(e: wit::Event) -> sdk::Event {
    use wit::Event as E;
    match e {
        E::TurnStarted(player) => sdk::Event::TurnStarted { player },
        E::Rolled(r) => sdk::Event::Rolled {
            player: r.player,
            dice: r.dice,
            kind: match r.kind {
                wit::RollKind::SnakeEyes => sdk::RollKind::SnakeEyes,
                wit::RollKind::Double => sdk::RollKind::Double,
                wit::RollKind::SingleOne => sdk::RollKind::SingleOne,
                wit::RollKind::Normal => sdk::RollKind::Normal,
            },
        },
        E::TurnScoreChanged(c) => sdk::Event::TurnScoreChanged {
            player: c.player,
            delta: c.delta,
            total: c.total,
        },
        E::BankedScoreChanged(c) => sdk::Event::BankedScoreChanged {
            player: c.player,
            delta: c.delta,
            total: c.total,
            reason: match c.reason {
                wit::BankedReason::Bank => sdk::BankedReason::Bank,
                wit::BankedReason::Penalty => sdk::BankedReason::Penalty,
                wit::BankedReason::Reset => sdk::BankedReason::Reset,
                wit::BankedReason::Attacked => sdk::BankedReason::Attacked,
                wit::BankedReason::Kept => sdk::BankedReason::Kept,
            },
        },
        E::MultiplierChanged(m) => sdk::Event::MultiplierChanged {
            player: m.player,
            multiplier: m.multiplier,
        },
        E::Busted(b) => sdk::Event::Busted {
            player: b.player,
            lost: b.lost,
            reason: match b.reason {
                wit::BustReason::SingleOne => sdk::BustReason::SingleOne,
                wit::BustReason::Reset => sdk::BustReason::Reset,
                wit::BustReason::Timeout => sdk::BustReason::Timeout,
            },
        },
        E::TimedOut(player) => sdk::Event::TimedOut { player },
        E::Forfeited(player) => sdk::Event::Forfeited { player },
        E::TurnPassed(t) => sdk::Event::TurnPassed {
            from: t.from,
            to: t.to,
        },
        E::GameOver(g) => sdk::Event::GameOver {
            reason: match g.reason {
                wit::EndReason::Won => sdk::EndReason::Won,
                wit::EndReason::Completed => sdk::EndReason::Completed,
                wit::EndReason::Forfeit => sdk::EndReason::Forfeit,
            },
            standings: standings(g.standings),
        },
        E::Custom(c) => sdk::Event::Custom {
            name: c.name,
            payload: c.payload,
        },
    }
}
