//! Players' ratings per mode: Glicko-2 (skillratings), 1500 by default,
//! updated once per ranked match from its final standings.

use std::future::Future;

use dashdice_mode_sdk::Standing;
use serde::{Deserialize, Serialize};
use skillratings::Outcomes;
use skillratings::glicko2::{Glicko2Config, Glicko2Rating, glicko2};

use dashdice_store::StoreError;
use dashdice_store::queues::QueueStore;

/// A Glicko-2 rating.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Rating {
    pub rating: f64,
    pub deviation: f64,
    pub volatility: f64,
}

impl Default for Rating {
    fn default() -> Self {
        Rating::from(Glicko2Rating::new())
    }
}

impl From<Glicko2Rating> for Rating {
    fn from(r: Glicko2Rating) -> Self {
        Rating {
            rating: r.rating,
            deviation: r.deviation,
            volatility: r.volatility,
        }
    }
}

impl From<Rating> for Glicko2Rating {
    fn from(r: Rating) -> Self {
        Glicko2Rating {
            rating: r.rating,
            deviation: r.deviation,
            volatility: r.volatility,
        }
    }
}

/// Where ratings are kept. Redis for now ([`Ratings`]); persistence to
/// Firestore comes later behind the same interface.
pub trait RatingsStore: Send + Sync {
    /// The player's rating in `mode` (the default if they have none).
    fn get(
        &self,
        player: &str,
        mode: &str,
    ) -> impl Future<Output = Result<Rating, StoreError>> + Send;
    fn put(
        &self,
        player: &str,
        mode: &str,
        rating: Rating,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// Ratings in Redis (`mm:rating:{player}`, a hash of mode → JSON).
#[derive(Clone)]
pub struct Ratings {
    store: QueueStore,
}

impl Ratings {
    pub fn new(store: QueueStore) -> Self {
        Ratings { store }
    }

    /// Applies a finished ranked match's result, once per match id. Only
    /// two-player results are rated; returns the new ratings, or `None` if
    /// the match was rated before or is not rateable.
    pub async fn rate_match(
        &self,
        match_id: &str,
        mode: &str,
        standings: &[Standing],
    ) -> Result<Option<Vec<(String, Rating)>>, StoreError> {
        let [a, b] = standings else {
            return Ok(None);
        };
        if !self.store.mark_rated(match_id).await? {
            return Ok(None);
        }
        let (ra, rb) = (
            self.get(&a.player, mode).await?,
            self.get(&b.player, mode).await?,
        );
        let (na, nb) = rate_pair(ra, rb, outcome(a, b));
        self.put(&a.player, mode, na).await?;
        self.put(&b.player, mode, nb).await?;
        Ok(Some(vec![(a.player.clone(), na), (b.player.clone(), nb)]))
    }
}

impl RatingsStore for Ratings {
    async fn get(&self, player: &str, mode: &str) -> Result<Rating, StoreError> {
        Ok(self
            .store
            .rating(player, mode)
            .await?
            .and_then(|json| serde_json::from_str(&json).ok())
            .unwrap_or_default())
    }

    async fn put(&self, player: &str, mode: &str, rating: Rating) -> Result<(), StoreError> {
        let json = serde_json::to_string(&rating).unwrap_or_default();
        self.store.set_rating(player, mode, &json).await
    }
}

/// `a`'s result against `b`, from their ranks.
fn outcome(a: &Standing, b: &Standing) -> Outcomes {
    match a.rank.cmp(&b.rank) {
        std::cmp::Ordering::Less => Outcomes::WIN,
        std::cmp::Ordering::Greater => Outcomes::LOSS,
        std::cmp::Ordering::Equal => Outcomes::DRAW,
    }
}

/// Both players' new ratings after one game.
pub fn rate_pair(a: Rating, b: Rating, a_result: Outcomes) -> (Rating, Rating) {
    let (na, nb) = glicko2(&a.into(), &b.into(), &a_result, &Glicko2Config::new());
    (na.into(), nb.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_win_between_newcomers_moves_both_symmetrically() {
        let (w, l) = rate_pair(Rating::default(), Rating::default(), Outcomes::WIN);
        assert!(w.rating > 1500.0 && l.rating < 1500.0);
        assert!((w.rating - 1500.0 - (1500.0 - l.rating)).abs() < 1e-9);
        assert!(w.deviation < 350.0, "one game makes the rating surer");
        // Glicko-2's published example magnitude for two newcomers: ~162.
        assert!((w.rating - 1662.3).abs() < 1.0, "{w:?}");
    }
}
