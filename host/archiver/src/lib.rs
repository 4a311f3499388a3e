//! The archiver role: every finished match into Firestore, once; ratings
//! and leaderboards into Redis; profiles, history, archived matches and
//! leaderboards on NATS.
//!
//! - [`records`]: the durable JetStream consumer of the record stream. Each
//!   record is archived ([`dashdice_archive::Archive::archive`], one
//!   Firestore transaction, exactly once by match id), its ratings copied to
//!   Redis, and only then acknowledged. While Firestore is down records wait
//!   in the stream, and the archiver backs off.
//! - [`boards`]: Redis as the fast path of ranked play: each player's rating
//!   (what the matchmaker pairs by) and each season's leaderboards, written
//!   with versions so late or repeated writes never go backwards, and
//!   rebuilt from Firestore when Redis has lost them.
//! - [`service`]: `dd.archive.*` on the shared endpoint loop.
//! - [`friends`]: `dd.archive.friends.*`: each change made in one Firestore
//!   transaction ([`dashdice_archive::Archive::befriend`]), then told to
//!   the other player on `dd.user.<uid>.notify`, and a friend request or
//!   an accept is also asked of the notifier (inbox, push).
//! - [`notify`]: the notification requests the archiver makes: friend
//!   requests and accepts, and each human player's match result.
//!
//! Stateless: any number run side by side. They share one durable consumer
//! (a queue of work: each record goes to one of them) and one queue group.
//!
//! **Architecture Invariant:** Firestore is reached only through
//! `dashdice-archive` and Redis only through `dashdice-store`; this crate
//! wires them to the bus.

pub mod boards;
pub mod friends;
pub mod notify;
pub mod records;
pub mod service;

use std::sync::Arc;
use std::time::Duration;

use dashdice_archive::Archive;
use dashdice_proto::client::Notifications;
use dashdice_proto::clock::SharedClock;
use dashdice_store::leaderboards::Leaderboards;

/// How the archiver runs.
#[derive(Clone, Debug)]
pub struct Options {
    /// Records archived at once (Firestore transactions in flight).
    pub concurrency: usize,
    /// How often to check that Redis still has the boards (and rebuild
    /// them from Firestore if not).
    pub rebuild_check: Duration,
    /// The first and the longest wait before a failed record comes again.
    pub retry_min: Duration,
    pub retry_max: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            concurrency: 32,
            rebuild_check: Duration::from_secs(5),
            retry_min: Duration::from_millis(250),
            retry_max: Duration::from_secs(10),
        }
    }
}

/// What every part of the archiver shares.
#[derive(Clone)]
pub struct Archiver {
    pub archive: Archive,
    pub boards: Leaderboards,
    pub clock: SharedClock,
}

#[derive(Debug, thiserror::Error)]
#[error("nats: {0}")]
pub struct ServiceError(pub String);

/// Runs the archiver on `client` until the connection closes: the record
/// consumer, the rebuild check and the request endpoints. It asks for no
/// notifications (see [`run_notifying`]).
pub async fn run(
    client: async_nats::Client,
    archiver: Archiver,
    options: Options,
) -> Result<(), ServiceError> {
    run_notifying(client, archiver, options, None).await
}

/// [`run`], asking the notifier (through `notifications`, if any) to tell
/// players of friend requests and accepts and of their match results. The
/// notification stream is created here if missing, so requests are kept
/// even before a notifier first starts.
pub async fn run_notifying(
    client: async_nats::Client,
    archiver: Archiver,
    options: Options,
    notifications: Option<Notifications>,
) -> Result<(), ServiceError> {
    if notifications.is_some() {
        let js = async_nats::jetstream::new(client.clone());
        dashdice_proto::bus::open_notify_stream(&js)
            .await
            .map_err(ServiceError)?;
    }
    let archiver = Arc::new(archiver);
    let consumer = records::consumer(&client)
        .await
        .map_err(|e| ServiceError(e.to_string()))?;
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(records::archive_all(
        consumer,
        archiver.clone(),
        options.clone(),
        notifications.clone(),
    ));
    tasks.spawn(records::watch_lag(client.clone()));
    tasks.spawn(boards::keep_built(archiver.clone(), options.rebuild_check));
    let archives = service::Archives {
        archiver,
        notices: client.clone(),
        notifications,
    };
    let served =
        dashdice_service::endpoints::serve(client, service::SERVICE, Arc::new(archives)).await;
    tasks.abort_all();
    served.map_err(|e| ServiceError(e.to_string()))
}
