//! The players' whole backend in one test process, behind a gateway, for the
//! end-to-end tests of presence, friends, invites and notifications: real
//! nats-server (the project's users and permissions), redis-server and
//! Firestore emulator processes, a match host, a matchmaker (no bots), the
//! presence role, an archiver and, when asked, a notifier; WebSocket
//! sessions that keep what they read until a wait takes it.

use std::collections::{HashMap, VecDeque};
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
use dashdice_notifier::delivery::Notifier;
use dashdice_notifier::fcm::{Fcm, FcmConfig};
use dashdice_notifier::service::{self as notifier_service, Options as NotifierOptions};
use dashdice_presence::Presences;
use dashdice_presence::service as presence_service;
use dashdice_proto::client::Notifications;
use dashdice_store::MatchStore;
use dashdice_store::inbox::{InboxSettings, InboxStore};
use dashdice_store::leaderboards::Leaderboards;
use dashdice_store::presence::PresenceStore;
use dashdice_store::queues::QueueStore;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::servers::{FirestoreEmulator, NatsServer, RedisServer};

pub const MODES: [&str; 4] = ["classic", "zero-hour", "last-line", "true-grit"];
pub const REGIONS: [&str; 2] = ["eu", "us"];
pub const DEV_SECRET: &str = "a-test-only-dev-secret-for-presence";
/// How long any one expected message may take (the offline bound and the
/// grace have their own, longer, waits).
pub const PROMPTLY: Duration = Duration::from_secs(15);

/// Connects under `role`'s user of the project's NATS configuration.
pub async fn connect_as(nats: &NatsServer, role: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(role.into(), format!("{role}-dev"))
        .name(format!("presence-test {role}"))
        .connect(nats.url())
        .await
        .unwrap_or_else(|e| panic!("nats as {role}: {e}"))
}

/// What differs between the tests' stacks.
#[derive(Clone, Copy, Default)]
pub struct Options {
    /// How long an invite code works (the matchmaker's default otherwise).
    pub code_ttl_ms: Option<u64>,
    /// The match host, the matchmaker and the archiver ask the notifier
    /// for notifications (their requests wait on the stream until a
    /// notifier runs: [`start_notifier`]).
    pub notifications: bool,
}

/// The servers and the roles behind one gateway in this process, or
/// behind gateway processes the test starts.
pub struct Backend {
    pub nats: NatsServer,
    pub redis: RedisServer,
}

impl Backend {
    /// nats-server (the project's users), redis-server, and in this process
    /// a match host, a matchmaker (no bots: a quick queue waits for a
    /// human), the presence role and an archiver on a Firestore project of
    /// its own.
    pub async fn start(options: Options) -> Self {
        dashdice_service::install_crypto();
        let nats = NatsServer::start_with_project_config();
        let redis = RedisServer::start();

        let client = connect_as(&nats, "match-host").await;
        let store = MatchStore::connect(&redis.url()).await.expect("redis");
        let mut host = MatchHost::new(crate::registry(), store);
        host.bot_delay_ms = (10, 40);
        let notifications = |client: &async_nats::Client| {
            options
                .notifications
                .then(|| Notifications::new(client.clone()))
        };
        tokio::spawn(match_service::run_notifying(
            client.clone(),
            host,
            notifications(&client),
        ));

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
        if let Some(n) = notifications(&client) {
            matchmaker = matchmaker.with_notifications(n);
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
        tokio::spawn(dashdice_archiver::run_notifying(
            client.clone(),
            archiver,
            dashdice_archiver::Options {
                concurrency: 8,
                rebuild_check: Duration::from_millis(500),
                retry_min: Duration::from_millis(100),
                retry_max: Duration::from_secs(1),
            },
            notifications(&client),
        ));

        start_presence(&nats, &redis).await;
        Backend { nats, redis }
    }
}

/// The presence role, in this process, under its own NATS user.
pub async fn start_presence(nats: &NatsServer, redis: &RedisServer) {
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

/// A notifier in this process under its own NATS user, pushing through
/// `fcm` (a stand-in's config) if given. Aborting the handle stops it as a
/// crash would: whatever it had not acknowledged comes again to the next
/// one after `options.ack_wait`.
pub async fn start_notifier(
    nats: &NatsServer,
    redis: &RedisServer,
    fcm: Option<FcmConfig>,
    options: NotifierOptions,
) -> tokio::task::JoinHandle<()> {
    let client = connect_as(nats, "notifier").await;
    // A push's lease runs out before the stream delivers its request
    // again, as in production (60 s against 120 s).
    let lease = u64::try_from(options.ack_wait.as_millis() / 2).unwrap_or(u64::MAX);
    let inbox = InboxStore::connect(&redis.url())
        .await
        .expect("redis")
        .with_settings(InboxSettings {
            push_lease_ms: lease.min(InboxSettings::default().push_lease_ms),
            ..InboxSettings::default()
        });
    let presence = PresenceStore::connect(&redis.url()).await.expect("redis");
    let fcm = fcm.map(|config| Fcm::new(config).expect("the stand-in's FCM config"));
    let notifier = Notifier::new(inbox, presence, fcm);
    tokio::spawn(async move {
        if let Err(e) = notifier_service::run(client, notifier, options).await {
            panic!("the notifier stopped: {e}");
        }
    })
}

/// A backend and one gateway in this process.
pub struct Stack {
    /// The servers and roles, stopped when the stack drops.
    backend: Backend,
    pub gateway: Arc<Gateway>,
    pub api: Api,
}

impl Stack {
    pub async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub async fn with(options: Options) -> Self {
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
            backend,
            gateway,
            api: Api::new(base),
        };
        stack.api.wait_ready(true).await;
        stack
    }

    /// The servers behind the gateway.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    pub fn token(&self, user: &str) -> String {
        self.gateway
            .auth
            .dev_token(user, Duration::from_secs(3600))
            .expect("dev token")
            .token
    }

    pub async fn session(&self, user: &str) -> Browser {
        self.api.session(user, &self.token(user)).await
    }

    pub async fn rest(
        &self,
        method: reqwest::Method,
        path: &str,
        user: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        self.api.rest(method, path, &self.token(user), body).await
    }

    /// `a` asks, `b` accepts: friends.
    pub async fn befriend(&self, a: &str, b: &str) {
        befriend(&self.api, (a, &self.token(a)), (b, &self.token(b))).await;
    }

    /// `who`'s queue status, over REST.
    pub async fn queue_state(&self, who: &str) -> Value {
        let (status, body) = self
            .rest(reqwest::Method::GET, "/queue/status", who, None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }
}

pub fn fast_limits() -> Limits {
    Limits {
        user_per_second: 1_000,
        ip_per_second: 10_000,
        ws_messages_per_second: 1_000,
        ..Limits::default()
    }
}

/// `a` asks `b` to be friends and `b` accepts, over REST.
pub async fn befriend(api: &Api, (a, a_token): (&str, &str), (b, b_token): (&str, &str)) {
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
pub struct Api {
    /// `http://127.0.0.1:<port>`
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    pub fn new(base: String) -> Self {
        Api {
            base,
            http: reqwest::Client::new(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub async fn rest(
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
    pub async fn wait_ready(&self, workers: bool) {
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
    pub async fn session(&self, user: &str, token: &str) -> Browser {
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

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// One browser tab: a WebSocket session. Every message read is kept in a
/// backlog until a wait takes it, so what a test waits for never depends on
/// the order in which unrelated messages arrive.
pub struct Browser {
    pub user: String,
    pub socket: Socket,
    pub backlog: VecDeque<Value>,
    /// The newest presence version pushed (or answered to a follow) per
    /// user: every push must be newer.
    pub pushed_versions: HashMap<String, u64>,
    pub next_id: u64,
}

impl Browser {
    pub async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .unwrap_or_else(|e| panic!("{}: ws send: {e}", self.user));
    }

    /// Reads one message from the socket into the backlog; `false` at the
    /// deadline.
    pub async fn read(&mut self, deadline: Instant) -> bool {
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
    pub fn check_order(&mut self, message: &Value) {
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
    pub async fn wait_for(
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
    pub async fn wait_until(
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
    pub fn has_seen(&self, seen: impl Fn(&Value) -> bool) -> bool {
        self.backlog.iter().any(seen)
    }

    /// Sends `message` with a fresh `id` and waits for the message that
    /// answers it (an answer or an error).
    pub async fn request(&mut self, mut message: Value) -> Value {
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
    pub async fn ok(&mut self, message: Value, kind: &str) -> Value {
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
    pub async fn refused(&mut self, message: Value, code: &str) -> Value {
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
    pub async fn follow(&mut self, uids: &[&str]) -> Vec<Value> {
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
    pub async fn presence_of(
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
    pub async fn close(mut self) {
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
pub fn is_push_of(message: &Value, uid: &str) -> bool {
    message["type"] == "presence"
        && message.get("id").is_none()
        && message["presence"]["uid"] == uid
}

pub fn status_is(status: &'static str) -> impl Fn(&Value) -> bool {
    move |p| p["status"] == status
}

/// Whose turn it is, if the match is on.
pub fn turn(snapshot: &Value) -> Option<String> {
    (snapshot["finished"] == false)
        .then(|| snapshot["turn"].as_str().map(str::to_owned))
        .flatten()
}

/// The test's strategy: bank from 15.
pub fn choose(snapshot: &Value) -> &'static str {
    if snapshot["view"]["turn_score"].as_i64() >= Some(15) {
        "bank"
    } else {
        "roll"
    }
}

/// `from` invites its friend `to` directly (WS `invite_friend`); `to` is
/// told (`invited`). The code.
pub async fn invite_friend(from: &mut Browser, to: &mut Browser, mode: &str) -> String {
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
pub async fn join_code(host: &mut Browser, joiner: &mut Browser, code: &str) -> String {
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
pub async fn first_snapshot(browser: &mut Browser, match_id: &str) -> Value {
    let message = browser
        .wait_for("the match", PROMPTLY, |m| {
            m["type"] == "match" && m["match"]["match_id"] == match_id
        })
        .await;
    message["match"].clone()
}
