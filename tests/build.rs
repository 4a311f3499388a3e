//! Builds the hostile test components (see plugins/test-components) so the
//! containment tests load real misbehaving `.wasm` files.

use std::env;
use std::path::PathBuf;

include!("../plugins/build_components.rs");

const COMPONENTS: [&str; 5] = [
    "hostile",
    "not-a-mode",
    "nondeterministic",
    "endless",
    "bad-bot",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets this"));
    let root = manifest_dir
        .parent()
        .expect("tests/ sits in the workspace root");
    for watched in [
        "wit",
        "plugins/sdk",
        "plugins/test-components",
        "plugins/template",
        "Cargo.lock",
    ] {
        println!("cargo:rerun-if-changed={}", root.join(watched).display());
    }
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_DIR");
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("modes");
    let mut packages: Vec<String> = COMPONENTS
        .iter()
        .map(|c| format!("dashdice-test-{c}"))
        .collect();
    // The designers' template mode: a mode that is not built in, for the
    // publish-and-play tests.
    packages.push("dashdice-mode-template".to_owned());
    build_components(root, &target_dir, &packages);
    let template = target_dir
        .join(WASM_TARGET)
        .join("mode")
        .join("dashdice_mode_template.wasm");
    assert!(template.exists(), "{} was not built", template.display());
    println!(
        "cargo:rustc-env=DASHDICE_TEST_TEMPLATE={}",
        template.display()
    );
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
