//! Load generators: each drives a running system as its clients would
//! (the roles over NATS; the gateway over WebSockets, as players) and
//! reports what it measured.

pub mod loadgen;
pub mod match_host;
pub mod matchmaker;

pub use match_host::{BenchError, Options, Report, match_host};

/// The `q`-quantile of sorted samples (0 if there are none).
pub fn quantile(sorted: &[u32], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    u64::from(sorted[((sorted.len() - 1) as f64 * q).round() as usize])
}
