//! The `dashdice` binary, built inside the test package so its tests can run
//! it as a real process (`CARGO_BIN_EXE_dashdice-under-test`), e.g. to kill
//! a match host. (A different name: two binaries called `dashdice` would
//! collide in target/.)
fn main() -> std::process::ExitCode {
    dashdice::cli::main()
}
