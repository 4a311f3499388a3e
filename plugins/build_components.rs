// Shared by the build scripts that compile components (host/runtime/build.rs
// for the built-in modes, tests/build.rs for the hostile test components),
// pulled in with `include!`.

use std::path::Path;
use std::process::Command;

const WASM_TARGET: &str = "wasm32-wasip2";

/// Runs `cargo build` for wasm32-wasip2 on `packages`, with the outer build's
/// flags and wrappers removed (they target the host, and clippy's wrapper would
/// lint the plugins a second time).
fn build_components(root: &Path, target_dir: &Path, packages: &[String]) {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root)
        .args(["build", "--quiet", "--target", WASM_TARGET, "--profile", "mode"])
        .arg("--target-dir")
        .arg(target_dir);
    for p in packages {
        cmd.args(["-p", p]);
    }
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_PRIMARY_PACKAGE",
    ] {
        cmd.env_remove(var);
    }
    let status = cmd.status().expect("run cargo for the wasm modes");
    assert!(
        status.success(),
        "building the mode components failed; is the {WASM_TARGET} target installed? \
         (`rustup target add {WASM_TARGET}`)"
    );
}
