fn main() -> std::process::ExitCode {
    byos3::cli::main()
}
