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
//!
//! Besides [`Game`], this module holds what the rule tests of every mode share:
//! builders for configs, tables, standings and [`events`]; assertions about
//! what the driver guarantees whatever the mode (refusals leave the state
//! alone, corrupt state is an error, the first player comes from entropy); and
//! the pieces of the model-checked property tests: the random [`Step`]s, the
//! spec [`Model`] a mode's test implements, the driver [`play`], the policy
//! drivers [`Game::play_out`] and [`Game::play_out_as_bots`] and
//! [`check_outcome`], the invariants every successful action satisfies; and
//! [`assert_default_bot`], for modes that keep [`Rules::bot`]'s default. The proptest strategy of steps, [`step`], is
//! behind the `proptest` feature (a mode enables it for its tests only), so
//! the SDK itself does not depend on proptest; the checks here return
//! `Err(message)` for `TestCaseError::fail`.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::RangeInclusive;

use serde_json::Value;

use crate::rules::{self, DEFAULT_BOT_BANKS_AT, Rules};
use crate::table::{Seat, Status, Table};
use crate::types::{
    Action, BotMove, EndReason, Event, MatchConfig, MatchResult, ModeError, Outcome, Standing,
};

/// The player in seat 0 of [`table2`], [`play`] and [`Model`].
pub const ALICE: &str = "alice";
/// The player in seat 1 of [`table2`], [`play`] and [`Model`].
pub const BOB: &str = "bob";

/// Most actions [`Game::play_out`] allows before it calls a game endless.
pub const MAX_ACTIONS: u32 = 10_000;

/// A match held as the host holds it: state bytes plus the last outcome.
pub struct Game<R: Rules> {
    pub state: Vec<u8>,
    pub last: Option<Outcome>,
    rules: PhantomData<R>,
}

impl<R: Rules> Game<R> {
    /// Starts a match with these players; the first one listed starts.
    pub fn start(players: &[&str]) -> Self {
        let outcome = rules::start::<R>(&config(players, players.first().copied(), ""), &[0; 32])
            .expect("start");
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

    /// The player on turn banks.
    pub fn bank(&mut self) -> Result<&Outcome, ModeError> {
        let actor = self.current();
        self.act(&actor, Action::Bank)
    }

    /// The turn timer of the player on turn runs out.
    pub fn timeout(&mut self) -> Result<&Outcome, ModeError> {
        let actor = self.current();
        self.act(&actor, Action::Timeout)
    }

    /// What the mode's bot would do now, for the player on turn, through the
    /// driver the component's `bot` runs.
    pub fn bot(&self) -> Result<BotMove, ModeError> {
        rules::bot::<R>(&self.state)
    }

    /// The player on turn plays as a bot: the mode chooses the move, and a
    /// roll uses `d1`-`d2` (the host would throw them).
    pub fn bot_plays(&mut self, d1: u8, d2: u8) -> Result<&Outcome, ModeError> {
        let actor = self.current();
        let action = match self.bot()? {
            BotMove::Roll => Action::Roll { dice: vec![d1, d2] },
            BotMove::Bank => Action::Bank,
            BotMove::Custom { name, payload } => Action::Custom { name, payload },
        };
        self.act(&actor, action)
    }

    /// The mode's state, decoded.
    pub fn decoded(&self) -> R::State {
        rules::decode::<R>(&self.state).expect("decode")
    }

    /// The shared turn table of the state.
    pub fn table(&self) -> Table {
        R::table(&self.decoded()).clone()
    }

    /// Banked scores in seat order.
    pub fn scores(&self) -> Vec<i32> {
        self.table().seats.iter().map(|s| s.banked).collect()
    }

    /// The public view, parsed.
    pub fn view(&self) -> Value {
        serde_json::from_str(&rules::view::<R>(&self.state).expect("view")).expect("view json")
    }

    /// The last outcome. Panics for a game made by [`Game::from_state`] that
    /// has not acted yet.
    pub fn outcome(&self) -> Outcome {
        self.last.clone().expect("no outcome yet")
    }

    /// The events of the last outcome.
    pub fn events(&self) -> Vec<Event> {
        self.outcome().events
    }

    /// The id of the winner, if the game is over and was not a draw.
    pub fn won_by(&self) -> Option<String> {
        let table = self.table();
        match table.status {
            Status::Finished {
                winner: Some(w), ..
            } => Some(table.seats[w].id.clone()),
            _ => None,
        }
    }

    /// The player on turn rolls `d1`-`d2`, and afterwards the game is still
    /// running with this turn score and multiplier and `on_turn` on turn.
    #[track_caller]
    pub fn roll_expect(&mut self, d1: u8, d2: u8, turn_score: i32, multiplier: u32, on_turn: &str) {
        self.roll(d1, d2).expect("roll refused");
        let t = self.table();
        assert_eq!(t.turn_score, turn_score, "turn score after {d1}-{d2}");
        assert_eq!(t.multiplier, multiplier, "multiplier after {d1}-{d2}");
        assert_eq!(t.on_turn(), on_turn, "on turn after {d1}-{d2}");
        assert_eq!(t.status, Status::Playing);
    }

    /// Asserts that `actor` trying `action` is refused with `expected` (see
    /// [`same_error`]), that neither the state bytes nor the last outcome
    /// move, and that [`rules::apply`] on the same bytes gives the same error.
    #[track_caller]
    pub fn refused(&mut self, actor: &str, action: Action, expected: ModeError) {
        let state = self.state.clone();
        let last = self.last.clone();
        let err = self
            .act(actor, action.clone())
            .expect_err("action accepted");
        assert!(
            same_error(&err, &expected),
            "got {err:?}, want {expected:?}"
        );
        assert_eq!(
            self.state, state,
            "state bytes changed by a refused {action:?}"
        );
        assert_eq!(self.last, last);
        // The raw driver agrees and hands back nothing.
        let again = rules::apply::<R>(&state, actor, &action).expect_err("driver accepted");
        assert_eq!(again, err);
    }

    /// Asserts the refusals every mode makes while the game runs: a stranger
    /// ("carol") may neither roll nor forfeit, malformed dice are
    /// `InvalidDice`, and the custom action `custom` is unknown. The player on
    /// turn tries the dice and the custom action.
    #[track_caller]
    pub fn refuses_invalid_actions(&mut self, custom: &str) {
        let on_turn = self.current();
        let roll = |d: &[u8]| Action::Roll { dice: d.to_vec() };
        let stranger = ModeError::NotAPlayer("carol".into());
        self.refused("carol", roll(&[3, 4]), stranger.clone());
        self.refused("carol", Action::Forfeit, stranger);
        for dice in [
            &[0u8, 3][..],
            &[7, 1],
            &[3],
            &[],
            &[1, 2, 3],
            &[6, 0],
            &[255, 255],
        ] {
            let bad = ModeError::InvalidDice(String::new());
            self.refused(&on_turn, roll(dice), bad);
        }
        let action = Action::Custom {
            name: custom.into(),
            payload: String::new(),
        };
        self.refused(&on_turn, action, ModeError::UnknownAction(custom.into()));
    }

    /// Asserts that a finished two-player game refuses every action of both
    /// players, forfeit included, with `GameOver`, and throws no more dice.
    #[track_caller]
    pub fn refuses_everything(&mut self) {
        let table = self.table();
        assert!(table.is_over(), "the game is not over");
        let (first, second) = (table.seats[0].id.as_str(), table.seats[1].id.as_str());
        for (actor, action) in [
            (first, Action::Roll { dice: vec![3, 4] }),
            (second, Action::Roll { dice: vec![3, 4] }),
            (first, Action::Bank),
            (second, Action::Timeout),
            (first, Action::Forfeit),
            (second, Action::Forfeit),
        ] {
            self.refused(actor, action, ModeError::GameOver);
        }
        assert_eq!(
            rules::throw_dice::<R>(&self.state, &[0; 32]),
            Err(ModeError::GameOver)
        );
        assert_eq!(self.bot(), Err(ModeError::GameOver), "a bot moved");
    }

    /// Plays to the end with dice from the mode's own throw (the `n`th roll
    /// uses [`roll_entropy`]`(seed, n)`), banking whenever `bank_now` says so
    /// for the table before the action. Every outcome must pass
    /// [`check_outcome`] and the mode's `invariants`, and the game must end
    /// within [`MAX_ACTIONS`] actions.
    pub fn play_out(
        &mut self,
        seed: &[u8; 32],
        mut bank_now: impl FnMut(&Table) -> bool,
        invariants: impl Fn(&Table) -> Result<(), String>,
    ) -> Result<(), String> {
        self.play_out_by(
            seed,
            |game| {
                Ok(if bank_now(&game.table()) {
                    BotMove::Bank
                } else {
                    BotMove::Roll
                })
            },
            invariants,
        )
    }

    /// Plays to the end as [`Game::play_out`] does, every seat a bot: each
    /// move is the mode's [`Rules::bot`] choice, and must be accepted. So a
    /// mode's bots play only legal moves and finish their games.
    pub fn play_out_as_bots(
        &mut self,
        seed: &[u8; 32],
        invariants: impl Fn(&Table) -> Result<(), String>,
    ) -> Result<(), String> {
        self.play_out_by(
            seed,
            |game| game.bot().map_err(|e| format!("bot refused: {e:?}")),
            invariants,
        )
    }

    /// The loop of [`Game::play_out`], with `choose` picking each move.
    fn play_out_by(
        &mut self,
        seed: &[u8; 32],
        mut choose: impl FnMut(&Self) -> Result<BotMove, String>,
        invariants: impl Fn(&Table) -> Result<(), String>,
    ) -> Result<(), String> {
        let mut actions = 0u32;
        let mut rolls = 0u64;
        while !self.table().is_over() {
            ensure(actions < MAX_ACTIONS, || {
                format!("not over after {actions} actions")
            })?;
            let before = self.table();
            let out = match choose(self)? {
                BotMove::Roll => {
                    let dice = rules::throw_dice::<R>(&self.state, &roll_entropy(seed, rolls))
                        .map_err(|e| format!("throw_dice: {e:?}"))?;
                    rolls += 1;
                    let &[d1, d2] = dice.as_slice() else {
                        return Err(format!("not two dice: {dice:?}"));
                    };
                    self.roll(d1, d2)
                        .map_err(|e| format!("{d1}-{d2} refused: {e:?}"))?
                }
                BotMove::Bank => self.bank().map_err(|e| format!("bank refused: {e:?}"))?,
                BotMove::Custom { name, payload } => {
                    let actor = self.current();
                    let action = Action::Custom { name, payload };
                    self.act(&actor, action.clone())
                        .map_err(|e| format!("{action:?} refused: {e:?}"))?
                }
            }
            .clone();
            let after = self.table();
            check_outcome(&before, &after, &out)?;
            invariants(&after)?;
            actions += 1;
        }
        Ok(())
    }
}

/// A match config: these players, `first` on turn (`None`: chosen by
/// entropy), these JSON options.
pub fn config(players: &[&str], first: Option<&str>, options: &str) -> MatchConfig {
    MatchConfig {
        players: players.iter().map(|p| (*p).to_owned()).collect(),
        first_player: first.map(str::to_owned),
        options: options.into(),
    }
}

/// A playing table with [`ALICE`] in seat 0 and [`BOB`] in seat 1.
pub fn table2(banked: [i32; 2], turn: usize, turn_score: i32, multiplier: u32) -> Table {
    Table {
        seats: vec![
            Seat {
                id: ALICE.into(),
                banked: banked[0],
            },
            Seat {
                id: BOB.into(),
                banked: banked[1],
            },
        ],
        turn,
        turn_score,
        multiplier,
        status: Status::Playing,
    }
}

/// One line of the final standings.
pub fn standing(player: &str, score: i32, rank: u32, result: MatchResult) -> Standing {
    Standing {
        player: player.into(),
        score,
        rank,
        result,
    }
}

/// Equal errors; for errors carrying a message only the kind is compared,
/// except that the player of `NotYourTurn` and `NotAPlayer` and the name of
/// `UnknownAction` must match too.
pub fn same_error(a: &ModeError, b: &ModeError) -> bool {
    match (a, b) {
        (ModeError::NotYourTurn(x), ModeError::NotYourTurn(y))
        | (ModeError::NotAPlayer(x), ModeError::NotAPlayer(y))
        | (ModeError::UnknownAction(x), ModeError::UnknownAction(y)) => x == y,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

/// `Ok` when `holds`, else `Err` with the message `why` makes.
pub fn ensure(holds: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if holds { Ok(()) } else { Err(why()) }
}

/// `Ok` when `left == right`, else `Err` naming `what` and both values.
pub fn ensure_eq<T: PartialEq + Debug + ?Sized>(
    left: &T,
    right: &T,
    what: &str,
) -> Result<(), String> {
    ensure(left == right, || format!("{what}: {left:?} != {right:?}"))
}

/// Entropy number `i` of a series: `fill` everywhere but the first eight
/// bytes, which hold `i`. Different modes' tests use different `fill`s.
pub fn indexed_entropy(fill: u8, i: u64) -> [u8; 32] {
    let mut e = [fill; 32];
    e[..8].copy_from_slice(&i.to_le_bytes());
    e
}

/// Per-roll entropy for long games, derived from one seed the way the host
/// derives every roll from the match seed.
pub fn roll_entropy(seed: &[u8; 32], roll: u64) -> [u8; 32] {
    let mut e = *seed;
    for (b, c) in e.iter_mut().zip(roll.to_le_bytes()) {
        *b ^= c;
    }
    e
}

/// How often each ordered pair of dice came up: `pairs[d1 - 1][d2 - 1]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThrowCounts {
    pub pairs: [[u32; 6]; 6],
}

impl ThrowCounts {
    /// Throws `n` times from `state` with [`indexed_entropy`]`(fill, i)` for
    /// `i` in `0..n`, asserting that every throw is two dice of 1..=6.
    #[track_caller]
    pub fn throw<R: Rules>(state: &[u8], fill: u8, n: u32) -> Self {
        let mut pairs = [[0u32; 6]; 6];
        for i in 0..n {
            let dice = rules::throw_dice::<R>(state, &indexed_entropy(fill, u64::from(i)))
                .expect("throw_dice");
            let &[d1 @ 1..=6, d2 @ 1..=6] = dice.as_slice() else {
                panic!("not two dice of 1..=6: {dice:?}");
            };
            pairs[usize::from(d1 - 1)][usize::from(d2 - 1)] += 1;
        }
        ThrowCounts { pairs }
    }

    /// Throws that were doubles.
    pub fn doubles(&self) -> u32 {
        (0..6).map(|i| self.pairs[i][i]).sum()
    }

    /// Throws that were a single one: exactly one die shows 1.
    pub fn single_ones(&self) -> u32 {
        (1..6).map(|i| self.pairs[0][i] + self.pairs[i][0]).sum()
    }

    /// Asserts that the number of doubles lies in `doubles` and the count of
    /// every face in `faces`.
    #[track_caller]
    pub fn assert_fair(&self, doubles: RangeInclusive<u32>, faces: RangeInclusive<u32>) {
        let (n, counts) = (self.doubles(), self.faces());
        assert!(doubles.contains(&n), "doubles {n}");
        for f in counts {
            assert!(faces.contains(&f), "faces {counts:?}");
        }
    }

    /// How often each face came up, either die.
    pub fn faces(&self) -> [u32; 6] {
        let mut faces = [0u32; 6];
        for (i, row) in self.pairs.iter().enumerate() {
            for (j, &n) in row.iter().enumerate() {
                faces[i] += n;
                faces[j] += n;
            }
        }
        faces
    }
}

/// Asserts that `throw_dice` gives the same dice for the same entropy and
/// refuses entropy shorter than 32 bytes.
#[track_caller]
pub fn assert_throw_is_deterministic<R: Rules>(state: &[u8], entropy: &[u8; 32]) {
    let a = rules::throw_dice::<R>(state, entropy).expect("throw_dice");
    assert_eq!(rules::throw_dice::<R>(state, entropy), Ok(a));
    assert!(matches!(
        rules::throw_dice::<R>(state, &[0; 31]),
        Err(ModeError::InvalidEntropy(_))
    ));
}

/// Asserts that without a `first_player`, the starting player of alice and
/// bob is drawn from the entropy: announced by `TurnStarted`, the same for
/// the same entropy, and about even over 256 entropies.
#[track_caller]
pub fn assert_first_player_from_entropy<R: Rules>() {
    let cfg = config(&[ALICE, BOB], None, "");
    let mut firsts = [0u32; 2];
    for i in 0..=255u8 {
        let entropy = [i; 32];
        let out = rules::start::<R>(&cfg, &entropy).expect("start");
        let first = out.turn.clone().expect("nobody on turn");
        assert_eq!(
            out.events,
            vec![Event::TurnStarted {
                player: first.clone()
            }]
        );
        firsts[usize::from(first == BOB)] += 1;
        // The same entropy always picks the same player.
        let again = rules::start::<R>(&cfg, &entropy).expect("start");
        assert_eq!(again.turn.as_deref(), Some(first.as_str()));
        assert_eq!(again.state, out.state);
    }
    // Both seats occur and neither dominates (256 fair coins: 5 sigma is 40).
    assert!(
        firsts.iter().all(|&n| (88..=168).contains(&n)),
        "{firsts:?}"
    );
}

/// Asserts that a config's `first_player` starts, whatever the entropy.
#[track_caller]
pub fn assert_honours_first_player<R: Rules>() {
    for entropy in [[0u8; 32], [1; 32], [0xff; 32]] {
        for first in [BOB, ALICE] {
            let cfg = config(&[ALICE, BOB], Some(first), "");
            let out = rules::start::<R>(&cfg, &entropy).expect("start");
            assert_eq!(out.turn.as_deref(), Some(first));
        }
    }
}

/// Asserts that `start` refuses with `InvalidConfig` the configs no mode of
/// alice and bob accepts (too few or too many players, duplicate or empty
/// ids, a stranger as first player, options that are not a JSON object) and
/// the two-player configs with each of `bad_options`.
#[track_caller]
pub fn assert_rejects_invalid_configs<R: Rules>(bad_options: &[&str]) {
    let (a, b) = (ALICE, BOB);
    let mut bad = vec![
        config(&[a], None, ""),
        config(&[a, b, "carol"], None, ""),
        config(&[], None, ""),
        config(&[a, a], None, ""),
        config(&[a, ""], None, ""),
        config(&[a, b], Some("carol"), ""),
        config(&[a, b], None, "[1]"),
        config(&[a, b], None, "not json"),
    ];
    bad.extend(bad_options.iter().map(|o| config(&[a, b], None, o)));
    for cfg in bad {
        let err = rules::start::<R>(&cfg, &[0; 32]).expect_err("config accepted");
        assert!(
            matches!(err, ModeError::InvalidConfig(_)),
            "{cfg:?}: {err:?}"
        );
    }
}

/// Asserts that corrupt state is an error, never a panic. Tried are garbage,
/// every strict prefix of `valid`'s encoding, and valid encodings (the state
/// `wrap` makes of each table) of impossible tables: no such seat on turn, no
/// seats, a winner that is not seated. `apply` (roll, bank and forfeit by
/// alice and bob), `view` and `throw_dice` must all say `CorruptState`.
#[track_caller]
pub fn assert_corrupt_state_refused<R: Rules>(valid: &R::State, wrap: impl Fn(Table) -> R::State) {
    let valid = Game::<R>::from_state(valid).state;
    let mut corrupt: Vec<Vec<u8>> = vec![vec![], vec![0xff; 8], vec![0x80; 64]];
    corrupt.extend((0..valid.len()).map(|n| valid[..n].to_vec()));
    let mut bad_turn = table2([0, 0], 2, 0, 1);
    corrupt.push(Game::<R>::from_state(&wrap(bad_turn.clone())).state);
    bad_turn.seats.clear();
    bad_turn.turn = 0;
    corrupt.push(Game::<R>::from_state(&wrap(bad_turn)).state);
    let mut bad_winner = table2([0, 0], 0, 0, 1);
    bad_winner.status = Status::Finished {
        reason: EndReason::Won,
        winner: Some(5),
        forfeited: None,
    };
    corrupt.push(Game::<R>::from_state(&wrap(bad_winner)).state);

    let is_corrupt = |r: &Result<_, ModeError>| matches!(r, Err(ModeError::CorruptState(_)));
    for bytes in &corrupt {
        for actor in [ALICE, BOB] {
            for action in [
                Action::Roll { dice: vec![3, 4] },
                Action::Bank,
                Action::Forfeit,
            ] {
                let result = rules::apply::<R>(bytes, actor, &action).map(|_| ());
                assert!(is_corrupt(&result), "{bytes:?}: {result:?}");
            }
        }
        assert!(
            is_corrupt(&rules::view::<R>(bytes).map(|_| ())),
            "{bytes:?}"
        );
        assert!(
            is_corrupt(&rules::throw_dice::<R>(bytes, &[0; 32]).map(|_| ())),
            "{bytes:?}"
        );
        assert!(is_corrupt(&rules::bot::<R>(bytes).map(|_| ())), "{bytes:?}");
    }
}

/// Asserts [`Rules::bot`]'s default for a mode that keeps it: below
/// [`DEFAULT_BOT_BANKS_AT`] the bot rolls; from there on it banks if the
/// mode lists a `bank` action, and otherwise never banks. Every move it
/// chooses is accepted for the player on turn. `wrap` makes the mode's state
/// of a playing table with [`ALICE`] on turn.
#[track_caller]
pub fn assert_default_bot<R: Rules>(wrap: impl Fn(Table) -> R::State) {
    let can_bank = R::info().actions.iter().any(|a| a.name == "bank");
    let at = DEFAULT_BOT_BANKS_AT;
    for turn_score in [0, 1, at - 1, at, at + 1, 3 * at] {
        let mut game = Game::<R>::from_state(&wrap(table2([30, 30], 0, turn_score, 1)));
        let expected = if can_bank && turn_score >= at {
            BotMove::Bank
        } else {
            BotMove::Roll
        };
        assert_eq!(game.bot(), Ok(expected), "turn score {turn_score}");
        if let Err(e) = game.bot_plays(3, 4) {
            panic!("turn score {turn_score}: the bot's move was refused: {e:?}");
        }
    }
}

/// What every successful action must satisfy, whatever the mode: `turn` is
/// `None` exactly when the game is over, and so when `standings` is `Some`;
/// the standings have one winner or are all draws, and `GameOver` with them
/// is the last event and the only one; every score change is announced with
/// running totals that end at the new table; `Busted` loses the whole turn
/// score; the turn passes exactly when a `TurnPassed` says so, and then (or
/// when the game ends) the turn score and multiplier are cleared.
pub fn check_outcome(before: &Table, after: &Table, out: &Outcome) -> Result<(), String> {
    let over = after.is_over();
    ensure_eq(
        &out.turn.is_none(),
        &over,
        "no one on turn exactly when over",
    )?;
    ensure_eq(
        &out.standings.is_some(),
        &over,
        "standings exactly when over",
    )?;
    if let Some(turn) = &out.turn {
        ensure_eq(turn.as_str(), after.on_turn(), "on turn")?;
    }
    ensure_eq(&out.standings, &after.standings(), "standings")?;
    let game_overs = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::GameOver { .. }))
        .count();
    ensure_eq(&game_overs, &usize::from(over), "GameOver events")?;
    if let Some(standings) = &out.standings {
        ensure_eq(&standings.len(), &after.seats.len(), "standings length")?;
        let count = |result| standings.iter().filter(|s| s.result == result).count();
        let (wins, draws) = (count(MatchResult::Win), count(MatchResult::Draw));
        ensure(
            (wins == 1 && draws == 0) || draws == standings.len(),
            || format!("{standings:?}"),
        )?;
        let Some(Event::GameOver { standings: s, .. }) = out.events.last() else {
            return Err("GameOver is not the last event".into());
        };
        ensure_eq(s, standings, "GameOver standings")?;
    }
    // Every score change is announced, with running totals.
    let mut banked: Vec<i32> = before.seats.iter().map(|s| s.banked).collect();
    let mut turn_score = before.turn_score;
    let mut passes = 0;
    for e in &out.events {
        match e {
            Event::BankedScoreChanged {
                player,
                delta,
                total,
                ..
            } => {
                let seat = before
                    .seat_of(player)
                    .ok_or_else(|| format!("{player} is not seated"))?;
                banked[seat] += delta;
                ensure_eq(&banked[seat], total, "banked total")?;
            }
            Event::TurnScoreChanged {
                player,
                delta,
                total,
            } => {
                ensure_eq(player.as_str(), before.on_turn(), "turn score of")?;
                turn_score += delta;
                ensure_eq(&turn_score, total, "turn score total")?;
            }
            Event::Busted { lost, .. } => ensure_eq(lost, &turn_score, "lost")?,
            Event::TurnPassed { from, to } => {
                ensure_eq(from.as_str(), before.on_turn(), "passed from")?;
                ensure_eq(to.as_str(), after.on_turn(), "passed to")?;
                turn_score = 0;
                passes += 1;
            }
            _ => {}
        }
    }
    let after_banked: Vec<i32> = after.seats.iter().map(|s| s.banked).collect();
    ensure_eq(&banked, &after_banked, "banked scores")?;
    let passed = !over && after.turn != before.turn;
    ensure_eq(&passes, &usize::from(passed), "TurnPassed events")?;
    if passes > 0 || over {
        // The turn passed or the game ended: turn score and multiplier cleared.
        let cleared = (after.turn_score, after.multiplier);
        ensure_eq(&cleared, &(0, 1), "turn score and multiplier")?;
    } else {
        ensure_eq(&after.turn_score, &turn_score, "turn score")?;
    }
    ensure(after.turn_score >= 0, || format!("{after:?}"))
}

/// Short builders for the events a test expects.
pub mod events {
    use crate::types::{BankedReason, BustReason, Event, RollKind};

    /// `player` rolled `d1`-`d2`, classified as `kind`.
    pub fn rolled(player: &str, d1: u8, d2: u8, kind: RollKind) -> Event {
        Event::Rolled {
            player: player.into(),
            dice: vec![d1, d2],
            kind,
        }
    }

    /// `player`'s turn score changed by `delta` to `total`.
    pub fn turn_score(player: &str, delta: i32, total: i32) -> Event {
        Event::TurnScoreChanged {
            player: player.into(),
            delta,
            total,
        }
    }

    /// The turn passed from `from` to `to`.
    pub fn passed(from: &str, to: &str) -> Event {
        Event::TurnPassed {
            from: from.into(),
            to: to.into(),
        }
    }

    /// `player`'s turn multiplier became `multiplier`.
    pub fn multiplier(player: &str, multiplier: u32) -> Event {
        Event::MultiplierChanged {
            player: player.into(),
            multiplier,
        }
    }

    /// `player`'s banked score changed by `delta` to `total`, for `reason`.
    pub fn banked(player: &str, delta: i32, total: i32, reason: BankedReason) -> Event {
        Event::BankedScoreChanged {
            player: player.into(),
            delta,
            total,
            reason,
        }
    }

    /// `player` lost the turn score `lost`, for `reason`.
    pub fn busted(player: &str, lost: i32, reason: BustReason) -> Event {
        Event::Busted {
            player: player.into(),
            lost,
            reason,
        }
    }
}

/// One random step of a property test: what [`play`] has someone try.
#[derive(Clone, Debug)]
pub enum Step {
    /// The player on turn rolls the dice the mode throws from this entropy.
    Throw([u8; 32]),
    /// The player on turn rolls these (valid) dice.
    Roll(u8, u8),
    Bank,
    Timeout,
    Forfeit {
        on_turn: bool,
    },
    /// The player not on turn tries to roll (0), bank (1) or time out.
    OutOfTurn(u8),
    /// "mallory", who is not playing, tries to roll.
    Stranger,
    /// The player on turn rolls these (invalid) dice.
    BadDice(Vec<u8>),
}

/// Random [`Step`]s, weighted like play: mostly throws, rolls and banks,
/// some timeouts, forfeits, out-of-turn actions, strangers and bad dice.
#[cfg(feature = "proptest")]
pub fn step() -> impl proptest::strategy::Strategy<Value = Step> {
    use proptest::prelude::*;
    let bad_dice = prop_oneof![
        (7u8.., any::<u8>()).prop_map(|(a, b)| vec![a, b]),
        Just(vec![0, 3]),
        prop::collection::vec(1u8..=6, 0..=1),
        prop::collection::vec(1u8..=6, 3..=4),
    ];
    prop_oneof![
        30 => any::<[u8; 32]>().prop_map(Step::Throw),
        30 => (1u8..=6, 1u8..=6).prop_map(|(a, b)| Step::Roll(a, b)),
        15 => Just(Step::Bank),
        4 => Just(Step::Timeout),
        1 => any::<bool>().prop_map(|on_turn| Step::Forfeit { on_turn }),
        3 => (0u8..3).prop_map(Step::OutOfTurn),
        1 => Just(Step::Stranger),
        3 => bad_dice.prop_map(Step::BadDice),
    ]
}

impl Step {
    /// Who tries what in this game. A throw must give two dice of 1..=6.
    pub fn attempt<R: Rules>(&self, game: &Game<R>) -> Result<(String, Action), String> {
        let table = game.table();
        let on = table.on_turn().to_owned();
        let off = table.seats[table.next_seat()].id.clone();
        Ok(match self {
            Step::Throw(entropy) => {
                let dice = rules::throw_dice::<R>(&game.state, entropy)
                    .map_err(|e| format!("throw_dice: {e:?}"))?;
                let two_dice = dice.len() == 2 && dice.iter().all(|d| (1..=6).contains(d));
                ensure(two_dice, || format!("not two dice: {dice:?}"))?;
                (on, Action::Roll { dice })
            }
            Step::Roll(a, b) => (on, Action::Roll { dice: vec![*a, *b] }),
            Step::Bank => (on, Action::Bank),
            Step::Timeout => (on, Action::Timeout),
            Step::Forfeit { on_turn: true } => (on, Action::Forfeit),
            Step::Forfeit { on_turn: false } => (off, Action::Forfeit),
            Step::OutOfTurn(k) => (
                off,
                match k {
                    0 => Action::Roll { dice: vec![3, 4] },
                    1 => Action::Bank,
                    _ => Action::Timeout,
                },
            ),
            Step::Stranger => ("mallory".to_owned(), Action::Roll { dice: vec![3, 4] }),
            Step::BadDice(dice) => (on, Action::Roll { dice: dice.clone() }),
        })
    }
}

/// The shared turn table of a two-player [`Model`], as the spec states it:
/// [`ALICE`] in seat 0, [`BOB`] in seat 1.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TwoSeats {
    pub banked: [i32; 2],
    pub turn: usize,
    pub turn_score: i32,
    pub multiplier: u32,
    /// `Some((reason, winner))` once over; a `None` winner is a draw.
    pub over: Option<(EndReason, Option<usize>)>,
}

impl TwoSeats {
    /// Both players at `banked`, seat `first` on turn.
    pub fn new(banked: i32, first: usize) -> Self {
        TwoSeats {
            banked: [banked; 2],
            turn: first,
            turn_score: 0,
            multiplier: 1,
            over: None,
        }
    }

    /// The turn passes to the other seat; turn score and multiplier clear.
    pub fn pass(&mut self) {
        self.turn = 1 - self.turn;
        self.turn_score = 0;
        self.multiplier = 1;
    }

    /// The game ends; turn score and multiplier clear.
    pub fn end(&mut self, reason: EndReason, winner: Option<usize>) {
        self.over = Some((reason, winner));
        self.turn_score = 0;
        self.multiplier = 1;
    }

    /// `seat` wins by the rules.
    pub fn win(&mut self, seat: usize) {
        self.end(EndReason::Won, Some(seat));
    }

    /// Compares with the mode's table: banked scores, turn score, multiplier,
    /// and who is on turn, or how the game ended.
    pub fn check(&self, t: &Table) -> Result<(), String> {
        let scores: Vec<i32> = t.seats.iter().map(|s| s.banked).collect();
        ensure_eq(&scores[..], &self.banked[..], "banked scores")?;
        match (t.status, self.over) {
            (Status::Playing, None) => ensure_eq(&t.turn, &self.turn, "turn")?,
            (Status::Finished { reason, winner, .. }, Some(over)) => {
                ensure_eq(&(reason, winner), &over, "end")?
            }
            (status, over) => return Err(format!("{status:?} vs model {over:?}")),
        }
        ensure_eq(&t.turn_score, &self.turn_score, "turn score")?;
        ensure_eq(&t.multiplier, &self.multiplier, "multiplier")
    }
}

/// A mode as its spec states it, written without looking at the mode's code,
/// for [`play`] to check the mode against.
///
/// The model only says what the player on turn's roll, bank and timeout do.
/// What the driver does for every mode (refusing actions after the game, from
/// strangers or out of turn, forfeits, unknown actions and malformed dice) is
/// modelled once, in [`Model::attempt`].
pub trait Model<R: Rules> {
    /// A fresh game of alice (seat 0) and bob (seat 1), seat `first` on turn.
    fn new(first: usize) -> Self;
    /// The shared turn table.
    fn seats(&self) -> &TwoSeats;
    /// The shared turn table, to change.
    fn seats_mut(&mut self) -> &mut TwoSeats;
    /// The player on turn rolls `a`-`b` (both 1..=6).
    fn roll(&mut self, a: u8, b: u8);
    /// The player on turn banks: `Ok`, or the error the mode must give.
    fn bank(&mut self) -> Result<(), ModeError>;
    /// The turn timer of the player on turn runs out.
    fn timeout(&mut self);

    /// Compares the model with the mode's state after every step; by
    /// default, [`TwoSeats::check`] on the table.
    fn check(&self, state: &R::State) -> Result<(), String> {
        self.seats().check(R::table(state))
    }

    /// `actor` tries `action`: `Ok` when the mode must accept it (and the
    /// model has moved on), else the error the mode must give.
    fn attempt(&mut self, actor: &str, action: &Action) -> Result<(), ModeError> {
        let players = [ALICE, BOB];
        let seats = self.seats();
        if seats.over.is_some() {
            return Err(ModeError::GameOver);
        }
        let turn = seats.turn;
        let seat = players
            .iter()
            .position(|id| *id == actor)
            .ok_or_else(|| ModeError::NotAPlayer(actor.into()))?;
        if *action == Action::Forfeit {
            self.seats_mut().end(EndReason::Forfeit, Some(1 - seat));
            return Ok(());
        }
        if seat != turn {
            return Err(ModeError::NotYourTurn(players[turn].into()));
        }
        match action {
            Action::Roll { dice } => match dice[..] {
                [a, b] if (1..=6).contains(&a) && (1..=6).contains(&b) => self.roll(a, b),
                _ => return Err(ModeError::InvalidDice(String::new())),
            },
            Action::Bank => self.bank()?,
            Action::Timeout => self.timeout(),
            Action::Custom { name, .. } => return Err(ModeError::UnknownAction(name.clone())),
            Action::Forfeit => unreachable!("handled above"),
        }
        Ok(())
    }
}

/// Plays `steps` in a game of alice and bob whose first player is drawn from
/// `start_entropy`, checking every step: the mode accepts exactly what the
/// model `M` accepts and refuses the rest with the model's error and no
/// change of state; every outcome passes [`check_outcome`] and the mode's
/// `invariants`; the model agrees with the state; the view shows the banked
/// scores; and a finished game refuses a roll.
pub fn play<R: Rules, M: Model<R>>(
    start_entropy: &[u8; 32],
    steps: &[Step],
    invariants: impl Fn(&Table) -> Result<(), String>,
) -> Result<(), String> {
    let out = rules::start::<R>(&config(&[ALICE, BOB], None, ""), start_entropy)
        .map_err(|e| format!("start: {e:?}"))?;
    let first = usize::from(out.turn.as_deref() == Some(BOB));
    let mut g = Game::<R> {
        state: out.state,
        last: None,
        rules: PhantomData,
    };
    let mut model = M::new(first);
    for step in steps {
        let before = g.table();
        if before.is_over() {
            break;
        }
        let (actor, action) = step.attempt(&g)?;
        let state = g.state.clone();
        let expected = model.attempt(&actor, &action);
        match g.act(&actor, action.clone()) {
            Ok(out) => {
                let out = out.clone();
                ensure(expected.is_ok(), || {
                    format!("{action:?} accepted, model: {expected:?}")
                })?;
                let after = g.table();
                check_outcome(&before, &after, &out)?;
                invariants(&after)?;
            }
            Err(err) => {
                ensure_eq(&g.state, &state, "error changed the state")?;
                match &expected {
                    Err(want) => ensure(same_error(&err, want), || format!("{err:?} vs {want:?}"))?,
                    Ok(()) => return Err(format!("{action:?} refused: {err:?}")),
                }
            }
        }
        model.check(&g.decoded())?;
        // The shown scores are the banked ones.
        let view = g.view();
        for (i, seat) in g.table().seats.iter().enumerate() {
            let shown = &view["players"][i]["score"];
            ensure_eq(shown, &Value::from(seat.banked), "shown score")?;
        }
    }
    if g.table().is_over() {
        let state = g.state.clone();
        let refused = g.roll(3, 4).map(|_| ());
        ensure_eq(&refused, &Err(ModeError::GameOver), "roll after the end")?;
        ensure_eq(&g.state, &state, "state after the end")?;
    }
    Ok(())
}
