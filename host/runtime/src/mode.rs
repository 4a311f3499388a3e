//! A loaded mode, and the instances that run its calls.
//!
//! The service path uses [`Mode::start`], [`Mode::act`], [`Mode::view`] and
//! [`Mode::bot`]:
//! each instantiates the component fresh from the pool, makes its calls and drops
//! the instance, so nothing a mode keeps in memory survives into another call,
//! let alone another match. [`Session`] keeps one warm instance for one match,
//! for batch work (simulation, benchmarks) where a single trusted caller plays
//! one game at a time.

use std::sync::Arc;

use dashdice_mode_sdk::{Action, BotMove, MatchConfig, ModeInfo, Outcome};
use serde::de::IgnoredAny;
use wasmtime::{Engine, Store, Trap};

use super::bindings::{self, ModePre};
use super::error::CallError;
use super::limits::{Limit, Limits, Usage};
use super::sandbox::Sandbox;
use dashdice_proto::ModeHash;

/// A compiled, validated mode version.
pub struct Mode {
    pub(super) info: ModeInfo,
    pub(super) hash: ModeHash,
    pub(super) pre: ModePre<Sandbox>,
    pub(super) engine: Engine,
    pub(super) limits: Arc<Limits>,
}

/// One player action, as the host asks a mode to perform it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Throw dice from this entropy (the mode maps it), then roll them.
    Roll { entropy: Vec<u8> },
    /// Apply exactly this action; a `roll` carries its dice (scripts, tests).
    Apply(Action),
}

/// What one action did.
#[derive(Clone, Debug)]
pub struct Acted {
    /// The dice thrown for a [`Step::Roll`].
    pub dice: Option<Vec<u8>>,
    pub outcome: Outcome,
    /// The public JSON view after the action.
    pub view: String,
}

impl Mode {
    pub fn info(&self) -> &ModeInfo {
        &self.info
    }

    /// The version identity: SHA-256 of the component bytes.
    pub fn hash(&self) -> ModeHash {
        self.hash
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Starts a match on a fresh instance; returns the outcome and the view.
    pub fn start(&self, config: &MatchConfig, entropy: &[u8]) -> Result<Acted, CallError> {
        let _span = self.span("start").entered();
        off_async(|| {
            let mut instance = self.session()?;
            let outcome = instance
                .start(config, entropy)
                .inspect_err(|e| self.report(e))?;
            let view = instance
                .view(&outcome.state)
                .inspect_err(|e| self.report(e))?;
            Ok(Acted {
                dice: None,
                outcome,
                view,
            })
        })
    }

    /// Performs one action on a fresh instance: throws the dice if needed,
    /// applies the action and renders the new view, all under one fuel budget.
    pub fn act(&self, state: &[u8], actor: &str, step: &Step) -> Result<Acted, CallError> {
        let _span = self.span("act").entered();
        off_async(|| {
            self.session()?
                .act(state, actor, step)
                .inspect_err(|e| self.report(e))
        })
    }

    /// Renders the public view on a fresh instance.
    pub fn view(&self, state: &[u8]) -> Result<String, CallError> {
        let _span = self.span("view").entered();
        off_async(|| self.session()?.view(state).inspect_err(|e| self.report(e)))
    }

    /// Asks the mode, on a fresh instance, what a bot on turn does: the host
    /// plays bots by the mode's own rules, never by reading its view.
    pub fn bot(&self, state: &[u8]) -> Result<BotMove, CallError> {
        let _span = self.span("bot").entered();
        off_async(|| self.session()?.bot(state).inspect_err(|e| self.report(e)))
    }

    fn span(&self, call: &'static str) -> tracing::Span {
        tracing::info_span!("mode", mode = %self.info.id, version = %self.hash.short(), call)
    }

    /// Mode faults are the operator's business; refusals are the player's.
    fn report(&self, error: &CallError) {
        if error.is_mode_fault() {
            tracing::warn!(mode = %self.info.id, version = %self.hash.short(), code = error.code(), %error, "mode fault");
            let kind = match error {
                CallError::Limit(limit) => limit.kind(),
                other => other.code(),
            };
            metrics::counter!(
                crate::MODE_FAULTS,
                "mode" => self.info.id.clone(),
                "kind" => kind,
            )
            .increment(1);
        }
    }

    /// A warm instance for one match. See the module docs for when to use it.
    pub fn session(&self) -> Result<Session, CallError> {
        Session::new(self)
    }

    /// Asks the component to describe itself (used once, at load).
    pub(super) fn describe(&self) -> Result<ModeInfo, CallError> {
        let mut s = self.session()?;
        s.call(|game, store| game.call_info(store))
            .map(bindings::info)
    }
}

/// Runs a guest call so that it never blocks a Tokio worker: on a
/// multi-thread runtime's worker it runs in `block_in_place` (other tasks
/// move to another thread while the mode burns up to its fuel budget); on a
/// current-thread runtime it runs on a scoped thread of its own.
///
/// Also needed for correctness, not only latency: WASI's synchronous stdio
/// (a mode's panic message going to stderr) blocks on the ambient Tokio
/// runtime, which panics when called from a thread that is driving it, and
/// the host's request then never got an answer.
fn off_async<T: Send>(call: impl FnOnce() -> T + Send) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(RuntimeFlavor::MultiThread) => tokio::task::block_in_place(call),
        Ok(_) => std::thread::scope(|scope| match scope.spawn(call).join() {
            Ok(value) => value,
            Err(panic) => std::panic::resume_unwind(panic),
        }),
        Err(_) => call(),
    }
}

/// A live instance of a mode. Every call gets a full fuel budget. After a trap
/// the instance is poisoned and refuses further calls.
pub struct Session {
    store: Store<Sandbox>,
    bindings: bindings::Mode,
    limits: Arc<Limits>,
    poisoned: bool,
}

impl Session {
    fn new(mode: &Mode) -> Result<Self, CallError> {
        let mut store = Store::new(&mode.engine, Sandbox::new(&mode.limits));
        store.limiter(|sandbox| &mut sandbox.limiter);
        refuel(&mut store, mode.limits.fuel);
        let bindings = mode
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(&e, &store, &mode.limits))?;
        Ok(Session {
            store,
            bindings,
            limits: mode.limits.clone(),
            poisoned: false,
        })
    }

    /// What the last call (`start`, `act`, `view`, ...) used: each refuels to
    /// the full budget first, so the fuel burnt since is that call's.
    pub fn usage(&self) -> Usage {
        Usage {
            fuel: self
                .limits
                .fuel
                .saturating_sub(self.store.get_fuel().unwrap_or(0)),
            memory_bytes: self.store.data().limiter.peak_memory,
        }
    }

    /// Runs one export, turning traps into typed errors.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&bindings::Game, &mut Store<Sandbox>) -> wasmtime::Result<T>,
    ) -> Result<T, CallError> {
        if self.poisoned {
            return Err(CallError::Poisoned);
        }
        let result = f(self.bindings.dashdice_mode_game(), &mut self.store);
        result.map_err(|e| {
            self.poisoned = true;
            classify(&e, &self.store, &self.limits)
        })
    }

    pub fn start(&mut self, config: &MatchConfig, entropy: &[u8]) -> Result<Outcome, CallError> {
        refuel(&mut self.store, self.limits.fuel);
        let config = bindings::config(config);
        let outcome = self
            .call(|game, store| game.call_start(store, &config, entropy))?
            .map_err(bindings::error)?;
        self.check(bindings::outcome(outcome))
    }

    pub fn throw_dice(&mut self, state: &[u8], entropy: &[u8]) -> Result<Vec<u8>, CallError> {
        refuel(&mut self.store, self.limits.fuel);
        Ok(self
            .call(|game, store| game.call_throw_dice(store, &state.to_vec(), entropy))?
            .map_err(bindings::error)?)
    }

    pub fn apply(
        &mut self,
        state: &[u8],
        actor: &str,
        action: &Action,
    ) -> Result<Outcome, CallError> {
        refuel(&mut self.store, self.limits.fuel);
        let action = bindings::action(action);
        let outcome = self
            .call(|game, store| {
                game.call_apply(store, &state.to_vec(), &actor.to_owned(), &action)
            })?
            .map_err(bindings::error)?;
        self.check(bindings::outcome(outcome))
    }

    pub fn view(&mut self, state: &[u8]) -> Result<String, CallError> {
        refuel(&mut self.store, self.limits.fuel);
        self.render(state)
    }

    /// The mode's move for a bot on turn (see [`Mode::bot`]).
    pub fn bot(&mut self, state: &[u8]) -> Result<BotMove, CallError> {
        refuel(&mut self.store, self.limits.fuel);
        let bot_move = self
            .call(|game, store| game.call_bot(store, &state.to_vec()))?
            .map_err(bindings::error)?;
        Ok(bindings::bot_move(bot_move))
    }

    /// One action: throw (if needed), apply, view. The fuel budget covers all
    /// three, so an action costs at most one budget however it is split.
    pub fn act(&mut self, state: &[u8], actor: &str, step: &Step) -> Result<Acted, CallError> {
        refuel(&mut self.store, self.limits.fuel);
        let (dice, action) = match step {
            Step::Roll { entropy } => {
                let dice = self
                    .call(|game, store| game.call_throw_dice(store, &state.to_vec(), entropy))?
                    .map_err(bindings::error)?;
                (Some(dice.clone()), Action::Roll { dice })
            }
            Step::Apply(action) => (None, action.clone()),
        };
        let wit_action = bindings::action(&action);
        let outcome = self
            .call(|game, store| {
                game.call_apply(store, &state.to_vec(), &actor.to_owned(), &wit_action)
            })?
            .map_err(bindings::error)?;
        let outcome = self.check(bindings::outcome(outcome))?;
        let view = self.render(&outcome.state)?;
        Ok(Acted {
            dice,
            outcome,
            view,
        })
    }

    /// The view, checked for size and for being JSON (clients embed it as is).
    fn render(&mut self, state: &[u8]) -> Result<String, CallError> {
        let view = self
            .call(|game, store| game.call_view(store, &state.to_vec()))?
            .map_err(bindings::error)?;
        if view.len() > self.limits.view_bytes {
            return Err(CallError::Limit(Limit::ViewSize {
                bytes: view.len(),
                max_bytes: self.limits.view_bytes,
            }));
        }
        if let Err(e) = serde_json::from_str::<IgnoredAny>(&view) {
            return Err(CallError::InvalidResult(format!("view is not JSON: {e}")));
        }
        Ok(view)
    }

    /// Enforces the size limits on what a mode returned.
    fn check(&self, outcome: Outcome) -> Result<Outcome, CallError> {
        if outcome.state.len() > self.limits.state_bytes {
            return Err(CallError::Limit(Limit::StateSize {
                bytes: outcome.state.len(),
                max_bytes: self.limits.state_bytes,
            }));
        }
        if outcome.events.len() > self.limits.events {
            return Err(CallError::Limit(Limit::Events {
                count: outcome.events.len(),
                max: self.limits.events,
            }));
        }
        if outcome.turn.is_none() != outcome.standings.is_some() {
            return Err(CallError::InvalidResult(
                "standings must be present exactly when no one is on turn".into(),
            ));
        }
        Ok(outcome)
    }
}

fn refuel(store: &mut Store<Sandbox>, fuel: u64) {
    // Only fails when fuel is disabled in the engine config, which it never is.
    let _ = store.set_fuel(fuel);
}

/// Turns a wasmtime error into the typed error that explains it. A limit the
/// limiter refused comes first: a Rust guest aborts when an allocation fails,
/// and the abort is only the symptom.
fn classify(err: &wasmtime::Error, store: &Store<Sandbox>, limits: &Limits) -> CallError {
    let sandbox = store.data();
    if let Some(limit) = &sandbox.limiter.hit {
        return CallError::Limit(limit.clone());
    }
    if err
        .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
        .is_some()
    {
        return CallError::Limit(Limit::ConcurrentInstances {
            max: limits.concurrent_instances,
        });
    }
    let stderr = sandbox.stderr();
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => CallError::Limit(Limit::Fuel {
            budget: limits.fuel,
        }),
        Some(Trap::StackOverflow) => CallError::Limit(Limit::Stack {
            max_bytes: limits.stack_bytes,
        }),
        Some(Trap::UnreachableCodeReached) if stderr.contains("panicked at") => {
            CallError::Panicked {
                message: panic_message(&stderr),
            }
        }
        Some(trap) if stderr.trim().is_empty() => CallError::Trapped {
            message: trap.to_string(),
        },
        Some(trap) => CallError::Trapped {
            message: format!("{trap}; stderr: {}", stderr.trim()),
        },
        None => CallError::Trapped {
            message: format!("{err:#}"),
        },
    }
}

/// The useful part of Rust's panic output: location and message, without the
/// backtrace hint.
fn panic_message(stderr: &str) -> String {
    let from = stderr.find("panicked at").unwrap_or(0);
    stderr[from..]
        .lines()
        .filter(|l| !l.starts_with("note: run with"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim()
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::panic_message;

    #[test]
    fn panic_message_keeps_location_and_text() {
        let stderr = "\nthread '<unnamed>' panicked at src/lib.rs:9:5:\nboom\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace\n";
        assert_eq!(panic_message(stderr), "panicked at src/lib.rs:9:5: boom");
    }
}
