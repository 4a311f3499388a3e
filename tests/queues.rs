//! The matchmaker's queues against a real redis-server: windows and regions
//! that widen with wait, connection quality, idempotent joins, leaving,
//! creation failures, ratings, and several matchmakers racing over one set
//! of queues. The match host is the harness's recorder
//! (`dashdice_tests::matchmaking`).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dashdice_matchmaker::{
    Connection, JoinRequest, MatchmakingError, Opponent, Policy, QueueKind, Status, Ticket,
};
use dashdice_proto::clock::now_ms;
use dashdice_store::queues::{QueueKeys, QueueStore, StoredTicket};
use dashdice_tests::matchmaking::*;
use dashdice_tests::servers::RedisServer;

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
async fn ranked_joins_match_on_the_stored_rating() {
    // (Results move ratings in the archiver: tests/archive.rs.)
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
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
