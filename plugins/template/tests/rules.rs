//! The mode's rules, row by row, plus property tests over random games.
//!
//! Everything goes through the SDK's driver (`rules::start`, `rules::apply`,
//! `rules::throw_dice`) via `testing::Game`: the very code the component
//! runs, so these native tests are evidence about the `.wasm` too.

// Test code: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used)]

use dashdice_mode_sdk::testing::events::{banked, busted, passed, rolled, turn_score};
use dashdice_mode_sdk::testing::{
    self, ALICE as A, BOB as B, Game, Model as _, Step, ThrowCounts, TwoSeats, check_outcome,
    config, ensure, ensure_eq, same_error, standing, step, table2,
};
use dashdice_mode_sdk::{
    Action, BankedReason, BotMove, BustReason, EndReason, Event, MatchResult, ModeError, RollKind,
    Rules, Status, Table, rules,
};
use dashdice_mode_template::{DOUBLE_DOWN, State, TARGET, Template};
use proptest::prelude::*;
use serde_json::{Value, json};

type M = Template;
type G = Game<M>;

fn new_game() -> G {
    G::start(&[A, B])
}

/// A game in this state: alice and bob banked, `turn` on turn with this
/// turn score, doubled down or not.
fn game(banked: [i32; 2], turn: usize, turn_score: i32, showdown: bool) -> G {
    G::from_state(&State {
        table: table2(banked, turn, turn_score, 1),
        showdown,
    })
}

fn double_down() -> Action {
    Action::Custom {
        name: DOUBLE_DOWN.into(),
        payload: String::new(),
    }
}

/// A custom event with this name and JSON payload.
fn custom(name: &str, payload: Value) -> Event {
    Event::Custom {
        name: name.into(),
        payload: payload.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Mode info and start
// ---------------------------------------------------------------------------

#[test]
fn info_lists_the_custom_action() {
    let info = M::info();
    assert_eq!(info.id, "template");
    assert_eq!((info.min_players, info.max_players), (2, 2));
    assert_eq!(info.turn_time_limit_ms, 30_000);
    let names: Vec<&str> = info.actions.iter().map(|a| a.name.as_str()).collect();
    for name in ["roll", "bank", "forfeit", "timeout", DOUBLE_DOWN] {
        assert!(names.contains(&name), "{names:?}");
    }
    // Only a roll needs the host to throw dice.
    assert!(
        info.actions
            .iter()
            .all(|a| a.needs_dice == (a.name == "roll"))
    );
}

#[test]
fn start_both_players_at_zero() {
    let g = new_game();
    assert_eq!(g.scores(), vec![0, 0]);
    let out = g.outcome();
    assert_eq!(out.turn.as_deref(), Some(A));
    assert_eq!(out.events, vec![Event::TurnStarted { player: A.into() }]);
    let view = g.view();
    assert_eq!(view["mode"], "template");
    assert_eq!(view["status"], "playing");
    assert_eq!(view["turn"], A);
    assert_eq!(view["turn_score"], 0);
    assert_eq!(
        view["players"],
        json!([{"id": A, "score": 0}, {"id": B, "score": 0}])
    );
    assert_eq!(view["winner"], Value::Null);
    assert_eq!(view["draw"], false);
    // This mode's own fields.
    assert_eq!(view["target"], TARGET);
    assert_eq!(view["showdown_needs"], 8);
    assert_eq!(view["showdown"], false);
}

#[test]
fn start_picks_the_first_player_from_entropy() {
    testing::assert_first_player_from_entropy::<M>();
}

#[test]
fn start_honours_first_player() {
    testing::assert_honours_first_player::<M>();
}

#[test]
fn start_accepts_only_empty_options() {
    for options in ["", "{}", " { } "] {
        assert!(rules::start::<M>(&config(&[A, B], None, options), &[0; 32]).is_ok());
    }
    testing::assert_rejects_invalid_configs::<M>(&[r#"{"target": 100}"#]);
}

// ---------------------------------------------------------------------------
// Rolls and banks
// ---------------------------------------------------------------------------

#[test]
fn a_normal_roll_adds_its_sum() {
    let mut g = new_game();
    g.roll_expect(3, 4, 7, 1, A);
    assert_eq!(
        g.events(),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 7, 7)]
    );
    g.roll_expect(6, 5, 18, 1, A);
}

#[test]
fn a_double_counts_twice() {
    for n in 2..=6u8 {
        let mut g = new_game();
        let points = 4 * i32::from(n);
        g.roll_expect(n, n, points, 1, A);
        assert_eq!(
            g.events(),
            vec![
                rolled(A, n, n, RollKind::Double),
                turn_score(A, points, points)
            ]
        );
    }
}

#[test]
fn a_single_one_or_snake_eyes_loses_the_turn_score() {
    for (d1, d2, kind) in [
        (1, 5, RollKind::SingleOne),
        (6, 1, RollKind::SingleOne),
        (1, 1, RollKind::SnakeEyes),
    ] {
        let mut g = game([30, 12], 0, 17, false);
        g.roll(d1, d2).unwrap();
        assert_eq!(g.scores(), vec![30, 12], "banked untouched");
        assert_eq!((g.table().turn, g.table().turn_score), (1, 0));
        assert_eq!(
            g.events(),
            vec![
                rolled(A, d1, d2, kind),
                busted(A, 17, BustReason::SingleOne),
                passed(A, B),
            ]
        );
    }
}

#[test]
fn bank_adds_the_turn_score_and_passes_the_turn() {
    let mut g = game([20, 10], 0, 15, false);
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![35, 10]);
    assert_eq!(g.table().on_turn(), B);
    assert_eq!(
        g.events(),
        vec![banked(A, 15, 35, BankedReason::Bank), passed(A, B)]
    );
}

#[test]
fn banking_to_the_target_wins() {
    let mut g = game([10, 40], 1, 10, false);
    g.bank().unwrap();
    let want = vec![
        standing(B, 50, 1, MatchResult::Win),
        standing(A, 10, 2, MatchResult::Loss),
    ];
    assert_eq!(g.outcome().standings.as_ref(), Some(&want));
    assert_eq!(g.won_by().as_deref(), Some(B));
    let view = g.view();
    assert_eq!(view["status"], "finished");
    assert_eq!(view["winner"], B);
    assert_eq!(view["turn"], Value::Null);
}

#[test]
fn nothing_to_bank_at_turn_score_zero() {
    let mut g = new_game();
    g.refused(A, Action::Bank, ModeError::NothingToBank);
}

#[test]
fn a_timeout_loses_the_turn_score() {
    let mut g = game([5, 5], 0, 21, false);
    g.timeout().unwrap();
    assert_eq!(
        g.events(),
        vec![
            Event::TimedOut { player: A.into() },
            busted(A, 21, BustReason::Timeout),
            passed(A, B),
        ]
    );
}

// ---------------------------------------------------------------------------
// Double down: the custom action
// ---------------------------------------------------------------------------

#[test]
fn double_down_sets_up_the_showdown() {
    let mut g = game([0, 0], 0, 12, false);
    g.act(A, double_down()).unwrap();
    assert_eq!(
        g.events(),
        vec![custom("doubled_down", json!({"player": A, "stake": 12}))]
    );
    assert!(g.decoded().showdown);
    assert_eq!(g.table().turn_score, 12, "the bet is not paid yet");
    assert_eq!(g.view()["showdown"], true);
}

#[test]
fn a_showdown_of_8_or_more_doubles_and_banks() {
    // 12 doubled is 24, plus the 4-4 makes 32: a double is not counted twice here.
    for (d1, d2, sum) in [(4, 4, 8), (6, 2, 8), (6, 6, 12)] {
        let mut g = game([10, 0], 0, 12, true);
        g.roll(d1, d2).unwrap();
        let total = 24 + sum;
        let kind = if d1 == d2 {
            RollKind::Double
        } else {
            RollKind::Normal
        };
        assert_eq!(
            g.events(),
            vec![
                rolled(A, d1, d2, kind),
                custom("showdown", json!({"player": A, "sum": sum, "won": true})),
                turn_score(A, 12 + sum, total),
                banked(A, total, 10 + total, BankedReason::Bank),
                passed(A, B),
            ]
        );
        assert!(!g.decoded().showdown);
        assert_eq!(g.view()["showdown"], false);
    }
}

#[test]
fn a_won_showdown_can_win_the_game() {
    let mut g = game([30, 45], 0, 6, true);
    g.roll(5, 5).unwrap();
    assert_eq!(g.scores(), vec![52, 45]);
    assert_eq!(g.won_by().as_deref(), Some(A));
    assert_eq!(g.view()["showdown"], false);
}

#[test]
fn a_showdown_of_7_or_less_loses_it_all() {
    for (d1, d2) in [(3, 4), (1, 6), (1, 1), (3, 3)] {
        let mut g = game([10, 0], 0, 12, true);
        g.roll(d1, d2).unwrap();
        let events = g.events();
        assert_eq!(
            events[1],
            custom(
                "showdown",
                json!({"player": A, "sum": d1 + d2, "won": false})
            )
        );
        assert_eq!(
            events[2..],
            [busted(A, 12, BustReason::SingleOne), passed(A, B)]
        );
        assert_eq!(g.scores(), vec![10, 0]);
        assert!(!g.decoded().showdown);
    }
}

#[test]
fn double_down_refusals() {
    // Nothing to bet.
    let mut g = new_game();
    let none = ModeError::NotAllowed(String::new());
    g.refused(A, double_down(), none.clone());
    // Once a turn, no banking before the showdown, and no payload.
    let mut g = game([0, 0], 0, 9, false);
    let payload = Action::Custom {
        name: DOUBLE_DOWN.into(),
        payload: r#"{"stake": 100}"#.into(),
    };
    g.refused(A, payload, none.clone());
    g.act(A, double_down()).unwrap();
    g.refused(A, double_down(), none.clone());
    g.refused(A, Action::Bank, none);
    // Only the player on turn.
    g.refused(B, double_down(), ModeError::NotYourTurn(A.into()));
}

#[test]
fn a_timeout_in_the_showdown_ends_it() {
    let mut g = game([0, 0], 0, 9, true);
    g.timeout().unwrap();
    assert!(!g.decoded().showdown);
    // Bob's turn is an ordinary one.
    g.roll_expect(3, 4, 7, 1, B);
    g.bank().unwrap();
}

/// A whole game: alice doubles down and loses, bob doubles down and wins.
#[test]
fn worked_sequence() {
    let mut g = new_game();
    g.roll_expect(3, 4, 7, 1, A);
    g.roll_expect(2, 2, 15, 1, A);
    g.act(A, double_down()).unwrap();
    g.roll(2, 3).unwrap(); // 5: lost
    assert_eq!(g.scores(), vec![0, 0]);
    g.roll_expect(5, 6, 11, 1, B);
    g.act(B, double_down()).unwrap();
    g.roll(6, 5).unwrap(); // 11: 22 + 11 banked
    assert_eq!(g.scores(), vec![0, 33]);
    g.roll_expect(6, 6, 24, 1, A);
    g.bank().unwrap();
    g.roll_expect(4, 5, 9, 1, B);
    g.roll_expect(3, 5, 17, 1, B);
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![24, 50]);
    assert_eq!(g.won_by().as_deref(), Some(B));
}

// ---------------------------------------------------------------------------
// The bot
// ---------------------------------------------------------------------------

#[test]
fn the_bot_rolls_banks_at_20_and_gambles_when_far_behind() {
    let bot = |banked, turn_score, showdown| game(banked, 0, turn_score, showdown).bot();
    assert_eq!(bot([0, 0], 0, false), Ok(BotMove::Roll));
    assert_eq!(bot([0, 0], 19, false), Ok(BotMove::Roll));
    assert_eq!(bot([0, 0], 20, false), Ok(BotMove::Bank));
    // After a double-down only the showdown roll is legal.
    assert_eq!(bot([0, 0], 30, true), Ok(BotMove::Roll));
    // 25 behind: double down from a turn score of 10.
    let gamble = Ok(BotMove::Custom {
        name: DOUBLE_DOWN.into(),
        payload: String::new(),
    });
    assert_eq!(bot([5, 30], 10, false), gamble);
    assert_eq!(bot([5, 30], 9, false), Ok(BotMove::Roll));
    assert_eq!(bot([6, 30], 20, false), Ok(BotMove::Bank));
    // And the host applies what it chose.
    let mut g = game([5, 30], 0, 12, false);
    g.bot_plays(3, 4).unwrap();
    assert!(g.decoded().showdown);
    g.bot_plays(6, 6).unwrap();
    assert_eq!(g.scores(), vec![5 + 36, 30]);
}

// ---------------------------------------------------------------------------
// What the driver guarantees, checked for this mode
// ---------------------------------------------------------------------------

#[test]
fn refused_actions_change_nothing() {
    let mut g = new_game();
    g.roll(2, 3).unwrap();
    g.refused(B, Action::Bank, ModeError::NotYourTurn(A.into()));
    g.refuses_invalid_actions("triple-down");
}

#[test]
fn a_finished_game_refuses_everything() {
    let mut g = game([45, 0], 0, 10, false);
    g.bank().unwrap();
    g.refuses_everything();
    g.refused(A, double_down(), ModeError::GameOver);
}

#[test]
fn forfeit_makes_the_other_player_win() {
    let mut g = game([40, 5], 0, 9, true);
    g.act(A, Action::Forfeit).unwrap();
    assert_eq!(g.won_by().as_deref(), Some(B));
    assert_eq!(g.view()["showdown"], false);
}

#[test]
fn corrupt_state_is_an_error_not_a_panic() {
    testing::assert_corrupt_state_refused::<M>(
        &State {
            table: table2([12, 34], 1, 5, 1),
            showdown: true,
        },
        |table| State {
            table,
            showdown: false,
        },
    );
}

#[test]
fn throw_dice_is_fair_and_deterministic() {
    let g = new_game();
    // 60,000 throws. Doubles: mean 10,000, sigma 91; faces: mean 20,000,
    // sigma 129. The bounds are 5 sigma (the entropy is fixed, so this is
    // not flaky: it passes or fails the same way every time).
    ThrowCounts::throw::<M>(&g.state, 0x7e, 60_000).assert_fair(9_540..=10_460, 19_350..=20_650);
    testing::assert_throw_is_deterministic::<M>(&g.state, &testing::indexed_entropy(0x7e, 3));
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// The rules as the module docs state them, written without looking at the
/// code above them.
struct Model {
    seats: TwoSeats,
    showdown: bool,
}

impl Model {
    fn end_turn(&mut self) {
        self.showdown = false;
        self.seats.pass();
    }

    fn bank_turn(&mut self) {
        let s = &mut self.seats;
        s.banked[s.turn] += s.turn_score;
        if s.banked[s.turn] >= 50 {
            self.showdown = false;
            s.win(s.turn);
        } else {
            self.end_turn();
        }
    }

    /// The player on turn doubles down.
    fn double_down(&mut self) -> Result<(), ModeError> {
        if self.seats.over.is_some() {
            return Err(ModeError::GameOver);
        }
        if self.showdown || self.seats.turn_score <= 0 {
            return Err(ModeError::NotAllowed(String::new()));
        }
        self.showdown = true;
        Ok(())
    }
}

impl testing::Model<M> for Model {
    fn new(first: usize) -> Self {
        Model {
            seats: TwoSeats::new(0, first),
            showdown: false,
        }
    }

    fn seats(&self) -> &TwoSeats {
        &self.seats
    }

    fn seats_mut(&mut self) -> &mut TwoSeats {
        &mut self.seats
    }

    fn roll(&mut self, a: u8, b: u8) {
        let sum = i32::from(a + b);
        if self.showdown {
            if sum >= 8 {
                self.seats.turn_score = 2 * self.seats.turn_score + sum;
                self.bank_turn();
            } else {
                self.end_turn();
            }
        } else if a == 1 || b == 1 {
            self.end_turn();
        } else if a == b {
            self.seats.turn_score += 2 * sum;
        } else {
            self.seats.turn_score += sum;
        }
    }

    fn bank(&mut self) -> Result<(), ModeError> {
        if self.showdown {
            return Err(ModeError::NotAllowed(String::new()));
        }
        if self.seats.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        self.bank_turn();
        Ok(())
    }

    fn timeout(&mut self) {
        self.end_turn();
    }

    fn check(&self, state: &State) -> Result<(), String> {
        self.seats.check(&state.table)?;
        let showdown = self.showdown && self.seats.over.is_none();
        ensure_eq(
            &(state.showdown && !state.table.is_over()),
            &showdown,
            "showdown",
        )
    }
}

/// One random move: a step every mode's tests use, or this mode's own action.
#[derive(Clone, Debug)]
enum Move {
    Step(Step),
    DoubleDown,
}

fn moves() -> impl Strategy<Value = Move> {
    prop_oneof![10 => step().prop_map(Move::Step), 2 => Just(Move::DoubleDown)]
}

/// Banked scores never go below zero.
fn mode_invariants(t: &Table) -> Result<(), String> {
    ensure(t.seats.iter().all(|s| s.banked >= 0), || format!("{t:?}"))
}

/// `testing::play` with this mode's custom action in the mix: plays `moves`
/// in a game of alice and bob, checking after every move that the mode
/// accepts exactly what the model accepts (and refuses the rest with the
/// model's error and no change of state), that every outcome passes
/// `check_outcome`, and that the model and the state agree.
fn play(start_entropy: &[u8; 32], moves: &[Move]) -> Result<(), String> {
    let out = rules::start::<M>(&config(&[A, B], None, ""), start_entropy)
        .map_err(|e| format!("start: {e:?}"))?;
    let mut model = <Model as testing::Model<M>>::new(usize::from(out.turn.as_deref() == Some(B)));
    let mut g = G::from_state(&rules::decode::<M>(&out.state).map_err(|e| format!("{e:?}"))?);
    for m in moves {
        let before = g.table();
        if before.is_over() {
            break;
        }
        let (actor, action, expected) = match m {
            Move::Step(step) => {
                let (actor, action) = step.attempt(&g)?;
                let expected = model.attempt(&actor, &action);
                (actor, action, expected)
            }
            Move::DoubleDown => (
                before.on_turn().to_owned(),
                double_down(),
                model.double_down(),
            ),
        };
        let state = g.state.clone();
        match g.act(&actor, action.clone()) {
            Ok(out) => {
                let out = out.clone();
                ensure(expected.is_ok(), || {
                    format!("{action:?} accepted, model: {expected:?}")
                })?;
                let after = g.table();
                check_outcome(&before, &after, &out)?;
                mode_invariants(&after)?;
            }
            Err(err) => {
                ensure_eq(&g.state, &state, "an error changed the state")?;
                match &expected {
                    Err(want) => ensure(same_error(&err, want), || format!("{err:?} vs {want:?}"))?,
                    Ok(()) => return Err(format!("{action:?} refused: {err:?}")),
                }
            }
        }
        model.check(&g.decoded())?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_play_follows_the_rules(
        start_entropy in any::<[u8; 32]>(),
        moves in prop::collection::vec(moves(), 1..300),
    ) {
        play(&start_entropy, &moves).map_err(TestCaseError::fail)?;
    }

    /// Rolling to a threshold and banking, with the mode's own dice, every
    /// game is won within a bounded number of actions.
    #[test]
    fn games_end(seed in any::<[u8; 32]>(), threshold in 5i32..=40) {
        let mut g = new_game();
        g.play_out(&seed, |t| t.turn_score >= threshold, mode_invariants)
            .map_err(TestCaseError::fail)?;
        let t = g.table();
        let Status::Finished { reason, winner: Some(w), .. } = t.status else {
            return Err(TestCaseError::fail(format!("{:?}", t.status)));
        };
        prop_assert_eq!(reason, EndReason::Won);
        prop_assert!(t.seats[w].banked >= TARGET);
    }

    /// Bots on both seats play only legal moves, and finish.
    #[test]
    fn bots_finish_their_games(seed in any::<[u8; 32]>()) {
        let mut g = new_game();
        g.play_out_as_bots(&seed, mode_invariants).map_err(TestCaseError::fail)?;
        prop_assert!(g.won_by().is_some());
    }
}
