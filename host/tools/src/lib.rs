//! dashdice-tools: the designer and operator tools behind the CLI.
//!
//! - [`replay`], [`simulate`]: drive a mode component locally.
//! - [`bench`]: load generators that are clients like any other (the match
//!   host and matchmaker on the bus, players on WebSockets).

pub mod bench;
pub mod replay;
pub mod simulate;
