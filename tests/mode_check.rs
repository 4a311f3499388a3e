//! `dashdice mode check` on real components: the built-in modes pass, and each
//! broken test component fails the one check that names its fault, through
//! the library API, the in-process CLI (`--json`) and the binary's exit code.

use std::path::PathBuf;
use std::process::Command;

use clap::Parser;
use dashdice::cli::{Cli, CliError, run};
use dashdice_runtime::builtin;
use dashdice_tests::{BAD_BOT, ENDLESS, HOSTILE, NONDETERMINISTIC, NOT_A_MODE, runtime};
use dashdice_tools::check::{Check, CheckOptions, CheckReport, check};
use serde_json::Value;

fn options(games: u32, max_actions: u32) -> CheckOptions {
    CheckOptions {
        games,
        seed: 7,
        max_actions,
    }
}

fn run_check(bytes: &[u8], options: &CheckOptions) -> CheckReport {
    let report = check(runtime(), bytes, options, &|_, _| {});
    eprintln!("{}", report.render());
    report
}

/// The report fails exactly `expected`, with a detail that says where.
fn assert_fails_only(report: &CheckReport, expected: Check) {
    assert!(!report.passed);
    assert_eq!(report.failed(), [expected], "{}", report.render());
    let result = report
        .result(expected)
        .expect("the failing check is reported");
    assert!(!result.detail.is_empty());
}

#[test]
fn the_built_in_modes_pass() {
    for (id, bytes) in builtin::MODES {
        let report = run_check(bytes, &options(150, 10_000));
        assert!(report.passed, "{id}: {}", report.render());
        assert_eq!(report.checks.len(), Check::ALL.len());
        assert_eq!(report.games.played, 150);
        assert!(report.games.finished == 150, "{id}: {:?}", report.games);
        assert!(report.games.bot_games > 0 && report.games.forfeited > 0);
        let info = report.info.as_ref().expect("info");
        assert_eq!(info.id, id);
        let worst = &report.worst;
        assert!(worst.fuel.worst > 0 && worst.fuel.worst < worst.fuel.limit);
        assert!(worst.memory_bytes.worst > 0);
        assert!(worst.view_bytes.worst > 0 && worst.state_bytes.worst > 0);
    }
}

#[test]
fn a_report_depends_only_on_the_seed() {
    let bytes = builtin::bytes("classic").expect("classic");
    let a = run_check(bytes, &options(40, 10_000));
    let b = run_check(bytes, &options(40, 10_000));
    assert_eq!(a.games, b.games);
    assert_eq!(a.worst, b.worst);
}

#[test]
fn bytes_that_are_not_a_mode_fail_to_load() {
    let core_module = b"\0asm\x01\0\0\0".as_slice();
    for (what, bytes) in [
        ("garbage", b"hello, world".as_slice()),
        ("a core module", core_module),
        ("another world", NOT_A_MODE),
    ] {
        let report = run_check(bytes, &options(10, 100));
        assert_fails_only(&report, Check::Loads);
        assert!(report.info.is_none(), "{what}");
        assert_eq!(report.games.played, 0, "{what}");
    }
    let report = run_check(core_module, &options(10, 100));
    let detail = &report.checks[0].detail;
    assert!(detail.contains("core WebAssembly module"), "{detail}");
}

#[test]
fn a_mode_that_traps_fails_no_faults() {
    let report = run_check(HOSTILE, &options(200, 10_000));
    assert_fails_only(&report, Check::NoFaults);
    let result = report.result(Check::NoFaults).expect("result");
    let at = result.at.expect("a failure names its game and step");
    assert_eq!(report.games.stopped_at, Some(at.game));
    assert_eq!(report.games.played, at.game + 1);
    assert!(result.detail.contains("custom action"), "{}", result.detail);
    // Another run stops at the same game and step, whatever the threads did.
    let again = run_check(HOSTILE, &options(200, 10_000));
    assert_eq!(again.result(Check::NoFaults).and_then(|r| r.at), Some(at));
    assert_eq!(again.games, report.games);
}

#[test]
fn a_mode_with_hidden_state_fails_determinism() {
    let report = run_check(NONDETERMINISTIC, &options(50, 10_000));
    assert_fails_only(&report, Check::Determinism);
    let result = report.result(Check::Determinism).expect("result");
    assert_eq!(result.at.map(|at| at.game), Some(0), "{}", result.detail);
    assert!(result.detail.contains("view"), "{}", result.detail);
}

#[test]
fn a_mode_whose_games_never_end_fails_ends() {
    let report = run_check(ENDLESS, &options(50, 300));
    assert_fails_only(&report, Check::Ends);
    let result = report.result(Check::Ends).expect("result");
    assert_eq!(result.at.map(|at| at.step), Some(300), "{}", result.detail);
}

#[test]
fn a_mode_whose_bot_moves_illegally_fails_bot() {
    let report = run_check(BAD_BOT, &options(50, 2_000));
    assert_fails_only(&report, Check::Bot);
}

fn dashdice(args: &[&str]) -> (Result<(), CliError>, String) {
    let cli = Cli::try_parse_from(std::iter::once("dashdice").chain(args.iter().copied()))
        .expect("arguments parse");
    let mut out = Vec::new();
    let result = run(cli, &mut out);
    (result, String::from_utf8(out).expect("utf-8 output"))
}

fn component(var: &str) -> String {
    let path = match var {
        "nondeterministic" => env!("DASHDICE_TEST_NONDETERMINISTIC"),
        _ => env!("DASHDICE_TEST_ENDLESS"),
    };
    PathBuf::from(path).display().to_string()
}

#[test]
fn json_reports_parse_and_say_whether_the_mode_passed() {
    let (result, out) = dashdice(&["mode", "check", "classic", "--games", "30", "--json"]);
    result.expect("classic passes");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["passed"], true);
    assert_eq!(report["info"]["id"], "classic");
    assert_eq!(report["games"]["played"], 30);
    let names: Vec<&str> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert!(names.contains(&"determinism") && names.contains(&"no-faults"));

    let path = component("nondeterministic");
    let (result, out) = dashdice(&["mode", "check", &path, "--games", "10", "--json"]);
    let report: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["passed"], false);
    match result {
        Err(CliError::CheckFailed { failed, .. }) => assert_eq!(failed, ["determinism"]),
        other => panic!("expected a failed check, got {other:?}"),
    }
}

#[test]
fn the_text_report_names_the_failing_check() {
    let path = component("endless");
    let (result, out) = dashdice(&[
        "mode",
        "check",
        &path,
        "--games",
        "4",
        "--max-actions",
        "200",
    ]);
    assert!(result.is_err());
    assert!(out.contains("FAIL ends"), "{out}");
    assert!(out.contains("FAILED (ends)"), "{out}");
}

#[test]
fn the_binary_exits_non_zero_on_failure() {
    let binary = env!("CARGO_BIN_EXE_dashdice-under-test");
    let ok = Command::new(binary)
        .args(["mode", "check", "classic", "--games", "20"])
        .output()
        .expect("run dashdice");
    assert!(ok.status.success(), "{ok:?}");
    let text = String::from_utf8_lossy(&ok.stdout);
    assert!(text.contains("PASSED"), "{text}");

    let path = component("nondeterministic");
    let failed = Command::new(binary)
        .args(["mode", "check", &path, "--games", "10", "--json"])
        .output()
        .expect("run dashdice");
    assert_eq!(failed.status.code(), Some(1), "{failed:?}");
    let report: Value = serde_json::from_slice(&failed.stdout).expect("JSON on stdout");
    assert_eq!(report["passed"], false);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("not fit to publish"), "{stderr}");
    assert!(stderr.contains("determinism"), "{stderr}");
}
