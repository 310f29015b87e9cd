//! `cio-import state FILE`: what a `--state` ledger knows: its people, the trend of the last
//! runs' counts, and the rows that failed in them (`--json` for scripts).

use crate::exit;
use clap::Args;
use std::path::PathBuf;

/// Options of `state`.
#[derive(Args, Debug)]
pub struct StateArgs {
    /// The ledger file.
    pub path: PathBuf,
    /// How many of the last runs to show (their counts and their failed rows).
    #[arg(long, default_value_t = crate::ledger::DEFAULT_STATE_RUNS as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    pub runs: u64,
    /// Print JSON for scripts: destinations, runs (each with its summary and failed rows).
    #[arg(long)]
    pub json: bool,
}

/// Prints the ledger's description.
pub(super) fn run(args: &StateArgs) -> anyhow::Result<u8> {
    let runs = args.runs as usize;
    if args.json {
        let v = crate::ledger::state_json(&args.path, runs)?;
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        print!("{}", crate::ledger::describe_runs(&args.path, runs)?);
    }
    Ok(exit::SUCCESS)
}
