//! Who may play whom, and when: the rating window that widens with wait, the
//! regions a ticket accepts, connection quality, and choosing the best pair.
//!
//! Pure functions of the tickets and the clock: no Redis, no NATS. The store
//! fetches candidates in the window and claims the chosen pair atomically.

use std::collections::BTreeMap;

use dashdice_proto::queue::QueueKind;
use serde::{Deserialize, Serialize};

/// A player waiting in one queue (mode × kind), from one region.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub player: String,
    pub mode: String,
    pub kind: QueueKind,
    pub region: String,
    pub rating: f64,
    /// When the player joined (ms since the epoch). A ticket put back after a
    /// failed match creation keeps it, so its wait is not reset.
    pub joined_ms: u64,
    /// The player reported a poor connection: two of these never meet.
    pub poor_connection: bool,
    /// Measured round trip to other regions, ms (the client's pings).
    #[serde(default)]
    pub latency_ms: BTreeMap<String, u32>,
    /// Unique per join, so a stale reference to an older ticket of the same
    /// player is recognised.
    pub ticket_id: String,
}

/// The knobs of matching. Defaults follow the issue: ±50 at once, +50 every
/// 5 s, unbounded after 60 s in quick queues, capped at ±400 in ranked; own
/// region only for the first 10 s; a bot after 5 s in quick queues.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    pub initial_window: f64,
    pub widen_by: f64,
    pub widen_every_ms: u64,
    /// Quick queues: after this wait, any rating will do.
    pub quick_unbounded_after_ms: u64,
    /// Ranked queues: the window never grows past this.
    pub ranked_max_window: f64,
    /// After this wait, other regions within `max_latency_ms` are acceptable.
    pub other_regions_after_ms: u64,
    pub max_latency_ms: u32,
    /// Quick queues: after this wait with no human opponent, play a bot.
    /// `None` disables bots.
    pub bot_after_ms: Option<u64>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            initial_window: 50.0,
            widen_by: 50.0,
            widen_every_ms: 5_000,
            quick_unbounded_after_ms: 60_000,
            ranked_max_window: 400.0,
            other_regions_after_ms: 10_000,
            max_latency_ms: 150,
            bot_after_ms: Some(5_000),
        }
    }
}

/// How long private matches and rematches stay open. Apart from [`Policy`]
/// because they concern players who chose each other, not pairing.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PrivatePolicy {
    /// An invite code works this long after it is made (ms); the host waits
    /// at most this long.
    pub code_ttl_ms: u64,
    /// After a match ends, its players may agree to a rematch for this long
    /// (ms, from the end as the host recorded it).
    pub rematch_window_ms: u64,
}

impl Default for PrivatePolicy {
    /// Ten minutes to share a code; thirty seconds to ask for a rematch.
    fn default() -> Self {
        PrivatePolicy {
            code_ttl_ms: 10 * 60_000,
            rematch_window_ms: 30_000,
        }
    }
}

/// How far from its own rating a ticket will accept an opponent.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Window {
    Within(f64),
    Unbounded,
}

impl Window {
    pub fn contains(self, distance: f64) -> bool {
        match self {
            Window::Within(w) => distance <= w,
            Window::Unbounded => true,
        }
    }

    /// The rating range to search around `rating`.
    pub fn range(self, rating: f64) -> (f64, f64) {
        match self {
            Window::Within(w) => (rating - w, rating + w),
            Window::Unbounded => (f64::NEG_INFINITY, f64::INFINITY),
        }
    }
}

impl Policy {
    /// The rating window of a ticket of `kind` that has waited `waited_ms`.
    pub fn window(&self, kind: QueueKind, waited_ms: u64) -> Window {
        if kind == QueueKind::Quick && waited_ms >= self.quick_unbounded_after_ms {
            return Window::Unbounded;
        }
        let steps = waited_ms
            .checked_div(self.widen_every_ms)
            .unwrap_or(0)
            .min(1_000_000) as f64;
        let w = self.initial_window + steps * self.widen_by;
        match kind {
            QueueKind::Ranked => Window::Within(w.min(self.ranked_max_window)),
            QueueKind::Quick => Window::Within(w),
        }
    }

    /// The regions `ticket` accepts opponents from, own region first.
    pub fn regions(&self, ticket: &Ticket, now_ms: u64) -> Vec<String> {
        let mut regions = vec![ticket.region.clone()];
        if waited(ticket, now_ms) >= self.other_regions_after_ms {
            regions.extend(
                ticket
                    .latency_ms
                    .iter()
                    .filter(|(region, ms)| **ms <= self.max_latency_ms && **region != ticket.region)
                    .map(|(region, _)| region.clone()),
            );
        }
        regions
    }

    /// Whether `ticket` accepts opponents from `region` now (what
    /// [`regions`](Self::regions) lists, without building the list).
    fn accepts_region(&self, ticket: &Ticket, region: &str, now_ms: u64) -> bool {
        region == ticket.region
            || (waited(ticket, now_ms) >= self.other_regions_after_ms
                && ticket
                    .latency_ms
                    .get(region)
                    .is_some_and(|ms| *ms <= self.max_latency_ms))
    }

    /// Whether `a`, as things stand at `now_ms`, would play `b`.
    fn accepts(&self, a: &Ticket, b: &Ticket, now_ms: u64) -> bool {
        let distance = (a.rating - b.rating).abs();
        self.window(a.kind, waited(a, now_ms)).contains(distance)
            && self.accepts_region(a, &b.region, now_ms)
    }

    /// Whether `a` and `b` may be paired now: same queue, different players,
    /// not both on poor connections, and each inside the other's window and
    /// regions.
    pub fn compatible(&self, a: &Ticket, b: &Ticket, now_ms: u64) -> bool {
        a.player != b.player
            && a.mode == b.mode
            && a.kind == b.kind
            && !(a.poor_connection && b.poor_connection)
            && self.accepts(a, b, now_ms)
            && self.accepts(b, a, now_ms)
    }

    /// The best opponent for `a` among `candidates`: the closest rating, then
    /// the longest wait.
    pub fn best_partner<'a>(
        &self,
        a: &Ticket,
        candidates: impl IntoIterator<Item = &'a Ticket>,
        now_ms: u64,
    ) -> Option<&'a Ticket> {
        candidates
            .into_iter()
            .filter(|b| self.compatible(a, b, now_ms))
            .min_by(|x, y| preference(a, x, y))
    }

    /// Pairs as many of `tickets` as possible: the longest-waiting ticket
    /// first, each with its best remaining partner. Returns index pairs.
    pub fn pair_all(&self, tickets: &[Ticket], now_ms: u64) -> Vec<(usize, usize)> {
        let mut order: Vec<usize> = (0..tickets.len()).collect();
        order.sort_by_key(|&i| (tickets[i].joined_ms, i));
        let mut taken = vec![false; tickets.len()];
        let mut pairs = Vec::new();
        for &i in &order {
            if taken[i] {
                continue;
            }
            let a = &tickets[i];
            let best = order
                .iter()
                .copied()
                .filter(|&j| j != i && !taken[j] && self.compatible(a, &tickets[j], now_ms))
                .min_by(|&x, &y| preference(a, &tickets[x], &tickets[y]));
            if let Some(j) = best {
                taken[i] = true;
                taken[j] = true;
                pairs.push((i, j));
            }
        }
        pairs
    }

    /// Whether `ticket` has waited long enough to be given a bot.
    pub fn wants_bot(&self, ticket: &Ticket, now_ms: u64) -> bool {
        ticket.kind == QueueKind::Quick
            && self
                .bot_after_ms
                .is_some_and(|after| waited(ticket, now_ms) >= after)
    }
}

/// How long `ticket` has waited at `now_ms`.
pub fn waited(ticket: &Ticket, now_ms: u64) -> u64 {
    now_ms.saturating_sub(ticket.joined_ms)
}

/// Orders `x` before `y` as a partner for `a`: closer rating, then longer wait,
/// then player id (so the choice is deterministic).
fn preference(a: &Ticket, x: &Ticket, y: &Ticket) -> std::cmp::Ordering {
    let dx = (a.rating - x.rating).abs();
    let dy = (a.rating - y.rating).abs();
    dx.total_cmp(&dy)
        .then(x.joined_ms.cmp(&y.joined_ms))
        .then_with(|| x.player.cmp(&y.player))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ticket(player: &str, rating: f64, joined_ms: u64) -> Ticket {
        Ticket {
            player: player.into(),
            mode: "classic".into(),
            kind: QueueKind::Ranked,
            region: "eu".into(),
            rating,
            joined_ms,
            poor_connection: false,
            latency_ms: BTreeMap::new(),
            ticket_id: format!("t-{player}"),
        }
    }

    #[test]
    fn the_window_widens_on_schedule_and_is_capped_only_in_ranked() {
        let p = Policy::default();
        let w = |kind, ms| p.window(kind, ms);
        assert_eq!(w(QueueKind::Ranked, 0), Window::Within(50.0));
        assert_eq!(w(QueueKind::Ranked, 4_999), Window::Within(50.0));
        assert_eq!(w(QueueKind::Ranked, 5_000), Window::Within(100.0));
        assert_eq!(w(QueueKind::Ranked, 30_000), Window::Within(350.0));
        assert_eq!(w(QueueKind::Ranked, 600_000), Window::Within(400.0));
        assert_eq!(w(QueueKind::Quick, 59_999), Window::Within(600.0));
        assert_eq!(w(QueueKind::Quick, 60_000), Window::Unbounded);
    }

    #[test]
    fn both_sides_must_accept_and_two_poor_connections_never_meet() {
        let p = Policy::default();
        let a = ticket("a", 1500.0, 0);
        let b = ticket("b", 1580.0, 10_000);
        // At 10 s, a's window is 150 but b (just arrived) only takes 50.
        assert!(!p.compatible(&a, &b, 10_000));
        // At 15 s b has waited 5 s: 100 ≥ 80.
        assert!(p.compatible(&a, &b, 15_000));
        let (mut c, mut d) = (ticket("c", 1500.0, 0), ticket("d", 1500.0, 0));
        c.poor_connection = true;
        assert!(p.compatible(&c, &d, 0));
        d.poor_connection = true;
        assert!(!p.compatible(&c, &d, 0));
        assert!(!p.compatible(&a, &a.clone(), 0), "not with oneself");
    }

    #[test]
    fn other_regions_open_after_the_wait_within_the_latency_limit() {
        let p = Policy::default();
        let mut eu = ticket("eu", 1500.0, 0);
        eu.latency_ms = [("us".to_owned(), 120), ("ap".to_owned(), 300)].into();
        let mut us = ticket("us", 1500.0, 0);
        us.region = "us".into();
        us.latency_ms = [("eu".to_owned(), 110)].into();
        assert_eq!(p.regions(&eu, 9_999), ["eu"]);
        assert_eq!(p.regions(&eu, 10_000), ["eu", "us"]);
        assert!(!p.compatible(&eu, &us, 9_999));
        assert!(p.compatible(&eu, &us, 10_000));
        let mut ap = ticket("ap", 1500.0, 0);
        ap.region = "ap".into();
        ap.latency_ms = [("eu".to_owned(), 100)].into();
        assert!(
            !p.compatible(&eu, &ap, 60_000),
            "eu's ping to ap is too high"
        );
    }

    #[test]
    fn the_best_partner_is_the_closest_rating_then_the_longest_wait() {
        let p = Policy::default();
        let a = ticket("a", 1500.0, 100);
        let near_late = ticket("near-late", 1510.0, 90);
        let near_early = ticket("near-early", 1490.0, 10);
        let far = ticket("far", 1540.0, 0);
        let all = [far.clone(), near_late.clone(), near_early.clone()];
        assert_eq!(p.best_partner(&a, &all, 100), Some(&all[2]));
        let pairs = p.pair_all(&[a.clone(), near_late, near_early, far], 100);
        // "far" waited longest and picks its closest: near-late (30) beats
        // a (40) and near-early (50).
        assert_eq!(pairs, [(3, 1), (2, 0)]);
    }

    #[test]
    fn bots_only_in_quick_queues_after_the_wait() {
        let p = Policy::default();
        let mut t = ticket("a", 1500.0, 0);
        assert!(!p.wants_bot(&t, 60_000), "never in ranked");
        t.kind = QueueKind::Quick;
        assert!(!p.wants_bot(&t, 4_999));
        assert!(p.wants_bot(&t, 5_000));
        let none = Policy {
            bot_after_ms: None,
            ..Policy::default()
        };
        assert!(!none.wants_bot(&t, 60_000));
    }
}
