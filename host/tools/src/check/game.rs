//! One checked game: played on a warm instance, questioned on a side
//! instance, replayed on fresh ones (see the parent module for why).

use std::sync::atomic::{AtomicU32, Ordering};

use dashdice_mode_sdk::{Action, BotMove, MatchConfig, MatchResult, ModeError, ModeInfo, Outcome};
use dashdice_runtime::{Acted, CallError, Mode, Session, Step};
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use super::contract::{check_outcome, check_view};
use super::{
    Check, CheckOptions, Location, STRANGER, UNKNOWN_ACTION, Worst, player_ids, player_range,
};

/// A game that went wrong: the check it fails, where, and how.
#[derive(Clone, Debug)]
pub(super) struct Failure {
    pub(super) check: Check,
    pub(super) at: Location,
    pub(super) detail: String,
}

/// What one game found.
pub(super) struct GameReport {
    pub(super) index: u32,
    pub(super) failure: Option<Failure>,
    pub(super) warnings: Vec<(Check, Option<Location>, String)>,
    pub(super) worst: Worst,
    pub(super) finished: bool,
    pub(super) forfeited: bool,
    pub(super) bot: bool,
    pub(super) actions: u32,
}

/// What one game fed the warm instance, and what came back: the script the
/// fresh replay must reproduce.
enum Input {
    Start {
        config: MatchConfig,
        entropy: Vec<u8>,
    },
    Act {
        actor: String,
        step: Step,
    },
}

struct Recorded {
    input: Input,
    result: Result<Acted, ModeError>,
}

pub(super) fn play(
    mode: &Mode,
    options: &CheckOptions,
    index: u32,
    stop: &AtomicU32,
) -> GameReport {
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(u64::from(index));
    let (lo, hi) = player_range(mode.info());
    let count = lo + (rng.next_u32() as usize) % (hi - lo + 1);
    let players = player_ids(count, rng.next_u32() % 4 == 0);
    let bot = rng.next_u32() % 5 == 0;
    let forfeit_at = (!bot && rng.next_u32() % 8 == 0).then(|| 1 + rng.next_u32() % 30);
    let probe_at = 1 + rng.next_u32() % 40;
    let first_player = (rng.next_u32() % 4 == 0)
        .then(|| players[(rng.next_u32() as usize) % players.len()].clone());
    let mut game = Game {
        mode,
        info: mode.info(),
        options,
        index,
        stop,
        rng,
        players,
        bot,
        forfeit_at,
        probe_at,
        first_player,
        record: Vec::new(),
        warnings: Vec::new(),
        worst: Worst::new(mode.limits()),
        dice: None,
        finished: false,
        forfeited: false,
        actions: 0,
    };
    let failure = game.run().err();
    GameReport {
        index,
        failure,
        warnings: game.warnings,
        worst: game.worst,
        finished: game.finished,
        forfeited: game.forfeited,
        bot,
        actions: game.actions,
    }
}

/// One game being checked.
struct Game<'a> {
    mode: &'a Mode,
    info: &'a ModeInfo,
    options: &'a CheckOptions,
    index: u32,
    /// The first failing game so far: a later game may give up early.
    stop: &'a AtomicU32,
    rng: ChaCha8Rng,
    players: Vec<String>,
    bot: bool,
    forfeit_at: Option<u32>,
    probe_at: u32,
    first_player: Option<String>,
    record: Vec<Recorded>,
    warnings: Vec<(Check, Option<Location>, String)>,
    worst: Worst,
    /// Dice the mode threw in this game: the shape bad dice are made from.
    dice: Option<Vec<u8>>,
    finished: bool,
    forfeited: bool,
    actions: u32,
}

/// The state a game is in between actions.
struct Now {
    state: Vec<u8>,
    turn: Option<String>,
}

impl Game<'_> {
    fn at(&self, step: u32) -> Location {
        Location {
            game: self.index,
            step,
        }
    }

    fn failure(&self, check: Check, step: u32, detail: String) -> Failure {
        Failure {
            check,
            at: self.at(step),
            detail,
        }
    }

    /// Keeps a warning's first place in this game.
    fn warn(&mut self, check: Check, step: u32, message: String) {
        if !self
            .warnings
            .iter()
            .any(|(c, _, m)| *c == check && *m == message)
        {
            let at = Some(self.at(step));
            self.warnings.push((check, at, message));
        }
    }

    fn entropy(&mut self) -> Vec<u8> {
        let mut bytes = vec![0; 32];
        self.rng.fill_bytes(&mut bytes);
        bytes
    }

    fn below(&mut self, n: usize) -> usize {
        (self.rng.next_u32() as usize) % n.max(1)
    }

    fn session(&self, check: Check) -> Result<Session, Failure> {
        self.mode
            .session()
            .map_err(|e| self.failure(check, 0, format!("instantiating the mode: {e}")))
    }

    fn run(&mut self) -> Result<(), Failure> {
        let mut warm = self.session(Check::NoFaults)?;
        let mut side = self.session(Check::NoFaults)?;
        let config = MatchConfig {
            players: self.players.clone(),
            first_player: self.first_player.clone(),
            options: String::new(),
        };
        let entropy = self.entropy();
        let mut now = self.start(&mut warm, config, entropy)?;
        self.probe(&mut side, 0, &now)?;
        let mut step = 0;
        while let Some(on_turn) = now.turn.clone() {
            if step >= self.options.max_actions {
                return Err(self.failure(
                    Check::Ends,
                    step,
                    format!(
                        "the game did not end within {} actions ({} seats{}); the last view: {}",
                        self.options.max_actions,
                        self.players.len(),
                        if self.bot { ", bots on every seat" } else { "" },
                        self.last_view()
                    ),
                ));
            }
            if self.index > self.stop.load(Ordering::Relaxed) {
                // An earlier game failed: this one no longer counts.
                return Ok(());
            }
            let bot_move = self.bot_move(&mut side, step, &now, &on_turn)?;
            let (actor, input) = if self.bot {
                (on_turn.clone(), bot_move.clone())
            } else {
                self.choose(step + 1, &on_turn)
            };
            // When the game makes the bot's move anyway, the game shows
            // whether it is legal; otherwise the side instance tries it.
            let bots_move = actor == on_turn && same_move(&input, &bot_move);
            if !bots_move {
                self.bot_is_legal(&mut side, step, &now, &on_turn, &bot_move)?;
            }
            step += 1;
            self.actions = step;
            now = self.act(&mut warm, step, now, (actor, input), bots_move)?;
            if step == self.probe_at && now.turn.is_some() {
                self.probe(&mut side, step, &now)?;
            }
        }
        self.finished = true;
        self.after_game_over(&mut side, step, &now.state)?;
        self.replay_fresh()
    }

    fn last_view(&self) -> String {
        let view = self
            .record
            .iter()
            .rev()
            .find_map(|r| r.result.as_ref().ok())
            .map(|a| a.view.as_str())
            .unwrap_or("");
        clip(view, 300)
    }

    fn start(
        &mut self,
        warm: &mut Session,
        config: MatchConfig,
        entropy: Vec<u8>,
    ) -> Result<Now, Failure> {
        let what = format!(
            "start {:?} (first player {:?})",
            config.players, config.first_player
        );
        let fault = |game: &Self, e: CallError| {
            game.failure(
                Check::NoFaults,
                0,
                format!("{what}: {}", fault_or_refusal(&e)),
            )
        };
        let outcome = match warm.start(&config, &entropy) {
            Ok(outcome) => outcome,
            Err(e) => return Err(fault(self, e)),
        };
        self.measure(0, warm, &outcome, None);
        let view = match warm.view(&outcome.state) {
            Ok(view) => view,
            Err(e) => return Err(fault(self, e)),
        };
        self.measure(0, warm, &outcome, Some(&view));
        self.views_agree(0, &outcome, &view)?;
        if let Some(first) = &config.first_player
            && outcome.turn.as_ref() != Some(first)
        {
            return Err(self.failure(
                Check::Views,
                0,
                format!(
                    "{what}: the config fixes the first player, but {:?} is on turn",
                    outcome.turn
                ),
            ));
        }
        let now = Now {
            state: outcome.state.clone(),
            turn: outcome.turn.clone(),
        };
        self.record.push(Recorded {
            input: Input::Start { config, entropy },
            result: Ok(Acted {
                dice: None,
                outcome,
                view,
            }),
        });
        Ok(now)
    }

    /// Records the usage of the warm instance's last call.
    fn measure(&mut self, step: u32, warm: &Session, outcome: &Outcome, view: Option<&str>) {
        let at = self.at(step);
        let usage = warm.usage();
        self.worst.fuel.see(usage.fuel, at);
        self.worst.memory_bytes.see(usage.memory_bytes as u64, at);
        self.worst.state_bytes.see(outcome.state.len() as u64, at);
        self.worst
            .events_per_call
            .see(outcome.events.len() as u64, at);
        if let Some(view) = view {
            self.worst.view_bytes.see(view.len() as u64, at);
        }
    }

    /// A random action: usually the player on turn rolls or banks; sometimes
    /// a custom action or a timeout; a forfeit at `forfeit_at`.
    fn choose(&mut self, step: u32, on_turn: &str) -> (String, Step) {
        if self.forfeit_at == Some(step) {
            let seat = self.below(self.players.len());
            let who = self.players[seat].clone();
            return (who, Step::Apply(Action::Forfeit));
        }
        let info = self.info;
        let has_bank = info.actions.iter().any(|a| a.name == "bank");
        let customs: Vec<&str> = info
            .actions
            .iter()
            .map(|a| a.name.as_str())
            .filter(|n| !matches!(*n, "roll" | "bank" | "timeout" | "forfeit"))
            .collect();
        let roll = self.below(100);
        let action = if roll < 4 {
            Step::Apply(Action::Timeout)
        } else if roll < 12 && !customs.is_empty() {
            let name = customs[self.below(customs.len())].to_owned();
            let payload = if self.below(2) == 0 { "" } else { "{}" };
            Step::Apply(Action::Custom {
                name,
                payload: payload.to_owned(),
            })
        } else if roll < 40 && has_bank {
            Step::Apply(Action::Bank)
        } else {
            Step::Roll {
                entropy: self.entropy(),
            }
        };
        (on_turn.to_owned(), action)
    }

    /// One action on the warm instance, checked and recorded. `bots_move`:
    /// the bot would make this move too, so it must be accepted.
    fn act(
        &mut self,
        warm: &mut Session,
        step: u32,
        now: Now,
        (actor, input): (String, Step),
        bots_move: bool,
    ) -> Result<Now, Failure> {
        let what = describe(&actor, &input);
        let on_turn = now.turn.as_deref() == Some(actor.as_str());
        let result = match warm.act(&now.state, &actor, &input) {
            Ok(acted) => Ok(acted),
            Err(CallError::Rejected(e)) => Err(e),
            Err(fault) => {
                let check = if self.bot {
                    Check::Bot
                } else {
                    Check::NoFaults
                };
                return Err(self.failure(check, step, format!("{what}: {fault}")));
            }
        };
        let next = match &result {
            Ok(acted) => {
                self.measure(step, warm, &acted.outcome, Some(&acted.view));
                if acted.dice.is_some() {
                    self.dice.clone_from(&acted.dice);
                }
                self.views_agree(step, &acted.outcome, &acted.view)?;
                if matches!(input, Step::Apply(Action::Forfeit)) {
                    self.check_forfeit(step, &what, &actor, &acted.outcome)?;
                    self.forfeited = true;
                }
                Now {
                    state: acted.outcome.state.clone(),
                    turn: acted.outcome.turn.clone(),
                }
            }
            Err(e) => {
                if bots_move {
                    return Err(self.failure(
                        Check::Bot,
                        step - 1,
                        format!("the bot's move ({what}) was not accepted: refused ({e})"),
                    ));
                }
                match input {
                    Step::Apply(Action::Timeout) if on_turn => {
                        return Err(self.failure(
                            Check::TimeoutForfeit,
                            step,
                            format!("{what}: refused ({e}); a timeout for the player on turn must be accepted"),
                        ));
                    }
                    Step::Apply(Action::Forfeit) => {
                        return Err(self.failure(
                            Check::TimeoutForfeit,
                            step,
                            format!("{what}: refused ({e}); a player may forfeit at any time"),
                        ));
                    }
                    _ => {}
                }
                now
            }
        };
        self.record.push(Recorded {
            input: Input::Act { actor, step: input },
            result,
        });
        Ok(next)
    }

    /// The mode's move for the player on turn, as a step.
    fn bot_move(
        &mut self,
        side: &mut Session,
        step: u32,
        now: &Now,
        on_turn: &str,
    ) -> Result<Step, Failure> {
        let chosen = match side.bot(&now.state) {
            Ok(chosen) => chosen,
            Err(e) => {
                return Err(self.failure(
                    Check::Bot,
                    step,
                    format!(
                        "asking the bot to move for {on_turn}: {}",
                        fault_or_refusal(&e)
                    ),
                ));
            }
        };
        Ok(match chosen {
            BotMove::Roll => Step::Roll {
                entropy: self.entropy(),
            },
            BotMove::Bank => Step::Apply(Action::Bank),
            BotMove::Custom { name, payload } => {
                if !self.info.actions.iter().any(|a| a.name == name) {
                    self.warn(
                        Check::Bot,
                        step,
                        format!("the bot chose custom action `{name}`, which info does not list"),
                    );
                }
                Step::Apply(Action::Custom { name, payload })
            }
        })
    }

    /// The bot's move must be one the mode accepts.
    fn bot_is_legal(
        &mut self,
        side: &mut Session,
        step: u32,
        now: &Now,
        on_turn: &str,
        input: &Step,
    ) -> Result<(), Failure> {
        match side.act(&now.state, on_turn, input) {
            Ok(_) => Ok(()),
            Err(e) => Err(self.failure(
                Check::Bot,
                step,
                format!(
                    "the bot's move ({}) was not accepted: {}",
                    describe(on_turn, input),
                    fault_or_refusal(&e)
                ),
            )),
        }
    }

    /// Illegal input at a point of a running game, and a timeout and
    /// forfeits there, all on the side instance.
    fn probe(&mut self, side: &mut Session, step: u32, now: &Now) -> Result<(), Failure> {
        let Some(on_turn) = now.turn.clone() else {
            return Ok(());
        };
        let state = &now.state;
        let has_bank = self.info.actions.iter().any(|a| a.name == "bank");
        if let Some(other) = self.players.iter().find(|p| **p != on_turn).cloned() {
            let mut inputs = vec![
                Step::Roll {
                    entropy: self.entropy(),
                },
                Step::Apply(Action::Timeout),
            ];
            if has_bank {
                inputs.push(Step::Apply(Action::Bank));
            }
            for input in inputs {
                self.refused(
                    side,
                    step,
                    "out of turn",
                    state,
                    &other,
                    &input,
                    Expect::NotYourTurn,
                )?;
            }
        }
        let roll = Step::Roll {
            entropy: self.entropy(),
        };
        self.refused(
            side,
            step,
            "not a player",
            state,
            STRANGER,
            &roll,
            Expect::NotAPlayer,
        )?;
        let unknown = Step::Apply(Action::Custom {
            name: UNKNOWN_ACTION.to_owned(),
            payload: "{}".to_owned(),
        });
        self.refused(
            side,
            step,
            "unknown action",
            state,
            &on_turn,
            &unknown,
            Expect::UnknownAction,
        )?;
        let dice = match &self.dice {
            Some(dice) => dice.clone(),
            None => self.throw(side, step, state)?,
        };
        for bad in bad_dice(&dice) {
            let input = Step::Apply(Action::Roll { dice: bad });
            self.refused(
                side,
                step,
                "bad dice",
                state,
                &on_turn,
                &input,
                Expect::InvalidDice,
            )?;
        }
        // Corrupt state and short entropy: an error or a result, never a trap.
        let garbage = self.entropy();
        for (what, corrupt) in corruptions(state, &garbage) {
            let roll = Step::Roll {
                entropy: self.entropy(),
            };
            let calls: [(&str, Result<(), CallError>); 3] = [
                ("view", side.view(&corrupt).map(drop)),
                ("roll", side.act(&corrupt, &on_turn, &roll).map(drop)),
                ("bot", side.bot(&corrupt).map(drop)),
            ];
            for (call, result) in calls {
                if let Err(e) = result
                    && e.is_mode_fault()
                {
                    return Err(self.failure(
                        Check::Refusals,
                        step,
                        format!(
                            "{call} on corrupt state ({what}, {} bytes): {e}",
                            corrupt.len()
                        ),
                    ));
                }
            }
        }
        for entropy in [Vec::new(), vec![1; 8]] {
            let len = entropy.len();
            if let Err(e) = side.act(state, &on_turn, &Step::Roll { entropy })
                && e.is_mode_fault()
            {
                return Err(self.failure(
                    Check::Refusals,
                    step,
                    format!("{on_turn} rolls with {len} bytes of entropy: {e}"),
                ));
            }
        }
        self.timeout_and_forfeit(side, step, now, &on_turn)
    }

    /// Dice the mode throws in this state.
    fn throw(&mut self, side: &mut Session, step: u32, state: &[u8]) -> Result<Vec<u8>, Failure> {
        let entropy = self.entropy();
        match side.throw_dice(state, &entropy) {
            Ok(dice) => Ok(dice),
            // The game itself will show whether rolls work.
            Err(CallError::Rejected(_)) => Ok(vec![3, 4]),
            Err(e) => Err(self.failure(
                Check::NoFaults,
                step,
                format!("throw-dice in a running game: {e}"),
            )),
        }
    }

    fn timeout_and_forfeit(
        &mut self,
        side: &mut Session,
        step: u32,
        now: &Now,
        on_turn: &str,
    ) -> Result<(), Failure> {
        let timeout = Step::Apply(Action::Timeout);
        let what = describe(on_turn, &timeout);
        match side.act(&now.state, on_turn, &timeout) {
            Ok(acted) => {
                self.views_agree(step, &acted.outcome, &acted.view)?;
                if step == 0 && acted.outcome.turn.is_none() {
                    return Err(self.failure(
                        Check::TimeoutForfeit,
                        step,
                        format!("{what} at the start ended the game; the game must go on"),
                    ));
                }
            }
            Err(e) => {
                return Err(self.failure(
                    Check::TimeoutForfeit,
                    step,
                    format!(
                        "{what}: {}; a timeout for the player on turn must be accepted",
                        fault_or_refusal(&e)
                    ),
                ));
            }
        }
        let others = self.players.iter().filter(|p| *p != on_turn);
        let forfeiters: Vec<String> = std::iter::once(on_turn)
            .chain(others.take(1).map(String::as_str))
            .map(str::to_owned)
            .collect();
        for who in forfeiters {
            let forfeit = Step::Apply(Action::Forfeit);
            let what = describe(&who, &forfeit);
            match side.act(&now.state, &who, &forfeit) {
                Ok(acted) => {
                    self.views_agree(step, &acted.outcome, &acted.view)?;
                    self.check_forfeit(step, &what, &who, &acted.outcome)?;
                }
                Err(e) => {
                    return Err(self.failure(
                        Check::TimeoutForfeit,
                        step,
                        format!(
                            "{what}: {}; a player may forfeit at any time",
                            fault_or_refusal(&e)
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_forfeit(
        &self,
        step: u32,
        what: &str,
        who: &str,
        outcome: &Outcome,
    ) -> Result<(), Failure> {
        let fail =
            |why: String| Err(self.failure(Check::TimeoutForfeit, step, format!("{what}: {why}")));
        let Some(standings) = &outcome.standings else {
            return fail("the game goes on; a forfeit ends it".into());
        };
        match standings.iter().find(|s| s.player == who) {
            Some(s) if s.result == MatchResult::Loss => {}
            Some(s) => {
                return fail(format!(
                    "the forfeiter's result is {:?}, not a loss",
                    s.result
                ));
            }
            None => return fail("the forfeiter is missing from the standings".into()),
        }
        if self.players.len() > 1
            && standings
                .iter()
                .all(|s| s.player == who || s.result == MatchResult::Loss)
        {
            return fail("everyone lost; the others win a forfeit".into());
        }
        Ok(())
    }

    /// Illegal input must be refused, ideally with the contract's error.
    #[allow(clippy::too_many_arguments)]
    fn refused(
        &mut self,
        side: &mut Session,
        step: u32,
        what: &str,
        state: &[u8],
        actor: &str,
        input: &Step,
        expect: Expect,
    ) -> Result<(), Failure> {
        let action = describe(actor, input);
        match side.act(state, actor, input) {
            Err(CallError::Rejected(e)) => {
                if !expect.matches(&e) {
                    self.warn(
                        Check::Refusals,
                        step,
                        format!(
                            "{what}: refused with `{e}`; the contract's error is `{}`",
                            expect.name()
                        ),
                    );
                }
                Ok(())
            }
            Ok(_) => Err(self.failure(
                Check::Refusals,
                step,
                format!(
                    "{what} ({action}) was accepted; it must be refused with `{}`",
                    expect.name()
                ),
            )),
            Err(fault) => {
                Err(self.failure(Check::Refusals, step, format!("{what} ({action}): {fault}")))
            }
        }
    }

    /// Once the game is over, every action is refused (`game-over`), and so
    /// is the bot.
    fn after_game_over(
        &mut self,
        side: &mut Session,
        step: u32,
        state: &[u8],
    ) -> Result<(), Failure> {
        let player = self.players[0].clone();
        let inputs = [
            Step::Roll {
                entropy: self.entropy(),
            },
            Step::Apply(Action::Bank),
            Step::Apply(Action::Timeout),
            Step::Apply(Action::Forfeit),
            Step::Apply(Action::Custom {
                name: UNKNOWN_ACTION.to_owned(),
                payload: String::new(),
            }),
        ];
        for input in inputs {
            self.refused(
                side,
                step,
                "after game over",
                state,
                &player,
                &input,
                Expect::GameOver,
            )?;
        }
        match side.bot(state) {
            Err(CallError::Rejected(_)) => Ok(()),
            Ok(chosen) => Err(self.failure(
                Check::Bot,
                step,
                format!(
                    "after game over the bot still moves ({chosen:?}); it must answer `game-over`"
                ),
            )),
            Err(e) => Err(self.failure(
                Check::Bot,
                step,
                format!("asking the bot to move after game over: {e}"),
            )),
        }
    }

    /// The whole game again, one fresh instance per call, as the match host
    /// runs it: every step must match the warm run byte for byte.
    fn replay_fresh(&mut self) -> Result<(), Failure> {
        let mut state = Vec::new();
        for (step, recorded) in (0u32..).zip(&self.record) {
            let (what, fresh) = match &recorded.input {
                Input::Start { config, entropy } => {
                    ("start".to_owned(), self.mode.start(config, entropy))
                }
                Input::Act { actor, step } => {
                    (describe(actor, step), self.mode.act(&state, actor, step))
                }
            };
            let fail = |why: String| {
                Err(self.failure(
                    Check::Determinism,
                    step,
                    format!("{what}, replayed on a fresh instance: {why}"),
                ))
            };
            match (fresh, &recorded.result) {
                (Ok(fresh), Ok(warm)) => {
                    if let Some(why) = difference(&fresh, warm) {
                        return fail(why);
                    }
                    state = fresh.outcome.state;
                }
                (Err(CallError::Rejected(fresh)), Err(warm)) => {
                    if fresh != *warm {
                        return fail(format!(
                            "refused with `{fresh}`; the warm instance refused with `{warm}`"
                        ));
                    }
                }
                (Ok(_), Err(warm)) => {
                    return fail(format!(
                        "accepted; the warm instance refused it with `{warm}`"
                    ));
                }
                (Err(e), Ok(_)) => {
                    return fail(format!("{e}; the warm instance accepted it"));
                }
                (Err(e), Err(_)) => {
                    return fail(format!("{e}; the warm instance refused it"));
                }
            }
        }
        Ok(())
    }

    /// The view is the contract's JSON and says what the outcome says.
    fn views_agree(&self, step: u32, outcome: &Outcome, view: &str) -> Result<(), Failure> {
        check_outcome(outcome, &self.players)
            .and_then(|()| check_view(view, outcome, &self.players))
            .map_err(|why| {
                self.failure(
                    Check::Views,
                    step,
                    format!("{why}; the view: {}", clip(view, 300)),
                )
            })
    }
}

/// The contract's error a refusal should carry.
#[derive(Clone, Copy, Debug)]
enum Expect {
    NotYourTurn,
    NotAPlayer,
    GameOver,
    UnknownAction,
    InvalidDice,
}

impl Expect {
    fn matches(self, e: &ModeError) -> bool {
        matches!(
            (self, e),
            (Expect::NotYourTurn, ModeError::NotYourTurn(_))
                | (Expect::NotAPlayer, ModeError::NotAPlayer(_))
                | (Expect::GameOver, ModeError::GameOver)
                | (Expect::UnknownAction, ModeError::UnknownAction(_))
                | (Expect::InvalidDice, ModeError::InvalidDice(_))
        )
    }

    /// The error's name in `wit/mode.wit`.
    fn name(self) -> &'static str {
        match self {
            Expect::NotYourTurn => "not-your-turn",
            Expect::NotAPlayer => "not-a-player",
            Expect::GameOver => "game-over",
            Expect::UnknownAction => "unknown-action",
            Expect::InvalidDice => "invalid-dice",
        }
    }
}

/// Dice no mode of six-sided dice accepts, shaped after `valid` (a throw):
/// none, a face 0, a face 7, and one die too many.
fn bad_dice(valid: &[u8]) -> Vec<Vec<u8>> {
    let n = valid.len().max(1);
    let mut bad = vec![Vec::new(), vec![0; n]];
    let mut high = vec![3; n];
    high[n - 1] = 7;
    if valid.iter().all(|&d| d <= 6) {
        bad.push(high);
    }
    let mut extra = valid.to_vec();
    extra.push(valid.first().copied().unwrap_or(3));
    bad.push(extra);
    bad
}

/// Damaged copies of a state: what a bug or a tampered store could hand a mode.
fn corruptions(state: &[u8], garbage: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("empty", Vec::new()),
        ("truncated", state[..state.len() / 2].to_vec()),
        ("every bit flipped", state.iter().map(|b| !b).collect()),
        ("random bytes", garbage.to_vec()),
    ]
}

/// Whether two steps are the same move (rolls are, whatever the entropy).
fn same_move(a: &Step, b: &Step) -> bool {
    match (a, b) {
        (Step::Roll { .. }, Step::Roll { .. }) => true,
        (Step::Apply(a), Step::Apply(b)) => a == b,
        _ => false,
    }
}

/// A fault's message, or why a refusal is one here.
fn fault_or_refusal(e: &CallError) -> String {
    match e {
        CallError::Rejected(e) => format!("refused ({e})"),
        fault => fault.to_string(),
    }
}

/// How a step reads in a report.
fn describe(actor: &str, step: &Step) -> String {
    match step {
        Step::Roll { .. } => format!("{actor:?} rolls"),
        Step::Apply(Action::Roll { dice }) => format!("{actor:?} rolls {dice:?}"),
        Step::Apply(Action::Bank) => format!("{actor:?} banks"),
        Step::Apply(Action::Timeout) => format!("{actor:?} times out"),
        Step::Apply(Action::Forfeit) => format!("{actor:?} forfeits"),
        Step::Apply(Action::Custom { name, payload }) => {
            format!("{actor:?} plays custom action `{name}` with payload {payload:?}")
        }
    }
}

/// At most `max` characters of `text`.
fn clip(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_owned(),
    }
}

/// What differs between two results of the same call, if anything.
fn difference(fresh: &Acted, warm: &Acted) -> Option<String> {
    let (f, w) = (&fresh.outcome, &warm.outcome);
    if fresh.dice != warm.dice {
        return Some(format!(
            "dice {:?}; the warm instance threw {:?}",
            fresh.dice, warm.dice
        ));
    }
    if f.state != w.state {
        return Some(format!(
            "the state differs ({} bytes; the warm instance's {} bytes)",
            f.state.len(),
            w.state.len()
        ));
    }
    if f.events != w.events {
        return Some(format!(
            "the events differ: {}; the warm instance's: {}",
            clip(&format!("{:?}", f.events), 300),
            clip(&format!("{:?}", w.events), 300)
        ));
    }
    if f.turn != w.turn || f.standings != w.standings {
        return Some(format!(
            "turn {:?} and standings {:?}; the warm instance's: {:?}, {:?}",
            f.turn, f.standings, w.turn, w.standings
        ));
    }
    if fresh.view != warm.view {
        return Some(format!(
            "the view differs: {}; the warm instance's: {}",
            clip(&fresh.view, 300),
            clip(&warm.view, 300)
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_dice_are_shaped_after_a_throw() {
        let bad = bad_dice(&[3, 4]);
        assert!(bad.contains(&vec![]));
        assert!(bad.contains(&vec![0, 0]));
        assert!(bad.contains(&vec![3, 7]));
        assert!(bad.contains(&vec![3, 4, 3]));
    }

    #[test]
    fn clip_counts_characters() {
        assert_eq!(clip("üüü", 2), "üü…");
        assert_eq!(clip("ab", 2), "ab");
    }
}
