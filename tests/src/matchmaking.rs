//! The matchmaker's test harness: a recording match host and notification
//! inbox behind the `Matches` and `Notify` traits, a fast policy, and the
//! request builders the matchmaking suites share (`tests/queues.rs`,
//! `tests/private_matches.rs`, `tests/rematch.rs`). The real match host over
//! NATS is in `tests/matchmaker_service.rs`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use dashdice_matchmaker::{
    Connection, CreateInviteRequest, JoinInviteRequest, JoinRequest, MatchFound, Matches,
    Matchmaker, NewMatch, Notice, Notify, Opponent, Policy, PrivatePolicy, QueueKind, Rating,
    RatingsStore, RematchRequest, Status,
};
use dashdice_proto::client::CallError;
use dashdice_proto::clock::{ManualClock, now_ms};
use dashdice_proto::record::MatchRecord;
use dashdice_store::queues::QueueStore;

use crate::servers::RedisServer;

/// Records the matches asked for; can be told to fail, to call matches over,
/// or to hold finished matches' records.
#[derive(Clone, Default)]
pub struct Host {
    pub made: Arc<Mutex<Vec<(String, NewMatch)>>>,
    pub fail_next: Arc<AtomicUsize>,
    pub over: Arc<Mutex<Vec<String>>>,
    pub records: Arc<Mutex<Vec<MatchRecord>>>,
}

impl Matches for Host {
    async fn create(&self, new: &NewMatch) -> Result<String, CallError> {
        if self
            .fail_next
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(CallError::NoResponders);
        }
        let mut made = self.made.lock().expect("lock");
        let id = format!("m{}", made.len() + 1);
        made.push((id.clone(), new.clone()));
        Ok(id)
    }

    async fn is_over(&self, match_id: &str) -> Option<bool> {
        Some(
            self.over
                .lock()
                .expect("lock")
                .iter()
                .any(|m| m == match_id),
        )
    }

    async fn finished_record(&self, match_id: &str) -> Option<MatchRecord> {
        self.records
            .lock()
            .expect("lock")
            .iter()
            .find(|r| r.match_id == match_id)
            .cloned()
    }
}

impl Host {
    pub fn made(&self) -> Vec<(String, NewMatch)> {
        self.made.lock().expect("lock").clone()
    }
}

#[derive(Clone, Default)]
pub struct Inbox(pub Arc<Mutex<Vec<(String, Notice)>>>);

impl Notify for Inbox {
    async fn notify(&self, player: &str, notice: &Notice) -> Result<(), CallError> {
        self.0
            .lock()
            .expect("lock")
            .push((player.to_owned(), notice.clone()));
        Ok(())
    }
}

/// A fast schedule, so tests wait tenths of seconds, not minutes.
pub fn policy() -> Policy {
    Policy {
        initial_window: 50.0,
        widen_by: 50.0,
        widen_every_ms: 150,
        quick_unbounded_after_ms: 1_000,
        ranked_max_window: 400.0,
        other_regions_after_ms: 300,
        max_latency_ms: 150,
        bot_after_ms: None,
    }
}

pub type Mm = Matchmaker<Host, Inbox>;

pub async fn matchmaker(redis: &RedisServer, policy: Policy, host: &Host, inbox: &Inbox) -> Mm {
    let store = QueueStore::connect(&redis.url()).await.expect("redis");
    Matchmaker::new(
        store,
        policy,
        ["classic".to_owned(), "zero-hour".to_owned()],
        ["eu".to_owned(), "us".to_owned(), "ap".to_owned()],
        host.clone(),
        inbox.clone(),
    )
}

/// Puts `mm` on a clock the test moves, so waiting for windows to widen
/// takes no time.
pub fn manual_clock(mm: &mut Mm) -> Arc<ManualClock> {
    let clock = ManualClock::at(now_ms());
    mm.clock = clock.clone();
    clock
}

pub fn join(player: &str, kind: QueueKind, region: &str) -> JoinRequest {
    JoinRequest {
        player: player.into(),
        mode: "classic".into(),
        kind,
        region: region.into(),
        latency_ms: BTreeMap::new(),
        connection: Connection::Good,
        rating: None,
        opponent: Opponent::Any,
    }
}

pub async fn rate(mm: &Mm, player: &str, rating: f64) {
    mm.ratings()
        .put(
            player,
            "classic",
            Rating {
                rating,
                ..Rating::default()
            },
        )
        .await
        .expect("rating");
}

pub fn queued(status: &Status) -> bool {
    matches!(status, Status::Queued { .. })
}

pub fn playing(status: &Status) -> Option<&str> {
    match status {
        Status::Playing { match_id } => Some(match_id),
        _ => None,
    }
}

pub fn create(player: &str, mode: &str) -> CreateInviteRequest {
    CreateInviteRequest {
        player: player.into(),
        mode: mode.into(),
    }
}

pub fn join_code(player: &str, code: &str) -> JoinInviteRequest {
    JoinInviteRequest {
        player: player.into(),
        code: code.into(),
    }
}

pub fn rematch(player: &str, match_id: &str) -> RematchRequest {
    RematchRequest {
        player: player.into(),
        match_id: match_id.into(),
    }
}

pub async fn matchmaker_with(
    redis: &RedisServer,
    private: PrivatePolicy,
    host: &Host,
    inbox: &Inbox,
) -> Mm {
    let mut mm = matchmaker(redis, policy(), host, inbox).await;
    mm.private = private;
    mm
}

/// Everything told to `player`, in order.
pub fn told(inbox: &Inbox, player: &str) -> Vec<Notice> {
    inbox
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _)| p == player)
        .map(|(_, n)| n.clone())
        .collect()
}

pub fn found(inbox: &Inbox, player: &str) -> Vec<MatchFound> {
    told(inbox, player)
        .into_iter()
        .filter_map(|n| match n {
            Notice::MatchFound(f) => Some(f),
            _ => None,
        })
        .collect()
}

pub fn code_of(status: &Status) -> Option<&str> {
    match status {
        Status::Hosting { code, .. } => Some(code),
        _ => None,
    }
}
