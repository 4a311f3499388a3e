//! `dashdice bench match-host`: drives many concurrent matches over NATS
//! against one match-host process and reports throughput, latency and Redis
//! memory per live match.
//!
//! Each simulated table plays one match at a time as fast as replies come:
//! roll until the turn score reaches 20, then bank (True Grit only rolls), and
//! when the match ends it creates the next one. Latency is measured per
//! request, client side, from send to reply.

use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;
use serde_json::json;
use tokio::sync::Mutex;

use dashdice_proto::bus::{self, Reply, endpoint};
use dashdice_proto::matches::ActionReply;
use dashdice_store::MatchStore;

#[derive(Clone, Debug)]
pub struct Options {
    pub matches: usize,
    pub duration: Duration,
    pub mode: String,
    /// Total actions per second to offer, spread evenly over the matches
    /// (open loop, like players thinking between moves). `None`: every match
    /// acts as soon as its last reply arrives (closed loop: the maximum).
    pub rate: Option<f64>,
}

/// What a run measured.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    pub matches: usize,
    pub offered_rate: Option<f64>,
    pub seconds: f64,
    pub actions: u64,
    pub actions_per_sec: f64,
    pub finished_matches: u64,
    pub errors: u64,
    pub latency_us_p50: u64,
    pub latency_us_p90: u64,
    pub latency_us_p99: u64,
    pub latency_us_max: u64,
    /// Mean Redis MEMORY USAGE of a live match's keys, over a sample.
    pub redis_bytes_per_live_match: u64,
}

impl Report {
    pub fn render(&self) -> String {
        format!(
            "{} concurrent matches for {:.1} s, {}\n\
             actions      {} ({:.0}/s), {} matches finished, {} errors\n\
             latency      p50 {} µs, p90 {} µs, p99 {} µs, max {} µs\n\
             redis        {} bytes per live match (mean MEMORY USAGE over a sample)\n",
            self.matches,
            self.seconds,
            match self.offered_rate {
                Some(r) => format!("offered {r:.0} actions/s"),
                None => "closed loop (as fast as replies come)".to_owned(),
            },
            self.actions,
            self.actions_per_sec,
            self.finished_matches,
            self.errors,
            self.latency_us_p50,
            self.latency_us_p90,
            self.latency_us_p99,
            self.latency_us_max,
            self.redis_bytes_per_live_match,
        )
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("{0}")]
    Setup(String),
}

#[derive(Default)]
struct Tally {
    latencies_us: super::Samples,
    actions: u64,
    finished: u64,
    errors: u64,
    live: Vec<String>,
}

async fn request(
    client: &async_nats::Client,
    name: &str,
    body: String,
) -> Result<ActionReply, String> {
    let message = client
        .request(bus::match_request(name), body.into())
        .await
        .map_err(|e| e.to_string())?;
    serde_json::from_slice::<Reply<ActionReply>>(&message.payload)
        .map_err(|e| e.to_string())?
        .into_result()
        .map_err(|e| format!("{}: {}", e.code, e.message))
}

/// One table: plays matches back to back until `until`.
async fn table(
    client: async_nats::Client,
    mode: String,
    pace: Option<Duration>,
    until: Instant,
    tally: Arc<Mutex<Tally>>,
    progress: ProgressBar,
    index: usize,
) {
    let create =
        json!({"mode": mode, "players": [format!("a{index}"), format!("b{index}")]}).to_string();
    let mut local = Tally::default();
    let mut n = 0u64;
    let mut ticks = pace.map(|p| {
        // Spread the tables' first actions over one interval.
        let offset = p.mul_f64((index % 1000) as f64 / 1000.0);
        let mut t = tokio::time::interval_at(tokio::time::Instant::now() + offset, p);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        t
    });
    'matches: while Instant::now() < until {
        let Ok(mut reply) = request(&client, endpoint::CREATE, create.clone()).await else {
            local.errors += 1;
            continue;
        };
        let id = reply.snapshot.match_id.clone();
        while let Some(player) = reply.snapshot.turn.clone() {
            if Instant::now() >= until {
                local.live.push(id);
                break 'matches;
            }
            if let Some(t) = ticks.as_mut() {
                t.tick().await;
            }
            n += 1;
            let bank =
                mode != "true-grit" && reply.snapshot.view["turn_score"].as_i64() >= Some(20);
            let body = json!({
                "match_id": id, "player": player, "request_id": format!("t{index}-{n}"),
                "action": if bank { "bank" } else { "roll" },
            })
            .to_string();
            let sent = Instant::now();
            match request(&client, endpoint::ACT, body).await {
                Ok(next) => {
                    local
                        .latencies_us
                        .record(sent.elapsed().as_micros().min(u128::from(u64::MAX)) as u64);
                    local.actions += 1;
                    progress.inc(1);
                    reply = next;
                }
                Err(_) => {
                    local.errors += 1;
                    continue 'matches;
                }
            }
        }
        if reply.snapshot.finished {
            local.finished += 1;
        }
    }
    let mut t = tally.lock().await;
    t.latencies_us.add(&local.latencies_us);
    t.actions += local.actions;
    t.finished += local.finished;
    t.errors += local.errors;
    t.live.extend(local.live);
}

/// Runs the benchmark against whatever match hosts answer on `client`.
pub async fn match_host(
    client: async_nats::Client,
    store: MatchStore,
    options: &Options,
    progress: ProgressBar,
) -> Result<Report, BenchError> {
    let tally = Arc::new(Mutex::new(Tally::default()));
    let started = Instant::now();
    let until = started + options.duration;
    let tasks: Vec<_> = (0..options.matches)
        .map(|i| {
            tokio::spawn(table(
                client.clone(),
                options.mode.clone(),
                options
                    .rate
                    .map(|r| Duration::from_secs_f64(options.matches as f64 / r.max(0.001))),
                until,
                tally.clone(),
                progress.clone(),
                i,
            ))
        })
        .collect();
    for t in tasks {
        t.await.map_err(|e| BenchError::Setup(e.to_string()))?;
    }
    let seconds = started.elapsed().as_secs_f64();
    progress.finish_and_clear();
    let t = tally.lock().await;
    let at = |q: f64| t.latencies_us.quantile(q);
    let sample: Vec<String> = t.live.iter().take(200).cloned().collect();
    let mut bytes = 0;
    for id in &sample {
        bytes += store
            .memory_usage(id)
            .await
            .map_err(|e| BenchError::Setup(e.to_string()))?;
    }
    Ok(Report {
        matches: options.matches,
        offered_rate: options.rate,
        seconds,
        actions: t.actions,
        actions_per_sec: t.actions as f64 / seconds,
        finished_matches: t.finished,
        errors: t.errors,
        latency_us_p50: at(0.5),
        latency_us_p90: at(0.9),
        latency_us_p99: at(0.99),
        latency_us_max: at(1.0),
        redis_bytes_per_live_match: bytes / sample.len().max(1) as u64,
    })
}
