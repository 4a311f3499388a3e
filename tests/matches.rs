//! The match host's logic on a real redis-server and the real components:
//! whole games, races, idempotency, timers and bad input.

use std::sync::Arc;

use dashdice_match_host::{
    ActRequest, ActionReply, Applied, CreateMatch, MatchError, MatchHost, PlayerAction,
    SequencedEvent,
};
use dashdice_mode_sdk::{EndReason, Event, MatchResult, ModeError};
use dashdice_runtime::fair_dice::verify;
use dashdice_runtime::registry::ModeRegistry;
use dashdice_runtime::{Limits, Runtime};
use dashdice_store::MatchStore;
use dashdice_tests::servers::RedisServer;

async fn host(redis: &RedisServer) -> MatchHost {
    let registry = ModeRegistry::with_builtins(Runtime::new(Limits::default()).expect("runtime"))
        .expect("built-in modes");
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    MatchHost::new(Arc::new(registry), store)
}

fn create(mode: &str) -> CreateMatch {
    CreateMatch {
        mode: mode.into(),
        players: vec!["alice".into(), "bob".into()],
        ..CreateMatch::default()
    }
}

fn act(id: &str, player: &str, rid: &str, action: PlayerAction) -> ActRequest {
    ActRequest {
        match_id: id.into(),
        player: player.into(),
        request_id: rid.into(),
        action,
    }
}

/// Plays to the end: roll until the turn score reaches 20, then bank (where
/// the mode has banking). Returns every event in the order replies gave them.
async fn play_out(host: &MatchHost, start: ActionReply) -> Vec<SequencedEvent> {
    let id = start.snapshot.match_id.clone();
    let can_bank = start.snapshot.mode != "true-grit";
    let mut events = start.events;
    let mut snapshot = start.snapshot;
    let mut n = 0;
    while let Some(player) = snapshot.turn.clone() {
        n += 1;
        assert!(n < 5_000, "the game ends");
        let turn_score = snapshot.view["turn_score"].as_i64().expect("turn score");
        let action = if can_bank && turn_score >= 20 {
            PlayerAction::Bank
        } else {
            PlayerAction::Roll
        };
        let reply = host
            .act(&act(&id, &player, &format!("r{n}"), action))
            .await
            .expect("a legal action")
            .reply;
        events.extend(reply.events);
        snapshot = reply.snapshot;
    }
    events
}

#[tokio::test]
async fn a_full_game_of_every_mode_with_gap_free_events_and_a_verifiable_record() {
    let redis = RedisServer::start();
    let host = host(&redis).await;
    for mode in ["classic", "zero-hour", "last-line", "true-grit"] {
        let start = host.create(&create(mode)).await.expect("create");
        let id = start.snapshot.match_id.clone();
        assert_eq!(
            start.snapshot.seed, None,
            "the seed stays secret while playing"
        );
        assert_eq!(start.snapshot.seed_hash.len(), 64);
        let events = play_out(&host, start).await;
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        assert_eq!(
            seqs,
            (1..=events.len() as u64).collect::<Vec<_>>(),
            "{mode}: gap-free"
        );
        assert_eq!(host.events_since(&id, 0).await.expect("events"), events);
        assert_eq!(
            host.events_since(&id, 3).await.expect("events"),
            events[3..]
        );
        assert!(matches!(
            events.last().map(|e| &e.event),
            Some(Event::GameOver { .. })
        ));

        let done = host.get(&id).await.expect("get");
        assert!(done.finished && done.turn.is_none() && done.deadline_ms.is_none());
        assert!(
            done.seed.is_some(),
            "{mode}: the seed is revealed at the end"
        );
        let record = host.record(&id).await.expect("record");
        let mode_version = record.mode_version;
        let registry = ModeRegistry::with_builtins(Runtime::new(Limits::default()).expect("rt"))
            .expect("modes");
        let verified = verify(
            &registry.version(mode, mode_version).expect("version"),
            &record,
        )
        .expect("the record verifies");
        assert_eq!(verified.actions, record.actions.len());
    }
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_reply_and_applies_once() {
    let redis = RedisServer::start();
    let host = host(&redis).await;
    let start = host.create(&create("classic")).await.expect("create");
    let id = start.snapshot.match_id.clone();
    let player = start.snapshot.turn.clone().expect("turn");
    let first = host
        .act(&act(&id, &player, "once", PlayerAction::Roll))
        .await
        .expect("roll");
    let again = host
        .act(&act(&id, &player, "once", PlayerAction::Roll))
        .await
        .expect("the same request");
    assert!(first.new && !again.new);
    assert_eq!(first.reply, again.reply);
    assert_eq!(
        host.get(&id).await.expect("get").seq,
        first.reply.snapshot.seq
    );

    // Later, after other actions (and whoever's turn it is now), the same
    // request still gets exactly its first reply, and nothing is applied.
    let mut n = 0;
    let mut last = first.reply.clone();
    while last.snapshot.turn.as_deref() == Some(player.as_str()) && n < 3 {
        n += 1;
        last = host
            .act(&act(&id, &player, &format!("later{n}"), PlayerAction::Roll))
            .await
            .expect("roll")
            .reply;
    }
    let late = host
        .act(&act(&id, &player, "once", PlayerAction::Roll))
        .await
        .expect("the same request, late");
    assert!(!late.new);
    assert_eq!(late.reply, first.reply);
    assert_eq!(host.get(&id).await.expect("get").seq, last.snapshot.seq);
    // The same request id from the other player is a different request.
    let other = start
        .snapshot
        .players
        .iter()
        .find(|p| **p != player)
        .expect("two players");
    let theirs = host.act(&act(&id, other, "once", PlayerAction::Bank)).await;
    assert!(
        !matches!(theirs, Ok(Applied { new: false, .. })),
        "{theirs:?}"
    );
}

#[tokio::test]
async fn of_two_racing_banks_exactly_one_applies() {
    let redis = RedisServer::start();
    let host = host(&redis).await;
    for attempt in 0..10 {
        let start = host.create(&create("classic")).await.expect("create");
        let id = start.snapshot.match_id.clone();
        let player = start.snapshot.turn.clone().expect("turn");
        // Roll until there is something to bank and the turn is still ours.
        let mut n = 0;
        loop {
            n += 1;
            let reply = host
                .act(&act(&id, &player, &format!("roll{n}"), PlayerAction::Roll))
                .await
                .expect("roll")
                .reply;
            if reply.snapshot.turn.as_deref() != Some(player.as_str()) {
                break;
            }
            if reply.snapshot.view["turn_score"].as_i64() > Some(0) {
                let banks: Vec<_> = ["bank-a", "bank-b"]
                    .into_iter()
                    .map(|rid| {
                        let host = host.clone();
                        let request = act(&id, &player, rid, PlayerAction::Bank);
                        tokio::spawn(async move { host.act(&request).await })
                    })
                    .collect();
                let mut applied = 0;
                for b in banks {
                    match b.await.expect("task") {
                        Ok(_) => applied += 1,
                        Err(MatchError::Rejected(
                            ModeError::NotYourTurn(_)
                            | ModeError::NothingToBank
                            | ModeError::GameOver,
                        )) => {}
                        Err(other) => panic!("attempt {attempt}: {other:?}"),
                    }
                }
                assert_eq!(applied, 1, "attempt {attempt}");
                break;
            }
        }
    }
}

#[tokio::test]
async fn timers_time_out_and_three_in_a_row_forfeit() {
    let redis = RedisServer::start();
    let host = host(&redis).await;
    let start = host.create(&create("zero-hour")).await.expect("create");
    let id = start.snapshot.match_id.clone();
    let first = start.snapshot.turn.clone().expect("turn");
    let mut snapshot = start.snapshot;
    // first, second, first, second, first: the first player's third timeout in a row.
    for round in 0..5 {
        let deadline = snapshot.deadline_ms.expect("a live timer");
        // A stale deadline does nothing.
        assert!(
            host.fire_timeout(&id, deadline - 1)
                .await
                .expect("stale")
                .is_none()
        );
        let fired = host
            .fire_timeout(&id, deadline)
            .await
            .expect("fire")
            .expect("due");
        assert!(fired.new);
        let fired = fired.reply;
        // Firing the same timer again (another worker) does nothing.
        assert!(
            host.fire_timeout(&id, deadline)
                .await
                .expect("again")
                .is_none()
        );
        snapshot = fired.snapshot;
        let kinds: Vec<&Event> = fired.events.iter().map(|e| &e.event).collect();
        if round < 4 {
            assert!(matches!(kinds[0], Event::TimedOut { .. }), "{kinds:?}");
            assert!(!snapshot.finished);
        } else {
            assert!(
                matches!(kinds[0], Event::Forfeited { player } if *player == first),
                "{kinds:?}"
            );
            let Some(Event::GameOver { reason, standings }) = kinds.last() else {
                panic!("{kinds:?}")
            };
            assert_eq!(*reason, EndReason::Forfeit);
            assert_ne!(standings[0].player, first);
            assert_eq!(standings[0].result, MatchResult::Win);
        }
    }
    assert!(snapshot.finished);
}

/// Two bots play each mode to the end on their timers, each move the mode's
/// own choice (here the SDK's default): bank from a turn score of 20 where
/// the mode banks, else roll. None of their timers is a timeout.
#[tokio::test]
async fn bots_play_every_mode_to_the_end_by_the_modes_choice() {
    let redis = RedisServer::start();
    let host = host(&redis).await;
    for mode in ["classic", "zero-hour", "last-line", "true-grit"] {
        let request = CreateMatch {
            bots: vec!["alice".into(), "bob".into()],
            ..create(mode)
        };
        let mut snapshot = host.create(&request).await.expect("create").snapshot;
        let id = snapshot.match_id.clone();
        let can_bank = mode != "true-grit";
        let mut turns = 0;
        while !snapshot.finished {
            turns += 1;
            assert!(turns < 5_000, "{mode}: the bots finish");
            let turn_score = snapshot.view["turn_score"].as_i64().expect("turn score");
            let deadline = snapshot.deadline_ms.expect("a bot's timer");
            let reply = host
                .fire_timeout(&id, deadline)
                .await
                .expect("the bot moves")
                .expect("due")
                .reply;
            let rolled = matches!(reply.events[0].event, Event::Rolled { .. });
            let wants_bank = can_bank && turn_score >= 20;
            assert_eq!(!rolled, wants_bank, "{mode}: at turn score {turn_score}");
            assert!(
                !reply
                    .events
                    .iter()
                    .any(|e| matches!(e.event, Event::TimedOut { .. })),
                "{mode}: a bot timed out"
            );
            snapshot = reply.snapshot;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_whose_mode_refuses_its_move_rolls_instead_and_the_match_ends() {
    let redis = RedisServer::start();
    let registry = ModeRegistry::with_builtins(Runtime::new(Limits::default()).expect("runtime"))
        .expect("built-in modes");
    registry
        .install(dashdice_tests::BAD_BOT)
        .expect("bad-bot loads");
    let store = MatchStore::connect(&redis.url()).await.expect("redis");
    let host = MatchHost::new(Arc::new(registry), store);
    let request = CreateMatch {
        bots: vec!["alice".into(), "bob".into()],
        ..create("bad-bot")
    };
    let mut snapshot = host.create(&request).await.expect("create").snapshot;
    let id = snapshot.match_id.clone();
    let mut turns = 0;
    while !snapshot.finished {
        turns += 1;
        assert!(turns < 5_000, "the bots finish");
        let deadline = snapshot.deadline_ms.expect("a bot's timer");
        let reply = host
            .fire_timeout(&id, deadline)
            .await
            .expect("the bot moves although its mode refuses its choice")
            .expect("due")
            .reply;
        assert!(
            matches!(reply.events[0].event, Event::Rolled { .. }),
            "the bot fell back to rolling: {:?}",
            reply.events
        );
        snapshot = reply.snapshot;
    }
}

#[tokio::test]
async fn acting_resets_the_timeout_count() {
    let redis = RedisServer::start();
    let host = host(&redis).await;
    // Classic: a roll never ends the game, so only timeouts could.
    let start = host.create(&create("classic")).await.expect("create");
    let id = start.snapshot.match_id.clone();
    let mut snapshot = start.snapshot;
    let mut streak = std::collections::HashMap::<String, u32>::new();
    let mut timeouts = 0;
    for round in 0..16 {
        let player = snapshot.turn.clone().expect("turn");
        let count = streak.entry(player.clone()).or_default();
        snapshot = if *count == 2 {
            // Two timeouts in a row: acting now starts the count over.
            *count = 0;
            host.act(&act(&id, &player, &format!("r{round}"), PlayerAction::Roll))
                .await
                .expect("roll")
                .reply
                .snapshot
        } else {
            *count += 1;
            timeouts += 1;
            let deadline = snapshot.deadline_ms.expect("timer");
            host.fire_timeout(&id, deadline)
                .await
                .expect("fire")
                .expect("due")
                .reply
                .snapshot
        };
        assert!(
            !snapshot.finished,
            "round {round}: nobody had 3 timeouts in a row"
        );
    }
    assert!(
        timeouts >= 8,
        "more than 3 timeouts per player overall: {timeouts}"
    );
}

#[tokio::test]
async fn consecutive_timers_each_fire_once_even_within_one_millisecond() {
    let redis = RedisServer::start();
    let host = host(&redis).await;
    let start = host.create(&create("zero-hour")).await.expect("create");
    let id = start.snapshot.match_id.clone();
    let mut deadline = start.snapshot.deadline_ms.expect("timer");
    let mut seq = start.snapshot.seq;
    for _ in 0..5 {
        // Fired early and back to back, the next timer may well carry the
        // same deadline as the last: it is still a new firing.
        let fired = host
            .fire_timeout(&id, deadline)
            .await
            .expect("fire")
            .expect("due");
        assert!(fired.reply.snapshot.seq > seq, "applied");
        seq = fired.reply.snapshot.seq;
        if fired.reply.snapshot.finished {
            break;
        }
        let next = fired.reply.snapshot.deadline_ms.expect("timer");
        // The same timer again (a second host) changes nothing, unless it is
        // also the next one's deadline (then it *is* the next timer).
        if next != deadline {
            assert!(
                host.fire_timeout(&id, deadline)
                    .await
                    .expect("fire")
                    .is_none()
            );
        }
        deadline = next;
    }
    assert_eq!(host.get(&id).await.expect("get").seq, seq);
}

#[tokio::test]
async fn bad_requests_get_typed_errors_and_change_nothing() {
    let redis = RedisServer::start();
    let host = host(&redis).await;
    assert!(matches!(
        host.create(&create("snakes")).await,
        Err(MatchError::UnknownMode(m)) if m == "snakes"
    ));
    let mut lonely = create("classic");
    lonely.players.truncate(1);
    let err = host.create(&lonely).await.expect_err("one player");
    assert_eq!(err.code(), "invalid_config");

    let start = host.create(&create("classic")).await.expect("create");
    let id = start.snapshot.match_id.clone();
    let on_turn = start.snapshot.turn.clone().expect("turn");
    let other = if on_turn == "alice" { "bob" } else { "alice" };
    let before = host.get(&id).await.expect("get");
    for (request, code) in [
        (
            act("no-such-match", "alice", "x1", PlayerAction::Roll),
            "unknown_match",
        ),
        (
            act(&id, "mallory", "x2", PlayerAction::Roll),
            "not_a_player",
        ),
        (act(&id, other, "x3", PlayerAction::Roll), "not_your_turn"),
        (
            act(&id, &on_turn, "x4", PlayerAction::Bank),
            "nothing_to_bank",
        ),
        (
            act(
                &id,
                &on_turn,
                "x5",
                PlayerAction::Custom {
                    name: "teleport".into(),
                    payload: String::new(),
                },
            ),
            "unknown_action",
        ),
    ] {
        let err = host.act(&request).await.expect_err("refused");
        assert_eq!(err.code(), code, "{err}");
    }
    assert_eq!(host.get(&id).await.expect("get"), before, "nothing changed");
    assert!(matches!(
        host.events_since("no-such-match", 0).await,
        Err(MatchError::UnknownMatch(_))
    ));
    assert!(host.record(&id).await.is_err(), "no record before the end");

    // After the end every action is refused.
    host.act(&act(&id, other, "leave", PlayerAction::Forfeit))
        .await
        .expect("forfeit");
    let err = host
        .act(&act(&id, &on_turn, "late", PlayerAction::Roll))
        .await
        .expect_err("over");
    assert_eq!(err.code(), "game_over");
}
