fn main() -> std::process::ExitCode {
    kvault::cli::main()
}
