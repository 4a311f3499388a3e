//! The Redis match store against a real redis-server: atomic creation,
//! compare-and-set commits, idempotency, gap-free events, timers and expiry.

use std::sync::Arc;

use dashdice::store::{Commit, Committed, MatchKeys, MatchStore, StoreError, StoredMatch};
use dashdice_tests::servers::RedisServer;
use redis::AsyncCommands;

fn new_match(id: &str) -> StoredMatch {
    StoredMatch {
        id: id.to_owned(),
        version: 0,
        mode: "classic".into(),
        mode_version: "ab".repeat(32),
        players: vec!["alice".into(), "bob".into()],
        // Every byte value, to prove binary state survives.
        state: (0..=255u8).collect(),
        view: r#"{"mode":"classic"}"#.into(),
        turn: Some("alice".into()),
        seq: 1,
        rolls: 0,
        seed: "5e".repeat(32),
        seed_hash: "c0".repeat(32),
        deadline_ms: 1_000,
        timeouts: vec![0, 2],
        finished: false,
        created_ms: 42,
    }
}

/// The commit of one more event on top of `m`.
fn next(m: &StoredMatch, request_id: Option<&str>, event: &str) -> Commit {
    let mut after = m.clone();
    after.seq += 1;
    after.state.push(1);
    Commit {
        expected_version: m.version,
        request_id: request_id.map(str::to_owned),
        reply: format!("reply to {event}"),
        after,
        events: vec![event.to_owned()],
        action: Some(format!("action {event}")),
        finished_ttl_secs: 60,
    }
}

async fn store(redis: &RedisServer) -> MatchStore {
    MatchStore::connect(&redis.url()).await.expect("connect")
}

#[tokio::test]
async fn create_then_load_round_trips_every_field() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    let m = new_match("m-1");
    store.create(&m, &["e1".into()]).await.expect("create");
    let loaded = store.load("m-1").await.expect("load").expect("exists");
    assert_eq!(
        loaded,
        StoredMatch {
            version: 1,
            ..m.clone()
        }
    );
    assert!(matches!(
        store.create(&m, &[]).await,
        Err(StoreError::Exists(id)) if id == "m-1"
    ));
    assert!(store.load("nope").await.expect("load").is_none());
    assert_eq!(store.events_since("m-1", 0).await.expect("events"), ["e1"]);
    assert!(
        !format!("{loaded:?}").contains(&m.seed),
        "Debug hides the seed"
    );
}

#[tokio::test]
async fn commits_are_compare_and_set_and_events_are_gap_free() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    store
        .create(&new_match("m-2"), &["e1".into()])
        .await
        .expect("create");
    let v1 = store.load("m-2").await.expect("load").expect("exists");
    assert_eq!(
        store
            .commit(&next(&v1, Some("r1"), "e2"))
            .await
            .expect("commit"),
        Committed::Ok { version: 2 }
    );
    // A writer still holding version 1 loses, and changes nothing.
    assert_eq!(
        store
            .commit(&next(&v1, Some("r2"), "stale"))
            .await
            .expect("commit"),
        Committed::Conflict { version: 2 }
    );
    let v2 = store.load("m-2").await.expect("load").expect("exists");
    assert_eq!((v2.version, v2.seq, v2.state.len()), (2, 2, 257));
    store.commit(&next(&v2, None, "e3")).await.expect("commit");
    assert_eq!(
        store.events_since("m-2", 0).await.expect("events"),
        ["e1", "e2", "e3"]
    );
    assert_eq!(store.events_since("m-2", 2).await.expect("events"), ["e3"]);
    assert!(
        store
            .events_since("m-2", 3)
            .await
            .expect("events")
            .is_empty()
    );
    assert_eq!(
        store.actions("m-2").await.expect("actions"),
        ["action e2", "action e3"]
    );
}

#[tokio::test]
async fn a_repeated_request_id_gets_the_first_reply_and_changes_nothing() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    store
        .create(&new_match("m-3"), &["e1".into()])
        .await
        .expect("create");
    let v1 = store.load("m-3").await.expect("load").expect("exists");
    let first = next(&v1, Some("req-7"), "e2");
    assert_eq!(
        store.commit(&first).await.expect("commit"),
        Committed::Ok { version: 2 }
    );
    let v2 = store.load("m-3").await.expect("load").expect("exists");
    // The same request again, even rebuilt on the newer version.
    let mut again = next(&v2, Some("req-7"), "e2-again");
    again.reply = "a different reply".into();
    assert_eq!(
        store.commit(&again).await.expect("commit"),
        Committed::Duplicate {
            reply: "reply to e2".into()
        }
    );
    assert_eq!(store.load("m-3").await.expect("load").expect("exists"), v2);
    assert_eq!(store.events_since("m-3", 0).await.expect("events").len(), 2);
}

#[tokio::test]
async fn concurrent_writers_lose_no_update() {
    // The stack note's failure case for WATCH/MULTI: 8 writers on one
    // multiplexed connection. With the Lua CAS every commit lands exactly once.
    let redis = RedisServer::start();
    let store = Arc::new(store(&redis).await);
    store
        .create(&new_match("m-4"), &["e0".into()])
        .await
        .expect("create");
    let writers = 8;
    let per_writer = 50;
    let tasks: Vec<_> = (0..writers)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                let mut conflicts = 0;
                for i in 0..per_writer {
                    loop {
                        let m = store.load("m-4").await.expect("load").expect("exists");
                        let event = format!("w{w}-{i}");
                        match store
                            .commit(&next(&m, Some(&event), &event))
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
    let m = store.load("m-4").await.expect("load").expect("exists");
    let total = writers * per_writer;
    assert_eq!(m.version, 1 + total as u64);
    assert_eq!(m.seq, 1 + total as u64);
    let events = store.events_since("m-4", 0).await.expect("events");
    assert_eq!(events.len(), 1 + total);
    let mut seen: Vec<&String> = events.iter().skip(1).collect();
    seen.sort();
    seen.dedup();
    assert_eq!(seen.len(), total, "every writer's event exactly once");
    eprintln!("{total} commits, {conflicts} conflicts retried");
}

#[tokio::test]
async fn the_same_request_racing_on_many_connections_applies_once() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    store
        .create(&new_match("m-5"), &["e0".into()])
        .await
        .expect("create");
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let url = redis.url();
            tokio::spawn(async move {
                let store = MatchStore::connect(&url).await.expect("connect");
                loop {
                    let m = store.load("m-5").await.expect("load").expect("exists");
                    match store
                        .commit(&next(&m, Some("same"), "once"))
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
            Committed::Duplicate { reply } => assert_eq!(reply, "reply to once"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(applied, 1);
    assert_eq!(
        store.events_since("m-5", 0).await.expect("events"),
        ["e0", "once"]
    );
}

#[tokio::test]
async fn timers_follow_the_match_and_finished_matches_expire() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    let mut m = new_match("m-6");
    m.deadline_ms = 5_000;
    store.create(&m, &[]).await.expect("create");
    store.create(&new_match("m-7"), &[]).await.expect("create"); // deadline 1,000
    let due = store.due_timers(4_999, 100).await.expect("due");
    assert_eq!(due, [("m-7".to_owned(), 1_000)]);
    let mut due = store.due_timers(5_000, 100).await.expect("due");
    due.sort();
    assert_eq!(due, [("m-6".to_owned(), 5_000), ("m-7".to_owned(), 1_000)]);

    // Moving on re-arms the timer; finishing removes it and sets the expiry.
    let v1 = store.load("m-6").await.expect("load").expect("exists");
    let mut moved = next(&v1, None, "e");
    moved.after.deadline_ms = 9_000;
    store.commit(&moved).await.expect("commit");
    assert!(
        store
            .due_timers(5_000, 100)
            .await
            .expect("due")
            .iter()
            .all(|(id, _)| id != "m-6")
    );
    let v2 = store.load("m-6").await.expect("load").expect("exists");
    let mut last = next(&v2, None, "game over");
    last.after.finished = true;
    last.after.turn = None;
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
    let keys = MatchKeys::new("m-6");
    for key in [keys.match_hash(), keys.events(), keys.actions()] {
        let ttl: i64 = raw.ttl(&key).await.expect("ttl");
        assert!((1..=60).contains(&ttl), "{key}: ttl {ttl}");
    }
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
    let ghost = new_match("ghost");
    assert_eq!(
        store
            .commit(&next(&ghost, Some("r"), "e"))
            .await
            .expect("commit"),
        Committed::Missing
    );
    assert!(store.load("ghost").await.expect("load").is_none());
    assert!(
        store
            .events_since("ghost", 0)
            .await
            .expect("events")
            .is_empty()
    );
}

#[tokio::test]
async fn all_keys_of_a_match_share_one_cluster_slot() {
    for id in ["a", "m-123", "0f3c9a7e-1d2b-4c5d-9e8f-7a6b5c4d3e2f"] {
        let keys = MatchKeys::new(id);
        let tag = format!("{{{:02}}}", keys.shard);
        for key in [
            keys.match_hash(),
            keys.events(),
            keys.requests(),
            keys.actions(),
            keys.timers(),
        ] {
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
async fn memory_per_match_is_measurable() {
    let redis = RedisServer::start();
    let store = store(&redis).await;
    store
        .create(&new_match("m-mem"), &["{\"seq\":1}".into()])
        .await
        .expect("create");
    let bytes = store.memory_usage("m-mem").await.expect("memory");
    assert!(bytes > 256, "{bytes}");
}
