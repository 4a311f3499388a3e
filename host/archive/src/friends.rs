//! Friends: requests, answers, removals and blocks, kept in Firestore.
//!
//! ## Layout
//!
//! | path | document |
//! |---|---|
//! | `friends/{uid}` | [`FriendsDoc`]: `{uid, count}`, how many of `uid`'s links count towards the cap |
//! | `friends/{uid}/links/{other}` | [`LinkDoc`]: `{other, state, since_ms}`, how `uid` stands towards `other` |
//!
//! One document per side: each player's list is one query on their own
//! `links`, with nothing to join or filter by the other player. The two
//! sides always change together, in **one Firestore transaction per verb**
//! that reads both players' counters and both sides of the link and writes
//! what changed. So the sides never disagree, and two players acting on
//! each other at the same moment (both asking, one asking while the other
//! blocks) are serialised: the second transaction sees the first one's
//! result. Transactions lock what they read, in one order everywhere (the
//! two counters in uid order, then the lower uid's side, then the other's),
//! so two of them never wait on each other in a cycle.
//!
//! ## The states
//!
//! | `uid`'s side | `other`'s side | `uid`'s list shows |
//! |---|---|---|
//! | `friends` | `friends` | `friends` |
//! | `outgoing` | `incoming` | `outgoing` (and `other`'s shows `incoming`) |
//! | `blocked` | `blocked_by` | `blocked` (and `other`'s shows nothing) |
//! | `blocked` | `blocked` | `blocked` (both block) |
//!
//! What each verb does is [`decide`], a pure function of the two sides,
//! their counters and the cap, tested below without Firestore.

use std::time::Duration;

use dashdice_proto::ErrorCode;
use dashdice_proto::friends::{FriendLink, FriendList, FriendState};
use dashdice_proto::queue::Notice;
use firestore::errors::FirestoreError;
use firestore::{FirestoreConsistencySelector, FirestoreDb};
use futures_util::StreamExt;
use tracing::Instrument;

use crate::schema::{FRIENDS, FriendsDoc, LINKS, LinkDoc, LinkState, storable_id};
use crate::{Archive, ArchiveError, contended, jitter};

/// What a player does about another.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Verb {
    /// Ask to be friends; accepts instead if the other asked first.
    Request,
    /// Accept the other's request.
    Accept,
    /// Decline the other's request (both sides are deleted).
    Decline,
    /// End a friendship, or withdraw one's own pending request.
    Remove,
    /// Block the other, from any state: ends a friendship or requests
    /// either way, and refuses the other's requests from then on.
    Block,
    /// Stop blocking the other.
    Unblock,
}

impl Verb {
    pub const ALL: [Verb; 6] = [
        Verb::Request,
        Verb::Accept,
        Verb::Decline,
        Verb::Remove,
        Verb::Block,
        Verb::Unblock,
    ];

    /// The verb's name, as in its endpoint (`dd.archive.friends.<verb>`) and
    /// metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Request => "request",
            Verb::Accept => "accept",
            Verb::Decline => "decline",
            Verb::Remove => "remove",
            Verb::Block => "block",
            Verb::Unblock => "unblock",
        }
    }
}

/// Why a friends request was refused, or failed.
#[derive(Debug, thiserror::Error)]
pub enum FriendError {
    #[error("{0:?} is not a user id")]
    BadId(String),
    #[error("a player cannot befriend or block themselves")]
    Yourself,
    #[error("the two are friends already")]
    AlreadyFriends,
    #[error("the request was made already and waits for an answer (remove it to withdraw it)")]
    AlreadyRequested,
    #[error("one of the two blocks the other")]
    Blocked,
    #[error("the two are not friends (to answer a request, accept or decline it)")]
    NotFriends,
    #[error("that player has no pending request to this one")]
    NoRequest,
    /// `theirs`: the other player is at the cap, not the one acting.
    #[error("a player may have at most {max} friends and pending requests")]
    TooManyFriends { theirs: bool, max: usize },
    #[error(transparent)]
    Archive(#[from] ArchiveError),
}

impl From<FirestoreError> for FriendError {
    fn from(e: FirestoreError) -> Self {
        FriendError::Archive(ArchiveError::Firestore(e))
    }
}

impl FriendError {
    /// The code the archiver answers with.
    pub fn code(&self) -> ErrorCode {
        match self {
            FriendError::BadId(_) => ErrorCode::BadRequest,
            FriendError::Yourself => ErrorCode::Yourself,
            FriendError::AlreadyFriends => ErrorCode::AlreadyFriends,
            FriendError::AlreadyRequested => ErrorCode::AlreadyRequested,
            FriendError::Blocked => ErrorCode::Blocked,
            FriendError::NotFriends => ErrorCode::NotFriends,
            FriendError::NoRequest => ErrorCode::NoRequest,
            FriendError::TooManyFriends { .. } => ErrorCode::TooManyFriends,
            FriendError::Archive(ArchiveError::BadCursor(_)) => ErrorCode::BadCursor,
            FriendError::Archive(_) => ErrorCode::Unavailable,
        }
    }
}

/// One side of a link as a verb finds it: its state (`None`: no document)
/// and its player's counter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Side {
    pub state: Option<LinkState>,
    pub count: u32,
}

/// What the other player is told of a change (a block is told as a
/// removal, or not at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Told {
    Request,
    Accepted,
    Declined,
    Removed,
}

impl Told {
    /// The notice, `actor` being the player who acted.
    pub fn notice(self, actor: &str) -> Notice {
        let actor = actor.to_owned();
        match self {
            Told::Request => Notice::FriendRequest { from: actor },
            Told::Accepted => Notice::FriendAccepted { by: actor },
            Told::Declined => Notice::FriendDeclined { by: actor },
            Told::Removed => Notice::FriendRemoved { by: actor },
        }
    }
}

/// What a verb does: both sides' new states (`None`: deleted), what the
/// other player is told, and the outcome's name (for metrics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    pub mine: Option<LinkState>,
    pub theirs: Option<LinkState>,
    pub told: Option<Told>,
    /// `requested`, `accepted`, `declined`, `removed`, `cancelled`,
    /// `blocked`, `unblocked` or `unchanged`.
    pub outcome: &'static str,
}

/// What `verb` does, given the actor's side (`me`) and the other's
/// (`them`), and the cap on counted links per player. Pure: the archive
/// runs it inside the transaction that read the two sides.
///
/// `block` and `unblock` set a state, so repeating one changes nothing
/// (`unchanged`), and unblocking a player one does not block is no error:
/// the archive client retries a call nothing answered, and no code would
/// tell a player more than that the block is gone. The other verbs move
/// from one state to another and are refused where that state is not.
pub fn decide(verb: Verb, me: Side, them: Side, max: usize) -> Result<Change, FriendError> {
    use LinkState::*;
    let change = |mine, theirs, told, outcome| Change {
        mine,
        theirs,
        told,
        outcome,
    };
    let change = match verb {
        Verb::Request => match me.state {
            Some(Blocked | BlockedBy) => return Err(FriendError::Blocked),
            _ if them.state == Some(Blocked) => return Err(FriendError::Blocked),
            Some(Friends) => return Err(FriendError::AlreadyFriends),
            Some(Outgoing) => return Err(FriendError::AlreadyRequested),
            // They asked first: asking back is agreeing.
            Some(Incoming) => change(
                Some(Friends),
                Some(Friends),
                Some(Told::Accepted),
                "accepted",
            ),
            None => change(
                Some(Outgoing),
                Some(Incoming),
                Some(Told::Request),
                "requested",
            ),
        },
        Verb::Accept => match me.state {
            Some(Incoming) => change(
                Some(Friends),
                Some(Friends),
                Some(Told::Accepted),
                "accepted",
            ),
            Some(Friends) => return Err(FriendError::AlreadyFriends),
            _ => return Err(FriendError::NoRequest),
        },
        Verb::Decline => match me.state {
            Some(Incoming) => change(None, None, Some(Told::Declined), "declined"),
            _ => return Err(FriendError::NoRequest),
        },
        Verb::Remove => match me.state {
            Some(Friends) => change(None, None, Some(Told::Removed), "removed"),
            // Withdrawing one's request: the other's incoming request goes
            // too, and they are told so their list can drop it.
            Some(Outgoing) => change(None, None, Some(Told::Removed), "cancelled"),
            _ => return Err(FriendError::NotFriends),
        },
        Verb::Block => match me.state {
            Some(Blocked) => change(me.state, them.state, None, "unchanged"),
            previous => change(
                Some(Blocked),
                Some(if them.state == Some(Blocked) {
                    Blocked
                } else {
                    BlockedBy
                }),
                // Whatever they had with this player ends; they are told
                // only that.
                previous
                    .is_some_and(LinkState::counted)
                    .then_some(Told::Removed),
                "blocked",
            ),
        },
        Verb::Unblock => match me.state {
            // They block this player too: their block stays, and so does
            // its other side.
            Some(Blocked) if them.state == Some(Blocked) => {
                change(Some(BlockedBy), Some(Blocked), None, "unblocked")
            }
            Some(Blocked) => change(None, None, None, "unblocked"),
            _ => change(me.state, them.state, None, "unchanged"),
        },
    };
    for (side, new, theirs) in [(me, change.mine, false), (them, change.theirs, true)] {
        let grows =
            new.is_some_and(LinkState::counted) && !side.state.is_some_and(LinkState::counted);
        if grows && side.count as usize >= max {
            return Err(FriendError::TooManyFriends { theirs, max });
        }
    }
    Ok(change)
}

/// A side's counter after it moves from `old` to `new`.
fn recount(count: u32, old: Option<LinkState>, new: Option<LinkState>) -> u32 {
    let was = u32::from(old.is_some_and(LinkState::counted));
    let is = u32::from(new.is_some_and(LinkState::counted));
    count.saturating_sub(was) + is
}

/// What a verb did, once committed.
#[derive(Clone, Debug, PartialEq)]
pub struct Befriended {
    /// The link as the actor now sees it; `None` when none is left (or the
    /// actor is blocked, which their list does not show).
    pub link: Option<FriendLink>,
    /// The other player and what they are to be told, if anything.
    pub notice: Option<(String, Notice)>,
    /// As [`Change::outcome`].
    pub outcome: &'static str,
}

/// Both sides of one link as a transaction read them.
struct Read {
    me: Side,
    them: Side,
    my_link: Option<LinkDoc>,
    their_link: Option<LinkDoc>,
}

impl Archive {
    /// The most friends and pending requests (together) one player may
    /// have; [`MAX_FRIENDS`](dashdice_proto::friends::MAX_FRIENDS) unless set
    /// otherwise (tests).
    pub fn with_max_friends(mut self, max: usize) -> Self {
        self.max_friends = max;
        self
    }

    /// `uid`'s list: friends, requests both ways and blocks (never who
    /// blocks `uid`), friends first, then by uid, with the others' display
    /// names where they chose one.
    pub async fn friends(&self, uid: &str) -> Result<FriendList, FriendError> {
        if !storable_id(uid) {
            return Err(FriendError::BadId(uid.to_owned()));
        }
        let docs: Vec<LinkDoc> = self
            .db
            .fluent()
            .select()
            .from(LINKS)
            .parent(self.db.parent_path(FRIENDS, uid)?)
            .obj()
            .query()
            .await?;
        let mut links: Vec<FriendLink> = docs
            .into_iter()
            .filter_map(|doc| {
                Some(FriendLink {
                    state: doc.state.shown()?,
                    uid: doc.other,
                    display_name: None,
                    since_ms: doc.since_ms,
                })
            })
            .collect();
        let uids: Vec<String> = links.iter().map(|l| l.uid.clone()).collect();
        let names = self.names(&uids).await?;
        for link in &mut links {
            link.display_name = names.get(&link.uid).cloned();
        }
        links.sort_by(|a, b| {
            (a.state != FriendState::Friends, &a.uid)
                .cmp(&(b.state != FriendState::Friends, &b.uid))
        });
        Ok(FriendList { links })
    }

    /// `uid` does `verb` about `other`, in one transaction (see the
    /// module's doc), retried a few times when it met another on the same
    /// documents. Nothing is written when it is refused.
    pub async fn befriend(
        &self,
        verb: Verb,
        uid: &str,
        other: &str,
        now_ms: u64,
    ) -> Result<Befriended, FriendError> {
        for id in [uid, other] {
            if !storable_id(id) {
                return Err(FriendError::BadId(id.to_owned()));
            }
        }
        if uid == other {
            return Err(FriendError::Yourself);
        }
        let span = tracing::info_span!(
            "befriend",
            verb = verb.as_str(),
            uid,
            other,
            tries = tracing::field::Empty
        );
        let (change, link) = async {
            let mut tries = 0;
            loop {
                tries += 1;
                match self.befriend_once(verb, uid, other, now_ms).await {
                    Err(FriendError::Archive(ArchiveError::Firestore(e)))
                        if tries < 6 && contended(&e) =>
                    {
                        tokio::time::sleep(jitter(Duration::from_millis(50 * tries))).await;
                    }
                    done => {
                        tracing::Span::current().record("tries", tries);
                        return done;
                    }
                }
            }
        }
        .instrument(span)
        .await?;
        let link = match link.and_then(|doc| {
            Some(FriendLink {
                uid: doc.other,
                state: doc.state.shown()?,
                display_name: None,
                since_ms: doc.since_ms,
            })
        }) {
            Some(mut link) => {
                // A decoration: the change is made whether or not the name
                // can be read.
                match self.names(std::slice::from_ref(&link.uid)).await {
                    Ok(mut names) => link.display_name = names.remove(&link.uid),
                    Err(e) => tracing::debug!(error = %e, "friend's name unavailable"),
                }
                Some(link)
            }
            None => None,
        };
        Ok(Befriended {
            link,
            notice: change.told.map(|told| (other.to_owned(), told.notice(uid))),
            outcome: change.outcome,
        })
    }

    /// One try of [`befriend`](Self::befriend): the change and the actor's
    /// side as committed.
    async fn befriend_once(
        &self,
        verb: Verb,
        uid: &str,
        other: &str,
        now_ms: u64,
    ) -> Result<(Change, Option<LinkDoc>), FriendError> {
        let mut tx = self.db.begin_transaction().await?;
        let read = match self.read_link(&tx, uid, other).await {
            Ok(read) => read,
            Err(e) => {
                let _ = tx.rollback().await;
                return Err(e.into());
            }
        };
        let change = match decide(verb, read.me, read.them, self.max_friends) {
            Ok(change) => change,
            Err(refused) => {
                let _ = tx.rollback().await;
                return Err(refused);
            }
        };
        let side = |other: &str, old: &Option<LinkDoc>, new: Option<LinkState>| {
            match (old, new) {
                // Unchanged: nothing to write; keeps its `since_ms`.
                (Some(doc), Some(state)) if doc.state == state => (Some(doc.clone()), false),
                (None, None) => (None, false),
                (_, Some(state)) => (
                    Some(LinkDoc {
                        other: other.to_owned(),
                        state,
                        since_ms: now_ms,
                    }),
                    true,
                ),
                (Some(_), None) => (None, true),
            }
        };
        let (mine, my_write) = side(other, &read.my_link, change.mine);
        let (theirs, their_write) = side(uid, &read.their_link, change.theirs);
        if !my_write && !their_write {
            let _ = tx.rollback().await;
            return Ok((change, mine));
        }
        let writes = (|| {
            for (owner, other, doc, write, side, new) in [
                (uid, other, &mine, my_write, read.me, change.mine),
                (other, uid, &theirs, their_write, read.them, change.theirs),
            ] {
                if !write {
                    continue;
                }
                let parent = self.db.parent_path(FRIENDS, owner)?;
                match doc {
                    Some(doc) => {
                        self.db
                            .fluent()
                            .update()
                            .in_col(LINKS)
                            .document_id(other)
                            .parent(&parent)
                            .object(doc)
                            .add_to_transaction(&mut tx)?;
                    }
                    None => {
                        self.db
                            .fluent()
                            .delete()
                            .from(LINKS)
                            .parent(&parent)
                            .document_id(other)
                            .add_to_transaction(&mut tx)?;
                    }
                }
                let count = recount(side.count, side.state, new);
                if count != side.count {
                    self.db
                        .fluent()
                        .update()
                        .in_col(FRIENDS)
                        .document_id(owner)
                        .object(&FriendsDoc {
                            uid: owner.to_owned(),
                            count,
                        })
                        .add_to_transaction(&mut tx)?;
                }
            }
            Ok::<_, FirestoreError>(())
        })();
        if let Err(e) = writes {
            let _ = tx.rollback().await;
            return Err(e.into());
        }
        tx.commit().await?;
        Ok((change, mine))
    }

    /// Reads both counters and both sides of `uid`—`other` in `tx`, in the
    /// one order every transaction here takes them (see the module's doc).
    async fn read_link(
        &self,
        tx: &firestore::FirestoreTransaction<'_>,
        uid: &str,
        other: &str,
    ) -> Result<Read, FirestoreError> {
        let read =
            self.db
                .clone_with_consistency_selector(FirestoreConsistencySelector::Transaction(
                    tx.transaction_id().clone(),
                ));
        let (lo, hi) = if uid < other {
            (uid, other)
        } else {
            (other, uid)
        };
        let (mut my_count, mut their_count) = (0, 0);
        let mut counters = read
            .fluent()
            .select()
            .by_id_in(FRIENDS)
            .obj::<FriendsDoc>()
            .batch_with_errors([lo, hi])
            .await?;
        while let Some(found) = counters.next().await {
            let (id, doc) = found?;
            let count = doc.map_or(0, |d| d.count);
            if id == uid {
                my_count = count;
            } else {
                their_count = count;
            }
        }
        // One after the other, the lower uid's side first.
        let lo_link = link(&read, lo, hi).await?;
        let hi_link = link(&read, hi, lo).await?;
        let (my_link, their_link) = if uid == lo {
            (lo_link, hi_link)
        } else {
            (hi_link, lo_link)
        };
        Ok(Read {
            me: Side {
                state: my_link.as_ref().map(|d| d.state),
                count: my_count,
            },
            them: Side {
                state: their_link.as_ref().map(|d| d.state),
                count: their_count,
            },
            my_link,
            their_link,
        })
    }
}

/// `owner`'s side of their link with `of`, read with `read`'s consistency.
async fn link(
    read: &FirestoreDb,
    owner: &str,
    of: &str,
) -> Result<Option<LinkDoc>, FirestoreError> {
    read.fluent()
        .select()
        .by_id_in(LINKS)
        .parent(read.parent_path(FRIENDS, owner)?)
        .obj()
        .one(of)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use LinkState::*;

    const MAX: usize = 3;

    fn side(state: Option<LinkState>) -> Side {
        Side { state, count: 0 }
    }

    fn run(
        verb: Verb,
        me: Option<LinkState>,
        them: Option<LinkState>,
    ) -> Result<Change, ErrorCode> {
        decide(verb, side(me), side(them), MAX).map_err(|e| e.code())
    }

    /// `(mine, theirs, told, outcome)` of a change.
    fn ok(
        verb: Verb,
        me: Option<LinkState>,
        them: Option<LinkState>,
    ) -> (
        Option<LinkState>,
        Option<LinkState>,
        Option<Told>,
        &'static str,
    ) {
        let c = run(verb, me, them).unwrap_or_else(|e| panic!("{verb:?} {me:?}/{them:?}: {e:?}"));
        (c.mine, c.theirs, c.told, c.outcome)
    }

    /// Every pair of sides that can be stored.
    const PAIRS: [(Option<LinkState>, Option<LinkState>); 7] = [
        (None, None),
        (Some(Friends), Some(Friends)),
        (Some(Outgoing), Some(Incoming)),
        (Some(Incoming), Some(Outgoing)),
        (Some(Blocked), Some(BlockedBy)),
        (Some(BlockedBy), Some(Blocked)),
        (Some(Blocked), Some(Blocked)),
    ];

    #[test]
    fn a_request_asks_or_accepts_and_is_refused_where_it_cannot() {
        use ErrorCode as E;
        assert_eq!(
            ok(Verb::Request, None, None),
            (
                Some(Outgoing),
                Some(Incoming),
                Some(Told::Request),
                "requested"
            )
        );
        assert_eq!(
            ok(Verb::Request, Some(Incoming), Some(Outgoing)),
            (
                Some(Friends),
                Some(Friends),
                Some(Told::Accepted),
                "accepted"
            )
        );
        let refused = |me, them| run(Verb::Request, Some(me), Some(them)).map(|c| c.outcome);
        assert_eq!(refused(Friends, Friends), Err(E::AlreadyFriends));
        assert_eq!(refused(Outgoing, Incoming), Err(E::AlreadyRequested));
        assert_eq!(refused(Blocked, BlockedBy), Err(E::Blocked));
        assert_eq!(refused(BlockedBy, Blocked), Err(E::Blocked));
        assert_eq!(refused(Blocked, Blocked), Err(E::Blocked));
    }

    #[test]
    fn answers_need_a_request_and_removal_a_friend_or_one_s_own_request() {
        use ErrorCode as E;
        for (me, them) in PAIRS {
            let accept = run(Verb::Accept, me, them);
            let decline = run(Verb::Decline, me, them);
            let remove = run(Verb::Remove, me, them);
            match me {
                Some(Incoming) => {
                    assert_eq!(
                        ok(Verb::Accept, me, them),
                        (
                            Some(Friends),
                            Some(Friends),
                            Some(Told::Accepted),
                            "accepted"
                        )
                    );
                    assert_eq!(
                        ok(Verb::Decline, me, them),
                        (None, None, Some(Told::Declined), "declined")
                    );
                    assert_eq!(remove.map(|c| c.outcome), Err(E::NotFriends));
                }
                Some(Friends) => {
                    assert_eq!(accept.map(|c| c.outcome), Err(E::AlreadyFriends));
                    assert_eq!(decline.map(|c| c.outcome), Err(E::NoRequest));
                    assert_eq!(
                        ok(Verb::Remove, me, them),
                        (None, None, Some(Told::Removed), "removed")
                    );
                }
                Some(Outgoing) => {
                    assert_eq!(accept.map(|c| c.outcome), Err(E::NoRequest));
                    assert_eq!(
                        ok(Verb::Remove, me, them),
                        (None, None, Some(Told::Removed), "cancelled")
                    );
                }
                _ => {
                    assert_eq!(accept.map(|c| c.outcome), Err(E::NoRequest), "{me:?}");
                    assert_eq!(decline.map(|c| c.outcome), Err(E::NoRequest), "{me:?}");
                    assert_eq!(remove.map(|c| c.outcome), Err(E::NotFriends), "{me:?}");
                }
            }
        }
    }

    #[test]
    fn a_block_ends_everything_and_is_told_only_as_a_removal() {
        for (me, them) in PAIRS {
            let (mine, theirs, told, outcome) = ok(Verb::Block, me, them);
            assert_eq!(mine, Some(Blocked));
            let expected = if them == Some(Blocked) {
                Blocked
            } else {
                BlockedBy
            };
            assert_eq!(theirs, Some(expected), "{me:?}/{them:?}");
            match me {
                Some(Friends | Outgoing | Incoming) => assert_eq!(told, Some(Told::Removed)),
                _ => assert_eq!(told, None, "{me:?}: a block is never told"),
            }
            let repeated = if me == Some(Blocked) {
                "unchanged"
            } else {
                "blocked"
            };
            assert_eq!(outcome, repeated);
        }
    }

    #[test]
    fn an_unblock_lifts_only_one_s_own_block() {
        assert_eq!(
            ok(Verb::Unblock, Some(Blocked), Some(BlockedBy)),
            (None, None, None, "unblocked")
        );
        // They block this player too: their block stays.
        assert_eq!(
            ok(Verb::Unblock, Some(Blocked), Some(Blocked)),
            (Some(BlockedBy), Some(Blocked), None, "unblocked")
        );
        // Nothing to lift: nothing changes (a blocked player learns nothing).
        for (me, them) in PAIRS.into_iter().filter(|(me, _)| *me != Some(Blocked)) {
            assert_eq!(ok(Verb::Unblock, me, them), (me, them, None, "unchanged"));
        }
    }

    #[test]
    fn the_cap_counts_friends_and_requests_on_both_sides() {
        let full = |state| Side {
            state,
            count: MAX as u32,
        };
        let spare = |state| Side { state, count: 0 };
        let code = |r: Result<Change, FriendError>| r.map(|c| c.outcome).map_err(|e| e.code());
        assert!(matches!(
            decide(Verb::Request, full(None), spare(None), MAX),
            Err(FriendError::TooManyFriends { theirs: false, .. })
        ));
        assert!(matches!(
            decide(Verb::Request, spare(None), full(None), MAX),
            Err(FriendError::TooManyFriends { theirs: true, .. })
        ));
        // Turning a request into a friendship, or blocking, adds nothing.
        assert_eq!(
            code(decide(
                Verb::Accept,
                full(Some(Incoming)),
                full(Some(Outgoing)),
                MAX
            )),
            Ok("accepted")
        );
        assert_eq!(
            code(decide(
                Verb::Request,
                full(Some(Incoming)),
                full(Some(Outgoing)),
                MAX
            )),
            Ok("accepted")
        );
        assert_eq!(
            code(decide(Verb::Block, full(None), full(None), MAX)),
            Ok("blocked")
        );
    }

    #[test]
    fn counters_follow_the_counted_states() {
        assert_eq!(recount(2, None, Some(Outgoing)), 3);
        assert_eq!(recount(2, Some(Outgoing), Some(Friends)), 2);
        assert_eq!(recount(2, Some(Friends), Some(Blocked)), 1);
        assert_eq!(recount(0, Some(Friends), None), 0);
        assert_eq!(recount(1, Some(BlockedBy), None), 1);
    }

    #[test]
    fn firestore_reserved_ids_are_refused() {
        assert!(storable_id("alice") && storable_id("__") && storable_id("a__b__"));
        assert!(!storable_id("__x__") && !storable_id("____") && !storable_id(""));
    }
}
