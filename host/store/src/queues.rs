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
//! | `mm:{mm:<mode>:<kind>}:stats` | hash | `avg_wait_ms`, a moving average of the waits of tickets leaving for a match, for estimates | none |
//! | `mm:{mm:<mode>:<kind>}:recent` | list | the waits (ms, decimal) of the last 101 tickets to leave for a match, newest first: the lobby's figures | none |
//! | `mm:player:{<player>}` | string | the player's state (JSON): queued, hosting, matching or playing | while hosting: the code's; while playing: a safety net of a day |
//! | `mm:rating:{<player>}` | hash | mode → rating (JSON: Glicko-2 rating, deviation, volatility) | none |
//! | `mm:code:{<CODE>}` | hash | an invite code: `host`, `mode`, `created_ms`, `expires_ms`, `to` for a direct invite (the only player who may join), and `guest` once claimed | the code's lifetime (10 min by default) |
//! | `mm:{mm:direct}:due` | zset | the direct invites that stand, each a JSON array `[code, host, invitee]` scored by its `expires_ms`: what the periodic pass expires | none (members leave when claimed) |
//! | `mm:rematch:{<match_id>}` | hash | a finished match's rematch slot: `mode`, `players`, `bots`, `humans` (JSON arrays), `ended_ms`, `offer:<player>` (ms) per offer, `starting` (a token) while one caller makes the match, `match_id` once made | the rest of the rematch window (30 s from the end by default) |
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
//!
//! An invite code is claimed by one script ([`QueueStore::claim_invite`]):
//! the first guest sets `guest`, every later one finds it set. A rematch is
//! started by one script ([`QueueStore::offer_rematch`]): the offer that
//! completes the agreement also marks the slot `starting`, so exactly one
//! caller makes the new match, and [`QueueStore::settle_rematch`] records
//! its id (or withdraws that offer if the match could not be made).
//!
//! A direct invite's end is told exactly once: its entry in the due zset
//! is removed by exactly one of the accept ([`QueueStore::unschedule_direct_invite`]),
//! the decline or the host leaving (the same), and the periodic pass
//! ([`QueueStore::due_direct_invites`], one script that takes and removes
//! due entries), and only whoever removed it tells the players. The zset
//! and the codes sit in different slots, so no script touches both; an
//! accept whose match cannot be made puts the entry back
//! ([`QueueStore::schedule_direct_invite`]), and [`QueueStore::end_invite`]
//! never deletes an invite its invitee has claimed.
//! Malformed invite or rematch records (never written by this code) read as
//! absent.

use std::collections::HashMap;
use std::time::Duration;

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
    pub fn recent(&self) -> String {
        format!("{}:recent", self.tag)
    }
}

/// Waits kept in a queue's `recent` list (the newest).
pub const RECENT_WAITS: usize = 101;

pub fn player_key(player: &str) -> String {
    format!("mm:player:{{{player}}}")
}

pub fn rating_key(player: &str) -> String {
    format!("mm:rating:{{{player}}}")
}

/// An invite code's key, hash-tagged by the code (a normalised code).
pub fn invite_key(code: &str) -> String {
    format!("mm:code:{{{code}}}")
}

/// The due zset of direct invites: one key, in its own slot.
pub fn direct_due_key() -> &'static str {
    "mm:{mm:direct}:due"
}

/// A finished match's rematch slot, hash-tagged by the match id.
pub fn rematch_key(match_id: &str) -> String {
    format!("mm:rematch:{{{match_id}}}")
}

/// An invite code as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredInvite {
    pub host: String,
    pub mode: String,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// The guest who claimed it, if one has.
    pub guest: Option<String>,
    /// For a direct invite, the only player who may join (records made
    /// before direct invites have none: anyone with the code may).
    pub to: Option<String>,
}

/// A direct invite in the due zset, as [`QueueStore::due_direct_invites`]
/// claimed it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DueInvite {
    pub code: String,
    pub host: String,
    pub to: String,
}

impl DueInvite {
    /// Its member in the due zset: `["CODE","host","to"]` (serde_json of a
    /// fixed array of strings, so the same invite always has the same bytes
    /// and ZREM finds it).
    fn member(&self) -> String {
        serde_json::to_string(&[&self.code, &self.host, &self.to]).unwrap_or_default()
    }

    fn from_member(member: &str) -> Option<Self> {
        let [code, host, to]: [String; 3] = serde_json::from_str(member).ok()?;
        Some(DueInvite { code, host, to })
    }
}

/// What [`QueueStore::end_invite`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InviteEnd {
    /// The invite stood unclaimed and is deleted now.
    Ended,
    /// Its invitee has claimed it: a match is being made; nothing changed.
    Taken,
    /// No such invite (its ttl ran out, it was cancelled, or its code is
    /// another invite's now); nothing changed.
    Gone,
}

/// What claiming an invite code found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum InviteClaim {
    /// It is the caller's now (its `guest` is the caller).
    Claimed(StoredInvite),
    /// Another guest claimed it first.
    Used,
    /// It is a direct invite to another player.
    NotInvited,
    /// It expired, was cancelled, or never existed.
    Gone,
}

/// A finished match's rematch slot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredRematch {
    pub mode: String,
    /// Every player of the finished match, in its order.
    pub players: Vec<String>,
    /// Which of `players` were bots.
    pub bots: Vec<String>,
    /// The players who must agree (the humans).
    pub humans: Vec<String>,
    pub ended_ms: u64,
    /// Who has offered so far.
    pub offered: Vec<String>,
    /// The rematch, once made.
    pub match_id: Option<String>,
}

/// What an offer did ([`QueueStore::offer_rematch`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RematchOffer {
    /// The window closed (or the match is unknown).
    Expired,
    /// The rematch was made already: its id.
    Started(String),
    /// Another caller is making the rematch right now.
    Starting,
    /// The caller was not a human player of the match.
    Stranger,
    /// The offer stands (`new`: it was not made before); others must agree
    /// within `ttl_ms`.
    Offered { new: bool, ttl_ms: u64 },
    /// Everyone agreed and the caller's token holds the slot: make the match,
    /// then [`QueueStore::settle_rematch`].
    Start,
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

impl QueuePosition {
    /// From Redis's answers: `ZRANK` (0-based, nil if absent), `ZCARD`, and
    /// the stored average wait.
    fn from_redis(rank: Option<u64>, size: u64, avg_wait_ms: Option<f64>) -> Self {
        QueuePosition {
            position: rank.map(|r| r + 1),
            size,
            avg_wait_ms,
        }
    }
}

#[derive(Clone)]
pub struct QueueStore {
    conn: ConnectionManager,
    enqueue: Script,
    enqueue_search: Script,
    dequeue: Script,
    candidates: Script,
    waiting: Script,
    swap: Script,
    invite_create: Script,
    invite_claim: Script,
    invite_release: Script,
    invite_cancel: Script,
    invite_end: Script,
    direct_due: Script,
    rematch_open: Script,
    rematch_offer: Script,
    rematch_settle: Script,
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
            enqueue_search: Script::new(concat!(
                include_str!("queues/nearest.lua"),
                include_str!("queues/enqueue_search.lua")
            )),
            dequeue: Script::new(include_str!("queues/dequeue.lua")),
            candidates: Script::new(concat!(
                include_str!("queues/nearest.lua"),
                include_str!("queues/candidates.lua")
            )),
            waiting: Script::new(include_str!("queues/waiting.lua")),
            swap: Script::new(include_str!("queues/swap.lua")),
            invite_create: Script::new(include_str!("queues/invite_create.lua")),
            invite_claim: Script::new(include_str!("queues/invite_claim.lua")),
            invite_release: Script::new(include_str!("queues/invite_release.lua")),
            invite_cancel: Script::new(include_str!("queues/invite_cancel.lua")),
            invite_end: Script::new(include_str!("queues/invite_end.lua")),
            direct_due: Script::new(include_str!("queues/direct_due.lua")),
            rematch_open: Script::new(include_str!("queues/rematch_open.lua")),
            rematch_offer: Script::new(include_str!("queues/rematch_offer.lua")),
            rematch_settle: Script::new(include_str!("queues/rematch_settle.lua")),
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

    /// Sets the player's state if they have none (`SET NX`: a native
    /// command, several times cheaper in Redis than the [`Self::swap`]
    /// script). Returns whether it was set.
    pub async fn set_if_absent(
        &self,
        player: &str,
        new: &str,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("SET");
        cmd.arg(player_key(player)).arg(new).arg("NX");
        if let Some(ttl) = ttl {
            cmd.arg("PX").arg((ttl.as_millis() as u64).max(1));
        }
        let set: Option<String> = cmd
            .query_async(&mut self.conn.clone())
            .instrument(span("player_set_new"))
            .await?;
        Ok(set.is_some())
    }

    /// Replaces the player's state if it is still `expected` (`None` =
    /// absent); `new` = `None` deletes it; `ttl` = `None` keeps the new state
    /// until it is replaced. Returns whether it was replaced.
    pub async fn swap(
        &self,
        player: &str,
        expected: Option<&str>,
        new: Option<&str>,
        ttl: Option<Duration>,
    ) -> Result<bool, StoreError> {
        // At least 1 ms: 0 would mean "no expiry".
        let ttl_ms = ttl.map_or(0, |t| (t.as_millis() as u64).max(1));
        let replaced: i64 = self
            .swap
            .key(player_key(player))
            .arg(expected.unwrap_or(""))
            .arg(new.unwrap_or(""))
            .arg(ttl_ms)
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

    /// [`Self::enqueue`], then [`Self::candidates`] (without the player's
    /// own ticket) and [`Self::position`], in one round trip: a join's
    /// common path.
    pub async fn enqueue_and_search(
        &self,
        keys: &QueueKeys,
        t: &StoredTicket<'_>,
        regions: &[String],
        (lo, hi): (f64, f64),
        limit: usize,
    ) -> Result<(Vec<String>, QueuePosition), StoreError> {
        let mut call = self.enqueue_search.prepare_invoke();
        call.key(keys.tickets())
            .key(keys.wait())
            .key(keys.stats())
            .key(keys.rating(t.region));
        for region in regions {
            call.key(keys.rating(region));
        }
        call.arg(t.player)
            .arg(t.json)
            .arg(t.joined_ms)
            .arg(bound(t.rating))
            .arg(bound(lo))
            .arg(bound(hi))
            .arg(limit);
        let (candidates, rank, size, avg): (Vec<String>, Option<u64>, u64, Option<f64>) = call
            .invoke_async(&mut self.conn.clone())
            .instrument(span("enqueue_search"))
            .await?;
        Ok((candidates, QueuePosition::from_redis(rank, size, avg)))
    }

    /// Takes these tickets (player, ticket id, region) out of the queue for
    /// a match, all or none; returns their JSON, or `None` if any was
    /// already gone. Their waits go into the queue's average and `recent`
    /// list.
    pub async fn take(
        &self,
        keys: &QueueKeys,
        tickets: &[(&str, &str, &str)],
        now_ms: u64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.dequeue(keys, tickets, now_ms, true, "take").await
    }

    /// [`Self::take`] for tickets leaving without a match (their player
    /// left, or a stale ticket is cleared): their waits are not recorded,
    /// so the figures are times to a match.
    pub async fn withdraw(
        &self,
        keys: &QueueKeys,
        tickets: &[(&str, &str, &str)],
        now_ms: u64,
    ) -> Result<Option<Vec<String>>, StoreError> {
        self.dequeue(keys, tickets, now_ms, false, "withdraw").await
    }

    async fn dequeue(
        &self,
        keys: &QueueKeys,
        tickets: &[(&str, &str, &str)],
        now_ms: u64,
        matched: bool,
        op: &'static str,
    ) -> Result<Option<Vec<String>>, StoreError> {
        let mut call = self.dequeue.prepare_invoke();
        call.key(keys.tickets())
            .key(keys.wait())
            .key(keys.stats())
            .key(keys.recent());
        for (_, _, region) in tickets {
            call.key(keys.rating(region));
        }
        call.arg(now_ms).arg(if matched { "1" } else { "0" });
        for (player, ticket_id, _) in tickets {
            call.arg(*player).arg(*ticket_id);
        }
        Ok(call
            .invoke_async(&mut self.conn.clone())
            .instrument(span(op))
            .await?)
    }

    /// A queue's figures for the lobby: how many tickets wait now, and the
    /// waits (ms) of the last [`RECENT_WAITS`] tickets that left it for a
    /// match, newest first. One round trip.
    pub async fn queue_figures(&self, keys: &QueueKeys) -> Result<(u64, Vec<u64>), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("ZCARD")
            .arg(keys.wait())
            .cmd("LRANGE")
            .arg(keys.recent())
            .arg(0)
            .arg(RECENT_WAITS as i64 - 1);
        let (waiting, recent): (u64, Vec<String>) = pipe
            .query_async(&mut self.conn.clone())
            .instrument(span("queue_figures"))
            .await?;
        // Entries are written by dequeue.lua only; one unreadable is skipped
        // rather than failing the lobby.
        let recent = recent.iter().filter_map(|w| w.parse().ok()).collect();
        Ok((waiting, recent))
    }

    /// The tickets rated nearest to `at` within `[lo, hi]` in each of
    /// `regions`: up to `limit` above and `limit` below, per region (JSON).
    pub async fn candidates(
        &self,
        keys: &QueueKeys,
        regions: &[String],
        at: f64,
        (lo, hi): (f64, f64),
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let mut call = self.candidates.prepare_invoke();
        call.key(keys.tickets());
        for region in regions {
            call.key(keys.rating(region));
        }
        call.arg(bound(lo)).arg(bound(hi)).arg(limit).arg(bound(at));
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
        Ok(QueuePosition::from_redis(rank, size, avg))
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

    /// Stores a new invite code that expires at `invite.expires_ms` (after
    /// `ttl`); `false` if the code exists (draw another).
    pub async fn create_invite(
        &self,
        code: &str,
        invite: &StoredInvite,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let created: i64 = self
            .invite_create
            .key(invite_key(code))
            .arg(&invite.host)
            .arg(&invite.mode)
            .arg(invite.created_ms)
            .arg(invite.expires_ms)
            .arg((ttl.as_millis() as u64).max(1))
            .arg(invite.to.as_deref().unwrap_or(""))
            .invoke_async(&mut self.conn.clone())
            .instrument(span("invite_create"))
            .await?;
        Ok(created == 1)
    }

    /// The invite code, if it exists.
    pub async fn invite(&self, code: &str) -> Result<Option<StoredInvite>, StoreError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(invite_key(code))
            .query_async(&mut self.conn.clone())
            .instrument(span("invite"))
            .await?;
        Ok(invite_from(&fields))
    }

    /// Claims the invite code for `guest`, atomically: one guest per code,
    /// and for a direct invite only its invitee.
    pub async fn claim_invite(&self, code: &str, guest: &str) -> Result<InviteClaim, StoreError> {
        let reply: Vec<String> = self
            .invite_claim
            .key(invite_key(code))
            .arg(guest)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("invite_claim"))
            .await?;
        Ok(match reply.as_slice() {
            [tag, host, mode, created, expires, to] if tag == "claimed" => {
                InviteClaim::Claimed(StoredInvite {
                    host: host.clone(),
                    mode: mode.clone(),
                    created_ms: created.parse().unwrap_or(0),
                    expires_ms: expires.parse().unwrap_or(0),
                    guest: Some(guest.to_owned()),
                    to: Some(to.clone()).filter(|to| !to.is_empty()),
                })
            }
            [tag] if tag == "used" => InviteClaim::Used,
            [tag] if tag == "not_invited" => InviteClaim::NotInvited,
            _ => InviteClaim::Gone,
        })
    }

    /// Gives back a code `guest` claimed; `false` if it was not theirs.
    pub async fn release_invite(&self, code: &str, guest: &str) -> Result<bool, StoreError> {
        let released: i64 = self
            .invite_release
            .key(invite_key(code))
            .arg(guest)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("invite_release"))
            .await?;
        Ok(released == 1)
    }

    /// Deletes the code if `host` made it; `false` if not (or it is gone).
    pub async fn cancel_invite(&self, code: &str, host: &str) -> Result<bool, StoreError> {
        let cancelled: i64 = self
            .invite_cancel
            .key(invite_key(code))
            .arg(host)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("invite_cancel"))
            .await?;
        Ok(cancelled == 1)
    }

    /// Deletes the direct invite `code` from `host` to `to` unless `to` has
    /// claimed it (declined, or ran out: see [`InviteEnd`]).
    pub async fn end_invite(
        &self,
        code: &str,
        host: &str,
        to: &str,
    ) -> Result<InviteEnd, StoreError> {
        let reply: String = self
            .invite_end
            .key(invite_key(code))
            .arg(host)
            .arg(to)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("invite_end"))
            .await?;
        Ok(match reply.as_str() {
            "ended" => InviteEnd::Ended,
            "taken" => InviteEnd::Taken,
            _ => InviteEnd::Gone,
        })
    }

    /// Puts a direct invite in the due zset, to run out at `expires_ms`
    /// (again, if it was there: the score is replaced).
    pub async fn schedule_direct_invite(
        &self,
        invite: &DueInvite,
        expires_ms: u64,
    ) -> Result<(), StoreError> {
        let _: i64 = redis::cmd("ZADD")
            .arg(direct_due_key())
            .arg(expires_ms)
            .arg(invite.member())
            .query_async(&mut self.conn.clone())
            .instrument(span("direct_schedule"))
            .await?;
        Ok(())
    }

    /// Takes a direct invite out of the due zset; `true` if this call did
    /// (so the caller, and nobody else, ends it and tells its players).
    pub async fn unschedule_direct_invite(&self, invite: &DueInvite) -> Result<bool, StoreError> {
        let removed: i64 = redis::cmd("ZREM")
            .arg(direct_due_key())
            .arg(invite.member())
            .query_async(&mut self.conn.clone())
            .instrument(span("direct_unschedule"))
            .await?;
        Ok(removed == 1)
    }

    /// Claims up to `limit` direct invites due by `now_ms`, removing them
    /// from the due zset in the same step: each is returned to one caller
    /// only. Malformed members (never written by this code) are dropped.
    pub async fn due_direct_invites(
        &self,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<DueInvite>, StoreError> {
        let due: Vec<String> = self
            .direct_due
            .key(direct_due_key())
            .arg(now_ms)
            .arg(limit.max(1))
            .invoke_async(&mut self.conn.clone())
            .instrument(span("direct_due"))
            .await?;
        Ok(due
            .iter()
            .filter_map(|m| DueInvite::from_member(m))
            .collect())
    }

    /// Opens a finished match's rematch slot for `ttl`; `false` if it was
    /// open already (the record came twice).
    pub async fn open_rematch(
        &self,
        match_id: &str,
        slot: &StoredRematch,
        ttl: Duration,
    ) -> Result<bool, StoreError> {
        let json = |v: &Vec<String>| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
        let opened: i64 = self
            .rematch_open
            .key(rematch_key(match_id))
            .arg(&slot.mode)
            .arg(json(&slot.players))
            .arg(json(&slot.bots))
            .arg(json(&slot.humans))
            .arg(slot.ended_ms)
            .arg((ttl.as_millis() as u64).max(1))
            .invoke_async(&mut self.conn.clone())
            .instrument(span("rematch_open"))
            .await?;
        Ok(opened == 1)
    }

    /// A match's rematch slot, if its window is open.
    pub async fn rematch(&self, match_id: &str) -> Result<Option<StoredRematch>, StoreError> {
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(rematch_key(match_id))
            .query_async(&mut self.conn.clone())
            .instrument(span("rematch"))
            .await?;
        Ok(rematch_from(&fields))
    }

    /// `player` offers a rematch of `match_id`; if that completes the
    /// agreement, `token` now holds the slot ([`RematchOffer::Start`]).
    pub async fn offer_rematch(
        &self,
        match_id: &str,
        player: &str,
        now_ms: u64,
        token: &str,
    ) -> Result<RematchOffer, StoreError> {
        let reply: Vec<String> = self
            .rematch_offer
            .key(rematch_key(match_id))
            .arg(player)
            .arg(now_ms)
            .arg(token)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("rematch_offer"))
            .await?;
        Ok(match reply.as_slice() {
            [tag, id] if tag == "started" => RematchOffer::Started(id.clone()),
            [tag] if tag == "starting" => RematchOffer::Starting,
            [tag] if tag == "stranger" => RematchOffer::Stranger,
            [tag, new, ttl] if tag == "offered" => RematchOffer::Offered {
                new: new == "1",
                ttl_ms: ttl.parse().unwrap_or(0),
            },
            [tag] if tag == "start" => RematchOffer::Start,
            _ => RematchOffer::Expired,
        })
    }

    /// Ends the start `token` holds: `Some(id)` = the rematch was made,
    /// `None` = it could not be, and `accepter`'s offer is withdrawn.
    /// Returns `false` if the token no longer holds the slot.
    pub async fn settle_rematch(
        &self,
        match_id: &str,
        token: &str,
        made: Option<&str>,
        accepter: &str,
    ) -> Result<bool, StoreError> {
        let settled: i64 = self
            .rematch_settle
            .key(rematch_key(match_id))
            .arg(token)
            .arg(made.unwrap_or(""))
            .arg(accepter)
            .invoke_async(&mut self.conn.clone())
            .instrument(span("rematch_settle"))
            .await?;
        Ok(settled == 1)
    }
}

fn invite_from(fields: &HashMap<String, String>) -> Option<StoredInvite> {
    let number = |name: &str| fields.get(name).and_then(|v| v.parse().ok());
    Some(StoredInvite {
        host: fields.get("host")?.clone(),
        mode: fields.get("mode")?.clone(),
        created_ms: number("created_ms")?,
        expires_ms: number("expires_ms")?,
        guest: fields.get("guest").cloned(),
        to: fields.get("to").cloned(),
    })
}

fn rematch_from(fields: &HashMap<String, String>) -> Option<StoredRematch> {
    let list = |name: &str| -> Option<Vec<String>> { serde_json::from_str(fields.get(name)?).ok() };
    let humans = list("humans")?;
    let offered = humans
        .iter()
        .filter(|p| fields.contains_key(&format!("offer:{p}")))
        .cloned()
        .collect();
    Some(StoredRematch {
        mode: fields.get("mode")?.clone(),
        players: list("players")?,
        bots: list("bots")?,
        humans,
        ended_ms: fields.get("ended_ms")?.parse().ok()?,
        offered,
        match_id: fields.get("match_id").cloned(),
    })
}
