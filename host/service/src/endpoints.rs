//! The one endpoint loop every NATS role serves its requests with.
//!
//! A role describes its micro service ([`Service`]) and answers decoded
//! requests ([`Endpoints`]); this module does the rest, the same way for
//! every role: one task per request, a span that joins the caller's trace
//! (W3C context from the NATS headers), load shedding past a bound on
//! requests in flight (refused at once with `unavailable`, nothing done),
//! the outcome recorded on the span and in two metrics (requests by
//! endpoint and outcome, latency by endpoint), and the reply.

use std::future::Future;
use std::sync::Arc;
use std::time::Instant;

use async_nats::service::ServiceExt;
use dashdice_proto::ErrorCode;
use dashdice_proto::bus::{self, Answer};
use futures_util::StreamExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// A NATS micro service, as `$SRV.INFO` shows it.
#[derive(Clone, Debug)]
pub struct Service {
    /// The service name (`$SRV.PING.<name>`).
    pub name: &'static str,
    pub description: &'static str,
    /// Every instance joins this queue group, so a request reaches one.
    pub queue_group: &'static str,
    /// The subject prefix of the endpoints.
    pub group: &'static str,
    /// The endpoints, relative to `group`.
    pub endpoints: &'static [&'static str],
    /// Counter of requests, by `endpoint` and `outcome`.
    pub requests_metric: &'static str,
    /// Histogram of request handling in seconds, by `endpoint`.
    pub seconds_metric: &'static str,
    /// At most this many requests to sheddable endpoints run at once; more
    /// are refused with `unavailable`. `None`: no bound.
    pub max_in_flight: Option<usize>,
}

/// What a role answers.
pub trait Endpoints: Send + Sync + 'static {
    /// The request's span (each role names its own, e.g. `match request`),
    /// with an `outcome` field left empty for the loop to record.
    fn span(&self, endpoint: &'static str) -> tracing::Span;

    /// Whether requests to `endpoint` may be refused when the service is
    /// at capacity (work that starts something new; never reads).
    fn sheddable(&self, endpoint: &'static str) -> bool {
        let _ = endpoint;
        false
    }

    /// Decodes and answers one request: the reply and its outcome (`ok`
    /// or the error code).
    fn handle(&self, endpoint: &'static str, payload: &[u8])
    -> impl Future<Output = Answer> + Send;
}

#[derive(Debug, thiserror::Error)]
#[error("nats: {0}")]
pub struct ServeError(pub String);

/// Serves `endpoints` as `service` on `client` until the connection closes.
pub async fn serve<E: Endpoints>(
    client: async_nats::Client,
    service: Service,
    endpoints: Arc<E>,
) -> Result<(), ServeError> {
    let nats = |e: async_nats::Error| ServeError(e.to_string());
    let started = client
        .service_builder()
        .description(service.description)
        .queue_group(service.queue_group)
        .start(service.name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(nats)?;
    let group = started.group(service.group);
    let bound = service
        .max_in_flight
        .unwrap_or(tokio::sync::Semaphore::MAX_PERMITS)
        .clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
    let in_flight = Arc::new(tokio::sync::Semaphore::new(bound));
    let mut loops = tokio::task::JoinSet::new();
    for &name in service.endpoints {
        let mut requests = group.endpoint(name).await.map_err(nats)?;
        let endpoints = endpoints.clone();
        let in_flight = in_flight.clone();
        let service = service.clone();
        loops.spawn(async move {
            let sheddable = service.max_in_flight.is_some() && endpoints.sheddable(name);
            while let Some(request) = requests.next().await {
                let permit = if sheddable {
                    match in_flight.clone().try_acquire_owned() {
                        Ok(permit) => Some(permit),
                        Err(_) => {
                            metrics::counter!(service.requests_metric, "endpoint" => name, "outcome" => ErrorCode::Unavailable.as_str())
                                .increment(1);
                            let (refusal, _) = bus::refuse(
                                ErrorCode::Unavailable,
                                format!("{} is at capacity; nothing was done, retry shortly", service.name),
                            );
                            let _ = request.respond(Ok(refusal)).await;
                            continue;
                        }
                    }
                } else {
                    None
                };
                let endpoints = endpoints.clone();
                let service = service.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    let started = Instant::now();
                    let span = endpoints.span(name);
                    // Joins the caller's trace, if the request carries one.
                    let _ = span.set_parent(bus::trace_context(request.message.headers.as_ref()));
                    let (body, outcome) = endpoints
                        .handle(name, &request.message.payload)
                        .instrument(span.clone())
                        .await;
                    span.record("outcome", outcome);
                    metrics::counter!(service.requests_metric, "endpoint" => name, "outcome" => outcome)
                        .increment(1);
                    metrics::histogram!(service.seconds_metric, "endpoint" => name)
                        .record(started.elapsed().as_secs_f64());
                    if let Err(e) = request.respond(Ok(body)).await {
                        tracing::warn!(endpoint = name, error = %e, "could not reply");
                    }
                });
            }
        });
    }
    while loops.join_next().await.is_some() {}
    Ok(())
}
