//! True Grit's rules, pinned row by row against `spec/game-modes.md`, plus
//! property tests over random games.
//!
//! Everything goes through the public driver (`rules::start`, `rules::apply`,
//! `rules::throw_dice`) via `testing::Game`, the code path the component runs.

// Test code: a failed unwrap is a failed test (clippy.toml only exempts
// `#[test]` functions, not the helpers of an integration test).
#![allow(clippy::unwrap_used)]

use dashdice_mode_sdk::testing::Game;
use dashdice_mode_sdk::{
    Action, BankedReason, EndReason, Event, MatchConfig, MatchResult, ModeError, Outcome, RollKind,
    Rules, Seat, Standing, Status, Table, rules,
};
use dashdice_mode_true_grit::{State, TrueGrit};
use proptest::prelude::*;

type M = TrueGrit;
type G = Game<M>;

const A: &str = "alice";
const B: &str = "bob";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn new_game() -> G {
    G::start(&[A, B])
}

/// A playing table: alice in seat 0, bob in seat 1.
fn table(banked: [i32; 2], turn: usize, turn_score: i32, multiplier: u32) -> Table {
    Table {
        seats: vec![
            Seat {
                id: A.into(),
                banked: banked[0],
            },
            Seat {
                id: B.into(),
                banked: banked[1],
            },
        ],
        turn,
        turn_score,
        multiplier,
        status: Status::Playing,
    }
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
        table: table(banked, turn, turn_score, multiplier),
        turns_done,
    }
}

fn events(g: &G) -> Vec<Event> {
    g.last.as_ref().unwrap().events.clone()
}

fn outcome(g: &G) -> Outcome {
    g.last.clone().unwrap()
}

/// Rolls and checks the turn score, the multiplier and who is on turn.
#[track_caller]
fn roll_expect(g: &mut G, d1: u8, d2: u8, turn_score: i32, multiplier: u32, on_turn: &str) {
    g.roll(d1, d2).unwrap();
    let t = g.table();
    assert_eq!(t.turn_score, turn_score, "turn score after {d1}-{d2}");
    assert_eq!(t.multiplier, multiplier, "multiplier after {d1}-{d2}");
    assert_eq!(t.on_turn(), on_turn, "on turn after {d1}-{d2}");
    assert_eq!(t.status, Status::Playing);
}

/// The action is refused with `expected`, and neither the state bytes nor the
/// last outcome move.
#[track_caller]
fn refused(g: &mut G, actor: &str, action: Action, expected: ModeError) {
    let state = g.state.clone();
    let last = g.last.clone();
    let err = g.act(actor, action.clone()).unwrap_err();
    assert!(
        same_error(&err, &expected),
        "got {err:?}, want {expected:?}"
    );
    assert_eq!(
        g.state, state,
        "state bytes changed by a refused {action:?}"
    );
    assert_eq!(g.last, last);
    // The raw driver agrees and hands back nothing.
    let again = rules::apply::<M>(&state, actor, &action).unwrap_err();
    assert_eq!(again, err);
}

/// Equal errors; for errors carrying a message only the kind is compared.
fn same_error(a: &ModeError, b: &ModeError) -> bool {
    match (a, b) {
        (ModeError::NotYourTurn(x), ModeError::NotYourTurn(y))
        | (ModeError::NotAPlayer(x), ModeError::NotAPlayer(y))
        | (ModeError::UnknownAction(x), ModeError::UnknownAction(y)) => x == y,
        _ => std::mem::discriminant(a) == std::mem::discriminant(b),
    }
}

fn standing(player: &str, score: i32, rank: u32, result: MatchResult) -> Standing {
    Standing {
        player: player.into(),
        score,
        rank,
        result,
    }
}

fn config(players: &[&str], first: Option<&str>, options: &str) -> MatchConfig {
    MatchConfig {
        players: players.iter().map(|p| (*p).to_owned()).collect(),
        first_player: first.map(str::to_owned),
        options: options.into(),
    }
}

fn rolled(player: &str, d1: u8, d2: u8, kind: RollKind) -> Event {
    Event::Rolled {
        player: player.into(),
        dice: vec![d1, d2],
        kind,
    }
}

fn turn_score(player: &str, delta: i32, total: i32) -> Event {
    Event::TurnScoreChanged {
        player: player.into(),
        delta,
        total,
    }
}

fn passed(from: &str, to: &str) -> Event {
    Event::TurnPassed {
        from: from.into(),
        to: to.into(),
    }
}

fn multiplier(player: &str, multiplier: u32) -> Event {
    Event::MultiplierChanged {
        player: player.into(),
        multiplier,
    }
}

fn banked(player: &str, delta: i32, total: i32, reason: BankedReason) -> Event {
    Event::BankedScoreChanged {
        player: player.into(),
        delta,
        total,
        reason,
    }
}

fn won_by(g: &G) -> Option<String> {
    match g.table().status {
        Status::Finished {
            winner: Some(w), ..
        } => Some(g.table().seats[w].id.clone()),
        _ => None,
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
    let out = outcome(g);
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
    let out = outcome(&g);
    assert_eq!(out.turn.as_deref(), Some(A));
    assert_eq!(out.standings, None);
    let view = g.view();
    assert_eq!(view["mode"], "true-grit");
    assert_eq!(view["turns_done"], 0);
}

#[test]
fn start_picks_the_first_player_from_entropy() {
    let cfg = config(&[A, B], None, "");
    let mut firsts = [0u32; 2];
    for i in 0..=255u8 {
        let out = rules::start::<M>(&cfg, &[i; 32]).unwrap();
        let first = out.turn.clone().unwrap();
        assert_eq!(
            out.events,
            vec![Event::TurnStarted {
                player: first.clone()
            }]
        );
        firsts[usize::from(first == B)] += 1;
        let again = rules::start::<M>(&cfg, &[i; 32]).unwrap();
        assert_eq!(again.state, out.state);
    }
    // Both seats occur and neither dominates (256 fair coins: 5 sigma is 40).
    assert!(
        firsts.iter().all(|&n| (88..=168).contains(&n)),
        "{firsts:?}"
    );
}

#[test]
fn start_honours_first_player() {
    for entropy in [[0u8; 32], [1; 32], [0xff; 32]] {
        let out = rules::start::<M>(&config(&[A, B], Some(B), ""), &entropy).unwrap();
        assert_eq!(out.turn.as_deref(), Some(B));
        let out = rules::start::<M>(&config(&[A, B], Some(A), ""), &entropy).unwrap();
        assert_eq!(out.turn.as_deref(), Some(A));
    }
}

#[test]
fn start_rejects_invalid_configs() {
    for options in ["", "{}"] {
        assert!(rules::start::<M>(&config(&[A, B], None, options), &[0; 32]).is_ok());
    }
    let bad = [
        config(&[A], None, ""),
        config(&[A, B, "carol"], None, ""),
        config(&[A, A], None, ""),
        config(&[A, ""], None, ""),
        config(&[A, B], Some("carol"), ""),
        config(&[A, B], None, r#"{"turns": 3}"#),
        config(&[A, B], None, "not json"),
    ];
    for cfg in bad {
        let err = rules::start::<M>(&cfg, &[0; 32]).unwrap_err();
        assert!(
            matches!(err, ModeError::InvalidConfig(_)),
            "{cfg:?}: {err:?}"
        );
    }
    let err = rules::start::<M>(&config(&[A, B], None, ""), &[0; 16]).unwrap_err();
    assert!(matches!(err, ModeError::InvalidEntropy(_)), "{err:?}");
}

// ---------------------------------------------------------------------------
// Dice: two fair dice
// ---------------------------------------------------------------------------

fn entropy(i: u64) -> [u8; 32] {
    let mut e = [0xc3; 32];
    e[..8].copy_from_slice(&i.to_le_bytes());
    e
}

#[test]
fn throw_dice_is_fair_doubles_one_in_six() {
    let g = new_game();
    const N: u32 = 120_000;
    let mut doubles = 0u32;
    let mut faces = [0u32; 6];
    for i in 0..N {
        let dice = rules::throw_dice::<M>(&g.state, &entropy(u64::from(i))).unwrap();
        assert!(
            dice.len() == 2 && dice.iter().all(|d| (1..=6).contains(d)),
            "{dice:?}"
        );
        doubles += u32::from(dice[0] == dice[1]);
        for d in dice {
            faces[usize::from(d - 1)] += 1;
        }
    }
    // About 5 sigma. Doubles: mean 20,000, sigma 129; faces: mean 40,000, sigma 129.
    assert!((19_355..=20_645).contains(&doubles), "doubles {doubles}");
    for f in faces {
        assert!((39_355..=40_645).contains(&f), "faces {faces:?}");
    }
    let a = rules::throw_dice::<M>(&g.state, &entropy(7)).unwrap();
    assert_eq!(rules::throw_dice::<M>(&g.state, &entropy(7)).unwrap(), a);
    assert!(matches!(
        rules::throw_dice::<M>(&g.state, &[0; 31]),
        Err(ModeError::InvalidEntropy(_))
    ));
}

// ---------------------------------------------------------------------------
// The table, row by row
// ---------------------------------------------------------------------------

#[test]
fn normal_roll_adds_the_sum() {
    let mut g = new_game();
    roll_expect(&mut g, 3, 4, 7, 1, A);
    assert_eq!(
        events(&g),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 7, 7)]
    );
    roll_expect(&mut g, 6, 5, 18, 1, A);
    assert_eq!(g.scores(), vec![0, 0]);
}

#[test]
fn normal_roll_is_doubled_once_any_double_was_rolled() {
    let mut g = new_game();
    roll_expect(&mut g, 3, 3, 6, 2, A);
    roll_expect(&mut g, 3, 4, 20, 2, A);
    assert_eq!(
        events(&g),
        vec![rolled(A, 3, 4, RollKind::Normal), turn_score(A, 14, 20)]
    );
}

#[test]
fn snake_eyes_adds_20_unmultiplied_and_sets_the_multiplier() {
    let mut g = new_game();
    roll_expect(&mut g, 1, 1, 20, 2, A);
    assert_eq!(
        events(&g),
        vec![
            rolled(A, 1, 1, RollKind::SnakeEyes),
            turn_score(A, 20, 20),
            multiplier(A, 2),
        ]
    );
    roll_expect(&mut g, 1, 1, 40, 2, A);
}

#[test]
fn other_doubles_add_their_sum_unmultiplied_six_six_included() {
    for n in 2..=6u8 {
        let mut g = new_game();
        let sum = 2 * i32::from(n);
        roll_expect(&mut g, n, n, sum, 2, A);
        assert_eq!(
            events(&g),
            vec![
                rolled(A, n, n, RollKind::Double),
                turn_score(A, sum, sum),
                multiplier(A, 2),
            ]
        );
        // A second double is not multiplied either.
        roll_expect(&mut g, n, n, 2 * sum, 2, A);
        assert_eq!(g.scores(), vec![0, 0]);
    }
}

#[test]
fn multiplier_does_not_stack() {
    let mut g = new_game();
    roll_expect(&mut g, 2, 2, 4, 2, A);
    roll_expect(&mut g, 3, 3, 10, 2, A);
    roll_expect(&mut g, 1, 1, 30, 2, A);
    roll_expect(&mut g, 6, 6, 42, 2, A);
    assert!(
        !events(&g)
            .iter()
            .any(|e| matches!(e, Event::MultiplierChanged { .. }))
    );
    roll_expect(&mut g, 2, 3, 52, 2, A);
}

#[test]
fn single_one_ends_the_turn_and_keeps_the_score() {
    for (d1, d2) in [(1, 5), (5, 1), (1, 2)] {
        let mut g = new_game();
        roll_expect(&mut g, 2, 2, 4, 2, A);
        roll_expect(&mut g, 3, 4, 18, 2, A);
        g.roll(d1, d2).unwrap();
        let t = g.table();
        assert_eq!(g.scores(), vec![18, 0]);
        assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
        assert_eq!(t.status, Status::Playing);
        assert_eq!(turns_done(&g), 1);
        assert_eq!(
            events(&g),
            vec![
                rolled(A, d1, d2, RollKind::SingleOne),
                kept(A, 18),
                passed(A, B),
            ]
        );
        // The multiplier does not carry over to the second player.
        roll_expect(&mut g, 2, 3, 5, 1, B);
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
    roll_expect(&mut g, 6, 5, 11, 1, A);
    roll_expect(&mut g, 6, 6, 23, 2, A);
    roll_expect(&mut g, 6, 5, 45, 2, A);
    assert_eq!(turns_done(&g), 0);
}

#[test]
fn the_second_player_wins_as_soon_as_the_turn_score_exceeds_the_first_total() {
    let mut g = G::from_state(&state([20, 0], 1, 0, 1, 1));
    roll_expect(&mut g, 6, 5, 11, 1, B);
    roll_expect(&mut g, 4, 5, 20, 1, B); // equal is not enough
    g.roll(2, 3).unwrap();
    assert_over(&g, EndReason::Won, Some(B), [20, 25]);
    assert_eq!(
        events(&g),
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
    roll_expect(&mut g, 2, 3, 5, 1, B);
    g.roll(6, 1).unwrap();
    assert_over(&g, EndReason::Completed, Some(A), [7, 5]);
    assert_eq!(turns_done(&g), 2);
    assert_eq!(
        events(&g),
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
    roll_expect(&mut g, 6, 6, 12, 2, A);
    g.roll(1, 4).unwrap();
    roll_expect(&mut g, 6, 6, 12, 2, B);
    g.roll(2, 1).unwrap();
    assert_over(&g, EndReason::Completed, None, [12, 12]);
}

#[test]
fn bank_is_not_allowed() {
    let mut g = new_game();
    refused(
        &mut g,
        A,
        Action::Bank,
        ModeError::NotAllowed(String::new()),
    );
    g.roll(3, 4).unwrap();
    refused(
        &mut g,
        A,
        Action::Bank,
        ModeError::NotAllowed(String::new()),
    );
    g.roll(1, 4).unwrap();
    refused(
        &mut g,
        B,
        Action::Bank,
        ModeError::NotAllowed(String::new()),
    );
    // Not on turn is refused for that reason first.
    refused(&mut g, A, Action::Bank, ModeError::NotYourTurn(B.into()));
}

// ---------------------------------------------------------------------------
// Worked sequence
// ---------------------------------------------------------------------------

/// Spec: 3-4 → 7; 2-2 → 11 (×2); 3-5 → 27; 1-1 → 47; 6-6 → 59; 2-3 → 69; 1-4 →
/// turn ends, total 69 kept.
#[test]
fn worked_sequence() {
    let mut g = new_game();
    roll_expect(&mut g, 3, 4, 7, 1, A);
    roll_expect(&mut g, 2, 2, 11, 2, A);
    roll_expect(&mut g, 3, 5, 27, 2, A);
    roll_expect(&mut g, 1, 1, 47, 2, A);
    roll_expect(&mut g, 6, 6, 59, 2, A);
    roll_expect(&mut g, 2, 3, 69, 2, A);
    assert_eq!(g.scores(), vec![0, 0]);
    g.roll(1, 4).unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![69, 0]);
    assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
    assert_eq!(t.status, Status::Playing);
    assert_eq!(
        events(&g),
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
        roll_expect(&mut draw, d.0, d.1, ts, 1, B);
    }
    roll_expect(&mut draw, 6, 4, 54, 1, B);
    roll_expect(&mut draw, 6, 4, 64, 1, B);
    roll_expect(&mut draw, 2, 3, 69, 1, B);
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
    roll_expect(&mut g, 3, 3, 6, 2, A);
    roll_expect(&mut g, 3, 4, 20, 2, A);
    g.timeout().unwrap();
    let t = g.table();
    assert_eq!(g.scores(), vec![20, 0]);
    assert_eq!((t.on_turn(), t.turn_score, t.multiplier), (B, 0, 1));
    assert_eq!(turns_done(&g), 1);
    assert_eq!(
        events(&g),
        vec![
            Event::TimedOut { player: A.into() },
            kept(A, 20),
            passed(A, B),
        ]
    );
    refused(&mut g, A, Action::Timeout, ModeError::NotYourTurn(B.into()));
    // The second player's timeout ends the game on totals.
    roll_expect(&mut g, 6, 5, 11, 1, B);
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
    let out = outcome(&g);
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
    assert_eq!(won_by(&g).as_deref(), Some(B));
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
    let roll = |d: &[u8]| Action::Roll { dice: d.to_vec() };
    refused(&mut g, B, roll(&[3, 4]), ModeError::NotYourTurn(A.into()));
    refused(&mut g, B, Action::Timeout, ModeError::NotYourTurn(A.into()));
    refused(
        &mut g,
        "carol",
        roll(&[3, 4]),
        ModeError::NotAPlayer("carol".into()),
    );
    refused(
        &mut g,
        "carol",
        Action::Forfeit,
        ModeError::NotAPlayer("carol".into()),
    );
    for dice in [&[0u8, 3][..], &[7, 1], &[3], &[], &[1, 2, 3], &[6, 0]] {
        refused(&mut g, A, roll(dice), ModeError::InvalidDice(String::new()));
    }
    refused(
        &mut g,
        A,
        Action::Bank,
        ModeError::NotAllowed(String::new()),
    );
    let custom = Action::Custom {
        name: "grit".into(),
        payload: String::new(),
    };
    refused(&mut g, A, custom, ModeError::UnknownAction("grit".into()));

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
    assert!(g.table().is_over());
    for (actor, action) in [
        (A, Action::Roll { dice: vec![3, 4] }),
        (B, Action::Roll { dice: vec![3, 4] }),
        (A, Action::Bank),
        (B, Action::Timeout),
        (A, Action::Forfeit),
        (B, Action::Forfeit),
    ] {
        refused(&mut g, actor, action, ModeError::GameOver);
    }
    assert_eq!(
        rules::throw_dice::<M>(&g.state, &[0; 32]).unwrap_err(),
        ModeError::GameOver
    );
}

#[test]
fn corrupt_state_is_an_error_not_a_panic() {
    let g = G::from_state(&state([12, 0], 1, 5, 2, 1));
    let mut corrupt: Vec<Vec<u8>> = vec![vec![], vec![0xff; 8], vec![0x80; 64]];
    // Every strict prefix of a valid state.
    corrupt.extend((0..g.state.len()).map(|n| g.state[..n].to_vec()));
    // Valid encodings of impossible tables: no such seat on turn, no seats,
    // a winner that is not seated.
    let mut bad_turn = table([0, 0], 2, 0, 1);
    corrupt.push(
        G::from_state(&State {
            table: bad_turn.clone(),
            turns_done: 0,
        })
        .state,
    );
    bad_turn.seats.clear();
    bad_turn.turn = 0;
    corrupt.push(
        G::from_state(&State {
            table: bad_turn.clone(),
            turns_done: 0,
        })
        .state,
    );
    let mut bad_winner = table([0, 0], 0, 0, 1);
    bad_winner.status = Status::Finished {
        reason: EndReason::Won,
        winner: Some(5),
        forfeited: None,
    };
    corrupt.push(
        G::from_state(&State {
            table: bad_winner,
            turns_done: 2,
        })
        .state,
    );

    for bytes in &corrupt {
        for actor in [A, B] {
            for action in [
                Action::Roll { dice: vec![3, 4] },
                Action::Bank,
                Action::Forfeit,
            ] {
                let err = rules::apply::<M>(bytes, actor, &action).unwrap_err();
                assert!(
                    matches!(err, ModeError::CorruptState(_)),
                    "{bytes:?}: {err:?}"
                );
            }
        }
        assert!(matches!(
            rules::view::<M>(bytes),
            Err(ModeError::CorruptState(_))
        ));
        assert!(matches!(
            rules::throw_dice::<M>(bytes, &[0; 32]),
            Err(ModeError::CorruptState(_))
        ));
    }
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// True Grit as the spec states it, written without looking at the mode's code.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    ids: [String; 2],
    banked: [i32; 2],
    turn: usize,
    turn_score: i32,
    multiplier: u32,
    turns_done: u32,
    /// `Some((reason, winner))` once over; winner `None` is a draw.
    over: Option<(EndReason, Option<usize>)>,
}

impl Model {
    fn new(first: usize) -> Self {
        Model {
            ids: [A.into(), B.into()],
            banked: [0, 0],
            turn: first,
            turn_score: 0,
            multiplier: 1,
            turns_done: 0,
            over: None,
        }
    }

    fn end(&mut self, reason: EndReason, winner: Option<usize>) {
        self.over = Some((reason, winner));
        self.turn_score = 0;
        self.multiplier = 1;
    }

    /// The turn ends and the player keeps the turn score.
    fn end_turn(&mut self) {
        self.banked[self.turn] += self.turn_score;
        self.turns_done += 1;
        if self.turns_done == 2 {
            let winner = match self.banked[0].cmp(&self.banked[1]) {
                std::cmp::Ordering::Greater => Some(0),
                std::cmp::Ordering::Less => Some(1),
                std::cmp::Ordering::Equal => None,
            };
            self.end(EndReason::Completed, winner);
        } else {
            self.turn = 1 - self.turn;
            self.turn_score = 0;
            self.multiplier = 1;
        }
    }

    fn act(&mut self, actor: &str, action: &Action) -> Result<(), ModeError> {
        if self.over.is_some() {
            return Err(ModeError::GameOver);
        }
        let seat = self
            .ids
            .iter()
            .position(|id| id == actor)
            .ok_or_else(|| ModeError::NotAPlayer(actor.into()))?;
        if *action == Action::Forfeit {
            self.end(EndReason::Forfeit, Some(1 - seat));
            return Ok(());
        }
        if seat != self.turn {
            return Err(ModeError::NotYourTurn(self.ids[self.turn].clone()));
        }
        match action {
            Action::Roll { dice } => match dice[..] {
                [a, b] if (1..=6).contains(&a) && (1..=6).contains(&b) => {
                    let sum = i32::from(a + b);
                    match (a, b) {
                        (1, 1) => {
                            self.turn_score += 20;
                            self.multiplier = 2;
                        }
                        _ if a == b => {
                            self.turn_score += sum;
                            self.multiplier = 2;
                        }
                        _ if a == 1 || b == 1 => {
                            self.end_turn();
                            return Ok(());
                        }
                        _ => self.turn_score += sum * self.multiplier as i32,
                    }
                    // The second player's turn: passing the first total wins.
                    if self.turns_done == 1 && self.turn_score > self.banked[1 - seat] {
                        self.banked[seat] += self.turn_score;
                        self.end(EndReason::Won, Some(seat));
                    }
                }
                _ => return Err(ModeError::InvalidDice(String::new())),
            },
            Action::Bank => return Err(ModeError::NotAllowed(String::new())),
            Action::Timeout => self.end_turn(),
            Action::Custom { name, .. } => return Err(ModeError::UnknownAction(name.clone())),
            Action::Forfeit => unreachable!(),
        }
        Ok(())
    }

    fn check(&self, s: &State) -> Result<(), TestCaseError> {
        let t = &s.table;
        let scores: Vec<i32> = t.seats.iter().map(|s| s.banked).collect();
        prop_assert_eq!(&scores[..], &self.banked[..]);
        match (t.status, self.over) {
            (Status::Playing, None) => {
                prop_assert_eq!(t.turn, self.turn);
                prop_assert_eq!(s.turns_done, self.turns_done);
            }
            (Status::Finished { reason, winner, .. }, Some(over)) => {
                prop_assert_eq!((reason, winner), over)
            }
            (status, over) => prop_assert!(false, "{:?} vs model {:?}", status, over),
        }
        prop_assert_eq!(t.turn_score, self.turn_score);
        prop_assert_eq!(t.multiplier, self.multiplier);
        Ok(())
    }
}

/// What every successful action must satisfy, whatever the mode.
fn check_outcome(before: &Table, after: &Table, out: &Outcome) -> Result<(), TestCaseError> {
    let over = after.is_over();
    prop_assert_eq!(out.turn.is_none(), over);
    prop_assert_eq!(out.standings.is_some(), over);
    if let Some(turn) = &out.turn {
        prop_assert_eq!(turn.as_str(), after.on_turn());
    }
    prop_assert_eq!(&out.standings, &after.standings());
    let game_overs = out
        .events
        .iter()
        .filter(|e| matches!(e, Event::GameOver { .. }))
        .count();
    prop_assert_eq!(game_overs, usize::from(over));
    if let Some(standings) = &out.standings {
        prop_assert_eq!(standings.len(), 2);
        let wins = standings
            .iter()
            .filter(|s| s.result == MatchResult::Win)
            .count();
        let draws = standings
            .iter()
            .filter(|s| s.result == MatchResult::Draw)
            .count();
        prop_assert!(
            (wins == 1 && draws == 0) || draws == standings.len(),
            "{:?}",
            standings
        );
        let Some(Event::GameOver { standings: s, .. }) = out.events.last() else {
            return Err(TestCaseError::fail("GameOver is not the last event"));
        };
        prop_assert_eq!(s, standings);
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
                let seat = before.seat_of(player).unwrap();
                banked[seat] += delta;
                prop_assert_eq!(banked[seat], *total);
            }
            Event::TurnScoreChanged {
                player,
                delta,
                total,
            } => {
                prop_assert_eq!(player.as_str(), before.on_turn());
                turn_score += delta;
                prop_assert_eq!(turn_score, *total);
            }
            Event::Busted { lost, .. } => prop_assert_eq!(*lost, turn_score),
            Event::TurnPassed { from, to } => {
                prop_assert_eq!(from.as_str(), before.on_turn());
                prop_assert_eq!(to.as_str(), after.on_turn());
                turn_score = 0;
                passes += 1;
            }
            _ => {}
        }
    }
    let after_banked: Vec<i32> = after.seats.iter().map(|s| s.banked).collect();
    prop_assert_eq!(banked, after_banked);
    prop_assert_eq!(passes, usize::from(!over && after.turn != before.turn));
    if passes > 0 || over {
        // The turn passed or the game ended: turn score and multiplier cleared.
        prop_assert_eq!((after.turn_score, after.multiplier), (0, 1));
    } else {
        prop_assert_eq!(after.turn_score, turn_score);
    }
    prop_assert!(after.turn_score >= 0);
    mode_invariants(after)
}

/// True Grit totals are never negative.
fn mode_invariants(t: &Table) -> Result<(), TestCaseError> {
    prop_assert!(t.seats.iter().all(|s| s.banked >= 0), "{:?}", t);
    Ok(())
}

#[derive(Clone, Debug)]
enum Step {
    /// The player on turn rolls the dice the mode throws from this entropy.
    Throw([u8; 32]),
    /// The player on turn rolls these (valid) dice.
    Roll(u8, u8),
    Bank,
    Timeout,
    Forfeit {
        on_turn: bool,
    },
    /// The player not on turn tries to roll, bank or time out.
    OutOfTurn(u8),
    Stranger,
    BadDice(Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
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

/// Plays `steps` from a start chosen by `start_entropy`, checking every outcome
/// against the invariants and the spec model.
fn play(start_entropy: &[u8; 32], steps: &[Step]) -> Result<(), TestCaseError> {
    let out = rules::start::<M>(&config(&[A, B], None, ""), start_entropy).unwrap();
    let first = usize::from(out.turn.as_deref() == Some(B));
    let mut g = G::from_state(&rules::decode::<M>(&out.state).unwrap());
    let mut model = Model::new(first);
    for step in steps {
        let before = g.table();
        if before.is_over() {
            break;
        }
        let on = before.on_turn().to_owned();
        let off = before.seats[1 - before.turn].id.clone();
        let (actor, action) = match step {
            Step::Throw(entropy) => {
                let dice = rules::throw_dice::<M>(&g.state, entropy).unwrap();
                prop_assert!(dice.len() == 2 && dice.iter().all(|d| (1..=6).contains(d)));
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
        };
        let state = g.state.clone();
        let expected = model.act(&actor, &action);
        match g.act(&actor, action.clone()) {
            Ok(out) => {
                let out = out.clone();
                prop_assert!(
                    expected.is_ok(),
                    "{:?} accepted, model: {:?}",
                    action,
                    expected
                );
                check_outcome(&before, &g.table(), &out)?;
            }
            Err(err) => {
                prop_assert_eq!(&g.state, &state, "error changed the state");
                match &expected {
                    Err(want) => prop_assert!(same_error(&err, want), "{:?} vs {:?}", err, want),
                    Ok(()) => prop_assert!(false, "{:?} refused: {:?}", action, err),
                }
            }
        }
        model.check(&g.decoded())?;
        // The shown scores are the banked ones.
        let view = g.view();
        for (i, seat) in g.table().seats.iter().enumerate() {
            prop_assert_eq!(
                &view["players"][i]["score"],
                &serde_json::Value::from(seat.banked)
            );
        }
    }
    if g.table().is_over() {
        let state = g.state.clone();
        prop_assert_eq!(g.roll(3, 4).unwrap_err(), ModeError::GameOver);
        prop_assert_eq!(&g.state, &state);
    }
    Ok(())
}

/// Per-roll entropy for long games, derived from one generated seed the way
/// the host derives every roll from the match seed.
fn roll_entropy(seed: &[u8; 32], roll: u64) -> [u8; 32] {
    let mut e = *seed;
    for (b, c) in e.iter_mut().zip(roll.to_le_bytes()) {
        *b ^= c;
    }
    e
}

const MAX_ACTIONS: u32 = 10_000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_play_keeps_the_invariants_and_follows_the_spec(
        start_entropy in any::<[u8; 32]>(),
        steps in prop::collection::vec(step(), 1..300),
    ) {
        play(&start_entropy, &steps)?;
    }

    /// Players who only ever roll, with dice from the mode's own throw: every
    /// game ends within a bounded number of actions, with the outcome the
    /// totals say.
    #[test]
    fn games_end(seed in any::<[u8; 32]>(), first_b in any::<bool>()) {
        let mut g = if first_b { G::start(&[B, A]) } else { G::start(&[A, B]) };
        let mut actions = 0u32;
        let mut rolls = 0u64;
        while !g.table().is_over() {
            prop_assert!(actions < MAX_ACTIONS, "not over after {} actions", actions);
            let before = g.table();
            let dice = rules::throw_dice::<M>(&g.state, &roll_entropy(&seed, rolls)).unwrap();
            rolls += 1;
            let out = g.roll(dice[0], dice[1]).unwrap().clone();
            check_outcome(&before, &g.table(), &out)?;
            actions += 1;
        }
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
}
