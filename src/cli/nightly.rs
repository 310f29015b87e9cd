//! Before an import with guards, a mirror or a previewing dry run: the pre-pass of
//! [`crate::preview::diff`] over a regular file, then the guards that can stop the run before
//! anything is sent (`--min-rows`, `--max-change`), the mirror's confirmation, and the dry
//! run's diff (text, or `--json` on stdout).
//!
//! On an input that cannot be read twice (stdin, a named pipe): `--max-change` is refused (its
//! count would consume the input); a dry run with `--state` is the preview alone (its one pass
//! reads the input, so no rejects or errors files are written); `--mirror` needs `--yes`
//! (stdin holds the data, not an answer); `--min-rows` and the empty check are made once the
//! input has been read (see [`crate::guard`]).

use super::import::ImportArgs;
use super::UsageError;
use crate::config::ImportConfig;
use crate::exit;
use crate::operation::Action;
use crate::preview::{self, Diff};
use std::io::IsTerminal;

/// What the caller does next.
pub(super) enum Next {
    /// Run the import.
    Run,
    /// Stop with this exit code (a guard tripped, or a preview of stdin was all there was).
    Exit(u8),
}

/// Whether a dry run with `--state` previews against the ledger's people: not for objects,
/// relationships, devices or merges, which the people table does not describe (their dry
/// run counts what would be sent or skipped, through their own tables).
fn previewable(cfg: &ImportConfig) -> bool {
    matches!(cfg.convert.action, Action::Identify | Action::Event)
        && crate::convert::object::kind_other_than_people(&cfg.convert).is_none()
}

async fn diff_of(cfg: &ImportConfig) -> Result<Diff, UsageError> {
    let cfg = cfg.clone();
    tokio::task::spawn_blocking(move || preview::diff(&cfg))
        .await
        .map_err(|e| UsageError::Confirmation(e.to_string()))?
        .map_err(|e| UsageError::Confirmation(format!("cannot preview: {e}")))
}

fn print_diff(args: &ImportArgs, d: &Diff) {
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(d).unwrap_or_else(|_| "{}".into())
        );
    } else {
        print!("{}", d.text());
    }
}

/// The checks and previews before the run; may set the mirror's confirmed count.
pub(super) async fn before_run(
    args: &ImportArgs,
    cfg: &mut ImportConfig,
) -> Result<Next, UsageError> {
    let n = cfg.nightly.clone();
    let preview_wanted = cfg.dry_run && cfg.state.is_some() && previewable(cfg);
    if let (true, Some(_), Some(kind)) = (
        cfg.dry_run,
        cfg.state.as_ref(),
        crate::convert::object::kind_other_than_people(&cfg.convert),
    ) {
        eprintln!("--dry-run --state: no preview against the state file for --kind {kind} (it compares people only); the dry run checks and converts every row, and sends none");
    }
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let must_ask = n.mirror.is_some() && !cfg.dry_run && !args.yes;
    if !cfg.input.rereadable() {
        if n.max_change.is_some() && !cfg.dry_run {
            return Err(UsageError::Confirmation(
                "--max-change counts the changes before sending anything, so it reads the input twice: give a regular file, not stdin or a pipe (or drop --max-change)".into(),
            ));
        }
        if must_ask {
            return Err(UsageError::Confirmation(format!(
                "--mirror {} removes people absent from the export and needs --yes (the input is a pipe, so no answer can be typed): nothing was sent",
                n.mirror.as_ref().map(|m| m.mode.name()).unwrap_or_default()
            )));
        }
        if preview_wanted {
            let d = diff_of(cfg).await?;
            print_diff(args, &d);
            eprintln!("preview of a pipe: its one reading was the preview's, so no rejects or errors files were written");
            return Ok(Next::Exit(if d.invalid > 0 {
                exit::ROWS_FAILED
            } else {
                exit::SUCCESS
            }));
        }
        return Ok(Next::Run);
    }
    // A mirror on a regular file is counted first, so that its cap stops the run before any
    // row is sent (the engine checks again once the input has been read: the file may change).
    let prepass = preview_wanted
        || (!cfg.dry_run && (n.min_rows.is_some() || n.max_change.is_some() || n.mirror.is_some()));
    if !prepass {
        return Ok(Next::Run);
    }
    if must_ask && !terminal {
        return Err(refuse_unconfirmed(cfg));
    }
    let d = diff_of(cfg).await?;
    if cfg.dry_run {
        print_diff(args, &d);
        return Ok(Next::Run);
    }
    if let Err(e) = n.check_rows(&d.input, d.rows) {
        return Ok(stop_with(cfg, format!("{e}: nothing was sent")));
    }
    if let Err(e) = n.check_change(&d.input, d.changed.count, d.absent, d.known) {
        return Ok(stop_with(cfg, e.to_string()));
    }
    if let Some(m) = cfg.nightly.mirror.as_mut() {
        let count = d.absent;
        let limit = m.cap.limit(d.known);
        if !must_ask {
            if count > limit {
                let why = format!(
                    "--mirror {} would {} {count} of the {} people known for this workspace ({:.1}%), more than --max-removals {} ({limit} people): nothing was sent; check the export (see --dry-run), or raise --max-removals",
                    m.mode.name(),
                    m.mode.verb(),
                    d.known,
                    count as f64 * 100.0 / d.known.max(1) as f64,
                    m.cap
                );
                return Ok(stop_with(cfg, why));
            }
            return Ok(Next::Run);
        }
        let first = d
            .to_remove
            .as_ref()
            .map(|g| g.first.join(", "))
            .unwrap_or_default();
        eprintln!(
            "mirror {}: {count} of the {} people known are absent from {}{}",
            m.mode.name(),
            d.known,
            d.input,
            if first.is_empty() {
                String::new()
            } else {
                format!("\n  first: {first}")
            }
        );
        if count > limit {
            eprintln!(
                "error: that is more than --max-removals {} ({limit} people): nothing was sent; check the export, or raise --max-removals",
                m.cap
            );
            return Ok(Next::Exit(exit::GUARD));
        }
        if count > 0 {
            eprint!(
                "type the number of people ({count}) to {} them after the sync, anything else to stop: ",
                m.mode.verb()
            );
            let mut answer = String::new();
            let read = tokio::task::spawn_blocking(move || {
                std::io::stdin().read_line(&mut answer).map(|_| answer)
            })
            .await;
            match read {
                Ok(Ok(a)) if crate::confirm::confirms(&a, count) => m.confirmed = count,
                _ => {
                    return Err(UsageError::Confirmation(format!(
                        "--mirror {} not confirmed: nothing was sent",
                        m.mode.name()
                    )))
                }
            }
        }
    }
    Ok(Next::Run)
}

/// A guard tripped before the run: says why, writes the summary (`--summary`, nothing sent,
/// outcome `stopped by a guard`) for monitors, and ends with [`exit::GUARD`].
fn stop_with(cfg: &ImportConfig, why: String) -> Next {
    eprintln!("error: {why}");
    let heading = crate::report::summary::Heading {
        input: cfg.input.display(),
        api: cfg.convert.api.as_str(),
        dry_run: cfg.dry_run,
    };
    let mut s = crate::report::summary::Summary::of(
        &crate::tally::Tally::default(),
        &heading,
        std::time::Duration::ZERO,
    );
    s.end(crate::report::summary::Ending::Guarded, Some(why));
    if let Some(path) = &cfg.summary {
        if let Err(e) = s.write_json(path) {
            eprintln!("error: {e}");
        }
    }
    Next::Exit(s.exit_code)
}

fn refuse_unconfirmed(cfg: &ImportConfig) -> UsageError {
    let mode = cfg
        .nightly
        .mirror
        .as_ref()
        .map(|m| m.mode.name())
        .unwrap_or_default();
    UsageError::Confirmation(format!(
        "--mirror {mode} removes people absent from the export and needs a confirmation: nothing was sent; check with --dry-run, then add --yes (yes = true in a job file)"
    ))
}
