//! A stand-in for FCM HTTP v1 and Google's OAuth 2 token endpoint, on a
//! free loopback port, that holds every request to the shapes Google
//! documents and can be told to misbehave.
//!
//! - `POST /token`: `application/x-www-form-urlencoded`
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`,
//!   the assertion an RS256 JWT that verifies against
//!   `fixtures/fcm-test-public.pem` (the public half of the test service
//!   account's key), `kid` the key's id if given, `iss` the client email,
//!   `scope` naming `firebase.messaging`, `aud` this token URI, `exp` =
//!   `iat` + 3600 and `iat` about now. Answered `{"access_token":
//!   "ya29.<random>", "expires_in": 3599, "token_type": "Bearer"}`.
//! - `POST /v1/projects/<project>/messages:send`: `Authorization: Bearer
//!   <a token issued here, not expired>`, `Content-Type: application/json`,
//!   `{"message": {...}}` with exactly one target and it a `token`, only the
//!   fields FCM knows, `notification.title` a string, `data` values all
//!   strings and no reserved keys, priorities and headers from FCM's sets,
//!   and the collapse fields (`android.collapse_key`, `apns-collapse-id`,
//!   webpush `Topic`) all present or all absent, the APNs id the key when
//!   it fits and the Topic ≤ 32 URL-safe base64 characters, the same for the
//!   same key. Answered `{"name": "projects/<project>/messages/<n>"}`.
//!
//! A request that breaks a rule is answered 400 (401 for a bad access
//! token) and recorded in [`FakeFcm::violations`], which a test asserts
//! empty: the client must never send what Google would refuse. A
//! [`Behaviour`] scripts failures per device token or for all.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use dashdice_notifier::fcm::{FcmConfig, ServiceAccountKey};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use tokio::task::JoinHandle;

/// The test service account (its `token_uri` is Google's: point
/// `FcmConfig::token_uri` at [`FakeFcm::token_uri`]).
pub const SERVICE_ACCOUNT_JSON: &str = include_str!("../fixtures/fcm-test-service-account.json");
/// The public half of the test service account's key.
pub const PUBLIC_KEY_PEM: &str = include_str!("../fixtures/fcm-test-public.pem");
/// The scope the assertion must ask for.
pub const FIREBASE_MESSAGING_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The only grant type taken.
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// What Google's token endpoint grants.
const DEFAULT_TOKEN_LIFETIME_S: u64 = 3599;
/// How far `iat` may be from the fake's clock.
const CLOCK_SKEW_S: u64 = 300;
/// The largest request read.
const MAX_BODY: usize = 1 << 20;

/// The test service account's key.
pub fn service_account() -> ServiceAccountKey {
    ServiceAccountKey::from_json(SERVICE_ACCOUNT_JSON).expect("the test service account")
}

/// What the stand-in does instead of taking a message. Counted ones are
/// used up one request at a time (`times: 0` counts as 1), then the next
/// scripted one (or success) follows; the others last.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// 429 `RESOURCE_EXHAUSTED` (`QUOTA_EXCEEDED`) with `Retry-After:
    /// <retry_after_s>`, `times` times.
    TooManyRequests { retry_after_s: u64, times: u32 },
    /// 500 `INTERNAL`, `times` times.
    ServerError { times: u32 },
    /// 404 `NOT_FOUND` (`UNREGISTERED`): the token is dead.
    Unregistered,
    /// 400 `INVALID_ARGUMENT`: "The registration token is not a valid FCM
    /// registration token".
    InvalidToken,
    /// 403 `PERMISSION_DENIED` (`SENDER_ID_MISMATCH`).
    SenderIdMismatch,
    /// 401 `UNAUTHENTICATED` whatever the access token, `times` times.
    Unauthenticated { times: u32 },
    /// Waits `delay` before answering, `times` times; a client still
    /// waiting then gets 503 `UNAVAILABLE`. The message is not taken either
    /// way, so a retried one is recorded once.
    Slow { delay: Duration, times: u32 },
}

/// A message the stand-in took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    pub token: String,
    pub title: String,
    pub body: String,
    pub data: BTreeMap<String, String>,
    /// `android.collapse_key`.
    pub collapse_key: Option<String>,
    /// When the request arrived and passed the checks (before any scripted
    /// latency): what a benchmark measures a push's delay to.
    pub at: SystemTime,
}

/// The running stand-in; stopped when dropped.
pub struct FakeFcm {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: JoinHandle<()>,
}

struct Shared {
    project: String,
    /// The fixture's.
    client_email: String,
    key_id: Option<String>,
    token_uri: String,
    send_path: String,
    decoding: DecodingKey,
    state: Mutex<FakeState>,
}

#[derive(Default)]
struct FakeState {
    /// Access tokens issued, by value.
    issued: HashMap<String, Issued>,
    grants: u32,
    token_lifetime_s: Option<u64>,
    violations: Vec<String>,
    messages: Vec<Received>,
    /// By device token; `None` for every device (after a device's own).
    scripts: HashMap<Option<String>, VecDeque<Behaviour>>,
    /// `messages:send` requests that passed the checks, by device token.
    requests: HashMap<String, u32>,
    /// The Web Push topic each collapse key was sent with.
    topics: HashMap<String, String>,
    /// How long a message it takes waits before the answer (and before it
    /// counts as taken).
    latency: Duration,
}

struct Issued {
    expires: Instant,
    revoked: bool,
}

impl FakeFcm {
    /// Starts on a free loopback port (bound before it is known, so no
    /// other test can take it).
    pub async fn start() -> FakeFcm {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("the bound address");
        let key = service_account();
        let project = key
            .project_id
            .clone()
            .expect("the fixture names its project");
        let shared = Arc::new(Shared {
            send_path: format!("/v1/projects/{project}/messages:send"),
            project,
            client_email: key.client_email.clone(),
            key_id: key.private_key_id.clone(),
            token_uri: format!("http://{addr}/token"),
            decoding: DecodingKey::from_rsa_pem(PUBLIC_KEY_PEM.as_bytes())
                .expect("the fixture's public key"),
            state: Mutex::new(FakeState::default()),
        });
        let app = Router::new().fallback(handle).with_state(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeFcm {
            shared,
            addr,
            server,
        }
    }

    /// `http://127.0.0.1:<port>/token`.
    pub fn token_uri(&self) -> String {
        self.shared.token_uri.clone()
    }

    /// `http://127.0.0.1:<port>`.
    pub fn send_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The fixture's project.
    pub fn project(&self) -> &str {
        &self.shared.project
    }

    /// The test service account pointed here, with quick retries: 2 s
    /// timeout, 4 attempts, 10 ms .. 2 s backoff (2 s so a `Retry-After: 1`
    /// is honoured in full).
    pub fn config(&self) -> FcmConfig {
        FcmConfig {
            key: service_account(),
            project_id: None,
            send_base: self.send_base(),
            token_uri: Some(self.token_uri()),
            timeout: Duration::from_secs(2),
            max_attempts: 4,
            min_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_secs(2),
        }
    }

    /// Scripts what happens to pushes to `device_token` (before any
    /// [`script_all`](Self::script_all)).
    pub fn script(&self, device_token: &str, behaviour: Behaviour) {
        self.shared
            .state()
            .scripts
            .entry(Some(device_token.to_owned()))
            .or_default()
            .push_back(behaviour);
    }

    /// Scripts what happens to pushes to every device.
    pub fn script_all(&self, behaviour: Behaviour) {
        self.shared
            .state()
            .scripts
            .entry(None)
            .or_default()
            .push_back(behaviour);
    }

    /// Every access token issued so far is refused from now on (401), as
    /// Google does with a revoked one; not a violation to send one.
    pub fn revoke_access_tokens(&self) {
        for issued in self.shared.state().issued.values_mut() {
            issued.revoked = true;
        }
    }

    /// Every message taken from now on is answered `latency` late (a busy
    /// FCM: slow, but successful).
    pub fn set_latency(&self, latency: Duration) {
        self.shared.state().latency = latency;
    }

    /// The `expires_in` of the tokens granted from now on.
    pub fn set_token_lifetime(&self, seconds: u64) {
        self.shared.state().token_lifetime_s = Some(seconds);
    }

    /// Access tokens granted.
    pub fn grants(&self) -> u32 {
        self.shared.state().grants
    }

    /// The messages taken, in order.
    pub fn messages(&self) -> Vec<Received> {
        self.shared.state().messages.clone()
    }

    /// Well-formed `messages:send` requests to `device_token`, whatever
    /// they were answered.
    pub fn requests(&self, device_token: &str) -> u32 {
        self.shared
            .state()
            .requests
            .get(device_token)
            .copied()
            .unwrap_or(0)
    }

    /// Every broken rule, in order: a test asserts this empty.
    pub fn violations(&self) -> Vec<String> {
        self.shared.state().violations.clone()
    }
}

impl Drop for FakeFcm {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, FakeState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn violation(&self, what: String) {
        self.state().violations.push(what);
    }
}

async fn handle(State(fake): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let Ok(body) = to_bytes(body, MAX_BODY).await else {
        fake.violation(format!(
            "{} {}: an unreadable body",
            parts.method, parts.uri
        ));
        return StatusCode::PAYLOAD_TOO_LARGE.into_response();
    };
    let path = parts.uri.path();
    if path == "/token" {
        token_grant(&fake, &parts, &body)
    } else if path == fake.send_path {
        messages_send(&fake, &parts, &body).await
    } else {
        fake.violation(format!("{} {path}: no such endpoint", parts.method));
        google_error(StatusCode::NOT_FOUND, "NOT_FOUND", "no such endpoint", None)
    }
}

// --- the token endpoint -----------------------------------------------------

#[derive(Deserialize)]
struct AssertionClaims {
    scope: String,
    iat: u64,
    exp: u64,
}

fn token_grant(fake: &Shared, parts: &Parts, body: &[u8]) -> Response {
    match check_grant(fake, parts, body) {
        Ok(()) => {
            let access_token = format!("ya29.fake-{}", random_hex(24));
            let mut state = fake.state();
            let lifetime = state.token_lifetime_s.unwrap_or(DEFAULT_TOKEN_LIFETIME_S);
            state.issued.insert(
                access_token.clone(),
                Issued {
                    expires: Instant::now() + Duration::from_secs(lifetime),
                    revoked: false,
                },
            );
            state.grants += 1;
            let mut response = axum::Json(json!({
                "access_token": access_token,
                "expires_in": lifetime,
                "token_type": "Bearer",
            }))
            .into_response();
            response
                .headers_mut()
                .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(what) => {
            fake.violation(format!("token grant: {what}"));
            (
                StatusCode::BAD_REQUEST,
                axum::Json(json!({"error": "invalid_grant", "error_description": what})),
            )
                .into_response()
        }
    }
}

fn check_grant(fake: &Shared, parts: &Parts, body: &[u8]) -> Result<(), String> {
    if parts.method != Method::POST {
        return Err(format!("method {}, not POST", parts.method));
    }
    let content_type = media_type(&parts.headers);
    if content_type != "application/x-www-form-urlencoded" {
        return Err(format!("content type `{content_type}`, not a form"));
    }
    let form = parse_form(body)?;
    let names: Vec<&str> = form.iter().map(|(k, _)| k.as_str()).collect();
    if names != ["grant_type", "assertion"] && names != ["assertion", "grant_type"] {
        return Err(format!(
            "form fields {names:?}, not grant_type and assertion"
        ));
    }
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    if field("grant_type") != JWT_BEARER_GRANT {
        return Err(format!("grant_type `{}`", field("grant_type")));
    }
    let assertion = field("assertion");
    let header = jsonwebtoken::decode_header(assertion)
        .map_err(|e| format!("the assertion is not a JWT: {e}"))?;
    if header.alg != Algorithm::RS256 {
        return Err(format!(
            "the assertion is signed {:?}, not RS256",
            header.alg
        ));
    }
    if header.typ.as_deref().is_some_and(|t| t != "JWT") {
        return Err(format!("the assertion's typ is {:?}", header.typ));
    }
    if header.kid.is_some() && header.kid != fake.key_id {
        return Err(format!(
            "the assertion's kid is {:?}, not the key's",
            header.kid
        ));
    }
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[&fake.token_uri]);
    validation.set_issuer(&[&fake.client_email]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "aud"]);
    validation.leeway = 0;
    let claims = jsonwebtoken::decode::<AssertionClaims>(assertion, &fake.decoding, &validation)
        .map_err(|e| format!("the assertion does not verify: {e}"))?
        .claims;
    if !claims
        .scope
        .split(' ')
        .any(|scope| scope == FIREBASE_MESSAGING_SCOPE)
    {
        return Err(format!("scope `{}` lacks firebase.messaging", claims.scope));
    }
    if claims.exp.checked_sub(claims.iat) != Some(3600) {
        return Err(format!(
            "exp - iat is not 3600 (iat {}, exp {})",
            claims.iat, claims.exp
        ));
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    if claims.iat.abs_diff(now) > CLOCK_SKEW_S {
        return Err(format!("iat {} is not about now ({now})", claims.iat));
    }
    Ok(())
}

/// `application/x-www-form-urlencoded`, decoded.
fn parse_form(body: &[u8]) -> Result<Vec<(String, String)>, String> {
    let text = std::str::from_utf8(body).map_err(|_| "the form is not UTF-8".to_owned())?;
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((percent_decode(name)?, percent_decode(value)?))
        })
        .collect()
}

fn percent_decode(text: &str) -> Result<String, String> {
    let mut bytes = Vec::with_capacity(text.len());
    let mut rest = text.bytes();
    while let Some(byte) = rest.next() {
        match byte {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hex = [rest.next(), rest.next()];
                let [Some(high), Some(low)] = hex else {
                    return Err(format!("a cut escape in `{text}`"));
                };
                let pair = std::str::from_utf8(&[high, low])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("a bad escape in `{text}`"))?;
                bytes.push(pair);
            }
            _ => bytes.push(byte),
        }
    }
    String::from_utf8(bytes).map_err(|_| "a form value is not UTF-8".to_owned())
}

// --- messages:send ----------------------------------------------------------

/// The fields of FCM's `Message`.
const MESSAGE_FIELDS: &[&str] = &[
    "name",
    "data",
    "notification",
    "android",
    "webpush",
    "apns",
    "fcm_options",
    "token",
    "topic",
    "condition",
];

async fn messages_send(fake: &Shared, parts: &Parts, body: &[u8]) -> Response {
    if access_refused(fake, parts) {
        return unauthenticated();
    }
    let received = match check_send(fake, parts, body) {
        Ok(received) => received,
        Err(what) => {
            fake.violation(format!("messages:send: {what}"));
            return google_error(StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", &what, None);
        }
    };
    let behaviour = {
        let mut state = fake.state();
        *state.requests.entry(received.token.clone()).or_default() += 1;
        next_behaviour(&mut state, &received.token)
    };
    match behaviour {
        None => {
            let latency = fake.state().latency;
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            let mut state = fake.state();
            state.messages.push(received);
            let name = format!(
                "projects/{}/messages/{}",
                fake.project,
                state.messages.len()
            );
            axum::Json(json!({ "name": name })).into_response()
        }
        Some(Behaviour::TooManyRequests { retry_after_s, .. }) => {
            let mut response = google_error(
                StatusCode::TOO_MANY_REQUESTS,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Send requests'",
                Some("QUOTA_EXCEEDED"),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_s));
            response
        }
        Some(Behaviour::ServerError { .. }) => google_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "INTERNAL",
            "Internal error encountered.",
            Some("INTERNAL"),
        ),
        Some(Behaviour::Unregistered) => google_error(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "Requested entity was not found.",
            Some("UNREGISTERED"),
        ),
        Some(Behaviour::InvalidToken) => google_error(
            StatusCode::BAD_REQUEST,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            Some("INVALID_ARGUMENT"),
        ),
        Some(Behaviour::SenderIdMismatch) => google_error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            "SenderId mismatch",
            Some("SENDER_ID_MISMATCH"),
        ),
        Some(Behaviour::Unauthenticated { .. }) => unauthenticated(),
        Some(Behaviour::Slow { delay, .. }) => {
            tokio::time::sleep(delay).await;
            google_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "UNAVAILABLE",
                "The service is currently unavailable.",
                Some("UNAVAILABLE"),
            )
        }
    }
}

/// The device's next scripted behaviour, else everyone's; a counted one is
/// used up.
fn next_behaviour(state: &mut FakeState, device_token: &str) -> Option<Behaviour> {
    for target in [Some(device_token.to_owned()), None] {
        let Some(queue) = state.scripts.get_mut(&target) else {
            continue;
        };
        let Some(front) = queue.front_mut() else {
            continue;
        };
        let behaviour = front.clone();
        let left = match front {
            Behaviour::TooManyRequests { times, .. }
            | Behaviour::ServerError { times }
            | Behaviour::Unauthenticated { times }
            | Behaviour::Slow { times, .. } => {
                *times = times.saturating_sub(1);
                Some(*times)
            }
            _ => None,
        };
        if left == Some(0) {
            queue.pop_front();
        }
        return Some(behaviour);
    }
    None
}

/// Whether the access token is refused: it must be a bearer token this fake
/// issued and that has not expired (a revoked one is refused too, but is no
/// violation).
fn access_refused(fake: &Shared, parts: &Parts) -> bool {
    let authorization = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(token) = authorization.strip_prefix("Bearer ") else {
        fake.violation("messages:send: no `Authorization: Bearer`".to_owned());
        return true;
    };
    let violation = {
        let state = fake.state();
        match state.issued.get(token) {
            None => Some("an access token never issued"),
            Some(issued) if issued.revoked => return true,
            Some(issued) if issued.expires <= Instant::now() => Some("an expired access token"),
            Some(_) => None,
        }
    };
    if let Some(what) = violation {
        fake.violation(format!("messages:send: {what}"));
        return true;
    }
    false
}

fn check_send(fake: &Shared, parts: &Parts, body: &[u8]) -> Result<Received, String> {
    if parts.method != Method::POST {
        return Err(format!("method {}, not POST", parts.method));
    }
    let content_type = media_type(&parts.headers);
    if content_type != "application/json" {
        return Err(format!("content type `{content_type}`, not JSON"));
    }
    let request: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let request = object(&request, "the body")?;
    if let Some(unknown) = request
        .keys()
        .find(|k| *k != "message" && *k != "validate_only")
    {
        return Err(format!("unknown field `{unknown}`"));
    }
    let message = object(request.get("message").ok_or("no `message`")?, "`message`")?;
    if let Some(unknown) = message
        .keys()
        .find(|k| !MESSAGE_FIELDS.contains(&k.as_str()))
    {
        return Err(format!("unknown field `message.{unknown}`"));
    }
    let targets: Vec<&str> = ["token", "topic", "condition"]
        .into_iter()
        .filter(|t| message.contains_key(*t))
        .collect();
    if targets != ["token"] {
        return Err(format!("targets {targets:?}, not exactly a token"));
    }
    let token = string(message.get("token"), "message.token")?;
    if token.is_empty() {
        return Err("an empty message.token".into());
    }

    let notification = object(
        message
            .get("notification")
            .ok_or("no `message.notification`")?,
        "message.notification",
    )?;
    if let Some(unknown) = notification
        .keys()
        .find(|k| !["title", "body", "image"].contains(&k.as_str()))
    {
        return Err(format!("unknown field `message.notification.{unknown}`"));
    }
    let title = string(notification.get("title"), "message.notification.title")?;
    let body = match notification.get("body") {
        None => String::new(),
        value => string(value, "message.notification.body")?,
    };

    let mut data = BTreeMap::new();
    if let Some(value) = message.get("data") {
        for (key, value) in object(value, "message.data")? {
            if ["from", "notification", "message_type"].contains(&key.as_str())
                || key.starts_with("google")
                || key.starts_with("gcm")
            {
                return Err(format!("the reserved data key `{key}`"));
            }
            data.insert(
                key.clone(),
                string(Some(value), &format!("message.data.{key}"))?,
            );
        }
    }

    let mut collapse_key = None;
    if let Some(android) = message.get("android") {
        let android = object(android, "message.android")?;
        if let Some(key) = android.get("collapse_key") {
            collapse_key = Some(string(Some(key), "message.android.collapse_key")?);
        }
        if let Some(priority) = android.get("priority") {
            let priority = string(Some(priority), "message.android.priority")?;
            if !["normal", "high", "NORMAL", "HIGH"].contains(&priority.as_str()) {
                return Err(format!("android priority `{priority}`"));
            }
        }
    }
    let apns = headers(message.get("apns"), "message.apns")?;
    if let Some(priority) = apns.get("apns-priority")
        && !["1", "5", "10"].contains(&priority.as_str())
    {
        return Err(format!("apns-priority `{priority}`"));
    }
    let webpush = headers(message.get("webpush"), "message.webpush")?;
    if let Some(urgency) = webpush.get("Urgency")
        && !["very-low", "low", "normal", "high"].contains(&urgency.as_str())
    {
        return Err(format!("webpush Urgency `{urgency}`"));
    }

    let apns_id = apns.get("apns-collapse-id");
    let topic = webpush.get("Topic");
    match (&collapse_key, apns_id, topic) {
        (None, None, None) => {}
        (Some(key), Some(apns_id), Some(topic)) => {
            if apns_id.len() > 64 {
                return Err(format!("an apns-collapse-id of {} bytes", apns_id.len()));
            }
            if key.len() <= 64 && apns_id != key {
                return Err(format!(
                    "apns-collapse-id `{apns_id}` is not the collapse key"
                ));
            }
            if topic.is_empty()
                || topic.len() > 32
                || !topic
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(format!(
                    "webpush Topic `{topic}` is not ≤ 32 URL-safe base64"
                ));
            }
            let mut state = fake.state();
            let known = state
                .topics
                .entry(key.clone())
                .or_insert_with(|| topic.clone());
            if known != topic {
                return Err(format!(
                    "collapse key `{key}` sent with topics `{known}` and `{topic}`"
                ));
            }
        }
        _ => {
            return Err(format!(
                "collapse fields half there: android {collapse_key:?}, apns {apns_id:?}, webpush {topic:?}"
            ));
        }
    }

    Ok(Received {
        token,
        title,
        body,
        data,
        collapse_key,
        at: SystemTime::now(),
    })
}

/// A platform block's `headers`, all strings (an absent block has none).
fn headers(block: Option<&Value>, what: &str) -> Result<BTreeMap<String, String>, String> {
    let Some(block) = block else {
        return Ok(BTreeMap::new());
    };
    let block = object(block, what)?;
    let Some(headers) = block.get("headers") else {
        return Ok(BTreeMap::new());
    };
    object(headers, &format!("{what}.headers"))?
        .iter()
        .map(|(k, v)| Ok((k.clone(), string(Some(v), &format!("{what}.headers.{k}"))?)))
        .collect()
}

fn object<'v>(value: &'v Value, what: &str) -> Result<&'v Map<String, Value>, String> {
    value
        .as_object()
        .ok_or_else(|| format!("{what} is not an object"))
}

fn string(value: Option<&Value>, what: &str) -> Result<String, String> {
    value
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} is not a string"))
}

/// The content type without its parameters.
fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

fn unauthenticated() -> Response {
    google_error(
        StatusCode::UNAUTHORIZED,
        "UNAUTHENTICATED",
        "Request had invalid authentication credentials. Expected OAuth 2 access token.",
        None,
    )
}

/// Google's error envelope, with an FCM error code if given.
fn google_error(status: StatusCode, grpc: &str, message: &str, fcm: Option<&str>) -> Response {
    let details: Vec<Value> = fcm
        .map(|code| {
            json!({
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": code,
            })
        })
        .into_iter()
        .collect();
    (
        status,
        axum::Json(json!({"error": {
            "code": status.as_u16(),
            "message": message,
            "status": grpc,
            "details": details,
        }})),
    )
        .into_response()
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the OS's randomness");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
