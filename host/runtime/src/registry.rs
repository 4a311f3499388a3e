//! Which modes this host can run: by id, then by version hash.
//!
//! Installing a component makes it the *current* version of its id; earlier
//! versions stay loaded, so a match keeps running on the exact version it
//! started with while new matches get the new one. Designers ship a mode by
//! installing new bytes; the host never restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use serde::Serialize;

use crate::{LoadError, Mode, ModeHash, Runtime};

/// A summary for listings.
#[derive(Clone, Debug, Serialize)]
pub struct ModeSummary {
    pub id: String,
    pub name: String,
    pub current: ModeHash,
    pub versions: usize,
}

#[derive(Default)]
struct Versions {
    current: Option<ModeHash>,
    by_hash: HashMap<ModeHash, Arc<Mode>>,
}

/// Loaded modes, shared by every match the host runs.
pub struct ModeRegistry {
    runtime: Runtime,
    modes: RwLock<BTreeMap<String, Versions>>,
}

impl ModeRegistry {
    pub fn new(runtime: Runtime) -> Self {
        ModeRegistry {
            runtime,
            modes: RwLock::new(BTreeMap::new()),
        }
    }

    /// A registry with the four built-in modes installed.
    pub fn with_builtins(runtime: Runtime) -> Result<Self, LoadError> {
        let registry = Self::new(runtime);
        for (_, bytes) in crate::builtin::MODES {
            registry.install(bytes)?;
        }
        Ok(registry)
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }

    /// Loads a component and makes it the current version of its mode id.
    /// Installing the same bytes again is a no-op that returns the loaded mode.
    pub fn install(&self, bytes: &[u8]) -> Result<Arc<Mode>, LoadError> {
        let hash = ModeHash::of(bytes);
        if let Some(mode) = self.find(hash) {
            self.write()
                .entry(mode.info().id.clone())
                .or_default()
                .current = Some(hash);
            return Ok(mode);
        }
        let mode = Arc::new(self.runtime.load(bytes)?);
        let mut modes = self.write();
        let versions = modes.entry(mode.info().id.clone()).or_default();
        versions.by_hash.insert(hash, mode.clone());
        versions.current = Some(hash);
        tracing::info!(mode = %mode.info().id, version = %hash.short(), "mode installed");
        Ok(mode)
    }

    /// Loads a component and keeps it beside the mode's other versions,
    /// without making it current (unless its mode had none): how a host
    /// takes a published or pinned version. Loading bytes already loaded is
    /// a no-op.
    pub fn add(&self, bytes: &[u8]) -> Result<Arc<Mode>, LoadError> {
        let hash = ModeHash::of(bytes);
        if let Some(mode) = self.find(hash) {
            return Ok(mode);
        }
        let mode = Arc::new(self.runtime.load(bytes)?);
        let mut modes = self.write();
        let versions = modes.entry(mode.info().id.clone()).or_default();
        versions.by_hash.insert(hash, mode.clone());
        versions.current.get_or_insert(hash);
        tracing::info!(mode = %mode.info().id, version = %hash.short(), "mode version loaded");
        Ok(mode)
    }

    /// A loaded version, whatever its mode.
    pub fn loaded(&self, hash: ModeHash) -> Option<Arc<Mode>> {
        self.find(hash)
    }

    /// The current version of a mode.
    pub fn current(&self, id: &str) -> Option<Arc<Mode>> {
        let modes = self.read();
        let versions = modes.get(id)?;
        versions.by_hash.get(&versions.current?).cloned()
    }

    /// One exact version of a mode.
    pub fn version(&self, id: &str, hash: ModeHash) -> Option<Arc<Mode>> {
        self.read().get(id)?.by_hash.get(&hash).cloned()
    }

    pub fn list(&self) -> Vec<ModeSummary> {
        self.read()
            .iter()
            .filter_map(|(id, v)| {
                let current = v.current?;
                let mode = v.by_hash.get(&current)?;
                Some(ModeSummary {
                    id: id.clone(),
                    name: mode.info().name.clone(),
                    current,
                    versions: v.by_hash.len(),
                })
            })
            .collect()
    }

    fn find(&self, hash: ModeHash) -> Option<Arc<Mode>> {
        self.read()
            .values()
            .find_map(|v| v.by_hash.get(&hash).cloned())
    }

    // Lock poisoning cannot leave the maps half-updated (each write is one
    // insert), so a poisoned lock is still safe to use.
    fn read(&self) -> RwLockReadGuard<'_, BTreeMap<String, Versions>> {
        self.modes.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<String, Versions>> {
        self.modes.write().unwrap_or_else(|p| p.into_inner())
    }
}
