//! Load generators: each drives a running system as its clients would
//! (the roles over NATS; the gateway over WebSockets, as players) and
//! reports what it measured.

pub mod loadgen;
pub mod match_host;
pub mod matchmaker;

pub use match_host::{BenchError, Options, Report, match_host};

/// Measured values (µs or ms), kept as an HDR histogram: quantiles within
/// 0.1 % in constant memory, however long the run.
#[derive(Clone, Debug)]
pub struct Samples(hdrhistogram::Histogram<u64>);

impl Default for Samples {
    fn default() -> Self {
        Samples(
            hdrhistogram::Histogram::new(3)
                .expect("three significant figures are within hdrhistogram's range"),
        )
    }
}

impl Samples {
    pub fn record(&mut self, value: u64) {
        self.0.saturating_record(value);
    }

    /// Adds another run's samples to these.
    pub fn add(&mut self, other: &Samples) {
        // Both have the same bounds, so this cannot fail.
        let _ = self.0.add(&other.0);
    }

    pub fn len(&self) -> u64 {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `q`-quantile (1.0 = the largest; 0 if there are none).
    pub fn quantile(&self, q: f64) -> u64 {
        match () {
            _ if self.0.is_empty() => 0,
            _ if q >= 1.0 => self.0.max(),
            _ => self.0.value_at_quantile(q),
        }
    }
}

impl FromIterator<u64> for Samples {
    fn from_iter<I: IntoIterator<Item = u64>>(values: I) -> Self {
        let mut samples = Samples::default();
        values.into_iter().for_each(|v| samples.record(v));
        samples
    }
}
