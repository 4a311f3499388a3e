//! The `dashdice` command line.
//!
//! `run` takes parsed arguments and an output stream, so tests drive the real
//! verbs in-process and read what a user would see.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use dashdice_runtime::builtin;
use dashdice_runtime::fair_dice;
use dashdice_runtime::{Limits, LoadError, Mode, Runtime};
use dashdice_tools::replay::{self, Script};
use dashdice_tools::simulate;

#[derive(Debug, Parser)]
#[command(name = "dashdice", version, about = "The DashDice game backend")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with game modes (WebAssembly components).
    Mode(ModeArgs),
    /// Audit matches.
    #[command(subcommand)]
    Match(MatchCommand),
    /// Run the whole system in this process: the gateway (with the web page
    /// and guest sign-in), a match host and a matchmaker with the four
    /// built-in modes, starting nats-server and redis-server on loopback if
    /// none answer at the configured URLs.
    Up(UpArgs),
    /// Run a match host: serve match requests on NATS, state in Redis.
    MatchHost(MatchHostArgs),
    /// Run a matchmaker: queues on NATS, tickets in Redis.
    Matchmaker(MatchmakerArgs),
    /// Run a gateway: REST and WebSocket for players, bridged to NATS, and
    /// the web page.
    Gateway(GatewayCommandArgs),
    /// Measure a running system.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Simulated players against a running gateway over real WebSockets:
    /// they sign in as guests, queue, play to the end and queue again.
    /// Reports time to match and action round trips (p50/p95/p99), and
    /// errors. The gateway must offer guest sign-in (`dashdice up` does).
    Loadgen(LoadgenArgs),
}

#[derive(Debug, Args)]
pub struct LoadgenArgs {
    #[arg(long, default_value_t = 100)]
    pub players: usize,
    /// How long players keep queueing (e.g. 60s, 2m); matches under way
    /// then play to their end.
    #[arg(long, default_value = "60s", value_parser = dashdice_tools::bench::loadgen::parse_duration)]
    pub duration: std::time::Duration,
    /// The gateway.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// The modes to play, comma-separated; players are spread over them.
    #[arg(long, default_value = "classic", value_delimiter = ',')]
    pub mode: Vec<String>,
    /// Mean think time before each action, in ms.
    #[arg(long, default_value_t = 500)]
    pub think_ms: u64,
    /// Seconds over which players start.
    #[arg(long, default_value_t = 10)]
    pub ramp_seconds: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Send tickets to the matchmakers that answer there at a steady rate,
    /// with a realistic mix of ratings, regions and connections, and report
    /// tickets matched per second, time to match, and Redis bytes per ticket.
    Matchmaker {
        #[arg(long, default_value_t = 100_000)]
        tickets: usize,
        /// Tickets arriving per second.
        #[arg(long, default_value_t = 20_000.0)]
        rate: f64,
        #[arg(long, default_value = "classic")]
        mode: String,
        /// `quick` or `ranked` (ranked matches on stored ratings, which
        /// are all 1500 for the bench's fresh players).
        #[arg(long, default_value = "quick")]
        kind: String,
        /// Seconds to wait after the last arrival for the periodic pass.
        #[arg(long, default_value_t = 6)]
        drain_seconds: u64,
        /// Answer match creation in the bench itself, to measure the
        /// matchmaker alone (run no match host then).
        #[arg(long)]
        stub_host: bool,
        /// Seeds the ticket mix (and names the players).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The share of poor connections (two never meet); 1 makes every
        /// ticket wait, to measure memory per waiting ticket.
        #[arg(long, default_value_t = 0.05)]
        poor_share: f64,
        #[command(flatten)]
        connections: Connections,
        #[arg(long)]
        json: bool,
    },
    /// Drive concurrent matches over NATS against the match hosts that answer
    /// there (start one with `dashdice match-host`), and report actions/s,
    /// latency and Redis bytes per live match.
    MatchHost {
        #[arg(long, default_value_t = 1000)]
        matches: usize,
        /// Seconds to run.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        #[arg(long, default_value = "classic")]
        mode: String,
        /// Offered actions per second in total (open loop); without it every
        /// match acts as soon as its reply arrives.
        #[arg(long)]
        rate: Option<f64>,
        #[command(flatten)]
        connections: Connections,
        #[arg(long)]
        json: bool,
    },
}

/// Where a role finds NATS and Redis; every role takes the same flags.
#[derive(Debug, Args)]
pub struct Connections {
    #[arg(
        long,
        env = "DASHDICE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// NATS user (see nats/nats-server.conf for the per-role users).
    #[arg(long, env = "DASHDICE_NATS_USER")]
    pub nats_user: Option<String>,
    #[arg(long, env = "DASHDICE_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    #[arg(
        long,
        env = "DASHDICE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,
}

impl Connections {
    /// Connects to both, naming this client `name` to the NATS server.
    async fn open(
        &self,
        name: &str,
    ) -> Result<(async_nats::Client, dashdice_store::MatchStore), CliError> {
        let store = dashdice_store::MatchStore::connect(&self.redis_url)
            .await
            .map_err(|e| self.redis_error(e))?;
        Ok((self.nats(name).await?, store))
    }

    fn redis_error(&self, e: impl std::fmt::Display) -> CliError {
        CliError::Service(format!("redis at {}: {e}", self.redis_url))
    }

    /// Connects to NATS, naming this client `name` to the server.
    async fn nats(&self, name: &str) -> Result<async_nats::Client, CliError> {
        let mut options = async_nats::ConnectOptions::new().name(name);
        if let (Some(user), Some(password)) = (&self.nats_user, &self.nats_password) {
            options = options.user_and_password(user.clone(), password.clone());
        }
        options
            .connect(&self.nats_url)
            .await
            .map_err(|e| CliError::Service(format!("nats at {}: {e}", self.nats_url)))
    }
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub connections: Connections,
    #[command(flatten)]
    pub policy: PolicyArgs,
    #[command(flatten)]
    pub gateway: GatewayArgs,
    /// Keep compiled components here between runs.
    #[arg(long, env = "DASHDICE_ARTIFACT_DIR")]
    pub artifact_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MatchmakerArgs {
    #[command(flatten)]
    pub connections: Connections,
    /// The modes players may queue for (default: the built-in modes).
    #[arg(long, env = "DASHDICE_MODES", value_delimiter = ',')]
    pub modes: Vec<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "DASHDICE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct GatewayCommandArgs {
    #[command(flatten)]
    pub connections: Connections,
    #[command(flatten)]
    pub gateway: GatewayArgs,
}

/// The gateway's address, sign-in and limits (see `gateway::Limits`).
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// Serve HTTP and WebSocket here.
    #[arg(long, env = "DASHDICE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: std::net::SocketAddr,
    /// Accept Firebase ID tokens of this project.
    #[arg(long, env = "DASHDICE_FIREBASE_PROJECT")]
    pub firebase_project: Option<String>,
    /// Where the Firebase token keys are (a JWKS); Google's by default.
    #[arg(long, env = "DASHDICE_JWKS_URL")]
    pub jwks_url: Option<String>,
    /// Accept HS256 dev tokens signed with this secret.
    #[arg(long, env = "DASHDICE_DEV_SECRET", hide_env_values = true)]
    pub dev_secret: Option<String>,
    /// Dev mode: anyone may sign in as a guest (with a random dev secret if
    /// none is given). `dashdice up` is always in dev mode.
    #[arg(long)]
    pub dev: bool,
    /// Origins whose pages may call the API (`*` for any); the gateway's
    /// own page always may.
    #[arg(long, env = "DASHDICE_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// The region of a join that names none.
    #[arg(long, env = "DASHDICE_DEFAULT_REGION", default_value = "eu")]
    pub default_region: String,
    /// Take client IPs from `X-Forwarded-For` (only behind a proxy that sets it).
    #[arg(long, env = "DASHDICE_TRUST_FORWARDED_FOR")]
    pub trust_forwarded_for: bool,
    /// Largest REST body or WebSocket message, bytes.
    #[arg(long, default_value_t = 8 << 10)]
    pub max_message_bytes: usize,
    /// Requests per second per user (bursts of twice that).
    #[arg(long, default_value_t = 20)]
    pub user_rate: u32,
    /// HTTP requests per second per client IP (bursts of twice that).
    #[arg(long, default_value_t = 100)]
    pub ip_rate: u32,
    /// WebSocket messages per second per connection (bursts of twice that).
    #[arg(long, default_value_t = 20)]
    pub ws_rate: u32,
    /// How long a worker may take to answer, ms.
    #[arg(long, default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// Close WebSocket sessions silent this long, seconds.
    #[arg(long, default_value_t = 60)]
    pub ws_idle_seconds: u64,
}

impl GatewayArgs {
    fn config(&self, dev: bool) -> dashdice_gateway::GatewayConfig {
        use dashdice_gateway::{AuthConfig, GatewayConfig, Limits};
        let dev = dev || self.dev;
        let dev_secret = self.dev_secret.clone().or_else(|| {
            dev.then(|| dashdice_proto::ids::random_hex::<32>().ok())
                .flatten()
        });
        GatewayConfig {
            auth: AuthConfig {
                firebase_project: self.firebase_project.clone(),
                jwks_url: self.jwks_url.clone(),
                dev_secret,
                guests: dev,
                ..AuthConfig::default()
            },
            limits: Limits {
                max_message_bytes: self.max_message_bytes,
                user_per_second: self.user_rate,
                ip_per_second: self.ip_rate,
                ws_messages_per_second: self.ws_rate,
                request_timeout: std::time::Duration::from_millis(self.request_timeout_ms),
                ws_idle: std::time::Duration::from_secs(self.ws_idle_seconds),
                ..Limits::default()
            },
            cors_origins: self.cors_origins.clone(),
            default_region: self.default_region.clone(),
            trust_forwarded_for: self.trust_forwarded_for,
        }
    }

    /// The gateway, bound to its address, ready to serve.
    async fn start(
        &self,
        connections: &Connections,
        dev: bool,
    ) -> Result<
        (
            tokio::net::TcpListener,
            std::sync::Arc<dashdice_gateway::Gateway>,
        ),
        CliError,
    > {
        let nats = connections.nats("dashdice-gateway").await?;
        let redis = dashdice_store::RedisProbe::connect(&connections.redis_url)
            .await
            .map_err(|e| connections.redis_error(e))?;
        let gateway = dashdice_gateway::Gateway::new(
            self.config(dev),
            nats,
            Some(redis),
            dashdice_service::telemetry::prometheus(),
        )
        .map_err(|e| CliError::Service(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(|e| CliError::Service(format!("cannot listen on {}: {e}", self.listen)))?;
        Ok((listener, std::sync::Arc::new(gateway)))
    }
}

/// The matchmaking regions and schedule (see `matchmaking::Policy`).
#[derive(Debug, Args)]
pub struct PolicyArgs {
    /// The regions players may queue from.
    #[arg(
        long,
        env = "DASHDICE_REGIONS",
        value_delimiter = ',',
        default_value = "eu,us,ap"
    )]
    pub regions: Vec<String>,
    /// Rating window at once: ± this much.
    #[arg(long, default_value_t = 50.0)]
    pub initial_window: f64,
    /// The window grows by this much ...
    #[arg(long, default_value_t = 50.0)]
    pub widen_by: f64,
    /// ... every this many ms of waiting.
    #[arg(long, default_value_t = 5_000)]
    pub widen_every_ms: u64,
    /// Quick queues accept any rating after this wait (ms).
    #[arg(long, default_value_t = 60_000)]
    pub quick_unbounded_after_ms: u64,
    /// Ranked windows never grow past ± this much.
    #[arg(long, default_value_t = 400.0)]
    pub ranked_max_window: f64,
    /// Other regions become acceptable after this wait (ms) ...
    #[arg(long, default_value_t = 10_000)]
    pub other_regions_after_ms: u64,
    /// ... if the player's measured round trip to them is at most this (ms).
    #[arg(long, default_value_t = 150)]
    pub max_latency_ms: u32,
    /// Quick queues give a bot after this wait (ms); 0 = never.
    #[arg(long, env = "DASHDICE_BOT_AFTER_MS", default_value_t = 5_000)]
    pub bot_after_ms: u64,
    /// An invite code works this long (ms).
    #[arg(long, default_value_t = 600_000)]
    pub code_ttl_ms: u64,
    /// After a match, a rematch may be agreed this long (ms).
    #[arg(long, default_value_t = 30_000)]
    pub rematch_window_ms: u64,
    /// Joins (and invite and rematch requests) one matchmaker runs at once;
    /// more are refused at once with `unavailable` rather than queued.
    #[arg(long, default_value_t = dashdice_matchmaker::service::MAX_NEW_WORK_IN_FLIGHT)]
    pub max_in_flight: usize,
}

impl PolicyArgs {
    /// A matchmaker for `modes` on this policy, reaching the match hosts and
    /// the players through `nats`.
    fn matchmaker(
        &self,
        store: dashdice_store::queues::QueueStore,
        modes: Vec<String>,
        nats: &async_nats::Client,
    ) -> Result<dashdice_matchmaker::service::NatsMatchmaker, CliError> {
        use dashdice_matchmaker::service::{NatsMatches, NatsNotify};
        if let Some(bad) = self
            .regions
            .iter()
            .find(|r| !dashdice_matchmaker::valid_region(r))
        {
            return Err(CliError::Service(format!(
                "region {bad:?}: regions are lowercase letters, digits and '-'"
            )));
        }
        let mut matchmaker = dashdice_matchmaker::Matchmaker::new(
            store,
            self.into(),
            modes,
            self.regions.clone(),
            NatsMatches::new(nats.clone()),
            NatsNotify {
                client: nats.clone(),
            },
        );
        matchmaker.private = dashdice_matchmaker::PrivatePolicy {
            code_ttl_ms: self.code_ttl_ms,
            rematch_window_ms: self.rematch_window_ms,
        };
        Ok(matchmaker)
    }
}

impl From<&PolicyArgs> for dashdice_matchmaker::Policy {
    fn from(a: &PolicyArgs) -> Self {
        dashdice_matchmaker::Policy {
            initial_window: a.initial_window,
            widen_by: a.widen_by,
            widen_every_ms: a.widen_every_ms,
            quick_unbounded_after_ms: a.quick_unbounded_after_ms,
            ranked_max_window: a.ranked_max_window,
            other_regions_after_ms: a.other_regions_after_ms,
            max_latency_ms: a.max_latency_ms,
            bot_after_ms: (a.bot_after_ms > 0).then_some(a.bot_after_ms),
        }
    }
}

#[derive(Debug, Args)]
pub struct MatchHostArgs {
    #[command(flatten)]
    pub connections: Connections,
    /// Keep compiled components here between runs.
    #[arg(long, env = "DASHDICE_ARTIFACT_DIR")]
    pub artifact_dir: Option<PathBuf>,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "DASHDICE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum MatchCommand {
    /// Check a finished match's record: the revealed seed matches its
    /// commitment, every roll is what the seed and the mode give, and the
    /// standings follow.
    Verify {
        /// The final view of the match (JSON, as `get` or the last action's
        /// reply gives it, with or without the `{"ok": ...}` envelope), or its
        /// match record as published when it ended.
        record: PathBuf,
        /// The mode component, if the record's version is not a built-in one.
        #[arg(long)]
        mode: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct ModeArgs {
    /// Keep compiled components here, so the next run skips compiling. The
    /// directory must be as trusted as this binary (artifacts are native code).
    #[arg(long, env = "DASHDICE_ARTIFACT_DIR", global = true)]
    pub artifact_dir: Option<PathBuf>,
    #[command(subcommand)]
    pub command: ModeCommand,
}

#[derive(Debug, Subcommand)]
pub enum ModeCommand {
    /// List the built-in modes.
    List,
    /// Print a mode's description and version hash.
    Inspect {
        /// A component file, or a built-in mode id.
        mode: String,
    },
    /// Play a scripted game and print the public view after each step, one JSON line each.
    Replay {
        /// A component file, or a built-in mode id.
        mode: String,
        /// The script: {"players":[...],"steps":[{"action":"roll","dice":[3,4]},...]}
        #[arg(long)]
        script: PathBuf,
        /// Seed for rolls the script gives no dice for.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Play many random games and report win rates, lengths and dice.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// A component file, or a built-in mode id.
    pub mode: String,
    #[arg(long, default_value_t = 1000)]
    pub games: u64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// A game longer than this many actions counts as unfinished.
    #[arg(long, default_value_t = 10_000)]
    pub max_actions: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("unknown mode {0:?}: not a file, and not a built-in mode ({list})", list = builtin_ids())]
    UnknownMode(String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the script {path} is not valid: {source}")]
    Script {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not a final match view or match record: {why}")]
    Record { path: PathBuf, why: String },
    #[error("verification failed: {0}")]
    Verify(#[from] fair_dice::VerifyError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(transparent)]
    Simulate(#[from] simulate::SimulateError),
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Service(String),
}

impl CliError {
    /// True when the reader of our output went away (`dashdice ... | head`):
    /// not worth an error message.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            CliError::Io(e) | CliError::Replay(replay::ReplayError::Io(e)) => e,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

fn builtin_ids() -> String {
    builtin::MODES.map(|(id, _)| id).join(", ")
}

/// The whole program: parse the arguments, run, report. `main.rs` is this
/// one call, and so is the test suite's copy of the binary.
pub fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    dashdice_gateway::install_crypto();
    let cli = Cli::parse();
    if !cli.command.is_service() {
        dashdice_service::telemetry::init_logs();
    }
    let stdout = std::io::stdout();
    match run(cli, &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dashdice: {e}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// Long-running roles set up their own telemetry (traces and metrics).
    fn is_service(&self) -> bool {
        matches!(
            self,
            Command::MatchHost(_) | Command::Matchmaker(_) | Command::Gateway(_) | Command::Up(_)
        )
    }
}

/// Runs a parsed command, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Mode(args) => {
            let mut runtime = Runtime::new(Limits::default())?;
            if let Some(dir) = args.artifact_dir {
                runtime = runtime.with_artifact_dir(dir);
            }
            run_mode(&runtime, args.command, out)
        }
        Command::MatchHost(args) => run_match_host(args),
        Command::Up(args) => run_up(args, out),
        Command::Matchmaker(args) => run_matchmaker(args),
        Command::Gateway(args) => run_gateway(args, out),
        Command::Bench(BenchCommand::MatchHost {
            matches,
            seconds,
            mode,
            rate,
            connections,
            json,
        }) => {
            let tokio = tokio::runtime::Runtime::new()?;
            let report = tokio.block_on(async {
                let (client, store) = connections.open("dashdice-bench").await?;
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                let options = dashdice_tools::bench::Options {
                    matches,
                    duration: std::time::Duration::from_secs(seconds),
                    mode,
                    rate,
                };
                dashdice_tools::bench::match_host(client, store, &options, bar)
                    .await
                    .map_err(|e| CliError::Service(e.to_string()))
            })?;
            print_report(out, json, &report, || report.render())?;
            Ok(())
        }
        Command::Loadgen(args) => {
            dashdice_gateway::install_crypto();
            let tokio = tokio::runtime::Runtime::new()?;
            let options = dashdice_tools::bench::loadgen::LoadOptions {
                url: args.url,
                players: args.players,
                duration: args.duration,
                modes: args.mode,
                think: std::time::Duration::from_millis(args.think_ms),
                ramp: std::time::Duration::from_secs(args.ramp_seconds),
            };
            let report = tokio.block_on(async {
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                bar.set_style(
                    indicatif::ProgressStyle::with_template(
                        "{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                dashdice_tools::bench::loadgen::run(&options, bar)
                    .await
                    .map_err(|e| CliError::Service(e.to_string()))
            })?;
            print_report(out, args.json, &report, || report.render())?;
            Ok(())
        }
        Command::Bench(BenchCommand::Matchmaker {
            tickets,
            rate,
            mode,
            kind,
            drain_seconds,
            stub_host,
            seed,
            poor_share,
            connections,
            json,
        }) => {
            let kind = match kind.as_str() {
                "ranked" => dashdice_matchmaker::QueueKind::Ranked,
                "quick" => dashdice_matchmaker::QueueKind::Quick,
                other => {
                    return Err(CliError::Service(format!(
                        "--kind {other:?}: expected ranked or quick"
                    )));
                }
            };
            let tokio = tokio::runtime::Runtime::new()?;
            let report = tokio.block_on(async {
                let (client, store) = connections.open("dashdice-bench").await?;
                let bar = ProgressBar::with_draw_target(
                    Some(tickets as u64),
                    ProgressDrawTarget::stderr(),
                );
                let options = dashdice_tools::bench::matchmaker::Options {
                    tickets,
                    rate,
                    mode,
                    kind,
                    drain: std::time::Duration::from_secs(drain_seconds),
                    stub_host,
                    seed,
                    poor_share,
                };
                dashdice_tools::bench::matchmaker::matchmaker(client, store, &options, bar)
                    .await
                    .map_err(|e| CliError::Service(e.to_string()))
            })?;
            print_report(out, json, &report, || report.render())?;
            Ok(())
        }
        Command::Match(MatchCommand::Verify { record, mode }) => {
            let text = read(&record)?;
            let parsed = dashdice_proto::matches::verifiable_record(&text).map_err(|why| {
                CliError::Record {
                    path: record.clone(),
                    why,
                }
            })?;
            let runtime = Runtime::new(Limits::default())?;
            let mode = load(&runtime, mode.as_deref().unwrap_or(&parsed.mode))?;
            let verified = fair_dice::verify(&mode, &parsed)?;
            writeln!(
                out,
                "verified: match {} ({} actions, {} rolls); every roll follows from the revealed seed",
                verified.match_id, verified.actions, verified.rolls
            )?;
            Ok(())
        }
    }
}

fn run_mode(runtime: &Runtime, command: ModeCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        ModeCommand::List => {
            for (id, bytes) in builtin::MODES {
                let mode = runtime.load(bytes)?;
                writeln!(out, "{id:<10} {}  {}", mode.hash(), mode.info().name)?;
            }
        }
        ModeCommand::Inspect { mode } => {
            let mode = load(runtime, &mode)?;
            let report = json!({ "version_hash": mode.hash(), "info": mode.info() });
            serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        ModeCommand::Replay { mode, script, seed } => {
            let mode = load(runtime, &mode)?;
            let text = read(&script)?;
            let parsed: Script =
                serde_json::from_slice(&text).map_err(|source| CliError::Script {
                    path: script.clone(),
                    source,
                })?;
            replay::replay(&mode, &parsed, seed, out)?;
        }
        ModeCommand::Simulate(args) => {
            let mode = load(runtime, &args.mode)?;
            let options = simulate::Options {
                games: args.games,
                seed: args.seed,
                max_actions: args.max_actions,
                threads: args
                    .threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            };
            let report = simulate::simulate(&mode, &options, &progress_bar(args.games))?;
            print_report(out, args.json, &report, || report.render())?;
        }
    }
    Ok(())
}

/// A report as pretty JSON (`--json`) or as its text rendering.
fn print_report<T: serde::Serialize>(
    out: &mut dyn Write,
    json: bool,
    report: &T,
    render: impl FnOnce() -> String,
) -> Result<(), CliError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render())?;
    }
    Ok(())
}

fn run_match_host(args: MatchHostArgs) -> Result<(), CliError> {
    let mut runtime = Runtime::new(Limits::default())?;
    if let Some(dir) = args.artifact_dir {
        runtime = runtime.with_artifact_dir(dir);
    }
    let registry = std::sync::Arc::new(dashdice_runtime::registry::ModeRegistry::with_builtins(
        runtime,
    )?);
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(async move {
        let _telemetry = dashdice_service::telemetry::init("dashdice-match-host");
        if let Some(addr) = args.metrics_addr {
            dashdice_service::telemetry::serve_metrics(addr)
                .map_err(|e| CliError::Service(e.to_string()))?;
        }
        let c = &args.connections;
        let (nats, store) = c.open("dashdice-match-host").await?;
        tracing::info!(nats = %c.nats_url, redis = %c.redis_url, "match host serving");
        let host = dashdice_match_host::MatchHost::new(registry, store);
        tokio::select! {
            served = dashdice_match_host::service::run(nats, host) => {
                served.map_err(|e| CliError::Service(e.to_string()))
            }
            _ = stopped() => Ok(()),
        }
    })
}

/// Waits for Ctrl-C or SIGTERM (how Kubernetes and service managers stop us).
async fn stopped() {
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

fn run_up(args: UpArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let c = &args.connections;
    let local = |e: dashdice_service::local::LocalError| CliError::Service(e.to_string());
    // Started here if need be; stopped when these drop, at the end.
    let nats_server = dashdice_service::local::ensure_nats(&c.nats_url).map_err(local)?;
    let redis_server = dashdice_service::local::ensure_redis(&c.redis_url).map_err(local)?;
    let mut runtime = Runtime::new(Limits::default())?;
    if let Some(dir) = &args.artifact_dir {
        runtime = runtime.with_artifact_dir(dir.clone());
    }
    let registry = std::sync::Arc::new(dashdice_runtime::registry::ModeRegistry::with_builtins(
        runtime,
    )?);
    let modes: Vec<String> = builtin::MODES
        .iter()
        .map(|(id, _)| (*id).to_owned())
        .collect();
    let tokio = tokio::runtime::Runtime::new()?;
    let served = tokio.block_on(async {
        let _telemetry = dashdice_service::telemetry::init("dashdice");
        let (listener, gateway) = args.gateway.start(c, true).await?;
        let page = listener
            .local_addr()
            .map_err(|e| CliError::Service(e.to_string()))?;
        let store = dashdice_store::MatchStore::connect(&c.redis_url)
            .await
            .map_err(|e| c.redis_error(e))?;
        let host = dashdice_match_host::MatchHost::new(registry, store);
        let host_nats = c.nats("dashdice-match-host").await?;
        let mm_nats = c.nats("dashdice-matchmaker").await?;
        let queues = dashdice_store::queues::QueueStore::connect(&c.redis_url)
            .await
            .map_err(|e| c.redis_error(e))?;
        let matchmaker = args.policy.matchmaker(queues, modes.clone(), &mm_nats)?;
        let started = |s: &Option<dashdice_service::local::LocalServer>| {
            if s.is_some() { " (started here)" } else { "" }
        };
        writeln!(
            out,
            "dashdice is up: gateway, match host and matchmaker, modes {}",
            modes.join(", ")
        )?;
        writeln!(out, "  play    http://{page}/")?;
        writeln!(
            out,
            "  API     http://{page}/api/v1 (WebSocket: ws://{page}/api/v1/ws)"
        )?;
        writeln!(out, "  metrics http://{page}/api/v1/metrics")?;
        writeln!(out, "  NATS    {}{}", c.nats_url, started(&nats_server))?;
        writeln!(out, "  Redis   {}{}", c.redis_url, started(&redis_server))?;
        writeln!(out, "Ctrl-C stops it.")?;
        out.flush()?;
        let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(dashdice_gateway::serve(listener, gateway, async move {
            let _ = gateway_stopped.await;
        }));
        let result = tokio::select! {
            r = dashdice_match_host::service::run(host_nats, host) => {
                r.map_err(|e| CliError::Service(e.to_string()))
            }
            r = dashdice_matchmaker::service::run_with(mm_nats, matchmaker, args.policy.max_in_flight) => {
                r.map_err(|e| CliError::Service(e.to_string()))
            }
            _ = stopped() => Ok(()),
        };
        // The gateway first: its sessions close (1001) while the workers
        // still answer.
        let _ = stop_gateway.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), serving).await;
        result
    });
    // Stop the roles before the servers they use.
    drop(tokio);
    drop(redis_server);
    drop(nats_server);
    served
}

fn run_matchmaker(args: MatchmakerArgs) -> Result<(), CliError> {
    let modes: Vec<String> = if args.modes.is_empty() {
        builtin::MODES
            .iter()
            .map(|(id, _)| (*id).to_owned())
            .collect()
    } else {
        args.modes.clone()
    };
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(async move {
        let _telemetry = dashdice_service::telemetry::init("dashdice-matchmaker");
        if let Some(addr) = args.metrics_addr {
            dashdice_service::telemetry::serve_metrics(addr).map_err(|e| CliError::Service(e.to_string()))?;
        }
        let c = &args.connections;
        let nats = c.nats("dashdice-matchmaker").await?;
        let store = dashdice_store::queues::QueueStore::connect(&c.redis_url)
            .await
            .map_err(|e| c.redis_error(e))?;
        let matchmaker = args.policy.matchmaker(store, modes, &nats)?;
        tracing::info!(nats = %c.nats_url, redis = %c.redis_url, "matchmaker serving");
        tokio::select! {
            served = dashdice_matchmaker::service::run_with(nats, matchmaker, args.policy.max_in_flight) => {
                served.map_err(|e| CliError::Service(e.to_string()))
            }
            _ = stopped() => Ok(()),
        }
    })
}

fn run_gateway(args: GatewayCommandArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let tokio = tokio::runtime::Runtime::new()?;
    tokio.block_on(async move {
        let _telemetry = dashdice_service::telemetry::init("dashdice-gateway");
        let (listener, gateway) = args.gateway.start(&args.connections, false).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::Service(e.to_string()))?;
        writeln!(
            out,
            "dashdice gateway on http://{addr}/ (API under /api/v1)"
        )?;
        out.flush()?;
        tracing::info!(%addr, nats = %args.connections.nats_url, "gateway serving");
        dashdice_gateway::serve(listener, gateway, stopped())
            .await
            .map_err(|e| CliError::Service(e.to_string()))
    })
}

/// A progress bar on stderr; invisible when stderr is not a terminal.
fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} games ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// A mode from a component file, or a built-in by id.
pub fn load(runtime: &Runtime, mode: &str) -> Result<Mode, CliError> {
    let path = Path::new(mode);
    let bytes = if path.is_file() {
        read(path)?
    } else {
        builtin::bytes(mode)
            .ok_or_else(|| CliError::UnknownMode(mode.to_owned()))?
            .to_vec()
    };
    Ok(runtime.load(&bytes)?)
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}
