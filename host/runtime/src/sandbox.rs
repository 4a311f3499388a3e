//! What a mode's store holds: a WASI context with no authority, a bounded
//! stderr, and the limiter.
//!
//! Components built for `wasm32-wasip2` import WASI's stdio, environment, clock
//! and random plumbing even when they never use it, so the host links WASI, but
//! an empty one: no arguments, variables, preopened directories or sockets;
//! clocks frozen at zero; "random" bytes that are all zero. A mode therefore
//! cannot see the outside world, and stays deterministic even if it tries.
//! Stderr is kept (up to a bound) so a panic message can be shown.

use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime_wasi::clocks::{HostMonotonicClock, HostWallClock};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::limits::{Limits, StoreLimiter};

/// The data of one mode store.
pub struct Sandbox {
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
    pub limiter: StoreLimiter,
}

impl Sandbox {
    pub fn new(limits: &Limits) -> Self {
        let stderr = MemoryOutputPipe::new(limits.stderr_bytes);
        let wasi = WasiCtxBuilder::new()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(Deterministic::new(vec![0]))
            .insecure_random(Deterministic::new(vec![0]))
            .insecure_random_seed(0)
            .build();
        Sandbox {
            wasi,
            table: ResourceTable::new(),
            stderr,
            limiter: StoreLimiter::new(limits.clone()),
        }
    }

    /// What the mode wrote to stderr, lossily decoded.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.contents()).into_owned()
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// A clock that always reads zero: modes get no time.
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}
