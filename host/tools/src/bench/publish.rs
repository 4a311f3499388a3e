//! `dashdice bench publish`: how long after `mode publish` returns a new
//! version is loaded (fetched, verified, compiled) on every match host.
//!
//! The hosts are real match-host catalog followers, in this process so their
//! registries can be watched: each has its own NATS connection, its own
//! runtime (no artifact cache: every version is compiled, as on a host that
//! never saw it) and the same background preloading `dashdice match-host`
//! runs. Each publish is a new version of the given component (the same
//! bytes with a numbered custom section appended, so a new SHA-256).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashdice_catalog::{Catalog, ModeBook, PublisherKey, TrustedKeys};
use dashdice_match_host::published::{CatalogSource, preload};
use dashdice_match_host::versions::Versions;
use dashdice_mode_sdk::ModeInfo;
use dashdice_proto::ModeHash;
use dashdice_runtime::registry::ModeRegistry;
use dashdice_runtime::{Limits, Runtime};
use serde::Serialize;

use super::Samples;

#[derive(Clone, Debug)]
pub struct PublishOptions {
    pub publishes: usize,
    pub hosts: usize,
    /// Give up on a version not loaded everywhere after this long.
    pub timeout: Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishBenchError {
    #[error("{0}")]
    Catalog(#[from] dashdice_catalog::CatalogError),
    #[error("the component does not load: {0}")]
    Load(#[from] dashdice_runtime::LoadError),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("version {0} was not loaded on every host within {1:?}")]
    NotLoaded(ModeHash, Duration),
}

/// Milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct PublishReport {
    pub publishes: usize,
    pub hosts: usize,
    pub component_bytes: usize,
    /// `Catalog::publish` itself (store the object, move the pointer).
    pub publish_call_ms: Quantiles,
    /// From publish returning until every host has the version loaded.
    pub loaded_everywhere_ms: Quantiles,
}

#[derive(Clone, Debug, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Quantiles {
    fn of(samples: &Samples) -> Self {
        let ms = |q| samples.quantile(q) as f64 / 1000.0;
        Quantiles {
            p50: ms(0.5),
            p99: ms(0.99),
            max: ms(1.0),
        }
    }
}

impl PublishReport {
    pub fn render(&self) -> String {
        let q = |q: &Quantiles| {
            format!(
                "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
                q.p50, q.p99, q.max
            )
        };
        format!(
            "{} publishes of a {} KiB component, {} hosts\n  publish call:                 {}\n  publish → loaded on every host: {}\n",
            self.publishes,
            self.component_bytes / 1024,
            self.hosts,
            q(&self.publish_call_ms),
            q(&self.loaded_everywhere_ms),
        )
    }
}

/// The `n`th version of `bytes`: a custom section named
/// `dashdice-bench` holding `n` appended (components may end with custom
/// sections; they change the hash, not the behaviour).
pub fn nth_version(bytes: &[u8], n: u64) -> Vec<u8> {
    let name = b"dashdice-bench";
    let payload = n.to_le_bytes();
    let mut out = bytes.to_vec();
    out.push(0); // custom section id
    out.push((1 + name.len() + payload.len()) as u8); // size (< 128: one LEB128 byte)
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

/// Runs the bench against the NATS of `connect()` (each call a new client).
pub async fn publish_bench<F, Fut>(
    connect: F,
    component: &[u8],
    options: &PublishOptions,
    on_progress: &(dyn Fn(usize) + Sync),
) -> Result<PublishReport, PublishBenchError>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<async_nats::Client, String>>,
{
    let key = PublisherKey::generate()
        .map_err(|e| dashdice_catalog::CatalogError::Corrupt(format!("no publisher key: {e}")))?;
    let trusted = TrustedKeys::new([key.public()]);
    let info: ModeInfo = Runtime::new(Limits::default())?
        .load(component)?
        .info()
        .clone();
    let designer = connect().await.map_err(PublishBenchError::Nats)?;
    let catalog = Catalog::create(&designer).await?;
    let mut registries: Vec<Arc<ModeRegistry>> = Vec::new();
    let mut tasks = Vec::new();
    for _ in 0..options.hosts {
        let client = connect().await.map_err(PublishBenchError::Nats)?;
        let registry = Arc::new(ModeRegistry::new(Runtime::new(Limits::default())?));
        let book = ModeBook::new([]);
        let (source, following) =
            CatalogSource::follow(&client, book.clone(), trusted.clone()).await?;
        let versions = Versions::new(registry.clone(), Some(source));
        tasks.push(following);
        tasks.push(tokio::spawn(preload(versions, book)));
        registries.push(registry);
    }
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let (mut calls, mut loaded) = (Samples::default(), Samples::default());
    for n in 0..options.publishes {
        let bytes = nth_version(component, started.wrapping_add(n as u64));
        let hash = ModeHash::of(&bytes);
        let call = Instant::now();
        catalog.publish(&bytes, info.clone(), &key, "bench").await?;
        let returned = Instant::now();
        calls.record(returned.duration_since(call).as_micros() as u64);
        while !registries.iter().all(|r| r.loaded(hash).is_some()) {
            if returned.elapsed() > options.timeout {
                tasks.iter().for_each(|t| t.abort());
                return Err(PublishBenchError::NotLoaded(hash, options.timeout));
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        loaded.record(returned.elapsed().as_micros() as u64);
        on_progress(n + 1);
    }
    tasks.iter().for_each(|t| t.abort());
    Ok(PublishReport {
        publishes: options.publishes,
        hosts: options.hosts,
        component_bytes: component.len(),
        publish_call_ms: Quantiles::of(&calls),
        loaded_everywhere_ms: Quantiles::of(&loaded),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_differ_only_by_their_trailing_section() {
        let base = b"\0asm\x0d\0\x01\0".to_vec();
        let (a, b) = (nth_version(&base, 1), nth_version(&base, 2));
        assert_ne!(ModeHash::of(&a), ModeHash::of(&b));
        assert_eq!(&a[..base.len()], &base[..]);
        assert_eq!(a.len(), base.len() + 2 + 1 + 14 + 8);
    }
}
