//! Who is asking: verifies bearer tokens and issues dev guest tokens.
//!
//! - **Firebase ID tokens**: RS256, signed by a key from the JWKS URL
//!   (Google's by default). Keys are cached for the `max-age` Google sends
//!   (an hour if none) and fetched again early when a token names an unknown
//!   `kid` (Google rotates keys), but at most every [`MIN_REFETCH`], so a
//!   flood of forged `kid`s cannot turn into a flood of fetches.
//!   `iss`, `aud`, `exp`, `iat` and `sub` are checked.
//! - **Dev tokens**: HS256 with a configured secret, `iss` = `dashdice-dev`,
//!   `aud` = `dashdice`. Guest sign-in issues them, in dev mode only.
//!
//! The user id is the token's `sub`, and nothing else.

use dashdice_proto::ErrorCode;
use std::collections::HashMap;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use tokio::sync::{Mutex, RwLock};

use super::error::ApiError;
use dashdice_proto::clock::now_ms;

/// Google's public keys for Firebase ID tokens, as a JWKS.
pub const FIREBASE_JWKS_URL: &str =
    "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com";
/// Dev tokens' issuer and audience.
pub const DEV_ISSUER: &str = "dashdice-dev";
pub const DEV_AUDIENCE: &str = "dashdice";
/// The soonest the JWKS is fetched again for an unknown `kid`, by default.
pub const MIN_REFETCH: Duration = Duration::from_secs(30);
/// Clock skew tolerated on `exp`, `iat` and `nbf`.
const LEEWAY_S: u64 = 30;

#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// The Firebase project id: accept its ID tokens.
    pub firebase_project: Option<String>,
    /// Where its keys are (defaults to [`FIREBASE_JWKS_URL`]).
    pub jwks_url: Option<String>,
    /// Accept HS256 dev tokens signed with this secret.
    pub dev_secret: Option<String>,
    /// Dev mode: anyone may sign in as a new guest (needs `dev_secret`).
    pub guests: bool,
    /// How long a guest token lasts.
    pub guest_ttl: Duration,
    /// The soonest the JWKS is fetched again (for an unknown `kid`, or
    /// after a failed fetch), so forged `kid`s cannot become a flood of
    /// fetches.
    pub jwks_min_refetch: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            firebase_project: None,
            jwks_url: None,
            dev_secret: None,
            guests: false,
            guest_ttl: Duration::from_secs(24 * 3600),
            jwks_min_refetch: MIN_REFETCH,
        }
    }
}

pub struct Auth {
    firebase: Option<Firebase>,
    dev: Option<Dev>,
    guests: bool,
    guest_ttl: Duration,
}

struct Dev {
    decoding: DecodingKey,
    encoding: EncodingKey,
    validation: Validation,
}

struct Firebase {
    jwks_url: String,
    validation: Validation,
    http: reqwest::Client,
    keys: RwLock<Keys>,
    min_refetch: Duration,
    /// Held while fetching, so concurrent misses fetch once.
    fetching: Mutex<()>,
}

#[derive(Default)]
struct Keys {
    by_kid: HashMap<String, DecodingKey>,
    fetched: Option<Instant>,
    max_age: Duration,
}

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default)]
    iat: Option<u64>,
    exp: u64,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<String>,
}

/// A guest's sign-in: `{"token", "user_id", "expires_ms"}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GuestToken {
    pub token: String,
    pub user_id: String,
    pub expires_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthSetupError {
    #[error("guest sign-in needs a dev secret (--dev-secret)")]
    GuestsWithoutSecret,
    #[error("no way to sign in is configured: give --firebase-project, --dev-secret or --dev")]
    Nothing,
    #[error("cannot build the JWKS client: {0}")]
    Http(String),
}

/// Why a dev secret file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DevSecretError {
    #[error("dev secret file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("dev secret file {path} is empty: remove it to have one made, or write a secret in it")]
    Empty { path: String },
    #[error("no randomness for a dev secret: {0}")]
    Random(String),
}

/// The dev secret kept in `path`, made (random, mode 0600) if the file does
/// not exist yet. Tokens signed with it survive restarts, and every
/// gateway given the same file accepts the others'. Processes racing to
/// make it all end with the one that was linked into place first.
pub fn read_or_create_dev_secret(path: &std::path::Path) -> Result<String, DevSecretError> {
    let io = |source| DevSecretError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => return secret_in(path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let secret = dashdice_proto::ids::random_hex::<32>()
        .map_err(|e| DevSecretError::Random(e.to_string()))?;
    let nonce = dashdice_proto::ids::random_hex::<8>()
        .map_err(|e| DevSecretError::Random(e.to_string()))?;
    let mut draft = path.as_os_str().to_owned();
    draft.push(format!(".{nonce}.new"));
    let draft = std::path::PathBuf::from(draft);
    write_private(&draft, &format!("{secret}\n")).map_err(io)?;
    // A hard link never replaces a file: whoever links first wins, and
    // the others read the winner's secret.
    let linked = std::fs::hard_link(&draft, path);
    let _ = std::fs::remove_file(&draft);
    match linked {
        Ok(()) => Ok(secret),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(path).map_err(io)?;
            secret_in(path, &text)
        }
        Err(e) => Err(io(e)),
    }
}

fn secret_in(path: &std::path::Path, text: &str) -> Result<String, DevSecretError> {
    let secret = text.trim();
    if secret.is_empty() {
        return Err(DevSecretError::Empty {
            path: path.display().to_string(),
        });
    }
    Ok(secret.to_owned())
}

#[cfg(unix)]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

#[cfg(not(unix))]
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    std::fs::write(path, text)
}

/// A user id as dashdice accepts it: 1 to 64 letters, digits, `-` or `_`,
/// so it is always one NATS subject token and one Redis key part.
pub fn valid_user_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Auth {
    pub fn new(config: &AuthConfig) -> Result<Self, AuthSetupError> {
        if config.guests && config.dev_secret.is_none() {
            return Err(AuthSetupError::GuestsWithoutSecret);
        }
        if config.firebase_project.is_none() && config.dev_secret.is_none() {
            return Err(AuthSetupError::Nothing);
        }
        let dev = config.dev_secret.as_ref().map(|secret| {
            let mut validation = Validation::new(Algorithm::HS256);
            validation.set_issuer(&[DEV_ISSUER]);
            validation.set_audience(&[DEV_AUDIENCE]);
            validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
            validation.leeway = LEEWAY_S;
            Dev {
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                validation,
            }
        });
        let firebase = match &config.firebase_project {
            None => None,
            Some(project) => {
                let mut validation = Validation::new(Algorithm::RS256);
                validation.set_issuer(&[format!("https://securetoken.google.com/{project}")]);
                validation.set_audience(&[project]);
                validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
                validation.leeway = LEEWAY_S;
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(5))
                    .build()
                    .map_err(|e| AuthSetupError::Http(e.to_string()))?;
                Some(Firebase {
                    jwks_url: config
                        .jwks_url
                        .clone()
                        .unwrap_or_else(|| FIREBASE_JWKS_URL.to_owned()),
                    validation,
                    http,
                    keys: RwLock::new(Keys::default()),
                    min_refetch: config.jwks_min_refetch,
                    fetching: Mutex::new(()),
                })
            }
        };
        Ok(Auth {
            firebase,
            dev,
            guests: config.guests,
            guest_ttl: config.guest_ttl,
        })
    }

    /// Whether guest sign-in is on (dev mode).
    pub fn guests(&self) -> bool {
        self.guests
    }

    /// The user a bearer token speaks for, or `unauthorized` saying why not.
    pub async fn verify(&self, token: &str) -> Result<String, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| ApiError::unauthorized(format!("not a valid token: {e}")))?;
        let claims = match header.alg {
            Algorithm::RS256 => {
                let firebase = self.firebase.as_ref().ok_or_else(|| {
                    ApiError::unauthorized("Firebase tokens are not accepted here")
                })?;
                let kid = header
                    .kid
                    .ok_or_else(|| ApiError::unauthorized("the token names no key (`kid`)"))?;
                let key = firebase.key(&kid).await?;
                decode(token, &key, &firebase.validation)?
            }
            Algorithm::HS256 => {
                let dev = self
                    .dev
                    .as_ref()
                    .ok_or_else(|| ApiError::unauthorized("dev tokens are not accepted here"))?;
                decode(token, &dev.decoding, &dev.validation)?
            }
            other => {
                return Err(ApiError::unauthorized(format!(
                    "tokens signed with {other:?} are not accepted"
                )));
            }
        };
        if let Some(iat) = claims.iat
            && iat > now_ms() / 1000 + LEEWAY_S
        {
            return Err(ApiError::unauthorized("the token was issued in the future"));
        }
        if !valid_user_id(&claims.sub) {
            return Err(ApiError::unauthorized(
                "the token's user id (`sub`) must be 1 to 64 letters, digits, `-` or `_`",
            ));
        }
        Ok(claims.sub)
    }

    /// A dev token for `user_id`, valid for `ttl`.
    pub fn dev_token(&self, user_id: &str, ttl: Duration) -> Result<GuestToken, ApiError> {
        let dev = self
            .dev
            .as_ref()
            .ok_or_else(|| ApiError::not_found("dev tokens are off"))?;
        let now = now_ms() / 1000;
        let exp = now + ttl.as_secs();
        let claims = Claims {
            sub: user_id.to_owned(),
            iat: Some(now),
            exp,
            iss: Some(DEV_ISSUER.to_owned()),
            aud: Some(DEV_AUDIENCE.to_owned()),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &dev.encoding)
            .map_err(|e| ApiError::internal(format!("signing a token: {e}")))?;
        Ok(GuestToken {
            token,
            user_id: user_id.to_owned(),
            expires_ms: exp * 1000,
        })
    }

    /// Signs in a new guest (dev mode only).
    pub fn guest(&self) -> Result<GuestToken, ApiError> {
        if !self.guests {
            return Err(ApiError::not_found(
                "guest sign-in is on only in dev mode (dashdice up, or gateway --dev)",
            ));
        }
        let id = dashdice_proto::ids::random_hex::<6>()
            .map_err(|e| ApiError::internal(format!("no randomness for a guest id: {e}")))?;
        self.dev_token(&format!("guest-{id}"), self.guest_ttl)
    }
}

fn decode(token: &str, key: &DecodingKey, validation: &Validation) -> Result<Claims, ApiError> {
    use jsonwebtoken::errors::ErrorKind;
    jsonwebtoken::decode::<Claims>(token, key, validation)
        .map(|data| data.claims)
        .map_err(|e| {
            ApiError::unauthorized(match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired".to_owned(),
                ErrorKind::InvalidAudience => "the token is for another audience".to_owned(),
                ErrorKind::InvalidIssuer => "the token is from another issuer".to_owned(),
                ErrorKind::InvalidSignature => "the token's signature is not valid".to_owned(),
                ErrorKind::ImmatureSignature => "the token is not valid yet".to_owned(),
                ErrorKind::MissingRequiredClaim(claim) => {
                    format!("the token lacks the `{claim}` claim")
                }
                _ => format!("the token is not valid: {e}"),
            })
        })
}

impl Firebase {
    async fn key(&self, kid: &str) -> Result<DecodingKey, ApiError> {
        {
            let keys = self.keys.read().await;
            let fresh = keys.fetched.is_some_and(|at| at.elapsed() < keys.max_age);
            if let Some(key) = keys.by_kid.get(kid)
                && fresh
            {
                return Ok(key.clone());
            }
        }
        let _fetching = self.fetching.lock().await;
        // Another caller may have fetched while we waited.
        {
            let keys = self.keys.read().await;
            let recent = keys
                .fetched
                .is_some_and(|at| at.elapsed() < self.min_refetch);
            let fresh = keys.fetched.is_some_and(|at| at.elapsed() < keys.max_age);
            match keys.by_kid.get(kid) {
                Some(key) if fresh => return Ok(key.clone()),
                None if recent => {
                    return Err(ApiError::unauthorized(format!(
                        "the token is signed by an unknown key {kid:?}"
                    )));
                }
                _ => {}
            }
        }
        let fetched = self.fetch().await;
        let mut keys = self.keys.write().await;
        match fetched {
            Ok((by_kid, max_age)) => {
                keys.by_kid = by_kid;
                keys.max_age = max_age;
                keys.fetched = Some(Instant::now());
            }
            Err(e) => {
                tracing::warn!(url = %self.jwks_url, error = %e, "could not fetch the token keys");
                // Keep the keys we had (a brief outage must not sign everyone
                // out), and do not retry at once.
                keys.fetched = Some(Instant::now());
                keys.max_age = self.min_refetch;
                if keys.by_kid.is_empty() {
                    return Err(ApiError::new(
                        ErrorCode::Unavailable,
                        "the token keys cannot be fetched right now",
                    ));
                }
            }
        }
        keys.by_kid.get(kid).cloned().ok_or_else(|| {
            ApiError::unauthorized(format!("the token is signed by an unknown key {kid:?}"))
        })
    }

    async fn fetch(&self) -> Result<(HashMap<String, DecodingKey>, Duration), String> {
        let response = self
            .http
            .get(&self.jwks_url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| e.to_string())?;
        let max_age = response
            .headers()
            .get(reqwest::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(max_age)
            .unwrap_or(Duration::from_secs(3600));
        let set: JwkSet = response.json().await.map_err(|e| e.to_string())?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    by_kid.insert(kid, key);
                }
                Err(e) => tracing::warn!(%kid, error = %e, "skipping an unusable key"),
            }
        }
        Ok((by_kid, max_age.max(self.min_refetch)))
    }
}

/// `max-age=N` of a Cache-Control header.
fn max_age(cache_control: &str) -> Option<Duration> {
    cache_control.split(',').find_map(|part| {
        part.trim()
            .strip_prefix("max-age=")
            .and_then(|n| n.trim().parse().ok())
            .map(Duration::from_secs)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_control_max_age() {
        assert_eq!(
            max_age("public, max-age=19766, must-revalidate, no-transform"),
            Some(Duration::from_secs(19766))
        );
        assert_eq!(max_age("no-store"), None);
    }

    #[test]
    fn a_dev_secret_file_is_made_once_and_read_after() {
        let dir = std::env::temp_dir().join(format!(
            "dashdice-dev-secret-{}-{}",
            std::process::id(),
            dashdice_proto::ids::random_hex::<4>().expect("random")
        ));
        let path = dir.join("state").join("dev-secret");
        let made = read_or_create_dev_secret(&path).expect("made");
        assert_eq!(made.len(), 64, "32 random bytes, hex");
        assert_eq!(read_or_create_dev_secret(&path).expect("read"), made);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("file").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "only the owner reads it");
        }
        let leftovers = std::fs::read_dir(path.parent().expect("dir"))
            .expect("dir")
            .count();
        assert_eq!(leftovers, 1, "no draft left behind");
        let racing: Vec<_> = (0..8)
            .map(|_| {
                let path = dir.join("raced");
                std::thread::spawn(move || read_or_create_dev_secret(&path).expect("secret"))
            })
            .collect();
        let secrets: std::collections::HashSet<_> = racing
            .into_iter()
            .map(|t| t.join().expect("thread"))
            .collect();
        assert_eq!(secrets.len(), 1, "racing makers agree on one secret");
        std::fs::write(dir.join("empty"), " \n").expect("write");
        assert!(matches!(
            read_or_create_dev_secret(&dir.join("empty")),
            Err(DevSecretError::Empty { .. })
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn user_ids() {
        assert!(valid_user_id("guest-5f2c9a1e7b3d"));
        assert!(valid_user_id("Xy3aZkPq9bW2eR7tU1iO0pLmN4s2"));
        assert!(!valid_user_id(""));
        assert!(!valid_user_id("a.b"));
        assert!(!valid_user_id("a b"));
        assert!(!valid_user_id(&"a".repeat(65)));
    }
}
