//! The archiver's bench: how many finished matches one archiver writes to
//! Firestore per second, and how far the archive lags behind live play.
//!
//! - [`archive_bench`]: stores `records` realistic match records (two of
//!   `players` players each, half of them ranked, ~40 actions) in the record
//!   stream while no archiver of this bench runs, then starts one archiver in
//!   this process and times it until every record is acknowledged. Run it
//!   against a system with no other archiver (e.g. `dashdice up
//!   --no-archiver` beside a Firestore emulator) or the others share the
//!   work and the figure is theirs together.
//! - [`watch_lag`]: samples the archivers' pending records once a second,
//!   e.g. while `dashdice loadgen` runs, and reports the most seen and how
//!   long the backlog took to clear after the last new record.

use std::time::{Duration, Instant};

use dashdice_archiver::records::pending;
use dashdice_archiver::{Archiver, Options};
use dashdice_mode_sdk::{Action, MatchResult, Standing};
use dashdice_proto::ModeHash;
use dashdice_proto::bus::{self, RecordStream};
use dashdice_proto::record::{MatchRecord, RecordedAction};
use futures_util::StreamExt;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ArchiveBenchError {
    #[error("nats: {0}")]
    Nats(String),
    #[error("the records were not all archived within {0:?} ({1} still pending)")]
    TooSlow(Duration, u64),
}

/// What one archiver did.
#[derive(Clone, Debug, Serialize)]
pub struct ArchiveReport {
    pub records: usize,
    pub players: usize,
    pub concurrency: usize,
    /// Seconds from the archiver's start to the last record acknowledged.
    pub seconds: f64,
    pub records_per_second: f64,
    /// Seconds to store the records in the stream beforehand.
    pub publish_seconds: f64,
}

impl ArchiveReport {
    pub fn render(&self) -> String {
        format!(
            "archived {} matches of {} players with one archiver ({} at once) in {:.2} s: \
             {:.0} matches/s\n(stored in the record stream beforehand in {:.2} s)\n",
            self.records,
            self.players,
            self.concurrency,
            self.seconds,
            self.records_per_second,
            self.publish_seconds
        )
    }
}

/// A plausible finished classic match between `a` and `b`.
fn record(id: String, a: String, b: String, ranked: bool, rng: &mut ChaCha8Rng) -> MatchRecord {
    let start = dashdice_proto::clock::now_ms().saturating_sub(120_000);
    let mut actions: Vec<RecordedAction> = (0..40u64)
        .map(|i| RecordedAction {
            actor: if i % 8 < 4 { a.clone() } else { b.clone() },
            action: Action::Roll {
                dice: vec![
                    (rng.next_u32() % 6 + 1) as u8,
                    (rng.next_u32() % 6 + 1) as u8,
                ],
            },
            at_ms: Some(start + i * 2_000),
        })
        .collect();
    actions.push(RecordedAction {
        actor: a.clone(),
        action: Action::Bank,
        at_ms: Some(start + 90_000),
    });
    let a_wins = rng.next_u32().is_multiple_of(2);
    let standing = |player: &String, win: bool| Standing {
        player: player.clone(),
        score: if win { 100 } else { 40 },
        rank: if win { 1 } else { 2 },
        result: if win {
            MatchResult::Win
        } else {
            MatchResult::Loss
        },
    };
    MatchRecord {
        match_id: id,
        mode: "classic".into(),
        mode_version: ModeHash::of(b"bench"),
        players: vec![a.clone(), b.clone()],
        options: String::new(),
        created_ms: start,
        ranked,
        bots: vec![],
        seed_hash: "0".repeat(64),
        seed: "0".repeat(64),
        actions,
        standings: vec![standing(&a, a_wins), standing(&b, !a_wins)],
        void: None,
    }
}

/// Stores the records, then times one archiver (`archiver`, connected by
/// the caller) over them.
pub async fn archive_bench(
    nats: async_nats::Client,
    archiver: Archiver,
    records: usize,
    players: usize,
    concurrency: usize,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<ArchiveReport, ArchiveBenchError> {
    let nats_error = |e: String| ArchiveBenchError::Nats(e);
    let run = dashdice_proto::ids::random_hex::<4>().map_err(|e| nats_error(e.to_string()))?;
    let mut rng = ChaCha8Rng::seed_from_u64(u64::from_str_radix(&run, 16).unwrap_or(1));
    let players = players.max(2);
    let batch: Vec<MatchRecord> = (0..records)
        .map(|i| {
            let a = rng.next_u32() as usize % players;
            let b = (a + 1 + rng.next_u32() as usize % (players - 1)) % players;
            record(
                format!("bench-{run}-{i}"),
                format!("bench-{run}-p{a}"),
                format!("bench-{run}-p{b}"),
                i.is_multiple_of(2),
                &mut rng,
            )
        })
        .collect();
    // The archivers' consumer first, so the backlog can be counted (records
    // stored before it exists would still all be delivered to it).
    dashdice_archiver::records::consumer(&nats)
        .await
        .map_err(nats_error)?;
    let stream = RecordStream::open(&nats).await.map_err(nats_error)?;
    let started = Instant::now();
    futures_util::stream::iter(&batch)
        .map(|r| stream.store(r))
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<Vec<()>, String>>()
        .map_err(nats_error)?;
    let publish_seconds = started.elapsed().as_secs_f64();
    let before = pending(&nats).await.map_err(nats_error)?;
    let options = Options {
        concurrency,
        ..Options::default()
    };
    let started = Instant::now();
    let running = tokio::spawn(dashdice_archiver::run(nats.clone(), archiver, options));
    let limit = Duration::from_secs(600);
    loop {
        let left = pending(&nats).await.map_err(nats_error)?;
        progress(before.saturating_sub(left));
        if left == 0 {
            break;
        }
        if started.elapsed() > limit {
            running.abort();
            return Err(ArchiveBenchError::TooSlow(limit, left));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    running.abort();
    Ok(ArchiveReport {
        records,
        players,
        concurrency,
        seconds,
        records_per_second: records as f64 / seconds,
        publish_seconds,
    })
}

/// The archive's lag over a watch.
#[derive(Clone, Debug, Serialize)]
pub struct LagReport {
    pub seconds: u64,
    /// Pending records, one sample a second.
    pub samples: Vec<u64>,
    pub max_pending: u64,
    /// Records stored in the stream during the watch.
    pub records: u64,
    /// Seconds from the last record stored to nothing pending; `None` if
    /// something was still pending at the end.
    pub cleared_after_last_record_s: Option<f64>,
}

impl LagReport {
    pub fn render(&self) -> String {
        let cleared = match self.cleared_after_last_record_s {
            Some(s) => format!("{s:.1} s after the last record"),
            None => "not cleared by the end of the watch".to_owned(),
        };
        format!(
            "watched the archive for {} s: {} records came, at most {} pending; backlog {}\n",
            self.seconds, self.records, self.max_pending, cleared
        )
    }
}

/// Samples the lag every second for `seconds`.
pub async fn watch_lag(nats: &async_nats::Client, seconds: u64) -> Result<LagReport, String> {
    let js = async_nats::jetstream::new(nats.clone());
    let mut stream = js
        .get_stream(bus::RECORD_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let first = stream
        .info()
        .await
        .map_err(|e| e.to_string())?
        .state
        .last_sequence;
    let (mut samples, mut last_seq, mut last_record_at, mut cleared_at) =
        (Vec::new(), first, None::<Instant>, None::<Instant>);
    for _ in 0..seconds {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now_pending = pending(nats).await?;
        let seq = stream
            .info()
            .await
            .map_err(|e| e.to_string())?
            .state
            .last_sequence;
        let now = Instant::now();
        if seq != last_seq {
            last_seq = seq;
            last_record_at = Some(now);
            cleared_at = None;
        }
        if now_pending == 0 && cleared_at.is_none() {
            cleared_at = Some(now);
        }
        if now_pending > 0 {
            cleared_at = None;
        }
        samples.push(now_pending);
    }
    Ok(LagReport {
        seconds,
        max_pending: samples.iter().copied().max().unwrap_or(0),
        samples,
        records: last_seq - first,
        cleared_after_last_record_s: match (last_record_at, cleared_at) {
            (Some(last), Some(clear)) => Some(clear.saturating_duration_since(last).as_secs_f64()),
            (None, Some(_)) => Some(0.0),
            _ => None,
        },
    })
}
