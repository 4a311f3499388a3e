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

fn wait_for_port(port: u16, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited during start-up: {status}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} did not listen on port {port} within 10 s");
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
        let port = free_port();
        let dir = scratch_dir("redis", port);
        let mut child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn redis-server");
        wait_for_port(port, &mut child, "redis-server");
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
        let port = free_port();
        let monitor_port = free_port();
        let dir = scratch_dir("nats", port);
        let mut child = Command::new(bin)
            .args(extra)
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .args(["-m", &monitor_port.to_string(), "-js", "-sd"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nats-server");
        wait_for_port(port, &mut child, "nats-server");
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
