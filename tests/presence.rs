//! Issue 15's acceptance checks, end to end through the gateway: players on
//! WebSocket and REST against real nats-server (the project's users and
//! permissions), redis-server and Firestore emulator processes, with a
//! match host, a matchmaker, the presence role and an archiver behind the
//! gateway.
//!
//! - Friends see each other go online, away, into a match and offline.
//! - A gateway process killed with SIGKILL: its users are published offline
//!   within [`OFFLINE_WITHIN_MS`] of the kill, as seen through another
//!   gateway.
//! - Several tabs: closing one keeps the user online; all hidden is away.
//! - A queued player whose socket closed loses the ticket after
//!   [`QUEUE_GRACE_MS`].
//! - A match's players hear of each other's disconnect and reconnect.
//! - Friend requests, answers, removals and blocks, with every refusal, and
//!   presence only between friends (a block stops follows both ways).
//! - A direct invite played to the end; one declined; one expired.
//!
//! Nothing here sleeps and hopes: every wait polls or reads until a
//! deadline. The only timings asserted are the two the issue states: the
//! offline bound and the queue grace.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dashdice_gateway::{Auth, AuthConfig};
use dashdice_proto::presence::{OFFLINE_WITHIN_MS, QUEUE_GRACE_MS};
use dashdice_tests::servers::free_port;
use dashdice_tests::stack::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_dashdice-under-test");

// 1. Friends see each other go online, away, into a match and offline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friends_see_each_other_online_away_in_a_match_and_offline() {
    let stack = Stack::start().await;
    stack.befriend("alice", "bob").await;

    let mut alice = stack.session("alice").await;
    let now = alice.follow(&["bob"]).await;
    assert_eq!(now[0]["uid"], "bob");
    assert_eq!(now[0]["status"], "offline", "{}", now[0]);
    assert_eq!(now[0]["connections"], 0, "{}", now[0]);

    // Bob opens the page.
    let mut bob = stack.session("bob").await;
    let online = alice
        .presence_of("bob", "online", PROMPTLY, status_is("online"))
        .await;
    assert_eq!(online["activity"], "menu", "{online}");
    assert_eq!(online["connections"], 1, "{online}");
    assert_eq!(online["region"], "eu", "the gateway's region: {online}");
    for field in ["version", "last_seen_ms", "changed_ms"] {
        assert!(online[field].as_u64().is_some(), "{field}: {online}");
    }
    let bob_sees = bob.follow(&["alice"]).await;
    assert_eq!(bob_sees[0]["status"], "online", "{}", bob_sees[0]);

    // Bob hides the page: away; shows it again: online.
    let own = bob
        .ok(json!({"type": "visibility", "hidden": true}), "presence")
        .await;
    assert_eq!(own["presence"]["uid"], "bob", "{own}");
    assert_eq!(own["presence"]["status"], "away", "{own}");
    alice
        .presence_of("bob", "away", PROMPTLY, status_is("away"))
        .await;
    let own = bob
        .ok(json!({"type": "visibility", "hidden": false}), "presence")
        .await;
    assert_eq!(own["presence"]["status"], "online", "{own}");
    alice
        .presence_of("bob", "online again", PROMPTLY, status_is("online"))
        .await;

    // Alice invites Bob directly: she is matchmaking; he accepts, and both
    // are in the match.
    let code = invite_friend(&mut alice, &mut bob, "classic").await;
    bob.presence_of("alice", "matchmaking", PROMPTLY, |p| {
        p["activity"] == "matchmaking"
    })
    .await;
    let match_id = join_code(&mut alice, &mut bob, &code).await;
    let in_match = |p: &Value| p["activity"] == "in_match" && p["match_id"] == match_id.as_str();
    let seen = alice
        .presence_of("bob", "in the match", PROMPTLY, in_match)
        .await;
    assert_eq!(seen["status"], "online", "{seen}");
    bob.presence_of("alice", "in the match", PROMPTLY, in_match)
        .await;
    // Asked rather than pushed, the same.
    let asked = alice
        .ok(json!({"type": "presence", "uids": ["bob"]}), "presences")
        .await;
    assert_eq!(asked["presences"][0]["activity"], "in_match", "{asked}");
    assert_eq!(
        asked["presences"][0]["match_id"],
        match_id.as_str(),
        "{asked}"
    );

    // Bob closes the tab: offline.
    bob.close().await;
    let offline = alice
        .presence_of("bob", "offline", PROMPTLY, status_is("offline"))
        .await;
    assert_eq!(offline["connections"], 0, "{offline}");
}

/// A `dashdice gateway` process on the backend's NATS and Redis, killed
/// (SIGKILL) and reaped on drop.
struct GatewayProcess {
    child: Child,
    api: Api,
}

impl GatewayProcess {
    async fn spawn(backend: &Backend) -> Self {
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(BIN)
                .arg("gateway")
                .args(["--nats-url", &backend.nats.url()])
                .args(["--nats-user", "gateway", "--nats-password", "gateway-dev"])
                .args(["--redis-url", &backend.redis.url()])
                .args(["--listen", &format!("127.0.0.1:{port}")])
                .args(["--dev-secret", DEV_SECRET])
                .args([
                    "--user-rate",
                    "1000",
                    "--ip-rate",
                    "10000",
                    "--ws-rate",
                    "1000",
                ])
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("spawn a gateway");
            let mut process = GatewayProcess {
                child,
                api: Api::new(format!("http://127.0.0.1:{port}")),
            };
            // Until it listens; a gateway that lost its port to another
            // process exits, and another port is tried.
            let deadline = Instant::now() + Duration::from_secs(60);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = process.child.try_wait() {
                    break;
                }
                let health = process
                    .api
                    .http
                    .get(process.api.url("/health"))
                    .send()
                    .await;
                if health.is_ok_and(|r| r.status() == StatusCode::OK) {
                    process.api.wait_ready(false).await;
                    return process;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("a gateway process would not start");
    }

    /// SIGKILL: nothing of it runs on, no goodbye to presence.
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

// 2. A gateway process killed: its users go offline within the bound.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_gateways_users_are_published_offline_within_the_bound() {
    let backend = Backend::start(Options::default()).await;
    let mut doomed = GatewayProcess::spawn(&backend).await;
    let survivor = GatewayProcess::spawn(&backend).await;
    let auth = Auth::new(&AuthConfig {
        dev_secret: Some(DEV_SECRET.to_owned()),
        ..AuthConfig::default()
    })
    .expect("auth");
    let token = |user: &str| {
        auth.dev_token(user, Duration::from_secs(3600))
            .expect("token")
            .token
    };
    befriend(
        &doomed.api,
        ("pat", &token("pat")),
        ("quinn", &token("quinn")),
    )
    .await;

    // Pat on the gateway that dies, Quinn on the other, following Pat.
    let pat = doomed.api.session("pat", &token("pat")).await;
    let mut quinn = survivor.api.session("quinn", &token("quinn")).await;
    let now = quinn.follow(&["pat"]).await;
    if now[0]["status"] != "online" {
        quinn
            .presence_of("pat", "online", PROMPTLY, status_is("online"))
            .await;
    }

    doomed.kill();
    let killed = Instant::now();
    // Pat's socket is gone with its gateway; only presence's expiry can
    // tell anyone.
    drop(pat);
    let offline = quinn
        .presence_of(
            "pat",
            "offline",
            Duration::from_millis(OFFLINE_WITHIN_MS) + Duration::from_secs(10),
            status_is("offline"),
        )
        .await;
    let delay = killed.elapsed();
    eprintln!("pat was published offline {delay:?} after their gateway was killed");
    assert!(
        delay < Duration::from_millis(OFFLINE_WITHIN_MS),
        "pat was published offline {delay:?} after the gateway died; the bound is {OFFLINE_WITHIN_MS} ms"
    );
    assert_eq!(offline["connections"], 0, "{offline}");

    // Asked through the survivor, the same.
    let (status, asked) = survivor
        .api
        .rest(
            reqwest::Method::GET,
            "/presence?uids=pat",
            &token("quinn"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(asked["presences"][0]["status"], "offline", "{asked}");
}

// 3. Several tabs: closing one keeps the user online; all hidden is away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closing_one_of_several_tabs_keeps_the_user_online() {
    let stack = Stack::start().await;
    stack.befriend("carol", "dave").await;
    let mut dave = stack.session("dave").await;
    dave.follow(&["carol"]).await;

    let first = stack.session("carol").await;
    dave.presence_of("carol", "online", PROMPTLY, status_is("online"))
        .await;
    let mut second = stack.session("carol").await;
    let connections = |n: u64| {
        let stack = &stack;
        async move {
            let deadline = Instant::now() + PROMPTLY;
            loop {
                let (status, body) = stack
                    .rest(reqwest::Method::GET, "/presence?uids=carol", "dave", None)
                    .await;
                assert_eq!(status, StatusCode::OK, "{body}");
                let carol = body["presences"][0].clone();
                if carol["connections"] == n {
                    return carol;
                }
                assert!(
                    Instant::now() < deadline,
                    "carol never had {n} connections: {carol}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let both = connections(2).await;
    assert_eq!(both["status"], "online", "{both}");

    first.close().await;
    let one = connections(1).await;
    assert_eq!(one["status"], "online", "{one}");

    // A third tab; the second is hidden: one visible tab keeps her online.
    let third = stack.session("carol").await;
    connections(2).await;
    let own = second
        .ok(json!({"type": "visibility", "hidden": true}), "presence")
        .await;
    assert_eq!(
        own["presence"]["status"], "online",
        "one tab is visible: {own}"
    );
    assert_eq!(own["presence"]["connections"], 2, "{own}");
    // The visible one closes: only a hidden tab is left, so she is away.
    // That push is the barrier: pushes of one user come in order, so an
    // offline published on either close would have been read by now.
    third.close().await;
    let away = dave
        .presence_of("carol", "away", PROMPTLY, status_is("away"))
        .await;
    assert_eq!(away["connections"], 1, "{away}");
    assert!(
        !dave.has_seen(|m| is_push_of(m, "carol") && m["presence"]["status"] != "online"),
        "closing one of several tabs published carol offline: {:#?}",
        dave.backlog
    );

    second.close().await;
    dave.presence_of("carol", "offline", PROMPTLY, status_is("offline"))
        .await;
    let none = connections(0).await;
    assert_eq!(none["status"], "offline", "{none}");
}

// 4. A queued player's socket closes: the ticket goes after the grace.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queued_players_ticket_goes_after_the_grace_once_their_socket_closed() {
    let stack = Stack::start().await;
    stack.befriend("eve", "frank").await;
    let mut frank = stack.session("frank").await;
    frank.follow(&["eve"]).await;

    // Eve queues where nobody comes: ranked, and no bots.
    let mut eve = stack.session("eve").await;
    let queued = eve
        .ok(
            json!({"type": "join", "mode": "classic", "kind": "ranked", "region": "eu"}),
            "queue",
        )
        .await;
    assert_eq!(queued["status"]["state"], "queued", "{queued}");
    frank
        .presence_of("eve", "matchmaking", PROMPTLY, |p| {
            p["activity"] == "matchmaking" && p["status"] == "online"
        })
        .await;

    eve.close().await;
    let closed = Instant::now();
    frank
        .presence_of("eve", "offline", PROMPTLY, status_is("offline"))
        .await;
    // Within the grace the ticket stands (a reload would keep its place).
    let state = stack.queue_state("eve").await;
    if closed.elapsed() < Duration::from_millis(QUEUE_GRACE_MS / 2) {
        assert_eq!(
            state["state"], "queued",
            "the ticket went before the grace: {state}"
        );
    }

    let deadline = closed + Duration::from_millis(QUEUE_GRACE_MS) + Duration::from_secs(10);
    loop {
        let state = stack.queue_state("eve").await;
        if state["state"] == "idle" {
            break;
        }
        assert_eq!(state["state"], "queued", "{state}");
        assert!(
            Instant::now() < deadline,
            "eve's ticket still stands {:?} after her socket closed (grace {QUEUE_GRACE_MS} ms)",
            closed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gone = closed.elapsed();
    eprintln!("eve's ticket was given up {gone:?} after her socket closed");
    assert!(
        gone >= Duration::from_millis(QUEUE_GRACE_MS),
        "eve's ticket was given up {gone:?} after her socket closed, before the grace ({QUEUE_GRACE_MS} ms)"
    );
}

// 5. A player's disconnect and reconnect reach the other player.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_opponents_disconnect_and_reconnect_reach_the_other_player() {
    let stack = Stack::start().await;
    let mut gina = stack.session("gina").await;
    let mut hank = stack.session("hank").await;
    // An invite code: players of one match need not be friends.
    let invite = gina
        .ok(json!({"type": "invite", "mode": "classic"}), "invite")
        .await;
    let code = invite["invite"]["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let match_id = join_code(&mut gina, &mut hank, &code).await;
    for browser in [&mut gina, &mut hank] {
        let answer = browser
            .ok(
                json!({"type": "subscribe", "match_id": match_id, "since": 0}),
                "match",
            )
            .await;
        assert_eq!(answer["match"]["match_id"], match_id.as_str());
    }
    let is_connection = |connected: bool| {
        let match_id = match_id.clone();
        move |m: &Value| {
            m["type"] == "player_connection"
                && m["match_id"] == match_id.as_str()
                && m["player"] == "hank"
                && m["connected"] == connected
        }
    };

    hank.close().await;
    let lost = gina
        .wait_for("hank's disconnect", PROMPTLY, is_connection(false))
        .await;
    let left = lost["turn_ms_left"]
        .as_u64()
        .unwrap_or_else(|| panic!("the turn timer's time left: {lost}"));
    assert!(left <= 30_000, "classic's turns are 30 s: {lost}");
    assert!(lost["at_ms"].as_u64().is_some(), "{lost}");
    // Players in one match may see each other's presence.
    let asked = gina
        .ok(json!({"type": "presence", "uids": ["hank"]}), "presences")
        .await;
    assert_eq!(asked["presences"][0]["uid"], "hank", "{asked}");

    let mut hank = stack.session("hank").await;
    hank.ok(
        json!({"type": "subscribe", "match_id": match_id, "since": 0}),
        "match",
    )
    .await;
    let back = gina
        .wait_for("hank's reconnect", PROMPTLY, is_connection(true))
        .await;
    assert!(back["at_ms"].as_u64() >= lost["at_ms"].as_u64(), "{back}");
}

// 6. Friend flows, with every refusal; presence only between friends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn friend_requests_answers_removals_and_blocks_with_their_refusals() {
    use reqwest::Method;
    let stack = Stack::start().await;
    let mut ivy = stack.session("ivy").await;
    let mut jack = stack.session("jack").await;
    let post = |who: &'static str, path: String| {
        let stack = &stack;
        async move { stack.rest(Method::POST, &path, who, None).await }
    };
    let refused = |(status, body): (StatusCode, Value), want: StatusCode, code: &str| {
        assert_eq!(status, want, "{body}");
        assert_eq!(body["error"]["code"], code, "{body}");
    };

    // Oneself, no.
    refused(
        post("ivy", "/friends/ivy/request".into()).await,
        StatusCode::BAD_REQUEST,
        "yourself",
    );
    ivy.refused(
        json!({"type": "friend", "verb": "request", "uid": "ivy"}),
        "yourself",
    )
    .await;
    // Accepting what nobody asked.
    refused(
        post("jack", "/friends/ivy/accept".into()).await,
        StatusCode::CONFLICT,
        "no_request",
    );

    // Ivy asks Jack (REST); Jack is told; asking again is refused.
    let (status, body) = post("ivy", "/friends/jack/request".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["link"]["state"], "outgoing", "{body}");
    let told = jack
        .wait_for("a friend request", PROMPTLY, |m| {
            m["type"] == "friend_request"
        })
        .await;
    assert_eq!(told["from"], "ivy", "{told}");
    refused(
        post("ivy", "/friends/jack/request".into()).await,
        StatusCode::CONFLICT,
        "already_requested",
    );
    let (status, list) = stack.rest(Method::GET, "/friends", "jack", None).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["links"][0]["uid"], "ivy", "{list}");
    assert_eq!(list["links"][0]["state"], "incoming", "{list}");
    // Not friends yet: no presence either way.
    refused(
        stack
            .rest(Method::GET, "/presence?uids=jack", "ivy", None)
            .await,
        StatusCode::FORBIDDEN,
        "not_friends",
    );

    // Jack accepts over WS; Ivy is told.
    let answer = jack
        .ok(
            json!({"type": "friend", "verb": "accept", "uid": "ivy"}),
            "friend",
        )
        .await;
    assert_eq!(answer["uid"], "ivy", "{answer}");
    assert_eq!(answer["link"]["state"], "friends", "{answer}");
    let told = ivy
        .wait_for("friend_accepted", PROMPTLY, |m| {
            m["type"] == "friend_accepted"
        })
        .await;
    assert_eq!(told["by"], "jack", "{told}");
    refused(
        post("ivy", "/friends/jack/request".into()).await,
        StatusCode::CONFLICT,
        "already_friends",
    );
    let friends = ivy.ok(json!({"type": "friends"}), "friends").await;
    let link = &friends["links"][0];
    assert_eq!(link["uid"], "jack", "{friends}");
    assert_eq!(link["state"], "friends", "{friends}");
    assert_eq!(link["presence"]["status"], "online", "{friends}");
    let (status, asked) = stack
        .rest(Method::GET, "/presence?uids=jack,ivy", "ivy", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{asked}");
    assert_eq!(asked["presences"][0]["uid"], "jack", "{asked}");
    assert_eq!(asked["presences"][1]["uid"], "ivy", "{asked}");

    // A stranger's presence: refused, the whole request.
    refused(
        stack
            .rest(Method::GET, "/presence?uids=kim", "ivy", None)
            .await,
        StatusCode::FORBIDDEN,
        "not_friends",
    );
    ivy.refused(
        json!({"type": "presence", "uids": ["jack", "kim"]}),
        "not_friends",
    )
    .await;
    ivy.refused(
        json!({"type": "follow_presence", "uids": ["kim"]}),
        "not_friends",
    )
    .await;

    // Ivy removes Jack (REST DELETE): Jack is told, presence is over.
    let (status, body) = stack
        .rest(Method::DELETE, "/friends/jack", "ivy", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["link"], Value::Null, "{body}");
    let told = jack
        .wait_for("friend_removed", PROMPTLY, |m| {
            m["type"] == "friend_removed"
        })
        .await;
    assert_eq!(told["by"], "ivy", "{told}");
    refused(
        stack
            .rest(Method::GET, "/presence?uids=ivy", "jack", None)
            .await,
        StatusCode::FORBIDDEN,
        "not_friends",
    );

    // Kim asks Ivy, who declines: Kim is told.
    let mut kim = stack.session("kim").await;
    kim.ok(
        json!({"type": "friend", "verb": "request", "uid": "ivy"}),
        "friend",
    )
    .await;
    let (status, body) = post("ivy", "/friends/kim/decline".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["link"], Value::Null, "{body}");
    let told = kim
        .wait_for("friend_declined", PROMPTLY, |m| {
            m["type"] == "friend_declined"
        })
        .await;
    assert_eq!(told["by"], "ivy", "{told}");

    // Friends again, then Jack blocks Ivy: she is told only that the
    // friendship ended, may not ask again, and neither sees the other.
    // Lou, a friend of both, is the barrier below.
    stack.befriend("jack", "ivy").await;
    stack.befriend("lou", "ivy").await;
    stack.befriend("lou", "jack").await;
    let mut lou = stack.session("lou").await;
    ivy.follow(&["jack", "lou"]).await;
    jack.follow(&["ivy", "lou"]).await;
    let (status, body) = post("jack", "/friends/ivy/block".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["link"]["state"], "blocked", "{body}");
    let told = ivy
        .wait_for("friend_removed", PROMPTLY, |m| {
            m["type"] == "friend_removed" && m["by"] == "jack"
        })
        .await;
    assert_eq!(told["by"], "jack", "{told}");
    refused(
        post("ivy", "/friends/jack/request".into()).await,
        StatusCode::FORBIDDEN,
        "blocked",
    );
    for (asker, other) in [("ivy", "jack"), ("jack", "ivy")] {
        refused(
            stack
                .rest(Method::GET, &format!("/presence?uids={other}"), asker, None)
                .await,
            StatusCode::FORBIDDEN,
            "not_friends",
        );
    }
    ivy.refused(
        json!({"type": "follow_presence", "uids": ["jack"]}),
        "not_friends",
    )
    .await;
    jack.refused(
        json!({"type": "follow_presence", "uids": ["ivy"]}),
        "not_friends",
    )
    .await;
    ivy.refused(
        json!({"type": "invite_friend", "uid": "jack", "mode": "classic"}),
        "not_friends",
    )
    .await;
    // The sessions that followed each other get no more of each other's
    // presence. Pushes reach a gateway in the order presence published
    // them, so once Lou's change (made after theirs) has arrived, theirs
    // would have too.
    ivy.ok(json!({"type": "ping"}), "pong").await;
    ivy.ok(json!({"type": "visibility", "hidden": true}), "presence")
        .await;
    jack.ok(json!({"type": "visibility", "hidden": true}), "presence")
        .await;
    lou.ok(json!({"type": "visibility", "hidden": true}), "presence")
        .await;
    for browser in [&mut ivy, &mut jack] {
        browser
            .presence_of("lou", "away", PROMPTLY, status_is("away"))
            .await;
    }
    assert!(
        !ivy.has_seen(|m| is_push_of(m, "jack") && m["presence"]["status"] == "away"),
        "the blocked player's session still gets the blocker's presence: {:#?}",
        ivy.backlog
    );
    // (Asserted last, so the rest of the flow is checked either way.)
    let blocker_still_follows = jack
        .backlog
        .iter()
        .find(|m| is_push_of(m, "ivy") && m["presence"]["status"] == "away")
        .cloned();
    // Ivy's list no longer has Jack; Jack's shows the block.
    let (_, list) = stack.rest(Method::GET, "/friends", "ivy", None).await;
    assert!(
        !list["links"]
            .as_array()
            .is_some_and(|l| l.iter().any(|l| l["uid"] == "jack")),
        "the blocked player's list shows nothing: {list}"
    );
    let (_, list) = stack.rest(Method::GET, "/friends", "jack", None).await;
    assert!(
        list["links"].as_array().is_some_and(|l| l
            .iter()
            .any(|l| l["uid"] == "ivy" && l["state"] == "blocked")),
        "{list}"
    );
    // Unblocked, Ivy may ask again.
    let (status, body) = post("jack", "/friends/ivy/unblock".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["link"], Value::Null, "{body}");
    let (status, body) = post("ivy", "/friends/jack/request".into()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["link"]["state"], "outgoing", "{body}");

    assert_eq!(
        blocker_still_follows, None,
        "the blocker's session (the block made over REST) still got the blocked player's presence"
    );
}

// 7a. A direct invite accepted is played to the end; one declined is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_invite_is_played_to_the_end_and_a_declined_one_is_told() {
    let stack = Stack::start().await;
    stack.befriend("leo", "mia").await;
    let mut leo = stack.session("leo").await;
    let mut mia = stack.session("mia").await;
    mia.follow(&["leo"]).await;

    let code = invite_friend(&mut leo, &mut mia, "classic").await;
    // Only the invitee may take it.
    let mut nick = stack.session("nick").await;
    nick.refused(json!({"type": "join_code", "code": code}), "not_invited")
        .await;
    let match_id = join_code(&mut leo, &mut mia, &code).await;

    let mut snapshot = first_snapshot(&mut leo, &match_id).await;
    assert_eq!(snapshot["mode"], "classic");
    let mut step = 0;
    while let Some(player) = turn(&snapshot) {
        step += 1;
        assert!(step < 2_000, "the match never ended");
        let browser = match player.as_str() {
            "leo" => &mut leo,
            "mia" => &mut mia,
            other => panic!("a stranger's turn: {other}"),
        };
        let action = choose(&snapshot);
        let reply = browser
            .ok(
                json!({"type": "act", "match_id": match_id, "action": action,
                       "request_id": format!("a{step}")}),
                "acted",
            )
            .await;
        snapshot = reply["reply"]["match"].clone();
    }
    for browser in [&mut leo, &mut mia] {
        browser
            .wait_for("game_over", PROMPTLY, |m| {
                m["type"] == "event"
                    && m["match_id"] == match_id.as_str()
                    && m["event"]["type"] == "game_over"
            })
            .await;
    }
    assert_eq!(snapshot["finished"], true);
    assert_eq!(snapshot["standings"].as_array().map(Vec::len), Some(2));
    // The match over, Leo is back in the menu.
    mia.presence_of("leo", "back in the menu", PROMPTLY, |p| {
        p["activity"] == "menu" && p.get("match_id").is_none_or(Value::is_null)
    })
    .await;

    // Olga invites Paul, who declines: Olga is told and is free again.
    stack.befriend("olga", "paul").await;
    let mut olga = stack.session("olga").await;
    let mut paul = stack.session("paul").await;
    let code = invite_friend(&mut olga, &mut paul, "classic").await;
    let declined = paul
        .ok(json!({"type": "decline_invite", "code": code}), "queue")
        .await;
    assert_eq!(declined["status"]["state"], "idle", "{declined}");
    let told = olga
        .wait_for("invite_declined", PROMPTLY, |m| {
            m["type"] == "invite_declined"
        })
        .await;
    assert_eq!(told["by"], "paul", "{told}");
    assert_eq!(told["code"], code.as_str(), "{told}");
    assert_eq!(stack.queue_state("olga").await["state"], "idle");
    // The code is spent.
    let spent = paul
        .request(json!({"type": "join_code", "code": code}))
        .await;
    assert!(
        ["unknown_code", "not_invited"].contains(&spent["error"]["code"].as_str().unwrap_or("")),
        "a declined invite's code works no more: {spent}"
    );

    // The same over REST: refusals, an invite, a decline.
    let invite = |from: &'static str, body: Value| {
        let stack = &stack;
        async move {
            stack
                .rest(reqwest::Method::POST, "/invites", from, Some(body))
                .await
        }
    };
    let (status, body) = invite("olga", json!({"to": "olga", "mode": "classic"})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("yourself")),
        "{body}"
    );
    let (status, body) = invite("olga", json!({"to": "nick", "mode": "classic"})).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("not_friends")),
        "{body}"
    );
    let (status, body) = invite("olga", json!({"to": "paul", "mode": "classic"})).await;
    assert!(status.is_success(), "{status}: {body}");
    let code = body["code"].as_str().expect("a code").to_owned();
    assert_eq!(body["mode"], "classic", "{body}");
    let invited = paul
        .wait_for("invited", PROMPTLY, |m| {
            m["type"] == "invited" && m["code"] == code.as_str()
        })
        .await;
    assert_eq!(invited["from"], "olga", "{invited}");
    let (status, body) = stack
        .rest(
            reqwest::Method::POST,
            &format!("/invites/{code}/decline"),
            "paul",
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "idle", "{body}");
    let told = olga
        .wait_for("invite_declined", PROMPTLY, |m| {
            m["type"] == "invite_declined" && m["code"] == code.as_str()
        })
        .await;
    assert_eq!(told["by"], "paul", "{told}");
}

// 7b. A direct invite nobody takes expires, and its inviter is told.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_direct_invite_is_told_to_its_inviter() {
    const TTL_MS: u64 = 2_000;
    let stack = Stack::with(Options {
        code_ttl_ms: Some(TTL_MS),
        ..Options::default()
    })
    .await;
    stack.befriend("quin", "rosa").await;
    let mut quin = stack.session("quin").await;
    let mut rosa = stack.session("rosa").await;
    let code = invite_friend(&mut quin, &mut rosa, "classic").await;
    let expired = quin
        .wait_for(
            "invite_expired",
            Duration::from_millis(TTL_MS) + PROMPTLY,
            |m| m["type"] == "invite_expired",
        )
        .await;
    assert_eq!(expired["to"], "rosa", "{expired}");
    assert_eq!(expired["code"], code.as_str(), "{expired}");
    let withdrawn = rosa
        .wait_for("invite_withdrawn", PROMPTLY, |m| {
            m["type"] == "invite_withdrawn"
        })
        .await;
    assert_eq!(withdrawn["from"], "quin", "{withdrawn}");
    assert_eq!(stack.queue_state("quin").await["state"], "idle");
}
