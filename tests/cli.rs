//! The `dashdice mode` verbs, run in-process exactly as the binary runs them:
//! replay prints the spec's worked sequences, simulate shows each mode's dice
//! distribution, inspect prints the version hash.

use std::path::PathBuf;

use clap::Parser;
use dashdice::cli::{Cli, CliError, run};
use dashdice_runtime::ModeHash;
use serde_json::Value;

fn dashdice(args: &[&str]) -> Result<String, CliError> {
    let cli = Cli::try_parse_from(std::iter::once("dashdice").chain(args.iter().copied()))
        .expect("arguments parse");
    let mut out = Vec::new();
    run(cli, &mut out)?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

fn script(name: &str) -> String {
    let path: PathBuf = [env!("CARGO_MANIFEST_DIR"), "scripts", name]
        .iter()
        .collect();
    path.display().to_string()
}

/// One expected line: alice's and bob's scores, the turn score, who is on turn
/// (None once the game is over) and the winner.
type Row = ([i64; 2], i64, Option<&'static str>, Option<&'static str>);

fn replay(mode: &str, name: &str) -> Vec<Value> {
    let out = dashdice(&["mode", "replay", mode, "--script", &script(name)]).expect("replay");
    out.lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

/// Checks every printed line after `from` against `rows`.
fn check(lines: &[Value], from: usize, rows: &[Row]) {
    assert_eq!(lines.len(), from + rows.len(), "{lines:#?}");
    for (i, (line, (scores, turn_score, turn, winner))) in
        lines[from..].iter().zip(rows).enumerate()
    {
        let step = from + i;
        assert!(line.get("error").is_none(), "step {step}: {line}");
        let view = &line["view"];
        let got: Vec<i64> = view["players"]
            .as_array()
            .expect("players")
            .iter()
            .map(|p| p["score"].as_i64().expect("score"))
            .collect();
        assert_eq!(got, scores, "step {step} scores: {line}");
        assert_eq!(
            view["turn_score"], *turn_score,
            "step {step} turn score: {line}"
        );
        assert_eq!(view["turn"].as_str(), *turn, "step {step} turn: {line}");
        assert_eq!(
            view["winner"].as_str(),
            *winner,
            "step {step} winner: {line}"
        );
        let status = if turn.is_some() {
            "playing"
        } else {
            "finished"
        };
        assert_eq!(view["status"], status, "step {step}: {line}");
    }
}

const A: Option<&str> = Some("alice");
const B: Option<&str> = Some("bob");

#[test]
fn replay_prints_classics_worked_sequence() {
    let lines = replay("classic", "classic-worked.json");
    assert_eq!(
        lines[0]["view"]["turn"], "alice",
        "the first listed player starts"
    );
    // Get alice to 40 banked first, then the spec's sequence.
    check(
        &lines,
        5,
        &[
            ([40, 0], 0, B, None),  // bank 40
            ([40, 0], 0, A, None),  // bob 1-2: single one
            ([40, 0], 7, A, None),  // 3-4 -> 7
            ([40, 0], 11, A, None), // 2-2 -> 11, x2 on
            ([40, 0], 27, A, None), // 3-5 -> 27
            ([40, 0], 47, A, None), // 1-1 -> 47
            ([40, 0], 65, A, None), // 4-5 -> 65
            ([105, 0], 0, None, A), // bank at 40 -> 105, wins
        ],
    );
    assert_eq!(lines[4]["view"]["multiplier"], 1);
    assert_eq!(lines[9]["view"]["multiplier"], 2);
}

#[test]
fn replay_prints_zero_hours_worked_sequence() {
    let lines = replay("zero-hour", "zero-hour-worked.json");
    check(
        &lines,
        1,
        &[
            ([100, 100], 7, A, None),
            ([100, 104], 11, A, None),
            ([100, 104], 27, A, None),
            ([100, 114], 37, A, None),
            ([100, 114], 52, A, None),
            ([100, 134], 72, A, None),
            ([100, 134], 92, A, None),
            ([8, 134], 0, B, None),
        ],
    );
    let levels: Vec<i64> = lines[1..8]
        .iter()
        .map(|l| l["view"]["level"].as_i64().expect("level"))
        .collect();
    assert_eq!(levels, [1, 2, 2, 3, 3, 4, 4]);
}

#[test]
fn replay_prints_zero_hours_immediate_win() {
    let lines = replay("zero-hour", "zero-hour-immediate-win.json");
    check(
        &lines,
        9,
        &[
            ([20, 100], 0, B, None),  // banked 80 -> 20
            ([20, 100], 0, A, None),  // bob 1-2
            ([20, 100], 10, A, None), // 6-4
            ([20, 100], 15, A, None), // 2-3: turn score 15 at banked 20
            ([0, 100], 0, None, A),   // 3-4 -> 22 >= 20: wins at once, shown as 0
        ],
    );
}

#[test]
fn replay_prints_last_lines_worked_sequences() {
    let lines = replay("last-line", "last-line-worked.json");
    check(
        &lines,
        1,
        &[
            ([50, 50], 7, A, None),
            ([50, 50], 15, A, None),
            ([50, 50], 31, A, None),
            ([50, 50], 51, A, None),
            ([50, 50], 75, A, None),
            ([100, 0], 0, None, A),
        ],
    );
    let lines = replay("last-line", "last-line-fresh-turn.json");
    check(
        &lines,
        1,
        &[([50, 50], 20, A, None), ([50, 50], 34, A, None)],
    );
}

#[test]
fn replay_prints_true_grits_worked_sequence() {
    let lines = replay("true-grit", "true-grit-worked.json");
    check(
        &lines,
        1,
        &[
            ([0, 0], 7, A, None),
            ([0, 0], 11, A, None),
            ([0, 0], 27, A, None),
            ([0, 0], 47, A, None),
            ([0, 0], 59, A, None),
            ([0, 0], 69, A, None),
            ([69, 0], 0, B, None), // 1-4: the turn ends and 69 is kept
            ([69, 0], 0, None, A), // bob's single one ends the game
        ],
    );
}

#[test]
fn replay_reports_refused_steps_and_carries_on() {
    let dir = std::env::temp_dir().join(format!("dashdice-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("refused.json");
    std::fs::write(
        &path,
        r#"{"players":["alice","bob"],"steps":[
            {"action":"bank"},
            {"action":"roll","dice":[3,4],"player":"bob"},
            {"action":"roll","dice":[9,9]},
            {"action":"roll"},
            {"action":"bank"}]}"#,
    )
    .expect("write script");
    let out = dashdice(&[
        "mode",
        "replay",
        "classic",
        "--script",
        &path.display().to_string(),
    ])
    .expect("replay");
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[1]["error"]["code"], "rejected");
    assert!(
        lines[1]["error"]["message"]
            .as_str()
            .expect("message")
            .contains("nothing to bank")
    );
    assert!(
        lines[2]["error"]["message"]
            .as_str()
            .expect("message")
            .contains("alice's turn")
    );
    assert!(
        lines[3]["error"]["message"]
            .as_str()
            .expect("message")
            .contains("invalid dice")
    );
    // A roll without dice is thrown by the mode from the seed.
    let dice = lines[4]["dice"].as_array().expect("thrown dice");
    assert_eq!(dice.len(), 2);
    assert!(
        dice.iter()
            .all(|d| (1..=6).contains(&d.as_i64().expect("die")))
    );

    std::fs::write(&path, r#"{"players":["alice"],"steps":[]}"#).expect("write");
    let err = dashdice(&[
        "mode",
        "replay",
        "classic",
        "--script",
        &path.display().to_string(),
    ])
    .expect_err("one player cannot start classic");
    assert!(err.to_string().contains("needs 2..=2 players"), "{err}");

    std::fs::write(&path, r#"{"players":["alice","bob"],"stepz":[]}"#).expect("write");
    let err = dashdice(&[
        "mode",
        "replay",
        "classic",
        "--script",
        &path.display().to_string(),
    ])
    .expect_err("a malformed script");
    assert!(matches!(err, CliError::Script { .. }), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn simulate(mode: &str, games: &str, seed: &str) -> Value {
    let out = dashdice(&[
        "mode", "simulate", mode, "--games", games, "--seed", seed, "--json",
    ])
    .expect("simulate");
    serde_json::from_str(&out).expect("report JSON")
}

/// The observed rate is within four standard errors of `p` (and the reported
/// 95% interval is that wide, give or take).
fn assert_rate(report: &Value, field: &str, p: f64) {
    let rolls = report["dice"]["rolls"].as_f64().expect("rolls");
    let rate = report["dice"][field].as_f64().expect("rate");
    let se = (p * (1.0 - p) / rolls).sqrt();
    assert!(
        (rate - p).abs() < 4.0 * se,
        "{field} {rate} is not within 4 standard errors ({se}) of {p}"
    );
}

#[test]
fn simulate_shows_zero_hours_loaded_dice() {
    let report = simulate("zero-hour", "10000", "1");
    assert_eq!(report["games"], 10_000);
    assert_eq!(report["finished"], 10_000, "every game ends");
    assert!(report["dice"]["rolls"].as_u64().expect("rolls") > 100_000);
    assert_rate(&report, "doubles_rate", 0.375);
    assert_rate(&report, "snake_eyes_rate", 1.0 / 16.0);
    assert_rate(&report, "six_six_rate", 1.0 / 16.0);
    let ci = report["dice"]["doubles_rate_ci95"].as_f64().expect("ci");
    assert!(ci > 0.0 && ci < 0.01, "{ci}");
    let first = report["first_mover_win_rate"].as_f64().expect("rate");
    let second = report["second_mover_win_rate"].as_f64().expect("rate");
    assert!(
        (first + second - 1.0).abs() < 1e-9,
        "zero-hour has no draws"
    );
}

#[test]
fn simulate_shows_fair_dice_in_classic_and_is_reproducible() {
    let report = simulate("classic", "2000", "7");
    assert_eq!(report["finished"], 2000);
    assert_rate(&report, "doubles_rate", 1.0 / 6.0);
    assert_rate(&report, "snake_eyes_rate", 1.0 / 36.0);
    assert_eq!(
        report,
        simulate("classic", "2000", "7"),
        "same seed, same report"
    );
    assert_ne!(report["dice"], simulate("classic", "2000", "8")["dice"]);
}

#[test]
fn simulate_ends_every_game_of_every_mode() {
    for mode in ["last-line", "true-grit"] {
        let report = simulate(mode, "500", "3");
        assert_eq!(report["finished"], 500, "{mode}");
        assert_rate(&report, "doubles_rate", 1.0 / 6.0);
    }
    let grit = simulate("true-grit", "500", "3");
    assert!(
        grit["draw_rate"].as_f64().expect("draws") > 0.0,
        "equal totals draw"
    );
    assert!(
        grit["turns"]["max"].as_u64().expect("turns") <= 2,
        "one turn each"
    );
}

#[test]
fn inspect_prints_the_description_and_version_hash() {
    let out = dashdice(&["mode", "inspect", "true-grit"]).expect("inspect");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    let bytes = dashdice_runtime::builtin::bytes("true-grit").expect("embedded");
    assert_eq!(report["version_hash"], ModeHash::of(bytes).to_string());
    assert_eq!(report["info"]["id"], "true-grit");
    assert_eq!(report["info"]["turn_time_limit_ms"], 60_000);
    let actions: Vec<&str> = report["info"]["actions"]
        .as_array()
        .expect("actions")
        .iter()
        .map(|a| a["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        actions,
        ["roll", "forfeit", "timeout"],
        "no bank in true grit"
    );

    // A component file works the same as a built-in id.
    let file = std::env::temp_dir().join(format!("dashdice-inspect-{}.wasm", std::process::id()));
    std::fs::write(&file, bytes).expect("write component");
    let from_file =
        dashdice(&["mode", "inspect", &file.display().to_string()]).expect("inspect file");
    assert_eq!(from_file, out);
    let _ = std::fs::remove_file(&file);
}

#[test]
fn unknown_modes_and_files_are_clear_errors() {
    let err = dashdice(&["mode", "inspect", "snakes-and-ladders"]).expect_err("unknown");
    let message = err.to_string();
    assert!(
        message.contains("unknown mode") && message.contains("classic, zero-hour"),
        "{message}"
    );

    let file = std::env::temp_dir().join(format!("dashdice-bad-{}.wasm", std::process::id()));
    std::fs::write(&file, b"definitely not wasm").expect("write");
    let err = dashdice(&["mode", "inspect", &file.display().to_string()]).expect_err("not wasm");
    assert!(err.to_string().contains("not WebAssembly"), "{err}");
    let _ = std::fs::remove_file(&file);
}

#[test]
fn the_artifact_dir_flag_keeps_compiled_modes() {
    let dir = std::env::temp_dir().join(format!("dashdice-cli-artifacts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.display().to_string();
    let first =
        dashdice(&["mode", "--artifact-dir", &dir_arg, "inspect", "classic"]).expect("inspect");
    let cached: Vec<_> = std::fs::read_dir(&dir)
        .expect("artifact dir created")
        .flatten()
        .flat_map(|engine| {
            std::fs::read_dir(engine.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|f| f.file_name().to_string_lossy().into_owned())
        .collect();
    let hash = ModeHash::of(dashdice_runtime::builtin::bytes("classic").expect("classic"));
    assert_eq!(cached, [format!("{hash}.cwasm")]);
    // The second run loads the artifact and says the same.
    let second =
        dashdice(&["mode", "inspect", "classic", "--artifact-dir", &dir_arg]).expect("inspect");
    assert_eq!(first, second);
    let _ = std::fs::remove_dir_all(&dir);
}
