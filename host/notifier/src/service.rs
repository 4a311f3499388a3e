//! The notifier role on NATS: the only module of this crate that touches
//! it.
//!
//! - The notification stream ([`bus::NOTIFY_STREAM`]), read through the
//!   durable pull consumer [`bus::NOTIFIER_CONSUMER`] shared by every
//!   notifier, [`Options::max_in_flight`] requests at once. Each request is
//!   handled by [`Notifier::handle`] and acknowledged only once it is fully
//!   handled (kept, told to the sockets, pushed or given up). One that
//!   failed for a passing reason (Redis down) is negatively acknowledged
//!   with a delay growing with its deliveries, so it comes again; one that
//!   can never be handled (not JSON, or failing the checks) is terminated:
//!   counted (`outcome="malformed"`), logged, never delivered again.
//! - What users are told goes on their notice subject
//!   ([`bus::user_notify`]): [`Notice::Notification`] for a new
//!   notification, [`Notice::InboxChanged`] after a read or a delete (so
//!   their other tabs update).
//! - `dd.notify.{inbox.*,devices.*,broadcast}` on the shared endpoint loop
//!   (queue group `notifier`). A broadcast is answered as soon as its
//!   audience is known ([`Broadcasted`]: how many users); its requests
//!   (`<broadcast id>:<uid>`, kind `broadcast`) then go onto the stream in
//!   the background, paced at [`Options::broadcast_per_second`], so each is
//!   durable and handled like any other. Sending a broadcast again reaches
//!   nobody twice: the stream drops a repeated id within its duplicate
//!   window and the inbox keeps one notification per id.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use dashdice_proto::ErrorCode;
use dashdice_proto::bus::{self, Answer, notify_endpoint as e};
use dashdice_proto::client::Notifications;
use dashdice_proto::notify::{
    Broadcast, Broadcasted, InboxDelete, InboxList, InboxMark, InboxMarkAll, InboxUnread,
    NotificationKind, NotifyRequest, RegisterDevice, Unread, UnregisterDevice, check_data,
    check_text,
};
use dashdice_proto::queue::Notice;
use dashdice_service::endpoints::{Endpoints, Service, serve};
use dashdice_service::telemetry::names;
use futures_util::StreamExt;
use governor::{Quota, RateLimiter};
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::delivery::{DeliveryError, Notifier, RequestError, Sockets};

/// Largest request accepted (a broadcast with its data is the largest).
pub const MAX_REQUEST_BYTES: usize = 16 << 10;
/// The longest broadcast id: with `:` and a uid it stays a notification id.
pub const MAX_BROADCAST_ID: usize = 64;

/// The notifier's micro service.
pub const SERVICE: Service = Service {
    name: bus::NOTIFIER_SERVICE,
    description: "DashDice notifications: inboxes, devices for pushes, operators' broadcasts",
    queue_group: bus::NOTIFIER_QUEUE_GROUP,
    group: bus::NOTIFY_GROUP,
    endpoints: &[
        e::INBOX_LIST,
        e::INBOX_UNREAD,
        e::INBOX_READ,
        e::INBOX_READ_ALL,
        e::INBOX_DELETE,
        e::DEVICES_REGISTER,
        e::DEVICES_UNREGISTER,
        e::BROADCAST,
    ],
    requests_metric: names::NOTIFY_INBOX_REQUESTS,
    seconds_metric: names::NOTIFY_INBOX_REQUEST_SECONDS,
    max_in_flight: None,
};

/// How the role runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Broadcast requests put on the stream per second at most (all
    /// broadcasts of this instance together).
    pub broadcast_per_second: u32,
    /// Requests pulled from the stream per batch.
    pub consumer_batch: usize,
    /// Requests handled at once.
    pub max_in_flight: usize,
    /// How long a delivered request may go unacknowledged before the
    /// server hands it to another notifier (pushes retry for a while).
    pub ack_wait: Duration,
    /// A failed request comes again after this, doubling with each
    /// delivery up to `retry_max`.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            broadcast_per_second: 500,
            consumer_batch: 64,
            max_in_flight: 32,
            ack_wait: Duration::from_secs(120),
            retry_min: Duration::from_millis(500),
            retry_max: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("nats: {0}")]
pub struct ServiceError(pub String);

fn nats_error(e: impl std::fmt::Display) -> ServiceError {
    ServiceError(e.to_string())
}

/// Runs the notifier role on `client` until the connection closes: the
/// stream's consumer, the endpoints and the broadcaster.
pub async fn run(
    client: async_nats::Client,
    notifier: Notifier,
    options: Options,
) -> Result<(), ServiceError> {
    run_until(client, notifier, options, std::future::pending()).await
}

/// [`run`] until `stop` resolves too; then the consumer and the
/// broadcaster stop (requests being handled are dropped unacknowledged and
/// come again), and endpoint requests being answered finish on their own
/// tasks.
pub async fn run_until(
    client: async_nats::Client,
    notifier: Notifier,
    options: Options,
    stop: impl Future<Output = ()>,
) -> Result<(), ServiceError> {
    let consumer = consumer(&client, &options).await.map_err(ServiceError)?;
    let (broadcasts, queued) = tokio::sync::mpsc::unbounded_channel();
    let role = Arc::new(Role {
        notifier,
        sockets: NatsSockets(client.clone()),
        notifications: Notifications::new(client.clone()),
        broadcasts,
        options,
    });
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(consume(role.clone(), consumer));
    tasks.spawn(broadcaster(role.clone(), queued));
    let served = tokio::select! {
        served = serve(client, SERVICE, Arc::new(Requests(role))) => served.map_err(nats_error),
        () = stop => Ok(()),
    };
    tasks.abort_all();
    served
}

/// The notifiers' shared durable consumer of the notification stream.
async fn consumer(client: &async_nats::Client, options: &Options) -> Result<PullConsumer, String> {
    let js = jetstream::new(client.clone());
    let stream = bus::open_notify_stream(&js).await?;
    stream
        .get_or_create_consumer(
            bus::NOTIFIER_CONSUMER,
            jetstream::consumer::pull::Config {
                durable_name: Some(bus::NOTIFIER_CONSUMER.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: options.ack_wait,
                max_ack_pending: 4_096,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
}

/// What the consumer, the endpoints and the broadcaster share.
struct Role {
    notifier: Notifier,
    sockets: NatsSockets,
    notifications: Notifications,
    broadcasts: tokio::sync::mpsc::UnboundedSender<Vec<NotifyRequest>>,
    options: Options,
}

/// Users' notice subjects.
struct NatsSockets(async_nats::Client);

impl Sockets for NatsSockets {
    async fn tell(&self, uid: &str, notice: &Notice) {
        let subject = bus::user_notify(uid);
        let body = match serde_json::to_vec(notice) {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(%subject, error = %e, "cannot encode a notice");
                return;
            }
        };
        let headers = bus::trace_headers(&tracing::Span::current().context());
        // Lost if NATS is down: the inbox has it, and the next page shows it.
        if let Err(e) = self
            .0
            .publish_with_headers(subject.clone(), headers, body.into())
            .await
        {
            tracing::warn!(%subject, error = %e, "cannot tell a user");
        }
    }
}

/// Handles requests as they come, [`Options::max_in_flight`] at once,
/// forever (a broken pull is opened again).
async fn consume(role: Arc<Role>, consumer: PullConsumer) {
    loop {
        let messages = match consumer
            .stream()
            .max_messages_per_batch(role.options.consumer_batch.max(1))
            .messages()
            .await
        {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read notification requests; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let role = &role;
        messages
            .take_while(|m| std::future::ready(m.is_ok()))
            .filter_map(|m| std::future::ready(m.ok()))
            .for_each_concurrent(role.options.max_in_flight.max(1), |message| {
                handle(role, message)
            })
            .await;
    }
}

/// One delivered request: handled and acknowledged, terminated if it can
/// never be handled, or asked for again later.
async fn handle(role: &Role, message: jetstream::Message) {
    let started = Instant::now();
    let request: NotifyRequest = match serde_json::from_slice(&message.payload) {
        Ok(request) => request,
        Err(e) => {
            tracing::warn!(error = %e, subject = %message.subject, "a malformed notification request; dropped");
            metrics::counter!(names::NOTIFY_REQUESTS, "kind" => "unknown", "outcome" => "malformed")
                .increment(1);
            let _ = message.ack_with(AckKind::Term).await;
            return;
        }
    };
    let kind = request.kind.as_str();
    let span = tracing::info_span!(
        "notify request",
        kind,
        uid = %request.uid,
        id = %request.id,
        outcome = tracing::field::Empty
    );
    let _ = span.set_parent(bus::trace_context(message.headers.as_ref()));
    let handled = role
        .notifier
        .handle(&request, &role.sockets)
        .instrument(span.clone())
        .await;
    match handled {
        Ok(outcome) => {
            span.record("outcome", outcome.as_str());
            metrics::counter!(names::NOTIFY_REQUESTS, "kind" => kind, "outcome" => outcome.as_str())
                .increment(1);
            metrics::histogram!(names::NOTIFY_SECONDS, "kind" => kind)
                .record(started.elapsed().as_secs_f64());
            if let Err(e) = message.double_ack().await {
                // The request comes again and is a duplicate then.
                tracing::warn!(id = %request.id, error = %e, "could not acknowledge a notification request");
            }
        }
        Err(DeliveryError::Invalid(reason)) => {
            span.record("outcome", "malformed");
            tracing::warn!(id = %request.id, kind, %reason, "an invalid notification request; dropped");
            metrics::counter!(names::NOTIFY_REQUESTS, "kind" => kind, "outcome" => "malformed")
                .increment(1);
            let _ = message.ack_with(AckKind::Term).await;
        }
        Err(e @ (DeliveryError::Store(_) | DeliveryError::PushPending)) => {
            span.record("outcome", "failed");
            metrics::counter!(names::NOTIFY_REQUESTS, "kind" => kind, "outcome" => "failed")
                .increment(1);
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1);
            let delay = retry_delay(&role.options, delivered);
            tracing::warn!(id = %request.id, error = %e, delivered, retry_in_ms = delay.as_millis() as u64, "could not handle a notification request; it will come again");
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
        }
    }
}

/// `retry_min` doubled per earlier delivery, at most `retry_max`.
fn retry_delay(options: &Options, delivered: i64) -> Duration {
    let doublings = u32::try_from(delivered.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
    options
        .retry_min
        .saturating_mul(1 << doublings)
        .min(options.retry_max)
}

/// Puts queued broadcasts' requests onto the stream, paced.
async fn broadcaster(
    role: Arc<Role>,
    mut queued: tokio::sync::mpsc::UnboundedReceiver<Vec<NotifyRequest>>,
) {
    let rate = NonZeroU32::new(role.options.broadcast_per_second).unwrap_or(NonZeroU32::MIN);
    let pace = RateLimiter::direct(Quota::per_second(rate));
    let in_flight = usize::try_from(rate.get()).unwrap_or(1).clamp(1, 64);
    while let Some(requests) = queued.recv().await {
        let pace = &pace;
        let role = &role;
        futures_util::stream::iter(requests)
            .for_each_concurrent(in_flight, |request| async move {
                pace.until_ready().await;
                if let Err(e) = role.notifications.send(&request).await {
                    tracing::warn!(id = %request.id, error = %e, "a broadcast did not reach the stream for one user");
                }
            })
            .await;
    }
}

fn respond<T: Serialize>(result: Result<T, RequestError>) -> Answer {
    if let Err(e @ RequestError::Store(_)) = &result {
        tracing::warn!(error = %e, "a notifier request failed");
    }
    bus::answer(result, RequestError::code)
}

/// The role on the endpoint loop.
struct Requests(Arc<Role>);

impl Requests {
    /// Answers an inbox change, and tells the user's other tabs.
    async fn changed(&self, uid: &str, result: Result<Unread, RequestError>) -> Answer {
        if let Ok(Unread { unread }) = &result {
            self.0
                .sockets
                .tell(uid, &Notice::InboxChanged { unread: *unread })
                .await;
        }
        respond(result)
    }

    /// Checks a broadcast, finds its audience and queues its requests.
    async fn broadcast(&self, b: &Broadcast) -> Result<Broadcasted, RequestError> {
        if b.id.is_empty() || b.id.len() > MAX_BROADCAST_ID || b.id.contains(char::is_whitespace) {
            return Err(RequestError::BadRequest(format!(
                "a broadcast id is 1 to {MAX_BROADCAST_ID} bytes without spaces"
            )));
        }
        check_text(&b.title, &b.body).map_err(RequestError::BadRequest)?;
        check_data(&b.data).map_err(RequestError::BadRequest)?;
        let uids = self.0.notifier.audience(&b.audience).await?;
        let users = uids.len() as u64;
        let created_ms = self.0.notifier.now_ms();
        let requests: Vec<NotifyRequest> = uids
            .into_iter()
            .map(|uid| NotifyRequest {
                id: format!("{}:{uid}", b.id),
                uid,
                kind: NotificationKind::Broadcast,
                data: b.data.clone(),
                created_ms,
                title: Some(b.title.clone()),
                body: Some(b.body.clone()),
            })
            .collect();
        if !requests.is_empty() && self.0.broadcasts.send(requests).is_err() {
            return Err(RequestError::Unavailable(
                "the notifier is stopping; send the broadcast again".to_owned(),
            ));
        }
        tracing::info!(id = %b.id, users, "a broadcast is queued");
        metrics::counter!(names::NOTIFY_BROADCAST_USERS).increment(users);
        Ok(Broadcasted { users })
    }
}

impl Endpoints for Requests {
    fn span(&self, endpoint: &'static str) -> tracing::Span {
        tracing::info_span!(
            "notifier request",
            endpoint,
            outcome = tracing::field::Empty
        )
    }

    async fn handle(&self, endpoint: &'static str, payload: &[u8]) -> Answer {
        let n = &self.0.notifier;
        let max = MAX_REQUEST_BYTES;
        match endpoint {
            e::INBOX_LIST => match bus::decode_request::<InboxList>(payload, max) {
                Ok(r) => respond(n.list(&r).await),
                Err(refusal) => refusal,
            },
            e::INBOX_UNREAD => match bus::decode_request::<InboxUnread>(payload, max) {
                Ok(r) => respond(n.unread(&r.uid).await),
                Err(refusal) => refusal,
            },
            e::INBOX_READ => match bus::decode_request::<InboxMark>(payload, max) {
                Ok(r) => self.changed(&r.uid, n.mark_read(&r).await).await,
                Err(refusal) => refusal,
            },
            e::INBOX_READ_ALL => match bus::decode_request::<InboxMarkAll>(payload, max) {
                Ok(r) => self.changed(&r.uid, n.mark_all_read(&r.uid).await).await,
                Err(refusal) => refusal,
            },
            e::INBOX_DELETE => match bus::decode_request::<InboxDelete>(payload, max) {
                Ok(r) => self.changed(&r.uid, n.delete(&r).await).await,
                Err(refusal) => refusal,
            },
            e::DEVICES_REGISTER => match bus::decode_request::<RegisterDevice>(payload, max) {
                Ok(r) => respond(n.register_device(&r).await),
                Err(refusal) => refusal,
            },
            e::DEVICES_UNREGISTER => match bus::decode_request::<UnregisterDevice>(payload, max) {
                Ok(r) => respond(n.unregister_device(&r).await),
                Err(refusal) => refusal,
            },
            e::BROADCAST => match bus::decode_request::<Broadcast>(payload, max) {
                Ok(r) => respond(self.broadcast(&r).await),
                Err(refusal) => refusal,
            },
            other => bus::refuse(
                ErrorCode::UnknownEndpoint,
                format!("the notifier has no endpoint {other:?}"),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_up_to_the_most() {
        let options = Options::default();
        assert_eq!(retry_delay(&options, 1), options.retry_min);
        assert_eq!(retry_delay(&options, 2), options.retry_min * 2);
        assert_eq!(retry_delay(&options, 1_000), options.retry_max);
        assert_eq!(retry_delay(&options, -3), options.retry_min);
    }
}
