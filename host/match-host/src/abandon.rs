//! Abandoned matches: a player who stays disconnected past the reconnect
//! window forfeits (the spec's rule: the other player wins), and a match
//! whose every player is gone ends at once as void (`abandoned`: no winner,
//! no rating moved).
//!
//! Pure rules over what presence says of each player and what the match's
//! log says of their last actions; the service asks presence
//! (`service.rs`) and the hosting logic applies a verdict through the same
//! compare-and-set path as any action ([`MatchHost::end_abandoned`]).
//!
//! Who counts as **gone** (all of these): a human (bots are never gone);
//! presence answered, and says *offline*; presence has seen them connected
//! at some time (a player it never saw, such as a REST-only client, cannot
//! be judged by it, and is left to the turn timers); and the window has run
//! out since the latest of: their last connection was heard from, their
//! last action in the match (a player who acts is present, whatever
//! presence says), and the match's start. When presence does not answer,
//! nothing is decided.
//!
//! [`MatchHost::end_abandoned`]: crate::MatchHost::end_abandoned

use std::time::Duration;

/// The reconnect window of `dashdice match-host` unless told otherwise.
pub const DEFAULT_RECONNECT_WINDOW: Duration = Duration::from_secs(30);
/// The void reason of a match every player left.
pub const ABANDONED: &str = "abandoned";

/// How often the live matches are checked for gone players with `window`:
/// a third of it, at least a second and at most ten.
pub fn check_every(window: Duration) -> Duration {
    (window / 3).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// What presence says of a player.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Online or away: connected.
    Connected,
    /// No live connection; one was last heard from at `last_seen_ms`.
    Offline { last_seen_ms: u64 },
    /// Presence never saw the player connected (or did not answer).
    Unknown,
}

/// One seat, as the verdict needs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Player {
    pub seat: u8,
    pub bot: bool,
    pub seen: Seen,
    /// When the player last acted in the match (ms since the epoch).
    pub last_action_ms: Option<u64>,
}

/// What to do with a live match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Nobody is gone (or nothing can be told): the turn timers go on.
    Stays,
    /// This seat is gone and forfeits; of several gone, the one who left
    /// first.
    Forfeit { seat: u8 },
    /// Every player is gone: the match ends as void, [`ABANDONED`].
    Void,
}

impl Verdict {
    /// The metric label.
    pub fn outcome(&self) -> &'static str {
        match self {
            Verdict::Stays => "stays",
            Verdict::Forfeit { .. } => "forfeit",
            Verdict::Void => "void",
        }
    }
}

/// Since when `seen` (with the match created at `created_ms`) says the
/// player is gone, ignoring their actions; `None` if they are not.
fn gone_since(seen: Seen, created_ms: u64) -> Option<u64> {
    match seen {
        Seen::Offline { last_seen_ms } if last_seen_ms > 0 => Some(last_seen_ms.max(created_ms)),
        _ => None,
    }
}

/// Whether presence alone says a player of a match created at
/// `created_ms` may be gone at `now_ms`: the cheap filter before the
/// match's log is read.
pub fn may_be_gone(seen: Seen, created_ms: u64, now_ms: u64, window_ms: u64) -> bool {
    gone_since(seen, created_ms).is_some_and(|since| now_ms.saturating_sub(since) >= window_ms)
}

/// The verdict on a live match created at `created_ms`, at `now_ms`.
pub fn verdict(players: &[Player], created_ms: u64, now_ms: u64, window_ms: u64) -> Verdict {
    let gone: Vec<(u64, u8)> = players
        .iter()
        .filter(|p| !p.bot)
        .filter_map(|p| {
            let since = gone_since(p.seen, created_ms)?.max(p.last_action_ms.unwrap_or(0));
            (now_ms.saturating_sub(since) >= window_ms).then_some((since, p.seat))
        })
        .collect();
    if gone.is_empty() {
        Verdict::Stays
    } else if gone.len() == players.len() {
        Verdict::Void
    } else {
        let first = gone.iter().min().map_or(0, |&(_, seat)| seat);
        Verdict::Forfeit { seat: first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 30_000;
    const START: u64 = 1_000_000;

    fn human(seat: u8, seen: Seen, last_action_ms: Option<u64>) -> Player {
        Player {
            seat,
            bot: false,
            seen,
            last_action_ms,
        }
    }

    fn off(last_seen_ms: u64) -> Seen {
        Seen::Offline { last_seen_ms }
    }

    #[test]
    fn both_gone_past_the_window_is_void() {
        let now = START + 100_000;
        let players = [
            human(0, off(START + 10), None),
            human(1, off(START + 20), None),
        ];
        assert_eq!(verdict(&players, START, now, W), Verdict::Void);
        // Not yet past the window for one of them: that one is not gone,
        // so the other forfeits.
        let players = [
            human(0, off(START + 10), None),
            human(1, off(now - 5), None),
        ];
        assert_eq!(
            verdict(&players, START, now, W),
            Verdict::Forfeit { seat: 0 }
        );
    }

    #[test]
    fn one_gone_forfeits_and_the_first_to_leave_of_several() {
        let now = START + 100_000;
        let players = [
            human(0, Seen::Connected, None),
            human(1, off(START + 50), None),
        ];
        assert_eq!(
            verdict(&players, START, now, W),
            Verdict::Forfeit { seat: 1 }
        );
        let three = [
            human(0, Seen::Connected, None),
            human(1, off(START + 50), None),
            human(2, off(START + 10), None),
        ];
        assert_eq!(verdict(&three, START, now, W), Verdict::Forfeit { seat: 2 });
    }

    #[test]
    fn a_player_who_acts_is_present_whatever_presence_says() {
        let now = START + 100_000;
        let players = [
            human(0, off(START + 10), Some(now - 1_000)),
            human(1, Seen::Connected, None),
        ];
        assert_eq!(verdict(&players, START, now, W), Verdict::Stays);
        // Their last action, too, ages past the window.
        let players = [
            human(0, off(START + 10), Some(now - W)),
            human(1, Seen::Connected, None),
        ];
        assert_eq!(
            verdict(&players, START, now, W),
            Verdict::Forfeit { seat: 0 }
        );
    }

    #[test]
    fn never_seen_unknown_bots_and_young_matches_are_left_to_the_timers() {
        let now = START + 100_000;
        // REST-only clients: presence never saw them.
        let rest = [human(0, off(0), None), human(1, off(0), None)];
        assert_eq!(verdict(&rest, START, now, W), Verdict::Stays);
        let unknown = [human(0, Seen::Unknown, None), human(1, Seen::Unknown, None)];
        assert_eq!(verdict(&unknown, START, now, W), Verdict::Stays);
        // A bot is never gone: the human who left forfeits to it.
        let bot = Player {
            seat: 1,
            bot: true,
            seen: off(START),
            last_action_ms: None,
        };
        let players = [human(0, off(START + 10), None), bot];
        assert_eq!(
            verdict(&players, START, now, W),
            Verdict::Forfeit { seat: 0 }
        );
        // Gone long before the match started: the window runs from the start.
        let young = [human(0, off(10), None), human(1, off(20), None)];
        assert_eq!(verdict(&young, START, START + W - 1, W), Verdict::Stays);
        assert_eq!(verdict(&young, START, START + W, W), Verdict::Void);
        assert!(!may_be_gone(off(10), START, START + W - 1, W));
        assert!(may_be_gone(off(10), START, START + W, W));
        assert!(!may_be_gone(off(0), START, START + W, W));
        assert!(!may_be_gone(Seen::Connected, START, START + W, W));
    }

    #[test]
    fn checks_run_a_third_of_the_window_within_bounds() {
        assert_eq!(
            check_every(Duration::from_secs(30)),
            Duration::from_secs(10)
        );
        assert_eq!(check_every(Duration::from_secs(2)), Duration::from_secs(1));
        assert_eq!(
            check_every(Duration::from_secs(600)),
            Duration::from_secs(10)
        );
    }
}
