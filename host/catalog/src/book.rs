//! The mode book: every role's in-memory view of what is playable now.
//!
//! It starts with the modes built into the binary and follows the catalog's
//! two KV buckets (pointers and quarantines) with JetStream watches, so a
//! publish, rollback, retirement or quarantine reaches every role within
//! moments and without a restart. A full re-read every [`RESYNC`] repairs
//! anything a broken watch missed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_nats::jetstream::kv;
use dashdice_proto::ModeHash;
use dashdice_proto::catalog::{ModeListing, ModePointer, Quarantine};
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::buckets::{Catalog, decode};

/// How often the book re-reads the whole catalog, whatever the watches say.
pub const RESYNC: Duration = Duration::from_secs(30);

/// Which version a new match of a mode gets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolved {
    /// A published version.
    Published(ModeHash),
    /// The binary's built-in version.
    Builtin(ModeHash),
    /// The mode exists but takes no new matches (retired, or every version
    /// quarantined).
    Withdrawn(String),
    Unknown,
}

#[derive(Default)]
struct Pages {
    builtins: BTreeMap<String, ModeListing>,
    pointers: BTreeMap<String, ModePointer>,
    quarantined: BTreeMap<ModeHash, Quarantine>,
}

impl Pages {
    fn is_quarantined(&self, hash: &ModeHash) -> bool {
        self.quarantined.contains_key(hash)
    }
}

/// Shared, cheap to clone.
#[derive(Clone)]
pub struct ModeBook {
    pages: Arc<RwLock<Pages>>,
    changes: watch::Sender<u64>,
}

impl ModeBook {
    /// A book of the built-in modes only.
    pub fn new(builtins: impl IntoIterator<Item = ModeListing>) -> Self {
        let pages = Pages {
            builtins: builtins
                .into_iter()
                .map(|l| (l.info.id.clone(), l))
                .collect(),
            ..Default::default()
        };
        ModeBook {
            pages: Arc::new(RwLock::new(pages)),
            changes: watch::channel(0).0,
        }
    }

    /// Which version a new match of `id` gets; `roll` (0..100) picks between
    /// a canary and the current version.
    pub fn resolve(&self, id: &str, roll: u8) -> Resolved {
        Self::resolve_in(&self.read(), id, roll)
    }

    fn resolve_in(pages: &Pages, id: &str, roll: u8) -> Resolved {
        let quarantined = |h: &ModeHash| pages.is_quarantined(h);
        if let Some(p) = pages.pointers.get(id) {
            return match p.pick(quarantined, roll) {
                Some(hash) => Resolved::Published(hash),
                None if p.state == dashdice_proto::catalog::PointerState::Retired => {
                    Resolved::Withdrawn(format!("mode {id} is retired"))
                }
                None => Resolved::Withdrawn(format!(
                    "every version of mode {id} is quarantined for faulting"
                )),
            };
        }
        match pages.builtins.get(id) {
            Some(b) if quarantined(&b.hash) => {
                Resolved::Withdrawn(format!("mode {id} is quarantined for faulting"))
            }
            Some(b) => Resolved::Builtin(b.hash),
            None => Resolved::Unknown,
        }
    }

    pub fn is_playable(&self, id: &str) -> bool {
        matches!(
            self.resolve(id, 0),
            Resolved::Published(_) | Resolved::Builtin(_)
        )
    }

    /// The modes that take new matches, by id.
    pub fn playable(&self) -> Vec<ModeListing> {
        let pages = self.read();
        let quarantined = |h: &ModeHash| pages.is_quarantined(h);
        let mut out: BTreeMap<String, ModeListing> = pages
            .builtins
            .iter()
            .filter(|(_, b)| !quarantined(&b.hash))
            .map(|(id, b)| (id.clone(), b.clone()))
            .collect();
        for (id, p) in &pages.pointers {
            match p.listing(quarantined) {
                Some(listing) => out.insert(id.clone(), listing),
                None => out.remove(id),
            };
        }
        out.into_values().collect()
    }

    /// The ids of the modes that take new matches (what the matchmaker runs
    /// a pass over, several times a second: no listing is cloned for it).
    pub fn playable_ids(&self) -> Vec<String> {
        let pages = self.read();
        let ids: BTreeSet<&String> = pages.builtins.keys().chain(pages.pointers.keys()).collect();
        ids.into_iter()
            .filter(|id| {
                matches!(
                    Self::resolve_in(&pages, id, 0),
                    Resolved::Published(_) | Resolved::Builtin(_)
                )
            })
            .cloned()
            .collect()
    }

    pub fn pointers(&self) -> Vec<ModePointer> {
        self.read().pointers.values().cloned().collect()
    }

    pub fn quarantine_of(&self, hash: &ModeHash) -> Option<Quarantine> {
        self.read().quarantined.get(hash).cloned()
    }

    /// Ticks on every change (publish, rollback, retire, quarantine).
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn set_pointer(&self, key: &str, pointer: Option<ModePointer>) {
        let mut pages = self.write();
        match pointer {
            Some(p) => pages.pointers.insert(key.to_owned(), p),
            None => pages.pointers.remove(key),
        };
        drop(pages);
        self.changes.send_modify(|n| *n += 1);
    }

    fn set_quarantine(&self, key: &str, q: Option<Quarantine>) {
        let Ok(hash) = key.parse::<ModeHash>() else {
            return;
        };
        let mut pages = self.write();
        match q {
            Some(q) => pages.quarantined.insert(hash, q),
            None => pages.quarantined.remove(&hash),
        };
        drop(pages);
        self.changes.send_modify(|n| *n += 1);
    }

    /// Replaces everything known of the catalog with a fresh read.
    pub async fn resync(&self, catalog: &Catalog) -> Result<(), crate::CatalogError> {
        let pointers = catalog.pointers().await?;
        let quarantined = catalog.quarantines().await?;
        let pointers: BTreeMap<_, _> = pointers.into_iter().map(|p| (p.id.clone(), p)).collect();
        let quarantined: BTreeMap<_, _> = quarantined.into_iter().map(|q| (q.hash, q)).collect();
        let mut pages = self.write();
        let changed = pages.pointers != pointers || pages.quarantined != quarantined;
        pages.pointers = pointers;
        pages.quarantined = quarantined;
        drop(pages);
        if changed {
            self.changes.send_modify(|n| *n += 1);
        }
        Ok(())
    }

    /// Reads the catalog once, then follows it until the task is dropped:
    /// a watch per bucket, restarted after any error, and a full re-read
    /// every [`RESYNC`].
    pub async fn follow(
        &self,
        catalog: Catalog,
    ) -> Result<tokio::task::JoinHandle<()>, crate::CatalogError> {
        self.resync(&catalog).await?;
        let book = self.clone();
        Ok(tokio::spawn(async move {
            let pointers = book
                .clone()
                .watch_bucket(catalog.index().clone(), Kind::Pointer);
            let health = book
                .clone()
                .watch_bucket(catalog.health().clone(), Kind::Quarantine);
            let resync = async {
                loop {
                    tokio::time::sleep(RESYNC).await;
                    if let Err(e) = book.resync(&catalog).await {
                        tracing::warn!(error = %e, "mode catalog re-read failed");
                    }
                }
            };
            tokio::join!(pointers, health, resync);
        }))
    }

    /// Follows the catalog on `client` in the background, for roles that
    /// only read it (gateway, matchmaker): until the buckets exist (nothing
    /// published yet) or while NATS is away, the book keeps what it has and
    /// tries again every half second.
    pub fn spawn_follow(&self, client: async_nats::Client) -> tokio::task::JoinHandle<()> {
        let book = self.clone();
        tokio::spawn(async move {
            loop {
                let opened = Catalog::open_index(&client).await;
                match opened {
                    Ok(catalog) => match book.follow(catalog).await {
                        Ok(following) => {
                            let _ = following.await;
                        }
                        Err(e) => tracing::debug!(error = %e, "mode catalog not readable yet"),
                    },
                    Err(e) => tracing::debug!(error = %e, "mode catalog not there yet"),
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    }

    async fn watch_bucket(self, store: kv::Store, kind: Kind) {
        loop {
            match store.watch_with_history(">").await {
                Ok(mut entries) => {
                    while let Some(entry) = entries.next().await {
                        match entry {
                            Ok(e) => self.apply(kind, &e),
                            Err(error) => {
                                tracing::warn!(%error, "mode catalog watch broke; restarting");
                                break;
                            }
                        }
                    }
                }
                Err(error) => tracing::warn!(%error, "cannot watch the mode catalog; retrying"),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    fn apply(&self, kind: Kind, entry: &kv::Entry) {
        let put = entry.operation == kv::Operation::Put;
        match kind {
            Kind::Pointer => match put.then(|| decode::<ModePointer>(&entry.value)).transpose() {
                Ok(p) => self.set_pointer(&entry.key, p),
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "unreadable mode pointer ignored")
                }
            },
            Kind::Quarantine => match put.then(|| decode::<Quarantine>(&entry.value)).transpose() {
                Ok(q) => self.set_quarantine(&entry.key, q),
                Err(e) => {
                    tracing::warn!(key = %entry.key, error = %e, "unreadable quarantine ignored")
                }
            },
        }
    }

    // Each write replaces whole entries, so a poisoned lock is still
    // consistent.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Pages> {
        self.pages.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Pages> {
        self.pages.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Pointer,
    Quarantine,
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashdice_mode_sdk::ModeInfo;
    use dashdice_proto::catalog::PointerState;

    fn listing(id: &str, n: u8) -> ModeListing {
        ModeListing {
            info: ModeInfo {
                id: id.into(),
                ..Default::default()
            },
            hash: ModeHash::from_bytes([n; 32]),
            builtin: true,
        }
    }

    #[test]
    fn published_versions_override_builtins_and_quarantine_withdraws() {
        let book = ModeBook::new([listing("classic", 1)]);
        assert_eq!(
            book.resolve("classic", 0),
            Resolved::Builtin(ModeHash::from_bytes([1; 32]))
        );
        assert_eq!(book.resolve("nope", 0), Resolved::Unknown);
        let h2 = ModeHash::from_bytes([2; 32]);
        let pointer = ModePointer {
            id: "classic".into(),
            state: PointerState::Active,
            current: h2,
            previous: vec![],
            canary: None,
            versions: Default::default(),
            updated_ms: 0,
        };
        book.set_pointer("classic", Some(pointer.clone()));
        assert_eq!(book.resolve("classic", 0), Resolved::Published(h2));
        book.set_quarantine(
            &h2.to_string(),
            Some(Quarantine {
                mode: "classic".into(),
                hash: h2,
                faults: 3,
                calls: 3,
                reason: "trap".into(),
                by: "t".into(),
                at_ms: 0,
            }),
        );
        assert!(matches!(book.resolve("classic", 0), Resolved::Withdrawn(_)));
        assert!(book.playable().is_empty());
        book.set_quarantine(&h2.to_string(), None);
        let mut retired = pointer;
        retired.state = PointerState::Retired;
        book.set_pointer("classic", Some(retired));
        assert!(!book.is_playable("classic"));
    }
}
