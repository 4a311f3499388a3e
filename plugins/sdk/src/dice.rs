//! Two six-sided dice: validation and the shared classification.

use crate::entropy::Entropy;
use crate::types::{ModeError, RollKind};

/// A validated roll of two six-sided dice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TwoDice(pub u8, pub u8);

impl TwoDice {
    /// Accepts exactly two values, each 1..=6.
    pub fn parse(dice: &[u8]) -> Result<Self, ModeError> {
        match *dice {
            [a, b] if (1..=6).contains(&a) && (1..=6).contains(&b) => Ok(TwoDice(a, b)),
            [_, _] => Err(ModeError::InvalidDice(format!(
                "each die must be 1..=6, got {dice:?}"
            ))),
            _ => Err(ModeError::InvalidDice(format!(
                "expected 2 dice, got {}",
                dice.len()
            ))),
        }
    }

    /// Two fair, independent dice.
    pub fn fair(entropy: &mut Entropy) -> Self {
        TwoDice(entropy.die(6), entropy.die(6))
    }

    /// The shared classification, in order of precedence: snake eyes, double,
    /// single one, normal.
    pub fn kind(self) -> RollKind {
        match self {
            TwoDice(1, 1) => RollKind::SnakeEyes,
            TwoDice(a, b) if a == b => RollKind::Double,
            TwoDice(1, _) | TwoDice(_, 1) => RollKind::SingleOne,
            _ => RollKind::Normal,
        }
    }

    pub fn sum(self) -> i32 {
        i32::from(self.0) + i32::from(self.1)
    }

    pub fn to_vec(self) -> Vec<u8> {
        vec![self.0, self.1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_follows_precedence() {
        assert_eq!(TwoDice(1, 1).kind(), RollKind::SnakeEyes);
        for n in 2..=6 {
            assert_eq!(TwoDice(n, n).kind(), RollKind::Double);
            assert_eq!(TwoDice(1, n).kind(), RollKind::SingleOne);
            assert_eq!(TwoDice(n, 1).kind(), RollKind::SingleOne);
        }
        assert_eq!(TwoDice(3, 4).kind(), RollKind::Normal);
        assert_eq!(TwoDice(6, 5).kind(), RollKind::Normal);
    }

    #[test]
    fn parse_rejects_bad_dice() {
        assert!(TwoDice::parse(&[3, 4]).is_ok());
        for bad in [&[0u8, 3][..], &[7, 1], &[3], &[1, 2, 3], &[]] {
            assert!(matches!(
                TwoDice::parse(bad),
                Err(ModeError::InvalidDice(_))
            ));
        }
    }
}
