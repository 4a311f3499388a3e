//! The matchmaker role: serves [`Matchmaker`] on NATS as a micro service
//! (`dd.queue.join|leave|status`, `dd.queue.private.create|join` for private
//! matches by invite code, `dd.queue.private.invite|decline` for direct
//! invites, `dd.queue.rematch`), runs the periodic pass that widens windows,
//! fills quick queues with bots and ends direct invites that ran out, and
//! reads finished matches' records from JetStream to free their players and
//! open rematch windows.
//!
//! Stateless: any number run side by side in one queue group; tickets live in
//! Redis and are claimed atomically, so two matchmakers never pair one ticket.

use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream;
use futures_util::StreamExt;
use serde::Serialize;
use tracing::Instrument;

use crate::{Matches, Matchmaker, MatchmakingError, NewMatch, Notice, Notify, QueueKind};
use dashdice_proto::ErrorCode;
use dashdice_proto::bus::{self, queue_endpoint};
use dashdice_proto::client::{CallError, MatchHostClient, Requester};
use dashdice_proto::matches::CreateMatch;
use dashdice_proto::queue::QueueRequest;
use dashdice_proto::record::MatchRecord;
use dashdice_service::endpoints::{Endpoints, Service, serve};
use dashdice_service::telemetry::names;
use dashdice_store::queues::QueueKeys;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// How often the pass widens windows and gives bots.
pub const PASS_EVERY: Duration = Duration::from_millis(500);
/// Largest request payload accepted.
pub const MAX_REQUEST_BYTES: usize = 4 << 10;
/// How long to wait for the match host, per attempt (creation is tried
/// three times, with backoff).
const HOST_TIMEOUT: Duration = Duration::from_secs(2);
/// Requests that start new work (joins, invite codes, rematches) one
/// matchmaker runs at once, by default. See [`run_with`].
pub const MAX_NEW_WORK_IN_FLIGHT: usize = 1_000;

#[derive(Debug, thiserror::Error)]
#[error("nats: {0}")]
pub struct ServiceError(String);

fn nats_error(e: impl std::fmt::Display) -> ServiceError {
    ServiceError(e.to_string())
}

/// The match host, over NATS.
#[derive(Clone)]
pub struct NatsMatches {
    host: MatchHostClient,
}

impl NatsMatches {
    pub fn new(client: async_nats::Client) -> Self {
        NatsMatches {
            host: MatchHostClient::new(Requester::new(client, HOST_TIMEOUT)),
        }
    }
}

impl Matches for NatsMatches {
    async fn create(&self, new: &NewMatch) -> Result<String, CallError> {
        // Our own id, so a retry after a lost reply cannot make two matches.
        let match_id =
            dashdice_proto::ids::new_match_id().map_err(|e| CallError::Transport(e.to_string()))?;
        let request = CreateMatch {
            mode: new.mode.clone(),
            players: new.players.clone(),
            options: None,
            match_id: Some(match_id.clone()),
            ranked: new.ranked,
            bots: new.bots.clone(),
        };
        match self.host.start(&request).await {
            Ok(()) => Ok(match_id),
            // An earlier try made it and its reply was lost.
            Err(CallError::Refused(e)) if e.code == ErrorCode::MatchExists => Ok(match_id),
            Err(e) => Err(e),
        }
    }

    async fn is_over(&self, match_id: &str) -> Option<bool> {
        match self.host.get(match_id).await {
            Ok(snapshot) => Some(snapshot.finished),
            Err(CallError::Refused(e)) if e.code == ErrorCode::UnknownMatch => Some(true),
            Err(_) => None,
        }
    }

    async fn finished_record(&self, match_id: &str) -> Option<MatchRecord> {
        match self.host.get(match_id).await {
            // The final view carries the record.
            Ok(snapshot) if snapshot.finished => snapshot.record(),
            _ => None,
        }
    }
}

/// Players' notification subjects.
#[derive(Clone)]
pub struct NatsNotify {
    pub client: async_nats::Client,
}

impl Notify for NatsNotify {
    async fn notify(&self, player: &str, notice: &Notice) -> Result<(), CallError> {
        let body = serde_json::to_vec(notice).map_err(|e| CallError::Codec(e.to_string()))?;
        // The notice carries the trace of the request that caused it.
        let headers = bus::trace_headers(&tracing::Span::current().context());
        self.client
            .publish_with_headers(bus::user_notify(player), headers, body.into())
            .await
            .map_err(|e| CallError::Transport(e.to_string()))
    }
}

pub type NatsMatchmaker = Matchmaker<NatsMatches, NatsNotify>;

/// Runs the matchmaker on `client` until the connection closes.
pub async fn run(
    client: async_nats::Client,
    matchmaker: NatsMatchmaker,
) -> Result<(), ServiceError> {
    run_with(client, matchmaker, MAX_NEW_WORK_IN_FLIGHT).await
}

/// [`run`], with at most `max_in_flight` requests that start new work
/// (join, private create, invite and join, rematch) running at once. One more is
/// refused at once with `unavailable` instead of queueing: past its
/// capacity a matchmaker that takes everything slows every request down
/// until clients time out, and then it does work nobody waits for. Leave
/// and status (and declining an invite) are never refused this way.
pub async fn run_with(
    client: async_nats::Client,
    matchmaker: NatsMatchmaker,
    max_in_flight: usize,
) -> Result<(), ServiceError> {
    let js = jetstream::new(client.clone());
    let stream = bus::open_record_stream(&js).await.map_err(nats_error)?;
    // Made here if missing, so invites and offers are kept even before a
    // notifier first starts.
    if matchmaker.notifies() {
        bus::open_notify_stream(&js).await.map_err(nats_error)?;
    }
    let consumer = stream
        .get_or_create_consumer(
            bus::MATCHMAKER_RECORDS_CONSUMER,
            jetstream::consumer::pull::Config {
                durable_name: Some(bus::MATCHMAKER_RECORDS_CONSUMER.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .map_err(nats_error)?;
    let matchmaker = Arc::new(matchmaker);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(passes(matchmaker.clone()));
    tasks.spawn(finished_matches(consumer, matchmaker.clone()));
    let service = Service {
        max_in_flight: Some(max_in_flight),
        ..SERVICE
    };
    let served = serve(client, service, Arc::new(Queues(matchmaker))).await;
    tasks.abort_all();
    served.map_err(nats_error)
}

/// The matchmaker's micro service.
const SERVICE: Service = Service {
    name: bus::MATCHMAKER_SERVICE,
    description: "DashDice matchmaker: queues, skill and region windows, bots, invite codes, direct invites, rematches",
    queue_group: bus::MATCHMAKER_QUEUE_GROUP,
    group: bus::QUEUE_GROUP,
    endpoints: &[
        queue_endpoint::JOIN,
        queue_endpoint::LEAVE,
        queue_endpoint::STATUS,
        queue_endpoint::PRIVATE_CREATE,
        queue_endpoint::PRIVATE_JOIN,
        queue_endpoint::PRIVATE_INVITE,
        queue_endpoint::PRIVATE_DECLINE,
        queue_endpoint::REMATCH,
    ],
    requests_metric: names::QUEUE_REQUESTS,
    seconds_metric: names::QUEUE_REQUEST_SECONDS,
    max_in_flight: Some(MAX_NEW_WORK_IN_FLIGHT),
};

/// The matchmaker on the bus.
struct Queues(Arc<NatsMatchmaker>);

impl Endpoints for Queues {
    fn span(&self, endpoint: &'static str) -> tracing::Span {
        tracing::info_span!("queue request", endpoint, outcome = tracing::field::Empty)
    }

    /// Joins, invite codes and rematches start new work; leave, status and
    /// declining an invite (which ends work, and frees its host) are never
    /// refused for capacity.
    fn sheddable(&self, endpoint: &'static str) -> bool {
        !matches!(
            endpoint,
            queue_endpoint::LEAVE | queue_endpoint::STATUS | queue_endpoint::PRIVATE_DECLINE
        )
    }

    async fn handle(&self, endpoint: &'static str, payload: &[u8]) -> bus::Answer {
        let mm = &self.0;
        match QueueRequest::decode(endpoint, payload, MAX_REQUEST_BYTES) {
            Err(refusal) => refusal,
            Ok(QueueRequest::Join(req)) => respond(mm.join(&req).await),
            Ok(QueueRequest::Leave(req)) => respond(mm.leave(&req.player).await),
            Ok(QueueRequest::Status(req)) => respond(mm.status(&req.player).await),
            Ok(QueueRequest::CreateInvite(req)) => respond(mm.create_invite(&req).await),
            Ok(QueueRequest::JoinInvite(req)) => respond(mm.join_invite(&req).await),
            Ok(QueueRequest::DirectInvite(req)) => respond(mm.invite_player(&req).await),
            Ok(QueueRequest::DeclineInvite(req)) => respond(mm.decline_invite(&req).await),
            Ok(QueueRequest::Rematch(req)) => respond(mm.offer_rematch(&req).await),
        }
    }
}

fn respond<T: Serialize>(result: Result<T, MatchmakingError>) -> bus::Answer {
    if let Err(e) = &result
        && matches!(e, MatchmakingError::Store(_) | MatchmakingError::Corrupt(_))
    {
        tracing::warn!(code = e.code().as_str(), error = %e, "queue request failed");
    }
    bus::answer(result, MatchmakingError::code)
}

/// The periodic pass, and the queue-size gauges.
async fn passes(mm: Arc<NatsMatchmaker>) {
    let mut tick = tokio::time::interval(PASS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = mm
            .pass()
            .instrument(tracing::info_span!("queue pass"))
            .await
        {
            tracing::warn!(error = %e, "matchmaking pass failed");
        }
        for mode in mm.modes() {
            for kind in [QueueKind::Quick, QueueKind::Ranked] {
                if let Ok(size) = mm.queue_size(&QueueKeys::new(&mode, kind.as_str())).await {
                    metrics::gauge!(names::QUEUE_TICKETS, "mode" => mode.clone(), "kind" => kind.as_str())
                        .set(size as f64);
                }
            }
        }
    }
}

/// Finished matches, from the record stream: free the players and open the
/// rematch window (ratings are the archiver's). Each record is acknowledged
/// once handled, so a matchmaker dying mid-way leaves it for another.
async fn finished_matches(consumer: jetstream::consumer::PullConsumer, mm: Arc<NatsMatchmaker>) {
    loop {
        let mut messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read match records; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        while let Some(message) = messages.next().await {
            let Ok(message) = message else {
                break;
            };
            match serde_json::from_slice::<MatchRecord>(&message.payload) {
                Ok(record) => {
                    if let Err(e) = mm.record_finished(&record).await {
                        tracing::warn!(match_id = %record.match_id, error = %e, "could not handle a finished match; it will come again");
                        continue;
                    }
                }
                Err(e) => tracing::error!(error = %e, "a malformed match record; skipped"),
            }
            if let Err(e) = message.ack().await {
                tracing::warn!(error = %e, "could not acknowledge a match record");
            }
        }
    }
}
