//! Driving a mode natively in tests, through the same driver the component
//! runs.
//!
//! ```
//! # use dashdice_mode_sdk::testing::Game;
//! # fn demo<R: dashdice_mode_sdk::Rules>() {
//! let mut game = Game::<R>::start(&["alice", "bob"]); // alice starts
//! game.roll(3, 4).unwrap();
//! assert_eq!(game.table().turn_score, 7);
//! # }
//! ```

use std::marker::PhantomData;

use serde_json::Value;

use crate::rules::{self, Rules};
use crate::table::Table;
use crate::types::{Action, MatchConfig, ModeError, Outcome};

/// A match held as the host holds it: state bytes plus the last outcome.
pub struct Game<R: Rules> {
    pub state: Vec<u8>,
    pub last: Option<Outcome>,
    rules: PhantomData<R>,
}

impl<R: Rules> Game<R> {
    /// Starts a match with these players; the first one listed starts.
    pub fn start(players: &[&str]) -> Self {
        let config = MatchConfig {
            players: players.iter().map(|p| (*p).to_owned()).collect(),
            first_player: players.first().map(|p| (*p).to_owned()),
            options: String::new(),
        };
        let outcome = rules::start::<R>(&config, &[0; 32]).expect("start");
        Game {
            state: outcome.state.clone(),
            last: Some(outcome),
            rules: PhantomData,
        }
    }

    /// A match in exactly this state.
    pub fn from_state(state: &R::State) -> Self {
        Game {
            state: postcard::to_allocvec(state).expect("encode"),
            last: None,
            rules: PhantomData,
        }
    }

    /// Applies an action; on success the state moves on, on error it must not.
    pub fn act(&mut self, actor: &str, action: Action) -> Result<&Outcome, ModeError> {
        let outcome = rules::apply::<R>(&self.state, actor, &action)?;
        self.state = outcome.state.clone();
        Ok(self.last.insert(outcome))
    }

    fn current(&self) -> String {
        self.table().on_turn().to_owned()
    }

    /// The player on turn rolls these dice.
    pub fn roll(&mut self, d1: u8, d2: u8) -> Result<&Outcome, ModeError> {
        let actor = self.current();
        self.act(&actor, Action::Roll { dice: vec![d1, d2] })
    }

    pub fn bank(&mut self) -> Result<&Outcome, ModeError> {
        let actor = self.current();
        self.act(&actor, Action::Bank)
    }

    pub fn timeout(&mut self) -> Result<&Outcome, ModeError> {
        let actor = self.current();
        self.act(&actor, Action::Timeout)
    }

    pub fn decoded(&self) -> R::State {
        rules::decode::<R>(&self.state).expect("decode")
    }

    pub fn table(&self) -> Table {
        R::table(&self.decoded()).clone()
    }

    /// Banked scores in seat order.
    pub fn scores(&self) -> Vec<i32> {
        self.table().seats.iter().map(|s| s.banked).collect()
    }

    pub fn view(&self) -> Value {
        serde_json::from_str(&rules::view::<R>(&self.state).expect("view")).expect("view json")
    }
}
