//! Ranked play's fast path in Redis: each player's current rating per mode
//! (what the matchmaker pairs by) and each season's leaderboard per mode.
//!
//! Firestore holds the record (the archiver writes it); this is a copy that
//! can be lost and rebuilt. Every write carries a version, the player's
//! rated-games count in the mode, and a Lua script stores it only if it is
//! newer than what is there. So writes may arrive late, twice or out of
//! order (two archivers, a redelivered record, a rebuild racing a live
//! update) and the newest always wins.
//!
//! | key | type | holds |
//! |---|---|---|
//! | `mm:rating:{<player>}` | hash | mode → rating JSON (`rating`, `deviation`, `volatility`, `games`, ...) |
//! | `lb:{<season>:<mode>}` | zset | player → rating: the leaderboard |
//! | `lb:{<season>:<mode>}:v` | hash | player → games: each entry's version |
//! | `lb:built` | string | the season last rebuilt from Firestore; absent after a flush |

use redis::Script;
use redis::aio::ConnectionManager;
use tracing::Instrument;

use crate::StoreError;
use crate::queues::rating_key;

fn span(op: &'static str) -> tracing::Span {
    tracing::info_span!("redis", op, db.system = "redis")
}

fn board_key(season: &str, mode: &str) -> String {
    format!("lb:{{{season}:{mode}}}")
}

const BUILT_KEY: &str = "lb:built";

/// Ratings and leaderboards in Redis.
#[derive(Clone)]
pub struct Leaderboards {
    conn: ConnectionManager,
    put_rating: Script,
    put_standing: Script,
}

impl Leaderboards {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        Ok(Leaderboards {
            conn: ConnectionManager::new(client).await?,
            put_rating: Script::new(include_str!("leaderboards/put_rating.lua")),
            put_standing: Script::new(include_str!("leaderboards/put_standing.lua")),
        })
    }

    /// Stores `player`'s rating in `mode` (JSON with a `games` field equal
    /// to `games`) unless a newer one is there; `true` if stored.
    pub async fn put_rating(
        &self,
        player: &str,
        mode: &str,
        json: &str,
        games: u64,
    ) -> Result<bool, StoreError> {
        let stored: i64 = self
            .put_rating
            .key(rating_key(player))
            .arg(mode)
            .arg(json)
            .arg(games)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("put_rating"))
            .await?;
        Ok(stored == 1)
    }

    /// Puts `player` on `season`'s board of `mode` at `rating` unless the
    /// board has a newer entry; `true` if stored.
    pub async fn put_standing(
        &self,
        season: &str,
        mode: &str,
        player: &str,
        rating: f64,
        games: u64,
    ) -> Result<bool, StoreError> {
        let board = board_key(season, mode);
        let stored: i64 = self
            .put_standing
            .key(&board)
            .key(format!("{board}:v"))
            .arg(player)
            .arg(rating)
            .arg(games)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("put_standing"))
            .await?;
        Ok(stored == 1)
    }

    /// Entries `start..=stop` (0 = the top) with their ratings, best first.
    pub async fn range(
        &self,
        season: &str,
        mode: &str,
        start: u64,
        stop: u64,
    ) -> Result<Vec<(String, f64)>, StoreError> {
        Ok(redis::cmd("ZRANGE")
            .arg(board_key(season, mode))
            .arg(start)
            .arg(stop)
            .arg("REV")
            .arg("WITHSCORES")
            .query_async(&mut self.conn.clone())
            .instrument(span("board_range"))
            .await?)
    }

    /// `player`'s place on the board (0 = the top), if they are on it.
    pub async fn rank(
        &self,
        season: &str,
        mode: &str,
        player: &str,
    ) -> Result<Option<u64>, StoreError> {
        Ok(redis::cmd("ZREVRANK")
            .arg(board_key(season, mode))
            .arg(player)
            .query_async(&mut self.conn.clone())
            .instrument(span("board_rank"))
            .await?)
    }

    /// How many players the board has.
    pub async fn total(&self, season: &str, mode: &str) -> Result<u64, StoreError> {
        Ok(redis::cmd("ZCARD")
            .arg(board_key(season, mode))
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// The season whose boards were last rebuilt from the record; `None`
    /// after a flush (or before the first rebuild).
    pub async fn built(&self) -> Result<Option<String>, StoreError> {
        Ok(redis::cmd("GET")
            .arg(BUILT_KEY)
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// Notes that the boards of `season` (and the ratings) were rebuilt.
    pub async fn mark_built(&self, season: &str) -> Result<(), StoreError> {
        let _: () = redis::cmd("SET")
            .arg(BUILT_KEY)
            .arg(season)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }
}
