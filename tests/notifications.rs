//! Issue 16's acceptance checks, end to end: players on WebSocket and REST
//! through a gateway, the roles that ask for notifications (archiver,
//! matchmaker, match host) and the notifier, on real nats-server (the
//! project's users and permissions), redis-server and Firestore emulator
//! processes, pushing to the stand-in FCM (`dashdice_tests::fcm`), which
//! checks every request against Google's documented shapes.
//!
//! - Every kind reaches an online user's socket and an offline user's
//!   device, and both inboxes (`your_turn` only the offline one's).
//! - A friend request reaches an online user's socket and inbox, and an
//!   offline user's device and inbox; an accept and a direct invite reach
//!   the socket.
//! - `your_turn` is pushed only to a player whose page is hidden, once per
//!   match however many turns pass (collapsed); match results reach both
//!   inboxes.
//! - A rematch offer reaches an away player's socket and device.
//! - Operators' broadcasts reach those online, or everyone known, once;
//!   the gateway's NATS user cannot send one.
//! - A notifier killed mid-stream: its successor delivers every request
//!   once (inbox and push).
//! - An unregistered device token is removed; a stranger cannot read or
//!   mark another user's inbox; bad input is refused with clear errors.
//!
//! Every wait polls until a deadline; no timing is asserted.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dashdice_notifier::service::Options as NotifierOptions;
use dashdice_proto::client::{Notifications, NotifierClient, Requester};
use dashdice_proto::notify::{Audience, Broadcast, NotificationKind, NotifyRequest};
use dashdice_tests::fcm::{Behaviour, FakeFcm, Received};
use dashdice_tests::stack::*;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// Polls `check` until it gives a value or `within` passes.
async fn eventually<T>(
    what: &str,
    within: Duration,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stand-in's pushes to `token`.
fn pushes_to(fcm: &FakeFcm, token: &str) -> Vec<Received> {
    fcm.messages()
        .into_iter()
        .filter(|m| m.token == token)
        .collect()
}

/// The stand-in's pushes of `kind` to `token`.
fn pushes_of(fcm: &FakeFcm, token: &str, kind: &str) -> Vec<Received> {
    pushes_to(fcm, token)
        .into_iter()
        .filter(|m| m.data.get("kind").map(String::as_str) == Some(kind))
        .collect()
}

/// Until `user`'s inbox holds a notification of `kind`.
async fn wait_in_inbox(stack: &Stack, user: &str, kind: &str) {
    eventually(&format!("{user}'s {kind}"), PROMPTLY, async || {
        kinds_in_inbox(stack, user)
            .await
            .iter()
            .any(|k| k == kind)
            .then_some(())
    })
    .await;
}

/// A stack whose roles ask for notifications, a notifier pushing to a
/// fresh stand-in FCM.
async fn stack_with_notifier() -> (Stack, FakeFcm) {
    let stack = Stack::with(Options {
        notifications: true,
        ..Options::default()
    })
    .await;
    let fcm = FakeFcm::start().await;
    start_notifier(
        &stack.backend().nats,
        &stack.backend().redis,
        Some(fcm.config()),
        NotifierOptions::default(),
    )
    .await;
    eventually("the notifier answering", PROMPTLY, async || {
        let (status, _) = stack
            .rest(Method::GET, "/notifications/unread", "probe", None)
            .await;
        (status == StatusCode::OK).then_some(())
    })
    .await;
    (stack, fcm)
}

/// `user`'s inbox over REST.
async fn inbox(stack: &Stack, user: &str) -> Value {
    let (status, body) = stack
        .rest(Method::GET, "/notifications?limit=50", user, None)
        .await;
    assert_eq!(status, StatusCode::OK, "{user}'s inbox: {body}");
    body
}

/// The kinds in `user`'s inbox, newest first.
async fn kinds_in_inbox(stack: &Stack, user: &str) -> Vec<String> {
    inbox(stack, user).await["notifications"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["kind"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Registers `token` as `user`'s web device.
async fn register(stack: &Stack, user: &str, token: &str) -> Value {
    let (status, body) = stack
        .rest(
            Method::POST,
            "/users/me/devices",
            user,
            Some(json!({"token": token, "platform": "web"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{user} registers {token}: {body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_reach_the_socket_when_online_and_the_device_when_offline() {
    let (stack, fcm) = stack_with_notifier().await;
    let mut bob = stack.session("bob").await;
    register(&stack, "bob", "bob-phone").await;
    register(&stack, "carol", "carol-phone").await;

    // Bob is online: Alice's request reaches his socket and inbox, no push.
    let (status, body) = stack
        .rest(Method::POST, "/friends/bob/request", "alice", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let pushed = bob
        .wait_for("a friend_request notification", PROMPTLY, |m| {
            m["type"] == "notification" && m["kind"] == "friend_request"
        })
        .await;
    assert_eq!(pushed["data"]["from"], "alice", "{pushed}");
    assert!(
        pushed["title"].as_str().is_some_and(|t| !t.is_empty()),
        "{pushed}"
    );
    assert_eq!(pushed["read"], false, "{pushed}");
    let bobs = inbox(&stack, "bob").await;
    assert_eq!(bobs["unread"], 1, "{bobs}");
    assert_eq!(bobs["notifications"][0]["id"], pushed["id"], "{bobs}");

    // Bob accepts: Alice, offline, gets it on no device (she has none) but
    // in her inbox.
    let (status, body) = stack
        .rest(Method::POST, "/friends/alice/accept", "bob", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    wait_in_inbox(&stack, "alice", "friend_accepted").await;

    // Carol is offline: Alice's request is pushed to Carol's device, and
    // kept in her inbox.
    let (status, body) = stack
        .rest(Method::POST, "/friends/carol/request", "alice", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let push = eventually("a push to carol-phone", PROMPTLY, async || {
        pushes_to(&fcm, "carol-phone").into_iter().next()
    })
    .await;
    assert_eq!(
        push.data.get("kind").map(String::as_str),
        Some("friend_request")
    );
    // `from` is one of FCM's reserved data keys: pushed as `dd_from`.
    assert_eq!(push.data.get("dd_from").map(String::as_str), Some("alice"));
    assert!(!push.title.is_empty());
    assert_eq!(kinds_in_inbox(&stack, "carol").await, ["friend_request"]);

    // A direct invite from Alice reaches Bob's socket as a notification too.
    let mut alice = stack.session("alice").await;
    let invite = alice
        .ok(
            json!({"type": "invite_friend", "uid": "bob", "mode": "classic"}),
            "invite",
        )
        .await;
    let code = invite["invite"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let note = bob
        .wait_for("a match_invite notification", PROMPTLY, |m| {
            m["type"] == "notification" && m["kind"] == "match_invite"
        })
        .await;
    assert_eq!(note["data"]["code"], code.as_str(), "{note}");
    assert_eq!(note["data"]["from"], "alice", "{note}");

    // Marking read tells every tab the new count.
    let id = note["id"].as_str().unwrap_or_default().to_owned();
    let (status, body) = stack
        .rest(
            Method::POST,
            &format!("/notifications/{id}/read"),
            "bob",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let count = body["unread"].as_u64().unwrap_or(99);
    bob.wait_for("inbox_changed", PROMPTLY, |m| {
        m["type"] == "inbox_changed" && m["unread"].as_u64() == Some(count)
    })
    .await;

    // A stranger cannot mark or delete Bob's notification: it is not theirs.
    let (status, body) = stack
        .rest(
            Method::POST,
            &format!("/notifications/{id}/read"),
            "mallory",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let (status, body) = stack
        .rest(
            Method::DELETE,
            &format!("/notifications/{id}"),
            "mallory",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(inbox(&stack, "mallory").await["notifications"], json!([]));
    assert_eq!(
        inbox(&stack, "bob").await["notifications"][0]["id"],
        id.as_str()
    );

    // Bob, online all along, was never pushed to.
    assert!(pushes_to(&fcm, "bob-phone").is_empty());
    assert_eq!(fcm.violations(), Vec::<String>::new());
}

/// Every kind as the roles ask for it, to one user online (a socket) and
/// one offline (a device): the online one is told on the socket, the
/// offline one pushed, both keep it; `your_turn` only for the offline one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_reaches_the_online_socket_the_offline_device_and_both_inboxes() {
    let (stack, fcm) = stack_with_notifier().await;
    let mut olive = stack.session("olive").await;
    register(&stack, "olive", "olive-phone").await;
    register(&stack, "otto", "otto-phone").await;
    let client = connect_as(&stack.backend().nats, "archiver").await;
    let notifications = Notifications::new(client);
    for kind in NotificationKind::ALL {
        let data = [
            ("from", "zoe"),
            ("by", "zoe"),
            ("code", "K7Q2MX"),
            ("mode", "classic"),
            ("match_id", "m1"),
            ("opponent", "zoe"),
            ("outcome", "won"),
            ("expires_ms", "1900000000000"),
        ];
        for uid in ["olive", "otto"] {
            let mut request =
                NotifyRequest::new(format!("{}:{uid}", kind.as_str()), uid, kind, data, 0);
            if kind == NotificationKind::Broadcast {
                request.title = Some("A word from the operators".into());
                request.body = Some("Hello.".into());
            }
            notifications.send(&request).await.expect("the stream");
        }
        let kind = kind.as_str();
        if kind != "your_turn" {
            let note = olive
                .wait_for(&format!("a {kind} notification"), PROMPTLY, |m| {
                    m["type"] == "notification" && m["kind"] == kind
                })
                .await;
            assert!(
                note["title"].as_str().is_some_and(|t| !t.is_empty()),
                "{note}"
            );
        }
        let push = eventually(&format!("otto's {kind} push"), PROMPTLY, async || {
            pushes_of(&fcm, "otto-phone", kind).into_iter().next()
        })
        .await;
        assert!(!push.title.is_empty(), "{push:?}");
    }
    let mut all: Vec<String> = NotificationKind::ALL
        .iter()
        .map(|k| k.as_str().to_owned())
        .collect();
    all.sort();
    let mut otto = kinds_in_inbox(&stack, "otto").await;
    otto.sort();
    assert_eq!(otto, all, "otto's inbox keeps every kind");
    let olive_kinds = kinds_in_inbox(&stack, "olive").await;
    assert_eq!(olive_kinds.len(), all.len() - 1, "{olive_kinds:?}");
    assert!(!olive_kinds.contains(&"your_turn".to_owned()));
    // Olive, online, was pushed nothing.
    assert!(pushes_to(&fcm, "olive-phone").is_empty());
    assert_eq!(fcm.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn your_turn_is_pushed_only_when_away_and_once_per_match() {
    let (stack, fcm) = stack_with_notifier().await;
    stack.befriend("dora", "eve").await;
    register(&stack, "dora", "dora-phone").await;
    register(&stack, "eve", "eve-phone").await;
    let mut dora = stack.session("dora").await;
    let mut eve = stack.session("eve").await;

    let code = invite_friend(&mut dora, &mut eve, "classic").await;
    let match_id = join_code(&mut dora, &mut eve, &code).await;
    // Eve hides her page: she is away; Dora looks on.
    eve.ok(json!({"type": "visibility", "hidden": true}), "presence")
        .await;

    let mut snapshot = first_snapshot(&mut dora, &match_id).await;
    let (mut step, mut eves_turns) = (0, 0);
    while let Some(player) = turn(&snapshot) {
        step += 1;
        assert!(step < 2_000, "the match never ended");
        let browser = match player.as_str() {
            "dora" => &mut dora,
            "eve" => {
                eves_turns += 1;
                &mut eve
            }
            other => panic!("a stranger's turn: {other}"),
        };
        let reply = browser
            .ok(
                json!({"type": "act", "match_id": match_id, "action": choose(&snapshot),
                       "request_id": format!("t{step}")}),
                "acted",
            )
            .await;
        snapshot = reply["reply"]["match"].clone();
    }
    assert!(eves_turns > 1, "the match gave Eve several turns");

    // Both get the result in their inboxes.
    for who in ["dora", "eve"] {
        wait_in_inbox(&stack, who, "match_result").await;
    }
    let your_turn = |token: &str| pushes_of(&fcm, token, "your_turn").len();
    // Away Eve was pushed "your turn" once, however many turns she had;
    // Dora, looking, never.
    eventually("eve's your_turn push", PROMPTLY, async || {
        (your_turn("eve-phone") >= 1).then_some(())
    })
    .await;
    assert_eq!(your_turn("eve-phone"), 1, "collapsed to one");
    assert_eq!(your_turn("dora-phone"), 0);
    assert!(
        !kinds_in_inbox(&stack, "dora")
            .await
            .contains(&"your_turn".to_owned())
    );
    // The result reached away Eve's device as well.
    eventually("eve's result push", PROMPTLY, async || {
        (!pushes_of(&fcm, "eve-phone", "match_result").is_empty()).then_some(())
    })
    .await;

    // Dora offers a rematch: away Eve's socket and device both hear of it.
    let offered = dora
        .ok(json!({"type": "rematch", "match_id": match_id}), "rematch")
        .await;
    assert_eq!(offered["status"]["state"], "offered", "{offered}");
    let note = eve
        .wait_for("a rematch_offer notification", PROMPTLY, |m| {
            m["type"] == "notification" && m["kind"] == "rematch_offer"
        })
        .await;
    assert_eq!(note["data"]["match_id"], match_id.as_str(), "{note}");
    eventually("eve's rematch push", PROMPTLY, async || {
        pushes_of(&fcm, "eve-phone", "rematch_offer")
            .iter()
            .any(|m| m.data.get("dd_from").map(String::as_str) == Some("dora"))
            .then_some(())
    })
    .await;
    assert_eq!(fcm.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_broadcast_to_the_online_or_everyone_and_nobody_else_may() {
    let (stack, fcm) = stack_with_notifier().await;
    let mut ivy = stack.session("ivy").await;
    register(&stack, "kim", "kim-phone").await;
    let as_user = async |user: &str| {
        let client = connect_as(&stack.backend().nats, user).await;
        NotifierClient::new(Requester::new(client, Duration::from_secs(2)))
    };
    let ops = as_user("ops").await;

    // To those online now: Ivy, not Kim (offline).
    let sent = ops
        .broadcast(&Broadcast {
            id: "maintenance-1".into(),
            audience: Audience::Online,
            title: "Maintenance at 22:00".into(),
            body: "Matches in play finish first.".into(),
            data: BTreeMap::new(),
        })
        .await
        .expect("ops may broadcast");
    assert_eq!(sent.users, 1, "{sent:?}");
    let note = ivy
        .wait_for("the broadcast", PROMPTLY, |m| {
            m["type"] == "notification" && m["kind"] == "broadcast"
        })
        .await;
    assert_eq!(note["title"], "Maintenance at 22:00", "{note}");
    assert!(kinds_in_inbox(&stack, "kim").await.is_empty());

    // To everyone known: Kim (a device) is pushed, and Ivy is not told twice
    // the same broadcast sent again.
    let everyone = Broadcast {
        id: "season-2".into(),
        audience: Audience::All,
        title: "Season 2 has begun".into(),
        body: String::new(),
        data: BTreeMap::new(),
    };
    let sent = ops.broadcast(&everyone).await.expect("broadcast");
    assert!(sent.users >= 2, "{sent:?}");
    ops.broadcast(&everyone).await.expect("the same again");
    eventually("kim's broadcast push", PROMPTLY, async || {
        pushes_to(&fcm, "kim-phone")
            .iter()
            .any(|m| m.title == "Season 2 has begun")
            .then_some(())
    })
    .await;
    eventually("both in ivy's inbox", PROMPTLY, async || {
        (kinds_in_inbox(&stack, "ivy").await.len() == 2).then_some(())
    })
    .await;
    assert_eq!(
        pushes_to(&fcm, "kim-phone").len(),
        1,
        "the repeated broadcast reached nobody twice"
    );

    // The gateway's NATS user may not broadcast (players cannot reach it).
    let refused = as_user("gateway").await.broadcast(&everyone).await;
    assert!(refused.is_err(), "the gateway user broadcast: {refused:?}");
    assert_eq!(fcm.violations(), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_notifier_leaves_nothing_undelivered_and_nothing_twice() {
    let stack = Stack::with(Options::default()).await;
    let fcm = FakeFcm::start().await;
    const USERS: usize = 120;
    let options = NotifierOptions {
        ack_wait: Duration::from_secs(3),
        ..NotifierOptions::default()
    };
    let in_flight = options.max_in_flight;
    let backend = stack.backend();
    let first = start_notifier(
        &backend.nats,
        &backend.redis,
        Some(fcm.config()),
        options.clone(),
    )
    .await;
    for i in 0..USERS {
        let user = format!("u{i}");
        eventually("the notifier answering", PROMPTLY, async || {
            let (status, _) = stack
                .rest(
                    Method::POST,
                    "/users/me/devices",
                    &user,
                    Some(json!({"token": format!("{user}-phone"), "platform": "web"})),
                )
                .await;
            (status == StatusCode::OK).then_some(())
        })
        .await;
    }
    // Every push is slow, so the notifier is surely mid-stream when it
    // dies, with pushes under way.
    fcm.set_latency(Duration::from_millis(300));

    let client = connect_as(&backend.nats, "archiver").await;
    let notifications = Notifications::new(client);
    for i in 0..USERS {
        let request = NotifyRequest::new(
            format!("crash-test:{i}"),
            format!("u{i}"),
            NotificationKind::FriendRequest,
            [("from", "zed")],
            0,
        );
        notifications.send(&request).await.expect("the stream");
    }
    eventually("some pushes before the kill", PROMPTLY, async || {
        (!fcm.messages().is_empty()).then_some(())
    })
    .await;
    first.abort();
    let before = fcm.messages().len();
    assert!(
        before < USERS,
        "the notifier was killed mid-stream ({before} done)"
    );
    fcm.set_latency(Duration::ZERO);
    start_notifier(&backend.nats, &backend.redis, Some(fcm.config()), options).await;

    eventually("every push", Duration::from_secs(60), async || {
        (fcm.messages().len() >= USERS).then_some(())
    })
    .await;
    // Let any duplicate surface before counting.
    tokio::time::sleep(options_settle()).await;
    let mut ids: Vec<String> = fcm
        .messages()
        .into_iter()
        .filter_map(|m| m.data.get("id").cloned())
        .collect();
    ids.sort();
    let all = ids.len();
    ids.dedup();
    // Nothing lost: every request pushed. A push goes twice only if FCM
    // took it from the killed notifier before it could confirm it: at most
    // the pushes it had in flight.
    assert_eq!(ids.len(), USERS);
    assert!(
        all - ids.len() <= in_flight,
        "{} pushes went twice, more than the {in_flight} in flight at the kill",
        all - ids.len()
    );
    for i in 0..USERS {
        let inbox = inbox(&stack, &format!("u{i}")).await;
        assert_eq!(
            inbox["notifications"].as_array().map(Vec::len),
            Some(1),
            "u{i}: {inbox}"
        );
    }
    assert_eq!(fcm.violations(), Vec::<String>::new());
}

/// Past the restarted notifier's ack wait, so a request handled twice
/// would have shown.
fn options_settle() -> Duration {
    Duration::from_secs(4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_tokens_go_and_bad_input_is_refused_clearly() {
    let (stack, fcm) = stack_with_notifier().await;
    register(&stack, "gus", "gus-old-phone").await;
    let devices = register(&stack, "gus", "gus-new-phone").await;
    assert_eq!(devices["devices"], 2, "{devices}");
    fcm.script("gus-old-phone", Behaviour::Unregistered);

    // Gus, offline, is pushed; the dead token is removed.
    let (status, body) = stack
        .rest(Method::POST, "/friends/gus/request", "hal", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    eventually("a push to gus-new-phone", PROMPTLY, async || {
        pushes_to(&fcm, "gus-new-phone").into_iter().next()
    })
    .await;
    let devices = eventually("the dead token removed", PROMPTLY, async || {
        let (status, body) = stack
            .rest(
                Method::DELETE,
                "/users/me/devices",
                "gus",
                Some(json!({"token": "not-registered-anyway"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (body["devices"] == 1).then_some(body)
    })
    .await;
    assert_eq!(devices["devices"], 1);

    // Bad input: each refused with its code and a message.
    let bad = [
        (
            Method::POST,
            "/users/me/devices",
            Some(json!({"token": "has spaces in it", "platform": "web"})),
        ),
        (
            Method::POST,
            "/users/me/devices",
            Some(json!({"token": "ok-token", "platform": "fax"})),
        ),
        (
            Method::POST,
            "/users/me/devices",
            Some(json!(["ok-token", "web"])),
        ),
        (Method::GET, "/notifications?limit=0", None),
        (Method::GET, "/notifications?before=not-a-cursor", None),
    ];
    for (method, path, body) in bad {
        let sent = format!("{method} {path} {body:?}");
        let (status, answer) = stack.rest(method, path, "gus", body).await;
        assert!(status.is_client_error(), "{sent}: {status} {answer}");
        assert!(
            answer["error"]["code"]
                .as_str()
                .is_some_and(|c| !c.is_empty())
                && answer["error"]["message"]
                    .as_str()
                    .is_some_and(|m| !m.is_empty()),
            "{sent}: {answer}"
        );
    }
    // The publisher refuses an invalid request before it reaches the stream
    // (the notifier checks again and drops one that gets there anyway).
    let client = connect_as(&stack.backend().nats, "archiver").await;
    let refused = Notifications::new(client)
        .send(&NotifyRequest::new(
            "bad id with spaces",
            "gus",
            NotificationKind::FriendRequest,
            [("from", "hal")],
            0,
        ))
        .await;
    assert!(refused.is_err(), "an invalid request was sent");
    assert_eq!(fcm.violations(), Vec::<String>::new());
}
