//! `dashdice bench presence`: what it runs against, then the run
//! (`dashdice_tools::bench::presence`).
//!
//! Given `--nats-url` and `--redis-url`, the presence role answering there
//! is measured (its CPU, and nats-server's, only with `--presence-pid` and
//! `--nats-pid`). Given neither, the
//! bench starts a private `nats-server` and `redis-server` on free loopback
//! ports (as `dashdice up` and the tests do) and the presence role as a
//! child process, this same binary's `dashdice presence`: a process of its
//! own, so its CPU time is its own in `/proc/<pid>/stat`, and the bench's
//! simulated gateways do not share its runtime. Everything stops when the
//! bench ends.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use dashdice_service::local::{LocalError, LocalServer, Server};
use dashdice_service::startup::{self, NatsConfig};
use dashdice_tools::bench::presence::{Options, presence};

use super::CliError;
use super::args::PresenceBenchArgs;

pub fn run(args: PresenceBenchArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut options = Options {
        users: args.users,
        friends: args.friends,
        change_rate: args.change_rate,
        duration: Duration::from_secs(args.seconds),
        gateways: args.gateways,
        upkeep: Duration::from_secs(args.upkeep_seconds),
        seed: args.seed,
        presence_pid: args.presence_pid,
        nats_pid: args.nats_pid,
    };
    // Kept until the end: dropping them stops the servers and the role.
    let mut own = None;
    let (nats, redis_url) = match (args.nats_url, args.redis_url) {
        (Some(url), Some(redis)) => (
            NatsConfig {
                url,
                credentials: args.nats_user.zip(args.nats_password),
            },
            redis,
        ),
        _ => {
            let system = OwnSystem::start()?;
            options.presence_pid = Some(system.role.id());
            options.nats_pid = Some(system.nats.pid());
            let urls = (system.nats_url(), system.redis_url());
            own = Some(system);
            let nats = NatsConfig {
                url: urls.0,
                credentials: None,
            };
            (nats, urls.1)
        }
    };
    let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    if let Ok(style) =
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg} {wide_bar} {pos}/{len}")
    {
        bar.set_style(style);
    }
    let report = startup::block_on(async {
        let redis = dashdice_store::RedisProbe::connect(&redis_url)
            .await
            .map_err(|e| CliError::Service(format!("redis at {redis_url}: {e}")))?;
        let bench = presence(|| nats.connect("dashdice-bench"), redis, &options, bar);
        let run = async { bench.await.map_err(|e| CliError::Service(e.to_string())) };
        match own.as_mut() {
            Some(system) => tokio::select! {
                report = run => report,
                died = system.role.died() => Err(died),
            },
            None => run.await,
        }
    })??;
    drop(own);
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", report.render())?;
    }
    Ok(())
}

/// The servers and the role the bench started; stopped when dropped (the
/// role first, as it holds connections to both).
struct OwnSystem {
    role: Role,
    nats: LocalServer,
    redis: LocalServer,
}

impl OwnSystem {
    fn start() -> Result<Self, CliError> {
        let nats = start_on_free_port(Server::Nats)?;
        let redis = start_on_free_port(Server::Redis)?;
        let role = Role::spawn(
            &format!("nats://127.0.0.1:{}", nats.port()),
            &format!("redis://127.0.0.1:{}/", redis.port()),
        )?;
        Ok(OwnSystem { role, nats, redis })
    }

    fn nats_url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.nats.port())
    }

    fn redis_url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.redis.port())
    }
}

/// Starts `server` on a loopback port that was free a moment ago, trying
/// again if another process took it in between.
fn start_on_free_port(server: Server) -> Result<LocalServer, CliError> {
    let mut last = None;
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .map_err(|e| CliError::Service(format!("no free loopback port: {e}")))?;
        match LocalServer::start(server, port, &[]) {
            Ok(started) => return Ok(started),
            Err(e @ LocalError::Missing { .. }) => return Err(CliError::Service(e.to_string())),
            Err(e) => last = Some(e),
        }
    }
    Err(CliError::Service(format!(
        "{server:?} would not start in five tries: {}",
        last.map_or_else(String::new, |e| e.to_string())
    )))
}

/// `dashdice presence` as a child process, its output in a log file.
struct Role {
    child: Child,
    log: PathBuf,
}

impl Role {
    fn spawn(nats_url: &str, redis_url: &str) -> Result<Self, CliError> {
        let exe = std::env::current_exe()
            .map_err(|e| CliError::Service(format!("where is this program? {e}")))?;
        let log = std::env::temp_dir().join(format!(
            "dashdice-bench-presence-{}.log",
            std::process::id()
        ));
        let logging = |e: std::io::Error| CliError::Service(format!("{}: {e}", log.display()));
        let file = std::fs::File::create(&log).map_err(logging)?;
        let child = Command::new(&exe)
            .args(["presence", "--nats-url", nats_url, "--redis-url", redis_url])
            // The bench's own servers have no users.
            .env_remove("DASHDICE_NATS_USER")
            .env_remove("DASHDICE_NATS_PASSWORD")
            .env_remove("DASHDICE_METRICS_ADDR")
            .stdin(Stdio::null())
            .stdout(file.try_clone().map_err(logging)?)
            .stderr(file)
            .spawn()
            .map_err(|e| CliError::Service(format!("{} presence: {e}", exe.display())))?;
        Ok(Role { child, log })
    }

    fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the role exits (it should not), saying how.
    async fn died(&mut self) -> CliError {
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                return CliError::Service(format!(
                    "the presence role exited ({status}):\n{}",
                    tail.join("\n")
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
