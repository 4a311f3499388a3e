//! One WebSocket per client (`/api/v1/ws`): requests and their answers
//! (play, queues, the archive's profiles, history and leaderboards,
//! friends, and the inbox), and pushes of queue status, notices (among them
//! the notifier's `notification` and `inbox_changed`) and match events.
//!
//! A session is three kinds of task around one bounded outbox:
//!
//! ```text
//!   socket ──► reader (the session loop: requests, status ticks) ──┐
//!   dd.user.<id>.notify ──► notices task ──────────────────────────┼──► outbox (bounded) ──► writer ──► socket
//!   dd.match.<id>.events ──► one follower per subscribed match ────┘
//! ```
//!
//! Nothing buffers without bound: a push that finds the outbox full closes
//! the session (4008) instead of waiting (a follower waits up to
//! [`WRITE_TIMEOUT`] for room, as a catch-up may be longer than the outbox),
//! so one slow client never holds up NATS or other clients. Followers send each match's events exactly once,
//! in order, from the client's `since` (see [`follow`]).

use dashdice_proto::ErrorCode;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::Response;
use axum_extra::extract::WithRejection;
use futures_util::{SinkExt, StreamExt};
use governor::DefaultDirectRateLimiter;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::Instrument;

use super::Gateway;
use super::error::ApiError;
use super::limits::{self, WS_HARD_FRAME_LIMIT};
use super::listen::ConnectionTag;
use super::protocol::{self, ClientMessage, ServerMessage};
use super::{inbox, social};
use dashdice_proto::clock::now_ms;
use dashdice_proto::friends::FriendState;
use dashdice_proto::matches::{ActRequest, SequencedEvent};
use dashdice_proto::notify::{Devices, Unread};
use dashdice_proto::presence::{MAX_FOLLOWED, PlayerConnection};
use dashdice_proto::queue::{
    CreateInviteRequest, JoinInviteRequest, Notice, RematchRequest, RematchStatus, Status,
};
use dashdice_service::telemetry::names;

/// Close codes (PROTOCOL.md).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const TOO_BIG: u16 = 1009;
    pub const UNAUTHORIZED: u16 = 4401;
    pub const TOO_SLOW: u16 = 4008;
}

/// How long a browser has to send `hello` after connecting.
const HELLO_WITHIN: Duration = Duration::from_secs(10);
/// While queued, the status is pushed this often.
const STATUS_EVERY: Duration = Duration::from_secs(1);
/// A follower with no live event for this long asks for missed ones (a
/// lost last event would otherwise never show).
const QUIET_CATCH_UP: Duration = Duration::from_secs(5);
/// The longest one write to the socket may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /api/v1/ws`: checks the origin and, if sent, the bearer token, then
/// upgrades.
pub async fn upgrade(
    State(gateway): State<Arc<Gateway>>,
    tag: Option<Extension<ConnectionTag>>,
    headers: HeaderMap,
    WithRejection(ws, _): WithRejection<WebSocketUpgrade, ApiError>,
) -> Result<Response, ApiError> {
    let tag = tag.map(|Extension(tag)| tag);
    if let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok())
        && !same_origin(origin, &headers)
        && !limits::origin_allowed(&gateway.config.cors_origins, origin)
    {
        return Err(ApiError::new(
            ErrorCode::Forbidden,
            format!("pages from {origin} may not open a session here"),
        ));
    }
    let user = match bearer(&headers) {
        Some(token) => {
            let user = gateway.auth.verify(token).await?;
            if let Some(tag) = &tag {
                tag.verified();
            }
            gateway.rates.check_user(&user)?;
            Some(user)
        }
        None => None,
    };
    Ok(ws
        .max_message_size(WS_HARD_FRAME_LIMIT)
        .max_frame_size(WS_HARD_FRAME_LIMIT)
        .on_upgrade(move |socket| run(gateway, socket, user, tag)))
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
}

/// Whether `origin` is the gateway's own (its page), by the Host header.
fn same_origin(origin: &str, headers: &HeaderMap) -> bool {
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    let origin_host = origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"));
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// Why a session ends, and the close frame the client gets.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Closing {
    code: u16,
    reason: &'static str,
}

/// The session's way out: a bounded queue to the writer, and the signal
/// that ends the session (first reason wins).
#[derive(Clone)]
struct Outbox {
    queue: mpsc::Sender<Utf8Bytes>,
    closing: watch::Sender<Option<Closing>>,
}

impl Outbox {
    /// Queues a message; `false` if the session is over. A full queue means
    /// the client is too slow: the session closes with 4008.
    fn send(&self, message: &ServerMessage) -> bool {
        self.send_text(protocol::encode(message))
    }

    fn send_text(&self, text: String) -> bool {
        self.send_bytes(Utf8Bytes::from(text))
    }

    /// Queues an encoded message (one encoding shared by many sessions).
    fn send_bytes(&self, text: Utf8Bytes) -> bool {
        match self.queue.try_send(text) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(names::GATEWAY_WS_DROPPED, "reason" => "too_slow").increment(1);
                self.close(close::TOO_SLOW, "too slow: the outgoing queue is full");
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a match's message, waiting for room: a catch-up may hold
    /// more events than the outbox. A client that has not made room within
    /// [`WRITE_TIMEOUT`] is too slow (4008). `false` if the session is over.
    async fn deliver(&self, message: &ServerMessage) -> bool {
        let text = Utf8Bytes::from(protocol::encode(message));
        match tokio::time::timeout(WRITE_TIMEOUT, self.queue.send(text)).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                metrics::counter!(names::GATEWAY_WS_DROPPED, "reason" => "too_slow").increment(1);
                self.close(close::TOO_SLOW, "too slow: the outgoing queue stayed full");
                false
            }
        }
    }

    fn error(&self, id: Option<String>, error: &ApiError) -> bool {
        self.send(&ServerMessage::Error {
            id,
            error: error.body(),
        })
    }

    fn close(&self, code: u16, reason: &'static str) {
        Self::close_with(&self.closing, code, reason);
    }

    fn close_with(closing: &watch::Sender<Option<Closing>>, code: u16, reason: &'static str) {
        closing.send_if_modified(|c| {
            if c.is_none() {
                *c = Some(Closing { code, reason });
                true
            } else {
                false
            }
        });
    }
}

/// Resolves once the session is closing. (The `Ref` that `wait_for` returns
/// is not `Send`, so it must not live in a `select!` output.)
async fn is_closing(closing: &mut watch::Receiver<Option<Closing>>) {
    let _ = closing.wait_for(Option::is_some).await;
}

/// Writes queued messages to the socket until the session closes; then
/// sends the close frame at once, ahead of anything still queued.
async fn writer(
    mut sink: futures_util::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Utf8Bytes>,
    closer: watch::Sender<Option<Closing>>,
) {
    let mut closing = closer.subscribe();
    // A second receiver for the inner wait: the outer one is borrowed by its
    // own branch while a send is in flight.
    let mut closing_during_send = closing.clone();
    loop {
        tokio::select! {
            biased;
            _ = is_closing(&mut closing) => break,
            text = queue.recv() => {
                let Some(text) = text else { break };
                let sent = tokio::select! {
                    sent = tokio::time::timeout(WRITE_TIMEOUT, sink.send(Message::Text(text))) => match sent {
                        Ok(sent) => sent.is_ok(),
                        // A client that stopped reading: the whole session
                        // ends (4008), not only this writer.
                        Err(_) => {
                            metrics::counter!(names::GATEWAY_WS_DROPPED, "reason" => "too_slow").increment(1);
                            Outbox::close_with(&closer, close::TOO_SLOW, "too slow: a write did not finish in time");
                            false
                        }
                    },
                    // A client that stopped reading: do not wait on it.
                    _ = is_closing(&mut closing_during_send) => false,
                };
                if !sent {
                    break;
                }
            }
        }
    }
    let reason = closing.borrow().clone().unwrap_or(Closing {
        code: close::NORMAL,
        reason: "",
    });
    // What was queued before the close (say, the error that explains it)
    // goes out first, unless the client is the reason: it is not reading.
    if reason.code != close::TOO_SLOW {
        let flushed = async {
            while let Ok(text) = queue.try_recv() {
                if sink.send(Message::Text(text)).await.is_err() {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), flushed).await;
    }
    let frame = CloseFrame {
        code: reason.code,
        reason: reason.reason.into(),
    };
    let _ = tokio::time::timeout(
        Duration::from_secs(1),
        sink.send(Message::Close(Some(frame))),
    )
    .await;
}

/// One client's session, from upgrade to close. Its connection counts as
/// unverified (`tag`) until it signs in, and while it lasts.
async fn run(
    gateway: Arc<Gateway>,
    socket: WebSocket,
    user: Option<String>,
    tag: Option<ConnectionTag>,
) {
    let (sink, mut stream) = socket.split();
    let (queue, outgoing) = mpsc::channel(gateway.limits().ws_outbox.max(8));
    let (closing, closed) = watch::channel(None);
    let out = Outbox { queue, closing };
    drop(closed);
    let writer = tokio::spawn(writer(sink, outgoing, out.closing.clone()));
    metrics::gauge!(names::GATEWAY_WS_SESSIONS).increment(1.0);

    let user = match user {
        Some(user) => Some(user),
        None => hello(&gateway, &mut stream, &out).await,
    };
    if let Some(user) = user {
        if let Some(tag) = &tag {
            tag.verified();
        }
        out.send(&ServerMessage::Welcome {
            user_id: user.clone(),
            max_message_bytes: gateway.limits().max_message_bytes,
            messages_per_second: gateway.limits().ws_messages_per_second,
        });
        let connection = social::Connection::open(gateway.clone(), &user).await;
        let mut session = Session::new(gateway.clone(), user, out.clone());
        session.connection = Some(connection);
        session.run(&mut stream).await;
        session.end();
    }
    out.close(close::NORMAL, "");
    drop(out);
    let _ = writer.await;
    metrics::gauge!(names::GATEWAY_WS_SESSIONS).decrement(1.0);
}

/// Waits for the browser's `hello` with its token; the user, or `None`
/// after closing with 4401.
async fn hello(
    gateway: &Gateway,
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    out: &Outbox,
) -> Option<String> {
    let first = tokio::time::timeout(HELLO_WITHIN, stream.next()).await;
    let refusal = match first {
        Ok(Some(Ok(Message::Text(text)))) => match protocol::read_client_message(&text) {
            Ok((_, ClientMessage::Hello { token })) => match gateway.auth.verify(&token).await {
                Ok(user) => return Some(user),
                Err(e) => e,
            },
            Ok((_, _)) => ApiError::unauthorized("sign in first: send hello with a token"),
            Err((_, e)) => e,
        },
        Ok(_) => return None,
        Err(_) => ApiError::unauthorized("no hello within 10 s"),
    };
    out.error(None, &refusal);
    out.close(close::UNAUTHORIZED, "unauthorized");
    None
}

/// What other tasks ask of the session loop.
enum Internal {
    /// A match of this user's started: follow it from the start.
    Follow(String),
    /// A friendship ended: stop following that user's presence.
    Unfollow(String),
}

/// Visibility reports closer together than this are coalesced into the
/// last one (a page flipping between tabs publishes once).
const VISIBILITY_SETTLE: Duration = Duration::from_millis(1000);

struct Session {
    gateway: Arc<Gateway>,
    user: String,
    out: Outbox,
    limiter: DefaultDirectRateLimiter,
    /// Followed matches, by id.
    following: HashMap<String, JoinHandle<()>>,
    notices: Option<JoinHandle<()>>,
    internal: (mpsc::Sender<Internal>, mpsc::Receiver<Internal>),
    /// Push the queue status every [`STATUS_EVERY`] while queued or being
    /// matched (until a status or a notice says the match).
    queued: bool,
    /// This session's id among the gateway's presence followers, and the
    /// users it follows.
    follower: u64,
    followed: std::collections::HashSet<String>,
    /// The last visibility report, and one waiting for [`VISIBILITY_SETTLE`]
    /// to pass (the message's id and the page's state).
    visibility_sent: Option<Instant>,
    visibility_due: Option<(Option<String>, bool)>,
    connection: Option<social::Connection>,
}

impl Session {
    fn new(gateway: Arc<Gateway>, user: String, out: Outbox) -> Self {
        let limiter = gateway.rates.connection();
        Session {
            gateway,
            user,
            out,
            limiter,
            following: HashMap::new(),
            notices: None,
            internal: mpsc::channel(16),
            queued: false,
            follower: gateway_follower(),
            followed: std::collections::HashSet::new(),
            visibility_sent: None,
            visibility_due: None,
            connection: None,
        }
    }

    async fn run(&mut self, stream: &mut futures_util::stream::SplitStream<WebSocket>) {
        self.listen_for_notices().await;
        let mut closing = self.out.closing.subscribe();
        let mut shutdown = self.gateway.closing();
        let mut ticks = tokio::time::interval(STATUS_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let idle = self.gateway.limits().ws_idle;
        loop {
            tokio::select! {
                _ = is_closing(&mut closing) => return,
                _ = async { let _ = shutdown.wait_for(|c| *c).await; } => {
                    self.out.close(close::GOING_AWAY, "the server is shutting down");
                    return;
                }
                frame = tokio::time::timeout(idle, stream.next()) => match frame {
                    Err(_) => {
                        self.out.close(close::GOING_AWAY, "idle: send ping to keep the session");
                        return;
                    }
                    Ok(None) | Ok(Some(Ok(Message::Close(_)))) => return,
                    Ok(Some(Err(e))) => {
                        // The socket is unusable; a frame past the hard cap ends here.
                        if frame_too_big(e) {
                            metrics::counter!(names::GATEWAY_WS_DROPPED, "reason" => "frame_too_big").increment(1);
                            self.out.close(close::TOO_BIG, "frame too big");
                        }
                        return;
                    }
                    Ok(Some(Ok(Message::Text(text)))) => {
                        self.on_text(&text).await;
                        // Frames already read answer without awaiting
                        // anything; let the writer drain between them.
                        tokio::task::consume_budget().await;
                    }
                    Ok(Some(Ok(Message::Binary(_)))) => {
                        self.out.error(None, &ApiError::bad_request("send text frames of JSON"));
                    }
                    Ok(Some(Ok(_))) => {} // pings are answered by the socket itself
                },
                Some(internal) = self.internal.1.recv() => match internal {
                    Internal::Follow(match_id) => {
                        // The notice says where the player is: no more
                        // status pushes, which could only repeat it, or,
                        // after a short match, name it after it ended.
                        self.queued = false;
                        self.follow(None, match_id, 0, false);
                    }
                    Internal::Unfollow(uid) => {
                        self.unfollow_presence([uid]);
                    }
                },
                _ = settle(self.visibility_sent), if self.visibility_due.is_some() => {
                    if let Some((id, hidden)) = self.visibility_due.take() {
                        self.report_visibility(id, hidden).await;
                    }
                }
                _ = ticks.tick(), if self.queued => self.push_status().await,
            }
        }
    }

    /// Stops every task of the session, and tells presence it is gone.
    fn end(&mut self) {
        if let Some(notices) = self.notices.take() {
            notices.abort();
        }
        for (_, follower) in self.following.drain() {
            follower.abort();
        }
        let followed = std::mem::take(&mut self.followed);
        self.gateway
            .follows
            .unfollow(self.follower, followed.iter().map(String::as_str));
        if let Some(connection) = self.connection.take() {
            connection.close();
        }
    }

    /// Reports the page's visibility now, or, within [`VISIBILITY_SETTLE`]
    /// of the last report, once that has passed (the last state wins).
    async fn visibility(&mut self, id: Option<String>, hidden: bool) {
        let settled = self
            .visibility_sent
            .is_none_or(|sent| sent.elapsed() >= VISIBILITY_SETTLE);
        if settled {
            self.report_visibility(id, hidden).await;
        } else {
            self.visibility_due = Some((id, hidden));
        }
    }

    async fn report_visibility(&mut self, id: Option<String>, hidden: bool) {
        self.visibility_sent = Some(Instant::now());
        let Some(connection) = &self.connection else {
            return;
        };
        match connection.visibility(hidden).await {
            Ok(presence) => {
                self.out.send(&ServerMessage::Presence { id, presence });
            }
            Err(e) => {
                self.out.error(id, &e);
            }
        }
    }

    /// Follows the presence of `uids` (checked visible): their presence
    /// now, then each change.
    async fn follow_presence(
        &mut self,
        id: Option<String>,
        uids: Vec<String>,
    ) -> Result<(), ApiError> {
        let new: std::collections::HashSet<&String> = uids
            .iter()
            .filter(|u| !self.followed.contains(*u))
            .collect();
        if self.followed.len() + new.len() > MAX_FOLLOWED {
            return Err(ApiError::new(
                ErrorCode::TooManySubscriptions,
                format!(
                    "a session follows at most {MAX_FOLLOWED} users' presence; it follows {} and asked for {} more",
                    self.followed.len(),
                    new.len()
                ),
            ));
        }
        let presences = social::visible_presences(&self.gateway, &self.user, uids.clone()).await?;
        let out = self.out.clone();
        let sink: social::Sink = Arc::new(move |text| out.send_bytes(text));
        for uid in &uids {
            if self.followed.insert(uid.clone()) {
                let follows = self.gateway.follows.clone();
                if let Err(e) = follows
                    .follow(&self.gateway, self.follower, uid, sink.clone())
                    .await
                {
                    self.followed.remove(uid);
                    return Err(e);
                }
            }
        }
        self.out.send(&ServerMessage::Presences { id, presences });
        Ok(())
    }

    fn unfollow_presence(&mut self, uids: impl IntoIterator<Item = String>) -> Vec<String> {
        let gone: Vec<String> = uids
            .into_iter()
            .filter(|u| self.followed.remove(u))
            .collect();
        self.gateway
            .follows
            .unfollow(self.follower, gone.iter().map(String::as_str));
        gone
    }

    /// Forwards the user's notices; a match found is also followed.
    async fn listen_for_notices(&mut self) {
        let mut notices = match self.gateway.backend.notices(&self.user).await {
            Ok(notices) => notices,
            Err(e) => {
                self.out.error(None, &e);
                return;
            }
        };
        let out = self.out.clone();
        let internal = self.internal.0.clone();
        self.notices = Some(tokio::spawn(async move {
            while let Some(message) = notices.next().await {
                let Ok(notice) = serde_json::from_slice::<Notice>(&message.payload) else {
                    continue;
                };
                if !out.send_text(protocol::encode_notice(&notice)) {
                    return;
                }
                match notice {
                    Notice::MatchFound(found) => {
                        let _ = internal.try_send(Internal::Follow(found.match_id));
                    }
                    Notice::FriendRemoved { by: uid } | Notice::Unfriended { uid } => {
                        let _ = internal.try_send(Internal::Unfollow(uid));
                    }
                    _ => {}
                }
            }
        }));
    }

    async fn on_text(&mut self, text: &str) {
        let limits = self.gateway.limits();
        if text.len() > limits.max_message_bytes {
            self.out
                .error(None, &ApiError::too_large(limits.max_message_bytes));
            return;
        }
        let (id, message) = match protocol::read_client_message(text) {
            Ok(read) => read,
            Err((id, e)) => {
                self.out.error(id, &e);
                return;
            }
        };
        if let Err(refused) = self
            .limiter
            .check()
            .map_err(|n| limits::refused(&n))
            .and_then(|()| self.gateway.rates.check_user(&self.user))
        {
            self.out.error(id, &refused);
            return;
        }
        let kind = message_kind(&message);
        let span =
            tracing::info_span!("ws request", r#type = kind, outcome = tracing::field::Empty);
        let started = Instant::now();
        let result = self
            .handle(id.clone(), message)
            .instrument(span.clone())
            .await;
        let outcome = match &result {
            Ok(()) => "ok".to_owned(),
            Err(e) => e.code.to_string(),
        };
        span.record("outcome", outcome.as_str());
        metrics::counter!(names::GATEWAY_WS_MESSAGES, "type" => kind, "outcome" => outcome)
            .increment(1);
        metrics::histogram!(names::GATEWAY_WS_MESSAGE_SECONDS, "type" => kind)
            .record(started.elapsed().as_secs_f64());
        if let Err(e) = result {
            self.out.error(id, &e);
        }
    }

    async fn handle(&mut self, id: Option<String>, message: ClientMessage) -> Result<(), ApiError> {
        let backend = &self.gateway.backend;
        match message {
            ClientMessage::Hello { .. } => {
                return Err(ApiError::bad_request("already signed in"));
            }
            ClientMessage::Join(fields) => {
                let request = fields.request(&self.user, &self.gateway.config.default_region);
                let status = backend.join(&request).await?;
                self.on_status(id, status);
            }
            ClientMessage::Leave => {
                let status = backend.leave(&self.user).await?;
                self.on_status(id, status);
            }
            ClientMessage::Status => {
                let status = backend.status(&self.user).await?;
                self.on_status(id, status);
            }
            ClientMessage::Invite { mode } => {
                let request = CreateInviteRequest {
                    player: self.user.clone(),
                    mode,
                };
                let invite = backend.create_invite(&request).await?;
                self.out.send(&ServerMessage::Invite { id, invite });
            }
            ClientMessage::JoinCode { code } => {
                let request = JoinInviteRequest {
                    player: self.user.clone(),
                    code,
                };
                let status = backend.join_invite(&request).await?;
                self.on_status(id, status);
            }
            ClientMessage::Act {
                match_id,
                action,
                request_id,
                name,
                payload,
            } => {
                let request = ActRequest {
                    match_id,
                    player: self.user.clone(),
                    request_id: match request_id {
                        Some(r) => r,
                        None => protocol::fresh_request_id()?,
                    },
                    action: protocol::player_action(&action, name, payload)?,
                };
                let reply = backend.act(&request).await?;
                self.out.send(&ServerMessage::Acted {
                    id,
                    reply: Box::new(reply),
                });
            }
            ClientMessage::Rematch { match_id } => {
                let request = RematchRequest {
                    player: self.user.clone(),
                    match_id,
                };
                let status = backend.rematch(&request).await?;
                if let RematchStatus::Started { match_id } = &status {
                    self.follow(None, match_id.clone(), 0, false);
                }
                self.out.send(&ServerMessage::Rematch { id, status });
            }
            ClientMessage::Subscribe { match_id, since } => {
                self.follow(id, match_id, since, true);
            }
            ClientMessage::Unsubscribe { match_id } => {
                if let Some(follower) = self.following.remove(&match_id) {
                    follower.abort();
                }
                self.out.send(&ServerMessage::Unsubscribed { id, match_id });
            }
            ClientMessage::Modes => {
                self.out.send(&ServerMessage::Modes {
                    id,
                    modes: self.gateway.modes.playable(),
                });
            }
            ClientMessage::Ping => {
                self.out.send(&ServerMessage::Pong {
                    id,
                    server_ms: now_ms(),
                });
            }
            ClientMessage::Profile { uid } => {
                let uid = protocol::player_named(uid.as_deref(), &self.user)?;
                let profile = if uid == self.user {
                    backend.own_profile(&uid).await?
                } else {
                    backend.profile(&uid).await?
                };
                self.out.send(&ServerMessage::Profile {
                    id,
                    profile: Box::new(profile),
                });
            }
            ClientMessage::Rename(fields) => {
                let profile = backend.rename(&fields.request(&self.user)?).await?;
                self.out.send(&ServerMessage::Profile {
                    id,
                    profile: Box::new(profile),
                });
            }
            ClientMessage::History { uid, limit, cursor } => {
                let request = protocol::history_request(uid.as_deref(), &self.user, limit, cursor)?;
                let page = backend.history(&request).await?;
                self.out.send(&ServerMessage::History {
                    id,
                    uid: request.uid,
                    page,
                });
            }
            ClientMessage::Leaderboard {
                mode,
                limit,
                around_me,
            } => {
                let request = protocol::leaderboard_request(mode, limit, around_me, &self.user)?;
                let leaderboard = backend.leaderboard(&request).await?;
                self.out
                    .send(&ServerMessage::Leaderboard { id, leaderboard });
            }
            ClientMessage::ArchivedMatch { match_id } => {
                let archived = backend.archived_match(&match_id).await?;
                self.out.send(&ServerMessage::ArchivedMatch {
                    id,
                    archived: Box::new(archived),
                });
            }
            ClientMessage::Visibility { hidden } => self.visibility(id, hidden).await,
            ClientMessage::Presence { uids } => {
                let presences = social::visible_presences(&self.gateway, &self.user, uids).await?;
                self.out.send(&ServerMessage::Presences { id, presences });
            }
            ClientMessage::FollowPresence { uids } => self.follow_presence(id, uids).await?,
            ClientMessage::UnfollowPresence { uids } => {
                let uids = self.unfollow_presence(uids);
                self.out
                    .send(&ServerMessage::PresenceUnfollowed { id, uids });
            }
            ClientMessage::Friends => {
                let links = social::friends_with_presence(&self.gateway, &self.user).await?;
                self.out.send(&ServerMessage::Friends { id, links });
            }
            ClientMessage::Friend { verb, uid } => {
                let endpoint = social::friend_verb(&verb)?;
                let link = backend.befriend(endpoint, &self.user, &uid).await?;
                if link
                    .as_ref()
                    .is_none_or(|l| l.state != FriendState::Friends)
                {
                    self.unfollow_presence([uid.clone()]);
                }
                self.out.send(&ServerMessage::Friend { id, uid, link });
            }
            ClientMessage::InviteFriend { uid, mode } => {
                let invite = social::invite_friend(&self.gateway, &self.user, &uid, mode).await?;
                self.out.send(&ServerMessage::Invite { id, invite });
            }
            ClientMessage::DeclineInvite { code } => {
                let request = JoinInviteRequest {
                    player: self.user.clone(),
                    code,
                };
                let status = backend.decline_invite(&request).await?;
                self.on_status(id, status);
            }
            ClientMessage::Lobby => {
                let lobby = backend.lobby().await?;
                self.out.send(&ServerMessage::Lobby { id, lobby });
            }
            ClientMessage::Notifications { before, limit } => {
                let request = inbox::list_request(&self.user, before, limit)?;
                let page = backend.inbox(&request).await?;
                self.out.send(&ServerMessage::Notifications { id, page });
            }
            ClientMessage::Unread {} => {
                let Unread { unread } = backend.unread(&self.user).await?;
                self.out.send(&ServerMessage::Unread { id, unread });
            }
            ClientMessage::NotificationRead { notification_id } => {
                let request = inbox::mark_request(&self.user, notification_id)?;
                let Unread { unread } = backend.mark_read(&request).await?;
                self.out.send(&ServerMessage::Unread { id, unread });
            }
            ClientMessage::NotificationsReadAll {} => {
                let Unread { unread } = backend.mark_all_read(&self.user).await?;
                self.out.send(&ServerMessage::Unread { id, unread });
            }
            ClientMessage::NotificationDelete { notification_id } => {
                let request = inbox::delete_request(&self.user, notification_id)?;
                let Unread { unread } = backend.delete_notification(&request).await?;
                self.out.send(&ServerMessage::Unread { id, unread });
            }
            ClientMessage::RegisterDevice { token, platform } => {
                let request = inbox::register_request(&self.user, token, &platform)?;
                let Devices { devices } = backend.register_device(&request).await?;
                self.out.send(&ServerMessage::Devices { id, devices });
            }
            ClientMessage::UnregisterDevice { token } => {
                let request = inbox::unregister_request(&self.user, token)?;
                let Devices { devices } = backend.unregister_device(&request).await?;
                self.out.send(&ServerMessage::Devices { id, devices });
            }
        }
        Ok(())
    }

    /// Answers a queue status; follows the match if it says playing.
    /// Status pushes go on while queued or being matched: the match found
    /// notice is core NATS, and a player who missed it learns of the match
    /// from the next push.
    fn on_status(&mut self, id: Option<String>, status: Status) {
        self.queued = matches!(status, Status::Queued { .. } | Status::Matching);
        if let Status::Playing { match_id } = &status {
            self.follow(None, match_id.clone(), 0, false);
        }
        self.out.send(&ServerMessage::Queue { id, status });
    }

    async fn push_status(&mut self) {
        match self.gateway.backend.status(&self.user).await {
            Ok(status) => self.on_status(None, status),
            // A passing outage: the next tick tries again.
            Err(e) => tracing::debug!(user = %self.user, error = %e, "status push failed"),
        }
    }

    /// Follows `match_id` from `since`. An explicit subscribe restarts a
    /// follower; a follow that comes from a status or notice keeps the one
    /// running (the client already gets that match's events).
    fn follow(&mut self, id: Option<String>, match_id: String, since: u64, restart: bool) {
        self.following.retain(|_, f| !f.is_finished());
        if let Some(running) = self.following.get(&match_id) {
            if !restart {
                return;
            }
            running.abort();
        } else if self.following.len() >= self.gateway.limits().ws_subscriptions {
            self.out.error(
                id,
                &ApiError::new(
                    ErrorCode::TooManySubscriptions,
                    format!(
                        "a session follows at most {} matches at once; unsubscribe from one",
                        self.gateway.limits().ws_subscriptions
                    ),
                ),
            );
            return;
        }
        let follower = tokio::spawn(follow(
            self.gateway.clone(),
            self.out.clone(),
            id,
            match_id.clone(),
            since,
        ));
        self.following.insert(match_id, follower);
    }
}

/// A fresh follower id for a session (process-wide, so unique among the
/// gateway's sessions whichever gateway value made them).
fn gateway_follower() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Resolves when [`VISIBILITY_SETTLE`] has passed since `sent`.
async fn settle(sent: Option<Instant>) {
    if let Some(sent) = sent {
        tokio::time::sleep_until((sent + VISIBILITY_SETTLE).into()).await;
    }
}

fn message_kind(message: &ClientMessage) -> &'static str {
    match message {
        ClientMessage::Hello { .. } => "hello",
        ClientMessage::Join(_) => "join",
        ClientMessage::Leave => "leave",
        ClientMessage::Status => "status",
        ClientMessage::Invite { .. } => "invite",
        ClientMessage::JoinCode { .. } => "join_code",
        ClientMessage::Act { .. } => "act",
        ClientMessage::Rematch { .. } => "rematch",
        ClientMessage::Subscribe { .. } => "subscribe",
        ClientMessage::Unsubscribe { .. } => "unsubscribe",
        ClientMessage::Modes => "modes",
        ClientMessage::Ping => "ping",
        ClientMessage::Profile { .. } => "profile",
        ClientMessage::Rename(_) => "rename",
        ClientMessage::History { .. } => "history",
        ClientMessage::Leaderboard { .. } => "leaderboard",
        ClientMessage::ArchivedMatch { .. } => "archived_match",
        ClientMessage::Visibility { .. } => "visibility",
        ClientMessage::Presence { .. } => "presence",
        ClientMessage::FollowPresence { .. } => "follow_presence",
        ClientMessage::UnfollowPresence { .. } => "unfollow_presence",
        ClientMessage::Friends => "friends",
        ClientMessage::Friend { .. } => "friend",
        ClientMessage::InviteFriend { .. } => "invite_friend",
        ClientMessage::DeclineInvite { .. } => "decline_invite",
        ClientMessage::Lobby => "lobby",
        ClientMessage::Notifications { .. } => "notifications",
        ClientMessage::Unread {} => "unread",
        ClientMessage::NotificationRead { .. } => "notification_read",
        ClientMessage::NotificationsReadAll {} => "notifications_read_all",
        ClientMessage::NotificationDelete { .. } => "notification_delete",
        ClientMessage::RegisterDevice { .. } => "register_device",
        ClientMessage::UnregisterDevice { .. } => "unregister_device",
    }
}

/// Sends a match's events after `since` to the client, each exactly once
/// and in order, then live ones until the match is over.
///
/// Live events come over core NATS, which may drop one. So the follower
/// subscribes first, then reads the match and what it missed from the host;
/// from then on a live event that skips a number, or a quiet spell, makes
/// it fetch the missing ones before going on. `last` is the highest `seq`
/// sent: nothing at or below it is sent again.
async fn follow(
    gateway: Arc<Gateway>,
    out: Outbox,
    id: Option<String>,
    match_id: String,
    since: u64,
) {
    let backend = &gateway.backend;
    let mut live = match backend.live_events(&match_id).await {
        Ok(live) => live,
        Err(e) => {
            out.error(id, &e);
            return;
        }
    };
    let snapshot = match backend.get(&match_id).await {
        Ok(snapshot) => snapshot,
        Err(e) => {
            out.error(id, &e);
            return;
        }
    };
    let finished = snapshot.finished;
    if !out
        .deliver(&ServerMessage::Match {
            id,
            snapshot: Box::new(snapshot),
        })
        .await
    {
        return;
    }
    let mut last = since;
    match catch_up(&gateway, &out, &match_id, &mut last).await {
        Some(false) if !finished => {}
        _ => return,
    }
    // Players losing or regaining their connection, while the match lasts
    // (a courtesy: without it the match is still followed).
    let mut connections = backend.match_presence(&match_id).await.ok();
    loop {
        let next = tokio::select! {
            message = live.next() => Ok(message),
            Some(message) = async {
                match connections.as_mut() {
                    Some(c) => c.next().await,
                    None => std::future::pending().await,
                }
            } => {
                if let Ok(change) = serde_json::from_slice::<PlayerConnection>(&message.payload)
                    && !out.deliver(&ServerMessage::PlayerConnection(change)).await
                {
                    return;
                }
                continue;
            }
            _ = tokio::time::sleep(QUIET_CATCH_UP) => Err(()),
        };
        let over = match next {
            Ok(None) => return,
            Ok(Some(message)) => {
                let Ok(event) = serde_json::from_slice::<SequencedEvent>(&message.payload) else {
                    continue;
                };
                if event.seq <= last {
                    continue;
                }
                if event.seq == last + 1 {
                    last = event.seq;
                    let over = is_game_over(&event);
                    if !out
                        .deliver(&ServerMessage::Event {
                            match_id: match_id.clone(),
                            event,
                        })
                        .await
                    {
                        return;
                    }
                    Some(over)
                } else {
                    metrics::counter!(names::GATEWAY_EVENT_GAPS).increment(1);
                    catch_up(&gateway, &out, &match_id, &mut last).await
                }
            }
            Err(_) => catch_up(&gateway, &out, &match_id, &mut last).await,
        };
        match over {
            Some(false) => {}
            // Over, or the client is gone.
            Some(true) | None => return,
        }
    }
}

/// Sends the events after `last` from the host. `Some(over)`, or `None` if
/// the client is gone. A failed fetch is retried by the next gap or quiet
/// spell.
async fn catch_up(gateway: &Gateway, out: &Outbox, match_id: &str, last: &mut u64) -> Option<bool> {
    let events = match gateway.backend.events(match_id, *last).await {
        Ok(events) => events,
        Err(e) => {
            tracing::debug!(%match_id, error = %e, "catching up failed; will retry");
            return Some(false);
        }
    };
    let mut over = false;
    for event in events {
        if event.seq != *last + 1 {
            continue;
        }
        *last = event.seq;
        over |= is_game_over(&event);
        if !out
            .deliver(&ServerMessage::Event {
                match_id: match_id.to_owned(),
                event,
            })
            .await
        {
            return None;
        }
    }
    Some(over)
}

fn is_game_over(event: &SequencedEvent) -> bool {
    matches!(event.event, dashdice_mode_sdk::Event::GameOver { .. })
}

/// Whether a socket error is a frame over the hard size cap (tungstenite's
/// capacity error, which axum wraps).
fn frame_too_big(e: axum::Error) -> bool {
    matches!(
        e.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}
