//! The matchmaker role: serves [`Matchmaker`] on NATS as a micro service
//! (`dd.queue.join|leave|status`, `dd.queue.private.create|join` for private
//! matches by invite code, `dd.queue.rematch`), runs the periodic pass that widens windows
//! and fills quick queues with bots, and reads finished matches' records from
//! JetStream to free their players, update ratings and open rematch windows.
//!
//! Stateless: any number run side by side in one queue group; tickets live in
//! Redis and are claimed atomically, so two matchmakers never pair one ticket.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream;
use async_nats::service::ServiceExt;
use futures_util::StreamExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{
    CreateInviteRequest, JoinInviteRequest, JoinRequest, Matches, Matchmaker, MatchmakingError,
    NewMatch, Notice, Notify, PlayerRequest, QueueKind, RematchRequest,
};
use dashdice_proto::bus::{self, Reply, endpoint, queue_endpoint};
use dashdice_proto::matches::{CreateMatch, Snapshot};
use dashdice_proto::record::MatchRecord;
use dashdice_service::telemetry::names;
use dashdice_store::queues::QueueKeys;

/// How often the pass widens windows and gives bots.
pub const PASS_EVERY: Duration = Duration::from_millis(500);
/// Largest request payload accepted.
pub const MAX_REQUEST_BYTES: usize = 4 << 10;
/// How long to wait for the match host, per attempt.
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
    pub client: async_nats::Client,
}

async fn host_request<T: DeserializeOwned>(
    client: &async_nats::Client,
    endpoint: &str,
    body: Vec<u8>,
) -> Result<Result<T, bus::ErrorBody>, String> {
    let request = client.request(bus::match_request(endpoint), body.into());
    let reply = tokio::time::timeout(HOST_TIMEOUT, request)
        .await
        .map_err(|_| "the match host did not answer in time".to_owned())?
        .map_err(|e| e.to_string())?;
    serde_json::from_slice::<Reply<T>>(&reply.payload)
        .map(Reply::into_result)
        .map_err(|e| e.to_string())
}

impl Matches for NatsMatches {
    async fn create(&self, new: &NewMatch) -> Result<String, String> {
        // Our own id, so a retry after a lost reply cannot make two matches.
        let match_id = dashdice_proto::ids::new_match_id().map_err(|e| e.to_string())?;
        let request = CreateMatch {
            mode: new.mode.clone(),
            players: new.players.clone(),
            options: None,
            match_id: Some(match_id.clone()),
            ranked: new.ranked,
            bots: new.bots.clone(),
        };
        let body = serde_json::to_vec(&request).map_err(|e| e.to_string())?;
        let mut last = String::new();
        for _ in 0..3 {
            match host_request::<serde_json::Value>(&self.client, endpoint::CREATE, body.clone())
                .await
            {
                Ok(Ok(_)) => return Ok(match_id),
                Ok(Err(e)) if e.code == "match_exists" => return Ok(match_id),
                Ok(Err(e)) => return Err(format!("{}: {}", e.code, e.message)),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn is_over(&self, match_id: &str) -> Option<bool> {
        let body = serde_json::to_vec(&bus::MatchIdRequest {
            match_id: match_id.to_owned(),
        })
        .ok()?;
        match host_request::<Snapshot>(&self.client, endpoint::GET, body).await {
            Ok(Ok(snapshot)) => Some(snapshot.finished),
            Ok(Err(e)) if e.code == "unknown_match" => Some(true),
            _ => None,
        }
    }

    async fn finished_record(&self, match_id: &str) -> Option<MatchRecord> {
        let body = serde_json::to_vec(&bus::MatchIdRequest {
            match_id: match_id.to_owned(),
        })
        .ok()?;
        match host_request::<Snapshot>(&self.client, endpoint::GET, body).await {
            // The final view carries the record.
            Ok(Ok(snapshot)) if snapshot.finished => snapshot.record(),
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
    async fn notify(&self, player: &str, notice: &Notice) {
        let Ok(body) = serde_json::to_vec(notice) else {
            return;
        };
        if let Err(e) = self
            .client
            .publish(bus::user_notify(player), body.into())
            .await
        {
            tracing::warn!(%player, error = %e, "could not notify a player");
        }
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
/// (join, private create and join, rematch) running at once. One more is
/// refused at once with `unavailable` instead of queueing: past its
/// capacity a matchmaker that takes everything slows every request down
/// until clients time out, and then it does work nobody waits for. Leave
/// and status are never refused this way.
pub async fn run_with(
    client: async_nats::Client,
    matchmaker: NatsMatchmaker,
    max_in_flight: usize,
) -> Result<(), ServiceError> {
    let js = jetstream::new(client.clone());
    let stream = bus::open_record_stream(&js).await.map_err(nats_error)?;
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
    let service = client
        .service_builder()
        .description(
            "DashDice matchmaker: queues, skill and region windows, bots, invite codes, rematches",
        )
        .queue_group(bus::MATCHMAKER_QUEUE_GROUP)
        .start(bus::MATCHMAKER_SERVICE, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(nats_error)?;
    let group = service.group(bus::QUEUE_GROUP);
    let matchmaker = Arc::new(matchmaker);
    let new_work = Arc::new(tokio::sync::Semaphore::new(max_in_flight.max(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for name in [
        queue_endpoint::JOIN,
        queue_endpoint::LEAVE,
        queue_endpoint::STATUS,
        queue_endpoint::PRIVATE_CREATE,
        queue_endpoint::PRIVATE_JOIN,
        queue_endpoint::REMATCH,
    ] {
        let mut requests = group.endpoint(name).await.map_err(nats_error)?;
        let matchmaker = matchmaker.clone();
        let new_work = new_work.clone();
        let sheddable = !matches!(name, queue_endpoint::LEAVE | queue_endpoint::STATUS);
        tasks.spawn(async move {
            while let Some(request) = requests.next().await {
                let matchmaker = matchmaker.clone();
                let permit = if sheddable {
                    match new_work.clone().try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) => {
                            metrics::counter!(names::QUEUE_REQUESTS, "endpoint" => name, "outcome" => "unavailable")
                                .increment(1);
                            let refusal = bus::refuse(
                                "unavailable",
                                "the matchmaker is at capacity; nothing was done, retry shortly",
                            );
                            let _ = request.respond(Ok(refusal.0)).await;
                            continue;
                        }
                    }
                } else {
                    None
                };
                tokio::spawn(async move {
                    let _permit = permit;
                    let started = Instant::now();
                    let span = tracing::info_span!("queue request", endpoint = name, outcome = tracing::field::Empty);
                    let _ = span.set_parent(bus::trace_context(request.message.headers.as_ref()));
                    let (body, outcome) = handle(name, &request.message.payload, &matchmaker)
                        .instrument(span.clone())
                        .await;
                    span.record("outcome", outcome);
                    metrics::counter!(names::QUEUE_REQUESTS, "endpoint" => name, "outcome" => outcome)
                        .increment(1);
                    metrics::histogram!(names::QUEUE_REQUEST_SECONDS, "endpoint" => name)
                        .record(started.elapsed().as_secs_f64());
                    if let Err(e) = request.respond(Ok(body)).await {
                        tracing::warn!(endpoint = name, error = %e, "could not reply");
                    }
                });
            }
        });
    }
    tasks.spawn(passes(matchmaker.clone()));
    tasks.spawn(finished_matches(consumer, matchmaker.clone()));
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn handle(name: &str, payload: &[u8], mm: &NatsMatchmaker) -> bus::Answer {
    match name {
        queue_endpoint::JOIN => {
            match bus::decode_request::<JoinRequest>(payload, MAX_REQUEST_BYTES) {
                Ok(req) => respond(mm.join(&req).await),
                Err(e) => e,
            }
        }
        queue_endpoint::LEAVE => {
            match bus::decode_request::<PlayerRequest>(payload, MAX_REQUEST_BYTES) {
                Ok(req) => respond(mm.leave(&req.player).await),
                Err(e) => e,
            }
        }
        queue_endpoint::STATUS => {
            match bus::decode_request::<PlayerRequest>(payload, MAX_REQUEST_BYTES) {
                Ok(req) => respond(mm.status(&req.player).await),
                Err(e) => e,
            }
        }
        queue_endpoint::PRIVATE_CREATE => {
            match bus::decode_request::<CreateInviteRequest>(payload, MAX_REQUEST_BYTES) {
                Ok(req) => respond(mm.create_invite(&req).await),
                Err(e) => e,
            }
        }
        queue_endpoint::PRIVATE_JOIN => {
            match bus::decode_request::<JoinInviteRequest>(payload, MAX_REQUEST_BYTES) {
                Ok(req) => respond(mm.join_invite(&req).await),
                Err(e) => e,
            }
        }
        queue_endpoint::REMATCH => {
            match bus::decode_request::<RematchRequest>(payload, MAX_REQUEST_BYTES) {
                Ok(req) => respond(mm.offer_rematch(&req).await),
                Err(e) => e,
            }
        }
        other => bus::refuse("unknown_endpoint", other),
    }
}

fn respond<T: Serialize>(result: Result<T, MatchmakingError>) -> bus::Answer {
    if let Err(e) = &result
        && matches!(e, MatchmakingError::Store(_) | MatchmakingError::Corrupt(_))
    {
        tracing::warn!(code = e.code(), error = %e, "queue request failed");
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
                if let Ok(size) = mm.queue_size(&QueueKeys::new(mode, kind.as_str())).await {
                    metrics::gauge!(names::QUEUE_TICKETS, "mode" => mode.clone(), "kind" => kind.as_str())
                        .set(size as f64);
                }
            }
        }
    }
}

/// Finished matches, from the record stream: free the players, open the
/// rematch window and, for a ranked match, update ratings. Each record is acknowledged once handled,
/// so a matchmaker dying mid-way leaves it for another.
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
