//! Friends on real servers: nats-server, redis-server and Google's
//! Firestore emulator (one per test process, a project per test), through
//! the archiver over the bus with `ArchiveClient`, as the gateway calls it.
//! Requests, answers, removals and both players' lists; mutual requests
//! (one after the other, and at the same moment) make friends; blocks hide
//! the blocker and refuse requests both ways until lifted; every change is
//! told to the other player on their notice subject (a block only as a
//! removal); bad ids and the cap are refused.

use std::time::Duration;

use dashdice_archive::ledger::Seasons;
use dashdice_archive::{Archive, FirestoreConfig};
use dashdice_archiver::{Archiver, Options};
use dashdice_proto::ErrorCode;
use dashdice_proto::archive::RenameRequest;
use dashdice_proto::bus::{self, archive_endpoint as verb};
use dashdice_proto::client::{ArchiveClient, Requester};
use dashdice_proto::friends::FriendState::{Blocked, Friends, Incoming, Outgoing};
use dashdice_proto::friends::{FriendLink, FriendList, FriendState};
use dashdice_proto::queue::Notice;
use dashdice_store::leaderboards::Leaderboards;
use dashdice_tests::servers::{FirestoreEmulator, NatsServer, RedisServer};
use futures_util::StreamExt;

/// Servers, an archiver, and a Firestore project of the test's own.
struct Stack {
    _nats: NatsServer,
    _redis: RedisServer,
    client: async_nats::Client,
    archives: ArchiveClient,
}

/// A stack whose archiver caps friends and requests at `max_friends`.
async fn stack(max_friends: usize) -> Stack {
    dashdice_service::install_crypto();
    let nats = NatsServer::start();
    let redis = RedisServer::start();
    let firestore = FirestoreConfig {
        project: FirestoreEmulator::project(),
        emulator: Some(FirestoreEmulator::shared().host()),
        timeout: Duration::from_secs(5),
    };
    let archiver = Archiver {
        archive: Archive::connect(&firestore, Seasons::ALL_TIME)
            .await
            .expect("firestore")
            .with_max_friends(max_friends),
        boards: Leaderboards::connect(&redis.url()).await.expect("redis"),
        clock: dashdice_proto::clock::system(),
    };
    let served = async_nats::connect(nats.url()).await.expect("nats");
    tokio::spawn(dashdice_archiver::run(served, archiver, Options::default()));
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let archives = ArchiveClient::new(Requester::new(client.clone(), Duration::from_secs(10)));
    Stack {
        _nats: nats,
        _redis: redis,
        client,
        archives,
    }
}

impl Stack {
    /// `uid` does `verb` about `other`: the link as `uid` now sees it, or
    /// the refusal's code.
    async fn act(
        &self,
        verb: &'static str,
        uid: &str,
        other: &str,
    ) -> Result<Option<FriendLink>, ErrorCode> {
        self.archives
            .befriend(verb, uid, other)
            .await
            .map_err(|e| e.code())
    }

    /// As [`act`](Self::act), which must succeed: the state `uid` now sees.
    async fn ok(&self, verb: &'static str, uid: &str, other: &str) -> Option<FriendState> {
        self.act(verb, uid, other)
            .await
            .unwrap_or_else(|e| panic!("{uid} {verb} {other}: {e:?}"))
            .map(|link| {
                assert_eq!(link.uid, other);
                link.state
            })
    }

    async fn list(&self, uid: &str) -> FriendList {
        self.archives.friends(uid).await.expect("list")
    }

    /// `uid`'s list as `(other, state)` pairs, in order.
    async fn links(&self, uid: &str) -> Vec<(String, FriendState)> {
        self.list(uid)
            .await
            .links
            .into_iter()
            .map(|l| (l.uid, l.state))
            .collect()
    }

    async fn notices(&self, uid: &str) -> Notices {
        let sub = self
            .client
            .subscribe(bus::user_notify(uid))
            .await
            .expect("subscribe");
        self.client.flush().await.expect("flush");
        Notices(sub)
    }
}

/// One player's notice subject.
struct Notices(async_nats::Subscriber);

impl Notices {
    /// The next notice (within a few seconds).
    async fn next(&mut self) -> Notice {
        let message = tokio::time::timeout(Duration::from_secs(5), self.0.next())
            .await
            .expect("a notice in time")
            .expect("subscribed");
        serde_json::from_slice(&message.payload).expect("a notice")
    }

    /// That nothing more comes (for a moment).
    async fn none(&mut self) {
        if let Ok(Some(message)) =
            tokio::time::timeout(Duration::from_millis(300), self.0.next()).await
        {
            panic!(
                "an unexpected notice: {}",
                String::from_utf8_lossy(&message.payload)
            );
        }
    }
}

fn pairs(links: &[(&str, FriendState)]) -> Vec<(String, FriendState)> {
    links.iter().map(|(u, s)| ((*u).to_owned(), *s)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_answers_and_removals_keep_both_lists_in_step_and_tell_the_other() {
    let s = stack(dashdice_proto::friends::MAX_FRIENDS).await;
    let (mut to_ann, mut to_ben, mut to_cal, mut to_abe, mut to_dan) = (
        s.notices("ann").await,
        s.notices("ben").await,
        s.notices("cal").await,
        s.notices("abe").await,
        s.notices("dan").await,
    );
    s.archives
        .rename(&RenameRequest {
            uid: "ben".into(),
            display_name: "Ben".into(),
        })
        .await
        .expect("rename");

    // A request, both sides.
    assert_eq!(
        s.ok(verb::FRIENDS_REQUEST, "ann", "ben").await,
        Some(Outgoing)
    );
    assert_eq!(
        to_ben.next().await,
        Notice::FriendRequest { from: "ann".into() }
    );
    let ann = s.list("ann").await;
    assert_eq!(ann.links.len(), 1);
    assert_eq!(ann.links[0].display_name.as_deref(), Some("Ben"));
    assert_eq!(ann.links[0].state, Outgoing);
    assert!(ann.links[0].since_ms > 0);
    assert_eq!(s.links("ben").await, pairs(&[("ann", Incoming)]));
    // Asking again, or oneself, is refused.
    assert_eq!(
        s.act(verb::FRIENDS_REQUEST, "ann", "ben").await,
        Err(ErrorCode::AlreadyRequested)
    );
    assert_eq!(
        s.act(verb::FRIENDS_REQUEST, "ann", "ann").await,
        Err(ErrorCode::Yourself)
    );
    assert_eq!(
        s.act(verb::FRIENDS_ACCEPT, "ann", "ben").await,
        Err(ErrorCode::NoRequest),
        "only the asked may accept"
    );

    // Accepted.
    assert_eq!(
        s.ok(verb::FRIENDS_ACCEPT, "ben", "ann").await,
        Some(Friends)
    );
    assert_eq!(
        to_ann.next().await,
        Notice::FriendAccepted { by: "ben".into() }
    );
    assert!(s.list("ann").await.is_friend("ben"));
    assert_eq!(s.links("ben").await, pairs(&[("ann", Friends)]));
    assert_eq!(
        s.act(verb::FRIENDS_REQUEST, "ben", "ann").await,
        Err(ErrorCode::AlreadyFriends)
    );

    // Asking someone who asked first is accepting.
    assert_eq!(
        s.ok(verb::FRIENDS_REQUEST, "cal", "ann").await,
        Some(Outgoing)
    );
    assert_eq!(
        to_ann.next().await,
        Notice::FriendRequest { from: "cal".into() }
    );
    assert_eq!(
        s.ok(verb::FRIENDS_REQUEST, "ann", "cal").await,
        Some(Friends)
    );
    assert_eq!(
        to_cal.next().await,
        Notice::FriendAccepted { by: "ann".into() }
    );

    // Friends first, then by uid.
    assert_eq!(
        s.ok(verb::FRIENDS_REQUEST, "abe", "ann").await,
        Some(Outgoing)
    );
    assert_eq!(
        to_ann.next().await,
        Notice::FriendRequest { from: "abe".into() }
    );
    assert_eq!(
        s.links("ann").await,
        pairs(&[("ben", Friends), ("cal", Friends), ("abe", Incoming)])
    );
    assert_eq!(
        s.list("ann").await.friends().collect::<Vec<_>>(),
        ["ben", "cal"]
    );

    // A decline deletes both sides.
    assert_eq!(s.ok(verb::FRIENDS_DECLINE, "ann", "abe").await, None);
    assert_eq!(
        to_abe.next().await,
        Notice::FriendDeclined { by: "ann".into() }
    );
    assert!(s.links("abe").await.is_empty());
    assert_eq!(
        s.act(verb::FRIENDS_DECLINE, "ann", "abe").await,
        Err(ErrorCode::NoRequest)
    );

    // A removal too, and only of a friend.
    assert_eq!(s.ok(verb::FRIENDS_REMOVE, "ann", "ben").await, None);
    assert_eq!(
        to_ben.next().await,
        Notice::FriendRemoved { by: "ann".into() }
    );
    // The actor's own sessions are told too, so every tab stops following.
    assert_eq!(
        to_ann.next().await,
        Notice::Unfriended { uid: "ben".into() }
    );
    assert!(s.links("ben").await.is_empty());
    assert_eq!(s.links("ann").await, pairs(&[("cal", Friends)]));
    assert_eq!(
        s.act(verb::FRIENDS_REMOVE, "ann", "ben").await,
        Err(ErrorCode::NotFriends)
    );

    // Withdrawing one's request.
    assert_eq!(
        s.ok(verb::FRIENDS_REQUEST, "ann", "dan").await,
        Some(Outgoing)
    );
    assert_eq!(
        to_dan.next().await,
        Notice::FriendRequest { from: "ann".into() }
    );
    assert_eq!(s.ok(verb::FRIENDS_REMOVE, "ann", "dan").await, None);
    assert_eq!(
        to_dan.next().await,
        Notice::FriendRemoved { by: "ann".into() }
    );
    // The actor's own sessions are told too, so every tab stops following.
    assert_eq!(
        to_ann.next().await,
        Notice::Unfriended { uid: "dan".into() }
    );
    assert!(s.links("dan").await.is_empty());

    for notices in [
        &mut to_ann,
        &mut to_ben,
        &mut to_cal,
        &mut to_abe,
        &mut to_dan,
    ] {
        notices.none().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_asking_each_other_at_once_become_friends() {
    let s = stack(dashdice_proto::friends::MAX_FRIENDS).await;
    for round in 0..3 {
        let (a, b) = (format!("eve{round}"), format!("fay{round}"));
        let (one, two) = tokio::join!(
            s.act(verb::FRIENDS_REQUEST, &a, &b),
            s.act(verb::FRIENDS_REQUEST, &b, &a)
        );
        let states = [one, two].map(|r| r.expect("both succeed").map(|l| l.state));
        assert!(
            states.contains(&Some(Friends)) && states.contains(&Some(Outgoing)),
            "one asked, the other accepted: {states:?}"
        );
        assert_eq!(s.links(&a).await, pairs(&[(b.as_str(), Friends)]));
        assert_eq!(s.links(&b).await, pairs(&[(a.as_str(), Friends)]));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_hide_the_blocker_and_refuse_requests_both_ways_until_lifted() {
    let s = stack(dashdice_proto::friends::MAX_FRIENDS).await;
    let (mut to_ann, mut to_ben) = (s.notices("ann").await, s.notices("ben").await);
    s.ok(verb::FRIENDS_REQUEST, "ann", "ben").await;
    s.ok(verb::FRIENDS_ACCEPT, "ben", "ann").await;
    assert_eq!(
        to_ben.next().await,
        Notice::FriendRequest { from: "ann".into() }
    );
    assert_eq!(
        to_ann.next().await,
        Notice::FriendAccepted { by: "ben".into() }
    );

    // Blocking a friend: told only as a removal; the blocked sees nothing.
    assert_eq!(s.ok(verb::FRIENDS_BLOCK, "ann", "ben").await, Some(Blocked));
    assert_eq!(
        to_ben.next().await,
        Notice::FriendRemoved { by: "ann".into() }
    );
    // The actor's own sessions are told too, so every tab stops following.
    assert_eq!(
        to_ann.next().await,
        Notice::Unfriended { uid: "ben".into() }
    );
    assert_eq!(s.links("ann").await, pairs(&[("ben", Blocked)]));
    assert!(s.links("ben").await.is_empty());
    for (uid, other) in [("ben", "ann"), ("ann", "ben")] {
        assert_eq!(
            s.act(verb::FRIENDS_REQUEST, uid, other).await,
            Err(ErrorCode::Blocked),
            "{uid} asks {other}"
        );
    }
    assert_eq!(
        s.act(verb::FRIENDS_REMOVE, "ben", "ann").await,
        Err(ErrorCode::NotFriends)
    );
    // Blocking again changes nothing; nobody is told.
    assert_eq!(s.ok(verb::FRIENDS_BLOCK, "ann", "ben").await, Some(Blocked));

    // Both block: each sees their own block; lifting one leaves the other.
    assert_eq!(s.ok(verb::FRIENDS_BLOCK, "ben", "ann").await, Some(Blocked));
    assert_eq!(s.links("ben").await, pairs(&[("ann", Blocked)]));
    assert_eq!(s.ok(verb::FRIENDS_UNBLOCK, "ann", "ben").await, None);
    assert!(s.links("ann").await.is_empty());
    assert_eq!(s.links("ben").await, pairs(&[("ann", Blocked)]));
    assert_eq!(
        s.act(verb::FRIENDS_REQUEST, "ann", "ben").await,
        Err(ErrorCode::Blocked)
    );
    // Unblocking nobody is no error, and tells the blocked nothing.
    assert_eq!(s.ok(verb::FRIENDS_UNBLOCK, "ann", "ben").await, None);

    // Lifted on both sides: free to ask again.
    assert_eq!(s.ok(verb::FRIENDS_UNBLOCK, "ben", "ann").await, None);
    assert!(s.links("ann").await.is_empty() && s.links("ben").await.is_empty());
    assert_eq!(
        s.ok(verb::FRIENDS_REQUEST, "ben", "ann").await,
        Some(Outgoing)
    );
    assert_eq!(
        to_ann.next().await,
        Notice::FriendRequest { from: "ben".into() }
    );

    // Blocking someone who asked: their request is gone, told as a removal.
    assert_eq!(s.ok(verb::FRIENDS_BLOCK, "ann", "ben").await, Some(Blocked));
    assert_eq!(
        to_ben.next().await,
        Notice::FriendRemoved { by: "ann".into() }
    );
    // The actor's own sessions are told too, so every tab stops following.
    assert_eq!(
        to_ann.next().await,
        Notice::Unfriended { uid: "ben".into() }
    );
    assert!(s.links("ben").await.is_empty());
    to_ann.none().await;
    to_ben.none().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_ids_and_the_cap_are_refused() {
    let s = stack(2).await;
    for (uid, other) in [
        ("ann", "not an id"),
        ("a.b", "ann"),
        ("ann", ""),
        ("ann", "__reserved__"),
    ] {
        assert_eq!(
            s.act(verb::FRIENDS_REQUEST, uid, other).await,
            Err(ErrorCode::BadRequest),
            "{uid:?} {other:?}"
        );
    }
    let list = s.archives.friends("no/slash").await;
    assert_eq!(
        list.map(|_| ()).map_err(|e| e.code()),
        Err(ErrorCode::BadRequest)
    );

    // Two at most, requests and friends together, on either side.
    s.ok(verb::FRIENDS_REQUEST, "ann", "b1").await;
    s.ok(verb::FRIENDS_REQUEST, "ann", "b2").await;
    assert_eq!(
        s.act(verb::FRIENDS_REQUEST, "ann", "b3").await,
        Err(ErrorCode::TooManyFriends)
    );
    assert_eq!(
        s.act(verb::FRIENDS_REQUEST, "b3", "ann").await,
        Err(ErrorCode::TooManyFriends),
        "ann is full"
    );
    // Accepting adds nothing; withdrawing and blocking make room.
    s.ok(verb::FRIENDS_ACCEPT, "b1", "ann").await;
    s.ok(verb::FRIENDS_REMOVE, "ann", "b2").await;
    s.ok(verb::FRIENDS_REQUEST, "ann", "b3").await;
    s.ok(verb::FRIENDS_BLOCK, "ann", "b1").await;
    s.ok(verb::FRIENDS_REQUEST, "ann", "b4").await;
    assert_eq!(
        s.act(verb::FRIENDS_REQUEST, "ann", "b5").await,
        Err(ErrorCode::TooManyFriends)
    );
    assert_eq!(
        s.links("ann").await,
        pairs(&[("b1", Blocked), ("b3", Outgoing), ("b4", Outgoing)])
    );
}
