//! The `cio-import` binary: parse the command line, run, exit with the documented code.

use std::process::ExitCode;

/// mimalloc: rows are allocated on the reader thread and freed on the senders' threads, a
/// pattern where glibc's allocator spent a quarter of the import's CPU (see README, Benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    ExitCode::from(cio_import::cli::main())
}
