//! The fault suite's harness (`tests/faults.rs`): a whole system of real
//! processes, a load of players on it, and the audit that says whether a
//! fault lost anything.
//!
//! - [`System`]: its own nats-server (one node, or a three-node cluster with
//!   JetStream in each, written from the project's users and permissions),
//!   its own redis-server, and the roles as `dashdice-under-test` processes
//!   (two gateways, two match hosts, matchmakers, presence), each under its
//!   own NATS user. Any of them can be killed (-9) and started again.
//! - [`Load`]: players on WebSockets who queue, play classic matches to the
//!   end and queue again; when their gateway dies they reconnect (with
//!   backoff, to the other gateway first), ask their queue status, follow
//!   their match again and re-fetch its snapshot over REST. Every refusal is
//!   counted by code; every success is timed, for the recovery time.
//! - [`System::audit`]: after the load drained, nothing lost: every match
//!   finished, its record in the record stream exactly once, its events
//!   gap-free from 1 (`GET /matches/{id}/events`), every player idle, every
//!   join ended in a match or an explicit leave, every role still running.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dashdice_gateway::{Auth, AuthConfig};
use dashdice_proto::bus;
use dashdice_service::local::Server;
use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::servers::{RedisServer, free_port};

/// The gateways' dev-token secret: the suite signs its players' tokens.
pub const DEV_SECRET: &str = "a-test-only-dev-secret-for-the-fault-suite";

/// A directory of this test process's own.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "dashdice-faults-{}-{name}-{}",
        std::process::id(),
        dashdice_proto::ids::random_hex::<4>().expect("randomness")
    ));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

/// The `authorization { ... }` block of the project's
/// `nats/nats-server.conf`: the roles' users and permissions, so a node
/// written here has exactly the project's.
pub fn project_authorization() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../nats/nats-server.conf");
    let text = std::fs::read_to_string(path).expect("nats/nats-server.conf");
    let start = text
        .find("\nauthorization {")
        .expect("an authorization block in nats/nats-server.conf")
        + 1;
    let mut depth = 0usize;
    for (i, c) in text[start..].char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return text[start..=start + i].to_owned();
                }
            }
            _ => {}
        }
    }
    panic!("the authorization block of {path} does not close");
}

fn reachable(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    )
    .is_ok()
}

/// One nats-server process with JetStream, on a fixed port and store
/// directory, so it can be killed and started again as the same node.
pub struct NatsNode {
    pub name: String,
    pub port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    /// Writes the config of node `name` (cluster routes to `routes`, if any,
    /// from `cluster_port`) and starts it.
    fn start(dir: &Path, name: &str, cluster: Option<(u16, &[u16])>) -> Self {
        let port = free_port();
        let store = dir.join(format!("{name}-store"));
        let cluster = match cluster {
            None => String::new(),
            Some((listen, routes)) => {
                let routes: Vec<String> = routes
                    .iter()
                    .map(|p| format!("nats-route://127.0.0.1:{p}"))
                    .collect();
                format!(
                    "cluster {{\n  name: dashdice-faults\n  listen: 127.0.0.1:{listen}\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                )
            }
        };
        let config = format!(
            "server_name: {name}\nlisten: 127.0.0.1:{port}\nmax_payload: 64KB\n\
             jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 256MB\n  max_file_store: 4GB\n}}\n\
             {cluster}{}\n",
            store.display(),
            project_authorization()
        );
        let path = dir.join(format!("{name}.conf"));
        std::fs::write(&path, config).expect("write a nats config");
        let mut node = NatsNode {
            name: name.to_owned(),
            port,
            config: path,
            log: dir.join(format!("{name}.log")),
            child: None,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let bin = Server::Nats
            .binary()
            .unwrap_or_else(|e| panic!("{e} (or run .ci/prepare)"));
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let mut child = Command::new(bin)
            .arg("-c")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nats-server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                panic!("nats-server {} exited ({status}): {log}", self.name);
            }
            if reachable(self.port) {
                self.child = Some(child);
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("nats-server {} did not listen on {}", self.name, self.port);
    }

    /// `kill -9`: no goodbye to clients or to the other nodes.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again: the same port, the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }
}

impl Drop for NatsNode {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A role as a process of the binary under test, restartable with the same
/// arguments.
pub struct Role {
    pub name: String,
    pub kind: &'static str,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// Killed on purpose (and not started again yet).
    killed: bool,
}

impl Role {
    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("a log file");
        let child = Command::new(&self.bin)
            .arg(self.kind)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.name));
        self.child = Some(child);
        self.killed = false;
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.killed = true;
    }

    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// Why it is not running, if it stopped on its own.
    fn exited(&mut self) -> Option<String> {
        if self.killed {
            return None;
        }
        let status = self.child.as_mut()?.try_wait().ok().flatten()?;
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(8).collect();
        Some(format!(
            "{} exited by itself ({status}); its log ends:\n{}",
            self.name,
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        ))
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        self.kill();
    }
}

#[derive(Clone, Copy, Debug)]
pub struct SystemOptions {
    /// Three NATS nodes in a cluster, streams with three replicas.
    pub cluster: bool,
    pub matchmakers: usize,
}

impl Default for SystemOptions {
    fn default() -> Self {
        SystemOptions {
            cluster: false,
            matchmakers: 2,
        }
    }
}

/// Everything one fault test runs on.
pub struct System {
    pub nats: Vec<NatsNode>,
    pub redis: RedisServer,
    pub roles: Vec<Role>,
    /// The gateways' base URLs (`http://127.0.0.1:<port>`), by index.
    pub gateways: Vec<String>,
    /// The `ops` user (reads `dd.>`).
    pub ops: async_nats::Client,
    pub http: reqwest::Client,
    auth: Auth,
    options: SystemOptions,
    /// Matches whose events were seen on the bus.
    seen: Arc<Mutex<BTreeSet<String>>>,
    _dir: ScratchDir,
}

struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The roles' and servers' logs, for whoever reads the failure.
            eprintln!("the system's logs are kept in {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

impl System {
    /// Starts the servers and the roles (`bin` is the binary under test)
    /// and waits until the players' routes work through both gateways.
    pub async fn start(bin: &str, options: SystemOptions) -> Self {
        dashdice_service::install_crypto();
        let scratch_dir = ScratchDir(scratch("system"));
        let dir = scratch_dir.0.clone();
        let nats = if options.cluster {
            let cluster_ports = [free_port(), free_port(), free_port()];
            (0..3)
                .map(|i| {
                    let routes: Vec<u16> = (0..3)
                        .filter(|j| *j != i)
                        .map(|j| cluster_ports[j])
                        .collect();
                    NatsNode::start(&dir, &format!("n{i}"), Some((cluster_ports[i], &routes)))
                })
                .collect()
        } else {
            vec![NatsNode::start(&dir, "n0", None)]
        };
        let redis = RedisServer::start();
        let urls: Vec<String> = nats.iter().map(NatsNode::url).collect();
        let urls = urls.join(",");
        let ops = connect_as(&urls, "ops").await;
        if options.cluster {
            wait_for_jetstream(&urls).await;
        }
        let artifacts = std::env::temp_dir().join("dashdice-faults-artifacts");
        let mut roles = Vec::new();
        let role = |name: String, kind: &'static str, user: &str, extra: Vec<String>| {
            let mut args = vec![
                "--nats-url".to_owned(),
                urls.clone(),
                "--redis-url".to_owned(),
                redis.url(),
            ];
            args.extend(extra);
            let mut env = vec![
                ("DASHDICE_NATS_USER".to_owned(), user.to_owned()),
                ("DASHDICE_NATS_PASSWORD".to_owned(), format!("{user}-dev")),
                (
                    "DASHDICE_ARTIFACT_DIR".to_owned(),
                    artifacts.display().to_string(),
                ),
            ];
            if options.cluster {
                env.push((bus::STREAM_REPLICAS_ENV.to_owned(), "3".to_owned()));
            }
            Role {
                log: dir.join(format!("{name}.log")),
                name,
                kind,
                bin: PathBuf::from(bin),
                args,
                env,
                child: None,
                killed: false,
            }
        };
        for i in 0..2 {
            roles.push(role(
                format!("match-host-{i}"),
                "match-host",
                "match-host",
                vec![],
            ));
        }
        for i in 0..options.matchmakers {
            roles.push(role(
                format!("matchmaker-{i}"),
                "matchmaker",
                "matchmaker",
                // No bots: players meet players.
                vec!["--bot-after-ms".into(), "0".into()],
            ));
        }
        roles.push(role("presence".into(), "presence", "presence", vec![]));
        let mut gateways = Vec::new();
        for i in 0..2 {
            let port = free_port();
            gateways.push(format!("http://127.0.0.1:{port}"));
            roles.push(role(
                format!("gateway-{i}"),
                "gateway",
                "gateway",
                [
                    "--listen",
                    &format!("127.0.0.1:{port}"),
                    "--dev-secret",
                    DEV_SECRET,
                    // Every player comes from 127.0.0.1: the per-IP limit
                    // would be the test's, not a fault's.
                    "--ip-rate",
                    "100000",
                    "--user-rate",
                    "1000",
                    "--ws-rate",
                    "1000",
                ]
                .map(str::to_owned)
                .to_vec(),
            ));
        }
        for role in &mut roles {
            role.spawn();
        }
        let auth = Auth::new(&AuthConfig {
            dev_secret: Some(DEV_SECRET.to_owned()),
            ..AuthConfig::default()
        })
        .expect("auth");
        let seen = Arc::new(Mutex::new(BTreeSet::new()));
        {
            let mut events = ops
                .subscribe(bus::match_events("*"))
                .await
                .expect("follow match events");
            let seen = seen.clone();
            tokio::spawn(async move {
                while let Some(message) = events.next().await {
                    if let Some(id) = message.subject.split('.').nth(2)
                        && let Ok(mut seen) = seen.lock()
                    {
                        seen.insert(id.to_owned());
                    }
                }
            });
        }
        let mut system = System {
            nats,
            redis,
            roles,
            gateways,
            ops,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("http"),
            auth,
            options,
            seen,
            _dir: scratch_dir,
        };
        system.wait_ready().await;
        system
    }

    pub fn nats_urls(&self) -> String {
        let urls: Vec<String> = self.nats.iter().map(NatsNode::url).collect();
        urls.join(",")
    }

    pub fn token(&self, user: &str) -> String {
        self.auth
            .dev_token(user, Duration::from_secs(3600))
            .expect("dev token")
            .token
    }

    pub fn role(&mut self, name: &str) -> &mut Role {
        self.roles
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no role {name}"))
    }

    /// Until both gateways answer the players' routes, and every match
    /// host, matchmaker and presence role answers a PING.
    pub async fn wait_ready(&mut self) {
        let token = self.token("probe");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut last = String::new();
        'wait: while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(200)).await;
            for role in &mut self.roles {
                if let Some(exited) = role.exited() {
                    panic!("{exited}");
                }
            }
            for (i, base) in self.gateways.iter().enumerate() {
                let checks = [
                    ("/health", StatusCode::OK),
                    ("/queue/status", StatusCode::OK),
                    ("/matches/none", StatusCode::NOT_FOUND),
                ];
                for (path, want) in checks {
                    match rest(&self.http, base, reqwest::Method::GET, path, &token, None).await {
                        Ok((status, _)) if status == want => {}
                        other => {
                            last = format!("gateway-{i} {path}: {other:?}");
                            continue 'wait;
                        }
                    }
                }
            }
            let want = [
                (bus::MATCH_SERVICE, 2),
                (bus::MATCHMAKER_SERVICE, self.options.matchmakers),
                (bus::PRESENCE_SERVICE, 1),
            ];
            for (service, n) in want {
                let answered = ping(&self.ops, service).await;
                if answered < n {
                    last = format!("{answered} of {n} {service} answer");
                    continue 'wait;
                }
            }
            return;
        }
        panic!("the system did not come up: {last}");
    }

    /// The audit after the load drained: see the module docs. Prints one
    /// line `FAULT <name>: recovery=..ms refused=.. matches=..` and returns
    /// what it found.
    pub async fn audit(&mut self, name: &str, tally: &Tally, fault_at: Instant) -> Audit {
        let mut problems: Vec<String> =
            tally.problems.lock().map(|p| p.clone()).unwrap_or_default();
        for role in &mut self.roles {
            if let Some(exited) = role.exited() {
                problems.push(exited);
            }
        }
        // Every join ended in a match or an explicit leave.
        let joins = tally.joins.load(Ordering::Relaxed);
        let matched = tally.matched.load(Ordering::Relaxed);
        let left = tally.left.load(Ordering::Relaxed);
        if joins != matched + left {
            problems.push(format!(
                "{joins} joins accepted, but {matched} ended in a match and {left} in a leave"
            ));
        }
        // No player stuck.
        let players: Vec<String> = tally.players.lock().map(|p| p.clone()).unwrap_or_default();
        for player in &players {
            let token = self.token(player);
            let mut state = String::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                state = match self.get_any(&token, "/queue/status").await {
                    Some(status) => status["state"].as_str().unwrap_or("?").to_owned(),
                    None => "no answer".to_owned(),
                };
                if state == "idle" {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            if state != "idle" {
                problems.push(format!("{player} is stuck: queue status {state}"));
            }
        }
        // Every match: finished, gap-free from 1, its record once.
        let mut matches: BTreeSet<String> = tally
            .matches
            .lock()
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default();
        matches.extend(self.seen.lock().map(|s| s.clone()).unwrap_or_default());
        let auditor = self.token("auditor");
        let mut records = BTreeMap::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match self.records().await {
                Ok(found) => records = found,
                Err(e) => problems.push(format!("reading the record stream: {e}")),
            }
            let complete = matches.iter().all(|m| records.contains_key(m));
            if complete || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        matches.extend(records.keys().cloned());
        for id in &matches {
            match records.get(id) {
                Some(1) => {}
                Some(n) => problems.push(format!("match {id}: {n} records in the stream")),
                None => problems.push(format!("match {id}: no record in the stream")),
            }
            let Some(snapshot) = self.get_any(&auditor, &format!("/matches/{id}")).await else {
                problems.push(format!("match {id}: no snapshot"));
                continue;
            };
            if snapshot["finished"] != true {
                problems.push(format!(
                    "match {id} never finished (seq {})",
                    snapshot["seq"]
                ));
            }
            let Some(events) = self
                .get_any(&auditor, &format!("/matches/{id}/events?since=0"))
                .await
            else {
                problems.push(format!("match {id}: no events"));
                continue;
            };
            let seqs: Vec<u64> = events
                .as_array()
                .map(|e| e.iter().filter_map(|e| e["seq"].as_u64()).collect())
                .unwrap_or_default();
            let want: Vec<u64> = (1..=seqs.len() as u64).collect();
            if seqs != want || Some(seqs.len() as u64) != snapshot["seq"].as_u64() {
                problems.push(format!(
                    "match {id}: events {seqs:?} are not 1..={} gap-free",
                    snapshot["seq"]
                ));
            }
        }
        let recovery = tally.first_success_after(fault_at);
        let refused = tally.refused.lock().map(|r| r.clone()).unwrap_or_default();
        if recovery.is_none() {
            problems.push("nothing succeeded after the fault".to_owned());
        }
        let audit = Audit {
            recovery,
            refused,
            matches: matches.len(),
            finished_after_fault: tally.finished_after(fault_at),
            problems,
        };
        println!("{}", audit.line(name));
        audit
    }

    /// A GET through either gateway (the first that answers 200).
    async fn get_any(&self, token: &str, path: &str) -> Option<Value> {
        for base in &self.gateways {
            if let Ok((StatusCode::OK, body)) =
                rest(&self.http, base, reqwest::Method::GET, path, token, None).await
            {
                return Some(body);
            }
        }
        None
    }

    /// How many records each match has in the record stream (read as the
    /// `designer` user, the one that may read any stream's messages).
    pub async fn records(&self) -> Result<BTreeMap<String, usize>, String> {
        let client = connect_as(&self.nats_urls(), "designer").await;
        let js = async_nats::jetstream::new(client);
        let mut stream = js
            .get_stream(bus::RECORD_STREAM)
            .await
            .map_err(|e| e.to_string())?;
        let info = stream.info().await.map_err(|e| e.to_string())?;
        let (first, last) = (info.state.first_sequence, info.state.last_sequence);
        let mut counts = BTreeMap::new();
        if info.state.messages == 0 {
            return Ok(counts);
        }
        for seq in first..=last {
            let message = stream
                .get_raw_message(seq)
                .await
                .map_err(|e| format!("record {seq}: {e}"))?;
            let id = message
                .subject
                .split('.')
                .nth(2)
                .unwrap_or_default()
                .to_owned();
            *counts.entry(id).or_insert(0) += 1;
        }
        Ok(counts)
    }

    /// The record stream's replicas as the cluster runs it.
    pub async fn record_stream_replicas(&self) -> Result<usize, String> {
        let client = connect_as(&self.nats_urls(), "designer").await;
        let js = async_nats::jetstream::new(client);
        let mut stream = js
            .get_stream(bus::RECORD_STREAM)
            .await
            .map_err(|e| e.to_string())?;
        let info = stream.info().await.map_err(|e| e.to_string())?;
        Ok(info.config.num_replicas)
    }
}

/// What an audit found.
#[derive(Debug)]
pub struct Audit {
    /// From the fault to the first successful action or match after it.
    pub recovery: Option<Duration>,
    /// Refused requests (and lost connections) by code.
    pub refused: BTreeMap<String, u64>,
    pub matches: usize,
    /// Matches that ended after the fault (their records were written then).
    pub finished_after_fault: usize,
    pub problems: Vec<String>,
}

impl Audit {
    pub fn refused_total(&self) -> u64 {
        self.refused.values().sum()
    }

    pub fn line(&self, name: &str) -> String {
        let recovery = self
            .recovery
            .map_or("none".to_owned(), |r| r.as_millis().to_string());
        let detail: Vec<String> = self
            .refused
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        format!(
            "FAULT {name}: recovery={recovery}ms refused={} ({}) matches={} nothing_lost={}",
            self.refused_total(),
            detail.join(","),
            self.matches,
            self.problems.is_empty()
        )
    }

    /// Fails the test with every problem found.
    pub fn assert_nothing_lost(&self, name: &str) {
        assert!(
            self.problems.is_empty(),
            "{name}: {} problems:\n{}",
            self.problems.len(),
            self.problems.join("\n")
        );
    }
}

/// Connects as `user` of the project's NATS users to any of `urls`.
pub async fn connect_as(urls: &str, user: &str) -> async_nats::Client {
    let servers: Vec<&str> = urls.split(',').collect();
    async_nats::ConnectOptions::with_user_and_password(user.into(), format!("{user}-dev"))
        .name(format!("fault-suite {user}"))
        .connect(servers)
        .await
        .unwrap_or_else(|e| panic!("nats as {user}: {e}"))
}

/// Until the cluster's JetStream answers (it has a meta leader).
async fn wait_for_jetstream(urls: &str) {
    let client = connect_as(urls, "designer").await;
    let js = async_nats::jetstream::new(client);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = String::new();
    while Instant::now() < deadline {
        match js.query_account().await {
            Ok(_) => return,
            Err(e) => last = e.to_string(),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("the cluster's JetStream never answered: {last}");
}

/// How many instances of the NATS micro service `service` answer a PING.
pub async fn ping(client: &async_nats::Client, service: &str) -> usize {
    let inbox = client.new_inbox();
    let Ok(mut pongs) = client.subscribe(inbox.clone()).await else {
        return 0;
    };
    if client
        .publish_with_reply(format!("$SRV.PING.{service}"), inbox, "".into())
        .await
        .is_err()
    {
        return 0;
    }
    let mut seen = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(300), pongs.next()).await {
        seen += 1;
    }
    seen
}

/// One REST call: the status and the JSON body, or why there is none.
pub async fn rest(
    http: &reqwest::Client,
    base: &str,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> Result<(StatusCode, Value), String> {
    let mut request = http
        .request(method, format!("{base}/api/v1{path}"))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.map_err(|e| e.to_string())?;
    let status = response.status();
    let bytes = response.bytes().await.map_err(|e| e.to_string())?;
    let value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Ok((status, value))
}

/// What the players saw, shared by all of them.
#[derive(Default)]
pub struct Tally {
    /// Successful requests: when each was sent, and when it succeeded.
    successes: Mutex<Vec<(Instant, Instant)>>,
    refused: Mutex<BTreeMap<String, u64>>,
    /// Every match a player was in, and when it was seen finished.
    matches: Mutex<BTreeMap<String, Option<Instant>>>,
    players: Mutex<Vec<String>>,
    /// Joins that held a ticket, and how those ended.
    joins: AtomicU64,
    matched: AtomicU64,
    left: AtomicU64,
    pub actions: AtomicU64,
    problems: Mutex<Vec<String>>,
}

impl Tally {
    pub fn refuse(&self, code: &str) {
        if let Ok(mut r) = self.refused.lock() {
            *r.entry(code.to_owned()).or_insert(0) += 1;
        }
    }

    /// A request sent at `sent` succeeded now.
    pub fn success(&self, sent: Instant) {
        if let Ok(mut s) = self.successes.lock() {
            s.push((sent, Instant::now()));
        }
    }

    pub fn problem(&self, problem: String) {
        if let Ok(mut p) = self.problems.lock() {
            p.push(problem);
        }
    }

    /// A match the audit checks (one a test made besides the load's).
    pub fn note_match(&self, id: &str) {
        if let Ok(mut m) = self.matches.lock() {
            m.entry(id.to_owned()).or_insert(None);
        }
    }

    fn finished(&self, id: &str) {
        if let Ok(mut m) = self.matches.lock() {
            m.insert(id.to_owned(), Some(Instant::now()));
        }
    }

    /// The recovery time: from `at` (the fault) until the first request
    /// sent after it succeeded.
    pub fn first_success_after(&self, at: Instant) -> Option<Duration> {
        let successes = self.successes.lock().ok()?;
        successes
            .iter()
            .filter(|(sent, _)| *sent >= at)
            .map(|(_, done)| *done)
            .min()
            .map(|done| done.duration_since(at))
    }

    pub fn finished_after(&self, at: Instant) -> usize {
        self.matches
            .lock()
            .map(|m| m.values().filter(|f| f.is_some_and(|f| f >= at)).count())
            .unwrap_or(0)
    }

    pub fn refused_total(&self) -> u64 {
        self.refused.lock().map(|r| r.values().sum()).unwrap_or(0)
    }
}

#[derive(Clone, Copy, Debug)]
pub struct LoadOptions {
    pub players: usize,
    /// Mean think time before each action (½..1½ of it).
    pub think: Duration,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            players: 24,
            think: Duration::from_millis(60),
        }
    }
}

/// Players playing on a [`System`] until told to stop queueing.
pub struct Load {
    stop: Arc<AtomicBool>,
    players: Vec<(String, tokio::task::JoinHandle<()>)>,
    pub tally: Arc<Tally>,
}

struct Shared {
    gateways: Vec<String>,
    http: reqwest::Client,
    tally: Arc<Tally>,
    stop: Arc<AtomicBool>,
    think: Duration,
}

impl Load {
    pub fn start(system: &System, options: LoadOptions) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(Tally::default());
        let shared = Arc::new(Shared {
            gateways: system.gateways.clone(),
            http: system.http.clone(),
            tally: tally.clone(),
            stop: stop.clone(),
            think: options.think,
        });
        let mut players = Vec::new();
        for n in 0..options.players {
            let me = format!("p{n:02}");
            if let Ok(mut p) = tally.players.lock() {
                p.push(me.clone());
            }
            let player = Player {
                me: me.clone(),
                token: system.token(&me),
                prefer: n % system.gateways.len(),
                shared: shared.clone(),
                conn: None,
                pending: VecDeque::new(),
                next_id: 0,
                seed: n as u64 * 7919 + 1,
            };
            let delay = Duration::from_millis(40 * n as u64);
            players.push((
                me,
                tokio::spawn(async move {
                    tokio::time::sleep(delay).await;
                    player.run().await;
                }),
            ));
        }
        Load {
            stop,
            players,
            tally,
        }
    }

    /// Players finish the match they are in (or leave the queue) and stop.
    pub fn stop_queueing(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Waits for every player to be done, at most `within`; a player still
    /// busy then is a problem.
    pub async fn drain(self, within: Duration) -> Arc<Tally> {
        self.stop_queueing();
        let deadline = tokio::time::Instant::now() + within;
        for (me, player) in self.players {
            let abort = player.abort_handle();
            if tokio::time::timeout_at(deadline, player).await.is_err() {
                abort.abort();
                self.tally.problem(format!(
                    "{me} was still busy {} s after the stop",
                    within.as_secs()
                ));
            }
        }
        self.tally
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The connection dropped (or never came).
struct Lost;

struct Conn {
    ws: Socket,
}

/// What a player is doing.
enum State {
    Idle,
    /// Holding a ticket.
    Queued,
    Playing(String),
    Done,
}

/// The match as a player knows it.
#[derive(Default)]
struct Table {
    seq: u64,
    turn: Option<String>,
    turn_score: i64,
    finished: bool,
}

impl Table {
    fn apply_snapshot(&mut self, snapshot: &Value) {
        let seq = snapshot["seq"].as_u64().unwrap_or(0);
        if seq < self.seq || snapshot.is_null() {
            return;
        }
        self.seq = seq;
        self.finished = snapshot["finished"].as_bool().unwrap_or(false);
        self.turn = snapshot["turn"].as_str().map(str::to_owned);
        self.turn_score = snapshot["view"]["turn_score"].as_i64().unwrap_or(0);
    }

    /// Applies the next event; `false` if it is not the next one (a gap:
    /// the caller re-reads the match).
    fn apply_event(&mut self, event: &Value, me: &str) -> bool {
        let seq = event["seq"].as_u64().unwrap_or(0);
        if seq <= self.seq {
            return true;
        }
        if seq != self.seq + 1 {
            return false;
        }
        self.seq = seq;
        match event["type"].as_str() {
            Some("turn_started") => {
                self.turn = event["player"].as_str().map(str::to_owned);
                self.turn_score = 0;
            }
            Some("turn_passed") => {
                self.turn = event["to"].as_str().map(str::to_owned);
                self.turn_score = 0;
            }
            Some("turn_score_changed") if event["player"] == me => {
                self.turn_score = event["total"].as_i64().unwrap_or(0);
            }
            Some("game_over") => {
                self.finished = true;
                self.turn = None;
            }
            _ => {}
        }
        true
    }
}

/// How long a player waits for an answer before asking again.
const ANSWER_WITHIN: Duration = Duration::from_secs(8);
/// A player gives up (a problem) after this long without progress.
const GIVE_UP: Duration = Duration::from_secs(60);

struct Player {
    me: String,
    token: String,
    /// The gateway tried first.
    prefer: usize,
    shared: Arc<Shared>,
    conn: Option<Conn>,
    /// Pushes read while waiting for an answer.
    pending: VecDeque<Value>,
    next_id: u64,
    seed: u64,
}

impl Player {
    fn tally(&self) -> &Tally {
        &self.shared.tally
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{}", self.next_id)
    }

    fn think(&mut self) -> Duration {
        // xorshift: a spread of think times without a dependency.
        self.seed ^= self.seed << 13;
        self.seed ^= self.seed >> 7;
        self.seed ^= self.seed << 17;
        let share = 0.5 + (self.seed % 1000) as f64 / 1000.0;
        self.shared.think.mul_f64(share)
    }

    async fn run(mut self) {
        let mut state = State::Idle;
        let mut leaving: Option<String> = None;
        loop {
            state = match state {
                State::Done => break,
                State::Idle if self.shared.stop.load(Ordering::Relaxed) => State::Done,
                State::Idle => self.join().await,
                State::Queued => self.wait_for_match(&mut leaving).await,
                State::Playing(id) => {
                    leaving = None;
                    self.play(&id).await
                }
            };
        }
        if let Some(mut conn) = self.conn.take() {
            let _ = conn.ws.close(None).await;
        }
    }

    /// Connects to a gateway: the one it used, then the other, with
    /// backoff between rounds. `false` once it has tried for [`GIVE_UP`].
    async fn connect(&mut self) -> bool {
        self.pending.clear();
        let n = self.shared.gateways.len();
        let mut backoff = Duration::from_millis(100);
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            let gateway = (self.prefer + attempt) % n;
            match open(&self.shared.gateways[gateway], &self.token).await {
                Ok(ws) => {
                    self.prefer = gateway;
                    self.conn = Some(Conn { ws });
                    return true;
                }
                Err(code) => self.tally().refuse(&code),
            }
            attempt += 1;
            if started.elapsed() > GIVE_UP {
                self.tally()
                    .problem(format!("{} could not connect to any gateway", self.me));
                return false;
            }
            if attempt % n == 0 {
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        }
    }

    async fn send(&mut self, message: Value) -> Result<(), Lost> {
        if self.conn.is_none() && !self.connect().await {
            return Err(Lost);
        }
        let conn = self.conn.as_mut().ok_or(Lost)?;
        if conn
            .ws
            .send(Message::text(message.to_string()))
            .await
            .is_err()
        {
            self.conn = None;
            return Err(Lost);
        }
        Ok(())
    }

    /// The next message (a push read earlier first), `None` after `within`.
    async fn next(&mut self, within: Duration) -> Result<Option<Value>, Lost> {
        if let Some(message) = self.pending.pop_front() {
            return Ok(Some(message));
        }
        let conn = self.conn.as_mut().ok_or(Lost)?;
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, conn.ws.next()).await {
                Err(_) => return Ok(None),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Ok(serde_json::from_str(&text).ok());
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                    self.conn = None;
                    return Err(Lost);
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    /// Sends `message` (with `id`) and waits for the answer carrying that
    /// id; pushes read meanwhile wait in `pending`. `Ok(None)`: no answer
    /// in time.
    async fn request(&mut self, message: Value, id: &str) -> Result<Option<Value>, Lost> {
        self.send(message).await?;
        let deadline = Instant::now() + ANSWER_WITHIN;
        let mut read = Vec::new();
        let answer = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            // Only fresh messages: the pending ones are not answers.
            let conn = self.conn.as_mut().ok_or(Lost)?;
            let frame = tokio::time::timeout(left, conn.ws.next()).await;
            match frame {
                Err(_) => break None,
                Ok(Some(Ok(Message::Text(text)))) => {
                    let Ok(message) = serde_json::from_str::<Value>(&text) else {
                        continue;
                    };
                    if message["id"] == id {
                        break Some(message);
                    }
                    read.push(message);
                }
                Ok(Some(Ok(Message::Close(_)))) | Ok(Some(Err(_))) | Ok(None) => {
                    self.conn = None;
                    self.pending.extend(read);
                    return Err(Lost);
                }
                Ok(Some(Ok(_))) => {}
            }
        };
        self.pending.extend(read);
        Ok(answer)
    }

    /// The queue status, asked until some gateway answers.
    async fn status(&mut self) -> Option<Value> {
        let started = Instant::now();
        while started.elapsed() < GIVE_UP {
            let id = self.id("s");
            match self
                .request(json!({"v": 1, "type": "status", "id": id}), &id)
                .await
            {
                Ok(Some(answer)) if answer["type"] == "queue" => {
                    return Some(answer["status"].clone());
                }
                Ok(Some(answer)) => {
                    self.tally()
                        .refuse(answer["error"]["code"].as_str().unwrap_or("error"));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
                Ok(None) => self.tally().refuse("no_answer"),
                Err(Lost) => self.tally().refuse("disconnected"),
            }
        }
        self.tally()
            .problem(format!("{} never got its queue status", self.me));
        None
    }

    /// What a status says to do, for a player that may hold a ticket.
    fn after_status(&mut self, status: &Value, ticket: bool) -> State {
        match status["state"].as_str() {
            Some("queued" | "matching") => {
                if !ticket {
                    self.tally().joins.fetch_add(1, Ordering::Relaxed);
                }
                State::Queued
            }
            Some("playing") => {
                if !ticket {
                    self.tally().joins.fetch_add(1, Ordering::Relaxed);
                }
                self.tally().matched.fetch_add(1, Ordering::Relaxed);
                match status["match_id"].as_str() {
                    Some(id) => State::Playing(id.to_owned()),
                    None => State::Idle,
                }
            }
            _ => State::Idle,
        }
    }

    async fn join(&mut self) -> State {
        let id = self.id("j");
        let join = json!({"v": 1, "type": "join", "id": id, "mode": "classic", "kind": "quick"});
        let sent = Instant::now();
        match self.request(join, &id).await {
            Ok(Some(answer)) if answer["type"] == "queue" => {
                self.tally().success(sent);
                self.after_status(&answer["status"].clone(), false)
            }
            Ok(Some(answer)) => {
                let code = answer["error"]["code"]
                    .as_str()
                    .unwrap_or("error")
                    .to_owned();
                self.tally().refuse(&code);
                match code.as_str() {
                    // A ticket or match of ours from before: what is it?
                    "already_queued" | "in_match" | "matching" => {
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        match self.status().await {
                            Some(status) => self.after_status(&status, false),
                            None => State::Done,
                        }
                    }
                    _ => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        State::Idle
                    }
                }
            }
            // No answer: the join may or may not have been applied.
            other => {
                self.tally().refuse(if other.is_err() {
                    "disconnected"
                } else {
                    "no_answer"
                });
                match self.status().await {
                    Some(status) => self.after_status(&status, false),
                    None => State::Done,
                }
            }
        }
    }

    /// Holding a ticket: waits for the match, or leaves once the load
    /// stops.
    async fn wait_for_match(&mut self, leaving: &mut Option<String>) -> State {
        if leaving.is_none() && self.shared.stop.load(Ordering::Relaxed) {
            let id = self.id("l");
            let _ = self.send(json!({"v": 1, "type": "leave", "id": id})).await;
            *leaving = Some(id);
        }
        let message = match self.next(Duration::from_secs(3)).await {
            Ok(message) => message,
            Err(Lost) => {
                self.tally().refuse("disconnected");
                // A leave that went down with the connection is sent again.
                *leaving = None;
                None
            }
        };
        let status = match message {
            Some(m) if m["type"] == "match_found" => {
                self.tally().matched.fetch_add(1, Ordering::Relaxed);
                self.tally().success(Instant::now());
                return match m["match_id"].as_str() {
                    Some(id) => State::Playing(id.to_owned()),
                    None => State::Idle,
                };
            }
            Some(m) if m["type"] == "queue" => m["status"].clone(),
            Some(m) if m["type"] == "error" => {
                let code = m["error"]["code"].as_str().unwrap_or("error").to_owned();
                self.tally().refuse(&code);
                if leaving.as_deref() == m["id"].as_str() {
                    // in_match / matching: a match beat the leave.
                    *leaving = None;
                }
                return State::Queued;
            }
            Some(_) => return State::Queued,
            None => match self.status().await {
                Some(status) => status,
                None => return State::Done,
            },
        };
        match status["state"].as_str() {
            Some("idle") if leaving.is_some() => {
                self.tally().left.fetch_add(1, Ordering::Relaxed);
                State::Idle
            }
            Some("idle") => {
                self.tally().problem(format!(
                    "{}'s ticket was lost: idle with no match or leave",
                    self.me
                ));
                // Counted as ended, so the join counts add up; the
                // problem fails the audit.
                self.tally().left.fetch_add(1, Ordering::Relaxed);
                State::Idle
            }
            _ => self.after_status(&status, true),
        }
    }

    /// The match over REST (authoritative), through any gateway.
    async fn snapshot(&mut self, match_id: &str) -> Option<Value> {
        let n = self.shared.gateways.len();
        for attempt in 0..n * 3 {
            let base = &self.shared.gateways[(self.prefer + attempt) % n];
            match rest(
                &self.shared.http,
                base,
                reqwest::Method::GET,
                &format!("/matches/{match_id}"),
                &self.token,
                None,
            )
            .await
            {
                Ok((StatusCode::OK, body)) => return Some(body),
                Ok((_, body)) => self
                    .tally()
                    .refuse(body["error"]["code"].as_str().unwrap_or("http_error")),
                Err(_) => self.tally().refuse("http_failed"),
            }
            tokio::time::sleep(Duration::from_millis(100 * (attempt as u64 + 1))).await;
        }
        None
    }

    /// Reconnects and follows `match_id` again from `since`.
    async fn rejoin(&mut self, match_id: &str, since: u64) -> bool {
        if self.conn.is_none() && !self.connect().await {
            return false;
        }
        let id = self.id("f");
        self.send(
            json!({"v": 1, "type": "subscribe", "id": id, "match_id": match_id, "since": since}),
        )
        .await
        .is_ok()
    }

    async fn play(&mut self, match_id: &str) -> State {
        let tally = self.shared.tally.clone();
        tally.note_match(match_id);
        let mut table = Table::default();
        if let Some(snapshot) = self.snapshot(match_id).await {
            table.apply_snapshot(&snapshot);
        }
        let mut last_progress = Instant::now();
        let mut acted = 0u64;
        loop {
            if table.finished {
                tally.finished(match_id);
                return State::Idle;
            }
            if last_progress.elapsed() > GIVE_UP {
                tally.problem(format!(
                    "{} made no progress in match {match_id} for {} s",
                    self.me,
                    GIVE_UP.as_secs()
                ));
                return State::Done;
            }
            if table.turn.as_deref() == Some(self.me.as_str()) {
                let think = self.think();
                tokio::time::sleep(think).await;
                let action = if table.turn_score >= 20 {
                    "bank"
                } else {
                    "roll"
                };
                let id = self.id("a");
                let request_id = format!("{}-{match_id}-{acted}", self.me);
                let act = json!({"v": 1, "type": "act", "id": id, "match_id": match_id,
                    "action": action, "request_id": request_id});
                let sent = Instant::now();
                match self.request(act, &id).await {
                    Ok(Some(answer)) if answer["type"] == "acted" => {
                        tally.success(sent);
                        tally.actions.fetch_add(1, Ordering::Relaxed);
                        table.apply_snapshot(&answer["reply"]["match"]);
                        acted += 1;
                        last_progress = Instant::now();
                    }
                    Ok(Some(answer)) => {
                        let code = answer["error"]["code"]
                            .as_str()
                            .unwrap_or("error")
                            .to_owned();
                        tally.refuse(&code);
                        if !matches!(code.as_str(), "not_your_turn" | "game_over") {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                        }
                        if let Some(snapshot) = self.snapshot(match_id).await {
                            table.apply_snapshot(&snapshot);
                        }
                    }
                    Ok(None) => {
                        tally.refuse("no_answer");
                        if let Some(snapshot) = self.snapshot(match_id).await {
                            table.apply_snapshot(&snapshot);
                        }
                    }
                    Err(Lost) => {
                        tally.refuse("disconnected");
                        self.rejoin(match_id, table.seq).await;
                        if let Some(snapshot) = self.snapshot(match_id).await {
                            table.apply_snapshot(&snapshot);
                        }
                    }
                }
                continue;
            }
            match self.next(Duration::from_millis(1500)).await {
                Ok(Some(m)) if m["type"] == "event" && m["match_id"] == match_id => {
                    if table.apply_event(&m["event"], &self.me) {
                        last_progress = Instant::now();
                    } else if let Some(snapshot) = self.snapshot(match_id).await {
                        table.apply_snapshot(&snapshot);
                    }
                }
                Ok(Some(m)) if m["type"] == "match" && m["match"]["match_id"] == match_id => {
                    table.apply_snapshot(&m["match"]);
                }
                Ok(Some(m)) if m["type"] == "error" => {
                    tally.refuse(m["error"]["code"].as_str().unwrap_or("error"));
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    let seq = table.seq;
                    if let Some(snapshot) = self.snapshot(match_id).await {
                        table.apply_snapshot(&snapshot);
                    }
                    if table.seq > seq {
                        last_progress = Instant::now();
                    }
                }
                Err(Lost) => {
                    tally.refuse("disconnected");
                    self.rejoin(match_id, table.seq).await;
                    if let Some(snapshot) = self.snapshot(match_id).await {
                        table.apply_snapshot(&snapshot);
                    }
                }
            }
        }
    }
}

/// A signed-in WebSocket session at `base`, past its `welcome`; the error
/// code to count otherwise.
async fn open(base: &str, token: &str) -> Result<Socket, String> {
    let url = format!("{}/api/v1/ws", base.replacen("http://", "ws://", 1));
    let mut request = url
        .into_client_request()
        .map_err(|_| "bad_url".to_owned())?;
    let bearer = format!("Bearer {token}")
        .parse()
        .map_err(|_| "bad_token".to_owned())?;
    request.headers_mut().insert("authorization", bearer);
    let connecting = tokio_tungstenite::connect_async_with_config(request, None, true);
    let mut ws = match tokio::time::timeout(Duration::from_secs(5), connecting).await {
        Err(_) => return Err("connect_timeout".into()),
        Ok(Ok((ws, _))) => ws,
        Ok(Err(tokio_tungstenite::tungstenite::Error::Http(response))) => {
            return Err(format!("upgrade_{}", response.status().as_u16()));
        }
        Ok(Err(_)) => return Err("connect_failed".into()),
    };
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(text)))) if text.contains("\"welcome\"") => Ok(ws),
        _ => Err("no_welcome".into()),
    }
}
