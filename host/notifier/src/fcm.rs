//! FCM HTTP v1: pushes to devices.
//!
//! - OAuth 2 access tokens from a Google service-account key: a JWT
//!   (RS256, header `kid` = the key's `private_key_id`; claims `iss` = client
//!   email, `scope` = `https://www.googleapis.com/auth/firebase.messaging`,
//!   `aud` = the token URI, `iat`, `exp` = iat + 3600) POSTed to the token
//!   URI as `application/x-www-form-urlencoded`
//!   `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer&assertion=<jwt>`,
//!   answered `{"access_token": "...", "expires_in": 3599, "token_type":
//!   "Bearer"}`. The token is cached until 5 minutes before it expires, and
//!   refreshed one at a time: concurrent pushes wait for the one fetch.
//! - `POST {send_base}/v1/projects/{project}/messages:send` per device, with
//!   `Authorization: Bearer <token>`, `Content-Type: application/json` and
//!   `{"message": {...}}` (every field is documented on `SendRequest`); answered
//!   `{"name": "projects/<project>/messages/<id>"}`.
//! - Retries with exponential backoff and jitter on 429 and 5xx (and
//!   timeouts, connection errors, a token URI that is down), honouring
//!   `Retry-After` (seconds or an HTTP date), up to `max_attempts`; then
//!   given up. See [`Fcm::send`] for the delays.
//! - 404 or `UNREGISTERED` (and 400 `INVALID_ARGUMENT` naming the token):
//!   the token is dead and the caller removes it.
//! - 401: the cached access token is dropped and fetched again once.
//!
//! Errors come as Google's error envelope:
//! `{"error": {"code": 404, "message": "...", "status": "NOT_FOUND",
//! "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
//! "errorCode": "UNREGISTERED"}]}}`.
//!
//! Neither device tokens, access tokens nor the key ever reach a log, a
//! span or an error: only statuses, FCM's error codes and messages.
//!
//! Metrics (local names; they belong in `dashdice_service::telemetry::names`
//! once the lead moves them): [`FCM_ATTEMPTS`], [`FCM_RETRIES`] by `cause`,
//! [`FCM_SENT`], [`FCM_GAVE_UP`] by `why`, [`FCM_UNREGISTERED`],
//! [`FCM_TOKEN_FETCHES`] by `outcome`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashdice_proto::notify::Platform;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap, RETRY_AFTER};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;
use tracing::Instrument;

/// Requests to `messages:send`, every try counted.
pub const FCM_ATTEMPTS: &str = "dashdice_notifier_fcm_attempts_total";
/// Tries that failed in a way worth another, by `cause`: the HTTP status
/// (`"429"`, `"500"`, `"401"`, ...), `"timeout"`, `"connect"`, `"network"`
/// or `"token"` (the token URI was down).
pub const FCM_RETRIES: &str = "dashdice_notifier_fcm_retries_total";
/// Pushes FCM accepted.
pub const FCM_SENT: &str = "dashdice_notifier_fcm_sent_total";
/// Pushes given up, by `why`: `"exhausted"` (the attempts ran out) or
/// `"refused"` (FCM or the token URI said no for good).
pub const FCM_GAVE_UP: &str = "dashdice_notifier_fcm_gave_up_total";
/// Pushes whose device token FCM reported dead.
pub const FCM_UNREGISTERED: &str = "dashdice_notifier_fcm_unregistered_total";
/// Access-token fetches at the token URI, by `outcome`: `"ok"` or `"error"`.
pub const FCM_TOKEN_FETCHES: &str = "dashdice_notifier_fcm_token_fetches_total";

/// The OAuth scope FCM HTTP v1 asks for.
pub const FIREBASE_MESSAGING_SCOPE: &str = "https://www.googleapis.com/auth/firebase.messaging";
/// The OAuth grant type of a signed JWT assertion (RFC 7523).
pub const JWT_BEARER_GRANT: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// An assertion's lifetime: Google accepts at most an hour.
const ASSERTION_LIFETIME_S: u64 = 3600;
/// An access token is refreshed this long before it expires, so none
/// expires in flight and clocks may differ a little.
const REFRESH_MARGIN: Duration = Duration::from_secs(300);
/// Longest `apns-collapse-id` APNs takes, in bytes.
const MAX_APNS_COLLAPSE_ID: usize = 64;
/// FCM's messages are cut to this many characters in reasons.
const MAX_REASON_CHARS: usize = 300;

impl ServiceAccountKey {
    /// The key from the JSON Google hands out. Errors name the position or
    /// the missing field, never a value (the text holds a private key).
    pub fn from_json(text: &str) -> Result<Self, FcmError> {
        let key: ServiceAccountKey = serde_json::from_str(text).map_err(|e| {
            let what = e.to_string();
            if what.starts_with("missing field") {
                FcmError::Key(what)
            } else {
                FcmError::Key(format!(
                    "not a service-account key ({:?} error at line {}, column {})",
                    e.classify(),
                    e.line(),
                    e.column()
                ))
            }
        })?;
        for (field, value) in [
            ("client_email", &key.client_email),
            ("private_key", &key.private_key),
            ("token_uri", &key.token_uri),
        ] {
            if value.trim().is_empty() {
                return Err(FcmError::Key(format!("`{field}` is empty")));
            }
        }
        Ok(key)
    }

    /// [`from_json`](Self::from_json) of a file.
    pub fn from_file(path: &Path) -> Result<Self, FcmError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| FcmError::Key(format!("{}: {e}", path.display())))?;
        Self::from_json(&text)
    }
}

/// The FCM HTTP v1 client: one per process, shared by every push (it holds
/// the connection pool and the cached access token).
pub struct Fcm {
    http: reqwest::Client,
    assertions: Assertions,
    token_uri: String,
    /// `{send_base}/v1/projects/{project}/messages:send`.
    send_url: String,
    max_attempts: u32,
    min_backoff: Duration,
    max_backoff: Duration,
    /// The access token, held while it is fetched so concurrent pushes
    /// share one fetch.
    token: Mutex<Option<AccessToken>>,
}

impl std::fmt::Debug for Fcm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fcm")
            .field("send_url", &self.send_url)
            .field("token_uri", &self.token_uri)
            .field("max_attempts", &self.max_attempts)
            .finish_non_exhaustive()
    }
}

impl Fcm {
    /// Checks the configuration and parses the key now (by signing a first
    /// assertion), so a bad key stops the role at startup rather than at
    /// its first push. Makes no request.
    pub fn new(config: FcmConfig) -> Result<Fcm, FcmError> {
        let project = config
            .project_id
            .clone()
            .or_else(|| config.key.project_id.clone())
            .ok_or_else(|| {
                FcmError::Config(
                    "no project id: neither the configuration nor the key names one".into(),
                )
            })?;
        // Project ids are lower-case letters, digits and hyphens (domain-scoped
        // ones add `.` and `:`): anything else would change the URL's path.
        if project.is_empty()
            || !project
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | ':'))
        {
            return Err(FcmError::Config(format!("`{project}` is not a project id")));
        }
        if config.max_attempts == 0 {
            return Err(FcmError::Config("max_attempts is at least 1".into()));
        }
        if config.timeout.is_zero() {
            return Err(FcmError::Config("the timeout is zero".into()));
        }
        if config.min_backoff > config.max_backoff {
            return Err(FcmError::Config("min_backoff exceeds max_backoff".into()));
        }
        let send_base = config.send_base.trim_end_matches('/');
        let token_uri = config
            .token_uri
            .clone()
            .unwrap_or_else(|| config.key.token_uri.clone());
        for (name, url) in [("send_base", send_base), ("token_uri", token_uri.as_str())] {
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return Err(FcmError::Config(format!(
                    "{name} `{url}` is not an http(s) URL"
                )));
            }
        }

        let key = EncodingKey::from_rsa_pem(config.key.private_key.as_bytes())
            .map_err(|e| FcmError::Key(format!("the private key is not an RSA PEM key: {e}")))?;
        let mut header = Header::new(Algorithm::RS256);
        header.kid.clone_from(&config.key.private_key_id);
        let assertions = Assertions {
            key,
            header,
            issuer: config.key.client_email.clone(),
            audience: token_uri.clone(),
        };
        assertions
            .sign()
            .map_err(|e| FcmError::Key(format!("the private key cannot sign RS256: {e}")))?;

        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|e| FcmError::Config(format!("the HTTP client: {e}")))?;
        Ok(Fcm {
            http,
            assertions,
            token_uri,
            send_url: format!("{send_base}/v1/projects/{project}/messages:send"),
            max_attempts: config.max_attempts,
            min_backoff: config.min_backoff,
            max_backoff: config.max_backoff,
            token: Mutex::new(None),
        })
    }

    /// Pushes to one device, retrying what is worth retrying; never fails,
    /// the outcome says what became of it.
    ///
    /// Delays between tries: the n-th retry waits `min_backoff · 2ⁿ⁻¹`
    /// (at most `max_backoff`) plus up to half of that again at random, so
    /// notifiers that failed together do not retry together. A
    /// `Retry-After` (429 or 503) raises the wait to what it asks, but the
    /// wait stays within `max_backoff`: a push never holds its worker longer
    /// than that between tries, and a retry FCM finds too early costs one
    /// more 429 and one attempt, not the push. The 401 retry (a fresh access
    /// token) is immediate and allowed once even on the last attempt.
    pub async fn send(&self, push: &Push) -> PushOutcome {
        let span = tracing::info_span!(
            "fcm.send",
            platform = ?push.platform,
            collapsed = push.collapse_key.is_some(),
            attempts = tracing::field::Empty,
            outcome = tracing::field::Empty,
        );
        async {
            let outcome = self.send_with_retries(push).await;
            let span = tracing::Span::current();
            let (name, attempts) = match &outcome {
                PushOutcome::Sent { attempts, .. } => ("sent", Some(*attempts)),
                PushOutcome::Unregistered => ("unregistered", None),
                PushOutcome::GaveUp { attempts, .. } => ("gave_up", Some(*attempts)),
            };
            span.record("outcome", name);
            if let Some(attempts) = attempts {
                span.record("attempts", attempts);
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn send_with_retries(&self, push: &Push) -> PushOutcome {
        let body = match serde_json::to_vec(&SendRequest::new(push)) {
            Ok(body) => body,
            Err(e) => return gave_up("refused", format!("the message cannot be encoded: {e}"), 0),
        };
        let mut attempts = 0;
        let mut refreshed = false;
        loop {
            attempts += 1;
            metrics::counter!(FCM_ATTEMPTS).increment(1);
            match self.try_once(&body).await {
                Try::Sent(name) => {
                    metrics::counter!(FCM_SENT).increment(1);
                    tracing::debug!(attempts, "FCM took the push");
                    return PushOutcome::Sent { name, attempts };
                }
                Try::Unregistered(why) => {
                    metrics::counter!(FCM_UNREGISTERED).increment(1);
                    tracing::info!(%why, "the device token is dead");
                    return PushOutcome::Unregistered;
                }
                Try::Refused(reason) => return gave_up("refused", reason, attempts),
                Try::Unauthorized(reason) => {
                    if refreshed {
                        return gave_up("refused", reason, attempts);
                    }
                    refreshed = true;
                    metrics::counter!(FCM_RETRIES, "cause" => "401").increment(1);
                    tracing::info!(%reason, "FCM refused the access token; fetching another");
                }
                Try::Transient {
                    cause,
                    reason,
                    retry_after,
                } => {
                    if attempts >= self.max_attempts {
                        return gave_up("exhausted", reason, attempts);
                    }
                    metrics::counter!(FCM_RETRIES, "cause" => cause).increment(1);
                    let delay = self.delay(attempts, retry_after);
                    tracing::debug!(%reason, attempts, delay_ms = delay.as_millis(), "retrying the push");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// The wait after the `failures`-th failed try (see [`send`](Self::send)).
    fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let backoff = backoff(self.min_backoff, self.max_backoff, failures, jitter());
        retry_after
            .map_or(backoff, |asked| asked.max(backoff))
            .min(self.max_backoff)
    }

    /// One request to `messages:send`, with a valid access token.
    async fn try_once(&self, body: &[u8]) -> Try {
        let token = match self.access_token().await {
            Ok(token) => token,
            Err(TokenError::Transient {
                reason,
                retry_after,
            }) => {
                return Try::Transient {
                    cause: "token".into(),
                    reason,
                    retry_after,
                };
            }
            Err(TokenError::Refused(reason)) => return Try::Refused(reason),
        };
        let sent = self
            .http
            .post(&self.send_url)
            .bearer_auth(&token)
            .header(CONTENT_TYPE, "application/json")
            .body(body.to_vec())
            .send()
            .await;
        let response = match sent {
            Ok(response) => response,
            Err(e) => {
                return Try::Transient {
                    cause: network_cause(&e).into(),
                    reason: format!("FCM: {}", describe(&e)),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let text = match response.text().await {
            Ok(text) => text,
            // Taken, but its name was lost on the way: sending it again
            // would show it twice.
            Err(_) if status.is_success() => String::new(),
            Err(e) => {
                return Try::Transient {
                    cause: network_cause(&e).into(),
                    reason: format!("FCM answered {status} and then: {}", describe(&e)),
                    retry_after,
                };
            }
        };
        let verdict = classify(status, &text, retry_after);
        if matches!(verdict, Try::Unauthorized(_)) {
            self.forget_token(&token).await;
        }
        verdict
    }

    /// A valid access token: the cached one, or one fetched now (by one
    /// push at a time; the others wait for it).
    async fn access_token(&self) -> Result<String, TokenError> {
        let mut cached = self.token.lock().await;
        if let Some(token) = cached.as_ref().filter(|t| Instant::now() < t.refresh_at) {
            return Ok(token.value.clone());
        }
        let fetched = self
            .fetch_token()
            .instrument(tracing::info_span!("fcm.token"))
            .await;
        match fetched {
            Ok(token) => {
                metrics::counter!(FCM_TOKEN_FETCHES, "outcome" => "ok").increment(1);
                let value = token.value.clone();
                *cached = Some(token);
                Ok(value)
            }
            Err(e) => {
                metrics::counter!(FCM_TOKEN_FETCHES, "outcome" => "error").increment(1);
                *cached = None;
                Err(e)
            }
        }
    }

    /// Drops the cached token if it is still `stale` (another push may have
    /// replaced it already).
    async fn forget_token(&self, stale: &str) {
        let mut cached = self.token.lock().await;
        if cached.as_ref().is_some_and(|t| t.value == stale) {
            *cached = None;
        }
    }

    /// Exchanges a fresh assertion for an access token at the token URI.
    async fn fetch_token(&self) -> Result<AccessToken, TokenError> {
        let assertion = self
            .assertions
            .sign()
            .map_err(|e| TokenError::Refused(format!("signing the OAuth assertion: {e}")))?;
        let form = format!(
            "grant_type={}&assertion={}",
            form_encode(JWT_BEARER_GRANT),
            form_encode(&assertion)
        );
        let asked = Instant::now();
        let response = self
            .http
            .post(&self.token_uri)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .map_err(|e| TokenError::Transient {
                reason: format!("the token URI: {}", describe(&e)),
                retry_after: None,
            })?;
        let status = response.status();
        let retry_after = retry_after(response.headers(), SystemTime::now());
        let text = response.text().await.map_err(|e| TokenError::Transient {
            reason: format!("the token URI answered {status} and then: {}", describe(&e)),
            retry_after,
        })?;
        if !status.is_success() {
            let why = serde_json::from_str::<OAuthError>(&text)
                .map(|e| format!("{}: {}", e.error, e.error_description))
                .unwrap_or_default();
            let reason = format!("the token URI answered {status} {}", clip(&why));
            tracing::warn!(%reason, "no access token");
            return Err(if retryable(status) {
                TokenError::Transient {
                    reason,
                    retry_after,
                }
            } else {
                TokenError::Refused(reason)
            });
        }
        let grant: TokenGrant = serde_json::from_str(&text).map_err(|e| TokenError::Transient {
            reason: format!("the token URI's answer is not a token grant: {e}"),
            retry_after: None,
        })?;
        if grant.access_token.is_empty()
            || grant
                .token_type
                .as_deref()
                .is_some_and(|t| !t.eq_ignore_ascii_case("Bearer"))
        {
            return Err(TokenError::Refused(
                "the token URI granted no bearer token".into(),
            ));
        }
        let lifetime = Duration::from_secs(grant.expires_in);
        let usable = if lifetime > REFRESH_MARGIN * 2 {
            lifetime - REFRESH_MARGIN
        } else {
            lifetime / 2
        };
        tracing::debug!(expires_in = grant.expires_in, "fetched an access token");
        Ok(AccessToken {
            value: grant.access_token,
            refresh_at: asked + usable,
        })
    }
}

fn gave_up(why: &'static str, reason: String, attempts: u32) -> PushOutcome {
    metrics::counter!(FCM_GAVE_UP, "why" => why).increment(1);
    tracing::warn!(%reason, attempts, why, "gave up a push");
    PushOutcome::GaveUp { reason, attempts }
}

/// Signs the OAuth assertions.
struct Assertions {
    key: EncodingKey,
    header: Header,
    issuer: String,
    audience: String,
}

/// An assertion's claims (Google's "Using OAuth 2.0 for Server to Server
/// Applications").
#[derive(Serialize)]
struct AssertionClaims<'a> {
    iss: &'a str,
    scope: &'a str,
    aud: &'a str,
    iat: u64,
    exp: u64,
}

impl Assertions {
    fn sign(&self) -> Result<String, jsonwebtoken::errors::Error> {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = AssertionClaims {
            iss: &self.issuer,
            scope: FIREBASE_MESSAGING_SCOPE,
            aud: &self.audience,
            iat,
            exp: iat + ASSERTION_LIFETIME_S,
        };
        jsonwebtoken::encode(&self.header, &claims, &self.key)
    }
}

/// A cached access token. No `Debug`: it is a credential.
struct AccessToken {
    value: String,
    /// [`REFRESH_MARGIN`] before it expires.
    refresh_at: Instant,
}

/// The token URI's answer.
#[derive(Deserialize)]
struct TokenGrant {
    access_token: String,
    expires_in: u64,
    #[serde(default)]
    token_type: Option<String>,
}

/// The token URI's error (RFC 6749 §5.2).
#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: String,
}

enum TokenError {
    Transient {
        reason: String,
        retry_after: Option<Duration>,
    },
    Refused(String),
}

/// What one try came to.
#[derive(Debug, PartialEq, Eq)]
enum Try {
    Sent(String),
    /// The device token is dead: why, for the log.
    Unregistered(String),
    /// For good.
    Refused(String),
    /// The access token was refused.
    Unauthorized(String),
    /// Worth another try: `cause` labels the retry metric.
    Transient {
        cause: String,
        reason: String,
        retry_after: Option<Duration>,
    },
}

/// FCM's answer to `messages:send`, judged.
fn classify(status: StatusCode, body: &str, retry_after: Option<Duration>) -> Try {
    if status.is_success() {
        let name = serde_json::from_str::<SendResponse>(body)
            .map(|r| r.name)
            .unwrap_or_default();
        return Try::Sent(name);
    }
    let google = serde_json::from_str::<GoogleErrorBody>(body)
        .ok()
        .map(|b| b.error);
    let reason = match &google {
        Some(e) => format!(
            "FCM answered {status} {}{}: {}",
            e.status,
            e.fcm_error_code()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default(),
            clip(&e.message)
        ),
        None => format!("FCM answered {status} without an FCM error"),
    };
    let google = google.unwrap_or_default();
    if google.fcm_error_code() == Some("UNREGISTERED") {
        return Try::Unregistered(reason);
    }
    match status {
        StatusCode::UNAUTHORIZED => Try::Unauthorized(reason),
        // A 404 without Google's envelope is not FCM speaking (a wrong
        // send_base, a proxy): removing every token on it would be a
        // disaster, so it is refused instead.
        StatusCode::NOT_FOUND if !google.status.is_empty() => Try::Unregistered(reason),
        StatusCode::BAD_REQUEST
            if google.is_invalid_argument() && google.names_registration_token() =>
        {
            Try::Unregistered(reason)
        }
        s if retryable(s) => Try::Transient {
            cause: s.as_u16().to_string(),
            reason,
            retry_after,
        },
        // 400 and 403 (`SENDER_ID_MISMATCH` too: it may as well mean the
        // project is misconfigured, and then every token would go), and
        // anything unexpected.
        _ => Try::Refused(reason),
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// `{"name": "projects/p/messages/123"}`.
#[derive(Deserialize)]
struct SendResponse {
    name: String,
}

/// Google's error envelope (see the module doc).
#[derive(Deserialize)]
struct GoogleErrorBody {
    error: GoogleError,
}

#[derive(Default, Deserialize)]
struct GoogleError {
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<serde_json::Value>,
}

impl GoogleError {
    /// The `errorCode` of the `google.firebase.fcm.v1.FcmError` detail.
    fn fcm_error_code(&self) -> Option<&str> {
        self.details
            .iter()
            .find_map(|d| d.get("errorCode")?.as_str())
    }

    fn is_invalid_argument(&self) -> bool {
        self.status == "INVALID_ARGUMENT" || self.fcm_error_code() == Some("INVALID_ARGUMENT")
    }

    /// Whether the complaint is about the device token: FCM says "The
    /// registration token is not a valid FCM registration token", and/or a
    /// `google.rpc.BadRequest` field violation on `message.token`.
    fn names_registration_token(&self) -> bool {
        self.message
            .to_ascii_lowercase()
            .contains("registration token")
            || self.details.iter().any(|d| {
                d.get("fieldViolations")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|violations| {
                        violations.iter().any(|v| {
                            v.get("field").and_then(serde_json::Value::as_str)
                                == Some("message.token")
                        })
                    })
            })
    }
}

/// `messages:send`'s body:
///
/// ```json
/// {"message": {
///   "token": "<device token>",
///   "notification": {"title": "...", "body": "..."},
///   "data": {"k": "v"},                              // left out when empty
///   "android": {"collapse_key": "<key>", "priority": "high"},
///   "apns": {"headers": {"apns-collapse-id": "<key>", "apns-priority": "10"}},
///   "webpush": {"headers": {"Topic": "<hex>", "Urgency": "high"}}
/// }}
/// ```
///
/// `data` keys FCM reserves are renamed ([`data_key`]). The collapse fields
/// only with a collapse key. Every platform's block is
/// sent whatever the device's platform: FCM applies the one that fits.
/// APNs takes collapse ids up to 64 bytes and Web Push topics of at most 32
/// URL-safe base64 characters, so those are derived from the key (see
/// [`collapse_digest`]) when it does not fit.
#[derive(Serialize)]
struct SendRequest<'a> {
    message: Message<'a>,
}

#[derive(Serialize)]
struct Message<'a> {
    token: &'a str,
    notification: Notification<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    data: BTreeMap<String, &'a str>,
    android: AndroidConfig<'a>,
    apns: Headers,
    webpush: Headers,
}

#[derive(Serialize)]
struct Notification<'a> {
    title: &'a str,
    body: &'a str,
}

#[derive(Serialize)]
struct AndroidConfig<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    collapse_key: Option<&'a str>,
    priority: &'static str,
}

#[derive(Serialize)]
struct Headers {
    headers: BTreeMap<&'static str, String>,
}

impl<'a> SendRequest<'a> {
    fn new(push: &'a Push) -> Self {
        let key = push.collapse_key.as_deref();
        let mut apns = BTreeMap::from([("apns-priority", "10".to_owned())]);
        let mut webpush = BTreeMap::from([("Urgency", "high".to_owned())]);
        if let Some(key) = key {
            let collapse_id = if key.len() <= MAX_APNS_COLLAPSE_ID {
                key.to_owned()
            } else {
                collapse_digest(key)
            };
            apns.insert("apns-collapse-id", collapse_id);
            webpush.insert("Topic", collapse_digest(key));
        }
        SendRequest {
            message: Message {
                token: &push.token,
                notification: Notification {
                    title: &push.title,
                    body: &push.body,
                },
                data: push
                    .data
                    .iter()
                    .map(|(k, v)| (data_key(k), v.as_str()))
                    .collect(),
                android: AndroidConfig {
                    collapse_key: key,
                    priority: "high",
                },
                apns: Headers { headers: apns },
                webpush: Headers { headers: webpush },
            },
        }
    }
}

/// A `data` key as FCM takes it: FCM refuses a message whose data uses one
/// of its reserved words (`from`, `notification`, `message_type`,
/// `collapse_key`, or a `google.` or `gcm.` prefix), so those go as
/// `dd_<key>` (`from` → `dd_from`); every other key is itself.
pub fn data_key(key: &str) -> String {
    const RESERVED: [&str; 4] = ["from", "notification", "message_type", "collapse_key"];
    if RESERVED.contains(&key) || key.starts_with("google.") || key.starts_with("gcm.") {
        format!("dd_{key}")
    } else {
        key.to_owned()
    }
}

/// 32 hex digits of SHA-256(key): fits a Web Push `Topic` (≤ 32 characters
/// of the URL-safe base64 alphabet) and an `apns-collapse-id`, and is the
/// same for the same key on every notifier.
fn collapse_digest(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `application/x-www-form-urlencoded` (WHATWG): `*-._` and alphanumerics
/// as they are, space as `+`, every other byte `%XX`.
fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'*' | b'-' | b'.' | b'_' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{byte:02X}")),
        }
    }
    out
}

/// The n-th retry's backoff (`failures` ≥ 1): `min · 2ⁿ⁻¹` within `max`,
/// plus `jitter` (0..1) times half of it, within `max`.
fn backoff(min: Duration, max: Duration, failures: u32, jitter: f64) -> Duration {
    let factor = 2u32.saturating_pow(failures.saturating_sub(1));
    let base = min.saturating_mul(factor).min(max);
    base.saturating_add(base.mul_f64(jitter.clamp(0.0, 1.0) / 2.0))
        .min(max)
}

/// Uniform in 0..1 from the OS; none (0) if it has nothing to give.
fn jitter() -> f64 {
    const UNIT: f64 = (1u64 << 53) as f64;
    getrandom::u64().map_or(0.0, |r| (r >> 11) as f64 / UNIT)
}

/// `Retry-After`: delta-seconds, or an HTTP date (IMF-fixdate, RFC 9110
/// §5.6.7; the obsolete forms are ignored) from `now` on.
fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = parse_http_date(value)?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(value: &str) -> Option<SystemTime> {
    let (_weekday, rest) = value.split_once(", ")?;
    let mut parts = rest.split(' ');
    let day: u32 = parts.next()?.parse().ok()?;
    let month = match parts.next()? {
        "Jan" => 1,
        "Feb" => 2,
        "Mar" => 3,
        "Apr" => 4,
        "May" => 5,
        "Jun" => 6,
        "Jul" => 7,
        "Aug" => 8,
        "Sep" => 9,
        "Oct" => 10,
        "Nov" => 11,
        "Dec" => 12,
        _ => return None,
    };
    let year: i64 = parts.next()?.parse().ok()?;
    let mut clock = parts.next()?.split(':');
    let hour: u64 = clock.next()?.parse().ok()?;
    let minute: u64 = clock.next()?.parse().ok()?;
    let second: u64 = clock.next()?.parse().ok()?;
    if parts.next()? != "GMT"
        || parts.next().is_some()
        || clock.next().is_some()
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
    {
        return None;
    }
    let days = u64::try_from(days_from_civil(year, month, day)).ok()?;
    let seconds = days * 86_400 + hour * 3600 + minute * 60 + second;
    UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The metric label of a failed request.
fn network_cause(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "network"
    }
}

/// An error and its causes, `: `-separated (reqwest's own message alone
/// says little). Carries URLs, never headers or bodies.
fn describe(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn clip(text: &str) -> String {
    text.chars().take(MAX_REASON_CHARS).collect()
}

/// A Google service-account key, as the JSON file Google hands out (only
/// the fields used).
#[derive(Clone, Deserialize)]
pub struct ServiceAccountKey {
    pub client_email: String,
    /// PEM, PKCS#8.
    pub private_key: String,
    #[serde(default)]
    pub private_key_id: Option<String>,
    pub token_uri: String,
    #[serde(default)]
    pub project_id: Option<String>,
}

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceAccountKey")
            .field("client_email", &self.client_email)
            .field("token_uri", &self.token_uri)
            .finish_non_exhaustive()
    }
}

/// Where and how to push.
#[derive(Clone, Debug)]
pub struct FcmConfig {
    pub key: ServiceAccountKey,
    /// The Firebase project; defaults to the key's.
    pub project_id: Option<String>,
    /// `https://fcm.googleapis.com` in production; a stand-in in tests.
    pub send_base: String,
    /// Overrides the key's `token_uri` (tests).
    pub token_uri: Option<String>,
    /// Each HTTP request's timeout.
    pub timeout: Duration,
    /// Attempts per push, the first included.
    pub max_attempts: u32,
    /// The first retry's delay; doubles, with jitter, up to `max_backoff`.
    pub min_backoff: Duration,
    pub max_backoff: Duration,
}

impl FcmConfig {
    /// Production endpoints, 5 s timeout, 5 attempts, 200 ms .. 30 s backoff.
    pub fn new(key: ServiceAccountKey) -> Self {
        FcmConfig {
            key,
            project_id: None,
            send_base: "https://fcm.googleapis.com".to_owned(),
            token_uri: None,
            timeout: Duration::from_secs(5),
            max_attempts: 5,
            min_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// One push to one device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Push {
    pub token: String,
    pub platform: Platform,
    pub title: String,
    pub body: String,
    /// Sent as FCM `data` (strings only, as FCM requires).
    pub data: BTreeMap<String, String>,
    /// A newer push with the same key replaces an older one on the device
    /// (`android.collapse_key`, `apns-collapse-id`, webpush `Topic`).
    pub collapse_key: Option<String>,
}

/// What became of a push.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushOutcome {
    /// FCM took it: its message name.
    Sent { name: String, attempts: u32 },
    /// The token is dead (404 / `UNREGISTERED`, or a 400 naming the token):
    /// remove it.
    Unregistered,
    /// Retries ran out, or FCM refused for good (a 400 or 403 not about the
    /// token): the reason, for logs and a metric.
    GaveUp { reason: String, attempts: u32 },
}

/// A configuration FCM cannot be used with.
#[derive(Debug, thiserror::Error)]
pub enum FcmError {
    #[error("the service-account key cannot be read: {0}")]
    Key(String),
    #[error("the FCM configuration is invalid: {0}")]
    Config(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_data_keys_are_renamed() {
        assert_eq!(data_key("from"), "dd_from");
        assert_eq!(data_key("google.x"), "dd_google.x");
        assert_eq!(data_key("match_id"), "match_id");
    }

    fn google_error(code: u16, status: &str, message: &str, details: &str) -> String {
        format!(
            r#"{{"error":{{"code":{code},"message":"{message}","status":"{status}","details":{details}}}}}"#
        )
    }

    fn fcm_detail(code: &str) -> String {
        format!(
            r#"[{{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":"{code}"}}]"#
        )
    }

    #[test]
    fn successes_carry_the_message_name() {
        assert_eq!(
            classify(StatusCode::OK, r#"{"name":"projects/p/messages/1"}"#, None),
            Try::Sent("projects/p/messages/1".into())
        );
    }

    #[test]
    fn dead_tokens_are_unregistered() {
        let unregistered = google_error(
            404,
            "NOT_FOUND",
            "Requested entity was not found.",
            &fcm_detail("UNREGISTERED"),
        );
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &unregistered, None),
            Try::Unregistered(_)
        ));
        let not_found = google_error(404, "NOT_FOUND", "gone", "[]");
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, &not_found, None),
            Try::Unregistered(_)
        ));
        let invalid = google_error(
            400,
            "INVALID_ARGUMENT",
            "The registration token is not a valid FCM registration token",
            &fcm_detail("INVALID_ARGUMENT"),
        );
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &invalid, None),
            Try::Unregistered(_)
        ));
        let field = google_error(
            400,
            "INVALID_ARGUMENT",
            "Invalid value",
            r#"[{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}]"#,
        );
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &field, None),
            Try::Unregistered(_)
        ));
    }

    #[test]
    fn other_refusals_are_final() {
        let bad_data = google_error(
            400,
            "INVALID_ARGUMENT",
            "Invalid value at 'message.data[0].value'",
            &fcm_detail("INVALID_ARGUMENT"),
        );
        assert!(matches!(
            classify(StatusCode::BAD_REQUEST, &bad_data, None),
            Try::Refused(_)
        ));
        let mismatch = google_error(
            403,
            "PERMISSION_DENIED",
            "SenderId mismatch",
            &fcm_detail("SENDER_ID_MISMATCH"),
        );
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, &mismatch, None),
            Try::Refused(_)
        ));
        // Not FCM speaking: no token is removed on it.
        assert!(matches!(
            classify(StatusCode::NOT_FOUND, "<html>nope</html>", None),
            Try::Refused(_)
        ));
        let unauthenticated = google_error(
            401,
            "UNAUTHENTICATED",
            "Request had invalid authentication credentials.",
            "[]",
        );
        assert!(matches!(
            classify(StatusCode::UNAUTHORIZED, &unauthenticated, None),
            Try::Unauthorized(_)
        ));
    }

    #[test]
    fn overload_is_retried_with_its_retry_after() {
        let quota = google_error(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded",
            &fcm_detail("QUOTA_EXCEEDED"),
        );
        let wait = Some(Duration::from_secs(7));
        assert_eq!(
            classify(StatusCode::TOO_MANY_REQUESTS, &quota, wait),
            Try::Transient {
                cause: "429".into(),
                reason: "FCM answered 429 Too Many Requests RESOURCE_EXHAUSTED (QUOTA_EXCEEDED): Quota exceeded".into(),
                retry_after: wait,
            }
        );
        assert!(matches!(
            classify(StatusCode::SERVICE_UNAVAILABLE, "", None),
            Try::Transient { .. }
        ));
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let mut headers = HeaderMap::new();
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777 - 30);
        assert_eq!(retry_after(&headers, now), None);
        headers.insert(RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(120)));
        headers.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers, now), Some(Duration::from_secs(30)));
        let later = now + Duration::from_secs(3600);
        assert_eq!(retry_after(&headers, later), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers, now), None);
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:00 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_835_438_400))
        );
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), None);
    }

    #[test]
    fn backoff_doubles_with_jitter_within_bounds() {
        let (min, max) = (Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(backoff(min, max, 1, 0.0), min);
        assert_eq!(backoff(min, max, 1, 1.0), Duration::from_millis(150));
        assert_eq!(backoff(min, max, 3, 0.0), Duration::from_millis(400));
        assert_eq!(backoff(min, max, 4, 0.99), max);
        assert_eq!(backoff(min, max, 60, 0.5), max);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    #[test]
    fn the_body_has_the_documented_shape() {
        let push = Push {
            token: "device".into(),
            platform: Platform::Web,
            title: "Your turn".into(),
            body: "Alice rolled".into(),
            data: BTreeMap::from([("match".to_owned(), "m1".to_owned())]),
            collapse_key: Some("turn:m1".into()),
        };
        let body = serde_json::to_value(SendRequest::new(&push)).unwrap();
        let topic = collapse_digest("turn:m1");
        assert_eq!(topic.len(), 32);
        assert_eq!(
            body,
            serde_json::json!({"message": {
                "token": "device",
                "notification": {"title": "Your turn", "body": "Alice rolled"},
                "data": {"match": "m1"},
                "android": {"collapse_key": "turn:m1", "priority": "high"},
                "apns": {"headers": {"apns-collapse-id": "turn:m1", "apns-priority": "10"}},
                "webpush": {"headers": {"Topic": topic, "Urgency": "high"}},
            }})
        );

        let plain = Push {
            data: BTreeMap::new(),
            collapse_key: None,
            ..push
        };
        assert_eq!(
            serde_json::to_value(SendRequest::new(&plain)).unwrap(),
            serde_json::json!({"message": {
                "token": "device",
                "notification": {"title": "Your turn", "body": "Alice rolled"},
                "android": {"priority": "high"},
                "apns": {"headers": {"apns-priority": "10"}},
                "webpush": {"headers": {"Urgency": "high"}},
            }})
        );
    }

    #[test]
    fn long_collapse_keys_are_digested_for_apns() {
        let key = "k".repeat(MAX_APNS_COLLAPSE_ID + 1);
        let push = Push {
            token: "t".into(),
            platform: Platform::Ios,
            title: "t".into(),
            body: String::new(),
            data: BTreeMap::new(),
            collapse_key: Some(key.clone()),
        };
        let body = serde_json::to_value(SendRequest::new(&push)).unwrap();
        assert_eq!(
            body["message"]["apns"]["headers"]["apns-collapse-id"],
            serde_json::json!(collapse_digest(&key))
        );
    }

    #[test]
    fn forms_are_urlencoded() {
        assert_eq!(
            form_encode(JWT_BEARER_GRANT),
            "urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer"
        );
        assert_eq!(form_encode("a.b-c_d*e f/é"), "a.b-c_d*e+f%2F%C3%A9");
    }

    #[test]
    fn keys_are_checked_without_showing_them() {
        let err = ServiceAccountKey::from_json(r#"{"client_email":"a@b","private_key":"SECRET"}"#)
            .unwrap_err();
        assert!(err.to_string().contains("token_uri"), "{err}");
        let err = ServiceAccountKey::from_json(
            r#"{"client_email":"a@b","private_key":["SECRET"],"token_uri":"x"}"#,
        )
        .unwrap_err();
        assert!(!err.to_string().contains("SECRET"), "{err}");
        let key = ServiceAccountKey::from_json(
            r#"{"client_email":"a@b","private_key":"not a key","token_uri":"https://o/token","project_id":"p"}"#,
        )
        .unwrap();
        let err = Fcm::new(FcmConfig::new(key)).unwrap_err();
        assert!(matches!(err, FcmError::Key(_)), "{err}");
    }
}
