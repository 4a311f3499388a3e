//! What travels as JSON: the requests the matchmaker answers, its replies,
//! the notices it sends to players, the player states it stores, and what
//! it asks of the match host.
//!
//! These shapes are the contract with clients and the match host (their
//! subjects are in [`crate::bus`]), and stored player states outlive a
//! deploy, so they live apart from the logic: a change here is a change of
//! wire format. Nothing here decides anything.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::bus::{self, Answer};

/// Quick queues may widen without bound and fill with bots; ranked queues
/// stay capped and human-only, and their results move ratings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    Quick,
    Ranked,
}

impl QueueKind {
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Quick => "quick",
            QueueKind::Ranked => "ranked",
        }
    }
}

/// A request to the matchmaker, decoded by the endpoint it came on.
#[derive(Clone, Debug)]
pub enum QueueRequest {
    Join(JoinRequest),
    Leave(PlayerRequest),
    Status(PlayerRequest),
    CreateInvite(CreateInviteRequest),
    JoinInvite(JoinInviteRequest),
    DirectInvite(DirectInviteRequest),
    DeclineInvite(JoinInviteRequest),
    Rematch(RematchRequest),
}

impl QueueRequest {
    /// Decodes `payload` as the request `endpoint` takes; the refusal to
    /// send otherwise (`too_large`, `bad_request`, `unknown_endpoint`).
    pub fn decode(endpoint: &str, payload: &[u8], max_bytes: usize) -> Result<Self, Answer> {
        use crate::bus::decode_request as decode;
        use crate::bus::queue_endpoint as e;
        let max = max_bytes;
        Ok(match endpoint {
            e::JOIN => QueueRequest::Join(decode(payload, max)?),
            e::LEAVE => QueueRequest::Leave(decode(payload, max)?),
            e::STATUS => QueueRequest::Status(decode(payload, max)?),
            e::PRIVATE_CREATE => QueueRequest::CreateInvite(decode(payload, max)?),
            e::PRIVATE_JOIN => QueueRequest::JoinInvite(decode(payload, max)?),
            e::PRIVATE_INVITE => QueueRequest::DirectInvite(decode(payload, max)?),
            e::PRIVATE_DECLINE => QueueRequest::DeclineInvite(decode(payload, max)?),
            e::REMATCH => QueueRequest::Rematch(decode(payload, max)?),
            other => return Err(bus::refuse(ErrorCode::UnknownEndpoint, other)),
        })
    }
}

/// Ask to join a queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub player: String,
    pub mode: String,
    pub kind: QueueKind,
    pub region: String,
    /// The client's measured round trip to other regions, ms.
    #[serde(default)]
    pub latency_ms: BTreeMap<String, u32>,
    #[serde(default)]
    pub connection: Connection,
    /// For quick queues only: a rating to match on instead of the stored one
    /// (ranked queues always use the stored rating).
    #[serde(default)]
    pub rating: Option<f64>,
    /// `bot`: skip the wait and play a bot now (quick queues only).
    #[serde(default)]
    pub opponent: Opponent,
}

/// Whom a join asks to play.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Opponent {
    /// The best human in the windows, or a bot once the wait runs out.
    #[default]
    Any,
    /// A bot, at once.
    Bot,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    #[default]
    Good,
    Poor,
}

/// Ask to leave, or for the status of, a player's queue.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlayerRequest {
    pub player: String,
}

/// Ask for an invite code to a private match (`dd.queue.private.create`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateInviteRequest {
    pub player: String,
    pub mode: String,
}

/// Invite one player to a private match by user id
/// (`dd.queue.private.invite`): an invite code only `to` may join, told to
/// `to` as [`Notice::Invited`]. The caller (the gateway) has checked that
/// the two are friends. When `to` declines, or the code expires unused,
/// `player` is told ([`Notice::InviteDeclined`], [`Notice::InviteExpired`]).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DirectInviteRequest {
    pub player: String,
    pub to: String,
    pub mode: String,
}

/// An invite code, for its host to pass on.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invite {
    pub code: String,
    pub mode: String,
    /// When the code stops working (ms since the epoch).
    pub expires_ms: u64,
}

/// Join a private match by its code (`dd.queue.private.join`). The code is
/// case-insensitive.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinInviteRequest {
    pub player: String,
    pub code: String,
}

/// Offer, or accept, a rematch of a finished match (`dd.queue.rematch`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RematchRequest {
    pub player: String,
    /// The match that ended.
    pub match_id: String,
}

/// Where a rematch stands, as the reply to an offer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RematchStatus {
    /// The offer stands; the others have until `expires_ms` to agree.
    Offered {
        /// The match that ended.
        match_id: String,
        expires_ms: u64,
    },
    /// Everyone agreed: the new match (also told as [`Notice::MatchFound`]).
    Started { match_id: String },
}

/// A player's state, as stored (JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PlayerState {
    Queued {
        mode: String,
        kind: QueueKind,
        region: String,
        ticket_id: String,
        since_ms: u64,
    },
    /// Made an invite code and waits for a guest; stored with the code's
    /// expiry, so a host nobody joins is free again when the code dies.
    Hosting {
        code: String,
        mode: String,
        since_ms: u64,
        expires_ms: u64,
    },
    Matching {
        /// What is being made into a match. (Stored as `ticket_id`, a
        /// string, for the states already in Redis.)
        #[serde(rename = "ticket_id")]
        making: MatchingFor,
        since_ms: u64,
    },
    Playing {
        match_id: String,
        since_ms: u64,
    },
}

/// What a `matching` player's match is being made from.
///
/// Stored as one string, as it always was: the ticket id, `code:<CODE>` or
/// `rematch:<match id>` (ticket ids never contain a `:`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum MatchingFor {
    /// A queue ticket, by its id.
    Ticket(String),
    /// A private match, by its invite code.
    Invite(String),
    /// A rematch of the finished match with this id.
    Rematch(String),
}

impl From<MatchingFor> for String {
    fn from(making: MatchingFor) -> String {
        match making {
            MatchingFor::Ticket(id) => id,
            MatchingFor::Invite(code) => format!("code:{code}"),
            MatchingFor::Rematch(match_id) => format!("rematch:{match_id}"),
        }
    }
}

impl From<String> for MatchingFor {
    fn from(stored: String) -> Self {
        if let Some(code) = stored.strip_prefix("code:") {
            MatchingFor::Invite(code.to_owned())
        } else if let Some(match_id) = stored.strip_prefix("rematch:") {
            MatchingFor::Rematch(match_id.to_owned())
        } else {
            MatchingFor::Ticket(stored)
        }
    }
}

/// What a player is doing, for `status` and `join` replies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Status {
    Idle,
    Queued {
        mode: String,
        kind: QueueKind,
        region: String,
        /// 1 = the longest waiting.
        position: u64,
        queue_size: u64,
        waited_ms: u64,
        /// From the recent average wait in this queue; 0 = any moment now.
        estimated_wait_ms: u64,
    },
    /// Waiting for a guest to join with `code`.
    Hosting {
        code: String,
        mode: String,
        expires_ms: u64,
    },
    Matching,
    Playing {
        match_id: String,
    },
}

/// How a match came about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// Paired from a queue.
    #[default]
    Queue,
    /// A private match: the guest joined the host's invite code.
    Invite,
    /// The players of a finished match agreed to play again.
    Rematch,
}

impl Origin {
    /// The metric label of a match so made.
    pub fn label(self, kind: QueueKind) -> &'static str {
        match self {
            Origin::Queue => kind.as_str(),
            Origin::Invite => "invite",
            Origin::Rematch => "rematch",
        }
    }
}

/// Told to a player (on their notification subject) when their match exists.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchFound {
    pub match_id: String,
    pub mode: String,
    pub kind: QueueKind,
    pub players: Vec<String>,
    /// The opponent is one of the host's bots.
    pub bot: bool,
    /// Queue, invite code or rematch. Private matches and rematches are
    /// never ranked, and their `kind` is `quick`.
    #[serde(default)]
    pub origin: Origin,
}

/// Notices to a player.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Notice {
    MatchFound(MatchFound),
    /// `from` offers a rematch of `match_id`: answer with an offer of one's
    /// own before `expires_ms` to play again.
    RematchOffered {
        match_id: String,
        from: String,
        expires_ms: u64,
    },
    /// `from` asks to be friends.
    FriendRequest {
        from: String,
    },
    /// `by` accepted this player's friend request.
    FriendAccepted {
        by: String,
    },
    /// `by` declined this player's friend request.
    FriendDeclined {
        by: String,
    },
    /// `by` ended the friendship (removed or blocked this player; a
    /// blocked player is told only this).
    FriendRemoved {
        by: String,
    },
    /// This player ended their friendship (or request) with `uid`, perhaps
    /// in another tab: every session of theirs stops following `uid`.
    Unfriended {
        uid: String,
    },
    /// `from` invites this player to a private match: join with `code`
    /// before `expires_ms`, or decline it.
    Invited {
        from: String,
        code: String,
        mode: String,
        expires_ms: u64,
    },
    /// `by` declined this player's direct invite; the player is free again.
    InviteDeclined {
        by: String,
        code: String,
    },
    /// Nobody took this player's direct invite to `to` in time; the player
    /// is free again.
    InviteExpired {
        to: String,
        code: String,
    },
    /// The invite from `from` no longer stands (it expired, or its host
    /// left).
    InviteWithdrawn {
        from: String,
        code: String,
    },
    /// A new notification in this player's inbox (the notifier).
    Notification(crate::notify::Notification),
    /// The player's unread count changed (read or deleted, perhaps in
    /// another tab).
    InboxChanged {
        unread: u32,
    },
}

/// What the matchmaker asks of the match host.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NewMatch {
    pub mode: String,
    pub players: Vec<String>,
    pub ranked: bool,
    /// Which of `players` the host plays itself.
    pub bots: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_matching_state_is_stored_as_it_always_was() {
        for (making, stored) in [
            (MatchingFor::Ticket("t1a2".into()), "t1a2"),
            (MatchingFor::Invite("ABC234".into()), "code:ABC234"),
            (MatchingFor::Rematch("m9".into()), "rematch:m9"),
        ] {
            let state = PlayerState::Matching {
                making: making.clone(),
                since_ms: 7,
            };
            let json = serde_json::to_string(&state).unwrap();
            assert_eq!(
                json,
                format!(r#"{{"state":"matching","ticket_id":"{stored}","since_ms":7}}"#)
            );
            assert_eq!(serde_json::from_str::<PlayerState>(&json).unwrap(), state);
        }
    }

    #[test]
    fn states_and_notices_keep_their_wire_shape() {
        let hosting = PlayerState::Hosting {
            code: "K7QX2M".into(),
            mode: "classic".into(),
            since_ms: 1,
            expires_ms: 2,
        };
        assert_eq!(
            serde_json::to_value(&hosting).unwrap(),
            serde_json::json!({"state": "hosting", "code": "K7QX2M", "mode": "classic", "since_ms": 1, "expires_ms": 2})
        );
        let offered = Notice::RematchOffered {
            match_id: "m1".into(),
            from: "alice".into(),
            expires_ms: 3,
        };
        assert_eq!(
            serde_json::to_value(&offered).unwrap(),
            serde_json::json!({"type": "rematch_offered", "match_id": "m1", "from": "alice", "expires_ms": 3})
        );
        // A match-found notice from before `origin` existed reads as a queue's.
        let old = r#"{"type":"match_found","match_id":"m","mode":"classic","kind":"quick","players":["a","b"],"bot":false}"#;
        let Notice::MatchFound(found) = serde_json::from_str(old).unwrap() else {
            panic!("a match found");
        };
        assert_eq!(found.origin, Origin::Queue);
        assert_eq!(
            serde_json::to_value(RematchStatus::Started {
                match_id: "m2".into()
            })
            .unwrap(),
            serde_json::json!({"state": "started", "match_id": "m2"})
        );
    }
}
