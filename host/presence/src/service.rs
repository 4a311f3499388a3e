//! The presence role on NATS: the only module of this crate that touches
//! it.
//!
//! - `dd.presence.{connect,heartbeat,visibility,disconnect,activity,query,lobby}`
//!   on the shared endpoint loop (queue group `presence`), answered by
//!   [`Presences`];
//! - every visible change published on `presence_changes(uid)` (the user's
//!   [`Presence`] as JSON, `changed_ms` = when it was made) before the
//!   request is answered, counted in `PRESENCE_CHANGES` by status;
//! - a player in a match who lost their last connection, or got one back:
//!   a [`PlayerConnection`] on `match_presence(match_id)`, with whose turn
//!   it is and what the turn timer leaves, read from the match host (left
//!   out if it does not answer in time);
//! - the notices to every user (`ALL_USER_NOTICES`, queue group
//!   `presence`): a match found puts its player in the match; match ends
//!   (`MATCH_ENDED`) put its players whose activity still names it back
//!   to the menu;
//! - the sweeper, every [`Options::sweep_every`]: expired connections
//!   (`PRESENCE_EXPIRED`), then the queue graces that ran out: the
//!   matchmaker's `leave` gives up the player's ticket or invite code
//!   (`PRESENCE_TICKETS_DROPPED`) and the player goes back to the menu;
//!   then the `PRESENCE_ONLINE` gauge by region.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use dashdice_proto::bus::{self, Answer, MatchEnded, presence_endpoint as e};
use dashdice_proto::client::{MatchHostClient, MatchmakerClient, Requester};
use dashdice_proto::presence::{PlayerConnection, Presence, PresenceRequest, SWEEP_EVERY_MS};
use dashdice_proto::queue::{Notice, Status};
use dashdice_service::endpoints::{Endpoints, Service, serve};
use dashdice_service::telemetry::names;
use futures_util::StreamExt;
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{Effects, MatchNews, PresenceError, Presences, Reported};

/// Largest request accepted, but heartbeats.
pub const MAX_REQUEST_BYTES: usize = 32 << 10;
/// Largest heartbeat accepted: NATS's default largest message. A gateway
/// with more connections than fit (about 8,000 at ~120 bytes each) sends
/// several heartbeats.
pub const MAX_HEARTBEAT_BYTES: usize = 1 << 20;

/// The presence role's micro service.
pub const SERVICE: Service = Service {
    name: bus::PRESENCE_SERVICE,
    description: "DashDice presence: who is online, away or offline and doing what; the lobby's figures",
    queue_group: bus::PRESENCE_QUEUE_GROUP,
    group: bus::PRESENCE_GROUP,
    endpoints: &[
        e::CONNECT,
        e::HEARTBEAT,
        e::VISIBILITY,
        e::DISCONNECT,
        e::ACTIVITY,
        e::QUERY,
        e::LOBBY,
    ],
    requests_metric: names::PRESENCE_REQUESTS,
    seconds_metric: names::PRESENCE_REQUEST_SECONDS,
    max_in_flight: None,
};

/// How the role runs. The connection ttl and the queue grace are the
/// store's ([`dashdice_store::presence::PresenceSettings`]).
#[derive(Clone, Debug)]
pub struct Options {
    /// How often the sweeper runs ([`SWEEP_EVERY_MS`]).
    pub sweep_every: Duration,
    /// Users per shard one sweep round (or one grace read) takes.
    pub sweep_limit: usize,
    /// Rounds one sweep runs at most while more are due.
    pub sweep_rounds: usize,
    /// When giving up a ticket failed, the grace is due again this much
    /// later.
    pub grace_retry: Duration,
    /// Tickets given up at once.
    pub max_leaves_in_flight: usize,
    /// How long to wait for the matchmaker's `leave`.
    pub matchmaker_timeout: Duration,
    /// How long to wait for the match host's turn timer before telling a
    /// match without it.
    pub match_host_timeout: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            sweep_every: Duration::from_millis(SWEEP_EVERY_MS),
            sweep_limit: 1_000,
            sweep_rounds: 10,
            grace_retry: Duration::from_secs(2),
            max_leaves_in_flight: 32,
            matchmaker_timeout: Duration::from_secs(2),
            match_host_timeout: Duration::from_millis(500),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("nats: {0}")]
pub struct ServiceError(pub String);

fn nats_error(e: impl std::fmt::Display) -> ServiceError {
    ServiceError(e.to_string())
}

/// Runs the presence role on `client` until the connection closes: the
/// endpoints, the notice and match-end followers and the sweeper.
pub async fn run(
    client: async_nats::Client,
    presences: Presences,
    options: Options,
) -> Result<(), ServiceError> {
    run_until(client, presences, options, std::future::pending()).await
}

/// [`run`] until `stop` resolves too; then the sweeper and the followers
/// stop, and requests being answered finish on their own tasks.
pub async fn run_until(
    client: async_nats::Client,
    presences: Presences,
    options: Options,
    stop: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let notices = client
        .queue_subscribe(bus::ALL_USER_NOTICES, bus::PRESENCE_QUEUE_GROUP.to_owned())
        .await
        .map_err(nats_error)?;
    let ended = client
        .queue_subscribe(bus::MATCH_ENDED, bus::PRESENCE_QUEUE_GROUP.to_owned())
        .await
        .map_err(nats_error)?;
    let role = Arc::new(Role {
        presences,
        bus: Bus::new(client.clone(), &options),
        options,
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(follow_notices(role.clone(), notices));
    tasks.spawn(follow_match_ends(role.clone(), ended));
    tasks.spawn(sweeper(role.clone()));
    let served = tokio::select! {
        served = serve(client, SERVICE, Arc::new(Requests(role))) => served.map_err(nats_error),
        () = stop => Ok(()),
    };
    tasks.abort_all();
    served
}

/// The NATS side of the effects: publishing, and the two roles asked.
struct Bus {
    client: async_nats::Client,
    host: MatchHostClient,
    matchmaker: MatchmakerClient,
}

impl Bus {
    fn new(client: async_nats::Client, options: &Options) -> Self {
        Bus {
            host: MatchHostClient::new(Requester::new(client.clone(), options.match_host_timeout)),
            matchmaker: MatchmakerClient::new(Requester::new(
                client.clone(),
                options.matchmaker_timeout,
            )),
            client,
        }
    }

    async fn publish_json<T: Serialize>(&self, subject: String, body: &T) {
        let body = match serde_json::to_vec(body) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(%subject, error = %e, "cannot encode a presence message");
                return;
            }
        };
        let headers = bus::trace_headers(&tracing::Span::current().context());
        if let Err(e) = self
            .client
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
        {
            tracing::warn!(%subject, error = %e, "cannot publish");
        }
    }

    /// Publishes every change, then tells the matches.
    async fn publish(&self, effects: &Effects) {
        for p in &effects.changed {
            self.publish_presence(p).await;
        }
        for news in &effects.matches {
            self.tell_match(news).await;
        }
    }

    async fn publish_presence(&self, p: &Presence) {
        self.publish_json(bus::presence_changes(&p.uid), p).await;
        metrics::counter!(names::PRESENCE_CHANGES, "status" => p.status.as_str()).increment(1);
    }

    /// A player's connection news to their match, with the turn timer if
    /// the match host says it in time.
    async fn tell_match(&self, news: &MatchNews) {
        let (turn, turn_ms_left) = match self.host.get(&news.match_id).await {
            Ok(snapshot) if !snapshot.finished => (
                snapshot.turn,
                snapshot
                    .deadline_ms
                    .map(|deadline| deadline.saturating_sub(news.at_ms)),
            ),
            Ok(_) => (None, None),
            Err(e) => {
                tracing::debug!(match_id = %news.match_id, error = %e, "no turn timer for the match's presence news");
                (None, None)
            }
        };
        let told = PlayerConnection {
            match_id: news.match_id.clone(),
            player: news.player.clone(),
            connected: news.connected,
            turn,
            turn_ms_left,
            at_ms: news.at_ms,
        };
        self.publish_json(bus::match_presence(&news.match_id), &told)
            .await;
    }
}

/// What the requests, the followers and the sweeper share.
struct Role {
    presences: Presences,
    bus: Bus,
    options: Options,
}

impl Role {
    /// Publishes what a request changed, then answers it.
    async fn answer<T: Serialize>(&self, result: Result<Reported<T>, PresenceError>) -> Answer {
        match result {
            Ok(reported) => {
                self.bus.publish(&reported.effects).await;
                respond(Ok(reported.answer))
            }
            Err(e) => respond::<T>(Err(e)),
        }
    }

    /// Gives up `uid`'s ticket or invite code (their grace ran out).
    async fn give_up(&self, uid: String) {
        let span = tracing::info_span!("presence grace", player = %uid);
        async {
            let p = &self.presences;
            let effects = match self.bus.matchmaker.leave(&uid).await {
                Ok(Status::Idle) => {
                    metrics::counter!(names::PRESENCE_TICKETS_DROPPED).increment(1);
                    p.gave_up(&uid).await
                }
                // Matched meanwhile: they are in the match.
                Ok(Status::Playing { match_id }) => p.match_found(&uid, &match_id).await,
                // Being matched right now (or queued again): look again
                // later; a match found ends the grace.
                Ok(_) => self.retry(&uid).await,
                Err(e) => {
                    tracing::warn!(player = %uid, error = %e, "could not give up a ticket; retrying");
                    self.retry(&uid).await
                }
            };
            match effects {
                Ok(effects) => self.bus.publish(&effects).await,
                Err(e) => tracing::warn!(player = %uid, error = %e, "presence grace failed"),
            }
        }
        .instrument(span)
        .await
    }

    async fn retry(&self, uid: &str) -> Result<Effects, PresenceError> {
        let retry_ms = u64::try_from(self.options.grace_retry.as_millis()).unwrap_or(u64::MAX);
        self.presences.retry_grace(uid, retry_ms).await?;
        Ok(Effects::default())
    }
}

fn respond<T: Serialize>(result: Result<T, PresenceError>) -> Answer {
    if let Err(e @ PresenceError::Store(_)) = &result {
        tracing::warn!(error = %e, "presence request failed");
    }
    bus::answer(result, PresenceError::code)
}

/// The role on the endpoint loop.
struct Requests(Arc<Role>);

impl Endpoints for Requests {
    fn span(&self, endpoint: &'static str) -> tracing::Span {
        tracing::info_span!(
            "presence request",
            endpoint,
            outcome = tracing::field::Empty
        )
    }

    async fn handle(&self, endpoint: &'static str, payload: &[u8]) -> Answer {
        let role = &self.0;
        let p = &role.presences;
        let max = if endpoint == e::HEARTBEAT {
            MAX_HEARTBEAT_BYTES
        } else {
            MAX_REQUEST_BYTES
        };
        match PresenceRequest::decode(endpoint, payload, max) {
            Err(refusal) => refusal,
            Ok(PresenceRequest::Connect(r)) => role.answer(p.connect(&r).await).await,
            Ok(PresenceRequest::Heartbeat(r)) => role.answer(p.heartbeat(&r).await).await,
            Ok(PresenceRequest::Visibility(r)) => role.answer(p.visibility(&r).await).await,
            Ok(PresenceRequest::Disconnect(r)) => role.answer(p.disconnect(&r).await).await,
            Ok(PresenceRequest::Activity(r)) => role.answer(p.activity(&r).await).await,
            Ok(PresenceRequest::Query(r)) => respond(p.query(&r).await),
            Ok(PresenceRequest::Lobby(_)) => respond(p.lobby().await),
        }
    }
}

/// A span for a followed message, joining the trace it carries.
fn message_span(name: &'static str, message: &async_nats::Message) -> tracing::Span {
    let span = tracing::info_span!("presence follow", what = name, subject = %message.subject);
    let _ = span.set_parent(bus::trace_context(message.headers.as_ref()));
    span
}

/// Match-found notices put their player in the match. A notice is sent
/// to each player on their own subject, so the player is the one whose
/// subject it came on.
async fn follow_notices(role: Arc<Role>, mut notices: async_nats::Subscriber) {
    while let Some(message) = notices.next().await {
        // Other notices (friends, invites) and newer kinds are not ours.
        let Ok(Notice::MatchFound(found)) = serde_json::from_slice::<Notice>(&message.payload)
        else {
            continue;
        };
        let Some(uid) = found
            .players
            .iter()
            .find(|p| bus::user_notify(p) == message.subject.as_str())
            .cloned()
        else {
            continue;
        };
        let role = role.clone();
        let span = message_span("match found", &message);
        tokio::spawn(
            async move {
                match role.presences.match_found(&uid, &found.match_id).await {
                    Ok(effects) => role.bus.publish(&effects).await,
                    Err(e) => {
                        tracing::warn!(player = %uid, error = %e, "could not note a match found")
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// A match's end puts its players back in the menu (those still in it).
async fn follow_match_ends(role: Arc<Role>, mut ended: async_nats::Subscriber) {
    while let Some(message) = ended.next().await {
        let ended: MatchEnded = match serde_json::from_slice(&message.payload) {
            Ok(ended) => ended,
            Err(e) => {
                tracing::warn!(error = %e, "an unreadable match end; skipped");
                continue;
            }
        };
        let role = role.clone();
        let span = message_span("match ended", &message);
        tokio::spawn(
            async move {
                match role.presences.match_ended(&ended).await {
                    Ok(effects) => role.bus.publish(&effects).await,
                    Err(e) => {
                        tracing::warn!(match_id = %ended.match_id, error = %e, "could not note a match end")
                    }
                }
            }
            .instrument(span),
        );
    }
}

/// Expired connections, then ran-out graces, then the gauge, every
/// [`Options::sweep_every`].
async fn sweeper(role: Arc<Role>) {
    let options = role.options.clone();
    let mut tick = tokio::time::interval(options.sweep_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut regions_seen = BTreeSet::new();
    loop {
        tick.tick().await;
        let p = &role.presences;
        async {
            match p.sweep(options.sweep_limit, options.sweep_rounds).await {
                Ok(sweep) => {
                    metrics::counter!(names::PRESENCE_EXPIRED).increment(sweep.expired);
                    role.bus.publish(&sweep.effects).await;
                }
                Err(e) => tracing::warn!(error = %e, "presence sweep failed"),
            }
            match p.due_graces(options.sweep_limit).await {
                Ok(due) => {
                    futures_util::stream::iter(due)
                        .for_each_concurrent(options.max_leaves_in_flight.max(1), |uid| {
                            role.give_up(uid)
                        })
                        .await
                }
                Err(e) => tracing::warn!(error = %e, "reading queue graces failed"),
            }
            match p.regions().await {
                Ok(regions) => {
                    let now: BTreeSet<String> = regions.iter().map(|r| r.region.clone()).collect();
                    for gone in regions_seen.difference(&now) {
                        metrics::gauge!(names::PRESENCE_ONLINE, "region" => gone.clone()).set(0.0);
                    }
                    for r in &regions {
                        metrics::gauge!(names::PRESENCE_ONLINE, "region" => r.region.clone())
                            .set(r.online as f64);
                    }
                    regions_seen = now;
                }
                Err(e) => tracing::debug!(error = %e, "reading region counts failed"),
            }
        }
        .instrument(tracing::info_span!("presence sweep"))
        .await;
    }
}
