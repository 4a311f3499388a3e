//! The Redis match store against a real redis-server: atomic creation,
//! compare-and-set commits, idempotency by request fingerprint, the append-only
//! log, timers and expiry.

use std::sync::Arc;

use dashdice_store::{Commit, Committed, Fingerprint, MatchKeys, MatchStore, NewMatch, StoreError};
use dashdice_tests::servers::RedisServer;
use redis::AsyncCommands;

/// Every byte value, to prove binary fields survive.
fn binary() -> Vec<u8> {
    (0..=255u8).collect()
}

async fn create(store: &MatchStore, id: &str, deadline_ms: u64) {
    store
        .create(&NewMatch {
            id,
            meta: b"meta",
            progress: b"p0",
            state: &binary(),
            deadline_ms,
        })
        .await
        .expect("create");
}

fn fp(tag: &str) -> Fingerprint {
    let mut fp = [b'.'; 8];
    for (slot, byte) in fp.iter_mut().zip(tag.bytes()) {
        *slot = byte;
    }
    fp
}

/// The commit of one more action, logged as `entry`, on top of `version`.
fn next<'a>(id: &'a str, version: u64, request: &str, entry: &'a [u8]) -> Commit<'a> {
    Commit {
        id,
        expected_version: version,
        request: fp(request),
        progress: entry,
        state: b"state",
        log_entry: entry,
        deadline_ms: 1_000 + version,
        expire_after_secs: None,
        now_ms: 10_000 + version,
    }
}

async fn store(redis: &RedisServer) -> MatchStore {
    MatchStore::connect(&redis.url()).await.expect("connect")
}

async fn version(store: &MatchStore, id: &str) -> u64 {
    store
        .load(id, None)
        .await
        .expect("load")
        .expect("exists")
        .stored
        .version
}

async fn log(store: &MatchStore, id: &str) -> Vec<u8> {
    store.history(id).await.expect("history").expect("exists").1
}

#[tokio::test]
async fn create_then_load_round_trips_every_field() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    create(&store, "m-1", 1_000).await;
    let loaded = store.load("m-1", Some(fp("r1"))).await.expect("load");
    let loaded = loaded.expect("exists");
    assert_eq!(loaded.applied_before, None);
    assert_eq!(loaded.stored.id, "m-1");
    assert_eq!(loaded.stored.version, 1);
    assert_eq!(loaded.stored.meta, b"meta");
    assert_eq!(loaded.stored.progress, b"p0");
    assert_eq!(loaded.stored.state, binary());
    let (stored, log) = store
        .history("m-1")
        .await
        .expect("history")
        .expect("exists");
    assert_eq!(stored, loaded.stored);
    assert!(log.is_empty());

    let again = NewMatch {
        id: "m-1",
        meta: b"other",
        progress: b"",
        state: b"",
        deadline_ms: 0,
    };
    assert!(matches!(
        store.create(&again).await,
        Err(StoreError::Exists(id)) if id == "m-1"
    ));
    assert_eq!(
        store
            .load("m-1", None)
            .await
            .expect("load")
            .expect("exists")
            .stored,
        loaded.stored,
        "a refused create changes nothing"
    );
    assert!(store.load("nope", None).await.expect("load").is_none());
    assert!(store.history("nope").await.expect("history").is_none());
}

#[tokio::test]
async fn commits_are_compare_and_set_and_the_log_only_grows() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    create(&store, "m-2", 1_000).await;
    assert_eq!(
        store
            .commit(&next("m-2", 1, "r1", b"[one]"))
            .await
            .expect("commit"),
        Committed::Ok { version: 2 }
    );
    // A writer still holding version 1 loses, and changes nothing.
    assert_eq!(
        store
            .commit(&next("m-2", 1, "r2", b"[stale]"))
            .await
            .expect("commit"),
        Committed::Conflict { version: 2 }
    );
    let loaded = store
        .load("m-2", None)
        .await
        .expect("load")
        .expect("exists");
    assert_eq!(loaded.stored.progress, b"[one]");
    assert_eq!(loaded.stored.state, b"state");
    store
        .commit(&next("m-2", 2, "r2", b"[two]"))
        .await
        .expect("commit");
    assert_eq!(log(&store, "m-2").await, b"[one][two]");
    assert_eq!(version(&store, "m-2").await, 3);
}

#[tokio::test]
async fn a_repeated_request_names_its_first_action_and_changes_nothing() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    create(&store, "m-3", 1_000).await;
    for (v, request) in [(1, "a"), (2, "b"), (3, "c")] {
        store
            .commit(&next("m-3", v, request, request.as_bytes()))
            .await
            .expect("commit");
    }
    // The same request again, even built on the newest version.
    assert_eq!(
        store
            .commit(&next("m-3", 4, "b", b"again"))
            .await
            .expect("commit"),
        Committed::Duplicate { index: 1 }
    );
    let loaded = store.load("m-3", Some(fp("b"))).await.expect("load");
    assert_eq!(loaded.expect("exists").applied_before, Some(1));
    let loaded = store.load("m-3", Some(fp("d"))).await.expect("load");
    assert_eq!(loaded.expect("exists").applied_before, None);
    assert_eq!(log(&store, "m-3").await, b"abc");
    assert_eq!(version(&store, "m-3").await, 4);
}

#[tokio::test]
async fn a_fingerprint_straddling_two_others_is_not_a_repeat() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    create(&store, "m-8", 1_000).await;
    let first: Fingerprint = *b"AAAABBBB";
    let second: Fingerprint = *b"CCCCDDDD";
    let straddling: Fingerprint = *b"BBBBCCCC";
    for (v, request) in [(1, first), (2, second)] {
        let mut commit = next("m-8", v, "", b"x");
        commit.request = request;
        store.commit(&commit).await.expect("commit");
    }
    let mut commit = next("m-8", 3, "", b"y");
    commit.request = straddling;
    assert_eq!(
        store.commit(&commit).await.expect("commit"),
        Committed::Ok { version: 4 }
    );
}

#[tokio::test]
async fn concurrent_writers_lose_no_update() {
    // The stack note's failure case for WATCH/MULTI: 8 writers on one
    // multiplexed connection. With the Lua CAS every commit lands exactly once.
    let redis = RedisServer::start();
    let store = Arc::new(store(&redis).await);
    create(&store, "m-4", 1_000).await;
    let writers = 8;
    let per_writer = 50;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for i in 0..per_writer {
                    // Fixed-width entries, so the log splits back into them.
                    let entry = format!("w{w}-{i:03}|");
                    loop {
                        let v = version(&store, "m-4").await;
                        match store
                            .commit(&next("m-4", v, &entry, entry.as_bytes()))
                            .await
                            .expect("commit")
                        {
                            Committed::Ok { .. } => break,
                            Committed::Conflict { .. } => conflicts += 1,
                            other => panic!("{other:?}"),
                        }
                    }
                }
                conflicts
            })
        })
        .collect();
    let mut conflicts = 0;
    for t in tasks {
        conflicts += t.await.expect("writer");
    }
    let total = writers * per_writer;
    assert_eq!(version(&store, "m-4").await, 1 + total as u64);
    let log = log(&store, "m-4").await;
    let mut entries: Vec<&[u8]> = log.chunks(7).collect();
    assert_eq!(entries.len(), total);
    entries.sort();
    entries.dedup();
    assert_eq!(entries.len(), total, "every writer's action exactly once");
    eprintln!("{total} commits, {conflicts} conflicts retried");
}

#[tokio::test]
async fn the_same_request_racing_on_many_connections_applies_once() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    create(&store, "m-5", 1_000).await;
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let url = redis.url();
            tokio::spawn(async move {
                let store = MatchStore::connect(&url).await.expect("connect");
                loop {
                    let v = version(&store, "m-5").await;
                    match store
                        .commit(&next("m-5", v, "same", b"once"))
                        .await
                        .expect("commit")
                    {
                        Committed::Conflict { .. } => continue,
                        done => return done,
                    }
                }
            })
        })
        .collect();
    let mut applied = 0;
    for t in tasks {
        match t.await.expect("task") {
            Committed::Ok { .. } => applied += 1,
            Committed::Duplicate { index } => assert_eq!(index, 0),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(log(&store, "m-5").await, b"once");
}

#[tokio::test]
async fn timers_follow_the_match_and_finished_matches_expire() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    create(&store, "m-6", 5_000).await;
    create(&store, "m-7", 1_000).await;
    let due = store.due_timers(4_999, 100).await.expect("due");
    assert_eq!(due, [("m-7".to_owned(), 1_000)]);
    let mut due = store.due_timers(5_000, 100).await.expect("due");
    due.sort();
    assert_eq!(due, [("m-6".to_owned(), 5_000), ("m-7".to_owned(), 1_000)]);

    // Moving on re-arms the timer; finishing removes it and sets the expiry.
    let mut moved = next("m-6", 1, "r1", b"e");
    moved.deadline_ms = 9_000;
    store.commit(&moved).await.expect("commit");
    let due = store.due_timers(8_999, 100).await.expect("due");
    assert!(due.iter().all(|(id, _)| id != "m-6"), "{due:?}");
    assert!(
        store
            .due_timers(9_000, 100)
            .await
            .expect("due")
            .contains(&("m-6".to_owned(), 9_000))
    );
    let mut last = next("m-6", 2, "r2", b"game over");
    last.deadline_ms = 0;
    last.expire_after_secs = Some(60);
    store.commit(&last).await.expect("commit");
    assert!(
        store
            .due_timers(u64::MAX / 2, 100)
            .await
            .expect("due")
            .iter()
            .all(|(id, _)| id != "m-6")
    );
    let mut raw = redis::Client::open(redis.url())
        .expect("client")
        .get_multiplexed_async_connection()
        .await
        .expect("raw connection");
    let ttl: i64 = raw
        .ttl(MatchKeys::new("m-6").match_hash())
        .await
        .expect("ttl");
    assert!((1..=60).contains(&ttl), "ttl {ttl}");
    // A finished match awaits its record until told it is stored.
    assert!(
        store
            .unrecorded(10_001, 10)
            .await
            .expect("unrecorded")
            .is_empty()
    );
    assert_eq!(
        store.unrecorded(10_002, 10).await.expect("unrecorded"),
        ["m-6"]
    );
    store.recorded("m-6").await.expect("recorded");
    assert!(
        store
            .unrecorded(u64::MAX / 2, 10)
            .await
            .expect("unrecorded")
            .is_empty()
    );
    assert_eq!(store.live_matches().await.expect("live"), 1, "m-7 only");
    let live: i64 = raw
        .ttl(MatchKeys::new("m-7").match_hash())
        .await
        .expect("ttl");
    assert_eq!(live, -1, "a live match does not expire");
}

#[tokio::test]
async fn a_missing_match_is_reported_not_created() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    assert_eq!(
        store
            .commit(&next("ghost", 1, "r", b"e"))
            .await
            .expect("commit"),
        Committed::Missing
    );
    assert!(store.load("ghost", None).await.expect("load").is_none());
    assert!(
        store
            .due_timers(u64::MAX / 2, 100)
            .await
            .expect("due")
            .is_empty(),
        "no timer either"
    );
}

#[tokio::test]
async fn a_match_and_its_timer_share_one_cluster_slot() {
    for id in ["a", "m-123", "0f3c9a7e-1d2b-4c5d-9e8f-7a6b5c4d3e2f"] {
        let keys = MatchKeys::new(id);
        let tag = format!("{{{:02}}}", keys.shard);
        for key in [keys.match_hash(), keys.timers()] {
            assert_eq!(key.matches('{').count(), 1, "{key}");
            assert!(key.contains(&tag), "{key} lacks {tag}");
        }
    }
    let shards: std::collections::BTreeSet<u8> = (0..1000)
        .map(|i| MatchKeys::new(&format!("m-{i}")).shard)
        .collect();
    assert_eq!(shards.len(), 64, "ids spread over every shard");
}

#[tokio::test]
async fn memory_per_match_is_measured_and_grows_with_the_log() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    create(&store, "m-mem", 1_000).await;
    let fresh = store.memory_usage("m-mem").await.expect("memory");
    assert!(fresh > 256, "{fresh}");
    let entry = [7u8; 1000];
    store
        .commit(&next("m-mem", 1, "r", &entry))
        .await
        .expect("commit");
    let grown = store.memory_usage("m-mem").await.expect("memory");
    assert!(grown > fresh, "{fresh} -> {grown}");
}
