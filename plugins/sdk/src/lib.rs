//! The DashDice mode SDK: everything a game mode needs except its rules.
//!
//! A mode is a type implementing [`Rules`], exported as a WebAssembly component
//! with [`export_mode!`]:
//!
//! ```ignore
//! pub struct MyMode;
//! impl dashdice_mode_sdk::Rules for MyMode { /* roll, bank, ... */ }
//! dashdice_mode_sdk::export_mode!(MyMode);
//! ```
//!
//! The same crate compiles natively, so its rules are unit-tested with plain
//! `cargo test` through [`testing::Game`], which runs the very driver
//! ([`rules::apply`] and friends) that the component runs.
//!
//! Module map: [`types`] is the contract in Rust; [`dice`] and [`entropy`] turn
//! host entropy into dice; [`table`] is the shared turn table; [`rules`] is the
//! trait and the driver; `guest` (wasm32 only) is the generated-bindings edge.

pub mod dice;
pub mod entropy;
pub mod json;
pub mod rules;
pub mod table;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;
pub mod types;

#[cfg(target_arch = "wasm32")]
pub mod guest;

pub use dice::TwoDice;
pub use entropy::Entropy;
pub use json::JsonObject;
pub use rules::{DEFAULT_BOT_BANKS_AT, Rules, no_options, standard_actions};
pub use table::{Seat, Status, Table};
pub use types::*;

/// Exports a [`Rules`] type as the component's `dashdice:mode/game`
/// implementation. Does nothing when compiled natively.
#[macro_export]
macro_rules! export_mode {
    ($rules:ty) => {
        #[cfg(target_arch = "wasm32")]
        #[allow(unsafe_code)]
        const _: () = {
            type DashdiceMode = $crate::guest::Adapter<$rules>;
    $crate::guest::export!(DashdiceMode with_types_in $crate::guest);
        };
    };
}
