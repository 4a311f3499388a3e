//! Rematches of finished matches against a real redis-server: agreed in the
//! window they start once in the same mode, late or foreign offers are
//! refused, bot matches get a new bot, a failed creation withdraws only the
//! accept, and an offer may beat the record through the stream.

use std::sync::atomic::Ordering;
use std::time::Duration;

use dashdice_matchmaker::{
    MatchmakingError, Notice, Origin, PrivatePolicy, QueueKind, RematchStatus, Status,
};
use dashdice_mode_sdk::Action;
use dashdice_proto::clock::now_ms;
use dashdice_runtime::fair_dice::{MatchRecord, RecordedAction};
use dashdice_tests::matchmaking::*;
use dashdice_tests::servers::RedisServer;

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
        void: None,
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
