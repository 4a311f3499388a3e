//! Zero Hour's rules, pinned row by row against `spec/game-modes.md`, plus
//! property tests over random games.
//!
//! Everything goes through the public driver (`rules::start`, `rules::apply`,
//! `rules::throw_dice`) via `testing::Game`, the code path the component runs.

// Test code: a failed unwrap is a failed test (clippy.toml only exempts
// `#[test]` functions, not the helpers of an integration test).
#![allow(clippy::unwrap_used)]

use dashdice_mode_sdk::testing::events::{banked, busted, multiplier, passed, rolled, turn_score};
use dashdice_mode_sdk::testing::step;
use dashdice_mode_sdk::testing::{
    self, ALICE as A, BOB as B, Game, ThrowCounts, TwoSeats, config, ensure, standing, table2,
};
use dashdice_mode_sdk::{
    Action, BankedReason, BustReason, EndReason, Event, MatchResult, ModeError, RollKind, Rules,
    Status, Table, rules,
};
use dashdice_mode_zero_hour::ZeroHour;
use proptest::prelude::*;

type M = ZeroHour;
type G = Game<M>;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn new_game() -> G {
    G::start(&[A, B])
}

/// Rolls and checks the turn score, the level, both banked scores and that the
/// roller is still on turn.
#[track_caller]
fn roll_level(g: &mut G, d1: u8, d2: u8, turn_score: i32, level: u32, scores: [i32; 2]) {
    let on_turn = g.table().on_turn().to_owned();
    g.roll_expect(d1, d2, turn_score, level, &on_turn);
    assert_eq!(g.scores(), scores.to_vec(), "scores after {d1}-{d2}");
    assert_eq!(g.view()["level"], level);
}

// ---------------------------------------------------------------------------
// Mode info and start
// ---------------------------------------------------------------------------

#[test]
fn info_two_players_and_a_45_second_timer() {
    let info = M::info();
    assert_eq!(info.id, "zero-hour");
    assert_eq!((info.min_players, info.max_players), (2, 2));
    assert_eq!(info.turn_time_limit_ms, 45_000);
    let names: Vec<&str> = info.actions.iter().map(|a| a.name.as_str()).collect();
    for name in ["roll", "bank", "forfeit", "timeout"] {
        assert!(names.contains(&name), "{names:?}");
    }
}

#[test]
fn start_both_players_at_100() {
    let g = new_game();
    let t = g.table();
    assert_eq!(g.scores(), vec![100, 100]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (0, 0, 1));
    assert_eq!(t.status, Status::Playing);
    let out = g.outcome();
    assert_eq!(out.turn.as_deref(), Some(A));
    assert_eq!(out.standings, None);
    let view = g.view();
    assert_eq!(view["mode"], "zero-hour");
    assert_eq!(view["level"], 1);
    assert_eq!(view["players"][0]["score"], 100);
    assert_eq!(view["players"][1]["score"], 100);
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
fn start_rejects_invalid_configs() {
    for options in ["", "{}"] {
        assert!(rules::start::<M>(&config(&[A, B], None, options), &[0; 32]).is_ok());
    }
    testing::assert_rejects_invalid_configs::<M>(&[r#"{"start": 50}"#]);
    let err = rules::start::<M>(&config(&[A, B], None, ""), &[0; 16]).unwrap_err();
    assert!(matches!(err, ModeError::InvalidEntropy(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// Dice: loaded, P(double) = 3/8, P(1-1) = P(6-6) = 1/16
// ---------------------------------------------------------------------------

/// The fill byte of this file's entropy series.
const FILL: u8 = 0xa5;

#[test]
fn throw_dice_is_loaded_towards_doubles() {
    let g = new_game();
    let counts = ThrowCounts::throw::<M>(&g.state, FILL, 200_000);
    let (pairs, doubles, single_ones) = (counts.pairs, counts.doubles(), counts.single_ones());
    // Tolerances are about 5 standard deviations of a binomial count.
    // Doubles: p = 3/8, mean 75,000, sigma 217.
    assert!((73_900..=76_100).contains(&doubles), "doubles {doubles}");
    // Each double, 1-1 and 6-6 included: p = 1/16, mean 12,500, sigma 108.
    for (i, row) in pairs.iter().enumerate() {
        assert!(
            (11_950..=13_050).contains(&row[i]),
            "{}-{}: {}",
            i + 1,
            i + 1,
            row[i]
        );
    }
    // Each ordered non-double: p = 3/4 × 1/36 = 1/48, mean 4,167, sigma 64.
    for (i, row) in pairs.iter().enumerate() {
        for (j, &n) in row.iter().enumerate() {
            if i != j {
                assert!((3_845..=4_490).contains(&n), "{}-{}: {n}", i + 1, j + 1);
            }
        }
    }
    // A single one: p = 3/4 × 10/36 = 5/24, mean 41,667, sigma 182.
    assert!(
        (40_750..=42_580).contains(&single_ones),
        "single ones {single_ones}"
    );
}

#[test]
fn throw_dice_is_deterministic_and_needs_32_bytes() {
    let g = new_game();
    testing::assert_throw_is_deterministic::<M>(&g.state, &testing::indexed_entropy(FILL, 7));
}

// ---------------------------------------------------------------------------
// The table, row by row
// ---------------------------------------------------------------------------

#[test]
fn normal_roll_adds_the_sum_times_the_level() {
    let mut g = new_game();
    roll_level(&mut g, 3, 4, 7, 1, [100, 100]);
    assert_eq!(
        g.events(),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 7, 7)]
    );
    // Level 3: ×3.
    let mut g = G::from_state(&table2([100, 100], 0, 10, 3));
    roll_level(&mut g, 2, 3, 25, 3, [100, 100]);
    assert_eq!(
        g.events(),
        vec![rolled(A, 2, 3, RollKind::Normal), turn_score(A, 15, 25)]
    );
}

#[test]
fn single_one_loses_the_turn_score_and_penalties_stay() {
    for (d1, d2) in [(1, 5), (5, 1), (1, 6)] {
        let mut g = new_game();
        roll_level(&mut g, 2, 2, 4, 2, [100, 104]);
        roll_level(&mut g, 3, 3, 10, 3, [100, 110]);
        g.roll(d1, d2).unwrap();
        let t = g.table();
        assert_eq!(g.scores(), vec![100, 110]);
        assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
        assert_eq!(
            g.events(),
            vec![
                rolled(A, d1, d2, RollKind::SingleOne),
                busted(A, 10, BustReason::SingleOne),
                passed(A, B),
            ]
        );
    }
}

#[test]
fn snake_eyes_adds_20_and_gives_the_opponent_20() {
    let mut g = new_game();
    roll_level(&mut g, 1, 1, 20, 2, [100, 120]);
    assert_eq!(
        g.events(),
        vec![
            rolled(A, 1, 1, RollKind::SnakeEyes),
            turn_score(A, 20, 20),
            banked(B, 20, 120, BankedReason::Penalty),
            multiplier(A, 2),
        ]
    );
}

#[test]
fn every_other_double_adds_its_sum_and_gives_it_to_the_opponent() {
    for n in 2..=6u8 {
        let mut g = new_game();
        let sum = 2 * i32::from(n);
        roll_level(&mut g, n, n, sum, 2, [100, 100 + sum]);
        assert_eq!(
            g.events(),
            vec![
                rolled(A, n, n, RollKind::Double),
                turn_score(A, sum, sum),
                banked(B, sum, 100 + sum, BankedReason::Penalty),
                multiplier(A, 2),
            ]
        );
    }
}

#[test]
fn six_six_does_not_reset() {
    let mut g = G::from_state(&table2([60, 70], 0, 10, 1));
    roll_level(&mut g, 6, 6, 22, 2, [60, 82]);
    assert_eq!(g.table().on_turn(), A);
    // Penalties may take the opponent past 100.
    roll_level(&mut g, 6, 6, 34, 3, [60, 94]);
    roll_level(&mut g, 6, 6, 46, 4, [60, 106]);
}

#[test]
fn doubles_and_penalties_are_never_multiplied() {
    let mut g = G::from_state(&table2([100, 100], 1, 10, 3));
    roll_level(&mut g, 4, 4, 18, 4, [108, 100]);
    roll_level(&mut g, 1, 1, 38, 5, [128, 100]);
    // The next normal roll uses level 5.
    roll_level(&mut g, 2, 3, 63, 5, [128, 100]);
}

#[test]
fn level_rises_with_every_double() {
    let mut g = new_game();
    roll_level(&mut g, 2, 2, 4, 2, [100, 104]);
    roll_level(&mut g, 3, 3, 10, 3, [100, 110]);
    roll_level(&mut g, 2, 3, 25, 3, [100, 110]);
    roll_level(&mut g, 4, 4, 33, 4, [100, 118]);
    roll_level(&mut g, 2, 3, 53, 4, [100, 118]);
}

#[test]
fn level_is_cleared_when_the_turn_passes() {
    let enders: [fn(&mut G); 3] = [
        |g| {
            g.bank().unwrap();
        },
        |g| {
            g.roll(1, 4).unwrap();
        },
        |g| {
            g.timeout().unwrap();
        },
    ];
    for end in enders {
        let mut g = new_game();
        roll_level(&mut g, 3, 3, 6, 2, [100, 106]);
        roll_level(&mut g, 2, 2, 10, 3, [100, 110]);
        end(&mut g);
        let t = g.table();
        assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
        assert_eq!(g.view()["level"], 1);
        g.roll_expect(3, 4, 7, 1, B); // ×1
    }
}

#[test]
fn a_roll_wins_when_the_turn_score_covers_the_banked_score() {
    // Exactly reaching it wins.
    let mut g = G::from_state(&table2([22, 100], 0, 15, 1));
    g.roll(3, 4).unwrap();
    assert_eq!(g.won_by().as_deref(), Some(A));
    assert_eq!(g.scores(), vec![0, 100]);
    // One short does not.
    let mut g = G::from_state(&table2([23, 100], 0, 15, 1));
    g.roll_expect(3, 4, 22, 1, A);
    assert_eq!(g.scores(), vec![23, 100]);
    // Overshooting is fine: no exact-zero rule, no overshoot penalty.
    let mut g = G::from_state(&table2([20, 100], 0, 15, 2));
    g.roll(6, 5).unwrap();
    assert_eq!(g.won_by().as_deref(), Some(A));
    assert_eq!(g.scores(), vec![0, 100]);
    let mut g = G::from_state(&table2([100, 20], 1, 15, 2));
    g.roll(6, 5).unwrap();
    assert_eq!(g.won_by().as_deref(), Some(B));
    assert_eq!(g.scores(), vec![100, 0]);
}

#[test]
fn a_winning_double_still_pays_its_penalty() {
    let mut g = G::from_state(&table2([10, 100], 0, 0, 1));
    g.roll(5, 5).unwrap();
    assert_eq!(g.scores(), vec![0, 110]);
    let standings = vec![
        standing(A, 0, 1, MatchResult::Win),
        standing(B, 110, 2, MatchResult::Loss),
    ];
    assert_eq!(
        g.events(),
        vec![
            rolled(A, 5, 5, RollKind::Double),
            turn_score(A, 10, 10),
            banked(B, 10, 110, BankedReason::Penalty),
            multiplier(A, 2),
            banked(A, -10, 0, BankedReason::Bank),
            Event::GameOver {
                reason: EndReason::Won,
                standings: standings.clone(),
            },
        ]
    );
    assert_eq!(g.outcome().standings, Some(standings));
}

#[test]
fn a_single_one_never_wins() {
    let mut g = G::from_state(&table2([5, 100], 0, 4, 2));
    g.roll(1, 3).unwrap();
    assert_eq!(g.table().status, Status::Playing);
    assert_eq!(g.scores(), vec![5, 100]);
    assert_eq!(g.table().on_turn(), B);
}

#[test]
fn bank_subtracts_the_turn_score_and_ends_the_turn() {
    let mut g = G::from_state(&table2([60, 130], 0, 25, 3));
    g.bank().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![35, 130]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
    assert_eq!(t.status, Status::Playing);
    assert_eq!(
        g.events(),
        vec![banked(A, -25, 35, BankedReason::Bank), passed(A, B)]
    );
}

#[test]
fn a_bank_to_zero_or_below_wins_clamped_to_zero() {
    // Play never banks a turn score that covers the banked score (the roll
    // would have won), so build the state directly.
    for (banked_before, ts) in [(10, 12), (12, 12), (1, 90)] {
        let mut g = G::from_state(&table2([banked_before, 100], 0, ts, 1));
        g.bank().unwrap();
        assert_eq!(g.scores(), vec![0, 100]);
        assert_eq!(g.won_by().as_deref(), Some(A));
        assert_eq!(
            g.events(),
            vec![
                banked(A, -banked_before, 0, BankedReason::Bank),
                Event::GameOver {
                    reason: EndReason::Won,
                    standings: vec![
                        standing(A, 0, 1, MatchResult::Win),
                        standing(B, 100, 2, MatchResult::Loss),
                    ],
                },
            ]
        );
    }
}

#[test]
fn nothing_to_bank_at_turn_score_zero() {
    let mut g = new_game();
    g.refused(A, Action::Bank, ModeError::NothingToBank);
    g.roll(2, 2).unwrap();
    g.roll(1, 3).unwrap();
    g.refused(B, Action::Bank, ModeError::NothingToBank);
}

// ---------------------------------------------------------------------------
// Worked sequences
// ---------------------------------------------------------------------------

/// Spec (roller 100 / opponent 100): 3-4 → 7; 2-2 → 11, opponent 104, level 2;
/// 3-5 → 27; 5-5 → 37, opponent 114, level 3; 2-3 → 52; 1-1 → 72, opponent
/// 134, level 4; 2-3 → 92; bank → roller 8.
#[test]
fn worked_sequence() {
    let mut g = new_game();
    roll_level(&mut g, 3, 4, 7, 1, [100, 100]);
    roll_level(&mut g, 2, 2, 11, 2, [100, 104]);
    assert!(
        g.events()
            .contains(&banked(B, 4, 104, BankedReason::Penalty))
    );
    roll_level(&mut g, 3, 5, 27, 2, [100, 104]);
    roll_level(&mut g, 5, 5, 37, 3, [100, 114]);
    assert!(
        g.events()
            .contains(&banked(B, 10, 114, BankedReason::Penalty))
    );
    roll_level(&mut g, 2, 3, 52, 3, [100, 114]);
    roll_level(&mut g, 1, 1, 72, 4, [100, 134]);
    assert!(
        g.events()
            .contains(&banked(B, 20, 134, BankedReason::Penalty))
    );
    roll_level(&mut g, 2, 3, 92, 4, [100, 134]);
    g.bank().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![8, 134]);
    assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
    assert_eq!(t.status, Status::Playing);
    assert_eq!(
        g.events(),
        vec![banked(A, -92, 8, BankedReason::Bank), passed(A, B)]
    );
}

/// Spec: at banked 20 with turn score 15, 3-4 → immediate win (shown as 0).
#[test]
fn worked_immediate_win() {
    let mut g = G::from_state(&table2([20, 100], 0, 15, 1));
    g.roll(3, 4).unwrap();
    let standings = vec![
        standing(A, 0, 1, MatchResult::Win),
        standing(B, 100, 2, MatchResult::Loss),
    ];
    let out = g.outcome();
    assert_eq!(out.turn, None);
    assert_eq!(out.standings.as_ref(), Some(&standings));
    assert_eq!(
        out.events,
        vec![
            rolled(A, 3, 4, RollKind::Normal),
            turn_score(A, 7, 22),
            banked(A, -20, 0, BankedReason::Bank),
            Event::GameOver {
                reason: EndReason::Won,
                standings,
            },
        ]
    );
    assert_eq!(g.scores(), vec![0, 100]);
    let view = g.view();
    assert_eq!(view["status"], "finished");
    assert_eq!(view["winner"], A);
    assert_eq!(view["players"][0]["score"], 0);
    assert_eq!(view["turn"], serde_json::Value::Null);
}

// ---------------------------------------------------------------------------
// Timeout and forfeit
// ---------------------------------------------------------------------------

#[test]
fn timeout_is_like_a_single_one() {
    let mut g = new_game();
    roll_level(&mut g, 3, 3, 6, 2, [100, 106]);
    roll_level(&mut g, 3, 4, 20, 2, [100, 106]);
    g.timeout().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![100, 106], "the penalty stays");
    assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
    assert_eq!(
        g.events(),
        vec![
            Event::TimedOut { player: A.into() },
            busted(A, 20, BustReason::Timeout),
            passed(A, B),
        ]
    );
    g.refused(A, Action::Timeout, ModeError::NotYourTurn(B.into()));
}

#[test]
fn forfeit_makes_the_other_player_win_whatever_the_scores() {
    // Alice is much closer to zero, on turn, and forfeits.
    let mut g = G::from_state(&table2([5, 150], 0, 3, 2));
    g.act(A, Action::Forfeit).unwrap();
    let standings = vec![
        standing(B, 150, 1, MatchResult::Win),
        standing(A, 5, 2, MatchResult::Loss),
    ];
    let out = g.outcome();
    assert_eq!(out.turn, None);
    assert_eq!(out.standings.as_ref(), Some(&standings));
    assert_eq!(
        out.events,
        vec![
            Event::Forfeited { player: A.into() },
            Event::GameOver {
                reason: EndReason::Forfeit,
                standings,
            },
        ]
    );
    // Not on turn works too.
    let mut g = new_game();
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
}

// ---------------------------------------------------------------------------
// Errors leave the state unchanged
// ---------------------------------------------------------------------------

#[test]
fn refused_actions_change_nothing_and_play_goes_on() {
    let mut g = new_game();
    g.roll(2, 2).unwrap();
    g.refused(
        B,
        Action::Roll { dice: vec![3, 4] },
        ModeError::NotYourTurn(A.into()),
    );
    g.refused(B, Action::Bank, ModeError::NotYourTurn(A.into()));
    g.refused(B, Action::Timeout, ModeError::NotYourTurn(A.into()));
    g.refuses_invalid_actions("zero");

    let mut clean = new_game();
    clean.roll(2, 2).unwrap();
    assert_eq!(g.state, clean.state);
    g.roll(3, 4).unwrap();
    clean.roll(3, 4).unwrap();
    assert_eq!(g.state, clean.state);
    assert_eq!(g.table().turn_score, 18);
    assert_eq!(g.scores(), vec![100, 104]);
}

#[test]
fn a_finished_game_refuses_everything() {
    let mut g = G::from_state(&table2([20, 100], 0, 15, 1));
    g.roll(3, 4).unwrap();
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
// Properties
// ---------------------------------------------------------------------------

/// Zero Hour as the spec states it, written without looking at the mode's
/// code. The level is the table's multiplier.
struct Model(TwoSeats);

impl testing::Model<M> for Model {
    fn new(first: usize) -> Self {
        Model(TwoSeats::new(100, first))
    }

    fn seats(&self) -> &TwoSeats {
        &self.0
    }

    fn seats_mut(&mut self) -> &mut TwoSeats {
        &mut self.0
    }

    fn roll(&mut self, a: u8, b: u8) {
        let s = &mut self.0;
        let seat = s.turn;
        let sum = i32::from(a + b);
        let penalty = match (a, b) {
            (1, 1) => Some(20),
            _ if a == b => Some(sum),
            _ if a == 1 || b == 1 => {
                s.pass();
                return;
            }
            _ => None,
        };
        match penalty {
            Some(p) => {
                s.turn_score += p;
                s.banked[1 - seat] += p;
                s.multiplier += 1;
            }
            None => s.turn_score += sum * s.multiplier as i32,
        }
        if s.turn_score >= s.banked[seat] {
            s.banked[seat] = 0;
            s.win(seat);
        }
    }

    fn bank(&mut self) -> Result<(), ModeError> {
        let s = &mut self.0;
        let seat = s.turn;
        if s.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        s.banked[seat] -= s.turn_score;
        if s.banked[seat] <= 0 {
            s.banked[seat] = 0;
            s.win(seat);
        } else {
            s.pass();
        }
        Ok(())
    }

    fn timeout(&mut self) {
        self.0.pass();
    }
}

/// Zero Hour scores are never negative, and only a winner stands at 0.
fn mode_invariants(t: &Table) -> Result<(), String> {
    let over = t.is_over();
    ensure(t.seats.iter().all(|s| s.banked >= 0), || format!("{t:?}"))?;
    ensure(over || t.seats.iter().all(|s| s.banked > 0), || {
        format!("{t:?}")
    })
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
    /// then bank) and dice from the mode's own loaded throw, every game is won
    /// within a bounded number of actions.
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
        prop_assert_eq!(t.seats[w].banked, 0);
        prop_assert!(t.seats[1 - w].banked > 0);
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
