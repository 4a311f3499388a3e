//! The plugin runtime: loads mode components and runs their calls in a sandbox.
//!
//! One [`Runtime`] owns the wasmtime engine (pooling allocator, fuel), the WASI
//! linker with no authority, and the compile cache. [`Runtime::load`] turns
//! component bytes into a validated [`Mode`]; the mode's calls run on fresh
//! pooled instances under [`Limits`].
//!
//! Architecture invariant: only this crate knows wasmtime. Callers see
//! [`Mode`], [`Step`], [`Acted`], the SDK's domain types and the typed errors.

pub mod builtin;
pub mod fair_dice;
pub mod registry;

mod bindings;
mod cache;
mod error;
mod limits;
mod mode;
mod sandbox;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Enabled, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

pub use dashdice_proto::{BadHash, ModeHash};
pub use error::{CallError, LoadError};
pub use limits::{Limit, Limits, Usage};
pub use mode::{Acted, Mode, Session, Step};

use bindings::ModePre;
use cache::ArtifactCache;
use sandbox::Sandbox;

/// Counter of mode calls stopped by the sandbox or failing, by `mode` and
/// `kind` (fuel, memory, stack, ..., panicked, trapped, invalid_result).
pub const MODE_FAULTS: &str = "dashdice_mode_faults_total";

/// The engine, linker and compile cache shared by every loaded mode.
pub struct Runtime {
    engine: Engine,
    linker: Linker<Sandbox>,
    limits: Arc<Limits>,
    compiled: Mutex<HashMap<ModeHash, Component>>,
    disk: Option<ArtifactCache>,
}

impl Runtime {
    pub fn new(limits: Limits) -> Result<Self, LoadError> {
        let engine = Engine::new(&engine_config(&limits)).map_err(engine_error)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(engine_error)?;
        Ok(Runtime {
            engine,
            linker,
            limits: Arc::new(limits),
            compiled: Mutex::new(HashMap::new()),
            disk: None,
        })
    }

    /// Also keeps precompiled artifacts in `dir`, so a restart does not
    /// recompile. The directory must be as trusted as the binary: artifacts are
    /// native code.
    pub fn with_artifact_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.disk = Some(ArtifactCache::new(dir.into(), &self.engine));
        self
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Compiles (or takes from the cache) and validates a mode component.
    ///
    /// Checks, in order: that the bytes are a component, that its imports are
    /// only what the sandbox provides, that it exports the `game` interface
    /// with the right types, and that its `info` is sound.
    pub fn load(&self, bytes: &[u8]) -> Result<Mode, LoadError> {
        let hash = ModeHash::of(bytes);
        let component = self.compile(bytes, hash)?;
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| LoadError::NotAMode(format!("{e:#}")))?;
        let pre = ModePre::new(pre).map_err(|e| LoadError::NotAMode(format!("{e:#}")))?;
        let mut mode = Mode {
            info: Default::default(),
            hash,
            pre,
            engine: self.engine.clone(),
            limits: self.limits.clone(),
        };
        let info = mode.describe().map_err(LoadError::Info)?;
        validate_info(&info)?;
        mode.info = info;
        Ok(mode)
    }

    fn compile(&self, bytes: &[u8], hash: ModeHash) -> Result<Component, LoadError> {
        // The preamble: magic, then a version and a layer (1 = component).
        const MAGIC: &[u8] = b"\0asm";
        if !(bytes.starts_with(MAGIC) && bytes.get(6..8) == Some(&[1, 0])) {
            let what = if bytes.starts_with(MAGIC) {
                "this is a core WebAssembly module; build modes for wasm32-wasip2, which makes a component"
            } else {
                "the bytes are not WebAssembly"
            };
            return Err(LoadError::NotAComponent(what.into()));
        }
        if let Some(c) = self.lock_compiled().get(&hash) {
            return Ok(c.clone());
        }
        let cached = self.disk.as_ref().and_then(|d| d.get(&self.engine, hash));
        let component = match cached {
            Some(c) => c,
            None => {
                let c = Component::new(&self.engine, bytes)
                    .map_err(|e| LoadError::NotAComponent(format!("{e:#}")))?;
                if let Some(d) = &self.disk {
                    d.put(&c, hash);
                }
                c
            }
        };
        self.lock_compiled().insert(hash, component.clone());
        Ok(component)
    }

    fn lock_compiled(&self) -> std::sync::MutexGuard<'_, HashMap<ModeHash, Component>> {
        // A panic while holding this lock cannot leave the map inconsistent.
        self.compiled.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn engine_error(e: wasmtime::Error) -> LoadError {
    LoadError::Engine(format!("{e:#}"))
}

/// Fuel for deterministic CPU limits, the pooling allocator sized from the
/// limits, and a bounded wasm stack.
fn engine_config(limits: &Limits) -> Config {
    let mut pool = PoolingAllocationConfig::default();
    let live = limits.concurrent_instances;
    pool.total_component_instances(live)
        .total_core_instances(live * limits.core_instances)
        .total_memories(live * 2)
        .total_tables(live * limits.tables)
        .max_core_instances_per_component(limits.core_instances)
        .max_memories_per_component(2)
        .max_tables_per_component(limits.tables)
        .max_tables_per_module(limits.tables)
        .table_elements(limits.table_elements)
        .max_memory_size(limits.memory_bytes)
        // Reset a slot by rewriting only the pages the last instance dirtied
        // (found with PAGEMAP_SCAN, Linux 6.7+), instead of madvise and page
        // faults: this halves the cost of a fresh instance. Up to 2 MiB of dirty
        // pages per slot are reset this way (a typical call dirties ~100 KB);
        // beyond that, as after a memory bomb, the slot is decommitted, which
        // bounds resident memory to 2 MiB per pooled memory.
        .pagemap_scan(Enabled::Auto)
        .linear_memory_keep_resident(limits.memory_bytes.min(2 << 20))
        .table_keep_resident(64 << 10);
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .max_wasm_stack(limits.stack_bytes)
        .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    config
}

fn validate_info(info: &dashdice_mode_sdk::ModeInfo) -> Result<(), LoadError> {
    let bad = |m: String| Err(LoadError::InvalidInfo(m));
    let id_ok = !info.id.is_empty()
        && info.id.len() <= 64
        && info
            .id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !id_ok {
        return bad(format!(
            "id {:?} must be 1-64 characters of a-z, 0-9 and '-'",
            info.id
        ));
    }
    if info.min_players == 0 || info.min_players > info.max_players {
        return bad(format!(
            "players {}..={} is not a valid range",
            info.min_players, info.max_players
        ));
    }
    if info.turn_time_limit_ms == 0 {
        return bad("turn-time-limit-ms must be positive".into());
    }
    if !info.actions.iter().any(|a| a.name == "roll") {
        return bad("a mode must accept `roll`".into());
    }
    Ok(())
}
