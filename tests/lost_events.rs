//! A WebSocket client that misses something on core NATS still learns it
//! (issue 17), on real nats-server and redis-server behind a gateway:
//!
//! - match events the gateway never received (the actions are applied
//!   through a match host of the test's own, which publishes nothing) reach
//!   the client anyway, in order, without duplicates, up to `game_over`;
//! - a player whose match-found notice is lost while being matched learns
//!   of the match from the status pushes, which go on while matching;
//! - once the notice has said where the player is, the status pushes stop,
//!   so a match shorter than their period is not followed by a push naming
//!   it after it ended (the load generator's `in_match` and `stalled`).

use std::time::{Duration, Instant};

use dashdice_match_host::MatchHost;
use dashdice_proto::matches::{ActRequest, CreateMatch, PlayerAction};
use dashdice_proto::queue::{MatchingFor, PlayerState};
use dashdice_store::MatchStore;
use dashdice_store::queues::QueueStore;
use dashdice_tests::stack::*;
use serde_json::{Value, json};

/// Longer than the gateway's quiet spell before it asks for missed events.
const CATCH_UP_WITHIN: Duration = Duration::from_secs(20);

/// A match host on the stack's Redis whose actions publish no events: as
/// far as the gateway can tell, every event it makes is lost.
async fn silent_host(stack: &Stack) -> MatchHost {
    let store = MatchStore::connect(&stack.backend().redis.url())
        .await
        .expect("redis");
    MatchHost::new(dashdice_tests::registry(), store)
}

async fn act(host: &MatchHost, match_id: &str, player: &str, n: u32, action: PlayerAction) -> u64 {
    let applied = host
        .act(&ActRequest {
            match_id: match_id.to_owned(),
            player: player.to_owned(),
            request_id: format!("silent-{n}"),
            action,
        })
        .await
        .expect("an action applied");
    applied.reply.snapshot.seq
}

fn is_event_of(message: &Value, match_id: &str) -> bool {
    message["type"] == "event" && message["match_id"] == match_id
}

/// Takes `match_id`'s events from the browser until the one with `seq`
/// (waiting up to `within`), checking each comes once and in order after
/// `last`. The new last seq.
async fn events_until(
    browser: &mut Browser,
    match_id: &str,
    mut last: u64,
    seq: u64,
    within: Duration,
    seen: &mut Vec<Value>,
) -> u64 {
    let deadline = Instant::now() + within;
    while last < seq {
        let Some(message) = browser
            .wait_until(deadline, |m| is_event_of(m, match_id))
            .await
        else {
            panic!(
                "{}: events up to seq {last} of {match_id}, none after within {within:?} (wanted up to {seq}); backlog {:#?}",
                browser.user, browser.backlog
            );
        };
        let event = message["event"].clone();
        assert_eq!(
            event["seq"].as_u64(),
            Some(last + 1),
            "events in order, each once: {event} after seq {last}"
        );
        last += 1;
        seen.push(event);
    }
    last
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_the_gateway_never_received_still_reach_the_client_up_to_the_end() {
    let stack = Stack::start().await;
    let host = silent_host(&stack).await;
    let created = host
        .create(&CreateMatch {
            mode: "classic".to_owned(),
            players: vec!["alice".to_owned(), "bob".to_owned()],
            options: None,
            match_id: None,
            ranked: false,
            bots: vec![],
        })
        .await
        .expect("a match");
    let match_id = created.snapshot.match_id.clone();
    let mut alice = stack.session("alice").await;
    let answer = alice
        .ok(
            json!({"type": "subscribe", "match_id": match_id, "since": 0}),
            "match",
        )
        .await;
    let mut seen = Vec::new();
    let start = answer["match"]["seq"].as_u64().expect("a seq");
    let mut last = events_until(&mut alice, &match_id, 0, start, PROMPTLY, &mut seen).await;

    // Live events flow as usual...
    let on_turn = created.snapshot.turn.clone().expect("someone's turn");
    let reply = alice
        .request(
            json!({"type": "act", "match_id": match_id, "action": "roll",
            "request_id": "live-1"}),
        )
        .await;
    if on_turn == "alice" {
        assert_eq!(reply["type"], "acted", "{reply}");
        let seq = reply["reply"]["match"]["seq"].as_u64().expect("a seq");
        last = events_until(&mut alice, &match_id, last, seq, PROMPTLY, &mut seen).await;
    } else {
        assert_eq!(reply["error"]["code"], "not_your_turn", "{reply}");
    }

    // ...then an action whose events the gateway never hears of: they come
    // anyway, once the match has been quiet for a while.
    let player_on_turn = host
        .get(&match_id)
        .await
        .expect("the match")
        .turn
        .expect("someone's turn");
    let seq = act(&host, &match_id, &player_on_turn, 1, PlayerAction::Roll).await;
    assert!(seq > last, "the silent roll made events");
    last = events_until(&mut alice, &match_id, last, seq, CATCH_UP_WITHIN, &mut seen).await;

    // The end too, unheard of: the client learns the match finished.
    let seq = act(&host, &match_id, "bob", 2, PlayerAction::Forfeit).await;
    last = events_until(&mut alice, &match_id, last, seq, CATCH_UP_WITHIN, &mut seen).await;
    let end = seen.last().expect("events");
    assert_eq!(
        end["type"], "game_over",
        "the last event ends the match: {end}"
    );
    assert!(host.get(&match_id).await.expect("the match").finished);

    // Exactly the match's events, 1..=last, each once.
    let seqs: Vec<u64> = seen.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    // Nothing more for this match (no duplicate arrives late).
    let late = alice
        .wait_until(Instant::now() + Duration::from_secs(2), |m| {
            is_event_of(m, &match_id)
        })
        .await;
    assert!(late.is_none(), "an event after the end: {late:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_player_whose_match_found_notice_is_lost_while_matching_learns_of_the_match() {
    let stack = Stack::start().await;
    let queues = QueueStore::connect(&stack.backend().redis.url())
        .await
        .expect("redis");
    let host = silent_host(&stack).await;
    let mut alice = stack.session("alice").await;
    let answer = alice
        .ok(
            json!({"type": "join", "mode": "classic", "kind": "quick"}),
            "queue",
        )
        .await;
    assert_eq!(answer["status"]["state"], "queued", "{answer}");

    // A matchmaker takes alice's ticket and starts making her match...
    let queued = queues.state("alice").await.expect("redis").expect("queued");
    let matching = serde_json::to_string(&PlayerState::Matching {
        making: MatchingFor::Ticket("taken".to_owned()),
        since_ms: dashdice_proto::clock::now_ms(),
    })
    .expect("json");
    assert!(
        queues
            .swap("alice", Some(&queued), Some(&matching), None)
            .await
            .expect("redis")
    );
    let pushed = alice
        .wait_for("a status push saying matching", PROMPTLY, |m| {
            m["type"] == "queue" && m.get("id").is_none() && m["status"]["state"] == "matching"
        })
        .await;
    assert_eq!(pushed["status"], json!({"state": "matching"}));

    // ...makes it, and the notice that would tell her is lost (none is
    // published at all).
    let created = host
        .create(&CreateMatch {
            mode: "classic".to_owned(),
            players: vec!["alice".to_owned(), "bob".to_owned()],
            options: None,
            match_id: None,
            ranked: false,
            bots: vec![],
        })
        .await
        .expect("a match");
    let match_id = created.snapshot.match_id;
    let playing = serde_json::to_string(&PlayerState::Playing {
        match_id: match_id.clone(),
        since_ms: dashdice_proto::clock::now_ms(),
    })
    .expect("json");
    assert!(
        queues
            .swap("alice", Some(&matching), Some(&playing), None)
            .await
            .expect("redis")
    );

    let pushed = alice
        .wait_for("a status push naming the match", PROMPTLY, |m| {
            m["type"] == "queue" && m["status"]["state"] == "playing"
        })
        .await;
    assert_eq!(pushed["status"]["match_id"], match_id.as_str());
    let snapshot = alice
        .wait_for("the match, followed", PROMPTLY, |m| {
            m["type"] == "match" && m["match"]["match_id"] == match_id.as_str()
        })
        .await;
    assert_eq!(snapshot["match"]["finished"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_pushes_stop_once_the_match_is_found_so_none_names_it_after_its_end() {
    let stack = Stack::start().await;
    let mut alice = stack.session("alice").await;
    let mut bob = stack.session("bob").await;
    let join = json!({"type": "join", "mode": "last-line", "kind": "quick"});
    let answer = alice.ok(join.clone(), "queue").await;
    assert_eq!(answer["status"]["state"], "queued", "{answer}");
    let answer = bob.ok(join, "queue").await;
    assert_eq!(answer["status"]["state"], "playing", "{answer}");
    let match_id = answer["status"]["match_id"]
        .as_str()
        .expect("a match")
        .to_owned();
    alice
        .wait_for("match_found", PROMPTLY, |m| {
            m["type"] == "match_found" && m["match_id"] == match_id.as_str()
        })
        .await;
    // A short match: bob gives up at once.
    let reply = bob
        .request(
            json!({"type": "act", "match_id": match_id, "action": "forfeit",
            "request_id": "give-up"}),
        )
        .await;
    assert_eq!(reply["type"], "acted", "{reply}");
    alice
        .wait_for("game_over", PROMPTLY, |m| {
            is_event_of(m, &match_id) && m["event"]["type"] == "game_over"
        })
        .await;
    // Status pushes came every second while alice queued (`queued`); the
    // notice ended them. One more would come from the matchmaker before it
    // has heard of the end (`playing` a finished match: a client would
    // take it for a new match), or after (`idle`): either way, none should.
    let nothing = alice
        .wait_until(Instant::now() + Duration::from_millis(2500), |_| false)
        .await;
    assert!(nothing.is_none());
    let after: Vec<&Value> = alice
        .backlog
        .iter()
        .filter(|m| {
            m["type"] == "queue" && m.get("id").is_none() && m["status"]["state"] != "queued"
        })
        .collect();
    assert!(
        after.is_empty(),
        "status pushes after the match was found: {after:?}"
    );
}
