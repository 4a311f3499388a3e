//! Builds the four built-in modes as WebAssembly components, so the `dashdice`
//! binary carries them (`dashdice mode replay classic`, `dashdice up`).
//!
//! This runs a nested `cargo build --target wasm32-wasip2 --profile mode` on the
//! plugin crates, in a target directory of its own so it never waits on the
//! outer build's lock. The wasm target comes from `rust-toolchain.toml`, which
//! rustup installs on first use. Each component's path is passed to the crate as
//! `DASHDICE_MODE_<NAME>` for `include_bytes!`.

use std::env;
use std::path::PathBuf;

const MODES: [&str; 4] = ["classic", "zero-hour", "last-line", "true-grit"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let root = manifest_dir
        .parent()
        .and_then(|host| host.parent())
        .expect("host/runtime/ sits two levels below the workspace root");
    for watched in ["wit", "plugins/sdk", "Cargo.toml", "Cargo.lock"] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    for mode in MODES {
        println!(
            "cargo:rerun-if-changed={}",
            root.join("plugins").join(mode).display()
        );
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");

    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("modes");
    let packages = MODES.map(|m| format!("dashdice-mode-{m}"));
    build_components(root, &target_dir, &packages);

    for mode in MODES {
        let file = target_dir
            .join(WASM_TARGET)
            .join("mode")
            .join(format!("dashdice_mode_{}.wasm", mode.replace('-', "_")));
        assert!(file.exists(), "{} was not built", file.display());
        let var = format!("DASHDICE_MODE_{}", mode.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", file.display());
    }
}

include!("../../plugins/build_components.rs");
