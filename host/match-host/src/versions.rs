//! Which version of a mode a match plays, and getting it loaded.
//!
//! A new match gets the version the catalog names now ([`ModeSource`]); a
//! running match keeps the exact version it started on (its hash is in the
//! match's meta). A version this host has not loaded yet — published a
//! moment ago, or pinned by a match that started before this host did — is
//! fetched by hash, checked (hash and trusted signature, by the source) and
//! compiled once, off the async threads.
//!
//! Architecture invariant: no NATS here. The source is a trait; the NATS
//! catalog implements it in [`crate::service`].

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use std::time::{Duration, Instant};

use dashdice_catalog::Resolved;
use dashdice_proto::ModeHash;
use dashdice_proto::catalog::Quarantine;
use dashdice_runtime::CallError;
use dashdice_runtime::Mode;
use dashdice_runtime::registry::ModeRegistry;

use crate::MatchError;

/// Bytes on their way, or a refusal.
pub type Fetching<'a> = Pin<Box<dyn Future<Output = Result<Vec<u8>, FetchError>> + Send + 'a>>;

/// Why a version's bytes could not be had.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Refused for good: unsigned, untrusted, forged, tampered, unknown.
    #[error("{0}")]
    Refused(String),
    /// Try again later (NATS down, slow).
    #[error("{0}")]
    Unavailable(String),
}

/// Where published modes come from.
pub trait ModeSource: Send + Sync {
    /// The version a new match of `id` gets; `roll` (0..100) decides a
    /// canary.
    fn resolve(&self, id: &str, roll: u8) -> Resolved;
    /// The checked bytes of a version.
    fn fetch(&self, hash: ModeHash) -> Fetching<'_>;
    /// Whether `hash` is withdrawn for faulting, and the report.
    fn quarantined(&self, hash: ModeHash) -> Option<Quarantine>;
    /// Withdraws a faulting version from new matches, cluster-wide.
    fn quarantine(&self, quarantine: Quarantine) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// When a version's calls fault often enough to be withdrawn: at least
/// `min_faults` faults (traps, limits, invalid results) making up at least
/// `min_share` of its calls on this host within `window`.
#[derive(Clone, Debug)]
pub struct QuarantinePolicy {
    pub window: Duration,
    pub min_faults: u64,
    pub min_share: f64,
}

impl Default for QuarantinePolicy {
    fn default() -> Self {
        QuarantinePolicy {
            window: Duration::from_secs(60),
            min_faults: 3,
            min_share: 0.2,
        }
    }
}

/// Calls and faults of one version in the current window.
#[derive(Default)]
struct Tally {
    since: Option<Instant>,
    calls: u64,
    faults: u64,
    tripped: bool,
}

/// Counter of versions a host withdrew for faulting, by `mode`.
pub const QUARANTINES: &str = "dashdice_mode_quarantines_total";

/// The loaded modes and, if the host follows a catalog, where to get more.
#[derive(Clone)]
pub struct Versions {
    registry: Arc<ModeRegistry>,
    source: Option<Arc<dyn ModeSource>>,
    /// One load per hash at a time: concurrent requests for a version being
    /// fetched wait for that fetch instead of compiling it again.
    loading: Arc<Mutex<HashMap<ModeHash, Arc<tokio::sync::Mutex<()>>>>>,
    pub quarantine: QuarantinePolicy,
    tallies: Arc<Mutex<HashMap<ModeHash, Tally>>>,
    /// This host's name in quarantine reports.
    host: String,
}

impl Versions {
    pub fn new(registry: Arc<ModeRegistry>, source: Option<Arc<dyn ModeSource>>) -> Self {
        Versions {
            registry,
            source,
            loading: Arc::default(),
            quarantine: QuarantinePolicy::default(),
            tallies: Arc::default(),
            host: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "match-host".into()),
                std::process::id()
            ),
        }
    }

    /// Why `mode`'s version plays no more, if it was quarantined: its
    /// running matches then end as void.
    pub fn withdrawn(&self, mode: &Mode) -> Option<String> {
        let q = self.source.as_ref()?.quarantined(mode.hash())?;
        Some(format!(
            "version {} of {} was withdrawn for faulting ({}); the match is void and changes no rating",
            q.hash.short(),
            q.mode,
            q.reason
        ))
    }

    /// Counts a call to `mode`; a fault that pushes the version over the
    /// [`QuarantinePolicy`] withdraws it from new matches everywhere (once).
    /// Returns the result unchanged.
    pub fn observe<T>(&self, mode: &Mode, result: Result<T, CallError>) -> Result<T, CallError> {
        let fault = result.as_ref().err().filter(|e| e.is_mode_fault());
        let tripped = {
            let mut tallies = self.tallies.lock().unwrap_or_else(|p| p.into_inner());
            let tally = tallies.entry(mode.hash()).or_default();
            let now = Instant::now();
            if tally
                .since
                .is_none_or(|t| now.duration_since(t) > self.quarantine.window)
            {
                *tally = Tally {
                    since: Some(now),
                    tripped: tally.tripped,
                    ..Tally::default()
                };
            }
            tally.calls += 1;
            tally.faults += u64::from(fault.is_some());
            let over = fault.is_some()
                && tally.faults >= self.quarantine.min_faults
                && tally.faults as f64 >= self.quarantine.min_share * tally.calls as f64;
            (over && !tally.tripped).then(|| {
                tally.tripped = true;
                (tally.faults, tally.calls)
            })
        };
        if let (Some((faults, calls)), Some(e), Some(source)) = (tripped, fault, &self.source) {
            let report = Quarantine {
                mode: mode.info().id.clone(),
                hash: mode.hash(),
                faults,
                calls,
                reason: e.to_string(),
                by: self.host.clone(),
                at_ms: dashdice_proto::clock::now_ms(),
            };
            tracing::error!(
                mode = %report.mode, version = %report.hash.short(), faults, calls, reason = %report.reason,
                "mode version quarantined: no new matches on it; the previous version takes over"
            );
            metrics::counter!(QUARANTINES, "mode" => report.mode.clone()).increment(1);
            let source = source.clone();
            tokio::spawn(async move { source.quarantine(report).await });
        }
        result
    }

    pub fn registry(&self) -> &ModeRegistry {
        &self.registry
    }

    /// Also follows `source` for published modes.
    pub fn with_source(mut self, source: Arc<dyn ModeSource>) -> Self {
        self.source = Some(source);
        self
    }

    /// The version a new match of `id` starts on.
    pub async fn for_new_match(&self, id: &str, roll: u8) -> Result<Arc<Mode>, MatchError> {
        let Some(source) = &self.source else {
            return self
                .registry
                .current(id)
                .ok_or_else(|| MatchError::UnknownMode(id.to_owned()));
        };
        match source.resolve(id, roll) {
            Resolved::Published(hash) | Resolved::Builtin(hash) => self.load(id, hash).await,
            Resolved::Withdrawn(why) => Err(MatchError::Withdrawn(why)),
            Resolved::Unknown => Err(MatchError::UnknownMode(id.to_owned())),
        }
    }

    /// The exact version a running match was started on.
    pub async fn pinned(&self, id: &str, hash: ModeHash) -> Result<Arc<Mode>, MatchError> {
        if let Some(mode) = self.registry.version(id, hash) {
            return Ok(mode);
        }
        self.load(id, hash).await
    }

    /// Loads `hash` (of mode `id`), fetching it if need be.
    pub async fn load(&self, id: &str, hash: ModeHash) -> Result<Arc<Mode>, MatchError> {
        if let Some(mode) = self.registry.version(id, hash) {
            return Ok(mode);
        }
        let unknown = || MatchError::UnknownMode(format!("{id}@{hash}"));
        let Some(source) = &self.source else {
            return Err(unknown());
        };
        let gate = {
            let mut loading = self.loading.lock().unwrap_or_else(|p| p.into_inner());
            loading.entry(hash).or_default().clone()
        };
        let _turn = gate.lock().await;
        if let Some(mode) = self.registry.version(id, hash) {
            return Ok(mode);
        }
        let loaded = self.fetch_and_add(source.as_ref(), id, hash).await;
        // Done, either way: the next caller finds the version or tries anew.
        self.loading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&hash);
        let mode = loaded?;
        if mode.info().id != id {
            return Err(MatchError::Refused(format!(
                "version {} is mode {:?}, not {id:?}",
                hash.short(),
                mode.info().id
            )));
        }
        Ok(mode)
    }

    async fn fetch_and_add(
        &self,
        source: &dyn ModeSource,
        id: &str,
        hash: ModeHash,
    ) -> Result<Arc<Mode>, MatchError> {
        let bytes = source.fetch(hash).await.map_err(|e| match e {
            FetchError::Refused(why) => {
                MatchError::Refused(format!("{id}@{}: {why}", hash.short()))
            }
            FetchError::Unavailable(why) => MatchError::Unreachable(why),
        })?;
        let registry = self.registry.clone();
        tokio::task::spawn_blocking(move || registry.add(&bytes))
            .await
            .map_err(|e| MatchError::Interrupted(e.to_string()))?
            .map_err(|e| MatchError::Refused(format!("{id}@{}: {e}", hash.short())))
    }
}
