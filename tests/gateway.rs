//! The gateway over real nats-server and redis-server processes, with a
//! real match host and matchmaker behind it: players on WebSocket and on
//! REST play every mode to the end and see the same gap-free events; a
//! client that reconnects resumes where it left off; forged, expired and
//! misaddressed tokens are refused; bad input gets a typed error and the
//! session goes on; rates are limited with `Retry-After`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashdice_gateway::{self as gateway, AuthConfig, Gateway, GatewayConfig, Limits};
use dashdice_match_host::service as match_service;
use dashdice_match_host::{MatchHost, verifiable_record};
use dashdice_matchmaker::service::{self as matchmaker_service, NatsMatches, NatsNotify};
use dashdice_matchmaker::{Matchmaker, Policy};
use dashdice_runtime::fair_dice::verify;
use dashdice_store::MatchStore;
use dashdice_store::queues::QueueStore;
use dashdice_tests::servers::{NatsServer, RedisServer};
use futures_util::{SinkExt, StreamExt};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const MODES: [&str; 4] = ["classic", "zero-hour", "last-line", "true-grit"];
const PROJECT: &str = "dashdice-test";
const DEV_SECRET: &str = "a-test-only-dev-secret";
const FIREBASE_KEY: &[u8] = include_bytes!("fixtures/firebase-test-key.pem");
const FORGER_KEY: &[u8] = include_bytes!("fixtures/forger-key.pem");
const JWKS: &str = include_str!("fixtures/firebase-test-jwks.json");
/// The gateway under test may fetch its keys again this soon.
const JWKS_MIN_REFETCH: Duration = Duration::from_millis(300);

/// Servers on free ports, a match host, a matchmaker, a JWKS endpoint
/// standing in for Google's, and the gateway under test.
struct Stack {
    _nats: NatsServer,
    _redis: RedisServer,
    gateway: Arc<Gateway>,
    /// `http://127.0.0.1:<port>`
    base: String,
    http: reqwest::Client,
    /// What the stand-in for Google's JWKS endpoint serves, and how often
    /// it was asked.
    jwks_served: Arc<Mutex<String>>,
    jwks_fetches: Arc<AtomicUsize>,
}

/// A stack whose rate limits the tests' fast clients stay under (the
/// defaults are for humans; the rate test sets its own).
async fn stack() -> Stack {
    stack_with(Limits {
        user_per_second: 1_000,
        ip_per_second: 10_000,
        ws_messages_per_second: 1_000,
        ..Limits::default()
    })
    .await
}

async fn stack_with(limits: Limits) -> Stack {
    build(NatsServer::start(), false, limits).await
}

/// Connects as `role`: under its own user with the project's NATS
/// configuration (`as_users`), else anonymously.
async fn connect_as(nats: &NatsServer, as_users: bool, role: &str) -> async_nats::Client {
    let options = if as_users {
        async_nats::ConnectOptions::with_user_and_password(role.into(), format!("{role}-dev"))
    } else {
        async_nats::ConnectOptions::new()
    };
    options.connect(nats.url()).await.expect("nats")
}

async fn build(nats: NatsServer, as_users: bool, limits: Limits) -> Stack {
    let redis = RedisServer::start();

    let client = connect_as(&nats, as_users, "match-host").await;
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    let mut host = MatchHost::new(dashdice_tests::registry(), store);
    host.bot_delay_ms = (10, 40);
    tokio::spawn(match_service::run(client, host));

    let client = connect_as(&nats, as_users, "matchmaker").await;
    let queues = QueueStore::connect(&redis.url()).await.expect("redis");
    let matchmaker = Matchmaker::new(
        queues,
        Policy {
            bot_after_ms: Some(300),
            ..Policy::default()
        },
        MODES.map(str::to_owned),
        ["eu".to_owned(), "us".to_owned()],
        NatsMatches::new(client.clone()),
        NatsNotify {
            client: client.clone(),
        },
    );
    tokio::spawn(matchmaker_service::run(client, matchmaker));

    let jwks = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let jwks_url = format!("http://{}/jwks", jwks.local_addr().expect("addr"));
    let jwks_served = Arc::new(Mutex::new(JWKS.to_owned()));
    let jwks_fetches = Arc::new(AtomicUsize::new(0));
    let keys = axum::Router::new().route(
        "/jwks",
        axum::routing::get({
            let (served, fetches) = (jwks_served.clone(), jwks_fetches.clone());
            move || async move {
                fetches.fetch_add(1, Ordering::SeqCst);
                let body = served.lock().map(|s| s.clone()).unwrap_or_default();
                (
                    [
                        ("content-type", "application/json"),
                        ("cache-control", "public, max-age=3600"),
                    ],
                    body,
                )
            }
        }),
    );
    tokio::spawn(async move { axum::serve(jwks, keys).await });

    let config = GatewayConfig {
        auth: AuthConfig {
            firebase_project: Some(PROJECT.to_owned()),
            jwks_url: Some(jwks_url),
            dev_secret: Some(DEV_SECRET.to_owned()),
            guests: true,
            guest_ttl: Duration::from_secs(3600),
            jwks_min_refetch: JWKS_MIN_REFETCH,
        },
        limits,
        cors_origins: vec!["https://dashdice.example".to_owned()],
        default_region: "eu".to_owned(),
        trust_forwarded_for: false,
    };
    let nats_client = connect_as(&nats, as_users, "gateway").await;
    let probe = dashdice_store::RedisProbe::connect(&redis.url())
        .await
        .expect("redis");
    let gateway = Arc::new(Gateway::new(config, nats_client, Some(probe), None).expect("gateway"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(gateway::serve(
        listener,
        gateway.clone(),
        std::future::pending(),
    ));
    let stack = Stack {
        _nats: nats,
        _redis: redis,
        gateway,
        base,
        http: reqwest::Client::new(),
        jwks_served,
        jwks_fetches,
    };
    stack.wait_ready().await;
    stack
}

impl Stack {
    /// Until the matchmaker and the match host answer through the gateway.
    async fn wait_ready(&self) {
        let token = self.token("probe");
        for _ in 0..250 {
            let status = self.get("/queue/status", &token).await.0;
            let host = self.get("/matches/none", &token).await.0;
            if status == StatusCode::OK && host == StatusCode::NOT_FOUND {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the workers never answered through the gateway");
    }

    /// A dev token for `user`.
    fn token(&self, user: &str) -> String {
        self.gateway
            .auth
            .dev_token(user, Duration::from_secs(600))
            .expect("dev token")
            .token
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        let response = self
            .http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("http");
        answer(response).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::POST, path, token, body)
            .await
    }

    async fn put(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.send_json(reqwest::Method::PUT, path, token, body)
            .await
    }

    async fn send_json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .request(method, self.url(path))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("http");
        answer(response).await
    }

    /// Acts over REST with an `Idempotency-Key`.
    async fn act(
        &self,
        token: &str,
        match_id: &str,
        action: &str,
        key: &str,
    ) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.url(&format!("/matches/{match_id}/{action}")))
            .bearer_auth(token)
            .header("idempotency-key", key)
            .send()
            .await
            .expect("http");
        answer(response).await
    }

    async fn ws(&self, token: Option<&str>) -> Ws {
        let url = format!("{}/api/v1/ws", self.base.replacen("http", "ws", 1));
        let mut request = url.into_client_request().expect("request");
        if let Some(token) = token {
            request.headers_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("header"),
            );
        }
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("ws connect");
        Ws { socket }
    }

    /// A signed-in session (by `hello`), past its welcome.
    async fn session(&self, user: &str) -> Ws {
        let mut ws = self.ws(None).await;
        ws.send(json!({"type": "hello", "token": self.token(user)}))
            .await;
        let welcome = ws.next_of("welcome").await;
        assert_eq!(welcome["user_id"], user);
        ws
    }
}

async fn answer(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let body = response.bytes().await.expect("body");
    let value = serde_json::from_slice(&body).unwrap_or_else(|_| {
        panic!(
            "every answer is JSON; got {status}: {}",
            String::from_utf8_lossy(&body)
        )
    });
    (status, value)
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Ws {
    socket: Socket,
}

impl Ws {
    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("ws send");
    }

    async fn send_text(&mut self, text: String) {
        self.socket
            .send(Message::text(text))
            .await
            .expect("ws send");
    }

    /// The next JSON message; `None` once the server closed.
    async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(15), self.socket.next())
                .await
                .expect("a message in time")?;
            match frame {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text).expect("server JSON");
                    assert_eq!(value["v"], 1, "every message carries the version: {value}");
                    return Some(value);
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The next message of `kind`, skipping others.
    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await.expect("the session is open");
            if message["type"] == kind {
                return message;
            }
            assert_ne!(message["type"], "error", "unexpected error: {message}");
        }
    }

    /// The close code the server ends with (messages before it skipped).
    async fn close_code(&mut self) -> Option<u16> {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(15), self.socket.next())
                .await
                .expect("a close in time");
            match frame {
                Some(Ok(Message::Close(Some(frame)))) => return Some(u16::from(frame.code)),
                Some(Ok(Message::Close(None))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }
}

/// A Firebase-style ID token for `user`, with `claims` overriding the valid
/// ones, signed by `key` (PEM) as `kid`.
fn firebase_token(user: &str, key: &[u8], kid: &str, claims: Value) -> String {
    let now = dashdice_proto::clock::now_ms() / 1000;
    let mut body = json!({
        "iss": format!("https://securetoken.google.com/{PROJECT}"),
        "aud": PROJECT,
        "sub": user,
        "iat": now,
        "exp": now + 600,
    });
    if let (Some(body), Some(claims)) = (body.as_object_mut(), claims.as_object()) {
        for (k, v) in claims {
            body.insert(k.clone(), v.clone());
        }
    }
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(
        &header,
        &body,
        &EncodingKey::from_rsa_pem(key).expect("test key"),
    )
    .expect("sign")
}

/// Whose turn it is, if the match is on.
fn turn(snapshot: &Value) -> Option<String> {
    (snapshot["finished"] == false)
        .then(|| snapshot["turn"].as_str().map(str::to_owned))
        .flatten()
}

/// The test's strategy: bank from 15 (True Grit has no banking).
fn choose(snapshot: &Value) -> &'static str {
    let banked = snapshot["mode"] != "true-grit";
    if banked && snapshot["view"]["turn_score"].as_i64() >= Some(15) {
        "bank"
    } else {
        "roll"
    }
}

/// Alice (WebSocket) invites, Bob (REST) joins by code: the match id.
async fn invite_match(stack: &Stack, alice: &mut Ws, bob: &str, mode: &str) -> String {
    alice
        .send(json!({"type": "invite", "id": "i1", "mode": mode}))
        .await;
    let invite = alice.next_of("invite").await;
    assert_eq!(invite["id"], "i1");
    let code = invite["invite"]["code"]
        .as_str()
        .expect("a code")
        .to_owned();
    let (status, joined) = stack
        .post("/matches/join", &stack.token(bob), json!({"code": code}))
        .await;
    assert_eq!(status, StatusCode::OK, "{joined}");
    assert_eq!(joined["state"], "playing", "{joined}");
    joined["match_id"].as_str().expect("a match id").to_owned()
}

/// Events Alice's session has received for the match, read until the one
/// that ends it.
async fn events_until_game_over(ws: &mut Ws, match_id: &str, seen: &mut Vec<Value>) {
    if seen.last().is_some_and(|e| e["type"] == "game_over") {
        return;
    }
    loop {
        let message = ws.next().await.expect("the session is open");
        if message["type"] == "event" && message["match_id"] == match_id {
            seen.push(message["event"].clone());
            if message["event"]["type"] == "game_over" {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mode_plays_to_the_end_with_one_player_on_websocket_and_one_on_rest() {
    let stack = stack().await;
    for (n, mode) in MODES.into_iter().enumerate() {
        let (alice, bob) = (format!("alice{n}"), format!("bob{n}"));
        let bob_token = stack.token(&bob);
        let mut ws = stack.session(&alice).await;
        let match_id = invite_match(&stack, &mut ws, &bob, mode).await;

        // Alice is told, and her session follows the match on its own.
        let mut seen = Vec::new();
        let mut snapshot = loop {
            let message = ws.next().await.expect("open");
            match message["type"].as_str() {
                Some("match") => break message["match"].clone(),
                Some("event") => seen.push(message["event"].clone()),
                _ => {}
            }
        };
        assert_eq!(snapshot["match_id"], match_id.as_str());
        assert_eq!(snapshot["mode"], mode);
        assert_eq!(
            snapshot["seed"],
            Value::Null,
            "the seed stays secret while playing"
        );

        let mut step = 0;
        while let Some(player) = turn(&snapshot) {
            step += 1;
            assert!(step < 2_000, "{mode}: the match never ended");
            let action = choose(&snapshot);
            let request_id = format!("{mode}-{step}");
            let reply = if player == alice {
                ws.send(
                    json!({"type": "act", "id": request_id, "match_id": match_id,
                    "action": action, "request_id": request_id}),
                )
                .await;
                loop {
                    let message = ws.next().await.expect("open");
                    match message["type"].as_str() {
                        Some("acted") => {
                            assert_eq!(message["id"], request_id.as_str());
                            break message["reply"].clone();
                        }
                        Some("event") => seen.push(message["event"].clone()),
                        Some("error") => panic!("{mode}: {message}"),
                        _ => {}
                    }
                }
            } else {
                assert_eq!(player, bob);
                let (status, reply) = stack.act(&bob_token, &match_id, action, &request_id).await;
                assert_eq!(status, StatusCode::OK, "{mode}: {reply}");
                // The same key again changes nothing and answers the same.
                let (again_status, again) =
                    stack.act(&bob_token, &match_id, action, &request_id).await;
                assert_eq!(again_status, StatusCode::OK);
                assert_eq!(again["events"], reply["events"], "{mode}: applied once");
                reply
            };
            snapshot = reply["match"].clone();
        }

        events_until_game_over(&mut ws, &match_id, &mut seen).await;
        let (status, events) = stack
            .get(&format!("/matches/{match_id}/events?since=0"), &bob_token)
            .await;
        assert_eq!(status, StatusCode::OK);
        let events = events.as_array().expect("a list").clone();
        assert_eq!(
            seen, events,
            "{mode}: the session saw every event once, in order"
        );
        for (i, event) in events.iter().enumerate() {
            assert_eq!(event["seq"], i as u64 + 1, "{mode}: gap-free");
        }

        // The finished match reveals its seed, and its record verifies.
        let (status, finished) = stack.get(&format!("/matches/{match_id}"), &bob_token).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(finished["finished"], true);
        let record = verifiable_record(finished.to_string().as_bytes()).expect("a record");
        verify(&dashdice_tests::builtin(mode), &record)
            .expect("every roll follows from the revealed seed");
        assert_eq!(finished["standings"].as_array().map(Vec::len), Some(2));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_client_resumes_after_the_last_event_it_saw() {
    let stack = stack().await;
    let mut ws = stack.session("carol").await;
    let match_id = invite_match(&stack, &mut ws, "dave", "classic").await;
    let tokens = [
        ("carol", stack.token("carol")),
        ("dave", stack.token("dave")),
    ];

    // Play eight actions over REST while Carol's session is open...
    let play = |step: usize| {
        let stack = &stack;
        let tokens = &tokens;
        let match_id = match_id.clone();
        async move {
            let (_, snapshot) = stack
                .get(&format!("/matches/{match_id}"), &tokens[0].1)
                .await;
            let Some(player) = turn(&snapshot) else {
                return false;
            };
            let token = &tokens
                .iter()
                .find(|(p, _)| *p == player)
                .expect("a player")
                .1;
            let (status, reply) = stack
                .act(token, &match_id, choose(&snapshot), &format!("r{step}"))
                .await;
            assert_eq!(status, StatusCode::OK, "{reply}");
            true
        }
    };
    for step in 0..8 {
        assert!(play(step).await);
    }
    let (_, snapshot) = stack
        .get(&format!("/matches/{match_id}"), &tokens[0].1)
        .await;
    let upto = snapshot["seq"].as_u64().expect("seq");
    let mut first = Vec::new();
    while first.len() < upto as usize {
        let message = ws.next().await.expect("open");
        if message["type"] == "event" {
            first.push(message["event"].clone());
        }
    }
    // ...then drop it, play on, and come back saying what was seen last.
    let last_seen = first[first.len() / 2]["seq"].as_u64().expect("seq");
    drop(ws);
    for step in 8..14 {
        if !play(step).await {
            break;
        }
    }
    let mut ws = stack.session("carol").await;
    ws.send(json!({"type": "subscribe", "id": "s", "match_id": match_id, "since": last_seen}))
        .await;
    let resumed = ws.next_of("match").await;
    assert_eq!(resumed["id"], "s");
    let now = resumed["match"]["seq"].as_u64().expect("seq");
    let mut replay = Vec::new();
    while replay.len() < (now - last_seen) as usize {
        let message = ws.next().await.expect("open");
        if message["type"] == "event" {
            replay.push(message["event"]["seq"].as_u64().expect("seq"));
        }
    }
    let expected: Vec<u64> = (last_seen + 1..=now).collect();
    assert_eq!(replay, expected, "each missed event once, in order");

    // Live events keep coming on the resumed session.
    assert!(play(100).await);
    let message = ws.next_of("event").await;
    assert_eq!(message["event"]["seq"], now + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_valid_tokens_of_our_issuers_get_in() {
    let stack = stack().await;
    let me = |token: String| {
        let stack = &stack;
        async move { stack.get("/me", &token).await }
    };

    let (status, body) = me(firebase_token(
        "fb-user",
        FIREBASE_KEY,
        "test-key-1",
        json!({}),
    ))
    .await;
    assert_eq!(
        (status, &body["user_id"]),
        (StatusCode::OK, &json!("fb-user"))
    );
    let (status, body) = me(stack.token("dev-user")).await;
    assert_eq!(
        (status, &body["user_id"]),
        (StatusCode::OK, &json!("dev-user"))
    );

    let now = dashdice_proto::clock::now_ms() / 1000;
    let refused = [
        (
            "forged",
            firebase_token("x", FORGER_KEY, "test-key-1", json!({})),
        ),
        (
            "unknown key",
            firebase_token("x", FORGER_KEY, "other-key", json!({})),
        ),
        (
            "expired",
            firebase_token(
                "x",
                FIREBASE_KEY,
                "test-key-1",
                json!({"exp": now - 3600, "iat": now - 7200}),
            ),
        ),
        (
            "other project",
            firebase_token(
                "x",
                FIREBASE_KEY,
                "test-key-1",
                json!({"aud": "someone-else"}),
            ),
        ),
        (
            "other issuer",
            firebase_token(
                "x",
                FIREBASE_KEY,
                "test-key-1",
                json!({"iss": "https://evil.example"}),
            ),
        ),
        (
            "issued in the future",
            firebase_token("x", FIREBASE_KEY, "test-key-1", json!({"iat": now + 3600})),
        ),
        (
            "bad user id",
            firebase_token("a.b>", FIREBASE_KEY, "test-key-1", json!({})),
        ),
        ("wrong dev secret", {
            let claims =
                json!({"sub": "x", "iss": "dashdice-dev", "aud": "dashdice", "exp": now + 600});
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(b"guess"),
            )
            .expect("sign")
        }),
        ("not a token", "hello".to_owned()),
    ];
    for (why, token) in refused {
        let (status, body) = me(token.clone()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{why}: {body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{why}");
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").is_empty(),
            "{why} says why"
        );

        // On a WebSocket: an error, then close 4401.
        let mut ws = stack.ws(None).await;
        ws.send(json!({"type": "hello", "token": token})).await;
        let error = ws.next().await.expect("an error first");
        assert_eq!(error["error"]["code"], "unauthorized", "{why}");
        assert_eq!(ws.close_code().await, Some(4401), "{why}");
    }

    // No token at all, and a bad token on the upgrade itself.
    let response = stack.http.get(stack.url("/me")).send().await.expect("http");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    let url = format!("{}/api/v1/ws", stack.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("authorization", "Bearer nope".parse().expect("header"));
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("the upgrade should be refused: {:?}", other.map(|_| ())),
    }
    // A session that never says hello is closed.
    let mut ws = stack.ws(None).await;
    ws.send(json!({"type": "ping"})).await;
    let error = ws.next().await.expect("an error");
    assert_eq!(error["error"]["code"], "unauthorized");
    assert_eq!(ws.close_code().await, Some(4401));
    // A bearer on the upgrade signs the session in without hello.
    let mut ws = stack.ws(Some(&stack.token("erin"))).await;
    assert_eq!(ws.next_of("welcome").await["user_id"], "erin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn players_act_only_in_their_own_match_and_on_their_turn() {
    let stack = stack().await;
    let mut ws = stack.session("frank").await;
    let match_id = invite_match(&stack, &mut ws, "grace", "classic").await;
    let (_, snapshot) = stack
        .get(&format!("/matches/{match_id}"), &stack.token("grace"))
        .await;
    let on_turn = turn(&snapshot).expect("a turn");
    let waiting = if on_turn == "frank" { "grace" } else { "frank" };

    let (status, body) = stack
        .act(&stack.token("mallory"), &match_id, "roll", "m1")
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::FORBIDDEN, &json!("not_a_player"))
    );
    let (status, body) = stack
        .act(&stack.token(waiting), &match_id, "roll", "w1")
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::CONFLICT, &json!("not_your_turn"))
    );
    let (status, body) = stack
        .act(&stack.token(waiting), "no-such-match", "roll", "w2")
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("unknown_match"))
    );

    // Nothing of that changed the match.
    let (_, after) = stack
        .get(&format!("/matches/{match_id}"), &stack.token("grace"))
        .await;
    assert_eq!(after["seq"], snapshot["seq"]);

    // Over the WebSocket, the same refusal carries the message's id.
    let mut mallory = stack.session("mallory").await;
    mallory
        .send(json!({"type": "act", "id": 9, "match_id": match_id, "action": "roll", "request_id": "m2"}))
        .await;
    let error = mallory.next_of("error").await;
    assert_eq!(
        (&error["id"], &error["error"]["code"]),
        (&json!("9"), &json!("not_a_player"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_a_typed_error_and_the_session_goes_on() {
    let stack = stack().await;
    let token = stack.token("heidi");
    let mut ws = stack.session("heidi").await;
    ws.send(json!({"type": "join", "id": "j", "mode": "classic", "opponent": "bot"}))
        .await;
    let joined = ws.next_of("queue").await;
    assert_eq!(joined["status"]["state"], "playing", "{joined}");
    let match_id = joined["status"]["match_id"]
        .as_str()
        .expect("id")
        .to_owned();

    let cases = [
        ("x".repeat(10_000), "too_large"),
        ("{\"type\":\"join\",".to_owned(), "malformed_json"),
        ("[1,2]".to_owned(), "malformed_json"),
        (json!({"type": "teleport"}).to_string(), "bad_request"),
        (
            json!({"type": "act", "match_id": "m", "action": "roll", "dice": [6, 6]}).to_string(),
            "bad_request",
        ),
        (json!({"v": 2, "type": "ping"}).to_string(), "bad_request"),
        (
            json!({"type": "join", "mode": "snakes"}).to_string(),
            "unknown_mode",
        ),
        (
            json!({"type": "act", "match_id": "m", "action": "cheat"}).to_string(),
            "unknown_action",
        ),
    ];
    for (text, code) in cases {
        ws.send_text(text.clone()).await;
        let error = ws.next_of("error").await;
        assert_eq!(
            error["error"]["code"],
            code,
            "{}",
            &text[..text.len().min(60)]
        );
    }
    ws.socket
        .send(Message::binary(vec![1, 2, 3]))
        .await
        .expect("send");
    assert_eq!(ws.next_of("error").await["error"]["code"], "bad_request");
    // Still open and served.
    ws.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(ws.next_of("pong").await["id"], "p");
    ws.send(json!({"type": "status", "id": "s"})).await;
    assert_eq!(ws.next_of("queue").await["status"]["state"], "playing");
    // And so is the match: Heidi rolls once her turn comes.
    loop {
        let (_, snapshot) = stack.get(&format!("/matches/{match_id}"), &token).await;
        if turn(&snapshot).as_deref() == Some("heidi") {
            break;
        }
        assert_eq!(snapshot["finished"], false);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ws.send(json!({"type": "act", "id": "a", "match_id": match_id, "action": "roll", "request_id": "h1"}))
        .await;
    let acted = ws.next_of("acted").await;
    assert_eq!(acted["reply"]["events"][0]["type"], "rolled", "{acted}");

    // REST: the same codes, with their HTTP statuses; nothing was queued.
    let big = json!({"mode": "x".repeat(10_000)});
    let (status, body) = stack.post("/queue/join", &token, big).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::PAYLOAD_TOO_LARGE, &json!("too_large"))
    );
    let response = stack
        .http
        .post(stack.url("/queue/join"))
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body("{\"mode\":")
        .send()
        .await
        .expect("http");
    let (status, body) = answer(response).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("malformed_json"))
    );
    let (status, body) = stack
        .post(
            "/queue/join",
            &token,
            json!({"mode": "classic", "rating": 3000}),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "clients do not choose ratings: {body}"
    );
    let (status, body) = stack
        .post("/queue/join", &token, json!({"mode": "snakes"}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("unknown_mode"))
    );
    let (status, body) = stack.act(&token, &match_id, "teleport", "t1").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("unknown_action"))
    );
    let (status, body) = stack
        .post(
            &format!("/matches/{match_id}/roll"),
            &token,
            json!({"dice": [6, 6]}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("malformed_json")),
        "clients never send dice"
    );
    let (status, body) = stack
        .post(&format!("/matches/{match_id}/custom"), &token, json!({}))
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request")),
        "{body}"
    );
    let (status, body) = stack.get("/matches/m/events?since=minus-one", &token).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request"))
    );
    let (status, body) = stack.get("/no/such/route", &token).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::NOT_FOUND, &json!("not_found"))
    );
    let (status, body) = stack.get("/queue/status", &token).await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("playing"))
    );

    // A frame past the hard cap ends the session with 1009. (The server may
    // close while the frame is still being written; then the write fails
    // and the close frame can be lost to the reset, but the session is over.)
    let sent = ws.socket.send(Message::text("x".repeat(2 << 20))).await;
    let code = ws.close_code().await;
    if sent.is_ok() {
        assert_eq!(code, Some(1009));
    } else {
        assert!(matches!(code, Some(1009) | None), "{code:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_past_their_rate_is_told_when_to_come_back() {
    let stack = stack_with(Limits {
        user_per_second: 2,
        ..Limits::default()
    })
    .await;
    let token = stack.token("ivan");
    let mut refused = None;
    for _ in 0..20 {
        let response = stack
            .http
            .get(stack.url("/me"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("http");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            refused = Some(response);
            break;
        }
    }
    let response = refused.expect("a burst past the rate is refused");
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("a Retry-After in seconds");
    assert!(retry_after >= 1);
    let (_, body) = answer(response).await;
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another user is not held up by Ivan.
    let (status, _) = stack.get("/me", &stack.token("judy")).await;
    assert_eq!(status, StatusCode::OK);
    // Ivan's WebSocket messages count against the same rate.
    let mut ws = stack.ws(Some(&stack.token("judy"))).await;
    ws.next_of("welcome").await;
    let mut limited = false;
    for i in 0..20 {
        ws.send(json!({"type": "ping", "id": i})).await;
        let message = ws.next().await.expect("open");
        if message["type"] == "error" {
            assert_eq!(message["error"]["code"], "rate_limited");
            limited = true;
            break;
        }
    }
    assert!(limited, "a WebSocket burst past the rate is refused too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_quick_players_on_websockets_are_paired_and_a_bot_comes_at_once_on_request() {
    let stack = stack().await;
    let mut kim = stack.session("kim").await;
    let mut lee = stack.session("lee").await;
    for ws in [&mut kim, &mut lee] {
        ws.send(json!({"type": "join", "id": "j", "mode": "zero-hour", "region": "us"}))
            .await;
    }
    let mut matches = Vec::new();
    for ws in [&mut kim, &mut lee] {
        let found = ws.next_of("match_found").await;
        let followed = ws.next_of("match").await;
        assert_eq!(followed["match"]["match_id"], found["match_id"]);
        assert_eq!(followed["match"]["mode"], "zero-hour");
        matches.push(found["match_id"].clone());
    }
    assert_eq!(matches[0], matches[1], "one match for both");

    let (status, body) = stack
        .post(
            "/queue/join",
            &stack.token("mia"),
            json!({"mode": "classic", "opponent": "bot"}),
        )
        .await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("playing")),
        "{body}"
    );
    let (_, snapshot) = stack
        .get(
            &format!("/matches/{}", body["match_id"].as_str().expect("id")),
            &stack.token("mia"),
        )
        .await;
    assert_eq!(snapshot["bots"].as_array().map(Vec::len), Some(1));
    let (status, body) = stack
        .post(
            "/queue/join",
            &stack.token("ned"),
            json!({"mode": "classic", "kind": "ranked", "opponent": "bot"}),
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("bad_request")),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guests_sign_in_and_the_page_and_probes_answer() {
    let stack = stack().await;
    let response = stack
        .http
        .post(stack.url("/auth/guest"))
        .send()
        .await
        .expect("http");
    let (status, guest) = answer(response).await;
    assert_eq!(status, StatusCode::OK);
    let token = guest["token"].as_str().expect("token");
    let (status, me) = stack.get("/me", token).await;
    assert_eq!(
        (status, &me["user_id"]),
        (StatusCode::OK, &guest["user_id"])
    );

    let (status, _) = stack.get("/health", "").await;
    assert_eq!(status, StatusCode::OK);
    let (status, ready) = stack.get("/ready", "").await;
    assert_eq!(status, StatusCode::OK, "{ready}");
    let page = stack.http.get(&stack.base).send().await.expect("http");
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("page").contains("DashDice"));

    // CORS: the configured origin may call; others get no grant.
    let allowed = stack
        .http
        .get(stack.url("/health"))
        .header("origin", "https://dashdice.example")
        .send()
        .await
        .expect("http");
    assert_eq!(
        allowed
            .headers()
            .get("access-control-allow-origin")
            .map(|v| v.as_bytes()),
        Some(&b"https://dashdice.example"[..])
    );
    let other = stack
        .http
        .get(stack.url("/health"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("http");
    assert!(other.headers().get("access-control-allow-origin").is_none());
    // A page from elsewhere may not open a session.
    let url = format!("{}/api/v1/ws", stack.base.replacen("http", "ws", 1));
    let mut request = url.into_client_request().expect("request");
    request
        .headers_mut()
        .insert("origin", "https://evil.example".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_not_buffered_without_bound() {
    let stack = stack_with(Limits {
        user_per_second: 1_000_000,
        ws_messages_per_second: 1_000_000,
        ..Limits::default()
    })
    .await;
    // A client with a small receive window, so the server's socket fills
    // soon after the client stops reading.
    let addr: std::net::SocketAddr = stack
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("addr");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    let tcp = socket.connect(addr).await.expect("connect");
    let mut request = format!("ws://{addr}/api/v1/ws")
        .into_client_request()
        .expect("request");
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", stack.token("oscar"))
            .parse()
            .expect("header"),
    );
    let (mut ws, _) = tokio_tungstenite::client_async(request, tcp)
        .await
        .expect("upgrade");

    // Ask for far more answers than any buffer on the way holds, reading
    // none of them.
    const PINGS: usize = 50_000;
    let ping = Message::text(json!({"type": "ping"}).to_string());
    for _ in 0..PINGS {
        if ws.feed(ping.clone()).await.is_err() {
            break;
        }
    }
    let _ = ws.flush().await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Now read: what was buffered, then the end of the session, well
    // before every ping was answered.
    let mut pongs = 0;
    let mut close = None;
    loop {
        match tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("the session ends")
        {
            Some(Ok(Message::Text(text))) => {
                if text.contains("\"pong\"") {
                    pongs += 1;
                }
            }
            Some(Ok(Message::Close(frame))) => {
                close = frame.map(|f| u16::from(f.code));
                break;
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break,
        }
    }
    assert!(
        pongs < PINGS,
        "the server dropped the session instead of queueing {PINGS} answers"
    );
    assert!(
        matches!(close, None | Some(4008)),
        "a too-slow client is closed with 4008 when the close frame fits: {close:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn firebase_keys_are_cached_and_follow_a_rotation() {
    let stack = stack().await;
    let me = |token: String| {
        let stack = &stack;
        async move { stack.get("/me", &token).await.0 }
    };
    for n in 0..5 {
        let token = firebase_token(&format!("u{n}"), FIREBASE_KEY, "test-key-1", json!({}));
        assert_eq!(me(token).await, StatusCode::OK);
    }
    assert_eq!(
        stack.jwks_fetches.load(Ordering::SeqCst),
        1,
        "the keys are fetched once, then cached"
    );

    // A flood of unknown key ids fetches at most once per refetch interval.
    for n in 0..20 {
        let token = firebase_token("x", FORGER_KEY, &format!("forged-{n}"), json!({}));
        assert_eq!(me(token).await, StatusCode::UNAUTHORIZED);
    }
    assert!(
        stack.jwks_fetches.load(Ordering::SeqCst) <= 2,
        "unknown kids do not become a flood of fetches"
    );

    // Google rotates: a new key (here the forger's, as `test-key-2`) replaces
    // the old one. Tokens signed by the new key are accepted once the
    // gateway may look again; those of the retired key are not.
    let mut new_key = Jwk::from_encoding_key(
        &EncodingKey::from_rsa_pem(FORGER_KEY).expect("key"),
        Algorithm::RS256,
    )
    .expect("jwk");
    new_key.common.key_id = Some("test-key-2".to_owned());
    let rotated = serde_json::to_string(&JwkSet {
        keys: vec![new_key],
    })
    .expect("jwks");
    *stack.jwks_served.lock().expect("lock") = rotated;
    tokio::time::sleep(JWKS_MIN_REFETCH * 2).await;
    let token = firebase_token("rotated", FORGER_KEY, "test-key-2", json!({}));
    assert_eq!(
        me(token).await,
        StatusCode::OK,
        "a rotated-in key is picked up"
    );
    let token = firebase_token("old", FIREBASE_KEY, "test-key-1", json!({}));
    assert_eq!(
        me(token).await,
        StatusCode::UNAUTHORIZED,
        "a retired key is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_under_its_own_nats_user_serves_players_end_to_end() {
    // The project's nats-server.conf: the gateway may request and listen,
    // but only match hosts publish events and only matchmakers create.
    let stack = build(
        NatsServer::start_with_project_config(),
        true,
        Limits {
            user_per_second: 1_000,
            ..Limits::default()
        },
    )
    .await;
    let mut ws = stack.session("rita").await;
    let match_id = invite_match(&stack, &mut ws, "sam", "classic").await;
    let (_, snapshot) = stack
        .get(&format!("/matches/{match_id}"), &stack.token("sam"))
        .await;
    let player = turn(&snapshot).expect("a turn");
    let (status, rolled) = stack
        .act(&stack.token(&player), &match_id, "roll", "r1")
        .await;
    assert_eq!(status, StatusCode::OK, "{rolled}");
    let (status, over) = stack
        .act(&stack.token("sam"), &match_id, "forfeit", "f1")
        .await;
    assert_eq!(status, StatusCode::OK, "{over}");
    // Rita's session got every event live, through the gateway's own
    // subscription, up to the end.
    let mut seen = Vec::new();
    events_until_game_over(&mut ws, &match_id, &mut seen).await;
    let seqs: Vec<u64> = seen.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected);
}

/// Profiles, history and leaderboards come from the archiver, which this
/// stack does not run: every request below is refused by the gateway itself,
/// before the archive is asked (else it would answer `unavailable`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archive_requests_the_gateway_refuses_never_reach_the_archive() {
    let stack = stack().await;
    let token = stack.token("ivan");
    let rest_cases = [
        (
            "PUT",
            "/users/judy",
            json!({"display_name": "Ivan"}),
            StatusCode::FORBIDDEN,
            "forbidden",
        ),
        (
            "PUT",
            "/users/me",
            json!({"display_name": "   "}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "PUT",
            "/users/ivan",
            json!({"display_name": "x".repeat(33)}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "PUT",
            "/users/me",
            json!({"display_name": "Ivan", "uid": "judy"}),
            StatusCode::BAD_REQUEST,
            "malformed_json",
        ),
        (
            "GET",
            "/users/not.a.user",
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/users/judy/matches?limit=0",
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/users/judy/matches?limit=101",
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/users/me/matches?limit=lots",
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/leaderboards/classic?around=judy",
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            "GET",
            "/leaderboards/classic?limit=0",
            json!(null),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
    ];
    for (method, path, body, status, code) in rest_cases {
        let (got, answer) = match method {
            "PUT" => stack.put(path, &token, body).await,
            _ => stack.get(path, &token).await,
        };
        assert_eq!(
            (got, &answer["error"]["code"]),
            (status, &json!(code)),
            "{method} {path}: {answer}"
        );
    }
    let (_, refused) = stack
        .put("/users/judy", &token, json!({"display_name": "Ivan"}))
        .await;
    assert_eq!(refused["error"]["message"], "you may only rename yourself");
    let (status, _) = stack
        .put("/users/me", "", json!({"display_name": "Ivan"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // The same refusals on the WebSocket, answered to the request's id; the
    // session goes on.
    let mut ws = stack.session("ivan").await;
    let ws_cases = [
        json!({"type": "rename", "id": "r1", "display_name": ""}),
        json!({"type": "rename", "id": "r2", "display_name": "Ivan", "uid": "judy"}),
        json!({"type": "profile", "id": "p1", "uid": "not.a.user"}),
        json!({"type": "history", "id": "h1", "limit": 0}),
        json!({"type": "history", "id": "h2", "uid": "judy", "limit": 101}),
        json!({"type": "leaderboard", "id": "l1", "mode": "classic", "limit": 0}),
        json!({"type": "leaderboard", "id": "l2", "mode": "classic", "around": "judy"}),
    ];
    for message in ws_cases {
        ws.send(message.clone()).await;
        let error = ws.next_of("error").await;
        assert_eq!(error["id"], message["id"], "{error}");
        assert_eq!(error["error"]["code"], "bad_request", "{message}: {error}");
    }
    ws.send(json!({"type": "ping", "id": "still"})).await;
    assert_eq!(ws.next_of("pong").await["id"], "still");
}

/// Whether the gateway closes `socket` within `within`, reading (and
/// returning) whatever it answered before.
async fn closed_by_gateway(
    socket: &mut tokio::net::TcpStream,
    within: Duration,
) -> (bool, Vec<u8>) {
    use tokio::io::AsyncReadExt;
    let mut answered = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, socket.read(&mut buf)).await {
            Err(_) => return (false, answered),
            Ok(Ok(0)) | Ok(Err(_)) => return (true, answered),
            Ok(Ok(n)) => answered.extend_from_slice(&buf[..n]),
        }
    }
}

async fn raw_connection(stack: &Stack, first_bytes: &[u8]) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let mut socket = tokio::net::TcpStream::connect(stack.base.trim_start_matches("http://"))
        .await
        .expect("connect");
    if !first_bytes.is_empty() {
        // A closed connection may refuse the write; reading says so.
        let _ = socket.write_all(first_bytes).await;
    }
    socket
}

/// Waits until 127.0.0.1 holds `n` connections without a verified token
/// (`when`: the step, for the failure message).
async fn unverified_reach(stack: &Stack, n: usize, when: &str) {
    let ip = std::net::IpAddr::from([127, 0, 0, 1]);
    for _ in 0..2_000 {
        if stack.gateway.unverified.count(ip) == n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "{when}: unverified connections stayed at {}, not {n}",
        stack.gateway.unverified.count(ip)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_that_never_finish_a_request_head_are_closed_and_sessions_are_not() {
    let stack = stack_with(Limits {
        handshake_timeout: Duration::from_millis(500),
        user_per_second: 1_000,
        ip_per_second: 10_000,
        ws_messages_per_second: 1_000,
        ..Limits::default()
    })
    .await;
    let mut session = stack.session("ivy").await;
    let mut dribbler = raw_connection(&stack, b"GET /api/v1/ws HT").await;
    let mut silent = raw_connection(&stack, b"").await;
    let mut headers_only =
        raw_connection(&stack, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n").await;
    let mut idle = raw_connection(&stack, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    for (what, socket) in [
        ("half a request line", &mut dribbler),
        ("nothing at all", &mut silent),
        ("headers without their end", &mut headers_only),
    ] {
        let (closed, answered) = closed_by_gateway(socket, Duration::from_secs(10)).await;
        assert!(closed, "a connection that sent {what} is closed");
        assert!(
            answered.is_empty(),
            "{what}: {}",
            String::from_utf8_lossy(&answered)
        );
    }
    // Kept alive after a whole request, then silent: closed the same way.
    let (closed, answered) = closed_by_gateway(&mut idle, Duration::from_secs(10)).await;
    assert!(closed, "an idle kept-alive connection is closed");
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "its request was served first"
    );

    // The signed-in session outlived several timeouts, and is served.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    session.send(json!({"type": "ping", "id": "still"})).await;
    assert_eq!(session.next_of("pong").await["id"], "still");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_cap_on_unverified_connections_an_ip_is_refused_and_signed_in_clients_go_on() {
    const CAP: usize = 4;
    let stack = stack_with(Limits {
        max_unauthenticated_per_ip: CAP,
        handshake_timeout: Duration::from_secs(60),
        user_per_second: 1_000,
        ip_per_second: 10_000,
        ws_messages_per_second: 1_000,
        ..Limits::default()
    })
    .await;
    // Signed in over WebSocket, and over REST on a kept-alive connection:
    // neither counts.
    let mut session = stack.session("jay").await;
    let token = stack.token("jay");
    assert_eq!(stack.get("/me", &token).await.0, StatusCode::OK);
    unverified_reach(&stack, 0, "signed in").await;

    // A session that has not said hello yet counts until it does.
    let mut pending = stack.ws(None).await;
    unverified_reach(&stack, 1, "a session before hello").await;
    let mut held = Vec::new();
    for _ in 1..CAP {
        held.push(raw_connection(&stack, b"GET /api/v1/health HT").await);
    }
    unverified_reach(&stack, CAP, "held").await;

    let mut refused =
        raw_connection(&stack, b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let (closed, answered) = closed_by_gateway(&mut refused, Duration::from_secs(10)).await;
    assert!(closed, "a connection past the cap is closed");
    assert!(
        answered.is_empty(),
        "and not served: {}",
        String::from_utf8_lossy(&answered)
    );
    let fresh = reqwest::Client::new();
    assert!(
        fresh.get(stack.url("/health")).send().await.is_err(),
        "a new client from the same address is refused too"
    );

    // Those already signed in are served meanwhile.
    session.send(json!({"type": "ping", "id": "p"})).await;
    assert_eq!(session.next_of("pong").await["id"], "p");
    assert_eq!(stack.get("/me", &token).await.0, StatusCode::OK);

    // The pending session signs in: it stops counting, and there is room.
    pending
        .send(json!({"type": "hello", "token": stack.token("kim")}))
        .await;
    assert_eq!(pending.next_of("welcome").await["user_id"], "kim");
    unverified_reach(&stack, CAP - 1, "after hello").await;
    let response = fresh
        .get(stack.url("/health"))
        .send()
        .await
        .expect("room again");
    assert_eq!(response.status(), StatusCode::OK);
    drop(fresh);
    drop(held);
    unverified_reach(&stack, 0, "all closed").await;
}

/// Bodies that are JSON but not one object.
const NOT_OBJECTS: [&str; 6] = ["[]", "[\"classic\"]", "\"classic\"", "42", "null", "true"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rest_body_must_be_one_json_object_and_nothing_changes_otherwise() {
    let stack = stack().await;
    let token = stack.token("lou");
    let mut ws = stack.session("lou").await;
    ws.send(json!({"type": "join", "id": "j", "mode": "classic", "opponent": "bot"}))
        .await;
    let joined = ws.next_of("queue").await;
    let match_id = joined["status"]["match_id"]
        .as_str()
        .expect("a bot match")
        .to_owned();
    let snapshot = loop {
        let (_, snapshot) = stack.get(&format!("/matches/{match_id}"), &token).await;
        if turn(&snapshot).as_deref() == Some("lou") {
            break snapshot;
        }
        assert_eq!(snapshot["finished"], false);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let routes = [
        (reqwest::Method::POST, "/queue/join".to_owned()),
        (reqwest::Method::POST, "/matches".to_owned()),
        (reqwest::Method::POST, "/matches/join".to_owned()),
        (reqwest::Method::POST, format!("/matches/{match_id}/roll")),
        (reqwest::Method::POST, format!("/matches/{match_id}/custom")),
        (reqwest::Method::PUT, "/users/me".to_owned()),
        (reqwest::Method::POST, "/invites".to_owned()),
        (reqwest::Method::POST, "/users/me/devices".to_owned()),
        (reqwest::Method::DELETE, "/users/me/devices".to_owned()),
    ];
    for (method, path) in &routes {
        for body in NOT_OBJECTS {
            let response = stack
                .http
                .request(method.clone(), stack.url(path))
                .bearer_auth(&token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .expect("http");
            let (status, reply) = answer(response).await;
            assert_eq!(
                (status, &reply["error"]["code"]),
                (StatusCode::BAD_REQUEST, &json!("malformed_json")),
                "{method} {path} with {body}: {reply}"
            );
        }
    }
    // Nothing was applied, queued or offered.
    let (_, after) = stack.get(&format!("/matches/{match_id}"), &token).await;
    assert_eq!(after["seq"], snapshot["seq"], "no roll applied");
    let (_, status) = stack.get("/queue/status", &token).await;
    assert_eq!(
        status["state"], "playing",
        "no queue joined, no invite made"
    );

    // A WebSocket message is one JSON object too.
    for text in NOT_OBJECTS {
        ws.send_text(text.to_owned()).await;
        let error = ws.next_of("error").await;
        assert_eq!(error["error"]["code"], "malformed_json", "{text}");
    }
    let (_, after) = stack.get(&format!("/matches/{match_id}"), &token).await;
    assert_eq!(after["seq"], snapshot["seq"]);
    // An empty body still rolls.
    let (status, acted) = stack.act(&token, &match_id, "roll", "lou-1").await;
    assert_eq!(status, StatusCode::OK, "{acted}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_the_documented_json_error() {
    let stack = stack_with(Limits {
        request_timeout: Duration::from_millis(500),
        user_per_second: 1_000,
        ip_per_second: 10_000,
        ws_messages_per_second: 1_000,
        ..Limits::default()
    })
    .await;
    // An archiver that never answers: its routes time out.
    let nats = async_nats::connect(stack._nats.url()).await.expect("nats");
    let _silent = nats
        .subscribe(dashdice_proto::bus::archive_request(
            dashdice_proto::bus::archive_endpoint::PROFILE,
        ))
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    let token = stack.token("max");
    let json_type = "application/json";
    type Case = (
        reqwest::Method,
        &'static str,
        Option<(&'static str, String)>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            reqwest::Method::PUT,
            "/api/v1/matches/m1/roll",
            None,
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::DELETE,
            "/api/v1/matches/m1",
            None,
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::PATCH,
            "/api/v1/health",
            None,
            405,
            "method_not_allowed",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/ws",
            None,
            405,
            "method_not_allowed",
        ),
        (reqwest::Method::POST, "/", None, 405, "method_not_allowed"),
        (
            reqwest::Method::GET,
            "/api/v1/nowhere",
            None,
            404,
            "not_found",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/matches/%FF%FE",
            None,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/users/%C3%28",
            None,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/matches/m1/events?since=-1",
            None,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::GET,
            "/api/v1/notifications?limit=0&x=1",
            None,
            400,
            "bad_request",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/matches",
            Some(("text/plain", "{\"mode\":\"classic\"}".to_owned())),
            400,
            "bad_request",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/matches",
            Some((json_type, format!("{{\"mode\":\"{}\"}}", "x".repeat(9_000)))),
            413,
            "too_large",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/matches/m1/roll",
            Some((json_type, "x".repeat(9_000))),
            413,
            "too_large",
        ),
        (
            reqwest::Method::POST,
            "/api/v1/matches",
            Some((json_type, "{\"mode\":".to_owned())),
            400,
            "malformed_json",
        ),
        (reqwest::Method::GET, "/api/v1/ws", None, 400, "bad_request"),
        (
            reqwest::Method::GET,
            "/api/v1/users/someone",
            None,
            504,
            "timeout",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let mut request = stack
            .http
            .request(method.clone(), format!("{}{path}", stack.base))
            .bearer_auth(&token);
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.expect("http");
        let allow = response.headers().get("allow").cloned();
        let content_type = response.headers().get("content-type").cloned();
        let (got, reply) = answer(response).await;
        let case = format!("{method} {path}: {got} {reply}");
        assert_eq!(got.as_u16(), status, "{case}");
        assert_eq!(reply["error"]["code"], code, "{case}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.len() > 10, "a message that says why: {case}");
        assert_eq!(
            reply.as_object().map(|o| o.len()),
            Some(1),
            "only `error`: {case}"
        );
        assert_eq!(
            content_type.as_ref().map(|v| v.as_bytes()),
            Some(json_type.as_bytes()),
            "{case}"
        );
        if status == 405 {
            assert!(
                allow.is_some_and(|a| !a.is_empty()),
                "405 keeps `Allow`: {case}"
            );
        }
    }
    let (status, reply) = stack.get("/me", "not-a-token").await;
    assert_eq!(
        (status, &reply["error"]["code"]),
        (StatusCode::UNAUTHORIZED, &json!("unauthorized"))
    );

    // Over the per-IP rate: 429 with `Retry-After`, the same shape.
    let limited = stack_with(Limits {
        ip_per_second: 1,
        ..Limits::default()
    })
    .await;
    let mut last = None;
    for _ in 0..10 {
        let response = limited
            .http
            .get(limited.url("/health"))
            .send()
            .await
            .expect("http");
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().get("retry-after").is_some());
            last = Some(answer(response).await.1);
            break;
        }
    }
    let refused = last.expect("the rate is enforced");
    assert_eq!(refused["error"]["code"], "rate_limited", "{refused}");
}

/// A `dashdice gateway` process in dev mode on `nats` and `redis`, with
/// `secret_file` if given; killed on drop.
struct GatewayProcess {
    child: std::process::Child,
    base: String,
    /// What it logs (stderr), as it comes.
    log: Arc<Mutex<String>>,
}

impl GatewayProcess {
    fn start(
        nats: &NatsServer,
        redis: &RedisServer,
        secret_file: Option<&std::path::Path>,
    ) -> Self {
        use std::io::{BufRead, BufReader};
        let port = dashdice_tests::servers::free_port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_dashdice-under-test"));
        command
            .args(["gateway", "--dev", "--nats-url", &nats.url()])
            .args(["--redis-url", &redis.url()])
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env_remove("DASHDICE_DEV_SECRET")
            .env_remove("DASHDICE_DEV_SECRET_FILE")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if let Some(file) = secret_file {
            command.arg("--dev-secret-file").arg(file);
        }
        let mut child = command.spawn().expect("spawn a gateway");
        let log = Arc::new(Mutex::new(String::new()));
        let stderr = child.stderr.take().expect("stderr");
        std::thread::spawn({
            let log = log.clone();
            move || {
                for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                    if let Ok(mut log) = log.lock() {
                        log.push_str(&line);
                        log.push('\n');
                    }
                }
            }
        });
        let stdout = child.stdout.take().expect("stdout");
        let mut banner = String::new();
        BufReader::new(stdout)
            .read_line(&mut banner)
            .expect("banner");
        assert!(
            banner.starts_with("dashdice gateway on"),
            "{banner}{}",
            log.lock().map(|l| l.clone()).unwrap_or_default()
        );
        GatewayProcess {
            child,
            base: format!("http://127.0.0.1:{port}/api/v1"),
            log,
        }
    }

    /// Whether it logs `needle` (waiting a little for the pipe).
    async fn logs(&self, needle: &str) -> bool {
        for _ in 0..100 {
            if self.log.lock().is_ok_and(|l| l.contains(needle)) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    async fn guest_token(&self) -> String {
        let guest: Value = reqwest::Client::new()
            .post(format!("{}/auth/guest", self.base))
            .send()
            .await
            .expect("guest")
            .json()
            .await
            .expect("json");
        guest["token"].as_str().expect("token").to_owned()
    }

    async fn me(&self, token: &str) -> StatusCode {
        reqwest::Client::new()
            .get(format!("{}/me", self.base))
            .bearer_auth(token)
            .send()
            .await
            .expect("me")
            .status()
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateways_given_one_dev_secret_file_accept_each_others_tokens_across_restarts() {
    let (nats, redis) = (NatsServer::start(), RedisServer::start());
    let dir = std::env::temp_dir().join(format!(
        "dashdice-gateway-secret-{}-{}",
        std::process::id(),
        dashdice_tests::servers::free_port()
    ));
    let file = dir.join("dev-secret");
    let first = GatewayProcess::start(&nats, &redis, Some(&file));
    let second = GatewayProcess::start(&nats, &redis, Some(&file));
    let token = first.guest_token().await;
    assert_eq!(first.me(&token).await, StatusCode::OK);
    assert_eq!(
        second.me(&token).await,
        StatusCode::OK,
        "another gateway on the same file accepts it"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).expect("made").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    drop(first);
    let restarted = GatewayProcess::start(&nats, &redis, Some(&file));
    assert_eq!(
        restarted.me(&token).await,
        StatusCode::OK,
        "a restarted gateway still accepts it"
    );
    assert_eq!(
        second.me(&restarted.guest_token().await).await,
        StatusCode::OK
    );

    // Without a file, a dev gateway draws its own secret, and says so.
    let alone = GatewayProcess::start(&nats, &redis, None);
    assert_eq!(alone.me(&token).await, StatusCode::UNAUTHORIZED);
    assert!(
        alone.logs("--dev-secret-file").await,
        "it warns that its tokens will not survive a restart"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_gateway_closes_sessions_and_answers_requests_in_flight() {
    let stack = stack().await;
    // A second gateway on the same workers, whose stop the test holds, and
    // an archiver that never answers, so a request stays in flight.
    let nats = async_nats::connect(stack._nats.url()).await.expect("nats");
    let mut swallowed = nats
        .subscribe(dashdice_proto::bus::archive_request(
            dashdice_proto::bus::archive_endpoint::PROFILE,
        ))
        .await
        .expect("subscribe");
    nats.flush().await.expect("flush");
    let mut config = stack.gateway.config.clone();
    config.limits.request_timeout = Duration::from_secs(1);
    let gateway = Arc::new(Gateway::new(config, nats.clone(), None, None).expect("gateway"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(gateway::serve(listener, gateway.clone(), async move {
        let _ = stopped.await;
    }));
    // The same servers, through the second gateway.
    let Stack {
        _nats,
        _redis,
        http,
        jwks_served,
        jwks_fetches,
        ..
    } = stack;
    let other = Stack {
        _nats,
        _redis,
        gateway,
        base: format!("http://{addr}"),
        http,
        jwks_served,
        jwks_fetches,
    };
    let mut session = other.session("nia").await;
    let token = other.token("nia");
    let in_flight = tokio::spawn({
        let (http, url) = (other.http.clone(), other.url("/users/someone"));
        async move {
            let response = http.get(url).bearer_auth(token).send().await;
            answer(response.expect("answered, not cut off")).await
        }
    });
    tokio::time::timeout(Duration::from_secs(10), swallowed.next())
        .await
        .expect("the request reached the bus");

    let _ = stop.send(());
    assert_eq!(
        session.close_code().await,
        Some(1001),
        "sessions close going away"
    );
    let (status, reply) = in_flight.await.expect("request task");
    assert_eq!(
        (status, &reply["error"]["code"]),
        (StatusCode::GATEWAY_TIMEOUT, &json!("timeout")),
        "the request in flight got its answer"
    );
    tokio::time::timeout(Duration::from_secs(10), serving)
        .await
        .expect("serve returns once its connections are done")
        .expect("task")
        .expect("served");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "nothing listens any more"
    );
}
