//! Builds the hostile test components (see plugins/test-components) so the
//! containment tests load real misbehaving `.wasm` files.

use std::env;
use std::path::PathBuf;

include!("../plugins/build_components.rs");

const COMPONENTS: [&str; 2] = ["hostile", "not-a-mode"];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the workspace root");
    for watched in [
        "wit",
        "plugins/sdk",
        "plugins/test-components",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("modes");
    let packages = COMPONENTS.map(|c| format!("dashdice-test-{c}"));
    build_components(root, &target_dir, &packages);
    for c in COMPONENTS {
        let file = target_dir
            .join(WASM_TARGET)
            .join("mode")
            .join(format!("dashdice_test_{}.wasm", c.replace('-', "_")));
        assert!(file.exists(), "{} was not built", file.display());
        let var = format!("DASHDICE_TEST_{}", c.replace('-', "_").to_uppercase());
        println!("cargo:rustc-env={var}={}", file.display());
    }
}
