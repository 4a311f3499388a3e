//! Abandoned matches end early (issue 17): through a real gateway, with
//! real nats-server (the project's users and permissions), redis-server
//! and Firestore emulator processes, the matchmaker, the presence role and
//! an archiver, plus a match host with a short reconnect window.
//!
//! - Both players' sockets close: the match ends as void (`abandoned`),
//!   neither stays `playing`, and the record reaches the archive.
//! - One player's socket closes: that player forfeits, the other wins.
//! - A player presence saw leave, who plays on over REST (and an opponent
//!   presence never saw) is not forfeited while they act.
//! - With no presence role answering, nothing ends early; once presence
//!   answers that the players are gone, the match ends.
//!
//! The turn timers (30 s, three timeouts to forfeit) would end these
//! matches only after minutes; every wait here is far shorter, and polls
//! until a deadline.

use std::time::{Duration, Instant};

use dashdice_match_host::MatchHost;
use dashdice_match_host::abandon::ABANDONED;
use dashdice_match_host::service::{self as match_service, Options};
use dashdice_proto::bus::{self, presence_endpoint};
use dashdice_proto::client::{MatchHostClient, Requester};
use dashdice_proto::matches::CreateMatch;
use dashdice_proto::presence::{Presence, PresenceQuery, PresenceStatus};
use dashdice_store::MatchStore;
use dashdice_tests::servers::{NatsServer, RedisServer};
use dashdice_tests::stack::*;
use futures_util::StreamExt;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// The test hosts' reconnect window.
const WINDOW: Duration = Duration::from_secs(2);
/// Far less than the turn timers would take (classic: 30 s a turn, three
/// timeouts in a row to forfeit), and more than the window and a check.
const EARLY: Duration = Duration::from_secs(20);

/// A match host with the short reconnect window, beside the stack's own
/// (which has none), on the same NATS and Redis.
async fn abandoning_host(nats: &NatsServer, redis: &RedisServer) {
    let client = connect_as(nats, "match-host").await;
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    let host = MatchHost::new(dashdice_tests::registry(), store);
    let options = Options {
        reconnect_window: Some(WINDOW),
        ..Options::default()
    };
    tokio::spawn(match_service::run_with(client, host, options));
}

/// The stack, the abandoning host, and `a` and `b` in one match by an
/// invite code, each on a WebSocket session.
async fn two_players(a: &str, b: &str) -> (Stack, Browser, Browser, String) {
    let stack = Stack::start().await;
    abandoning_host(&stack.backend().nats, &stack.backend().redis).await;
    let mut first = stack.session(a).await;
    let mut second = stack.session(b).await;
    let invite = first
        .ok(json!({"type": "invite", "mode": "classic"}), "invite")
        .await;
    let code = invite["invite"]["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let match_id = join_code(&mut first, &mut second, &code).await;
    (stack, first, second, match_id)
}

/// The match over REST, as `who` sees it, once it is finished (or the
/// deadline passes: then the last seen).
async fn finished_within(stack: &Stack, who: &str, match_id: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (status, snapshot) = stack
            .rest(Method::GET, &format!("/matches/{match_id}"), who, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{snapshot}");
        if snapshot["finished"] == true || Instant::now() > deadline {
            return snapshot;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until `who` is no longer `playing` (the matchmaker read the record).
async fn not_playing(stack: &Stack, who: &str) {
    let deadline = Instant::now() + PROMPTLY;
    loop {
        let state = stack.queue_state(who).await;
        if state["state"] != "playing" {
            return;
        }
        assert!(Instant::now() < deadline, "{who} stays playing: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `who`'s archived history entry of `match_id`, once the archiver wrote it.
async fn archived(stack: &Stack, who: &str, match_id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, page) = stack
            .rest(Method::GET, &format!("/users/{who}/matches"), who, None)
            .await;
        if status == StatusCode::OK
            && let Some(entry) = page["entries"]
                .as_array()
                .and_then(|e| e.iter().find(|e| e["match_id"] == match_id))
        {
            return entry.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{match_id} never reached {who}'s history: {status} {page}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The match's events, over REST.
async fn events(stack: &Stack, who: &str, match_id: &str) -> Vec<Value> {
    let (status, events) = stack
        .rest(
            Method::GET,
            &format!("/matches/{match_id}/events?since=0"),
            who,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{events}");
    events.as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_match_both_players_left_ends_as_void() {
    let (stack, ann, ben, match_id) = two_players("ann", "ben").await;
    ann.close().await;
    ben.close().await;

    let snapshot = finished_within(&stack, "ann", &match_id, EARLY).await;
    assert_eq!(snapshot["finished"], true, "not ended early: {snapshot}");
    assert_eq!(snapshot["void"], ABANDONED, "{snapshot}");
    let standings = snapshot["standings"].as_array().expect("standings");
    assert!(
        standings.iter().all(|s| s["result"] == "draw"),
        "no winner: {snapshot}"
    );
    let events = events(&stack, "ann", &match_id).await;
    assert!(
        events.iter().any(|e| e["type"] == "custom"
            && e["name"] == "match_void"
            && e["payload"].as_str().is_some_and(|p| p.contains(ABANDONED))),
        "{events:?}"
    );
    for who in ["ann", "ben"] {
        not_playing(&stack, who).await;
        let entry = archived(&stack, who, &match_id).await;
        assert_eq!(entry["result"], "void", "{entry}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_gone_past_the_window_forfeits() {
    let (stack, _cat, dan, match_id) = two_players("cat", "dan").await;
    dan.close().await;

    let snapshot = finished_within(&stack, "cat", &match_id, EARLY).await;
    assert_eq!(snapshot["finished"], true, "not ended early: {snapshot}");
    assert!(snapshot["void"].is_null(), "{snapshot}");
    let result = |who: &str| {
        snapshot["standings"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["player"] == who))
            .map(|s| s["result"].clone())
    };
    assert_eq!(result("cat"), Some(json!("win")), "{snapshot}");
    assert_eq!(result("dan"), Some(json!("loss")), "{snapshot}");
    let events = events(&stack, "cat", &match_id).await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "forfeited" && e["player"] == "dan"),
        "{events:?}"
    );
    for who in ["cat", "dan"] {
        not_playing(&stack, who).await;
    }
    let entry = archived(&stack, "cat", &match_id).await;
    assert_eq!(entry["result"], "win", "{entry}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_who_act_over_rest_are_not_forfeited() {
    let stack = Stack::start().await;
    abandoning_host(&stack.backend().nats, &stack.backend().redis).await;
    // Eve had a socket once and closed it: presence says she is offline.
    // Fay never connected. Both play over REST only.
    stack.session("eve").await.close().await;
    let (status, invite) = stack
        .rest(
            Method::POST,
            "/matches",
            "eve",
            Some(json!({"mode": "classic"})),
        )
        .await;
    assert!(status.is_success(), "{status} {invite}");
    let (status, joined) = stack
        .rest(
            Method::POST,
            "/matches/join",
            "fay",
            Some(json!({"code": invite["code"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    let match_id = joined["match_id"].as_str().expect("a match id").to_owned();

    // They play on for several windows (or to the end), briskly.
    let until = Instant::now() + 4 * WINDOW;
    let mut snapshot = finished_within(&stack, "eve", &match_id, Duration::ZERO).await;
    let mut n = 0;
    while let Some(player) = turn(&snapshot) {
        if Instant::now() > until {
            break;
        }
        n += 1;
        let action = choose(&snapshot);
        let (status, reply) = stack
            .rest(
                Method::POST,
                &format!("/matches/{match_id}/{action}"),
                &player,
                Some(json!({"request_id": format!("r{n}")})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{player} {action}: {reply}");
        snapshot = reply["match"].clone();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Still on, or won by the dice; never forfeited or void.
    let events = events(&stack, "eve", &match_id).await;
    assert!(
        !events.iter().any(|e| e["type"] == "forfeited"),
        "{events:?}"
    );
    assert!(snapshot["void"].is_null(), "{snapshot}");
    assert!(n > 10, "they played: {n} actions");
}

/// Answers presence queries as the presence role would, saying everyone
/// left a minute ago.
async fn everyone_gone_presence(nats: &NatsServer) {
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let mut queries = client
        .subscribe(bus::presence_request(presence_endpoint::QUERY))
        .await
        .expect("subscribe");
    tokio::spawn(async move {
        while let Some(message) = queries.next().await {
            let Ok(query) = serde_json::from_slice::<PresenceQuery>(&message.payload) else {
                continue;
            };
            let left = dashdice_proto::clock::now_ms() - 60_000;
            let answer: Vec<Presence> = query
                .uids
                .into_iter()
                .map(|uid| Presence {
                    uid,
                    status: PresenceStatus::Offline,
                    last_seen_ms: left,
                    ..Presence::default()
                })
                .collect();
            if let Some(reply) = message.reply {
                let body = json!({ "ok": answer }).to_string();
                let _ = client.publish(reply, body.into()).await;
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_presence_nothing_ends_early() {
    dashdice_service::install_crypto();
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    abandoning_host(&nats, &redis).await;
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let matches = MatchHostClient::new(Requester::new(client, Duration::from_secs(5)));
    let match_id = dashdice_proto::ids::new_match_id().expect("randomness");
    let request = CreateMatch {
        mode: "classic".into(),
        players: vec!["gil".into(), "hal".into()],
        match_id: Some(match_id.clone()),
        ..CreateMatch::default()
    };
    let mut created = Err(None);
    for _ in 0..100 {
        created = matches.start(&request).await.map_err(Some);
        if created.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    created.expect("the host makes the match");

    // Nobody acts, and no presence role answers: past the window and
    // several checks, the match is still on (its turn timer is 30 s).
    tokio::time::sleep(3 * WINDOW).await;
    let snapshot = matches.get(&match_id).await.expect("the match");
    assert!(!snapshot.finished, "ended with no presence: {snapshot:?}");

    // Once presence answers that both left, it ends, as void.
    everyone_gone_presence(&nats).await;
    let deadline = Instant::now() + EARLY;
    let snapshot = loop {
        let snapshot = matches.get(&match_id).await.expect("the match");
        if snapshot.finished || Instant::now() > deadline {
            break snapshot;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(snapshot.finished, "presence says both left: {snapshot:?}");
    assert_eq!(snapshot.void.as_deref(), Some(ABANDONED), "{snapshot:?}");
}
