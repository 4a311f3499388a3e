//! `dashdice bench matchmaker`: tickets arrive at a steady rate over NATS,
//! with a realistic mix of ratings (normal around 1500, σ 300), regions
//! (eu 50%, us 30%, ap 20%) with plausible pings between them, and (by
//! default) 5% poor connections. It reports tickets matched per second, the time to match,
//! and Redis bytes per waiting ticket.
//!
//! Two times to match are reported: for tickets whose compatible opponent was
//! already waiting (the join itself made the match: join sent → reply), and
//! for all matched tickets (join sent → the match-found notice, which
//! includes waiting for windows to widen).
//!
//! `--stub-host` answers `dd.match.create` inside the bench process, to
//! measure the matchmaker alone; without it, real match hosts create every
//! match, as in production.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use indicatif::ProgressBar;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;

use super::{BenchError, Samples};
use dashdice_proto::bus::{self, Reply, queue_endpoint};
use dashdice_proto::queue::{QueueKind, Status};
use dashdice_store::MatchStore;
use dashdice_store::queues::{QueueKeys, player_key};

#[derive(Clone, Debug)]
pub struct Options {
    pub tickets: usize,
    /// Tickets arriving per second.
    pub rate: f64,
    pub mode: String,
    pub kind: QueueKind,
    /// After the last arrival, how long to wait for matches the periodic
    /// pass makes as windows widen.
    pub drain: Duration,
    pub stub_host: bool,
    pub seed: u64,
    /// The share of tickets on a poor connection (two never meet). 1.0 makes
    /// every ticket wait: the way to measure memory per waiting ticket.
    pub poor_share: f64,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub tickets: usize,
    pub offered_rate: f64,
    /// Seconds from the first join to the last match-found notice.
    pub seconds: f64,
    pub joins_per_sec: f64,
    pub matched_tickets: u64,
    pub matched_tickets_per_sec: f64,
    pub errors: u64,
    /// Tickets whose join made the match at once (an opponent was waiting).
    pub immediate: u64,
    pub immediate_us_p50: u64,
    pub immediate_us_p99: u64,
    pub all_matched_ms_p50: u64,
    pub all_matched_ms_p99: u64,
    /// Tickets waiting when the last arrival was answered.
    pub waiting_after_arrivals: u64,
    pub waiting_at_end: u64,
    /// Measured when the last arrival was answered.
    pub redis_bytes_per_waiting_ticket: u64,
}

impl Report {
    pub fn render(&self) -> String {
        format!(
            "{} tickets offered at {:.0}/s ({:.0}/s joined), {:.1} s\n\
             matched      {} tickets ({:.0}/s), {} still waiting, {} errors\n\
             opponent already waiting ({}): join → match p50 {} µs, p99 {} µs\n\
             all matched: join → notice p50 {} ms, p99 {} ms\n\
             redis        {} bytes per waiting ticket ({} waiting after the arrivals; queue keys + player state)\n",
            self.tickets,
            self.offered_rate,
            self.joins_per_sec,
            self.seconds,
            self.matched_tickets,
            self.matched_tickets_per_sec,
            self.waiting_at_end,
            self.errors,
            self.immediate,
            self.immediate_us_p50,
            self.immediate_us_p99,
            self.all_matched_ms_p50,
            self.all_matched_ms_p99,
            self.redis_bytes_per_waiting_ticket,
            self.waiting_after_arrivals,
        )
    }
}

const REGIONS: [(&str, u32); 3] = [("eu", 50), ("us", 30), ("ap", 20)];

/// Base ping between two regions, ms.
fn ping(a: &str, b: &str) -> u32 {
    match (a.min(b), a.max(b)) {
        ("eu", "us") => 90,
        ("ap", "us") => 150,
        ("ap", "eu") => 200,
        _ => 10,
    }
}

/// One ticket's join request, drawn from `rng`.
fn ticket(rng: &mut ChaCha8Rng, index: usize, options: &Options) -> serde_json::Value {
    let mut uniform = || f64::from(rng.next_u32()) / f64::from(u32::MAX);
    // Irwin–Hall: the sum of 12 uniforms is close to normal, mean 6, σ 1.
    let z: f64 = (0..12).map(|_| uniform()).sum::<f64>() - 6.0;
    let rating = (1500.0 + 300.0 * z).clamp(0.0, 10_000.0);
    let pick = (uniform() * 100.0) as u32;
    let mut acc = 0;
    let region = REGIONS
        .iter()
        .find(|(_, w)| {
            acc += w;
            pick < acc
        })
        .map_or("eu", |(r, _)| *r);
    let latency: serde_json::Map<String, serde_json::Value> = REGIONS
        .iter()
        .filter(|(r, _)| *r != region)
        .map(|(r, _)| {
            let jitter = (uniform() * 60.0) as u32;
            ((*r).to_owned(), json!(ping(region, r) + jitter))
        })
        .collect();
    let poor = uniform() < options.poor_share;
    json!({
        "player": format!("bench-{}-{index}", options.seed),
        "mode": options.mode,
        "kind": options.kind,
        "region": region,
        "latency_ms": latency,
        "connection": if poor { "poor" } else { "good" },
        "rating": rating,
    })
}

#[derive(Default)]
struct Tally {
    sent: HashMap<String, Instant>,
    immediate_us: Samples,
    errors: u64,
}

/// Answers `dd.match.create` (and `get`) in place of a match host.
async fn stub_host(client: async_nats::Client) -> Result<(), BenchError> {
    let setup = |e: async_nats::SubscribeError| BenchError::Setup(e.to_string());
    let mut creates = client
        .queue_subscribe(
            bus::match_request(bus::endpoint::CREATE),
            "match-host".into(),
        )
        .await
        .map_err(setup)?;
    let mut gets = client
        .queue_subscribe(bus::match_request(bus::endpoint::GET), "match-host".into())
        .await
        .map_err(setup)?;
    tokio::spawn(async move {
        loop {
            let (message, body) = tokio::select! {
                Some(m) = creates.next() => (m, r#"{"ok":{}}"#),
                Some(m) = gets.next() => (m, r#"{"error":{"code":"unknown_match","message":"stub"}}"#),
                else => break,
            };
            if let Some(reply) = message.reply {
                let _ = client.publish(reply, body.into()).await;
            }
        }
    });
    Ok(())
}

/// Runs the benchmark against whatever matchmakers answer on `client`.
pub async fn matchmaker(
    client: async_nats::Client,
    store: MatchStore,
    options: &Options,
    progress: ProgressBar,
) -> Result<Report, BenchError> {
    if options.stub_host {
        stub_host(client.clone()).await?;
    }
    let tally = Arc::new(Mutex::new(Tally::default()));
    // Every match-found notice, with when it arrived.
    let notices = Arc::new(Mutex::new(HashMap::<String, Instant>::new()));
    let mut told = client
        .subscribe(bus::user_notify("*"))
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;
    {
        let notices = notices.clone();
        tokio::spawn(async move {
            while let Some(message) = told.next().await {
                let at = Instant::now();
                // dd.user.<player>.notify
                if let Some(player) = message.subject.split('.').nth(2) {
                    notices.lock().await.entry(player.to_owned()).or_insert(at);
                }
            }
        });
    }
    client
        .flush()
        .await
        .map_err(|e| BenchError::Setup(e.to_string()))?;

    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    let requests: Vec<(String, Vec<u8>)> = (0..options.tickets)
        .map(|i| {
            let t = ticket(&mut rng, i, options);
            let player = t["player"].as_str().unwrap_or_default().to_owned();
            (player, t.to_string().into_bytes())
        })
        .collect();
    let started = Instant::now();
    let mut pending = tokio::task::JoinSet::new();
    let mut tick = tokio::time::interval(Duration::from_millis(1));
    let mut sent = 0usize;
    while sent < requests.len() {
        tick.tick().await;
        let due = ((started.elapsed().as_secs_f64() * options.rate) as usize).min(requests.len());
        while sent < due {
            let (player, body) = requests[sent].clone();
            sent += 1;
            let client = client.clone();
            let tally = tally.clone();
            let progress = progress.clone();
            pending.spawn(async move {
                let at = Instant::now();
                tally.lock().await.sent.insert(player, at);
                let reply = client
                    .request(bus::queue_request(queue_endpoint::JOIN), body.into())
                    .await;
                let took = at.elapsed().as_micros().min(u128::from(u64::MAX)) as u64;
                let status = reply
                    .ok()
                    .and_then(|m| serde_json::from_slice::<Reply<Status>>(&m.payload).ok())
                    .map(Reply::into_result);
                let mut t = tally.lock().await;
                match status {
                    Some(Ok(Status::Playing { .. })) => t.immediate_us.record(took),
                    Some(Ok(_)) => {}
                    _ => t.errors += 1,
                }
                progress.inc(1);
            });
        }
    }
    while pending.join_next().await.is_some() {}
    let joined_in = started.elapsed().as_secs_f64();
    // Memory, now that all arrivals are in: the queue's keys over its
    // waiting tickets, plus a player's state.
    let keys = QueueKeys::new(&options.mode, options.kind.as_str());
    let mut queue_keys = vec![keys.tickets(), keys.wait(), keys.stats()];
    queue_keys.extend(REGIONS.iter().map(|(r, _)| keys.rating(r)));
    let setup = |e: dashdice_store::StoreError| BenchError::Setup(e.to_string());
    let queue_bytes = store.memory_usage_of(&queue_keys).await.map_err(setup)?;
    let (waiting_after_arrivals, sample) = {
        let told = notices.lock().await;
        let t = tally.lock().await;
        let waiting: Vec<&String> = t.sent.keys().filter(|p| !told.contains_key(*p)).collect();
        let sample: Vec<String> = waiting.iter().take(200).map(|p| player_key(p)).collect();
        (waiting.len() as u64, sample)
    };
    let state_bytes =
        store.memory_usage_of(&sample).await.map_err(setup)? / sample.len().max(1) as u64;
    let per_ticket = match waiting_after_arrivals {
        0 => 0,
        n => queue_bytes / n + state_bytes,
    };
    // Let the periodic pass pair what it can.
    let mut last = notices.lock().await.len();
    let drain_until = Instant::now() + options.drain;
    while Instant::now() < drain_until {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = notices.lock().await.len();
        if now == last && now + 1 >= options.tickets {
            break;
        }
        last = now;
    }
    progress.finish_and_clear();

    let notices = notices.lock().await;
    let t = tally.lock().await;
    let last_notice = notices.values().max().copied().unwrap_or(started);
    let seconds = last_notice
        .duration_since(started)
        .as_secs_f64()
        .max(joined_in);
    let all_ms: Samples = notices
        .iter()
        .filter_map(|(p, at)| {
            let sent = t.sent.get(p)?;
            Some(
                at.saturating_duration_since(*sent)
                    .as_millis()
                    .min(u128::from(u64::MAX)) as u64,
            )
        })
        .collect();

    Ok(Report {
        tickets: options.tickets,
        offered_rate: options.rate,
        seconds,
        joins_per_sec: options.tickets as f64 / joined_in,
        matched_tickets: notices.len() as u64,
        matched_tickets_per_sec: notices.len() as f64 / seconds,
        errors: t.errors,
        immediate: t.immediate_us.len(),
        immediate_us_p50: t.immediate_us.quantile(0.5),
        immediate_us_p99: t.immediate_us.quantile(0.99),
        all_matched_ms_p50: all_ms.quantile(0.5),
        all_matched_ms_p99: all_ms.quantile(0.99),
        waiting_after_arrivals,
        waiting_at_end: (options.tickets - notices.len()) as u64,
        redis_bytes_per_waiting_ticket: per_ticket,
    })
}
