//! What a finished match changes: the pure accounting from a
//! [`MatchRecord`] and its players' profiles to the archived match, the new
//! profiles (stats, ratings) and the history entries. No I/O; the archive
//! runs it inside a Firestore transaction, so each match is counted once.

use std::collections::BTreeMap;

use dashdice_mode_sdk::{Action, MatchResult};
use dashdice_proto::archive::{
    HistoryEntry, MatchmakingStats, ModeStats, Profile, RatingChange, RatingFigures,
};
use dashdice_proto::record::MatchRecord;
use skillratings::Outcomes;
use skillratings::glicko2::{Glicko2Config, Glicko2Rating, glicko2};

use crate::schema::{HistoryDoc, MatchDoc};

/// How many modes a profile lists as preferred.
const PREFERRED_MODES: usize = 3;

/// Everything one match writes.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub matched: MatchDoc,
    /// The players' new profiles (humans only; bots have none).
    pub profiles: Vec<Profile>,
    /// Each human player's history entry.
    pub history: Vec<(String, HistoryDoc)>,
}

/// Ranked seasons: all time, or consecutive periods of `length_days` from
/// `start_ms`, named `s1`, `s2`, ... A season resets the leaderboards, not
/// the ratings: a rating measures skill, a season measures play in it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seasons {
    pub length_days: Option<u32>,
    pub start_ms: u64,
}

impl Seasons {
    pub const ALL_TIME: Seasons = Seasons {
        length_days: None,
        start_ms: 0,
    };

    /// The season at `ms` (ms since the Unix epoch).
    pub fn at(&self, ms: u64) -> String {
        match self.length_days {
            None | Some(0) => "all-time".to_owned(),
            Some(days) => {
                let length = u64::from(days) * 86_400_000;
                format!("s{}", ms.saturating_sub(self.start_ms) / length + 1)
            }
        }
    }
}

/// When the match ended: its last action's time, else `now_ms`.
pub fn ended_ms(record: &MatchRecord, now_ms: u64) -> u64 {
    record
        .actions
        .iter()
        .rev()
        .find_map(|a| a.at_ms)
        .unwrap_or(now_ms)
        .max(record.created_ms)
}

/// How the match ended.
pub fn reason(record: &MatchRecord) -> &'static str {
    if record.void.is_some() {
        return "void";
    }
    match record.actions.last().map(|a| &a.action) {
        Some(Action::Forfeit) => "forfeit",
        Some(Action::Timeout) => "timeout",
        _ => "finished",
    }
}

/// Whether the match moves ratings: ranked, two humans, a result.
pub fn rated(record: &MatchRecord) -> bool {
    record.ranked && record.bots.is_empty() && record.void.is_none() && record.standings.len() == 2
}

/// The entry `record` makes, given its human players' current profiles
/// (`None` for a player with none yet) and the record's JSON as stored.
pub fn enter(
    record: &MatchRecord,
    record_json: String,
    current: &BTreeMap<String, Option<Profile>>,
    seasons: &Seasons,
    now_ms: u64,
) -> Entry {
    let ended = ended_ms(record, now_ms);
    let duration = ended.saturating_sub(record.created_ms);
    let season = seasons.at(ended);
    let rated = rated(record);
    let mut profiles: BTreeMap<String, Profile> = record
        .players
        .iter()
        .filter(|p| !record.bots.contains(p))
        .map(|p| {
            let profile = current
                .get(p)
                .cloned()
                .flatten()
                .unwrap_or_else(|| Profile {
                    uid: p.clone(),
                    created_ms: now_ms,
                    ..Profile::default()
                });
            (p.clone(), profile)
        })
        .collect();

    let mut rating_changes = Vec::new();
    if rated && let [a, b] = record.standings.as_slice() {
        let before = |p: &str| {
            profiles
                .get(p)
                .and_then(|pr| pr.stats.modes.get(&record.mode))
                .and_then(|m| m.rating.clone())
        };
        let (ra, rb) = (before(&a.player), before(&b.player));
        let (na, nb) = glicko2(
            &glicko(ra.as_ref()),
            &glicko(rb.as_ref()),
            &outcome(a.result),
            &Glicko2Config::new(),
        );
        for (player, old, new) in [(&a.player, ra, na), (&b.player, rb, nb)] {
            let old = old.unwrap_or_else(|| figures(Glicko2Rating::new()));
            let games = old.games + 1;
            let after = RatingFigures {
                games,
                best: if old.games == 0 {
                    new.rating
                } else {
                    old.best.max(new.rating)
                },
                season: Some(season.clone()),
                ..figures(new)
            };
            if let Some(profile) = profiles.get_mut(player.as_str()) {
                profile
                    .stats
                    .modes
                    .entry(record.mode.clone())
                    .or_default()
                    .rating = Some(after.clone());
            }
            rating_changes.push(RatingChange {
                player: player.clone(),
                before: old.rating,
                after: after.rating,
                games,
            });
        }
    }

    let mut history = Vec::new();
    for (uid, profile) in &mut profiles {
        let standing = record.standings.iter().find(|s| &s.player == uid);
        let result = match (&record.void, standing.map(|s| s.result)) {
            (Some(_), _) | (None, None) => "void",
            (None, Some(MatchResult::Win)) => "win",
            (None, Some(MatchResult::Loss)) => "loss",
            (None, Some(MatchResult::Draw)) => "draw",
        };
        count(&mut profile.stats.overall, result, duration);
        count(
            profile.stats.modes.entry(record.mode.clone()).or_default(),
            result,
            duration,
        );
        profile.stats.preferred_modes = preferred(&profile.stats);
        let change = rating_changes.iter().find(|c| &c.player == uid);
        let entry = HistoryEntry {
            match_id: record.match_id.clone(),
            mode: record.mode.clone(),
            ranked: record.ranked,
            ended_ms: ended,
            duration_ms: duration,
            result: result.to_owned(),
            score: standing.map_or(0, |s| s.score),
            rank: standing.map_or(0, |s| s.rank),
            opponents: record
                .players
                .iter()
                .filter(|p| *p != uid)
                .cloned()
                .collect(),
            rating_before: change.map(|c| c.before),
            rating_after: change.map(|c| c.after),
        };
        history.push((uid.clone(), HistoryDoc::new(entry)));
    }

    Entry {
        matched: MatchDoc {
            match_id: record.match_id.clone(),
            mode: record.mode.clone(),
            mode_version: record.mode_version.to_string(),
            ranked: record.ranked,
            players: record.players.clone(),
            bots: record.bots.clone(),
            standings: record.standings.clone(),
            started_ms: record.created_ms,
            ended_ms: ended,
            duration_ms: duration,
            reason: reason(record).to_owned(),
            season: rated.then_some(season),
            rating_changes,
            seed_hash: record.seed_hash.clone(),
            seed: record.seed.clone(),
            actions: record.actions.len() as u64,
            record_json,
            archived_ms: now_ms,
        },
        profiles: profiles.into_values().collect(),
        history,
    }
}

fn count(stats: &mut ModeStats, result: &str, duration_ms: u64) {
    stats.matches += 1;
    match result {
        "win" => stats.wins += 1,
        "loss" => stats.losses += 1,
        "draw" => stats.draws += 1,
        _ => stats.voids += 1,
    }
    let decided = stats.wins + stats.losses + stats.draws;
    stats.win_rate = if decided == 0 {
        0.0
    } else {
        stats.wins as f64 / decided as f64
    };
    stats.total_match_ms += duration_ms;
    stats.average_match_ms = stats.total_match_ms / stats.matches;
}

/// Modes by matches played, most first, then by name.
fn preferred(stats: &MatchmakingStats) -> Vec<String> {
    let mut modes: Vec<(&String, u64)> = stats.modes.iter().map(|(m, s)| (m, s.matches)).collect();
    modes.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    modes
        .into_iter()
        .take(PREFERRED_MODES)
        .map(|(m, _)| m.clone())
        .collect()
}

fn glicko(r: Option<&RatingFigures>) -> Glicko2Rating {
    r.map_or_else(Glicko2Rating::new, |r| Glicko2Rating {
        rating: r.rating,
        deviation: r.deviation,
        volatility: r.volatility,
    })
}

fn figures(r: Glicko2Rating) -> RatingFigures {
    RatingFigures {
        rating: r.rating,
        deviation: r.deviation,
        volatility: r.volatility,
        games: 0,
        best: r.rating,
        season: None,
    }
}

fn outcome(result: MatchResult) -> Outcomes {
    match result {
        MatchResult::Win => Outcomes::WIN,
        MatchResult::Loss => Outcomes::LOSS,
        MatchResult::Draw => Outcomes::DRAW,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashdice_mode_sdk::Standing;
    use dashdice_proto::ModeHash;
    use dashdice_proto::record::RecordedAction;

    fn record(ranked: bool, last: Action) -> MatchRecord {
        MatchRecord {
            match_id: "m1".into(),
            mode: "classic".into(),
            mode_version: ModeHash::of(b"classic"),
            players: vec!["ann".into(), "ben".into()],
            options: String::new(),
            created_ms: 1_000,
            ranked,
            bots: vec![],
            seed_hash: "h".into(),
            seed: "s".into(),
            actions: vec![RecordedAction {
                actor: "ben".into(),
                action: last,
                at_ms: Some(61_000),
            }],
            standings: vec![
                Standing {
                    player: "ann".into(),
                    score: 100,
                    rank: 1,
                    result: MatchResult::Win,
                },
                Standing {
                    player: "ben".into(),
                    score: 20,
                    rank: 2,
                    result: MatchResult::Loss,
                },
            ],
            void: None,
        }
    }

    #[test]
    fn a_ranked_win_counts_and_rates_both_players() {
        let e = enter(
            &record(true, Action::Forfeit),
            "{}".into(),
            &BTreeMap::new(),
            &Seasons::ALL_TIME,
            99_000,
        );
        assert_eq!(e.matched.reason, "forfeit");
        assert_eq!(e.matched.duration_ms, 60_000);
        assert_eq!(e.matched.season.as_deref(), Some("all-time"));
        let ann = &e.profiles[0];
        assert_eq!((ann.uid.as_str(), ann.stats.overall.wins), ("ann", 1));
        let classic = &ann.stats.modes["classic"];
        assert_eq!(classic.win_rate, 1.0);
        assert_eq!(classic.average_match_ms, 60_000);
        let rating = classic.rating.clone().expect("rated");
        assert!((rating.rating - 1662.3).abs() < 1.0, "{rating:?}");
        assert_eq!(rating.games, 1);
        assert_eq!(e.profiles[1].stats.modes["classic"].losses, 1);
        assert_eq!(e.matched.rating_changes.len(), 2);
        assert_eq!(e.history[0].1.entry.result, "win");
        assert_eq!(e.history[1].1.entry.opponents, vec!["ann".to_owned()]);
    }

    #[test]
    fn quick_and_void_matches_count_but_do_not_rate() {
        let e = enter(
            &record(false, Action::Bank),
            "{}".into(),
            &BTreeMap::new(),
            &Seasons::ALL_TIME,
            0,
        );
        assert!(e.matched.rating_changes.is_empty() && e.matched.season.is_none());
        assert!(e.profiles[0].stats.modes["classic"].rating.is_none());
        let mut void = record(true, Action::Bank);
        void.void = Some("quarantined".into());
        let e = enter(&void, "{}".into(), &BTreeMap::new(), &Seasons::ALL_TIME, 0);
        assert_eq!(e.matched.reason, "void");
        assert_eq!(e.profiles[0].stats.overall.voids, 1);
        assert_eq!(e.profiles[0].stats.overall.win_rate, 0.0);
        assert!(e.matched.rating_changes.is_empty());
    }

    #[test]
    fn seasons_are_numbered_from_their_start() {
        let weekly = Seasons {
            length_days: Some(7),
            start_ms: 1_000,
        };
        assert_eq!(weekly.at(1_000), "s1");
        assert_eq!(weekly.at(1_000 + 7 * 86_400_000), "s2");
        assert_eq!(Seasons::ALL_TIME.at(5), "all-time");
    }
}
