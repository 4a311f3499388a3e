//! The Redis inbox store against a real redis-server: idempotent adds,
//! the cap, expiry, exact unread counts, paging newest first with stable
//! cursors, read / read all / delete and their not-found answers; devices
//! with their cap and a token moving between users; the push claims
//! (once per notification, collapsed per key, capped per user); the known
//! users; the presence store's list of connected users. Then the
//! notifier's rules on these stores (no NATS, no FCM): kept once and told
//! once, `your_turn` dropped for a player online, and the typed refusals
//! of the inbox requests. Time is passed into every store call, so the
//! tests move it instead of sleeping.

use std::sync::Mutex;

use dashdice_notifier::delivery::{DeliveryError, Notifier, Outcome, RequestError, Sockets};
use dashdice_proto::ErrorCode;
use dashdice_proto::notify::{
    Audience, InboxDelete, InboxList, InboxMark, InboxPage, NotificationKind, NotifyRequest,
    Platform, RegisterDevice,
};
use dashdice_proto::queue::Notice;
use dashdice_store::inbox::{
    Added, InboxCursor, InboxSettings, InboxStore, NewNotification, PushClaim, USER_SHARDS,
};
use dashdice_store::presence::{PresenceStore, Status};
use dashdice_tests::servers::RedisServer;

const T0: u64 = 1_800_000_000_000;
const TTL: u64 = 10_000;

async fn store(redis: &RedisServer) -> InboxStore {
    InboxStore::connect(&redis.url())
        .await
        .expect("connect")
        .with_settings(InboxSettings {
            cap: 5,
            ttl_ms: TTL,
            max_devices: 3,
            pushes_per_window: 3,
            push_window_ms: 60_000,
            collapse_ms: 60_000,
            ..InboxSettings::default()
        })
}

fn json(id: &str) -> String {
    format!(r#"{{"id":"{id}"}}"#)
}

async fn add(s: &InboxStore, uid: &str, id: &str, created_ms: u64, now_ms: u64) -> (Added, u32) {
    s.add(
        uid,
        &NewNotification {
            id,
            created_ms,
            json: &json(id),
        },
        now_ms,
    )
    .await
    .expect("redis")
}

async fn ids(s: &InboxStore, uid: &str, now_ms: u64) -> Vec<String> {
    let page = s.list(uid, None, 50, now_ms).await.expect("redis");
    page.notifications.into_iter().map(|n| n.id).collect()
}

#[tokio::test]
async fn the_same_id_is_one_notification() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    assert_eq!(add(&s, "ann", "n1", T0, T0).await, (Added::Stored, 1));
    assert_eq!(
        add(&s, "ann", "n1", T0, T0 + 1).await,
        (Added::Duplicate, 1)
    );
    // Even with another time: the id decides.
    assert_eq!(
        add(&s, "ann", "n1", T0 + 5, T0 + 5).await,
        (Added::Duplicate, 1)
    );
    let page = s.list("ann", None, 10, T0 + 5).await.expect("redis");
    assert_eq!(page.notifications.len(), 1);
    assert_eq!(page.notifications[0].json, json("n1"));
    assert_eq!(page.notifications[0].created_ms, T0);
    assert!(!page.notifications[0].read);
    assert_eq!(page.unread, 1);
    // Another user's inbox is their own.
    assert_eq!(add(&s, "bob", "n1", T0, T0).await, (Added::Stored, 1));
    assert_eq!(s.unread("ann", T0).await.expect("redis"), 1);
}

#[tokio::test]
async fn past_the_cap_the_oldest_go() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    for i in 0..7u64 {
        let (added, unread) = add(&s, "ann", &format!("n{i}"), T0 + i, T0 + i).await;
        assert_eq!(added, Added::Stored);
        assert_eq!(unread, (i as u32 + 1).min(5));
    }
    assert_eq!(ids(&s, "ann", T0 + 7).await, ["n6", "n5", "n4", "n3", "n2"]);
    // One older than the whole inbox is dropped at once.
    assert_eq!(
        add(&s, "ann", "old", T0 - 1, T0 + 8).await,
        (Added::Dropped, 5)
    );
    assert_eq!(ids(&s, "ann", T0 + 8).await, ["n6", "n5", "n4", "n3", "n2"]);
    assert_eq!(s.unread("ann", T0 + 8).await.expect("redis"), 5);
}

#[tokio::test]
async fn expired_notifications_are_never_listed_or_counted() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    add(&s, "ann", "a", T0, T0).await;
    add(&s, "ann", "b", T0 + 5_000, T0 + 5_000).await;
    assert_eq!(s.unread("ann", T0 + TTL - 1).await.expect("redis"), 2);
    // At created + ttl, `a` is gone.
    assert_eq!(s.unread("ann", T0 + TTL).await.expect("redis"), 1);
    assert_eq!(ids(&s, "ann", T0 + TTL).await, ["b"]);
    assert_eq!(
        s.mark_read("ann", "a", T0 + TTL).await.expect("redis"),
        None
    );
    // Too old to keep at all.
    assert_eq!(add(&s, "ann", "c", T0, T0 + TTL).await, (Added::Expired, 1));
    // Everything gone: the keys too.
    assert_eq!(s.unread("ann", T0 + 5_000 + TTL).await.expect("redis"), 0);
    assert!(ids(&s, "ann", T0 + 5_000 + TTL).await.is_empty());
    let mut conn = redis::Client::open(redis.url())
        .expect("url")
        .get_multiplexed_async_connection()
        .await
        .expect("connect");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("{nt:ann}:*")
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "{keys:?}");
    // A kept inbox carries the ttl.
    add(&s, "bob", "n", T0, T0).await;
    let ttl: i64 = redis::cmd("PTTL")
        .arg("{nt:bob}:ids")
        .query_async(&mut conn)
        .await
        .expect("pttl");
    assert!(ttl > 0 && ttl <= TTL as i64, "{ttl}");
}

#[tokio::test]
async fn unread_counts_follow_every_change_exactly() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    for (i, id) in ["a", "b", "c", "d"].iter().enumerate() {
        add(&s, "ann", id, T0 + i as u64, T0).await;
    }
    assert_eq!(s.mark_read("ann", "b", T0).await.expect("redis"), Some(3));
    // Marking twice is fine and changes nothing.
    assert_eq!(s.mark_read("ann", "b", T0).await.expect("redis"), Some(3));
    // Deleting a read one leaves the count; an unread one lowers it.
    assert_eq!(s.delete("ann", "b", T0).await.expect("redis"), Some(3));
    assert_eq!(s.delete("ann", "c", T0).await.expect("redis"), Some(2));
    assert_eq!(s.delete("ann", "c", T0).await.expect("redis"), None);
    assert_eq!(s.mark_read("ann", "zz", T0).await.expect("redis"), None);
    let page = s.list("ann", None, 10, T0).await.expect("redis");
    let read: Vec<(String, bool)> = page
        .notifications
        .iter()
        .map(|n| (n.id.clone(), n.read))
        .collect();
    assert_eq!(read, [("d".to_owned(), false), ("a".to_owned(), false)]);
    assert_eq!(s.mark_all_read("ann", T0).await.expect("redis"), 0);
    assert_eq!(s.unread("ann", T0).await.expect("redis"), 0);
    let page = s.list("ann", None, 10, T0).await.expect("redis");
    assert!(page.notifications.iter().all(|n| n.read));
    // A new one after reading all is the only unread.
    assert_eq!(add(&s, "ann", "e", T0 + 9, T0).await, (Added::Stored, 1));
    // An unknown user has nothing.
    assert_eq!(s.unread("nobody", T0).await.expect("redis"), 0);
    assert_eq!(s.mark_all_read("nobody", T0).await.expect("redis"), 0);
}

#[tokio::test]
async fn pages_go_newest_first_and_cursors_survive_changes() {
    let redis = RedisServer::start();
    let s = InboxStore::connect(&redis.url()).await.expect("connect");
    // Twelve notifications, three sharing each creation time.
    for i in 0..12u64 {
        add(&s, "ann", &format!("n{i:02}"), T0 + i / 3, T0 + 10).await;
    }
    let mut seen = Vec::new();
    let mut cursor: Option<InboxCursor> = None;
    let mut pages = 0;
    loop {
        let page = s
            .list("ann", cursor.as_ref(), 5, T0 + 10)
            .await
            .expect("redis");
        assert_eq!(page.unread, 12);
        pages += 1;
        seen.extend(page.notifications.iter().map(|n| n.id.clone()));
        if pages == 1 {
            // Deleting what was shown, and adding a newer one, moves
            // nothing under the cursor.
            s.delete("ann", "n11", T0 + 10).await.expect("redis");
            add(&s, "ann", "new", T0 + 9, T0 + 10).await;
        }
        match page.next {
            Some(next) => {
                let text = next.to_string();
                assert_eq!(InboxCursor::parse(&text), Some(next.clone()));
                cursor = Some(next);
            }
            None => break,
        }
    }
    let expected: Vec<String> = (0..12u64).rev().map(|i| format!("n{i:02}")).collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
    // A page exactly full at the end says there is no more.
    let all = s.list("ann", None, 12, T0 + 10).await.expect("redis");
    assert_eq!(all.notifications.len(), 12);
    assert_eq!(all.next, None);
    // Cursors that are not ours.
    for bad in ["", "abc", "12", ":x", "1x:n"] {
        assert_eq!(InboxCursor::parse(bad), None, "{bad:?}");
    }
    // An id with colons survives its cursor.
    let c = InboxCursor::parse("17:your_turn:m1:3").expect("cursor");
    assert_eq!(c.created_ms, 17);
    assert_eq!(c.id, "your_turn:m1:3");
}

#[tokio::test]
async fn devices_are_capped_and_a_token_moves_to_its_new_user() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    for (i, token) in ["t1", "t2", "t3"].iter().enumerate() {
        let r = s
            .register_device("ann", token, "web", T0 + i as u64)
            .await
            .expect("redis");
        assert_eq!(r.devices, i as u32 + 1);
        assert!(r.replaced.is_empty());
        assert_eq!(r.moved_from, None);
    }
    // Registering t1 again refreshes it: t2 is now the oldest.
    let again = s
        .register_device("ann", "t1", "android", T0 + 10)
        .await
        .expect("redis");
    assert_eq!(again.devices, 3);
    let fourth = s
        .register_device("ann", "t4", "ios", T0 + 11)
        .await
        .expect("redis");
    assert_eq!(fourth.devices, 3);
    assert_eq!(fourth.replaced, ["t2"]);
    let devices = s.devices("ann").await.expect("redis");
    let listed: Vec<(&str, &str)> = devices
        .iter()
        .map(|d| (d.token.as_str(), d.platform.as_str()))
        .collect();
    assert_eq!(listed, [("t4", "ios"), ("t1", "android"), ("t3", "web")]);

    // Bob registers ann's t3: it is his now.
    let moved = s
        .register_device("bob", "t3", "web", T0 + 12)
        .await
        .expect("redis");
    assert_eq!(moved.moved_from.as_deref(), Some("ann"));
    assert_eq!(moved.devices, 1);
    let ann: Vec<String> = s
        .devices("ann")
        .await
        .expect("redis")
        .into_iter()
        .map(|d| d.token)
        .collect();
    assert_eq!(ann, ["t4", "t1"]);

    // Unregistering: bob's own token goes; ann's unknown one is fine.
    assert_eq!(
        s.unregister_device("bob", "t3").await.expect("redis"),
        (true, 0)
    );
    assert_eq!(
        s.unregister_device("ann", "t3").await.expect("redis"),
        (false, 2)
    );
    // The dropped t2 and the unregistered t3 are nobody's: registering
    // them moves nothing.
    for token in ["t2", "t3"] {
        let r = s
            .register_device("cat", token, "web", T0 + 20)
            .await
            .expect("redis");
        assert_eq!(r.moved_from, None, "{token}");
    }
}

#[tokio::test]
async fn pushes_go_once_collapse_per_key_and_are_capped() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    let claim = |id: &'static str, key: Option<&'static str>| {
        let s = s.clone();
        async move { s.claim_push("ann", id, key).await.expect("redis") }
    };
    assert_eq!(claim("t1", Some("your_turn:m1")).await, PushClaim::Granted);
    // The same notification again while its pusher holds the lease.
    assert_eq!(claim("t1", Some("your_turn:m1")).await, PushClaim::Pending);
    // Pushed and confirmed: never again (a redelivery).
    s.confirm_push("ann", "t1").await.expect("redis");
    assert_eq!(
        claim("t1", Some("your_turn:m1")).await,
        PushClaim::Duplicate
    );
    // Another turn of the same match within the window.
    assert_eq!(
        claim("t2", Some("your_turn:m1")).await,
        PushClaim::Collapsed
    );
    assert_eq!(
        claim("t3", Some("your_turn:m1")).await,
        PushClaim::Collapsed
    );
    // Collapsed ones did not count: two more fit in the cap of three.
    assert_eq!(claim("f1", None).await, PushClaim::Granted);
    assert_eq!(
        claim("f2", Some("friend_request:u2")).await,
        PushClaim::Granted
    );
    assert_eq!(claim("f3", None).await, PushClaim::Limited);
    assert_eq!(claim("f3", None).await, PushClaim::Duplicate);
    // Another user has their own cap and keys.
    assert_eq!(
        s.claim_push("bob", "t1", Some("your_turn:m1"))
            .await
            .expect("redis"),
        PushClaim::Granted
    );
}

/// A pusher that died between its claim and its confirmation: once the
/// lease ran out, the notification is granted again (and its own collapse
/// key does not hold it back); confirmed, it is not.
#[tokio::test]
async fn a_push_lease_that_ran_out_is_granted_again() {
    let redis = RedisServer::start();
    let s = InboxStore::connect(&redis.url())
        .await
        .expect("connect")
        .with_settings(InboxSettings {
            push_lease_ms: 50,
            ..InboxSettings::default()
        });
    let key = Some("your_turn:m9");
    assert_eq!(
        s.claim_push("ann", "y1", key).await.expect("redis"),
        PushClaim::Granted
    );
    assert_eq!(
        s.claim_push("ann", "y1", key).await.expect("redis"),
        PushClaim::Pending
    );
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(
        s.claim_push("ann", "y1", key).await.expect("redis"),
        PushClaim::Granted
    );
    s.confirm_push("ann", "y1").await.expect("redis");
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(
        s.claim_push("ann", "y1", key).await.expect("redis"),
        PushClaim::Duplicate
    );
    // Another turn of that match is collapsed into the one pushed.
    assert_eq!(
        s.claim_push("ann", "y2", key).await.expect("redis"),
        PushClaim::Collapsed
    );
}

#[tokio::test]
async fn known_users_are_those_with_an_inbox_or_a_device() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    add(&s, "ann", "n1", T0, T0).await;
    add(&s, "ann", "n2", T0, T0).await;
    s.register_device("bob", "tb", "web", T0)
        .await
        .expect("redis");
    // A duplicate or expired add makes nobody known.
    add(&s, "ann", "n1", T0, T0).await;
    add(&s, "cat", "old", T0, T0 + TTL).await;
    let mut users = Vec::new();
    for shard in 0..USER_SHARDS {
        let mut cursor = 0;
        loop {
            let (next, uids) = s.known_users(shard, cursor, 10).await.expect("redis");
            users.extend(uids);
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    users.sort();
    users.dedup();
    assert_eq!(users, ["ann", "bob"]);
}

#[tokio::test]
async fn connected_users_are_everyone_with_a_live_connection() {
    let redis = RedisServer::start();
    let presence = PresenceStore::connect(&redis.url()).await.expect("connect");
    let now = dashdice_proto::clock::now_ms();
    for (uid, region) in [("ann", "eu"), ("bob", "us"), ("cat", "eu")] {
        presence
            .add_connection(uid, &format!("{uid}-tab"), region, false, now)
            .await
            .expect("redis");
    }
    presence
        .remove_connection("cat", "cat-tab", now)
        .await
        .expect("redis");
    let connected = presence.connected_users().await.expect("redis");
    assert!(connected.contains(&"ann".to_owned()) && connected.contains(&"bob".to_owned()));
    // Callers read the status: cat may still have a sweep entry, but is offline.
    let online: Vec<String> = presence
        .query(&connected)
        .await
        .expect("redis")
        .into_iter()
        .filter(|p| p.status != Status::Offline)
        .map(|p| p.uid)
        .collect();
    assert_eq!(online, ["ann", "bob"]);
}

/// Collects what the notifier tells users' sockets.
#[derive(Default)]
struct Told(Mutex<Vec<(String, Notice)>>);

impl Sockets for Told {
    async fn tell(&self, uid: &str, notice: &Notice) {
        self.0
            .lock()
            .expect("lock")
            .push((uid.to_owned(), notice.clone()));
    }
}

impl Told {
    fn take(&self) -> Vec<(String, Notice)> {
        std::mem::take(&mut *self.0.lock().expect("lock"))
    }
}

fn request(id: &str, uid: &str, kind: NotificationKind, data: &[(&str, &str)]) -> NotifyRequest {
    NotifyRequest::new(
        id,
        uid,
        kind,
        data.iter().copied(),
        dashdice_proto::clock::now_ms(),
    )
}

async fn notifier(redis: &RedisServer) -> (Notifier, PresenceStore) {
    let inbox = InboxStore::connect(&redis.url()).await.expect("connect");
    let presence = PresenceStore::connect(&redis.url()).await.expect("connect");
    (Notifier::new(inbox, presence.clone(), None), presence)
}

#[tokio::test]
async fn the_notifier_keeps_tells_once_and_drops_turns_for_players_online() {
    let redis = RedisServer::start();
    let (n, presence) = notifier(&redis).await;
    let told = Told::default();
    let friend = request(
        "fr-1",
        "ann",
        NotificationKind::FriendRequest,
        &[("from", "bob"), ("from_name", "Bob")],
    );
    assert_eq!(
        n.handle(&friend, &told).await.expect("handled"),
        Outcome::Stored
    );
    let notices = told.take();
    assert_eq!(notices.len(), 1);
    let (uid, Notice::Notification(shown)) = &notices[0] else {
        panic!("{notices:?}");
    };
    assert_eq!(uid, "ann");
    assert_eq!(shown.body, "Bob wants to be your friend.");
    // Redelivered: kept once, told once.
    assert_eq!(
        n.handle(&friend, &told).await.expect("handled"),
        Outcome::Duplicate
    );
    assert!(told.take().is_empty());

    // Ann is online: her turn is not worth a notification.
    presence
        .add_connection("ann", "tab", "eu", false, dashdice_proto::clock::now_ms())
        .await
        .expect("redis");
    let turn = request(
        "your_turn:m1:1",
        "ann",
        NotificationKind::YourTurn,
        &[("match_id", "m1"), ("mode", "classic")],
    );
    assert_eq!(
        n.handle(&turn, &told).await.expect("handled"),
        Outcome::DroppedOnline
    );
    // Hidden tab: away, so it is kept (and would be pushed).
    presence
        .set_away("ann", "tab", true, dashdice_proto::clock::now_ms())
        .await
        .expect("redis");
    assert_eq!(
        n.handle(&turn, &told).await.expect("handled"),
        Outcome::Stored
    );
    let page = n
        .list(&InboxList {
            uid: "ann".into(),
            before: None,
            limit: 0,
        })
        .await
        .expect("list");
    let kinds: Vec<NotificationKind> = page.notifications.iter().map(|x| x.kind).collect();
    assert_eq!(
        kinds,
        [NotificationKind::YourTurn, NotificationKind::FriendRequest]
    );
    assert_eq!(page.unread, 2);
    assert_eq!(page.notifications[0].title, "Your turn");

    // A request that fails the checks is refused for good.
    let bad = request("x y", "ann", NotificationKind::FriendRequest, &[]);
    assert!(matches!(
        n.handle(&bad, &told).await,
        Err(DeliveryError::Invalid(_))
    ));
}

#[tokio::test]
async fn the_notifier_refuses_bad_requests_with_their_codes() {
    let redis = RedisServer::start();
    let (n, _) = notifier(&redis).await;
    let list = |uid: &str, before: Option<&str>, limit: u32| InboxList {
        uid: uid.to_owned(),
        before: before.map(str::to_owned),
        limit,
    };
    let code = |r: Result<_, RequestError>| r.map(|_: InboxPage| ()).map_err(|e| e.code());
    assert_eq!(
        code(n.list(&list("ann", None, 51)).await),
        Err(ErrorCode::BadRequest)
    );
    assert_eq!(
        code(n.list(&list("a b", None, 0)).await),
        Err(ErrorCode::BadRequest)
    );
    assert_eq!(
        code(n.list(&list("ann", Some("nope"), 0)).await),
        Err(ErrorCode::BadCursor)
    );
    assert_eq!(code(n.list(&list("ann", None, 0)).await), Ok(()));
    let mark = InboxMark {
        uid: "ann".into(),
        id: "missing".into(),
    };
    assert_eq!(
        n.mark_read(&mark).await.map_err(|e| e.code()),
        Err(ErrorCode::NotFound)
    );
    let delete = InboxDelete {
        uid: "ann".into(),
        id: "missing".into(),
    };
    assert_eq!(
        n.delete(&delete).await.map_err(|e| e.code()),
        Err(ErrorCode::NotFound)
    );
    let device = |token: &str| RegisterDevice {
        uid: "ann".into(),
        token: token.to_owned(),
        platform: Platform::Web,
    };
    assert_eq!(
        n.register_device(&device("has space"))
            .await
            .map_err(|e| e.code()),
        Err(ErrorCode::BadRequest)
    );
    assert_eq!(
        n.register_device(&device("fcm:tok-1"))
            .await
            .expect("registered")
            .devices,
        1
    );
    // The audience of everyone is whoever has an inbox or a device.
    assert_eq!(n.audience(&Audience::All).await.expect("audience"), ["ann"]);
}
