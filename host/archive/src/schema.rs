//! The documents, as Firestore stores them. `docs/archive.md` maps them to
//! the seed's collections.
//!
//! | path | document |
//! |---|---|
//! | `matches/{match_id}` | [`MatchDoc`]: summary fields plus the record as the host wrote it |
//! | `users/{uid}` | [`Profile`](dashdice_proto::archive::Profile): display name and `stats` (the seed's `matchmakingStats`) |
//! | `users/{uid}/matches/{match_id}` | [`HistoryDoc`]: one history entry, ordered by `sort_key` |
//! | `friends/{uid}` | [`FriendsDoc`]: how many friends and pending requests `uid` has (the cap's counter) |
//! | `friends/{uid}/links/{other}` | [`LinkDoc`]: how `uid` stands towards `other`; the other side is `friends/{other}/links/{uid}` |

use dashdice_mode_sdk::Standing;
use dashdice_proto::archive::{ArchivedMatch, HistoryEntry, RatingChange};
use dashdice_proto::friends::FriendState;
use serde::{Deserialize, Serialize};

pub const MATCHES: &str = "matches";
pub const USERS: &str = "users";
/// The history subcollection under each user.
pub const HISTORY: &str = "matches";
/// Friends: one counter document per player, over its `links`.
pub const FRIENDS: &str = "friends";
/// The links subcollection under each `friends/{uid}`: one document per
/// other player `uid` has anything to do with.
pub const LINKS: &str = "links";

/// An archived match. The record is kept as the exact JSON the match host
/// wrote (`record_json`), so `dashdice match verify` checks the very bytes
/// the host produced; the other fields are for reading and querying.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MatchDoc {
    pub match_id: String,
    pub mode: String,
    /// The mode version's SHA-256, hex.
    pub mode_version: String,
    pub ranked: bool,
    pub players: Vec<String>,
    #[serde(default)]
    pub bots: Vec<String>,
    pub standings: Vec<Standing>,
    pub started_ms: u64,
    pub ended_ms: u64,
    pub duration_ms: u64,
    pub reason: String,
    #[serde(default)]
    pub season: Option<String>,
    #[serde(default)]
    pub rating_changes: Vec<RatingChange>,
    pub seed_hash: String,
    pub seed: String,
    /// How many actions the record holds.
    pub actions: u64,
    pub record_json: String,
    pub archived_ms: u64,
}

impl MatchDoc {
    /// The match as clients see it; `None` if the stored record is not a
    /// record (written by something else).
    pub fn archived(self) -> Option<ArchivedMatch> {
        let record = serde_json::from_str(&self.record_json).ok()?;
        Some(ArchivedMatch {
            match_id: self.match_id,
            mode: self.mode,
            ranked: self.ranked,
            players: self.players,
            standings: self.standings,
            started_ms: self.started_ms,
            ended_ms: self.ended_ms,
            duration_ms: self.duration_ms,
            reason: self.reason,
            season: self.season,
            rating_changes: self.rating_changes,
            record,
        })
    }
}

/// One match in a user's history. `sort_key` orders the history newest
/// first with one single-field index: the end time, zero-padded, then the
/// match id (unique), e.g. `0001764752400123~m-4f2a`. It is also the page
/// cursor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryDoc {
    pub sort_key: String,
    pub entry: HistoryEntry,
}

impl HistoryDoc {
    pub fn new(entry: HistoryEntry) -> Self {
        HistoryDoc {
            sort_key: sort_key(entry.ended_ms, &entry.match_id),
            entry,
        }
    }
}

pub fn sort_key(ended_ms: u64, match_id: &str) -> String {
    format!("{ended_ms:016}~{match_id}")
}

/// Whether `cursor` is a sort key this archive made.
pub fn valid_cursor(cursor: &str) -> bool {
    cursor.split_once('~').is_some_and(|(ms, id)| {
        ms.len() == 16
            && ms.bytes().all(|b| b.is_ascii_digit())
            && dashdice_proto::ids::valid_id(id)
    })
}

/// How one player stands towards another, as stored on the first one's
/// side (`friends/{uid}/links/{other}`). Always written together with the
/// other side, in one transaction ([`crate::friends`]); the pairs that
/// occur are `friends`/`friends`, `outgoing`/`incoming`,
/// `blocked`/`blocked_by` and `blocked`/`blocked`. No document at all
/// means the two have nothing to do with each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Friends,
    /// `uid` asked `other` to be friends.
    Outgoing,
    /// `other` asked `uid`.
    Incoming,
    /// `uid` blocks `other`.
    Blocked,
    /// `other` blocks `uid` (and `uid` does not block `other`). Stored so
    /// that `uid`'s requests are refused, but never shown to `uid`: a
    /// blocked player is not told.
    BlockedBy,
}

impl LinkState {
    /// Whether the link counts towards the cap on friends and pending
    /// requests ([`dashdice_proto::friends::MAX_FRIENDS`]); blocks do not.
    pub fn counted(self) -> bool {
        matches!(
            self,
            LinkState::Friends | LinkState::Outgoing | LinkState::Incoming
        )
    }

    /// The state `uid`'s list shows; `None` for `blocked_by`, which it
    /// hides.
    pub fn shown(self) -> Option<FriendState> {
        match self {
            LinkState::Friends => Some(FriendState::Friends),
            LinkState::Outgoing => Some(FriendState::Outgoing),
            LinkState::Incoming => Some(FriendState::Incoming),
            LinkState::Blocked => Some(FriendState::Blocked),
            LinkState::BlockedBy => None,
        }
    }
}

/// `friends/{uid}/links/{other}`: one side of a link.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkDoc {
    /// The other player (also the document id).
    pub other: String,
    pub state: LinkState,
    /// When this side took its state (ms since the epoch).
    pub since_ms: u64,
}

/// `friends/{uid}`: the number of `uid`'s links whose state is
/// [`counted`](LinkState::counted), kept in the same transactions that
/// write the links, so the cap costs one document read instead of a query
/// over the whole list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendsDoc {
    pub uid: String,
    pub count: u32,
}

/// Whether Firestore takes `id` as a document id, beyond
/// [`valid_id`](dashdice_proto::ids::valid_id): Firestore reserves ids
/// of the form `__…__`.
pub fn storable_id(id: &str) -> bool {
    dashdice_proto::ids::valid_id(id)
        && !(id.len() >= 4 && id.starts_with("__") && id.ends_with("__"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_sort_keys() {
        let key = sort_key(1_764_752_400_123, "m-4f2a");
        assert_eq!(key, "0001764752400123~m-4f2a");
        assert!(valid_cursor(&key));
        for bad in [
            "",
            "123~m",
            "0001764752400123",
            "000176475240012x~m",
            "0001764752400123~",
        ] {
            assert!(!valid_cursor(bad), "{bad}");
        }
    }
}
