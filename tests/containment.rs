//! A hostile or broken component never hurts the host: every misbehaviour ends
//! in the typed error that names it, and the next call on a good mode succeeds.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use dashdice_mode_sdk::{Action, Event, MatchConfig, ModeError};
use dashdice_runtime::{CallError, Limit, Limits, LoadError, Mode, Runtime, Step};
use dashdice_tests::{HOSTILE, NOT_A_MODE, builtin, runtime};

fn hostile() -> Arc<Mode> {
    static MODE: OnceLock<Arc<Mode>> = OnceLock::new();
    MODE.get_or_init(|| Arc::new(runtime().load(HOSTILE).expect("the hostile mode loads")))
        .clone()
}

fn config(options: &str) -> MatchConfig {
    MatchConfig {
        players: vec!["a".into(), "b".into()],
        first_player: Some("a".into()),
        options: options.into(),
    }
}

fn fresh_state(mode: &Mode) -> Vec<u8> {
    mode.start(&config(""), &[0; 32])
        .expect("start")
        .outcome
        .state
}

/// Asks the hostile mode to misbehave, and reports how long containment took.
fn provoke(what: &str) -> CallError {
    let mode = hostile();
    let state = fresh_state(&mode);
    let started = Instant::now();
    let action = Action::Custom {
        name: what.into(),
        payload: String::new(),
    };
    let err = mode
        .act(&state, "a", &Step::Apply(action))
        .expect_err("the hostile action must fail");
    eprintln!("{what}: contained in {:?}: {err}", started.elapsed());
    err
}

/// After any misbehaviour, good modes (and the hostile one, on a fresh
/// instance) keep serving.
fn assert_host_still_serves() {
    let classic = builtin("classic");
    let state = fresh_state(&classic);
    let acted = classic
        .act(&state, "a", &Step::Apply(Action::Roll { dice: vec![3, 4] }))
        .expect("a good mode still works");
    assert!(acted.view.contains("\"turn_score\":7"), "{}", acted.view);

    let mode = hostile();
    let state = fresh_state(&mode);
    mode.act(&state, "a", &Step::Apply(Action::Roll { dice: vec![2, 3] }))
        .expect("the hostile mode still serves normal calls on a fresh instance");
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let err = provoke("spin");
    assert!(
        matches!(err, CallError::Limit(Limit::Fuel { budget }) if budget == Limits::default().fuel),
        "{err:?}"
    );
    assert!(err.to_string().contains("CPU limit"), "{err}");
    assert_host_still_serves();
}

#[test]
fn a_memory_bomb_hits_the_memory_limit() {
    let err = provoke("bomb");
    assert!(
        matches!(err, CallError::Limit(Limit::Memory { max_bytes }) if max_bytes == Limits::default().memory_bytes),
        "{err:?}"
    );
    assert!(err.to_string().contains("memory limit"), "{err}");
    assert_host_still_serves();
}

#[test]
fn a_panic_is_reported_with_its_message() {
    let err = provoke("panic");
    match &err {
        CallError::Panicked { message } => {
            assert!(
                message.contains("hostile mode panicked on purpose"),
                "{message}"
            );
        }
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_host_still_serves();
}

#[test]
fn runaway_recursion_hits_the_stack_limit() {
    let err = provoke("recurse");
    assert!(
        matches!(err, CallError::Limit(Limit::Stack { .. })),
        "{err:?}"
    );
    assert_host_still_serves();
}

#[test]
fn a_huge_state_is_refused() {
    let err = provoke("huge-state");
    match err {
        CallError::Limit(Limit::StateSize { bytes, max_bytes }) => {
            assert!(bytes > 256 << 10, "{bytes}");
            assert_eq!(max_bytes, Limits::default().state_bytes);
        }
        other => panic!("expected StateSize, got {other:?}"),
    }
    assert_host_still_serves();
}

#[test]
fn exiting_the_process_only_ends_the_call() {
    let err = provoke("exit");
    assert!(matches!(err, CallError::Trapped { .. }), "{err:?}");
    assert_host_still_serves();
}

#[test]
fn misbehaving_at_start_is_contained_too() {
    let mode = hostile();
    for (options, check) in [
        (
            "spin",
            (|e: &CallError| matches!(e, CallError::Limit(Limit::Fuel { .. })))
                as fn(&CallError) -> bool,
        ),
        ("bomb", |e| {
            matches!(e, CallError::Limit(Limit::Memory { .. }))
        }),
        ("panic", |e| matches!(e, CallError::Panicked { .. })),
        ("huge-state", |e| {
            matches!(e, CallError::Limit(Limit::StateSize { .. }))
        }),
    ] {
        let err = mode
            .start(&config(options), &[0; 32])
            .expect_err("start must fail");
        assert!(check(&err), "{options}: {err:?}");
    }
    assert_host_still_serves();
}

#[test]
fn unknown_custom_actions_are_a_typed_refusal_not_a_trap() {
    let err = provoke("dance");
    assert!(
        matches!(err, CallError::Rejected(ModeError::UnknownAction(ref a)) if a == "dance"),
        "{err:?}"
    );
    assert!(!err.is_mode_fault());
}

#[test]
fn the_sandbox_grants_no_clock_env_files_or_randomness() {
    let mode = hostile();
    let state = fresh_state(&mode);
    let probe = || {
        let acted = mode
            .act(
                &state,
                "a",
                &Step::Apply(Action::Custom {
                    name: "probe".into(),
                    payload: String::new(),
                }),
            )
            .expect("probe");
        let payload = acted
            .outcome
            .events
            .iter()
            .find_map(|e| match e {
                Event::Custom { name, payload } if name == "probe" => Some(payload.clone()),
                _ => None,
            })
            .expect("probe event");
        serde_json::from_str::<serde_json::Value>(&payload).expect("probe json")
    };
    let first = probe();
    assert_eq!(first["wall_clock_secs"], 0, "{first}");
    assert_eq!(first["env_vars"], 0, "{first}");
    assert_eq!(first["args"], 0, "{first}");
    assert_eq!(first["root_dir_readable"], false, "{first}");
    // No entropy of its own: "random" seeds are the same on every instance.
    assert_eq!(first["random_hash"], probe()["random_hash"]);
}

#[test]
fn a_component_of_another_world_is_not_a_mode() {
    match runtime().load(NOT_A_MODE) {
        Err(LoadError::NotAMode(message)) => {
            assert!(message.contains("dashdice:mode/game"), "{message}")
        }
        Err(other) => panic!("expected NotAMode, got {other:?}"),
        Ok(_) => panic!("loaded a component that is not a mode"),
    }
}

#[test]
fn bytes_that_are_not_a_component_are_refused() {
    let core_module = b"\0asm\x01\0\0\0";
    match runtime().load(core_module) {
        Err(LoadError::NotAComponent(m)) => assert!(m.contains("core WebAssembly module"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    match runtime().load(b"{\"not\": \"wasm\"}") {
        Err(LoadError::NotAComponent(m)) => assert!(m.contains("not WebAssembly"), "{m}"),
        other => panic!("{:?}", other.err()),
    }
    // A component preamble followed by garbage fails validation, typed.
    let mut truncated = HOSTILE[..HOSTILE.len() / 2].to_vec();
    truncated.extend_from_slice(&[0xff; 16]);
    assert!(matches!(
        runtime().load(&truncated),
        Err(LoadError::NotAComponent(_))
    ));
}

#[test]
fn a_trapped_session_is_poisoned() {
    let mode = hostile();
    let state = fresh_state(&mode);
    let mut session = mode.session().expect("session");
    let spin = Action::Custom {
        name: "spin".into(),
        payload: String::new(),
    };
    assert!(matches!(
        session.apply(&state, "a", &spin),
        Err(CallError::Limit(Limit::Fuel { .. }))
    ));
    assert!(matches!(
        session.apply(&state, "a", &Action::Roll { dice: vec![3, 4] }),
        Err(CallError::Poisoned)
    ));
}

#[test]
fn the_pool_bounds_live_instances() {
    let limits = Limits {
        concurrent_instances: 2,
        ..Limits::default()
    };
    let runtime = Runtime::new(limits).expect("runtime");
    let (_, bytes) = dashdice_runtime::builtin::MODES[0];
    let mode = runtime.load(bytes).expect("load");
    let a = mode.session().expect("first");
    let _b = mode.session().expect("second");
    match mode.session() {
        Err(CallError::Limit(Limit::ConcurrentInstances { max: 2 })) => {}
        Err(other) => panic!("expected the pool limit, got {other:?}"),
        Ok(_) => panic!("a third instance fit in a pool of two"),
    }
    drop(a);
    mode.session().expect("a slot is free again");
}

#[test]
fn hostile_calls_in_parallel_do_not_disturb_good_ones() {
    let threads: Vec<_> = (0..4)
        .map(|t| {
            std::thread::spawn(move || {
                for i in 0..10 {
                    if (t + i) % 2 == 0 {
                        let err = provoke(["spin", "bomb", "panic", "recurse"][(t + i) % 4]);
                        assert!(err.is_mode_fault());
                    } else {
                        assert_host_still_serves();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("no test thread panicked");
    }
}
