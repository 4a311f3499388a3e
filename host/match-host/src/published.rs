//! Published modes on a match host: following the NATS catalog, fetching
//! signed components, loading new versions as soon as they are named.
//!
//! The NATS side of [`crate::versions`]: [`CatalogSource`] implements
//! [`ModeSource`] over `dashdice-catalog`, trusting only the configured
//! publisher keys; [`preload`] loads each newly named version in the
//! background, so the first match on it does not wait for a compile.

use std::sync::Arc;
use std::time::Duration;

use dashdice_catalog::{Catalog, CatalogError, ModeBook, Resolved, TrustedKeys};
use dashdice_proto::ModeHash;
use dashdice_proto::catalog::Quarantine;

use crate::versions::{FetchError, Fetching, ModeSource, Versions};

/// Published modes from the catalog on NATS.
pub struct CatalogSource {
    book: ModeBook,
    catalog: Catalog,
    trusted: TrustedKeys,
}

impl CatalogSource {
    /// Opens (creating if missing) the catalog's buckets and follows them.
    pub async fn follow(
        client: &async_nats::Client,
        book: ModeBook,
        trusted: TrustedKeys,
    ) -> Result<(Arc<Self>, tokio::task::JoinHandle<()>), CatalogError> {
        let catalog = Catalog::create(client).await?;
        let following = book.follow(catalog.clone()).await?;
        if trusted.is_empty() {
            tracing::warn!(
                "no trusted publisher keys: this host refuses every published mode (built-in modes only)"
            );
        }
        let source = Arc::new(CatalogSource {
            book,
            catalog,
            trusted,
        });
        Ok((source, following))
    }

    pub fn book(&self) -> &ModeBook {
        &self.book
    }

    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }
}

impl ModeSource for CatalogSource {
    fn resolve(&self, id: &str, roll: u8) -> Resolved {
        self.book.resolve(id, roll)
    }

    fn quarantined(&self, hash: ModeHash) -> Option<Quarantine> {
        self.book.quarantine_of(&hash)
    }

    fn quarantine(
        &self,
        quarantine: Quarantine,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // Retried: a quarantine must not be lost to a NATS blip.
            for attempt in 0..10u32 {
                match self.catalog.quarantine(&quarantine).await {
                    Ok(_) => return,
                    Err(e) => {
                        tracing::warn!(error = %e, attempt, "could not store a quarantine; retrying");
                        tokio::time::sleep(Duration::from_millis(200 << attempt.min(5))).await;
                    }
                }
            }
        })
    }

    fn fetch(&self, hash: ModeHash) -> Fetching<'_> {
        Box::pin(async move {
            self.catalog
                .fetch(hash, &self.trusted)
                .await
                .map_err(|e| match e {
                    CatalogError::Nats(_) | CatalogError::Missing(_) => {
                        FetchError::Unavailable(e.to_string())
                    }
                    refused => {
                        // Loud: a host refusing a named version is an
                        // operator's problem (wrong key, tampering).
                        tracing::error!(version = %hash.short(), error = %refused, "published mode refused");
                        metrics::counter!(REFUSED_COMPONENTS).increment(1);
                        FetchError::Refused(refused.to_string())
                    }
                })
        })
    }
}

/// Counter of published components a host refused (bad or untrusted
/// signature, tampered bytes, not a mode).
pub const REFUSED_COMPONENTS: &str = "dashdice_mode_components_refused_total";

/// Loads every version the book names for new matches (canaries included)
/// as soon as it is named, and again after each change; runs until dropped.
pub async fn preload(versions: Versions, book: ModeBook) {
    let mut changes = book.changes();
    // Refused for good (bad signature, not a mode): said once, not retried.
    let mut refused = std::collections::HashSet::new();
    loop {
        for pointer in book.pointers() {
            let mut wanted: Vec<ModeHash> = Vec::new();
            for roll in [0u8, 99] {
                if let Resolved::Published(hash) = book.resolve(&pointer.id, roll) {
                    wanted.push(hash);
                }
            }
            wanted.dedup();
            for hash in wanted {
                if versions.registry().loaded(hash).is_some() || refused.contains(&hash) {
                    continue;
                }
                match versions.load(&pointer.id, hash).await {
                    Ok(_) => {
                        tracing::info!(mode = %pointer.id, version = %hash.short(), "published version ready")
                    }
                    Err(e) => {
                        if matches!(e, crate::MatchError::Refused(_)) {
                            refused.insert(hash);
                        }
                        tracing::error!(mode = %pointer.id, version = %hash.short(), error = %e, "published version not loaded");
                    }
                }
            }
        }
        // Wait for the next change; a closed channel (book gone) ends this.
        tokio::select! {
            changed = changes.changed() => if changed.is_err() { return },
            // A fetch that failed for want of NATS is tried again.
            _ = tokio::time::sleep(Duration::from_secs(5)) => {}
        }
    }
}
