//! A match host process killed in the middle of a stream of actions: another
//! host serves the rest, no committed action is lost or applied twice, and the
//! match completes with a gap-free event sequence that verifies.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use async_nats::Client;
use dashdice_match_host::{ActionReply, SequencedEvent};
use dashdice_proto::bus::{self, Reply, endpoint};
use dashdice_runtime::fair_dice::{MatchRecord, verify};
use dashdice_tests::servers::{NatsServer, RedisServer};
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

/// A `dashdice match-host` process, killed (SIGKILL) and reaped on drop.
struct HostProcess(Child);

impl HostProcess {
    fn spawn(nats: &NatsServer, redis: &RedisServer, artifacts: &std::path::Path) -> Self {
        let child = Command::new(env!("CARGO_BIN_EXE_dashdice-under-test"))
            .args(["match-host", "--nats-url", &nats.url()])
            .args(["--redis-url", &redis.url()])
            .env("DASHDICE_ARTIFACT_DIR", artifacts)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a match host");
        HostProcess(child)
    }

    fn kill(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `n` hosts answer a PING.
async fn wait_for_hosts(client: &Client, n: usize) {
    for _ in 0..200 {
        let inbox = client.new_inbox();
        let mut pongs = client.subscribe(inbox.clone()).await.expect("inbox");
        client
            .publish_with_reply(
                format!("$SRV.PING.{}", bus::MATCH_SERVICE),
                inbox,
                "".into(),
            )
            .await
            .expect("ping");
        let mut seen = 0;
        while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(200), pongs.next()).await
        {
            seen += 1;
        }
        if seen >= n {
            return;
        }
    }
    panic!("{n} match hosts did not come up");
}

/// A request that is retried, with the same body (so the same request id),
/// until some host answers: what a client does when a host dies under it.
async fn call<T: DeserializeOwned>(client: &Client, name: &str, body: &Value) -> T {
    for _ in 0..50 {
        let request = client.request(bus::match_request(name), body.to_string().into());
        if let Ok(Ok(message)) = tokio::time::timeout(Duration::from_millis(750), request).await {
            return serde_json::from_slice::<Reply<T>>(&message.payload)
                .expect("an envelope")
                .into_result()
                .expect("the action succeeds");
        }
    }
    panic!("no host answered {name}");
}

#[tokio::test]
async fn a_killed_host_loses_nothing() {
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let artifacts = std::env::temp_dir().join(format!("dashdice-failover-{}", std::process::id()));
    let mut a = HostProcess::spawn(&nats, &redis, &artifacts);
    let _b = HostProcess::spawn(&nats, &redis, &artifacts);
    let client = async_nats::connect(nats.url()).await.expect("nats");
    wait_for_hosts(&client, 2).await;

    let created: ActionReply = call(
        &client,
        endpoint::CREATE,
        &json!({"mode": "classic", "players": ["alice", "bob"]}),
    )
    .await;
    let id = created.snapshot.match_id.clone();
    let mut snapshot = created.snapshot;
    let mut replies: Vec<SequencedEvent> = created.events;
    let mut n = 0;
    let mut killed = false;
    while let Some(player) = snapshot.turn.clone() {
        n += 1;
        assert!(n < 3_000, "the game ends");
        let action = if snapshot.view["turn_score"].as_i64() >= Some(20) {
            "bank"
        } else {
            "roll"
        };
        let body = json!({"match_id": id, "player": player, "request_id": format!("r{n}"), "action": action});
        let reply: ActionReply = if n == 8 && !killed {
            // Kill host A while this request is in flight.
            let pending = {
                let client = client.clone();
                let body = body.clone();
                tokio::spawn(
                    async move { call::<ActionReply>(&client, endpoint::ACT, &body).await },
                )
            };
            a.kill();
            killed = true;
            pending.await.expect("request task")
        } else {
            call(&client, endpoint::ACT, &body).await
        };
        replies.extend(reply.events);
        snapshot = reply.snapshot;
    }
    assert!(killed && n > 8, "the kill happened mid-match ({n} actions)");

    let events: Vec<SequencedEvent> = call(
        &client,
        endpoint::EVENTS,
        &json!({"match_id": id, "after": 0}),
    )
    .await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=events.len() as u64).collect::<Vec<_>>(),
        "gap-free"
    );
    assert_eq!(events, replies, "every reply's events, once each");

    let record: MatchRecord = call(&client, endpoint::RECORD, &json!({"match_id": id})).await;
    assert_eq!(record.actions.len(), n, "each request applied exactly once");
    let registry = dashdice_tests::registry();
    let mode = registry
        .version("classic", record.mode_version)
        .expect("version");
    verify(&mode, &record).expect("the match verifies");

    let _ = std::fs::remove_dir_all(&artifacts);
}

#[tokio::test]
async fn a_record_its_host_left_behind_is_stored_by_another() {
    use dashdice_match_host::service as match_service;
    use dashdice_match_host::{ActRequest, CreateMatch, MatchHost, PlayerAction};
    use dashdice_store::MatchStore;

    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let registry = dashdice_tests::registry();
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    // A host that commits the final action and dies before it stores the
    // record: the hosting logic without the service around it.
    let dying = MatchHost::new(registry.clone(), store.clone());
    let created = dying
        .create(&CreateMatch {
            mode: "classic".into(),
            players: vec!["alice".into(), "bob".into()],
            ..CreateMatch::default()
        })
        .await
        .expect("create");
    let id = created.snapshot.match_id.clone();
    let player = created.snapshot.turn.clone().expect("turn");
    let last = dying
        .act(&ActRequest {
            match_id: id.clone(),
            player,
            request_id: "leave".into(),
            action: PlayerAction::Forfeit,
        })
        .await
        .expect("forfeit");
    assert!(last.reply.snapshot.finished);
    let unrecorded = store.unrecorded(u64::MAX / 2, 10).await.expect("list");
    assert_eq!(unrecorded, std::slice::from_ref(&id));

    // A healthy host comes up and sweeps.
    let client = async_nats::connect(nats.url()).await.expect("nats");
    tokio::spawn(match_service::run(
        client.clone(),
        MatchHost::new(registry.clone(), store.clone()),
    ));
    let js = async_nats::jetstream::new(client);
    let mut stored = None;
    for _ in 0..150 {
        if let Ok(stream) = js.get_stream(bus::RECORD_STREAM).await
            && let Ok(message) = stream
                .get_last_raw_message_by_subject(&bus::match_record(&id))
                .await
        {
            stored = Some(message);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = stored.expect("the record reaches the stream");
    let record: MatchRecord = serde_json::from_slice(&stored.payload).expect("record");
    assert_eq!(Some(record.clone()), last.reply.snapshot.record());
    let mode = registry
        .version("classic", record.mode_version)
        .expect("version");
    verify(&mode, &record).expect("the swept record verifies");
    for _ in 0..50 {
        if store
            .unrecorded(u64::MAX / 2, 10)
            .await
            .expect("list")
            .is_empty()
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the sweep did not note the record as stored");
}

/// Issue 17: a NATS restart failed one record write ("no stream found",
/// the publish racing JetStream's recovery) and only the sweep repaired it.
/// Here the match ends while the server is down and comes back with the
/// same store: the host's own retries store the record, once, with the
/// sweep set an hour away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_written_across_a_nats_restart_is_stored_once_without_the_sweep() {
    use dashdice_match_host::MatchHost;
    use dashdice_match_host::service::{self as match_service, Options};
    use dashdice_store::MatchStore;

    let mut nats = NatsServer::start();
    let redis = RedisServer::start();
    let registry = dashdice_tests::registry();
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    let client = async_nats::ConnectOptions::new()
        .reconnect_delay_callback(|_| Duration::from_millis(100))
        .connect(nats.url())
        .await
        .expect("nats");
    let mut host = MatchHost::new(registry.clone(), store.clone());
    // Nobody plays: five timeouts (three for the first player) forfeit it.
    host.turn_time_ms = Some(300);
    let options = Options {
        record_grace: Duration::from_secs(3600),
        ..Options::default()
    };
    tokio::spawn(match_service::run_with(client.clone(), host, options));
    let created: ActionReply = call(
        &client,
        endpoint::CREATE,
        &json!({"mode": "classic", "players": ["alice", "bob"]}),
    )
    .await;
    let id = created.snapshot.match_id;

    // The server dies; the match ends meanwhile, and its record cannot be
    // written.
    nats.kill();
    let watcher = MatchHost::new(registry.clone(), store.clone());
    let mut finished = false;
    for _ in 0..200 {
        if watcher.get(&id).await.is_ok_and(|s| s.finished) {
            finished = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(finished, "the turn timers end the match");
    // Down past the write's own tries (three, each waiting 5 s for the
    // stream's ack), which leave the record to the sweep.
    tokio::time::sleep(Duration::from_secs(17)).await;
    assert_eq!(
        store.unrecorded(u64::MAX / 2, 10).await.expect("list"),
        std::slice::from_ref(&id),
        "the record could not be written while the server was down"
    );
    nats.restart();

    let reader = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(reader);
    let mut stored = None;
    for _ in 0..300 {
        if let Ok(stream) = js.get_stream(bus::RECORD_STREAM).await
            && let Ok(message) = stream
                .get_last_raw_message_by_subject(&bus::match_record(&id))
                .await
        {
            stored = Some(message);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = stored.expect("the record reaches the stream without the sweep");
    let record: MatchRecord = serde_json::from_slice(&stored.payload).expect("record");
    assert_eq!(record.match_id, id);
    // Noted as stored, and in the stream exactly once.
    let mut noted = false;
    for _ in 0..100 {
        if store
            .unrecorded(u64::MAX / 2, 10)
            .await
            .expect("list")
            .is_empty()
        {
            noted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(noted, "the host notes the record as stored");
    let mut stream = js.get_stream(bus::RECORD_STREAM).await.expect("stream");
    let info = stream.info().await.expect("stream info");
    assert_eq!(info.state.messages, 1, "one record, once");
}

/// The record stream missing when a match ends ("no stream found", as when
/// a write races JetStream's recovery after a restart): the host's retry
/// opens the stream again (making it) and stores the record, with the
/// sweep set an hour away.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_whose_stream_is_missing_is_stored_once_the_stream_is_back() {
    use dashdice_match_host::MatchHost;
    use dashdice_match_host::service::{self as match_service, Options};
    use dashdice_store::MatchStore;

    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let mut host = MatchHost::new(dashdice_tests::registry(), store.clone());
    host.turn_time_ms = Some(300);
    let options = Options {
        record_grace: Duration::from_secs(3600),
        ..Options::default()
    };
    tokio::spawn(match_service::run_with(client.clone(), host, options));
    let created: ActionReply = call(
        &client,
        endpoint::CREATE,
        &json!({"mode": "classic", "players": ["alice", "bob"]}),
    )
    .await;
    let id = created.snapshot.match_id;
    let js = async_nats::jetstream::new(client);
    js.delete_stream(bus::RECORD_STREAM)
        .await
        .expect("delete the stream");

    // Nobody plays: the timers end the match, and its record is written.
    let mut stored = None;
    for _ in 0..200 {
        if let Ok(stream) = js.get_stream(bus::RECORD_STREAM).await
            && let Ok(message) = stream
                .get_last_raw_message_by_subject(&bus::match_record(&id))
                .await
        {
            stored = Some(message);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let stored = stored.expect("the record reaches the stream without the sweep");
    let record: MatchRecord = serde_json::from_slice(&stored.payload).expect("record");
    assert_eq!(record.match_id, id);
    let mut stream = js.get_stream(bus::RECORD_STREAM).await.expect("stream");
    assert_eq!(stream.info().await.expect("info").state.messages, 1);
}
