//! `dashdice mode check`: is a mode component fit to publish?
//!
//! [`check`] loads the component and puts it through named [`Check`]s: the
//! contract's rules that a mode can break without failing to load, found by
//! playing thousands of seeded random games, poking each with illegal input,
//! and replaying every game. A mode that passes is one the match host can
//! run: it never traps on what players can send, every game ends, it is
//! deterministic, its views say what its outcomes say, and it stays clear of
//! the limits.
//!
//! Reproducible by construction: game `g` draws everything (players, who
//! starts, actions, entropy) from stream `g` of ChaCha8 seeded with the seed,
//! so a report depends only on (component, options), never on the number of
//! threads or their timing, and a failure names the game and step where it
//! happened. Checking stops at the first failing game (as a test runner that
//! fails fast): every game before it is played, none after it counts, so
//! the report is the same on every run.
//!
//! How one game runs, and why:
//! - It is played on a warm instance ([`Session`]), which is fast. That run's
//!   faults are the `no-faults` check; its views and outcomes are checked
//!   as they come (`views`), and so is its usage (`limits`).
//! - A second warm instance answers the side questions, so they cannot
//!   disturb the game: illegal input at two points of the game and after it
//!   ends (`refusals`), a timeout and forfeits (`timeout-forfeit`), and the
//!   bot's move in every state, which must be accepted (`bot`).
//! - Then the game is replayed the match host's way, one fresh instance per
//!   call ([`Mode::start`], [`Mode::act`]), and every step must give the same
//!   state, events and view (`determinism`): a mode that keeps state outside
//!   the bytes the host stores gives itself away here.
//!
//! Random play draws from the mode's listed actions (roll, bank, custom
//! actions with payloads `""` and `"{}"`), with timeouts now and then. One
//! game in eight has a forfeit at some early step; the others must end by
//! themselves within `max_actions` (`ends`). One game in five is played by
//! the mode's own bots on every seat.

mod contract;
mod game;

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::Instant;

use dashdice_mode_sdk::{MatchConfig, ModeError, ModeInfo};
use dashdice_runtime::{CallError, LoadError, Mode, Runtime};
use serde::Serialize;

use game::{GameReport, play};

/// How hard to look.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckOptions {
    /// Random games to play.
    pub games: u32,
    /// Seeds every game; the same seed checks the same games.
    pub seed: u64,
    /// A game still running after this many actions fails `ends`.
    pub max_actions: u32,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            games: 2000,
            seed: 0,
            max_actions: 10_000,
        }
    }
}

/// The checks, in the order they are reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// The bytes are a component implementing the mode world.
    Loads,
    /// `info` is sound.
    Info,
    /// Random games never trap or hit a limit.
    NoFaults,
    /// Every game ends within `max_actions` (forfeits aside).
    Ends,
    /// Illegal input is refused with an error, not accepted and not a trap.
    Refusals,
    /// The same inputs give byte-identical results, fresh or warm.
    Determinism,
    /// Views are the contract's JSON and agree with the outcomes.
    Views,
    /// Timeouts and forfeits work.
    TimeoutForfeit,
    /// The mode's bot only makes legal moves.
    Bot,
    /// How close the mode runs to the limits (warnings only).
    Limits,
}

impl Check {
    pub const ALL: [Check; 10] = [
        Check::Loads,
        Check::Info,
        Check::NoFaults,
        Check::Ends,
        Check::Refusals,
        Check::Determinism,
        Check::Views,
        Check::TimeoutForfeit,
        Check::Bot,
        Check::Limits,
    ];

    /// The stable name, as in the JSON report.
    pub fn name(self) -> &'static str {
        match self {
            Check::Loads => "loads",
            Check::Info => "info",
            Check::NoFaults => "no-faults",
            Check::Ends => "ends",
            Check::Refusals => "refusals",
            Check::Determinism => "determinism",
            Check::Views => "views",
            Check::TimeoutForfeit => "timeout-forfeit",
            Check::Bot => "bot",
            Check::Limits => "limits",
        }
    }

    /// What passing means.
    pub fn describe(self) -> &'static str {
        match self {
            Check::Loads => "a component implementing the dashdice mode world",
            Check::Info => "info is complete and consistent",
            Check::NoFaults => "random games never trap or hit a limit",
            Check::Ends => "every game ends by itself",
            Check::Refusals => "illegal input is refused with an error, never a trap",
            Check::Determinism => "the same inputs give the same results, fresh or warm",
            Check::Views => "views are the contract's JSON and agree with the outcomes",
            Check::TimeoutForfeit => "timeouts keep the game going; forfeits end it, lost",
            Check::Bot => "the bot's move is legal in every state",
            Check::Limits => "usage stays well within the limits",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where something happened: game `game` (stream `game` of the seed), after
/// `step` actions (0 is the start).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Location {
    pub game: u32,
    pub step: u32,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "game {}, step {}", self.game, self.step)
    }
}

/// One check's verdict.
#[derive(Clone, Debug, Serialize)]
pub struct CheckResult {
    pub name: Check,
    pub passed: bool,
    /// On failure, what went wrong and how to reproduce it; otherwise a summary.
    pub detail: String,
    /// Where it first failed.
    pub at: Option<Location>,
    /// Worth a look, but not a reason to refuse the mode.
    pub warnings: Vec<String>,
}

/// The worst value seen of one measure, against its limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Measure {
    pub worst: u64,
    pub limit: u64,
    /// Where the worst value was first seen.
    pub at: Option<Location>,
}

impl Measure {
    fn new(limit: u64) -> Self {
        Measure {
            worst: 0,
            limit,
            at: None,
        }
    }

    fn see(&mut self, value: u64, at: Location) {
        if value > self.worst || self.at.is_none() {
            self.worst = self.worst.max(value);
            self.at = Some(at);
        }
    }

    /// Folds in another game's measure, keeping the earliest place on ties.
    fn merge(&mut self, other: &Measure) {
        match (self.at, other.at) {
            (_, None) => {}
            (None, Some(_)) => *self = *other,
            (Some(mine), Some(theirs)) => {
                if other.worst > self.worst || (other.worst == self.worst && theirs < mine) {
                    *self = *other;
                }
            }
        }
    }

    /// The worst value as a share of the limit.
    pub fn share(&self) -> f64 {
        if self.limit == 0 {
            return 0.0;
        }
        self.worst as f64 / self.limit as f64
    }
}

/// The worst usage seen in any one call, against [`dashdice_runtime::Limits`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct Worst {
    /// Fuel for one call (an action's throw, apply and view together).
    pub fuel: Measure,
    /// Linear memory of an instance.
    pub memory_bytes: Measure,
    pub state_bytes: Measure,
    pub view_bytes: Measure,
    pub events_per_call: Measure,
}

impl Worst {
    fn new(limits: &dashdice_runtime::Limits) -> Self {
        Worst {
            fuel: Measure::new(limits.fuel),
            memory_bytes: Measure::new(limits.memory_bytes as u64),
            state_bytes: Measure::new(limits.state_bytes as u64),
            view_bytes: Measure::new(limits.view_bytes as u64),
            events_per_call: Measure::new(limits.events as u64),
        }
    }

    fn measures(&self) -> [(&'static str, &Measure); 5] {
        [
            ("fuel", &self.fuel),
            ("memory", &self.memory_bytes),
            ("state size", &self.state_bytes),
            ("view size", &self.view_bytes),
            ("events per call", &self.events_per_call),
        ]
    }

    fn merge(&mut self, other: &Worst) {
        self.fuel.merge(&other.fuel);
        self.memory_bytes.merge(&other.memory_bytes);
        self.state_bytes.merge(&other.state_bytes);
        self.view_bytes.merge(&other.view_bytes);
        self.events_per_call.merge(&other.events_per_call);
    }
}

/// What was played.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Games {
    pub requested: u32,
    /// Games that count: all of them, or up to the first failing one.
    pub played: u32,
    /// Of those, the ones that reached game over.
    pub finished: u32,
    /// Of those, the ones a forfeit ended.
    pub forfeited: u32,
    /// Games where the mode's bots played every seat.
    pub bot_games: u32,
    /// Actions taken in the counted games (refused ones included).
    pub actions: u64,
    /// The first failing game, where checking stopped.
    pub stopped_at: Option<u32>,
}

/// Whether the mode is fit to publish, and why.
#[derive(Clone, Debug, Serialize)]
pub struct CheckReport {
    pub passed: bool,
    /// The version identity (SHA-256 of the bytes), when they are a component.
    pub mode_hash: Option<String>,
    /// What the mode says about itself, when it loaded.
    pub info: Option<ModeInfo>,
    pub seed: u64,
    pub checks: Vec<CheckResult>,
    pub worst: Worst,
    pub games: Games,
    pub elapsed_ms: u64,
}

impl CheckReport {
    /// The checks that failed.
    pub fn failed(&self) -> Vec<Check> {
        self.checks
            .iter()
            .filter(|c| !c.passed)
            .map(|c| c.name)
            .collect()
    }

    /// One check's verdict, if it ran.
    pub fn result(&self, check: Check) -> Option<&CheckResult> {
        self.checks.iter().find(|c| c.name == check)
    }

    /// The human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        match &self.info {
            Some(info) => {
                let hash = self.mode_hash.as_deref().unwrap_or("");
                let _ = writeln!(
                    out,
                    "mode {} {} ({})",
                    info.id,
                    info.version,
                    &hash[..12.min(hash.len())]
                );
            }
            None => out.push_str("mode (not loaded)\n"),
        }
        for c in &self.checks {
            let verdict = match (c.passed, c.warnings.is_empty()) {
                (false, _) => "FAIL",
                (true, true) => "ok  ",
                (true, false) => "warn",
            };
            // Trap messages span lines (a wasm backtrace): keep them indented.
            let detail = c.detail.replace('\n', "\n                      ");
            let _ = writeln!(out, "{verdict} {:<16} {detail}", c.name.name());
            for w in &c.warnings {
                let _ = writeln!(out, "       warning: {w}");
            }
        }
        if self.info.is_some() {
            out.push_str("worst");
            for (name, m) in self.worst.measures() {
                let _ = write!(
                    out,
                    "  {name} {}/{} ({:.1}%)",
                    m.worst,
                    m.limit,
                    100.0 * m.share()
                );
            }
            out.push('\n');
            let g = &self.games;
            let _ = writeln!(
                out,
                "games  {} of {} played (seed {}): {} finished, {} by forfeit, {} bot games, {} actions",
                g.played, g.requested, self.seed, g.finished, g.forfeited, g.bot_games, g.actions
            );
        }
        let verdict = if self.passed {
            "PASSED".to_owned()
        } else {
            let failed: Vec<&str> = self.failed().iter().map(|c| c.name()).collect();
            format!("FAILED ({})", failed.join(", "))
        };
        let _ = writeln!(out, "{verdict} in {:.2} s", self.elapsed_ms as f64 / 1000.0);
        out
    }
}

/// Checks the component `bytes` on `runtime` (under its limits).
/// `progress(done, total)` is called from this thread as games finish.
pub fn check(
    runtime: &Runtime,
    bytes: &[u8],
    options: &CheckOptions,
    progress: &dyn Fn(u64, u64),
) -> CheckReport {
    let started = Instant::now();
    let mut findings = Findings {
        seed: options.seed,
        ..Findings::default()
    };
    let mut report = CheckReport {
        passed: false,
        mode_hash: Some(dashdice_runtime::ModeHash::of(bytes).to_string()),
        info: None,
        seed: options.seed,
        checks: Vec::new(),
        worst: Worst::new(runtime.limits()),
        games: Games {
            requested: options.games,
            ..Games::default()
        },
        elapsed_ms: 0,
    };
    let mode = match runtime.load(bytes) {
        Ok(mode) => mode,
        Err(e) => {
            let check = match e {
                LoadError::Info(_) | LoadError::InvalidInfo(_) => Check::Info,
                _ => Check::Loads,
            };
            if check == Check::Info {
                findings.pass(Check::Loads, "a component implementing the mode world");
            }
            if matches!(e, LoadError::NotAComponent(_)) {
                report.mode_hash = None;
            }
            findings.fail(check, None, e.to_string());
            report.checks = findings.results(&[Check::Loads, Check::Info]);
            report.elapsed_ms = elapsed_ms(started);
            return report;
        }
    };
    findings.pass(Check::Loads, "a component implementing the mode world");
    report.info = Some(mode.info().clone());
    check_info(mode.info(), &mut findings);
    check_configs(&mode, &mut findings);
    let games = play_games(&mode, options, progress);
    let counted = games
        .games
        .iter()
        .filter(|g| games.first_failure.is_none_or(|f| g.index <= f));
    let mut played = 0;
    for game in counted {
        played += 1;
        report.worst.merge(&game.worst);
        let g = &mut report.games;
        g.finished += u32::from(game.finished);
        g.forfeited += u32::from(game.forfeited);
        g.bot_games += u32::from(game.bot);
        g.actions += u64::from(game.actions);
        for (check, at, message) in &game.warnings {
            findings.warn(*check, *at, message.clone());
        }
        if let Some(f) = &game.failure {
            findings.fail(f.check, Some(f.at), f.detail.clone());
        }
    }
    report.games.played = played;
    report.games.stopped_at = games.first_failure;
    if let Some(why) = games.internal_error {
        findings.fail(Check::NoFaults, None, why);
    }
    limits_warnings(&report.worst, &mut findings);
    let summary = match report.games.stopped_at {
        None => format!(
            "{} games, {} actions",
            report.games.played, report.games.actions
        ),
        Some(_) => format!(
            "{} of {} games (checking stopped at the first failing game), {} actions",
            report.games.played, report.games.requested, report.games.actions
        ),
    };
    for check in Check::ALL {
        findings.pass(check, &summary);
    }
    report.checks = findings.results(&Check::ALL);
    report.passed = report.checks.iter().all(|c| c.passed);
    report.elapsed_ms = elapsed_ms(started);
    report
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Verdicts as they are found: the first failure of each check (games are
/// folded in order, so it is the earliest), and warnings without repeats.
#[derive(Default)]
struct Findings {
    /// Named in every place, so a detail alone says how to reproduce it.
    seed: u64,
    verdicts: BTreeMap<Check, (bool, String, Option<Location>)>,
    warnings: BTreeMap<Check, BTreeMap<String, Option<Location>>>,
}

/// At most this many distinct warnings per check are shown.
const MAX_WARNINGS: usize = 8;

impl Findings {
    fn fail(&mut self, check: Check, at: Option<Location>, detail: String) {
        if !matches!(self.verdicts.get(&check), Some((false, _, _))) {
            let detail = match at {
                Some(at) => format!("{}: {detail}", self.place(at)),
                None => detail,
            };
            self.verdicts.insert(check, (false, detail, at));
        }
    }

    fn place(&self, at: Location) -> String {
        format!("game {} (seed {}), step {}", at.game, self.seed, at.step)
    }

    /// Passes `check` unless it failed already.
    fn pass(&mut self, check: Check, detail: &str) {
        self.verdicts
            .entry(check)
            .or_insert_with(|| (true, detail.to_owned(), None));
    }

    fn warn(&mut self, check: Check, at: Option<Location>, message: String) {
        let seen = self.warnings.entry(check).or_default();
        if seen.len() < MAX_WARNINGS || seen.contains_key(&message) {
            let first = seen.entry(message).or_insert(at);
            if at.is_some() && (first.is_none() || at < *first) {
                *first = at;
            }
        }
    }

    fn results(&self, checks: &[Check]) -> Vec<CheckResult> {
        checks
            .iter()
            .filter_map(|&check| {
                let (passed, detail, at) = self.verdicts.get(&check)?.clone();
                let warnings = self
                    .warnings
                    .get(&check)
                    .map(|w| {
                        w.iter()
                            .map(|(message, at)| match at {
                                Some(at) => format!("{message} (first at {})", self.place(*at)),
                                None => message.clone(),
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                Some(CheckResult {
                    name: check,
                    passed,
                    detail,
                    at,
                    warnings,
                })
            })
            .collect()
    }
}

/// What [`Runtime::load`] does not already refuse, and the contract asks.
fn check_info(info: &ModeInfo, findings: &mut Findings) {
    let mut problems = Vec::new();
    if info.name.trim().is_empty() {
        problems.push("the name is empty".to_owned());
    }
    if !is_semver(&info.version) {
        problems.push(format!(
            "version {:?} is not semver (MAJOR.MINOR.PATCH)",
            info.version
        ));
    }
    let mut names: Vec<&str> = Vec::new();
    for action in &info.actions {
        if action.name.trim().is_empty() {
            problems.push("an action has an empty name".to_owned());
        } else if names.contains(&action.name.as_str()) {
            problems.push(format!("action `{}` is listed twice", action.name));
        }
        names.push(&action.name);
        let dice = match action.name.as_str() {
            "roll" => Some(true),
            "bank" | "timeout" | "forfeit" => Some(false),
            _ => None,
        };
        if dice.is_some_and(|needs| needs != action.needs_dice) {
            problems.push(format!(
                "action `{}` says needs-dice is {}; the host {} dice for it",
                action.name,
                action.needs_dice,
                if action.needs_dice {
                    "throws no"
                } else {
                    "throws"
                }
            ));
        }
    }
    if info.max_players as usize > dashdice_proto::ids::MAX_PLAYERS {
        findings.warn(
            Check::Info,
            None,
            format!(
                "max-players is {}, but the host seats at most {} players",
                info.max_players,
                dashdice_proto::ids::MAX_PLAYERS
            ),
        );
    }
    if info.description.trim().is_empty() {
        findings.warn(Check::Info, None, "the description is empty".into());
    }
    if problems.is_empty() {
        findings.pass(
            Check::Info,
            &format!(
                "{} ({}), {}..={} players, {} actions",
                info.name,
                info.id,
                info.min_players,
                info.max_players,
                info.actions.len()
            ),
        );
    } else {
        findings.fail(Check::Info, None, problems.join("; "));
    }
}

/// MAJOR.MINOR.PATCH, each a number without leading zeros, then optionally
/// `-pre` and `+build` of dot-separated [0-9A-Za-z-] identifiers.
fn is_semver(version: &str) -> bool {
    let (rest, build) = match version.split_once('+') {
        Some((rest, build)) => (rest, Some(build)),
        None => (version, None),
    };
    let (core, pre) = match rest.split_once('-') {
        Some((core, pre)) => (core, Some(pre)),
        None => (rest, None),
    };
    let number = |p: &str| {
        !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && (p == "0" || !p.starts_with('0'))
    };
    let identifiers = |s: &str| {
        s.split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
    };
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3
        && parts.iter().all(|p| number(p))
        && pre.is_none_or(identifiers)
        && build.is_none_or(identifiers)
}

/// Player ids for `count` seats. Some games use ids that need escaping in
/// JSON, as a real user's might.
fn player_ids(count: usize, tricky: bool) -> Vec<String> {
    (1..=count)
        .map(|i| match (tricky, i) {
            (true, 2) => "q\"u\\o/te".to_owned(),
            (true, 3) => "üñí\u{1F3B2}".to_owned(),
            _ => format!("p{i}"),
        })
        .collect()
}

/// The player counts games use: 2 up to 4, within the mode's range.
fn player_range(info: &ModeInfo) -> (usize, usize) {
    let max = info.max_players.clamp(1, 4) as usize;
    let lo = (info.min_players.max(2) as usize).min(max);
    (lo, max.max(lo))
}

const STRANGER: &str = "dashdice-check-stranger";
const UNKNOWN_ACTION: &str = "dashdice-check-unknown";

/// Bad match configs must be refused (`invalid-config`), and must not trap.
fn check_configs(mode: &Mode, findings: &mut Findings) {
    let info = mode.info();
    let (lo, _) = player_range(info);
    let valid = player_ids(lo, false);
    let with = |players: Vec<String>, first: Option<&str>, options: &str| MatchConfig {
        players,
        first_player: first.map(str::to_owned),
        options: options.to_owned(),
    };
    let mut cases = vec![
        (
            "a first player who is not in the match",
            with(valid.clone(), Some(STRANGER), ""),
        ),
        (
            "options the mode does not know",
            with(valid.clone(), None, r#"{"dashdice-check-unknown":true}"#),
        ),
        (
            "options that are not JSON",
            with(valid.clone(), None, "{not json"),
        ),
    ];
    if lo >= 2 {
        let mut duplicate = valid.clone();
        duplicate[1] = duplicate[0].clone();
        cases.push(("a player listed twice", with(duplicate, None, "")));
        let mut empty = valid.clone();
        empty[1] = String::new();
        cases.push(("an empty player id", with(empty, None, "")));
    }
    let max = info.max_players as usize;
    if max < 1000 {
        cases.push((
            "more players than max-players",
            with(player_ids(max + 1, false), None, ""),
        ));
    }
    let min = info.min_players as usize;
    cases.push((
        "fewer players than min-players",
        with(player_ids(min.saturating_sub(1), false), None, ""),
    ));
    let entropy = [7u8; 32];
    for (what, config) in &cases {
        match mode.start(config, &entropy) {
            Err(CallError::Rejected(ModeError::InvalidConfig(_))) => {}
            Err(CallError::Rejected(e)) => findings.warn(
                Check::Refusals,
                None,
                format!("start with {what}: refused with `{e}`; the contract's error is `invalid-config`"),
            ),
            Ok(_) => findings.fail(
                Check::Refusals,
                None,
                format!("start with {what} ({:?}, options {:?}) was accepted; it must be refused with `invalid-config`", config.players, config.options),
            ),
            Err(fault) => findings.fail(
                Check::Refusals,
                None,
                format!("start with {what}: {fault}"),
            ),
        }
    }
    // Too little entropy may be refused or tolerated, but must not trap.
    let config = with(valid, None, "");
    if let Err(fault) = mode.start(&config, &[])
        && fault.is_mode_fault()
    {
        findings.fail(
            Check::Refusals,
            None,
            format!("start with no entropy: {fault}"),
        );
    }
}

/// Warns of every measure above half its limit.
fn limits_warnings(worst: &Worst, findings: &mut Findings) {
    for (name, m) in worst.measures() {
        if m.share() > 0.5 {
            findings.warn(
                Check::Limits,
                m.at,
                format!(
                    "{name} reached {:.0}% of its limit ({} of {})",
                    100.0 * m.share(),
                    m.worst,
                    m.limit
                ),
            );
        }
    }
    let summary: Vec<String> = worst
        .measures()
        .iter()
        .map(|(name, m)| format!("{name} {:.1}%", 100.0 * m.share()))
        .collect();
    findings.pass(
        Check::Limits,
        &format!("worst of the limits: {}", summary.join(", ")),
    );
}

struct Played {
    games: Vec<GameReport>,
    first_failure: Option<u32>,
    /// A checking thread panicked: a bug in this tool, not in the mode.
    internal_error: Option<String>,
}

/// Plays the games over the available cores. Workers take games in index
/// order and skip those after the first failure found so far, so every game
/// up to the first failing one is always played.
fn play_games(mode: &Mode, options: &CheckOptions, progress: &dyn Fn(u64, u64)) -> Played {
    let total = options.games;
    let threads = thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(total.max(1) as usize) as u32;
    let first_failure = AtomicU32::new(u32::MAX);
    let (tx, rx) = mpsc::channel::<Option<GameReport>>();
    let mut games = Vec::with_capacity(total as usize);
    let mut internal_error = None;
    thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let tx = tx.clone();
                let first_failure = &first_failure;
                scope.spawn(move || {
                    for index in (t..total).step_by(threads as usize) {
                        if index > first_failure.load(Ordering::Relaxed) {
                            let _ = tx.send(None);
                            continue;
                        }
                        let report = play(mode, options, index, first_failure);
                        if report.failure.is_some() {
                            first_failure.fetch_min(index, Ordering::Relaxed);
                        }
                        let _ = tx.send(Some(report));
                    }
                })
            })
            .collect();
        drop(tx);
        let mut done = 0u64;
        for report in rx {
            done += 1;
            progress(done, u64::from(total));
            games.extend(report);
        }
        for worker in workers {
            if worker.join().is_err() {
                internal_error = Some("internal error: a checking thread panicked".to_owned());
            }
        }
    });
    games.sort_by_key(|g| g.index);
    let first = first_failure.load(Ordering::Relaxed);
    Played {
        games,
        first_failure: (first != u32::MAX).then_some(first),
        internal_error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dashdice_mode_sdk::{ActionInfo, standard_actions};

    #[test]
    fn semver() {
        for good in ["0.1.0", "1.20.3", "1.0.0-alpha.1", "1.0.0+build-5", "0.0.0"] {
            assert!(is_semver(good), "{good}");
        }
        for bad in [
            "",
            "1",
            "1.0",
            "01.0.0",
            "1.0.0-",
            "v1.0.0",
            "1.0.x",
            "1.0.0-a..b",
        ] {
            assert!(!is_semver(bad), "{bad}");
        }
    }

    fn info() -> ModeInfo {
        ModeInfo {
            id: "m".into(),
            name: "M".into(),
            version: "0.1.0".into(),
            description: "A mode.".into(),
            min_players: 2,
            max_players: 2,
            turn_time_limit_ms: 1000,
            actions: standard_actions(Some("Bank.")),
        }
    }

    fn info_verdict(info: &ModeInfo) -> CheckResult {
        let mut findings = Findings::default();
        check_info(info, &mut findings);
        findings.results(&[Check::Info]).remove(0)
    }

    #[test]
    fn info_checks() {
        assert!(info_verdict(&info()).passed);
        let mut twice = info();
        twice.actions.push(twice.actions[0].clone());
        let verdict = info_verdict(&twice);
        assert!(
            !verdict.passed && verdict.detail.contains("twice"),
            "{verdict:?}"
        );
        let mut unversioned = info();
        unversioned.version = "latest".into();
        assert!(!info_verdict(&unversioned).passed);
        let mut diceless = info();
        diceless.actions[0] = ActionInfo {
            name: "roll".into(),
            description: String::new(),
            needs_dice: false,
        };
        assert!(!info_verdict(&diceless).passed);
        let mut crowded = info();
        crowded.max_players = 100;
        let verdict = info_verdict(&crowded);
        assert!(
            verdict.passed && !verdict.warnings.is_empty(),
            "{verdict:?}"
        );
    }

    #[test]
    fn findings_keep_the_first_failure_and_distinct_warnings() {
        let mut f = Findings::default();
        let at = |game| Some(Location { game, step: 1 });
        f.fail(Check::Ends, at(3), "first".into());
        f.fail(Check::Ends, at(5), "second".into());
        f.pass(Check::Ends, "fine");
        f.warn(Check::Limits, at(4), "high".into());
        f.warn(Check::Limits, at(2), "high".into());
        f.pass(Check::Limits, "fine");
        let results = f.results(&[Check::Ends, Check::Limits]);
        assert!(!results[0].passed);
        assert_eq!(results[0].detail, "game 3 (seed 0), step 1: first");
        assert!(results[1].passed);
        assert_eq!(
            results[1].warnings,
            ["high (first at game 2 (seed 0), step 1)"]
        );
    }

    #[test]
    fn measures_keep_the_worst_and_its_earliest_place() {
        let mut m = Measure::new(100);
        m.see(10, Location { game: 0, step: 3 });
        m.see(60, Location { game: 0, step: 5 });
        m.see(60, Location { game: 0, step: 9 });
        let mut other = Measure::new(100);
        other.see(60, Location { game: 1, step: 0 });
        m.merge(&other);
        assert_eq!((m.worst, m.at), (60, Some(Location { game: 0, step: 5 })));
        assert!((m.share() - 0.6).abs() < 1e-9);
    }
}
