//! dashdice-match-host: the `dashdice match-host` role.
//!
//! [`MatchHost`] is the hosting logic (load, check the actor, fair dice, call
//! the mode, compare-and-set commit); [`service`] puts it on NATS.
//!
//! **Architecture Invariant:** the hosting logic knows neither NATS nor Redis
//! commands: it talks to modes through `dashdice-runtime` and to Redis through
//! `dashdice-store`'s typed calls. Only [`service`] touches NATS.

pub mod abandon;
mod hosting;
pub mod published;
pub mod service;
mod stored;
pub mod versions;

pub use hosting::*;
