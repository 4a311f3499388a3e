//! What operators see: a request's trace context crosses NATS into the match
//! host, whose spans (mode call, Redis round trips) join the caller's trace;
//! a queue join's trace goes on through the matchmaker into the host; events
//! carry it on; and the host process exports Prometheus metrics.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use dashdice_gateway::{self as gateway, AuthConfig, Gateway, GatewayConfig, Limits};
use dashdice_match_host::service as match_service;
use dashdice_match_host::{ActionReply, MatchHost};
use dashdice_matchmaker::service::{self as matchmaker_service, NatsMatches, NatsNotify};
use dashdice_matchmaker::{Matchmaker, Policy};
use dashdice_proto::bus::{self, endpoint};
use dashdice_proto::client::{MatchmakerClient, Requester};
use dashdice_proto::queue::{JoinRequest, Opponent, QueueKind, Status};
use dashdice_service::telemetry;
use dashdice_store::MatchStore;
use dashdice_store::queues::QueueStore;
use dashdice_tests::servers::{NatsServer, RedisServer, free_port};
use futures_util::StreamExt;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{Value, json};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

fn traceparent() -> async_nats::HeaderMap {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", format!("00-{TRACE}-{PARENT}-01").as_str());
    headers
}

/// A traced request; `None` until a host answers.
async fn request(client: &async_nats::Client, name: &str, body: Value) -> Option<Value> {
    let reply = client
        .request_with_headers(
            bus::match_request(name),
            traceparent(),
            body.to_string().into(),
        )
        .await
        .ok()?;
    let mut reply: Value = serde_json::from_slice(&reply.payload).expect("json");
    Some(reply["ok"].take())
}

/// The process's tracer (the subscriber is global, so the tests share it
/// and tell their spans apart by trace id).
fn tracing_to_memory() -> &'static (InMemorySpanExporter, SdkTracerProvider) {
    static TRACING: OnceLock<(InMemorySpanExporter, SdkTracerProvider)> = OnceLock::new();
    TRACING.get_or_init(|| {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        telemetry::install(provider.clone());
        (exporter, provider)
    })
}

/// Servers, a match host, a client, and a classic match made with a traced
/// request (retried until the host answers).
async fn host_with_a_match() -> (NatsServer, RedisServer, async_nats::Client, ActionReply) {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    tokio::spawn(match_service::run(
        async_nats::connect(nats.url()).await.expect("nats"),
        MatchHost::new(dashdice_tests::registry(), store),
    ));
    let client = async_nats::connect(nats.url()).await.expect("nats");
    for _ in 0..250 {
        let players = json!({"mode": "classic", "players": ["alice", "bob"]});
        if let Some(created) = request(&client, endpoint::CREATE, players).await {
            let created = serde_json::from_value(created).expect("created");
            return (nats, redis, client, created);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no match host answered");
}

fn named<'a>(spans: &'a [SpanData], name: &str) -> Vec<&'a SpanData> {
    spans.iter().filter(|s| s.name == name).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_requests_trace_continues_through_the_host_into_redis_and_events() {
    let (exporter, provider) = tracing_to_memory();

    let (_nats, _redis, client, created) = host_with_a_match().await;
    let id = created.snapshot.match_id.clone();
    let mut events = client
        .subscribe(bus::match_events(&id))
        .await
        .expect("subscribe");
    let player = created.snapshot.turn.clone().expect("turn");
    let rolled = request(
        &client,
        endpoint::ACT,
        json!({"match_id": id, "player": player, "request_id": "r1", "action": "roll"}),
    )
    .await
    .expect("act");
    assert!(rolled["events"].is_array(), "{rolled}");

    // The published events carry the acting request's trace.
    let event = tokio::time::timeout(Duration::from_secs(5), events.next())
        .await
        .expect("an event")
        .expect("subscription");
    let carried = event
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_owned())
        .expect("events carry a traceparent");
    assert!(carried.starts_with(&format!("00-{TRACE}-")), "{carried}");

    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let trace = TraceId::from_hex(TRACE).expect("trace id");
    let parent = SpanId::from_hex(PARENT).expect("span id");
    let requests: Vec<&SpanData> = named(&spans, "match request")
        .into_iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .collect();
    assert!(
        requests.len() >= 2,
        "create and act joined the trace: {requests:#?}"
    );
    for r in &requests {
        assert_eq!(r.parent_span_id, parent, "the caller's span is the parent");
    }
    let act = requests
        .iter()
        .find(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "endpoint" && kv.value.as_str() == "act")
        })
        .expect("the act request span");
    let children = |name: &str| -> Vec<&SpanData> {
        named(&spans, name)
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect()
    };
    let redis_ops: Vec<String> = children("redis")
        .iter()
        .filter(|s| s.parent_span_id == act.span_context.span_id())
        .flat_map(|s| s.attributes.iter())
        .filter(|kv| kv.key.as_str() == "op")
        .map(|kv| kv.value.as_str().into_owned())
        .collect();
    assert_eq!(
        redis_ops,
        ["load", "commit"],
        "an action is two round trips"
    );
    assert!(
        children("mode")
            .iter()
            .any(|s| s.parent_span_id == act.span_context.span_id()),
        "the mode call is in the trace"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_goes_from_a_queue_join_through_the_matchmaker_into_the_hosts_redis() {
    let (exporter, provider) = tracing_to_memory();
    let (nats, redis, _client, _created) = host_with_a_match().await;
    let mm_client = async_nats::connect(nats.url()).await.expect("nats");
    let matchmaker = Matchmaker::new(
        QueueStore::connect(&redis.url()).await.expect("redis"),
        Policy::default(),
        ["classic".to_owned()],
        ["eu".to_owned()],
        NatsMatches::new(mm_client.clone()),
        NatsNotify {
            client: mm_client.clone(),
        },
    );
    tokio::spawn(matchmaker_service::run(mm_client, matchmaker));

    // The caller's span, in a trace of its own; the typed client puts its
    // context in the request's headers.
    const JOIN_TRACE: &str = "5cf92f3577b34da6a3ce929d0e0e4799";
    let caller = tracing::info_span!(target: "dashdice", "caller");
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        bus::TRACE_HEADERS[0],
        format!("00-{JOIN_TRACE}-{PARENT}-01").as_str(),
    );
    {
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let _ = caller.set_parent(bus::trace_context(Some(&headers)));
    }
    let trace = TraceId::from_hex(JOIN_TRACE).expect("trace id");
    let queue = MatchmakerClient::new(Requester::new(
        async_nats::connect(nats.url()).await.expect("nats"),
        Duration::from_secs(5),
    ));
    let join = JoinRequest {
        player: "carol".to_owned(),
        mode: "classic".to_owned(),
        kind: QueueKind::Quick,
        region: "eu".to_owned(),
        latency_ms: Default::default(),
        connection: Default::default(),
        rating: None,
        opponent: Opponent::Bot,
    };
    let mut status = None;
    for _ in 0..250 {
        use tracing::Instrument;
        match queue.join(&join).instrument(caller.clone()).await {
            Ok(s) => {
                status = Some(s);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let status = status.expect("the matchmaker answered");
    assert!(matches!(status, Status::Playing { .. }), "{status:?}");
    drop(caller);

    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let in_trace = |name: &str| -> Vec<&SpanData> {
        named(&spans, name)
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .collect()
    };
    let joins = in_trace("queue request");
    assert_eq!(joins.len(), 1, "the join joined the caller's trace");
    let creates: Vec<&SpanData> = in_trace("match request")
        .into_iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "endpoint" && kv.value.as_str() == "create")
        })
        .collect();
    assert_eq!(creates.len(), 1, "the host's create is in the same trace");
    let stored = in_trace("redis")
        .into_iter()
        .any(|s| s.parent_span_id == creates[0].span_context.span_id());
    assert!(stored, "the host's Redis round trip is in the same trace");
}

#[tokio::test(flavor = "multi_thread")]
async fn one_trace_goes_from_the_gateway_through_the_host_into_redis() {
    const GATEWAY_TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const CALLER: &str = "b7ad6b7169203331";
    let (exporter, provider) = tracing_to_memory();
    let (nats, _redis, _client, created) = host_with_a_match().await;
    let id = created.snapshot.match_id.clone();
    let player = created.snapshot.turn.clone().expect("turn");

    let config = GatewayConfig {
        auth: AuthConfig {
            dev_secret: Some("trace-test-secret".to_owned()),
            ..AuthConfig::default()
        },
        limits: Limits::default(),
        cors_origins: Vec::new(),
        default_region: "eu".to_owned(),
        trust_forwarded_for: false,
    };
    let gateway = Arc::new(
        Gateway::new(
            config,
            async_nats::connect(nats.url()).await.expect("nats"),
            None,
            telemetry::prometheus(),
        )
        .expect("gateway"),
    );
    let token = gateway
        .auth
        .dev_token(&player, Duration::from_secs(60))
        .expect("token")
        .token;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}/api/v1", listener.local_addr().expect("addr"));
    tokio::spawn(gateway::serve(listener, gateway, std::future::pending()));

    let http = reqwest::Client::new();
    let rolled = http
        .post(format!("{base}/matches/{id}/roll"))
        .bearer_auth(&token)
        .header("traceparent", format!("00-{GATEWAY_TRACE}-{CALLER}-01"))
        .header("idempotency-key", "g1")
        .send()
        .await
        .expect("http");
    assert_eq!(rolled.status(), reqwest::StatusCode::OK);

    provider.force_flush().expect("flush");
    let spans = exporter.get_finished_spans().expect("spans");
    let trace = TraceId::from_hex(GATEWAY_TRACE).expect("trace id");
    let in_trace = |name: &str| -> Vec<SpanData> {
        named(&spans, name)
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace)
            .cloned()
            .collect()
    };
    let http_span = in_trace("http request")
        .into_iter()
        .next()
        .expect("the gateway's span joined the caller's trace");
    assert_eq!(
        http_span.parent_span_id,
        SpanId::from_hex(CALLER).expect("id")
    );
    let act = in_trace("match request")
        .into_iter()
        .find(|s| s.parent_span_id == http_span.span_context.span_id())
        .expect("the host's span is a child of the gateway's, across NATS");
    assert!(
        in_trace("redis")
            .iter()
            .any(|s| s.parent_span_id == act.span_context.span_id()),
        "the host's Redis round trips are in the same trace"
    );

    // And the gateway counted the request on its /metrics.
    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("http")
        .text()
        .await
        .expect("text");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("dashdice_gateway_requests_total{")
                && l.contains(r#"route="/api/v1/matches/{id}/{action}""#)
                && l.contains(r#"status="200""#)),
        "{metrics}"
    );
}

/// `GET /metrics` from `addr`, as text.
fn scrape(port: u16) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// The value of the sample `series` (name and labels exactly as exported).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.trim().parse().ok())
}

#[tokio::test]
async fn the_host_process_exports_prometheus_metrics() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let port = free_port();
    let artifacts = std::env::temp_dir().join(format!("dashdice-metrics-{}", std::process::id()));
    let mut child = Command::new(env!("CARGO_BIN_EXE_dashdice-under-test"))
        .args(["match-host", "--nats-url", &nats.url()])
        .args(["--redis-url", &redis.url()])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env("DASHDICE_ARTIFACT_DIR", &artifacts)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a match host");
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let mut created = None;
    for _ in 0..500 {
        let body = json!({"mode": "classic", "players": ["alice", "bob"]}).to_string();
        if let Ok(reply) = client
            .request(bus::match_request(endpoint::CREATE), body.into())
            .await
        {
            created = Some(reply);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let created: Value =
        serde_json::from_slice(&created.expect("a host answers").payload).expect("json");
    let id = created["ok"]["match"]["match_id"].as_str().expect("id");
    let player = created["ok"]["match"]["turn"].as_str().expect("turn");
    // Three rolls; a bust may pass the turn, so count what the host said.
    let mut applied = 0.0;
    for n in 0..3 {
        let body = json!({"match_id": id, "player": player, "request_id": format!("r{n}"), "action": "roll"});
        let reply = client
            .request(bus::match_request(endpoint::ACT), body.to_string().into())
            .await
            .expect("act");
        let reply: Value = serde_json::from_slice(&reply.payload).expect("json");
        if reply.get("ok").is_some() {
            applied += 1.0;
        }
    }
    assert!(applied >= 1.0, "the first roll is always applied");
    let body = json!({"match_id": "nope", "player": player, "request_id": "x", "action": "roll"});
    client
        .request(bus::match_request(endpoint::ACT), body.to_string().into())
        .await
        .expect("act");

    // The live gauge is refreshed once a second.
    let mut text = String::new();
    for _ in 0..50 {
        text = scrape(port).unwrap_or_default();
        if sample(&text, "dashdice_matches_live") == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&artifacts);

    assert_eq!(sample(&text, "dashdice_matches_live"), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, r#"dashdice_matches_created_total{mode="classic"}"#),
        Some(1.0),
        "{text}"
    );
    let ok = sample(
        &text,
        r#"dashdice_match_requests_total{endpoint="act",outcome="ok"}"#,
    );
    assert_eq!(ok, Some(applied), "{text}");
    assert_eq!(
        sample(
            &text,
            r#"dashdice_match_requests_total{endpoint="act",outcome="unknown_match"}"#
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            r#"dashdice_match_request_seconds_count{endpoint="act"}"#
        ),
        Some(4.0),
        "{text}"
    );
    assert!(
        text.contains(r#"dashdice_match_request_seconds_bucket{endpoint="act",le="0.005"}"#),
        "latencies are a real histogram: {text}"
    );
}
