//! Presence in Redis: who is connected, how, and doing what.
//!
//! A user is **online** while one of their live connections (tabs, devices)
//! shows its page, **away** while all of them are hidden, and **offline**
//! with none. Each connection lives until its deadline (the last report
//! from its gateway + the connection ttl); a heartbeat moves it on, and the
//! sweep ([`PresenceStore::sweep`]) removes the ones past it. What others
//! see of a user (status, activity, match, region) carries a version that
//! grows by one with every change to it, and every call that may change it
//! says whether it did ([`Change`]), so the caller publishes only changes.
//!
//! ## Layout
//!
//! Every user belongs to one of [`SHARDS`] shards, `s` = first byte of
//! SHA-256(uid) mod 16. A user's hash and their shard's three keys carry the
//! hash tag `{prS}` (`S` two digits), so in a Redis Cluster they share one
//! slot, and each script touches the keys of one slot only.
//!
//! | key | type | holds | ttl |
//! |---|---|---|---|
//! | `pr:{prS}:u:<uid>` | hash | the user, fields below | none while connected; [`PresenceSettings::offline_ttl_secs`] (a day) once offline |
//! | `pr:{prS}:due` | zset | the seconds that have a sweep bucket (score = member = the second) | none |
//! | `pr:{prS}:due:<second>` | list | the bucket: uids whose sweep entry is due at that second | none (empty once swept) |
//! | `pr:{prS}:regions` | hash | region → users online or away whose first connection is there | none |
//! | `pr:{prS}:grace` | zset | uid → when their queue grace runs out (ms): offline while matchmaking | none |
//!
//! | field | holds |
//! |---|---|
//! | `#<digest>` | one live connection, named by the first 5 bytes of SHA-256(connection id) in hex: `<deadline ms in base 36><+ shown, - hidden><region>`; in the order added (the first is the oldest: its region is the user's) |
//! | `a` | the activity: absent = menu, `1` = matchmaking, `2` = in a match |
//! | `m` | the match id, in a match only |
//! | `v` | the version; a new entry's first is the time in seconds, so a user whose entry expired never goes back to a version someone saw |
//! | `l` | offline only: when a connection was last heard from (ms); a connected user's is their latest deadline less the ttl |
//! | `q` | connected only: the second of the bucket holding the user's one sweep entry |
//!
//! Every byte here is paid per online user, so: field names are one byte,
//! a connection is named by a fixed 10-character digest whatever ids the
//! gateways make (two tabs of one user colliding is a 2⁻⁴⁰ chance, and
//! would only make one tab's close look like both until the next
//! heartbeat), its deadline is 8 characters, the version fits 32 bits, and
//! nothing a connected user does not need is stored. A user's hash stays
//! listpack-encoded (at most [`PresenceSettings::max_connections`] short
//! entries, far under Redis's 128 entries and 64-byte values).
//!
//! ## The sweep
//!
//! A connected user has one entry in a sweep bucket: a list per second,
//! holding the users whose earliest deadline falls in it (rounded up). A
//! heartbeat does not move the entry: deadlines only move later, so the
//! entry comes due at or before the user's real deadline, and the sweep
//! ([`PresenceStore::sweep`]) then expires what is due and queues a user
//! still connected again, in the bucket of their new earliest deadline. A
//! user whose last connection closes leaves their bucket at once.
//! So each user is looked at about once a ttl, whatever the heartbeat rate,
//! and an entry is a list element (~30 bytes for a 28-character uid) where
//! a zset scored by deadline cost a skiplist node (~125 bytes) once a
//! shard held over 128 users. `tests/presence_store.rs` measures an online
//! user with one connection and a 28-character uid, sweep entry included.
//!
//! ## Concurrency
//!
//! Every change to a user is one Lua script (`presence/*.lua`, each
//! prefixed with `presence/user.lua`) over the user's hash and their
//! shard's keys: it reads the user, applies the change, and in the same
//! step moves the sweep deadline, the region counts, the grace and the
//! version. So counts move exactly on transitions, and any number of
//! presence instances may call at once. The sweep and the graces read due
//! entries first (pipelined reads of every shard), then run one script per
//! entry (pipelined) that claims it under the script, by removing it from
//! its bucket or zset: a connection expires, and a grace is claimed, for
//! exactly one caller. A sweeper killed between the read and the scripts
//! leaves the entries where they were, for the next sweep.

use std::collections::{BTreeMap, HashMap};

use redis::Script;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};
use tracing::Instrument;

use crate::StoreError;

/// Presence shards (hash tags).
pub const SHARDS: u8 = 16;

fn span(op: &'static str, n: usize) -> tracing::Span {
    tracing::info_span!("redis", op, users = n, db.system = "redis")
}

/// Where a user's presence lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PresenceKeys {
    uid: String,
    shard: u8,
}

impl PresenceKeys {
    pub fn new(uid: &str) -> Self {
        let digest = Sha256::digest(uid.as_bytes());
        PresenceKeys {
            uid: uid.to_owned(),
            shard: digest[0] % SHARDS,
        }
    }

    pub fn shard(&self) -> u8 {
        self.shard
    }

    pub fn user(&self) -> String {
        format!("pr:{{pr{:02}}}:u:{}", self.shard, self.uid)
    }

    /// The shard's sweep index (see the module docs).
    pub fn sweep(&self) -> String {
        sweep_key(self.shard)
    }

    pub fn regions(&self) -> String {
        regions_key(self.shard)
    }

    pub fn grace(&self) -> String {
        grace_key(self.shard)
    }
}

fn sweep_key(shard: u8) -> String {
    format!("pr:{{pr{shard:02}}}:due")
}

/// The sweep bucket of `second` in `shard`; `presence/user.lua` builds the
/// same name from the index's.
fn bucket_key(shard: u8, second: u64) -> String {
    format!("{}:{second}", sweep_key(shard))
}

fn regions_key(shard: u8) -> String {
    format!("pr:{{pr{shard:02}}}:regions")
}

fn grace_key(shard: u8) -> String {
    format!("pr:{{pr{shard:02}}}:grace")
}

/// Whether a user is there.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Status {
    /// No live connection.
    #[default]
    Offline,
    /// Connected, every page hidden.
    Away,
    /// A connection whose page is visible.
    Online,
}

impl Status {
    fn from_code(code: i64) -> Self {
        match code {
            2 => Status::Online,
            1 => Status::Away,
            _ => Status::Offline,
        }
    }
}

/// What a user is doing.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Activity {
    #[default]
    Menu,
    Matchmaking,
    InMatch,
}

impl Activity {
    fn code(self) -> u8 {
        match self {
            Activity::Menu => 0,
            Activity::Matchmaking => 1,
            Activity::InMatch => 2,
        }
    }

    fn from_code(code: i64) -> Self {
        match code {
            1 => Activity::Matchmaking,
            2 => Activity::InMatch,
            _ => Activity::Menu,
        }
    }
}

/// A user's presence as stored.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserPresence {
    pub uid: String,
    pub status: Status,
    pub activity: Activity,
    /// In a match only.
    pub match_id: Option<String>,
    /// The region of the first live connection.
    pub region: Option<String>,
    /// When a connection was last heard from (ms; 0 = never, or forgotten).
    pub last_seen_ms: u64,
    pub connections: u32,
    /// 0 for a user presence has no entry for.
    pub version: u64,
}

/// What a call did to a user.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// Whether what others see (status, activity, match, region) changed;
    /// if so, `presence.version` is new.
    pub changed: bool,
    /// The status before the call.
    pub was: Status,
    pub presence: UserPresence,
}

/// A live connection, as a gateway's heartbeat reports it.
#[derive(Clone, Copy, Debug)]
pub struct LiveConn<'a> {
    pub uid: &'a str,
    pub conn: &'a str,
    pub region: &'a str,
    pub away: bool,
}

/// What a heartbeat did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Beat {
    /// Connections that were live and are refreshed.
    pub refreshed: u32,
    /// Connections presence had lost (expired) and has taken back.
    pub restored: u32,
    /// The users whose visible presence changed (a restored connection
    /// brought them back).
    pub changes: Vec<Change>,
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Connections removed for being past their deadline.
    pub expired: u64,
    /// The users whose visible presence changed.
    pub changes: Vec<Change>,
    /// Whether a shard had more due than the limit (sweep again).
    pub more: bool,
}

/// The store's timings and bounds. The presence role passes the values of
/// `dashdice_proto::presence` (which the defaults mirror); tests shorten
/// them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PresenceSettings {
    /// A connection lives this long after its last report.
    pub connection_ttl_ms: u64,
    /// A matchmaking user may be offline this long before their grace runs
    /// out ([`PresenceStore::due_graces`]).
    pub grace_ms: u64,
    /// An offline user's entry (last seen, activity, version) is kept this
    /// long after their last change.
    pub offline_ttl_secs: u64,
    /// The most connections a user has; one more replaces the oldest.
    pub max_connections: usize,
}

impl Default for PresenceSettings {
    fn default() -> Self {
        PresenceSettings {
            connection_ttl_ms: 15_000,
            grace_ms: 10_000,
            offline_ttl_secs: 24 * 3600,
            max_connections: 16,
        }
    }
}

/// `finish`'s reply in `presence/user.lua`: changed, status before,
/// status, activity, match, region, last seen, connections, version.
type Reply = (i64, i64, i64, i64, String, String, u64, u32, u64);
/// A heartbeat's: the above, then refreshed and restored.
type BeatReply = (i64, i64, i64, i64, String, String, u64, u32, u64, u32, u32);
/// A sweep's: the above, then the connections expired.
type ExpireReply = (i64, i64, i64, i64, String, String, u64, u32, u64, u64);

fn change(uid: &str, r: Reply) -> Change {
    let (changed, was, status, activity, match_id, region, last_seen_ms, connections, version) = r;
    Change {
        changed: changed == 1,
        was: Status::from_code(was),
        presence: UserPresence {
            uid: uid.to_owned(),
            status: Status::from_code(status),
            activity: Activity::from_code(activity),
            match_id: (!match_id.is_empty()).then_some(match_id),
            region: (!region.is_empty()).then_some(region),
            last_seen_ms,
            connections,
            version,
        },
    }
}

/// Presence in Redis: a connection (reconnecting) and the scripts.
#[derive(Clone)]
pub struct PresenceStore {
    conn: ConnectionManager,
    settings: PresenceSettings,
    connect: Script,
    heartbeat: Script,
    visibility: Script,
    disconnect: Script,
    activity: Script,
    expire: Script,
    forget_bucket: Script,
    claim_grace: Script,
    rearm_grace: Script,
}

const USER: &str = include_str!("presence/user.lua");

/// Drops a sweep bucket's second from the index if the bucket is empty.
/// KEYS: 1 the index, 2 the bucket; ARGV: 1 the second.
const FORGET_BUCKET: &str = "if redis.call('EXISTS', KEYS[2]) == 0 then \
     return redis.call('ZREM', KEYS[1], ARGV[1]) end return 0";

impl PresenceStore {
    /// Connects with the default settings (see [`Self::with_settings`]).
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        let client = redis::Client::open(url)?;
        let conn = ConnectionManager::new(client).await?;
        let script = |own: &str| Script::new(&format!("{USER}{own}"));
        Ok(PresenceStore {
            conn,
            settings: PresenceSettings::default(),
            connect: script(include_str!("presence/connect.lua")),
            heartbeat: script(include_str!("presence/heartbeat.lua")),
            visibility: script(include_str!("presence/visibility.lua")),
            disconnect: script(include_str!("presence/disconnect.lua")),
            activity: script(include_str!("presence/activity.lua")),
            expire: script(include_str!("presence/expire.lua")),
            forget_bucket: Script::new(FORGET_BUCKET),
            claim_grace: Script::new(include_str!("presence/claim_grace.lua")),
            rearm_grace: Script::new(include_str!("presence/rearm_grace.lua")),
        })
    }

    pub fn with_settings(mut self, settings: PresenceSettings) -> Self {
        self.settings = settings;
        self
    }

    pub fn settings(&self) -> PresenceSettings {
        self.settings
    }

    /// A script call on `uid`'s keys with the arguments every user script
    /// takes (see `presence/user.lua`).
    fn user_call<'a>(
        &self,
        script: &'a Script,
        uid: &str,
        now_ms: u64,
    ) -> redis::ScriptInvocation<'a> {
        let keys = PresenceKeys::new(uid);
        let s = &self.settings;
        let mut call = script.prepare_invoke();
        call.key(keys.user())
            .key(keys.sweep())
            .key(keys.regions())
            .key(keys.grace())
            .arg(uid)
            .arg(now_ms)
            .arg(s.connection_ttl_ms)
            .arg(s.grace_ms)
            .arg(s.offline_ttl_secs.max(1))
            .arg(s.max_connections.max(1));
        call
    }

    /// A connection opened (or opened again): added, or refreshed if known.
    pub async fn add_connection(
        &self,
        uid: &str,
        conn: &str,
        region: &str,
        away: bool,
        now_ms: u64,
    ) -> Result<Change, StoreError> {
        let mut call = self.user_call(&self.connect, uid, now_ms);
        call.arg(conn_digest(conn)).arg(region).arg(flag(away));
        let reply: Reply = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("presence_connect", 1))
            .await?;
        Ok(change(uid, reply))
    }

    /// A gateway's live connections: each refreshed, or added back if
    /// presence had lost it. One script per user, pipelined: one round trip.
    pub async fn heartbeat(&self, conns: &[LiveConn<'_>], now_ms: u64) -> Result<Beat, StoreError> {
        let mut by_user: BTreeMap<&str, Vec<&LiveConn<'_>>> = BTreeMap::new();
        for c in conns {
            by_user.entry(c.uid).or_default().push(c);
        }
        if by_user.is_empty() {
            return Ok(Beat::default());
        }
        let mut calls = Vec::with_capacity(by_user.len());
        for (uid, conns) in &by_user {
            let mut call = self.user_call(&self.heartbeat, uid, now_ms);
            for c in conns {
                call.arg(conn_digest(c.conn))
                    .arg(c.region)
                    .arg(flag(c.away));
            }
            calls.push(call);
        }
        let mut pipe = redis::pipe();
        pipe.load_script(&self.heartbeat).ignore();
        for call in &calls {
            pipe.invoke_script(call);
        }
        let replies: Vec<BeatReply> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_heartbeat", by_user.len()))
            .await?;
        let mut beat = Beat::default();
        for (uid, r) in by_user.keys().zip(replies) {
            let (a, b, c, d, e, f, g, h, i, refreshed, restored) = r;
            beat.refreshed += refreshed;
            beat.restored += restored;
            let change = change(uid, (a, b, c, d, e, f, g, h, i));
            if change.changed {
                beat.changes.push(change);
            }
        }
        Ok(beat)
    }

    /// A connection's page was hidden (`away`) or shown. An unknown
    /// connection changes nothing.
    pub async fn set_away(
        &self,
        uid: &str,
        conn: &str,
        away: bool,
        now_ms: u64,
    ) -> Result<Change, StoreError> {
        let mut call = self.user_call(&self.visibility, uid, now_ms);
        call.arg(conn_digest(conn)).arg(flag(away));
        let reply: Reply = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("presence_visibility", 1))
            .await?;
        Ok(change(uid, reply))
    }

    /// A connection closed.
    pub async fn remove_connection(
        &self,
        uid: &str,
        conn: &str,
        now_ms: u64,
    ) -> Result<Change, StoreError> {
        let mut call = self.user_call(&self.disconnect, uid, now_ms);
        call.arg(conn_digest(conn));
        let reply: Reply = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("presence_disconnect", 1))
            .await?;
        Ok(change(uid, reply))
    }

    /// The user now does `activity` (`match_id` is kept only with
    /// [`Activity::InMatch`]). With `only_in`, only if the user's match is
    /// that one (a match ended: its players go back to the menu unless they
    /// have moved on).
    pub async fn set_activity(
        &self,
        uid: &str,
        activity: Activity,
        match_id: Option<&str>,
        only_in: Option<&str>,
        now_ms: u64,
    ) -> Result<Change, StoreError> {
        let mut call = self.user_call(&self.activity, uid, now_ms);
        call.arg(activity.code())
            .arg(match_id.unwrap_or(""))
            .arg(only_in.unwrap_or(""));
        let reply: Reply = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("presence_activity", 1))
            .await?;
        Ok(change(uid, reply))
    }

    /// The presence of `uids`, in that order: one pipelined round trip.
    pub async fn query(&self, uids: &[String]) -> Result<Vec<UserPresence>, StoreError> {
        if uids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for uid in uids {
            pipe.cmd("HGETALL").arg(PresenceKeys::new(uid).user());
        }
        // Each hash as its flat field/value list, so the connections keep
        // their order (the first one's region is the user's).
        let found: Vec<Vec<String>> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_query", uids.len()))
            .await?;
        Ok(uids
            .iter()
            .zip(found)
            .map(|(uid, flat)| parse_user(uid, &flat, self.settings.connection_ttl_ms))
            .collect())
    }

    /// Removes every connection past its deadline at `now_ms`: the due
    /// sweep buckets, up to `limit` entries a shard (a second call takes
    /// the rest; see [`Swept::more`]). Three round trips: every shard's due
    /// buckets, their entries, then one script per entry (pipelined).
    pub async fn sweep(&self, now_ms: u64, limit: usize) -> Result<Swept, StoreError> {
        let limit = limit.max(1);
        // A bucket is due once its second has begun (entries round their
        // deadline up to it).
        let now_secs = now_ms / 1000;
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(sweep_key(shard))
                .arg("-inf")
                .arg(now_secs)
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
        }
        let due: Vec<Vec<u64>> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_due", 0))
            .await?;
        let buckets: Vec<(u8, u64)> = (0..SHARDS)
            .zip(due)
            .flat_map(|(shard, seconds)| seconds.into_iter().map(move |s| (shard, s)))
            .collect();
        if buckets.is_empty() {
            return Ok(Swept::default());
        }
        let mut pipe = redis::pipe();
        for (shard, second) in &buckets {
            pipe.cmd("LRANGE")
                .arg(bucket_key(*shard, *second))
                .arg(0)
                .arg(limit - 1);
        }
        let lists: Vec<Vec<String>> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_buckets", buckets.len()))
            .await?;
        let mut more = false;
        let mut taken = 0usize;
        let mut entries: Vec<(String, u64)> = Vec::new();
        let mut empty: Vec<(u8, u64)> = Vec::new();
        for ((shard, second), uids) in buckets.iter().zip(lists) {
            if uids.is_empty() {
                empty.push((*shard, *second));
            }
            more |= uids.len() >= limit;
            taken += uids.len();
            entries.extend(uids.into_iter().map(|uid| (uid, *second)));
        }
        if !empty.is_empty() {
            // An index entry whose bucket is gone (emptied by another
            // sweeper since): dropped, unless the bucket filled again.
            let mut pipe = redis::pipe();
            pipe.load_script(&self.forget_bucket).ignore();
            for (shard, second) in &empty {
                let mut call = self.forget_bucket.prepare_invoke();
                call.key(sweep_key(*shard))
                    .key(bucket_key(*shard, *second))
                    .arg(*second);
                pipe.invoke_script(&call);
            }
            let _: Vec<i64> = pipe.query_async(&mut self.conn.clone()).await?;
        }
        if entries.is_empty() {
            return Ok(Swept {
                more,
                ..Swept::default()
            });
        }
        let calls: Vec<_> = entries
            .iter()
            .map(|(uid, second)| {
                let mut call = self.user_call(&self.expire, uid, now_ms);
                call.arg(*second);
                call
            })
            .collect();
        let mut pipe = redis::pipe();
        pipe.load_script(&self.expire).ignore();
        for call in &calls {
            pipe.invoke_script(call);
        }
        let replies: Vec<ExpireReply> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_sweep", taken))
            .await?;
        let mut swept = Swept {
            more,
            ..Swept::default()
        };
        for ((uid, _), r) in entries.iter().zip(replies) {
            let (a, b, c, d, e, f, g, h, i, expired) = r;
            swept.expired += expired;
            let change = change(uid, (a, b, c, d, e, f, g, h, i));
            if change.changed {
                swept.changes.push(change);
            }
        }
        Ok(swept)
    }

    /// The users whose queue grace ran out by `now_ms` and who are still
    /// offline and still matchmaking: each claimed (taken off the grace
    /// zset) by exactly one caller. Up to `limit` per shard.
    pub async fn due_graces(&self, now_ms: u64, limit: usize) -> Result<Vec<String>, StoreError> {
        let (due, _) = self.due_in(grace_key, now_ms, limit).await?;
        if due.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        pipe.load_script(&self.claim_grace).ignore();
        let calls: Vec<_> = due
            .iter()
            .map(|uid| {
                let keys = PresenceKeys::new(uid);
                let mut call = self.claim_grace.prepare_invoke();
                call.key(keys.user()).key(keys.grace()).arg(uid).arg(now_ms);
                call
            })
            .collect();
        for call in &calls {
            pipe.invoke_script(call);
        }
        let claimed: Vec<i64> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_graces", due.len()))
            .await?;
        Ok(due
            .into_iter()
            .zip(claimed)
            .filter(|(_, c)| *c == 1)
            .map(|(uid, _)| uid)
            .collect())
    }

    /// Puts back a claimed grace, due at `due_ms` (giving up the ticket
    /// failed), if the user is still offline and matchmaking; `true` if so.
    pub async fn rearm_grace(&self, uid: &str, due_ms: u64) -> Result<bool, StoreError> {
        let keys = PresenceKeys::new(uid);
        let armed: i64 = self
            .rearm_grace
            .key(keys.user())
            .key(keys.grace())
            .arg(uid)
            .arg(due_ms)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("presence_rearm_grace", 1))
            .await?;
        Ok(armed == 1)
    }

    /// Users online or away, by the region of their first connection
    /// (every shard's counts, summed: one pipelined round trip).
    pub async fn region_counts(&self) -> Result<BTreeMap<String, u64>, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("HGETALL").arg(regions_key(shard));
        }
        let shards: Vec<HashMap<String, i64>> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_regions", 0))
            .await?;
        let mut counts = BTreeMap::new();
        for (region, n) in shards.into_iter().flatten() {
            if let Ok(n) = u64::try_from(n)
                && n > 0
            {
                *counts.entry(region).or_default() += n;
            }
        }
        Ok(counts)
    }

    /// Bytes Redis uses for one user: MEMORY USAGE of their hash plus
    /// their share of their shard's sweep buckets and index (the shard's
    /// sweep keys' usage over their entries). For tests and benchmarks.
    pub async fn memory_usage(&self, uid: &str) -> Result<u64, StoreError> {
        let keys = PresenceKeys::new(uid);
        let seconds: Vec<u64> = redis::cmd("ZRANGE")
            .arg(keys.sweep())
            .arg(0)
            .arg(-1)
            .query_async(&mut self.conn.clone())
            .await?;
        let usage = |pipe: &mut redis::Pipeline, key: String| {
            pipe.cmd("MEMORY")
                .arg("USAGE")
                .arg(key)
                .arg("SAMPLES")
                .arg(0);
        };
        let mut pipe = redis::pipe();
        usage(&mut pipe, keys.user());
        usage(&mut pipe, keys.sweep());
        for second in &seconds {
            usage(&mut pipe, bucket_key(keys.shard(), *second));
        }
        for second in &seconds {
            pipe.cmd("LLEN").arg(bucket_key(keys.shard(), *second));
        }
        let figures: Vec<Option<u64>> = pipe.query_async(&mut self.conn.clone()).await?;
        let (usages, lengths) = figures.split_at(2 + seconds.len());
        let sweep: u64 = usages[1..].iter().flatten().sum();
        let entries: u64 = lengths.iter().flatten().sum();
        Ok(usages[0].unwrap_or(0) + sweep / entries.max(1))
    }

    /// The members of every shard's `key` scored at or before `now_ms`, up
    /// to `limit` per shard, and whether a shard had more.
    async fn due_in(
        &self,
        key: fn(u8) -> String,
        now_ms: u64,
        limit: usize,
    ) -> Result<(Vec<String>, bool), StoreError> {
        let limit = limit.max(1);
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGEBYSCORE")
                .arg(key(shard))
                .arg("-inf")
                .arg(now_ms)
                .arg("LIMIT")
                .arg(0)
                .arg(limit);
        }
        let shards: Vec<Vec<String>> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_due", 0))
            .await?;
        let more = shards.iter().any(|s| s.len() >= limit);
        Ok((shards.into_iter().flatten().collect(), more))
    }

    /// Every user with a sweep entry, each once: everyone connected (and
    /// anyone whose last connection expired but is not swept yet; callers
    /// [`query`](Self::query) the status). For the notifier's broadcasts to
    /// users online. Two round trips: every shard's bucket index, then the
    /// buckets.
    pub async fn connected_users(&self) -> Result<Vec<String>, StoreError> {
        let mut pipe = redis::pipe();
        for shard in 0..SHARDS {
            pipe.cmd("ZRANGE").arg(sweep_key(shard)).arg(0).arg(-1);
        }
        let seconds: Vec<Vec<u64>> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_connected_index", 0))
            .await?;
        let buckets: Vec<String> = (0..SHARDS)
            .zip(seconds)
            .flat_map(|(shard, seconds)| seconds.into_iter().map(move |s| bucket_key(shard, s)))
            .collect();
        if buckets.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for bucket in &buckets {
            pipe.cmd("LRANGE").arg(bucket).arg(0).arg(-1);
        }
        let lists: Vec<Vec<String>> = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("presence_connected", buckets.len()))
            .await?;
        let users: std::collections::BTreeSet<String> = lists.into_iter().flatten().collect();
        Ok(users.into_iter().collect())
    }
}

/// The field-name digest of a connection id: the first 5 bytes of its
/// SHA-256, in hex (see the module docs).
fn conn_digest(conn: &str) -> String {
    let digest = Sha256::digest(conn.as_bytes());
    digest[..5].iter().map(|b| format!("{b:02x}")).collect()
}

fn flag(away: bool) -> &'static str {
    if away { "1" } else { "0" }
}

/// A user's hash (its flat field/value list, in order) as
/// `presence/user.lua` reads it; an empty one: no entry.
fn parse_user(uid: &str, flat: &[String], ttl_ms: u64) -> UserPresence {
    let mut p = UserPresence {
        uid: uid.to_owned(),
        ..UserPresence::default()
    };
    let (mut connections, mut visible, mut latest) = (0u32, false, None::<u64>);
    for pair in flat.chunks_exact(2) {
        let (field, value) = (pair[0].as_str(), pair[1].as_str());
        if field.starts_with('#') {
            let Some(at) = value.find(['+', '-']) else {
                continue;
            };
            let Ok(deadline) = u64::from_str_radix(&value[..at], 36) else {
                continue;
            };
            connections += 1;
            visible |= value[at..].starts_with('+');
            latest = latest.max(Some(deadline));
            if p.region.is_none() {
                p.region = Some(value[at + 1..].to_owned());
            }
        } else {
            match field {
                "a" => p.activity = Activity::from_code(value.parse().unwrap_or(0)),
                "m" => p.match_id = Some(value.to_owned()),
                "v" => p.version = value.parse().unwrap_or(0),
                "l" => p.last_seen_ms = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    if p.activity != Activity::InMatch {
        p.match_id = None;
    }
    p.connections = connections;
    if let Some(latest) = latest {
        p.last_seen_ms = latest.saturating_sub(ttl_ms);
    }
    p.status = match (connections, visible) {
        (0, _) => Status::Offline,
        (_, true) => Status::Online,
        (_, false) => Status::Away,
    };
    p
}
