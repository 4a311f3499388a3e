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

use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashdice_archive::ledger::Seasons;
use dashdice_archive::{Archive, FirestoreConfig};
use dashdice_archiver::Archiver;
use dashdice_gateway::{self as gateway, Auth, AuthConfig, Gateway, GatewayConfig, Limits};
use dashdice_match_host::MatchHost;
use dashdice_match_host::service as match_service;
use dashdice_matchmaker::service::{self as matchmaker_service, NatsMatches, NatsNotify};
use dashdice_matchmaker::{Matchmaker, Policy, PrivatePolicy};
use dashdice_presence::Presences;
use dashdice_presence::service as presence_service;
use dashdice_proto::presence::{OFFLINE_WITHIN_MS, QUEUE_GRACE_MS};
use dashdice_store::MatchStore;
use dashdice_store::leaderboards::Leaderboards;
use dashdice_store::presence::PresenceStore;
use dashdice_store::queues::QueueStore;
use dashdice_tests::servers::{FirestoreEmulator, NatsServer, RedisServer, free_port};
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const MODES: [&str; 4] = ["classic", "zero-hour", "last-line", "true-grit"];
const REGIONS: [&str; 2] = ["eu", "us"];
const DEV_SECRET: &str = "a-test-only-dev-secret-for-presence";
const BIN: &str = env!("CARGO_BIN_EXE_dashdice-under-test");
/// How long any one expected message may take (the offline bound and the
/// grace have their own, longer, waits).
const PROMPTLY: Duration = Duration::from_secs(15);

/// Connects under `role`'s user of the project's NATS configuration.
async fn connect_as(nats: &NatsServer, role: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(role.into(), format!("{role}-dev"))
        .name(format!("presence-test {role}"))
        .connect(nats.url())
        .await
        .unwrap_or_else(|e| panic!("nats as {role}: {e}"))
}

/// What differs between the tests' stacks.
#[derive(Clone, Copy, Default)]
struct Options {
    /// How long an invite code works (the matchmaker's default otherwise).
    code_ttl_ms: Option<u64>,
}

/// The servers and the roles behind one gateway in this process, or
/// behind gateway processes the test starts.
struct Backend {
    nats: NatsServer,
    redis: RedisServer,
}

impl Backend {
    /// nats-server (the project's users), redis-server, and in this process
    /// a match host, a matchmaker (no bots: a quick queue waits for a
    /// human), the presence role and an archiver on a Firestore project of
    /// its own.
    async fn start(options: Options) -> Self {
        dashdice_service::install_crypto();
        let nats = NatsServer::start_with_project_config();
        let redis = RedisServer::start();

        let client = connect_as(&nats, "match-host").await;
        let store = MatchStore::connect(&redis.url()).await.expect("redis");
        let mut host = MatchHost::new(dashdice_tests::registry(), store);
        host.bot_delay_ms = (10, 40);
        tokio::spawn(match_service::run(client, host));

        let client = connect_as(&nats, "matchmaker").await;
        let queues = QueueStore::connect(&redis.url()).await.expect("redis");
        let mut matchmaker = Matchmaker::new(
            queues,
            Policy {
                bot_after_ms: None,
                ..Policy::default()
            },
            MODES.map(str::to_owned),
            REGIONS.map(str::to_owned),
            NatsMatches::new(client.clone()),
            NatsNotify {
                client: client.clone(),
            },
        );
        if let Some(ttl) = options.code_ttl_ms {
            matchmaker.private = PrivatePolicy {
                code_ttl_ms: ttl,
                ..PrivatePolicy::default()
            };
        }
        tokio::spawn(matchmaker_service::run(client, matchmaker));

        let emulator = FirestoreEmulator::shared();
        let firestore = FirestoreConfig {
            project: FirestoreEmulator::project(),
            emulator: Some(emulator.host()),
            timeout: Duration::from_secs(5),
        };
        let archiver = Archiver {
            archive: Archive::connect(&firestore, Seasons::ALL_TIME)
                .await
                .expect("firestore"),
            boards: Leaderboards::connect(&redis.url()).await.expect("redis"),
            clock: dashdice_proto::clock::system(),
        };
        let client = connect_as(&nats, "archiver").await;
        tokio::spawn(dashdice_archiver::run(
            client,
            archiver,
            dashdice_archiver::Options {
                concurrency: 8,
                rebuild_check: Duration::from_millis(500),
                retry_min: Duration::from_millis(100),
                retry_max: Duration::from_secs(1),
            },
        ));

        start_presence(&nats, &redis).await;
        Backend { nats, redis }
    }
}

/// The presence role, in this process, under its own NATS user.
async fn start_presence(nats: &NatsServer, redis: &RedisServer) {
    let client = connect_as(nats, "presence").await;
    let store = PresenceStore::connect(&redis.url()).await.expect("redis");
    let queues = QueueStore::connect(&redis.url()).await.expect("redis");
    let presences = Presences::new(store, queues, dashdice_catalog::ModeBook::new([]));
    tokio::spawn(presence_service::run(
        client,
        presences,
        presence_service::Options::default(),
    ));
}

/// A backend and one gateway in this process.
struct Stack {
    /// The servers and roles, stopped when the stack drops.
    _backend: Backend,
    gateway: Arc<Gateway>,
    api: Api,
}

impl Stack {
    async fn start() -> Self {
        Self::with(Options::default()).await
    }

    async fn with(options: Options) -> Self {
        let backend = Backend::start(options).await;
        let config = GatewayConfig {
            auth: AuthConfig {
                dev_secret: Some(DEV_SECRET.to_owned()),
                ..AuthConfig::default()
            },
            limits: fast_limits(),
            cors_origins: vec![],
            default_region: "eu".to_owned(),
            trust_forwarded_for: false,
        };
        let nats_client = connect_as(&backend.nats, "gateway").await;
        let probe = dashdice_store::RedisProbe::connect(&backend.redis.url())
            .await
            .expect("redis");
        let gateway =
            Arc::new(Gateway::new(config, nats_client, Some(probe), None).expect("gateway"));
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
            _backend: backend,
            gateway,
            api: Api::new(base),
        };
        stack.api.wait_ready(true).await;
        stack
    }

    fn token(&self, user: &str) -> String {
        self.gateway
            .auth
            .dev_token(user, Duration::from_secs(3600))
            .expect("dev token")
            .token
    }

    async fn session(&self, user: &str) -> Browser {
        self.api.session(user, &self.token(user)).await
    }

    async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.api.rest(method, path, &self.token(user), body).await
    }

    /// `a` asks, `b` accepts: friends.
    async fn befriend(&self, a: &str, b: &str) {
        befriend(&self.api, (a, &self.token(a)), (b, &self.token(b))).await;
    }

    /// `who`'s queue status, over REST.
    async fn queue_state(&self, who: &str) -> Value {
        let (status, body) = self
            .rest(reqwest::Method::GET, "/queue/status", who, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

fn fast_limits() -> Limits {
    Limits {
        user_per_second: 1_000,
        ip_per_second: 10_000,
        ws_messages_per_second: 1_000,
        ..Limits::default()
    }
}

/// `a` asks `b` to be friends and `b` accepts, over REST.
async fn befriend(api: &Api, (a, a_token): (&str, &str), (b, b_token): (&str, &str)) {
    let (status, body) = api
        .rest(
            reqwest::Method::POST,
            &format!("/friends/{b}/request"),
            a_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{a} asks {b}: {body}");
    assert_eq!(body["uid"], b, "{body}");
    assert_eq!(body["link"]["state"], "outgoing", "{body}");
    let (status, body) = api
        .rest(
            reqwest::Method::POST,
            &format!("/friends/{a}/accept"),
            b_token,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{b} accepts {a}: {body}");
    assert_eq!(body["link"]["state"], "friends", "{body}");
    assert_eq!(body["link"]["uid"], a, "{body}");
}

/// A gateway's HTTP side, by its base URL.
struct Api {
    /// `http://127.0.0.1:<port>`
    base: String,
    http: reqwest::Client,
}

impl Api {
    fn new(base: String) -> Self {
        Api {
            base,
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path)).bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("http");
        let status = response.status();
        let bytes = response.bytes().await.expect("body");
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "{path}: every answer is JSON; got {status}: {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    /// Until the gateway answers, and (`workers`) the match host, the
    /// matchmaker, the presence role and the archiver answer through it.
    async fn wait_ready(&self, workers: bool) {
        let auth = Auth::new(&AuthConfig {
            dev_secret: Some(DEV_SECRET.to_owned()),
            ..AuthConfig::default()
        })
        .expect("auth");
        let token = auth
            .dev_token("probe", Duration::from_secs(600))
            .expect("token")
            .token;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::new();
        while Instant::now() < deadline {
            let health = self.http.get(self.url("/health")).send().await;
            if health.is_ok_and(|r| r.status() == StatusCode::OK) {
                if !workers {
                    // Presence and the archiver, which the process tests use.
                    let (p, pb) = self
                        .rest(reqwest::Method::GET, "/presence?uids=probe", &token, None)
                        .await;
                    let (f, fb) = self
                        .rest(reqwest::Method::GET, "/friends", &token, None)
                        .await;
                    if p == StatusCode::OK && f == StatusCode::OK {
                        return;
                    }
                    last = format!("presence {p} {pb}, friends {f} {fb}");
                } else {
                    let checks = [
                        ("/queue/status", StatusCode::OK),
                        ("/matches/none", StatusCode::NOT_FOUND),
                        ("/presence?uids=probe", StatusCode::OK),
                        ("/friends", StatusCode::OK),
                    ];
                    let mut ready = true;
                    for (path, want) in checks {
                        let (status, body) =
                            self.rest(reqwest::Method::GET, path, &token, None).await;
                        if status != want {
                            last = format!("{path}: {status} {body}");
                            ready = false;
                            break;
                        }
                    }
                    if ready {
                        return;
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!(
            "the workers never answered through the gateway at {}: {last}",
            self.base
        );
    }

    /// A signed-in WebSocket session (by `hello`), past its welcome.
    async fn session(&self, user: &str, token: &str) -> Browser {
        let url = format!("{}/api/v1/ws", self.base.replacen("http", "ws", 1));
        let (socket, _) = tokio_tungstenite::connect_async(url)
            .await
            .unwrap_or_else(|e| panic!("{user}: ws connect: {e}"));
        let mut browser = Browser {
            user: user.to_owned(),
            socket,
            backlog: VecDeque::new(),
            pushed_versions: HashMap::new(),
            next_id: 0,
        };
        browser.send(json!({"type": "hello", "token": token})).await;
        let welcome = browser
            .wait_for("welcome", PROMPTLY, |m| m["type"] == "welcome")
            .await;
        assert_eq!(welcome["user_id"], user);
        browser
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One browser tab: a WebSocket session. Every message read is kept in a
/// backlog until a wait takes it, so what a test waits for never depends on
/// the order in which unrelated messages arrive.
struct Browser {
    user: String,
    socket: Socket,
    backlog: VecDeque<Value>,
    /// The newest presence version pushed (or answered to a follow) per
    /// user: every push must be newer.
    pushed_versions: HashMap<String, u64>,
    next_id: u64,
}

impl Browser {
    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{}: ws send: {e}", self.user));
    }

    /// Reads one message from the socket into the backlog; `false` at the
    /// deadline.
    async fn read(&mut self, deadline: Instant) -> bool {
        loop {
            let frame = match tokio::time::timeout_at(deadline.into(), self.socket.next()).await {
                Err(_) => return false,
                Ok(None) => panic!("{}: the server closed the session", self.user),
                Ok(Some(frame)) => frame,
            };
            match frame {
                Ok(Message::Text(text)) => {
                    let value: Value = serde_json::from_str(&text)
                        .unwrap_or_else(|e| panic!("{}: server JSON: {e}: {text}", self.user));
                    assert_eq!(value["v"], 1, "every message carries the version: {value}");
                    self.check_order(&value);
                    self.backlog.push_back(value);
                    return true;
                }
                Ok(Message::Close(frame)) => {
                    panic!("{}: the server closed the session: {frame:?}", self.user)
                }
                Err(e) => panic!("{}: ws: {e}", self.user),
                Ok(_) => {}
            }
        }
    }

    /// Pushed presences of one user come in growing versions, each newer
    /// than what the follow answered.
    fn check_order(&mut self, message: &Value) {
        let pushes: Vec<&Value> = match message["type"].as_str() {
            Some("presence") if message.get("id").is_none() => vec![&message["presence"]],
            Some("presences")
                if message
                    .get("id")
                    .is_some_and(|id| id.as_str().is_some_and(|id| id.starts_with("follow-"))) =>
            {
                message["presences"]
                    .as_array()
                    .map_or(vec![], |a| a.iter().collect())
            }
            _ => return,
        };
        for presence in pushes {
            let (Some(uid), Some(version)) =
                (presence["uid"].as_str(), presence["version"].as_u64())
            else {
                panic!(
                    "{}: a presence without uid or version: {message}",
                    self.user
                );
            };
            if let Some(&seen) = self.pushed_versions.get(uid) {
                assert!(
                    version > seen || message["type"] == "presences",
                    "{}: a push of {uid}'s presence at version {version} after version {seen}: {message}",
                    self.user
                );
            }
            let entry = self.pushed_versions.entry(uid.to_owned()).or_insert(0);
            *entry = (*entry).max(version);
        }
    }

    /// The first message (in the backlog, or read until `within` passes)
    /// that `wanted` accepts; taken out of the backlog.
    async fn wait_for(
        &mut self,
        what: &str,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        match self.wait_until(Instant::now() + within, &wanted).await {
            Some(message) => message,
            None => panic!(
                "{}: no {what} within {within:?}; got meanwhile: {:#?}",
                self.user, self.backlog
            ),
        }
    }

    /// As [`wait_for`](Self::wait_for), `None` at the deadline.
    async fn wait_until(
        &mut self,
        deadline: Instant,
        wanted: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let mut checked = 0;
        loop {
            if let Some(i) = self.backlog.iter().skip(checked).position(&wanted) {
                return self.backlog.remove(checked + i);
            }
            checked = self.backlog.len();
            if !self.read(deadline).await {
                return None;
            }
        }
    }

    /// Whether a message `seen` accepts is in the backlog (read so far and
    /// not taken).
    fn has_seen(&self, seen: impl Fn(&Value) -> bool) -> bool {
        self.backlog.iter().any(seen)
    }

    /// Sends `message` with a fresh `id` and waits for the message that
    /// answers it (an answer or an error).
    async fn request(&mut self, mut message: Value) -> Value {
        self.next_id += 1;
        let kind = message["type"].as_str().unwrap_or("message").to_owned();
        let id = format!("{kind}-{}", self.next_id);
        message["id"] = json!(id);
        self.send(message).await;
        self.wait_for(&format!("the answer to {id}"), PROMPTLY, |m| {
            m["id"] == id.as_str()
        })
        .await
    }

    /// [`request`](Self::request), which must be answered with `kind`.
    async fn ok(&mut self, message: Value, kind: &str) -> Value {
        let sent = message.to_string();
        let answer = self.request(message).await;
        assert_eq!(
            answer["type"], kind,
            "{}: {sent} answered {answer}",
            self.user
        );
        answer
    }

    /// [`request`](Self::request), which must be refused with `code`.
    async fn refused(&mut self, message: Value, code: &str) -> Value {
        let sent = message.to_string();
        let answer = self.request(message).await;
        assert_eq!(
            answer["type"], "error",
            "{}: {sent} answered {answer}",
            self.user
        );
        assert_eq!(
            answer["error"]["code"], code,
            "{}: {sent} answered {answer}",
            self.user
        );
        answer
    }

    /// Follows `uids`' presence: what they are now.
    async fn follow(&mut self, uids: &[&str]) -> Vec<Value> {
        self.next_id += 1;
        let id = format!("follow-{}", self.next_id);
        self.send(json!({"type": "follow_presence", "id": id, "uids": uids}))
            .await;
        let answer = self
            .wait_for(&format!("the answer to {id}"), PROMPTLY, |m| {
                m["id"] == id.as_str()
            })
            .await;
        assert_eq!(
            answer["type"], "presences",
            "{}: follow: {answer}",
            self.user
        );
        let presences = answer["presences"].as_array().cloned().unwrap_or_default();
        assert_eq!(presences.len(), uids.len(), "{answer}");
        presences
    }

    /// Waits for a pushed presence of `uid` that `wanted` accepts (earlier
    /// pushes of `uid` are passed over, and stay in the backlog).
    async fn presence_of(
        &mut self,
        uid: &str,
        what: &str,
        within: Duration,
        wanted: impl Fn(&Value) -> bool,
    ) -> Value {
        let message = self
            .wait_for(&format!("{uid} {what}"), within, |m| {
                is_push_of(m, uid) && wanted(&m["presence"])
            })
            .await;
        message["presence"].clone()
    }

    /// Closes the session as a browser closing the tab does, and waits
    /// until the server has closed it too.
    async fn close(mut self) {
        let _ = self.socket.close(None).await;
        let deadline = Instant::now() + PROMPTLY;
        loop {
            match tokio::time::timeout_at(deadline.into(), self.socket.next()).await {
                Err(_) => panic!("{}: the server never closed the session", self.user),
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => return,
                Ok(Some(Ok(_))) => {}
            }
        }
    }
}

/// A pushed presence of `uid`.
fn is_push_of(message: &Value, uid: &str) -> bool {
    message["type"] == "presence"
        && message.get("id").is_none()
        && message["presence"]["uid"] == uid
}

fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |p| p["status"] == status
}

/// Whose turn it is, if the match is on.
fn turn(snapshot: &Value) -> Option<String> {
    (snapshot["finished"] == false)
        .then(|| snapshot["turn"].as_str().map(str::to_owned))
        .flatten()
}

/// The test's strategy: bank from 15.
fn choose(snapshot: &Value) -> &'static str {
    if snapshot["view"]["turn_score"].as_i64() >= Some(15) {
        "bank"
    } else {
        "roll"
    }
}

/// `from` invites its friend `to` directly (WS `invite_friend`); `to` is
/// told (`invited`). The code.
async fn invite_friend(from: &mut Browser, to: &mut Browser, mode: &str) -> String {
    let to_uid = to.user.clone();
    let answer = from
        .ok(
            json!({"type": "invite_friend", "uid": to_uid, "mode": mode}),
            "invite",
        )
        .await;
    let code = answer["invite"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("an invite code: {answer}"))
        .to_owned();
    assert_eq!(answer["invite"]["mode"], mode, "{answer}");
    let from_uid = from.user.clone();
    let invited = to
        .wait_for("invited", PROMPTLY, |m| m["type"] == "invited")
        .await;
    assert_eq!(invited["from"], from_uid.as_str(), "{invited}");
    assert_eq!(invited["code"], code.as_str(), "{invited}");
    assert_eq!(invited["mode"], mode, "{invited}");
    assert!(invited["expires_ms"].as_u64().is_some(), "{invited}");
    code
}

/// `joiner` joins by `code` (WS `join_code`): the match both are told of.
async fn join_code(host: &mut Browser, joiner: &mut Browser, code: &str) -> String {
    let answer = joiner
        .ok(json!({"type": "join_code", "code": code}), "queue")
        .await;
    assert_eq!(answer["status"]["state"], "playing", "{answer}");
    let match_id = answer["status"]["match_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a match id: {answer}"))
        .to_owned();
    for browser in [host, joiner] {
        let found = browser
            .wait_for("match_found", PROMPTLY, |m| {
                m["type"] == "match_found" && m["match_id"] == match_id.as_str()
            })
            .await;
        assert_eq!(
            found["players"].as_array().map(Vec::len),
            Some(2),
            "{found}"
        );
    }
    match_id
}

/// The match as `browser`'s session first sent it (it follows the match
/// from `match_found` on).
async fn first_snapshot(browser: &mut Browser, match_id: &str) -> Value {
    let message = browser
        .wait_for("the match", PROMPTLY, |m| {
            m["type"] == "match" && m["match"]["match_id"] == match_id
        })
        .await;
    message["match"].clone()
}

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
