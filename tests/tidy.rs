//! The architecture invariants that Cargo cannot enforce, checked on the
//! source tree (ARCHITECTURE.md names each one).
//!
//! - Only `dashdice-proto` spells a NATS subject or a NATS header name.
//! - Only `dashdice-store` names the `redis` crate.
//! - `async_nats` only in the roles, the protocol crate and the tools: never
//!   in the runtime or the store.
//! - No wasmtime in the dependency tree of the gateway, the matchmaker, the
//!   presence role or the mode catalog.
//! - Only `dashdice-archive` names the `firestore` crate, and no role but the
//!   archiver (and the binary) has Firestore in its dependency tree: the
//!   gateway reaches the archive over NATS.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the workspace root")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, with its text.
fn sources(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("read source");
                out.push((path, text));
            }
        }
    }
    out
}

/// The crates under `host/`, by directory name.
fn host_crates() -> Vec<(String, PathBuf)> {
    let host = root().join("host");
    let mut crates: Vec<_> = std::fs::read_dir(&host)
        .expect("read host/")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("Cargo.toml").is_file())
        .map(|p| {
            let name = p
                .file_name()
                .expect("a name")
                .to_string_lossy()
                .into_owned();
            (name, p)
        })
        .collect();
    crates.sort();
    assert!(
        crates.len() >= 8,
        "host/ should hold the role crates: {crates:?}"
    );
    crates
}

/// Lines of the crates in `host/` (except `allowed`) where `forbidden`
/// says a needle appears in code (comments are ignored).
fn offences(allowed: &[&str], forbidden: impl Fn(&str) -> bool) -> Vec<String> {
    let mut found = Vec::new();
    for (name, dir) in host_crates() {
        if allowed.contains(&name.as_str()) {
            continue;
        }
        for (path, text) in sources(&dir.join("src")) {
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                if forbidden(code) {
                    found.push(format!("{}:{}: {}", path.display(), n + 1, line.trim()));
                }
            }
        }
    }
    found
}

/// A string literal that spells a NATS subject or a NATS header: dashdice's
/// subjects (`"dd.…"`), the NATS service and JetStream APIs (`"$SRV…"`,
/// `"$JS…"`) and the header names roles set.
fn spells_subject_or_header(code: &str) -> bool {
    const NEEDLES: [&str; 7] = [
        "\"dd.",
        "\"$SRV",
        "\"$JS",
        "\"Nats-Msg-Id",
        "\"Nats-Expected",
        "\"traceparent",
        "\"tracestate",
    ];
    NEEDLES.iter().any(|n| code.contains(n))
}

#[test]
fn only_the_protocol_crate_spells_subjects_and_headers() {
    let found = offences(&["proto"], spells_subject_or_header);
    assert!(
        found.is_empty(),
        "subject or header literals outside host/proto (use dashdice_proto::bus):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_check_for_subjects_catches_a_literal() {
    // The test above is only as good as its matcher.
    assert!(spells_subject_or_header(
        r#"client.publish("dd.match.x.events", b)"#
    ));
    assert!(spells_subject_or_header(r#"format!("dd.user.{p}.notify")"#));
    assert!(spells_subject_or_header(r#"h.insert("Nats-Msg-Id", id)"#));
    assert!(!spells_subject_or_header(
        r#"format!("dd:{{{shard:02}}}:timers")"#
    ));
}

#[test]
fn only_the_store_knows_redis() {
    let found = offences(&["store"], |code| code.contains("redis::"));
    assert!(
        found.is_empty(),
        "redis:: outside host/store (add a typed call to dashdice-store):\n{}",
        found.join("\n")
    );
}

#[test]
fn the_runtime_and_the_store_know_no_nats() {
    for krate in ["runtime", "store"] {
        let dir = root().join("host").join(krate);
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
        assert!(
            !manifest.contains("async-nats"),
            "host/{krate} must not depend on async-nats"
        );
        for (path, text) in sources(&dir.join("src")) {
            assert!(
                !text.contains("async_nats"),
                "{} names async_nats",
                path.display()
            );
        }
    }
}

/// The packages `package` depends on (normal and build edges), by name.
fn dependency_tree(package: &str) -> Vec<String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(root())
        .args(["tree", "--locked", "--offline", "-e", "normal,build"])
        .args(["--prefix", "none", "--format", "{p}", "-p", package])
        .output()
        .expect("run cargo tree");
    assert!(
        out.status.success(),
        "cargo tree -p {package}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_gateway_the_matchmaker_and_the_catalog_link_no_wasmtime() {
    for package in [
        "dashdice-gateway",
        "dashdice-matchmaker",
        "dashdice-presence",
        "dashdice-notifier",
        "dashdice-catalog",
    ] {
        let tree = dependency_tree(package);
        assert!(
            tree.iter().any(|p| p == "async-nats"),
            "{package}: {tree:?}"
        );
        let wasm: Vec<_> = tree
            .iter()
            .filter(|p| p.starts_with("wasmtime") || p.starts_with("cranelift"))
            .collect();
        assert!(wasm.is_empty(), "{package} pulls in {wasm:?}");
    }
    // And the check can see wasmtime where it is.
    assert!(
        dependency_tree("dashdice-runtime")
            .iter()
            .any(|p| p == "wasmtime")
    );
}

#[test]
fn only_the_notifier_speaks_to_fcm() {
    let found = offences(&["notifier"], |code| {
        code.contains("messages:send")
            || code.contains("fcm.googleapis.com")
            || code.contains("auth/firebase.messaging")
    });
    assert!(
        found.is_empty(),
        "FCM outside host/notifier (roles ask the notifier through the notification stream):\n{}",
        found.join("\n")
    );
}

#[test]
fn only_the_archive_knows_firestore() {
    let found = offences(&["archive"], |code| code.contains("firestore::"));
    assert!(
        found.is_empty(),
        "firestore:: outside host/archive (add a typed call to dashdice-archive):\n{}",
        found.join("\n")
    );
    for package in [
        "dashdice-gateway",
        "dashdice-matchmaker",
        "dashdice-match-host",
        "dashdice-presence",
        "dashdice-notifier",
        "dashdice-store",
        "dashdice-proto",
    ] {
        let tree = dependency_tree(package);
        assert!(
            !tree.iter().any(|p| p == "firestore" || p == "gcloud-sdk"),
            "{package} pulls in Firestore"
        );
    }
    assert!(
        dependency_tree("dashdice-archiver")
            .iter()
            .any(|p| p == "firestore")
    );
    // The archive knows no NATS and no Redis (it uses the protocol crate's
    // types only).
    let dir = root().join("host/archive");
    let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
    assert!(!manifest.contains("async-nats") && !manifest.contains("redis"));
    for (path, text) in sources(&dir.join("src")) {
        assert!(
            !text.contains("async_nats") && !text.contains("redis::"),
            "{} knows NATS or Redis",
            path.display()
        );
    }
}
