//! Turning host entropy into unbiased numbers.
//!
//! The host hands a mode at least [`MIN_ENTROPY_BYTES`] bytes per decision. The
//! first 32 seed a ChaCha8 stream, so a mode can draw as many values as it needs
//! (rejection sampling never runs dry) and the mapping from bytes to dice is the
//! same on every machine, which is what replay and fair-dice verification rely on.

use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::types::ModeError;

/// The least entropy the host supplies for one decision.
pub const MIN_ENTROPY_BYTES: usize = 32;

/// A deterministic stream of random values derived from host entropy.
pub struct Entropy(ChaCha8Rng);

impl Entropy {
    /// Seeds the stream from the first 32 bytes. Fewer bytes is an error, not a
    /// weaker stream.
    pub fn new(bytes: &[u8]) -> Result<Self, ModeError> {
        let seed: [u8; MIN_ENTROPY_BYTES] = bytes
            .get(..MIN_ENTROPY_BYTES)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| {
                ModeError::InvalidEntropy(format!(
                    "need at least {MIN_ENTROPY_BYTES} bytes, got {}",
                    bytes.len()
                ))
            })?;
        Ok(Self(ChaCha8Rng::from_seed(seed)))
    }

    /// A uniform value in `0..n`. `n` must be at least 1.
    pub fn below(&mut self, n: u32) -> u32 {
        let n = n.max(1);
        // Reject the top partial block so every residue is equally likely.
        let zone = u32::MAX - (u32::MAX - n + 1) % n;
        loop {
            let x = self.0.next_u32();
            if x <= zone {
                return x % n;
            }
        }
    }

    /// A die with `sides` faces: a value in `1..=sides`.
    pub fn die(&mut self, sides: u8) -> u8 {
        // `below` returns less than `sides`, so this fits in a u8.
        (self.below(u32::from(sides)) as u8) + 1
    }

    /// True with probability `numerator / denominator`.
    pub fn chance(&mut self, numerator: u32, denominator: u32) -> bool {
        self.below(denominator) < numerator
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_entropy_is_an_error() {
        assert!(matches!(
            Entropy::new(&[0; 31]),
            Err(ModeError::InvalidEntropy(_))
        ));
    }

    #[test]
    fn same_bytes_same_stream() {
        let mut a = Entropy::new(&[7; 40]).unwrap();
        let mut b = Entropy::new(&[7; 32]).unwrap();
        for _ in 0..100 {
            assert_eq!(a.die(6), b.die(6));
        }
    }

    #[test]
    fn dice_are_roughly_uniform() {
        let mut e = Entropy::new(&[3; 32]).unwrap();
        let mut counts = [0u32; 6];
        for _ in 0..60_000 {
            counts[usize::from(e.die(6) - 1)] += 1;
        }
        // Expected 10,000 each; 5 sigma is about 456.
        for c in counts {
            assert!((9_500..=10_500).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn below_one_is_zero() {
        let mut e = Entropy::new(&[9; 32]).unwrap();
        assert_eq!(e.below(1), 0);
        assert_eq!(e.below(0), 0);
    }
}
