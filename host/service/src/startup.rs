//! The one start-up path of every role process: the Tokio runtime, telemetry
//! and metrics, the NATS connection, and stopping on SIGTERM.
//!
//! `dashdice match-host`, `matchmaker`, `gateway` and `up` all start through
//! these, so a role behaves the same alone or with the others in one process.

use std::future::Future;
use std::net::SocketAddr;

use crate::telemetry::{self, MetricsError, Telemetry};

/// Runs `work` to completion on a fresh multi-thread Tokio runtime: the only
/// place a process's runtime is built. The runtime (and every task still on
/// it) is gone when this returns, so servers a caller started for the work
/// (`dashdice up`'s) can be stopped after it.
pub fn block_on<F: Future>(work: F) -> std::io::Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    Ok(runtime.block_on(work))
}

/// Starts a role's telemetry (`service` names it in traces) and, with
/// `metrics`, serves Prometheus metrics there. Keep the result alive for as
/// long as the role runs: dropping it flushes the traces.
pub fn observe(
    service: &str,
    metrics: Option<SocketAddr>,
) -> Result<Option<Telemetry>, MetricsError> {
    let telemetry = telemetry::init(service);
    if let Some(addr) = metrics {
        telemetry::serve_metrics(addr)?;
    }
    Ok(telemetry)
}

/// How a role reaches NATS.
#[derive(Clone, Debug)]
pub struct NatsConfig {
    /// One server's URL, or a cluster's, comma-separated (the client also
    /// learns the cluster's other servers from the one it reaches).
    pub url: String,
    /// User and password (see nats/nats-server.conf for the per-role users).
    pub credentials: Option<(String, String)>,
}

impl NatsConfig {
    /// Connects, naming this client `name` to the server (it shows in
    /// `nats server report connections` and the monitoring endpoint).
    pub async fn connect(&self, name: &str) -> Result<async_nats::Client, String> {
        let mut options = async_nats::ConnectOptions::new().name(name);
        if let Some((user, password)) = &self.credentials {
            options = options.user_and_password(user.clone(), password.clone());
        }
        let servers: Vec<&str> = self.url.split(',').map(str::trim).collect();
        options
            .connect(servers)
            .await
            .map_err(|e| format!("nats at {}: {e}", self.url))
    }
}

/// Waits for Ctrl-C or SIGTERM (how Kubernetes and service managers stop us).
pub async fn stopped() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs `role` until it ends or the process is asked to stop.
pub async fn until_stopped<E: std::fmt::Display>(
    role: impl Future<Output = Result<(), E>>,
) -> Result<(), String> {
    tokio::select! {
        served = role => served.map_err(|e| e.to_string()),
        _ = stopped() => Ok(()),
    }
}
