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
//! [`PrivatePolicy::code_ttl_ms`]: super::PrivatePolicy::code_ttl_ms

use std::time::Duration;

use super::{
    Claimed, CreateInviteRequest, Current, Invite, JoinInviteRequest, Matches, MatchingFor,
    Matchmaker, MatchmakingError, NewMatch, Notify, Origin, PlayerState, QueueKind, Status, busy,
    check_player,
};
use dashdice_store::StoreError;
use dashdice_store::queues::{InviteClaim, StoredInvite};

/// The characters of invite codes: no 0/O, 1/I/L, so a code read aloud or
/// off a screen is typed right.
pub const CODE_ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
/// Characters in an invite code: 31^6, about 887 million codes, against a
/// few live ones that expire in minutes.
pub const CODE_LEN: usize = 6;
/// Codes drawn before giving up when each one drawn is taken.
const CODE_ATTEMPTS: usize = 8;

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
        let player = &request.player;
        check_player(player)?;
        if !self.is_playable(&request.mode) {
            return Err(MatchmakingError::UnknownMode(request.mode.clone()));
        }
        let ttl = Duration::from_millis(self.private.code_ttl_ms.max(1));
        // Two attempts: a state replaced under us is read again once.
        for _ in 0..2 {
            let raw = match self.current(player).await? {
                Current::Busy(PlayerState::Hosting {
                    code,
                    mode,
                    expires_ms,
                    ..
                }) if mode == request.mode => {
                    return Ok(Invite {
                        code,
                        mode,
                        expires_ms,
                    });
                }
                Current::Busy(state) => return Err(busy(state)),
                Current::Free(raw) => raw,
            };
            let now = self.clock.now_ms();
            let mut invite = StoredInvite {
                host: player.clone(),
                mode: request.mode.clone(),
                created_ms: now,
                expires_ms: now + ttl.as_millis() as u64,
                guest: None,
            };
            // The code first: until the host's state says `hosting`, nobody
            // knows the code, and a host is never `hosting` a missing code.
            let code = self.store_new_code(&invite, ttl).await?;
            let hosting = serde_json::to_string(&PlayerState::Hosting {
                code: code.clone(),
                mode: invite.mode.clone(),
                since_ms: now,
                expires_ms: invite.expires_ms,
            })?;
            if self
                .store
                .swap(player, raw.as_deref(), Some(&hosting), Some(ttl))
                .await?
            {
                return Ok(Invite {
                    code,
                    mode: std::mem::take(&mut invite.mode),
                    expires_ms: invite.expires_ms,
                });
            }
            self.store.cancel_invite(&code, player).await?;
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
    /// Refused, changing nothing: a malformed code (`bad_request`), a code
    /// that expired, was cancelled or never existed (`unknown_code`), one
    /// another guest used (`code_used`), one's own code (`own_code`), and a
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
            InviteClaim::Gone => return Err(MatchmakingError::UnknownCode),
        };
        let host = invite.host.as_str();
        // Until the host is `matching`, a failure to reach the store gives
        // the code back, so it is not left claimed by nobody.
        let release = |e: StoreError| async move {
            let _ = self.store.release_invite(code, guest).await;
            MatchmakingError::from(e)
        };
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
        // The claimed code stays until it expires, so a late guest hears
        // `code_used` rather than `unknown_code`.
        Ok(Status::Playing { match_id })
    }

    /// A private match could not be made: the code is given back and its
    /// host waits on it again until it expires (or, if it just did, is free).
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
        if !released || !matches!(restored, Ok(true)) {
            let _ = self.store.cancel_invite(code, &invite.host).await;
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
