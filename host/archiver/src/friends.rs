//! `dd.archive.friends.*`: a player's list, and the six verbs that change
//! a link (`request`, `accept`, `decline`, `remove`, `block`, `unblock`).
//!
//! Wire format (see `dashdice_proto::friends`):
//!
//! | endpoint | request | answer |
//! |---|---|---|
//! | `friends.list` | `{"uid"}` | `{"links":[{"uid","state","display_name"?,"since_ms"}]}`, friends first, then by uid |
//! | `friends.<verb>` | `{"uid","other"}`: `uid` acts on `other` | the link as `uid` now sees it, or `null` when none is left |
//!
//! Each change is one Firestore transaction over both sides
//! ([`Archive::befriend`](dashdice_archive::Archive::befriend)). Only once
//! it is committed is the other player told, on `dd.user.<other>.notify`:
//!
//! | change | `other` is told |
//! |---|---|
//! | a request | `{"type":"friend_request","from":uid}` |
//! | a request that accepted theirs, an accept | `{"type":"friend_accepted","by":uid}` |
//! | a decline | `{"type":"friend_declined","by":uid}` |
//! | a removal, a withdrawn request, a block of a friend or of a request either way | `{"type":"friend_removed","by":uid}` |
//! | any other block, an unblock | nothing |
//!
//! A block is never told as a block. A notice is a hint to refresh: it is
//! published once, at most (a player who is not connected misses it and
//! reads their list later), and the list is the truth. A request and an
//! accept are also asked of the notifier (kinds `friend_request` and
//! `friend_accepted`, see [`crate::notify`]), in the background: it keeps
//! them in the player's inbox and pushes them when the player is away.
//!
//! Refusals: `bad_request` (an id that is not a user id), `yourself`,
//! `already_friends`, `already_requested`, `blocked`, `not_friends`,
//! `no_request`, `too_many_friends`, and `unavailable` when Firestore
//! failed. Every change and refusal is counted in
//! `dashdice_friend_changes_total{verb, outcome}`.

use dashdice_archive::friends::{FriendError, Verb};
use dashdice_proto::ErrorCode;
use dashdice_proto::bus::{self, archive_endpoint};
use dashdice_proto::friends::{FriendAction, FriendLink, FriendList, FriendListRequest};
use dashdice_proto::ids::valid_id;
use dashdice_proto::queue::Notice;
use dashdice_service::telemetry::names;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::service::{Archives, Refusal, bad};

/// The verb a friends endpoint names (`None` for the list, or any other).
pub fn verb(endpoint: &str) -> Option<Verb> {
    use archive_endpoint as e;
    Some(match endpoint {
        e::FRIENDS_REQUEST => Verb::Request,
        e::FRIENDS_ACCEPT => Verb::Accept,
        e::FRIENDS_DECLINE => Verb::Decline,
        e::FRIENDS_REMOVE => Verb::Remove,
        e::FRIENDS_BLOCK => Verb::Block,
        e::FRIENDS_UNBLOCK => Verb::Unblock,
        _ => return None,
    })
}

fn user_id(uid: &str) -> Result<(), Refusal> {
    if valid_id(uid) {
        Ok(())
    } else {
        Err(bad(
            ErrorCode::BadRequest,
            format!("{uid:?} is not a user id"),
        ))
    }
}

/// The refusal for `e`, `uid` having acted on `other`.
fn refusal(e: FriendError, uid: &str, other: &str) -> Refusal {
    let message = match &e {
        FriendError::BadId(id) => format!("{id:?} is not a user id"),
        FriendError::Yourself => "a player cannot befriend or block themselves".to_owned(),
        FriendError::AlreadyFriends => format!("{uid} and {other} are friends already"),
        FriendError::AlreadyRequested => format!(
            "{uid} asked {other} already; the request waits for their answer (remove it to withdraw it)"
        ),
        FriendError::Blocked => {
            format!("{uid} and {other} cannot be friends: one blocks the other")
        }
        FriendError::NotFriends => {
            format!("{uid} and {other} are not friends (answer a request with accept or decline)")
        }
        FriendError::NoRequest => format!("{other} has no pending friend request to {uid}"),
        FriendError::TooManyFriends { theirs, max } => {
            let who = if *theirs { other } else { uid };
            format!("{who} has {max} friends and pending requests already, the most allowed")
        }
        FriendError::Archive(archive) => {
            tracing::warn!(error = %archive, "the archive failed");
            format!("friends are unavailable: {archive}")
        }
    };
    Refusal(e.code(), message)
}

impl Archives {
    /// `dd.archive.friends.list`.
    pub(crate) async fn friend_list(&self, r: &FriendListRequest) -> Result<FriendList, Refusal> {
        user_id(&r.uid)?;
        self.archiver
            .archive
            .friends(&r.uid)
            .await
            .map_err(|e| refusal(e, &r.uid, ""))
    }

    /// `dd.archive.friends.<verb>`: the change, then the other player told.
    pub(crate) async fn befriend(
        &self,
        endpoint: &'static str,
        r: &FriendAction,
    ) -> Result<Option<FriendLink>, Refusal> {
        let Some(verb) = verb(endpoint) else {
            return Err(bad(ErrorCode::UnknownEndpoint, endpoint));
        };
        let counted = |outcome: &'static str| {
            metrics::counter!(names::FRIEND_CHANGES, "verb" => verb.as_str(), "outcome" => outcome)
                .increment(1);
        };
        if let Err(refused) = user_id(&r.uid).and_then(|()| user_id(&r.other)) {
            counted(refused.0.as_str());
            return Err(refused);
        }
        let now = self.archiver.clock.now_ms();
        match self
            .archiver
            .archive
            .befriend(verb, &r.uid, &r.other, now)
            .await
        {
            Ok(done) => {
                counted(done.outcome);
                if let Some((to, notice)) = &done.notice {
                    self.tell(to, notice).await;
                    let since_ms = done.link.as_ref().map_or(now, |l| l.since_ms);
                    if let Some(notifications) = &self.notifications
                        && let Some(request) =
                            crate::notify::for_friend_notice(to, notice, since_ms)
                    {
                        notifications.spawn(request);
                    }
                    // The actor's other sessions (tabs, devices, gateways)
                    // learn it too, so none keeps following the other.
                    if matches!(notice, Notice::FriendRemoved { .. }) {
                        let told = Notice::Unfriended { uid: to.clone() };
                        self.tell(&r.uid, &told).await;
                    }
                }
                Ok(done.link)
            }
            Err(e) => {
                let refused = refusal(e, &r.uid, &r.other);
                counted(refused.0.as_str());
                Err(refused)
            }
        }
    }

    /// Publishes `notice` to `to`, with the request's trace. The change is
    /// committed whatever happens here, so a failure is only logged.
    async fn tell(&self, to: &str, notice: &Notice) {
        let body = match serde_json::to_vec(notice) {
            Ok(body) => body,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode a notice");
                return;
            }
        };
        let headers = bus::trace_headers(&tracing::Span::current().context());
        if let Err(e) = self
            .notices
            .publish_with_headers(bus::user_notify(to), headers, body.into())
            .await
        {
            tracing::warn!(error = %e, to, "a friend notice was not published");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_verb_has_its_endpoint() {
        for v in Verb::ALL {
            let endpoint = format!("friends.{}", v.as_str());
            assert_eq!(verb(&endpoint), Some(v));
            assert!(
                crate::service::SERVICE
                    .endpoints
                    .contains(&endpoint.as_str()),
                "{endpoint} is not served"
            );
        }
        assert_eq!(verb(archive_endpoint::FRIENDS_LIST), None);
        assert_eq!(
            dashdice_proto::archive::FRIEND_VERBS.map(|e| verb(e).map(Verb::as_str)),
            Verb::ALL.map(|v| Some(v.as_str()))
        );
    }
}
