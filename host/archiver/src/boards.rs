//! Redis as ranked play's fast path: ratings and leaderboards copied from
//! the archive, and rebuilt from it when Redis has lost them.
//!
//! Firestore is the record. Every copy carries its version (the player's
//! rated games in the mode), and `dashdice-store` writes it only if it is
//! newer, so a copy that arrives late or twice, or a rebuild racing a live
//! match, never puts an older rating back.

use std::sync::Arc;
use std::time::Duration;

use dashdice_proto::archive::{LeaderboardEntry, Profile, RatingFigures};
use dashdice_store::StoreError;
use dashdice_store::leaderboards::Leaderboards;
use futures_util::StreamExt;

use crate::Archiver;

/// The rating JSON the matchmaker reads (`rating`, `deviation`,
/// `volatility`; `games` is the version).
fn rating_json(r: &RatingFigures) -> String {
    serde_json::to_string(r).unwrap_or_default()
}

/// Copies `profile`'s ratings in `modes` (all modes if `None`) to Redis,
/// and onto the leaderboard of each rating's season.
pub async fn copy(
    boards: &Leaderboards,
    profile: &Profile,
    modes: Option<&str>,
) -> Result<(), StoreError> {
    for (mode, stats) in &profile.stats.modes {
        if modes.is_some_and(|m| m != mode) {
            continue;
        }
        let Some(rating) = &stats.rating else {
            continue;
        };
        boards
            .put_rating(&profile.uid, mode, &rating_json(rating), rating.games)
            .await?;
        if let Some(season) = &rating.season {
            boards
                .put_standing(season, mode, &profile.uid, rating.rating, rating.games)
                .await?;
        }
    }
    Ok(())
}

/// Rebuilds Redis's ratings and this season's boards from every profile in
/// the archive when Redis has lost them (a flush, a new Redis) or has not
/// been built this season; checks every `every`.
pub async fn keep_built(archiver: Arc<Archiver>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let season = archiver
            .archive
            .seasons()
            .at(dashdice_proto::clock::now_ms());
        match archiver.boards.built().await {
            Ok(Some(built)) if built == season => continue,
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, "cannot check the leaderboards");
                continue;
            }
        }
        match rebuild(&archiver).await {
            Ok(profiles) => {
                if archiver.boards.mark_built(&season).await.is_ok() {
                    tracing::info!(
                        profiles,
                        season,
                        "rebuilt ratings and leaderboards from the archive"
                    );
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "rebuilding the leaderboards failed; trying again")
            }
        }
    }
}

/// Copies every profile's ratings to Redis; how many profiles there were.
pub async fn rebuild(archiver: &Archiver) -> Result<u64, String> {
    let mut profiles = archiver
        .archive
        .profiles()
        .await
        .map_err(|e| e.to_string())?;
    let mut seen = 0;
    while let Some(profile) = profiles.next().await {
        let profile = profile.map_err(|e| e.to_string())?;
        copy(&archiver.boards, &profile, None)
            .await
            .map_err(|e| format!("redis: {e}"))?;
        seen += 1;
    }
    Ok(seen)
}

/// A board page: `limit` entries from the top, or centred on `around`'s
/// place; with `around`'s own entry.
pub async fn page(
    boards: &Leaderboards,
    season: &str,
    mode: &str,
    limit: u64,
    around: Option<&str>,
) -> Result<(u64, Vec<LeaderboardEntry>, Option<LeaderboardEntry>), StoreError> {
    let total = boards.total(season, mode).await?;
    let mine = match around {
        Some(uid) => boards.rank(season, mode, uid).await?,
        None => None,
    };
    let start = match mine {
        Some(rank) => rank.saturating_sub(limit / 2),
        None => 0,
    };
    let rows = if limit == 0 {
        Vec::new()
    } else {
        boards.range(season, mode, start, start + limit - 1).await?
    };
    let entries: Vec<LeaderboardEntry> = rows
        .into_iter()
        .enumerate()
        .map(|(i, (uid, rating))| LeaderboardEntry {
            rank: start + i as u64 + 1,
            uid,
            display_name: None,
            rating,
        })
        .collect();
    let me = mine.and_then(|rank| entries.iter().find(|e| e.rank == rank + 1).cloned());
    Ok((total, entries, me))
}
