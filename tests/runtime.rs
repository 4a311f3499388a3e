//! The real `.wasm` components through the runtime: they load, describe
//! themselves, and behave exactly like the same rules compiled natively.

use dashdice_mode_classic::Classic;
use dashdice_mode_last_line::LastLine;
use dashdice_mode_sdk::{Action, BotMove, MatchConfig, ModeError, ModeInfo, Outcome, Rules, rules};
use dashdice_mode_true_grit::TrueGrit;
use dashdice_mode_zero_hour::ZeroHour;
use dashdice_runtime::builtin;
use dashdice_runtime::registry::ModeRegistry;
use dashdice_runtime::{CallError, Limits, ModeHash, Runtime, Step};
use dashdice_tests::{builtin, runtime};
use proptest::prelude::*;

type Throw = fn(&[u8], &[u8]) -> Result<Vec<u8>, ModeError>;

/// The same mode compiled natively, through the SDK driver.
struct Native {
    info: fn() -> ModeInfo,
    start: fn(&MatchConfig, &[u8]) -> Result<Outcome, ModeError>,
    throw: Throw,
    apply: fn(&[u8], &str, &Action) -> Result<Outcome, ModeError>,
    view: fn(&[u8]) -> Result<String, ModeError>,
    bot: fn(&[u8]) -> Result<BotMove, ModeError>,
}

fn native_of<R: Rules>() -> Native {
    Native {
        info: R::info,
        start: rules::start::<R>,
        throw: rules::throw_dice::<R>,
        apply: rules::apply::<R>,
        view: rules::view::<R>,
        bot: rules::bot::<R>,
    }
}

fn native(id: &str) -> Native {
    match id {
        "classic" => native_of::<Classic>(),
        "zero-hour" => native_of::<ZeroHour>(),
        "last-line" => native_of::<LastLine>(),
        "true-grit" => native_of::<TrueGrit>(),
        other => panic!("no native build of {other}"),
    }
}

const MODES: [&str; 4] = ["classic", "zero-hour", "last-line", "true-grit"];

fn config() -> MatchConfig {
    MatchConfig {
        players: vec!["alice".into(), "bob".into()],
        first_player: None,
        options: String::new(),
    }
}

#[test]
fn every_builtin_loads_and_describes_itself_like_its_native_build() {
    for id in MODES {
        let mode = builtin(id);
        assert_eq!(mode.info(), &(native(id).info)(), "{id}");
        assert_eq!(mode.info().id, id);
        let bytes = dashdice_runtime::builtin::bytes(id).expect("embedded");
        assert_eq!(mode.hash(), ModeHash::of(bytes));
    }
    let limits: Vec<u32> = MODES
        .iter()
        .map(|id| builtin(id).info().turn_time_limit_ms)
        .collect();
    assert_eq!(limits, [30_000, 45_000, 30_000, 60_000]);
}

#[test]
fn start_decides_the_first_player_from_entropy() {
    for id in MODES {
        let mode = builtin(id);
        let mut firsts = std::collections::BTreeSet::new();
        for byte in 0..16u8 {
            let started = mode.start(&config(), &[byte; 32]).expect("start");
            let native = (native(id).start)(&config(), &[byte; 32]).expect("native start");
            assert_eq!(started.outcome, native, "{id}");
            firsts.insert(started.outcome.turn.expect("someone is on turn"));
        }
        assert_eq!(firsts.len(), 2, "{id}: both players start sometimes");
    }
}

#[test]
fn the_mode_throws_its_own_dice_identically_in_wasm_and_natively() {
    for id in MODES {
        let mode = builtin(id);
        let state = mode
            .start(&config(), &[1; 32])
            .expect("start")
            .outcome
            .state;
        let mut session = mode.session().expect("session");
        for seed in 0..64u8 {
            let entropy: Vec<u8> = (0..32)
                .map(|i| seed.wrapping_mul(31).wrapping_add(i))
                .collect();
            assert_eq!(
                session.throw_dice(&state, &entropy).expect("throw"),
                (native(id).throw)(&state, &entropy).expect("native throw"),
                "{id}"
            );
        }
    }
}

#[test]
fn refusals_are_typed_and_change_nothing() {
    let mode = builtin("classic");
    let started = mode.start(&config(), &[0; 32]).expect("start");
    let state = started.outcome.state;
    let on_turn = started.outcome.turn.expect("turn");
    let other = if on_turn == "alice" { "bob" } else { "alice" };
    let cases: Vec<(&str, Step, ModeError)> = vec![
        (
            other,
            Step::Apply(Action::Bank),
            ModeError::NotYourTurn(on_turn.clone()),
        ),
        (
            "mallory",
            Step::Apply(Action::Bank),
            ModeError::NotAPlayer("mallory".into()),
        ),
        (
            &on_turn,
            Step::Apply(Action::Bank),
            ModeError::NothingToBank,
        ),
        (
            &on_turn,
            Step::Apply(Action::Custom {
                name: "teleport".into(),
                payload: String::new(),
            }),
            ModeError::UnknownAction("teleport".into()),
        ),
        (
            &on_turn,
            Step::Roll {
                entropy: vec![0; 8],
            },
            ModeError::InvalidEntropy("need at least 32 bytes, got 8".into()),
        ),
    ];
    for (actor, step, expected) in cases {
        match mode.act(&state, actor, &step) {
            Err(CallError::Rejected(e)) => assert_eq!(e, expected),
            other => panic!("{step:?}: expected {expected:?}, got {other:?}"),
        }
    }
    assert!(matches!(
        mode.act(
            &state,
            &on_turn,
            &Step::Apply(Action::Roll { dice: vec![7, 1] })
        ),
        Err(CallError::Rejected(ModeError::InvalidDice(_)))
    ));
    assert!(matches!(
        mode.act(b"garbage", &on_turn, &Step::Apply(Action::Bank)),
        Err(CallError::Rejected(ModeError::CorruptState(_)))
    ));
    assert!(matches!(
        mode.view(&[0xff; 3]),
        Err(CallError::Rejected(ModeError::CorruptState(_)))
    ));
    assert!(matches!(
        mode.bot(&[0xff; 3]),
        Err(CallError::Rejected(ModeError::CorruptState(_)))
    ));
    // The state we kept is still good.
    mode.act(
        &state,
        &on_turn,
        &Step::Apply(Action::Roll { dice: vec![3, 4] }),
    )
    .expect("the untouched state still plays");
}

/// A random walk through a game, by step kind and entropy.
fn steps() -> impl Strategy<Value = Vec<(u8, [u8; 32])>> {
    proptest::collection::vec((0u8..24, any::<[u8; 32]>()), 1..120)
}

/// Plays the same steps on the component and natively; every outcome, view,
/// bot move and refusal must be identical.
fn differential(id: &str, start_entropy: [u8; 32], steps: &[(u8, [u8; 32])]) {
    let mode = builtin(id);
    let native = native(id);
    let started = mode.start(&config(), &start_entropy).expect("start");
    assert_eq!(
        started.outcome,
        (native.start)(&config(), &start_entropy).expect("native")
    );
    let mut state = started.outcome.state;
    let mut turn = started.outcome.turn;
    for (kind, entropy) in steps {
        match (mode.bot(&state), (native.bot)(&state)) {
            (Ok(wasm), Ok(native)) => assert_eq!(wasm, native, "{id}: bot"),
            (Err(CallError::Rejected(e)), Err(n)) => assert_eq!(e, n, "{id}: bot"),
            (w, n) => panic!("{id}: bot: wasm {w:?} but native {n:?}"),
        }
        let on_turn = turn.clone().unwrap_or_else(|| "alice".into());
        let other = if on_turn == "alice" { "bob" } else { "alice" };
        let (actor, step) = match kind {
            0..=13 => (
                on_turn.clone(),
                Step::Roll {
                    entropy: entropy.to_vec(),
                },
            ),
            14..=18 => (on_turn.clone(), Step::Apply(Action::Bank)),
            19 => (on_turn.clone(), Step::Apply(Action::Timeout)),
            20 => (
                other.to_owned(),
                Step::Apply(Action::Roll { dice: vec![3, 4] }),
            ),
            21 => (other.to_owned(), Step::Apply(Action::Forfeit)),
            22 => (
                on_turn.clone(),
                Step::Apply(Action::Roll {
                    dice: vec![entropy[0] % 8, entropy[1] % 8],
                }),
            ),
            _ => ("mallory".to_owned(), Step::Apply(Action::Bank)),
        };
        let wasm = mode.act(&state, &actor, &step);
        let action = match (&step, &wasm) {
            (Step::Roll { .. }, Ok(acted)) => Action::Roll {
                dice: acted.dice.clone().expect("a roll reports its dice"),
            },
            (Step::Roll { entropy }, Err(_)) => Action::Roll {
                dice: (native.throw)(&state, entropy).unwrap_or_default(),
            },
            (Step::Apply(a), _) => a.clone(),
        };
        if let (Step::Roll { entropy }, Ok(acted)) = (&step, &wasm) {
            assert_eq!(
                acted.dice.as_ref(),
                (native.throw)(&state, entropy).ok().as_ref()
            );
        }
        let expected = (native.apply)(&state, &actor, &action);
        match (wasm, expected) {
            (Ok(acted), Ok(outcome)) => {
                assert_eq!(acted.outcome, outcome, "{id}: {step:?}");
                assert_eq!(acted.outcome.state, outcome.state);
                assert_eq!(
                    acted.view,
                    (native.view)(&outcome.state).expect("native view")
                );
                state = outcome.state;
                turn = outcome.turn;
            }
            (Err(CallError::Rejected(e)), Err(n)) => assert_eq!(e, n, "{id}: {step:?}"),
            (w, n) => panic!("{id}: {step:?}: wasm {w:?} but native {n:?}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn classic_wasm_matches_native(seed in any::<[u8; 32]>(), steps in steps()) {
        differential("classic", seed, &steps);
    }

    #[test]
    fn zero_hour_wasm_matches_native(seed in any::<[u8; 32]>(), steps in steps()) {
        differential("zero-hour", seed, &steps);
    }

    #[test]
    fn last_line_wasm_matches_native(seed in any::<[u8; 32]>(), steps in steps()) {
        differential("last-line", seed, &steps);
    }

    #[test]
    fn true_grit_wasm_matches_native(seed in any::<[u8; 32]>(), steps in steps()) {
        differential("true-grit", seed, &steps);
    }
}

#[test]
fn a_warm_session_gives_the_same_results_as_fresh_instances() {
    let mode = builtin("zero-hour");
    let mut session = mode.session().expect("session");
    let started = mode.start(&config(), &[5; 32]).expect("start");
    let mut fresh_state = started.outcome.state.clone();
    let mut warm_state = started.outcome.state;
    let mut turn = started.outcome.turn;
    for i in 0..40u8 {
        let Some(actor) = turn.clone() else { break };
        assert_eq!(
            session.bot(&warm_state).expect("warm bot"),
            mode.bot(&fresh_state).expect("fresh bot")
        );
        let step = if i % 5 == 4 {
            Step::Apply(Action::Bank)
        } else {
            Step::Roll {
                entropy: vec![i; 32],
            }
        };
        let fresh = mode.act(&fresh_state, &actor, &step);
        let warm = session.act(&warm_state, &actor, &step);
        match (fresh, warm) {
            (Ok(f), Ok(w)) => {
                assert_eq!(f.outcome, w.outcome);
                assert_eq!(f.view, w.view);
                fresh_state = f.outcome.state;
                warm_state = w.outcome.state;
                turn = f.outcome.turn;
            }
            (Err(f), Err(w)) => assert_eq!(f.to_string(), w.to_string()),
            (f, w) => panic!("fresh {f:?} vs warm {w:?}"),
        }
    }
}

/// The same component with a custom section appended: same behaviour, new bytes,
/// so a new version.
fn new_version_of(bytes: &[u8]) -> Vec<u8> {
    let name = b"dashdice-test";
    let payload = b"rebuilt";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload);
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8);
    out.extend_from_slice(&section);
    out
}

#[test]
fn the_registry_keeps_versions_by_id_and_hash() {
    let registry = ModeRegistry::with_builtins(Runtime::new(Limits::default()).expect("runtime"))
        .expect("builtins");
    let ids: Vec<String> = registry.list().into_iter().map(|m| m.id).collect();
    assert_eq!(ids, ["classic", "last-line", "true-grit", "zero-hour"]);

    let v1_bytes = builtin::bytes("classic").expect("classic");
    let v1 = registry.current("classic").expect("current");
    assert_eq!(v1.hash(), ModeHash::of(v1_bytes));
    // Installing the same bytes again is the same version, not a recompile.
    let again = registry.install(v1_bytes).expect("reinstall");
    assert!(std::sync::Arc::ptr_eq(&v1, &again));

    let v2_bytes = new_version_of(v1_bytes);
    let v2 = registry.install(&v2_bytes).expect("new version");
    assert_ne!(v2.hash(), v1.hash());
    assert_eq!(
        registry.current("classic").expect("current").hash(),
        v2.hash()
    );
    // A match that started on v1 still finds v1.
    assert_eq!(
        registry
            .version("classic", v1.hash())
            .expect("v1 kept")
            .hash(),
        v1.hash()
    );
    let summary = registry
        .list()
        .into_iter()
        .find(|m| m.id == "classic")
        .expect("listed");
    assert_eq!((summary.versions, summary.current), (2, v2.hash()));
    assert!(registry.current("no-such-mode").is_none());
    assert!(registry.version("zero-hour", v1.hash()).is_none());
}

#[test]
fn compiled_artifacts_are_cached_on_disk_by_engine_and_content() {
    let dir = std::env::temp_dir().join(format!("dashdice-artifacts-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let bytes = builtin::bytes("last-line").expect("last-line");
    let hash = ModeHash::of(bytes);
    {
        let runtime = Runtime::new(Limits::default())
            .expect("runtime")
            .with_artifact_dir(&dir);
        runtime.load(bytes).expect("load compiles and stores");
    }
    let artifacts: Vec<_> = walk(&dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(artifacts.len(), 1, "{artifacts:?}");
    assert!(artifacts[0].ends_with(format!("{hash}.cwasm")));
    let written = std::fs::metadata(&artifacts[0])
        .and_then(|m| m.modified())
        .expect("mtime");

    // A second runtime (a restart) loads from the artifact and works.
    let runtime = Runtime::new(Limits::default())
        .expect("runtime")
        .with_artifact_dir(&dir);
    let mode = runtime.load(bytes).expect("load from cache");
    let started = mode.start(&config(), &[0; 32]).expect("start");
    assert!(started.view.contains("\"mode\":\"last-line\""));
    let still = std::fs::metadata(&artifacts[0])
        .and_then(|m| m.modified())
        .expect("mtime");
    assert_eq!(written, still, "the artifact was reused, not rewritten");
    drop(mode);
    drop(runtime);

    // A corrupt artifact is ignored and the component recompiled.
    std::fs::write(&artifacts[0], b"not an artifact").expect("corrupt it");
    let runtime = Runtime::new(Limits::default())
        .expect("runtime")
        .with_artifact_dir(&dir);
    runtime
        .load(bytes)
        .expect("recompiles past a corrupt artifact");
    let _ = std::fs::remove_dir_all(&dir);
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[test]
fn one_runtime_serves_all_modes_concurrently() {
    let threads: Vec<_> = MODES
        .iter()
        .map(|id| {
            std::thread::spawn(move || {
                let mode = builtin(id);
                let mut state = mode
                    .start(&config(), &[9; 32])
                    .expect("start")
                    .outcome
                    .state;
                let mut turn = Some("x".to_owned());
                let mut actor = mode
                    .start(&config(), &[9; 32])
                    .expect("start")
                    .outcome
                    .turn
                    .expect("turn");
                for i in 0..200u32 {
                    if turn.is_none() {
                        break;
                    }
                    let step = Step::Roll {
                        entropy: [i.to_le_bytes(); 8].concat(),
                    };
                    let acted = mode.act(&state, &actor, &step).expect("act");
                    state = acted.outcome.state;
                    turn = acted.outcome.turn;
                    if let Some(t) = &turn {
                        actor = t.clone();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("a mode thread panicked");
    }
    let _ = runtime();
}
