//! Provably fair dice end to end: a match played on derived entropy verifies,
//! and any tampering with the record is caught and named.

use clap::Parser;
use dashdice::cli::{Cli, run};
use dashdice_mode_sdk::{Action, MatchConfig, RollKind, TwoDice};
use dashdice_runtime::Step;
use dashdice_runtime::fair_dice::{
    MatchRecord, Purpose, RecordedAction, Seed, VerifyError, verify,
};
use dashdice_tests::builtin;

const MODES: [&str; 4] = ["classic", "zero-hour", "last-line", "true-grit"];

/// Plays a whole match the way the match host does: who starts and every roll
/// come from the seed; players bank at 20 where banking exists.
fn play(mode_id: &str, match_id: &str, seed: &Seed) -> MatchRecord {
    let mode = builtin(mode_id);
    let players = vec!["alice".to_owned(), "bob".to_owned()];
    let config = MatchConfig {
        players: players.clone(),
        first_player: None,
        options: String::new(),
    };
    let started = mode
        .start(&config, &seed.entropy(match_id, Purpose::Start))
        .expect("start");
    let can_bank = mode.info().actions.iter().any(|a| a.name == "bank");
    let mut state = started.outcome.state;
    let mut turn = started.outcome.turn;
    let mut turn_score = 0;
    let mut rolls = 0;
    let mut actions = Vec::new();
    let mut standings = None;
    while let Some(actor) = turn.clone() {
        assert!(actions.len() < 10_000, "the game ends");
        let (step, recorded) = if can_bank && turn_score >= 20 {
            (Step::Apply(Action::Bank), Some(Action::Bank))
        } else {
            let entropy = seed.entropy(match_id, Purpose::Roll(rolls));
            rolls += 1;
            (Step::Roll { entropy }, None)
        };
        let acted = mode.act(&state, &actor, &step).expect("act");
        let action = recorded.unwrap_or_else(|| Action::Roll {
            dice: acted.dice.clone().expect("a roll shows dice"),
        });
        actions.push(RecordedAction {
            actor,
            action,
            at_ms: None,
        });
        let view: serde_json::Value = serde_json::from_str(&acted.view).expect("view");
        turn_score = view["turn_score"].as_i64().expect("turn score");
        state = acted.outcome.state;
        turn = acted.outcome.turn;
        standings = acted.outcome.standings;
    }
    MatchRecord {
        match_id: match_id.to_owned(),
        mode: mode_id.to_owned(),
        mode_version: mode.hash(),
        players,
        options: String::new(),
        created_ms: 0,
        ranked: false,
        bots: Vec::new(),
        seed_hash: seed.commitment(),
        seed: seed.reveal(),
        actions,
        standings: standings.expect("a finished match has standings"),
        void: None,
    }
}

fn rolls(record: &MatchRecord) -> Vec<usize> {
    (0..record.actions.len())
        .filter(|&i| matches!(record.actions[i].action, Action::Roll { .. }))
        .collect()
}

#[test]
fn a_fairly_played_match_of_every_mode_verifies() {
    for (i, mode) in MODES.iter().enumerate() {
        for game in 0..5u8 {
            let seed = Seed::from_bytes([i as u8 * 16 + game; 32]);
            let record = play(mode, &format!("{mode}-{game}"), &seed);
            let verified = verify(&builtin(mode), &record).expect("verifies");
            assert_eq!(verified.rolls as usize, rolls(&record).len());
            assert_eq!(verified.standings, record.standings);
        }
    }
}

#[test]
fn a_changed_roll_is_caught_at_that_roll() {
    let record = play("classic", "m-dice", &Seed::from_bytes([1; 32]));
    let mut forged = record.clone();
    let index = rolls(&record)[2];
    let Action::Roll { dice } = &mut forged.actions[index].action else {
        unreachable!("an index from rolls()")
    };
    let original = dice.clone();
    // Another valid roll: bump the first die.
    dice[0] = dice[0] % 6 + 1;
    match verify(&builtin("classic"), &forged) {
        Err(VerifyError::Dice {
            index: at,
            recorded,
            derived,
            ..
        }) => {
            assert_eq!(at, index);
            assert_eq!(derived, original);
            assert_ne!(recorded, derived);
        }
        other => panic!("expected a dice mismatch, got {other:?}"),
    }
}

#[test]
fn a_seed_that_does_not_match_its_commitment_is_caught() {
    let mut record = play("zero-hour", "m-seed", &Seed::from_bytes([2; 32]));
    record.seed = Seed::from_bytes([3; 32]).reveal();
    assert!(matches!(
        verify(&builtin("zero-hour"), &record),
        Err(VerifyError::Commitment { .. })
    ));
    record.seed = "not hex".into();
    assert!(matches!(
        verify(&builtin("zero-hour"), &record),
        Err(VerifyError::Seed(_))
    ));
}

#[test]
fn swapping_seed_and_commitment_after_the_fact_does_not_reproduce_the_rolls() {
    let record = play("last-line", "m-swap", &Seed::from_bytes([4; 32]));
    let mut forged = record.clone();
    let other = Seed::from_bytes([5; 32]);
    forged.seed = other.reveal();
    forged.seed_hash = other.commitment();
    let err = verify(&builtin("last-line"), &forged).expect_err("another seed gives other rolls");
    assert!(
        matches!(err, VerifyError::Dice { .. } | VerifyError::Replay { .. }),
        "{err:?}"
    );
}

#[test]
fn changed_standings_and_the_wrong_version_are_caught() {
    let record = play("true-grit", "m-standings", &Seed::from_bytes([6; 32]));
    let mut forged = record.clone();
    forged.standings.reverse();
    assert!(matches!(
        verify(&builtin("true-grit"), &forged),
        Err(VerifyError::Standings { .. })
    ));
    assert!(matches!(
        verify(&builtin("classic"), &record),
        Err(VerifyError::WrongVersion { .. })
    ));
}

#[test]
fn dice_follow_the_modes_own_distribution() {
    // Zero Hour's loaded dice survive the seed derivation: over many derived
    // rolls about 3/8 are doubles.
    let mode = builtin("zero-hour");
    let seed = Seed::from_bytes([9; 32]);
    let state = mode
        .start(
            &MatchConfig {
                players: vec!["a".into(), "b".into()],
                first_player: None,
                options: String::new(),
            },
            &seed.entropy("dist", Purpose::Start),
        )
        .expect("start")
        .outcome
        .state;
    let mut session = mode.session().expect("session");
    let n = 20_000u64;
    let doubles = (0..n)
        .filter(|&i| {
            let dice = session
                .throw_dice(&state, &seed.entropy("dist", Purpose::Roll(i)))
                .expect("throw");
            let kind = TwoDice::parse(&dice).expect("two dice").kind();
            matches!(kind, RollKind::Double | RollKind::SnakeEyes)
        })
        .count() as f64;
    let (p, se) = (0.375, (0.375f64 * 0.625 / n as f64).sqrt());
    assert!(
        (doubles / n as f64 - p).abs() < 4.0 * se,
        "{}",
        doubles / n as f64
    );
}

#[test]
fn the_cli_verifies_a_record_and_names_a_forgery() {
    let dir = std::env::temp_dir().join(format!("dashdice-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let record = play("classic", "m-cli", &Seed::from_bytes([7; 32]));
    let good = dir.join("good.json");
    std::fs::write(&good, serde_json::to_vec_pretty(&record).expect("json")).expect("write");
    let mut out = Vec::new();
    let cli = Cli::try_parse_from(["dashdice", "match", "verify", good.to_str().expect("utf-8")])
        .expect("parse");
    run(cli, &mut out).expect("verifies");
    let text = String::from_utf8(out).expect("utf-8");
    assert!(text.starts_with("verified: match m-cli"), "{text}");

    let mut forged = record;
    let index = rolls(&forged)[0];
    let other = match &forged.actions[index].action {
        Action::Roll { dice } if dice == &[6, 6] => vec![5, 6],
        _ => vec![6, 6],
    };
    forged.actions[index].action = Action::Roll { dice: other };
    let bad = dir.join("bad.json");
    std::fs::write(&bad, serde_json::to_vec(&forged).expect("json")).expect("write");
    let cli = Cli::try_parse_from(["dashdice", "match", "verify", bad.to_str().expect("utf-8")])
        .expect("parse");
    let err = run(cli, &mut Vec::new()).expect_err("a forged roll");
    let message = err.to_string();
    assert!(
        message.starts_with(&format!("verification failed: action {index} by")),
        "{message}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
