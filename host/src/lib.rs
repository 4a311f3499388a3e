//! dashdice: the DashDice game backend.
//!
//! See ARCHITECTURE.md for the map. In short: [`runtime`] loads game modes (WebAssembly
//! components) and runs them sandboxed; [`registry`] keeps the loaded modes by id
//! and version; [`builtin`] embeds the four stock modes; [`cli`] is the
//! `dashdice` command line, whose [`replay`] and [`simulate`] verbs drive modes
//! for designers.

pub mod bench;
pub mod builtin;
pub mod bus;
pub mod cli;
pub mod fair_dice;
pub mod gateway;
pub mod local;
pub mod match_service;
pub mod matches;
pub mod matchmaker_service;
pub mod matchmaking;
pub mod registry;
pub mod replay;
pub mod runtime;
pub mod simulate;
pub mod store;
pub mod telemetry;
