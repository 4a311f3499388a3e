//! The hard limits every mode call runs under, and the store limiter that
//! enforces the memory, table and instance ones.
//!
//! Fuel bounds CPU deterministically: the same call burns the same fuel on every
//! machine, so a mode that is over budget is over budget in replays too.

use std::fmt;

use wasmtime::ResourceLimiter;

/// Limits for one call (or one action's calls on a fresh instance).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Fuel (roughly wasm instructions) per action. 1M fuel is about 0.2 ms.
    pub fuel: u64,
    /// Linear memory per instance, in bytes.
    pub memory_bytes: usize,
    /// Tables per instance, and elements per table.
    pub tables: u32,
    pub table_elements: usize,
    /// Core instances per component instance.
    pub core_instances: u32,
    /// Component instances that may be live at once (pool size).
    pub concurrent_instances: u32,
    /// Largest state a mode may return, in bytes.
    pub state_bytes: usize,
    /// Largest public view a mode may return, in bytes.
    pub view_bytes: usize,
    /// Most events one action may return.
    pub events: usize,
    /// Wasm stack, in bytes.
    pub stack_bytes: usize,
    /// How much of a mode's stderr is kept to explain a trap.
    pub stderr_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: 20_000_000,
            memory_bytes: 16 << 20,
            tables: 4,
            table_elements: 10_000,
            core_instances: 16,
            concurrent_instances: 256,
            state_bytes: 64 << 10,
            view_bytes: 64 << 10,
            events: 1_000,
            stack_bytes: 512 << 10,
            stderr_bytes: 4 << 10,
        }
    }
}

/// Which limit a mode ran into. The message names it and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    Fuel { budget: u64 },
    Memory { max_bytes: usize },
    Stack { max_bytes: usize },
    Tables { max: u32, max_elements: usize },
    Instances { max: u32 },
    ConcurrentInstances { max: u32 },
    StateSize { bytes: usize, max_bytes: usize },
    ViewSize { bytes: usize, max_bytes: usize },
    Events { count: usize, max: usize },
}

impl Limit {
    /// A stable name for metrics: `fuel`, `memory`, `stack`, ...
    pub fn kind(&self) -> &'static str {
        match self {
            Limit::Fuel { .. } => "fuel",
            Limit::Memory { .. } => "memory",
            Limit::Stack { .. } => "stack",
            Limit::Tables { .. } => "tables",
            Limit::Instances { .. } => "instances",
            Limit::ConcurrentInstances { .. } => "concurrent_instances",
            Limit::StateSize { .. } => "state_size",
            Limit::ViewSize { .. } => "view_size",
            Limit::Events { .. } => "events",
        }
    }
}

impl fmt::Display for Limit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Limit::Fuel { budget } => write!(f, "CPU limit ({budget} fuel per action)"),
            Limit::Memory { max_bytes } => write!(f, "memory limit ({} KiB)", max_bytes >> 10),
            Limit::Stack { max_bytes } => write!(f, "stack limit ({} KiB)", max_bytes >> 10),
            Limit::Tables { max, max_elements } => {
                write!(f, "table limit ({max} tables of {max_elements} elements)")
            }
            Limit::Instances { max } => write!(f, "instance limit ({max} per component)"),
            Limit::ConcurrentInstances { max } => {
                write!(f, "concurrent instance limit ({max} live instances)")
            }
            Limit::StateSize { bytes, max_bytes } => {
                write!(
                    f,
                    "state size limit ({bytes} bytes returned, {max_bytes} allowed)"
                )
            }
            Limit::ViewSize { bytes, max_bytes } => {
                write!(
                    f,
                    "view size limit ({bytes} bytes returned, {max_bytes} allowed)"
                )
            }
            Limit::Events { count, max } => {
                write!(
                    f,
                    "event count limit ({count} events returned, {max} allowed)"
                )
            }
        }
    }
}

/// What a mode used in one call, measured against [`Limits`]: how close it runs
/// to them, which `dashdice mode check` reports before a mode is published
/// (a limit is only ever met as a failure otherwise).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Fuel burnt by the call (for an action: throw, apply and view together).
    pub fuel: u64,
    /// The largest linear memory the instance has had, in bytes. A warm
    /// instance's memory never shrinks, so on a [`crate::Session`] this covers
    /// every call so far.
    pub memory_bytes: usize,
}

/// Enforces [`Limits`] on one store and remembers the first limit hit, so a
/// trap that follows (an allocation failure aborts a Rust guest) is reported as
/// the limit rather than as a bare trap.
pub struct StoreLimiter {
    limits: Limits,
    pub hit: Option<Limit>,
    /// The largest linear memory allowed so far (initial size included: the
    /// limiter is asked for it too), for [`Usage::memory_bytes`].
    pub peak_memory: usize,
}

impl StoreLimiter {
    pub fn new(limits: Limits) -> Self {
        StoreLimiter {
            limits,
            hit: None,
            peak_memory: 0,
        }
    }

    fn refuse(&mut self, limit: Limit) -> wasmtime::Result<bool> {
        self.hit.get_or_insert(limit);
        Ok(false)
    }
}

impl ResourceLimiter for StoreLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.memory_bytes {
            return self.refuse(Limit::Memory {
                max_bytes: self.limits.memory_bytes,
            });
        }
        self.peak_memory = self.peak_memory.max(desired);
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.limits.table_elements {
            return self.refuse(Limit::Tables {
                max: self.limits.tables,
                max_elements: self.limits.table_elements,
            });
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        self.limits.core_instances as usize
    }

    fn tables(&self) -> usize {
        self.limits.tables as usize
    }

    fn memories(&self) -> usize {
        // One linear memory per core instance at most.
        self.limits.core_instances as usize
    }
}
