//! The `dashdice` binary as a user runs it: exit codes, stdout and stderr.

use std::process::Command;

fn dashdice(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_dashdice"))
        .args(args)
        .output()
        .expect("run dashdice")
}

#[test]
fn inspect_prints_json_and_exits_zero() {
    let out = dashdice(&["mode", "inspect", "classic"]);
    assert!(out.status.success(), "{out:?}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON on stdout");
    assert_eq!(report["info"]["id"], "classic");
    assert_eq!(report["version_hash"].as_str().map(str::len), Some(64));
}

#[test]
fn replay_prints_one_json_line_per_step() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/scripts/last-line-worked.json"
    );
    let out = dashdice(&["mode", "replay", "last-line", "--script", script]);
    assert!(out.status.success(), "{out:?}");
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 7, "start + 6 steps");
    assert_eq!(lines[6]["view"]["winner"], "alice");
}

#[test]
fn errors_go_to_stderr_with_a_failing_exit_code() {
    let out = dashdice(&["mode", "inspect", "no-such-mode"]);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("dashdice: unknown mode"), "{stderr}");

    let out = dashdice(&["mode", "frobnicate"]);
    assert_eq!(out.status.code(), Some(2), "clap's usage error");
}
