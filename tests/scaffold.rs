//! `dashdice mode new`, end to end: the crate it writes passes its own tests
//! and builds its component with cargo alone, outside this repository and
//! offline, and the runtime loads that component with the new id and the
//! custom action working.
//!
//! The nested builds share `target/scaffold` (under the workspace's target
//! directory), so after the first run only the new crate and its SDK copy
//! recompile. They run with the outer cargo's flags and wrappers removed, as
//! in `plugins/build_components.rs`: those are for this workspace's build.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use clap::Parser;
use dashdice::cli::{Cli, CliError, run};
use dashdice_mode_sdk::{Action, Event, MatchConfig};
use dashdice_runtime::{Limits, Runtime, Step};
use dashdice_tools::scaffold::ScaffoldError;
use serde_json::Value;

fn dashdice(args: &[&str]) -> Result<String, CliError> {
    let cli = Cli::try_parse_from(std::iter::once("dashdice").chain(args.iter().copied()))
        .expect("arguments parse");
    let mut out = Vec::new();
    run(cli, &mut out)?;
    Ok(String::from_utf8(out).expect("utf-8 output"))
}

/// A fresh directory under the system's temporary directory: outside this
/// repository, so no workspace of ours is around the new crate.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dashdice-scaffold-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create a scratch directory");
    dir
}

/// Where the nested builds put their output, shared between runs.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .parent()
                .expect("tests/ sits in the workspace root")
                .join("target")
        })
        .join("scaffold")
}

/// Runs `cargo <args>` in `dir` as a designer would, but into the shared
/// target directory, and fails the test with cargo's output if it fails.
fn cargo(dir: &Path, args: &[&str]) {
    let started = Instant::now();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir());
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd.output().expect("run cargo");
    assert!(
        output.status.success(),
        "cargo {} in {} failed:\n{}\n{}",
        args.join(" "),
        dir.display(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Shown with --nocapture: how long a designer waits.
    eprintln!("cargo {}: {:.1?}", args.join(" "), started.elapsed());
}

#[test]
fn a_new_mode_tests_builds_and_loads_outside_the_repository() {
    let scratch = scratch("build");
    let dir = scratch.join("demo-dice");
    let path = dir.to_str().expect("a UTF-8 temporary directory");
    let out = dashdice(&["mode", "new", "demo-dice", "--path", path]).expect("mode new");
    let wasm = "target/wasm32-wasip2/release/dashdice_mode_demo_dice.wasm";
    assert!(out.contains("crate dashdice-mode-demo-dice"), "{out}");
    assert!(
        out.contains(&format!("dashdice mode publish {wasm}")),
        "{out}"
    );

    cargo(&dir, &["test", "--offline"]);
    cargo(
        &dir,
        &[
            "build",
            "--offline",
            "--release",
            "--target",
            "wasm32-wasip2",
        ],
    );

    let component = target_dir().join(wasm.trim_start_matches("target/"));
    let bytes = std::fs::read(&component).expect("the component was built");
    let runtime = Runtime::new(Limits::default()).expect("runtime");
    let mode = runtime.load(&bytes).expect("the component loads");
    let info = mode.info();
    assert_eq!(info.id, "demo-dice");
    assert_eq!(info.name, "Demo Dice");
    assert!(
        info.actions.iter().any(|a| a.name == "double-down"),
        "{:?}",
        info.actions
    );

    // The custom action works through the sandbox, not only natively.
    let config = MatchConfig {
        players: vec!["alice".into(), "bob".into()],
        first_player: Some("alice".into()),
        options: String::new(),
    };
    let started = mode.start(&config, &[7; 32]).expect("start");
    let rolled = mode
        .act(
            &started.outcome.state,
            "alice",
            &Step::Apply(Action::Roll { dice: vec![3, 4] }),
        )
        .expect("roll");
    let doubled = mode
        .act(
            &rolled.outcome.state,
            "alice",
            &Step::Apply(Action::Custom {
                name: "double-down".into(),
                payload: String::new(),
            }),
        )
        .expect("double down");
    assert!(
        matches!(&doubled.outcome.events[..], [Event::Custom { name, .. }] if name == "doubled_down"),
        "{:?}",
        doubled.outcome.events
    );
    let view: Value = serde_json::from_str(&doubled.view).expect("view JSON");
    assert_eq!(view["mode"], "demo-dice");
    assert_eq!(view["showdown"], true);

    let _ = std::fs::remove_dir_all(&scratch);
}

#[test]
fn mode_new_refuses_bad_ids_and_existing_directories() {
    let scratch = scratch("refusals");
    for bad in ["Demo", "demo_dice", "1dice", "-x", "", &"x".repeat(33)] {
        let path = scratch.join("bad");
        let path = path.to_str().expect("a UTF-8 temporary directory");
        // After `--`, so that "-x" is an id rather than a flag.
        let err = dashdice(&["mode", "new", "--path", path, "--", bad]).expect_err(bad);
        assert!(
            matches!(err, CliError::Scaffold(ScaffoldError::InvalidId(_))),
            "{bad}: {err}"
        );
        assert!(err.to_string().contains("a-z, 0-9 and '-'"), "{err}");
        assert!(!scratch.join("bad").exists(), "{bad} wrote something");
    }

    // A directory with something in it is left alone.
    let taken = scratch.join("taken");
    std::fs::create_dir_all(&taken).expect("mkdir");
    std::fs::write(taken.join("notes.txt"), "mine").expect("write");
    let path = taken.to_str().expect("a UTF-8 temporary directory");
    let err = dashdice(&["mode", "new", "demo-dice", "--path", path]).expect_err("taken");
    assert!(
        matches!(err, CliError::Scaffold(ScaffoldError::NotEmpty(_))),
        "{err}"
    );
    assert!(err.to_string().contains("not empty"), "{err}");
    let left: Vec<_> = std::fs::read_dir(&taken)
        .expect("read dir")
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert_eq!(left, ["notes.txt"]);

    // So is a display name with control characters in it.
    let fresh = scratch.join("fresh");
    let path = fresh.to_str().expect("a UTF-8 temporary directory");
    let err = dashdice(&["mode", "new", "ok", "--path", path, "--name", "a\u{7}b"])
        .expect_err("control character");
    assert!(
        matches!(err, CliError::Scaffold(ScaffoldError::InvalidName { .. })),
        "{err}"
    );
    assert!(!fresh.exists());

    let _ = std::fs::remove_dir_all(&scratch);
}
