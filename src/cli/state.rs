//! `cio-import state FILE`: what a `--state` ledger knows.

use crate::exit;
use clap::Args;
use std::path::PathBuf;

/// Options of `state`.
#[derive(Args, Debug)]
pub struct StateArgs {
    /// The ledger file.
    pub path: PathBuf,
}

/// Prints the ledger's description.
pub(super) fn run(args: &StateArgs) -> anyhow::Result<u8> {
    print!("{}", crate::ledger::describe(&args.path)?);
    Ok(exit::SUCCESS)
}
