//! Presence, friends and direct invites at the gateway: which connections
//! it reports to the presence role, who may see whose presence, and the
//! shared subscriptions through which sessions follow their friends.
//!
//! ```text
//!   sessions ── connect / visibility / disconnect ──► dd.presence.*  (the presence role)
//!   Connections ── a heartbeat batch every 5 s ─────► dd.presence.heartbeat
//!   dd.presence.user.<uid> ──► Follows (one subscription per uid per gateway) ──► every following session's outbox
//! ```
//!
//! Who may see a user's presence: the user, their friends, and the players
//! of the match the viewer plays in ([`visible_presences`]). A block ends a
//! friendship, so it hides presence both ways; a session that learns its
//! friendship ended stops following (see `ws`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use dashdice_proto::ErrorCode;
use dashdice_proto::friends::{FriendLink, FriendState};
use dashdice_proto::presence::{
    Connect, Disconnect, HEARTBEAT_EVERY_MS, Heartbeat, LiveConnection, MAX_HEARTBEAT_BATCH,
    MAX_QUERY, Presence, Visibility,
};
use dashdice_proto::queue::{DirectInviteRequest, Invite};
use dashdice_service::telemetry::names;
use futures_util::StreamExt;
use serde::Serialize;
use tokio::task::JoinHandle;

use super::Gateway;
use super::error::ApiError;
use super::protocol::{self, ServerMessage};

/// This gateway's live, signed-in connections, for its heartbeats.
pub struct Connections {
    /// Makes connection ids unique across gateways: a random prefix per
    /// process, then a counter.
    prefix: String,
    next: AtomicU64,
    live: Mutex<HashMap<String, LiveConnection>>,
}

impl Default for Connections {
    fn default() -> Self {
        Self::new()
    }
}

impl Connections {
    pub fn new() -> Self {
        Connections {
            // Without the OS's randomness, the start time and the pid still
            // tell gateways apart.
            prefix: dashdice_proto::ids::random_hex::<6>().unwrap_or_else(|_| {
                format!(
                    "{:x}{:x}",
                    dashdice_proto::clock::now_ms(),
                    std::process::id()
                )
            }),
            next: AtomicU64::new(0),
            live: Mutex::new(HashMap::new()),
        }
    }

    fn open(&self, uid: &str, region: &str) -> LiveConnection {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let conn = LiveConnection {
            uid: uid.to_owned(),
            conn: format!("{}-{n}", self.prefix),
            region: region.to_owned(),
            away: false,
        };
        if let Ok(mut live) = self.live.lock() {
            live.insert(conn.conn.clone(), conn.clone());
        }
        conn
    }

    fn set_away(&self, conn: &str, away: bool) {
        if let Ok(mut live) = self.live.lock()
            && let Some(c) = live.get_mut(conn)
        {
            c.away = away;
        }
    }

    fn close(&self, conn: &str) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(conn);
        }
    }

    /// Every live connection, in heartbeat-sized batches.
    fn batches(&self) -> Vec<Vec<LiveConnection>> {
        let all: Vec<LiveConnection> = match self.live.lock() {
            Ok(live) => live.values().cloned().collect(),
            Err(_) => Vec::new(),
        };
        all.chunks(MAX_HEARTBEAT_BATCH).map(<[_]>::to_vec).collect()
    }
}

/// Refreshes this gateway's connections every [`HEARTBEAT_EVERY_MS`] until
/// aborted. If the gateway dies, its connections expire.
pub async fn heartbeats(gateway: Arc<Gateway>) {
    let mut every = tokio::time::interval(Duration::from_millis(HEARTBEAT_EVERY_MS));
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        for conns in gateway.connections.batches() {
            let backend = &gateway.backend;
            backend
                .report(
                    "heartbeat",
                    backend.presence().heartbeat(&Heartbeat { conns }),
                )
                .await;
        }
    }
}

/// One session's connection as presence knows it.
pub struct Connection {
    gateway: Arc<Gateway>,
    live: LiveConnection,
}

impl Connection {
    /// Registers a signed-in session and tells presence.
    pub async fn open(gateway: Arc<Gateway>, uid: &str) -> Self {
        let live = gateway
            .connections
            .open(uid, &gateway.config.default_region);
        let request = Connect {
            uid: live.uid.clone(),
            conn: live.conn.clone(),
            region: live.region.clone(),
            away: false,
        };
        let backend = &gateway.backend;
        backend
            .report("connect", backend.presence().connect(&request))
            .await;
        Connection { gateway, live }
    }

    /// The page was hidden or shown: the user's presence after it.
    pub async fn visibility(&self, hidden: bool) -> Result<Presence, ApiError> {
        self.gateway.connections.set_away(&self.live.conn, hidden);
        let request = Visibility {
            uid: self.live.uid.clone(),
            conn: self.live.conn.clone(),
            away: hidden,
        };
        Ok(self.gateway.backend.presence().visibility(&request).await?)
    }

    /// The session ended: presence is told in the background (the session
    /// is gone; if the report is lost, the connection expires).
    pub fn close(self) {
        self.gateway.connections.close(&self.live.conn);
        let request = Disconnect {
            uid: self.live.uid,
            conn: self.live.conn,
        };
        let gateway = self.gateway;
        tokio::spawn(async move {
            let backend = &gateway.backend;
            backend
                .report("disconnect", backend.presence().disconnect(&request))
                .await;
        });
    }
}

/// The presence of `uids` as `viewer` may see it: refused (`not_friends`)
/// if any of them is neither the viewer, nor a friend, nor in the viewer's
/// match.
pub async fn visible_presences(
    gateway: &Gateway,
    viewer: &str,
    uids: Vec<String>,
) -> Result<Vec<Presence>, ApiError> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    if uids.len() > MAX_QUERY {
        return Err(ApiError::bad_request(format!(
            "ask for at most {MAX_QUERY} users at once"
        )));
    }
    if let Some(bad) = uids.iter().find(|u| !dashdice_proto::ids::valid_id(u)) {
        return Err(ApiError::bad_request(format!("{bad:?} is not a user id")));
    }
    let mut asked = uids.clone();
    asked.push(viewer.to_owned());
    let mut presences = gateway.backend.presences(asked).await?;
    let own_match = presences.pop().and_then(|p| p.match_id);
    let mut others: HashSet<&str> = presences
        .iter()
        .filter(|p| p.uid != viewer && (own_match.is_none() || p.match_id != own_match))
        .map(|p| p.uid.as_str())
        .collect();
    if !others.is_empty() {
        let friends = gateway.backend.friends(viewer).await?;
        for friend in friends.friends() {
            others.remove(friend);
        }
        if let Some(stranger) = others.iter().next() {
            return Err(ApiError::new(
                ErrorCode::NotFriends,
                format!("only {stranger}'s friends and opponents may see their presence"),
            ));
        }
    }
    Ok(presences)
}

/// A list entry as clients see it: the link, and a friend's presence.
#[derive(Clone, Debug, Serialize)]
pub struct FriendEntry {
    #[serde(flatten)]
    pub link: FriendLink,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence: Option<Presence>,
}

/// The caller's friends, requests and blocks, friends with their presence.
/// Without presence (the role down), the list still comes, without it.
pub async fn friends_with_presence(
    gateway: &Gateway,
    uid: &str,
) -> Result<Vec<FriendEntry>, ApiError> {
    let list = gateway.backend.friends(uid).await?;
    let friends: Vec<String> = list.friends().map(str::to_owned).collect();
    let mut presence: HashMap<String, Presence> = HashMap::new();
    for chunk in friends.chunks(MAX_QUERY) {
        match gateway.backend.presences(chunk.to_vec()).await {
            Ok(found) => presence.extend(found.into_iter().map(|p| (p.uid.clone(), p))),
            Err(e) => tracing::debug!(error = %e, "friends' presence unavailable"),
        }
    }
    Ok(list
        .links
        .into_iter()
        .map(|link| FriendEntry {
            presence: (link.state == FriendState::Friends)
                .then(|| presence.remove(&link.uid))
                .flatten(),
            link,
        })
        .collect())
}

/// The friends verb a client names, as the archiver's endpoint.
pub fn friend_verb(verb: &str) -> Result<&'static str, ApiError> {
    use dashdice_proto::bus::archive_endpoint as e;
    Ok(match verb {
        "request" => e::FRIENDS_REQUEST,
        "accept" => e::FRIENDS_ACCEPT,
        "decline" => e::FRIENDS_DECLINE,
        "remove" => e::FRIENDS_REMOVE,
        "block" => e::FRIENDS_BLOCK,
        "unblock" => e::FRIENDS_UNBLOCK,
        other => {
            return Err(ApiError::bad_request(format!(
                "{other:?} is not a friends verb: request, accept, decline, remove, block or unblock"
            )));
        }
    })
}

/// Invites a friend to a private match: refused (`not_friends`) unless the
/// two are friends, which a block on either side ends.
pub async fn invite_friend(
    gateway: &Gateway,
    uid: &str,
    to: &str,
    mode: String,
) -> Result<Invite, ApiError> {
    if uid == to {
        return Err(ApiError::new(
            ErrorCode::Yourself,
            "invite someone else: you cannot play yourself",
        ));
    }
    if !dashdice_proto::ids::valid_id(to) {
        return Err(ApiError::bad_request(format!("{to:?} is not a user id")));
    }
    if !gateway.backend.friends(uid).await?.is_friend(to) {
        return Err(ApiError::new(
            ErrorCode::NotFriends,
            format!("you can invite friends only, and {to} is not one"),
        ));
    }
    let request = DirectInviteRequest {
        player: uid.to_owned(),
        to: to.to_owned(),
        mode,
    };
    gateway.backend.invite_player(&request).await
}

/// A session's way to receive the presence of the users it follows:
/// queues one message, `false` once the session is over (a session too
/// slow to take it is closed by its own outbox).
pub type Sink = Arc<dyn Fn(Utf8Bytes) -> bool + Send + Sync>;

/// One followed user: the gateway's one subscription, and its followers.
struct Followed {
    task: JoinHandle<()>,
    followers: HashMap<u64, Sink>,
    /// The newest version sent; older ones are dropped.
    version: u64,
}

/// The gateway's presence subscriptions, shared by its sessions: one NATS
/// subscription per followed user, however many sessions follow them, so
/// 10,000 sessions with 50 friends each cost one subscription per user.
#[derive(Default)]
pub struct Follows {
    users: Mutex<HashMap<String, Followed>>,
}

impl Follows {
    /// `session` follows `uid`; its sink gets `presence` messages.
    pub async fn follow(
        self: &Arc<Self>,
        gateway: &Gateway,
        session: u64,
        uid: &str,
        sink: Sink,
    ) -> Result<(), ApiError> {
        if let Ok(mut users) = self.users.lock()
            && let Some(followed) = users.get_mut(uid)
        {
            followed.followers.insert(session, sink);
            return Ok(());
        }
        let mut changes = gateway.backend.presence_changes(uid).await?;
        let Ok(mut users) = self.users.lock() else {
            return Err(ApiError::internal("the presence table is poisoned"));
        };
        // Another session may have subscribed meanwhile: keep theirs.
        if let Some(followed) = users.get_mut(uid) {
            followed.followers.insert(session, sink);
            return Ok(());
        }
        let follows = self.clone();
        let key = uid.to_owned();
        let task = tokio::spawn(async move {
            while let Some(message) = changes.next().await {
                let Ok(presence) = serde_json::from_slice::<Presence>(&message.payload) else {
                    continue;
                };
                follows.deliver(&key, presence);
            }
        });
        users.insert(
            uid.to_owned(),
            Followed {
                task,
                followers: HashMap::from([(session, sink)]),
                version: 0,
            },
        );
        metrics::gauge!(names::GATEWAY_PRESENCE_FOLLOWS).set(users.len() as f64);
        Ok(())
    }

    /// Sends a change to every follower of its user, once, if it is newer
    /// than the last sent; a session that is over stops following.
    fn deliver(&self, uid: &str, presence: Presence) {
        let Ok(mut users) = self.users.lock() else {
            return;
        };
        let Some(followed) = users.get_mut(uid) else {
            return;
        };
        if presence.version <= followed.version {
            return;
        }
        followed.version = presence.version;
        let text = Utf8Bytes::from(protocol::encode(&ServerMessage::Presence {
            id: None,
            presence,
        }));
        followed.followers.retain(|_, sink| sink(text.clone()));
    }

    /// `session` stops following `uids`; a user nobody follows any more
    /// loses the gateway's subscription.
    pub fn unfollow<'a>(&self, session: u64, uids: impl IntoIterator<Item = &'a str>) {
        let Ok(mut users) = self.users.lock() else {
            return;
        };
        for uid in uids {
            if let Some(followed) = users.get_mut(uid) {
                followed.followers.remove(&session);
                if followed.followers.is_empty() {
                    followed.task.abort();
                    users.remove(uid);
                }
            }
        }
        metrics::gauge!(names::GATEWAY_PRESENCE_FOLLOWS).set(users.len() as f64);
    }
}
