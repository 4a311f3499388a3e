//! The documents, as Firestore stores them. `docs/archive.md` maps them to
//! the seed's collections.
//!
//! | path | document |
//! |---|---|
//! | `matches/{match_id}` | [`MatchDoc`]: summary fields plus the record as the host wrote it |
//! | `users/{uid}` | [`Profile`](dashdice_proto::archive::Profile): display name and `stats` (the seed's `matchmakingStats`) |
//! | `users/{uid}/matches/{match_id}` | [`HistoryDoc`]: one history entry, ordered by `sort_key` |

use dashdice_mode_sdk::Standing;
use dashdice_proto::archive::{ArchivedMatch, HistoryEntry, RatingChange};
use serde::{Deserialize, Serialize};

pub const MATCHES: &str = "matches";
pub const USERS: &str = "users";
/// The history subcollection under each user.
pub const HISTORY: &str = "matches";

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
