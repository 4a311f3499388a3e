//! The archive's requests and replies: players' profiles and stats, match
//! history, archived matches and leaderboards, as the archiver answers them
//! on `dd.archive.*` (see [`bus`](crate::bus)) and the gateway forwards them.
//!
//! Everything here is read from Firestore (profiles, history, matches) or
//! from Redis sorted sets rebuilt from Firestore (leaderboards). The shapes
//! are what clients see, field for field.

use std::collections::BTreeMap;

use dashdice_mode_sdk::Standing;
use serde::{Deserialize, Serialize};

use crate::ErrorCode;
use crate::bus::{self, Answer, MatchIdRequest};
use crate::record::MatchRecord;

/// A request to the archiver, one variant per endpoint.
#[derive(Clone, Debug)]
pub enum ArchiveRequest {
    Profile(ProfileRequest),
    Rename(RenameRequest),
    History(HistoryRequest),
    Match(MatchIdRequest),
    Leaderboard(LeaderboardRequest),
    /// `dd.archive.friends.list`.
    Friends(crate::friends::FriendListRequest),
    /// `dd.archive.friends.<verb>`: the endpoint (one of
    /// `archive_endpoint::FRIENDS_*` but the list) and the action.
    Befriend(&'static str, crate::friends::FriendAction),
}

/// The friends endpoints that change a link (all but the list), as
/// [`ArchiveRequest::Befriend`] names them.
pub const FRIEND_VERBS: [&str; 6] = [
    bus::archive_endpoint::FRIENDS_REQUEST,
    bus::archive_endpoint::FRIENDS_ACCEPT,
    bus::archive_endpoint::FRIENDS_DECLINE,
    bus::archive_endpoint::FRIENDS_REMOVE,
    bus::archive_endpoint::FRIENDS_BLOCK,
    bus::archive_endpoint::FRIENDS_UNBLOCK,
];

impl ArchiveRequest {
    /// Decodes `payload` as the request `endpoint` takes; the refusal to
    /// send otherwise (`too_large`, `bad_request`, `unknown_endpoint`).
    pub fn decode(endpoint: &str, payload: &[u8], max_bytes: usize) -> Result<Self, Answer> {
        use crate::bus::archive_endpoint as e;
        use crate::bus::decode_request as decode;
        let max = max_bytes;
        Ok(match endpoint {
            e::PROFILE => ArchiveRequest::Profile(decode(payload, max)?),
            e::RENAME => ArchiveRequest::Rename(decode(payload, max)?),
            e::HISTORY => ArchiveRequest::History(decode(payload, max)?),
            e::MATCH => ArchiveRequest::Match(decode(payload, max)?),
            e::LEADERBOARD => ArchiveRequest::Leaderboard(decode(payload, max)?),
            e::FRIENDS_LIST => ArchiveRequest::Friends(decode(payload, max)?),
            other => match FRIEND_VERBS.iter().find(|verb| **verb == other) {
                Some(verb) => ArchiveRequest::Befriend(verb, decode(payload, max)?),
                None => return Err(bus::refuse(ErrorCode::UnknownEndpoint, other)),
            },
        })
    }
}

/// The longest display name, in characters.
pub const MAX_DISPLAY_NAME: usize = 32;
/// The most entries one history page or leaderboard answer holds.
pub const MAX_PAGE: u32 = 100;
/// A page's size when the caller names none.
pub const DEFAULT_PAGE: u32 = 20;

/// Why a display name is refused, if it is.
pub fn display_name_problem(name: &str) -> Option<String> {
    let trimmed = name.trim();
    let chars = trimmed.chars().count();
    if trimmed.is_empty() {
        return Some("a display name cannot be empty".into());
    }
    if chars > MAX_DISPLAY_NAME {
        return Some(format!(
            "a display name has at most {MAX_DISPLAY_NAME} characters (this one has {chars})"
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Some("a display name cannot contain control characters".into());
    }
    None
}

/// `{"uid": ...}`: one player's profile.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileRequest {
    pub uid: String,
}

/// `{"uid": ..., "display_name": ...}`: a player renames themselves.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    pub uid: String,
    pub display_name: String,
}

/// A player's public profile: name and stats.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub uid: String,
    /// The player's chosen name; `None` until they choose one.
    #[serde(default)]
    pub display_name: Option<String>,
    /// When the player's first match was archived or they first named
    /// themselves (ms since the Unix epoch).
    #[serde(default)]
    pub created_ms: u64,
    /// Empty until the player's first match is archived.
    #[serde(default)]
    pub stats: MatchmakingStats,
}

/// The seed's `matchmakingStats`: totals over every mode, per mode, and the
/// modes the player plays most.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MatchmakingStats {
    pub overall: ModeStats,
    #[serde(default)]
    pub modes: BTreeMap<String, ModeStats>,
    /// Modes by matches played, most first (at most three).
    #[serde(default)]
    pub preferred_modes: Vec<String>,
}

/// A player's figures in one mode (or overall).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModeStats {
    pub matches: u64,
    pub wins: u64,
    pub losses: u64,
    pub draws: u64,
    /// Void matches (no result) are counted here and in nothing else.
    #[serde(default)]
    pub voids: u64,
    /// `wins / (wins + losses + draws)`, 0 before any result.
    pub win_rate: f64,
    /// Mean match length in ms.
    pub average_match_ms: u64,
    /// Sum of match lengths in ms (what the mean is kept from).
    pub total_match_ms: u64,
    /// Ranked play in this mode (per mode only; `None` overall and before
    /// the first rated match).
    #[serde(default)]
    pub rating: Option<RatingFigures>,
}

/// A Glicko-2 rating as players see it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RatingFigures {
    pub rating: f64,
    pub deviation: f64,
    pub volatility: f64,
    /// Rated matches played; also the version of this rating (it only grows).
    pub games: u64,
    pub best: f64,
    /// The season of the player's last rated match in the mode: they are on
    /// that season's leaderboard.
    #[serde(default)]
    pub season: Option<String>,
}

/// `{"uid", "limit"?, "cursor"?}`: a page of a player's history.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    pub uid: String,
    #[serde(default)]
    pub limit: Option<u32>,
    /// The `next_cursor` of the page before; none for the newest page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A page of history, newest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryPage {
    pub entries: Vec<HistoryEntry>,
    /// Where the next (older) page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// One match in a player's history.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub match_id: String,
    pub mode: String,
    pub ranked: bool,
    pub ended_ms: u64,
    pub duration_ms: u64,
    /// `win`, `loss`, `draw` or `void`.
    pub result: String,
    pub score: i32,
    pub rank: u32,
    pub opponents: Vec<String>,
    /// The player's rating in the mode before and after (ranked matches).
    #[serde(default)]
    pub rating_before: Option<f64>,
    #[serde(default)]
    pub rating_after: Option<f64>,
}

/// An archived match: its summary and the full record, which
/// `dashdice match verify` checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArchivedMatch {
    pub match_id: String,
    pub mode: String,
    pub ranked: bool,
    pub players: Vec<String>,
    pub standings: Vec<Standing>,
    pub started_ms: u64,
    pub ended_ms: u64,
    pub duration_ms: u64,
    /// How it ended: `finished`, `forfeit`, `timeout` or `void`.
    pub reason: String,
    /// The season whose leaderboard it counted for (ranked matches).
    #[serde(default)]
    pub season: Option<String>,
    /// Each rated player's rating before and after.
    #[serde(default)]
    pub rating_changes: Vec<RatingChange>,
    pub record: MatchRecord,
}

/// One player's rating before and after a ranked match.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RatingChange {
    pub player: String,
    pub before: f64,
    pub after: f64,
    /// The player's rated games in the mode after this one.
    pub games: u64,
}

/// `{"mode", "limit"?, "around"?}`: a mode's leaderboard this season, the top
/// `limit`, or `limit` entries centred on `around`'s rank.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaderboardRequest {
    pub mode: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub around: Option<String>,
}

/// A leaderboard page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    pub mode: String,
    pub season: String,
    /// Ranked players this season.
    pub total: u64,
    pub entries: Vec<LeaderboardEntry>,
    /// `around`'s own entry, if they are on the board.
    #[serde(default)]
    pub me: Option<LeaderboardEntry>,
}

/// One row: rank 1 is the highest rating.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LeaderboardEntry {
    pub rank: u64,
    pub uid: String,
    #[serde(default)]
    pub display_name: Option<String>,
    pub rating: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_checked() {
        assert!(display_name_problem("Ann").is_none());
        assert!(display_name_problem("  ").is_some());
        assert!(display_name_problem(&"x".repeat(33)).is_some());
        assert!(
            display_name_problem(&"é".repeat(32)).is_none(),
            "characters, not bytes"
        );
        assert!(display_name_problem("a\u{0}b").is_some());
    }
}
