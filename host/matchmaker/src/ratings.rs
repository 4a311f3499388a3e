//! Players' ratings per mode, as the matchmaker pairs by them: Glicko-2
//! figures, 1500 by default. The archiver computes them, once per ranked
//! match, keeps them in Firestore and copies them to Redis (`mm:rating`),
//! where this reads them.

use std::future::Future;

use serde::{Deserialize, Serialize};
use skillratings::glicko2::Glicko2Rating;

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

/// Where the matchmaker reads ratings: Redis ([`Ratings`]), the fast copy
/// of the archive's record. `put` is for tests and benches that set a
/// player's rating directly.
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
