//! `dashdice bench presence`: many online users with many friends, a share
//! of them changing activity every second, against the presence role that
//! answers on NATS; it reports what the presence issue asks for.
//!
//! What it does, in order:
//!
//! 1. **Friends.** Every user gets `friends` friends: one random perfect
//!    matching of the users per friend (seeded ChaCha8), so the graph is
//!    symmetric, everyone has exactly `friends` friends (less the rare
//!    repeat), and friends are spread over all gateways.
//! 2. **Online.** `gateways` NATS connections stand in for gateways; user
//!    `i` is on gateway `i mod gateways` and connects once from it
//!    ([`PresenceClient::connect`], 256 in flight, regions eu/us/ap in
//!    turn). Redis `used_memory` (`INFO`) before and after, divided by the
//!    users, is the **Redis bytes per online user**. From the first connect
//!    on, each gateway sends its connections' heartbeats every
//!    [`HEARTBEAT_EVERY_MS`] in batches of at most [`MAX_HEARTBEAT_BATCH`], one
//!    batch after the other, as the gateway does (the gateways' periods
//!    staggered).
//! 3. **Following.** Then each gateway subscribes once to
//!    [`presence_changes`](bus::presence_changes) of every user one of its
//!    users follows, and on each message fans out in memory to its local
//!    followers of that user, as the real gateway does, dropping versions
//!    older than one it has seen: *deliveries* = NATS messages × local
//!    followers.
//! 4. **Upkeep.** For `upkeep` (two heartbeats at least) nothing changes:
//!    the presence role's CPU over it is the cost of keeping users online
//!    (heartbeats and sweeps), and nothing should be published.
//! 5. **Changes.** For `duration`, `change_rate` × users random users a
//!    second toggle their activity menu ↔ matchmaking
//!    ([`PresenceClient::activity`]), spread evenly (a batch every 10 ms,
//!    open loop: a slow reply does not slow the offered rate), never one
//!    whose previous change is still unanswered.
//! 6. **Offline.** Every user disconnects; what Redis still holds of them
//!    after that is reported per user (the presence store keeps an
//!    offline user's entry a while, so their version never goes back).
//!
//! What it measures:
//!
//! - changes per second achieved, and the activity calls' latency (send →
//!   reply);
//! - presence messages published per second (counted by one more
//!   connection subscribed to every user's changes) and deliveries per
//!   second to followers, against the deliveries expected (every change
//!   reaches every friend);
//! - **publish → delivery**: at receipt, the system clock minus the
//!   message's [`Presence::changed_ms`] (ms resolution; every process runs
//!   on this machine, so one clock), and **change → delivery**: the
//!   activity request's send time to the follower's receipt (µs);
//! - **CPU per change**: user + system time of the presence process
//!   (`/proc/<pid>/stat`, when its pid is known) over the changes, ÷ the
//!   changes; gross, and net of the upkeep measured before. The same for
//!   `redis-server` (its pid from `INFO`, when on this machine), for
//!   `nats-server` (when its pid is known) and for this bench process (the
//!   gateways' side).
//!
//! Every process shares the machine's cores, so latencies include waiting
//! for a core; the CPU figures do not depend on that.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use indicatif::ProgressBar;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;

use super::{BenchError, Samples};
use dashdice_proto::bus;
use dashdice_proto::client::{CallError, PresenceClient, Requester};
use dashdice_proto::presence::{
    Activity, Connect, Disconnect, HEARTBEAT_EVERY_MS, Heartbeat, LiveConnection,
    MAX_HEARTBEAT_BATCH, Presence, SetActivity,
};
use dashdice_store::RedisProbe;

/// Connects, and disconnects, in flight at once.
const IN_FLIGHT: usize = 256;
/// Regions users connect from, in turn.
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
/// How long a presence call may take before it counts as an error.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`, 100 on every
/// Linux architecture the project builds for).
const CLOCK_TICKS: f64 = 100.0;

#[derive(Clone, Debug)]
pub struct Options {
    pub users: usize,
    pub friends: usize,
    /// The share of online users changing activity each second.
    pub change_rate: f64,
    /// How long users keep changing.
    pub duration: Duration,
    /// Simulated gateways (NATS connections).
    pub gateways: usize,
    /// How long only heartbeats run before the changes.
    pub upkeep: Duration,
    /// Seeds the friends and who changes when (and names the users).
    pub seed: u64,
    /// The presence role's process, to read its CPU time.
    pub presence_pid: Option<u32>,
    /// The NATS server's process, to read its CPU time.
    pub nats_pid: Option<u32>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            users: 10_000,
            friends: 50,
            change_rate: 0.1,
            duration: Duration::from_secs(30),
            gateways: 4,
            upkeep: Duration::from_secs(10),
            seed: 1,
            presence_pid: None,
            nats_pid: None,
        }
    }
}

/// What a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub users: usize,
    /// Friends per user, on average (repeats in the random matchings
    /// dropped).
    pub friends_mean: f64,
    pub gateways: usize,
    /// Subscriptions the gateways hold in all (one per followed user each).
    pub subscriptions: u64,
    pub connect_seconds: f64,
    pub connects_per_sec: f64,
    pub connect_us_p99: u64,
    pub connect_errors: u64,
    /// Redis `used_memory` grown by connecting everyone, per user.
    pub redis_bytes_per_online_user: u64,
    /// The same after the changes.
    pub redis_bytes_per_online_user_after_changes: u64,
    /// What Redis still held (above where it started) once everyone
    /// disconnected, per user.
    pub redis_bytes_per_offline_user: u64,
    pub upkeep_seconds: f64,
    /// Presence messages published while nothing changed.
    pub upkeep_published: u64,
    pub seconds: f64,
    pub offered_changes_per_sec: f64,
    pub changes: u64,
    pub changes_per_sec: f64,
    pub change_errors: u64,
    pub activity_us_p50: u64,
    pub activity_us_p99: u64,
    pub activity_us_max: u64,
    /// Presence messages published during the changes (NATS).
    pub published: u64,
    pub published_per_sec: f64,
    /// Messages the gateways received (each published message once per
    /// gateway with a follower of that user).
    pub gateway_messages: u64,
    pub deliveries: u64,
    pub deliveries_per_sec: f64,
    /// Deliveries had every change reached every friend.
    pub deliveries_expected: u64,
    /// Messages a gateway dropped as older than one it had seen.
    pub stale: u64,
    pub publish_to_delivery_ms_p50: u64,
    pub publish_to_delivery_ms_p99: u64,
    pub publish_to_delivery_ms_max: u64,
    pub change_to_delivery_us_p50: u64,
    pub change_to_delivery_us_p99: u64,
    pub change_to_delivery_us_max: u64,
    pub heartbeats: u64,
    pub heartbeat_connections: u64,
    pub heartbeat_restored: u64,
    pub heartbeat_errors: u64,
    pub heartbeat_us_p99: u64,
    /// The presence role's CPU while only heartbeats ran, per online user
    /// and second (µs).
    pub presence_upkeep_us_per_user_sec: Option<f64>,
    /// The same per connection a heartbeat refreshed (µs).
    pub presence_upkeep_us_per_heartbeat_connection: Option<f64>,
    /// The presence role's CPU during the changes ÷ the changes (µs).
    pub presence_cpu_us_per_change: Option<f64>,
    /// The same, less the upkeep's rate over the same time.
    pub presence_cpu_us_per_change_net: Option<f64>,
    /// The presence role's CPU during the changes, in cores.
    pub presence_cores: Option<f64>,
    pub redis_cpu_us_per_change: Option<f64>,
    pub redis_cpu_us_per_change_net: Option<f64>,
    /// nats-server's CPU during the changes ÷ the changes (µs): the
    /// publish and its copies to the gateways (and to this bench's
    /// counting subscriber).
    pub nats_cpu_us_per_change: Option<f64>,
    pub nats_cpu_us_per_change_net: Option<f64>,
    /// This process (the gateways' fan-out and the load) per change.
    pub bench_cpu_us_per_change: Option<f64>,
}

impl Report {
    pub fn render(&self) -> String {
        let us = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
        format!(
            "{} users online, {:.1} friends each, {} gateways ({} subscriptions)\n\
             online       {} connects in {:.1} s ({:.0}/s, p99 {} µs, {} errors)\n\
             redis        {} bytes per online user ({} after the changes; {} per user once all disconnected)\n\
             upkeep       {:.0} s of heartbeats only: {} published; presence CPU {} µs per user per second, {} µs per connection refreshed\n\
             changes      {} in {:.1} s: {:.0}/s of {:.0}/s offered, {} errors; activity call p50 {} µs, p99 {} µs, max {} µs\n\
             published    {} presence messages ({:.0}/s)\n\
             delivered    {} to followers ({:.0}/s) of {} expected, from {} gateway messages; {} stale dropped\n\
             latency      publish → delivery p50 {} ms, p99 {} ms, max {} ms; change → delivery p50 {} µs, p99 {} µs, max {} µs\n\
             heartbeats   {} batches, {} connections refreshed, {} restored, {} errors, p99 {} µs\n\
             cpu          presence {} µs per change ({} net of upkeep; {} cores); redis {} µs ({} net); nats {} µs ({} net); bench {} µs\n",
            self.users,
            self.friends_mean,
            self.gateways,
            self.subscriptions,
            self.users,
            self.connect_seconds,
            self.connects_per_sec,
            self.connect_us_p99,
            self.connect_errors,
            self.redis_bytes_per_online_user,
            self.redis_bytes_per_online_user_after_changes,
            self.redis_bytes_per_offline_user,
            self.upkeep_seconds,
            self.upkeep_published,
            us(self.presence_upkeep_us_per_user_sec),
            us(self.presence_upkeep_us_per_heartbeat_connection),
            self.changes,
            self.seconds,
            self.changes_per_sec,
            self.offered_changes_per_sec,
            self.change_errors,
            self.activity_us_p50,
            self.activity_us_p99,
            self.activity_us_max,
            self.published,
            self.published_per_sec,
            self.deliveries,
            self.deliveries_per_sec,
            self.deliveries_expected,
            self.gateway_messages,
            self.stale,
            self.publish_to_delivery_ms_p50,
            self.publish_to_delivery_ms_p99,
            self.publish_to_delivery_ms_max,
            self.change_to_delivery_us_p50,
            self.change_to_delivery_us_p99,
            self.change_to_delivery_us_max,
            self.heartbeats,
            self.heartbeat_connections,
            self.heartbeat_restored,
            self.heartbeat_errors,
            self.heartbeat_us_p99,
            us(self.presence_cpu_us_per_change),
            us(self.presence_cpu_us_per_change_net),
            self.presence_cores
                .map_or_else(|| "-".to_owned(), |c| format!("{c:.2}")),
            us(self.redis_cpu_us_per_change),
            us(self.redis_cpu_us_per_change_net),
            us(self.nats_cpu_us_per_change),
            us(self.nats_cpu_us_per_change_net),
            us(self.bench_cpu_us_per_change),
        )
    }
}

/// The users' names: 28 characters, as long as a Firebase uid, so Redis
/// holds what it would for real ones. The index is the last 19 digits.
struct Names {
    run: String,
}

impl Names {
    fn uid(&self, i: usize) -> String {
        format!("b{}{i:019}", self.run)
    }

    fn index(&self, uid: &str) -> Option<usize> {
        let digits = uid.strip_prefix('b')?.strip_prefix(self.run.as_str())?;
        digits.parse().ok()
    }

    /// A connection id as a gateway makes one (unique across gateways).
    fn conn(&self, gateway: usize, i: usize) -> String {
        format!("g{gateway}-{i:x}")
    }
}

/// Everyone's friends: `friends` random perfect matchings of the users,
/// merged, so friendship is symmetric.
fn friends_graph(users: usize, friends: usize, rng: &mut ChaCha8Rng) -> Vec<Vec<u32>> {
    let mut graph = vec![Vec::with_capacity(friends); users];
    let mut order: Vec<u32> = (0..users as u32).collect();
    for _ in 0..friends {
        for i in (1..order.len()).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
        for pair in order.chunks_exact(2) {
            graph[pair[0] as usize].push(pair[1]);
            graph[pair[1] as usize].push(pair[0]);
        }
    }
    for friends in &mut graph {
        friends.sort_unstable();
        friends.dedup();
    }
    graph
}

/// Microseconds since the Unix epoch by the system clock.
fn now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

fn micros(since: Instant) -> u64 {
    since.elapsed().as_micros().min(u128::from(u64::MAX)) as u64
}

/// CPU seconds (user + system) process `pid` has used, from
/// `/proc/<pid>/stat`; `None` when it cannot be read (not Linux, another
/// machine, gone).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces;
    // after it come field 3 (state) onwards, so utime (14) is the 12th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) as f64 / CLOCK_TICKS)
}

/// The processes whose CPU time is read.
struct Pids {
    presence: Option<u32>,
    redis: Option<u32>,
    nats: Option<u32>,
}

/// CPU time of the processes watched, read at one moment.
#[derive(Clone, Copy, Debug)]
struct Cpu {
    presence: Option<f64>,
    redis: Option<f64>,
    nats: Option<f64>,
    bench: Option<f64>,
}

impl Cpu {
    fn read(pids: &Pids) -> Self {
        Cpu {
            presence: pids.presence.and_then(cpu_seconds),
            redis: pids.redis.and_then(cpu_seconds),
            nats: pids.nats.and_then(cpu_seconds),
            bench: cpu_seconds(std::process::id()),
        }
    }

    /// Seconds used between `self` and `later`, process by process.
    fn until(&self, later: &Cpu) -> Cpu {
        let spent = |a: Option<f64>, b: Option<f64>| Some(b? - a?);
        Cpu {
            presence: spent(self.presence, later.presence),
            redis: spent(self.redis, later.redis),
            nats: spent(self.nats, later.nats),
            bench: spent(self.bench, later.bench),
        }
    }
}

/// What the gateways counted, shared by their tasks.
#[derive(Default)]
struct Counters {
    /// Whether the changes run (latencies are kept only then).
    measuring: AtomicBool,
    /// Messages seen by the connection that follows everyone.
    published: AtomicU64,
    gateway_messages: AtomicU64,
    deliveries: AtomicU64,
    stale: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> [u64; 4] {
        [
            self.published.load(Ordering::Relaxed),
            self.gateway_messages.load(Ordering::Relaxed),
            self.deliveries.load(Ordering::Relaxed),
            self.stale.load(Ordering::Relaxed),
        ]
    }
}

/// Latencies one gateway measured.
#[derive(Default)]
struct Latencies {
    publish_to_delivery_ms: Samples,
    change_to_delivery_us: Samples,
}

/// The activity calls' tally.
#[derive(Default)]
struct Changes {
    done: u64,
    errors: u64,
    latency_us: Samples,
    /// Friends of the users whose change was made.
    expected_deliveries: u64,
}

/// Shared by the load and the gateways: when each user's latest change was
/// sent (µs since the epoch; 0 = none yet).
type SentAt = Arc<Vec<AtomicU64>>;

/// One simulated gateway's fan-out: every subscription merged into one
/// stream, each message counted once per local follower of its user.
async fn gateway(
    subscriptions: Vec<async_nats::Subscriber>,
    followers: Vec<u32>,
    names: Arc<Names>,
    counters: Arc<Counters>,
    sent_at: SentAt,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Latencies {
    let mut merged = futures_util::stream::select_all(subscriptions);
    let mut versions = vec![0u64; followers.len()];
    let mut latencies = Latencies::default();
    loop {
        let message = tokio::select! {
            Some(message) = merged.next() => message,
            _ = stop.changed() => break,
            else => break,
        };
        counters.gateway_messages.fetch_add(1, Ordering::Relaxed);
        let Ok(presence) = serde_json::from_slice::<Presence>(&message.payload) else {
            continue;
        };
        let Some(i) = names.index(&presence.uid).filter(|&i| i < followers.len()) else {
            continue;
        };
        if presence.version <= versions[i] {
            counters.stale.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        versions[i] = presence.version;
        let local = u64::from(followers[i]);
        counters.deliveries.fetch_add(local, Ordering::Relaxed);
        if counters.measuring.load(Ordering::Relaxed) {
            let now = now_us();
            // One sample per delivery: a message to many followers
            // weighs as much as those deliveries.
            if presence.changed_ms > 0 {
                let from_publish = (now / 1000).saturating_sub(presence.changed_ms);
                latencies
                    .publish_to_delivery_ms
                    .record_n(from_publish, local);
            }
            let sent = sent_at[i].load(Ordering::Relaxed);
            if sent > 0 {
                let from_change = now.saturating_sub(sent);
                latencies.change_to_delivery_us.record_n(from_change, local);
            }
        }
    }
    latencies
}

/// The heartbeats the gateways sent.
#[derive(Default)]
struct Heartbeats {
    batches: u64,
    refreshed: u64,
    restored: u64,
    errors: u64,
    latency_us: Samples,
}

/// One gateway's heartbeats, as the gateway sends them: every
/// [`HEARTBEAT_EVERY_MS`], its online users' connections in batches of
/// [`MAX_HEARTBEAT_BATCH`], one after the other. Gateway `g` of `G` first beats
/// `(g + 1) / G` of a period in, as gateways started at different times
/// would.
async fn heartbeats(
    client: PresenceClient,
    gateway: usize,
    gateways: usize,
    names: Arc<Names>,
    online: Arc<Vec<AtomicBool>>,
    tally: Arc<std::sync::Mutex<Heartbeats>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let every = Duration::from_millis(HEARTBEAT_EVERY_MS);
    let first = every * (gateway as u32 + 1) / gateways as u32;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let live: Vec<LiveConnection> = (gateway..online.len())
            .step_by(gateways)
            .filter(|&i| online[i].load(Ordering::Relaxed))
            .map(|i| LiveConnection {
                uid: names.uid(i),
                conn: names.conn(gateway, i),
                region: REGIONS[i % REGIONS.len()].to_owned(),
                away: false,
            })
            .collect();
        for batch in live.chunks(MAX_HEARTBEAT_BATCH) {
            let request = Heartbeat {
                conns: batch.to_vec(),
            };
            let at = Instant::now();
            let reply = client.heartbeat(&request).await;
            let mut t = lock(&tally);
            t.batches += 1;
            t.latency_us.record(micros(at));
            match reply {
                Ok(r) => {
                    t.refreshed += u64::from(r.refreshed);
                    t.restored += u64::from(r.restored);
                }
                Err(_) => t.errors += 1,
            }
        }
    }
}

/// Waits until a presence role answers (a query of nobody).
async fn wait_for_presence(client: &PresenceClient) -> Result<(), BenchError> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match client.query(Vec::new()).await {
            // A refusal is an answer too.
            Ok(_) | Err(CallError::Refused(_)) => return Ok(()),
            Err(e) if Instant::now() > deadline => {
                return Err(BenchError::Setup(format!(
                    "no presence role answers on NATS: {e}"
                )));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

fn setup(e: impl std::fmt::Display) -> BenchError {
    BenchError::Setup(e.to_string())
}

/// `used_memory` now minus `before`, per user (0 if it shrank).
fn per_user(now: u64, before: u64, users: usize) -> u64 {
    now.saturating_sub(before) / users.max(1) as u64
}

fn per_change(seconds: Option<f64>, changes: u64) -> Option<f64> {
    (changes > 0).then_some(seconds? * 1e6 / changes as f64)
}

/// Runs the benchmark against the presence role answering on the bus the
/// clients `connect` makes reach (one per gateway, and one more that
/// follows everyone), with `redis` its Redis.
pub async fn presence<F, C>(
    connect: F,
    redis: RedisProbe,
    options: &Options,
    progress: ProgressBar,
) -> Result<Report, BenchError>
where
    F: Fn() -> C,
    C: std::future::Future<Output = Result<async_nats::Client, String>>,
{
    let users = options.users.max(2);
    let gateways = options.gateways.clamp(1, users);
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let names = Arc::new(Names {
        run: format!("{:08x}", rng.next_u32()),
    });
    let graph = friends_graph(users, options.friends, &mut rng);
    let friends_total: u64 = graph.iter().map(|f| f.len() as u64).sum();

    let (mut buses, mut clients) = (Vec::new(), Vec::new());
    for _ in 0..gateways {
        let nats = connect().await.map_err(setup)?;
        clients.push(PresenceClient::new(Requester::new(
            nats.clone(),
            CALL_TIMEOUT,
        )));
        buses.push(nats);
    }
    let observer = connect().await.map_err(setup)?;
    wait_for_presence(&clients[0]).await?;
    let pids = Pids {
        presence: options.presence_pid,
        redis: redis.server_figures().await.map_err(setup)?.process_id,
        nats: options.nats_pid,
    };
    let memory = || async {
        redis
            .server_figures()
            .await
            .map(|f| f.used_memory)
            .map_err(setup)
    };

    // Heartbeats run from the first connect on, so no one expires while
    // the others connect.
    let online: Arc<Vec<AtomicBool>> =
        Arc::new((0..users).map(|_| AtomicBool::new(false)).collect());
    let beats = Arc::new(std::sync::Mutex::new(Heartbeats::default()));
    let (stop_beats, beats_stopped) = tokio::sync::watch::channel(false);
    let mut beating = tokio::task::JoinSet::new();
    for (g, client) in clients.iter().enumerate() {
        beating.spawn(heartbeats(
            client.clone(),
            g,
            gateways,
            names.clone(),
            online.clone(),
            beats.clone(),
            beats_stopped.clone(),
        ));
    }

    // 2. Everyone online.
    let memory_before = memory().await?;
    progress.set_length(users as u64);
    progress.set_message("connecting");
    let started = Instant::now();
    let connects = futures_util::stream::iter(0..users)
        .map(|i| {
            let client = &clients[i % gateways];
            let request = Connect {
                uid: names.uid(i),
                conn: names.conn(i % gateways, i),
                region: REGIONS[i % REGIONS.len()].to_owned(),
                away: false,
            };
            let (online, progress) = (&online, &progress);
            async move {
                let at = Instant::now();
                let ok = client.connect(&request).await.is_ok();
                online[i].store(ok, Ordering::Relaxed);
                progress.inc(1);
                (ok, micros(at))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<_>>()
        .await;
    let connect_seconds = started.elapsed().as_secs_f64();
    let connect_errors = connects.iter().filter(|(ok, _)| !ok).count() as u64;
    let connect_latency: Samples = connects.iter().map(|&(_, us)| us).collect();
    let memory_online = memory().await?;

    // 3. The gateways follow their users' friends.
    let counters = Arc::new(Counters::default());
    let sent_at: SentAt = Arc::new((0..users).map(|_| AtomicU64::new(0)).collect());
    let (stop_gateways, gateways_stopped) = tokio::sync::watch::channel(false);
    let mut fanning = tokio::task::JoinSet::new();
    let mut subscriptions_total = 0u64;
    progress.set_message("subscribing");
    for (g, nats) in buses.iter().enumerate() {
        let mut followers = vec![0u32; users];
        for u in (g..users).step_by(gateways) {
            for &f in &graph[u] {
                followers[f as usize] += 1;
            }
        }
        let mut subscriptions = Vec::new();
        for (f, _) in followers.iter().enumerate().filter(|(_, n)| **n > 0) {
            let subject = bus::presence_changes(&names.uid(f));
            subscriptions.push(nats.subscribe(subject).await.map_err(setup)?);
        }
        nats.flush().await.map_err(setup)?;
        subscriptions_total += subscriptions.len() as u64;
        fanning.spawn(gateway(
            subscriptions,
            followers,
            names.clone(),
            counters.clone(),
            sent_at.clone(),
            gateways_stopped.clone(),
        ));
    }
    let mut everyone = observer
        .subscribe(bus::presence_changes("*"))
        .await
        .map_err(setup)?;
    observer.flush().await.map_err(setup)?;
    let observing = {
        let (counters, names) = (counters.clone(), names.clone());
        tokio::spawn(async move {
            while let Some(message) = everyone.next().await {
                let ours = message
                    .subject
                    .rsplit('.')
                    .next()
                    .is_some_and(|uid| names.index(uid).is_some());
                if ours {
                    counters.published.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };

    // 4. Upkeep: heartbeats only.
    let upkeep = options
        .upkeep
        .max(Duration::from_millis(2 * HEARTBEAT_EVERY_MS));
    progress.set_message("heartbeats only");
    let (upkeep_counts, upkeep_beats) = (counters.snapshot(), lock(&beats).refreshed);
    let cpu_before = Cpu::read(&pids);
    tokio::time::sleep(upkeep).await;
    let cpu_upkeep_end = Cpu::read(&pids);
    let upkeep_cpu = cpu_before.until(&cpu_upkeep_end);
    let upkeep_published = counters.snapshot()[0] - upkeep_counts[0];
    let upkeep_refreshed = lock(&beats).refreshed - upkeep_beats;

    // 5. Changes.
    progress.set_message("changing activity");
    progress.set_length(options.duration.as_secs().max(1));
    progress.set_position(0);
    let (change_counts, cpu_start) = (counters.snapshot(), Cpu::read(&pids));
    counters.measuring.store(true, Ordering::Relaxed);
    let per_second = options.change_rate * users as f64;
    let activity = Arc::new(std::sync::Mutex::new(Changes::default()));
    let mut state = vec![false; users];
    let changing: Arc<Vec<AtomicBool>> =
        Arc::new((0..users).map(|_| AtomicBool::new(false)).collect());
    let mut requests = tokio::task::JoinSet::new();
    let seconds = options.duration.as_secs_f64();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(10));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    while started.elapsed() < options.duration {
        tick.tick().await;
        let due = (started.elapsed().as_secs_f64().min(seconds) * per_second) as u64;
        while sent < due {
            sent += 1;
            // Not a user whose last change is still on its way: two
            // opposite changes racing may land as one (or none), and then
            // changes made would not be changes seen.
            let Some(i) = (0..100)
                .map(|_| (rng.next_u64() % users as u64) as usize)
                .find(|&i| !changing[i].swap(true, Ordering::Relaxed))
            else {
                continue;
            };
            state[i] = !state[i];
            let friends = graph[i].len() as u64;
            let request = SetActivity {
                uid: names.uid(i),
                activity: if state[i] {
                    Activity::Matchmaking
                } else {
                    Activity::Menu
                },
                match_id: None,
            };
            let client = clients[i % gateways].clone();
            let (activity, sent_at, changing) =
                (activity.clone(), sent_at.clone(), changing.clone());
            requests.spawn(async move {
                sent_at[i].store(now_us(), Ordering::Relaxed);
                let at = Instant::now();
                let reply = client.activity(&request).await;
                let took = micros(at);
                let mut a = lock(&activity);
                if reply.is_ok() {
                    a.latency_us.record(took);
                    a.done += 1;
                    a.expected_deliveries += friends;
                } else {
                    a.errors += 1;
                }
                changing[i].store(false, Ordering::Relaxed);
            });
        }
        while requests.try_join_next().is_some() {}
        progress.set_position(started.elapsed().as_secs());
    }
    while requests.join_next().await.is_some() {}
    let change_seconds = started.elapsed().as_secs_f64();
    let cpu_end = Cpu::read(&pids);
    // Deliveries of the last changes still on their way.
    tokio::time::sleep(Duration::from_millis(500)).await;
    counters.measuring.store(false, Ordering::Relaxed);
    let change_end = counters.snapshot();
    observing.abort();
    let memory_changed = memory().await?;
    let _ = stop_gateways.send(true);
    let mut latencies = Latencies::default();
    while let Some(joined) = fanning.join_next().await {
        let got = joined.map_err(setup)?;
        latencies
            .publish_to_delivery_ms
            .add(&got.publish_to_delivery_ms);
        latencies
            .change_to_delivery_us
            .add(&got.change_to_delivery_us);
    }
    let _ = stop_beats.send(true);
    while beating.join_next().await.is_some() {}

    // 6. Everyone offline.
    progress.set_message("disconnecting");
    progress.set_length(users as u64);
    progress.set_position(0);
    futures_util::stream::iter(0..users)
        .map(|i| {
            let client = &clients[i % gateways];
            let request = Disconnect {
                uid: names.uid(i),
                conn: names.conn(i % gateways, i),
            };
            let progress = &progress;
            async move {
                let _ = client.disconnect(&request).await;
                progress.inc(1);
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    let memory_left = memory().await?;
    progress.finish_and_clear();

    let changed = std::mem::take(&mut *lock(&activity));
    let (changes, change_errors) = (changed.done, changed.errors);
    let activity = changed.latency_us;
    let beats = lock(&beats);
    let change_cpu = cpu_start.until(&cpu_end);
    let upkeep_seconds = upkeep.as_secs_f64();
    // The upkeep's CPU over the changes' time, to take off.
    let upkeep_share = |upkeep: Option<f64>, spent: Option<f64>| {
        Some(spent? - upkeep? * change_seconds / upkeep_seconds)
    };
    let [published, gateway_messages, deliveries, stale] =
        [0, 1, 2, 3].map(|k| change_end[k] - change_counts[k]);
    Ok(Report {
        users,
        friends_mean: friends_total as f64 / users as f64,
        gateways,
        subscriptions: subscriptions_total,
        connect_seconds,
        connects_per_sec: users as f64 / connect_seconds,
        connect_us_p99: connect_latency.quantile(0.99),
        connect_errors,
        redis_bytes_per_online_user: per_user(memory_online, memory_before, users),
        redis_bytes_per_online_user_after_changes: per_user(memory_changed, memory_before, users),
        redis_bytes_per_offline_user: per_user(memory_left, memory_before, users),
        upkeep_seconds,
        upkeep_published,
        seconds: change_seconds,
        offered_changes_per_sec: per_second,
        changes,
        changes_per_sec: changes as f64 / change_seconds,
        change_errors,
        activity_us_p50: activity.quantile(0.5),
        activity_us_p99: activity.quantile(0.99),
        activity_us_max: activity.quantile(1.0),
        published,
        published_per_sec: published as f64 / change_seconds,
        gateway_messages,
        deliveries,
        deliveries_per_sec: deliveries as f64 / change_seconds,
        deliveries_expected: changed.expected_deliveries,
        stale,
        publish_to_delivery_ms_p50: latencies.publish_to_delivery_ms.quantile(0.5),
        publish_to_delivery_ms_p99: latencies.publish_to_delivery_ms.quantile(0.99),
        publish_to_delivery_ms_max: latencies.publish_to_delivery_ms.quantile(1.0),
        change_to_delivery_us_p50: latencies.change_to_delivery_us.quantile(0.5),
        change_to_delivery_us_p99: latencies.change_to_delivery_us.quantile(0.99),
        change_to_delivery_us_max: latencies.change_to_delivery_us.quantile(1.0),
        heartbeats: beats.batches,
        heartbeat_connections: beats.refreshed,
        heartbeat_restored: beats.restored,
        heartbeat_errors: beats.errors,
        heartbeat_us_p99: beats.latency_us.quantile(0.99),
        presence_upkeep_us_per_user_sec: upkeep_cpu
            .presence
            .map(|s| s * 1e6 / upkeep_seconds / users as f64),
        presence_upkeep_us_per_heartbeat_connection: upkeep_cpu
            .presence
            .filter(|_| upkeep_refreshed > 0)
            .map(|s| s * 1e6 / upkeep_refreshed as f64),
        presence_cpu_us_per_change: per_change(change_cpu.presence, changes),
        presence_cpu_us_per_change_net: per_change(
            upkeep_share(upkeep_cpu.presence, change_cpu.presence),
            changes,
        ),
        presence_cores: change_cpu.presence.map(|s| s / change_seconds),
        redis_cpu_us_per_change: per_change(change_cpu.redis, changes),
        redis_cpu_us_per_change_net: per_change(
            upkeep_share(upkeep_cpu.redis, change_cpu.redis),
            changes,
        ),
        nats_cpu_us_per_change: per_change(change_cpu.nats, changes),
        nats_cpu_us_per_change_net: per_change(
            upkeep_share(upkeep_cpu.nats, change_cpu.nats),
            changes,
        ),
        bench_cpu_us_per_change: per_change(change_cpu.bench, changes),
    })
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn friendship_is_symmetric_and_everyone_has_about_as_many_friends_as_asked() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let graph = friends_graph(10_000, 50, &mut rng);
        // 50 matchings of 10,000 users repeat a pair about once in 8 users.
        let total: usize = graph.iter().map(Vec::len).sum();
        assert!(total > 10_000 * 49, "{total} friendships");
        for (u, friends) in graph.iter().enumerate() {
            assert!((45..=50).contains(&friends.len()), "{u}: {}", friends.len());
            assert!(!friends.contains(&(u as u32)), "{u} befriends itself");
            for &f in friends {
                assert!(graph[f as usize].contains(&(u as u32)), "{u} → {f} only");
            }
        }
    }

    #[test]
    fn names_are_firebase_long_and_give_back_their_index() {
        let names = Names {
            run: "0badcafe".into(),
        };
        let uid = names.uid(9_999);
        assert_eq!(uid.len(), 28);
        assert!(dashdice_proto::ids::valid_id(&uid));
        assert_eq!(names.index(&uid), Some(9_999));
        assert_eq!(names.index("someone-else"), None);
    }

    #[test]
    fn cpu_time_of_this_process_is_readable() {
        if cfg!(target_os = "linux") {
            assert!(cpu_seconds(std::process::id()).is_some());
        }
    }
}
