//! Many random games of one mode: `dashdice mode simulate`.
//!
//! Each game gets its own entropy stream, derived from the seed and the game's
//! index, so a report depends only on (mode version, seed, games), not on the
//! number of threads. Players follow a simple policy: roll until the turn score
//! reaches a per-player threshold drawn at the start of the game, then bank (a
//! refused bank, as in True Grit, means roll on). Each game runs on one warm
//! instance of its own.

use std::thread;

use dashdice_mode_sdk::{Action, MatchConfig, RollKind};
use indicatif::ProgressBar;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};
use serde::Serialize;
use serde_json::Value;

use crate::replay::draw;
use dashdice_runtime::{CallError, Mode, Step};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct Options {
    pub games: u64,
    pub seed: u64,
    /// A game still running after this many actions counts as unfinished.
    pub max_actions: u32,
    pub threads: usize,
}

/// Observed dice.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct DiceStats {
    pub rolls: u64,
    /// How often each face 1..=6 showed, over both dice.
    pub faces: [u64; 6],
    pub doubles: u64,
    pub snake_eyes: u64,
    pub six_six: u64,
    pub single_one: u64,
    pub doubles_rate: f64,
    /// Half-width of the 95% confidence interval of `doubles_rate`.
    pub doubles_rate_ci95: f64,
    pub snake_eyes_rate: f64,
    pub six_six_rate: f64,
}

/// Game lengths in actions.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct Lengths {
    pub mean: f64,
    pub p50: u32,
    pub p90: u32,
    pub p99: u32,
    pub max: u32,
}

/// The result of a simulation.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Report {
    pub mode: String,
    pub version: String,
    pub games: u64,
    pub seed: u64,
    pub finished: u64,
    pub unfinished: u64,
    /// Share of finished games won by the player who moved first.
    pub first_mover_win_rate: f64,
    pub second_mover_win_rate: f64,
    pub draw_rate: f64,
    pub actions: Lengths,
    pub turns: Lengths,
    pub dice: DiceStats,
}

#[derive(Debug, thiserror::Error)]
#[error("game {game}: {source}")]
pub struct SimulateError {
    pub game: u64,
    #[source]
    pub source: CallError,
}

/// One game's record.
#[derive(Default)]
struct Game {
    finished: bool,
    /// Winner's seat relative to the first mover (0 = first mover), None = draw.
    winner_from_first: Option<usize>,
    actions: u32,
    turns: u32,
    dice: Vec<[u8; 2]>,
}

/// Plays `options.games` games and aggregates them.
pub fn simulate(
    mode: &Mode,
    options: &Options,
    progress: &ProgressBar,
) -> Result<Report, SimulateError> {
    let threads = options.threads.max(1);
    let results: Vec<Result<Vec<Game>, SimulateError>> = thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                scope.spawn(move || {
                    (t as u64..options.games)
                        .step_by(threads)
                        .map(|g| {
                            let game = play(mode, options, g);
                            progress.inc(1);
                            game
                        })
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| {
                w.join().unwrap_or_else(|_| {
                    Err(SimulateError {
                        game: 0,
                        source: CallError::Trapped {
                            message: "a simulation thread panicked".into(),
                        },
                    })
                })
            })
            .collect()
    });
    let mut games = Vec::with_capacity(options.games as usize);
    for r in results {
        games.extend(r?);
    }
    progress.finish_and_clear();
    Ok(aggregate(mode, options, &games))
}

fn play(mode: &Mode, options: &Options, index: u64) -> Result<Game, SimulateError> {
    let fail = |source| SimulateError {
        game: index,
        source,
    };
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(index);
    let players = ["p1".to_owned(), "p2".to_owned()];
    let thresholds = [15 + rng.next_u32() % 21, 15 + rng.next_u32() % 21];
    let mut session = mode.session().map_err(fail)?;
    let config = MatchConfig {
        players: players.to_vec(),
        first_player: None,
        options: String::new(),
    };
    let started = session.start(&config, &draw(&mut rng)).map_err(fail)?;
    let first = started.turn.clone().unwrap_or_default();
    let mut state = started.state;
    let mut turn = started.turn;
    let mut turn_score = 0i64;
    let mut game = Game {
        turns: 1,
        ..Game::default()
    };
    while let Some(actor) = turn.clone() {
        if game.actions >= options.max_actions {
            return Ok(game);
        }
        let seat = usize::from(actor != players[0]);
        let wants_bank = turn_score >= i64::from(thresholds[seat]);
        let step = if wants_bank {
            Step::Apply(Action::Bank)
        } else {
            Step::Roll {
                entropy: draw(&mut rng),
            }
        };
        let acted = match session.act(&state, &actor, &step) {
            Err(CallError::Rejected(_)) if wants_bank => session.act(
                &state,
                &actor,
                &Step::Roll {
                    entropy: draw(&mut rng),
                },
            ),
            other => other,
        }
        .map_err(fail)?;
        game.actions += 1;
        if let Some([a, b]) = acted.dice.as_deref() {
            game.dice.push([*a, *b]);
        }
        if acted.outcome.turn.is_some() && acted.outcome.turn != turn {
            game.turns += 1;
        }
        let view: Value = serde_json::from_str(&acted.view).unwrap_or(Value::Null);
        turn_score = view["turn_score"].as_i64().unwrap_or(0);
        state = acted.outcome.state;
        turn = acted.outcome.turn;
        if let Some(standings) = acted.outcome.standings {
            game.finished = true;
            let winner = standings
                .iter()
                .find(|s| s.result == dashdice_mode_sdk::MatchResult::Win);
            game.winner_from_first = winner.map(|w| usize::from(w.player != first));
        }
    }
    Ok(game)
}

fn aggregate(mode: &Mode, options: &Options, games: &[Game]) -> Report {
    let finished: Vec<&Game> = games.iter().filter(|g| g.finished).collect();
    let n = finished.len().max(1) as f64;
    let wins = |seat| {
        finished
            .iter()
            .filter(|g| g.winner_from_first == Some(seat))
            .count() as f64
            / n
    };
    let draws = finished
        .iter()
        .filter(|g| g.winner_from_first.is_none())
        .count() as f64
        / n;
    let mut dice = DiceStats::default();
    for [a, b] in games.iter().flat_map(|g| g.dice.iter().copied()) {
        dice.rolls += 1;
        dice.faces[usize::from(a - 1)] += 1;
        dice.faces[usize::from(b - 1)] += 1;
        match dashdice_mode_sdk::TwoDice(a, b).kind() {
            RollKind::SnakeEyes => {
                dice.doubles += 1;
                dice.snake_eyes += 1;
            }
            RollKind::Double => {
                dice.doubles += 1;
                dice.six_six += u64::from(a == 6);
            }
            RollKind::SingleOne => dice.single_one += 1,
            RollKind::Normal => {}
        }
    }
    let rolls = dice.rolls.max(1) as f64;
    dice.doubles_rate = dice.doubles as f64 / rolls;
    dice.doubles_rate_ci95 = 1.96 * (dice.doubles_rate * (1.0 - dice.doubles_rate) / rolls).sqrt();
    dice.snake_eyes_rate = dice.snake_eyes as f64 / rolls;
    dice.six_six_rate = dice.six_six as f64 / rolls;
    Report {
        mode: mode.info().id.clone(),
        version: mode.hash().to_string(),
        games: options.games,
        seed: options.seed,
        finished: finished.len() as u64,
        unfinished: (games.len() - finished.len()) as u64,
        first_mover_win_rate: wins(0),
        second_mover_win_rate: wins(1),
        draw_rate: draws,
        actions: lengths(finished.iter().map(|g| g.actions)),
        turns: lengths(finished.iter().map(|g| g.turns)),
        dice,
    }
}

fn lengths(values: impl Iterator<Item = u32>) -> Lengths {
    let mut v: Vec<u32> = values.collect();
    if v.is_empty() {
        return Lengths::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    Lengths {
        mean: v.iter().map(|&x| f64::from(x)).sum::<f64>() / v.len() as f64,
        p50: at(0.5),
        p90: at(0.9),
        p99: at(0.99),
        max: at(1.0),
    }
}

impl Report {
    /// The human-readable report.
    pub fn render(&self) -> String {
        let d = &self.dice;
        let faces: Vec<String> = d
            .faces
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{}:{:.4}", i + 1, *c as f64 / (2 * d.rolls.max(1)) as f64))
            .collect();
        format!(
            "mode {} ({})\n\
             games        {} (seed {}), finished {}, unfinished {}\n\
             wins         first mover {:.2}%, second mover {:.2}%, draws {:.2}%\n\
             length       actions mean {:.1}, p50 {}, p90 {}, p99 {}, max {}\n\
             turns        mean {:.1}, p50 {}, p99 {}, max {}\n\
             dice         {} rolls; doubles {:.4} ± {:.4} (95%); 1-1 {:.4}; 6-6 {:.4}; single one {:.4}\n\
             faces        {}\n",
            self.mode,
            &self.version[..12.min(self.version.len())],
            self.games,
            self.seed,
            self.finished,
            self.unfinished,
            100.0 * self.first_mover_win_rate,
            100.0 * self.second_mover_win_rate,
            100.0 * self.draw_rate,
            self.actions.mean,
            self.actions.p50,
            self.actions.p90,
            self.actions.p99,
            self.actions.max,
            self.turns.mean,
            self.turns.p50,
            self.turns.p99,
            self.turns.max,
            d.rolls,
            d.doubles_rate,
            d.doubles_rate_ci95,
            d.snake_eyes_rate,
            d.six_six_rate,
            d.single_one as f64 / d.rolls.max(1) as f64,
            faces.join("  "),
        )
    }
}
