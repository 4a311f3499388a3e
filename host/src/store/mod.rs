//! Live match state in Redis.
//!
//! Architecture invariant: this is the only module that knows Redis. It stores
//! bytes and strings it is given (mode state, views, serialized events) and
//! never interprets them; match logic never sees a key or a command.
//!
//! ## Layout
//!
//! Every match belongs to one of [`SHARDS`] shards, `s` = first byte of
//! SHA-256(match id) mod 64. All of a match's keys and its shard's timer set
//! carry the hash tag `{s}`, so in a Redis Cluster they sit in one slot and the
//! Lua scripts below may touch them together.
//!
//! | key | type | holds | ttl |
//! |---|---|---|---|
//! | `dd:{s}:match:<id>` | hash | `version` (CAS counter) and the match fields ([`StoredMatch`]) | none while live; the grace period once finished |
//! | `dd:{s}:events:<id>` | list | event *n* (JSON) at index *n*-1: the sequence is gap-free by construction | same |
//! | `dd:{s}:requests:<id>` | hash | request id → the reply first given (idempotency) | same |
//! | `dd:{s}:actions:<id>` | list | every applied action (JSON), for the match record | same |
//! | `dd:{s}:timers` | zset | match id scored by its turn deadline (ms) | none |
//!
//! ## Concurrency
//!
//! Every write is one Lua script: [`MatchStore::create`] refuses an existing id;
//! [`MatchStore::commit`] is compare-and-set on `version`, returns the first
//! reply for a repeated request id, appends the events and the action, moves the
//! timer and sets the expiry, all or nothing. WATCH/MULTI is deliberately not
//! used: on a shared multiplexed connection it silently loses updates.

use std::fmt;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};
use sha2::{Digest, Sha256};

/// Timer and key shards (hash tags).
pub const SHARDS: u8 = 64;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    #[error("a match with id {0} already exists")]
    Exists(String),
    #[error("match {id} is stored with a malformed field `{field}`")]
    Corrupt { id: String, field: &'static str },
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

    fn key(&self, kind: &str) -> String {
        format!("dd:{{{:02}}}:{kind}:{}", self.shard, self.id)
    }

    pub fn match_hash(&self) -> String {
        self.key("match")
    }
    pub fn events(&self) -> String {
        self.key("events")
    }
    pub fn requests(&self) -> String {
        self.key("requests")
    }
    pub fn actions(&self) -> String {
        self.key("actions")
    }
    pub fn timers(&self) -> String {
        timers_key(self.shard)
    }
}

fn timers_key(shard: u8) -> String {
    format!("dd:{{{shard:02}}}:timers")
}

/// A match as stored. `state` and `view` are the mode's; the store does not
/// read them.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredMatch {
    pub id: String,
    pub version: u64,
    pub mode: String,
    pub mode_version: String,
    pub players: Vec<String>,
    pub state: Vec<u8>,
    pub view: String,
    /// Who is on turn; `None` once finished.
    pub turn: Option<String>,
    /// The sequence number of the last event.
    pub seq: u64,
    /// Rolls so far (the index of the next roll's entropy).
    pub rolls: u64,
    /// The secret seed (hex); revealed only when the match ends.
    pub seed: String,
    pub seed_hash: String,
    /// When the player on turn times out (ms since the epoch); 0 = no timer.
    pub deadline_ms: u64,
    /// Consecutive timeouts of each player, in `players` order.
    pub timeouts: Vec<u32>,
    pub finished: bool,
    pub created_ms: u64,
}

impl fmt::Debug for StoredMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredMatch")
            .field("id", &self.id)
            .field("version", &self.version)
            .field("mode", &self.mode)
            .field("turn", &self.turn)
            .field("seq", &self.seq)
            .field("rolls", &self.rolls)
            .field("seed", &"<secret>")
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl StoredMatch {
    /// The hash fields, except `version` (the scripts own it).
    fn fields(&self) -> Vec<(&'static str, Vec<u8>)> {
        let text = |s: &str| s.as_bytes().to_vec();
        vec![
            ("mode", text(&self.mode)),
            ("mode_version", text(&self.mode_version)),
            ("players", text(&self.players.join("\n"))),
            ("state", self.state.clone()),
            ("view", text(&self.view)),
            ("turn", text(self.turn.as_deref().unwrap_or(""))),
            ("seq", text(&self.seq.to_string())),
            ("rolls", text(&self.rolls.to_string())),
            ("seed", text(&self.seed)),
            ("seed_hash", text(&self.seed_hash)),
            ("deadline_ms", text(&self.deadline_ms.to_string())),
            (
                "timeouts",
                text(
                    &self
                        .timeouts
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(","),
                ),
            ),
            ("finished", text(if self.finished { "1" } else { "0" })),
            ("created_ms", text(&self.created_ms.to_string())),
        ]
    }

    fn from_fields(
        id: &str,
        mut map: std::collections::HashMap<String, Vec<u8>>,
    ) -> Result<Self, StoreError> {
        let mut take = |field: &'static str| {
            map.remove(field).ok_or(StoreError::Corrupt {
                id: id.to_owned(),
                field,
            })
        };
        let corrupt = |field: &'static str| StoreError::Corrupt {
            id: id.to_owned(),
            field,
        };
        let string = |field: &'static str, bytes: Vec<u8>| {
            String::from_utf8(bytes).map_err(|_| corrupt(field))
        };
        let number = |field: &'static str, bytes: Vec<u8>| -> Result<u64, StoreError> {
            std::str::from_utf8(&bytes)
                .ok()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| corrupt(field))
        };
        let players = string("players", take("players")?)?;
        let turn = string("turn", take("turn")?)?;
        Ok(StoredMatch {
            id: id.to_owned(),
            version: number("version", take("version")?)?,
            mode: string("mode", take("mode")?)?,
            mode_version: string("mode_version", take("mode_version")?)?,
            players: players.split('\n').map(str::to_owned).collect(),
            state: take("state")?,
            view: string("view", take("view")?)?,
            turn: (!turn.is_empty()).then_some(turn),
            seq: number("seq", take("seq")?)?,
            rolls: number("rolls", take("rolls")?)?,
            seed: string("seed", take("seed")?)?,
            seed_hash: string("seed_hash", take("seed_hash")?)?,
            deadline_ms: number("deadline_ms", take("deadline_ms")?)?,
            timeouts: string("timeouts", take("timeouts")?)?
                .split(',')
                .filter(|s| !s.is_empty())
                .map(|n| n.parse().map_err(|_| corrupt("timeouts")))
                .collect::<Result<_, _>>()?,
            finished: take("finished")? == b"1",
            created_ms: number("created_ms", take("created_ms")?)?,
        })
    }
}

/// One action's result, to be stored if the match is still at
/// `expected_version`.
#[derive(Clone, Debug)]
pub struct Commit {
    pub expected_version: u64,
    /// The client's request id, for idempotency.
    pub request_id: Option<String>,
    /// What to answer if the same request id comes again.
    pub reply: String,
    /// The match after the action (its `version` is ignored).
    pub after: StoredMatch,
    /// The new events (JSON), numbered `after.seq - events.len() + 1 ..= after.seq`.
    pub events: Vec<String>,
    /// The applied action for the match record (JSON).
    pub action: Option<String>,
    /// Once finished, how long the keys stay for late readers.
    pub finished_ttl_secs: u64,
}

/// What a commit did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Committed {
    /// Stored; the match is now at this version.
    Ok { version: u64 },
    /// The request id was seen before: here is the first reply, nothing changed.
    Duplicate { reply: String },
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
    commit: Script,
}

impl MatchStore {
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        Ok(MatchStore {
            conn,
            create: Script::new(include_str!("create.lua")),
            commit: Script::new(include_str!("commit.lua")),
        })
    }

    /// Stores a new match with its first events. Fails if the id exists.
    pub async fn create(&self, m: &StoredMatch, events: &[String]) -> Result<(), StoreError> {
        let keys = MatchKeys::new(&m.id);
        let fields = m.fields();
        let mut call = self.create.prepare_invoke();
        call.key(keys.match_hash())
            .key(keys.events())
            .key(keys.timers())
            .arg(&m.id)
            .arg(m.deadline_ms)
            .arg(fields.len());
        for (name, value) in &fields {
            call.arg(*name).arg(value.as_slice());
        }
        for e in events {
            call.arg(e);
        }
        let status: String = call.invoke_async(&mut self.conn.clone()).await?;
        match status.as_str() {
            "ok" => Ok(()),
            _ => Err(StoreError::Exists(m.id.clone())),
        }
    }

    /// The match, or `None` if there is no such match.
    pub async fn load(&self, id: &str) -> Result<Option<StoredMatch>, StoreError> {
        let keys = MatchKeys::new(id);
        let map: std::collections::HashMap<String, Vec<u8>> =
            self.conn.clone().hgetall(keys.match_hash()).await?;
        if map.is_empty() {
            return Ok(None);
        }
        StoredMatch::from_fields(id, map).map(Some)
    }

    /// Applies `commit` atomically (see the module docs).
    pub async fn commit(&self, commit: &Commit) -> Result<Committed, StoreError> {
        let m = &commit.after;
        let keys = MatchKeys::new(&m.id);
        let fields = m.fields();
        let ttl = if m.finished {
            commit.finished_ttl_secs.max(1)
        } else {
            0
        };
        let mut call = self.commit.prepare_invoke();
        call.key(keys.match_hash())
            .key(keys.events())
            .key(keys.requests())
            .key(keys.actions())
            .key(keys.timers())
            .arg(&m.id)
            .arg(commit.expected_version)
            .arg(commit.request_id.as_deref().unwrap_or(""))
            .arg(&commit.reply)
            .arg(commit.action.as_deref().unwrap_or(""))
            .arg(if m.finished { 0 } else { m.deadline_ms })
            .arg(ttl)
            .arg(fields.len());
        for (name, value) in &fields {
            call.arg(*name).arg(value.as_slice());
        }
        for e in &commit.events {
            call.arg(e);
        }
        let (status, detail): (String, String) = call.invoke_async(&mut self.conn.clone()).await?;
        let version = || {
            detail.parse::<u64>().map_err(|_| StoreError::Corrupt {
                id: m.id.clone(),
                field: "version",
            })
        };
        Ok(match status.as_str() {
            "ok" => Committed::Ok {
                version: version()?,
            },
            "duplicate" => Committed::Duplicate { reply: detail },
            "conflict" => Committed::Conflict {
                version: version()?,
            },
            _ => Committed::Missing,
        })
    }

    /// The reply already given for `request_id` on this match, if any.
    pub async fn reply_for(
        &self,
        id: &str,
        request_id: &str,
    ) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .clone()
            .hget(MatchKeys::new(id).requests(), request_id)
            .await?)
    }

    /// Events with sequence numbers `after + 1 ..= last`, in order.
    pub async fn events_since(&self, id: &str, after: u64) -> Result<Vec<String>, StoreError> {
        let start = isize::try_from(after).unwrap_or(isize::MAX);
        Ok(self
            .conn
            .clone()
            .lrange(MatchKeys::new(id).events(), start, -1)
            .await?)
    }

    /// Every applied action so far (JSON), for the match record.
    pub async fn actions(&self, id: &str) -> Result<Vec<String>, StoreError> {
        Ok(self
            .conn
            .clone()
            .lrange(MatchKeys::new(id).actions(), 0, -1)
            .await?)
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

    /// Forgets a match's timer (for ids whose match is gone).
    pub async fn clear_timer(&self, id: &str) -> Result<(), StoreError> {
        let keys = MatchKeys::new(id);
        let _: i64 = self.conn.clone().zrem(keys.timers(), id).await?;
        Ok(())
    }

    /// Approximate bytes Redis uses for one match's keys (MEMORY USAGE).
    pub async fn memory_usage(&self, id: &str) -> Result<u64, StoreError> {
        let keys = MatchKeys::new(id);
        let mut total = 0;
        for key in [
            keys.match_hash(),
            keys.events(),
            keys.requests(),
            keys.actions(),
        ] {
            let bytes: Option<u64> = redis::cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .query_async(&mut self.conn.clone())
                .await?;
            total += bytes.unwrap_or(0);
        }
        Ok(total)
    }
}
