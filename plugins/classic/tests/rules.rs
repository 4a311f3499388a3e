//! Classic's rules, pinned row by row against `spec/game-modes.md`, plus
//! property tests over random games.
//!
//! Everything goes through the public driver (`rules::start`, `rules::apply`,
//! `rules::throw_dice`) via `testing::Game`, the code path the component runs.

// Test code: a failed unwrap is a failed test (clippy.toml only exempts
// `#[test]` functions, not the helpers of an integration test).
#![allow(clippy::unwrap_used)]

use dashdice_mode_classic::Classic;
use dashdice_mode_sdk::testing::events::{banked, busted, multiplier, passed, rolled, turn_score};
use dashdice_mode_sdk::testing::step;
use dashdice_mode_sdk::testing::{
    self, ALICE as A, BOB as B, Game, ThrowCounts, TwoSeats, config, ensure, standing, table2,
};
use dashdice_mode_sdk::{
    Action, BankedReason, BustReason, EndReason, Event, MatchResult, ModeError, RollKind, Rules,
    Status, Table, rules,
};
use proptest::prelude::*;

type M = Classic;
type G = Game<M>;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn new_game() -> G {
    G::start(&[A, B])
}

// ---------------------------------------------------------------------------
// Mode info and start
// ---------------------------------------------------------------------------

#[test]
fn info_two_players_and_a_30_second_timer() {
    let info = M::info();
    assert_eq!(info.id, "classic");
    assert_eq!((info.min_players, info.max_players), (2, 2));
    assert_eq!(info.turn_time_limit_ms, 30_000);
    let names: Vec<&str> = info.actions.iter().map(|a| a.name.as_str()).collect();
    for name in ["roll", "bank", "forfeit", "timeout"] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(
        info.actions
            .iter()
            .all(|a| a.needs_dice == (a.name == "roll"))
    );
}

#[test]
fn start_both_players_at_zero() {
    let g = new_game();
    let t = g.table();
    assert_eq!(g.scores(), vec![0, 0]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (0, 0, 1));
    assert_eq!(t.status, Status::Playing);
    let out = g.outcome();
    assert_eq!(out.turn.as_deref(), Some(A));
    assert_eq!(out.standings, None);
    assert_eq!(out.events, vec![Event::TurnStarted { player: A.into() }]);
    let view = g.view();
    assert_eq!(view["mode"], "classic");
    assert_eq!(view["status"], "playing");
    assert_eq!(view["turn"], A);
    assert_eq!(view["players"][0]["score"], 0);
    assert_eq!(view["players"][1]["score"], 0);
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
fn start_accepts_empty_options() {
    for options in ["", "{}", "  { }  "] {
        assert!(rules::start::<M>(&config(&[A, B], None, options), &[0; 32]).is_ok());
    }
}

#[test]
fn start_rejects_invalid_configs() {
    testing::assert_rejects_invalid_configs::<M>(&[r#"{"target": 50}"#]);
}

#[test]
fn start_needs_32_bytes_of_entropy_when_it_must_pick() {
    let err = rules::start::<M>(&config(&[A, B], None, ""), &[0; 31]).unwrap_err();
    assert!(matches!(err, ModeError::InvalidEntropy(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// The table, row by row
// ---------------------------------------------------------------------------

#[test]
fn normal_roll_adds_the_sum() {
    let mut g = new_game();
    g.roll_expect(3, 4, 7, 1, A);
    assert_eq!(
        g.events(),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 7, 7)]
    );
    g.roll_expect(6, 5, 18, 1, A);
    g.roll_expect(2, 3, 23, 1, A);
    assert_eq!(g.scores(), vec![0, 0]);
}

#[test]
fn normal_roll_is_doubled_while_the_multiplier_is_on() {
    let mut g = G::from_state(&table2([0, 0], 0, 10, 2));
    g.roll_expect(3, 4, 24, 2, A);
    assert_eq!(
        g.events(),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 14, 24)]
    );
}

#[test]
fn single_one_loses_the_turn_score_and_ends_the_turn() {
    for (d1, d2) in [(1, 5), (5, 1), (1, 2), (6, 1)] {
        let mut g = G::from_state(&table2([30, 12], 0, 17, 2));
        g.roll(d1, d2).unwrap();
        let t = g.table();
        assert_eq!(g.scores(), vec![30, 12], "banked untouched");
        assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
        assert_eq!(t.status, Status::Playing);
        assert_eq!(
            g.events(),
            vec![
                rolled(A, d1, d2, RollKind::SingleOne),
                busted(A, 17, BustReason::SingleOne),
                passed(A, B),
            ]
        );
        assert_eq!(g.outcome().turn.as_deref(), Some(B));
    }
}

#[test]
fn snake_eyes_adds_20_and_switches_the_multiplier_on() {
    let mut g = new_game();
    g.roll_expect(1, 1, 20, 2, A);
    assert_eq!(
        g.events(),
        vec![
            rolled(A, 1, 1, RollKind::SnakeEyes),
            turn_score(A, 20, 20),
            multiplier(A, 2),
        ]
    );
    // The turn continues, and the next normal roll is doubled.
    g.roll_expect(2, 3, 30, 2, A);
}

#[test]
fn snake_eyes_is_never_multiplied() {
    let mut g = G::from_state(&table2([0, 0], 0, 4, 2));
    g.roll_expect(1, 1, 24, 2, A);
    assert_eq!(
        g.events(),
        vec![rolled(A, 1, 1, RollKind::SnakeEyes), turn_score(A, 20, 24)]
    );
}

#[test]
fn six_six_resets_the_banked_score_and_ends_the_turn() {
    for mult in [1, 2] {
        let mut g = G::from_state(&table2([64, 20], 0, 14, mult));
        g.roll(6, 6).unwrap();
        let t = g.table();
        assert_eq!(g.scores(), vec![0, 20]);
        assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
        assert_eq!(t.status, Status::Playing);
        assert_eq!(
            g.events(),
            vec![
                rolled(A, 6, 6, RollKind::Double),
                banked(A, -64, 0, BankedReason::Reset),
                busted(A, 14, BustReason::Reset),
                passed(A, B),
            ]
        );
    }
}

#[test]
fn six_six_on_a_fresh_turn_at_zero_still_ends_the_turn() {
    let mut g = new_game();
    g.roll(6, 6).unwrap();
    assert_eq!(g.scores(), vec![0, 0]);
    assert_eq!(g.table().on_turn(), B);
}

#[test]
fn other_doubles_add_their_sum_and_switch_the_multiplier_on() {
    for n in 2..=5u8 {
        let mut g = new_game();
        let sum = 2 * i32::from(n);
        g.roll_expect(n, n, sum, 2, A);
        assert_eq!(
            g.events(),
            vec![
                rolled(A, n, n, RollKind::Double),
                turn_score(A, sum, sum),
                multiplier(A, 2),
            ]
        );
    }
}

#[test]
fn a_double_itself_is_not_multiplied() {
    for n in 2..=5u8 {
        let mut g = G::from_state(&table2([0, 0], 0, 10, 2));
        g.roll_expect(n, n, 10 + 2 * i32::from(n), 2, A);
    }
}

#[test]
fn multiplier_does_not_stack() {
    let mut g = new_game();
    g.roll_expect(2, 2, 4, 2, A);
    g.roll_expect(3, 3, 10, 2, A);
    // No second MultiplierChanged: it stays ×2.
    assert!(
        !g.events()
            .iter()
            .any(|e| matches!(e, Event::MultiplierChanged { .. }))
    );
    g.roll_expect(1, 1, 30, 2, A);
    g.roll_expect(4, 4, 38, 2, A);
    g.roll_expect(2, 3, 48, 2, A); // ×2, not ×4 or ×8
}

#[test]
fn multiplier_is_cleared_when_the_turn_passes() {
    // Bank, single one, 6-6 and timeout all clear it.
    let enders: [fn(&mut G); 4] = [
        |g| {
            g.bank().unwrap();
        },
        |g| {
            g.roll(1, 4).unwrap();
        },
        |g| {
            g.roll(6, 6).unwrap();
        },
        |g| {
            g.timeout().unwrap();
        },
    ];
    for end in enders {
        let mut g = new_game();
        g.roll_expect(3, 3, 6, 2, A);
        end(&mut g);
        let t = g.table();
        assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
        g.roll_expect(3, 4, 7, 1, B); // not doubled
    }
}

#[test]
fn bank_adds_the_turn_score_and_ends_the_turn() {
    let mut g = G::from_state(&table2([40, 10], 0, 25, 2));
    g.bank().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![65, 10]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
    assert_eq!(t.status, Status::Playing);
    assert_eq!(
        g.events(),
        vec![banked(A, 25, 65, BankedReason::Bank), passed(A, B)]
    );
}

#[test]
fn bank_to_exactly_100_wins() {
    let mut g = G::from_state(&table2([90, 10], 0, 10, 1));
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![100, 10]);
    assert_eq!(g.won_by().as_deref(), Some(A));
}

#[test]
fn bank_overshooting_100_wins() {
    let mut g = G::from_state(&table2([10, 95], 1, 30, 2));
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![10, 125]);
    let want = vec![
        standing(B, 125, 1, MatchResult::Win),
        standing(A, 10, 2, MatchResult::Loss),
    ];
    let out = g.outcome();
    assert_eq!(out.turn, None);
    assert_eq!(out.standings.as_ref(), Some(&want));
    assert_eq!(
        out.events,
        vec![
            banked(B, 30, 125, BankedReason::Bank),
            Event::GameOver {
                reason: EndReason::Won,
                standings: want,
            },
        ]
    );
    let t = g.table();
    assert_eq!(
        t.status,
        Status::Finished {
            reason: EndReason::Won,
            winner: Some(1),
            forfeited: None
        }
    );
    let view = g.view();
    assert_eq!(view["status"], "finished");
    assert_eq!(view["winner"], B);
    assert_eq!(view["draw"], false);
    assert_eq!(view["turn"], serde_json::Value::Null);
}

#[test]
fn bank_below_100_does_not_win() {
    let mut g = G::from_state(&table2([80, 0], 0, 19, 1));
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![99, 0]);
    assert_eq!(g.table().status, Status::Playing);
    assert_eq!(g.table().on_turn(), B);
}

#[test]
fn a_roll_alone_never_wins() {
    // Banked plus turn score past 100, and a turn score past 100 on its own.
    let mut g = G::from_state(&table2([95, 0], 0, 0, 1));
    g.roll_expect(6, 5, 11, 1, A);
    let mut g = G::from_state(&table2([0, 0], 0, 98, 2));
    g.roll_expect(6, 5, 120, 2, A);
    g.roll_expect(1, 1, 140, 2, A);
    assert_eq!(g.scores(), vec![0, 0]);
    // Only the bank wins.
    g.bank().unwrap();
    assert_eq!(g.won_by().as_deref(), Some(A));
    assert_eq!(g.scores(), vec![140, 0]);
}

#[test]
fn nothing_to_bank_at_turn_score_zero() {
    let mut g = new_game();
    g.refused(A, Action::Bank, ModeError::NothingToBank);
    // Also right after the turn passed.
    g.roll(3, 4).unwrap();
    g.roll(1, 3).unwrap();
    g.refused(B, Action::Bank, ModeError::NothingToBank);
}

// ---------------------------------------------------------------------------
// Worked sequence
// ---------------------------------------------------------------------------

/// Spec: 3-4 → 7; 2-2 → 11 (×2 on); 3-5 → 27; 1-1 → 47; 4-5 → 65; banking at
/// 40 banked → 105, wins.
#[test]
fn worked_sequence() {
    let mut g = G::from_state(&table2([40, 30], 0, 0, 1));
    g.roll_expect(3, 4, 7, 1, A);
    g.roll_expect(2, 2, 11, 2, A);
    g.roll_expect(3, 5, 27, 2, A);
    g.roll_expect(1, 1, 47, 2, A);
    g.roll_expect(4, 5, 65, 2, A);
    assert_eq!(g.scores(), vec![40, 30]);
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![105, 30]);
    assert_eq!(g.won_by().as_deref(), Some(A));
    assert_eq!(
        g.events(),
        vec![
            banked(A, 65, 105, BankedReason::Bank),
            Event::GameOver {
                reason: EndReason::Won,
                standings: vec![
                    standing(A, 105, 1, MatchResult::Win),
                    standing(B, 30, 2, MatchResult::Loss),
                ],
            },
        ]
    );
}

/// The same sequence reached by play from the start: alice banks 40 first.
#[test]
fn worked_sequence_from_the_start() {
    let mut g = new_game();
    g.roll_expect(5, 5, 10, 2, A);
    g.roll_expect(5, 5, 20, 2, A);
    g.roll_expect(6, 4, 40, 2, A);
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![40, 0]);
    g.roll_expect(2, 6, 8, 1, B);
    g.roll_expect(3, 1, 0, 1, A); // bob's single one
    for (d, ts, m) in [
        ((3, 4), 7, 1),
        ((2, 2), 11, 2),
        ((3, 5), 27, 2),
        ((1, 1), 47, 2),
        ((4, 5), 65, 2),
    ] {
        g.roll_expect(d.0, d.1, ts, m, A);
    }
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![105, 0]);
    assert_eq!(g.won_by().as_deref(), Some(A));
}

// ---------------------------------------------------------------------------
// Timeout and forfeit
// ---------------------------------------------------------------------------

#[test]
fn timeout_is_like_a_single_one() {
    let mut g = G::from_state(&table2([33, 44], 0, 21, 2));
    g.timeout().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![33, 44]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
    assert_eq!(
        g.events(),
        vec![
            Event::TimedOut { player: A.into() },
            busted(A, 21, BustReason::Timeout),
            passed(A, B),
        ]
    );
    // At turn score 0 too.
    g.timeout().unwrap();
    assert_eq!(g.table().on_turn(), A);
    assert_eq!(g.scores(), vec![33, 44]);
}

#[test]
fn timeout_only_for_the_player_on_turn() {
    let mut g = new_game();
    g.refused(B, Action::Timeout, ModeError::NotYourTurn(A.into()));
}

#[test]
fn forfeit_on_turn_makes_the_other_player_win() {
    let mut g = G::from_state(&table2([90, 5], 0, 30, 2));
    g.act(A, Action::Forfeit).unwrap();
    let want = vec![
        standing(B, 5, 1, MatchResult::Win),
        standing(A, 90, 2, MatchResult::Loss),
    ];
    let out = g.outcome();
    assert_eq!(out.turn, None);
    assert_eq!(out.standings.as_ref(), Some(&want));
    assert_eq!(
        out.events,
        vec![
            Event::Forfeited { player: A.into() },
            Event::GameOver {
                reason: EndReason::Forfeit,
                standings: want,
            },
        ]
    );
    assert_eq!(g.won_by().as_deref(), Some(B));
    assert_eq!(g.table().turn_score, 0);
}

#[test]
fn forfeit_is_allowed_when_not_on_turn() {
    let mut g = new_game();
    g.roll(3, 4).unwrap();
    g.act(B, Action::Forfeit).unwrap();
    assert_eq!(g.won_by().as_deref(), Some(A));
    assert_eq!(
        g.table().status,
        Status::Finished {
            reason: EndReason::Forfeit,
            winner: Some(0),
            forfeited: Some(1)
        }
    );
    assert_eq!(g.view()["end_reason"], "forfeit");
}

// ---------------------------------------------------------------------------
// Errors leave the state unchanged
// ---------------------------------------------------------------------------

#[test]
fn refused_actions_change_nothing_and_play_goes_on() {
    let mut g = new_game();
    g.roll(2, 2).unwrap();
    let roll = Action::Roll { dice: vec![3, 4] };
    g.refused(B, roll, ModeError::NotYourTurn(A.into()));
    g.refused(B, Action::Bank, ModeError::NotYourTurn(A.into()));
    g.refuses_invalid_actions("double-down");

    // Play continues exactly as if nothing had been tried.
    let mut clean = new_game();
    clean.roll(2, 2).unwrap();
    assert_eq!(g.state, clean.state);
    g.roll(3, 4).unwrap();
    clean.roll(3, 4).unwrap();
    assert_eq!(g.state, clean.state);
    assert_eq!(g.table().turn_score, 18);
}

#[test]
fn a_finished_game_refuses_everything() {
    let mut g = G::from_state(&table2([95, 0], 0, 10, 1));
    g.bank().unwrap();
    g.refuses_everything();
}

#[test]
fn corrupt_state_is_an_error_not_a_panic() {
    testing::assert_corrupt_state_refused::<M>(&table2([12, 34], 1, 5, 2), |t| t);
}

/// The bot is the SDK's default: roll, and bank from a turn score of 20.
#[test]
fn the_bot_banks_from_a_turn_score_of_20() {
    testing::assert_default_bot::<M>(|t| t);
}

// ---------------------------------------------------------------------------
// Dice
// ---------------------------------------------------------------------------

/// The fill byte of this file's entropy series.
const FILL: u8 = 0x5a;

#[test]
fn throw_dice_is_fair_doubles_one_in_six() {
    let g = new_game();
    // Doubles: mean 33,333, sigma 167; faces: mean 66,667, sigma 167.
    ThrowCounts::throw::<M>(&g.state, FILL, 200_000).assert_fair(32_500..=34_170, 65_830..=67_500);
}

#[test]
fn throw_dice_is_deterministic_and_needs_32_bytes() {
    let g = new_game();
    testing::assert_throw_is_deterministic::<M>(&g.state, &testing::indexed_entropy(FILL, 7));
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// Classic as the spec states it, written without looking at the mode's code.
struct Model(TwoSeats);

impl testing::Model<M> for Model {
    fn new(first: usize) -> Self {
        Model(TwoSeats::new(0, first))
    }

    fn seats(&self) -> &TwoSeats {
        &self.0
    }

    fn seats_mut(&mut self) -> &mut TwoSeats {
        &mut self.0
    }

    fn roll(&mut self, a: u8, b: u8) {
        let s = &mut self.0;
        let sum = i32::from(a + b);
        match (a, b) {
            (1, 1) => {
                s.turn_score += 20;
                s.multiplier = 2;
            }
            (6, 6) => {
                s.banked[s.turn] = 0;
                s.pass();
            }
            _ if a == b => {
                s.turn_score += sum;
                s.multiplier = 2;
            }
            _ if a == 1 || b == 1 => s.pass(),
            _ => s.turn_score += sum * s.multiplier as i32,
        }
    }

    fn bank(&mut self) -> Result<(), ModeError> {
        let s = &mut self.0;
        if s.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        s.banked[s.turn] += s.turn_score;
        if s.banked[s.turn] >= 100 {
            s.win(s.turn);
        } else {
            s.pass();
        }
        Ok(())
    }

    fn timeout(&mut self) {
        self.0.pass();
    }
}

/// Classic scores are never negative.
fn mode_invariants(t: &Table) -> Result<(), String> {
    ensure(t.seats.iter().all(|s| s.banked >= 0), || format!("{t:?}"))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_play_keeps_the_invariants_and_follows_the_spec(
        start_entropy in any::<[u8; 32]>(),
        steps in prop::collection::vec(step(), 1..300),
    ) {
        testing::play::<M, Model>(&start_entropy, &steps, mode_invariants)
            .map_err(TestCaseError::fail)?;
    }

    /// With a sensible policy (roll until the turn score reaches a threshold,
    /// then bank) and dice from the mode's own throw, every game is won within
    /// a bounded number of actions.
    #[test]
    fn games_end(
        seed in any::<[u8; 32]>(),
        first_b in any::<bool>(),
        threshold in 5i32..=60,
    ) {
        let mut g = if first_b { G::start(&[B, A]) } else { G::start(&[A, B]) };
        g.play_out(&seed, |t| t.turn_score >= threshold, mode_invariants)
            .map_err(TestCaseError::fail)?;
        let t = g.table();
        let Status::Finished { reason, winner: Some(w), forfeited: None } = t.status else {
            return Err(TestCaseError::fail(format!("{:?}", t.status)));
        };
        prop_assert_eq!(reason, EndReason::Won);
        prop_assert!(t.seats[w].banked >= 100);
        prop_assert!(t.seats[1 - w].banked < 100);
    }

    /// Bots on every seat (the mode's own choice, here the SDK's default)
    /// play only legal moves and finish every game.
    #[test]
    fn bots_finish_their_games(seed in any::<[u8; 32]>(), first_b in any::<bool>()) {
        let mut g = if first_b { G::start(&[B, A]) } else { G::start(&[A, B]) };
        g.play_out_as_bots(&seed, mode_invariants).map_err(TestCaseError::fail)?;
        prop_assert!(g.table().is_over());
    }
}
