//! The turn table every push-your-luck mode shares.
//!
//! Seats with banked scores, whose turn it is, the turn score, the turn's
//! multiplier and whether the game is over. Every change goes through a method
//! that also records the matching [`Event`], so a mode cannot change a score
//! without telling the clients, and the end-of-turn clean-up (turn score and
//! multiplier cleared) lives in one place.

use serde::{Deserialize, Serialize};

use crate::dice::TwoDice;
use crate::json::{JsonObject, escape_into};
use crate::types::{
    BankedReason, BustReason, EndReason, Event, MatchResult, ModeError, PlayerId, Standing,
};

/// One player's place at the table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seat {
    pub id: PlayerId,
    pub banked: i32,
}

/// Whether the game is still running.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Playing,
    Finished {
        reason: EndReason,
        /// `None` is a draw.
        winner: Option<usize>,
        /// The seat that forfeited, ranked last.
        forfeited: Option<usize>,
    },
}

/// The shared part of every mode's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub seats: Vec<Seat>,
    /// Index into `seats` of the player on turn.
    pub turn: usize,
    /// Points collected this turn and not yet safe.
    pub turn_score: i32,
    /// Factor for normal rolls this turn; 1 means none. Cleared when the turn ends.
    pub multiplier: u32,
    pub status: Status,
}

impl Table {
    /// Seats the players in order, each with `starting_score`, `first` on turn.
    pub fn new(players: Vec<PlayerId>, first: usize, starting_score: i32) -> Self {
        Table {
            seats: players
                .into_iter()
                .map(|id| Seat {
                    id,
                    banked: starting_score,
                })
                .collect(),
            turn: first,
            turn_score: 0,
            multiplier: 1,
            status: Status::Playing,
        }
    }

    /// Refuses a decoded table whose seat indices point past the seats (the
    /// turn, the winner, the forfeiter), so corrupt state is an error rather
    /// than a panic.
    pub fn check(&self) -> Result<(), ModeError> {
        let seats = self.seats.len();
        let (winner, forfeited) = match self.status {
            Status::Playing => (None, None),
            Status::Finished {
                winner, forfeited, ..
            } => (winner, forfeited),
        };
        let bad = |seat: Option<usize>| seat.is_some_and(|s| s >= seats);
        if bad(Some(self.turn)) || bad(winner) || bad(forfeited) {
            return Err(ModeError::CorruptState(format!(
                "seat index out of range for {seats} seats"
            )));
        }
        Ok(())
    }

    pub fn is_over(&self) -> bool {
        matches!(self.status, Status::Finished { .. })
    }

    pub fn seat_of(&self, player: &str) -> Option<usize> {
        self.seats.iter().position(|s| s.id == player)
    }

    /// The id of the player on turn.
    pub fn on_turn(&self) -> &str {
        &self.seats[self.turn].id
    }

    /// The seat after the one on turn: in a two-player mode, the opponent.
    pub fn next_seat(&self) -> usize {
        (self.turn + 1) % self.seats.len()
    }

    fn id(&self, seat: usize) -> PlayerId {
        self.seats[seat].id.clone()
    }

    /// Records a roll by the player on turn.
    pub fn rolled(&self, dice: TwoDice, events: &mut Vec<Event>) {
        events.push(Event::Rolled {
            player: self.id(self.turn),
            dice: dice.to_vec(),
            kind: dice.kind(),
        });
    }

    pub fn add_turn_score(&mut self, delta: i32, events: &mut Vec<Event>) {
        self.turn_score += delta;
        events.push(Event::TurnScoreChanged {
            player: self.id(self.turn),
            delta,
            total: self.turn_score,
        });
    }

    /// Sets the turn's multiplier, recording it only when it changes.
    pub fn set_multiplier(&mut self, multiplier: u32, events: &mut Vec<Event>) {
        if self.multiplier != multiplier {
            self.multiplier = multiplier;
            events.push(Event::MultiplierChanged {
                player: self.id(self.turn),
                multiplier,
            });
        }
    }

    pub fn add_banked(
        &mut self,
        seat: usize,
        delta: i32,
        reason: BankedReason,
        events: &mut Vec<Event>,
    ) {
        self.seats[seat].banked += delta;
        events.push(Event::BankedScoreChanged {
            player: self.id(seat),
            delta,
            total: self.seats[seat].banked,
            reason,
        });
    }

    pub fn set_banked(
        &mut self,
        seat: usize,
        total: i32,
        reason: BankedReason,
        events: &mut Vec<Event>,
    ) {
        let delta = total - self.seats[seat].banked;
        self.add_banked(seat, delta, reason, events);
    }

    /// Loses the turn score and passes the turn.
    pub fn bust(&mut self, reason: BustReason, events: &mut Vec<Event>) {
        events.push(Event::Busted {
            player: self.id(self.turn),
            lost: self.turn_score,
            reason,
        });
        self.pass_turn(events);
    }

    /// Ends the turn: the turn score and multiplier are cleared and the next
    /// seat is on turn.
    pub fn pass_turn(&mut self, events: &mut Vec<Event>) {
        let from = self.id(self.turn);
        self.clear_turn();
        self.turn = self.next_seat();
        events.push(Event::TurnPassed {
            from,
            to: self.id(self.turn),
        });
    }

    fn clear_turn(&mut self) {
        self.turn_score = 0;
        self.multiplier = 1;
    }

    /// Ends the game. `winner: None` is a draw.
    pub fn finish(&mut self, reason: EndReason, winner: Option<usize>, events: &mut Vec<Event>) {
        self.finish_with(reason, winner, None, events);
    }

    /// The player in `seat` leaves; the best of the others wins.
    pub fn forfeit(&mut self, seat: usize, events: &mut Vec<Event>) {
        events.push(Event::Forfeited {
            player: self.id(seat),
        });
        let winner = (0..self.seats.len())
            .filter(|&s| s != seat)
            .max_by_key(|&s| (self.seats[s].banked, std::cmp::Reverse(s)));
        self.finish_with(EndReason::Forfeit, winner, Some(seat), events);
    }

    fn finish_with(
        &mut self,
        reason: EndReason,
        winner: Option<usize>,
        forfeited: Option<usize>,
        events: &mut Vec<Event>,
    ) {
        self.clear_turn();
        self.status = Status::Finished {
            reason,
            winner,
            forfeited,
        };
        if let Some(standings) = self.standings() {
            events.push(Event::GameOver { reason, standings });
        }
    }

    /// Final standings, present exactly when the game is over.
    ///
    /// The winner ranks first. The others follow by score, highest first, tied
    /// scores sharing a rank, and a forfeiting player last. In a draw everyone
    /// with the top score shares rank 1.
    pub fn standings(&self) -> Option<Vec<Standing>> {
        let Status::Finished {
            winner, forfeited, ..
        } = self.status
        else {
            return None;
        };
        // Sort key: winner first, forfeiter last, then by score.
        let key = |s: usize| {
            (
                Some(s) != winner,
                Some(s) == forfeited,
                std::cmp::Reverse(self.seats[s].banked),
            )
        };
        let mut order: Vec<usize> = (0..self.seats.len()).collect();
        order.sort_by_key(|&s| key(s));
        let mut standings: Vec<Standing> = Vec::with_capacity(order.len());
        for (i, &s) in order.iter().enumerate() {
            let rank = match i.checked_sub(1).map(|p| order[p]) {
                Some(prev) if key(prev) == key(s) => standings[i - 1].rank,
                _ => i as u32 + 1,
            };
            let result = match winner {
                Some(w) if w == s => MatchResult::Win,
                None if rank == 1 => MatchResult::Draw,
                _ => MatchResult::Loss,
            };
            standings.push(Standing {
                player: self.id(s),
                score: self.seats[s].banked,
                rank,
                result,
            });
        }
        Some(standings)
    }

    /// The public view every mode shares; `extra` adds the mode's own fields.
    pub fn view(&self, mode: &str, extra: impl FnOnce(&mut JsonObject)) -> String {
        let (status, winner, draw, end_reason) = match self.status {
            Status::Playing => ("playing", None, false, None),
            Status::Finished { reason, winner, .. } => (
                "finished",
                winner.map(|w| self.seats[w].id.as_str()),
                winner.is_none(),
                Some(match reason {
                    EndReason::Won => "won",
                    EndReason::Completed => "completed",
                    EndReason::Forfeit => "forfeit",
                }),
            ),
        };
        let mut players = String::with_capacity(32 * self.seats.len());
        players.push('[');
        for (i, seat) in self.seats.iter().enumerate() {
            if i > 0 {
                players.push(',');
            }
            players.push_str("{\"id\":");
            escape_into(&mut players, &seat.id);
            players.push_str(",\"score\":");
            players.push_str(&seat.banked.to_string());
            players.push('}');
        }
        players.push(']');
        let mut view = JsonObject::new();
        view.str("mode", mode)
            .str("status", status)
            .raw("players", &players)
            .opt_str("turn", (!self.is_over()).then(|| self.on_turn()))
            .int("turn_score", self.turn_score)
            .int("multiplier", self.multiplier)
            .opt_str("winner", winner)
            .bool("draw", draw)
            .opt_str("end_reason", end_reason);
        extra(&mut view);
        view.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::new(vec!["a".into(), "b".into()], 0, 0)
    }

    #[test]
    fn pass_turn_clears_turn_state() {
        let mut t = table();
        let mut ev = vec![];
        t.add_turn_score(12, &mut ev);
        t.set_multiplier(2, &mut ev);
        t.pass_turn(&mut ev);
        assert_eq!((t.turn, t.turn_score, t.multiplier), (1, 0, 1));
        assert_eq!(
            ev.last(),
            Some(&Event::TurnPassed {
                from: "a".into(),
                to: "b".into()
            })
        );
    }

    #[test]
    fn multiplier_event_only_on_change() {
        let mut t = table();
        let mut ev = vec![];
        t.set_multiplier(1, &mut ev);
        assert!(ev.is_empty());
        t.set_multiplier(2, &mut ev);
        t.set_multiplier(2, &mut ev);
        assert_eq!(ev.len(), 1);
    }

    #[test]
    fn forfeit_makes_the_other_player_win_whatever_the_score() {
        let mut t = table();
        t.seats[0].banked = 90;
        let mut ev = vec![];
        t.forfeit(0, &mut ev);
        let s = t.standings().unwrap();
        assert_eq!(s[0].player, "b");
        assert_eq!((s[0].rank, s[0].result), (1, MatchResult::Win));
        assert_eq!((s[1].rank, s[1].result), (2, MatchResult::Loss));
    }

    #[test]
    fn draw_shares_rank_one() {
        let mut t = table();
        t.seats[0].banked = 40;
        t.seats[1].banked = 40;
        t.finish(EndReason::Completed, None, &mut vec![]);
        let s = t.standings().unwrap();
        assert!(
            s.iter()
                .all(|s| s.rank == 1 && s.result == MatchResult::Draw)
        );
    }

    #[test]
    fn no_standings_while_playing() {
        assert!(table().standings().is_none());
    }
}
