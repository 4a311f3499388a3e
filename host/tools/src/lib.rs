//! dashdice-tools: the designer and operator tools behind the CLI.
//!
//! - [`replay`], [`simulate`]: drive a mode component locally.
//! - [`check`]: whether a mode component is fit to publish.
//! - [`scaffold`]: `mode new`, a new mode crate that builds outside this
//!   repository.
//! - [`bench`]: load generators that are clients like any other (the match
//!   host and matchmaker on the bus, players on WebSockets).

pub mod bench;
pub mod check;
pub mod replay;
pub mod scaffold;
pub mod simulate;
