//! The `dashdice` command line: one binary for every role and tool.
//!
//! - `args`: the clap schema (what a user may type);
//! - `roles`: starting `match-host`, `matchmaker`, `gateway`, `archiver`,
//!   `presence`, `notifier` and `up`;
//! - `notify`: operators' `notify broadcast`;
//! - `tools`: mode commands, `match verify`, benches, `loadgen`;
//! - `bench_presence`: `bench presence`, with the servers and the presence
//!   role it starts for itself.
//!
//! `run` takes parsed arguments and an output stream, so tests drive the real
//! verbs in-process and read what a user would see.

use std::io::Write;
use std::path::PathBuf;

use clap::Parser;

use dashdice_runtime::LoadError;
use dashdice_runtime::builtin;
use dashdice_runtime::fair_dice;
use dashdice_tools::replay;
use dashdice_tools::simulate;

mod args;
mod bench_presence;
mod catalog;
mod notify;
mod roles;
mod tools;

pub use args::*;
pub use tools::load;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("unknown mode {0:?}: not a file, and not a built-in mode ({list})", list = builtin_ids())]
    UnknownMode(String),
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the script {path} is not valid: {source}")]
    Script {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} is not a final match view or match record: {why}")]
    Record { path: PathBuf, why: String },
    #[error("verification failed: {0}")]
    Verify(#[from] fair_dice::VerifyError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Replay(#[from] replay::ReplayError),
    #[error(transparent)]
    Simulate(#[from] simulate::SimulateError),
    #[error(transparent)]
    Scaffold(#[from] dashdice_tools::scaffold::ScaffoldError),
    /// `mode check` ran and the mode failed it; the report says why.
    #[error("{mode} is not fit to publish: failed {} (see the report)", failed.join(", "))]
    CheckFailed {
        mode: String,
        failed: Vec<&'static str>,
    },
    #[error("writing output: {0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Service(String),
}

impl CliError {
    /// True when the reader of our output went away (`dashdice ... | head`):
    /// not worth an error message.
    pub fn is_broken_pipe(&self) -> bool {
        let io = match self {
            CliError::Io(e) | CliError::Replay(replay::ReplayError::Io(e)) => e,
            _ => return false,
        };
        io.kind() == std::io::ErrorKind::BrokenPipe
    }
}

fn builtin_ids() -> String {
    builtin::MODES.map(|(id, _)| id).join(", ")
}

/// The whole program: parse the arguments, run, report. `main.rs` is this
/// one call, and so is the test suite's copy of the binary.
pub fn main() -> std::process::ExitCode {
    use std::process::ExitCode;
    dashdice_service::install_crypto();
    let cli = Cli::parse();
    if !cli.command.is_service() {
        dashdice_service::telemetry::init_logs();
    }
    let stdout = std::io::stdout();
    match run(cli, &mut stdout.lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is_broken_pipe() => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dashdice: {e}");
            ExitCode::FAILURE
        }
    }
}

impl Command {
    /// Long-running roles set up their own telemetry (traces and metrics).
    fn is_service(&self) -> bool {
        matches!(
            self,
            Command::MatchHost(_)
                | Command::Matchmaker(_)
                | Command::Gateway(_)
                | Command::Archiver(_)
                | Command::Presence(_)
                | Command::Notifier(_)
                | Command::Up(_)
        )
    }
}

/// Runs a parsed command, writing its output to `out`.
pub fn run(cli: Cli, out: &mut dyn Write) -> Result<(), CliError> {
    match cli.command {
        Command::Mode(args) => tools::mode(args, out),
        Command::Match(command) => tools::verify(command, out),
        Command::Up(args) => roles::run_up(*args, out),
        Command::MatchHost(args) => roles::run_match_host(args),
        Command::Matchmaker(args) => roles::run_matchmaker(args),
        Command::Gateway(args) => roles::run_gateway(args, out),
        Command::Archiver(args) => roles::run_archiver(args),
        Command::Presence(args) => roles::run_presence(args),
        Command::Notifier(args) => roles::run_notifier(args),
        Command::Notify(command) => notify::run(command, out),
        Command::Bench(command) => tools::bench(command, out),
        Command::Loadgen(args) => tools::loadgen(args, out),
    }
}
