//! The FCM HTTP v1 client against the stand-in (`dashdice_tests::fcm`),
//! which checks every token grant and message against Google's documented
//! shapes: pushes, the access-token cache, retries, dead tokens, refusals
//! and bad keys.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dashdice_notifier::fcm::{Fcm, FcmConfig, FcmError, Push, PushOutcome, ServiceAccountKey};
use dashdice_proto::notify::Platform;
use dashdice_tests::fcm::{Behaviour, FakeFcm, Received, SERVICE_ACCOUNT_JSON};

fn push(token: &str, collapse_key: Option<&str>) -> Push {
    Push {
        token: token.to_owned(),
        platform: Platform::Android,
        title: "Your turn".to_owned(),
        body: "Alice rolled a six".to_owned(),
        data: BTreeMap::from([
            ("kind".to_owned(), "your_turn".to_owned()),
            ("match_id".to_owned(), "m-1".to_owned()),
        ]),
        collapse_key: collapse_key.map(str::to_owned),
    }
}

fn client(config: FcmConfig) -> Fcm {
    Fcm::new(config).expect("the test key and config")
}

fn assert_clean(fake: &FakeFcm) {
    assert_eq!(
        fake.violations(),
        Vec::<String>::new(),
        "requests Google would refuse"
    );
}

#[tokio::test]
async fn pushes_are_sent_with_one_cached_access_token() {
    let fake = FakeFcm::start().await;
    let fcm = client(fake.config());

    // Concurrent pushes on a fresh client share one token fetch.
    let pushes: Vec<Push> = (1..=5)
        .map(|n| push(&format!("device-{n}"), None))
        .collect();
    let outcomes = futures_util::future::join_all(pushes.iter().map(|p| fcm.send(p))).await;
    for outcome in outcomes {
        assert!(
            matches!(outcome, PushOutcome::Sent { attempts: 1, .. }),
            "{outcome:?}"
        );
    }
    assert_eq!(fake.grants(), 1, "one access token for concurrent pushes");

    // Later ones use the cached token.
    let collapsing = push("device-6", Some("turn:m-1"));
    let outcome = fcm.send(&collapsing).await;
    let PushOutcome::Sent { name, attempts } = outcome else {
        panic!("not sent: {outcome:?}");
    };
    assert_eq!(attempts, 1);
    assert!(
        name.starts_with(&format!("projects/{}/messages/", fake.project())),
        "{name}"
    );
    assert_eq!(fake.grants(), 1, "the token is cached");

    let messages = fake.messages();
    assert_eq!(messages.len(), 6);
    let last = messages.last().expect("the last message");
    assert_eq!(
        last,
        &Received {
            token: "device-6".to_owned(),
            title: collapsing.title.clone(),
            body: collapsing.body.clone(),
            data: collapsing.data.clone(),
            collapse_key: Some("turn:m-1".to_owned()),
            at: last.at,
        }
    );
    let mut tokens: Vec<&str> = messages[..5].iter().map(|m| m.token.as_str()).collect();
    tokens.sort_unstable();
    assert_eq!(
        tokens,
        ["device-1", "device-2", "device-3", "device-4", "device-5"]
    );
    assert!(messages[..5].iter().all(|m| m.collapse_key.is_none()));
    assert_clean(&fake);
}

#[tokio::test]
async fn a_fresh_client_fetches_its_own_token() {
    let fake = FakeFcm::start().await;
    for _ in 0..2 {
        let fcm = client(fake.config());
        assert!(matches!(
            fcm.send(&push("d", None)).await,
            PushOutcome::Sent { .. }
        ));
    }
    assert_eq!(fake.grants(), 2);
    assert_clean(&fake);
}

#[tokio::test]
async fn an_expired_access_token_is_never_used() {
    let fake = FakeFcm::start().await;
    // Shorter than the refresh margin: the client keeps it for half its
    // life, and the stand-in flags a push with it once expired.
    fake.set_token_lifetime(1);
    let fcm = client(fake.config());
    assert!(matches!(
        fcm.send(&push("d", None)).await,
        PushOutcome::Sent { .. }
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(matches!(
        fcm.send(&push("d", None)).await,
        PushOutcome::Sent { attempts: 1, .. }
    ));
    assert_eq!(fake.grants(), 2);
    assert_clean(&fake);
}

#[tokio::test]
async fn too_many_requests_waits_at_least_retry_after_then_sends() {
    let fake = FakeFcm::start().await;
    fake.script(
        "busy",
        Behaviour::TooManyRequests {
            retry_after_s: 1,
            times: 1,
        },
    );
    let fcm = client(fake.config());
    let started = Instant::now();
    let outcome = fcm.send(&push("busy", None)).await;
    assert!(
        matches!(outcome, PushOutcome::Sent { attempts: 2, .. }),
        "{outcome:?}"
    );
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "retried before Retry-After: {:?}",
        started.elapsed()
    );
    assert_eq!(fake.requests("busy"), 2);
    assert_eq!(fake.messages().len(), 1);
    assert_clean(&fake);
}

#[tokio::test]
async fn server_errors_are_retried_then_given_up() {
    let fake = FakeFcm::start().await;
    fake.script("down", Behaviour::ServerError { times: 100 });
    let config = fake.config();
    let max_attempts = config.max_attempts;
    let fcm = client(config);
    let outcome = fcm.send(&push("down", None)).await;
    let PushOutcome::GaveUp { reason, attempts } = outcome else {
        panic!("not given up: {outcome:?}");
    };
    assert_eq!(attempts, max_attempts);
    assert!(reason.contains("500"), "{reason}");
    assert_eq!(fake.requests("down"), max_attempts);
    assert!(fake.messages().is_empty());

    // A passing outage is ridden out.
    fake.script("flaky", Behaviour::ServerError { times: 2 });
    let outcome = fcm.send(&push("flaky", None)).await;
    assert!(
        matches!(outcome, PushOutcome::Sent { attempts: 3, .. }),
        "{outcome:?}"
    );
    assert_clean(&fake);
}

#[tokio::test]
async fn dead_tokens_are_unregistered() {
    let fake = FakeFcm::start().await;
    fake.script("gone", Behaviour::Unregistered);
    fake.script("garbled", Behaviour::InvalidToken);
    let fcm = client(fake.config());
    assert_eq!(
        fcm.send(&push("gone", None)).await,
        PushOutcome::Unregistered
    );
    assert_eq!(
        fcm.send(&push("garbled", None)).await,
        PushOutcome::Unregistered
    );
    assert_eq!(fake.requests("gone"), 1, "no retry for a dead token");
    assert_eq!(fake.requests("garbled"), 1);
    assert_clean(&fake);
}

#[tokio::test]
async fn a_final_refusal_is_not_retried() {
    let fake = FakeFcm::start().await;
    fake.script("elsewhere", Behaviour::SenderIdMismatch);
    let fcm = client(fake.config());
    let outcome = fcm.send(&push("elsewhere", None)).await;
    let PushOutcome::GaveUp { reason, attempts } = outcome else {
        panic!("not given up: {outcome:?}");
    };
    assert_eq!(attempts, 1);
    assert!(reason.contains("SENDER_ID_MISMATCH"), "{reason}");
    assert!(
        !reason.contains("elsewhere"),
        "the device token leaked: {reason}"
    );
    assert_clean(&fake);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let fake = FakeFcm::start().await;
    fake.script(
        "slow",
        Behaviour::Slow {
            delay: Duration::from_secs(3),
            times: 1,
        },
    );
    let fcm = client(FcmConfig {
        timeout: Duration::from_millis(300),
        ..fake.config()
    });
    let outcome = fcm.send(&push("slow", None)).await;
    assert!(
        matches!(outcome, PushOutcome::Sent { attempts: 2, .. }),
        "{outcome:?}"
    );
    assert_eq!(fake.messages().len(), 1);
    assert_clean(&fake);
}

#[tokio::test]
async fn a_refused_access_token_is_fetched_again_once() {
    let fake = FakeFcm::start().await;
    let fcm = client(fake.config());
    assert!(matches!(
        fcm.send(&push("d", None)).await,
        PushOutcome::Sent { .. }
    ));
    assert_eq!(fake.grants(), 1);

    fake.revoke_access_tokens();
    let outcome = fcm.send(&push("d", None)).await;
    assert!(
        matches!(outcome, PushOutcome::Sent { attempts: 2, .. }),
        "{outcome:?}"
    );
    assert_eq!(fake.grants(), 2, "one refresh");

    // A second 401 in a row is not fetched for again.
    fake.script("d", Behaviour::Unauthenticated { times: 2 });
    let outcome = fcm.send(&push("d", None)).await;
    assert!(
        matches!(outcome, PushOutcome::GaveUp { attempts: 2, .. }),
        "{outcome:?}"
    );
    assert_eq!(fake.grants(), 3);
    assert_clean(&fake);
}

#[tokio::test]
async fn a_token_uri_that_refuses_gives_up_the_push() {
    let fake = FakeFcm::start().await;
    // The fake's token URI with another audience: the assertion's `aud`
    // no longer matches, and the grant is refused (a violation, on purpose).
    let fcm = client(FcmConfig {
        token_uri: Some(format!("{}/token?wrong", fake.send_base())),
        ..fake.config()
    });
    let outcome = fcm.send(&push("d", None)).await;
    assert!(
        matches!(outcome, PushOutcome::GaveUp { attempts: 1, .. }),
        "{outcome:?}"
    );
    assert!(fake.messages().is_empty());
    assert_eq!(fake.violations().len(), 1);
}

#[test]
fn bad_keys_stop_the_client_at_new() {
    let good = ServiceAccountKey::from_json(SERVICE_ACCOUNT_JSON).expect("the fixture");
    assert!(Fcm::new(FcmConfig::new(good.clone())).is_ok());

    let garbled = ServiceAccountKey {
        private_key: good.private_key.replace('A', "B"),
        ..good.clone()
    };
    assert!(matches!(
        Fcm::new(FcmConfig::new(garbled)),
        Err(FcmError::Key(_))
    ));

    let not_pem = ServiceAccountKey {
        private_key: "not a key".to_owned(),
        ..good.clone()
    };
    assert!(matches!(
        Fcm::new(FcmConfig::new(not_pem)),
        Err(FcmError::Key(_))
    ));

    let dir = std::env::temp_dir().join(format!("dashdice-fcm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let file = dir.join("bad-key.json");
    let bad =
        SERVICE_ACCOUNT_JSON.replace("-----BEGIN PRIVATE KEY-----", "-----BEGIN NONSENSE-----");
    std::fs::write(&file, bad).expect("write the key file");
    let key = ServiceAccountKey::from_file(&file).expect("still JSON");
    assert!(matches!(
        Fcm::new(FcmConfig::new(key)),
        Err(FcmError::Key(_))
    ));

    std::fs::write(&file, "{not json").expect("write the key file");
    assert!(matches!(
        ServiceAccountKey::from_file(&file),
        Err(FcmError::Key(_))
    ));
    assert!(matches!(
        ServiceAccountKey::from_file(&dir.join("missing.json")),
        Err(FcmError::Key(_))
    ));
    let _ = std::fs::remove_dir_all(&dir);

    let no_project = ServiceAccountKey {
        project_id: None,
        ..good
    };
    assert!(matches!(
        Fcm::new(FcmConfig::new(no_project)),
        Err(FcmError::Config(_))
    ));
}

/// An access token from the stand-in, granted for an assertion signed here
/// with the test key.
async fn grant(fake: &FakeFcm, http: &reqwest::Client) -> String {
    let key = ServiceAccountKey::from_json(SERVICE_ACCOUNT_JSON).expect("the fixture");
    let iat = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let claims = serde_json::json!({
        "iss": key.client_email,
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": fake.token_uri(),
        "iat": iat,
        "exp": iat + 3600,
    });
    let assertion = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_rsa_pem(key.private_key.as_bytes()).expect("the key"),
    )
    .expect("signed");
    let answer: serde_json::Value = http
        .post(fake.token_uri())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!(
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion={assertion}"
        ))
        .send()
        .await
        .expect("the stand-in answers")
        .json()
        .await
        .expect("a grant");
    answer["access_token"]
        .as_str()
        .expect("an access token")
        .to_owned()
}

/// The stand-in itself: what Google would refuse is refused and recorded,
/// so the empty `violations()` above mean something.
#[tokio::test]
async fn the_stand_in_flags_what_google_would_refuse() {
    let fake = FakeFcm::start().await;
    let http = reqwest::Client::new();
    let send_url = format!(
        "{}/v1/projects/{}/messages:send",
        fake.send_base(),
        fake.project()
    );
    let mut expected = 0;

    // Grants of the wrong type, with no JWT, or as JSON.
    for (content_type, form) in [
        (
            "application/x-www-form-urlencoded",
            "grant_type=client_credentials&assertion=x",
        ),
        (
            "application/x-www-form-urlencoded",
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=not.a.jwt",
        ),
        ("application/json", r#"{"grant_type":"x"}"#),
    ] {
        let answer = http
            .post(fake.token_uri())
            .header("content-type", content_type)
            .body(form)
            .send()
            .await
            .expect("the stand-in answers");
        assert_eq!(answer.status(), 400);
        expected += 1;
    }
    assert_eq!(fake.grants(), 0);
    assert_eq!(fake.violations().len(), expected);

    // Sends without an access token, or with one never issued.
    let good = r#"{"message":{"token":"d","notification":{"title":"t","body":"b"}}}"#;
    for bearer in [None, Some("ya29.made-up")] {
        let mut request = http
            .post(&send_url)
            .header("content-type", "application/json")
            .body(good);
        if let Some(bearer) = bearer {
            request = request.bearer_auth(bearer);
        }
        let answer = request.send().await.expect("the stand-in answers");
        assert_eq!(answer.status(), 401);
        expected += 1;
    }
    assert_eq!(fake.violations().len(), expected);

    // With a valid token: the good body is taken, bad ones are not.
    let token = grant(&fake, &http).await;
    assert_eq!(fake.grants(), 1);
    let bad_bodies = [
        r#"{"message":{"token":"d","topic":"news","notification":{"title":"t"}}}"#,
        r#"{"message":{"token":"d","notification":{"title":"t"},"data":{"n":1}}}"#,
        r#"{"message":{"token":"d","notification":{"title":"t"},"data":{"google.x":"1"}}}"#,
        r#"{"message":{"token":"d","notification":{"title":"t"},"priority":"high"}}"#,
        r#"{"message":{"token":"d","notification":{"body":"no title"}}}"#,
        r#"{"message":{"token":"d","notification":{"title":"t"},"android":{"collapse_key":"k"}}}"#,
        r#"{"message":{"token":"d","notification":{"title":"t"},"android":{"collapse_key":"k"},
            "apns":{"headers":{"apns-collapse-id":"k"}},"webpush":{"headers":{"Topic":"not/base64"}}}}"#,
        r#"{"message":{"token":"d","notification":{"title":"t"},"apns":{"headers":{"apns-priority":"7"}}}}"#,
    ];
    for (body, content_type) in std::iter::once((good, "text/plain"))
        .chain(bad_bodies.iter().map(|b| (*b, "application/json")))
    {
        let answer = http
            .post(&send_url)
            .bearer_auth(&token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("the stand-in answers");
        assert_eq!(answer.status(), 400, "{body}");
        expected += 1;
        assert_eq!(fake.violations().len(), expected, "{body}");
    }
    let answer = http
        .post(&send_url)
        .bearer_auth(&token)
        .header("content-type", "application/json; charset=utf-8")
        .body(good)
        .send()
        .await
        .expect("the stand-in answers");
    assert_eq!(answer.status(), 200);
    assert_eq!(fake.messages().len(), 1);

    // A revoked token is refused, but sending one is no violation.
    fake.revoke_access_tokens();
    let answer = http
        .post(&send_url)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(good)
        .send()
        .await
        .expect("the stand-in answers");
    assert_eq!(answer.status(), 401);
    assert_eq!(fake.violations().len(), expected);
}
