//! The `biomero-stage` binary: parses the command line and hands over to the library.

fn main() -> std::process::ExitCode {
    biomero_stage::cli::main()
}
