//! Real servers for integration tests: each test run gets its own
//! `redis-server` and `nats-server` on free loopback ports, in temporary
//! directories, killed when the handle drops. Tests stay hermetic and can run
//! in parallel; nothing is mocked. The processes are started by
//! `dashdice_service::local`, as `dashdice up` starts its own.

use std::net::TcpListener;

use dashdice_service::local::{LocalError, LocalServer, Server};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// Starts `server` on a fresh port (plus `extra(port)` arguments) until one
/// comes up: between [`free_port`] and the bind another test's server may
/// take the port, and then this one exits and is tried again.
fn start(server: Server, mut extra: impl FnMut() -> Vec<String>) -> LocalServer {
    let mut last = None;
    for _ in 0..5 {
        let args = extra();
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        match LocalServer::start(server, free_port(), &args) {
            Ok(started) => return started,
            Err(e @ LocalError::Missing { .. }) => {
                panic!("{e} (or run .ci/test, which installs it)")
            }
            Err(e) => last = Some(e),
        }
    }
    panic!("{server:?} would not start in five tries: {last:?}");
}

/// A private redis-server: no persistence, loopback only.
pub struct RedisServer {
    /// Stopped when this drops.
    _process: LocalServer,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> Self {
        let server = start(Server::Redis, Vec::new);
        RedisServer {
            port: server.port(),
            _process: server,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

/// A private nats-server with JetStream, loopback only. Uses
/// `$DASHDICE_NATS_SERVER` if set (.ci/prepare points it at a current server),
/// else `nats-server` on the PATH.
pub struct NatsServer {
    /// Stopped when this drops.
    _process: LocalServer,
    pub port: u16,
    pub monitor_port: u16,
}

impl NatsServer {
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// As [`start`](Self::start), with extra arguments (ports, address and
    /// store directory given here win over a config file's).
    pub fn start_with(extra: &[&str]) -> Self {
        let mut monitor_port = 0;
        let server = start(Server::Nats, || {
            monitor_port = free_port();
            let mut args: Vec<String> = extra.iter().map(|a| (*a).to_owned()).collect();
            args.extend(["-m".to_owned(), monitor_port.to_string()]);
            args
        });
        NatsServer {
            port: server.port(),
            monitor_port,
            _process: server,
        }
    }

    /// A private nats-server running the project's `nats/nats-server.conf`
    /// (users and permissions), on free ports.
    pub fn start_with_project_config() -> Self {
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../nats/nats-server.conf");
        Self::start_with(&["-c", config])
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}
