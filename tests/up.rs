//! `dashdice up` on embedded defaults: with nothing listening at its URLs it
//! starts nats-server, redis-server and the Firestore emulator itself, runs
//! the gateway, a match host, a matchmaker and an archiver, serves players
//! end to end (their finished match archived), and stops its servers on exit.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

use dashdice_matchmaker::Notice;
use dashdice_proto::bus::{self, queue_endpoint};
use dashdice_tests::servers::free_port;
use futures_util::StreamExt;
use serde_json::{Value, json};

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

#[tokio::test]
async fn up_starts_what_is_missing_serves_players_and_cleans_up() {
    let (nats_port, redis_port, http_port) = (free_port(), free_port(), free_port());
    let firestore_port = free_port();
    let secret_file = std::env::temp_dir().join(format!("dashdice-up-secret-{http_port}"));
    let _ = std::fs::remove_file(&secret_file);
    let mut child = Command::new(env!("CARGO_BIN_EXE_dashdice-under-test"))
        .arg("up")
        .arg("--dev-secret-file")
        .arg(&secret_file)
        .args(["--nats-url", &format!("nats://127.0.0.1:{nats_port}")])
        .args(["--redis-url", &format!("redis://127.0.0.1:{redis_port}/")])
        .args(["--listen", &format!("127.0.0.1:{http_port}")])
        .args(["--bot-after-ms", "0"])
        .args([
            "--firestore-emulator",
            &format!("127.0.0.1:{firestore_port}"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn dashdice up");
    let stdout = child.stdout.take().expect("stdout");
    let banner = tokio::task::spawn_blocking(move || {
        let mut lines = BufReader::new(stdout).lines();
        let mut banner = String::new();
        for line in lines.by_ref().take(12).map_while(Result::ok) {
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("Ctrl-C") {
                break;
            }
        }
        banner
    })
    .await
    .expect("banner");
    assert!(banner.starts_with("dashdice is up"), "{banner}");
    assert!(
        banner.contains("(started here)"),
        "it started the servers: {banner}"
    );
    assert!(
        banner.contains(&format!("play    http://127.0.0.1:{http_port}/")),
        "it prints the page's URL: {banner}"
    );
    assert!(
        banner.contains("and archiver") && banner.contains("Firestore emulator"),
        "it runs the archiver on the emulator it started: {banner}"
    );
    assert!(listening(nats_port) && listening(redis_port) && listening(http_port));
    assert!(listening(firestore_port));
    assert!(
        banner.contains(&format!("dev secret in {}", secret_file.display())),
        "it says where its dev secret is kept: {banner}"
    );
    tokens_are_signed_with_the_kept_dev_secret(http_port, &secret_file).await;

    let client = async_nats::connect(format!("nats://127.0.0.1:{nats_port}"))
        .await
        .expect("nats");
    let mut told = client
        .subscribe(bus::user_notify("*"))
        .await
        .expect("subscribe");
    client.flush().await.expect("flush");
    for p in ["u1", "u2"] {
        let body = json!({"player": p, "mode": "classic", "kind": "ranked", "region": "eu"});
        // The services subscribe a moment after the banner.
        let mut reply = None;
        for _ in 0..250 {
            let sent = client
                .request(
                    bus::queue_request(queue_endpoint::JOIN),
                    body.to_string().into(),
                )
                .await;
            if let Ok(r) = sent {
                reply = Some(r);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let reply = reply.expect("the matchmaker answers");
        let reply: Value = serde_json::from_slice(&reply.payload).expect("json");
        assert!(reply.get("ok").is_some(), "{reply}");
    }
    let notice = tokio::time::timeout(Duration::from_secs(10), told.next())
        .await
        .expect("a notice")
        .expect("subscription");
    let Notice::MatchFound(found) = serde_json::from_slice(&notice.payload).expect("notice") else {
        panic!("a match-found notice");
    };
    let get = json!({"match_id": found.match_id}).to_string();
    let reply = client
        .request(bus::match_request(bus::endpoint::GET), get.into())
        .await
        .expect("the match host answers");
    let reply: Value = serde_json::from_slice(&reply.payload).expect("json");
    assert_eq!(reply["ok"]["match_id"], found.match_id.as_str(), "{reply}");
    // The match ends and the archiver archives it.
    let forfeit = json!({"match_id": found.match_id, "player": "u1", "request_id": "bye", "action": "forfeit"});
    let reply = client
        .request(
            bus::match_request(bus::endpoint::ACT),
            forfeit.to_string().into(),
        )
        .await
        .expect("the match host answers");
    let reply: Value = serde_json::from_slice(&reply.payload).expect("json");
    assert!(reply.get("ok").is_some(), "{reply}");
    let ask = json!({"match_id": found.match_id}).to_string();
    let mut archived = Value::Null;
    for _ in 0..300 {
        let reply = client
            .request(
                bus::archive_request(bus::archive_endpoint::MATCH),
                ask.clone().into(),
            )
            .await;
        if let Ok(reply) = reply {
            archived = serde_json::from_slice(&reply.payload).expect("json");
            if archived.get("ok").is_some() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(archived["ok"]["reason"], "forfeit", "{archived}");
    players_see_the_archive_through_the_gateway(http_port, &found.match_id).await;

    // SIGINT, as Ctrl-C: the servers it started go with it.
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = child.wait().expect("wait");
    assert!(exit.success(), "{exit}");
    assert!(!listening(nats_port), "nats-server stopped");
    assert!(!listening(redis_port), "redis-server stopped");
    assert!(!listening(http_port), "the gateway stopped");
    assert!(!listening(firestore_port), "the Firestore emulator stopped");
    assert!(secret_file.exists(), "the dev secret outlives the run");
    let _ = std::fs::remove_file(&secret_file);
}

/// `up`'s guests get tokens signed with the secret it keeps in
/// `secret_file` (made there, mode 0600), so another gateway given the same
/// file, or `up` run again, accepts them.
async fn tokens_are_signed_with_the_kept_dev_secret(http_port: u16, secret_file: &std::path::Path) {
    let secret = std::fs::read_to_string(secret_file).expect("up made the secret file");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(secret_file)
            .expect("file")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "only the owner reads it");
    }
    let guest: Value = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{http_port}/api/v1/auth/guest"))
        .send()
        .await
        .expect("guest")
        .json()
        .await
        .expect("json");
    let token = guest["token"].as_str().expect("a token");
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_issuer(&[dashdice_gateway::auth::DEV_ISSUER]);
    validation.set_audience(&[dashdice_gateway::auth::DEV_AUDIENCE]);
    let claims = jsonwebtoken::decode::<Value>(
        token,
        &jsonwebtoken::DecodingKey::from_secret(secret.trim().as_bytes()),
        &validation,
    )
    .expect("signed with the kept secret");
    assert_eq!(claims.claims["sub"], guest["user_id"]);
}

#[test]
fn up_names_what_to_install_when_a_server_is_missing() {
    let out = Command::new(env!("CARGO_BIN_EXE_dashdice-under-test"))
        .arg("up")
        .args(["--nats-url", &format!("nats://127.0.0.1:{}", free_port())])
        .env("DASHDICE_NATS_SERVER", "/nonexistent/nats-server")
        .env("PATH", "/nonexistent")
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("could not start nats-server"), "{err}");
}

/// The archive's routes on `up`'s gateway, with a guest: profiles, history,
/// the leaderboard and an archived match, and the refusals.
async fn players_see_the_archive_through_the_gateway(http_port: u16, match_id: &str) {
    let http = reqwest::Client::new();
    let base = format!("http://127.0.0.1:{http_port}/api/v1");
    let guest: Value = http
        .post(format!("{base}/auth/guest"))
        .send()
        .await
        .expect("guest")
        .json()
        .await
        .expect("json");
    let token = guest["token"].as_str().expect("a token").to_owned();
    let me = guest["user_id"].as_str().expect("a user id").to_owned();
    let call = |method: reqwest::Method, path: String, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        async move {
            let response = request.send().await.expect("send");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    use reqwest::Method;
    // A guest with no match yet has an empty profile, and may name themselves.
    let (status, profile) = call(Method::GET, "/users/me".into(), None).await;
    assert_eq!(status, 200, "{profile}");
    assert_eq!(profile["stats"]["overall"]["matches"], 0, "{profile}");
    let (status, renamed) = call(
        Method::PUT,
        "/users/me".into(),
        Some(json!({"display_name": "Guest Star"})),
    )
    .await;
    assert_eq!(
        (status, &renamed["display_name"]),
        (200, &json!("Guest Star"))
    );
    // The players of the archived match have stats and history.
    let (status, u1) = call(Method::GET, "/users/u1".into(), None).await;
    assert_eq!(status, 200, "{u1}");
    assert_eq!(u1["stats"]["overall"]["losses"], 1, "{u1}");
    let (status, page) = call(Method::GET, "/users/u2/matches?limit=5".into(), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["entries"][0]["match_id"], match_id, "{page}");
    assert_eq!(page["entries"][0]["result"], "win", "{page}");
    let (status, board) = call(Method::GET, "/leaderboards/classic?limit=10".into(), None).await;
    assert_eq!(status, 200, "{board}");
    assert_eq!(board["entries"][0]["uid"], "u2", "{board}");
    // Refusals, each with its code.
    for (method, path, body, want, code) in [
        (
            Method::GET,
            "/users/nobody-here".to_owned(),
            None,
            404,
            "unknown_user",
        ),
        (
            Method::GET,
            "/users/u1/matches?cursor=junk".to_owned(),
            None,
            400,
            "bad_cursor",
        ),
        (
            Method::PUT,
            "/users/me".to_owned(),
            Some(json!({"display_name": ""})),
            400,
            "bad_request",
        ),
        (
            Method::PUT,
            "/users/me".to_owned(),
            Some(json!({"display_name": "x".repeat(33)})),
            400,
            "bad_request",
        ),
        (
            Method::PUT,
            "/users/u1".to_owned(),
            Some(json!({"display_name": "Mallory"})),
            403,
            "forbidden",
        ),
    ] {
        let (status, error) = call(method, path.clone(), body).await;
        assert_eq!(
            (status, error["error"]["code"].as_str()),
            (want, Some(code)),
            "{path}: {error}"
        );
    }
    let (status, _) = call(Method::GET, format!("/users/{me}"), None).await;
    assert_eq!(status, 200);
}
