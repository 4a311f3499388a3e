//! The notifier role under a steady load: notification requests published
//! on the stream at an offered rate, each for an offline user with one
//! registered device, so each is stored in the inbox and pushed to the
//! stand-in FCM (`dashdice_tests::fcm`). Measures the requests per second
//! published and the pushes per second the stand-in took, and the latency
//! from the triggering event (the publish, `data["sent_us"]`) to the push
//! request reaching the stand-in (`Received::at`).
//!
//! Run: `cargo bench -p dashdice-tests --bench notify -- [--users N]
//! [--rate R] [--seconds S] [--publishers P]` (defaults: 2,000 users, 500
//! requests/s, 20 s, 16 publisher tasks).
//!
//! Everything runs on this machine: a private nats-server (JetStream,
//! file store) and redis-server, and in this process the notifier
//! (`Options::default()`: 32 requests in flight, batches of 64), the
//! stand-in FCM and the publishers. The figures are for the whole loop on
//! shared cores, not for the notifier alone.
//!
//! Requests are `match_result`s, one match id each (so no two collapse),
//! spread round-robin over the users. A user gets at most
//! [`PUSHES_PER_MINUTE`] pushes a minute, so the default number of users is
//! large enough that the cap never applies (`rate × seconds / 5`, at least
//! 2,000); with fewer, the pushes it held back show as "limited".
//!
//! Publishing is open-loop: request `i` is due at `start + i / rate`, and
//! whichever publisher task is free sends it then (awaiting the stream's
//! acknowledgement), so a slow notifier does not slow the offered load.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashdice_notifier::delivery::Notifier;
use dashdice_notifier::fcm::Fcm;
use dashdice_notifier::service::{self as notifier_service, Options};
use dashdice_proto::client::{Notifications, NotifierClient, Requester};
use dashdice_proto::notify::{
    NotificationKind, NotifyRequest, PUSHES_PER_MINUTE, Platform, RegisterDevice,
};
use dashdice_store::inbox::InboxStore;
use dashdice_store::presence::PresenceStore;
use dashdice_tests::fcm::{FakeFcm, Received};
use dashdice_tests::servers::{NatsServer, RedisServer};
use futures_util::StreamExt;

/// Marks the measured requests' pushes (the warm-up's say `warmup`).
const PHASE: &str = "phase";
/// When the request was published, µs since the epoch.
const SENT_US: &str = "sent_us";
/// Waiting for the last pushes gives up after this long without one.
const STALL: Duration = Duration::from_secs(15);

struct Args {
    users: Option<u64>,
    rate: f64,
    seconds: f64,
    publishers: usize,
}

/// `--users N --rate R --seconds S --publishers P`; anything else (cargo
/// passes `--bench`) is ignored.
fn args() -> Args {
    let mut parsed = Args {
        users: None,
        rate: 500.0,
        seconds: 20.0,
        publishers: 16,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| -> String {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        match arg.as_str() {
            "--users" => parsed.users = Some(value("--users").parse().expect("--users N")),
            "--rate" => parsed.rate = value("--rate").parse().expect("--rate R"),
            "--seconds" => parsed.seconds = value("--seconds").parse().expect("--seconds S"),
            "--publishers" => {
                parsed.publishers = value("--publishers").parse().expect("--publishers P");
            }
            _ => {}
        }
    }
    assert!(
        parsed.rate > 0.0 && parsed.seconds > 0.0,
        "a positive rate and duration"
    );
    parsed.publishers = parsed.publishers.max(1);
    parsed
}

fn now_us() -> u64 {
    micros(SystemTime::now())
}

fn micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

fn uid(n: u64) -> String {
    format!("bench-user-{n}")
}

fn device(n: u64) -> String {
    format!("bench-device-{n}")
}

fn request(id: String, uid: String, phase: &str) -> NotifyRequest {
    let sent_us = now_us();
    NotifyRequest {
        data: BTreeMap::from([
            ("match_id".to_owned(), id.clone()),
            ("mode".to_owned(), "classic".to_owned()),
            ("outcome".to_owned(), "won".to_owned()),
            ("opponent".to_owned(), "bench-opponent".to_owned()),
            (PHASE.to_owned(), phase.to_owned()),
            (SENT_US.to_owned(), sent_us.to_string()),
        ]),
        id,
        uid,
        kind: NotificationKind::MatchResult,
        created_ms: sent_us / 1000,
        title: None,
        body: None,
    }
}

/// The `p`-quantile (nearest rank) of sorted values.
fn quantile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(us: u64) -> String {
    format!("{:.1} ms", us as f64 / 1000.0)
}

/// The measured pushes the stand-in took.
fn measured(fake: &FakeFcm) -> Vec<Received> {
    fake.messages()
        .into_iter()
        .filter(|m| m.data.get(PHASE).map(String::as_str) == Some("measure"))
        .collect()
}

/// What the publisher tasks share.
struct Publishing {
    start: Instant,
    rate: f64,
    total: u64,
    users: u64,
    next: AtomicU64,
    ok: AtomicU64,
    errors: AtomicU64,
    /// How late the latest-sent request left, µs after it was due.
    max_lag_us: AtomicU64,
    /// When the last acknowledgement came, µs after `start`.
    last_ack_us: AtomicU64,
}

/// Sends requests as they fall due until all are sent; gives the
/// acknowledgement times (µs from publish to the stream's ack).
async fn publisher(notifications: Notifications, shared: Arc<Publishing>) -> Vec<u64> {
    let mut acks = Vec::new();
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.total {
            return acks;
        }
        let due = shared.start + Duration::from_secs_f64(i as f64 / shared.rate);
        tokio::time::sleep_until(tokio::time::Instant::from_std(due)).await;
        let lag = Instant::now().saturating_duration_since(due);
        shared.max_lag_us.fetch_max(
            u64::try_from(lag.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        let request = request(format!("bench-{i}"), uid(i % shared.users), "measure");
        let sent = Instant::now();
        match notifications.send(&request).await {
            Ok(()) => {
                shared.ok.fetch_add(1, Ordering::Relaxed);
                acks.push(u64::try_from(sent.elapsed().as_micros()).unwrap_or(u64::MAX));
            }
            Err(e) => {
                if shared.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("publish error: {e}");
                }
            }
        }
        let done = u64::try_from(shared.start.elapsed().as_micros()).unwrap_or(u64::MAX);
        shared.last_ack_us.fetch_max(done, Ordering::Relaxed);
    }
}

#[tokio::main]
async fn main() {
    let args = args();
    let total = (args.rate * args.seconds).round().max(1.0) as u64;
    let users = args
        .users
        .unwrap_or_else(|| total.div_ceil(u64::from(PUSHES_PER_MINUTE) / 2).max(2_000));
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimised (bench/release)"
    };
    println!(
        "notify bench: {users} users, {} requests/s offered for {} s = {total} requests, {} publishers; {profile} build, {} cores, load average {}",
        args.rate,
        args.seconds,
        args.publishers,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average()
    );
    if users * u64::from(PUSHES_PER_MINUTE) < total {
        println!(
            "  warning: {} requests per user: the push cap ({PUSHES_PER_MINUTE} a minute) will hold some back",
            total.div_ceil(users)
        );
    }

    dashdice_service::install_crypto();
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let fake = FakeFcm::start().await;

    let options = Options::default();
    println!(
        "  notifier: max_in_flight {}, consumer_batch {}",
        options.max_in_flight, options.consumer_batch
    );
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let inbox = InboxStore::connect(&redis.url()).await.expect("redis");
    let presence = PresenceStore::connect(&redis.url()).await.expect("redis");
    let fcm = Fcm::new(fake.config()).expect("the stand-in's FCM config");
    let notifier = Notifier::new(inbox, presence, Some(fcm));
    tokio::spawn(async move {
        if let Err(e) = notifier_service::run(client, notifier, options).await {
            panic!("the notifier stopped: {e}");
        }
    });

    // One device per user, through the notifier's endpoint (the first
    // call also waits for the notifier to be up). Nobody is online.
    let requester = Requester::new(
        async_nats::connect(nats.url()).await.expect("nats"),
        Duration::from_secs(5),
    );
    let devices = NotifierClient::new(requester);
    let register = |n: u64| {
        let devices = devices.clone();
        async move {
            devices
                .register_device(&RegisterDevice {
                    uid: uid(n),
                    token: device(n),
                    platform: Platform::Android,
                })
                .await
        }
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while let Err(e) = register(users).await {
        assert!(
            Instant::now() < deadline,
            "the notifier never answered: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let registering = Instant::now();
    let failed = futures_util::stream::iter(0..users)
        .map(register)
        .buffer_unordered(64)
        .filter(|r| std::future::ready(r.is_err()))
        .count()
        .await;
    assert_eq!(failed, 0, "devices not registered");
    println!(
        "  registered {users} devices in {:.1} s",
        registering.elapsed().as_secs_f64()
    );

    // Warm-up: the access token, the connections, the stream's consumer.
    let publishing = async_nats::connect(nats.url()).await.expect("nats");
    let notifications = Notifications::new(publishing);
    // (Five, to a user of its own: under the push cap.)
    for n in 0..5 {
        let warm = request(format!("warmup-{n}"), uid(users), "warmup");
        notifications.send(&warm).await.expect("a warm-up request");
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while fake.messages().len() < 5 {
        assert!(Instant::now() < deadline, "the warm-up pushes never came");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The measured run. A few connections, so one socket's writes are not
    // the limit.
    let mut connections = Vec::new();
    for _ in 0..4 {
        connections.push(Notifications::new(
            async_nats::connect(nats.url()).await.expect("nats"),
        ));
    }
    let shared = Arc::new(Publishing {
        start: Instant::now() + Duration::from_millis(100),
        rate: args.rate,
        total,
        users,
        next: AtomicU64::new(0),
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        max_lag_us: AtomicU64::new(0),
        last_ack_us: AtomicU64::new(0),
    });
    let start_us = now_us() + 100_000;
    let tasks: Vec<_> = (0..args.publishers)
        .map(|p| {
            tokio::spawn(publisher(
                connections[p % connections.len()].clone(),
                shared.clone(),
            ))
        })
        .collect();
    let mut acks = Vec::new();
    for task in tasks {
        acks.extend(task.await.expect("a publisher"));
    }
    let published = shared.ok.load(Ordering::Relaxed);
    let errors = shared.errors.load(Ordering::Relaxed);
    let publish_s = shared.last_ack_us.load(Ordering::Relaxed) as f64 / 1e6;
    let publish_end_us = start_us + shared.last_ack_us.load(Ordering::Relaxed);

    // Until every push came, or none came for a while.
    let mut received = measured(&fake);
    let mut last_progress = Instant::now();
    while (received.len() as u64) < published && last_progress.elapsed() < STALL {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = measured(&fake);
        if now.len() > received.len() {
            last_progress = Instant::now();
        }
        received = now;
    }

    let mut latencies: Vec<u64> = received
        .iter()
        .filter_map(|m| {
            let sent: u64 = m.data.get(SENT_US)?.parse().ok()?;
            Some(micros(m.at).saturating_sub(sent))
        })
        .collect();
    latencies.sort_unstable();
    acks.sort_unstable();
    let distinct: HashSet<&str> = received
        .iter()
        .filter_map(|m| m.data.get("id").map(String::as_str))
        .collect();
    let last_push_us = received.iter().map(|m| micros(m.at)).max().unwrap_or(0);
    let span_s = last_push_us.saturating_sub(start_us) as f64 / 1e6;
    let count = received.len() as u64;

    println!("  offered:   {:.0} requests/s", args.rate);
    println!(
        "  published: {published} in {publish_s:.2} s = {:.0} requests/s ({errors} errors; latest send {} after due; stream ack p50 {} p99 {})",
        published as f64 / publish_s.max(f64::EPSILON),
        ms(shared.max_lag_us.load(Ordering::Relaxed)),
        ms(quantile(&acks, 0.5)),
        ms(quantile(&acks, 0.99)),
    );
    println!(
        "  pushed:    {count} of {published} received by the stand-in ({} distinct, {} limited or lost), {:.0} pushes/s from the first publish to the last push",
        distinct.len(),
        published.saturating_sub(distinct.len() as u64),
        count as f64 / span_s.max(f64::EPSILON),
    );
    println!(
        "  event → push request: p50 {} p90 {} p99 {} max {}",
        ms(quantile(&latencies, 0.5)),
        ms(quantile(&latencies, 0.9)),
        ms(quantile(&latencies, 0.99)),
        ms(latencies.last().copied().unwrap_or(0)),
    );
    println!(
        "  drain:     last push {:.2} s after the first publish, {} after the last publish",
        span_s,
        ms(last_push_us.saturating_sub(publish_end_us)),
    );
    let violations = fake.violations();
    if !violations.is_empty() {
        println!(
            "  stand-in violations: {} (first: {})",
            violations.len(),
            violations[0]
        );
    }
    println!("  load average after: {}", load_average());
}
