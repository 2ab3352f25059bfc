fn main() -> std::process::ExitCode {
    qis_edge::cli::main()
}
