//! dashdice-catalog: designers' modes on NATS.
//!
//! - [`signing`]: ed25519 publisher keys and the keys a host trusts.
//! - [`buckets`]: the JetStream object store (component bytes by SHA-256)
//!   and the two KV buckets (mode pointers, quarantines), and every change
//!   to them: publish, roll back, retire, canary, quarantine, fetch.
//! - [`book`]: the watched in-memory view every role decides with: which
//!   version of a mode a new match gets, and what clients may play.
//!
//! **Architecture Invariant:** no wasmtime here. The catalog moves and
//! checks bytes and pointers; loading a component is the match host's
//! business (`dashdice-runtime`). The gateway and the matchmaker use the
//! book without pulling in a compiler.

pub mod book;
pub mod buckets;
pub mod signing;

pub use book::{ModeBook, Resolved};
pub use buckets::{Catalog, CatalogError, Published};
pub use signing::{PublicKey, PublisherKey, SignatureError, TrustedKeys};
