//! The match host as a NATS micro service, on real nats-server and
//! redis-server processes: whole games over NATS, published events, turn
//! timers firing on their own, bad input, and the NATS service API.

use std::sync::Arc;
use std::time::Duration;

use async_nats::Client;
use dashdice_match_host::service as match_service;
use dashdice_match_host::{ActionReply, MatchHost, SequencedEvent, Snapshot};
use dashdice_mode_sdk::{EndReason, Event};
use dashdice_proto::bus::{self, ErrorBody, Reply, endpoint};
use dashdice_runtime::fair_dice::{MatchRecord, verify};
use dashdice_runtime::registry::ModeRegistry;
use dashdice_store::MatchStore;
use dashdice_tests::servers::{NatsServer, RedisServer};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

struct System {
    _nats: NatsServer,
    redis: RedisServer,
    client: Client,
    registry: Arc<ModeRegistry>,
}

/// Servers on free ports and `hosts` match-host instances in one queue group.
async fn system(hosts: usize, turn_time_ms: Option<u64>) -> System {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let registry = dashdice_tests::registry();
    for _ in 0..hosts {
        let client = async_nats::connect(nats.url()).await.expect("nats");
        let store = MatchStore::connect(&redis.url()).await.expect("redis");
        let mut host = MatchHost::new(registry.clone(), store);
        host.turn_time_ms = turn_time_ms;
        tokio::spawn(match_service::run(client, host));
    }
    let client = async_nats::connect(nats.url()).await.expect("nats");
    // Wait until a host answers a real request (unknown match is an answer).
    for _ in 0..250 {
        let probe = client
            .request(
                bus::match_request(endpoint::GET),
                r#"{"match_id":"probe"}"#.into(),
            )
            .await;
        if probe.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    System {
        _nats: nats,
        redis,
        client,
        registry,
    }
}

async fn call<T: DeserializeOwned>(
    client: &Client,
    name: &str,
    body: Value,
) -> Result<T, ErrorBody> {
    call_raw(client, name, body.to_string().into_bytes()).await
}

async fn call_raw<T: DeserializeOwned>(
    client: &Client,
    name: &str,
    body: Vec<u8>,
) -> Result<T, ErrorBody> {
    let message = client
        .request(bus::match_request(name), body.into())
        .await
        .expect("a reply");
    serde_json::from_slice::<Reply<T>>(&message.payload)
        .expect("an envelope")
        .into_result()
}

#[tokio::test]
async fn a_full_game_of_every_mode_over_nats() {
    let sys = system(2, None).await;
    for mode in ["classic", "zero-hour", "last-line", "true-grit"] {
        let created: ActionReply = call(
            &sys.client,
            endpoint::CREATE,
            json!({"mode": mode, "players": ["alice", "bob"]}),
        )
        .await
        .expect("create");
        let id = created.snapshot.match_id.clone();
        let mut published = sys
            .client
            .subscribe(bus::match_events(&id))
            .await
            .expect("subscribe");
        let mut ended = sys
            .client
            .subscribe(bus::MATCH_ENDED)
            .await
            .expect("subscribe");
        sys.client.flush().await.expect("flush");
        let mut snapshot = created.snapshot;
        let mut replied: Vec<SequencedEvent> = created.events;
        let mut n = 0;
        while let Some(player) = snapshot.turn.clone() {
            n += 1;
            let bank = mode != "true-grit" && snapshot.view["turn_score"].as_i64() >= Some(20);
            let action = if bank { "bank" } else { "roll" };
            let reply: ActionReply = call(
                &sys.client,
                endpoint::ACT,
                json!({"match_id": id, "player": player, "request_id": format!("r{n}"), "action": action}),
            )
            .await
            .expect("act");
            replied.extend(reply.events);
            snapshot = reply.snapshot;
        }
        let last = replied.last().expect("events").seq;
        assert_eq!(
            replied.iter().map(|e| e.seq).collect::<Vec<_>>(),
            (1..=last).collect::<Vec<_>>(),
            "{mode}: replies are gap-free"
        );
        // Everything after the create reply was also published, in order.
        let mut seen = Vec::new();
        while seen.len() < (last - 1) as usize {
            let message = tokio::time::timeout(Duration::from_secs(5), published.next())
                .await
                .expect("events keep coming")
                .expect("subscription open");
            let event: SequencedEvent = serde_json::from_slice(&message.payload).expect("event");
            seen.push(event);
        }
        assert_eq!(seen, replied[1..], "{mode}: published = replied");
        let message = tokio::time::timeout(Duration::from_secs(5), ended.next())
            .await
            .expect("the end is announced")
            .expect("subscription");
        let announced: bus::MatchEnded = serde_json::from_slice(&message.payload).expect("ended");
        assert_eq!(announced.match_id, id);
        let all: Vec<SequencedEvent> = call(
            &sys.client,
            endpoint::EVENTS,
            json!({"match_id": id, "after": 0}),
        )
        .await
        .expect("events");
        assert_eq!(all, replied);
        let record: MatchRecord = call(&sys.client, endpoint::RECORD, json!({"match_id": id}))
            .await
            .expect("record");
        let version = sys
            .registry
            .version(mode, record.mode_version)
            .expect("version");
        verify(&version, &record).expect("the match verifies");
        // The final view, exactly as `get` answers it, verifies too, and it
        // is the same record the last action's reply carried.
        let final_view = sys
            .client
            .request(
                bus::match_request(endpoint::GET),
                json!({"match_id": id}).to_string().into(),
            )
            .await
            .expect("get");
        verify_file(&format!("{mode}-final"), &final_view.payload)
            .expect("the final view verifies");
        assert_eq!(snapshot.record().as_ref(), Some(&record));
        let mut tampered: Value = serde_json::from_slice(&final_view.payload).expect("json");
        let actions = tampered["ok"]["actions"].as_array_mut().expect("actions");
        let roll = actions
            .iter_mut()
            .find(|a| a["action"] == "roll")
            .expect("a roll");
        roll["dice"] = if roll["dice"] == json!([6, 6]) {
            json!([1, 2])
        } else {
            json!([6, 6])
        };
        let err = verify_file(&format!("{mode}-tampered"), tampered.to_string().as_bytes())
            .expect_err("a tampered final view");
        assert!(err.contains("the record shows dice"), "{err}");
    }
}

/// `dashdice match verify` on `json`, written to a file.
fn verify_file(name: &str, json: &[u8]) -> Result<String, String> {
    use clap::Parser;
    let path = std::env::temp_dir().join(format!("dashdice-{}-{name}.json", std::process::id()));
    std::fs::write(&path, json).expect("write");
    let cli = dashdice::cli::Cli::try_parse_from([
        "dashdice",
        "match",
        "verify",
        path.to_str().expect("utf-8"),
    ])
    .expect("parse");
    let mut out = Vec::new();
    let result = dashdice::cli::run(cli, &mut out);
    let _ = std::fs::remove_file(&path);
    result
        .map(|()| String::from_utf8_lossy(&out).into_owned())
        .map_err(|e| e.to_string())
}

#[tokio::test]
async fn turn_timers_fire_by_themselves_and_three_in_a_row_forfeit() {
    let sys = system(2, Some(150)).await;
    let created: ActionReply = call(
        &sys.client,
        endpoint::CREATE,
        json!({"mode": "last-line", "players": ["alice", "bob"]}),
    )
    .await
    .expect("create");
    let id = created.snapshot.match_id.clone();
    let first = created.snapshot.turn.clone().expect("turn");
    let mut published = sys
        .client
        .subscribe(bus::match_events(&id))
        .await
        .expect("subscribe");
    let mut timeouts = Vec::new();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), published.next())
            .await
            .expect("timers fire without anyone acting")
            .expect("subscription");
        let event: SequencedEvent = serde_json::from_slice(&message.payload).expect("event");
        match event.event {
            Event::TimedOut { player } => timeouts.push(player),
            Event::GameOver { reason, standings } => {
                assert_eq!(reason, EndReason::Forfeit);
                assert_ne!(standings[0].player, first);
                break;
            }
            _ => {}
        }
    }
    // first, second, first, second time out; the first player's third forfeits.
    assert_eq!(timeouts.len(), 4, "{timeouts:?}");
    assert_eq!(timeouts[0], first);
    let done: Snapshot = call(&sys.client, endpoint::GET, json!({"match_id": id}))
        .await
        .expect("get");
    assert!(done.finished);
    let events: Vec<SequencedEvent> = call(&sys.client, endpoint::EVENTS, json!({"match_id": id}))
        .await
        .expect("events");
    let forfeits = events
        .iter()
        .filter(|e| matches!(e.event, Event::Forfeited { .. }))
        .count();
    assert_eq!(forfeits, 1, "two hosts, one firing per timer");
}

#[tokio::test]
async fn bad_requests_get_clear_errors_over_nats() {
    let sys = system(1, None).await;
    let err = call_raw::<Value>(&sys.client, endpoint::ACT, b"{not json".to_vec())
        .await
        .expect_err("malformed");
    assert_eq!(err.code, "bad_request");
    assert!(err.message.contains("malformed request"), "{}", err.message);
    let err = call::<Value>(
        &sys.client,
        endpoint::CREATE,
        json!({"mode": "chess", "players": ["a", "b"]}),
    )
    .await
    .expect_err("unknown mode");
    assert_eq!(err.code, "unknown_mode");
    let err = call::<Value>(
        &sys.client,
        endpoint::ACT,
        json!({"match_id": "nope", "player": "a", "request_id": "1", "action": "roll"}),
    )
    .await
    .expect_err("unknown match");
    assert_eq!(err.code, "unknown_match");
    let err = call::<Value>(
        &sys.client,
        endpoint::ACT,
        json!({"match_id": "nope", "player": "a", "request_id": "1", "action": "roll", "dice": [6, 6]}),
    )
    .await
    .expect_err("clients cannot send dice");
    assert_eq!(err.code, "bad_request");
    let err = call_raw::<Value>(&sys.client, endpoint::GET, vec![b' '; 20_000])
        .await
        .expect_err("too large");
    assert_eq!(err.code, "too_large");

    let created: ActionReply = call(
        &sys.client,
        endpoint::CREATE,
        json!({"mode": "classic", "players": ["a", "b"]}),
    )
    .await
    .expect("create");
    let id = created.snapshot.match_id;
    let err = call::<Value>(
        &sys.client,
        endpoint::ACT,
        json!({"match_id": id, "player": "mallory", "request_id": "1", "action": "roll"}),
    )
    .await
    .expect_err("not a player");
    assert_eq!(err.code, "not_a_player");
    let err = call::<Value>(&sys.client, endpoint::RECORD, json!({"match_id": id}))
        .await
        .expect_err("still playing");
    assert_eq!(err.code, "rejected");
    let now: Snapshot = call(&sys.client, endpoint::GET, json!({"match_id": id}))
        .await
        .expect("get");
    assert_eq!(now.seq, 1, "nothing was applied");
}

#[tokio::test]
async fn the_nats_service_api_answers() {
    let sys = system(2, None).await;
    let info = sys
        .client
        .request("$SRV.INFO.dashdice-match-host", "".into())
        .await
        .expect("info");
    let info: Value = serde_json::from_slice(&info.payload).expect("json");
    assert_eq!(info["name"], "dashdice-match-host");
    let subjects: Vec<&str> = info["endpoints"]
        .as_array()
        .expect("endpoints")
        .iter()
        .map(|e| e["subject"].as_str().expect("subject"))
        .collect();
    for name in ["create", "act", "get", "events", "record"] {
        assert!(
            subjects.contains(&bus::match_request(name).as_str()),
            "{subjects:?}"
        );
    }
    // Both instances answer PING.
    let mut pings = sys.client.subscribe("test.pings").await.expect("inbox");
    sys.client
        .publish_with_reply("$SRV.PING.dashdice-match-host", "test.pings", "".into())
        .await
        .expect("ping");
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(5), pings.next())
            .await
            .expect("a pong")
            .expect("subscription");
    }
    let _ = call::<Value>(&sys.client, endpoint::GET, json!({"match_id": "x"})).await;
    let stats = sys
        .client
        .request("$SRV.STATS.dashdice-match-host", "".into())
        .await
        .expect("stats");
    let stats: Value = serde_json::from_slice(&stats.payload).expect("json");
    assert_eq!(stats["name"], "dashdice-match-host");
}

#[tokio::test]
async fn the_project_config_lets_only_match_hosts_publish_match_events() {
    let nats = NatsServer::start_with_project_config();
    let connect = |user: &'static str| {
        let url = nats.url();
        async move {
            async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-dev"))
                .connect(url)
                .await
                .expect("connect")
        }
    };
    let ops = connect("ops").await;
    let mut watched = ops
        .subscribe("dd.match.m1.events")
        .await
        .expect("ops may watch");
    ops.flush().await.expect("flush");
    let gateway = connect("gateway").await;
    let host = connect("match-host").await;
    // The gateway's forged event is refused by the server; the host's arrives.
    gateway
        .publish("dd.match.m1.events", "forged".into())
        .await
        .expect("the client sends it");
    gateway.flush().await.expect("flush");
    host.publish("dd.match.m1.events", "real".into())
        .await
        .expect("publish");
    host.flush().await.expect("flush");
    let first = tokio::time::timeout(Duration::from_secs(5), watched.next())
        .await
        .expect("an event")
        .expect("subscription");
    assert_eq!(&first.payload[..], b"real");
    // A wrong password is refused outright.
    assert!(
        async_nats::ConnectOptions::with_user_and_password("gateway".into(), "guess".into())
            .connect(nats.url())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn the_bench_drives_matches_and_measures() {
    let sys = system(1, None).await;
    let store = MatchStore::connect(&sys.redis.url()).await.expect("redis");
    let options = dashdice_tools::bench::Options {
        matches: 4,
        duration: Duration::from_millis(1500),
        mode: "classic".into(),
        rate: Some(200.0),
    };
    let report = dashdice_tools::bench::match_host(
        sys.client.clone(),
        store,
        &options,
        indicatif::ProgressBar::hidden(),
    )
    .await
    .expect("bench");
    assert_eq!(report.errors, 0);
    assert!(report.actions > 20, "{report:?}");
    assert!(report.latency_us_p50 > 0 && report.latency_us_p50 <= report.latency_us_p99);
    assert!(report.redis_bytes_per_live_match > 0, "{report:?}");
    assert!(report.render().contains("offered 200 actions/s"));
}
