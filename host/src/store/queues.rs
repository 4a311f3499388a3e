//! Matchmaking state in Redis: waiting tickets, players' states and ratings.
//!
//! ## Layout
//!
//! A queue is one mode × kind (`quick` or `ranked`), across all regions. All
//! its keys carry the hash tag `{mm:<mode>:<kind>}`, so in a Redis Cluster
//! they share one slot and one Lua script can claim two tickets from
//! different regions atomically.
//!
//! | key | type | holds | ttl |
//! |---|---|---|---|
//! | `mm:{mm:<mode>:<kind>}:tickets` | hash | player → ticket (JSON) | none |
//! | `mm:{mm:<mode>:<kind>}:wait` | zset | player → joined (ms): order of waiting, position | none |
//! | `mm:{mm:<mode>:<kind>}:rating:<region>` | zset | player → rating: the window search | none |
//! | `mm:{mm:<mode>:<kind>}:stats` | hash | `avg_wait_ms`, a moving average, for estimates | none |
//! | `mm:player:{<player>}` | string | the player's state (JSON): queued, matching or playing | while playing: a safety net of a day |
//! | `mm:rating:{<player>}` | hash | mode → rating (JSON: Glicko-2 rating, deviation, volatility) | none |
//!
//! ## Concurrency
//!
//! Claiming tickets is one script ([`QueueStore::take`]): every ticket must
//! still be there with the expected id, or none is taken. So any number of
//! matchmakers may search the same queue at once; two never take one ticket.
//! A player's state changes only by compare-and-set ([`QueueStore::swap`]).
//! The state key and the queue sit in different slots, so the matchmaker
//! orders its steps so that a crash between them leaves nothing worse than a
//! stale state, which the next join recognises by its age and replaces.

use redis::Script;
use redis::aio::ConnectionManager;
use tracing::Instrument;

use super::StoreError;

/// One queue: a mode and a kind (`quick` / `ranked`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct QueueKeys {
    tag: String,
}

impl QueueKeys {
    pub fn new(mode: &str, kind: &str) -> Self {
        QueueKeys {
            tag: format!("mm:{{mm:{mode}:{kind}}}"),
        }
    }

    pub fn tickets(&self) -> String {
        format!("{}:tickets", self.tag)
    }
    pub fn wait(&self) -> String {
        format!("{}:wait", self.tag)
    }
    pub fn rating(&self, region: &str) -> String {
        format!("{}:rating:{region}", self.tag)
    }
    pub fn stats(&self) -> String {
        format!("{}:stats", self.tag)
    }
}

pub fn player_key(player: &str) -> String {
    format!("mm:player:{{{player}}}")
}

pub fn rating_key(player: &str) -> String {
    format!("mm:rating:{{{player}}}")
}

/// A ticket as the store sees it: who, which region, the JSON to keep.
#[derive(Clone, Debug)]
pub struct StoredTicket<'a> {
    pub player: &'a str,
    pub ticket_id: &'a str,
    pub region: &'a str,
    pub rating: f64,
    pub joined_ms: u64,
    pub json: &'a str,
}

/// Where a player stands in a queue.
#[derive(Clone, Debug, PartialEq)]
pub struct QueuePosition {
    /// 1 = next in line by wait; `None` if the player is not in the queue.
    pub position: Option<u64>,
    pub size: u64,
    /// A moving average of recent waits, if any ticket has left yet.
    pub avg_wait_ms: Option<f64>,
}

#[derive(Clone)]
pub struct QueueStore {
    conn: ConnectionManager,
    enqueue: Script,
    dequeue: Script,
    candidates: Script,
    waiting: Script,
    swap: Script,
}

fn span(op: &'static str) -> tracing::Span {
    tracing::info_span!("redis", op, db.system = "redis")
}

/// A Redis score bound: `-inf`/`+inf` for an unbounded side.
fn bound(x: f64) -> String {
    if x == f64::NEG_INFINITY {
        "-inf".into()
    } else if x == f64::INFINITY {
        "+inf".into()
    } else {
        x.to_string()
    }
}

impl QueueStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(QueueStore {
            conn,
            enqueue: Script::new(include_str!("queues/enqueue.lua")),
            dequeue: Script::new(include_str!("queues/dequeue.lua")),
            candidates: Script::new(include_str!("queues/candidates.lua")),
            waiting: Script::new(include_str!("queues/waiting.lua")),
            swap: Script::new(include_str!("queues/swap.lua")),
        })
    }

    /// The player's state as stored (JSON), if any.
    pub async fn state(&self, player: &str) -> Result<Option<String>, StoreError> {
        Ok(redis::cmd("GET")
            .arg(player_key(player))
            .query_async(&mut self.conn.clone())
            .instrument(span("player_state"))
            .await?)
    }

    /// Replaces the player's state if it is still `expected` (`None` =
    /// absent); `new` = `None` deletes it. Returns whether it was replaced.
    pub async fn swap(
        &self,
        player: &str,
        expected: Option<&str>,
        new: Option<&str>,
        ttl_secs: u64,
    ) -> Result<bool, StoreError> {
        let replaced: i64 = self
            .swap
            .key(player_key(player))
            .arg(expected.unwrap_or(""))
            .arg(new.unwrap_or(""))
            .arg(ttl_secs)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("player_swap"))
            .await?;
        Ok(replaced == 1)
    }

    /// Puts a ticket in the queue of `keys`.
    pub async fn enqueue(&self, keys: &QueueKeys, t: &StoredTicket<'_>) -> Result<(), StoreError> {
        let _: i64 = self
            .enqueue
            .key(keys.tickets())
            .key(keys.wait())
            .key(keys.rating(t.region))
            .arg(t.player)
            .arg(t.json)
            .arg(t.joined_ms)
            .arg(t.rating)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("enqueue"))
            .await?;
        Ok(())
    }

    /// Takes these tickets (player, ticket id, region) out of the queue, all
    /// or none; returns their JSON, or `None` if any was already gone.
    pub async fn take(
        &self,
        keys: &QueueKeys,
        tickets: &[(&str, &str, &str)],
        now_ms: u64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut call = self.dequeue.prepare_invoke();
        call.key(keys.tickets()).key(keys.wait()).key(keys.stats());
        for (_, _, region) in tickets {
            call.key(keys.rating(region));
        }
        call.arg(now_ms);
        for (player, ticket_id, _) in tickets {
            call.arg(*player).arg(*ticket_id);
        }
        Ok(call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("take"))
            .await?)
    }

    /// Tickets rated within `[lo, hi]` in each of `regions`, up to `limit` per
    /// region (JSON).
    pub async fn candidates(
        &self,
        keys: &QueueKeys,
        regions: &[String],
        (lo, hi): (f64, f64),
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut call = self.candidates.prepare_invoke();
        call.key(keys.tickets());
        for region in regions {
            call.key(keys.rating(region));
        }
        call.arg(bound(lo)).arg(bound(hi)).arg(limit);
        Ok(call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("candidates"))
            .await?)
    }

    /// The `limit` longest-waiting tickets of a queue (JSON), longest first.
    pub async fn waiting(&self, keys: &QueueKeys, limit: usize) -> Result<Vec<String>, StoreError> {
        Ok(self
            .waiting
            .key(keys.tickets())
            .key(keys.wait())
            .arg(limit)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("waiting"))
            .await?)
    }

    /// Where `player` stands in the queue of `keys`.
    pub async fn position(
        &self,
        keys: &QueueKeys,
        player: &str,
    ) -> Result<QueuePosition, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANK")
            .arg(keys.wait())
            .arg(player)
            .cmd("ZCARD")
            .arg(keys.wait())
            .cmd("HGET")
            .arg(keys.stats())
            .arg("avg_wait_ms");
        let (rank, size, avg): (Option<u64>, u64, Option<f64>) = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("position"))
            .await?;
        Ok(QueuePosition {
            position: rank.map(|r| r + 1),
            size,
            avg_wait_ms: avg,
        })
    }

    /// How many tickets wait in the queue of `keys`.
    pub async fn size(&self, keys: &QueueKeys) -> Result<u64, StoreError> {
        Ok(redis::cmd("ZCARD")
            .arg(keys.wait())
            .query_async(&mut self.conn.clone())
            .await?)
    }

    /// A player's stored rating for `mode` (JSON), if any.
    pub async fn rating(&self, player: &str, mode: &str) -> Result<Option<String>, StoreError> {
        Ok(redis::cmd("HGET")
            .arg(rating_key(player))
            .arg(mode)
            .query_async(&mut self.conn.clone())
            .instrument(span("rating"))
            .await?)
    }

    /// Stores a player's rating for `mode` (JSON).
    pub async fn set_rating(&self, player: &str, mode: &str, json: &str) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("HSET")
            .arg(rating_key(player))
            .arg(mode)
            .arg(json)
            .query_async(&mut self.conn.clone())
            .instrument(span("set_rating"))
            .await?;
        Ok(())
    }

    /// Marks `match_id` as rated; `false` if it already was (ratings are
    /// updated once per match). The mark lasts a week.
    pub async fn mark_rated(&self, match_id: &str) -> Result<bool, StoreError> {
        let set: Option<String> = redis::cmd("SET")
            .arg(format!("mm:rated:{{{match_id}}}"))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(7 * 24 * 3600)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(set.is_some())
    }
}
