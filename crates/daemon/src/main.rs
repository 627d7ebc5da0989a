//! The `biomero-stage` binary: parses the command line and hands over to the library.

// mimalloc keeps freed chunk buffers for reuse instead of handing fresh,
// page-faulting memory to every decoded chunk (measured in benches/).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    biomero_stage::cli::main()
}
