//! Rematches: the players of a finished match agree to play again, with
//! the same mode and seats, unranked.
//!
//! A finished match's record (from the record stream, or from the match
//! host if an offer comes first) opens a rematch slot
//! (`mm:rematch:{match_id}`) until [`PrivatePolicy::rematch_window_ms`]
//! after the match ended. Each human player may offer; the first offer tells
//! the others ([`Notice::RematchOffered`], and with notifications on a
//! `rematch_offer` request to the notifier, id `rematch:<match_id>:<from>`);
//! the offer that makes everyone
//! agree ("accept") marks the slot `starting` in the same script, so exactly
//! one caller makes the new match: same mode, same seats, unranked. Bots
//! always agree, so a rematch of a bot match starts on the human's offer,
//! against a new bot of the host. A rematch needs every human free: an offer
//! from a player who is queued, hosting or playing again is refused, and so
//! is an accept while the other is busy (`opponent_busy`); neither changes
//! anything.
//!
//! [`PrivatePolicy::rematch_window_ms`]: super::PrivatePolicy::rematch_window_ms

use std::time::Duration;

use super::{
    BOT_PREFIX, Claimed, Current, Matches, MatchingFor, Matchmaker, MatchmakingError, NewMatch,
    Notice, Notify, Origin, PlayerState, QueueKind, RematchRequest, RematchStatus, busy,
    check_player, notify_request, random_id,
};
use dashdice_proto::notify::NotificationKind;
use dashdice_store::queues::{RematchOffer, StoredRematch};

/// Longest match id a rematch request may name.
const MAX_MATCH_ID: usize = 64;

fn check_match_id(match_id: &str) -> Result<(), MatchmakingError> {
    if match_id.is_empty()
        || match_id.len() > MAX_MATCH_ID
        || !match_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(MatchmakingError::BadRequest(format!(
            "match ids are 1 to {MAX_MATCH_ID} letters, digits, '-' and '_'"
        )));
    }
    Ok(())
}

impl<M: Matches, N: Notify> Matchmaker<M, N> {
    /// Offers a rematch of a finished match, or accepts one: the offer that
    /// makes every human player agree starts the new match (same mode and
    /// seats, unranked; bots always agree and are replaced by new ones).
    ///
    /// Refused, changing nothing: after the window (`rematch_expired`), by
    /// someone who did not play (`not_in_match`), by a player who is queued,
    /// hosting or playing again (`already_queued`, `hosting`, `in_match`),
    /// and an accept while another player is busy (`opponent_busy`). If the
    /// match host cannot create the match (`unavailable`), the accept is
    /// withdrawn and the other offers stand, so it may be tried again within
    /// the window.
    pub async fn offer_rematch(
        &self,
        request: &RematchRequest,
    ) -> Result<RematchStatus, MatchmakingError> {
        let (player, match_id) = (request.player.as_str(), request.match_id.as_str());
        check_player(player)?;
        check_match_id(match_id)?;
        let expired = || MatchmakingError::RematchExpired(match_id.to_owned());
        let stranger = || MatchmakingError::NotInMatch {
            player: player.to_owned(),
            match_id: match_id.to_owned(),
        };
        let slot = match self.store.rematch(match_id).await? {
            Some(slot) => slot,
            // The end may not have come through the record stream yet: the
            // host's record opens the same window (from the same end time,
            // so a long-finished match stays closed).
            None => match self.matches.finished_record(match_id).await {
                Some(record) if record.match_id == match_id => {
                    self.open_rematch(&record).await?;
                    self.store.rematch(match_id).await?.ok_or_else(expired)?
                }
                _ => return Err(expired()),
            },
        };
        if !slot.humans.iter().any(|p| p == player) {
            return Err(stranger());
        }
        if let Some(id) = slot.match_id {
            return Ok(RematchStatus::Started { match_id: id });
        }
        if let Current::Busy(state) = self.current(player).await? {
            return Err(busy(state));
        }
        let others: Vec<&String> = slot.humans.iter().filter(|p| *p != player).collect();
        if others.iter().all(|p| slot.offered.contains(p)) {
            for other in &others {
                if let Current::Busy(_) = self.current(other).await? {
                    return Err(MatchmakingError::OpponentBusy((*other).clone()));
                }
            }
        }
        let token = random_id("r-");
        match self
            .store
            .offer_rematch(match_id, player, self.clock.now_ms(), &token)
            .await?
        {
            RematchOffer::Expired => Err(expired()),
            RematchOffer::Stranger => Err(stranger()),
            RematchOffer::Started(id) => Ok(RematchStatus::Started { match_id: id }),
            RematchOffer::Starting => Err(MatchmakingError::Matching),
            RematchOffer::Offered { new, ttl_ms } => {
                let expires_ms = self.clock.now_ms() + ttl_ms;
                if new {
                    let offered = Notice::RematchOffered {
                        match_id: match_id.to_owned(),
                        from: player.to_owned(),
                        expires_ms,
                    };
                    let expires = expires_ms.to_string();
                    for other in others {
                        if let Err(e) = self.notify.notify(other, &offered).await {
                            tracing::warn!(player = %other, error = %e, "could not offer a rematch");
                        }
                        self.request_notification(notify_request(
                            format!("rematch:{match_id}:{player}"),
                            other,
                            NotificationKind::RematchOffer,
                            &[
                                ("from", player),
                                ("match_id", match_id),
                                ("expires_ms", &expires),
                            ],
                            self.clock.now_ms(),
                        ));
                    }
                }
                Ok(RematchStatus::Offered {
                    match_id: match_id.to_owned(),
                    expires_ms,
                })
            }
            RematchOffer::Start => self.start_rematch(match_id, &slot, player, &token).await,
        }
    }

    /// Everyone agreed and `token` holds the slot: make the rematch, or
    /// undo the accept.
    async fn start_rematch(
        &self,
        match_id: &str,
        slot: &StoredRematch,
        accepter: &str,
        token: &str,
    ) -> Result<RematchStatus, MatchmakingError> {
        let matching = serde_json::to_string(&PlayerState::Matching {
            making: MatchingFor::Rematch(match_id.to_owned()),
            since_ms: self.clock.now_ms(),
        })?;
        let mut marked: Vec<&str> = Vec::new();
        let mut refused = None;
        for p in &slot.humans {
            match self.claim_free(p, &matching, None).await {
                Ok(Claimed::Done) => marked.push(p),
                Ok(Claimed::Busy(state)) if p == accepter => refused = Some(busy(state)),
                Ok(Claimed::Busy(_)) => refused = Some(MatchmakingError::OpponentBusy(p.clone())),
                Err(e) => refused = Some(e),
            }
            if refused.is_some() {
                break;
            }
        }
        let created = match refused {
            Some(e) => Err(e),
            None => {
                // Same seats; each bot seat gets a new bot.
                let mut bots = Vec::new();
                let players = slot
                    .players
                    .iter()
                    .map(|p| {
                        if slot.bots.contains(p) {
                            let bot = random_id(BOT_PREFIX);
                            bots.push(bot.clone());
                            bot
                        } else {
                            p.clone()
                        }
                    })
                    .collect();
                let new = NewMatch {
                    mode: slot.mode.clone(),
                    players,
                    ranked: false,
                    bots,
                };
                match self.matches.create(&new).await {
                    Ok(id) => Ok((id, new)),
                    Err(e) => {
                        tracing::warn!(mode = %new.mode, error = %e, "could not create a rematch; the accept is withdrawn");
                        Err(MatchmakingError::Unavailable(e.to_string()))
                    }
                }
            }
        };
        let (id, new) = match created {
            Ok(made) => made,
            Err(e) => {
                for p in marked {
                    let _ = self.store.swap(p, Some(&matching), None, None).await;
                }
                let _ = self
                    .store
                    .settle_rematch(match_id, token, None, accepter)
                    .await;
                return Err(e);
            }
        };
        if let Err(e) = self
            .store
            .settle_rematch(match_id, token, Some(&id), accepter)
            .await
        {
            // The match exists and its players are told; later offers of the
            // old match hear `matching` until the window closes.
            tracing::warn!(%match_id, error = %e, "could not record a rematch in its slot");
        }
        let marked: Vec<(&str, &str)> = marked.iter().map(|p| (*p, matching.as_str())).collect();
        self.announce(&id, &new, QueueKind::Quick, Origin::Rematch, &marked)
            .await;
        Ok(RematchStatus::Started { match_id: id })
    }

    /// Opens the rematch window of a finished match, until
    /// `rematch_window_ms` after it ended: the last action's time as the host
    /// recorded it, or now if the record does not say. So a record that
    /// arrives late (or again) cannot open a window that has closed.
    pub(super) async fn open_rematch(
        &self,
        record: &dashdice_proto::record::MatchRecord,
    ) -> Result<(), MatchmakingError> {
        let humans: Vec<String> = record
            .players
            .iter()
            .filter(|p| !record.bots.contains(p) && !p.starts_with(BOT_PREFIX))
            .cloned()
            .collect();
        if humans.is_empty() || record.players.len() < 2 {
            return Ok(());
        }
        let now = self.clock.now_ms();
        let ended_ms = record
            .actions
            .iter()
            .filter_map(|a| a.at_ms)
            .max()
            .unwrap_or(now)
            .min(now);
        let left = (ended_ms + self.private.rematch_window_ms).saturating_sub(now);
        if left == 0 {
            return Ok(());
        }
        let slot = StoredRematch {
            mode: record.mode.clone(),
            players: record.players.clone(),
            bots: record.bots.clone(),
            humans,
            ended_ms,
            offered: Vec::new(),
            match_id: None,
        };
        self.store
            .open_rematch(&record.match_id, &slot, Duration::from_millis(left))
            .await?;
        Ok(())
    }
}
