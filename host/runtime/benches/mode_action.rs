//! The cost of one player action, three ways:
//!
//! - **fresh**: a fresh pooled instance per action (the service path): instantiate,
//!   call, drop;
//! - **warm**: the same calls on a live instance;
//! - **native**: the same rules compiled natively, through the same SDK driver.
//!
//! `apply` is one `apply` call on a mid-game state; `act` is a whole roll as the
//! match host does it: `throw-dice`, `apply`, then `view`.
//!
//! Run: `cargo bench -p dashdice-runtime --bench mode_action`. After criterion's own
//! output it prints a side-by-side table with the WASM/native ratios.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion};
use dashdice_mode_sdk::{Action, MatchConfig, Rules, rules};
use dashdice_runtime::builtin;
use dashdice_runtime::{Limits, Mode, Runtime, Step};

const ENTROPY: [u8; 32] = [42; 32];

fn load(id: &str) -> Mode {
    let bytes = builtin::bytes(id).expect("a built-in mode");
    Runtime::new(Limits::default())
        .expect("runtime")
        .load(bytes)
        .expect("load")
}

/// A mid-game state: a few rolls into the first turn, so the state and view
/// have realistic contents.
fn mid_game(mode: &Mode) -> (Vec<u8>, String) {
    let config = MatchConfig {
        players: vec!["alice".into(), "bob".into()],
        first_player: Some("alice".into()),
        options: String::new(),
    };
    let mut state = mode.start(&config, &ENTROPY).expect("start").outcome.state;
    for dice in [[3, 4], [2, 5], [6, 4]] {
        state = mode
            .act(
                &state,
                "alice",
                &Step::Apply(Action::Roll {
                    dice: dice.to_vec(),
                }),
            )
            .expect("roll")
            .outcome
            .state;
    }
    (state, "alice".into())
}

fn roll() -> Action {
    Action::Roll { dice: vec![3, 4] }
}

fn native_act<R: Rules>(state: &[u8], actor: &str) -> String {
    let dice = rules::throw_dice::<R>(state, &ENTROPY).expect("throw");
    let outcome = rules::apply::<R>(state, actor, &Action::Roll { dice }).expect("apply");
    rules::view::<R>(&outcome.state).expect("view")
}

fn bench_classic(c: &mut Criterion) {
    let mode = load("classic");
    let (state, actor) = mid_game(&mode);
    let mut g = c.benchmark_group("classic");
    g.bench_function("instantiate", |b| {
        b.iter(|| black_box(mode.session().expect("instance")))
    });
    g.bench_function("apply-fresh", |b| {
        b.iter(|| {
            let mut instance = mode.session().expect("instance");
            black_box(instance.apply(&state, &actor, &roll()).expect("apply"))
        })
    });
    let mut warm = mode.session().expect("instance");
    g.bench_function("apply-warm", |b| {
        b.iter(|| black_box(warm.apply(&state, &actor, &roll()).expect("apply")))
    });
    g.bench_function("apply-native", |b| {
        b.iter(|| {
            black_box(rules::apply::<dashdice_mode_classic::Classic>(
                &state,
                &actor,
                &roll(),
            ))
        })
    });
    let step = Step::Roll {
        entropy: ENTROPY.to_vec(),
    };
    g.bench_function("act-fresh", |b| {
        b.iter(|| black_box(mode.act(&state, &actor, &step).expect("act")))
    });
    g.bench_function("act-warm", |b| {
        b.iter(|| black_box(warm.act(&state, &actor, &step).expect("act")))
    });
    g.bench_function("act-native", |b| {
        b.iter(|| black_box(native_act::<dashdice_mode_classic::Classic>(&state, &actor)))
    });
    g.finish();
}

fn bench_modes(c: &mut Criterion) {
    let mut g = c.benchmark_group("act-fresh");
    for id in ["classic", "zero-hour", "last-line", "true-grit"] {
        let mode = load(id);
        let (state, actor) = mid_game(&mode);
        let step = Step::Roll {
            entropy: ENTROPY.to_vec(),
        };
        g.bench_with_input(BenchmarkId::from_parameter(id), &step, |b, step| {
            b.iter(|| black_box(mode.act(&state, &actor, step).expect("act")))
        });
    }
    g.finish();
}

/// Mean time in ns of one criterion benchmark, from its saved estimates.
fn mean_ns(id: &str) -> Option<f64> {
    let root = std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR").map(|d| std::path::Path::new(&d).join("criterion"))
        })
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target/criterion").into());
    let text = std::fs::read_to_string(root.join(id).join("new/estimates.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    v["mean"]["point_estimate"].as_f64()
}

fn print_table() {
    let us = |id: &str| mean_ns(id).map(|ns| ns / 1000.0);
    if let Some(i) = us("classic/instantiate") {
        println!("\nfresh pooled instance alone (store + instantiate + drop): {i:.2} µs");
    }
    println!(
        "\none action, mean µs (classic)     fresh instance   warm instance   native   fresh/native  warm/native"
    );
    for what in ["apply", "act"] {
        let (f, w, n) = (
            us(&format!("classic/{what}-fresh")),
            us(&format!("classic/{what}-warm")),
            us(&format!("classic/{what}-native")),
        );
        if let (Some(f), Some(w), Some(n)) = (f, w, n) {
            println!(
                "{what:<33} {f:>14.2} {w:>15.2} {n:>8.2} {:>13.1}x {:>11.1}x",
                f / n,
                w / n
            );
        }
    }
    println!("\nact on a fresh instance, by mode (mean µs)");
    for id in ["classic", "zero-hour", "last-line", "true-grit"] {
        if let Some(f) = us(&format!("act-fresh/{id}")) {
            println!("{id:<12} {f:>8.2}");
        }
    }
}

fn main() {
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    bench_classic(&mut c);
    bench_modes(&mut c);
    c.final_summary();
    print_table();
}
