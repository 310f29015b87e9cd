//! `cio-import inspect FILE`: its flags, turned into [`InspectOptions`] for [`crate::inspect`].

use super::read::ReadArgs;
use crate::exit;
use crate::inspect::InspectOptions;
use crate::source::Input;
use clap::Args;
use std::path::PathBuf;

/// Options of `inspect`.
#[derive(Args, Debug)]
pub struct InspectArgs {
    /// The input file, or - for stdin.
    pub input: PathBuf,
    /// How to read it.
    #[command(flatten)]
    pub read: ReadArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

impl From<&InspectArgs> for InspectOptions {
    fn from(args: &InspectArgs) -> InspectOptions {
        InspectOptions {
            input: Input::from_arg(&args.input),
            read: args.read.options(),
            json: args.json,
        }
    }
}

/// Runs `inspect`.
pub(super) fn run(args: &InspectArgs) -> anyhow::Result<u8> {
    crate::inspect::run(&InspectOptions::from(args))?;
    Ok(exit::SUCCESS)
}
