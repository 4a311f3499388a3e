//! The record stream into the archive.
//!
//! One durable pull consumer ([`bus::ARCHIVER_RECORDS_CONSUMER`]) shared by
//! every archiver. A record is acknowledged only after its match is
//! committed in Firestore and its ratings are copied to Redis; a record that
//! fails is negatively acknowledged with a growing delay (by how often it
//! was delivered), so it comes again, to this archiver or another, while
//! Firestore recovers. Archiving is exactly once by match id (see
//! `dashdice-archive`), so a redelivery after a crash between the commit
//! and the ack changes nothing, and the copy to Redis is repeated, which is
//! harmless (versioned).
//!
//! With notifications on, each human player's result is then asked of the
//! notifier (`match_result`, id `result:<match_id>:<uid>`, see
//! [`crate::notify`]) and the stream's acknowledgement awaited before the
//! record is: a record whose results could not be stored comes again, and
//! the ids make the repeat harmless.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use dashdice_archive::{ArchiveError, Archived};
use dashdice_proto::bus;
use dashdice_proto::client::{Notifications, NotifyError};
use dashdice_proto::record::MatchRecord;
use dashdice_service::telemetry::names;
use futures_util::StreamExt;
use tracing::Instrument;

use crate::{Archiver, Options, boards};

/// How long a delivered record may go unacknowledged before the server
/// hands it to another archiver (a crashed one's records come back then).
const ACK_WAIT: Duration = Duration::from_secs(30);

/// The archivers' shared durable consumer of the record stream.
pub async fn consumer(client: &async_nats::Client) -> Result<PullConsumer, String> {
    let js = jetstream::new(client.clone());
    let stream = bus::open_record_stream(&js).await?;
    stream
        .get_or_create_consumer(
            bus::ARCHIVER_RECORDS_CONSUMER,
            jetstream::consumer::pull::Config {
                durable_name: Some(bus::ARCHIVER_RECORDS_CONSUMER.to_owned()),
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: ACK_WAIT,
                max_ack_pending: 4_096,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| e.to_string())
}

/// Archives records as they come, `options.concurrency` at once, forever;
/// with `notifications`, each record's results are asked for before it is
/// acknowledged.
pub async fn archive_all(
    consumer: PullConsumer,
    archiver: Arc<Archiver>,
    options: Options,
    notifications: Option<Notifications>,
) {
    let breaker = Breaker::default();
    let players = PlayerLocks::default();
    loop {
        let messages = match consumer.messages().await {
            Ok(messages) => messages,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read match records; retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        let archiver = &archiver;
        let options = &options;
        let breaker = &breaker;
        let players = &players;
        let notifications = notifications.as_ref();
        messages
            .take_while(|m| std::future::ready(m.is_ok()))
            .filter_map(|m| std::future::ready(m.ok()))
            .for_each_concurrent(options.concurrency, |message| async move {
                breaker.wait().await;
                let ok = handle(archiver, options, players, notifications, message).await;
                breaker.record(ok, options);
            })
            .await;
    }
}

/// One record per player at a time in this archiver. Records of one player
/// all write that player's profile; run together, their transactions only
/// wait on each other's locks in Firestore (the emulator aborts them after
/// a while), so a player's records go one after another here and records
/// of different players run side by side. (Across archivers Firestore's
/// own locking decides, and an aborted transaction is retried.)
#[derive(Default)]
struct PlayerLocks {
    held: std::sync::Mutex<std::collections::HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl PlayerLocks {
    /// Locks `players`, in sorted order (so two records never wait on
    /// each other).
    async fn lock(&self, players: &[String]) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let mut sorted: Vec<&String> = players.iter().collect();
        sorted.sort();
        sorted.dedup();
        let mut guards = Vec::with_capacity(sorted.len());
        for player in sorted {
            let lock = match self.held.lock() {
                Ok(mut held) => held.entry(player.clone()).or_default().clone(),
                Err(_) => continue,
            };
            guards.push(lock.lock_owned().await);
        }
        // Forget players nobody holds or waits for (the map only grows
        // with players in flight).
        if let Ok(mut held) = self.held.lock() {
            held.retain(|_, lock| Arc::strong_count(lock) > 1);
        }
        guards
    }
}

/// Backing off while the archive fails: after a failure every record waits
/// (doubling from `retry_min` to `retry_max` while failures continue), so a
/// stopped Firestore gets a trickle of attempts, not every pending record
/// at once. The first success closes it.
#[derive(Default)]
struct Breaker {
    state: std::sync::Mutex<(u32, Option<Instant>)>,
}

impl Breaker {
    async fn wait(&self) {
        let until = self.state.lock().ok().and_then(|s| s.1);
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }

    fn record(&self, ok: bool, options: &Options) {
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if ok {
            *state = (0, None);
        } else {
            state.0 = state.0.saturating_add(1);
            state.1 = Some(Instant::now() + retry_delay(options, state.0));
        }
    }
}

/// One delivered record: archive, copy, acknowledge; or ask for it again.
/// `false` if the archive failed.
async fn handle(
    archiver: &Archiver,
    options: &Options,
    players: &PlayerLocks,
    notifications: Option<&Notifications>,
    message: jetstream::Message,
) -> bool {
    let record = match serde_json::from_slice::<MatchRecord>(&message.payload) {
        Ok(record) => record,
        Err(e) => {
            // Nothing can ever archive it; keep it in the stream for an
            // operator, but stop delivering it.
            tracing::error!(error = %e, subject = %message.subject, "a malformed match record; left in the stream");
            metrics::counter!(names::ARCHIVED_RECORDS, "outcome" => "malformed").increment(1);
            let _ = message.ack_with(AckKind::Term).await;
            return true;
        }
    };
    let span = tracing::info_span!("archive record", match_id = %record.match_id, outcome = tracing::field::Empty);
    let held = players.lock(&record.players).await;
    let json = String::from_utf8_lossy(&message.payload);
    let outcome = async {
        let outcome = archive_one(archiver, &record, &json).await?;
        if let Some(notifications) = notifications {
            notify_results(notifications, &record, archiver.clock.now_ms()).await?;
        }
        Ok::<_, String>(outcome)
    }
    .instrument(span.clone())
    .await;
    drop(held);
    match outcome {
        Ok(outcome) => {
            span.record("outcome", outcome);
            metrics::counter!(names::ARCHIVED_RECORDS, "outcome" => outcome).increment(1);
            if let Err(e) = message.double_ack().await {
                // The ack may be lost; the record comes again and is a
                // duplicate then.
                tracing::warn!(match_id = %record.match_id, error = %e, "could not acknowledge an archived record");
            }
            true
        }
        Err(e) => {
            span.record("outcome", "failed");
            metrics::counter!(names::ARCHIVED_RECORDS, "outcome" => "failed").increment(1);
            let delivered = message.info().map(|i| i.delivered).unwrap_or(1).max(1);
            let delay = retry_delay(options, delivered as u32);
            tracing::warn!(match_id = %record.match_id, error = %e, delivered, retry_in_ms = delay.as_millis() as u64, "could not archive a match; it will come again");
            let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            false
        }
    }
}

/// Archives one record (`json`, decoded as `record`) and copies its
/// ratings; `archived` or `duplicate`.
pub async fn archive_one(
    archiver: &Archiver,
    record: &MatchRecord,
    json: &str,
) -> Result<&'static str, String> {
    let started = Instant::now();
    let archived = archiver
        .archive
        .archive_as(record, json, archiver.clock.now_ms())
        .await
        .map_err(|e: ArchiveError| e.to_string())?;
    metrics::histogram!(names::ARCHIVE_WRITE_SECONDS).record(started.elapsed().as_secs_f64());
    let (outcome, profiles) = match archived {
        Archived::Now(_, profiles) => ("archived", profiles),
        Archived::Before(doc) => {
            // Archived before, perhaps by an archiver that died before
            // copying the ratings: copy them again from the record.
            let mut profiles = Vec::new();
            for change in &doc.rating_changes {
                if let Some(p) = archiver
                    .archive
                    .profile(&change.player)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    profiles.push(p);
                }
            }
            ("duplicate", profiles)
        }
    };
    if dashdice_archive::ledger::rated(record) {
        for profile in &profiles {
            boards::copy(&archiver.boards, profile, Some(&record.mode))
                .await
                .map_err(|e| format!("redis: {e}"))?;
        }
    }
    Ok(outcome)
}

/// Asks the notifier to tell each human player of `record` its result,
/// waiting for the stream to keep each request. A request the checks
/// refuse (an id too long, say) can never be sent: it is logged and
/// skipped rather than holding the record back forever.
async fn notify_results(
    notifications: &Notifications,
    record: &MatchRecord,
    now_ms: u64,
) -> Result<(), String> {
    for request in crate::notify::match_results(record, now_ms) {
        match notifications.send(&request).await {
            Ok(()) => {}
            Err(NotifyError::Invalid(why)) => {
                tracing::error!(id = %request.id, %why, "a match result cannot be notified");
            }
            Err(e) => return Err(format!("notifications: {e}")),
        }
    }
    Ok(())
}

/// The wait before a record delivered `delivered` times comes again:
/// doubling from `retry_min`, at most `retry_max`.
fn retry_delay(options: &Options, delivered: u32) -> Duration {
    let doubled = options
        .retry_min
        .saturating_mul(1u32 << delivered.saturating_sub(1).min(16));
    doubled.min(options.retry_max)
}

/// Publishes the consumer's lag (pending plus unacknowledged records) as a
/// gauge every second.
pub async fn watch_lag(client: async_nats::Client) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Ok(pending) = pending(&client).await {
            metrics::gauge!(names::ARCHIVE_PENDING).set(pending as f64);
        }
    }
}

/// The archivers' lag: records not yet delivered plus delivered and not
/// yet acknowledged. An error until an archiver has made the consumer.
pub async fn pending(client: &async_nats::Client) -> Result<u64, String> {
    let js = jetstream::new(client.clone());
    let stream = js
        .get_stream(bus::RECORD_STREAM)
        .await
        .map_err(|e| e.to_string())?;
    let mut consumer = stream
        .get_consumer::<jetstream::consumer::pull::Config>(bus::ARCHIVER_RECORDS_CONSUMER)
        .await
        .map_err(|e| e.to_string())?;
    let info = consumer.info().await.map_err(|e| e.to_string())?;
    Ok(info.num_pending + info.num_ack_pending as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_to_a_ceiling() {
        let o = Options::default();
        assert_eq!(retry_delay(&o, 1), Duration::from_millis(250));
        assert_eq!(retry_delay(&o, 3), Duration::from_secs(1));
        assert_eq!(retry_delay(&o, 40), Duration::from_secs(10));
    }
}
