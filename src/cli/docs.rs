//! `cio-import completions SHELL` and `cio-import man`: shell completions and a man page,
//! generated from the command-line declaration itself (clap_complete, clap_mangen), so they
//! never drift from the options.

use super::Cli;
use crate::exit;
use clap::{Args, CommandFactory};
use clap_complete::Shell;
use std::io::Write;

/// Options of `completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Prints the completion script for `args.shell` on stdout.
pub(super) fn completions(args: &CompletionsArgs) -> u8 {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "cio-import", &mut out);
    write_out(&out)
}

/// Prints the man page (roff) on stdout: `cio-import(1)`, then one page per subcommand
/// (`cio-import-import(1)`, ...) with its options, in one roff stream (`man -l -` shows them
/// one after the other).
pub(super) fn man() -> u8 {
    let mut cmd = Cli::command();
    cmd.build();
    let mut out = Vec::new();
    let mut rendered = clap_mangen::Man::new(cmd.clone()).render(&mut out);
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        if rendered.is_err() {
            break;
        }
        let name = format!("cio-import-{}", sub.get_name());
        let page = sub
            .clone()
            .display_name(name.clone())
            .bin_name(name)
            .version(env!("CARGO_PKG_VERSION"));
        rendered = clap_mangen::Man::new(page).render(&mut out);
    }
    match rendered {
        Ok(()) => write_out(&out),
        Err(e) => {
            eprintln!("error: cannot render the man page: {e}");
            exit::USAGE_OR_IO
        }
    }
}

fn write_out(bytes: &[u8]) -> u8 {
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(bytes).and_then(|_| stdout.flush()) {
        Ok(()) => exit::SUCCESS,
        // A closed pipe (`| head`) is not an error worth a message.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => exit::SUCCESS,
        Err(e) => {
            eprintln!("error: cannot write to stdout: {e}");
            exit::USAGE_OR_IO
        }
    }
}
