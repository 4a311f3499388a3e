//! Live match state in Redis.
//!
//! Architecture invariant: this is the only crate that knows Redis (Cargo and
//! `tests/tidy.rs` check it). It stores the byte strings it is given (the
//! match's metadata, progress, mode state and log entries, encoded by the
//! match host) and never interprets them; match logic never sees a key or a
//! command.
//!
//! Users' presence (connections, status, activity, region counts, queue
//! graces) is in [`presence`], with its own layout.
//!
//! ## Layout
//!
//! Every match belongs to one of [`SHARDS`] shards, `s` = first byte of
//! SHA-256(match id) mod 64. A match's hash and its shard's timer set carry the
//! hash tag `{s}`, so in a Redis Cluster they sit in one slot and the Lua
//! scripts below may touch them together.
//!
//! | key | type | holds | ttl |
//! |---|---|---|---|
//! | `dd:{s}:match:<id>` | hash | the match, fields below | none while live; the grace period once finished |
//! | `dd:{s}:timers` | zset | match id scored by its turn deadline (ms since the epoch) | none |
//! | `dd:{s}:unrecorded` | zset | finished match id scored by when it finished (ms), until its record is stored in JetStream | none |
//!
//! | field | written | holds |
//! |---|---|---|
//! | `v` | every commit | the version, for compare-and-set (integer, from 1) |
//! | `meta` | at creation | what never changes: mode and version, players, options, secret seed, start time |
//! | `progress` | every commit | sequence number, rolls, turn, deadline, timeout streaks, result |
//! | `state` | every commit | the mode's state bytes |
//! | `log` | appended per action | every applied action (actor, action with its dice, time, deadline) |
//! | `seen` | appended per action | 8 bytes per applied action: the fingerprint of its request |
//!
//! Nothing else is kept: events, replies and views are *derived*. A mode is
//! deterministic, so replaying the log from the seed reproduces every event
//! and every earlier reply exactly; that keeps a live match at a few hundred
//! bytes (see the README's benchmark) where storing them took ~30 KB.
//!
//! ## Concurrency
//!
//! Every write is one Lua script: [`MatchStore::create`] refuses an existing
//! id; [`MatchStore::commit`] answers a request fingerprint seen before with the
//! index of the action it applied, else compare-and-sets `v`, appends to `log`
//! and `seen`, moves the timer and sets the expiry, all or nothing. Reads for an
//! action ([`MatchStore::load`]) are one script too, so an action costs two
//! round trips. WATCH/MULTI is deliberately not used: on a shared multiplexed
//! connection it silently loses updates.

pub mod inbox;
pub mod leaderboards;
pub mod presence;
pub mod queues;

use redis::Script;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use tracing::Instrument;

/// A span per Redis round trip, so a trace shows where an action's time goes.
fn span(op: &'static str, id: &str) -> tracing::Span {
    tracing::info_span!("redis", op, match_id = id, db.system = "redis")
}

/// Timer and key shards (hash tags).
pub const SHARDS: u8 = 64;

/// Identifies one request to a match: a player's request id, hashed. Eight
/// bytes keep the idempotency record small; a collision needs ~2³² requests to
/// one match.
pub type Fingerprint = [u8; 8];

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("a match with id {0} already exists")]
    Exists(String),
}

/// A connection that only asks whether Redis answers: the gateway's
/// readiness probe, which keeps no state in Redis.
#[derive(Clone)]
pub struct RedisProbe(ConnectionManager);

impl RedisProbe {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        Ok(RedisProbe(ConnectionManager::new(client).await?))
    }

    /// Whether Redis answers `PING` within `within`.
    pub async fn answers(&self, within: std::time::Duration) -> bool {
        let mut conn = self.0.clone();
        let ping = redis::cmd("PING");
        let answer = tokio::time::timeout(within, ping.query_async::<String>(&mut conn));
        matches!(answer.await, Ok(Ok(_)))
    }

    /// What the server says of itself (`INFO`), for benchmarks: the bytes
    /// it holds and its process id.
    pub async fn server_figures(&self) -> Result<ServerFigures, StoreError> {
        let info: String = redis::cmd("INFO").query_async(&mut self.0.clone()).await?;
        let field = |name: &str| {
            info.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(':'))
                .and_then(|value| value.trim().parse::<u64>().ok())
        };
        Ok(ServerFigures {
            used_memory: field("used_memory").unwrap_or(0),
            process_id: field("process_id").and_then(|pid| u32::try_from(pid).ok()),
        })
    }
}

/// A Redis server's own figures ([`RedisProbe::server_figures`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerFigures {
    /// `used_memory`: bytes the allocator holds for data and overhead.
    pub used_memory: u64,
    /// `process_id`, to read its CPU time on the same machine.
    pub process_id: Option<u32>,
}

/// Where a match's keys live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchKeys {
    pub id: String,
    pub shard: u8,
}

impl MatchKeys {
    pub fn new(id: &str) -> Self {
        let digest = Sha256::digest(id.as_bytes());
        MatchKeys {
            id: id.to_owned(),
            shard: digest[0] % SHARDS,
        }
    }

    pub fn match_hash(&self) -> String {
        format!("dd:{{{:02}}}:match:{}", self.shard, self.id)
    }

    pub fn timers(&self) -> String {
        timers_key(self.shard)
    }

    pub fn unrecorded(&self) -> String {
        unrecorded_key(self.shard)
    }
}

fn timers_key(shard: u8) -> String {
    format!("dd:{{{shard:02}}}:timers")
}

fn unrecorded_key(shard: u8) -> String {
    format!("dd:{{{shard:02}}}:unrecorded")
}

/// A match as stored, minus its log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMatch {
    pub id: String,
    pub version: u64,
    pub meta: Vec<u8>,
    pub progress: Vec<u8>,
    pub state: Vec<u8>,
}

/// A match loaded to apply a request to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Loaded {
    pub stored: StoredMatch,
    /// The index of the action this request already applied, if it did.
    pub applied_before: Option<u64>,
}

/// A new match.
#[derive(Clone, Debug)]
pub struct NewMatch<'a> {
    pub id: &'a str,
    pub meta: &'a [u8],
    pub progress: &'a [u8],
    pub state: &'a [u8],
    /// The first turn's deadline (ms since the epoch); 0 = no timer.
    pub deadline_ms: u64,
}

/// One applied action, to be stored if the match is still at
/// `expected_version` and the request is new.
#[derive(Clone, Debug)]
pub struct Commit<'a> {
    pub id: &'a str,
    pub expected_version: u64,
    pub request: Fingerprint,
    pub progress: &'a [u8],
    pub state: &'a [u8],
    /// Appended to the log as is: the caller frames its entries.
    pub log_entry: &'a [u8],
    /// The next turn's deadline; 0 = none (the match is over).
    pub deadline_ms: u64,
    /// `Some(ttl)`: the match is over; its key expires after `ttl` seconds,
    /// and it awaits its record (see [`MatchStore::recorded`]).
    pub expire_after_secs: Option<u64>,
    /// The time of the commit (ms since the epoch).
    pub now_ms: u64,
}

/// What a commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Stored; the match is now at this version.
    Ok { version: u64 },
    /// The request was applied before, as the action at this index; nothing
    /// changed.
    Duplicate { index: u64 },
    /// Someone else changed the match first; it is now at this version.
    Conflict { version: u64 },
    /// No such match (never created, or expired).
    Missing,
}

/// The match store: a Redis connection (reconnecting) and the scripts.
#[derive(Clone)]
pub struct MatchStore {
    conn: ConnectionManager,
    create: Script,
    load: Script,
    commit: Script,
}

/// What `load.lua` returns: version, meta, progress, state, earlier index.
type LoadReply = Option<(u64, Vec<u8>, Vec<u8>, Vec<u8>, i64)>;
/// `HMGET v meta progress state log`.
type HistoryFields = (
    Option<u64>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

const SEEN_AT: &str = include_str!("seen.lua");

impl MatchStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(MatchStore {
            conn,
            create: Script::new(include_str!("create.lua")),
            load: Script::new(&format!("{SEEN_AT}{}", include_str!("load.lua"))),
            commit: Script::new(&format!("{SEEN_AT}{}", include_str!("commit.lua"))),
        })
    }

    /// Stores a new match at version 1. Fails if the id exists.
    pub async fn create(&self, m: &NewMatch<'_>) -> Result<(), StoreError> {
        let keys = MatchKeys::new(m.id);
        let status: String = self
            .create
            .key(keys.match_hash())
            .key(keys.timers())
            .arg(m.id)
            .arg(m.meta)
            .arg(m.progress)
            .arg(m.state)
            .arg(m.deadline_ms)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("create", m.id))
            .await?;
        match status.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::Exists(m.id.to_owned())),
        }
    }

    /// The match, and whether `request` was applied to it before; `None` if
    /// there is no such match.
    pub async fn load(
        &self,
        id: &str,
        request: Option<Fingerprint>,
    ) -> Result<Option<Loaded>, StoreError> {
        let keys = MatchKeys::new(id);
        let found: LoadReply = self
            .load
            .key(keys.match_hash())
            .arg(request.as_ref().map_or(&[][..], |fp| &fp[..]))
            .invoke_async(&mut self.conn.clone())
            .instrument(span("load", id))
            .await?;
        Ok(
            found.map(|(version, meta, progress, state, earlier)| Loaded {
                stored: StoredMatch {
                    id: id.to_owned(),
                    version,
                    meta,
                    progress,
                    state,
                },
                applied_before: u64::try_from(earlier).ok(),
            }),
        )
    }

    /// The match and its whole log, or `None` if there is no such match.
    pub async fn history(&self, id: &str) -> Result<Option<(StoredMatch, Vec<u8>)>, StoreError> {
        let keys = MatchKeys::new(id);
        let fields: HistoryFields = redis::cmd("HMGET")
            .arg(keys.match_hash())
            .arg(&["v", "meta", "progress", "state", "log"])
            .query_async(&mut self.conn.clone())
            .instrument(span("history", id))
            .await?;
        let (Some(version), meta, progress, state, log) = fields else {
            return Ok(None);
        };
        Ok(Some((
            StoredMatch {
                id: id.to_owned(),
                version,
                meta: meta.unwrap_or_default(),
                progress: progress.unwrap_or_default(),
                state: state.unwrap_or_default(),
            },
            log.unwrap_or_default(),
        )))
    }

    /// Applies `commit` atomically (see the module docs).
    pub async fn commit(&self, c: &Commit<'_>) -> Result<Committed, StoreError> {
        let keys = MatchKeys::new(c.id);
        let (status, detail): (String, u64) = self
            .commit
            .key(keys.match_hash())
            .key(keys.timers())
            .key(keys.unrecorded())
            .arg(c.id)
            .arg(c.expected_version)
            .arg(&c.request[..])
            .arg(c.progress)
            .arg(c.state)
            .arg(c.log_entry)
            .arg(c.deadline_ms)
            .arg(c.expire_after_secs.map_or(0, |ttl| ttl.max(1)))
            .arg(c.now_ms)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("commit", c.id))
            .await?;
        Ok(match status.as_str() {
            "ok" => Committed::Ok { version: detail },
            "duplicate" => Committed::Duplicate { index: detail },
            "conflict" => Committed::Conflict { version: detail },
            _ => Committed::Missing,
        })
    }

    /// Matches whose turn deadline is at or before `now_ms`, up to `limit` per
    /// shard, as `(match id, deadline)`. Entries are hints: firing one is a
    /// normal [`commit`](Self::commit) at the match's current version, so a stale
    /// or doubly-seen entry changes nothing.
    pub async fn due_timers(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(timers_key(shard))
                .arg("-inf")
                .arg(now_ms)
                .arg("WITHSCORES")
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
        }
        let shards: Vec<Vec<(String, u64)>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(shards.into_iter().flatten().collect())
    }

    /// Finished matches whose record is not known to be stored, that finished
    /// at or before `before_ms`: up to `limit` per shard, as match ids.
    pub async fn unrecorded(
        &self,
        before_ms: u64,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(unrecorded_key(shard))
                .arg("-inf")
                .arg(before_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
        }
        let shards: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(shards.into_iter().flatten().collect())
    }

    /// Notes that a finished match's record is stored (or can never be).
    pub async fn recorded(&self, id: &str) -> Result<(), StoreError> {
        let keys = MatchKeys::new(id);
        let _: i64 = redis::cmd("ZREM")
            .arg(keys.unrecorded())
            .arg(id)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// How many matches are live: every live match has exactly one turn timer.
    pub async fn live_matches(&self) -> Result<u64, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZCARD").arg(timers_key(shard));
        }
        let counts: Vec<u64> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(counts.iter().sum())
    }

    /// The stored `meta` of up to `limit` live matches (each live match has
    /// one turn timer), for operators' counts such as live matches per mode
    /// version. Two round trips: the timers of every shard, then the metas.
    pub async fn live_metas(&self, limit: usize) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGE").arg(timers_key(shard)).arg(0).arg(-1);
        }
        let shards: Vec<Vec<String>> = pipe.query_async(&mut self.conn.clone()).await?;
        let ids: Vec<String> = shards.into_iter().flatten().take(limit).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in &ids {
            pipe.cmd("HGET")
                .arg(MatchKeys::new(id).match_hash())
                .arg("meta");
        }
        let metas: Vec<Option<Vec<u8>>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(metas.into_iter().flatten().collect())
    }

    /// Forgets a match's timer (for ids whose match is gone).
    pub async fn clear_timer(&self, id: &str) -> Result<(), StoreError> {
        let keys = MatchKeys::new(id);
        let _: i64 = redis::cmd("ZREM")
            .arg(keys.timers())
            .arg(id)
            .query_async(&mut self.conn.clone())
            .await?;
        Ok(())
    }

    /// Bytes Redis uses for these keys in all (MEMORY USAGE; missing keys
    /// count 0). For benchmarks.
    pub async fn memory_usage_of(&self, keys: &[String]) -> Result<u64, StoreError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut pipe = redis::pipe();
        for key in keys {
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(&mut self.conn.clone()).await?;
        Ok(sizes.into_iter().flatten().sum())
    }

    /// Bytes Redis uses for one match: MEMORY USAGE of its hash plus its
    /// entry in the shard's timer set (estimated as the set's usage divided
    /// by its size).
    pub async fn memory_usage(&self, id: &str) -> Result<u64, StoreError> {
        let keys = MatchKeys::new(id);
        let mut pipe = redis::pipe();
        pipe.cmd("MEMORY")
            .arg("USAGE")
            .arg(keys.match_hash())
            .arg("SAMPLES")
            .arg(0)
            .cmd("MEMORY")
            .arg("USAGE")
            .arg(keys.timers())
            .arg("SAMPLES")
            .arg(0)
            .cmd("ZCARD")
            .arg(keys.timers());
        let (hash, timers, members): (Option<u64>, Option<u64>, u64) =
            pipe.query_async(&mut self.conn.clone()).await?;
        Ok(hash.unwrap_or(0) + timers.unwrap_or(0) / members.max(1))
    }
}
