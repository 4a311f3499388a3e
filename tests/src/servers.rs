//! Real servers for integration tests: each test run gets its own
//! `redis-server` (and later `nats-server`) on a free loopback port, in a
//! temporary directory, killed when the handle drops. Tests stay hermetic and
//! can run in parallel; nothing is mocked.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral port")
}

/// The binary to run: `$env` if set, else `name` on the PATH (or in /usr/sbin).
fn binary(env: &str, name: &str, install: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return path.into();
    }
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain(["/usr/sbin".into(), "/usr/local/sbin".into()]);
    for dir in candidates {
        let path = dir.join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!("{name} is not installed: {install} (or run .ci/test, which installs it), or set {env}");
}

fn scratch_dir(what: &str, port: u16) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("dashdice-{what}-{}-{port}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

/// Waits until `child` listens on `port`. False if it exited first, as it does
/// when another test's server took the port in the moment between
/// [`free_port`] and the bind (the caller then retries on a new port).
fn wait_for_port(port: u16, child: &mut Child, what: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return false;
        }
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            // The port answers; make sure it is our server that answers.
            std::thread::sleep(Duration::from_millis(30));
            return matches!(child.try_wait(), Ok(None));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within 10 s");
}

/// Starts a server on fresh ports until one comes up (see [`wait_for_port`]).
fn start_server(what: &str, mut spawn: impl FnMut(u16) -> Child) -> (Child, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut child = spawn(port);
        if wait_for_port(port, &mut child, what) {
            return (child, port);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("{what} would not start (it exited during start-up five times)");
}

/// A private redis-server: no persistence, loopback only.
pub struct RedisServer {
    child: Child,
    dir: PathBuf,
    pub port: u16,
}

impl RedisServer {
    pub fn start() -> Self {
        let bin = binary(
            "DASHDICE_REDIS_SERVER",
            "redis-server",
            "apt-get install redis-server",
        );
        let dir = scratch_dir("redis", free_port());
        let (child, port) = start_server("redis-server", |port| {
            Command::new(&bin)
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn redis-server")
        });
        RedisServer { child, dir, port }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private nats-server with JetStream, loopback only. Uses
/// `$DASHDICE_NATS_SERVER` if set (.ci/prepare points it at a current server),
/// else `nats-server` on the PATH.
pub struct NatsServer {
    child: Child,
    dir: PathBuf,
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
        let bin = binary(
            "DASHDICE_NATS_SERVER",
            "nats-server",
            "apt-get install nats-server",
        );
        let mut monitor_port = 0;
        let dir = scratch_dir("nats", free_port());
        let (child, port) = start_server("nats-server", |port| {
            monitor_port = free_port();
            Command::new(&bin)
                .args(extra)
                .args(["-a", "127.0.0.1", "-p", &port.to_string()])
                .args(["-m", &monitor_port.to_string(), "-js", "-sd"])
                .arg(&dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn nats-server")
        });
        NatsServer {
            child,
            dir,
            port,
            monitor_port,
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl NatsServer {
    /// A private nats-server running the project's `nats/nats-server.conf`
    /// (users and permissions), on free ports.
    pub fn start_with_project_config() -> Self {
        let config = concat!(env!("CARGO_MANIFEST_DIR"), "/../nats/nats-server.conf");
        Self::start_with(&["-c", config])
    }
}
