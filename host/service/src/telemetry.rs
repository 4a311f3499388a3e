//! Logs, traces and metrics for every role.
//!
//! - **Logs**: `tracing` to stderr, filtered by `RUST_LOG` (default `warn`).
//! - **Traces**: with `OTEL_EXPORTER_OTLP_ENDPOINT` set (for example
//!   `http://otel-collector:4317`), every `dashdice` span at `info` and above
//!   is exported over OTLP/gRPC in batches, and [`dashdice_proto::bus`] carries the
//!   trace context in NATS headers from role to role.
//! - **Metrics**: the `metrics` facade, exported for Prometheus on
//!   `--metrics-addr` (see [`serve_metrics`]). Names are listed in
//!   [`names`], so dashboards have one place to look.

use std::net::SocketAddr;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Every metric dashdice exports.
pub mod names {
    /// Counter, by `endpoint` and `outcome` (`ok` or the error code).
    pub const MATCH_REQUESTS: &str = "dashdice_match_requests_total";
    /// Histogram (seconds) of a match request's handling, by `endpoint`.
    pub const MATCH_REQUEST_SECONDS: &str = "dashdice_match_request_seconds";
    /// Counter of matches started, by `mode`.
    pub const MATCHES_CREATED: &str = "dashdice_matches_created_total";
    /// Counter of matches ended, by `mode`.
    pub const MATCHES_FINISHED: &str = "dashdice_matches_finished_total";
    /// Gauge: matches live in Redis (every live match has a turn timer).
    pub const MATCHES_LIVE: &str = "dashdice_matches_live";
    /// Counter of turn timers this host fired, by `action` (timeout, forfeit).
    pub const TIMERS_FIRED: &str = "dashdice_turn_timers_fired_total";
    /// Counter of compare-and-set conflicts retried.
    pub const CAS_RETRIES: &str = "dashdice_match_cas_retries_total";
    /// Counter of matches this host ended because their players were gone
    /// past the reconnect window, by `outcome` (`forfeit`: one left and
    /// forfeits; `void`: every player left).
    pub const MATCHES_ABANDONED: &str = "dashdice_matches_abandoned_total";
    /// Counter of match record writes tried again after a failure (a NATS
    /// restart, JetStream recovering), before the sweep is left with them.
    pub const RECORD_RETRIES: &str = "dashdice_match_record_retries_total";
    // `dashdice_mode_faults_total` (mode calls stopped by the sandbox or
    // failing, by `mode` and `kind`) is counted where faults are classified:
    // `dashdice_runtime::MODE_FAULTS`.
    /// Counter of matchmaker requests, by `endpoint` and `outcome`.
    pub const QUEUE_REQUESTS: &str = "dashdice_queue_requests_total";
    /// Histogram (seconds) of a matchmaker request's handling, by `endpoint`.
    pub const QUEUE_REQUEST_SECONDS: &str = "dashdice_queue_request_seconds";
    /// Gauge: tickets waiting, by `mode` and `kind`.
    pub const QUEUE_TICKETS: &str = "dashdice_queue_tickets";
    /// Counter of matches the matchmaker made, by `kind` (`quick`, `ranked`,
    /// or for private matches and rematches `invite`, `rematch`) and
    /// `opponent` (`human` or `bot`).
    pub const MATCHES_MADE: &str = "dashdice_matchmaker_matches_total";
    /// Histogram (seconds): how long tickets waited before their match.
    pub const TIME_TO_MATCH_SECONDS: &str = "dashdice_matchmaker_wait_seconds";
    /// Counter of pairs put back because the match could not be created.
    pub const REQUEUED: &str = "dashdice_matchmaker_requeued_total";
    /// Counter of finished matches whose record could not be stored yet (a
    /// sweeper retries them).
    pub const RECORDS_PENDING: &str = "dashdice_match_records_failed_total";
    /// Counter of archiver requests (`dd.archive.*`), by `endpoint` and `outcome`.
    pub const ARCHIVE_REQUESTS: &str = "dashdice_archive_requests_total";
    /// Histogram (seconds) of an archiver request, by `endpoint`.
    pub const ARCHIVE_REQUEST_SECONDS: &str = "dashdice_archive_request_seconds";
    /// Counter of match records the archiver handled, by `outcome`
    /// (`archived`, `duplicate`, `failed`, `malformed`).
    pub const ARCHIVED_RECORDS: &str = "dashdice_archiver_records_total";
    /// Histogram (seconds) of archiving one record in Firestore.
    pub const ARCHIVE_WRITE_SECONDS: &str = "dashdice_archiver_write_seconds";
    /// Gauge: records the archivers have yet to archive (the consumer's
    /// pending plus unacknowledged messages): the archive's lag.
    pub const ARCHIVE_PENDING: &str = "dashdice_archiver_pending_records";
    /// Counter of presence requests (`dd.presence.*`), by `endpoint` and `outcome`.
    pub const PRESENCE_REQUESTS: &str = "dashdice_presence_requests_total";
    /// Histogram (seconds) of a presence request, by `endpoint`.
    pub const PRESENCE_REQUEST_SECONDS: &str = "dashdice_presence_request_seconds";
    /// Counter of presence changes published, by `status`.
    pub const PRESENCE_CHANGES: &str = "dashdice_presence_changes_total";
    /// Gauge: users online or away, by `region` (read at each sweep).
    pub const PRESENCE_ONLINE: &str = "dashdice_presence_online_users";
    /// Counter of connections the sweeper expired (their gateway stopped
    /// sending heartbeats).
    pub const PRESENCE_EXPIRED: &str = "dashdice_presence_expired_connections_total";
    /// Counter of queue tickets and invite codes given up because their
    /// player had no live connection past the grace.
    pub const PRESENCE_TICKETS_DROPPED: &str = "dashdice_presence_tickets_dropped_total";
    /// Counter of friends changes (`dd.archive.friends.*`), by `verb` and `outcome`.
    pub const FRIEND_CHANGES: &str = "dashdice_friend_changes_total";
    /// Counter of direct invites, by `outcome` (`sent`, `accepted`, `declined`, `expired`,
    /// `withdrawn`: its host left).
    pub const DIRECT_INVITES: &str = "dashdice_direct_invites_total";
    /// Gauge: presence subscriptions a gateway holds (one per followed user,
    /// shared by its sessions).
    pub const GATEWAY_PRESENCE_FOLLOWS: &str = "dashdice_gateway_presence_follows";
    /// Counter of gateway HTTP requests, by `route` and `status`.
    pub const GATEWAY_REQUESTS: &str = "dashdice_gateway_requests_total";
    /// Histogram (seconds) of a gateway HTTP request, by `route`.
    pub const GATEWAY_REQUEST_SECONDS: &str = "dashdice_gateway_request_seconds";
    /// Counter of refusals the gateway answered, by `code`.
    pub const GATEWAY_REJECTIONS: &str = "dashdice_gateway_rejections_total";
    /// Gauge: open WebSocket sessions.
    pub const GATEWAY_WS_SESSIONS: &str = "dashdice_gateway_ws_sessions";
    /// Counter of WebSocket requests, by `type` and `outcome`.
    pub const GATEWAY_WS_MESSAGES: &str = "dashdice_gateway_ws_messages_total";
    /// Histogram (seconds) of a WebSocket request, by `type`.
    pub const GATEWAY_WS_MESSAGE_SECONDS: &str = "dashdice_gateway_ws_message_seconds";
    /// Counter of sessions the gateway closed on the client, by `reason`
    /// (`too_slow`, `frame_too_big`).
    pub const GATEWAY_WS_DROPPED: &str = "dashdice_gateway_ws_dropped_total";
    /// Counter of TCP connections the gateway closed before serving them,
    /// by `reason` (`unverified_per_ip`: over the cap on connections from
    /// one IP without a verified token; `handshake_timeout`: no complete
    /// request head in time).
    pub const GATEWAY_CONNECTIONS_CLOSED: &str = "dashdice_gateway_connections_closed_total";
    /// Counter of live match events found missing (and fetched again).
    pub const GATEWAY_EVENT_GAPS: &str = "dashdice_gateway_event_gaps_total";
    /// Counter of notification requests the notifier handled, by `kind` and
    /// `outcome` (`stored`, `duplicate`, `expired`, `dropped_online`,
    /// `malformed`, `failed`: to come again).
    pub const NOTIFY_REQUESTS: &str = "dashdice_notify_requests_total";
    /// Histogram (seconds) of handling one notification request (stored,
    /// told, pushed), by `kind`.
    pub const NOTIFY_SECONDS: &str = "dashdice_notify_request_seconds";
    /// Counter of pushes, by `outcome`: per device `sent`, `unregistered`,
    /// `gave_up`; per notification `skipped` (no FCM configured),
    /// `no_devices`, `collapsed`, `limited` (the per-user cap), `duplicate`.
    pub const NOTIFY_PUSHES: &str = "dashdice_notify_pushes_total";
    /// Counter of `your_turn` requests dropped because the player was online.
    pub const NOTIFY_YOUR_TURN_DROPPED: &str = "dashdice_notify_your_turn_dropped_total";
    /// Counter of device tokens removed because FCM said they are dead.
    pub const NOTIFY_TOKENS_REMOVED: &str = "dashdice_notify_tokens_removed_total";
    /// Counter of notifier requests (`dd.notify.*`: inbox, devices,
    /// broadcast), by `endpoint` and `outcome`.
    pub const NOTIFY_INBOX_REQUESTS: &str = "dashdice_notify_inbox_requests_total";
    /// Histogram (seconds) of a notifier request, by `endpoint`.
    pub const NOTIFY_INBOX_REQUEST_SECONDS: &str = "dashdice_notify_inbox_request_seconds";
    /// Counter of users broadcasts were queued for.
    pub const NOTIFY_BROADCAST_USERS: &str = "dashdice_notify_broadcast_users_total";
}

/// Keeps the trace pipeline alive; flushes it when dropped.
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        let _ = self.provider.shutdown();
    }
}

/// Sets up logs and traces for the process (`service` names it in traces).
/// Call once, inside the Tokio runtime.
///
/// Traces are on only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set: building
/// spans for nobody cost a third of the match host's throughput (measured
/// with `dashdice bench match-host`). The standard `OTEL_TRACES_SAMPLER` and
/// `OTEL_TRACES_SAMPLER_ARG` variables choose the sampling.
pub fn init(service: &str) -> Option<Telemetry> {
    let endpoint = std::env::var(opentelemetry_otlp::OTEL_EXPORTER_OTLP_ENDPOINT)
        .ok()
        .filter(|e| !e.is_empty());
    let Some(endpoint) = endpoint else {
        init_logs();
        return None;
    };
    use opentelemetry_otlp::WithExportConfig;
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint.clone())
        .build()
    {
        Ok(exporter) => exporter,
        Err(e) => {
            init_logs();
            tracing::error!(%endpoint, error = %e, "not exporting traces");
            return None;
        }
    };
    let provider = SdkTracerProvider::builder()
        .with_resource(
            Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .with_batch_exporter(exporter)
        .build();
    install(provider.clone());
    Some(Telemetry { provider })
}

/// Logs only, for the command-line tools.
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Installs the process-wide subscriber: logs to stderr, and dashdice's spans
/// to `provider`. (Tests pass a provider with an in-memory exporter.)
pub fn install(provider: SdkTracerProvider) {
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")));
    let traces = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("dashdice"))
        .with_filter(EnvFilter::new("dashdice=info"));
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
}

#[derive(Debug, thiserror::Error)]
#[error("cannot serve metrics on {addr}: {detail}")]
pub struct MetricsError {
    addr: SocketAddr,
    detail: String,
}

/// Latency and wait buckets (seconds): 250 µs to a minute.
const BUCKETS: &[f64] = &[
    0.000_25, 0.000_5, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    30.0, 60.0,
];

/// The process's Prometheus recorder, installed on first use, for a role
/// that serves metrics on its own routes (the gateway's `/api/v1/metrics`).
/// `None` if another recorder was installed first.
pub fn prometheus() -> Option<metrics_exporter_prometheus::PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<metrics_exporter_prometheus::PrometheusHandle>> =
        std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let handle = metrics_exporter_prometheus::PrometheusBuilder::new()
                .set_buckets(BUCKETS)
                .and_then(|b| b.install_recorder())
                .ok()?;
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(std::time::Duration::from_secs(5));
                        upkeep.run_upkeep();
                    }
                })
                .ok()?;
            Some(handle)
        })
        .clone()
}

/// Serves Prometheus metrics at `http://<addr>/metrics` (any path answers).
/// Must be called inside the Tokio runtime.
pub fn serve_metrics(addr: SocketAddr) -> Result<(), MetricsError> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .set_buckets(BUCKETS)
        .and_then(|b| b.install())
        .map_err(|e| MetricsError {
            addr,
            detail: e.to_string(),
        })
}
