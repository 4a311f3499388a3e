//! Private matches by invite code against a real redis-server: a code brings
//! host and guest into one match once, expires, cannot be joined by its host,
//! excludes queueing and playing, and survives a failed creation.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dashdice_matchmaker::{
    CODE_ALPHABET, MatchFound, MatchmakingError, Origin, PrivatePolicy, QueueKind, Status,
};
use dashdice_proto::clock::now_ms;
use dashdice_store::queues::QueueKeys;
use dashdice_tests::matchmaking::*;
use dashdice_tests::servers::RedisServer;

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
