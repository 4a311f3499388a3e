//! The matchmaker's logic against a real redis-server: windows and regions
//! that widen with wait, connection quality, idempotent joins, leaving,
//! creation failures, ratings, several matchmakers racing over one set of
//! queues, private matches by invite code and rematches. The match host here is a recorder (the matchmaker reaches it
//! through a trait); `matchmaker_service.rs` runs the real one over NATS.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashdice_matchmaker::{
    CODE_ALPHABET, Connection, CreateInviteRequest, JoinInviteRequest, JoinRequest, MatchFound,
    Matches, Matchmaker, MatchmakingError, NewMatch, Notice, Notify, Opponent, Origin, Policy,
    PrivatePolicy, QueueKind, Rating, RatingsStore, RematchRequest, RematchStatus, Status, Ticket,
};
use dashdice_mode_sdk::{Action, MatchResult, Standing};
use dashdice_proto::client::CallError;
use dashdice_proto::clock::{ManualClock, now_ms};
use dashdice_runtime::fair_dice::{MatchRecord, RecordedAction};
use dashdice_store::queues::{QueueKeys, QueueStore, StoredTicket};
use dashdice_tests::servers::RedisServer;

/// Records the matches asked for; can be told to fail, to call matches over,
/// or to hold finished matches' records.
#[derive(Clone, Default)]
struct Host {
    made: Arc<Mutex<Vec<(String, NewMatch)>>>,
    fail_next: Arc<AtomicUsize>,
    over: Arc<Mutex<Vec<String>>>,
    records: Arc<Mutex<Vec<MatchRecord>>>,
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
    fn made(&self) -> Vec<(String, NewMatch)> {
        self.made.lock().expect("lock").clone()
    }
}

#[derive(Clone, Default)]
struct Inbox(Arc<Mutex<Vec<(String, Notice)>>>);

impl Notify for Inbox {
    async fn notify(&self, player: &str, notice: &Notice) {
        self.0
            .lock()
            .expect("lock")
            .push((player.to_owned(), notice.clone()));
    }
}

/// A fast schedule, so tests wait tenths of seconds, not minutes.
fn policy() -> Policy {
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

type Mm = Matchmaker<Host, Inbox>;

async fn matchmaker(redis: &RedisServer, policy: Policy, host: &Host, inbox: &Inbox) -> Mm {
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
fn manual_clock(mm: &mut Mm) -> Arc<ManualClock> {
    let clock = ManualClock::at(now_ms());
    mm.clock = clock.clone();
    clock
}

fn join(player: &str, kind: QueueKind, region: &str) -> JoinRequest {
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

async fn rate(mm: &Mm, player: &str, rating: f64) {
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

fn queued(status: &Status) -> bool {
    matches!(status, Status::Queued { .. })
}

fn playing(status: &Status) -> Option<&str> {
    match status {
        Status::Playing { match_id } => Some(match_id),
        _ => None,
    }
}

#[tokio::test]
async fn a_join_that_finds_nobody_says_where_it_stands() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    rate(&mm, "alice", 1500.0).await;
    rate(&mm, "carol", 2500.0).await;
    mm.join(&join("alice", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    // Far outside alice's window: both wait, carol second in line.
    let second = mm
        .join(&join("carol", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    assert!(
        matches!(
            second,
            Status::Queued {
                position: 2,
                queue_size: 2,
                ..
            }
        ),
        "{second:?}"
    );
    assert!(
        matches!(
            mm.status("carol").await.expect("status"),
            Status::Queued {
                position: 2,
                queue_size: 2,
                ..
            }
        ),
        "status agrees"
    );
    assert!(host.made().is_empty(), "no match was made");
}

#[tokio::test]
async fn a_compatible_pair_is_matched_at_once_and_both_are_told() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    rate(&mm, "alice", 1500.0).await;
    rate(&mm, "bob", 1530.0).await;
    let first = mm
        .join(&join("alice", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    assert!(
        matches!(
            first,
            Status::Queued {
                position: 1,
                queue_size: 1,
                ..
            }
        ),
        "{first:?}"
    );
    let second = mm
        .join(&join("bob", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let match_id = playing(&second).expect("matched at once").to_owned();
    assert_eq!(
        playing(&mm.status("alice").await.expect("status")),
        Some(match_id.as_str())
    );
    let made = host.made();
    assert_eq!(made.len(), 1);
    let (id, new) = &made[0];
    assert_eq!(id, &match_id);
    assert!(new.ranked && new.bots.is_empty());
    let mut players = new.players.clone();
    players.sort();
    assert_eq!(players, ["alice", "bob"]);
    let told: Vec<String> = inbox
        .0
        .lock()
        .expect("lock")
        .iter()
        .map(|(p, _)| p.clone())
        .collect();
    assert_eq!(told.len(), 2);
    assert!(told.contains(&"alice".to_owned()) && told.contains(&"bob".to_owned()));
    let keys = QueueKeys::new("classic", "ranked");
    assert_eq!(mm.queue_size(&keys).await.expect("size"), 0);
}

#[tokio::test]
async fn asking_for_a_bot_plays_one_at_once_and_never_in_ranked() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let with_bots = Policy {
        bot_after_ms: Some(60_000),
        ..policy()
    };
    let mm = matchmaker(&redis, with_bots, &host, &inbox).await;
    let ranked = JoinRequest {
        opponent: Opponent::Bot,
        ..join("carol", QueueKind::Ranked, "eu")
    };
    let refused = mm.join(&ranked).await.expect_err("no bots in ranked");
    assert_eq!(refused.code(), "bad_request", "{refused}");
    assert_eq!(mm.status("carol").await.expect("status"), Status::Idle);

    let quick = JoinRequest {
        opponent: Opponent::Bot,
        ..join("carol", QueueKind::Quick, "eu")
    };
    let status = mm.join(&quick).await.expect("join");
    let match_id = playing(&status).expect("a bot match at once").to_owned();
    let made = host.made();
    assert_eq!(made.len(), 1);
    let (id, new) = &made[0];
    assert_eq!(id, &match_id);
    assert!(!new.ranked);
    assert_eq!(new.players.len(), 2);
    assert_eq!(new.players[0], "carol");
    assert_eq!(new.bots, [new.players[1].clone()]);
    let keys = QueueKeys::new("classic", "quick");
    assert_eq!(mm.queue_size(&keys).await.expect("size"), 0);
    // Playing now: another join is refused until the match ends.
    let again = mm.join(&quick).await.expect_err("in a match");
    assert_eq!(again.code(), "in_match", "{again}");

    // Where bots are off, asking for one is refused.
    let no_bots = matchmaker(&redis, policy(), &host, &inbox).await;
    let dave = JoinRequest {
        opponent: Opponent::Bot,
        ..join("dave", QueueKind::Quick, "eu")
    };
    let refused = no_bots.join(&dave).await.expect_err("bots are off");
    assert_eq!(refused.code(), "bad_request", "{refused}");
}

#[tokio::test]
async fn the_rating_window_widens_with_wait_and_ranked_stays_capped() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mut mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let clock = manual_clock(&mut mm);
    for (player, rating) in [("a", 1500.0), ("b", 1580.0), ("c", 1000.0), ("d", 1450.0)] {
        rate(&mm, player, rating).await;
    }
    // a and b are 80 apart: outside ±50, inside ±100 once both waited 150 ms.
    assert!(queued(
        &mm.join(&join("a", QueueKind::Ranked, "eu"))
            .await
            .expect("join")
    ));
    assert!(queued(
        &mm.join(&join("b", QueueKind::Ranked, "eu"))
            .await
            .expect("join")
    ));
    assert_eq!(mm.pass().await.expect("pass"), 0);
    clock.advance(Duration::from_millis(200));
    assert_eq!(mm.pass().await.expect("pass"), 1);
    assert!(playing(&mm.status("a").await.expect("status")).is_some());
    assert!(playing(&mm.status("b").await.expect("status")).is_some());

    // c and d are 450 apart: the ranked window stops at ±400.
    mm.join(&join("c", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    mm.join(&join("d", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    clock.advance(Duration::from_millis(1_500));
    assert_eq!(mm.pass().await.expect("pass"), 0, "capped in ranked");
    assert!(queued(&mm.status("c").await.expect("status")));
    assert_eq!(host.made().len(), 1);
}

#[tokio::test]
async fn quick_queues_become_unbounded() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mut mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let clock = manual_clock(&mut mm);
    let mut low = join("low", QueueKind::Quick, "eu");
    low.rating = Some(500.0);
    let mut high = join("high", QueueKind::Quick, "eu");
    high.rating = Some(2500.0);
    mm.join(&low).await.expect("join");
    mm.join(&high).await.expect("join");
    clock.advance(Duration::from_millis(600));
    assert_eq!(mm.pass().await.expect("pass"), 0, "±350 is not enough");
    clock.advance(Duration::from_millis(500));
    assert_eq!(mm.pass().await.expect("pass"), 1, "anyone after 1 s");
}

#[tokio::test]
async fn other_regions_open_after_the_wait_within_the_latency_limit() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mut mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let clock = manual_clock(&mut mm);
    let mut eu = join("eu1", QueueKind::Ranked, "eu");
    eu.latency_ms = [("us".to_owned(), 100), ("ap".to_owned(), 300)].into();
    let mut us = join("us1", QueueKind::Ranked, "us");
    us.latency_ms = [("eu".to_owned(), 90)].into();
    let mut ap = join("ap1", QueueKind::Ranked, "ap");
    ap.latency_ms = [("eu".to_owned(), 100)].into();
    for j in [&eu, &us, &ap] {
        assert!(queued(&mm.join(j).await.expect("join")), "own region first");
    }
    assert_eq!(mm.pass().await.expect("pass"), 0);
    clock.advance(Duration::from_millis(350));
    assert_eq!(mm.pass().await.expect("pass"), 1);
    let (_, new) = &host.made()[0];
    let mut players = new.players.clone();
    players.sort();
    assert_eq!(players, ["eu1", "us1"]);
    assert!(
        queued(&mm.status("ap1").await.expect("status")),
        "eu's ping to ap is 300 ms"
    );
}

#[tokio::test]
async fn two_poor_connections_never_meet() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let mut a = join("poor-a", QueueKind::Ranked, "eu");
    a.connection = Connection::Poor;
    let mut b = join("poor-b", QueueKind::Ranked, "eu");
    b.connection = Connection::Poor;
    assert!(queued(&mm.join(&a).await.expect("join")));
    assert!(queued(&mm.join(&b).await.expect("join")));
    assert_eq!(mm.pass().await.expect("pass"), 0);
    // A good connection takes the one that waited longest.
    let c = mm
        .join(&join("good", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    assert!(playing(&c).is_some());
    let (_, new) = &host.made()[0];
    assert!(new.players.contains(&"poor-a".to_owned()), "{new:?}");
    assert!(queued(&mm.status("poor-b").await.expect("status")));
}

#[tokio::test]
async fn a_second_join_is_a_no_op_and_another_queue_is_refused() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let first = mm
        .join(&join("a", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let again = mm
        .join(&join("a", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    assert!(
        matches!(
            again,
            Status::Queued {
                position: 1,
                queue_size: 1,
                ..
            }
        ),
        "{again:?}"
    );
    assert!(queued(&first));
    let mut other = join("a", QueueKind::Quick, "eu");
    other.mode = "zero-hour".into();
    let refused = mm.join(&other).await.expect_err("one ticket per player");
    assert!(
        matches!(refused, MatchmakingError::AlreadyQueued { .. }),
        "{refused}"
    );
    assert_eq!(refused.code(), "already_queued");
    let zero_hour = QueueKeys::new("zero-hour", "quick");
    assert_eq!(mm.queue_size(&zero_hour).await.expect("size"), 0);
    assert_eq!(
        mm.queue_size(&QueueKeys::new("classic", "ranked"))
            .await
            .expect("size"),
        1
    );
}

#[tokio::test]
async fn nobody_queues_while_in_a_match_until_it_ends() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    mm.join(&join("a", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let matched = mm
        .join(&join("b", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let match_id = playing(&matched).expect("matched").to_owned();
    let refused = mm
        .join(&join("a", QueueKind::Quick, "eu"))
        .await
        .expect_err("in a match");
    assert!(
        matches!(&refused, MatchmakingError::InMatch(m) if *m == match_id),
        "{refused}"
    );
    // Leaving is too late, too: the answer says where the player is.
    assert_eq!(
        playing(&mm.leave("a").await.expect("leave")),
        Some(match_id.as_str())
    );

    // The end arrives (from the record stream): both are free.
    mm.match_ended(&match_id, &["a".into(), "b".into()])
        .await
        .expect("ended");
    assert_eq!(mm.status("a").await.expect("status"), Status::Idle);
    // If the end were never heard, a finished match does not hold anyone.
    mm.join(&join("a", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let again = mm
        .join(&join("b", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let second = playing(&again).expect("matched").to_owned();
    host.over.lock().expect("lock").push(second);
    assert!(queued(
        &mm.join(&join("a", QueueKind::Quick, "eu"))
            .await
            .expect("join")
    ));
}

#[tokio::test]
async fn a_failed_creation_puts_both_back_with_their_wait() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mut mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let clock = manual_clock(&mut mm);
    host.fail_next.store(1, Ordering::SeqCst);
    mm.join(&join("a", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    clock.advance(Duration::from_millis(100));
    let b = mm
        .join(&join("b", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    assert!(queued(&b), "{b:?}");
    let Status::Queued {
        waited_ms,
        position,
        ..
    } = mm.status("a").await.expect("status")
    else {
        panic!("a is back in the queue");
    };
    assert!(waited_ms >= 100, "a keeps its wait: {waited_ms} ms");
    assert_eq!(position, 1, "and its place");
    assert!(host.made().is_empty());
    assert_eq!(mm.pass().await.expect("pass"), 1, "the next try works");
}

#[tokio::test]
async fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let mut unknown_mode = join("a", QueueKind::Quick, "eu");
    unknown_mode.mode = "poker".into();
    let mut bad_latency = join("a", QueueKind::Quick, "eu");
    bad_latency.latency_ms = [("mars".to_owned(), 10)].into();
    let mut bad_rating = join("a", QueueKind::Quick, "eu");
    bad_rating.rating = Some(f64::NAN);
    let cases = [
        (unknown_mode, "unknown_mode"),
        (join("a", QueueKind::Quick, "moon"), "unknown_region"),
        (bad_latency, "unknown_region"),
        (join("a.b", QueueKind::Quick, "eu"), "bad_request"),
        (join("bot:x", QueueKind::Quick, "eu"), "bad_request"),
        (join("", QueueKind::Quick, "eu"), "bad_request"),
        (bad_rating, "bad_request"),
    ];
    for (request, code) in cases {
        let err = mm.join(&request).await.expect_err("refused");
        assert_eq!(err.code(), code, "{request:?}: {err}");
        assert!(!err.to_string().is_empty());
    }
    assert_eq!(mm.status("a").await.expect("status"), Status::Idle);
    for kind in ["quick", "ranked"] {
        assert_eq!(
            mm.queue_size(&QueueKeys::new("classic", kind))
                .await
                .expect("size"),
            0
        );
    }
}

#[tokio::test]
async fn a_ranked_result_moves_ratings_once() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let standing = |player: &str, rank, result| Standing {
        player: player.into(),
        score: 0,
        rank,
        result,
    };
    let record = MatchRecord {
        match_id: "m-ranked".into(),
        mode: "classic".into(),
        mode_version: "00".repeat(32).parse().expect("hash"),
        players: vec!["winner".into(), "loser".into()],
        options: String::new(),
        created_ms: 0,
        ranked: true,
        bots: vec![],
        seed_hash: String::new(),
        seed: String::new(),
        actions: vec![],
        standings: vec![
            standing("winner", 1, MatchResult::Win),
            standing("loser", 2, MatchResult::Loss),
        ],
    };
    mm.record_finished(&record).await.expect("rated");
    let get = |p: &'static str| {
        let ratings = mm.ratings().clone();
        async move { ratings.get(p, "classic").await.expect("rating") }
    };
    let (w, l) = (get("winner").await, get("loser").await);
    assert!(w.rating > 1500.0 && l.rating < 1500.0, "{w:?} {l:?}");
    mm.record_finished(&record).await.expect("again");
    assert_eq!(get("winner").await, w, "a match is rated once");
    let casual = MatchRecord {
        match_id: "m-quick".into(),
        ranked: false,
        ..record.clone()
    };
    mm.record_finished(&casual).await.expect("quick");
    assert_eq!(get("winner").await, w, "quick matches do not move ratings");
    // Ranked joins match on the stored rating.
    rate(&mm, "x", 1900.0).await;
    rate(&mm, "y", 1500.0).await;
    mm.join(&join("x", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    assert!(queued(
        &mm.join(&join("y", QueueKind::Ranked, "eu"))
            .await
            .expect("join")
    ));
}

/// After a run: every player is either in exactly one match, each of whose
/// players is `playing` it, or still queued (in the queue); nothing else.
async fn assert_consistent(mm: &Mm, host: &Host, players: &[String]) -> (usize, usize) {
    let mut matches_of: HashMap<&str, Vec<&str>> = HashMap::new();
    let made = host.made();
    for (id, new) in &made {
        assert_eq!(new.players.len(), 2, "{new:?}");
        assert_ne!(new.players[0], new.players[1]);
        for p in &new.players {
            matches_of.entry(p.as_str()).or_default().push(id.as_str());
        }
    }
    let (mut in_match, mut waiting) = (0, 0);
    for p in players {
        let ids = matches_of.get(p.as_str()).cloned().unwrap_or_default();
        assert!(ids.len() <= 1, "{p} is in {} matches: {ids:?}", ids.len());
        match mm.status(p).await.expect("status") {
            Status::Playing { match_id } => {
                assert_eq!(ids, [match_id.as_str()], "{p}");
                in_match += 1;
            }
            Status::Queued { position, .. } => {
                assert!(ids.is_empty(), "{p} is queued and in {ids:?}");
                assert!(position > 0, "{p}'s ticket is in the queue");
                waiting += 1;
            }
            Status::Idle => assert!(ids.is_empty(), "{p} is idle but in {ids:?}"),
            Status::Matching => panic!("{p} is stuck matching"),
            Status::Hosting { .. } => panic!("{p} never made a code"),
        }
    }
    let keys = QueueKeys::new("classic", "quick");
    assert_eq!(
        mm.queue_size(&keys).await.expect("size"),
        waiting as u64,
        "no stray tickets"
    );
    (in_match, waiting)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn several_matchmakers_never_share_a_ticket_and_lose_none() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mut mms = Vec::new();
    for _ in 0..4 {
        mms.push(Arc::new(matchmaker(&redis, policy(), &host, &inbox).await));
    }
    let players: Vec<String> = (0..200).map(|i| format!("p{i}")).collect();
    let mut tasks = Vec::new();
    for (i, p) in players.iter().enumerate() {
        let mm = mms[i % mms.len()].clone();
        let mut request = join(p, QueueKind::Quick, if i % 2 == 0 { "eu" } else { "us" });
        request.rating = Some(1400.0 + (i * 37 % 200) as f64);
        request.latency_ms = [("eu".to_owned(), 60), ("us".to_owned(), 60)].into();
        tasks.push(tokio::spawn(async move { mm.join(&request).await }));
    }
    // Passes on every matchmaker, racing the joins and each other.
    let passes: Vec<_> = mms
        .iter()
        .map(|mm| {
            let mm = mm.clone();
            tokio::spawn(async move {
                for _ in 0..30 {
                    mm.pass().await.expect("pass");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task").expect("join");
    }
    for p in passes {
        p.await.expect("passes");
    }
    let (in_match, waiting) = assert_consistent(&mms[0], &host, &players).await;
    assert_eq!(
        in_match + waiting,
        players.len(),
        "every ticket accounted for"
    );
    assert!(
        waiting <= 1,
        "all but an odd one out are paired: {waiting} waiting"
    );
    assert_eq!(host.made().len() * 2, in_match);
}

/// Taking tickets needs each one's exact id (an id that only starts or ends
/// the same is another ticket), and takes all of them or none.
#[tokio::test]
async fn a_take_needs_every_exact_ticket_id_and_takes_all_or_none() {
    let redis = RedisServer::start();
    let store = QueueStore::connect(&redis.url()).await.expect("redis");
    let keys = QueueKeys::new("classic", "quick");
    for (player, ticket_id) in [("ann", "t-abc1"), ("bob", "t-b0b")] {
        let ticket = Ticket {
            player: player.into(),
            mode: "classic".into(),
            kind: QueueKind::Quick,
            region: "eu".into(),
            rating: 1500.0,
            joined_ms: now_ms(),
            poor_connection: false,
            latency_ms: BTreeMap::new(),
            ticket_id: ticket_id.into(),
        };
        let json = serde_json::to_string(&ticket).expect("json");
        store
            .enqueue(
                &keys,
                &StoredTicket {
                    player,
                    ticket_id,
                    region: "eu",
                    rating: 1500.0,
                    joined_ms: ticket.joined_ms,
                    json: &json,
                },
            )
            .await
            .expect("enqueue");
    }
    let now = now_ms();
    for wrong in ["t-abc", "t-abc1x", "abc1", "t-b0b"] {
        let taken = store
            .take(&keys, &[("ann", wrong, "eu")], now)
            .await
            .expect("take");
        assert_eq!(taken, None, "{wrong} is not ann's ticket");
    }
    let taken = store
        .take(
            &keys,
            &[("ann", "t-abc1", "eu"), ("bob", "t-nope", "eu")],
            now,
        )
        .await
        .expect("take");
    assert_eq!(taken, None, "one wrong id takes nothing");
    assert_eq!(store.size(&keys).await.expect("size"), 2);
    let taken = store
        .take(
            &keys,
            &[("ann", "t-abc1", "eu"), ("bob", "t-b0b", "eu")],
            now,
        )
        .await
        .expect("take")
        .expect("both taken");
    assert_eq!(taken.len(), 2);
    assert!(taken[0].contains("\"player\":\"ann\""), "{taken:?}");
    assert_eq!(store.size(&keys).await.expect("size"), 0);
}

/// Redis forgetting its scripts (a restart, `SCRIPT FLUSH`) costs nothing:
/// a script Redis lacks is loaded again, and the join goes on.
#[tokio::test]
async fn joins_survive_redis_forgetting_its_scripts() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let mut flush = redis::cmd("SCRIPT");
    flush.arg("FLUSH");
    let mut request = join("f1", QueueKind::Quick, "eu");
    request.rating = Some(1500.0);
    let _: () = flush.query_async(&mut conn).await.expect("flush");
    assert!(queued(&mm.join(&request).await.expect("join")));
    let _: () = flush.query_async(&mut conn).await.expect("flush");
    let second = JoinRequest {
        player: "f2".into(),
        ..request.clone()
    };
    assert!(playing(&mm.join(&second).await.expect("join")).is_some());
    assert_eq!(host.made().len(), 1);
    let players: Vec<String> = ["f1", "f2"].map(String::from).into();
    assert_eq!(assert_consistent(&mm, &host, &players).await, (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaving_while_being_matched_is_clean_either_way() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mut mms = Vec::new();
    for _ in 0..3 {
        mms.push(Arc::new(matchmaker(&redis, policy(), &host, &inbox).await));
    }
    let players: Vec<String> = (0..120).map(|i| format!("q{i}")).collect();
    let mut tasks = Vec::new();
    for (i, p) in players.iter().enumerate() {
        let mm = mms[i % mms.len()].clone();
        let mut request = join(p, QueueKind::Quick, "eu");
        request.rating = Some(1500.0);
        let leaves = i % 3 == 0;
        tasks.push(tokio::spawn(async move {
            mm.join(&request).await.expect("join");
            if leaves {
                mm.leave(&request.player).await.expect("leave");
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    for mm in &mms {
        mm.pass().await.expect("pass");
    }
    let (in_match, waiting) = assert_consistent(&mms[0], &host, &players).await;
    let idle = players.len() - in_match - waiting;
    assert!(
        idle <= players.len() / 3 + 1,
        "only leavers are idle: {idle}"
    );
    for (i, p) in players.iter().enumerate() {
        if i % 3 != 0 {
            assert_ne!(
                mms[0].status(p).await.expect("status"),
                Status::Idle,
                "{p} did not leave"
            );
        }
    }
}

// ---- Private matches (invite codes) ----

fn create(player: &str, mode: &str) -> CreateInviteRequest {
    CreateInviteRequest {
        player: player.into(),
        mode: mode.into(),
    }
}

fn join_code(player: &str, code: &str) -> JoinInviteRequest {
    JoinInviteRequest {
        player: player.into(),
        code: code.into(),
    }
}

fn rematch(player: &str, match_id: &str) -> RematchRequest {
    RematchRequest {
        player: player.into(),
        match_id: match_id.into(),
    }
}

async fn matchmaker_with(
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
fn told(inbox: &Inbox, player: &str) -> Vec<Notice> {
    inbox
        .0
        .lock()
        .expect("lock")
        .iter()
        .filter(|(p, _)| p == player)
        .map(|(_, n)| n.clone())
        .collect()
}

fn found(inbox: &Inbox, player: &str) -> Vec<MatchFound> {
    told(inbox, player)
        .into_iter()
        .filter_map(|n| match n {
            Notice::MatchFound(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn code_of(status: &Status) -> Option<&str> {
    match status {
        Status::Hosting { code, .. } => Some(code),
        _ => None,
    }
}

#[tokio::test]
async fn a_private_code_brings_host_and_guest_into_one_unranked_match() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let before = now_ms();
    let invite = mm
        .create_invite(&create("alice", "zero-hour"))
        .await
        .expect("a code");
    assert_eq!(invite.code.len(), 6, "{invite:?}");
    assert!(
        invite.code.bytes().all(|b| CODE_ALPHABET.contains(&b)),
        "{invite:?}"
    );
    assert_eq!(invite.mode, "zero-hour");
    assert!(invite.expires_ms >= before + 10 * 60_000, "{invite:?}");
    assert_eq!(
        mm.status("alice").await.expect("status"),
        Status::Hosting {
            code: invite.code.clone(),
            mode: "zero-hour".into(),
            expires_ms: invite.expires_ms,
        }
    );
    // Asking again for the same mode answers the same code.
    let again = mm
        .create_invite(&create("alice", "zero-hour"))
        .await
        .expect("again");
    assert_eq!(again, invite);

    // The guest types it in lower case.
    let joined = mm
        .join_invite(&join_code("bob", &invite.code.to_lowercase()))
        .await
        .expect("join");
    let match_id = playing(&joined).expect("playing").to_owned();
    let made = host.made();
    assert_eq!(made.len(), 1);
    let (id, new) = &made[0];
    assert_eq!(id, &match_id);
    assert_eq!(new.mode, "zero-hour");
    assert_eq!(new.players, ["alice", "bob"]);
    assert!(!new.ranked && new.bots.is_empty(), "{new:?}");
    for p in ["alice", "bob"] {
        assert_eq!(
            playing(&mm.status(p).await.expect("status")),
            Some(match_id.as_str()),
            "{p}"
        );
        let told = found(&inbox, p);
        assert_eq!(told.len(), 1, "{p}: {told:?}");
        assert_eq!(
            told[0],
            MatchFound {
                match_id: match_id.clone(),
                mode: "zero-hour".into(),
                kind: QueueKind::Quick,
                players: vec!["alice".into(), "bob".into()],
                bot: false,
                origin: Origin::Invite,
            }
        );
    }
    for kind in ["quick", "ranked"] {
        assert_eq!(
            mm.queue_size(&QueueKeys::new("zero-hour", kind))
                .await
                .expect("size"),
            0
        );
    }
}

#[tokio::test]
async fn a_code_works_once_and_a_second_guest_is_refused() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let invite = mm
        .create_invite(&create("alice", "classic"))
        .await
        .expect("code");
    mm.join_invite(&join_code("bob", &invite.code))
        .await
        .expect("join");
    let err = mm
        .join_invite(&join_code("carol", &invite.code))
        .await
        .expect_err("used");
    assert!(matches!(err, MatchmakingError::CodeUsed), "{err}");
    assert_eq!(err.code(), "code_used");
    assert_eq!(mm.status("carol").await.expect("status"), Status::Idle);
    assert!(told(&inbox, "carol").is_empty());
    assert_eq!(host.made().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn guests_racing_for_one_code_make_one_match() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mut mms = Vec::new();
    for _ in 0..3 {
        mms.push(Arc::new(matchmaker(&redis, policy(), &host, &inbox).await));
    }
    let invite = mms[0]
        .create_invite(&create("host-1", "classic"))
        .await
        .expect("code");
    let guests: Vec<String> = (0..12).map(|i| format!("guest-{i}")).collect();
    let tasks: Vec<_> = guests
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let mm = mms[i % mms.len()].clone();
            let request = join_code(g, &invite.code);
            tokio::spawn(async move { mm.join_invite(&request).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (g, t) in guests.iter().zip(tasks) {
        match t.await.expect("task") {
            Ok(status) => winners.push((g.clone(), status)),
            Err(e) => assert_eq!(e.code(), "code_used", "{g}: {e}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let made = host.made();
    assert_eq!(made.len(), 1);
    assert_eq!(
        made[0].1.players,
        ["host-1".to_owned(), winners[0].0.clone()]
    );
    for g in guests.iter().filter(|g| **g != winners[0].0) {
        assert_eq!(mms[0].status(g).await.expect("status"), Status::Idle, "{g}");
    }
}

#[tokio::test]
async fn an_expired_code_is_refused_and_frees_its_host() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    // Long enough for the status check, short enough to wait out.
    let private = PrivatePolicy {
        code_ttl_ms: 1_000,
        ..PrivatePolicy::default()
    };
    let mm = matchmaker_with(&redis, private, &host, &inbox).await;
    let invite = mm
        .create_invite(&create("alice", "classic"))
        .await
        .expect("code");
    assert!(code_of(&mm.status("alice").await.expect("status")).is_some());
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let err = mm
        .join_invite(&join_code("bob", &invite.code))
        .await
        .expect_err("expired");
    assert_eq!(err.code(), "unknown_code", "{err}");
    assert_eq!(mm.status("bob").await.expect("status"), Status::Idle);
    assert_eq!(
        mm.status("alice").await.expect("status"),
        Status::Idle,
        "the host stops waiting with the code"
    );
    assert!(queued(
        &mm.join(&join("alice", QueueKind::Ranked, "eu"))
            .await
            .expect("the host may queue")
    ));
    assert!(host.made().is_empty());
    assert!(inbox.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn joining_ones_own_code_is_refused_and_changes_nothing() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let invite = mm
        .create_invite(&create("alice", "classic"))
        .await
        .expect("code");
    let err = mm
        .join_invite(&join_code("alice", &invite.code))
        .await
        .expect_err("own code");
    assert!(matches!(err, MatchmakingError::OwnCode), "{err}");
    assert_eq!(err.code(), "own_code");
    assert_eq!(
        code_of(&mm.status("alice").await.expect("status")),
        Some(invite.code.as_str()),
        "still waiting"
    );
    assert!(host.made().is_empty());
    // The code still works for someone else.
    let joined = mm
        .join_invite(&join_code("bob", &invite.code))
        .await
        .expect("join");
    assert!(playing(&joined).is_some());
}

#[tokio::test]
async fn hosting_queueing_and_playing_exclude_each_other() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let ranked = QueueKeys::new("classic", "ranked");
    let quick = QueueKeys::new("classic", "quick");

    // Queued → no code.
    mm.join(&join("q", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let err = mm
        .create_invite(&create("q", "classic"))
        .await
        .expect_err("queued");
    assert_eq!(err.code(), "already_queued", "{err}");
    assert!(queued(&mm.status("q").await.expect("status")));
    assert_eq!(mm.queue_size(&ranked).await.expect("size"), 1);

    // Hosting → no queue, no other code, no joining another's code.
    let h = mm
        .create_invite(&create("h", "classic"))
        .await
        .expect("code");
    let err = mm
        .join(&join("h", QueueKind::Quick, "eu"))
        .await
        .expect_err("hosting");
    assert!(
        matches!(&err, MatchmakingError::Hosting(c) if *c == h.code),
        "{err}"
    );
    assert_eq!(err.code(), "hosting");
    assert_eq!(mm.queue_size(&quick).await.expect("size"), 0);
    let err = mm
        .create_invite(&create("h", "zero-hour"))
        .await
        .expect_err("one code at a time");
    assert_eq!(err.code(), "hosting", "{err}");
    let g = mm
        .create_invite(&create("g", "classic"))
        .await
        .expect("code");
    let err = mm
        .join_invite(&join_code("h", &g.code))
        .await
        .expect_err("hosting");
    assert_eq!(err.code(), "hosting", "{err}");
    assert_eq!(
        code_of(&mm.status("h").await.expect("status")),
        Some(h.code.as_str())
    );

    // Playing → neither a code nor joining one.
    let paired = mm
        .join(&join("r", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let match_id = playing(&paired).expect("r meets q").to_owned();
    for p in ["q", "r"] {
        let err = mm
            .create_invite(&create(p, "classic"))
            .await
            .expect_err("playing");
        assert!(
            matches!(&err, MatchmakingError::InMatch(m) if *m == match_id),
            "{err}"
        );
        let err = mm
            .join_invite(&join_code(p, &g.code))
            .await
            .expect_err("playing");
        assert_eq!(err.code(), "in_match", "{err}");
    }
    assert_eq!(host.made().len(), 1, "only q and r's match");

    // g's code was never taken by the refused guests.
    let joined = mm
        .join_invite(&join_code("x", &g.code))
        .await
        .expect("join");
    assert!(playing(&joined).is_some());

    // Leaving while hosting cancels the code.
    assert_eq!(mm.leave("h").await.expect("leave"), Status::Idle);
    let err = mm
        .join_invite(&join_code("y", &h.code))
        .await
        .expect_err("cancelled");
    assert_eq!(err.code(), "unknown_code", "{err}");
    assert_eq!(mm.status("y").await.expect("status"), Status::Idle);
    assert!(queued(
        &mm.join(&join("h", QueueKind::Quick, "eu"))
            .await
            .expect("h may queue now")
    ));
}

#[tokio::test]
async fn bad_invite_input_gets_a_clear_error_and_changes_nothing() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let invite = mm
        .create_invite(&create("alice", "classic"))
        .await
        .expect("code");
    for code in ["", "ABC", "ABCDEFG", "ABCDE0", "ABCDEI", "ABC-EF"] {
        let err = mm
            .join_invite(&join_code("bob", code))
            .await
            .expect_err("malformed");
        assert_eq!(err.code(), "bad_request", "{code:?}: {err}");
    }
    // Well-formed, but nobody made it.
    let other = if invite.code == "ABCDEF" {
        "ABCDEG"
    } else {
        "ABCDEF"
    };
    let err = mm
        .join_invite(&join_code("bob", other))
        .await
        .expect_err("unknown");
    assert!(matches!(err, MatchmakingError::UnknownCode), "{err}");
    assert!(!err.to_string().is_empty());
    let err = mm
        .join_invite(&join_code("bot:x", &invite.code))
        .await
        .expect_err("bad player");
    assert_eq!(err.code(), "bad_request");
    let err = mm
        .create_invite(&create("bob", "poker"))
        .await
        .expect_err("unknown mode");
    assert_eq!(err.code(), "unknown_mode");
    let err = mm
        .create_invite(&create("a b", "classic"))
        .await
        .expect_err("bad player");
    assert_eq!(err.code(), "bad_request");
    assert_eq!(mm.status("bob").await.expect("status"), Status::Idle);
    assert_eq!(
        code_of(&mm.status("alice").await.expect("status")),
        Some(invite.code.as_str())
    );
    assert!(host.made().is_empty());
    assert!(inbox.0.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn a_failed_private_creation_keeps_the_code_for_a_retry() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let invite = mm
        .create_invite(&create("alice", "classic"))
        .await
        .expect("code");
    host.fail_next.store(1, Ordering::SeqCst);
    let err = mm
        .join_invite(&join_code("bob", &invite.code))
        .await
        .expect_err("the host is down");
    assert_eq!(err.code(), "unavailable", "{err}");
    assert_eq!(mm.status("bob").await.expect("status"), Status::Idle);
    assert_eq!(
        mm.status("alice").await.expect("status"),
        Status::Hosting {
            code: invite.code.clone(),
            mode: "classic".into(),
            expires_ms: invite.expires_ms,
        },
        "the host waits on the same code"
    );
    assert!(inbox.0.lock().expect("lock").is_empty());
    let joined = mm
        .join_invite(&join_code("bob", &invite.code))
        .await
        .expect("the retry works");
    assert!(playing(&joined).is_some());
    assert_eq!(host.made().len(), 1);
}

// ---- Rematch ----

/// A finished match's record, its last action at `ended_ms`.
fn finished(
    match_id: &str,
    mode: &str,
    players: &[&str],
    bots: &[&str],
    ended_ms: u64,
) -> MatchRecord {
    MatchRecord {
        match_id: match_id.into(),
        mode: mode.into(),
        mode_version: "00".repeat(32).parse().expect("hash"),
        players: players.iter().map(|p| (*p).to_owned()).collect(),
        options: String::new(),
        created_ms: ended_ms.saturating_sub(60_000),
        ranked: false,
        bots: bots.iter().map(|p| (*p).to_owned()).collect(),
        seed_hash: String::new(),
        seed: String::new(),
        actions: vec![RecordedAction {
            actor: players[0].into(),
            action: Action::Forfeit,
            at_ms: Some(ended_ms),
        }],
        standings: vec![],
    }
}

fn offered(status: &RematchStatus) -> bool {
    matches!(status, RematchStatus::Offered { .. })
}

#[tokio::test]
async fn a_rematch_agreed_in_the_window_starts_once_in_the_same_mode() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    // A ranked zero-hour match between alice and bob.
    let mut a = join("alice", QueueKind::Ranked, "eu");
    a.mode = "zero-hour".into();
    let mut b = join("bob", QueueKind::Ranked, "eu");
    b.mode = "zero-hour".into();
    mm.join(&a).await.expect("join");
    let first = playing(&mm.join(&b).await.expect("join"))
        .expect("matched")
        .to_owned();
    let (_, original) = host.made()[0].clone();
    let mut record = finished(
        &first,
        "zero-hour",
        &original
            .players
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        &[],
        now_ms(),
    );
    record.ranked = true;
    mm.record_finished(&record).await.expect("ended");
    assert_eq!(mm.status("alice").await.expect("status"), Status::Idle);
    inbox.0.lock().expect("lock").clear();

    let offer = mm
        .offer_rematch(&rematch("alice", &first))
        .await
        .expect("offer");
    let RematchStatus::Offered {
        match_id,
        expires_ms,
    } = &offer
    else {
        panic!("{offer:?}");
    };
    assert_eq!(match_id, &first);
    assert!(*expires_ms > now_ms(), "{offer:?}");
    let to_bob = told(&inbox, "bob");
    assert!(
        matches!(&to_bob[..], [Notice::RematchOffered { match_id, from, .. }] if *match_id == first && from == "alice"),
        "{to_bob:?}"
    );
    assert!(told(&inbox, "alice").is_empty());
    // Offering again changes nothing and tells nobody twice.
    assert!(offered(
        &mm.offer_rematch(&rematch("alice", &first))
            .await
            .expect("again")
    ));
    assert_eq!(told(&inbox, "bob").len(), 1);
    assert_eq!(host.made().len(), 1, "no match on one offer");

    // Bob accepts.
    let accepted = mm
        .offer_rematch(&rematch("bob", &first))
        .await
        .expect("accept");
    let RematchStatus::Started { match_id: second } = accepted else {
        panic!("{accepted:?}");
    };
    assert_ne!(second, first);
    let made = host.made();
    assert_eq!(made.len(), 2);
    let (id, new) = &made[1];
    assert_eq!(id, &second);
    assert_eq!(new.mode, "zero-hour", "the same mode");
    assert_eq!(new.players, original.players, "the same seats");
    assert!(!new.ranked && new.bots.is_empty(), "{new:?}");
    for p in ["alice", "bob"] {
        assert_eq!(
            playing(&mm.status(p).await.expect("status")),
            Some(second.as_str())
        );
        let f = found(&inbox, p);
        assert_eq!(f.len(), 1, "{p}: {f:?}");
        assert_eq!(f[0].match_id, second);
        assert_eq!(f[0].origin, Origin::Rematch);
        assert_eq!(f[0].mode, "zero-hour");
    }
    // It started once: a later offer, or the record again, makes nothing new.
    assert_eq!(
        mm.offer_rematch(&rematch("alice", &first))
            .await
            .expect("again"),
        RematchStatus::Started {
            match_id: second.clone()
        }
    );
    mm.record_finished(&record).await.expect("redelivered");
    assert_eq!(
        mm.offer_rematch(&rematch("bob", &first))
            .await
            .expect("again"),
        RematchStatus::Started {
            match_id: second.clone()
        }
    );
    assert_eq!(host.made().len(), 2);
}

#[tokio::test]
async fn a_rematch_after_the_window_is_refused() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let private = PrivatePolicy {
        rematch_window_ms: 1_000,
        ..PrivatePolicy::default()
    };
    let mm = matchmaker_with(&redis, private, &host, &inbox).await;
    mm.record_finished(&finished(
        "m-late",
        "classic",
        &["alice", "bob"],
        &[],
        now_ms(),
    ))
    .await
    .expect("ended");
    assert!(offered(
        &mm.offer_rematch(&rematch("alice", "m-late"))
            .await
            .expect("in the window")
    ));
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let err = mm
        .offer_rematch(&rematch("bob", "m-late"))
        .await
        .expect_err("too late");
    assert!(
        matches!(&err, MatchmakingError::RematchExpired(m) if m == "m-late"),
        "{err}"
    );
    assert_eq!(err.code(), "rematch_expired");

    // A record that arrives after its window (it ended long ago) opens none.
    let long_ago = now_ms() - 10 * 60_000;
    mm.record_finished(&finished(
        "m-old",
        "classic",
        &["alice", "bob"],
        &[],
        long_ago,
    ))
    .await
    .expect("ended");
    let err = mm
        .offer_rematch(&rematch("alice", "m-old"))
        .await
        .expect_err("closed");
    assert_eq!(err.code(), "rematch_expired");
    let err = mm
        .offer_rematch(&rematch("alice", "never-played"))
        .await
        .expect_err("unknown");
    assert_eq!(err.code(), "rematch_expired");
    assert!(host.made().is_empty());
    for p in ["alice", "bob"] {
        assert_eq!(mm.status(p).await.expect("status"), Status::Idle);
        assert!(found(&inbox, p).is_empty());
    }
}

#[tokio::test]
async fn a_rematch_by_a_stranger_or_a_busy_player_is_refused() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    mm.record_finished(&finished(
        "m-x",
        "classic",
        &["alice", "bob"],
        &[],
        now_ms(),
    ))
    .await
    .expect("ended");
    let err = mm
        .offer_rematch(&rematch("carol", "m-x"))
        .await
        .expect_err("not a player");
    assert!(matches!(err, MatchmakingError::NotInMatch { .. }), "{err}");
    assert_eq!(err.code(), "not_in_match");
    assert!(inbox.0.lock().expect("lock").is_empty(), "nobody told");
    for bad in ["", "m x", "m}x"] {
        let err = mm
            .offer_rematch(&rematch("alice", bad))
            .await
            .expect_err("bad id");
        assert_eq!(err.code(), "bad_request", "{bad:?}");
    }

    // Bob queues again; alice offers; bob cannot accept while queued.
    mm.join(&join("bob", QueueKind::Quick, "eu"))
        .await
        .expect("join");
    assert!(offered(
        &mm.offer_rematch(&rematch("alice", "m-x"))
            .await
            .expect("offer")
    ));
    let err = mm
        .offer_rematch(&rematch("bob", "m-x"))
        .await
        .expect_err("queued");
    assert_eq!(err.code(), "already_queued", "{err}");
    assert!(
        queued(&mm.status("bob").await.expect("status")),
        "still queued"
    );
    assert!(host.made().is_empty());

    // Bob leaves the queue; now alice is busy (hosting): bob's accept is
    // refused, and alice's code is untouched.
    assert_eq!(mm.leave("bob").await.expect("leave"), Status::Idle);
    let invite = mm
        .create_invite(&create("alice", "classic"))
        .await
        .expect("code");
    let err = mm
        .offer_rematch(&rematch("bob", "m-x"))
        .await
        .expect_err("alice is busy");
    assert!(
        matches!(&err, MatchmakingError::OpponentBusy(p) if p == "alice"),
        "{err}"
    );
    assert_eq!(err.code(), "opponent_busy");
    assert_eq!(mm.status("bob").await.expect("status"), Status::Idle);
    assert_eq!(
        code_of(&mm.status("alice").await.expect("status")),
        Some(invite.code.as_str())
    );
    assert!(host.made().is_empty());

    // Once both are free, the accept works: alice's offer stood throughout.
    assert_eq!(mm.leave("alice").await.expect("leave"), Status::Idle);
    let started = mm
        .offer_rematch(&rematch("bob", "m-x"))
        .await
        .expect("accept");
    assert!(
        matches!(started, RematchStatus::Started { .. }),
        "{started:?}"
    );
    assert_eq!(host.made().len(), 1);
}

#[tokio::test]
async fn a_rematch_of_a_bot_match_starts_on_the_humans_offer_with_a_new_bot() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    mm.record_finished(&finished(
        "m-bot",
        "classic",
        &["solo", "bot:old"],
        &["bot:old"],
        now_ms(),
    ))
    .await
    .expect("ended");
    let started = mm
        .offer_rematch(&rematch("solo", "m-bot"))
        .await
        .expect("offer");
    let RematchStatus::Started { match_id } = started else {
        panic!("bots always agree: {started:?}");
    };
    let made = host.made();
    assert_eq!(made.len(), 1);
    let (id, new) = &made[0];
    assert_eq!(id, &match_id);
    assert_eq!(new.players.len(), 2);
    assert_eq!(new.players[0], "solo", "the same seats");
    assert!(new.players[1].starts_with("bot:") && new.players[1] != "bot:old");
    assert_eq!(new.bots, [new.players[1].clone()]);
    assert!(!new.ranked);
    let f = found(&inbox, "solo");
    assert!(
        f.len() == 1 && f[0].bot && f[0].origin == Origin::Rematch,
        "{f:?}"
    );
    let err = mm
        .offer_rematch(&rematch("bot:old", "m-bot"))
        .await
        .expect_err("nobody speaks for a bot");
    assert_eq!(err.code(), "bad_request");
}

#[tokio::test]
async fn a_failed_rematch_creation_withdraws_only_the_accept() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    mm.record_finished(&finished(
        "m-f",
        "classic",
        &["alice", "bob"],
        &[],
        now_ms(),
    ))
    .await
    .expect("ended");
    assert!(offered(
        &mm.offer_rematch(&rematch("alice", "m-f"))
            .await
            .expect("offer")
    ));
    host.fail_next.store(1, Ordering::SeqCst);
    let err = mm
        .offer_rematch(&rematch("bob", "m-f"))
        .await
        .expect_err("the host is down");
    assert_eq!(err.code(), "unavailable", "{err}");
    for p in ["alice", "bob"] {
        assert_eq!(mm.status(p).await.expect("status"), Status::Idle, "{p}");
        assert!(found(&inbox, p).is_empty());
    }
    let started = mm
        .offer_rematch(&rematch("bob", "m-f"))
        .await
        .expect("retry");
    assert!(
        matches!(started, RematchStatus::Started { .. }),
        "{started:?}"
    );
    assert_eq!(host.made().len(), 1);
}

#[tokio::test]
async fn a_rematch_offered_before_the_record_arrives_opens_from_the_host() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    mm.join(&join("alice", QueueKind::Quick, "eu"))
        .await
        .expect("join");
    let first = playing(
        &mm.join(&join("bob", QueueKind::Quick, "eu"))
            .await
            .expect("join"),
    )
    .expect("matched")
    .to_owned();
    let players: Vec<String> = host.made()[0].1.players.clone();
    let names: Vec<&str> = players.iter().map(String::as_str).collect();
    // The match is over on the host; the record stream has not said so yet.
    host.over.lock().expect("lock").push(first.clone());
    host.records
        .lock()
        .expect("lock")
        .push(finished(&first, "classic", &names, &[], now_ms()));
    assert_eq!(
        playing(&mm.status("alice").await.expect("status")),
        Some(first.as_str())
    );
    assert!(offered(
        &mm.offer_rematch(&rematch("alice", &first))
            .await
            .expect("offer")
    ));
    let started = mm
        .offer_rematch(&rematch("bob", &first))
        .await
        .expect("accept");
    let RematchStatus::Started { match_id: second } = started else {
        panic!("{started:?}");
    };
    // The record arrives late: it neither frees them from the rematch nor
    // opens a second one.
    mm.record_finished(&finished(&first, "classic", &names, &[], now_ms()))
        .await
        .expect("late record");
    for p in ["alice", "bob"] {
        assert_eq!(
            playing(&mm.status(p).await.expect("status")),
            Some(second.as_str())
        );
    }
    assert_eq!(host.made().len(), 2);
    // A match the host finished long ago stays closed.
    host.records.lock().expect("lock").push(finished(
        "m-old",
        "classic",
        &["alice", "bob"],
        &[],
        now_ms() - 10 * 60_000,
    ));
    let err = mm
        .offer_rematch(&rematch("alice", "m-old"))
        .await
        .expect_err("closed");
    assert_eq!(err.code(), "rematch_expired");
}
