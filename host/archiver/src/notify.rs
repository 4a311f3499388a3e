//! The notification requests the archiver makes (see
//! `dashdice_proto::notify`): the notifier renders, keeps and pushes them.
//!
//! | event | to | kind | id | data |
//! |---|---|---|---|---|
//! | a friend request | the asked player | `friend_request` | `friend_request:<from>:<to>:<since_ms>` | `from` |
//! | an accepted request | the asking player | `friend_accepted` | `friend_accepted:<by>:<to>:<since_ms>` | `by` |
//! | a match archived | each human player | `match_result` | `result:<match_id>:<uid>` | `match_id`, `mode`, `outcome` (`won`, `lost`, `draw`, `void`), `score` |
//!
//! Ids come from the event, never from the moment of sending: `since_ms` is
//! when the stored link took its state (as Firestore keeps it), so the same
//! change asked for twice (a retry, a redelivered record) is one
//! notification, while a request made again after a removal is a new one.

use std::collections::BTreeMap;

use dashdice_mode_sdk::MatchResult;
use dashdice_proto::notify::{NotificationKind, NotifyRequest};
use dashdice_proto::queue::Notice;
use dashdice_proto::record::MatchRecord;

fn request(
    id: String,
    uid: &str,
    kind: NotificationKind,
    data: BTreeMap<String, String>,
    created_ms: u64,
) -> NotifyRequest {
    NotifyRequest::new(id, uid, kind, data, created_ms)
}

/// The request for a friend notice told to `to`, if it is one the notifier
/// keeps (requests and accepts; declines and removals are only hints to
/// refresh a list). `since_ms` is when the changed link took its state.
pub fn for_friend_notice(to: &str, notice: &Notice, since_ms: u64) -> Option<NotifyRequest> {
    let (kind, key, who) = match notice {
        Notice::FriendRequest { from } => (NotificationKind::FriendRequest, "from", from),
        Notice::FriendAccepted { by } => (NotificationKind::FriendAccepted, "by", by),
        _ => return None,
    };
    Some(request(
        format!("{}:{who}:{to}:{since_ms}", kind.as_str()),
        to,
        kind,
        BTreeMap::from([(key.to_owned(), who.clone())]),
        since_ms,
    ))
}

/// One `match_result` per human player of `record` (bots are told
/// nothing). A void match is `void` for everyone, with no score; a player
/// the standings do not name is skipped (a record the host never makes).
pub fn match_results(record: &MatchRecord, now_ms: u64) -> Vec<NotifyRequest> {
    // The match's own last moment (its last action, or its creation), so
    // the same record always asks the same.
    let ended_ms = record
        .actions
        .iter()
        .rev()
        .find_map(|a| a.at_ms)
        .or(Some(record.created_ms).filter(|ms| *ms > 0))
        .unwrap_or(now_ms);
    record
        .players
        .iter()
        .filter(|p| !record.bots.contains(p))
        .filter_map(|uid| {
            let mut data = BTreeMap::from([
                ("match_id".to_owned(), record.match_id.clone()),
                ("mode".to_owned(), record.mode.clone()),
            ]);
            if record.void.is_some() {
                data.insert("outcome".to_owned(), "void".to_owned());
            } else {
                let standing = record.standings.iter().find(|s| &s.player == uid)?;
                let outcome = match standing.result {
                    MatchResult::Win => "won",
                    MatchResult::Loss => "lost",
                    MatchResult::Draw => "draw",
                };
                data.insert("outcome".to_owned(), outcome.to_owned());
                data.insert("score".to_owned(), standing.score.to_string());
            }
            Some(request(
                format!("result:{}:{uid}", record.match_id),
                uid,
                NotificationKind::MatchResult,
                data,
                ended_ms,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashdice_mode_sdk::Standing;

    fn record() -> MatchRecord {
        serde_json::from_value(serde_json::json!({
            "match_id": "m1",
            "mode": "classic",
            "mode_version": "0".repeat(64),
            "players": ["alice", "bot-1"],
            "created_ms": 3,
            "bots": ["bot-1"],
            "seed_hash": "h",
            "seed": "s",
            "actions": [],
            "standings": [],
        }))
        .expect("a record")
    }

    #[test]
    fn only_requests_and_accepts_are_notified_with_ids_from_the_link() {
        let asked = Notice::FriendRequest { from: "bob".into() };
        let r = for_friend_notice("alice", &asked, 7).expect("a request");
        assert_eq!(r.id, "friend_request:bob:alice:7");
        assert_eq!(r.uid, "alice");
        assert_eq!(r.data.get("from").map(String::as_str), Some("bob"));
        assert!(dashdice_proto::notify::check_request(&r).is_ok());
        let accepted = Notice::FriendAccepted { by: "alice".into() };
        let r = for_friend_notice("bob", &accepted, 9).expect("a request");
        assert_eq!(r.kind, NotificationKind::FriendAccepted);
        assert_eq!(r.id, "friend_accepted:alice:bob:9");
        let declined = Notice::FriendDeclined { by: "alice".into() };
        assert!(for_friend_notice("bob", &declined, 9).is_none());
    }

    #[test]
    fn results_go_to_humans_only() {
        let mut rec = record();
        rec.standings = vec![
            Standing {
                player: "alice".into(),
                score: 10_000,
                rank: 1,
                result: MatchResult::Win,
            },
            Standing {
                player: "bot-1".into(),
                score: 400,
                rank: 2,
                result: MatchResult::Loss,
            },
        ];
        let results = match_results(&rec, 5);
        assert_eq!(results.len(), 1);
        let r = &results[0];
        assert_eq!(r.id, "result:m1:alice");
        assert_eq!(r.data.get("outcome").map(String::as_str), Some("won"));
        assert_eq!(r.data.get("score").map(String::as_str), Some("10000"));
        assert_eq!(
            match_results(&rec, 99),
            results,
            "the same record asks the same"
        );
        rec.void = Some("quarantined".into());
        let results = match_results(&rec, 5);
        assert_eq!(
            results[0].data.get("outcome").map(String::as_str),
            Some("void")
        );
        assert!(!results[0].data.contains_key("score"));
    }
}
