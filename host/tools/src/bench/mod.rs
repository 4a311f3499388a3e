//! Load generators: each drives a running system as its clients would
//! (the roles over NATS; the gateway over WebSockets, as players) and
//! reports what it measured.

pub mod archive;
pub mod loadgen;
pub mod match_host;
pub mod matchmaker;
pub mod presence;
pub mod publish;

pub use match_host::{BenchError, Options, Report, match_host};

/// Measured values (µs or ms), kept as an HDR histogram: quantiles within
/// 0.1 % in constant memory, however long the run.
#[derive(Clone, Debug)]
pub struct Samples(hdrhistogram::Histogram<u64>);

/// The largest value kept apart: an hour in µs (larger ones count as it).
const HIGHEST: u64 = 3_600_000_000;

impl Default for Samples {
    fn default() -> Self {
        // Fixed bounds, not an auto-resizing histogram: a saturating record
        // into one that has not grown yet clamps every value to its start.
        Samples(
            hdrhistogram::Histogram::new_with_bounds(1, HIGHEST, 3)
                .expect("1 ..= an hour at three significant figures is a valid histogram"),
        )
    }
}

impl Samples {
    pub fn record(&mut self, value: u64) {
        self.0.saturating_record(value);
    }

    /// Records `value` `count` times (one event seen by many).
    pub fn record_n(&mut self, value: u64, count: u64) {
        self.0.saturating_record_n(value, count);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_those_of_the_values_recorded() {
        let samples: Samples = (1..=10_000).collect();
        assert_eq!(samples.len(), 10_000);
        let near = |q: f64, want: u64| {
            let got = samples.quantile(q);
            assert!(
                got.abs_diff(want) <= want / 500 + 1,
                "q{q}: {got}, want {want}"
            );
        };
        near(0.5, 5_000);
        near(0.99, 9_900);
        near(1.0, 10_000);
        let mut merged = Samples::default();
        merged.add(&samples);
        merged.record(HIGHEST * 2);
        assert_eq!(merged.len(), 10_001);
        assert!(merged.quantile(1.0) >= HIGHEST);
        assert_eq!(Samples::default().quantile(0.5), 0);
    }
}
