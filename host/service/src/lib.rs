//! dashdice-service: what every dashdice role runs on.
//!
//! - [`endpoints`]: the one endpoint loop every NATS role serves with (span
//!   joining the caller's trace, metrics, load shedding, reply).
//! - [`telemetry`]: logs, OTLP traces, Prometheus metrics and their names.
//! - [`startup`]: the one start-up path of a role process (runtime,
//!   telemetry, NATS connection, stopping on SIGTERM).
//! - [`local`]: nats-server and redis-server processes on loopback, for
//!   `dashdice up` and the test stacks.

pub mod endpoints;
pub mod local;
pub mod startup;
pub mod telemetry;

/// Chooses the process's TLS crypto provider (aws-lc) once: async-nats
/// brings ring and the JWKS client and firestore bring aws-lc, and rustls
/// refuses to guess between two. Call first thing in every process.
pub fn install_crypto() {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}
