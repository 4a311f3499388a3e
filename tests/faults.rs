//! The fault suite (issue 17): a whole system of real processes (two
//! gateways, two match hosts, matchmakers and presence, on their own
//! nats-server and redis-server) under a load of players, and one fault
//! each: a role killed (-9), NATS restarted, Redis paused, a client that
//! never reads, a connection flood, and a node of a three-node NATS cluster
//! killed. After each, the load drains and the audit
//! (`dashdice_tests::faults`) checks that nothing was lost, and prints
//! `FAULT <name>: recovery=..ms refused=.. matches=..`.
//!
//! `cargo test -p dashdice-tests --test faults -- --nocapture` shows the
//! figures. The tests take turns (each runs a whole system).

use std::time::{Duration, Instant};

use dashdice_tests::faults::{Audit, Load, LoadOptions, System, SystemOptions, rest};
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BIN: &str = env!("CARGO_BIN_EXE_dashdice-under-test");

/// One whole system at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Load before the fault, and after it before the players stop queueing.
const BEFORE: Duration = Duration::from_secs(5);
const AFTER: Duration = Duration::from_secs(8);
/// How long the players may take to finish their matches after the stop.
const DRAIN: Duration = Duration::from_secs(90);

/// Starts a system and the load, runs `fault` after [`BEFORE`], keeps the
/// load on for [`AFTER`], drains and audits.
async fn under_load<F>(name: &str, options: SystemOptions, fault: F) -> (System, Audit)
where
    F: AsyncFnOnce(&mut System),
{
    let mut system = System::start(BIN, options).await;
    let load = Load::start(&system, LoadOptions::default());
    tokio::time::sleep(BEFORE).await;
    let fault_at = Instant::now();
    fault(&mut system).await;
    tokio::time::sleep(AFTER).await;
    let tally = load.drain(DRAIN).await;
    let audit = system.audit(name, &tally, fault_at).await;
    (system, audit)
}

/// Kills `role` (-9) and starts it again after `down`, as a supervisor
/// would.
async fn kill_and_restart(system: &mut System, role: &str, down: Duration) {
    system.role(role).kill();
    tokio::time::sleep(down).await;
    system.role(role).restart();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_match_host_killed_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (_system, audit) = under_load(
        "kill-match-host",
        SystemOptions::default(),
        async |s: &mut System| kill_and_restart(s, "match-host-0", Duration::from_secs(2)).await,
    )
    .await;
    audit.assert_nothing_lost("kill-match-host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matchmaker_killed_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (_system, audit) = under_load(
        "kill-matchmaker",
        SystemOptions::default(),
        async |s: &mut System| kill_and_restart(s, "matchmaker-0", Duration::from_secs(2)).await,
    )
    .await;
    audit.assert_nothing_lost("kill-matchmaker");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_killed_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (_system, audit) = under_load(
        "kill-gateway",
        SystemOptions::default(),
        async |s: &mut System| kill_and_restart(s, "gateway-0", Duration::from_secs(2)).await,
    )
    .await;
    audit.assert_nothing_lost("kill-gateway");
    assert!(
        audit.refused.get("disconnected").copied().unwrap_or(0) > 0,
        "the players on the killed gateway noticed it: {:?}",
        audit.refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_killed_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (_system, audit) = under_load(
        "kill-presence",
        SystemOptions::default(),
        async |s: &mut System| kill_and_restart(s, "presence", Duration::from_secs(2)).await,
    )
    .await;
    audit.assert_nothing_lost("kill-presence");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_restarted_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (_system, audit) = under_load(
        "nats-restart",
        SystemOptions::default(),
        // The same port and the same store: the record stream survives.
        async |s: &mut System| s.nats[0].restart(),
    )
    .await;
    audit.assert_nothing_lost("nats-restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_paused_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let (_system, audit) = under_load(
        "redis-pause",
        SystemOptions::default(),
        async |s: &mut System| {
            s.redis.pause();
            tokio::time::sleep(Duration::from_secs(3)).await;
            s.redis.resume();
        },
    )
    .await;
    audit.assert_nothing_lost("redis-pause");
}

/// A WebSocket whose receive buffer is tiny and which never reads: what
/// the gateway sends it piles up in the gateway.
async fn non_reading_socket(
    base: &str,
    token: &str,
) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let addr: std::net::SocketAddr = base
        .trim_start_matches("http://")
        .parse()
        .expect("a gateway address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("a small buffer");
    let stream = socket.connect(addr).await.expect("connect");
    let mut request = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, stream)
        .await
        .expect("upgrade");
    let welcome = tokio::time::timeout(Duration::from_secs(10), ws.next()).await;
    assert!(
        matches!(welcome, Ok(Some(Ok(Message::Text(_))))),
        "welcome: {welcome:?}"
    );
    ws
}

/// The value of the gateway's counter `name` with `label` (0 if absent).
async fn counter(system: &System, gateway: usize, name: &str, label: &str) -> f64 {
    let text = system
        .http
        .get(format!("{}/api/v1/metrics", system.gateways[gateway]))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|l| l.starts_with(name) && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_never_reads_is_cut_off_and_hurts_nobody() {
    let _serial = SERIAL.lock().await;
    let mut system = System::start(BIN, SystemOptions::default()).await;
    let load = Load::start(&system, LoadOptions::default());
    tokio::time::sleep(BEFORE).await;

    // The slow player's session never reads; its match is played over REST
    // by both players, then the session asks for the whole match again and
    // again (each `subscribe` since 0 is the snapshot and every event).
    let base = system.gateways[0].clone();
    let (slow, other) = (system.token("slow"), system.token("other"));
    let mut ws = non_reading_socket(&base, &slow).await;
    let fault_at = Instant::now();
    let call = |method, path: String, token: String, body| {
        let http = system.http.clone();
        let base = base.clone();
        async move {
            let (status, body) = rest(&http, &base, method, &path, &token, body)
                .await
                .expect("rest");
            assert!(status.is_success(), "{path}: {status} {body}");
            body
        }
    };
    let invite = call(
        reqwest::Method::POST,
        "/matches".into(),
        slow.clone(),
        Some(json!({"mode": "classic"})),
    )
    .await;
    let joined = call(
        reqwest::Method::POST,
        "/matches/join".into(),
        other.clone(),
        Some(json!({"code": invite["code"]})),
    )
    .await;
    let match_id = joined["match_id"].as_str().expect("a match").to_owned();
    load.tally.note_match(&match_id);
    let mut snapshot = call(
        reqwest::Method::GET,
        format!("/matches/{match_id}"),
        slow.clone(),
        None,
    )
    .await;
    let mut n = 0;
    while snapshot["finished"] != true {
        n += 1;
        assert!(n < 2_000, "the match ends");
        let player = snapshot["turn"].as_str().expect("a turn");
        let token = if player == "slow" { &slow } else { &other };
        let action = if snapshot["view"]["turn_score"].as_i64() >= Some(20) {
            "bank"
        } else {
            "roll"
        };
        let reply = call(
            reqwest::Method::POST,
            format!("/matches/{match_id}/{action}"),
            token.clone(),
            Some(json!({"request_id": format!("slow-{n}")})),
        )
        .await;
        snapshot = reply["match"].clone();
    }
    let dropped_before = counter(&system, 0, "dashdice_gateway_ws_dropped_total", "too_slow").await;
    let mut cut_off = false;
    let flood_until = Instant::now() + Duration::from_secs(30);
    let mut k = 0;
    while Instant::now() < flood_until {
        k += 1;
        let subscribe = json!({"v": 1, "type": "subscribe", "id": format!("s{k}"),
            "match_id": match_id, "since": 0});
        let sent = tokio::time::timeout(
            Duration::from_secs(2),
            ws.send(Message::text(subscribe.to_string())),
        )
        .await;
        if !matches!(sent, Ok(Ok(()))) {
            cut_off = true;
            break;
        }
        if k % 20 == 0
            && counter(&system, 0, "dashdice_gateway_ws_dropped_total", "too_slow").await
                > dropped_before
        {
            cut_off = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        cut_off,
        "the gateway never cut the client off ({k} subscribes)"
    );
    // Reading now: what was buffered, then the end (a 4008 close frame, or
    // the connection gone when even the frame found no room).
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        let mut close = None;
        while let Some(frame) = ws.next().await {
            match frame {
                Ok(Message::Close(frame)) => close = frame.map(|f| u16::from(f.code)),
                Ok(_) => {}
                Err(_) => break,
            }
        }
        close
    })
    .await
    .expect("the connection ends");
    assert!(
        ended.is_none() || ended == Some(4008),
        "closed as too slow, got {ended:?}"
    );
    assert!(
        counter(&system, 0, "dashdice_gateway_ws_dropped_total", "too_slow").await > dropped_before,
        "the gateway counts the drop"
    );

    tokio::time::sleep(AFTER).await;
    let tally = load.drain(DRAIN).await;
    let audit = system.audit("slow-client", &tally, fault_at).await;
    audit.assert_nothing_lost("slow-client");
    assert_eq!(
        audit.refused_total(),
        0,
        "the other players were not hurt: {:?}",
        audit.refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_flood_leaves_players_unaffected() {
    let _serial = SERIAL.lock().await;
    let mut system = System::start(BIN, SystemOptions::default()).await;
    let load = Load::start(&system, LoadOptions::default());
    tokio::time::sleep(BEFORE).await;
    let fault_at = Instant::now();
    let addr: std::net::SocketAddr = system.gateways[0]
        .trim_start_matches("http://")
        .parse()
        .expect("address");
    // Thousands of idle connections, connected and never sending a byte,
    // from another address than the players' (127.0.0.2, loopback too).
    let mut idle = Vec::new();
    let mut refused = 0;
    for _ in 0..3_000 {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, 2], 0)))
            .expect("bind 127.0.0.2");
        match tokio::time::timeout(Duration::from_secs(2), socket.connect(addr)).await {
            Ok(Ok(stream)) => idle.push(stream),
            _ => refused += 1,
        }
    }
    // The gateway still answers while they are held.
    let health = system
        .http
        .get(format!("{}/api/v1/health", system.gateways[0]))
        .send()
        .await
        .map(|r| r.status().as_u16());
    assert_eq!(health.ok(), Some(200), "health during the flood");
    tokio::time::sleep(AFTER).await;
    println!(
        "flood: {} idle connections held, {refused} not made",
        idle.len()
    );
    drop(idle);
    let tally = load.drain(DRAIN).await;
    let audit = system.audit("connection-flood", &tally, fault_at).await;
    audit.assert_nothing_lost("connection-flood");
    assert_eq!(
        audit.refused_total(),
        0,
        "the players were not hurt: {:?}",
        audit.refused
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nats_cluster_node_killed_under_load_loses_nothing() {
    let _serial = SERIAL.lock().await;
    let options = SystemOptions {
        cluster: true,
        ..SystemOptions::default()
    };
    let (system, audit) = under_load(
        "nats-cluster-node-kill",
        options,
        // Killed for good: two of three nodes carry on.
        async |s: &mut System| s.nats[0].kill(),
    )
    .await;
    audit.assert_nothing_lost("nats-cluster-node-kill");
    assert_eq!(
        system.record_stream_replicas().await,
        Ok(3),
        "the roles made the record stream with three replicas"
    );
    assert!(
        audit.finished_after_fault > 0,
        "records were written with a node down (quorum 2 of 3)"
    );
}
