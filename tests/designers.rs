//! Designers ship a mode into a running system: real nats-server (JetStream)
//! and redis-server, match hosts, a matchmaker and a gateway as
//! `dashdice` processes. A mode that is not built in is checked, signed and
//! published with `dashdice mode publish`, and played to the end over the
//! gateway's WebSocket without restarting anything; a second version
//! published mid-match leaves the running match on its version (also on a
//! host started afterwards, which fetches it by hash) while new matches get
//! the new one; rollback and retirement take effect; components that are
//! unsigned, signed by a stranger, forged or unfit are refused; only the
//! designer NATS user may write the catalog.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use dashdice_catalog::{Catalog, PublisherKey, TrustedKeys};
use dashdice_proto::ModeHash;
use dashdice_runtime::fair_dice::verify;
use dashdice_tests::servers::{NatsServer, RedisServer, free_port};
use dashdice_tools::bench::publish::nth_version;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

const TEMPLATE: &str = env!("DASHDICE_TEST_TEMPLATE");
const BIN: &str = env!("CARGO_BIN_EXE_dashdice-under-test");

/// A `dashdice` role process, killed (SIGKILL) and reaped on drop.
struct Role(Child);

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("designers-artifacts")
}

fn role(args: &[&str]) -> Role {
    let child = Command::new(BIN)
        .args(args)
        .env("DASHDICE_ARTIFACT_DIR", artifacts())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn a role");
    Role(child)
}

/// `dashdice <args>` to its end.
fn dashdice(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("DASHDICE_PUBLISHER_KEY")
        .output()
        .expect("run dashdice")
}

struct Cluster {
    nats: NatsServer,
    redis: RedisServer,
    key_file: PathBuf,
    trusted: String,
    base: String,
    http: reqwest::Client,
    _dir: TempDir,
    roles: Vec<Role>,
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("dd-{name}-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Cluster {
    /// Servers, `hosts` match hosts trusting a fresh publisher key, a
    /// matchmaker and a gateway with guest sign-in.
    async fn start(hosts: usize) -> Cluster {
        let nats = NatsServer::start();
        let redis = RedisServer::start();
        let dir = TempDir::new("designers");
        let key_file = dir.0.join("publisher.key");
        let key = PublisherKey::read_or_create(&key_file).expect("key");
        let port = free_port();
        let mut cluster = Cluster {
            trusted: key.public().to_string(),
            key_file,
            base: format!("http://127.0.0.1:{port}/api/v1"),
            http: reqwest::Client::new(),
            _dir: dir,
            roles: Vec::new(),
            nats,
            redis,
        };
        for _ in 0..hosts {
            cluster.add_host();
        }
        let (nats_url, redis_url) = (cluster.nats.url(), cluster.redis.url());
        cluster.roles.push(role(&[
            "matchmaker",
            "--nats-url",
            &nats_url,
            "--redis-url",
            &redis_url,
        ]));
        let listen = format!("127.0.0.1:{port}");
        cluster.roles.push(role(&[
            "gateway",
            "--nats-url",
            &nats_url,
            "--redis-url",
            &redis_url,
            "--listen",
            &listen,
            "--dev",
            "--dev-secret",
            "designers-test-secret",
            "--user-rate",
            "1000",
            "--ws-rate",
            "1000",
            "--ip-rate",
            "10000",
        ]));
        cluster
            .wait_until(|modes| modes.iter().any(|m| m["id"] == "classic"))
            .await;
        cluster.wait_for_hosts(hosts).await;
        cluster
    }

    fn add_host(&mut self) {
        let (nats_url, redis_url) = (self.nats.url(), self.redis.url());
        self.roles.push(role(&[
            "match-host",
            "--nats-url",
            &nats_url,
            "--redis-url",
            &redis_url,
            "--trusted-keys",
            &self.trusted,
        ]));
    }

    /// `dashdice mode <verb> ...` against this cluster, as the designer.
    fn mode(&self, verb: &str, args: &[&str]) -> Output {
        let key = self.key_file.display().to_string();
        let nats = self.nats.url();
        let mut all = vec!["mode", verb];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--nats-url", &nats]);
        if verb == "publish" {
            all.extend_from_slice(&["--key-file", &key, "--games", "300"]);
        }
        let redis = self.redis.url();
        if verb == "list" {
            all.extend_from_slice(&["--redis-url", &redis]);
        }
        dashdice(&all)
    }

    fn publish(&self, file: &Path) -> Output {
        self.mode("publish", &[&file.display().to_string()])
    }

    async fn modes(&self) -> Vec<Value> {
        let Ok(response) = self.http.get(format!("{}/modes", self.base)).send().await else {
            return Vec::new();
        };
        let body: Value = response.json().await.unwrap_or_default();
        body["modes"].as_array().cloned().unwrap_or_default()
    }

    /// Waits (up to 60 s: the first start compiles the built-in modes)
    /// until the gateway's mode list satisfies `ok`; returns how long.
    async fn wait_until(&self, ok: impl Fn(&[Value]) -> bool) -> Duration {
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(60) {
            if ok(&self.modes().await) {
                return started.elapsed();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("the modes never became {:?}", self.modes().await);
    }

    async fn guest(&self) -> String {
        let body: Value = self
            .http
            .post(format!("{}/auth/guest", self.base))
            .send()
            .await
            .expect("guest sign-in")
            .json()
            .await
            .expect("json");
        body["token"].as_str().expect("a token").to_owned()
    }

    /// Waits until `n` match hosts answer a NATS service PING.
    async fn wait_for_hosts(&self, n: usize) {
        let client = async_nats::connect(self.nats.url()).await.expect("nats");
        for _ in 0..300 {
            let inbox = client.new_inbox();
            let mut pongs = client.subscribe(inbox.clone()).await.expect("inbox");
            client
                .publish_with_reply(
                    format!("$SRV.PING.{}", dashdice_proto::bus::MATCH_SERVICE),
                    inbox,
                    "".into(),
                )
                .await
                .expect("ping");
            let mut seen = 0;
            while let Ok(Some(_)) =
                tokio::time::timeout(Duration::from_millis(200), pongs.next()).await
            {
                seen += 1;
            }
            if seen >= n {
                return;
            }
        }
        panic!("{n} match hosts did not come up");
    }

    async fn session(&self) -> Ws {
        let url = self.base.replace("http://", "ws://") + "/ws";
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("ws");
        let token = self.guest().await;
        let mut ws = Ws {
            socket,
            token: token.clone(),
            base: self.base.clone(),
            http: self.http.clone(),
        };
        ws.send(json!({"type": "hello", "token": token})).await;
        ws.next_of("welcome").await;
        ws
    }
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Ws {
    socket: Socket,
    token: String,
    base: String,
    http: reqwest::Client,
}

impl Ws {
    async fn send(&mut self, message: Value) {
        self.socket
            .send(Message::text(message.to_string()))
            .await
            .expect("ws send");
    }

    async fn next(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(Duration::from_secs(30), self.socket.next())
                .await
                .expect("a message in time")
                .expect("the session is open")
                .expect("a frame");
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).expect("server JSON");
            }
        }
    }

    async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
            assert_ne!(message["type"], "error", "unexpected error: {message}");
        }
    }

    /// The answer to the message sent with this `id` (others skipped).
    async fn answer_to(&mut self, id: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["id"] == id {
                return message;
            }
        }
    }

    /// Joins `mode` against a bot: the match's snapshot. Each role follows
    /// the catalog on its own, so the matchmaker may learn of a mode a
    /// moment after the gateway lists it: `unknown_mode` is asked again for
    /// up to ten seconds.
    async fn play_bot(&mut self, mode: &str) -> Value {
        let started = Instant::now();
        loop {
            self.send(json!({"type": "join", "id": "j", "mode": mode, "opponent": "bot"}))
                .await;
            let message = loop {
                let message = self.next().await;
                if message["type"] == "match" || message["type"] == "error" {
                    break message;
                }
            };
            if message["type"] == "match" {
                return message["match"].clone();
            }
            assert_eq!(message["error"]["code"], "unknown_mode", "{message}");
            assert!(started.elapsed() < Duration::from_secs(10), "{message}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Acts once: bank from 12 when banking exists, else roll.
    async fn act(&mut self, snapshot: &Value, n: usize) -> Value {
        let id = snapshot["match_id"].as_str().expect("match id");
        let action = if snapshot["view"]["turn_score"].as_i64() >= Some(12) {
            "bank"
        } else {
            "roll"
        };
        let request = json!({"type": "act", "id": format!("a{n}"), "match_id": id,
            "action": action, "request_id": format!("r{n}-{id}")});
        for _ in 0..100 {
            self.send(request.clone()).await;
            let message = loop {
                let message = self.next().await;
                if message["id"] == format!("a{n}") {
                    break message;
                }
            };
            // No host answered (one was just replaced): the same request
            // id again is safe.
            if ["unavailable", "timeout"].contains(&message["error"]["code"].as_str().unwrap_or(""))
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            assert_eq!(message["type"], "acted", "{message}");
            return message["reply"]["match"].clone();
        }
        panic!("no host took action {n} of {id}");
    }

    /// Plays `snapshot`'s match to its end (waiting for the bot's turns
    /// through `get`); returns the final snapshot.
    async fn finish(&mut self, mut snapshot: Value, me: &str) -> Value {
        for n in 0..2_000 {
            if snapshot["finished"] == true {
                return snapshot;
            }
            if snapshot["turn"] == me {
                snapshot = self.act(&snapshot, n).await;
            } else {
                tokio::time::sleep(Duration::from_millis(30)).await;
                snapshot = self.get(&snapshot).await;
            }
        }
        panic!("the match did not end: {snapshot}");
    }

    /// The match now; while no host answers (one was just replaced), asks
    /// again.
    async fn get(&mut self, snapshot: &Value) -> Value {
        let id = snapshot["match_id"].as_str().expect("match id");
        let mut last = Value::Null;
        for _ in 0..150 {
            last = self
                .http
                .get(format!("{}/matches/{id}", self.base))
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("get the match")
                .json()
                .await
                .expect("json");
            if last["match_id"] == id {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("no host served match {id}: {last}");
    }
}

/// The player who is not a bot.
fn me(snapshot: &Value) -> String {
    let bots = snapshot["bots"].as_array().cloned().unwrap_or_default();
    snapshot["players"]
        .as_array()
        .expect("players")
        .iter()
        .find(|p| !bots.contains(p))
        .and_then(Value::as_str)
        .expect("a human player")
        .to_owned()
}

/// The same component with a custom section appended (as the publish bench
/// makes its versions): new bytes, so a new version (hash), playing alike.
fn second_version(v1: &[u8], dir: &Path) -> PathBuf {
    let path = dir.join("v2.wasm");
    std::fs::write(&path, nth_version(v1, 2)).expect("write v2");
    path
}

fn listed<'a>(modes: &'a [Value], id: &str) -> Option<&'a Value> {
    modes.iter().find(|m| m["id"] == id)
}

fn ok(output: &Output) {
    assert!(
        output.status.success(),
        "stdout: {}\nstderr: {}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_mode_is_played_pinned_rolled_back_and_retired_with_no_restart() {
    let mut cluster = Cluster::start(2).await;
    let v1_bytes = std::fs::read(TEMPLATE).expect("the template component");
    let v1 = ModeHash::of(&v1_bytes);
    assert!(listed(&cluster.modes().await, "template").is_none());

    // Publish: checked, signed, stored; every role has it within seconds.
    ok(&cluster.publish(Path::new(TEMPLATE)));
    cluster
        .wait_until(|m| listed(m, "template").is_some_and(|t| t["hash"] == v1.to_string()))
        .await;
    let listing = listed(&cluster.modes().await, "template")
        .cloned()
        .expect("listed");
    assert_eq!(listing["builtin"], false);
    assert!(
        listing["actions"]
            .as_array()
            .expect("actions")
            .iter()
            .any(|a| !["roll", "bank", "forfeit", "timeout"]
                .contains(&a["name"].as_str().unwrap_or(""))),
        "the custom action is listed: {listing}"
    );

    // Played to the end on the WebSocket, against the mode's own bot.
    let mut ws = cluster.session().await;
    let first = ws.play_bot("template").await;
    assert_eq!(first["mode_version"], v1.to_string());
    let me_ = me(&first);
    let done = ws.finish(first, &me_).await;
    assert_eq!(done["finished"], true);

    // A v1 match under way when v2 is published ...
    let mut ws = cluster.session().await;
    let mut running = ws.play_bot("template").await;
    let player = me(&running);
    for n in 0..3 {
        if running["finished"] == true || running["turn"] != player.as_str() {
            break;
        }
        running = ws.act(&running, 100 + n).await;
    }
    let dir = TempDir::new("v2");
    let v2_file = second_version(&v1_bytes, &dir.0);
    let v2 = ModeHash::of(&std::fs::read(&v2_file).expect("v2"));
    ok(&cluster.publish(&v2_file));
    cluster
        .wait_until(|m| listed(m, "template").is_some_and(|t| t["hash"] == v2.to_string()))
        .await;

    // ... and every host that knew v1 is gone: a host started now has never
    // seen v1, and serves the rest of that match by fetching v1 by hash.
    let hosts: Vec<Role> = cluster.roles.drain(..2).collect();
    drop(hosts);
    cluster.add_host();
    cluster.wait_for_hosts(1).await;
    let finished = ws.finish(running, &player).await;
    assert_eq!(
        finished["mode_version"],
        v1.to_string(),
        "the match stays on v1"
    );
    let record =
        dashdice_match_host::verifiable_record(finished.to_string().as_bytes()).expect("a record");
    let v1_mode = dashdice_tests::runtime().load(&v1_bytes).expect("v1 loads");
    verify(&v1_mode, &record).expect("the v1 match verifies against v1");

    // A new match gets v2.
    let mut ws = cluster.session().await;
    let fresh = ws.play_bot("template").await;
    assert_eq!(fresh["mode_version"], v2.to_string());

    // Rollback: new matches get v1 again.
    ok(&cluster.mode("rollback", &["template"]));
    cluster
        .wait_until(|m| listed(m, "template").is_some_and(|t| t["hash"] == v1.to_string()))
        .await;
    let mut ws = cluster.session().await;
    let again = ws.play_bot("template").await;
    assert_eq!(again["mode_version"], v1.to_string());

    // `mode list` shows both versions and who published them.
    let listing = cluster.mode("list", &[]);
    ok(&listing);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(
        text.contains(&v1.to_string()) && text.contains(&v2.to_string()),
        "{text}"
    );
    // The v1 match started after the rollback is still live: counted.
    assert!(text.contains("live 1"), "{text}");

    // Retire: no new matches.
    ok(&cluster.mode("retire", &["template"]));
    cluster
        .wait_until(|m| listed(m, "template").is_none())
        .await;
    let mut ws = cluster.session().await;
    ws.send(json!({"type": "join", "id": "late", "mode": "template", "opponent": "bot"}))
        .await;
    let refused = ws.answer_to("late").await;
    assert_eq!(refused["error"]["code"], "unknown_mode", "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unfit_components_are_refused_by_publish_and_nothing_is_published() {
    let cluster = Cluster::start(1).await;
    for (name, file) in [
        ("nondeterministic", env!("DASHDICE_TEST_NONDETERMINISTIC")),
        ("endless", env!("DASHDICE_TEST_ENDLESS")),
        ("hostile", env!("DASHDICE_TEST_HOSTILE")),
        ("not-a-mode", env!("DASHDICE_TEST_NOT_A_MODE")),
    ] {
        let output = cluster.publish(Path::new(file));
        assert!(!output.status.success(), "{name} was published");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("not fit to publish") || stderr.contains("not a"),
            "{name}: {stderr}"
        );
    }
    let client = async_nats::connect(cluster.nats.url()).await.expect("nats");
    let catalog = Catalog::create(&client).await.expect("catalog");
    assert!(catalog.pointers().await.expect("pointers").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_refuse_components_not_signed_by_a_trusted_key() {
    let cluster = Cluster::start(1).await;
    let client = async_nats::connect(cluster.nats.url()).await.expect("nats");
    let catalog = Catalog::create(&client).await.expect("catalog");
    let bytes = std::fs::read(TEMPLATE).expect("template");
    let info = dashdice_tests::runtime()
        .load(&bytes)
        .expect("loads")
        .info()
        .clone();

    // Signed by a stranger: published (the catalog does not know whom hosts
    // trust) and listed, but no host plays it.
    let stranger = PublisherKey::generate().expect("key");
    catalog
        .publish(&bytes, info.clone(), &stranger, "stranger")
        .await
        .expect("publish");
    cluster
        .wait_until(|m| listed(m, "template").is_some())
        .await;
    let mut ws = cluster.session().await;
    ws.send(json!({"type": "join", "id": "j", "mode": "template", "opponent": "bot"}))
        .await;
    let answer = ws.answer_to("j").await;
    // No match starts: the host refuses to load it (loudly, in its log).
    assert!(
        answer["type"] == "error" || answer["status"]["state"] != "playing",
        "{answer}"
    );

    // Forged: the trusted key's name on a stranger's signature, and no
    // signature at all, are refused by the fetch every host does.
    let trusted = TrustedKeys::parse(&cluster.trusted).expect("keys");
    let hash = ModeHash::of(&bytes);
    let refused = catalog.fetch(hash, &trusted).await.expect_err("untrusted");
    assert!(refused.to_string().contains("does not trust"), "{refused}");
    let js = async_nats::jetstream::new(client.clone());
    let objects = js
        .get_object_store(dashdice_proto::bus::MODE_OBJECTS_BUCKET)
        .await
        .expect("bucket");
    let mut metadata = std::collections::HashMap::new();
    metadata.insert(
        dashdice_proto::bus::OBJECT_PUBLIC_KEY.to_owned(),
        cluster.trusted.clone(),
    );
    metadata.insert(
        dashdice_proto::bus::OBJECT_SIGNATURE.to_owned(),
        stranger.sign(&hash),
    );
    objects
        .put(
            async_nats::jetstream::object_store::ObjectMetadata {
                name: hash.to_string(),
                metadata,
                ..Default::default()
            },
            &mut bytes.as_slice(),
        )
        .await
        .expect("put");
    let forged = catalog.fetch(hash, &trusted).await.expect_err("forged");
    assert!(forged.to_string().contains("does not match"), "{forged}");
    let unsigned_bytes = [bytes.as_slice(), b"\0"].concat();
    let unsigned = ModeHash::of(&unsigned_bytes);
    objects
        .put(
            unsigned.to_string().as_str(),
            &mut unsigned_bytes.as_slice(),
        )
        .await
        .expect("put");
    let refused = catalog
        .fetch(unsigned, &trusted)
        .await
        .expect_err("unsigned");
    assert!(refused.to_string().contains("no signature"), "{refused}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_designer_user_may_write_the_catalog() {
    let nats = NatsServer::start_with_project_config();
    let connect = |user: &str| {
        let url = nats.url();
        let user = user.to_owned();
        async move {
            async_nats::ConnectOptions::with_user_and_password(user.clone(), format!("{user}-dev"))
                .connect(url)
                .await
                .expect("nats")
        }
    };
    let designer = Catalog::create(&connect("designer").await)
        .await
        .expect("the designer creates the buckets");
    let key = PublisherKey::generate().expect("key");
    let bytes = std::fs::read(TEMPLATE).expect("template");
    let info = dashdice_tests::runtime()
        .load(&bytes)
        .expect("loads")
        .info()
        .clone();
    designer
        .publish(&bytes, info.clone(), &key, "designer")
        .await
        .expect("the designer publishes");

    for user in ["match-host", "matchmaker", "gateway", "ops"] {
        let client = connect(user).await;
        let js = async_nats::jetstream::new(client.clone());
        let write = async {
            let kv = js
                .get_key_value(dashdice_proto::bus::MODE_INDEX_BUCKET)
                .await?;
            kv.put("template", "{}".into()).await?;
            Ok::<_, async_nats::Error>(())
        };
        let written = tokio::time::timeout(Duration::from_secs(2), write).await;
        assert!(
            !matches!(written, Ok(Ok(()))),
            "{user} could write a mode pointer"
        );
        let other = PublisherKey::generate().expect("key");
        if let Ok(catalog) = Catalog::open(&client).await {
            let published = tokio::time::timeout(
                Duration::from_secs(2),
                catalog.publish(
                    &[bytes.as_slice(), b"\0"].concat(),
                    info.clone(),
                    &other,
                    user,
                ),
            )
            .await;
            assert!(!matches!(published, Ok(Ok(_))), "{user} could publish");
        }
    }
    // The roles that read the catalog can: the pointer is still the
    // designer's.
    for user in ["match-host", "matchmaker", "gateway"] {
        let catalog = Catalog::open_index(&connect(user).await).await.expect(user);
        let pointer = catalog.pointer("template").await.expect(user).expect(user);
        assert_eq!(pointer.current, ModeHash::of(&bytes), "{user}");
    }
    // And follow it as the roles do (KV watches under their own users).
    for user in ["matchmaker", "gateway"] {
        let book = dashdice_catalog::ModeBook::new([]);
        let following = book.spawn_follow(connect(user).await);
        let started = Instant::now();
        while !book.is_playable("template") {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{user} cannot follow the catalog"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        following.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faulting_version_is_quarantined_and_the_previous_one_takes_over() {
    let cluster = Cluster::start(1).await;
    // A version whose custom actions trap, published straight to the
    // catalog by a trusted key (as a mode that passed `mode check` and
    // still faults in play would be): v1, then v2.
    let client = async_nats::connect(cluster.nats.url()).await.expect("nats");
    let catalog = Catalog::create(&client).await.expect("catalog");
    let key = PublisherKey::read(&cluster.key_file).expect("key");
    let v1_bytes = std::fs::read(env!("DASHDICE_TEST_HOSTILE")).expect("hostile");
    let info = dashdice_tests::runtime()
        .load(&v1_bytes)
        .expect("loads")
        .info()
        .clone();
    let dir = TempDir::new("quarantine");
    let v2_bytes = std::fs::read(second_version(&v1_bytes, &dir.0)).expect("v2");
    let (v1, v2) = (ModeHash::of(&v1_bytes), ModeHash::of(&v2_bytes));
    for bytes in [&v1_bytes, &v2_bytes] {
        catalog
            .publish(bytes, info.clone(), &key, "test")
            .await
            .expect("publish");
    }
    cluster
        .wait_until(|m| listed(m, "hostile").is_some_and(|t| t["hash"] == v2.to_string()))
        .await;

    // Players hit the trap: each call is refused as a mode fault and the
    // match is unchanged, until the host withdraws v2.
    let mut ws = cluster.session().await;
    let game = ws.play_bot("hostile").await;
    assert_eq!(game["mode_version"], v2.to_string());
    let id = game["match_id"].as_str().expect("id").to_owned();
    let player = me(&game);
    let mut now = game.clone();
    while now["turn"] != player.as_str() {
        tokio::time::sleep(Duration::from_millis(30)).await;
        now = ws.get(&now).await;
    }
    for n in 0..3 {
        ws.send(json!({"type": "act", "id": format!("p{n}"), "match_id": id,
            "action": "custom", "name": "panic"}))
            .await;
        let answer = ws.answer_to(&format!("p{n}")).await;
        assert_eq!(answer["error"]["code"], "mode_fault", "{answer}");
    }
    // The previous version takes new matches again, everywhere.
    cluster
        .wait_until(|m| listed(m, "hostile").is_some_and(|t| t["hash"] == v1.to_string()))
        .await;
    // The match running on v2 plays no more: its next action ends it as
    // void, without the mode, and says why; its record still verifies.
    ws.send(json!({"type": "act", "id": "after", "match_id": id, "action": "roll"}))
        .await;
    let answer = ws.answer_to("after").await;
    assert_eq!(answer["type"], "acted", "{answer}");
    let voided = &answer["reply"]["match"];
    assert_eq!(voided["finished"], true, "{answer}");
    assert!(
        voided["void"]
            .as_str()
            .unwrap_or("")
            .contains("withdrawn for faulting"),
        "{voided}"
    );
    assert!(
        answer["reply"]["events"].to_string().contains("match_void"),
        "{answer}"
    );
    let record =
        dashdice_match_host::verifiable_record(voided.to_string().as_bytes()).expect("a record");
    assert!(record.void.is_some());
    let v2_mode = dashdice_tests::runtime().load(&v2_bytes).expect("v2 loads");
    verify(&v2_mode, &record).expect("a void match's actions still verify");

    let mut ws = cluster.session().await;
    let next = ws.play_bot("hostile").await;
    assert_eq!(next["mode_version"], v1.to_string());
    let quarantines = catalog.quarantines().await.expect("quarantines");
    assert_eq!(quarantines.len(), 1, "{quarantines:?}");
    assert_eq!((quarantines[0].hash, quarantines[0].faults), (v2, 3));
    assert!(
        quarantines[0].reason.contains("panicked"),
        "{quarantines:?}"
    );
    let listing = cluster.mode("list", &[]);
    ok(&listing);
    let text = String::from_utf8_lossy(&listing.stdout);
    assert!(text.contains("QUARANTINED"), "{text}");

    // Lifting the quarantine gives v2 new matches again.
    ok(&cluster.mode("release", &[&v2.to_string()]));
    cluster
        .wait_until(|m| listed(m, "hostile").is_some_and(|t| t["hash"] == v2.to_string()))
        .await;
}
