//! dashdice-archive: all of dashdice's Firestore.
//!
//! - [`Archive`]: archives a finished match (once), and reads profiles,
//!   history pages and archived matches back.
//! - [`ledger`]: the pure accounting a match makes (stats, Glicko-2
//!   ratings, history entries, seasons).
//! - [`friends`]: friend requests, answers, removals and blocks, one
//!   transaction per change over both players' sides
//!   ([`Archive::befriend`], [`Archive::friends`]).
//! - [`schema`]: the documents and their paths.
//!
//! **Architecture Invariant:** this is the only crate that knows Firestore
//! (Cargo and `tests/tidy.rs` check it). It knows no NATS and no Redis.
//!
//! ## Exactly once
//!
//! [`Archive::archive`] is one Firestore transaction: it reads
//! `matches/{match_id}`; if the document exists, the match was archived
//! before and nothing is written. Otherwise it reads the players' profiles,
//! and writes the match (with the precondition that it does not exist), the
//! new profiles and the history entries together. Firestore serialises
//! transactions that read the same document: of two archivers racing on one
//! match, the second's commit fails (ABORTED, or the precondition) and its
//! retry finds the match archived. A commit whose answer was lost is retried
//! the same way. So however often a record is delivered, its match is
//! counted once.

mod emulator;
pub mod friends;
pub mod ledger;
pub mod schema;

use std::collections::BTreeMap;
use std::time::Duration;

use dashdice_proto::archive::{ArchivedMatch, HistoryPage, Profile};
use dashdice_proto::record::MatchRecord;
use firestore::{
    FirestoreConsistencySelector, FirestoreDb, FirestoreDbOptions, FirestoreQueryCursor,
    FirestoreWritePrecondition,
};
use futures_util::StreamExt;

use crate::ledger::{Entry, Seasons};
use crate::schema::{HISTORY, HistoryDoc, MATCHES, MatchDoc, USERS};

/// Why the archive could not answer.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// Firestore refused or did not answer; worth retrying later.
    #[error("firestore: {0}")]
    Firestore(#[from] firestore::errors::FirestoreError),
    #[error("a history cursor this archive did not make: {0:?}")]
    BadCursor(String),
    #[error("cannot encode the record: {0}")]
    Encode(String),
}

/// Where Firestore is.
#[derive(Clone, Debug)]
pub struct FirestoreConfig {
    /// The Google Cloud project.
    pub project: String,
    /// `host:port` of an emulator; `None` for Google's service, with the
    /// usual Google credentials (`GOOGLE_APPLICATION_CREDENTIALS`, the
    /// metadata server, ...).
    pub emulator: Option<String>,
    /// The longest one request waits.
    pub timeout: Duration,
}

/// What archiving a record did.
#[derive(Clone, Debug, PartialEq)]
pub enum Archived {
    /// The match is archived now, by this call.
    Now(Box<MatchDoc>, Vec<Profile>),
    /// It was archived before (a redelivery, or another archiver).
    Before(Box<MatchDoc>),
}

impl Archived {
    pub fn document(&self) -> &MatchDoc {
        match self {
            Archived::Now(doc, _) | Archived::Before(doc) => doc,
        }
    }
}

/// Firestore, as dashdice uses it.
#[derive(Clone)]
pub struct Archive {
    db: FirestoreDb,
    seasons: Seasons,
    /// The cap on friends and pending requests per player.
    max_friends: usize,
}

impl Archive {
    pub async fn connect(config: &FirestoreConfig, seasons: Seasons) -> Result<Self, ArchiveError> {
        let mut options = FirestoreDbOptions::new(config.project.clone())
            .with_request_timeout(config.timeout)
            .with_max_retries(1);
        let db = match &config.emulator {
            Some(host) => {
                options = options.with_firebase_api_url(format!("http://{host}"));
                FirestoreDb::with_options_auth(options, emulator::credentials()).await?
            }
            None => FirestoreDb::with_options(options).await?,
        };
        Ok(Archive {
            db,
            seasons,
            max_friends: dashdice_proto::friends::MAX_FRIENDS,
        })
    }

    pub fn seasons(&self) -> &Seasons {
        &self.seasons
    }

    /// Archives a finished match once (see the crate's doc). Retries a
    /// transaction that lost a race a few times; any other failure is
    /// returned and nothing is written.
    pub async fn archive(
        &self,
        record: &MatchRecord,
        now_ms: u64,
    ) -> Result<Archived, ArchiveError> {
        let json =
            serde_json::to_string(record).map_err(|e| ArchiveError::Encode(e.to_string()))?;
        self.archive_as(record, &json, now_ms).await
    }

    /// [`archive`](Self::archive), keeping `json` (the record as it came,
    /// which `record` was decoded from) as the archived record, so a field
    /// this version does not know is kept too.
    pub async fn archive_as(
        &self,
        record: &MatchRecord,
        json: &str,
        now_ms: u64,
    ) -> Result<Archived, ArchiveError> {
        let mut tries = 0;
        loop {
            tries += 1;
            match self.archive_once(record, json, now_ms).await {
                Err(ArchiveError::Firestore(e)) if tries < 6 && contended(&e) => {
                    tokio::time::sleep(jitter(Duration::from_millis(50 * tries))).await;
                }
                other => return other,
            }
        }
    }

    async fn archive_once(
        &self,
        record: &MatchRecord,
        json: &str,
        now_ms: u64,
    ) -> Result<Archived, ArchiveError> {
        let mut tx = self.db.begin_transaction().await?;
        let read =
            self.db
                .clone_with_consistency_selector(FirestoreConsistencySelector::Transaction(
                    tx.transaction_id().clone(),
                ));
        let done = async {
            let existing: Option<MatchDoc> = read
                .fluent()
                .select()
                .by_id_in(MATCHES)
                .obj()
                .one(&record.match_id)
                .await?;
            if let Some(doc) = existing {
                return Ok(Err(doc));
            }
            // In one order everywhere: transactions lock what they read, and
            // two that take two players' documents in opposite orders would
            // wait on each other until one times out.
            let mut humans: Vec<&String> = record
                .players
                .iter()
                .filter(|p| !record.bots.contains(p))
                .collect();
            humans.sort();
            humans.dedup();
            let mut current: BTreeMap<String, Option<Profile>> = BTreeMap::new();
            let mut found = read
                .fluent()
                .select()
                .by_id_in(USERS)
                .obj::<Profile>()
                .batch(humans.iter().map(|p| p.as_str()))
                .await?;
            while let Some((uid, profile)) = found.next().await {
                current.insert(uid, profile);
            }
            Ok::<_, firestore::errors::FirestoreError>(Ok(ledger::enter(
                record,
                json.to_owned(),
                &current,
                &self.seasons,
                now_ms,
            )))
        }
        .await;
        let entry: Entry = match done {
            Ok(Ok(entry)) => entry,
            Ok(Err(doc)) => {
                let _ = tx.rollback().await;
                return Ok(Archived::Before(Box::new(doc)));
            }
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e.into());
            }
        };
        let writes = (|| {
            self.db
                .fluent()
                .update()
                .in_col(MATCHES)
                .precondition(FirestoreWritePrecondition::Exists(false))
                .document_id(&entry.matched.match_id)
                .object(&entry.matched)
                .add_to_transaction(&mut tx)?;
            for profile in &entry.profiles {
                // Only what the ledger owns: a rename at the same moment
                // keeps its name.
                self.db
                    .fluent()
                    .update()
                    .fields(["uid", "created_ms", "stats"])
                    .in_col(USERS)
                    .document_id(&profile.uid)
                    .object(profile)
                    .add_to_transaction(&mut tx)?;
            }
            for (uid, doc) in &entry.history {
                self.db
                    .fluent()
                    .update()
                    .in_col(HISTORY)
                    .document_id(&entry.matched.match_id)
                    .parent(self.db.parent_path(USERS, uid)?)
                    .object(doc)
                    .add_to_transaction(&mut tx)?;
            }
            Ok::<_, firestore::errors::FirestoreError>(())
        })();
        if let Err(e) = writes {
            let _ = tx.rollback().await;
            return Err(e.into());
        }
        tx.commit().await?;
        Ok(Archived::Now(Box::new(entry.matched), entry.profiles))
    }

    /// A player's profile, if they have one.
    pub async fn profile(&self, uid: &str) -> Result<Option<Profile>, ArchiveError> {
        Ok(self
            .db
            .fluent()
            .select()
            .by_id_in(USERS)
            .obj()
            .one(uid)
            .await?)
    }

    /// Sets a player's display name (creating the profile if need be) and
    /// returns the profile. Only the name fields are written, so stats
    /// archived at the same moment are kept.
    pub async fn rename(
        &self,
        uid: &str,
        name: &str,
        now_ms: u64,
    ) -> Result<Profile, ArchiveError> {
        let existing = self.profile(uid).await?;
        let mut profile = existing.clone().unwrap_or_else(|| Profile {
            uid: uid.to_owned(),
            created_ms: now_ms,
            ..Profile::default()
        });
        profile.display_name = Some(name.trim().to_owned());
        let fields: &[&str] = if existing.is_some() {
            &["display_name"]
        } else {
            &["uid", "display_name", "created_ms"]
        };
        let _: Profile = self
            .db
            .fluent()
            .update()
            .fields(fields.iter().copied())
            .in_col(USERS)
            .document_id(uid)
            .object(&profile)
            .execute()
            .await?;
        Ok(self.profile(uid).await?.unwrap_or(profile))
    }

    /// A page of `uid`'s history, newest first, starting after `cursor`.
    pub async fn history(
        &self,
        uid: &str,
        limit: u32,
        cursor: Option<&str>,
    ) -> Result<HistoryPage, ArchiveError> {
        let mut query = self
            .db
            .fluent()
            .select()
            .from(HISTORY)
            .parent(self.db.parent_path(USERS, uid)?)
            .order(|o| o.fields([o.field("sort_key").desc()]))
            .limit(limit + 1);
        if let Some(cursor) = cursor {
            if !schema::valid_cursor(cursor) {
                return Err(ArchiveError::BadCursor(cursor.to_owned()));
            }
            query = query.start_at(FirestoreQueryCursor::AfterValue(vec![cursor.into()]));
        }
        let mut docs: Vec<HistoryDoc> = query.obj().query().await?;
        let more = docs.len() > limit as usize;
        docs.truncate(limit as usize);
        Ok(HistoryPage {
            next_cursor: more
                .then(|| docs.last().map(|d| d.sort_key.clone()))
                .flatten(),
            entries: docs.into_iter().map(|d| d.entry).collect(),
        })
    }

    /// An archived match, if it is archived.
    pub async fn archived_match(
        &self,
        match_id: &str,
    ) -> Result<Option<ArchivedMatch>, ArchiveError> {
        let doc: Option<MatchDoc> = self
            .db
            .fluent()
            .select()
            .by_id_in(MATCHES)
            .obj()
            .one(match_id)
            .await?;
        Ok(doc.and_then(MatchDoc::archived))
    }

    /// The display names of those of `uids` who have one.
    pub async fn names(&self, uids: &[String]) -> Result<BTreeMap<String, String>, ArchiveError> {
        let mut names = BTreeMap::new();
        if uids.is_empty() {
            return Ok(names);
        }
        let mut found = self
            .db
            .fluent()
            .select()
            .fields(["display_name"])
            .by_id_in(USERS)
            .obj::<NameOnly>()
            .batch(uids.iter().map(String::as_str))
            .await?;
        while let Some((uid, doc)) = found.next().await {
            if let Some(name) = doc.and_then(|d| d.display_name) {
                names.insert(uid, name);
            }
        }
        Ok(names)
    }

    /// Every profile, in document order, streamed a page at a time: for
    /// rebuilding Redis from the record.
    pub async fn profiles(
        &self,
    ) -> Result<futures_util::stream::BoxStream<'_, Result<Profile, ArchiveError>>, ArchiveError>
    {
        let profiles = self
            .db
            .fluent()
            .select()
            .from(USERS)
            .obj::<Profile>()
            .stream_query_with_errors()
            .await?;
        Ok(profiles.map(|p| p.map_err(ArchiveError::from)).boxed())
    }
}

#[derive(serde::Deserialize)]
struct NameOnly {
    #[serde(default)]
    display_name: Option<String>,
}

/// Somewhere in `[max / 2, max)`: writers that met on one document and
/// were both turned away must not come back at the same moment again.
fn jitter(max: Duration) -> Duration {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let half = max / 2;
    half + Duration::from_nanos(u64::from(nanos) % half.as_nanos().max(1) as u64)
}

/// Whether a failure is two writers meeting on one document (or a commit
/// that timed out waiting for the other's lock), which a retry resolves.
/// Retrying is always safe here: the retry reads the match first, so a
/// commit that did land is found, not repeated.
fn contended(e: &firestore::errors::FirestoreError) -> bool {
    use firestore::errors::FirestoreError;
    match e {
        FirestoreError::DatabaseError(db) => {
            db.retry_possible || matches!(db.public.code.as_str(), "Aborted" | "DeadlineExceeded")
        }
        FirestoreError::DataConflictError(_) => true,
        _ => false,
    }
}
