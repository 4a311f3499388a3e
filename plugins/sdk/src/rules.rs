//! The [`Rules`] a designer writes, and the driver that turns them into the
//! contract's functions.
//!
//! The driver owns everything that is the same in every mode: decoding and
//! encoding the state, checking the player count, deciding who starts,
//! refusing actions after the game is over, from non-players or out of turn,
//! handling `forfeit`, and assembling the [`Outcome`]. A mode only says what a
//! roll, a bank and a timeout do (and, if the default will not do, how a bot
//! plays it). The driver is plain Rust, so rules are tested natively through
//! exactly the code path the component runs.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::entropy::Entropy;
use crate::json::JsonObject;
use crate::table::Table;
use crate::types::{
    Action, ActionInfo, BotMove, BustReason, Event, MatchConfig, ModeError, ModeInfo, Outcome,
};

/// The turn score at which the default bot ([`Rules::bot`]) banks, in modes
/// that have a `bank` action. It is the well-known "hold at 20" of
/// push-your-luck dice games (simple, and a fair opponent for a beginner),
/// and it is what the match host's bots did before modes chose their moves.
pub const DEFAULT_BOT_BANKS_AT: i32 = 20;

/// A game mode's rules.
pub trait Rules {
    /// The mode's id, as in [`ModeInfo::id`].
    const ID: &'static str;

    /// The mode's whole match state. It is stored between calls as bytes.
    type State: Serialize + DeserializeOwned;

    fn info() -> ModeInfo;

    /// The initial state. `table` has the players seated in order with score 0
    /// and the first player on turn. `options` is the config's JSON options.
    fn start(table: Table, options: &str) -> Result<Self::State, ModeError>;

    fn table(state: &Self::State) -> &Table;
    fn table_mut(state: &mut Self::State) -> &mut Table;

    /// The dice for the next roll. Two fair dice unless the mode says otherwise.
    fn throw_dice(_state: &Self::State, entropy: &mut Entropy) -> Vec<u8> {
        crate::dice::TwoDice::fair(entropy).to_vec()
    }

    /// The player on turn rolls `dice` (not yet validated).
    fn roll(state: &mut Self::State, dice: &[u8], events: &mut Vec<Event>)
    -> Result<(), ModeError>;

    /// The player on turn banks.
    fn bank(state: &mut Self::State, events: &mut Vec<Event>) -> Result<(), ModeError>;

    /// The turn timer of the player on turn ran out. By default the turn score
    /// is lost and the turn ends, like a single one.
    fn timeout(state: &mut Self::State, events: &mut Vec<Event>) -> Result<(), ModeError> {
        Self::table_mut(state).bust(BustReason::Timeout, events);
        Ok(())
    }

    /// A mode-specific action by the player on turn.
    fn custom(
        _state: &mut Self::State,
        name: &str,
        _payload: &str,
        _events: &mut Vec<Event>,
    ) -> Result<(), ModeError> {
        Err(ModeError::UnknownAction(name.to_owned()))
    }

    /// Adds this mode's own fields to the public view.
    fn view_extra(_state: &Self::State, _view: &mut JsonObject) {}

    /// What a bot on turn does. Called only while the game runs, for the
    /// player on turn; the move must be legal for them.
    ///
    /// By default: bank once the turn score reaches [`DEFAULT_BOT_BANKS_AT`]
    /// when [`Rules::info`] lists a `bank` action, else roll. So a mode
    /// without banking (True Grit) only ever rolls. Override it when that is
    /// a poor or illegal way to play the mode (a custom action, banking that
    /// can be refused, a different target).
    fn bot(state: &Self::State) -> BotMove {
        let can_bank = Self::info().actions.iter().any(|a| a.name == "bank");
        if can_bank && Self::table(state).turn_score >= DEFAULT_BOT_BANKS_AT {
            BotMove::Bank
        } else {
            BotMove::Roll
        }
    }
}

/// The actions of a two-dice push-your-luck mode: roll, forfeit, timeout, and
/// bank when `bank` describes what banking does.
pub fn standard_actions(bank: Option<&str>) -> Vec<ActionInfo> {
    let action = |name: &str, description: &str, needs_dice| ActionInfo {
        name: name.to_owned(),
        description: description.to_owned(),
        needs_dice,
    };
    let mut actions = vec![action("roll", "Throw both dice.", true)];
    if let Some(bank) = bank {
        actions.push(action("bank", bank, false));
    }
    actions.push(action(
        "forfeit",
        "Leave the match; the other player wins.",
        false,
    ));
    actions.push(action(
        "timeout",
        "Applied by the host when the turn timer runs out.",
        false,
    ));
    actions
}

/// Accepts only empty options (`""` or `{}`, whitespace aside): for modes
/// that have none.
pub fn no_options(options: &str) -> Result<(), ModeError> {
    let inner = options.trim();
    let empty = inner.is_empty()
        || inner
            .strip_prefix('{')
            .and_then(|rest| rest.strip_suffix('}'))
            .is_some_and(|body| body.trim().is_empty());
    if empty {
        Ok(())
    } else {
        Err(ModeError::InvalidConfig(format!(
            "this mode takes no options, got {inner}"
        )))
    }
}

pub fn decode<R: Rules>(state: &[u8]) -> Result<R::State, ModeError> {
    let state: R::State =
        postcard::from_bytes(state).map_err(|e| ModeError::CorruptState(e.to_string()))?;
    // Bytes that decode but point at seats that do not exist would panic later.
    R::table(&state).check()?;
    Ok(state)
}

fn encode<R: Rules>(state: &R::State) -> Result<Vec<u8>, ModeError> {
    postcard::to_allocvec(state).map_err(|e| ModeError::CorruptState(e.to_string()))
}

fn outcome<R: Rules>(state: &R::State, events: Vec<Event>) -> Result<Outcome, ModeError> {
    let table = R::table(state);
    Ok(Outcome {
        state: encode::<R>(state)?,
        turn: (!table.is_over()).then(|| table.on_turn().to_owned()),
        standings: table.standings(),
        events,
    })
}

/// `start` of the contract.
pub fn start<R: Rules>(config: &MatchConfig, entropy: &[u8]) -> Result<Outcome, ModeError> {
    let info = R::info();
    let players = &config.players;
    let count = players.len();
    if count < info.min_players as usize || count > info.max_players as usize {
        return Err(ModeError::InvalidConfig(format!(
            "{} needs {}..={} players, got {count}",
            info.id, info.min_players, info.max_players
        )));
    }
    for (i, p) in players.iter().enumerate() {
        if p.is_empty() {
            return Err(ModeError::InvalidConfig("a player id is empty".into()));
        }
        if players[..i].contains(p) {
            return Err(ModeError::InvalidConfig(format!(
                "player {p} is listed twice"
            )));
        }
    }
    let first = match &config.first_player {
        Some(p) => players.iter().position(|q| q == p).ok_or_else(|| {
            ModeError::InvalidConfig(format!("first player {p} is not in the match"))
        })?,
        // `count` is within the mode's bounds, far below u32::MAX.
        None => Entropy::new(entropy)?.below(count as u32) as usize,
    };
    let table = Table::new(players.clone(), first, 0);
    let events = vec![Event::TurnStarted {
        player: players[first].clone(),
    }];
    let state = R::start(table, &config.options)?;
    outcome::<R>(&state, events)
}

/// `throw-dice` of the contract.
pub fn throw_dice<R: Rules>(state: &[u8], entropy: &[u8]) -> Result<Vec<u8>, ModeError> {
    let state = decode::<R>(state)?;
    if R::table(&state).is_over() {
        return Err(ModeError::GameOver);
    }
    Ok(R::throw_dice(&state, &mut Entropy::new(entropy)?))
}

/// `apply` of the contract.
pub fn apply<R: Rules>(state: &[u8], actor: &str, action: &Action) -> Result<Outcome, ModeError> {
    let mut state = decode::<R>(state)?;
    let table = R::table(&state);
    if table.is_over() {
        return Err(ModeError::GameOver);
    }
    let seat = table
        .seat_of(actor)
        .ok_or_else(|| ModeError::NotAPlayer(actor.to_owned()))?;
    let on_turn = table.turn;
    let mut events = Vec::new();
    match action {
        // A player may leave at any time, on turn or not.
        Action::Forfeit => R::table_mut(&mut state).forfeit(seat, &mut events),
        _ if seat != on_turn => {
            return Err(ModeError::NotYourTurn(
                R::table(&state).on_turn().to_owned(),
            ));
        }
        Action::Roll { dice } => R::roll(&mut state, dice, &mut events)?,
        Action::Bank => R::bank(&mut state, &mut events)?,
        Action::Timeout => {
            events.push(Event::TimedOut {
                player: actor.to_owned(),
            });
            R::timeout(&mut state, &mut events)?
        }
        Action::Custom { name, payload } => R::custom(&mut state, name, payload, &mut events)?,
    }
    outcome::<R>(&state, events)
}

/// `bot` of the contract: the rules' move for the player on turn.
pub fn bot<R: Rules>(state: &[u8]) -> Result<BotMove, ModeError> {
    let state = decode::<R>(state)?;
    if R::table(&state).is_over() {
        return Err(ModeError::GameOver);
    }
    Ok(R::bot(&state))
}

/// `view` of the contract.
pub fn view<R: Rules>(state: &[u8]) -> Result<String, ModeError> {
    let state = decode::<R>(state)?;
    Ok(R::table(&state).view(R::ID, |view| R::view_extra(&state, view)))
}
