//! How much anyone may ask: rate limits per user and per IP (governor's
//! GCRA, keyed), size caps, timeouts, and the CORS allow-list.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::http::{HeaderValue, Method, header};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::ApiError;

/// Every limit the gateway enforces; each is a flag of `dashdice gateway`.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest REST body, and largest WebSocket message that is read.
    pub max_message_bytes: usize,
    /// Requests per second per user (REST and WebSocket together); bursts
    /// of twice that pass.
    pub user_per_second: u32,
    /// HTTP requests (including WebSocket upgrades and sign-ins) per second
    /// per client IP; bursts of twice that pass.
    pub ip_per_second: u32,
    /// WebSocket messages per second per connection; bursts of twice that.
    pub ws_messages_per_second: u32,
    /// A REST request's whole time, worker included.
    pub request_timeout: Duration,
    /// A WebSocket connection silent this long is closed.
    pub ws_idle: Duration,
    /// Messages queued for one WebSocket client before it counts as too
    /// slow and is dropped.
    pub ws_outbox: usize,
    /// Matches one connection may follow at once.
    pub ws_subscriptions: usize,
    /// A request head (line and headers) must arrive whole this soon after
    /// the connection is ready for one, or the connection is closed. Zero:
    /// no timeout.
    pub handshake_timeout: Duration,
    /// Connections one TCP peer address (an IPv6 one: its /64) may hold
    /// before one of their requests shows a verified token; past it new
    /// ones are closed at once. 0: no cap.
    pub max_unauthenticated_per_ip: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 8 << 10,
            user_per_second: 20,
            ip_per_second: 100,
            ws_messages_per_second: 20,
            request_timeout: Duration::from_secs(5),
            ws_idle: Duration::from_secs(60),
            ws_outbox: 256,
            ws_subscriptions: 8,
            handshake_timeout: Duration::from_secs(10),
            max_unauthenticated_per_ip: 64,
        }
    }
}

/// The largest WebSocket frame read at all: past it the connection closes
/// (1009). Messages between [`Limits::max_message_bytes`] and this are read
/// and refused with `too_large`, and the connection stays.
pub const WS_HARD_FRAME_LIMIT: usize = 1 << 20;

fn quota(per_second: u32) -> Quota {
    let rate = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(per_second.max(1).saturating_mul(2)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

/// The shared keyed limiters.
pub struct RateLimits {
    per_user: DefaultKeyedRateLimiter<String>,
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
    ws_per_second: u32,
}

impl RateLimits {
    pub fn new(limits: &Limits) -> Self {
        RateLimits {
            per_user: RateLimiter::keyed(quota(limits.user_per_second)),
            per_ip: RateLimiter::keyed(quota(limits.ip_per_second)),
            ws_per_second: limits.ws_messages_per_second,
        }
    }

    pub fn check_user(&self, user: &str) -> Result<(), ApiError> {
        // The key is cloned only when the user is new to the limiter.
        self.per_user
            .check_key(&user.to_owned())
            .map_err(|not_until| refused(&not_until))
    }

    pub fn check_ip(&self, ip: IpAddr) -> Result<(), ApiError> {
        self.per_ip
            .check_key(&ip)
            .map_err(|not_until| refused(&not_until))
    }

    /// A new connection's own message limiter.
    pub fn connection(&self) -> DefaultDirectRateLimiter {
        RateLimiter::direct(quota(self.ws_per_second))
    }

    /// Forgets keys that are back to a full burst, so the maps do not grow
    /// with every user and address ever seen. Called periodically.
    pub fn forget_idle(&self) {
        self.per_user.retain_recent();
        self.per_ip.retain_recent();
        self.per_user.shrink_to_fit();
        self.per_ip.shrink_to_fit();
    }
}

/// `rate_limited`, with the whole seconds until the next request may pass.
pub fn refused(not_until: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    ApiError::rate_limited(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
}

/// Whether a browser page from `origin` may use the API: listed, or `*`.
pub fn origin_allowed(allowed: &[String], origin: &str) -> bool {
    allowed.iter().any(|a| a == "*" || a == origin)
}

/// CORS for the REST routes: only the listed origins (`*` allows any).
pub fn cors(allowed: &[String]) -> CorsLayer {
    let origins = if allowed.iter().any(|a| a == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            allowed
                .iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::HeaderName::from_static("idempotency-key"),
            header::HeaderName::from_static(dashdice_proto::bus::TRACE_HEADERS[0]),
            header::HeaderName::from_static(dashdice_proto::bus::TRACE_HEADERS[1]),
        ])
        .expose_headers([header::RETRY_AFTER])
        .max_age(Duration::from_secs(600))
}
