//! Friends: requests, answers and lists, as the archiver answers them on
//! `dd.archive.friends.*` (see [`bus`](crate::bus)) and the gateway
//! forwards them. The links live in Firestore (`dashdice-archive`), one
//! document per side, so each player's list is one query.
//!
//! Every change is told to the players it concerns on their notice subject
//! ([`Notice::FriendRequest`](crate::queue::Notice::FriendRequest) and
//! the others), except that a block is never told to the blocked player:
//! to them the friendship just ended.

use serde::{Deserialize, Serialize};

/// The most friends (and pending requests, counted together) one player
/// may have.
pub const MAX_FRIENDS: usize = 200;

/// How one player stands towards another, as the first one's list shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FriendState {
    /// Both agreed.
    Friends,
    /// This player asked; the other has not answered.
    Outgoing,
    /// The other asked; this player has not answered.
    Incoming,
    /// This player blocks the other. (The blocked player's list shows
    /// nothing: they are not told.)
    Blocked,
}

impl FriendState {
    pub fn as_str(self) -> &'static str {
        match self {
            FriendState::Friends => "friends",
            FriendState::Outgoing => "outgoing",
            FriendState::Incoming => "incoming",
            FriendState::Blocked => "blocked",
        }
    }
}

/// What a player does about another (`dd.archive.friends.<verb>`): `uid`
/// acts, `other` is acted on → the link as `uid` now sees it
/// ([`FriendLink`]), or `null` when none is left (decline, remove, unblock).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FriendAction {
    pub uid: String,
    pub other: String,
}

/// A player's list (`dd.archive.friends.list`, `{"uid"}`) → [`FriendList`].
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FriendListRequest {
    pub uid: String,
}

/// One entry of a player's list.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendLink {
    /// The other player.
    pub uid: String,
    pub state: FriendState,
    /// The other player's display name, if they chose one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// When the link took its state (ms since the epoch).
    pub since_ms: u64,
}

/// A player's friends, requests both ways and blocks, friends first, then
/// by `uid`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FriendList {
    pub links: Vec<FriendLink>,
}

impl FriendList {
    /// Whether the two are friends.
    pub fn is_friend(&self, other: &str) -> bool {
        self.links
            .iter()
            .any(|l| l.uid == other && l.state == FriendState::Friends)
    }

    /// The friends' ids.
    pub fn friends(&self) -> impl Iterator<Item = &str> {
        self.links
            .iter()
            .filter(|l| l.state == FriendState::Friends)
            .map(|l| l.uid.as_str())
    }
}
