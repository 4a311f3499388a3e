//! The match-host role: serves [`MatchHost`] on NATS as a micro service
//! (`$SRV.PING|INFO|STATS` work from the `nats` CLI), publishes each match's
//! events, and fires due turn timers.
//!
//! Stateless: any number of these run side by side in one queue group; every
//! match lives in Redis, so any instance serves any match, and a killed instance
//! loses nothing that was committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::service::ServiceExt;
use futures_util::StreamExt;
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{ActRequest, ActionReply, Applied, CreateMatch, MatchError, MatchHost};
use dashdice_proto::bus::{self, EventsRequest, MatchIdRequest, RecordStream, endpoint};
use dashdice_service::telemetry::names;

/// How often due turn timers are looked for.
pub const TIMER_TICK: Duration = Duration::from_millis(100);
/// How often the live-match gauge is refreshed and unrecorded matches swept.
pub const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(1);
/// A finished match whose record is still not stored this long after it
/// ended is taken to have lost its host, and any host stores the record.
pub const RECORD_GRACE: Duration = Duration::from_secs(5);
/// Largest request payload accepted.
pub const MAX_REQUEST_BYTES: usize = 16 << 10;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("nats: {0}")]
    Nats(String),
}

fn nats_error(e: impl std::fmt::Display) -> ServiceError {
    ServiceError::Nats(e.to_string())
}

/// Runs the match host on `client` until the connection closes.
pub async fn run(client: async_nats::Client, host: MatchHost) -> Result<(), ServiceError> {
    // Before the service announces itself: everything it needs is ready
    // when it first answers PING.
    let records = RecordStream::open(&client).await.map_err(nats_error)?;
    let service = client
        .service_builder()
        .description("DashDice match host: creates matches and applies actions authoritatively")
        .queue_group(bus::MATCH_QUEUE_GROUP)
        .start(bus::MATCH_SERVICE, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(nats_error)?;
    let group = service.group(bus::MATCH_GROUP);
    let host = Arc::new(host);
    let mut tasks = tokio::task::JoinSet::new();
    for name in [
        endpoint::CREATE,
        endpoint::ACT,
        endpoint::GET,
        endpoint::EVENTS,
        endpoint::RECORD,
    ] {
        let mut requests = group.endpoint(name).await.map_err(nats_error)?;
        let host = host.clone();
        let client = client.clone();
        let records = records.clone();
        tasks.spawn(async move {
            while let Some(request) = requests.next().await {
                let host = host.clone();
                let client = client.clone();
                let records = records.clone();
                tokio::spawn(async move {
                    let out = Outbox {
                        client: &client,
                        records: &records,
                        host: &host,
                    };
                    let started = Instant::now();
                    let span = tracing::info_span!("match request", endpoint = name, outcome = tracing::field::Empty);
                    // Joins the caller's trace, if the request carries one.
                    let _ = span.set_parent(bus::trace_context(request.message.headers.as_ref()));
                    let (body, outcome) = handle(name, &request.message.payload, &out)
                        .instrument(span.clone())
                        .await;
                    span.record("outcome", outcome);
                    metrics::counter!(names::MATCH_REQUESTS, "endpoint" => name, "outcome" => outcome)
                        .increment(1);
                    metrics::histogram!(names::MATCH_REQUEST_SECONDS, "endpoint" => name)
                        .record(started.elapsed().as_secs_f64());
                    if let Err(e) = request.respond(Ok(body)).await {
                        tracing::warn!(endpoint = name, error = %e, "could not reply");
                    }
                });
            }
        });
    }
    tasks.spawn(timers(client.clone(), records.clone(), host.clone()));
    tasks.spawn(housekeeping(records.clone(), host.clone()));
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// One request: decode, call the host, publish events, encode the reply.
/// Returns the reply and its outcome (`ok` or the error code).
async fn handle(name: &str, payload: &[u8], out: &Outbox<'_>) -> bus::Answer {
    let host = out.host;
    match name {
        endpoint::CREATE => match bus::decode_request::<CreateMatch>(payload, MAX_REQUEST_BYTES) {
            Ok(req) => {
                let created = host
                    .create(&req)
                    .await
                    .map(|reply| Applied { reply, new: true });
                if let Ok(created) = &created {
                    metrics::counter!(names::MATCHES_CREATED, "mode" => created.reply.snapshot.mode.clone())
                        .increment(1);
                }
                out.published(created).await
            }
            Err(e) => e,
        },
        endpoint::ACT => match bus::decode_request::<ActRequest>(payload, MAX_REQUEST_BYTES) {
            Ok(req) => out.published(host.act(&req).await).await,
            Err(e) => e,
        },
        endpoint::GET => match bus::decode_request::<MatchIdRequest>(payload, MAX_REQUEST_BYTES) {
            Ok(req) => respond(host.get(&req.match_id).await),
            Err(e) => e,
        },
        endpoint::EVENTS => {
            match bus::decode_request::<EventsRequest>(payload, MAX_REQUEST_BYTES) {
                Ok(req) => respond(host.events_since(&req.match_id, req.after).await),
                Err(e) => e,
            }
        }
        endpoint::RECORD => match bus::decode_request::<MatchIdRequest>(payload, MAX_REQUEST_BYTES)
        {
            Ok(req) => respond(host.record(&req.match_id).await),
            Err(e) => e,
        },
        other => bus::refuse("unknown_endpoint", other),
    }
}

fn respond<T: Serialize>(result: Result<T, MatchError>) -> bus::Answer {
    if let Err(e) = &result
        && matches!(
            e,
            MatchError::ModeFault(_) | MatchError::Store(_) | MatchError::Corrupt(_)
        )
    {
        tracing::warn!(code = e.code(), error = %e, "match request failed");
    }
    bus::answer(result, MatchError::code)
}

/// The JetStream stream of finished matches' records.
#[derive(Clone)]

/// Where a request's side effects go: events, the end announcement, the record.
struct Outbox<'a> {
    client: &'a async_nats::Client,
    records: &'a RecordStream,
    host: &'a MatchHost,
}

impl Outbox<'_> {
    /// Publishes a newly applied action's effects (a repeated request
    /// publishes nothing again), then replies.
    async fn published(&self, result: Result<Applied, MatchError>) -> bus::Answer {
        if let Ok(Applied { reply, new: true }) = &result {
            self.announce(reply).await;
        }
        respond(result.map(|applied| applied.reply))
    }

    /// Events on the match's subject; at the end, the standings and the record.
    async fn announce(&self, reply: &ActionReply) {
        publish_events(self.client, reply).await;
        if !reply.snapshot.finished {
            return;
        }
        metrics::counter!(names::MATCHES_FINISHED, "mode" => reply.snapshot.mode.clone())
            .increment(1);
        let Some(record) = reply.snapshot.record() else {
            tracing::error!(match_id = %reply.snapshot.match_id, "a finished match's view lacks its record");
            return;
        };
        let ended = bus::MatchEnded {
            match_id: record.match_id.clone(),
            mode: record.mode.clone(),
            mode_version: record.mode_version.to_string(),
            standings: record.standings.clone(),
        };
        if let Ok(body) = serde_json::to_vec(&ended) {
            let _ = self.client.publish(bus::MATCH_ENDED, body.into()).await;
        }
        self.store_record(&record).await;
    }

    /// Stores a finished match's record in JetStream and notes it in Redis;
    /// if that fails, the housekeeping sweep of any host tries again.
    async fn store_record(&self, record: &dashdice_proto::record::MatchRecord) {
        let id = &record.match_id;
        match self.records.store(record).await {
            Ok(()) => {
                if let Err(e) = self.host.store().recorded(id).await {
                    tracing::warn!(match_id = %id, error = %e, "record stored, but not noted (it will be stored again, deduplicated)");
                }
            }
            Err(e) => {
                metrics::counter!(names::RECORDS_PENDING).increment(1);
                tracing::error!(match_id = %id, error = %e, "could not store the match record; the sweep will retry");
            }
        }
    }
}

async fn publish_events(client: &async_nats::Client, reply: &ActionReply) {
    let subject = bus::match_events(&reply.snapshot.match_id);
    // Events carry the trace of the request that caused them.
    let headers = bus::trace_headers(&tracing::Span::current().context());
    for event in &reply.events {
        let Ok(body) = serde_json::to_vec(event) else {
            continue;
        };
        if let Err(e) = client
            .publish_with_headers(subject.clone(), headers.clone(), body.into())
            .await
        {
            // Committed events are never lost: clients catch up with
            // `dd.match.events` from their last sequence number.
            tracing::warn!(%subject, error = %e, "could not publish an event");
        }
    }
}

/// Fires due turn timers. Every host runs this; a timer fires once because
/// firing is an idempotent, compare-and-set action.
async fn timers(client: async_nats::Client, records: RecordStream, host: Arc<MatchHost>) {
    let out = Outbox {
        client: &client,
        records: &records,
        host: &host,
    };
    let mut tick = tokio::time::interval(TIMER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let now = dashdice_proto::clock::now_ms();
        let due = match host.store().due_timers(now, 100).await {
            Ok(due) => due,
            Err(e) => {
                tracing::warn!(error = %e, "could not read due timers");
                continue;
            }
        };
        for (match_id, deadline) in due {
            let span = tracing::info_span!("turn timer", %match_id);
            match host
                .fire_timeout(&match_id, deadline)
                .instrument(span.clone())
                .await
            {
                Ok(Some(Applied { reply, new: true })) => {
                    let forfeit = reply
                        .events
                        .iter()
                        .any(|e| matches!(e.event, dashdice_mode_sdk::Event::Forfeited { .. }));
                    let action = if forfeit { "forfeit" } else { "timeout" };
                    metrics::counter!(names::TIMERS_FIRED, "action" => action).increment(1);
                    out.announce(&reply).instrument(span).await
                }
                Ok(_) => {}
                Err(MatchError::UnknownMatch(_)) => {
                    let _ = host.store().clear_timer(&match_id).await;
                }
                Err(e) => tracing::warn!(%match_id, error = %e, "could not fire a turn timer"),
            }
        }
    }
}

/// Once a second: refreshes the live-match gauge, and stores the records of
/// finished matches whose host died before storing them.
async fn housekeeping(records: RecordStream, host: Arc<MatchHost>) {
    let mut tick = tokio::time::interval(HOUSEKEEPING_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match host.store().live_matches().await {
            Ok(live) => metrics::gauge!(names::MATCHES_LIVE).set(live as f64),
            Err(e) => tracing::warn!(error = %e, "could not count live matches"),
        }
        let before =
            dashdice_proto::clock::now_ms().saturating_sub(RECORD_GRACE.as_millis() as u64);
        let stale = match host.store().unrecorded(before, 100).await {
            Ok(stale) => stale,
            Err(e) => {
                tracing::warn!(error = %e, "could not list unrecorded matches");
                continue;
            }
        };
        for match_id in stale {
            match host.record(&match_id).await {
                Ok(record) => {
                    if records.store(&record).await.is_ok() {
                        let _ = host.store().recorded(&match_id).await;
                        tracing::info!(%match_id, "stored a record its host left behind");
                    }
                }
                Err(MatchError::UnknownMatch(_)) => {
                    tracing::error!(%match_id, "a finished match expired before its record was stored");
                    let _ = host.store().recorded(&match_id).await;
                }
                Err(e) => tracing::warn!(%match_id, error = %e, "could not rebuild a match record"),
            }
        }
    }
}
