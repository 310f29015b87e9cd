//! The `cio-import` binary: parse the command line, run, exit with the documented code.

use std::process::ExitCode;

/// mimalloc: rows are allocated on the reader thread and freed on the senders' threads, a
/// pattern where glibc's allocator spent a quarter of the import's CPU (see README, Benchmarks).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

extern "C" {
    /// mimalloc's run-time options (`mi_option_set` in `mimalloc.h`, linked in by the
    /// `mimalloc` crate).
    fn mi_option_set(option: std::ffi::c_int, value: std::ffi::c_long);
}

/// `mi_option_purge_delay` in mimalloc 2's `mi_option_e`: how long freed memory is kept before
/// it is returned to the system (10 ms by default).
const MI_OPTION_PURGE_DELAY: std::ffi::c_int = 15;

fn main() -> ExitCode {
    // Return freed pages at once: a long import frees as much as it allocates, and with the
    // default delay the kept pages cost about 15 MiB of resident memory (README, Memory), for
    // about 20% of the CPU-bound ceiling, which the API's rate limit never reaches.
    // SAFETY: a plain C call that sets an integer option, made before any other thread exists.
    unsafe { mi_option_set(MI_OPTION_PURGE_DELAY, 0) };
    let code = match cio_import::cli::parse() {
        Ok(cli) => cio_import::cli::run(cli),
        Err(code) => code,
    };
    ExitCode::from(code)
}
