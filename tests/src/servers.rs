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

    /// Stops the server's process (SIGSTOP): connections stay open but
    /// nothing is answered, as in a stall, until [`resume`](Self::resume).
    pub fn pause(&self) {
        signal(self._process.pid(), "-STOP");
    }

    pub fn resume(&self) {
        signal(self._process.pid(), "-CONT");
    }
}

/// Sends `signal` (`-STOP`, `-CONT`, `-KILL`) to process `pid`.
pub fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .arg(signal)
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
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

    /// Kills the server (SIGKILL); [`restart`](Self::restart) brings it back.
    pub fn kill(&self) {
        signal(self._process.pid(), "-KILL");
    }

    /// Kills the server (SIGKILL, if it still runs) and starts it again on
    /// the same port with the same JetStream store: clients reconnect,
    /// streams come back.
    pub fn restart(&mut self) {
        self._process.restart().expect("restart nats-server");
    }
}

/// Google's Firestore emulator on a free loopback port, keeping everything
/// in memory. It runs under a small shell that kills it when this process's
/// end of its stdin closes, so the emulator goes with the test process even
/// when that is killed or never drops a shared emulator. Where the emulator
/// is not installed, starting one fails the test saying what to install:
/// Firestore tests never pass by skipping.
pub struct FirestoreEmulator {
    shell: std::process::Child,
    /// The JVM's process id, for stopping and continuing it.
    java: u32,
    pub port: u16,
}

impl FirestoreEmulator {
    pub fn start() -> Self {
        let jar = match Server::Firestore.binary() {
            Ok(jar) => jar,
            Err(e) => panic!(
                "the Firestore tests need Google's Firestore emulator: {e} (.ci/prepare checks for it)"
            ),
        };
        let mut last = String::new();
        for _ in 0..3 {
            let port = free_port();
            match Self::start_on(&jar, port) {
                Ok(started) => return started,
                Err(e) => last = e,
            }
        }
        panic!("the Firestore emulator would not start: {last}");
    }

    fn start_on(jar: &std::path::Path, port: u16) -> Result<Self, String> {
        use std::io::BufRead;
        use std::process::{Command, Stdio};
        let mut shell = Command::new("sh")
            .arg("-c")
            .arg(r#""$@" >/dev/null 2>&1 & echo $!; read _; kill -9 $! 2>/dev/null"#)
            .arg("sh")
            .arg("java")
            .args(["-Duser.language=en", "-Xms64m", "-cp"])
            .arg(jar)
            .arg("com.google.cloud.datastore.emulator.firestore.CloudFirestore")
            .arg("start")
            .args(["--host=127.0.0.1", &format!("--port={port}")])
            .arg("--database-mode=firestore-native")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("sh: {e}"))?;
        let mut pid = String::new();
        if let Some(out) = shell.stdout.take() {
            std::io::BufReader::new(out)
                .read_line(&mut pid)
                .map_err(|e| e.to_string())?;
        }
        let java: u32 = pid.trim().parse().map_err(|_| format!("no pid: {pid:?}"))?;
        let started = FirestoreEmulator { shell, java, port };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
        while std::time::Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(started);
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        Err(format!("it did not listen on port {port} within 90 s"))
    }

    /// One emulator for every test of this process; each test keeps to its
    /// own project ([`FirestoreEmulator::project`]), so tests stay apart.
    pub fn shared() -> &'static FirestoreEmulator {
        static SHARED: std::sync::OnceLock<FirestoreEmulator> = std::sync::OnceLock::new();
        SHARED.get_or_init(FirestoreEmulator::start)
    }

    /// `host:port`, as `FIRESTORE_EMULATOR_HOST` names it.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// A project nobody else uses: an empty database.
    pub fn project() -> String {
        format!(
            "test-{}",
            dashdice_proto::ids::random_hex::<6>().expect("randomness")
        )
    }

    /// Stops the emulator's process (SIGSTOP): it keeps its data but
    /// answers nothing, as in an outage or a partition, until
    /// [`resume`](Self::resume).
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, which: &str) {
        signal(self.java, which);
    }
}

impl Drop for FirestoreEmulator {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-9", &self.java.to_string()])
            .status();
        drop(self.shell.stdin.take());
        let _ = self.shell.wait();
    }
}
