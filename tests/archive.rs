//! The archiver on real servers: nats-server, redis-server and Google's
//! Firestore emulator (one per test process, a project per test). Finished
//! matches of every mode end up in Firestore with the right stats and
//! history; a ranked match moves both ratings once and the leaderboard;
//! redelivered records, a crash between the write and the ack, and racing
//! archivers count nothing twice; ratings and leaderboards survive a Redis
//! flush; an archived match verifies from Firestore alone; a Firestore
//! outage mid-run loses and duplicates nothing.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashdice_archive::ledger::Seasons;
use dashdice_archive::{Archive, Archived, FirestoreConfig};
use dashdice_archiver::{Archiver, Options};
use dashdice_match_host::MatchHost;
use dashdice_match_host::service as match_service;
use dashdice_matchmaker::{Ratings, RatingsStore};
use dashdice_mode_sdk::{Action, MatchResult, Standing};
use dashdice_proto::archive::{HistoryRequest, LeaderboardRequest, Profile};
use dashdice_proto::bus::RecordStream;
use dashdice_proto::client::{ArchiveClient, MatchHostClient, Requester};
use dashdice_proto::matches::{ActRequest, CreateMatch, PlayerAction, Snapshot};
use dashdice_proto::record::{MatchRecord, RecordedAction};
use dashdice_proto::{ErrorCode, ModeHash};
use dashdice_store::MatchStore;
use dashdice_store::leaderboards::Leaderboards;
use dashdice_store::queues::QueueStore;
use dashdice_tests::servers::{FirestoreEmulator, NatsServer, RedisServer};

const MODES: [&str; 4] = ["classic", "zero-hour", "last-line", "true-grit"];

/// Servers, a match host, and a Firestore project of the test's own.
struct Stack {
    nats: NatsServer,
    redis: RedisServer,
    firestore: FirestoreConfig,
    client: async_nats::Client,
    /// Firestore, read directly.
    archive: Archive,
    host: MatchHostClient,
    archives: ArchiveClient,
}

/// Quick retries and rebuild checks, for tests.
fn options() -> Options {
    Options {
        concurrency: 8,
        rebuild_check: Duration::from_millis(200),
        retry_min: Duration::from_millis(100),
        retry_max: Duration::from_secs(1),
    }
}

async fn stack_on(emulator: &FirestoreEmulator) -> Stack {
    dashdice_service::install_crypto();
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let firestore = FirestoreConfig {
        project: FirestoreEmulator::project(),
        emulator: Some(emulator.host()),
        timeout: Duration::from_secs(5),
    };
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    let host = MatchHost::new(dashdice_tests::registry(), store);
    tokio::spawn(match_service::run(client.clone(), host));
    let archive = Archive::connect(&firestore, Seasons::ALL_TIME)
        .await
        .expect("firestore");
    let bus = Requester::new(client.clone(), Duration::from_secs(5));
    Stack {
        nats,
        redis,
        firestore,
        archive,
        host: MatchHostClient::new(bus.clone()),
        archives: ArchiveClient::new(bus),
        client,
    }
}

async fn stack() -> Stack {
    stack_on(FirestoreEmulator::shared()).await
}

impl Stack {
    /// Starts an archiver in this process, on its own connections.
    async fn archiver(&self) {
        let client = async_nats::connect(self.nats.url()).await.expect("nats");
        let archiver = Archiver {
            archive: Archive::connect(&self.firestore, Seasons::ALL_TIME)
                .await
                .expect("firestore"),
            boards: Leaderboards::connect(&self.redis.url())
                .await
                .expect("redis"),
            clock: dashdice_proto::clock::system(),
        };
        tokio::spawn(dashdice_archiver::run(client, archiver, options()));
    }

    /// Plays a match of `mode` between `players` to its end (banking from
    /// 15, except in True Grit); its final snapshot.
    async fn play(&self, mode: &str, players: [&str; 2], ranked: bool) -> Snapshot {
        let match_id = dashdice_proto::ids::new_match_id().expect("id");
        self.host
            .start(&CreateMatch {
                mode: mode.into(),
                players: players.map(str::to_owned).to_vec(),
                options: None,
                match_id: Some(match_id.clone()),
                ranked,
                bots: vec![],
            })
            .await
            .expect("create");
        let mut snapshot = self.host.get(&match_id).await.expect("get");
        for n in 0.. {
            if snapshot.finished {
                return snapshot;
            }
            assert!(n < 2_000, "{mode} did not end");
            let player = snapshot.turn.clone().expect("a turn");
            let bank = mode != "true-grit" && snapshot.view["turn_score"].as_i64() >= Some(15);
            let reply = self
                .host
                .act(&ActRequest {
                    match_id: match_id.clone(),
                    player,
                    request_id: format!("r{n}"),
                    action: if bank {
                        PlayerAction::Bank
                    } else {
                        PlayerAction::Roll
                    },
                })
                .await
                .expect("act");
            snapshot = reply.snapshot;
        }
        unreachable!()
    }

    /// A ranked match `winner` wins by `loser` forfeiting at once.
    async fn forfeit(&self, winner: &str, loser: &str) -> String {
        let match_id = dashdice_proto::ids::new_match_id().expect("id");
        self.host
            .start(&CreateMatch {
                mode: "classic".into(),
                players: vec![winner.into(), loser.into()],
                options: None,
                match_id: Some(match_id.clone()),
                ranked: true,
                bots: vec![],
            })
            .await
            .expect("create");
        self.host
            .act(&ActRequest {
                match_id: match_id.clone(),
                player: loser.into(),
                request_id: "bye".into(),
                action: PlayerAction::Forfeit,
            })
            .await
            .expect("forfeit");
        match_id
    }

    /// Until `match_id` is archived.
    async fn archived(&self, match_id: &str) -> dashdice_proto::archive::ArchivedMatch {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(m) = self.archive.archived_match(match_id).await.expect("read") {
                return m;
            }
            assert!(Instant::now() < deadline, "{match_id} was never archived");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn profile(&self, uid: &str) -> Profile {
        self.archive
            .profile(uid)
            .await
            .expect("read")
            .unwrap_or_else(|| panic!("{uid} has no profile"))
    }

    /// Records the archivers have yet to acknowledge.
    async fn pending(&self) -> u64 {
        // Until an archiver has made its consumer, everything is pending.
        dashdice_archiver::records::pending(&self.client)
            .await
            .unwrap_or(u64::MAX)
    }

    /// Until the archivers have acknowledged every record.
    async fn drained(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.pending().await > 0 {
            assert!(Instant::now() < deadline, "records still pending");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A finished two-player match record: `a` beats `b`.
fn record(id: &str, a: &str, b: &str, ranked: bool, at_ms: u64) -> MatchRecord {
    let standing = |player: &str, score, rank, result| Standing {
        player: player.into(),
        score,
        rank,
        result,
    };
    MatchRecord {
        match_id: id.into(),
        mode: "classic".into(),
        mode_version: ModeHash::of(b"classic"),
        players: vec![a.into(), b.into()],
        options: String::new(),
        created_ms: at_ms - 30_000,
        ranked,
        bots: vec![],
        seed_hash: "h".into(),
        seed: "s".into(),
        actions: vec![RecordedAction {
            actor: b.into(),
            action: Action::Forfeit,
            at_ms: Some(at_ms),
        }],
        standings: vec![
            standing(a, 30, 1, MatchResult::Win),
            standing(b, 0, 2, MatchResult::Loss),
        ],
        void: None,
    }
}

/// Each player's matches and wins, and rated games, as `records` make them.
fn expected(records: &[MatchRecord]) -> BTreeMap<String, (u64, u64, u64)> {
    let mut counts = BTreeMap::new();
    for r in records {
        for s in &r.standings {
            let c = counts.entry(s.player.clone()).or_insert((0, 0, 0));
            c.0 += 1;
            c.1 += u64::from(s.result == MatchResult::Win);
            c.2 += u64::from(r.ranked);
        }
    }
    counts
}

async fn assert_counted_once(stack: &Stack, records: &[MatchRecord]) {
    for r in records {
        let archived = stack
            .archive
            .archived_match(&r.match_id)
            .await
            .expect("read");
        assert!(archived.is_some(), "{} was lost", r.match_id);
    }
    for (player, (matches, wins, rated)) in expected(records) {
        let stats = stack.profile(&player).await.stats;
        assert_eq!(stats.overall.matches, matches, "{player}'s matches");
        assert_eq!(stats.overall.wins, wins, "{player}'s wins");
        let games = stats.modes["classic"]
            .rating
            .as_ref()
            .map_or(0, |r| r.games);
        assert_eq!(games, rated, "{player}'s rated games");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_ends_up_in_firestore_with_stats_history_and_a_verifiable_record() {
    let stack = stack().await;
    stack.archiver().await;
    let mut played = Vec::new();
    for mode in MODES {
        played.push(stack.play(mode, ["ann", "ben"], false).await);
    }
    let mut wins: BTreeMap<&str, u64> = BTreeMap::new();
    for snapshot in &played {
        let archived = stack.archived(&snapshot.match_id).await;
        let standings = snapshot.standings.clone().expect("standings");
        assert_eq!(archived.mode, snapshot.mode);
        assert_eq!(archived.standings, standings);
        assert_eq!(archived.reason, "finished");
        assert!(!archived.ranked && archived.rating_changes.is_empty());
        assert_eq!(Some(archived.record.clone()), snapshot.record());
        // The archive alone is enough to check every roll.
        let mode = dashdice_tests::builtin(&archived.mode);
        let verified =
            dashdice_runtime::fair_dice::verify(&mode, &archived.record).expect("verifies");
        assert_eq!(verified.actions, archived.record.actions.len());
        for s in standings.iter().filter(|s| s.result == MatchResult::Win) {
            *wins
                .entry(if s.player == "ann" { "ann" } else { "ben" })
                .or_default() += 1;
        }
    }
    for uid in ["ann", "ben"] {
        let stats = stack.profile(uid).await.stats;
        assert_eq!(stats.overall.matches, 4, "{uid}");
        assert_eq!(stats.modes.len(), 4, "{uid}: one match in each mode");
        let decided = stats.overall.wins + stats.overall.losses + stats.overall.draws;
        assert_eq!(decided, 4);
        assert_eq!(stats.overall.wins, wins.get(uid).copied().unwrap_or(0));
        assert!(stats.overall.average_match_ms > 0);
        assert_eq!(stats.preferred_modes.len(), 3);
    }
    // History over NATS: newest first, three then one.
    let page = stack
        .archives
        .history(&HistoryRequest {
            uid: "ann".into(),
            limit: Some(3),
            cursor: None,
        })
        .await
        .expect("history");
    assert_eq!(page.entries.len(), 3);
    let cursor = page.next_cursor.clone().expect("a second page");
    let rest = stack
        .archives
        .history(&HistoryRequest {
            uid: "ann".into(),
            limit: Some(3),
            cursor: Some(cursor),
        })
        .await
        .expect("history");
    assert_eq!(rest.entries.len(), 1);
    assert_eq!(rest.next_cursor, None);
    let order: Vec<&str> = page
        .entries
        .iter()
        .chain(&rest.entries)
        .map(|e| e.match_id.as_str())
        .collect();
    let newest_first: Vec<&str> = played.iter().rev().map(|s| s.match_id.as_str()).collect();
    assert_eq!(order, newest_first);
    assert!(page.entries.iter().all(|e| e.opponents == ["ben"]));
    // And so is `dashdice match verify --archived`, reading Firestore only.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_dashdice-under-test"))
        .args(["match", "verify", "--archived", &played[1].match_id])
        .args(["--firestore-project", &stack.firestore.project])
        .args([
            "--firestore-emulator",
            stack.firestore.emulator.as_deref().expect("emulator"),
        ])
        .output()
        .expect("run dashdice");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && said.starts_with("verified: match"),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The match, from the archive over NATS.
    let archived = stack
        .archives
        .archived_match(&played[0].match_id)
        .await
        .expect("archived");
    assert_eq!(archived.match_id, played[0].match_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ranked_match_moves_both_ratings_once_and_the_leaderboard() {
    let stack = stack().await;
    stack.archiver().await;
    let match_id = stack.forfeit("ann", "ben").await;
    let archived = stack.archived(&match_id).await;
    assert_eq!(archived.reason, "forfeit");
    assert_eq!(archived.rating_changes.len(), 2);
    let ann = stack.profile("ann").await.stats.modes["classic"].clone();
    let ben = stack.profile("ben").await.stats.modes["classic"].clone();
    let (ra, rb) = (ann.rating.expect("rated"), ben.rating.expect("rated"));
    assert!(ra.rating > 1500.0 && rb.rating < 1500.0, "{ra:?} {rb:?}");
    assert_eq!((ra.games, rb.games), (1, 1));
    // The matchmaker's copy in Redis follows.
    let ratings = Ratings::new(
        QueueStore::connect(&stack.redis.url())
            .await
            .expect("redis"),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while ratings.get("ann", "classic").await.expect("rating").rating != ra.rating {
        assert!(Instant::now() < deadline, "the rating never reached Redis");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stack.drained(Duration::from_secs(10)).await;
    // The same record again (a redelivery) changes nothing.
    let record = archived.record.clone();
    let again = stack.archive.archive(&record, 0).await.expect("archive");
    assert!(matches!(again, Archived::Before(_)));
    assert_eq!(
        stack.profile("ann").await.stats.modes["classic"].rating,
        Some(ra.clone())
    );
    // The leaderboard: top, and around a player.
    let board = stack
        .archives
        .leaderboard(&LeaderboardRequest {
            mode: "classic".into(),
            limit: Some(10),
            around: None,
        })
        .await
        .expect("board");
    assert_eq!(board.season, "all-time");
    assert_eq!(board.total, 2);
    let ranks: Vec<(u64, &str)> = board
        .entries
        .iter()
        .map(|e| (e.rank, e.uid.as_str()))
        .collect();
    assert_eq!(ranks, [(1, "ann"), (2, "ben")]);
    assert_eq!(board.entries[0].rating, ra.rating);
    let around = stack
        .archives
        .leaderboard(&LeaderboardRequest {
            mode: "classic".into(),
            limit: Some(1),
            around: Some("ben".into()),
        })
        .await
        .expect("board");
    assert_eq!(around.me.as_ref().map(|e| e.rank), Some(2));
    assert_eq!(around.entries.len(), 1);
    // A quick match and a void one move no rating.
    let quick = stack.play("classic", ["ann", "ben"], false).await;
    stack.archived(&quick.match_id).await;
    let mut void = record.clone();
    void.match_id = "void-1".into();
    void.void = Some("version withdrawn for faulting".into());
    stack.archive.archive(&void, 0).await.expect("archive");
    let after = stack.profile("ann").await.stats;
    assert_eq!(after.modes["classic"].rating, Some(ra));
    assert_eq!(after.overall.matches, 3);
    assert_eq!(after.overall.voids, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeliveries_a_crash_before_the_ack_and_racing_archivers_count_each_match_once() {
    let stack = stack().await;
    let players = ["p1", "p2", "p3", "p4"];
    let records: Vec<MatchRecord> = (0..40)
        .map(|i| {
            let (a, b) = (players[i % 4], players[(i + 1 + i / 4 % 3) % 4]);
            record(
                &format!("race-{i}"),
                a,
                b,
                i % 3 != 0,
                1_800_000_000_000 + i as u64,
            )
        })
        .collect();
    // Four concurrent archivings of one record: one writes, three find it
    // written.
    let first = Arc::new(records[0].clone());
    let attempts: Vec<_> = (0..4)
        .map(|_| {
            let (archive, record) = (stack.archive.clone(), first.clone());
            // Each tries until it gets an answer, as the archiver would
            // (a racer may time out on the other's lock and come again).
            tokio::spawn(async move {
                let mut last = None;
                for n in 0..20u64 {
                    match archive.archive(&record, 1).await {
                        Ok(archived) => return archived,
                        Err(e) => last = Some(e),
                    }
                    tokio::time::sleep(Duration::from_millis(100 * n + 37 * (n % 3))).await;
                }
                panic!("no answer in 20 tries: {last:?}")
            })
        })
        .collect();
    let mut written = 0;
    for attempt in attempts {
        written += usize::from(matches!(attempt.await.expect("task"), Archived::Now(..)));
    }
    assert_eq!(written, 1, "exactly one of four racing writes archives");
    // A crash between the write and the ack: these are in Firestore, but
    // their records are still in the stream.
    for r in &records[1..5] {
        stack.archive.archive(r, 1).await.expect("archive");
    }
    let stream = RecordStream::open(&stack.client).await.expect("stream");
    for r in &records {
        stream.store(r).await.expect("stored");
    }
    // Two archivers share the stream.
    stack.archiver().await;
    stack.archiver().await;
    stack.drained(Duration::from_secs(60)).await;
    assert_counted_once(&stack, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ratings_and_leaderboards_survive_a_redis_flush() {
    let stack = stack().await;
    stack.archiver().await;
    let mut last = String::new();
    for (winner, loser) in [("ann", "ben"), ("ann", "cat"), ("cat", "ben")] {
        last = stack.forfeit(winner, loser).await;
    }
    stack.archived(&last).await;
    stack.drained(Duration::from_secs(10)).await;
    let request = LeaderboardRequest {
        mode: "classic".into(),
        limit: Some(10),
        around: None,
    };
    let before = stack.archives.leaderboard(&request).await.expect("board");
    assert_eq!(before.total, 3);
    let mut redis = redis::Client::open(stack.redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let _: () = redis::cmd("FLUSHALL")
        .query_async(&mut redis)
        .await
        .expect("flush");
    // Rebuilt from Firestore within a few checks.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = stack.archives.leaderboard(&request).await.expect("board");
        if now.entries == before.entries && now.total == before.total {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the board was not rebuilt: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ratings = Ratings::new(
        QueueStore::connect(&stack.redis.url())
            .await
            .expect("redis"),
    );
    for uid in ["ann", "ben", "cat"] {
        let recorded = stack.profile(uid).await.stats.modes["classic"]
            .rating
            .clone()
            .expect("rated");
        assert_eq!(
            ratings.get(uid, "classic").await.expect("rating").rating,
            recorded.rating,
            "{uid}'s rating is back in Redis"
        );
    }
    // A ranked match after the flush rates from the record, not from 1500.
    let ann_before = stack.profile("ann").await.stats.modes["classic"]
        .rating
        .clone()
        .expect("rated");
    let id = stack.forfeit("ann", "cat").await;
    let archived = stack.archived(&id).await;
    let change = archived
        .rating_changes
        .iter()
        .find(|c| c.player == "ann")
        .expect("ann rated");
    assert_eq!(change.before, ann_before.rating);
    assert_eq!(change.games, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_firestore_outage_mid_run_loses_and_duplicates_nothing() {
    // Its own emulator: this test stops it.
    let emulator = FirestoreEmulator::start();
    let stack = stack_on(&emulator).await;
    stack.archiver().await;
    let stream = RecordStream::open(&stack.client).await.expect("stream");
    let players = ["q1", "q2", "q3"];
    let records: Vec<MatchRecord> = (0..60)
        .map(|i| {
            let (a, b) = (players[i % 3], players[(i + 1) % 3]);
            record(
                &format!("out-{i}"),
                a,
                b,
                i % 2 == 0,
                1_800_000_000_000 + i as u64,
            )
        })
        .collect();
    for r in &records[..20] {
        stream.store(r).await.expect("stored");
    }
    stack.archived(&records[19].match_id).await;
    // Firestore stops answering; records keep coming and wait in the stream.
    emulator.pause();
    for r in &records[20..] {
        stream.store(r).await.expect("stored");
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let waiting = stack.pending().await;
    assert!(waiting >= 30, "records wait in the stream: {waiting}");
    emulator.resume();
    let resumed = Instant::now();
    stack.drained(Duration::from_secs(60)).await;
    eprintln!(
        "{} records archived {:.1} s after Firestore came back",
        records.len() - 20,
        resumed.elapsed().as_secs_f64()
    );
    assert_counted_once(&stack, &records).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_to_the_archive_get_clear_errors() {
    let stack = stack().await;
    stack.archiver().await;
    let code = |r: Result<_, dashdice_proto::client::CallError>| match r {
        Err(e) => e.code(),
        Ok(_) => ErrorCode::Unknown,
    };
    let unknown = stack.archives.profile("nobody").await;
    assert_eq!(code(unknown.map(|_| ())), ErrorCode::UnknownUser);
    let history = |cursor: &str| HistoryRequest {
        uid: "ann".into(),
        limit: None,
        cursor: Some(cursor.into()),
    };
    let bad = stack.archives.history(&history("not-a-cursor")).await;
    assert_eq!(code(bad.map(|_| ())), ErrorCode::BadCursor);
    let too_many = stack
        .archives
        .history(&HistoryRequest {
            uid: "ann".into(),
            limit: Some(1000),
            cursor: None,
        })
        .await;
    assert_eq!(code(too_many.map(|_| ())), ErrorCode::BadRequest);
    for name in ["", "   ", &"x".repeat(40)] {
        let renamed = stack
            .archives
            .rename(&dashdice_proto::archive::RenameRequest {
                uid: "ann".into(),
                display_name: name.into(),
            })
            .await;
        assert_eq!(code(renamed.map(|_| ())), ErrorCode::BadRequest, "{name:?}");
    }
    // Naming yourself before any match makes a profile with empty stats.
    let newcomer = stack
        .archives
        .rename(&dashdice_proto::archive::RenameRequest {
            uid: "newcomer".into(),
            display_name: "New".into(),
        })
        .await
        .expect("rename");
    assert_eq!(newcomer.display_name.as_deref(), Some("New"));
    assert_eq!(newcomer.stats.overall.matches, 0);
    let missing = stack.archives.archived_match("no-such-match").await;
    assert_eq!(code(missing.map(|_| ())), ErrorCode::UnknownMatch);
    // A good rename keeps the stats archived before it.
    let id = stack.forfeit("ann", "ben").await;
    stack.archived(&id).await;
    let renamed = stack
        .archives
        .rename(&dashdice_proto::archive::RenameRequest {
            uid: "ann".into(),
            display_name: "  Ann the Bold ".into(),
        })
        .await
        .expect("rename");
    assert_eq!(renamed.display_name.as_deref(), Some("Ann the Bold"));
    assert_eq!(renamed.stats.overall.matches, 1);
    let board = stack
        .archives
        .leaderboard(&LeaderboardRequest {
            mode: "classic".into(),
            limit: None,
            around: None,
        })
        .await
        .expect("board");
    assert_eq!(
        board.entries[0].display_name.as_deref(),
        Some("Ann the Bold")
    );
}
