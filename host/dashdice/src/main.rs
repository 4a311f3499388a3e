fn main() -> std::process::ExitCode {
    dashdice::cli::main()
}
