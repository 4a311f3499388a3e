//! The designers' cluster commands: `mode publish`, `list`, `rollback`,
//! `retire`, `canary` and `release`, over the catalog on NATS.

use std::io::Write;
use std::path::Path;

use dashdice_catalog::{Catalog, PublisherKey};
use dashdice_proto::ModeHash;
use dashdice_proto::catalog::{ModePointer, Quarantine};
use dashdice_runtime::{Runtime, builtin};
use dashdice_service::startup;
use dashdice_tools::check;
use indicatif::ProgressBar;
use serde_json::json;

use super::CliError;
use super::args::{NatsArgs, PublishArgs, default_key_file};

fn catalog_error(e: impl std::fmt::Display) -> CliError {
    CliError::Service(e.to_string())
}

/// Connects as a designer and opens (creating if need be) the buckets.
async fn open(nats: &NatsArgs, create: bool) -> Result<Catalog, CliError> {
    let client = nats
        .nats()
        .connect("dashdice-designer")
        .await
        .map_err(|e| CliError::Service(format!("NATS at {}: {e}", nats.nats_url)))?;
    if create {
        Catalog::create(&client).await
    } else {
        Catalog::open(&client).await
    }
    .map_err(catalog_error)
}

/// The publisher key: `DASHDICE_PUBLISHER_KEY` (hex seed), else the file.
fn publisher_key(file: Option<&Path>) -> Result<PublisherKey, CliError> {
    if let Ok(hex) = std::env::var("DASHDICE_PUBLISHER_KEY") {
        return PublisherKey::from_hex(&hex)
            .map_err(|e| CliError::Service(format!("DASHDICE_PUBLISHER_KEY: {e}")));
    }
    let path = file.map(Path::to_path_buf).unwrap_or_else(default_key_file);
    PublisherKey::read(&path).map_err(|e| {
        CliError::Service(format!(
            "{e}; `dashdice up` makes a dev key there, or pass --key-file or DASHDICE_PUBLISHER_KEY"
        ))
    })
}

fn parse_hash(text: &str) -> Result<ModeHash, CliError> {
    text.parse()
        .map_err(|_| CliError::Service(format!("{text:?} is not a version hash (64 hex digits)")))
}

/// Runs `change` on the catalog (which must exist) as the designer.
fn on_catalog<T, F>(nats: &NatsArgs, change: impl FnOnce(Catalog) -> F) -> Result<T, CliError>
where
    F: std::future::Future<Output = Result<T, dashdice_catalog::CatalogError>>,
{
    startup::block_on(async {
        change(open(nats, false).await?)
            .await
            .map_err(catalog_error)
    })?
}

pub fn roll_back(id: &str, nats: &NatsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let pointer = on_catalog(nats, |c| async move { c.roll_back(id).await })?;
    writeln!(out, "{id}: rolled back to {}", pointer.current)?;
    Ok(())
}

pub fn retire(id: &str, nats: &NatsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    on_catalog(nats, |c| async move { c.retire(id).await })?;
    writeln!(out, "{id}: retired (no new matches; running ones finish)")?;
    Ok(())
}

pub fn canary(
    id: &str,
    hash: &str,
    percent: u8,
    promote: bool,
    nats: &NatsArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let hash = parse_hash(hash)?;
    let pointer = on_catalog(nats, |c| async move {
        c.canary(id, hash, percent, promote).await
    })?;
    match (&pointer.canary, promote) {
        (_, true) => writeln!(out, "{id}: {} promoted to current", pointer.current)?,
        (Some(c), _) => writeln!(out, "{id}: {} gets {}% of new matches", c.hash, c.percent)?,
        (None, _) => writeln!(out, "{id}: no canary")?,
    }
    Ok(())
}

pub fn release(hash: &str, nats: &NatsArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let hash = parse_hash(hash)?;
    on_catalog(nats, |c| async move { c.release(hash).await })?;
    writeln!(out, "{hash}: quarantine lifted")?;
    Ok(())
}

pub fn publish(runtime: &Runtime, args: PublishArgs, out: &mut dyn Write) -> Result<(), CliError> {
    let PublishArgs {
        file,
        key_file,
        publisher,
        games,
        nats,
        json,
    } = args;
    let (file, nats) = (file.as_path(), &nats);
    let bytes = std::fs::read(file).map_err(|source| CliError::Read {
        path: file.to_path_buf(),
        source,
    })?;
    // The key first: a missing key should not cost a whole check.
    let key = publisher_key(key_file.as_deref())?;
    let options = check::CheckOptions {
        games,
        ..Default::default()
    };
    let bar = if json {
        ProgressBar::hidden()
    } else {
        super::tools::progress_bar(u64::from(games))
    };
    let report = check::check(runtime, &bytes, &options, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let Some(info) = report.info.clone().filter(|_| report.passed) else {
        if !json {
            writeln!(out, "{}", report.render())?;
        }
        let failed = report.failed().iter().map(|c| c.name()).collect();
        return Err(CliError::CheckFailed {
            mode: file.display().to_string(),
            failed,
        });
    };
    let by = publisher.unwrap_or_else(|| format!("key {}", &key.public().to_string()[..16]));
    let published = startup::block_on(async {
        open(nats, true)
            .await?
            .publish(&bytes, info, &key, &by)
            .await
            .map_err(catalog_error)
    })??;
    let id = &published.pointer.id;
    if json {
        let body = json!({
            "published": published,
            "check": report,
        });
        serde_json::to_writer_pretty(&mut *out, &body).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "checked: {} games passed in {} ms",
            report.games.played, report.elapsed_ms
        )?;
        if published.changed {
            writeln!(
                out,
                "published {id} {} (signed by {}); new matches get it once the hosts have it, within seconds",
                published.hash,
                key.public()
            )?;
        } else {
            writeln!(
                out,
                "{id} {} was already current; nothing changed",
                published.hash
            )?;
        }
    }
    Ok(())
}

/// How many live matches each version has: at most this many are looked at.
const LIVE_SCAN_LIMIT: usize = 100_000;

pub fn list(
    nats: &NatsArgs,
    redis_url: &str,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let builtins = builtin::listings();
    // The cluster's catalog, if there is one to read, and its live matches
    // (skipped if Redis does not answer within 3 s).
    let (cluster, live) = startup::block_on(async {
        let cluster = async {
            let catalog = open(nats, false).await?;
            let pointers = catalog.pointers().await.map_err(catalog_error)?;
            let quarantines = catalog.quarantines().await.map_err(catalog_error)?;
            Ok::<_, CliError>((pointers, quarantines))
        }
        .await;
        let live = async {
            let store = dashdice_store::MatchStore::connect(redis_url).await.ok()?;
            dashdice_match_host::live_by_version(&store, LIVE_SCAN_LIMIT)
                .await
                .ok()
        };
        let live = tokio::time::timeout(std::time::Duration::from_secs(3), live)
            .await
            .ok()
            .flatten();
        (cluster, live)
    })?;
    let (pointers, quarantines, note) = match cluster {
        Ok((p, q)) => (p, q, None),
        Err(e) => (Vec::new(), Vec::new(), Some(e.to_string())),
    };
    if json {
        let live: Option<std::collections::BTreeMap<String, u64>> = live
            .as_ref()
            .map(|l| l.iter().map(|(h, n)| (h.to_string(), *n)).collect());
        let body = json!({
            "builtin": builtins,
            "published": pointers,
            "quarantined": quarantines,
            "live_matches_by_version": live,
            "catalog_error": note,
        });
        serde_json::to_writer_pretty(&mut *out, &body).map_err(std::io::Error::from)?;
        writeln!(out)?;
        return Ok(());
    }
    let live_of = |h: &ModeHash| {
        live.as_ref()
            .map(|l| format!("  live {}", l.get(h).copied().unwrap_or(0)))
            .unwrap_or_default()
    };
    for b in &builtins {
        let overridden = pointers.iter().any(|p| p.id == b.info.id);
        writeln!(
            out,
            "{:<12} built-in   {}  {}{}{}",
            b.info.id,
            b.hash.short(),
            b.info.name,
            live_of(&b.hash),
            if overridden {
                "  (a published version overrides it)"
            } else {
                ""
            }
        )?;
    }
    for p in &pointers {
        render_pointer(p, &quarantines, &live_of, out)?;
    }
    if let Some(note) = note {
        writeln!(out, "(no cluster catalog read: {note})")?;
    }
    Ok(())
}

fn render_pointer(
    p: &ModePointer,
    quarantines: &[Quarantine],
    live_of: &dyn Fn(&ModeHash) -> String,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let quarantined = |h: &ModeHash| quarantines.iter().find(|q| q.hash == *h);
    writeln!(out, "{:<12} published  {:?}", p.id, p.state)?;
    let mut shown: Vec<(ModeHash, &str)> = vec![(p.current, "current")];
    if let Some(c) = &p.canary {
        shown.push((c.hash, "canary"));
    }
    shown.extend(p.previous.iter().map(|h| (*h, "previous")));
    // Versions no rollback goes back to (rolled back from, or older).
    let listed: Vec<ModeHash> = shown.iter().map(|(h, _)| *h).collect();
    shown.extend(
        p.versions
            .keys()
            .filter(|h| !listed.contains(h))
            .map(|h| (*h, "retired")),
    );
    for (hash, role) in shown {
        let version = p.versions.get(&hash);
        let (name, semver, by, at) = version.map_or(("?", "?", "?", 0), |v| {
            (
                v.info.name.as_str(),
                v.info.version.as_str(),
                v.published_by.as_str(),
                v.published_ms,
            )
        });
        let when = humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_millis(at),
        );
        let quarantine = quarantined(&hash)
            .map(|q| {
                format!(
                    "  QUARANTINED: {} ({} faults in {} calls)",
                    q.reason, q.faults, q.calls
                )
            })
            .unwrap_or_default();
        writeln!(
            out,
            "  {role:<9} {hash}  {name} {semver}  by {by} at {when}{}{quarantine}",
            live_of(&hash)
        )?;
    }
    Ok(())
}
