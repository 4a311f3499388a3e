//! `dd.archive.*`: profiles, renames, history pages, archived matches,
//! leaderboards and friends (`dd.archive.friends.*`, in
//! [`friends`](crate::friends)), on the shared endpoint loop. Every answer
//! comes from the archive (Firestore) except leaderboards, which come from
//! Redis (and their names from the archive).

use std::sync::Arc;

use dashdice_archive::ArchiveError;
use dashdice_proto::archive::{
    ArchiveRequest, DEFAULT_PAGE, HistoryRequest, Leaderboard, LeaderboardRequest, MAX_PAGE,
    Profile, RenameRequest, display_name_problem,
};
use dashdice_proto::bus::{self, archive_endpoint};
use dashdice_proto::ids::valid_id;
use dashdice_proto::{ErrorCode, bus::Answer};
use dashdice_service::endpoints::{Endpoints, Service};
use dashdice_service::telemetry::names;
use serde::Serialize;

use crate::{Archiver, boards};

/// Largest request payload accepted.
pub const MAX_REQUEST_BYTES: usize = 4 << 10;

/// The archiver's micro service.
pub const SERVICE: Service = Service {
    name: bus::ARCHIVER_SERVICE,
    description: "DashDice archive: profiles, stats, match history, archived matches, leaderboards, friends",
    queue_group: bus::ARCHIVER_QUEUE_GROUP,
    group: bus::ARCHIVE_GROUP,
    endpoints: &[
        archive_endpoint::PROFILE,
        archive_endpoint::RENAME,
        archive_endpoint::HISTORY,
        archive_endpoint::MATCH,
        archive_endpoint::LEADERBOARD,
        archive_endpoint::FRIENDS_LIST,
        archive_endpoint::FRIENDS_REQUEST,
        archive_endpoint::FRIENDS_ACCEPT,
        archive_endpoint::FRIENDS_DECLINE,
        archive_endpoint::FRIENDS_REMOVE,
        archive_endpoint::FRIENDS_BLOCK,
        archive_endpoint::FRIENDS_UNBLOCK,
    ],
    requests_metric: names::ARCHIVE_REQUESTS,
    seconds_metric: names::ARCHIVE_REQUEST_SECONDS,
    max_in_flight: None,
};

/// A refusal: its code and message.
pub(crate) struct Refusal(pub(crate) ErrorCode, pub(crate) String);

impl From<ArchiveError> for Refusal {
    fn from(e: ArchiveError) -> Self {
        match e {
            ArchiveError::BadCursor(c) => Refusal(
                ErrorCode::BadCursor,
                format!(
                    "{c:?} is not a cursor from this history; pass a page's next_cursor, or none for the newest page"
                ),
            ),
            e => {
                tracing::warn!(error = %e, "the archive failed");
                Refusal(
                    ErrorCode::Unavailable,
                    format!("the archive is unavailable: {e}"),
                )
            }
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.1)
    }
}

fn respond<T: Serialize>(result: Result<T, Refusal>) -> Answer {
    bus::answer(result, |r| r.0)
}

pub(crate) fn bad(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal(code, message.into())
}

/// The archiver on the bus: what it shares, the connection it tells
/// players on (friends' notices, `dd.user.<uid>.notify`), and where it asks
/// for notifications (none in tests that run no notifier).
pub struct Archives {
    pub archiver: Arc<Archiver>,
    pub notices: async_nats::Client,
    pub notifications: Option<dashdice_proto::client::Notifications>,
}

impl Endpoints for Archives {
    fn span(&self, endpoint: &'static str) -> tracing::Span {
        tracing::info_span!("archive request", endpoint, outcome = tracing::field::Empty)
    }

    async fn handle(&self, endpoint: &'static str, payload: &[u8]) -> Answer {
        match ArchiveRequest::decode(endpoint, payload, MAX_REQUEST_BYTES) {
            Err(refusal) => refusal,
            Ok(ArchiveRequest::Profile(r)) => respond(self.profile(&r.uid).await),
            Ok(ArchiveRequest::Rename(r)) => respond(self.rename(&r).await),
            Ok(ArchiveRequest::History(r)) => respond(self.history(&r).await),
            Ok(ArchiveRequest::Match(r)) => respond(self.archived_match(&r.match_id).await),
            Ok(ArchiveRequest::Leaderboard(r)) => respond(self.leaderboard(&r).await),
            Ok(ArchiveRequest::Friends(r)) => respond(self.friend_list(&r).await),
            Ok(ArchiveRequest::Befriend(endpoint, r)) => respond(self.befriend(endpoint, &r).await),
        }
    }
}

impl Archives {
    async fn profile(&self, uid: &str) -> Result<Profile, Refusal> {
        if !valid_id(uid) {
            return Err(bad(
                ErrorCode::BadRequest,
                format!("{uid:?} is not a user id"),
            ));
        }
        self.archiver.archive.profile(uid).await?.ok_or_else(|| {
            bad(
                ErrorCode::UnknownUser,
                format!("no player {uid:?} has played or named themselves here"),
            )
        })
    }

    async fn rename(&self, r: &RenameRequest) -> Result<Profile, Refusal> {
        if !valid_id(&r.uid) {
            return Err(bad(
                ErrorCode::BadRequest,
                format!("{:?} is not a user id", r.uid),
            ));
        }
        if let Some(problem) = display_name_problem(&r.display_name) {
            return Err(bad(ErrorCode::BadRequest, problem));
        }
        let now = self.archiver.clock.now_ms();
        Ok(self
            .archiver
            .archive
            .rename(&r.uid, &r.display_name, now)
            .await?)
    }

    async fn history(
        &self,
        r: &HistoryRequest,
    ) -> Result<dashdice_proto::archive::HistoryPage, Refusal> {
        if !valid_id(&r.uid) {
            return Err(bad(
                ErrorCode::BadRequest,
                format!("{:?} is not a user id", r.uid),
            ));
        }
        let limit = page_limit(r.limit)?;
        Ok(self
            .archiver
            .archive
            .history(&r.uid, limit, r.cursor.as_deref())
            .await?)
    }

    async fn archived_match(
        &self,
        match_id: &str,
    ) -> Result<dashdice_proto::archive::ArchivedMatch, Refusal> {
        if !valid_id(match_id) {
            return Err(bad(
                ErrorCode::BadRequest,
                format!("{match_id:?} is not a match id"),
            ));
        }
        self.archiver.archive.archived_match(match_id).await?.ok_or_else(|| {
            bad(
                ErrorCode::UnknownMatch,
                format!("no match {match_id:?} is archived (a match is archived within seconds of its end)"),
            )
        })
    }

    async fn leaderboard(&self, r: &LeaderboardRequest) -> Result<Leaderboard, Refusal> {
        if !valid_id(&r.mode) {
            return Err(bad(
                ErrorCode::UnknownMode,
                format!("{:?} is not a mode id", r.mode),
            ));
        }
        if let Some(uid) = &r.around
            && !valid_id(uid)
        {
            return Err(bad(
                ErrorCode::BadRequest,
                format!("{uid:?} is not a user id"),
            ));
        }
        let limit = page_limit(r.limit)?;
        let season = self
            .archiver
            .archive
            .seasons()
            .at(self.archiver.clock.now_ms());
        let (total, mut entries, mut me) = boards::page(
            &self.archiver.boards,
            &season,
            &r.mode,
            u64::from(limit),
            r.around.as_deref(),
        )
        .await
        .map_err(|e| {
            bad(
                ErrorCode::Unavailable,
                format!("the leaderboards are unavailable: {e}"),
            )
        })?;
        // Names are a decoration: without Firestore the board still answers.
        let uids: Vec<String> = entries.iter().map(|e| e.uid.clone()).collect();
        match self.archiver.archive.names(&uids).await {
            Ok(names) => {
                for entry in entries.iter_mut().chain(me.iter_mut()) {
                    entry.display_name = names.get(&entry.uid).cloned();
                }
            }
            Err(e) => tracing::debug!(error = %e, "leaderboard names unavailable"),
        }
        Ok(Leaderboard {
            mode: r.mode.clone(),
            season,
            total,
            entries,
            me,
        })
    }
}

fn page_limit(limit: Option<u32>) -> Result<u32, Refusal> {
    match limit.unwrap_or(DEFAULT_PAGE) {
        0 => Err(bad(ErrorCode::BadRequest, "limit must be at least 1")),
        n if n > MAX_PAGE => Err(bad(
            ErrorCode::BadRequest,
            format!("limit is at most {MAX_PAGE}, got {n}"),
        )),
        n => Ok(n),
    }
}
