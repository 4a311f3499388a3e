//! dashdice-proto: what travels between dashdice's roles, and nothing else.
//!
//! - [`archive`]: profiles, stats, history, archived matches and
//!   leaderboards, as the archiver answers them.
//! - [`bus`]: every NATS subject, header and queue group, the reply envelope
//!   and W3C trace context in NATS headers.
//! - [`matches`]: the match host's requests, replies and events (JSON).
//! - [`queue`]: the matchmaker's requests, replies, notices and stored player
//!   states (JSON).
//! - [`presence`]: who is online, how and doing what; the lobby's figures.
//! - [`friends`]: friend requests, answers and lists.
//! - [`notify`]: notification requests, the inbox, devices and broadcasts.
//! - [`record`]: a finished match's record (JetStream, `match verify`).
//! - [`catalog`]: the published modes as stored on NATS (pointers,
//!   versions, quarantines) and the signing message.
//! - [`client`]: typed clients of the match host and the matchmaker (trace
//!   headers, timeouts, retries with backoff); [`ErrorCode`]: every stable
//!   error code.
//! - [`ModeHash`]: a mode version's identity; [`ids`]: id limits and fresh
//!   ids; [`clock`]: time, injectable.
//!
//! **Architecture Invariant:** this is the only crate that spells a NATS
//! subject or header name (a tidy test in `tests/` checks it). It knows no
//! wasmtime, no Redis and no HTTP: the gateway, the matchmaker and tools
//! depend on it without pulling any of those in.

pub mod archive;
pub mod bus;
pub mod catalog;
pub mod client;
pub mod clock;
mod error;
pub mod friends;
pub mod ids;
pub mod matches;
mod mode_hash;
pub mod notify;
pub mod presence;
pub mod queue;
pub mod record;

pub use error::ErrorCode;
pub use mode_hash::{BadHash, ModeHash};
