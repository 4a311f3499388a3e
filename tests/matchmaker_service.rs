//! The matchmaker and the match host as NATS services, on real nats-server and
//! redis-server processes: players queue over NATS and are told of their
//! match on their notification subject; a lone quick player gets a bot that
//! the host plays to the end (ranked results move ratings in the archiver:
//! tests/archive.rs); the host being down loses no ticket; bad input is refused;
//! private matches by invite code and rematches of finished matches.

use std::time::Duration;

use async_nats::Client;
use dashdice_match_host::service as match_service;
use dashdice_match_host::{ActionReply, MatchHost, Snapshot};
use dashdice_matchmaker::service::{self as matchmaker_service, NatsMatches, NatsNotify};
use dashdice_matchmaker::{
    Invite, MatchFound, Matchmaker, Notice, Origin, Policy, PrivatePolicy, RematchStatus, Status,
};
use dashdice_proto::bus::{self, ErrorBody, Reply, endpoint, queue_endpoint};
use dashdice_store::MatchStore;
use dashdice_store::queues::QueueStore;
use dashdice_tests::servers::{NatsServer, RedisServer};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

struct System {
    nats: NatsServer,
    redis: RedisServer,
    client: Client,
}

fn policy() -> Policy {
    Policy {
        bot_after_ms: Some(300),
        ..Policy::default()
    }
}

async fn start_host(nats: &NatsServer, redis: &RedisServer) {
    let registry = dashdice_tests::registry();
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    let mut host = MatchHost::new(registry, store);
    host.bot_delay_ms = (10, 40);
    tokio::spawn(match_service::run(client, host));
}

async fn start_matchmaker(nats: &NatsServer, redis: &RedisServer, private: PrivatePolicy) {
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let store = QueueStore::connect(&redis.url()).await.expect("redis");
    let mut mm = Matchmaker::new(
        store,
        policy(),
        ["classic".to_owned(), "true-grit".to_owned()],
        ["eu".to_owned(), "us".to_owned(), "ap".to_owned()],
        NatsMatches::new(client.clone()),
        NatsNotify {
            client: client.clone(),
        },
    );
    mm.private = private;
    tokio::spawn(matchmaker_service::run(client, mm));
}

/// Servers on free ports, a matchmaker and (if `host`) a match host.
async fn system(host: bool) -> System {
    system_with(host, PrivatePolicy::default()).await
}

/// [`system`] with other code lifetimes and rematch windows.
async fn system_with(host: bool, private: PrivatePolicy) -> System {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    if host {
        start_host(&nats, &redis).await;
    }
    start_matchmaker(&nats, &redis, private).await;
    let client = async_nats::connect(nats.url()).await.expect("nats");
    wait_for_matchmaker(&client).await;
    System {
        nats,
        redis,
        client,
    }
}

/// Until a matchmaker answers on `client`.
async fn wait_for_matchmaker(client: &Client) {
    for _ in 0..250 {
        let probe = client
            .request(
                bus::queue_request(queue_endpoint::STATUS),
                r#"{"player":"probe"}"#.into(),
            )
            .await;
        if probe.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no matchmaker answered");
}

async fn ask<T: DeserializeOwned>(
    client: &Client,
    subject: String,
    body: Vec<u8>,
) -> Result<T, ErrorBody> {
    let message = client.request(subject, body.into()).await.expect("a reply");
    serde_json::from_slice::<Reply<T>>(&message.payload)
        .expect("an envelope")
        .into_result()
}

async fn queue<T: DeserializeOwned>(
    client: &Client,
    name: &str,
    body: Value,
) -> Result<T, ErrorBody> {
    ask(
        client,
        bus::queue_request(name),
        body.to_string().into_bytes(),
    )
    .await
}

async fn host<T: DeserializeOwned>(
    client: &Client,
    name: &str,
    body: Value,
) -> Result<T, ErrorBody> {
    ask(
        client,
        bus::match_request(name),
        body.to_string().into_bytes(),
    )
    .await
}

async fn notices(client: &Client, player: &str) -> async_nats::Subscriber {
    let sub = client
        .subscribe(bus::user_notify(player))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    sub
}

async fn next_any_notice(sub: &mut async_nats::Subscriber) -> Notice {
    let message = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a notice in time")
        .expect("subscription");
    serde_json::from_slice(&message.payload).expect("a notice")
}

async fn next_notice(sub: &mut async_nats::Subscriber) -> MatchFound {
    match next_any_notice(sub).await {
        Notice::MatchFound(found) => found,
        other => panic!("expected a match found, got {other:?}"),
    }
}

/// Waits until `player`'s status satisfies `done`.
async fn wait_status(client: &Client, player: &str, done: impl Fn(&Status) -> bool) -> Status {
    let mut last = Status::Idle;
    for _ in 0..150 {
        last = queue(client, queue_endpoint::STATUS, json!({"player": player}))
            .await
            .expect("status");
        if done(&last) {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{player}: still {last:?}");
}

#[tokio::test]
async fn two_players_queue_over_nats_and_both_are_told_of_one_match() {
    let sys = system(true).await;
    let mut alice = notices(&sys.client, "alice").await;
    let mut bob = notices(&sys.client, "bob").await;
    let first: Status = queue(
        &sys.client,
        queue_endpoint::JOIN,
        json!({"player": "alice", "mode": "classic", "kind": "ranked", "region": "eu"}),
    )
    .await
    .expect("join");
    assert!(matches!(first, Status::Queued { .. }), "{first:?}");
    let second: Status = queue(
        &sys.client,
        queue_endpoint::JOIN,
        json!({"player": "bob", "mode": "classic", "kind": "ranked", "region": "eu"}),
    )
    .await
    .expect("join");
    let Status::Playing { match_id } = second else {
        panic!("matched at once: {second:?}");
    };
    let (a, b) = (next_notice(&mut alice).await, next_notice(&mut bob).await);
    assert_eq!(a, b);
    assert_eq!(a.match_id, match_id);
    assert!(!a.bot);
    let snapshot: Snapshot = host(&sys.client, endpoint::GET, json!({"match_id": match_id}))
        .await
        .expect("the match exists on the host");
    let mut players = snapshot.players.clone();
    players.sort();
    assert_eq!(players, ["alice", "bob"]);
    assert!(snapshot.ranked);
}

#[tokio::test]
async fn a_lone_quick_player_gets_a_bot_that_plays_to_the_end() {
    let sys = system(true).await;
    let mut inbox = notices(&sys.client, "solo").await;
    let joined: Status = queue(
        &sys.client,
        queue_endpoint::JOIN,
        json!({"player": "solo", "mode": "classic", "kind": "quick", "region": "us"}),
    )
    .await
    .expect("join");
    assert!(matches!(joined, Status::Queued { .. }));
    let found = next_notice(&mut inbox).await;
    assert!(found.bot, "{found:?}");
    let bot = found
        .players
        .iter()
        .find(|p| *p != "solo")
        .expect("an opponent")
        .clone();
    assert!(bot.starts_with("bot:"));
    let id = found.match_id.clone();

    // The human plays; the host plays the bot's turns on its own.
    let mut n = 0;
    let mut bot_acted = false;
    loop {
        let snapshot: Snapshot = host(&sys.client, endpoint::GET, json!({"match_id": id}))
            .await
            .expect("get");
        if snapshot.finished {
            let record = snapshot
                .record()
                .expect("the final view carries the record");
            assert!(record.actions.iter().any(|a| a.actor == bot));
            assert_eq!(record.bots, std::slice::from_ref(&bot));
            break;
        }
        match snapshot.turn.as_deref() {
            Some("solo") => {
                n += 1;
                assert!(n < 500, "the game ends");
                let action = if snapshot.view["turn_score"].as_i64() >= Some(20) {
                    "bank"
                } else {
                    "roll"
                };
                let body = json!({"match_id": id, "player": "solo", "request_id": format!("r{n}"), "action": action});
                let reply: Result<ActionReply, _> = host(&sys.client, endpoint::ACT, body).await;
                if let Err(e) = reply {
                    assert_eq!(e.code, "not_your_turn", "{e:?}");
                }
            }
            _ => {
                bot_acted = true;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
    assert!(bot_acted, "the bot had turns");
    // Nobody may act for the bot.
    let body = json!({"match_id": id, "player": bot, "request_id": "x", "action": "roll"});
    let err = host::<ActionReply>(&sys.client, endpoint::ACT, body)
        .await
        .expect_err("not a player one can act as");
    assert!(
        ["not_a_player", "game_over"].contains(&err.code.as_str()),
        "{err:?}"
    );
    // The record stream frees the player.
    wait_status(&sys.client, "solo", |s| *s == Status::Idle).await;
}

#[tokio::test]
async fn with_the_host_down_no_ticket_is_lost() {
    let sys = system(false).await;
    for p in ["x1", "x2"] {
        let status: Status = queue(
            &sys.client,
            queue_endpoint::JOIN,
            json!({"player": p, "mode": "classic", "kind": "ranked", "region": "eu"}),
        )
        .await
        .expect("join");
        assert!(matches!(status, Status::Queued { .. }), "{p}: {status:?}");
    }
    // The host comes up; the next pass makes the match.
    start_host(&sys.nats, &sys.redis).await;
    wait_status(&sys.client, "x1", |s| matches!(s, Status::Playing { .. })).await;
    wait_status(&sys.client, "x2", |s| matches!(s, Status::Playing { .. })).await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_over_nats() {
    let sys = system(false).await;
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (queue_endpoint::JOIN, b"{not json".to_vec(), "bad_request"),
        (queue_endpoint::JOIN, br#"{"player":"a"}"#.to_vec(), "bad_request"),
        (
            queue_endpoint::JOIN,
            json!({"player": "a", "mode": "classic", "kind": "ranked", "region": "eu", "rating": 9000, "extra": 1})
                .to_string()
                .into_bytes(),
            "bad_request",
        ),
        (
            queue_endpoint::JOIN,
            json!({"player": "a", "mode": "chess", "kind": "quick", "region": "eu"}).to_string().into_bytes(),
            "unknown_mode",
        ),
        (
            queue_endpoint::JOIN,
            json!({"player": "a", "mode": "classic", "kind": "casual", "region": "eu"}).to_string().into_bytes(),
            "bad_request",
        ),
        (queue_endpoint::LEAVE, b"[]".to_vec(), "bad_request"),
        (queue_endpoint::STATUS, vec![b' '; 8 << 10], "too_large"),
    ];
    for (name, body, code) in cases {
        let err = ask::<Value>(&sys.client, bus::queue_request(name), body)
            .await
            .expect_err("refused");
        assert_eq!(err.code, code, "{name}: {}", err.message);
    }
    let status: Status = queue(&sys.client, queue_endpoint::STATUS, json!({"player": "a"}))
        .await
        .expect("status");
    assert_eq!(status, Status::Idle, "nothing changed");
}

#[tokio::test]
async fn every_role_works_with_only_its_own_permissions() {
    let nats = NatsServer::start_with_project_config();
    let redis = RedisServer::start();
    let as_user = |user: &'static str| {
        let url = nats.url();
        async move {
            async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-dev"))
                .connect(url)
                .await
                .expect("connect")
        }
    };
    let registry = dashdice_tests::registry();
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    tokio::spawn(match_service::run(
        as_user("match-host").await,
        MatchHost::new(registry, store),
    ));
    let mm_client = as_user("matchmaker").await;
    let mm = Matchmaker::new(
        QueueStore::connect(&redis.url()).await.expect("redis"),
        policy(),
        ["classic".to_owned()],
        ["eu".to_owned()],
        NatsMatches::new(mm_client.clone()),
        NatsNotify {
            client: mm_client.clone(),
        },
    );
    tokio::spawn(matchmaker_service::run(mm_client, mm));
    let gateway = as_user("gateway").await;
    let mut told = gateway
        .subscribe("dd.user.*.notify")
        .await
        .expect("subscribe");
    gateway.flush().await.expect("flush");
    wait_for_matchmaker(&gateway).await;
    for p in ["g1", "g2"] {
        queue::<Status>(
            &gateway,
            queue_endpoint::JOIN,
            json!({"player": p, "mode": "classic", "kind": "ranked", "region": "eu"}),
        )
        .await
        .expect("join");
    }
    let found = next_notice(&mut told).await;
    let snapshot: Snapshot = host(&gateway, endpoint::GET, json!({"match_id": found.match_id}))
        .await
        .expect("the gateway reads the match");
    let player = snapshot.turn.clone().expect("turn");
    let body = json!({"match_id": found.match_id, "player": player, "request_id": "f", "action": "forfeit"});
    host::<ActionReply>(&gateway, endpoint::ACT, body)
        .await
        .expect("the gateway acts");
    // The matchmaker reads the record stream as itself and frees both.
    wait_status(&gateway, "g1", |s| *s == Status::Idle).await;
    wait_status(&gateway, "g2", |s| *s == Status::Idle).await;
}

/// A private match between `host_player` and `guest` in `mode`, made over
/// NATS; its id.
async fn private_match(sys: &System, host_player: &str, guest: &str, mode: &str) -> String {
    let invite: Invite = queue(
        &sys.client,
        queue_endpoint::PRIVATE_CREATE,
        json!({"player": host_player, "mode": mode}),
    )
    .await
    .expect("a code");
    let joined: Status = queue(
        &sys.client,
        queue_endpoint::PRIVATE_JOIN,
        json!({"player": guest, "code": invite.code}),
    )
    .await
    .expect("join");
    let Status::Playing { match_id } = joined else {
        panic!("{joined:?}");
    };
    match_id
}

/// Ends `match_id` by `player`'s forfeit and waits until the record has
/// freed both players.
async fn forfeit(sys: &System, match_id: &str, player: &str, other: &str) {
    let body =
        json!({"match_id": match_id, "player": player, "request_id": "bye", "action": "forfeit"});
    host::<ActionReply>(&sys.client, endpoint::ACT, body)
        .await
        .expect("forfeit");
    wait_status(&sys.client, player, |s| *s == Status::Idle).await;
    wait_status(&sys.client, other, |s| *s == Status::Idle).await;
}

#[tokio::test]
async fn a_private_code_over_nats_makes_one_match_on_the_host() {
    let sys = system(true).await;
    let mut alice = notices(&sys.client, "alice").await;
    let mut bob = notices(&sys.client, "bob").await;
    let invite: Invite = queue(
        &sys.client,
        queue_endpoint::PRIVATE_CREATE,
        json!({"player": "alice", "mode": "true-grit"}),
    )
    .await
    .expect("a code");
    assert_eq!(invite.mode, "true-grit");
    let status: Status = queue(
        &sys.client,
        queue_endpoint::STATUS,
        json!({"player": "alice"}),
    )
    .await
    .expect("status");
    assert_eq!(
        status,
        Status::Hosting {
            code: invite.code.clone(),
            mode: "true-grit".into(),
            expires_ms: invite.expires_ms,
        }
    );
    let joined: Status = queue(
        &sys.client,
        queue_endpoint::PRIVATE_JOIN,
        json!({"player": "bob", "code": invite.code.to_lowercase()}),
    )
    .await
    .expect("join");
    let Status::Playing { match_id } = joined else {
        panic!("{joined:?}");
    };
    let (a, b) = (next_notice(&mut alice).await, next_notice(&mut bob).await);
    assert_eq!(a, b);
    assert_eq!(a.match_id, match_id);
    assert_eq!(a.origin, Origin::Invite);
    assert_eq!(a.players, ["alice", "bob"]);
    assert!(!a.bot);
    let snapshot: Snapshot = host(&sys.client, endpoint::GET, json!({"match_id": match_id}))
        .await
        .expect("the match exists on the host");
    assert_eq!(snapshot.players, ["alice", "bob"]);
    assert_eq!(snapshot.mode, "true-grit");
    assert!(!snapshot.ranked && snapshot.bots.is_empty());
    // A second guest is refused.
    let err = queue::<Status>(
        &sys.client,
        queue_endpoint::PRIVATE_JOIN,
        json!({"player": "carol", "code": invite.code}),
    )
    .await
    .expect_err("used");
    assert_eq!(err.code, "code_used", "{}", err.message);
    let carol: Status = queue(
        &sys.client,
        queue_endpoint::STATUS,
        json!({"player": "carol"}),
    )
    .await
    .expect("status");
    assert_eq!(carol, Status::Idle);
}

#[tokio::test]
async fn private_code_refusals_over_nats_change_nothing() {
    let sys = system_with(
        true,
        PrivatePolicy {
            code_ttl_ms: 2_000,
            ..PrivatePolicy::default()
        },
    )
    .await;
    let status = |player: &'static str| {
        let client = sys.client.clone();
        async move {
            queue::<Status>(&client, queue_endpoint::STATUS, json!({"player": player}))
                .await
                .expect("status")
        }
    };
    // An expired code.
    let short: Invite = queue(
        &sys.client,
        queue_endpoint::PRIVATE_CREATE,
        json!({"player": "early", "mode": "classic"}),
    )
    .await
    .expect("a code");
    assert!(matches!(status("early").await, Status::Hosting { .. }));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let err = queue::<Status>(
        &sys.client,
        queue_endpoint::PRIVATE_JOIN,
        json!({"player": "late", "code": short.code}),
    )
    .await
    .expect_err("expired");
    assert_eq!(err.code, "unknown_code", "{}", err.message);
    assert_eq!(status("late").await, Status::Idle);
    assert_eq!(status("early").await, Status::Idle);

    // Queued → no code; hosting → no queue; one's own code; malformed.
    queue::<Status>(
        &sys.client,
        queue_endpoint::JOIN,
        json!({"player": "q", "mode": "classic", "kind": "ranked", "region": "eu"}),
    )
    .await
    .expect("join");
    let err = queue::<Invite>(
        &sys.client,
        queue_endpoint::PRIVATE_CREATE,
        json!({"player": "q", "mode": "classic"}),
    )
    .await
    .expect_err("queued");
    assert_eq!(err.code, "already_queued", "{}", err.message);
    assert!(matches!(status("q").await, Status::Queued { .. }));

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            queue_endpoint::PRIVATE_CREATE,
            json!({"player": "h", "mode": "chess"}),
            "unknown_mode",
        ),
        (
            queue_endpoint::PRIVATE_CREATE,
            json!({"player": "h", "mode": "classic", "kind": "quick"}),
            "bad_request",
        ),
        (
            queue_endpoint::PRIVATE_JOIN,
            json!({"player": "h", "code": "0OIL1"}),
            "bad_request",
        ),
        (
            queue_endpoint::PRIVATE_JOIN,
            json!({"player": "h"}),
            "bad_request",
        ),
        (
            queue_endpoint::REMATCH,
            json!({"player": "h", "match_id": "nothing-ended"}),
            "rematch_expired",
        ),
        (
            queue_endpoint::REMATCH,
            json!({"player": "h", "match": "x"}),
            "bad_request",
        ),
    ];
    for (name, body, code) in cases {
        let err = queue::<Value>(&sys.client, name, body.clone())
            .await
            .expect_err("refused");
        assert_eq!(err.code, code, "{name} {body}: {}", err.message);
    }
    assert_eq!(status("h").await, Status::Idle);

    // With a long-lived code: hosting excludes queueing, and one's own code
    // is refused.
    let long = system(true).await;
    let invite: Invite = queue(
        &long.client,
        queue_endpoint::PRIVATE_CREATE,
        json!({"player": "h", "mode": "classic"}),
    )
    .await
    .expect("a code");
    let err = queue::<Status>(
        &long.client,
        queue_endpoint::JOIN,
        json!({"player": "h", "mode": "classic", "kind": "quick", "region": "eu"}),
    )
    .await
    .expect_err("hosting");
    assert_eq!(err.code, "hosting", "{}", err.message);
    let err = queue::<Status>(
        &long.client,
        queue_endpoint::PRIVATE_JOIN,
        json!({"player": "h", "code": invite.code}),
    )
    .await
    .expect_err("own code");
    assert_eq!(err.code, "own_code", "{}", err.message);
    let h: Status = queue(&long.client, queue_endpoint::STATUS, json!({"player": "h"}))
        .await
        .expect("status");
    assert!(
        matches!(&h, Status::Hosting { code, .. } if *code == invite.code),
        "{h:?}"
    );
    // Leaving cancels the code.
    let left: Status = queue(&long.client, queue_endpoint::LEAVE, json!({"player": "h"}))
        .await
        .expect("leave");
    assert_eq!(left, Status::Idle);
    let err = queue::<Status>(
        &long.client,
        queue_endpoint::PRIVATE_JOIN,
        json!({"player": "g", "code": invite.code}),
    )
    .await
    .expect_err("cancelled");
    assert_eq!(err.code, "unknown_code", "{}", err.message);
}

#[tokio::test]
async fn a_rematch_over_nats_starts_a_new_match_after_a_real_one_ends() {
    let sys = system(true).await;
    let first = private_match(&sys, "ann", "ben", "true-grit").await;
    let mut ann = notices(&sys.client, "ann").await;
    let mut ben = notices(&sys.client, "ben").await;
    forfeit(&sys, &first, "ann", "ben").await;

    // A stranger cannot ask.
    let err = queue::<RematchStatus>(
        &sys.client,
        queue_endpoint::REMATCH,
        json!({"player": "cat", "match_id": first}),
    )
    .await
    .expect_err("not a player");
    assert_eq!(err.code, "not_in_match", "{}", err.message);

    let offer: RematchStatus = queue(
        &sys.client,
        queue_endpoint::REMATCH,
        json!({"player": "ben", "match_id": first}),
    )
    .await
    .expect("offer");
    assert!(
        matches!(&offer, RematchStatus::Offered { match_id, .. } if *match_id == first),
        "{offer:?}"
    );
    match next_any_notice(&mut ann).await {
        Notice::RematchOffered { match_id, from, .. } => {
            assert_eq!(match_id, first);
            assert_eq!(from, "ben");
        }
        other => panic!("{other:?}"),
    }
    let accepted: RematchStatus = queue(
        &sys.client,
        queue_endpoint::REMATCH,
        json!({"player": "ann", "match_id": first}),
    )
    .await
    .expect("accept");
    let RematchStatus::Started { match_id: second } = accepted else {
        panic!("{accepted:?}");
    };
    assert_ne!(second, first);
    let (a, b) = (next_notice(&mut ann).await, next_notice(&mut ben).await);
    assert_eq!(a, b);
    assert_eq!(a.match_id, second);
    assert_eq!(a.origin, Origin::Rematch);
    let snapshot: Snapshot = host(&sys.client, endpoint::GET, json!({"match_id": second}))
        .await
        .expect("the rematch exists on the host");
    assert_eq!(snapshot.mode, "true-grit", "the same mode");
    assert_eq!(snapshot.players, ["ann", "ben"]);
    assert!(!snapshot.finished && !snapshot.ranked);
    for p in ["ann", "ben"] {
        let s: Status = queue(&sys.client, queue_endpoint::STATUS, json!({"player": p}))
            .await
            .expect("status");
        assert_eq!(
            s,
            Status::Playing {
                match_id: second.clone()
            }
        );
    }
}

#[tokio::test]
async fn a_rematch_after_the_window_is_refused_over_nats() {
    // Long enough to offer once the end is heard, short enough to wait out.
    let sys = system_with(
        true,
        PrivatePolicy {
            rematch_window_ms: 3_000,
            ..PrivatePolicy::default()
        },
    )
    .await;
    let first = private_match(&sys, "dee", "eve", "classic").await;
    forfeit(&sys, &first, "eve", "dee").await;
    let offer: RematchStatus = queue(
        &sys.client,
        queue_endpoint::REMATCH,
        json!({"player": "dee", "match_id": first}),
    )
    .await
    .expect("in the window");
    assert!(matches!(offer, RematchStatus::Offered { .. }), "{offer:?}");
    tokio::time::sleep(Duration::from_millis(3_500)).await;
    let err = queue::<RematchStatus>(
        &sys.client,
        queue_endpoint::REMATCH,
        json!({"player": "eve", "match_id": first}),
    )
    .await
    .expect_err("too late");
    assert_eq!(err.code, "rematch_expired", "{}", err.message);
    for p in ["dee", "eve"] {
        let s: Status = queue(&sys.client, queue_endpoint::STATUS, json!({"player": p}))
            .await
            .expect("status");
        assert_eq!(s, Status::Idle, "{p}");
    }
}

/// `dashdice bench matchmaker` with 200 tickets at 1,000/s against `sys`.
async fn run_bench(
    sys: &System,
    stub_host: bool,
    seed: u64,
) -> dashdice_tools::bench::matchmaker::Report {
    let store = MatchStore::connect(&sys.redis.url()).await.expect("redis");
    let options = dashdice_tools::bench::matchmaker::Options {
        tickets: 200,
        rate: 1_000.0,
        mode: "classic".into(),
        kind: dashdice_matchmaker::QueueKind::Quick,
        drain: Duration::from_secs(3),
        stub_host,
        seed,
        poor_share: 0.05,
    };
    dashdice_tools::bench::matchmaker::matchmaker(
        sys.client.clone(),
        store,
        &options,
        indicatif::ProgressBar::hidden(),
    )
    .await
    .expect("bench")
}

#[tokio::test]
async fn the_bench_sends_tickets_and_measures() {
    let sys = system(true).await;
    let report = run_bench(&sys, false, 42).await;
    assert_eq!(report.errors, 0, "{report:?}");
    assert_eq!(report.tickets, 200);
    assert!(report.matched_tickets >= 100, "{report:?}");
    assert!(report.immediate > 0 && report.immediate_us_p99 >= report.immediate_us_p50);
    assert_eq!(
        report.matched_tickets + report.waiting_at_end,
        200,
        "every ticket is matched or waiting"
    );
}

/// With `--stub-host` the bench answers match creation itself (with an
/// empty reply), to measure the matchmaker alone.
#[tokio::test]
async fn the_bench_measures_the_matchmaker_alone_with_a_stub_host() {
    let sys = system(false).await;
    let report = run_bench(&sys, true, 7).await;
    assert_eq!(report.errors, 0, "{report:?}");
    assert!(report.matched_tickets >= 100, "{report:?}");
    assert!(report.immediate_us_p50 > 2, "real latencies: {report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matchmaker_at_capacity_refuses_new_work_at_once_and_does_none_of_it() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let mm = Matchmaker::new(
        QueueStore::connect(&redis.url()).await.expect("redis"),
        Policy {
            bot_after_ms: None,
            ..Policy::default()
        },
        ["classic".to_owned()],
        ["eu".to_owned(), "us".to_owned()],
        NatsMatches::new(client.clone()),
        NatsNotify {
            client: client.clone(),
        },
    );
    // One join at a time: a burst must find it busy.
    tokio::spawn(matchmaker_service::run_with(client, mm, 1));
    let client = async_nats::connect(nats.url()).await.expect("nats");
    wait_for_matchmaker(&client).await;

    // Players far apart in rating never pair (and bots are off), so every admitted join
    // leaves a ticket behind.
    let joins = (0..60).map(|n| {
        let client = client.clone();
        async move {
            let player = format!("p{n}");
            let body = json!({"player": player, "mode": "classic", "kind": "quick",
                "region": if n % 2 == 0 { "eu" } else { "us" }, "rating": 100.0 + 150.0 * f64::from(n)});
            let reply = queue::<Status>(&client, queue_endpoint::JOIN, body).await;
            (player, reply)
        }
    });
    let statuses = (0..20).map(|_| {
        let client = client.clone();
        async move {
            queue::<Status>(
                &client,
                queue_endpoint::STATUS,
                json!({"player": "someone"}),
            )
            .await
        }
    });
    let (joined, statuses) = tokio::join!(
        futures_util::future::join_all(joins),
        futures_util::future::join_all(statuses)
    );
    assert!(
        statuses.iter().all(Result::is_ok),
        "status is never refused for capacity"
    );
    let refused: Vec<&String> = joined
        .iter()
        .filter_map(|(player, reply)| match reply {
            Err(e) => {
                assert_eq!(e.code, "unavailable", "{e:?}");
                assert!(e.message.contains("nothing was done"), "{}", e.message);
                Some(player)
            }
            Ok(status) => {
                assert!(matches!(status, Status::Queued { .. }), "{status:?}");
                None
            }
        })
        .collect();
    assert!(
        !refused.is_empty(),
        "a burst of 60 joins finds one at a time busy"
    );
    assert!(refused.len() < 60, "some joins were admitted");
    for player in refused {
        let status = queue::<Status>(&client, queue_endpoint::STATUS, json!({"player": player}))
            .await
            .expect("status");
        assert_eq!(
            status,
            Status::Idle,
            "{player}: a refused join left nothing behind"
        );
    }
}
