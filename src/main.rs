//! The `cio-import` binary: parse the command line, run, exit with the documented code.

use std::process::ExitCode;

fn main() -> ExitCode {
    ExitCode::from(cio_import::cli::main())
}
