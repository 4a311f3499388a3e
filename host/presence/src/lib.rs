//! The presence role: who is online, away or offline, doing what, and
//! where; told to whoever follows them only when it changes.
//!
//! Gateways report their sessions (a connection opened, a batch of
//! heartbeats, a page hidden or shown, a connection closed) and what their
//! players start doing; the role itself follows match-found notices and
//! match ends. Everything is kept in Redis by
//! [`dashdice_store::presence`], whose scripts say for every change whether
//! what others see of the user changed. This module holds the rules:
//!
//! - what a request may say (ids, regions, sizes), and what it is refused
//!   with ([`PresenceError::code`]);
//! - what a change means to others ([`effects_of`]): a user's new
//!   [`Presence`] to publish, and, for a player in a match whose last
//!   connection went (or whose first came back), news for the match's
//!   other players;
//! - the lobby's figures ([`Presences::lobby`]): online users per region,
//!   and per playable mode and kind the tickets waiting and the median of
//!   the recent waits.
//!
//! [`service`] is the only part that touches NATS: it serves the requests,
//! publishes the effects, follows the notices, and runs the sweeper (expired
//! connections, then queue graces that ran out).
//!
//! Stateless apart from a one-second cache of the lobby: any number run
//! side by side in one queue group; the store's scripts make every expiry
//! and every grace handled by exactly one of them.
//!
//! **Architecture Invariant:** Redis only through `dashdice-store`, NATS
//! only in `service.rs`; no wasmtime and no Firestore in the dependency
//! tree (`tests/tidy.rs`).

pub mod service;

use std::sync::Arc;

use dashdice_proto::ErrorCode;
use dashdice_proto::bus::MatchEnded;
use dashdice_proto::clock::SharedClock;
use dashdice_proto::ids::valid_id;
use dashdice_proto::presence::{
    Activity, Connect, Disconnect, Heartbeat, HeartbeatReply, Lobby, MAX_QUERY, Presence,
    PresenceQuery, PresenceStatus, QueueFigures, RegionFigures, SetActivity, Visibility,
};
use dashdice_proto::queue::QueueKind;
use dashdice_store::StoreError;
use dashdice_store::presence::{self as stored, Change, LiveConn, PresenceStore, UserPresence};
use dashdice_store::queues::{QueueKeys, QueueStore};

/// The longest region name.
pub const MAX_REGION: usize = 32;
/// How long one lobby read is answered again (ms): the lobby is asked by
/// every client on its main screen, and its figures move slowly.
pub const LOBBY_FRESH_MS: u64 = 1_000;

/// Why a request was refused.
#[derive(Debug, thiserror::Error)]
pub enum PresenceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("presence is unavailable (redis: {0}); retry shortly")]
    Store(#[from] StoreError),
}

impl PresenceError {
    /// The stable code the caller sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            PresenceError::BadRequest(_) => ErrorCode::BadRequest,
            PresenceError::TooLarge(_) => ErrorCode::TooLarge,
            PresenceError::Store(_) => ErrorCode::Unavailable,
        }
    }
}

fn check_uid(uid: &str) -> Result<(), PresenceError> {
    if valid_id(uid) {
        Ok(())
    } else {
        Err(PresenceError::BadRequest(format!(
            "{uid:?} is not a user id (1 to 128 letters, digits, '-' or '_')"
        )))
    }
}

fn check_conn(conn: &str) -> Result<(), PresenceError> {
    if valid_id(conn) {
        Ok(())
    } else {
        Err(PresenceError::BadRequest(format!(
            "{conn:?} is not a connection id (1 to 128 letters, digits, '-' or '_')"
        )))
    }
}

fn check_region(region: &str) -> Result<(), PresenceError> {
    if region.len() <= MAX_REGION && valid_id(region) {
        Ok(())
    } else {
        Err(PresenceError::BadRequest(format!(
            "{region:?} is not a region (1 to {MAX_REGION} letters, digits, '-' or '_')"
        )))
    }
}

/// A player in a match lost their last connection, or got one back: what
/// the match's other players are told (the service adds the turn timer).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MatchNews {
    pub match_id: String,
    pub player: String,
    pub connected: bool,
    pub at_ms: u64,
}

/// What a change means to others.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Effects {
    /// Users whose visible presence changed: each published on
    /// `presence_changes(uid)`, `changed_ms` set.
    pub changed: Vec<Presence>,
    /// Players in a match whose connection went or came back.
    pub matches: Vec<MatchNews>,
}

impl Effects {
    fn extend(&mut self, other: Effects) {
        self.changed.extend(other.changed);
        self.matches.extend(other.matches);
    }
}

/// An answer, and what to tell others.
#[derive(Clone, Debug, PartialEq)]
pub struct Reported<T> {
    pub answer: T,
    pub effects: Effects,
}

/// The wire shape of a stored presence; `changed_ms` is when this version
/// was made, if known (0 otherwise).
pub fn presence_of(p: &UserPresence, changed_ms: u64) -> Presence {
    Presence {
        uid: p.uid.clone(),
        status: match p.status {
            stored::Status::Online => PresenceStatus::Online,
            stored::Status::Away => PresenceStatus::Away,
            stored::Status::Offline => PresenceStatus::Offline,
        },
        activity: match p.activity {
            stored::Activity::Menu => Activity::Menu,
            stored::Activity::Matchmaking => Activity::Matchmaking,
            stored::Activity::InMatch => Activity::InMatch,
        },
        match_id: p.match_id.clone(),
        region: p.region.clone(),
        last_seen_ms: p.last_seen_ms,
        connections: p.connections,
        version: p.version,
        changed_ms,
    }
}

fn stored_activity(a: Activity) -> stored::Activity {
    match a {
        Activity::Menu => stored::Activity::Menu,
        Activity::Matchmaking => stored::Activity::Matchmaking,
        Activity::InMatch => stored::Activity::InMatch,
    }
}

/// What `changes` mean to others at `now_ms`: every visible change is
/// published; a player in a match who went offline (their last connection
/// closed or expired) or came back from offline is news for the match.
/// Online ↔ away is not: the player is still connected.
pub fn effects_of<'a>(changes: impl IntoIterator<Item = &'a Change>, now_ms: u64) -> Effects {
    let mut effects = Effects::default();
    for c in changes {
        if !c.changed {
            continue;
        }
        let p = &c.presence;
        let went = c.was != stored::Status::Offline && p.status == stored::Status::Offline;
        let came = c.was == stored::Status::Offline && p.status != stored::Status::Offline;
        if (went || came)
            && p.activity == stored::Activity::InMatch
            && let Some(match_id) = &p.match_id
        {
            effects.matches.push(MatchNews {
                match_id: match_id.clone(),
                player: p.uid.clone(),
                connected: came,
                at_ms: now_ms,
            });
        }
        effects.changed.push(presence_of(p, now_ms));
    }
    effects
}

/// One change as answered and told.
fn reported(change: Change, now_ms: u64) -> Reported<Presence> {
    let effects = effects_of([&change], now_ms);
    let answer = presence_of(&change.presence, if change.changed { now_ms } else { 0 });
    Reported { answer, effects }
}

/// The median of `waits` (the mean of the middle two for an even count).
pub fn median(waits: &[u64]) -> Option<u64> {
    let mut sorted = waits.to_vec();
    sorted.sort_unstable();
    let n = sorted.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(sorted[n / 2]),
        _ => {
            let middle = (u128::from(sorted[n / 2 - 1]) + u128::from(sorted[n / 2])) / 2;
            u64::try_from(middle).ok()
        }
    }
}

/// What a sweep did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Connections expired.
    pub expired: u64,
    pub effects: Effects,
}

/// The presence rules over the store, shared by every request and the
/// sweeper.
#[derive(Clone)]
pub struct Presences {
    pub store: PresenceStore,
    /// The queues, for the lobby's figures.
    pub queues: QueueStore,
    pub clock: SharedClock,
    /// The playable modes, whose queues the lobby lists (the caller keeps
    /// it following the catalog; an empty book lists none).
    pub book: dashdice_catalog::ModeBook,
    lobby_cache: Arc<tokio::sync::Mutex<Option<Lobby>>>,
}

impl Presences {
    /// Presence on `store`, the lobby's queues from `queues`, on the system
    /// clock, listing the queues of `book`'s playable modes.
    pub fn new(store: PresenceStore, queues: QueueStore, book: dashdice_catalog::ModeBook) -> Self {
        Presences {
            store,
            queues,
            clock: dashdice_proto::clock::system(),
            book,
            lobby_cache: Arc::default(),
        }
    }

    /// The same on another clock (tests move a `ManualClock`).
    pub fn with_clock(mut self, clock: SharedClock) -> Self {
        self.clock = clock;
        self
    }

    pub fn now_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    /// A connection opened.
    pub async fn connect(&self, r: &Connect) -> Result<Reported<Presence>, PresenceError> {
        check_uid(&r.uid)?;
        check_conn(&r.conn)?;
        check_region(&r.region)?;
        let now = self.now_ms();
        let change = self
            .store
            .add_connection(&r.uid, &r.conn, &r.region, r.away, now)
            .await?;
        Ok(reported(change, now))
    }

    /// A gateway's live connections, refreshed (or taken back). The whole
    /// batch is refused if one entry is malformed: a gateway makes them
    /// from ids it checked, so one bad entry is a bug to see, not to hide.
    /// (A heartbeat overtaken by the close of one of its connections takes
    /// that connection back; it then expires with its ttl.)
    pub async fn heartbeat(
        &self,
        r: &Heartbeat,
    ) -> Result<Reported<HeartbeatReply>, PresenceError> {
        for c in &r.conns {
            check_uid(&c.uid)?;
            check_conn(&c.conn)?;
            check_region(&c.region)?;
        }
        let conns: Vec<LiveConn<'_>> = r
            .conns
            .iter()
            .map(|c| LiveConn {
                uid: &c.uid,
                conn: &c.conn,
                region: &c.region,
                away: c.away,
            })
            .collect();
        let now = self.now_ms();
        let beat = self.store.heartbeat(&conns, now).await?;
        Ok(Reported {
            answer: HeartbeatReply {
                refreshed: beat.refreshed,
                restored: beat.restored,
            },
            effects: effects_of(&beat.changes, now),
        })
    }

    /// A connection's page was hidden or shown.
    pub async fn visibility(&self, r: &Visibility) -> Result<Reported<Presence>, PresenceError> {
        check_uid(&r.uid)?;
        check_conn(&r.conn)?;
        let now = self.now_ms();
        let change = self.store.set_away(&r.uid, &r.conn, r.away, now).await?;
        Ok(reported(change, now))
    }

    /// A connection closed.
    pub async fn disconnect(&self, r: &Disconnect) -> Result<Reported<Presence>, PresenceError> {
        check_uid(&r.uid)?;
        check_conn(&r.conn)?;
        let now = self.now_ms();
        let change = self.store.remove_connection(&r.uid, &r.conn, now).await?;
        Ok(reported(change, now))
    }

    /// The user started doing something else. `in_match` needs the match
    /// id; other activities drop it.
    pub async fn activity(&self, r: &SetActivity) -> Result<Reported<Presence>, PresenceError> {
        check_uid(&r.uid)?;
        let match_id = match (r.activity, &r.match_id) {
            (Activity::InMatch, Some(id)) if valid_id(id) => Some(id.as_str()),
            (Activity::InMatch, Some(id)) => {
                return Err(PresenceError::BadRequest(format!(
                    "{id:?} is not a match id"
                )));
            }
            (Activity::InMatch, None) => {
                return Err(PresenceError::BadRequest(
                    "activity in_match needs the match_id".into(),
                ));
            }
            _ => None,
        };
        let now = self.now_ms();
        let change = self
            .store
            .set_activity(&r.uid, stored_activity(r.activity), match_id, None, now)
            .await?;
        Ok(reported(change, now))
    }

    /// The presence of some users, in the order asked (at most
    /// [`MAX_QUERY`]).
    pub async fn query(&self, r: &PresenceQuery) -> Result<Vec<Presence>, PresenceError> {
        if r.uids.len() > MAX_QUERY {
            return Err(PresenceError::TooLarge(format!(
                "a query names at most {MAX_QUERY} users, got {}",
                r.uids.len()
            )));
        }
        for uid in &r.uids {
            check_uid(uid)?;
        }
        let found = self.store.query(&r.uids).await?;
        Ok(found.iter().map(|p| presence_of(p, 0)).collect())
    }

    /// A match was found for `uid` (a notice to them): they are in it now.
    pub async fn match_found(&self, uid: &str, match_id: &str) -> Result<Effects, PresenceError> {
        check_uid(uid)?;
        if !valid_id(match_id) {
            return Err(PresenceError::BadRequest(format!(
                "{match_id:?} is not a match id"
            )));
        }
        let now = self.now_ms();
        let change = self
            .store
            .set_activity(uid, stored::Activity::InMatch, Some(match_id), None, now)
            .await?;
        Ok(effects_of([&change], now))
    }

    /// A match ended: its players whose activity still names it go back
    /// to the menu. (Bots have no entry, and none is made for them.)
    pub async fn match_ended(&self, ended: &MatchEnded) -> Result<Effects, PresenceError> {
        let now = self.now_ms();
        let mut effects = Effects::default();
        for standing in &ended.standings {
            let player = &standing.player;
            if !valid_id(player) {
                continue;
            }
            let change = self
                .store
                .set_activity(
                    player,
                    stored::Activity::Menu,
                    None,
                    Some(&ended.match_id),
                    now,
                )
                .await?;
            effects.extend(effects_of([&change], now));
        }
        Ok(effects)
    }

    /// Expires the connections past their deadline, in rounds of `limit`
    /// users per shard until none is left (at most `rounds`).
    pub async fn sweep(&self, limit: usize, rounds: usize) -> Result<Sweep, PresenceError> {
        let mut sweep = Sweep::default();
        for _ in 0..rounds.max(1) {
            let now = self.now_ms();
            let swept = self.store.sweep(now, limit).await?;
            sweep.expired += swept.expired;
            sweep.effects.extend(effects_of(&swept.changes, now));
            if !swept.more {
                break;
            }
        }
        Ok(sweep)
    }

    /// The users whose queue grace ran out now, still offline and still
    /// matchmaking; each is this caller's to give up (claimed).
    pub async fn due_graces(&self, limit: usize) -> Result<Vec<String>, PresenceError> {
        Ok(self.store.due_graces(self.now_ms(), limit).await?)
    }

    /// `uid`'s ticket or invite code was given up: back to the menu.
    pub async fn gave_up(&self, uid: &str) -> Result<Effects, PresenceError> {
        let now = self.now_ms();
        let change = self
            .store
            .set_activity(uid, stored::Activity::Menu, None, None, now)
            .await?;
        Ok(effects_of([&change], now))
    }

    /// Giving up `uid`'s ticket failed: their grace is due again after
    /// `retry_ms` (if they are still offline and matchmaking).
    pub async fn retry_grace(&self, uid: &str, retry_ms: u64) -> Result<bool, PresenceError> {
        Ok(self
            .store
            .rearm_grace(uid, self.now_ms() + retry_ms)
            .await?)
    }

    /// Users online or away, per region, by name.
    pub async fn regions(&self) -> Result<Vec<RegionFigures>, PresenceError> {
        Ok(self
            .store
            .region_counts()
            .await?
            .into_iter()
            .map(|(region, online)| RegionFigures { region, online })
            .collect())
    }

    /// The lobby's figures, read at most once per [`LOBBY_FRESH_MS`] by
    /// this instance: online users per region, and for each playable mode
    /// and kind the tickets waiting and the median of the recent waits.
    pub async fn lobby(&self) -> Result<Lobby, PresenceError> {
        let mut cache = self.lobby_cache.lock().await;
        let now = self.now_ms();
        if let Some(lobby) = cache.as_ref()
            && now.saturating_sub(lobby.at_ms) < LOBBY_FRESH_MS
            && lobby.at_ms <= now
        {
            return Ok(lobby.clone());
        }
        let regions = self.regions().await?;
        let mut queues = Vec::new();
        let reads = self.book.playable_ids().into_iter().flat_map(|mode| {
            [QueueKind::Quick, QueueKind::Ranked].map(|kind| {
                let mode = mode.clone();
                async move {
                    let keys = QueueKeys::new(&mode, kind.as_str());
                    let (waiting, recent) = self.queues.queue_figures(&keys).await?;
                    Ok::<_, StoreError>(QueueFigures {
                        mode,
                        kind,
                        waiting,
                        median_wait_ms: median(&recent),
                        recent_matches: u32::try_from(recent.len()).unwrap_or(u32::MAX),
                    })
                }
            })
        });
        for figures in futures_util::future::join_all(reads).await {
            queues.push(figures?);
        }
        let lobby = Lobby {
            regions,
            queues,
            at_ms: now,
        };
        *cache = Some(lobby.clone());
        Ok(lobby)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(was: stored::Status, status: stored::Status, activity: stored::Activity) -> Change {
        Change {
            changed: true,
            was,
            presence: UserPresence {
                uid: "p".into(),
                status,
                activity,
                match_id: (activity == stored::Activity::InMatch).then(|| "m".to_owned()),
                version: 3,
                ..UserPresence::default()
            },
        }
    }

    #[test]
    fn only_visible_changes_are_published_with_their_time() {
        use stored::{Activity::*, Status::*};
        let mut same = change(Online, Online, Menu);
        same.changed = false;
        assert_eq!(effects_of([&same], 9), Effects::default());
        let went = effects_of([&change(Online, Away, Menu)], 9);
        assert_eq!(went.changed.len(), 1);
        assert_eq!(went.changed[0].status, PresenceStatus::Away);
        assert_eq!(went.changed[0].changed_ms, 9);
        assert!(went.matches.is_empty());
    }

    #[test]
    fn a_match_hears_only_of_a_player_going_or_coming_back() {
        use stored::{Activity::*, Status::*};
        let news = |was, now| effects_of([&change(was, now, InMatch)], 5).matches;
        assert_eq!(
            news(Online, Offline),
            vec![MatchNews {
                match_id: "m".into(),
                player: "p".into(),
                connected: false,
                at_ms: 5
            }]
        );
        assert!(news(Away, Offline)[0].match_id == "m");
        assert!(news(Offline, Away)[0].connected);
        assert!(news(Offline, Online)[0].connected);
        assert!(news(Online, Away).is_empty());
        assert!(news(Away, Online).is_empty());
        // Not in a match: nothing to tell one.
        assert!(
            effects_of([&change(Online, Offline, Matchmaking)], 5)
                .matches
                .is_empty()
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[7]), Some(7));
        assert_eq!(median(&[9, 1, 5]), Some(5));
        assert_eq!(median(&[1, 2, 3, 4]), Some(2));
        assert_eq!(median(&[3, 4]), Some(3));
        assert_eq!(median(&[u64::MAX, u64::MAX]), Some(u64::MAX));
    }
}
