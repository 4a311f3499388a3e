//! Helpers shared by the end-to-end tests.

use std::sync::{Arc, OnceLock};

use dashdice_runtime::builtin;
use dashdice_runtime::registry::ModeRegistry;
use dashdice_runtime::{Limits, Mode, Runtime};

/// The hostile test component (see plugins/test-components/hostile).
pub const HOSTILE: &[u8] = include_bytes!(env!("DASHDICE_TEST_HOSTILE"));
/// A valid component that implements another world.
pub const NOT_A_MODE: &[u8] = include_bytes!(env!("DASHDICE_TEST_NOT_A_MODE"));
/// A mode with hidden global state (plugins/test-components/nondeterministic).
pub const NONDETERMINISTIC: &[u8] = include_bytes!(env!("DASHDICE_TEST_NONDETERMINISTIC"));
/// A mode whose games never end (plugins/test-components/endless).
pub const ENDLESS: &[u8] = include_bytes!(env!("DASHDICE_TEST_ENDLESS"));
/// A mode whose bot asks for a move the mode refuses (plugins/test-components/bad-bot).
pub const BAD_BOT: &[u8] = include_bytes!(env!("DASHDICE_TEST_BAD_BOT"));

/// One runtime per test process, so each component compiles once.
pub fn runtime() -> &'static Runtime {
    static RUNTIME: OnceLock<Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| Runtime::new(Limits::default()).expect("runtime"))
}

/// A built-in mode loaded from its real component.
pub fn builtin(id: &str) -> Arc<Mode> {
    static MODES: OnceLock<Vec<(String, Arc<Mode>)>> = OnceLock::new();
    let modes = MODES.get_or_init(|| {
        builtin::MODES
            .iter()
            .map(|(id, bytes)| {
                (
                    (*id).to_owned(),
                    Arc::new(runtime().load(bytes).expect("load")),
                )
            })
            .collect()
    });
    modes
        .iter()
        .find(|(m, _)| m == id)
        .map(|(_, m)| m.clone())
        .expect("a built-in mode")
}

pub mod faults;
pub mod fcm;
pub mod matchmaking;
pub mod servers;
pub mod stack;

/// A fresh registry with the four built-in modes, on its own runtime (so a
/// service under test has its own instance pool).
pub fn registry() -> Arc<ModeRegistry> {
    Arc::new(
        ModeRegistry::with_builtins(Runtime::new(Limits::default()).expect("runtime"))
            .expect("modes"),
    )
}
