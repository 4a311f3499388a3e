//! The gateway role (`dashdice gateway`): players' only door. REST under
//! `/api/v1`, one WebSocket per client at `/api/v1/ws`, and the web page at
//! `/`; all of it bridged to the workers over NATS. The client API is
//! specified in `PROTOCOL.md` beside this file.
//!
//! Architecture invariant: only this crate knows HTTP, WebSocket and the
//! client JSON, and it links no wasmtime (`tests/tidy.rs`). It holds no game state: any number of gateways run side by
//! side, and a client may reconnect to any of them.
//!
//! - [`auth`]: who is asking (Firebase and dev tokens, guests).
//! - [`limits`]: how much they may ask (rates, sizes, CORS).
//! - [`listen`]: the accept loop (handshake timeout, the cap on unverified
//!   connections per IP, graceful stop).
//! - [`rest`] and [`ws`]: the two ways in; [`protocol`]: their JSON.
//! - [`backend`]: the workers, as typed calls (the only user of the bus).
//! - [`social`]: presence (this gateway's connections and heartbeats, the
//!   shared subscriptions to friends' presence), who may see whom, friends
//!   and direct invites.
//! - [`inbox`]: the player's notifications and devices (the notifier).
//! - [`page`]: the web page.

pub mod auth;
pub mod backend;
pub mod error;
pub mod inbox;
pub mod limits;
pub mod listen;
pub mod page;
pub mod protocol;
pub mod rest;
pub mod social;
pub mod ws;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tokio::sync::watch;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub use auth::{Auth, AuthConfig};
pub use backend::Backend;
pub use error::ApiError;
pub use limits::Limits;

use dashdice_service::telemetry::names;

/// What a gateway is told at start.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    pub auth: AuthConfig,
    pub limits: Limits,
    /// Origins whose pages may call the API (`*`: any). The gateway's own
    /// page is always allowed.
    pub cors_origins: Vec<String>,
    /// The region of a join that names none.
    pub default_region: String,
    /// Take the client IP from `X-Forwarded-For` (behind a trusted proxy).
    pub trust_forwarded_for: bool,
}

/// Everything a request handler may need; shared by all of them.
pub struct Gateway {
    pub backend: Backend,
    pub auth: Auth,
    pub rates: limits::RateLimits,
    pub config: GatewayConfig,
    redis: Option<dashdice_store::RedisProbe>,
    metrics: Option<PrometheusHandle>,
    /// The playable modes: built-in ones, and published ones as the
    /// catalog changes (`GET /modes`, the `modes` message).
    pub modes: dashdice_catalog::ModeBook,
    /// Set to `true` when the gateway stops: WebSocket sessions close (1001).
    closing: watch::Sender<bool>,
    /// This gateway's signed-in connections, heartbeated to presence.
    pub connections: social::Connections,
    /// The users this gateway's sessions follow, one subscription each.
    pub follows: Arc<social::Follows>,
    /// Connections that have not shown a verified token yet, by peer IP.
    pub unverified: Arc<listen::Unverified>,
}

impl Gateway {
    pub fn new(
        config: GatewayConfig,
        nats: async_nats::Client,
        redis: Option<dashdice_store::RedisProbe>,
        metrics: Option<PrometheusHandle>,
    ) -> Result<Self, auth::AuthSetupError> {
        // The JWKS client needs the process's TLS provider chosen.
        dashdice_service::install_crypto();
        Ok(Gateway {
            backend: Backend::new(nats, config.limits.request_timeout),
            auth: Auth::new(&config.auth)?,
            rates: limits::RateLimits::new(&config.limits),
            config,
            redis,
            metrics,
            modes: dashdice_catalog::ModeBook::new([]),
            closing: watch::channel(false).0,
            connections: social::Connections::new(),
            follows: Arc::new(social::Follows::default()),
            unverified: Arc::new(listen::Unverified::default()),
        })
    }

    /// Lists the modes `book` makes playable (by default: none known).
    pub fn with_modes(mut self, book: dashdice_catalog::ModeBook) -> Self {
        self.modes = book;
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.config.limits
    }

    /// Tells every open WebSocket session to close.
    pub fn close_sessions(&self) {
        self.closing.send_replace(true);
    }

    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.closing.subscribe()
    }

    /// The client's address: the peer, or with `trust_forwarded_for` the
    /// first `X-Forwarded-For` entry.
    fn client_ip(&self, peer: Option<SocketAddr>, headers: &HeaderMap) -> IpAddr {
        let forwarded = self
            .config
            .trust_forwarded_for
            .then(|| headers.get("x-forwarded-for"))
            .flatten()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(|v| v.trim().parse().ok());
        forwarded
            .or(peer.map(|p| p.ip()))
            .unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }
}

/// Every route of the gateway.
pub fn router(gateway: Arc<Gateway>) -> Router {
    let limits = gateway.limits().clone();
    let api = Router::new()
        .route("/health", get(rest::health))
        .route("/ready", get(rest::ready))
        .route("/metrics", get(rest::metrics))
        .route("/auth/guest", post(rest::guest))
        .route("/me", get(rest::me))
        .route("/modes", get(rest::modes))
        .route("/queue/join", post(rest::join))
        .route("/queue/leave", delete(rest::leave))
        .route("/queue/status", get(rest::status))
        .route("/matches", post(rest::create_invite))
        .route("/matches/join", post(rest::join_code))
        .route("/matches/{id}", get(rest::get_match))
        .route("/matches/{id}/rematch", post(rest::rematch))
        .route("/matches/{id}/{action}", post(rest::act))
        .route("/matches/{id}/events", get(rest::events))
        .route("/users/{uid}", get(rest::profile).put(rest::rename))
        .route("/users/{uid}/matches", get(rest::history))
        .route("/leaderboards/{mode}", get(rest::leaderboard))
        .route("/presence", get(rest::presence))
        .route("/friends", get(rest::friends))
        .route("/friends/{uid}", delete(rest::remove_friend))
        .route("/friends/{uid}/{verb}", post(rest::befriend))
        .route("/invites", post(rest::invite_friend))
        .route("/invites/{code}/decline", post(rest::decline_invite))
        .route("/regions", get(rest::regions))
        .route("/notifications", get(rest::notifications))
        .route("/notifications/unread", get(rest::unread))
        .route(
            "/notifications/read-all",
            post(rest::notifications_read_all),
        )
        .route("/notifications/{id}", delete(rest::notification_delete))
        .route("/notifications/{id}/read", post(rest::notification_read))
        .route(
            "/users/me/devices",
            post(rest::register_device).delete(rest::unregister_device),
        )
        .route("/ws", get(ws::upgrade))
        .method_not_allowed_fallback(rest::method_not_allowed)
        .layer(limits::cors(&gateway.config.cors_origins));
    Router::new()
        .nest("/api/v1", api)
        .merge(page::routes().method_not_allowed_fallback(rest::method_not_allowed))
        .fallback(rest::not_found)
        .layer(DefaultBodyLimit::max(limits.max_message_bytes))
        .layer(middleware::from_fn_with_state(gateway.clone(), guard))
        .with_state(gateway)
}

/// Serves until `stop` resolves, then closes WebSocket sessions and waits
/// for requests in flight.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<Gateway>,
    stop: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(gateway.clone());
    let sweeper = {
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_secs(60));
            loop {
                every.tick().await;
                gateway.rates.forget_idle();
            }
        })
    };
    let heartbeats = tokio::spawn(social::heartbeats(gateway.clone()));
    let listen = listen::Listen {
        handshake_timeout: gateway.limits().handshake_timeout,
        max_unauthenticated_per_ip: gateway.limits().max_unauthenticated_per_ip,
        unverified: gateway.unverified.clone(),
    };
    let closing = gateway.clone();
    listen::accept_loop(listener, app, listen, async move {
        stop.await;
        closing.close_sessions();
    })
    .await;
    sweeper.abort();
    heartbeats.abort();
    Ok(())
}

struct HttpHeaders<'a>(&'a HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

/// Around every request: the per-IP rate limit, a span (joining the
/// caller's W3C trace, if it sent one), and metrics by route and status.
async fn guard(State(gateway): State<Arc<Gateway>>, request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    let ip = gateway.client_ip(peer, request.headers());
    let span = tracing::info_span!(
        "http request",
        method = %request.method(),
        route = %route,
        status = tracing::field::Empty,
    );
    let _ = span.set_parent(TraceContextPropagator::new().extract(&HttpHeaders(request.headers())));
    let response = match gateway.rates.check_ip(ip) {
        Err(refused) => refused.into_response(),
        Ok(()) => next.run(request).instrument(span.clone()).await,
    };
    let status = response.status().as_u16();
    span.record("status", status);
    metrics::counter!(names::GATEWAY_REQUESTS, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    metrics::histogram!(names::GATEWAY_REQUEST_SECONDS, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}
