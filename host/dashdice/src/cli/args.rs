//! The command line's schema (clap): what a user may type, and the plain
//! conversions from flags to the roles' configuration. Nothing here connects
//! to anything or starts anything: [`super::roles`] and [`super::tools`] do.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use dashdice_service::startup::NatsConfig;

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
    /// and guest sign-in), a match host, a matchmaker, presence, a notifier
    /// (pushing through FCM only with --fcm-key) and (with the Firestore
    /// emulator) an archiver, with the four built-in modes, starting
    /// nats-server and redis-server on loopback if none answer at the
    /// configured URLs.
    Up(Box<UpArgs>),
    /// Run a match host: serve match requests on NATS, state in Redis.
    MatchHost(MatchHostArgs),
    /// Run a matchmaker: queues on NATS, tickets in Redis.
    Matchmaker(MatchmakerArgs),
    /// Run a gateway: REST and WebSocket for players, bridged to NATS, and
    /// the web page.
    Gateway(GatewayCommandArgs),
    /// Run an archiver: finished matches from JetStream into Firestore
    /// (profiles, stats, history, ratings), leaderboards in Redis, and
    /// `dd.archive.*` on NATS.
    Archiver(ArchiverArgs),
    /// Run a presence role: who is online, away or offline and doing what
    /// (`dd.presence.*`), published on change; players' connections told
    /// to their matches; queue tickets of players gone past the grace given
    /// up; the lobby's figures. State in Redis.
    Presence(PresenceArgs),
    /// Run a notifier: notification requests from the JetStream stream
    /// rendered, kept in each player's inbox (Redis), handed to their open
    /// sockets and, when they are away or offline, pushed to their devices
    /// through Firebase Cloud Messaging (with --fcm-key); the inbox, device
    /// and broadcast endpoints (`dd.notify.*`).
    Notifier(NotifierArgs),
    /// Operators' notification tools.
    #[command(subcommand)]
    Notify(NotifyCommand),
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
    /// Store realistic finished-match records in the record stream, then
    /// start one archiver here and time it until all are in Firestore:
    /// archived matches per second. Run with no other archiver (e.g. beside
    /// `dashdice up --no-archiver` and a Firestore emulator).
    Archive {
        #[arg(long, default_value_t = 2_000)]
        records: usize,
        /// Players the matches are spread over (two per match).
        #[arg(long, default_value_t = 1_000)]
        players: usize,
        /// Records archived at once.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        #[command(flatten)]
        connections: Connections,
        #[command(flatten)]
        firestore: FirestoreArgs,
        #[arg(long)]
        json: bool,
    },
    /// Watch the archivers' lag (records pending in the record stream) once
    /// a second, e.g. while `dashdice loadgen` runs; reports the most
    /// pending and how soon after the last record the backlog cleared.
    ArchiveLag {
        /// How long to watch, in seconds.
        #[arg(long, default_value_t = 90)]
        seconds: u64,
        #[command(flatten)]
        nats: NatsArgs,
        #[arg(long)]
        json: bool,
    },
    /// Publish new versions of a component to the catalog on NATS and time
    /// how long after each publish returns it is loaded (fetched, verified,
    /// compiled) on every one of `--hosts` match hosts run in this process.
    Publish {
        /// The component (each publish appends a numbered custom section).
        file: PathBuf,
        #[arg(long, default_value_t = 20)]
        publishes: usize,
        #[arg(long, default_value_t = 2)]
        hosts: usize,
        #[command(flatten)]
        nats: NatsArgs,
        #[arg(long)]
        json: bool,
    },
    /// Many online users with many friends, a share of them changing
    /// activity every second, against a presence role: changes and
    /// deliveries per second, publish → delivery latency, Redis bytes per
    /// online user and CPU per change. Without URLs it starts its own
    /// nats-server, redis-server and `dashdice presence` (this binary).
    Presence(PresenceBenchArgs),
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

/// `dashdice bench presence`.
#[derive(Debug, Args)]
pub struct PresenceBenchArgs {
    /// Users online at once (one connection each).
    #[arg(long, default_value_t = 10_000)]
    pub users: usize,
    /// Friends per user (symmetric, random).
    #[arg(long, default_value_t = 50)]
    pub friends: usize,
    /// The share of users changing activity each second.
    #[arg(long, default_value_t = 0.1)]
    pub change_rate: f64,
    /// Seconds users keep changing.
    #[arg(long, default_value_t = 30)]
    pub seconds: u64,
    /// Simulated gateways (NATS connections), users spread over them.
    #[arg(long, default_value_t = 4)]
    pub gateways: usize,
    /// Seconds of heartbeats only before the changes (the upkeep's cost).
    #[arg(long, default_value_t = 10)]
    pub upkeep_seconds: u64,
    /// Seeds the friends and the changes.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// A running system's NATS (with --redis-url); without both, the bench
    /// starts nats-server, redis-server and a presence role of its own.
    #[arg(long, requires = "redis_url")]
    pub nats_url: Option<String>,
    /// The presence role's Redis (with --nats-url), for its memory.
    #[arg(long, requires = "nats_url")]
    pub redis_url: Option<String>,
    /// NATS user at --nats-url (the bench requests `dd.presence.*` and
    /// follows `dd.presence.user.*`, as a gateway).
    #[arg(long, env = "DASHDICE_NATS_USER")]
    pub nats_user: Option<String>,
    #[arg(long, env = "DASHDICE_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
    /// The running presence role's process id (with --nats-url), to
    /// report its CPU per change.
    #[arg(long, requires = "nats_url")]
    pub presence_pid: Option<u32>,
    /// nats-server's process id (with --nats-url), to report its CPU per
    /// change.
    #[arg(long, requires = "nats_url")]
    pub nats_pid: Option<u32>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The component (`target/wasm32-wasip2/release/<crate>.wasm`).
    pub file: PathBuf,
    /// The publisher's ed25519 key (hex seed); default
    /// `~/.dashdice/publisher.key`, which `dashdice up` makes and trusts.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Who publishes, as `mode list` shows it (default: the key's id).
    #[arg(long = "as")]
    pub publisher: Option<String>,
    /// Random games the check plays.
    #[arg(long, default_value_t = 2000)]
    pub games: u32,
    #[command(flatten)]
    pub nats: NatsArgs,
    #[arg(long)]
    pub json: bool,
}

/// Where the mode catalog's NATS is, for the designers' commands.
#[derive(Debug, Args)]
pub struct NatsArgs {
    #[arg(
        long,
        env = "DASHDICE_NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub nats_url: String,
    /// NATS user: one per role in nats/nats-server.conf (publishing modes
    /// needs `designer`; a server without users, as `up` starts, needs none).
    #[arg(long, env = "DASHDICE_NATS_USER")]
    pub nats_user: Option<String>,
    #[arg(long, env = "DASHDICE_NATS_PASSWORD", hide_env_values = true)]
    pub nats_password: Option<String>,
}

impl NatsArgs {
    pub(crate) fn nats(&self) -> NatsConfig {
        NatsConfig {
            url: self.nats_url.clone(),
            credentials: self.nats_user.clone().zip(self.nats_password.clone()),
        }
    }
}

/// Where a role finds NATS and Redis; every role takes the same flags.
#[derive(Debug, Args)]
pub struct Connections {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[arg(
        long,
        env = "DASHDICE_REDIS_URL",
        default_value = "redis://127.0.0.1:6379/"
    )]
    pub redis_url: String,
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
    /// Also trust these publisher keys (hex ed25519 public keys); the dev key
    /// `up` makes is always trusted.
    #[arg(
        long = "trusted-keys",
        env = "DASHDICE_TRUSTED_KEYS",
        value_delimiter = ','
    )]
    pub trusted: Vec<String>,
    /// The Firestore emulator `up` uses (started here if nothing answers
    /// and the emulator is installed; otherwise `up` runs without the
    /// archiver).
    #[arg(
        long,
        env = "FIRESTORE_EMULATOR_HOST",
        default_value = "127.0.0.1:8086"
    )]
    pub firestore_emulator: String,
    #[command(flatten)]
    pub seasons: SeasonArgs,
    /// Run without the archiver (no stats, history, ratings or
    /// leaderboards) even if the Firestore emulator is installed.
    #[arg(long)]
    pub no_archiver: bool,
    /// The notifier's pushes (none without --fcm-key).
    #[command(flatten)]
    pub fcm: FcmArgs,
}

/// Where dashdice keeps what outlives a run: `$DASHDICE_HOME`, by default
/// `~/.dashdice`.
fn dashdice_home() -> PathBuf {
    std::env::var_os("DASHDICE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".dashdice")))
        .unwrap_or_else(|| PathBuf::from(".dashdice"))
}

/// Where the publisher key lives unless `--key-file` says otherwise:
/// `$DASHDICE_HOME/publisher.key`, by default `~/.dashdice/publisher.key`.
pub fn default_key_file() -> PathBuf {
    dashdice_home().join("publisher.key")
}

/// Where `up` keeps its dev secret unless `--dev-secret-file` says
/// otherwise: beside the publisher key (`$DASHDICE_HOME/dev-secret`).
pub fn default_dev_secret_file() -> PathBuf {
    dashdice_home().join("dev-secret")
}

#[derive(Debug, Args)]
pub struct MatchmakerArgs {
    #[command(flatten)]
    pub connections: Connections,
    /// The modes players may queue for (default: every playable mode of the
    /// catalog, built-in and published, as it changes).
    #[arg(long, env = "DASHDICE_MODES", value_delimiter = ',')]
    pub modes: Vec<String>,
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "DASHDICE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Where Firestore is.
#[derive(Clone, Debug, Args)]
pub struct FirestoreArgs {
    /// The Google Cloud project whose Firestore (default database) keeps
    /// players' data.
    #[arg(
        long,
        env = "DASHDICE_FIRESTORE_PROJECT",
        default_value = "dashdice-local"
    )]
    pub firestore_project: String,
    /// `host:port` of a Firestore emulator. Without it, Google's Firestore
    /// with the usual Google credentials (GOOGLE_APPLICATION_CREDENTIALS, or
    /// the metadata server on GCP).
    #[arg(long, env = "FIRESTORE_EMULATOR_HOST")]
    pub firestore_emulator: Option<String>,
    /// The longest one Firestore request waits.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub firestore_timeout: std::time::Duration,
}

impl FirestoreArgs {
    pub fn config(&self) -> dashdice_archive::FirestoreConfig {
        dashdice_archive::FirestoreConfig {
            project: self.firestore_project.clone(),
            emulator: self.firestore_emulator.clone(),
            timeout: self.firestore_timeout,
        }
    }
}

/// Ranked seasons: leaderboards start empty each season (ratings carry on).
#[derive(Clone, Debug, Args)]
pub struct SeasonArgs {
    /// A season's length in days; none: one all-time season.
    #[arg(long, env = "DASHDICE_SEASON_DAYS")]
    pub season_days: Option<u32>,
    /// When season 1 starts (RFC 3339, UTC).
    #[arg(long, env = "DASHDICE_SEASON_START", default_value = "2026-01-01T00:00:00Z", value_parser = parse_season_start)]
    pub season_start: u64,
}

impl SeasonArgs {
    pub fn seasons(&self) -> dashdice_archive::ledger::Seasons {
        dashdice_archive::ledger::Seasons {
            length_days: self.season_days,
            start_ms: self.season_start,
        }
    }
}

fn parse_season_start(s: &str) -> Result<u64, String> {
    let at = humantime::parse_rfc3339_weak(s).map_err(|e| e.to_string())?;
    at.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .map_err(|e| e.to_string())
}

#[derive(Debug, Args)]
pub struct ArchiverArgs {
    #[command(flatten)]
    pub connections: Connections,
    #[command(flatten)]
    pub firestore: FirestoreArgs,
    #[command(flatten)]
    pub seasons: SeasonArgs,
    /// Records archived at once (Firestore transactions in flight).
    #[arg(long, env = "DASHDICE_ARCHIVER_CONCURRENCY", default_value_t = 32)]
    pub concurrency: usize,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "DASHDICE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct PresenceArgs {
    #[command(flatten)]
    pub connections: Connections,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "DASHDICE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

#[derive(Debug, Args)]
pub struct NotifierArgs {
    #[command(flatten)]
    pub connections: Connections,
    #[command(flatten)]
    pub fcm: FcmArgs,
    /// Users a broadcast reaches per second at most (default: the
    /// notifier's own pace).
    #[arg(long, env = "DASHDICE_BROADCAST_PER_SECOND")]
    pub broadcast_per_second: Option<u32>,
    /// Serve Prometheus metrics on this address (`GET /metrics`).
    #[arg(long, env = "DASHDICE_METRICS_ADDR")]
    pub metrics_addr: Option<std::net::SocketAddr>,
}

/// Pushes through Firebase Cloud Messaging (HTTP v1).
#[derive(Clone, Debug, Args)]
pub struct FcmArgs {
    /// A Google service-account key (the JSON file) allowed to send through
    /// FCM in its project. Without it nothing is pushed: notifications are
    /// still kept in inboxes and handed to open sockets.
    #[arg(long, env = "DASHDICE_FCM_KEY")]
    pub fcm_key: Option<PathBuf>,
    /// Where FCM's `messages:send` is (default: Google's,
    /// https://fcm.googleapis.com); for a stand-in in tests.
    #[arg(long, env = "DASHDICE_FCM_SEND_BASE")]
    pub fcm_send_base: Option<String>,
    /// Where OAuth 2 access tokens come from (default: the key's
    /// `token_uri`); for a stand-in in tests.
    #[arg(long, env = "DASHDICE_FCM_TOKEN_URI")]
    pub fcm_token_uri: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum NotifyCommand {
    /// Send a notification to many players at once (kept in their inboxes,
    /// shown on open sockets, pushed to the away): the notifiers queue one
    /// per user and pace them. Needs the `ops` NATS user (`--nats-user ops`
    /// or DASHDICE_NATS_USER=ops): no other may send a broadcast.
    Broadcast(BroadcastArgs),
}

#[derive(Debug, Args)]
pub struct BroadcastArgs {
    /// Who: `all` (every user the notifiers know), `online` (online or away
    /// now) or `region:<region>` (online or away in that region).
    #[arg(long, value_parser = parse_audience)]
    pub audience: dashdice_proto::notify::Audience,
    #[arg(long)]
    pub title: String,
    #[arg(long, default_value = "")]
    pub body: String,
    /// The broadcast's id: sending one id again reaches nobody twice
    /// (default: a new random id, printed).
    #[arg(long)]
    pub id: Option<String>,
    /// Extra data for the app, `key=value`, repeatable.
    #[arg(long = "data", value_parser = parse_key_value)]
    pub data: Vec<(String, String)>,
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Print the answer as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `all`, `online` or `region:<region>`.
fn parse_audience(s: &str) -> Result<dashdice_proto::notify::Audience, String> {
    use dashdice_proto::notify::Audience;
    match s {
        "all" => Ok(Audience::All),
        "online" => Ok(Audience::Online),
        _ => match s.strip_prefix("region:") {
            Some(region) if !region.is_empty() => Ok(Audience::Region {
                region: region.to_owned(),
            }),
            _ => Err(format!(
                "{s:?}: an audience is all, online or region:<region>"
            )),
        },
    }
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("{s:?}: data is key=value")),
    }
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
    /// Accept HS256 dev tokens signed with the secret in this file, made
    /// (random, mode 0600) if missing. Gateways given the same file accept
    /// each other's tokens, across restarts. `dashdice up` uses
    /// `$DASHDICE_HOME/dev-secret` (`~/.dashdice/dev-secret`) unless told.
    #[arg(long, env = "DASHDICE_DEV_SECRET_FILE", conflicts_with = "dev_secret")]
    pub dev_secret_file: Option<PathBuf>,
    /// Dev mode: anyone may sign in as a guest (with a random dev secret,
    /// lost on restart, if neither --dev-secret nor --dev-secret-file is
    /// given). `dashdice up` is always in dev mode.
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
    /// Close a connection whose request line and headers have not all
    /// arrived this long after it is ready for a request, ms (0: never).
    #[arg(long, default_value_t = 10_000)]
    pub handshake_timeout_ms: u64,
    /// Connections one client IP (the TCP peer, also behind a proxy; an
    /// IPv6 one by its /64) may hold before one shows a verified token;
    /// more are closed at once. 0: no cap.
    #[arg(long, default_value_t = 64)]
    pub max_unauthenticated_per_ip: usize,
}

impl GatewayArgs {
    /// The file the dev secret is kept in: `--dev-secret-file`, or for
    /// `up` (without `--dev-secret`) its default.
    pub(crate) fn dev_secret_file(&self, up: bool) -> Option<PathBuf> {
        match (&self.dev_secret, &self.dev_secret_file) {
            (Some(_), _) => None,
            (None, Some(file)) => Some(file.clone()),
            (None, None) => up.then(default_dev_secret_file),
        }
    }

    /// The gateway's configuration (`up`: guest sign-in, and the dev
    /// secret kept in a file by default).
    pub(crate) fn config(
        &self,
        up: bool,
    ) -> Result<dashdice_gateway::GatewayConfig, dashdice_gateway::auth::DevSecretError> {
        use dashdice_gateway::{AuthConfig, GatewayConfig, Limits};
        let dev = up || self.dev;
        let dev_secret = match (&self.dev_secret, self.dev_secret_file(up)) {
            (Some(secret), _) => Some(secret.clone()),
            (None, Some(file)) => Some(dashdice_gateway::auth::read_or_create_dev_secret(&file)?),
            (None, None) if dev => {
                tracing::warn!(
                    "dev mode with a random dev secret: every token it issues stops working \
                     when this gateway restarts, and other gateways refuse them; give \
                     --dev-secret-file FILE (the same file to every gateway) to keep them"
                );
                let secret = dashdice_proto::ids::random_hex::<32>()
                    .map_err(|e| dashdice_gateway::auth::DevSecretError::Random(e.to_string()))?;
                Some(secret)
            }
            (None, None) => None,
        };
        Ok(GatewayConfig {
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
                handshake_timeout: std::time::Duration::from_millis(self.handshake_timeout_ms),
                max_unauthenticated_per_ip: self.max_unauthenticated_per_ip,
                ..Limits::default()
            },
            cors_origins: self.cors_origins.clone(),
            default_region: self.default_region.clone(),
            trust_forwarded_for: self.trust_forwarded_for,
        })
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
    /// Publisher keys (hex ed25519 public keys) whose modes this host runs.
    /// Without any, it runs only the built-in modes and refuses every
    /// published one.
    #[arg(
        long = "trusted-keys",
        env = "DASHDICE_TRUSTED_KEYS",
        value_delimiter = ','
    )]
    pub trusted: Vec<String>,
    /// A player whose connections are gone this long (seconds) forfeits,
    /// and a match every player left ends as void, as the presence role
    /// tells; a player who acts counts as present. 0: off (only the turn
    /// timers end a match nobody plays).
    #[arg(
        long,
        env = "DASHDICE_RECONNECT_WINDOW_SECONDS",
        default_value_t = dashdice_match_host::abandon::DEFAULT_RECONNECT_WINDOW.as_secs()
    )]
    pub reconnect_window_seconds: u64,
}

impl MatchHostArgs {
    /// The reconnect window; `None` when off.
    pub(crate) fn reconnect_window(&self) -> Option<std::time::Duration> {
        (self.reconnect_window_seconds > 0)
            .then(|| std::time::Duration::from_secs(self.reconnect_window_seconds))
    }

    pub(crate) fn trusted(&self) -> Result<dashdice_catalog::TrustedKeys, super::CliError> {
        dashdice_catalog::TrustedKeys::parse(&self.trusted.join(","))
            .map_err(|e| super::CliError::Service(format!("--trusted-keys: {e}")))
    }
}

#[derive(Debug, Subcommand)]
pub enum MatchCommand {
    /// Check a finished match's record: the revealed seed matches its
    /// commitment, every roll is what the seed and the mode give, and the
    /// standings follow.
    Verify {
        /// The final view of the match (JSON, as `get` or the last action's
        /// reply gives it, with or without the `{"ok": ...}` envelope), its
        /// match record as published when it ended, or the archived match
        /// (`GET /api/v1/matches/{id}` once archived).
        #[arg(required_unless_present = "archived")]
        record: Option<PathBuf>,
        /// Verify this match from the archive (Firestore) alone.
        #[arg(long, conflicts_with = "record")]
        archived: Option<String>,
        #[command(flatten)]
        firestore: FirestoreArgs,
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
    /// The cluster's modes: built-in and published, each published mode's
    /// versions (current, previous, canary), hashes, who published them
    /// when, and quarantines. Without NATS, the built-in modes only.
    List {
        #[command(flatten)]
        nats: NatsArgs,
        /// Where the live matches are, to count them per version (skipped
        /// when Redis does not answer).
        #[arg(
            long,
            env = "DASHDICE_REDIS_URL",
            default_value = "redis://127.0.0.1:6379/"
        )]
        redis_url: String,
        /// Print the listing as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check a component (as `mode check`), sign it and publish it to the
    /// cluster's catalog: every match host, matchmaker and gateway takes it
    /// within seconds, with no restart. New matches get it; running ones
    /// finish on the version they started on.
    Publish(PublishArgs),
    /// Make a mode's previous version current again.
    Rollback {
        id: String,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Take a mode out of play: no new matches, running ones finish.
    /// Publishing it again brings it back.
    Retire {
        id: String,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Give a published version a share of new matches (0 ends the canary);
    /// `--promote` makes it current.
    Canary {
        id: String,
        /// The version's hash (as `mode list` shows it).
        hash: String,
        #[arg(long, default_value_t = 10)]
        percent: u8,
        #[arg(long)]
        promote: bool,
        #[command(flatten)]
        nats: NatsArgs,
    },
    /// Lift the quarantine of a version (after fixing what made it fault).
    Release {
        hash: String,
        #[command(flatten)]
        nats: NatsArgs,
    },
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
    /// Start a new mode: write a crate for mode <ID> that tests with `cargo
    /// test` and builds its component with `cargo build --release --target
    /// wasm32-wasip2`, anywhere, offline. It carries this binary's SDK and
    /// contract, so the component fits this host exactly.
    New {
        /// The mode id: 1 to 32 of a-z, 0-9 and '-', starting with a letter.
        id: String,
        /// Where to write the crate (default: ./<ID>); it must not exist or be empty.
        #[arg(long)]
        path: Option<PathBuf>,
        /// The name players see (default: the id's words, capitalised).
        #[arg(long)]
        name: Option<String>,
    },
    /// Check that a mode is fit to publish: it loads, its info is sound, and
    /// thousands of seeded random games never trap, always end, refuse
    /// illegal input, replay identically, and keep within the limits. Exits
    /// non-zero when a check fails.
    Check {
        /// A component file, or a built-in mode id.
        mode: String,
        #[arg(long, default_value_t = 2000)]
        games: u32,
        /// Seeds every game: the same seed replays the same games.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// A game still running after this many actions fails the check.
        #[arg(long, default_value_t = 10_000)]
        max_actions: u32,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
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

impl Connections {
    /// How to reach NATS.
    pub(crate) fn nats(&self) -> NatsConfig {
        self.nats.nats()
    }

    pub(crate) fn nats_url(&self) -> &str {
        &self.nats.nats_url
    }
}
