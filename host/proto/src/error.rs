//! The stable error codes every role answers with, and clients branch on.
//!
//! A refusal travels as `{"error": {"code": "<code>", "message": "..."}}`;
//! the code is one of these, in snake case. Clients (the gateway, the web
//! page, the Next.js app) branch on the code, never on the message. The
//! gateway maps each to an HTTP status (PROTOCOL.md has the table).

use serde::{Deserialize, Serialize};

/// Every error code, whichever role chose it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // The request itself.
    /// Not the expected JSON shape, or a bad value.
    BadRequest,
    /// Not JSON at all (gateway).
    MalformedJson,
    /// Over a size limit.
    TooLarge,
    /// A subject or route nobody serves.
    UnknownEndpoint,
    /// A route that exists, asked with a method it does not take (gateway).
    MethodNotAllowed,
    // Who asks.
    /// No valid token (gateway).
    Unauthorized,
    /// A valid user who may not do this (gateway).
    Forbidden,
    /// The acting player is not in that match.
    NotAPlayer,
    /// The player did not play in that match (rematch).
    NotInMatch,
    /// Over a rate limit (gateway).
    RateLimited,
    /// A WebSocket session follows too many matches at once (gateway).
    TooManySubscriptions,
    // What is asked for.
    /// Nothing there (gateway).
    NotFound,
    UnknownMode,
    /// The mode takes no new matches (retired, or quarantined for faulting).
    ModeWithdrawn,
    UnknownMatch,
    /// No such player (profiles, history).
    UnknownUser,
    /// A history cursor this service did not make.
    BadCursor,
    UnknownRegion,
    UnknownCode,
    MatchExists,
    // The mode's refusals.
    NotYourTurn,
    GameOver,
    NothingToBank,
    UnknownAction,
    InvalidConfig,
    /// Another refusal of the mode's own.
    Rejected,
    // The player's state.
    AlreadyQueued,
    InMatch,
    /// A match is being made for this player.
    Matching,
    /// The player is waiting for a guest with an invite code.
    Hosting,
    CodeUsed,
    OwnCode,
    RematchExpired,
    OpponentBusy,
    // Friends and direct invites.
    /// A player asked something of themselves (befriend, invite).
    Yourself,
    /// The two are friends already.
    AlreadyFriends,
    /// The request was made already and still waits for an answer.
    AlreadyRequested,
    /// One of the two blocks the other.
    Blocked,
    /// Only friends (or players in the same match) may do this.
    NotFriends,
    /// No pending friend request from that player.
    NoRequest,
    /// Over the cap on friends (or pending requests).
    TooManyFriends,
    /// The invite was not made to this player, or no longer stands.
    NotInvited,
    /// The match kept changing while the action was applied; retry.
    Conflict,
    // The system.
    /// A dependency (Redis, NATS, a worker) is down or busy; retry later.
    Unavailable,
    /// A worker did not answer in time; retrying with the same request id is safe.
    Timeout,
    /// The mode failed (a trap, a limit): the match is unchanged.
    ModeFault,
    /// A bug.
    Internal,
    /// A code this build does not know (a newer peer's).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The code as it travels, e.g. `not_your_turn` (also a metric label).
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            BadRequest => "bad_request",
            MalformedJson => "malformed_json",
            TooLarge => "too_large",
            UnknownEndpoint => "unknown_endpoint",
            MethodNotAllowed => "method_not_allowed",
            Unauthorized => "unauthorized",
            Forbidden => "forbidden",
            NotAPlayer => "not_a_player",
            NotInMatch => "not_in_match",
            RateLimited => "rate_limited",
            TooManySubscriptions => "too_many_subscriptions",
            NotFound => "not_found",
            UnknownMode => "unknown_mode",
            ModeWithdrawn => "mode_withdrawn",
            UnknownMatch => "unknown_match",
            UnknownUser => "unknown_user",
            BadCursor => "bad_cursor",
            UnknownRegion => "unknown_region",
            UnknownCode => "unknown_code",
            MatchExists => "match_exists",
            NotYourTurn => "not_your_turn",
            GameOver => "game_over",
            NothingToBank => "nothing_to_bank",
            UnknownAction => "unknown_action",
            InvalidConfig => "invalid_config",
            Rejected => "rejected",
            AlreadyQueued => "already_queued",
            InMatch => "in_match",
            Matching => "matching",
            Hosting => "hosting",
            CodeUsed => "code_used",
            OwnCode => "own_code",
            RematchExpired => "rematch_expired",
            OpponentBusy => "opponent_busy",
            Yourself => "yourself",
            AlreadyFriends => "already_friends",
            AlreadyRequested => "already_requested",
            Blocked => "blocked",
            NotFriends => "not_friends",
            NoRequest => "no_request",
            TooManyFriends => "too_many_friends",
            NotInvited => "not_invited",
            Conflict => "conflict",
            Unavailable => "unavailable",
            Timeout => "timeout",
            ModeFault => "mode_fault",
            Internal => "internal",
            Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_travel_as_their_names_and_unknown_ones_are_kept_apart() {
        for code in [
            ErrorCode::NotYourTurn,
            ErrorCode::ModeFault,
            ErrorCode::Unavailable,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
        }
        let newer: ErrorCode = serde_json::from_str("\"a_code_from_the_future\"").unwrap();
        assert_eq!(newer, ErrorCode::Unknown);
    }
}
