//! Starting the roles: `dashdice match-host`, `matchmaker`, `gateway`,
//! `archiver`, `presence` and `notifier` each start one, and `dashdice up`
//! starts them all in one process (with its own nats-server and
//! redis-server when none answers). The match host, the matchmaker and the
//! archiver ask the notifier for notifications (through the notification
//! stream, which each creates if missing). All go through
//! `dashdice_service::startup`: one Tokio runtime, telemetry, the NATS
//! connection, and stopping on SIGTERM.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use dashdice_runtime::builtin;
use dashdice_runtime::registry::ModeRegistry;
use dashdice_runtime::{Limits, Runtime};
use dashdice_service::startup;

use super::CliError;
use super::args::{
    ArchiverArgs, Connections, FcmArgs, GatewayArgs, GatewayCommandArgs, MatchHostArgs,
    MatchmakerArgs, NotifierArgs, PolicyArgs, PresenceArgs, UpArgs,
};
use dashdice_proto::client::Notifications;

fn service_error(e: impl std::fmt::Display) -> CliError {
    CliError::Service(e.to_string())
}

fn redis_error(c: &Connections, e: impl std::fmt::Display) -> CliError {
    CliError::Service(format!("redis at {}: {e}", c.redis_url))
}

/// Connects to NATS, naming this client `name` to the server.
async fn nats(c: &Connections, name: &str) -> Result<async_nats::Client, CliError> {
    c.nats().connect(name).await.map_err(CliError::Service)
}

/// The built-in modes, loaded (and cached in `artifact_dir` if given).
fn registry(artifact_dir: Option<PathBuf>) -> Result<Arc<ModeRegistry>, CliError> {
    let mut runtime = Runtime::new(Limits::default())?;
    if let Some(dir) = artifact_dir {
        runtime = runtime.with_artifact_dir(dir);
    }
    Ok(Arc::new(ModeRegistry::with_builtins(runtime)?))
}

/// The playable modes: the built-in ones, then whatever the catalog on
/// `nats` publishes, followed in the background.
fn mode_book(nats: &async_nats::Client) -> dashdice_catalog::ModeBook {
    let book = dashdice_catalog::ModeBook::new(builtin::listings());
    book.spawn_follow(nats.clone());
    book
}

/// A match host on `c`, hosting the built-in modes and those published by
/// the `trusted` keys.
async fn match_host(
    c: &Connections,
    registry: Arc<ModeRegistry>,
    trusted: dashdice_catalog::TrustedKeys,
) -> Result<(async_nats::Client, dashdice_match_host::MatchHost), CliError> {
    use dashdice_match_host::published::{CatalogSource, preload};
    let store = dashdice_store::MatchStore::connect(&c.redis_url)
        .await
        .map_err(|e| redis_error(c, e))?;
    let nats = nats(c, "dashdice-match-host").await?;
    let book = dashdice_catalog::ModeBook::new(builtin::listings());
    let (source, _following) = CatalogSource::follow(&nats, book.clone(), trusted)
        .await
        .map_err(|e| CliError::Service(format!("the mode catalog on {}: {e}", c.nats_url())))?;
    let host = dashdice_match_host::MatchHost::new(registry, store).with_source(source);
    tokio::spawn(preload(host.versions().clone(), book));
    Ok((nats, host))
}

/// Runs a match host made by [`match_host`], asking for `your_turn`
/// notifications, and ending matches whose players are gone past
/// `reconnect_window` (if any).
async fn serve_match_host(
    nats: async_nats::Client,
    host: dashdice_match_host::MatchHost,
    reconnect_window: Option<std::time::Duration>,
) -> Result<(), CliError> {
    let options = dashdice_match_host::service::Options {
        notifications: Some(Notifications::new(nats.clone())),
        reconnect_window,
        ..Default::default()
    };
    dashdice_match_host::service::run_with(nats, host, options)
        .await
        .map_err(service_error)
}

/// A matchmaker for `modes` on `policy`, reaching the match hosts and the
/// players over NATS.
async fn matchmaker(
    c: &Connections,
    policy: &PolicyArgs,
    modes: Vec<String>,
) -> Result<
    (
        async_nats::Client,
        dashdice_matchmaker::service::NatsMatchmaker,
    ),
    CliError,
> {
    use dashdice_matchmaker::service::{NatsMatches, NatsNotify};
    if let Some(bad) = policy
        .regions
        .iter()
        .find(|r| !dashdice_matchmaker::valid_region(r))
    {
        return Err(CliError::Service(format!(
            "region {bad:?}: regions are lowercase letters, digits and '-'"
        )));
    }
    let store = dashdice_store::queues::QueueStore::connect(&c.redis_url)
        .await
        .map_err(|e| redis_error(c, e))?;
    let nats = nats(c, "dashdice-matchmaker").await?;
    let follow_catalog = modes.is_empty();
    let mut matchmaker = dashdice_matchmaker::Matchmaker::new(
        store,
        policy.into(),
        modes,
        policy.regions.clone(),
        NatsMatches::new(nats.clone()),
        NatsNotify {
            client: nats.clone(),
        },
    )
    .with_notifications(Notifications::new(nats.clone()));
    if follow_catalog {
        matchmaker = matchmaker.with_book(mode_book(&nats));
    }
    matchmaker.private = dashdice_matchmaker::PrivatePolicy {
        code_ttl_ms: policy.code_ttl_ms,
        rematch_window_ms: policy.rematch_window_ms,
    };
    Ok((nats, matchmaker))
}

/// An archiver on `c` and Firestore.
async fn archiver(
    c: &Connections,
    firestore: &dashdice_archive::FirestoreConfig,
    seasons: dashdice_archive::ledger::Seasons,
) -> Result<(async_nats::Client, dashdice_archiver::Archiver), CliError> {
    let boards = dashdice_store::leaderboards::Leaderboards::connect(&c.redis_url)
        .await
        .map_err(|e| redis_error(c, e))?;
    let archive = dashdice_archive::Archive::connect(firestore, seasons)
        .await
        .map_err(|e| CliError::Service(format!("firestore ({}): {e}", firestore.project)))?;
    let nats = nats(c, "dashdice-archiver").await?;
    let archiver = dashdice_archiver::Archiver {
        archive,
        boards,
        clock: dashdice_proto::clock::system(),
    };
    Ok((nats, archiver))
}

/// Runs an archiver made by [`archiver`], asking for friends' and match
/// results' notifications.
async fn serve_archiver(
    nats: async_nats::Client,
    archiver: dashdice_archiver::Archiver,
    options: dashdice_archiver::Options,
) -> Result<(), CliError> {
    let notifications = Notifications::new(nats.clone());
    dashdice_archiver::run_notifying(nats, archiver, options, Some(notifications))
        .await
        .map_err(service_error)
}

/// A presence role on `c`, listing the lobby's queues of the modes the
/// catalog makes playable.
async fn presence(
    c: &Connections,
) -> Result<(async_nats::Client, dashdice_presence::Presences), CliError> {
    let store = presence_store(c).await?;
    let queues = dashdice_store::queues::QueueStore::connect(&c.redis_url)
        .await
        .map_err(|e| redis_error(c, e))?;
    let nats = nats(c, "dashdice-presence").await?;
    let presences = dashdice_presence::Presences::new(store, queues, mode_book(&nats));
    Ok((nats, presences))
}

/// The presence store as the presence role keeps it (the notifier reads
/// it to tell who is away).
async fn presence_store(
    c: &Connections,
) -> Result<dashdice_store::presence::PresenceStore, CliError> {
    use dashdice_proto::presence::{CONNECTION_TTL_MS, MAX_CONNECTIONS, QUEUE_GRACE_MS};
    let settings = dashdice_store::presence::PresenceSettings {
        connection_ttl_ms: CONNECTION_TTL_MS,
        grace_ms: QUEUE_GRACE_MS,
        max_connections: MAX_CONNECTIONS,
        ..Default::default()
    };
    Ok(
        dashdice_store::presence::PresenceStore::connect(&c.redis_url)
            .await
            .map_err(|e| redis_error(c, e))?
            .with_settings(settings),
    )
}

/// The FCM client `fcm` asks for, if any (none without a key).
fn fcm(fcm: &FcmArgs) -> Result<Option<dashdice_notifier::fcm::Fcm>, CliError> {
    use dashdice_notifier::fcm::{Fcm, FcmConfig, ServiceAccountKey};
    let Some(path) = &fcm.fcm_key else {
        return Ok(None);
    };
    let key = ServiceAccountKey::from_file(path)
        .map_err(|e| CliError::Service(format!("--fcm-key {}: {e}", path.display())))?;
    let mut config = FcmConfig::new(key);
    if let Some(base) = &fcm.fcm_send_base {
        config.send_base = base.clone();
    }
    if let Some(uri) = &fcm.fcm_token_uri {
        config.token_uri = Some(uri.clone());
    }
    let client = Fcm::new(config).map_err(|e| CliError::Service(format!("FCM: {e}")))?;
    Ok(Some(client))
}

/// A notifier on `c`: inboxes in Redis, presence read from Redis, pushes
/// through `fcm` if given.
async fn notifier(
    c: &Connections,
    fcm: Option<dashdice_notifier::fcm::Fcm>,
) -> Result<(async_nats::Client, dashdice_notifier::delivery::Notifier), CliError> {
    let inbox = dashdice_store::inbox::InboxStore::connect(&c.redis_url)
        .await
        .map_err(|e| redis_error(c, e))?;
    let presence = presence_store(c).await?;
    let nats = nats(c, "dashdice-notifier").await?;
    let notifier = dashdice_notifier::delivery::Notifier::new(inbox, presence, fcm);
    Ok((nats, notifier))
}

/// The gateway, bound to its address, ready to serve.
async fn gateway(
    args: &GatewayArgs,
    c: &Connections,
    up: bool,
) -> Result<(tokio::net::TcpListener, Arc<dashdice_gateway::Gateway>), CliError> {
    let nats = nats(c, "dashdice-gateway").await?;
    let redis = dashdice_store::RedisProbe::connect(&c.redis_url)
        .await
        .map_err(|e| redis_error(c, e))?;
    let book = mode_book(&nats);
    let gateway = dashdice_gateway::Gateway::new(
        args.config(up).map_err(service_error)?,
        nats,
        Some(redis),
        dashdice_service::telemetry::prometheus(),
    )
    .map_err(service_error)?
    .with_modes(book);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| CliError::Service(format!("cannot listen on {}: {e}", args.listen)))?;
    Ok((listener, Arc::new(gateway)))
}

pub fn run_match_host(args: MatchHostArgs) -> Result<(), CliError> {
    let trusted = args.trusted()?;
    let window = args.reconnect_window();
    let registry = registry(args.artifact_dir)?;
    startup::block_on(async move {
        let _telemetry =
            startup::observe("dashdice-match-host", args.metrics_addr).map_err(service_error)?;
        let c = &args.connections;
        let (nats, host) = match_host(c, registry, trusted).await?;
        tracing::info!(nats = %c.nats_url(), redis = %c.redis_url, "match host serving");
        startup::until_stopped(serve_match_host(nats, host, window))
            .await
            .map_err(CliError::Service)
    })?
}

pub fn run_matchmaker(args: MatchmakerArgs) -> Result<(), CliError> {
    // No list: whatever the catalog makes playable (built-in modes first).
    let modes = args.modes.clone();
    startup::block_on(async move {
        let _telemetry =
            startup::observe("dashdice-matchmaker", args.metrics_addr).map_err(service_error)?;
        let c = &args.connections;
        let (nats, matchmaker) = matchmaker(c, &args.policy, modes).await?;
        tracing::info!(nats = %c.nats_url(), redis = %c.redis_url, "matchmaker serving");
        let serving =
            dashdice_matchmaker::service::run_with(nats, matchmaker, args.policy.max_in_flight);
        startup::until_stopped(serving)
            .await
            .map_err(CliError::Service)
    })?
}

pub fn run_archiver(args: ArchiverArgs) -> Result<(), CliError> {
    startup::block_on(async move {
        let _telemetry =
            startup::observe("dashdice-archiver", args.metrics_addr).map_err(service_error)?;
        let c = &args.connections;
        let firestore = args.firestore.config();
        let (nats, archiver) = archiver(c, &firestore, args.seasons.seasons()).await?;
        tracing::info!(nats = %c.nats_url(), redis = %c.redis_url, project = %firestore.project, emulator = ?firestore.emulator, "archiver serving");
        let options = dashdice_archiver::Options {
            concurrency: args.concurrency.max(1),
            ..Default::default()
        };
        startup::until_stopped(serve_archiver(nats, archiver, options))
            .await
            .map_err(CliError::Service)
    })?
}

pub fn run_presence(args: PresenceArgs) -> Result<(), CliError> {
    startup::block_on(async move {
        let _telemetry =
            startup::observe("dashdice-presence", args.metrics_addr).map_err(service_error)?;
        let c = &args.connections;
        let (nats, presences) = presence(c).await?;
        tracing::info!(nats = %c.nats_url(), redis = %c.redis_url, "presence serving");
        let serving = dashdice_presence::service::run(nats, presences, Default::default());
        startup::until_stopped(serving)
            .await
            .map_err(CliError::Service)
    })?
}

pub fn run_notifier(args: NotifierArgs) -> Result<(), CliError> {
    startup::block_on(async move {
        let _telemetry =
            startup::observe("dashdice-notifier", args.metrics_addr).map_err(service_error)?;
        let c = &args.connections;
        let fcm = fcm(&args.fcm)?;
        let pushing = fcm.is_some();
        let (nats, notifier) = notifier(c, fcm).await?;
        let mut options = dashdice_notifier::service::Options::default();
        if let Some(rate) = args.broadcast_per_second {
            options.broadcast_per_second = rate.max(1);
        }
        tracing::info!(nats = %c.nats_url(), redis = %c.redis_url, pushing, "notifier serving");
        let serving = dashdice_notifier::service::run(nats, notifier, options);
        startup::until_stopped(serving)
            .await
            .map_err(CliError::Service)
    })?
}

pub fn run_gateway(args: GatewayCommandArgs, out: &mut dyn Write) -> Result<(), CliError> {
    startup::block_on(async move {
        let _telemetry = startup::observe("dashdice-gateway", None).map_err(service_error)?;
        let (listener, gateway) = gateway(&args.gateway, &args.connections, false).await?;
        let addr = listener.local_addr().map_err(service_error)?;
        writeln!(
            out,
            "dashdice gateway on http://{addr}/ (API under /api/v1)"
        )?;
        out.flush()?;
        tracing::info!(%addr, nats = %args.connections.nats_url(), "gateway serving");
        dashdice_gateway::serve(listener, gateway, startup::stopped())
            .await
            .map_err(service_error)
    })?
}

pub fn run_up(args: UpArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let c = &args.connections;
    // Started here if need be; stopped when these drop, at the end.
    let nats_server = dashdice_service::local::ensure_nats(c.nats_url()).map_err(service_error)?;
    let redis_server =
        dashdice_service::local::ensure_redis(&c.redis_url).map_err(service_error)?;
    // The archiver needs Firestore: the emulator, started here if it is
    // installed and nothing answers. Without it `up` runs without stats.
    let (firestore_server, no_archive) = if args.no_archiver {
        (None, Some("--no-archiver".to_owned()))
    } else {
        match dashdice_service::local::ensure_firestore(&args.firestore_emulator) {
            Ok(server) => (server, None),
            Err(e) => (None, Some(e.to_string())),
        }
    };
    let registry = registry(args.artifact_dir.clone())?;
    // A dev publisher key, made on first use: `mode publish` signs with it
    // by default and this host trusts it, so designers need no set-up.
    let key_file = super::args::default_key_file();
    let dev_key = dashdice_catalog::PublisherKey::read_or_create(&key_file)
        .map_err(|e| CliError::Service(e.to_string()))?;
    let mut trusted = args.trusted.clone();
    trusted.push(dev_key.public().to_string());
    let trusted = dashdice_catalog::TrustedKeys::parse(&trusted.join(","))
        .map_err(|e| CliError::Service(format!("--trusted-keys: {e}")))?;
    let served = startup::block_on(async {
        let _telemetry = startup::observe("dashdice", None).map_err(service_error)?;
        let (listener, gateway) = gateway(&args.gateway, c, true).await?;
        let page = listener.local_addr().map_err(service_error)?;
        let (host_nats, host) = match_host(c, registry, trusted).await?;
        let (mm_nats, matchmaker) = matchmaker(c, &args.policy, Vec::new()).await?;
        let (presence_nats, presences) = presence(c).await?;
        let (notifier_nats, notifier) = notifier(c, fcm(&args.fcm)?).await?;
        let pushing = args.fcm.fcm_key.is_some();
        let firestore = dashdice_archive::FirestoreConfig {
            project: "dashdice-local".into(),
            emulator: Some(args.firestore_emulator.clone()),
            timeout: std::time::Duration::from_secs(10),
        };
        let archiver = match &no_archive {
            None => Some(archiver(c, &firestore, args.seasons.seasons()).await?),
            Some(_) => None,
        };
        let modes = matchmaker.modes();
        let started = |s: &Option<dashdice_service::local::LocalServer>| {
            if s.is_some() { " (started here)" } else { "" }
        };
        writeln!(
            out,
            "dashdice is up: gateway, match host, matchmaker, presence, notifier{}, modes {}",
            if archiver.is_some() {
                " and archiver"
            } else {
                ""
            },
            modes.join(", ")
        )?;
        writeln!(out, "  play    http://{page}/")?;
        writeln!(
            out,
            "  API     http://{page}/api/v1 (WebSocket: ws://{page}/api/v1/ws)"
        )?;
        writeln!(out, "  metrics http://{page}/api/v1/metrics")?;
        if let Some(file) = args.gateway.dev_secret_file(true) {
            writeln!(
                out,
                "  tokens  signed with the dev secret in {} (kept across restarts; give other gateways --dev-secret-file)",
                file.display()
            )?;
        }
        writeln!(out, "  NATS    {}{}", c.nats_url(), started(&nats_server))?;
        writeln!(out, "  Redis   {}{}", c.redis_url, started(&redis_server))?;
        if pushing {
            writeln!(
                out,
                "  pushes  through Firebase Cloud Messaging (--fcm-key)"
            )?;
        } else {
            writeln!(
                out,
                "  pushes  none (no --fcm-key): notifications go to inboxes and open sockets only"
            )?;
        }
        match &no_archive {
            None => writeln!(
                out,
                "  Firestore emulator {}{} (profiles, stats, history, ratings, leaderboards)",
                args.firestore_emulator,
                started(&firestore_server)
            )?,
            Some(why) => writeln!(
                out,
                "  no archiver: no stats, history, ratings or leaderboards ({why})"
            )?,
        }
        writeln!(
            out,
            "  modes   dashdice mode publish FILE.wasm (signed with {}, trusted here: {})",
            key_file.display(),
            dev_key.public()
        )?;
        writeln!(out, "Ctrl-C stops it.")?;
        out.flush()?;
        let (stop_gateway, gateway_stopped) = tokio::sync::oneshot::channel::<()>();
        let serving = tokio::spawn(dashdice_gateway::serve(listener, gateway, async move {
            let _ = gateway_stopped.await;
        }));
        let archiving = async {
            match archiver {
                Some((nats, archiver)) => serve_archiver(nats, archiver, Default::default()).await,
                None => std::future::pending().await,
            }
        };
        let workers = async {
            tokio::select! {
                r = archiving => r,
                r = dashdice_presence::service::run(presence_nats, presences, Default::default()) => {
                    r.map_err(service_error)
                }
                r = serve_match_host(host_nats, host, Some(dashdice_match_host::abandon::DEFAULT_RECONNECT_WINDOW)) => r,
                r = dashdice_notifier::service::run(notifier_nats, notifier, Default::default()) => {
                    r.map_err(service_error)
                }
                r = dashdice_matchmaker::service::run_with(mm_nats, matchmaker, args.policy.max_in_flight) => {
                    r.map_err(service_error)
                }
            }
        };
        let result = startup::until_stopped(workers)
            .await
            .map_err(CliError::Service);
        // The gateway first: its sessions close (1001) while the workers
        // still answer.
        let _ = stop_gateway.send(());
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), serving).await;
        result
    });
    // The runtime, and with it every role, is gone: now stop the servers
    // they used.
    drop(firestore_server);
    drop(redis_server);
    drop(nats_server);
    served?
}
