//! Private matches by invite code against a real redis-server: a code brings
//! host and guest into one match once, expires, cannot be joined by its host,
//! excludes queueing and playing, and survives a failed creation. Direct
//! invites (a code for one player, told to them): only the invitee joins,
//! declines, expiry and withdrawal are each told once; and the queue figures
//! the lobby reads.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use dashdice_matchmaker::{
    CODE_ALPHABET, DirectInviteRequest, MatchFound, MatchmakingError, Notice, Origin,
    PrivatePolicy, QueueKind, Status,
};
use dashdice_proto::clock::{ManualClock, now_ms};
use dashdice_store::queues::{
    InviteClaim, InviteEnd, QueueKeys, QueueStore, StoredInvite, StoredTicket, invite_key,
};
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

// Direct invites: a code only its invitee may join, told to them, whose end
// (accepted, declined, ran out, withdrawn) each side hears exactly once.

fn direct(player: &str, to: &str, mode: &str) -> DirectInviteRequest {
    DirectInviteRequest {
        player: player.into(),
        to: to.into(),
        mode: mode.into(),
    }
}

/// What `player` was told of invites (everything but match found).
fn invites(inbox: &Inbox, player: &str) -> Vec<Notice> {
    told(inbox, player)
        .into_iter()
        .filter(|n| !matches!(n, Notice::MatchFound(_)))
        .collect()
}

/// A matchmaker on a manual clock, so expiry takes no waiting.
async fn clocked(redis: &RedisServer, host: &Host, inbox: &Inbox) -> (Mm, Arc<ManualClock>) {
    let mut mm = matchmaker(redis, policy(), host, inbox).await;
    let clock = manual_clock(&mut mm);
    (mm, clock)
}

#[tokio::test]
async fn a_direct_invite_is_told_to_its_invitee_only_and_their_accept_makes_the_match() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let (mm, clock) = clocked(&redis, &host, &inbox).await;
    let invite = mm
        .invite_player(&direct("alice", "bob", "zero-hour"))
        .await
        .expect("invite");
    assert_eq!(invite.mode, "zero-hour");
    assert_eq!(
        invites(&inbox, "bob"),
        [Notice::Invited {
            from: "alice".into(),
            code: invite.code.clone(),
            mode: "zero-hour".into(),
            expires_ms: invite.expires_ms,
        }]
    );
    assert!(told(&inbox, "alice").is_empty());
    assert_eq!(
        mm.status("alice").await.expect("status"),
        Status::Hosting {
            code: invite.code.clone(),
            mode: "zero-hour".into(),
            expires_ms: invite.expires_ms,
        }
    );
    // A retry answers the same code and tells nobody again.
    let again = mm
        .invite_player(&direct("alice", "bob", "zero-hour"))
        .await
        .expect("again");
    assert_eq!(again, invite);
    assert_eq!(invites(&inbox, "bob").len(), 1);
    // An open code, or an invite to someone else, is not that request.
    for other in [
        mm.create_invite(&create("alice", "zero-hour")).await,
        mm.invite_player(&direct("alice", "carol", "zero-hour"))
            .await,
    ] {
        let err = other.expect_err("hosting already");
        assert_eq!(err.code(), "hosting", "{err}");
    }

    // The code leaked: a stranger cannot use it, nor learn it was used.
    let err = mm
        .join_invite(&join_code("carol", &invite.code))
        .await
        .expect_err("not invited");
    assert!(matches!(err, MatchmakingError::NotInvited), "{err}");
    assert_eq!(err.code(), "not_invited");
    assert_eq!(mm.status("carol").await.expect("status"), Status::Idle);
    let err = mm
        .decline_invite(&join_code("carol", &invite.code))
        .await
        .expect_err("not invited");
    assert_eq!(err.code(), "not_invited", "{err}");
    assert!(told(&inbox, "carol").is_empty());

    let joined = mm
        .join_invite(&join_code("bob", &invite.code.to_lowercase()))
        .await
        .expect("accept");
    let match_id = playing(&joined).expect("playing").to_owned();
    let made = host.made();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].0, match_id);
    assert_eq!(made[0].1.players, ["alice", "bob"]);
    assert!(!made[0].1.ranked && made[0].1.bots.is_empty());
    for p in ["alice", "bob"] {
        assert_eq!(
            found(&inbox, p),
            [MatchFound {
                match_id: match_id.clone(),
                mode: "zero-hour".into(),
                kind: QueueKind::Quick,
                players: vec!["alice".into(), "bob".into()],
                bot: false,
                origin: Origin::Invite,
            }],
            "{p}"
        );
    }
    let err = mm
        .join_invite(&join_code("carol", &invite.code))
        .await
        .expect_err("still not invited");
    assert_eq!(err.code(), "not_invited", "{err}");

    // An accepted invite never runs out.
    clock.advance(Duration::from_millis(
        PrivatePolicy::default().code_ttl_ms + 1_000,
    ));
    mm.pass().await.expect("pass");
    assert_eq!(mm.expire_invites().await.expect("expire"), 0);
    assert!(invites(&inbox, "alice").is_empty());
    assert_eq!(invites(&inbox, "bob").len(), 1, "only the invite");
}

#[tokio::test]
async fn declining_tells_the_inviter_once_and_frees_them() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let (mm, clock) = clocked(&redis, &host, &inbox).await;
    let invite = mm
        .invite_player(&direct("alice", "bob", "classic"))
        .await
        .expect("invite");
    // Bob is busy in a queue: he may still decline.
    assert!(queued(
        &mm.join(&join("bob", QueueKind::Ranked, "eu"))
            .await
            .expect("bob queues")
    ));
    let status = mm
        .decline_invite(&join_code("bob", &invite.code))
        .await
        .expect("decline");
    assert!(queued(&status), "the decliner's own status: {status:?}");
    assert_eq!(
        invites(&inbox, "alice"),
        [Notice::InviteDeclined {
            by: "bob".into(),
            code: invite.code.clone(),
        }]
    );
    assert_eq!(mm.status("alice").await.expect("status"), Status::Idle);
    assert!(queued(
        &mm.join(&join("alice", QueueKind::Quick, "eu"))
            .await
            .expect("alice may queue again")
    ));

    // The code is gone: declining again, or joining, finds nothing.
    let err = mm
        .decline_invite(&join_code("bob", &invite.code))
        .await
        .expect_err("gone");
    assert_eq!(err.code(), "unknown_code", "{err}");
    let err = mm
        .join_invite(&join_code("bob", &invite.code))
        .await
        .expect_err("gone");
    assert_eq!(err.code(), "unknown_code", "{err}");
    // A declined invite never runs out.
    clock.advance(Duration::from_millis(
        PrivatePolicy::default().code_ttl_ms + 1_000,
    ));
    assert_eq!(mm.expire_invites().await.expect("expire"), 0);
    assert_eq!(invites(&inbox, "alice").len(), 1);
    assert_eq!(invites(&inbox, "bob").len(), 1, "only the invite");
    assert!(host.made().is_empty());

    // An open code is nobody's to decline.
    mm.leave("alice").await.expect("leave");
    let open = mm
        .create_invite(&create("alice", "classic"))
        .await
        .expect("code");
    let err = mm
        .decline_invite(&join_code("bob", &open.code))
        .await
        .expect_err("not a direct invite");
    assert_eq!(err.code(), "not_invited", "{err}");
    let err = mm
        .decline_invite(&join_code("bob", "ABC"))
        .await
        .expect_err("malformed");
    assert_eq!(err.code(), "bad_request", "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_direct_invite_runs_out_once_however_many_matchmakers_pass() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mut mms = Vec::new();
    let mut clocks = Vec::new();
    for _ in 0..3 {
        let (mm, clock) = clocked(&redis, &host, &inbox).await;
        mms.push(Arc::new(mm));
        clocks.push(clock);
    }
    let invite = mms[0]
        .invite_player(&direct("alice", "bob", "classic"))
        .await
        .expect("invite");
    let other = mms[1]
        .invite_player(&direct("carol", "bob", "classic"))
        .await
        .expect("another invite to bob");
    // Not yet due: passes end nothing.
    for mm in &mms {
        mm.pass().await.expect("pass");
    }
    assert!(invites(&inbox, "alice").is_empty());

    let ttl = PrivatePolicy::default().code_ttl_ms;
    for clock in &clocks {
        clock.advance(Duration::from_millis(ttl + 1));
    }
    let passes: Vec<_> = (0..6)
        .map(|i| {
            let mm = mms[i % mms.len()].clone();
            tokio::spawn(async move { mm.pass().await })
        })
        .collect();
    for p in passes {
        p.await.expect("task").expect("pass");
    }
    for mm in &mms {
        mm.pass().await.expect("pass again");
    }
    assert_eq!(
        invites(&inbox, "alice"),
        [Notice::InviteExpired {
            to: "bob".into(),
            code: invite.code.clone(),
        }]
    );
    assert_eq!(
        invites(&inbox, "carol"),
        [Notice::InviteExpired {
            to: "bob".into(),
            code: other.code.clone(),
        }]
    );
    let mut bob: Vec<Notice> = invites(&inbox, "bob")
        .into_iter()
        .filter(|n| matches!(n, Notice::InviteWithdrawn { .. }))
        .collect();
    bob.sort_by_key(|n| format!("{n:?}"));
    let mut want = vec![
        Notice::InviteWithdrawn {
            from: "alice".into(),
            code: invite.code.clone(),
        },
        Notice::InviteWithdrawn {
            from: "carol".into(),
            code: other.code.clone(),
        },
    ];
    want.sort_by_key(|n| format!("{n:?}"));
    assert_eq!(bob, want);
    for p in ["alice", "carol"] {
        assert_eq!(mms[0].status(p).await.expect("status"), Status::Idle, "{p}");
    }
    assert!(queued(
        &mms[0]
            .join(&join("alice", QueueKind::Ranked, "eu"))
            .await
            .expect("alice may queue again")
    ));
    let err = mms[2]
        .join_invite(&join_code("bob", &invite.code))
        .await
        .expect_err("ran out");
    assert_eq!(err.code(), "unknown_code", "{err}");
    assert!(host.made().is_empty());
}

#[tokio::test]
async fn an_inviter_who_leaves_withdraws_the_invite_once() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let (mm, clock) = clocked(&redis, &host, &inbox).await;
    let invite = mm
        .invite_player(&direct("alice", "bob", "classic"))
        .await
        .expect("invite");
    assert_eq!(mm.leave("alice").await.expect("leave"), Status::Idle);
    let withdrawn = Notice::InviteWithdrawn {
        from: "alice".into(),
        code: invite.code.clone(),
    };
    assert_eq!(invites(&inbox, "bob").last(), Some(&withdrawn));
    assert_eq!(invites(&inbox, "bob").len(), 2, "invited, then withdrawn");
    let err = mm
        .join_invite(&join_code("bob", &invite.code))
        .await
        .expect_err("withdrawn");
    assert_eq!(err.code(), "unknown_code", "{err}");
    clock.advance(Duration::from_millis(
        PrivatePolicy::default().code_ttl_ms + 1,
    ));
    assert_eq!(mm.expire_invites().await.expect("expire"), 0);
    assert_eq!(invites(&inbox, "bob").len(), 2);
    assert!(invites(&inbox, "alice").is_empty());
}

#[tokio::test]
async fn a_failed_accept_keeps_the_invite_standing_until_it_runs_out() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let (mm, clock) = clocked(&redis, &host, &inbox).await;
    let invite = mm
        .invite_player(&direct("alice", "bob", "classic"))
        .await
        .expect("invite");
    host.fail_next.store(1, Ordering::SeqCst);
    let err = mm
        .join_invite(&join_code("bob", &invite.code))
        .await
        .expect_err("the host is down");
    assert_eq!(err.code(), "unavailable", "{err}");
    assert_eq!(
        code_of(&mm.status("alice").await.expect("status")),
        Some(invite.code.as_str()),
        "alice waits on the same code"
    );
    // Still standing, so it still runs out, once.
    clock.advance(Duration::from_millis(
        PrivatePolicy::default().code_ttl_ms + 1,
    ));
    assert_eq!(mm.expire_invites().await.expect("expire"), 1);
    assert_eq!(mm.expire_invites().await.expect("expire"), 0);
    assert_eq!(
        invites(&inbox, "alice"),
        [Notice::InviteExpired {
            to: "bob".into(),
            code: invite.code.clone(),
        }]
    );
    assert_eq!(mm.status("alice").await.expect("status"), Status::Idle);
}

#[tokio::test]
async fn bad_direct_invites_are_refused_and_change_nothing() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let mm = matchmaker(&redis, policy(), &host, &inbox).await;
    let err = mm
        .invite_player(&direct("alice", "alice", "classic"))
        .await
        .expect_err("yourself");
    assert!(matches!(err, MatchmakingError::Yourself), "{err}");
    assert_eq!(err.code(), "yourself");
    for (player, to) in [("alice", "bot:1"), ("a b", "bob"), ("alice", "")] {
        let err = mm
            .invite_player(&direct(player, to, "classic"))
            .await
            .expect_err("bad id");
        assert_eq!(err.code(), "bad_request", "{player:?} → {to:?}: {err}");
    }
    let err = mm
        .invite_player(&direct("alice", "bob", "poker"))
        .await
        .expect_err("unknown mode");
    assert_eq!(err.code(), "unknown_mode", "{err}");
    // A busy inviter: queued, or hosting a code.
    mm.join(&join("q", QueueKind::Ranked, "eu"))
        .await
        .expect("join");
    let err = mm
        .invite_player(&direct("q", "bob", "classic"))
        .await
        .expect_err("queued");
    assert_eq!(err.code(), "already_queued", "{err}");
    mm.create_invite(&create("h", "classic"))
        .await
        .expect("code");
    let err = mm
        .invite_player(&direct("h", "bob", "classic"))
        .await
        .expect_err("hosting");
    assert_eq!(err.code(), "hosting", "{err}");
    for p in ["alice", "bob"] {
        assert_eq!(mm.status(p).await.expect("status"), Status::Idle, "{p}");
    }
    assert!(inbox.0.lock().expect("lock").is_empty());
    assert!(host.made().is_empty());
}

#[tokio::test]
async fn queue_figures_count_waiting_tickets_and_record_waits_to_a_match() {
    let redis = RedisServer::start();
    let (host, inbox) = (Host::default(), Inbox::default());
    let (mm, clock) = clocked(&redis, &host, &inbox).await;
    let store = QueueStore::connect(&redis.url()).await.expect("redis");
    let keys = QueueKeys::new("classic", "quick");
    assert_eq!(
        store.queue_figures(&keys).await.expect("figures"),
        (0, vec![])
    );
    assert!(queued(
        &mm.join(&join("alice", QueueKind::Quick, "eu"))
            .await
            .expect("join")
    ));
    assert!(queued(
        &mm.join(&join("zed", QueueKind::Quick, "ap"))
            .await
            .expect("join")
    ));
    assert_eq!(
        store.queue_figures(&keys).await.expect("figures"),
        (2, vec![])
    );
    // A ticket that leaves without a match is no wait to a match.
    mm.leave("zed").await.expect("leave");
    assert_eq!(
        store.queue_figures(&keys).await.expect("figures"),
        (1, vec![])
    );
    clock.advance(Duration::from_millis(2_000));
    let paired = mm
        .join(&join("bob", QueueKind::Quick, "eu"))
        .await
        .expect("join");
    assert!(playing(&paired).is_some(), "{paired:?}");
    let (waiting, mut recent) = store.queue_figures(&keys).await.expect("figures");
    assert_eq!(waiting, 0);
    recent.sort_unstable();
    assert_eq!(recent, [0, 2_000], "bob waited nothing, alice two seconds");
}

#[tokio::test]
async fn the_store_keeps_the_last_101_waits_newest_first() {
    let redis = RedisServer::start();
    let store = QueueStore::connect(&redis.url()).await.expect("redis");
    let keys = QueueKeys::new("classic", "ranked");
    for i in 0..110u64 {
        let (player, ticket_id) = (format!("p{i}"), format!("t-{i}"));
        let json = format!(r#"{{"ticket_id":"{ticket_id}"}}"#);
        store
            .enqueue(
                &keys,
                &StoredTicket {
                    player: &player,
                    ticket_id: &ticket_id,
                    region: "eu",
                    rating: 1500.0,
                    joined_ms: 1_000,
                    json: &json,
                },
            )
            .await
            .expect("enqueue");
    }
    // One leaves without a match; the rest leave for matches, one by one,
    // the i-th having waited i ms.
    let left = store
        .withdraw(&keys, &[("p0", "t-0", "eu")], 5_000)
        .await
        .expect("withdraw");
    assert!(left.is_some());
    for i in 1..110u64 {
        let (player, ticket_id) = (format!("p{i}"), format!("t-{i}"));
        let taken = store
            .take(&keys, &[(&player, &ticket_id, "eu")], 1_000 + i)
            .await
            .expect("take");
        assert!(taken.is_some(), "p{i}");
    }
    let (waiting, recent) = store.queue_figures(&keys).await.expect("figures");
    assert_eq!(waiting, 0);
    let want: Vec<u64> = (9..110).rev().collect();
    assert_eq!(recent, want);
    assert_eq!(recent.len(), dashdice_store::queues::RECENT_WAITS);
}

#[tokio::test]
async fn invite_records_without_a_target_read_as_open_codes() {
    let redis = RedisServer::start();
    let store = QueueStore::connect(&redis.url()).await.expect("redis");
    let client = redis::Client::open(redis.url()).expect("client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("conn");
    // As written before direct invites.
    let _: () = redis::cmd("HSET")
        .arg(invite_key("K7QX2M"))
        .arg(&[
            ("host", "alice"),
            ("mode", "classic"),
            ("created_ms", "1"),
            ("expires_ms", "2"),
        ])
        .query_async(&mut conn)
        .await
        .expect("hset");
    let invite = store.invite("K7QX2M").await.expect("read").expect("there");
    assert_eq!(invite.to, None);
    assert_eq!(invite.host, "alice");
    match store.claim_invite("K7QX2M", "bob").await.expect("claim") {
        InviteClaim::Claimed(claimed) => {
            assert_eq!(claimed.to, None);
            assert_eq!(claimed.guest.as_deref(), Some("bob"));
        }
        other => panic!("{other:?}"),
    }
    // A direct invite is its invitee's only.
    let direct = StoredInvite {
        host: "carol".into(),
        mode: "classic".into(),
        created_ms: 1,
        expires_ms: 2,
        guest: None,
        to: Some("dan".into()),
    };
    assert!(
        store
            .create_invite("ABCDEF", &direct, Duration::from_secs(60))
            .await
            .expect("create")
    );
    assert_eq!(
        store.claim_invite("ABCDEF", "erin").await.expect("claim"),
        InviteClaim::NotInvited
    );
    assert!(matches!(
        store.claim_invite("ABCDEF", "dan").await.expect("claim"),
        InviteClaim::Claimed(StoredInvite { to: Some(ref to), .. }) if to == "dan"
    ));
    assert_eq!(
        store
            .end_invite("ABCDEF", "carol", "dan")
            .await
            .expect("end"),
        InviteEnd::Taken,
        "a claimed invite is not ended"
    );
    assert_eq!(
        store
            .end_invite("NOPE22", "carol", "dan")
            .await
            .expect("end"),
        InviteEnd::Gone
    );
}

/// The two endpoints on the bus, through the proto client, with notices on
/// the players' subjects: invite, a stranger refused, decline.
#[tokio::test]
async fn direct_invites_are_served_on_the_bus() {
    use dashdice_matchmaker::Matchmaker;
    use dashdice_matchmaker::service::{self, NatsMatches, NatsNotify};
    use dashdice_proto::bus;
    use dashdice_proto::client::{CallError, MatchmakerClient, Requester};
    use dashdice_tests::servers::NatsServer;
    use futures_util::StreamExt;

    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let store = QueueStore::connect(&redis.url()).await.expect("redis");
    let mm = Matchmaker::new(
        store,
        policy(),
        ["classic".to_owned()],
        ["eu".to_owned()],
        NatsMatches::new(client.clone()),
        NatsNotify {
            client: client.clone(),
        },
    );
    tokio::spawn(service::run(client.clone(), mm));
    let players = MatchmakerClient::new(Requester::new(client.clone(), Duration::from_secs(2)));
    let mut alice = client
        .subscribe(bus::user_notify("alice"))
        .await
        .expect("sub");
    let mut bob = client
        .subscribe(bus::user_notify("bob"))
        .await
        .expect("sub");
    client.flush().await.expect("flush");
    let request = direct("alice", "bob", "classic");
    let mut invite = None;
    for _ in 0..250 {
        match players.invite_player(&request).await {
            Ok(i) => {
                invite = Some(i);
                break;
            }
            Err(CallError::NoResponders | CallError::Timeout) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("{e}"),
        }
    }
    let invite = invite.expect("a matchmaker answered");
    async fn next(sub: &mut async_nats::Subscriber) -> Notice {
        let message = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .expect("a notice in time")
            .expect("a notice");
        serde_json::from_slice(&message.payload).expect("a notice")
    }
    assert_eq!(
        next(&mut bob).await,
        Notice::Invited {
            from: "alice".into(),
            code: invite.code.clone(),
            mode: "classic".into(),
            expires_ms: invite.expires_ms,
        }
    );
    match players
        .decline_invite(&join_code("carol", &invite.code))
        .await
    {
        Err(CallError::Refused(e)) => assert_eq!(e.code.as_str(), "not_invited", "{e:?}"),
        other => panic!("{other:?}"),
    }
    match players
        .invite_player(&direct("bob", "bob", "classic"))
        .await
    {
        Err(CallError::Refused(e)) => assert_eq!(e.code.as_str(), "yourself", "{e:?}"),
        other => panic!("{other:?}"),
    }
    let status = players
        .decline_invite(&join_code("bob", &invite.code))
        .await
        .expect("decline");
    assert_eq!(status, Status::Idle);
    assert_eq!(
        next(&mut alice).await,
        Notice::InviteDeclined {
            by: "bob".into(),
            code: invite.code.clone(),
        }
    );
}
