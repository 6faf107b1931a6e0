fn main() -> std::process::ExitCode {
    bgswap::cli::main()
}
