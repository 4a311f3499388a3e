//! True Grit's rules, pinned row by row against `spec/game-modes.md`, plus
//! property tests over random games.
//!
//! Everything goes through the public driver (`rules::start`, `rules::apply`,
//! `rules::throw_dice`) via `testing::Game`, the code path the component runs.

// Test code: a failed unwrap is a failed test (clippy.toml only exempts
// `#[test]` functions, not the helpers of an integration test).
#![allow(clippy::unwrap_used)]

use dashdice_mode_sdk::testing::events::{banked, multiplier, passed, rolled, turn_score};
use dashdice_mode_sdk::testing::step;
use dashdice_mode_sdk::testing::{
    self, ALICE as A, BOB as B, Game, ThrowCounts, TwoSeats, config, ensure, standing, table2,
};
use dashdice_mode_sdk::{
    Action, BankedReason, EndReason, Event, MatchResult, ModeError, RollKind, Rules, Status, Table,
    rules,
};
use dashdice_mode_true_grit::{State, TrueGrit};
use proptest::prelude::*;

type M = TrueGrit;
type G = Game<M>;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn new_game() -> G {
    G::start(&[A, B])
}

/// A playing True Grit state with `turns_done` turns completed.
fn state(
    banked: [i32; 2],
    turn: usize,
    turn_score: i32,
    multiplier: u32,
    turns_done: u32,
) -> State {
    State {
        table: table2(banked, turn, turn_score, multiplier),
        turns_done,
    }
}

fn kept(player: &str, total: i32) -> Event {
    banked(player, total, total, BankedReason::Kept)
}

fn turns_done(g: &G) -> u32 {
    g.decoded().turns_done
}

/// The game is over with this reason, winner (`None`: draw) and scores.
#[track_caller]
fn assert_over(g: &G, reason: EndReason, winner: Option<&str>, scores: [i32; 2]) {
    let t = g.table();
    let Status::Finished {
        reason: r,
        winner: w,
        forfeited: None,
    } = t.status
    else {
        panic!("not finished normally: {:?}", t.status);
    };
    assert_eq!(r, reason);
    assert_eq!(w.map(|w| t.seats[w].id.as_str()), winner);
    assert_eq!(g.scores(), scores.to_vec());
    assert_eq!((t.turn_score, t.multiplier), (0, 1));
    let out = g.outcome();
    assert_eq!(out.turn, None);
    let standings = out.standings.clone().unwrap();
    assert_eq!(
        out.events.last(),
        Some(&Event::GameOver {
            reason,
            standings: standings.clone(),
        })
    );
    match winner {
        Some(w) => {
            assert_eq!(standings[0].player, w);
            assert_eq!(
                (standings[0].rank, standings[0].result),
                (1, MatchResult::Win)
            );
            assert_eq!(
                (standings[1].rank, standings[1].result),
                (2, MatchResult::Loss)
            );
        }
        None => assert!(
            standings
                .iter()
                .all(|s| (s.rank, s.result) == (1, MatchResult::Draw)),
            "{standings:?}"
        ),
    }
}

// ---------------------------------------------------------------------------
// Mode info and start
// ---------------------------------------------------------------------------

#[test]
fn info_two_players_no_bank_and_a_60_second_timer() {
    let info = M::info();
    assert_eq!(info.id, "true-grit");
    assert_eq!((info.min_players, info.max_players), (2, 2));
    assert_eq!(info.turn_time_limit_ms, 60_000);
    let names: Vec<&str> = info.actions.iter().map(|a| a.name.as_str()).collect();
    for name in ["roll", "forfeit", "timeout"] {
        assert!(names.contains(&name), "{names:?}");
    }
    assert!(!names.contains(&"bank"), "{names:?}");
}

#[test]
fn start_both_players_at_zero_with_no_turn_done() {
    let g = new_game();
    let t = g.table();
    assert_eq!(g.scores(), vec![0, 0]);
    assert_eq!((t.turn, t.turn_score, t.multiplier), (0, 0, 1));
    assert_eq!(t.status, Status::Playing);
    assert_eq!(turns_done(&g), 0);
    let out = g.outcome();
    assert_eq!(out.turn.as_deref(), Some(A));
    assert_eq!(out.standings, None);
    let view = g.view();
    assert_eq!(view["mode"], "true-grit");
    assert_eq!(view["turns_done"], 0);
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
    testing::assert_rejects_invalid_configs::<M>(&[r#"{"turns": 3}"#]);
    let err = rules::start::<M>(&config(&[A, B], None, ""), &[0; 16]).unwrap_err();
    assert!(matches!(err, ModeError::InvalidEntropy(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// Dice: two fair dice
// ---------------------------------------------------------------------------

/// The fill byte of this file's entropy series.
const FILL: u8 = 0xc3;

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
fn normal_roll_adds_the_sum() {
    let mut g = new_game();
    g.roll_expect(3, 4, 7, 1, A);
    assert_eq!(
        g.events(),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 7, 7)]
    );
    g.roll_expect(6, 5, 18, 1, A);
    assert_eq!(g.scores(), vec![0, 0]);
}

#[test]
fn normal_roll_is_doubled_once_any_double_was_rolled() {
    let mut g = new_game();
    g.roll_expect(3, 3, 6, 2, A);
    g.roll_expect(3, 4, 20, 2, A);
    assert_eq!(
        g.events(),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 14, 20)]
    );
}

#[test]
fn snake_eyes_adds_20_unmultiplied_and_sets_the_multiplier() {
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
    g.roll_expect(1, 1, 40, 2, A);
}

#[test]
fn other_doubles_add_their_sum_unmultiplied_six_six_included() {
    for n in 2..=6u8 {
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
        // A second double is not multiplied either.
        g.roll_expect(n, n, 2 * sum, 2, A);
        assert_eq!(g.scores(), vec![0, 0]);
    }
}

#[test]
fn multiplier_does_not_stack() {
    let mut g = new_game();
    g.roll_expect(2, 2, 4, 2, A);
    g.roll_expect(3, 3, 10, 2, A);
    g.roll_expect(1, 1, 30, 2, A);
    g.roll_expect(6, 6, 42, 2, A);
    assert!(
        !g.events()
            .iter()
            .any(|e| matches!(e, Event::MultiplierChanged { .. }))
    );
    g.roll_expect(2, 3, 52, 2, A);
}

#[test]
fn single_one_ends_the_turn_and_keeps_the_score() {
    for (d1, d2) in [(1, 5), (5, 1), (1, 2)] {
        let mut g = new_game();
        g.roll_expect(2, 2, 4, 2, A);
        g.roll_expect(3, 4, 18, 2, A);
        g.roll(d1, d2).unwrap();
        let t = g.table();
        assert_eq!(g.scores(), vec![18, 0]);
        assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
        assert_eq!(t.status, Status::Playing);
        assert_eq!(turns_done(&g), 1);
        assert_eq!(
            g.events(),
            vec![
                rolled(A, d1, d2, RollKind::SingleOne),
                kept(A, 18),
                passed(A, B),
            ]
        );
        // The multiplier does not carry over to the second player.
        g.roll_expect(2, 3, 5, 1, B);
    }
}

#[test]
fn single_one_on_the_first_roll_keeps_zero() {
    let mut g = new_game();
    g.roll(1, 3).unwrap();
    assert_eq!(g.scores(), vec![0, 0]);
    assert_eq!(g.table().on_turn(), B);
    assert_eq!(turns_done(&g), 1);
    // Now any points at all win for bob at once.
    g.roll(2, 3).unwrap();
    assert_over(&g, EndReason::Won, Some(B), [0, 5]);
}

#[test]
fn the_first_player_never_wins_early() {
    let mut g = new_game();
    g.roll_expect(6, 5, 11, 1, A);
    g.roll_expect(6, 6, 23, 2, A);
    g.roll_expect(6, 5, 45, 2, A);
    assert_eq!(turns_done(&g), 0);
}

#[test]
fn the_second_player_wins_as_soon_as_the_turn_score_exceeds_the_first_total() {
    let mut g = G::from_state(&state([20, 0], 1, 0, 1, 1));
    g.roll_expect(6, 5, 11, 1, B);
    g.roll_expect(4, 5, 20, 1, B); // equal is not enough
    g.roll(2, 3).unwrap();
    assert_over(&g, EndReason::Won, Some(B), [20, 25]);
    assert_eq!(
        g.events(),
        vec![
            rolled(B, 2, 3, RollKind::Normal),
            turn_score(B, 5, 25),
            kept(B, 25),
            Event::GameOver {
                reason: EndReason::Won,
                standings: vec![
                    standing(B, 25, 1, MatchResult::Win),
                    standing(A, 20, 2, MatchResult::Loss),
                ],
            },
        ]
    );
}

#[test]
fn an_early_win_can_come_from_a_double() {
    let mut g = G::from_state(&state([0, 15], 0, 4, 2, 1));
    g.roll(6, 6).unwrap();
    assert_over(&g, EndReason::Won, Some(A), [16, 15]);
    let mut g = G::from_state(&state([0, 15], 0, 0, 1, 1));
    g.roll(1, 1).unwrap();
    assert_over(&g, EndReason::Won, Some(A), [20, 15]);
}

#[test]
fn after_both_turns_the_higher_total_wins() {
    let mut g = new_game();
    g.roll(3, 4).unwrap();
    g.roll(2, 1).unwrap();
    assert_eq!(g.scores(), vec![7, 0]);
    g.roll_expect(2, 3, 5, 1, B);
    g.roll(6, 1).unwrap();
    assert_over(&g, EndReason::Completed, Some(A), [7, 5]);
    assert_eq!(turns_done(&g), 2);
    assert_eq!(
        g.events(),
        vec![
            rolled(B, 6, 1, RollKind::SingleOne),
            kept(B, 5),
            Event::GameOver {
                reason: EndReason::Completed,
                standings: vec![
                    standing(A, 7, 1, MatchResult::Win),
                    standing(B, 5, 2, MatchResult::Loss),
                ],
            },
        ]
    );
}

#[test]
fn equal_totals_are_a_draw() {
    // 0-0.
    let mut g = new_game();
    g.roll(1, 2).unwrap();
    g.roll(1, 3).unwrap();
    assert_over(&g, EndReason::Completed, None, [0, 0]);
    let view = g.view();
    assert_eq!(view["draw"], true);
    assert_eq!(view["winner"], serde_json::Value::Null);
    assert_eq!(view["end_reason"], "completed");
    // 12-12, both reached by a double.
    let mut g = new_game();
    g.roll_expect(6, 6, 12, 2, A);
    g.roll(1, 4).unwrap();
    g.roll_expect(6, 6, 12, 2, B);
    g.roll(2, 1).unwrap();
    assert_over(&g, EndReason::Completed, None, [12, 12]);
}

#[test]
fn bank_is_not_allowed() {
    let mut g = new_game();
    g.refused(A, Action::Bank, ModeError::NotAllowed(String::new()));
    g.roll(3, 4).unwrap();
    g.refused(A, Action::Bank, ModeError::NotAllowed(String::new()));
    g.roll(1, 4).unwrap();
    g.refused(B, Action::Bank, ModeError::NotAllowed(String::new()));
    // Not on turn is refused for that reason first.
    g.refused(A, Action::Bank, ModeError::NotYourTurn(B.into()));
}

// ---------------------------------------------------------------------------
// Worked sequence
// ---------------------------------------------------------------------------

/// Spec: 3-4 → 7; 2-2 → 11 (×2); 3-5 → 27; 1-1 → 47; 6-6 → 59; 2-3 → 69; 1-4 →
/// turn ends, total 69 kept.
#[test]
fn worked_sequence() {
    let mut g = new_game();
    g.roll_expect(3, 4, 7, 1, A);
    g.roll_expect(2, 2, 11, 2, A);
    g.roll_expect(3, 5, 27, 2, A);
    g.roll_expect(1, 1, 47, 2, A);
    g.roll_expect(6, 6, 59, 2, A);
    g.roll_expect(2, 3, 69, 2, A);
    assert_eq!(g.scores(), vec![0, 0]);
    g.roll(1, 4).unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![69, 0]);
    assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
    assert_eq!(t.status, Status::Playing);
    assert_eq!(
        g.events(),
        vec![
            rolled(A, 1, 4, RollKind::SingleOne),
            kept(A, 69),
            passed(A, B),
        ]
    );
    assert_eq!(g.view()["players"][0]["score"], 69);

    // Bob reaching exactly 69 does not win; passing it does.
    let mut draw = G::from_state(&g.decoded());
    for (d, ts) in [((5, 6), 11), ((5, 6), 22), ((5, 6), 33), ((5, 6), 44)] {
        draw.roll_expect(d.0, d.1, ts, 1, B);
    }
    draw.roll_expect(6, 4, 54, 1, B);
    draw.roll_expect(6, 4, 64, 1, B);
    draw.roll_expect(2, 3, 69, 1, B);
    let mut win = G::from_state(&draw.decoded());
    draw.roll(1, 2).unwrap();
    assert_over(&draw, EndReason::Completed, None, [69, 69]);
    win.roll(2, 2).unwrap();
    assert_over(&win, EndReason::Won, Some(B), [69, 73]);
}

// ---------------------------------------------------------------------------
// Timeout and forfeit
// ---------------------------------------------------------------------------

#[test]
fn timeout_ends_the_turn_and_keeps_the_score() {
    let mut g = new_game();
    g.roll_expect(3, 3, 6, 2, A);
    g.roll_expect(3, 4, 20, 2, A);
    g.timeout().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![20, 0]);
    assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
    assert_eq!(turns_done(&g), 1);
    assert_eq!(
        g.events(),
        vec![
            Event::TimedOut { player: A.into() },
            kept(A, 20),
            passed(A, B),
        ]
    );
    g.refused(A, Action::Timeout, ModeError::NotYourTurn(B.into()));
    // The second player's timeout ends the game on totals.
    g.roll_expect(6, 5, 11, 1, B);
    g.timeout().unwrap();
    assert_over(&g, EndReason::Completed, Some(A), [20, 11]);
}

#[test]
fn timeouts_at_zero_end_in_a_draw() {
    let mut g = new_game();
    g.timeout().unwrap();
    g.timeout().unwrap();
    assert_over(&g, EndReason::Completed, None, [0, 0]);
}

#[test]
fn forfeit_makes_the_other_player_win() {
    // Alice already has 50 and forfeits while bob is on turn.
    let mut g = G::from_state(&state([50, 0], 1, 10, 2, 1));
    g.act(A, Action::Forfeit).unwrap();
    let standings = vec![
        standing(B, 0, 1, MatchResult::Win),
        standing(A, 50, 2, MatchResult::Loss),
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
    // On turn works too.
    let mut g = new_game();
    g.roll(3, 4).unwrap();
    g.act(A, Action::Forfeit).unwrap();
    assert_eq!(g.won_by().as_deref(), Some(B));
    assert_eq!(
        g.table().status,
        Status::Finished {
            reason: EndReason::Forfeit,
            winner: Some(1),
            forfeited: Some(0)
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
    g.refused(B, Action::Timeout, ModeError::NotYourTurn(A.into()));
    g.refuses_invalid_actions("grit");
    g.refused(A, Action::Bank, ModeError::NotAllowed(String::new()));

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
    let mut g = new_game();
    g.timeout().unwrap();
    g.roll(2, 3).unwrap();
    g.refuses_everything();
}

#[test]
fn corrupt_state_is_an_error_not_a_panic() {
    testing::assert_corrupt_state_refused::<M>(&state([12, 0], 1, 5, 2, 1), |table| State {
        turns_done: if table.is_over() { 2 } else { 0 },
        table,
    });
}

/// True Grit has no banking, so its bot (the SDK's default) only ever rolls.
#[test]
fn the_bot_never_banks() {
    testing::assert_default_bot::<M>(|table| State {
        table,
        turns_done: 0,
    });
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// True Grit as the spec states it, written without looking at the mode's code.
struct Model {
    seats: TwoSeats,
    turns_done: u32,
}

impl Model {
    /// The turn ends and the player keeps the turn score.
    fn end_turn(&mut self) {
        let s = &mut self.seats;
        s.banked[s.turn] += s.turn_score;
        self.turns_done += 1;
        if self.turns_done == 2 {
            let winner = match s.banked[0].cmp(&s.banked[1]) {
                std::cmp::Ordering::Greater => Some(0),
                std::cmp::Ordering::Less => Some(1),
                std::cmp::Ordering::Equal => None,
            };
            s.end(EndReason::Completed, winner);
        } else {
            s.pass();
        }
    }
}

impl testing::Model<M> for Model {
    fn new(first: usize) -> Self {
        Model {
            seats: TwoSeats::new(0, first),
            turns_done: 0,
        }
    }

    fn seats(&self) -> &TwoSeats {
        &self.seats
    }

    fn seats_mut(&mut self) -> &mut TwoSeats {
        &mut self.seats
    }

    fn roll(&mut self, a: u8, b: u8) {
        let s = &mut self.seats;
        let seat = s.turn;
        let sum = i32::from(a + b);
        match (a, b) {
            (1, 1) => {
                s.turn_score += 20;
                s.multiplier = 2;
            }
            _ if a == b => {
                s.turn_score += sum;
                s.multiplier = 2;
            }
            _ if a == 1 || b == 1 => {
                self.end_turn();
                return;
            }
            _ => s.turn_score += sum * s.multiplier as i32,
        }
        // The second player's turn: passing the first total wins.
        if self.turns_done == 1 && s.turn_score > s.banked[1 - seat] {
            s.banked[seat] += s.turn_score;
            s.win(seat);
        }
    }

    fn bank(&mut self) -> Result<(), ModeError> {
        Err(ModeError::NotAllowed(String::new()))
    }

    fn timeout(&mut self) {
        self.end_turn();
    }

    fn check(&self, state: &State) -> Result<(), String> {
        self.seats.check(&state.table)?;
        if self.seats.over.is_none() {
            testing::ensure_eq(&state.turns_done, &self.turns_done, "turns done")?;
        }
        Ok(())
    }
}

/// True Grit totals are never negative.
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

    /// Players who only ever roll, with dice from the mode's own throw: every
    /// game ends within a bounded number of actions, with the outcome the
    /// totals say.
    #[test]
    fn games_end(seed in any::<[u8; 32]>(), first_b in any::<bool>()) {
        let mut g = if first_b { G::start(&[B, A]) } else { G::start(&[A, B]) };
        g.play_out(&seed, |_| false, mode_invariants).map_err(TestCaseError::fail)?;
        let t = g.table();
        let (first, second) = (t.seats[0].banked, t.seats[1].banked);
        match t.status {
            Status::Finished { reason: EndReason::Won, winner: Some(1), forfeited: None } => {
                prop_assert!(second > first);
                prop_assert_eq!(g.decoded().turns_done, 2);
            }
            Status::Finished { reason: EndReason::Completed, winner, forfeited: None } => {
                prop_assert!(second <= first);
                prop_assert_eq!(winner, (first > second).then_some(0));
            }
            status => prop_assert!(false, "{:?}", status),
        }
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
