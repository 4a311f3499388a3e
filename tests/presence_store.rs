//! The Redis presence store against a real redis-server: status from
//! several connections and their visibility, versions that move only on
//! what others see, heartbeats and the sweep, queue graces, region counts,
//! racing sweepers, and the memory an online user costs. Time is passed
//! into every call, so the tests move it instead of sleeping.

use dashdice_store::presence::{
    Activity, LiveConn, PresenceSettings, PresenceStore, Status, UserPresence,
};
use dashdice_tests::servers::RedisServer;

const T0: u64 = 1_800_000_000_000;
const TTL: u64 = 15_000;
const GRACE: u64 = 10_000;

async fn store(redis: &RedisServer) -> PresenceStore {
    PresenceStore::connect(&redis.url())
        .await
        .expect("connect")
        .with_settings(PresenceSettings {
            connection_ttl_ms: TTL,
            grace_ms: GRACE,
            ..PresenceSettings::default()
        })
}

async fn get(store: &PresenceStore, uid: &str) -> UserPresence {
    store
        .query(&[uid.to_owned()])
        .await
        .expect("query")
        .remove(0)
}

#[tokio::test]
async fn status_follows_every_tab_and_its_visibility() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    let first = s
        .add_connection("alice", "tab1", "eu", false, T0)
        .await
        .expect("redis");
    assert!(first.changed);
    assert_eq!(first.was, Status::Offline);
    assert_eq!(first.presence.status, Status::Online);
    assert_eq!(first.presence.region.as_deref(), Some("eu"));
    let v1 = first.presence.version;
    assert!(v1 > 0);

    // A second tab (in another region): nothing others see changes.
    let second = s
        .add_connection("alice", "tab2", "us", false, T0 + 1)
        .await
        .expect("redis");
    assert!(!second.changed);
    assert_eq!(second.presence.connections, 2);
    assert_eq!(second.presence.version, v1);
    assert_eq!(second.presence.region.as_deref(), Some("eu"));

    // One tab hidden: still online.
    let hid = s
        .set_away("alice", "tab1", true, T0 + 2)
        .await
        .expect("redis");
    assert!(!hid.changed);
    assert_eq!(hid.presence.status, Status::Online);
    // Both hidden: away, one version on.
    let both = s
        .set_away("alice", "tab2", true, T0 + 3)
        .await
        .expect("redis");
    assert!(both.changed);
    assert_eq!(both.presence.status, Status::Away);
    assert_eq!(both.presence.version, v1 + 1);
    // Shown again: online.
    let shown = s
        .set_away("alice", "tab2", false, T0 + 4)
        .await
        .expect("redis");
    assert!(shown.changed);
    assert_eq!(shown.presence.status, Status::Online);
    assert_eq!(shown.presence.version, v1 + 2);

    // Closing the first tab keeps her online, now in the second tab's region.
    let closed = s
        .remove_connection("alice", "tab1", T0 + 5)
        .await
        .expect("redis");
    assert!(closed.changed, "the region moved to the remaining tab's");
    assert_eq!(closed.presence.status, Status::Online);
    assert_eq!(closed.presence.region.as_deref(), Some("us"));
    assert_eq!(closed.presence.version, v1 + 3);
    // Closing it again changes nothing.
    let again = s
        .remove_connection("alice", "tab1", T0 + 6)
        .await
        .expect("redis");
    assert!(!again.changed);
    assert_eq!(again.presence.version, v1 + 3);

    // The last one: offline, last seen then.
    let gone = s
        .remove_connection("alice", "tab2", T0 + 7)
        .await
        .expect("redis");
    assert!(gone.changed);
    assert_eq!(gone.was, Status::Online);
    assert_eq!(gone.presence.status, Status::Offline);
    assert_eq!(gone.presence.connections, 0);
    assert_eq!(gone.presence.region, None);
    assert_eq!(gone.presence.last_seen_ms, T0 + 7);
    assert_eq!(gone.presence.version, v1 + 4);

    // A query answers the same, and knows nothing of strangers.
    let answered = s
        .query(&["alice".to_owned(), "nobody".to_owned()])
        .await
        .expect("redis");
    assert_eq!(answered[0], gone.presence);
    assert_eq!(
        answered[1],
        UserPresence {
            uid: "nobody".into(),
            ..UserPresence::default()
        }
    );
    // Offline users keep a small entry that expires; online ones do not.
    let mut conn = redis::Client::open(redis.url())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let key = dashdice_store::presence::PresenceKeys::new("alice").user();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("redis");
    assert!(ttl > 3600, "an offline entry lives about a day, got {ttl}");
    s.add_connection("alice", "tab3", "eu", false, T0 + 8)
        .await
        .expect("redis");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&key)
        .query_async(&mut conn)
        .await
        .expect("redis");
    assert_eq!(ttl, -1, "an online user's entry does not expire");
}

#[tokio::test]
async fn activity_and_match_are_visible_changes() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    let on = s
        .add_connection("bob", "c1", "eu", false, T0)
        .await
        .expect("redis");
    let v = on.presence.version;
    let queued = s
        .set_activity("bob", Activity::Matchmaking, None, None, T0 + 1)
        .await
        .expect("redis");
    assert!(queued.changed);
    assert_eq!(queued.presence.activity, Activity::Matchmaking);
    assert_eq!(queued.presence.version, v + 1);
    // The same again: no change.
    let same = s
        .set_activity("bob", Activity::Matchmaking, None, None, T0 + 2)
        .await
        .expect("redis");
    assert!(!same.changed);
    // A match id is kept only in a match.
    let playing = s
        .set_activity("bob", Activity::InMatch, Some("m1"), None, T0 + 3)
        .await
        .expect("redis");
    assert!(playing.changed);
    assert_eq!(playing.presence.match_id.as_deref(), Some("m1"));
    // Another match ending does not send him back to the menu; his does.
    let other = s
        .set_activity("bob", Activity::Menu, None, Some("m0"), T0 + 4)
        .await
        .expect("redis");
    assert!(!other.changed);
    assert_eq!(other.presence.activity, Activity::InMatch);
    let ended = s
        .set_activity("bob", Activity::Menu, None, Some("m1"), T0 + 5)
        .await
        .expect("redis");
    assert!(ended.changed);
    assert_eq!(ended.presence.activity, Activity::Menu);
    assert_eq!(ended.presence.match_id, None);
    assert_eq!(ended.presence.version, v + 3);
    // Setting the menu for a stranger stores nothing.
    let stranger = s
        .set_activity("ghost", Activity::Menu, None, None, T0)
        .await
        .expect("redis");
    assert!(!stranger.changed);
    assert_eq!(get(&s, "ghost").await.version, 0);
}

#[tokio::test]
async fn heartbeats_keep_connections_and_the_sweep_expires_the_rest() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    s.add_connection("carol", "k1", "eu", false, T0)
        .await
        .expect("redis");
    s.add_connection("dave", "k2", "us", false, T0)
        .await
        .expect("redis");
    s.add_connection("dave", "k3", "us", true, T0)
        .await
        .expect("redis");

    // Nothing is due before the ttl.
    let early = s.sweep(T0 + TTL - 1, 100).await.expect("redis");
    assert_eq!(early.expired, 0);
    assert!(early.changes.is_empty());

    // Carol's gateway keeps beating; dave's stops.
    let beat = s
        .heartbeat(
            &[LiveConn {
                uid: "carol",
                conn: "k1",
                region: "eu",
                away: false,
            }],
            T0 + 10_000,
        )
        .await
        .expect("redis");
    assert_eq!((beat.refreshed, beat.restored), (1, 0));
    assert!(beat.changes.is_empty());

    let swept = s.sweep(T0 + TTL, 100).await.expect("redis");
    assert_eq!(swept.expired, 2, "both of dave's connections");
    assert_eq!(swept.changes.len(), 1);
    let dave = &swept.changes[0];
    assert_eq!(dave.presence.uid, "dave");
    assert_eq!(dave.was, Status::Online);
    assert_eq!(dave.presence.status, Status::Offline);
    assert_eq!(
        dave.presence.last_seen_ms, T0,
        "last heard from, not swept at"
    );
    assert_eq!(get(&s, "carol").await.status, Status::Online);

    // Past the heartbeat's deadline carol goes too.
    let later = s.sweep(T0 + 10_000 + TTL, 100).await.expect("redis");
    assert_eq!(later.expired, 1);
    assert_eq!(later.changes[0].presence.uid, "carol");

    // A heartbeat for a connection presence lost takes it back.
    let restored = s
        .heartbeat(
            &[
                LiveConn {
                    uid: "carol",
                    conn: "k1",
                    region: "eu",
                    away: false,
                },
                LiveConn {
                    uid: "dave",
                    conn: "k2",
                    region: "us",
                    away: true,
                },
            ],
            T0 + 30_000,
        )
        .await
        .expect("redis");
    assert_eq!((restored.refreshed, restored.restored), (0, 2));
    assert_eq!(restored.changes.len(), 2);
    let dave = get(&s, "dave").await;
    assert_eq!(dave.status, Status::Away);
    assert_eq!(dave.last_seen_ms, T0 + 30_000);
}

#[tokio::test]
async fn racing_sweepers_report_each_expiry_once() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    for i in 0..200 {
        s.add_connection(&format!("u{i}"), "c", "eu", false, T0)
            .await
            .expect("redis");
    }
    let sweepers: Vec<_> = (0..4)
        .map(|_| {
            let s = s.clone();
            tokio::spawn(async move {
                let mut changes = Vec::new();
                loop {
                    let swept = s.sweep(T0 + TTL, 16).await.expect("redis");
                    changes.extend(swept.changes.into_iter().map(|c| c.presence.uid));
                    if !swept.more {
                        return changes;
                    }
                }
            })
        })
        .collect();
    let mut all = Vec::new();
    for sweeper in sweepers {
        all.extend(sweeper.await.expect("a sweeper"));
    }
    all.sort();
    let before = all.len();
    all.dedup();
    assert_eq!(before, all.len(), "an expiry reported twice");
    assert_eq!(all.len(), 200);
    assert!(s.region_counts().await.expect("redis").is_empty());
}

#[tokio::test]
async fn the_most_connections_replace_the_oldest() {
    let redis = RedisServer::start();
    let s = store(&redis).await.with_settings(PresenceSettings {
        max_connections: 3,
        ..PresenceSettings::default()
    });
    for (i, region) in ["eu", "us", "ap", "sa"].iter().enumerate() {
        s.add_connection("erin", &format!("c{i}"), region, false, T0)
            .await
            .expect("redis");
    }
    let erin = get(&s, "erin").await;
    assert_eq!(erin.connections, 3);
    assert_eq!(erin.region.as_deref(), Some("us"), "c0 was replaced");
}

#[tokio::test]
async fn a_queue_grace_runs_out_only_for_players_still_gone_and_queued() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    // Three queued players lose their connection at T0.
    for uid in ["gone", "back", "left"] {
        s.add_connection(uid, "c", "eu", false, T0 - 1)
            .await
            .expect("redis");
        s.set_activity(uid, Activity::Matchmaking, None, None, T0 - 1)
            .await
            .expect("redis");
        s.remove_connection(uid, "c", T0).await.expect("redis");
    }
    // An idle player going offline has no grace.
    s.add_connection("idle", "c", "eu", false, T0 - 1)
        .await
        .expect("redis");
    s.remove_connection("idle", "c", T0).await.expect("redis");
    // One comes back, one leaves the queue.
    s.add_connection("back", "c2", "eu", false, T0 + 5_000)
        .await
        .expect("redis");
    s.set_activity("left", Activity::Menu, None, None, T0 + 5_000)
        .await
        .expect("redis");

    assert!(
        s.due_graces(T0 + GRACE - 1, 100)
            .await
            .expect("redis")
            .is_empty(),
        "not before the grace"
    );
    assert_eq!(
        s.due_graces(T0 + GRACE, 100).await.expect("redis"),
        vec!["gone"]
    );
    assert!(
        s.due_graces(T0 + GRACE, 100)
            .await
            .expect("redis")
            .is_empty(),
        "claimed once"
    );
    // Giving up the ticket failed: put back, due again later.
    assert!(
        s.rearm_grace("gone", T0 + GRACE + 1_000)
            .await
            .expect("redis")
    );
    assert!(
        s.due_graces(T0 + GRACE, 100)
            .await
            .expect("redis")
            .is_empty()
    );
    assert_eq!(
        s.due_graces(T0 + GRACE + 1_000, 100).await.expect("redis"),
        vec!["gone"]
    );
    // The sweep arms a grace too (a gateway that died).
    s.add_connection("cut", "c", "eu", false, T0)
        .await
        .expect("redis");
    s.set_activity("cut", Activity::Matchmaking, None, None, T0)
        .await
        .expect("redis");
    s.sweep(T0 + TTL, 100).await.expect("redis");
    assert!(
        s.due_graces(T0 + TTL + GRACE - 1, 100)
            .await
            .expect("redis")
            .is_empty()
    );
    assert_eq!(
        s.due_graces(T0 + TTL + GRACE, 100).await.expect("redis"),
        vec!["cut"]
    );
}

#[tokio::test]
async fn region_counts_move_on_transitions_only() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    let counts = |pairs: &[(&str, u64)]| {
        pairs
            .iter()
            .map(|(r, n)| (r.to_string(), *n))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    for i in 0..5 {
        s.add_connection(&format!("eu{i}"), "a", "eu", false, T0)
            .await
            .expect("redis");
    }
    for i in 0..3 {
        s.add_connection(&format!("us{i}"), "a", "us", i == 0, T0)
            .await
            .expect("redis");
    }
    // More tabs, hiding and showing, heartbeats: no change in counts.
    s.add_connection("eu0", "b", "us", false, T0)
        .await
        .expect("redis");
    s.set_away("eu1", "a", true, T0).await.expect("redis");
    s.heartbeat(
        &[LiveConn {
            uid: "us1",
            conn: "a",
            region: "us",
            away: false,
        }],
        T0 + 1,
    )
    .await
    .expect("redis");
    assert_eq!(
        s.region_counts().await.expect("redis"),
        counts(&[("eu", 5), ("us", 3)])
    );
    // eu0's first tab closes: she counts in her other tab's region now.
    s.remove_connection("eu0", "a", T0 + 2)
        .await
        .expect("redis");
    s.remove_connection("us2", "a", T0 + 2)
        .await
        .expect("redis");
    assert_eq!(
        s.region_counts().await.expect("redis"),
        counts(&[("eu", 4), ("us", 3)])
    );
    // The sweep takes everyone who did not beat.
    s.sweep(T0 + 1 + TTL, 100).await.expect("redis");
    assert!(s.region_counts().await.expect("redis").is_empty());
}

/// The memory target: under 300 bytes of Redis per online user with one
/// connection (a 28-character uid like Firebase's, a 22-character
/// connection id). A size, not a timing: asserted.
#[tokio::test]
async fn an_online_user_costs_under_300_bytes() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    // Over 128 users per shard (as in production), which is where a zset
    // of sweep deadlines turned into skiplists; the sweep buckets are lists,
    // compact at any size.
    let users = 4_000;
    let uid = |i: usize| format!("Xq3v9TzLk2PbW8mNcR4sYd{i:06}");
    let mut conn = redis::Client::open(redis.url())
        .expect("redis")
        .get_multiplexed_async_connection()
        .await
        .expect("redis");
    let used = |info: String| -> u64 {
        info.lines()
            .find_map(|l| l.strip_prefix("used_memory:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    // One user first, so the shards' keys exist before the baseline.
    s.add_connection("warm-up", "c", "eu", false, T0)
        .await
        .expect("redis");
    let before: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("redis");
    for i in 0..users {
        s.add_connection(&uid(i), &format!("gw7f3a9c1e-{i:011}"), "eu", false, T0)
            .await
            .expect("redis");
    }
    let mut total = 0;
    for i in (0..users).step_by(100) {
        total += s.memory_usage(&uid(i)).await.expect("redis");
    }
    let per_user = total / (users as u64 / 100);
    let after: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(&mut conn)
        .await
        .expect("redis");
    let grown = used(after).saturating_sub(used(before)) / users as u64;
    let encoding: String = redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(dashdice_store::presence::PresenceKeys::new(&uid(0)).user())
        .query_async(&mut conn)
        .await
        .expect("redis");
    println!(
        "presence: {per_user} bytes per online user with one connection (MEMORY USAGE; \
         hash {encoding}); used_memory grew {grown} bytes per user (with the keyspace's \
         hash table, which grows by doubling)"
    );
    assert_eq!(encoding, "listpack");
    assert!(per_user < 300, "{per_user} bytes per online user");
}
