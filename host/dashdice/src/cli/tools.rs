//! The tools behind the command line: designers' mode commands, match
//! verification, the benches and the load generator. Each prints a report
//! (text, or JSON with `--json`) to the output it is given.

use std::io::Write;
use std::path::Path;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use dashdice_runtime::builtin;
use dashdice_runtime::fair_dice;
use dashdice_runtime::{Limits, Mode, Runtime};
use dashdice_service::startup;
use dashdice_tools::check;
use dashdice_tools::replay::{self, Script};
use dashdice_tools::simulate;

use super::CliError;
use super::args::{BenchCommand, Connections, LoadgenArgs, MatchCommand, ModeArgs, ModeCommand};
use super::catalog;

pub fn mode(args: ModeArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let mut runtime = Runtime::new(Limits::default())?;
    if let Some(dir) = args.artifact_dir {
        runtime = runtime.with_artifact_dir(dir);
    }
    run_mode(&runtime, args.command, out)
}

fn run_mode(runtime: &Runtime, command: ModeCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        ModeCommand::List {
            nats,
            redis_url,
            json,
        } => catalog::list(&nats, &redis_url, json, out)?,
        ModeCommand::Publish(args) => catalog::publish(runtime, args, out)?,
        ModeCommand::Rollback { id, nats } => catalog::roll_back(&id, &nats, out)?,
        ModeCommand::Retire { id, nats } => catalog::retire(&id, &nats, out)?,
        ModeCommand::Canary {
            id,
            hash,
            percent,
            promote,
            nats,
        } => catalog::canary(&id, &hash, percent, promote, &nats, out)?,
        ModeCommand::Release { hash, nats } => catalog::release(&hash, &nats, out)?,
        ModeCommand::Inspect { mode } => {
            let mode = load(runtime, &mode)?;
            let report = json!({ "version_hash": mode.hash(), "info": mode.info() });
            serde_json::to_writer_pretty(&mut *out, &report).map_err(std::io::Error::from)?;
            writeln!(out)?;
        }
        ModeCommand::Replay { mode, script, seed } => {
            let mode = load(runtime, &mode)?;
            let text = read(&script)?;
            let parsed: Script =
                serde_json::from_slice(&text).map_err(|source| CliError::Script {
                    path: script.clone(),
                    source,
                })?;
            replay::replay(&mode, &parsed, seed, out)?;
        }
        ModeCommand::New { id, path, name } => {
            let created =
                dashdice_tools::scaffold::new_mode(&id, name.as_deref(), path.as_deref())?;
            let names = &created.names;
            let wasm = names.component();
            writeln!(
                out,
                "created mode {:?} ({}) in {}: crate {}, rules type {}",
                names.id,
                names.display_name,
                created.dir.display(),
                names.crate_name,
                names.type_name
            )?;
            writeln!(out, "next:")?;
            writeln!(out, "  cd {}", created.dir.display())?;
            writeln!(out, "  cargo test")?;
            writeln!(out, "  cargo build --release --target wasm32-wasip2")?;
            writeln!(out, "  dashdice mode check {}", wasm.display())?;
            writeln!(out, "  dashdice mode publish {}", wasm.display())?;
        }
        ModeCommand::Simulate(args) => {
            let mode = load(runtime, &args.mode)?;
            let options = simulate::Options {
                games: args.games,
                seed: args.seed,
                max_actions: args.max_actions,
                threads: args
                    .threads
                    .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
            };
            let report = simulate::simulate(&mode, &options, &progress_bar(args.games))?;
            print_report(out, args.json, &report, || report.render())?;
        }
        ModeCommand::Check {
            mode,
            games,
            seed,
            max_actions,
            json,
        } => {
            let bytes = mode_bytes(&mode)?;
            let options = check::CheckOptions {
                games,
                seed,
                max_actions,
            };
            let bar = if json {
                ProgressBar::hidden()
            } else {
                progress_bar(u64::from(games))
            };
            let report = check::check(runtime, &bytes, &options, &|done, total| {
                bar.set_length(total);
                bar.set_position(done);
            });
            bar.finish_and_clear();
            print_report(out, json, &report, || report.render())?;
            if !report.passed {
                let failed = report.failed().iter().map(|c| c.name()).collect();
                return Err(CliError::CheckFailed { mode, failed });
            }
        }
    }
    Ok(())
}

pub fn verify(command: MatchCommand, out: &mut dyn Write) -> Result<(), CliError> {
    let MatchCommand::Verify {
        record,
        archived,
        firestore,
        mode,
    } = command;
    let parsed = match (record, archived) {
        (_, Some(match_id)) => archived_record(&firestore, &match_id)?,
        (Some(record), None) => {
            let text = read(&record)?;
            dashdice_proto::matches::verifiable_record(&text).map_err(|why| CliError::Record {
                path: record.clone(),
                why,
            })?
        }
        (None, None) => {
            return Err(CliError::Service(
                "give a record file or --archived MATCH_ID".into(),
            ));
        }
    };
    let runtime = Runtime::new(Limits::default())?;
    let mode = load(&runtime, mode.as_deref().unwrap_or(&parsed.mode))?;
    let verified = fair_dice::verify(&mode, &parsed)?;
    writeln!(
        out,
        "verified: match {} ({} actions, {} rolls); every roll follows from the revealed seed",
        verified.match_id, verified.actions, verified.rolls
    )?;
    Ok(())
}

/// A match's record as the archive (Firestore) keeps it.
fn archived_record(
    firestore: &super::args::FirestoreArgs,
    match_id: &str,
) -> Result<dashdice_proto::record::MatchRecord, CliError> {
    let config = firestore.config();
    let found = dashdice_service::startup::block_on(async {
        let archive = dashdice_archive::Archive::connect(
            &config,
            dashdice_archive::ledger::Seasons::ALL_TIME,
        )
        .await?;
        archive.archived_match(match_id).await
    })
    .map_err(|e| CliError::Service(e.to_string()))?
    .map_err(|e| CliError::Service(format!("firestore ({}): {e}", config.project)))?;
    found.map(|m| m.record).ok_or_else(|| {
        CliError::Service(format!(
            "no match {match_id:?} in the archive of project {}",
            config.project
        ))
    })
}

/// The bus (as the client `dashdice-bench`) and the match store a bench drives.
async fn bench_connections(
    c: &Connections,
) -> Result<(async_nats::Client, dashdice_store::MatchStore), CliError> {
    let store = dashdice_store::MatchStore::connect(&c.redis_url)
        .await
        .map_err(|e| CliError::Service(format!("redis at {}: {e}", c.redis_url)))?;
    let nats = c
        .nats()
        .connect("dashdice-bench")
        .await
        .map_err(CliError::Service)?;
    Ok((nats, store))
}

pub fn bench(command: BenchCommand, out: &mut dyn Write) -> Result<(), CliError> {
    match command {
        BenchCommand::Presence(args) => super::bench_presence::run(args, out),
        BenchCommand::Archive {
            records,
            players,
            concurrency,
            connections,
            firestore,
            json,
        } => {
            use dashdice_tools::bench::archive::archive_bench;
            let bar = progress_bar(records as u64);
            let config = firestore.config();
            let report = startup::block_on(async {
                let service = |e: String| CliError::Service(e);
                let nats = connections
                    .nats()
                    .connect("dashdice-bench")
                    .await
                    .map_err(service)?;
                let archiver = dashdice_archiver::Archiver {
                    archive: dashdice_archive::Archive::connect(
                        &config,
                        dashdice_archive::ledger::Seasons::ALL_TIME,
                    )
                    .await
                    .map_err(|e| CliError::Service(format!("firestore: {e}")))?,
                    boards: dashdice_store::leaderboards::Leaderboards::connect(
                        &connections.redis_url,
                    )
                    .await
                    .map_err(|e| CliError::Service(format!("redis: {e}")))?,
                    clock: dashdice_proto::clock::system(),
                };
                archive_bench(nats, archiver, records, players, concurrency, &|n| {
                    bar.set_position(n)
                })
                .await
                .map_err(|e| CliError::Service(e.to_string()))
            })??;
            bar.finish_and_clear();
            print_report(out, json, &report, || report.render())
        }
        BenchCommand::ArchiveLag {
            seconds,
            nats,
            json,
        } => {
            let config = nats.nats();
            let report = startup::block_on(async {
                let client = config
                    .connect("dashdice-bench")
                    .await
                    .map_err(CliError::Service)?;
                dashdice_tools::bench::archive::watch_lag(&client, seconds)
                    .await
                    .map_err(CliError::Service)
            })??;
            print_report(out, json, &report, || report.render())
        }
        BenchCommand::Publish {
            file,
            publishes,
            hosts,
            nats,
            json,
        } => {
            use dashdice_tools::bench::publish::{PublishOptions, publish_bench};
            let component = read(&file)?;
            let bar = progress_bar(publishes as u64);
            let options = PublishOptions {
                publishes,
                hosts,
                timeout: std::time::Duration::from_secs(60),
            };
            let config = nats.nats();
            let report = startup::block_on(async {
                publish_bench(
                    || config.connect("dashdice-bench"),
                    &component,
                    &options,
                    &|n| bar.set_position(n as u64),
                )
                .await
                .map_err(|e| CliError::Service(e.to_string()))
            })??;
            bar.finish_and_clear();
            print_report(out, json, &report, || report.render())
        }
        BenchCommand::MatchHost {
            matches,
            seconds,
            mode,
            rate,
            connections,
            json,
        } => {
            let report = startup::block_on(async {
                let (client, store) = bench_connections(&connections).await?;
                let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
                let options = dashdice_tools::bench::Options {
                    matches,
                    duration: std::time::Duration::from_secs(seconds),
                    mode,
                    rate,
                };
                dashdice_tools::bench::match_host(client, store, &options, bar)
                    .await
                    .map_err(|e| CliError::Service(e.to_string()))
            })??;
            print_report(out, json, &report, || report.render())
        }
        BenchCommand::Matchmaker {
            tickets,
            rate,
            mode,
            kind,
            drain_seconds,
            stub_host,
            seed,
            poor_share,
            connections,
            json,
        } => {
            let kind = match kind.as_str() {
                "ranked" => dashdice_matchmaker::QueueKind::Ranked,
                "quick" => dashdice_matchmaker::QueueKind::Quick,
                other => {
                    return Err(CliError::Service(format!(
                        "--kind {other:?}: expected ranked or quick"
                    )));
                }
            };
            let report = startup::block_on(async {
                let (client, store) = bench_connections(&connections).await?;
                let bar = ProgressBar::with_draw_target(
                    Some(tickets as u64),
                    ProgressDrawTarget::stderr(),
                );
                let options = dashdice_tools::bench::matchmaker::Options {
                    tickets,
                    rate,
                    mode,
                    kind,
                    drain: std::time::Duration::from_secs(drain_seconds),
                    stub_host,
                    seed,
                    poor_share,
                };
                dashdice_tools::bench::matchmaker::matchmaker(client, store, &options, bar)
                    .await
                    .map_err(|e| CliError::Service(e.to_string()))
            })??;
            print_report(out, json, &report, || report.render())
        }
    }
}

pub fn loadgen(args: LoadgenArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let options = dashdice_tools::bench::loadgen::LoadOptions {
        url: args.url,
        players: args.players,
        duration: args.duration,
        modes: args.mode,
        think: std::time::Duration::from_millis(args.think_ms),
        ramp: std::time::Duration::from_secs(args.ramp_seconds),
    };
    let report = startup::block_on(async {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} s  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        dashdice_tools::bench::loadgen::run(&options, bar)
            .await
            .map_err(|e| CliError::Service(e.to_string()))
    })??;
    print_report(out, args.json, &report, || report.render())
}

/// A report as pretty JSON (`--json`) or as its text rendering.
fn print_report<T: serde::Serialize>(
    out: &mut dyn Write,
    json: bool,
    report: &T,
    render: impl FnOnce() -> String,
) -> Result<(), CliError> {
    if json {
        serde_json::to_writer_pretty(&mut *out, report).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        write!(out, "{}", render())?;
    }
    Ok(())
}

/// A progress bar on stderr; invisible when stderr is not a terminal.
pub(super) fn progress_bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {wide_bar} {pos}/{len} games ({per_sec}, eta {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// A mode from a component file, or a built-in by id.
pub fn load(runtime: &Runtime, mode: &str) -> Result<Mode, CliError> {
    Ok(runtime.load(&mode_bytes(mode)?)?)
}

/// The bytes of a component file, or of a built-in mode by id.
fn mode_bytes(mode: &str) -> Result<Vec<u8>, CliError> {
    let path = Path::new(mode);
    if path.is_file() {
        read(path)
    } else {
        Ok(builtin::bytes(mode)
            .ok_or_else(|| CliError::UnknownMode(mode.to_owned()))?
            .to_vec())
    }
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}
