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
use super::log::{say, Level};
use super::UsageError;
use crate::config::ImportConfig;
use crate::exit;
use crate::operation::Action;
use crate::preview::{self, Diff};
use crate::stop::Stop;
use std::io::IsTerminal;

/// What the caller does next.
pub(super) enum Next {
    /// Run the import.
    Run,
    /// Stop with this exit code (a preview of stdin was all there was).
    Exit(u8),
    /// A guard tripped before anything was sent (the reason, already logged): the caller
    /// ends the run with [`guarded`]'s summary, written, recorded and alerted like any run's.
    Guarded(String),
}

/// Whether a dry run with `--state` previews against the ledger's people: not for objects,
/// relationships, devices or merges, which the people table does not describe (their dry
/// run counts what would be sent or skipped, through their own tables).
fn previewable(cfg: &ImportConfig) -> bool {
    matches!(cfg.convert.action, Action::Identify | Action::Event)
        && crate::convert::object::kind_other_than_people(&cfg.convert).is_none()
}

/// The preview's diff; `Ok(None)` when Ctrl-C or SIGTERM stopped it (nothing was sent).
async fn diff_of(cfg: &ImportConfig, stop: &Stop) -> Result<Option<Diff>, UsageError> {
    let (cfg, stop) = (cfg.clone(), stop.clone());
    match tokio::task::spawn_blocking(move || preview::diff(&cfg, &stop))
        .await
        .map_err(|e| UsageError::Confirmation(e.to_string()))?
    {
        Ok(d) => Ok(Some(d)),
        Err(preview::PreviewError::Interrupted) => {
            say(
                Level::Warn,
                "interrupted while reading the input for the preview: nothing was sent",
            );
            Ok(None)
        }
        Err(e) => Err(UsageError::Confirmation(format!("cannot preview: {e}"))),
    }
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
    stop: &Stop,
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
            let Some(d) = diff_of(cfg, stop).await? else {
                return Ok(Next::Exit(exit::INTERRUPTED));
            };
            print_diff(args, &d);
            say(Level::Info, "preview of a pipe: its one reading was the preview's, so no rejects or errors files were written");
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
    let Some(d) = diff_of(cfg, stop).await? else {
        return Ok(Next::Exit(exit::INTERRUPTED));
    };
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
        say(
            Level::Info,
            &format!(
                "mirror {}: {count} of the {} people known are absent from {}{}",
                m.mode.name(),
                d.known,
                d.input,
                if first.is_empty() {
                    String::new()
                } else {
                    format!("\n  first: {first}")
                }
            ),
        );
        if count > limit {
            let why = format!(
                "--mirror {}: {count} absent is more than --max-removals {} ({limit} people): nothing was sent; check the export, or raise --max-removals",
                m.mode.name(),
                m.cap
            );
            return Ok(stop_with(cfg, why));
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

/// A guard tripped before the run: says why; the caller makes the summary with [`guarded`].
fn stop_with(_cfg: &ImportConfig, why: String) -> Next {
    say(Level::Error, &format!("error: {why}"));
    Next::Guarded(why)
}

/// The summary of a run that stopped before sending anything (`ending`: a guard, or a setup
/// error such as an unconfirmed mirror), under its run record: nothing read, nothing sent.
/// With `--state` (not a dry run), the state file's run history records it too, so that
/// `cio-import state` shows the night.
pub(super) fn stopped_before(
    cfg: &ImportConfig,
    mut record: crate::run_record::RunRecord,
    ending: crate::report::summary::Ending,
    why: String,
) -> crate::report::summary::Summary {
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
    s.end(ending, Some(why));
    record.finish();
    s.run = Some(record);
    if let Some(path) = cfg.state.as_ref().filter(|_| !cfg.dry_run) {
        if let Err(e) = record_in_ledger(cfg, path, &s) {
            say(
                Level::Warn,
                &format!("warning: the run is not in the state file's history: {e}"),
            );
        }
    }
    s
}

fn record_in_ledger(
    cfg: &ImportConfig,
    path: &std::path::Path,
    s: &crate::report::summary::Summary,
) -> Result<(), String> {
    let site_id = cfg
        .credentials
        .as_ref()
        .map(|c| c.site_id.as_str())
        .unwrap_or("");
    let dest = crate::ledger::Destination::new(site_id, &cfg.endpoint);
    let l = crate::ledger::Ledger::open(path, &cfg.input.display(), &dest)
        .map_err(|e| e.to_string())?;
    if let Some(r) = &s.run {
        l.record_run(r).map_err(|e| e.to_string())?;
    }
    let w = l.writer(|_| {}).map_err(|e| e.to_string())?;
    w.finish(serde_json::to_string(s).unwrap_or_default(), s.exit_code)
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
