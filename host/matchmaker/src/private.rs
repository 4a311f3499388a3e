//! Private matches by invite code: a host makes a code and waits, one guest
//! joins with it, and the two play an unranked match with no bots.
//!
//! The host asks for a code: the code is stored first (`mm:code:{CODE}`,
//! expiring with [`PrivatePolicy::code_ttl_ms`]), then the host's state
//! becomes `hosting` with the same expiry, so nobody can learn a code whose
//! host is not waiting yet. A guest: free → `matching` (CAS) → claims the
//! code (one script: the first guest wins) → host `hosting` this code →
//! `matching` (CAS) → create the match (unranked, no bots) → both `playing`
//! → tell both. If the host left meanwhile the code is dead and is deleted.
//! If the match host cannot create the match, nothing is lost: the code is
//! given back and the host waits on it again for the rest of its life, the
//! guest is free and may simply retry.
//!
//! ## Direct invites
//!
//! A direct invite (`dd.queue.private.invite`, [`Matchmaker::invite_player`])
//! is a code as above with a target: the stored code records `to`, the only
//! player who may join with it (anyone else hears `not_invited`, so the code
//! is worth nothing if it leaks), and `to` is told
//! [`Notice::Invited`](super::Notice::Invited) (and, with notifications on,
//! the notifier is asked for a `match_invite`, id `invite:<code>`, kept in
//! their inbox and pushed if they are away). The matchmaker does not know
//! friends: the gateway checks the two are friends before asking. The
//! invitee accepts by joining the code as any guest would, or declines
//! ([`Matchmaker::decline_invite`]): the code is deleted, its host freed and
//! told `invite_declined`.
//!
//! Every direct invite that stands also has an entry in the store's due set,
//! scored by its expiry, and its end is told by whoever removes that entry,
//! so exactly once however many matchmakers run:
//!
//! | end | removes the entry | tells |
//! |---|---|---|
//! | accepted | the join, right after claiming the code (put back if the match cannot be made and the code is given back) | both: `match_found` |
//! | declined | the decline, before deleting the code | the host: `invite_declined` |
//! | the host left | the leave, before deleting the code | the invitee: `invite_withdrawn` |
//! | ran out | the periodic pass, which claims due entries in one script ([`Matchmaker::expire_invites`]) | the host: `invite_expired`; the invitee: `invite_withdrawn` |
//!
//! The pass never ends an invite its invitee has claimed (a match is being
//! made): if that match cannot be made, the join puts the entry back, or,
//! when the code ran out meanwhile, tells the host `invite_expired` itself.
//! A matchmaker that dies between removing an entry and telling leaves that
//! notice untold (notices are at most once); the players' status is right.
//!
//! [`PrivatePolicy::code_ttl_ms`]: super::PrivatePolicy::code_ttl_ms

use std::time::Duration;

use super::{
    Claimed, CreateInviteRequest, Current, DirectInviteRequest, Invite, JoinInviteRequest, Matches,
    MatchingFor, Matchmaker, MatchmakingError, NewMatch, Notice, Notify, Origin, PlayerState,
    QueueKind, Status, busy, check_player, notify_request,
};
use dashdice_proto::notify::NotificationKind;
use dashdice_service::telemetry::names;
use dashdice_store::StoreError;
use dashdice_store::queues::{DueInvite, InviteClaim, InviteEnd, StoredInvite};

/// The characters of invite codes: no 0/O, 1/I/L, so a code read aloud or
/// off a screen is typed right.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in an invite code: 31^6, about 887 million codes, against a
/// few live ones that expire in minutes.
pub const CODE_LEN: usize = 6;
/// Codes drawn before giving up when each one drawn is taken.
const CODE_ATTEMPTS: usize = 8;
/// Direct invites one pass ends at most; the next pass takes the rest.
const EXPIRE_BATCH: usize = 200;

/// Counts a direct invite's step by `outcome`: `sent`, `accepted`,
/// `declined`, `expired` or `withdrawn`.
fn count_direct(outcome: &'static str) {
    metrics::counter!(names::DIRECT_INVITES, "outcome" => outcome).increment(1);
}

/// A fresh invite code. Codes are the only thing keeping strangers out of a
/// private match, so without the OS's randomness there is no code (unlike
/// ticket ids, which only need to differ).
fn random_code() -> Result<String, MatchmakingError> {
    let n = CODE_ALPHABET.len();
    // The largest multiple of n that fits a byte: taking bytes below it
    // keeps every character equally likely.
    let limit = 256 - 256 % n;
    let mut code = String::with_capacity(CODE_LEN);
    let mut bytes = [0u8; 16];
    while code.len() < CODE_LEN {
        getrandom::fill(&mut bytes)
            .map_err(|e| MatchmakingError::Unavailable(format!("no randomness for a code: {e}")))?;
        for b in bytes.iter().map(|b| usize::from(*b)).filter(|b| *b < limit) {
            if code.len() < CODE_LEN {
                code.push(char::from(CODE_ALPHABET[b % n]));
            }
        }
    }
    Ok(code)
}

/// An invite code as a player typed it, in its stored form: letters in any
/// case, blanks around it ignored.
pub fn normalize_code(input: &str) -> Result<String, MatchmakingError> {
    let code = input.trim().to_ascii_uppercase();
    if code.len() != CODE_LEN || !code.bytes().all(|b| CODE_ALPHABET.contains(&b)) {
        return Err(MatchmakingError::BadRequest(format!(
            "invite codes are {CODE_LEN} characters from {}",
            String::from_utf8_lossy(CODE_ALPHABET)
        )));
    }
    Ok(code)
}

impl<M: Matches, N: Notify> Matchmaker<M, N> {
    /// Makes an invite code to a private match in `mode` and has the player
    /// wait for a guest. Asking again for the same mode while waiting is a
    /// no-op that answers the same code.
    pub async fn create_invite(
        &self,
        request: &CreateInviteRequest,
    ) -> Result<Invite, MatchmakingError> {
        check_player(&request.player)?;
        if !self.is_playable(&request.mode) {
            return Err(MatchmakingError::UnknownMode(request.mode.clone()));
        }
        let (invite, _) = self.host_code(&request.player, &request.mode, None).await?;
        Ok(invite)
    }

    /// Invites `request.to` to a private match in `request.mode`: a code
    /// only they may join, told to them as [`Notice::Invited`]; the inviter
    /// waits on it as on any code (`hosting`). Asking again while waiting
    /// on an invite of the same mode to the same player answers the same
    /// code and tells nobody again.
    ///
    /// Refused, changing nothing: inviting oneself (`yourself`), malformed
    /// ids (`bad_request`), a mode that is not playable (`unknown_mode`),
    /// and an inviter who is queued, hosting another code or playing
    /// (`already_queued`, `hosting`, `in_match`). Whether the two are
    /// friends is the caller's to check.
    pub async fn invite_player(
        &self,
        request: &DirectInviteRequest,
    ) -> Result<Invite, MatchmakingError> {
        let (player, to) = (request.player.as_str(), request.to.as_str());
        check_player(player)?;
        check_player(to)?;
        if player == to {
            return Err(MatchmakingError::Yourself);
        }
        if !self.is_playable(&request.mode) {
            return Err(MatchmakingError::UnknownMode(request.mode.clone()));
        }
        let (invite, new) = self.host_code(player, &request.mode, Some(to)).await?;
        if new {
            count_direct("sent");
            let invited = Notice::Invited {
                from: player.to_owned(),
                code: invite.code.clone(),
                mode: invite.mode.clone(),
                expires_ms: invite.expires_ms,
            };
            if let Err(e) = self.notify.notify(to, &invited).await {
                tracing::warn!(%to, error = %e, "could not tell a player of their invite");
            }
            // Kept in their inbox, and pushed if they are away: the notice
            // above reaches only open sockets.
            let expires = invite.expires_ms.to_string();
            self.request_notification(notify_request(
                format!("invite:{}", invite.code),
                to,
                NotificationKind::MatchInvite,
                &[
                    ("from", player),
                    ("code", &invite.code),
                    ("mode", &invite.mode),
                    ("expires_ms", &expires),
                ],
                self.clock.now_ms(),
            ));
        }
        Ok(invite)
    }

    /// Makes a code to a private match in `mode` (joinable only by `to`, if
    /// given) and has `player` wait on it; whether the code is new (`false`:
    /// the same request again, answered with the code it made).
    async fn host_code(
        &self,
        player: &str,
        mode: &str,
        to: Option<&str>,
    ) -> Result<(Invite, bool), MatchmakingError> {
        let ttl = Duration::from_millis(self.private.code_ttl_ms.max(1));
        // Two attempts: a state replaced under us is read again once.
        for _ in 0..2 {
            let raw = match self.current(player).await? {
                Current::Busy(PlayerState::Hosting {
                    code,
                    mode: hosted,
                    expires_ms,
                    ..
                }) if hosted == mode => {
                    // The same code for the same request only: an open code
                    // is not a direct invite, nor one invite another.
                    let same = self
                        .store
                        .invite(&code)
                        .await?
                        .is_some_and(|invite| invite.to.as_deref() == to);
                    if !same {
                        return Err(MatchmakingError::Hosting(code));
                    }
                    let invite = Invite {
                        code,
                        mode: hosted,
                        expires_ms,
                    };
                    return Ok((invite, false));
                }
                Current::Busy(state) => return Err(busy(state)),
                Current::Free(raw) => raw,
            };
            let now = self.clock.now_ms();
            let mut invite = StoredInvite {
                host: player.to_owned(),
                mode: mode.to_owned(),
                created_ms: now,
                expires_ms: now + ttl.as_millis() as u64,
                guest: None,
                to: to.map(str::to_owned),
            };
            // The code first: until the host's state says `hosting`, nobody
            // knows the code, and a host is never `hosting` a missing code.
            let code = self.store_new_code(&invite, ttl).await?;
            // Then, for a direct invite, its entry in the due set, so an
            // invite anyone was told of always ends with a notice.
            let due = to.map(|to| DueInvite {
                code: code.clone(),
                host: player.to_owned(),
                to: to.to_owned(),
            });
            if let Some(due) = &due
                && let Err(e) = self
                    .store
                    .schedule_direct_invite(due, invite.expires_ms)
                    .await
            {
                let _ = self.store.cancel_invite(&code, player).await;
                return Err(e.into());
            }
            let hosting = serde_json::to_string(&PlayerState::Hosting {
                code: code.clone(),
                mode: invite.mode.clone(),
                since_ms: now,
                expires_ms: invite.expires_ms,
            })?;
            let swapped = self
                .store
                .swap(player, raw.as_deref(), Some(&hosting), Some(ttl))
                .await;
            if let Ok(true) = swapped {
                let invite = Invite {
                    code,
                    mode: std::mem::take(&mut invite.mode),
                    expires_ms: invite.expires_ms,
                };
                return Ok((invite, true));
            }
            // Nobody was told of this code: it goes, quietly. (A host whose
            // state did change, its reply lost, is `hosting` a missing code:
            // a state left behind, which the next request replaces.)
            let unscheduled = match &due {
                Some(due) => self.store.unschedule_direct_invite(due).await.map(|_| ()),
                None => Ok(()),
            };
            let cancelled = self.store.cancel_invite(&code, player).await;
            swapped?;
            unscheduled?;
            cancelled?;
        }
        Err(MatchmakingError::Matching)
    }

    /// Stores `invite` under a fresh code; returns the code.
    async fn store_new_code(
        &self,
        invite: &StoredInvite,
        ttl: Duration,
    ) -> Result<String, MatchmakingError> {
        for _ in 0..CODE_ATTEMPTS {
            let code = random_code()?;
            if self.store.create_invite(&code, invite, ttl).await? {
                return Ok(code);
            }
        }
        Err(MatchmakingError::Unavailable(
            "no free invite code was found; try again".into(),
        ))
    }

    /// Joins the private match of an invite code: both players are told of
    /// the match (unranked, no bots) and the reply says `playing`.
    ///
    /// A direct invite is accepted this way, by its invitee.
    ///
    /// Refused, changing nothing: a malformed code (`bad_request`), a code
    /// that expired, was cancelled or never existed (`unknown_code`), one
    /// another guest used (`code_used`), one's own code (`own_code`), a
    /// direct invite to another player (`not_invited`), and a
    /// guest who is queued, hosting or playing (`already_queued`, `hosting`,
    /// `in_match`). If the match host cannot create the match the error is
    /// `unavailable`, and the code works again: the host waits on it for the
    /// rest of its life, so a retry needs nothing new from either player.
    pub async fn join_invite(
        &self,
        request: &JoinInviteRequest,
    ) -> Result<Status, MatchmakingError> {
        let guest = request.player.as_str();
        check_player(guest)?;
        let code = normalize_code(&request.code)?;
        // A look first, so the refusals that need no claim change nothing.
        let Some(invite) = self.store.invite(&code).await? else {
            return Err(MatchmakingError::UnknownCode);
        };
        if invite.host == guest {
            return Err(MatchmakingError::OwnCode);
        }
        // Before `code_used`: a stranger learns nothing of another's invite.
        if invite.to.as_deref().is_some_and(|to| to != guest) {
            return Err(MatchmakingError::NotInvited);
        }
        if invite.guest.is_some() {
            return Err(MatchmakingError::CodeUsed);
        }
        let matching = serde_json::to_string(&PlayerState::Matching {
            making: MatchingFor::Invite(code.to_owned()),
            since_ms: self.clock.now_ms(),
        })?;
        if let Claimed::Busy(state) = self.claim_free(guest, &matching, None).await? {
            return Err(busy(state));
        }
        // The guest is `matching` now: every way out but success frees them.
        let joined = self.join_claimed(&code, guest, &matching).await;
        if joined.is_err() {
            let _ = self.store.swap(guest, Some(&matching), None, None).await;
        }
        joined
    }

    async fn join_claimed(
        &self,
        code: &str,
        guest: &str,
        guest_matching: &str,
    ) -> Result<Status, MatchmakingError> {
        let invite = match self.store.claim_invite(code, guest).await? {
            InviteClaim::Claimed(invite) => invite,
            InviteClaim::Used => return Err(MatchmakingError::CodeUsed),
            InviteClaim::NotInvited => return Err(MatchmakingError::NotInvited),
            InviteClaim::Gone => return Err(MatchmakingError::UnknownCode),
        };
        let host = invite.host.as_str();
        // Until the host is `matching`, a failure to reach the store gives
        // the code back, so it is not left claimed by nobody.
        let release = |e: StoreError| async move {
            let _ = self.store.release_invite(code, guest).await;
            MatchmakingError::from(e)
        };
        // A direct invite's end is the accept's now: its due entry goes, so
        // the pass cannot expire it once the code's ttl deletes it. (If the
        // decline, the leave or the pass removed it first, they see the
        // claim, or the missing host, and tell nobody of an end.)
        if let Some(to) = &invite.to {
            let due = DueInvite {
                code: code.to_owned(),
                host: host.to_owned(),
                to: to.clone(),
            };
            if let Err(e) = self.store.unschedule_direct_invite(&due).await {
                return Err(release(e).await);
            }
        }
        // The host, still `hosting` this code → `matching`.
        let hosting = match self.store.state(host).await {
            Ok(hosting) => hosting,
            Err(e) => return Err(release(e).await),
        };
        let waits = hosting
            .as_deref()
            .and_then(|s| serde_json::from_str::<PlayerState>(s).ok())
            .is_some_and(|s| matches!(s, PlayerState::Hosting { code: c, .. } if c == code));
        let host_matching = serde_json::to_string(&PlayerState::Matching {
            making: MatchingFor::Invite(code.to_owned()),
            since_ms: self.clock.now_ms(),
        })?;
        let (true, Some(hosting)) = (waits, hosting) else {
            // The host left, or the code outlived its state: it is dead.
            self.store.cancel_invite(code, host).await?;
            return Err(MatchmakingError::UnknownCode);
        };
        match self
            .store
            .swap(host, Some(&hosting), Some(&host_matching), None)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                self.store.cancel_invite(code, host).await?;
                return Err(MatchmakingError::UnknownCode);
            }
            Err(e) => return Err(release(e).await),
        }
        let new = NewMatch {
            mode: invite.mode.clone(),
            players: vec![host.to_owned(), guest.to_owned()],
            ranked: false,
            bots: Vec::new(),
        };
        let match_id = match self.matches.create(&new).await {
            Ok(id) => id,
            Err(e) => {
                tracing::warn!(mode = %new.mode, error = %e, "could not create a private match; the code goes back");
                self.host_again(code, &invite, guest, &host_matching, &hosting)
                    .await;
                return Err(MatchmakingError::Unavailable(e.to_string()));
            }
        };
        self.announce(
            &match_id,
            &new,
            QueueKind::Quick,
            Origin::Invite,
            &[(host, &host_matching), (guest, guest_matching)],
        )
        .await;
        if invite.to.is_some() {
            count_direct("accepted");
        }
        // The claimed code stays until it expires, so a late guest hears
        // `code_used` rather than `unknown_code`.
        Ok(Status::Playing { match_id })
    }

    /// A private match could not be made: the code is given back and its
    /// host waits on it again until it expires (or, if it just did, is free;
    /// the host of a direct invite is then told it expired).
    async fn host_again(
        &self,
        code: &str,
        invite: &StoredInvite,
        guest: &str,
        host_matching: &str,
        hosting: &str,
    ) {
        let left = invite.expires_ms.saturating_sub(self.clock.now_ms());
        let released = left > 0 && matches!(self.store.release_invite(code, guest).await, Ok(true));
        let back = released.then_some(hosting);
        let ttl = Some(Duration::from_millis(left.max(1)));
        let restored = self
            .store
            .swap(&invite.host, Some(host_matching), back, ttl)
            .await;
        let stands = released && matches!(restored, Ok(true));
        if !stands {
            let _ = self.store.cancel_invite(code, &invite.host).await;
        }
        let Some(to) = &invite.to else {
            return;
        };
        if stands {
            // The invite stands again: so does its due entry.
            let due = DueInvite {
                code: code.to_owned(),
                host: invite.host.clone(),
                to: to.clone(),
            };
            if let Err(e) = self
                .store
                .schedule_direct_invite(&due, invite.expires_ms)
                .await
            {
                tracing::warn!(%code, error = %e, "could not put a direct invite back in the due set; it will end untold");
            }
        } else {
            count_direct("expired");
            let expired = Notice::InviteExpired {
                to: to.clone(),
                code: code.to_owned(),
            };
            self.tell(&invite.host, &expired).await;
        }
    }

    /// Declines the direct invite `request.code`, made to `request.player`:
    /// the code is deleted, its host freed and told
    /// [`Notice::InviteDeclined`]. Answers the decliner's status.
    ///
    /// Refused, changing nothing: a malformed code (`bad_request`), a code
    /// that is gone (expired, cancelled, declined already: `unknown_code`),
    /// one that is not a direct invite to this player (`not_invited`), and
    /// one this player has accepted already (`code_used`).
    pub async fn decline_invite(
        &self,
        request: &JoinInviteRequest,
    ) -> Result<Status, MatchmakingError> {
        let player = request.player.as_str();
        check_player(player)?;
        let code = normalize_code(&request.code)?;
        let Some(invite) = self.store.invite(&code).await? else {
            return Err(MatchmakingError::UnknownCode);
        };
        if invite.to.as_deref() != Some(player) {
            return Err(MatchmakingError::NotInvited);
        }
        if invite.guest.is_some() {
            return Err(MatchmakingError::CodeUsed);
        }
        let due = DueInvite {
            code: code.clone(),
            host: invite.host.clone(),
            to: player.to_owned(),
        };
        // The entry first: whoever removes it tells of the end.
        if !self.store.unschedule_direct_invite(&due).await? {
            // The pass expired it, or an accept is under way.
            return Err(MatchmakingError::UnknownCode);
        }
        match self.store.end_invite(&code, &invite.host, player).await? {
            // Accepted meanwhile (by this same player): the accept owns it.
            InviteEnd::Taken => return Err(MatchmakingError::CodeUsed),
            // Gone: its ttl ran out just now; the decline still ends it.
            InviteEnd::Ended | InviteEnd::Gone => {}
        }
        self.free_host(&invite.host, &code).await?;
        count_direct("declined");
        let declined = Notice::InviteDeclined {
            by: player.to_owned(),
            code,
        };
        self.tell(&invite.host, &declined).await;
        self.status(player).await
    }

    /// Ends the direct invites that ran out by the clock (up to a batch per
    /// call; the next pass takes the rest): each one's host is freed and
    /// told [`Notice::InviteExpired`], its invitee
    /// [`Notice::InviteWithdrawn`]. Each invite is ended by one caller only,
    /// however many run at once. Returns how many ended.
    pub async fn expire_invites(&self) -> Result<usize, MatchmakingError> {
        let now = self.clock.now_ms();
        let due = self.store.due_direct_invites(now, EXPIRE_BATCH).await?;
        let mut ended = 0;
        for invite in due {
            match self
                .store
                .end_invite(&invite.code, &invite.host, &invite.to)
                .await
            {
                // Its invitee is accepting: if that match cannot be made,
                // the accept puts the entry back or tells of the end.
                Ok(InviteEnd::Taken) => continue,
                Ok(InviteEnd::Ended | InviteEnd::Gone) => {}
                Err(e) => {
                    // This entry is ours: give it to a later pass.
                    tracing::warn!(code = %invite.code, error = %e, "could not end a direct invite; retrying later");
                    let _ = self.store.schedule_direct_invite(&invite, now).await;
                    continue;
                }
            }
            if let Err(e) = self.free_host(&invite.host, &invite.code).await {
                // Its `hosting` state expires with the code anyway.
                tracing::warn!(host = %invite.host, error = %e, "could not free the host of an expired invite");
            }
            count_direct("expired");
            let expired = Notice::InviteExpired {
                to: invite.to.clone(),
                code: invite.code.clone(),
            };
            let withdrawn = Notice::InviteWithdrawn {
                from: invite.host.clone(),
                code: invite.code.clone(),
            };
            futures_util::future::join(
                self.tell(&invite.host, &expired),
                self.tell(&invite.to, &withdrawn),
            )
            .await;
            ended += 1;
        }
        Ok(ended)
    }

    /// Cancels the code `host` waited on (they left, and their state is
    /// gone already); a direct invite's invitee is told it was withdrawn.
    pub(crate) async fn cancel_hosted(
        &self,
        code: &str,
        host: &str,
    ) -> Result<(), MatchmakingError> {
        let due = self
            .store
            .invite(code)
            .await?
            .filter(|invite| invite.host == host)
            .and_then(|invite| invite.to)
            .map(|to| DueInvite {
                code: code.to_owned(),
                host: host.to_owned(),
                to,
            });
        // The entry first: whoever removes it tells of the end.
        let withdrawn = match &due {
            Some(due) => self.store.unschedule_direct_invite(due).await?,
            None => false,
        };
        // Even if this fails the code is dead: a guest finds its host gone.
        let cancelled = self.store.cancel_invite(code, host).await;
        if let (true, Some(due)) = (withdrawn, &due) {
            count_direct("withdrawn");
            let notice = Notice::InviteWithdrawn {
                from: host.to_owned(),
                code: code.to_owned(),
            };
            self.tell(&due.to, &notice).await;
        }
        cancelled?;
        Ok(())
    }

    /// The host of `code` stops waiting on it, if they still are.
    async fn free_host(&self, host: &str, code: &str) -> Result<(), MatchmakingError> {
        let Some(raw) = self.store.state(host).await? else {
            return Ok(());
        };
        if let Ok(PlayerState::Hosting { code: hosted, .. }) = serde_json::from_str(&raw)
            && hosted == code
        {
            self.store.swap(host, Some(&raw), None, None).await?;
        }
        Ok(())
    }

    /// Tells `player` of `notice`; a failure is logged (notices are at most
    /// once, and the status says the same).
    async fn tell(&self, player: &str, notice: &Notice) {
        if let Err(e) = self.notify.notify(player, notice).await {
            tracing::warn!(%player, error = %e, "could not tell a player of their invite");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn codes_are_six_unambiguous_characters_and_vary() {
        let codes: BTreeSet<String> = (0..200).map(|_| random_code().unwrap()).collect();
        assert!(codes.len() > 190, "random: {} distinct", codes.len());
        for code in &codes {
            assert_eq!(code.len(), CODE_LEN);
            assert!(code.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{code}");
            assert_eq!(normalize_code(code).unwrap(), *code);
        }
        for ambiguous in b"01OIL" {
            assert!(!CODE_ALPHABET.contains(ambiguous));
        }
    }

    #[test]
    fn codes_are_read_in_any_case_and_malformed_ones_are_refused() {
        assert_eq!(normalize_code(" k7qx2m ").unwrap(), "K7QX2M");
        for bad in ["", "K7QX2", "K7QX2MM", "K7QX2O", "K7-X2M", "К7QX2M"] {
            let err = normalize_code(bad).expect_err(bad);
            assert_eq!(err.code(), "bad_request", "{bad:?}");
        }
    }
}
