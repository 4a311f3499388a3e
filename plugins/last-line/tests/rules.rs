//! Last Line's rules, pinned row by row against `spec/game-modes.md`, plus
//! property tests over random games.
//!
//! Everything goes through the public driver (`rules::start`, `rules::apply`,
//! `rules::throw_dice`) via `testing::Game`, the code path the component runs.

// Test code: a failed unwrap is a failed test (clippy.toml only exempts
// `#[test]` functions, not the helpers of an integration test).
#![allow(clippy::unwrap_used)]

use dashdice_mode_last_line::LastLine;
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

type M = LastLine;
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
    assert_eq!(info.id, "last-line");
    assert_eq!((info.min_players, info.max_players), (2, 2));
    assert_eq!(info.turn_time_limit_ms, 30_000);
    let names: Vec<&str> = info.actions.iter().map(|a| a.name.as_str()).collect();
    for name in ["roll", "bank", "forfeit", "timeout"] {
        assert!(names.contains(&name), "{names:?}");
    }
}

#[test]
fn start_both_players_at_50() {
    let g = new_game();
    let t = g.table();
    assert_eq!(g.scores(), vec![50, 50]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (0, 0, 1));
    assert_eq!(t.status, Status::Playing);
    let out = g.outcome();
    assert_eq!(out.turn.as_deref(), Some(A));
    assert_eq!(out.standings, None);
    let view = g.view();
    assert_eq!(view["mode"], "last-line");
    assert_eq!(view["players"][0]["score"], 50);
    assert_eq!(view["players"][1]["score"], 50);
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
// Dice: two fair dice
// ---------------------------------------------------------------------------

/// The fill byte of this file's entropy series.
const FILL: u8 = 0x3c;

#[test]
fn throw_dice_is_fair_doubles_one_in_six() {
    let g = new_game();
    // About 5 sigma. Doubles: mean 20,000, sigma 129; faces: mean 40,000, sigma 129.
    ThrowCounts::throw::<M>(&g.state, FILL, 120_000).assert_fair(19_355..=20_645, 39_355..=40_645);
    testing::assert_throw_is_deterministic::<M>(&g.state, &testing::indexed_entropy(FILL, 7));
}

// ---------------------------------------------------------------------------
// The table, row by row
// ---------------------------------------------------------------------------

#[test]
fn normal_roll_adds_the_sum_doubled_while_the_multiplier_is_on() {
    let mut g = new_game();
    g.roll_expect(3, 4, 7, 1, A);
    assert_eq!(
        g.events(),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 7, 7)]
    );
    g.roll_expect(6, 5, 18, 1, A);
    let mut g = G::from_state(&table2([50, 50], 0, 10, 2));
    g.roll_expect(3, 4, 24, 2, A);
    assert_eq!(g.scores(), vec![50, 50]);
}

#[test]
fn single_one_loses_the_turn_score_and_ends_the_turn() {
    for (d1, d2) in [(1, 5), (5, 1), (1, 2)] {
        let mut g = G::from_state(&table2([30, 70], 0, 17, 2));
        g.roll(d1, d2).unwrap();
        let t = g.table();
        assert_eq!(g.scores(), vec![30, 70]);
        assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
        assert_eq!(
            g.events(),
            vec![
                rolled(A, d1, d2, RollKind::SingleOne),
                busted(A, 17, BustReason::SingleOne),
                passed(A, B),
            ]
        );
    }
}

#[test]
fn snake_eyes_adds_20_unmultiplied_and_switches_the_multiplier_on() {
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
    g.roll_expect(1, 1, 40, 2, A); // +20 again, not +40
    assert_eq!(g.scores(), vec![50, 50]);
}

#[test]
fn doubles_add_twice_their_sum_even_the_first() {
    for n in 2..=6u8 {
        let mut g = new_game();
        let sum = 2 * i32::from(n);
        g.roll_expect(n, n, 2 * sum, 2, A);
        assert_eq!(
            g.events(),
            vec![
                rolled(A, n, n, RollKind::Double),
                turn_score(A, 2 * sum, 2 * sum),
                multiplier(A, 2),
            ]
        );
        // With the multiplier already on: still ×2, not ×4.
        g.roll_expect(n, n, 4 * sum, 2, A);
        assert_eq!(g.scores(), vec![50, 50], "6-6 does not reset");
    }
}

#[test]
fn multiplier_does_not_escalate() {
    let mut g = new_game();
    g.roll_expect(2, 2, 8, 2, A);
    g.roll_expect(3, 3, 20, 2, A);
    g.roll_expect(1, 1, 40, 2, A);
    assert!(
        !g.events()
            .iter()
            .any(|e| matches!(e, Event::MultiplierChanged { .. }))
    );
    g.roll_expect(2, 3, 50, 2, A);
}

#[test]
fn multiplier_is_cleared_when_the_turn_passes() {
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
        g.roll_expect(2, 2, 8, 2, A);
        end(&mut g);
        let t = g.table();
        assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
        g.roll_expect(3, 4, 7, 1, B);
    }
}

#[test]
fn bank_attacks_moving_the_turn_score_from_the_opponent() {
    let mut g = G::from_state(&table2([40, 60], 0, 25, 2));
    g.bank().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![65, 35]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
    assert_eq!(t.status, Status::Playing);
    assert_eq!(
        g.events(),
        vec![
            banked(A, 25, 65, BankedReason::Bank),
            banked(B, -25, 35, BankedReason::Attacked),
            passed(A, B),
        ]
    );
    // Bob attacks back.
    g.roll(4, 5).unwrap();
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![56, 44]);
    assert_eq!(g.table().on_turn(), A);
}

#[test]
fn bank_moves_at_most_what_the_opponent_has_and_wins_at_zero() {
    for ts in [30, 31, 200] {
        let mut g = G::from_state(&table2([70, 30], 0, ts, 2));
        g.bank().unwrap();
        assert_eq!(g.scores(), vec![100, 0]);
        assert_eq!(g.won_by().as_deref(), Some(A));
        let standings = vec![
            standing(A, 100, 1, MatchResult::Win),
            standing(B, 0, 2, MatchResult::Loss),
        ];
        let out = g.outcome();
        assert_eq!(out.turn, None);
        assert_eq!(out.standings.as_ref(), Some(&standings));
        assert_eq!(
            out.events,
            vec![
                banked(A, 30, 100, BankedReason::Bank),
                banked(B, -30, 0, BankedReason::Attacked),
                Event::GameOver {
                    reason: EndReason::Won,
                    standings,
                },
            ]
        );
    }
    // One short of everything: the game goes on.
    let mut g = G::from_state(&table2([70, 30], 0, 29, 2));
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![99, 1]);
    assert_eq!(g.table().status, Status::Playing);
    assert_eq!(g.table().on_turn(), B);
}

#[test]
fn a_roll_never_wins() {
    let mut g = G::from_state(&table2([90, 10], 0, 0, 1));
    g.roll_expect(6, 5, 11, 1, A);
    g.roll_expect(6, 6, 35, 2, A);
    g.roll_expect(1, 1, 55, 2, A);
    assert_eq!(g.scores(), vec![90, 10]);
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

/// Spec (50/50): 3-4 → 7; 2-2 → 15; 3-5 → 31; 1-1 → 51; 6-6 → 75; bank →
/// 100/0, wins.
#[test]
fn worked_sequence() {
    let mut g = new_game();
    g.roll_expect(3, 4, 7, 1, A);
    g.roll_expect(2, 2, 15, 2, A);
    g.roll_expect(3, 5, 31, 2, A);
    g.roll_expect(1, 1, 51, 2, A);
    g.roll_expect(6, 6, 75, 2, A);
    assert_eq!(g.scores(), vec![50, 50]);
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![100, 0]);
    assert_eq!(g.won_by().as_deref(), Some(A));
    assert_eq!(
        g.events(),
        vec![
            banked(A, 50, 100, BankedReason::Bank),
            banked(B, -50, 0, BankedReason::Attacked),
            Event::GameOver {
                reason: EndReason::Won,
                standings: vec![
                    standing(A, 100, 1, MatchResult::Win),
                    standing(B, 0, 2, MatchResult::Loss),
                ],
            },
        ]
    );
    let view = g.view();
    assert_eq!(view["status"], "finished");
    assert_eq!(view["winner"], A);
    assert_eq!(view["players"][0]["score"], 100);
    assert_eq!(view["players"][1]["score"], 0);
}

/// Spec: fresh turn: 1-1 then 3-4 → 34.
#[test]
fn worked_fresh_turn() {
    let mut g = new_game();
    g.roll_expect(1, 1, 20, 2, A);
    g.roll_expect(3, 4, 34, 2, A);
    // Also as bob's fresh turn after alice banked with the multiplier on.
    let mut g = new_game();
    g.roll_expect(2, 2, 8, 2, A);
    g.bank().unwrap();
    assert_eq!(g.scores(), vec![58, 42]);
    g.roll_expect(1, 1, 20, 2, B);
    g.roll_expect(3, 4, 34, 2, B);
}

// ---------------------------------------------------------------------------
// Timeout and forfeit
// ---------------------------------------------------------------------------

#[test]
fn timeout_is_like_a_single_one() {
    let mut g = G::from_state(&table2([33, 67], 0, 21, 2));
    g.timeout().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![33, 67]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
    assert_eq!(
        g.events(),
        vec![
            Event::TimedOut { player: A.into() },
            busted(A, 21, BustReason::Timeout),
            passed(A, B),
        ]
    );
    g.refused(A, Action::Timeout, ModeError::NotYourTurn(B.into()));
}

#[test]
fn forfeit_makes_the_other_player_win() {
    let mut g = G::from_state(&table2([95, 5], 0, 30, 2));
    g.act(A, Action::Forfeit).unwrap();
    let standings = vec![
        standing(B, 5, 1, MatchResult::Win),
        standing(A, 95, 2, MatchResult::Loss),
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
    g.refuses_invalid_actions("charge");

    let mut clean = new_game();
    clean.roll(2, 2).unwrap();
    assert_eq!(g.state, clean.state);
    g.roll(3, 4).unwrap();
    clean.roll(3, 4).unwrap();
    assert_eq!(g.state, clean.state);
    assert_eq!(g.table().turn_score, 22);
}

#[test]
fn a_finished_game_refuses_everything() {
    let mut g = G::from_state(&table2([90, 10], 0, 10, 1));
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
// Properties
// ---------------------------------------------------------------------------

/// Last Line as the spec states it, written without looking at the mode's code.
struct Model(TwoSeats);

impl testing::Model<M> for Model {
    fn new(first: usize) -> Self {
        Model(TwoSeats::new(50, first))
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
            _ if a == b => {
                s.turn_score += 2 * sum;
                s.multiplier = 2;
            }
            _ if a == 1 || b == 1 => s.pass(),
            _ => s.turn_score += sum * s.multiplier as i32,
        }
    }

    fn bank(&mut self) -> Result<(), ModeError> {
        let s = &mut self.0;
        let (seat, other) = (s.turn, 1 - s.turn);
        if s.turn_score <= 0 {
            return Err(ModeError::NothingToBank);
        }
        let moved = s.turn_score.min(s.banked[other]);
        s.banked[seat] += moved;
        s.banked[other] -= moved;
        if s.banked[other] <= 0 {
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

/// Last Line's two scores always sum to 100 and are never negative; only a
/// loser stands at 0.
fn mode_invariants(t: &Table) -> Result<(), String> {
    let sum: i32 = t.seats.iter().map(|s| s.banked).sum();
    ensure(sum == 100, || format!("scores sum to {sum}: {t:?}"))?;
    ensure(t.seats.iter().all(|s| s.banked >= 0), || format!("{t:?}"))?;
    let over = t.is_over();
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
    /// then bank) and dice from the mode's own throw, every game is won
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
        prop_assert_eq!(t.seats[w].banked, 100);
        prop_assert_eq!(t.seats[1 - w].banked, 0);
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
