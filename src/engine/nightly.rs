//! After the input has been read: the row guards of [`crate::guard`] (an empty input,
//! `--min-rows`) and the mirror's removals ([`crate::mirror`]), which go out through the same
//! batching, pacing and retries as rows once every check has passed.

use super::read::{Chunk, CHUNK_ROWS};
use crate::config::ImportConfig;
use crate::ledger::Ledger;
use crate::mirror::{self, MirrorReport, Seen};
use crate::record::Identifier;
use crate::tally::Tally;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc;

/// What the phase after reading decided.
#[derive(Default)]
pub(super) struct AfterRead {
    /// A guard that tripped: the run ends as [`crate::report::summary::Ending::Guarded`].
    pub(super) guard: Option<String>,
    /// The mirror's figures so far (the removals' outcomes are added once they are known).
    pub(super) mirror: Option<MirrorReport>,
}

/// How reading went, for the phase after it.
pub(super) struct ReadDone<'a> {
    /// The input's name.
    pub(super) input: &'a str,
    /// Why the input was not read to its end (a read error, an interruption, a fatal answer),
    /// if it was not.
    pub(super) incomplete: Option<String>,
    /// Who the rows named (with `--mirror`).
    pub(super) seen: Option<Seen>,
}

/// Checks the rows read, then (with `--mirror`, not on a dry run) sends the removals of the
/// absent through `removals`, which is dropped before returning.
pub(super) async fn after_read(
    cfg: &ImportConfig,
    ledger: Option<&Ledger>,
    tally: &Tally,
    read: ReadDone<'_>,
    removals: Option<mpsc::Sender<Chunk>>,
) -> AfterRead {
    let mut out = AfterRead::default();
    let rows = Tally::get(&tally.rows);
    if read.incomplete.is_none() {
        if let Err(e) = cfg.nightly.check_rows(read.input, rows) {
            out.guard = Some(e.to_string());
        }
    }
    let (Some(settings), Some(ledger), Some(tx)) = (&cfg.nightly.mirror, ledger, removals) else {
        return out;
    };
    let mut report = MirrorReport {
        mode: settings.mode.name(),
        ..MirrorReport::default()
    };
    let held = |report: &mut MirrorReport, why: String| {
        report.not_sent = report.absent;
        report.held_back = Some(why);
    };
    if let Some(why) = read.incomplete {
        held(
            &mut report,
            format!("the input was not read to its end ({why}): absent people cannot be told from unread ones"),
        );
        out.mirror = Some(report);
        return out;
    }
    let Some(seen) = read.seen else {
        out.mirror = Some(report);
        return out;
    };
    let kind = cfg.convert.id_kind;
    let dest = ledger.dest_id();
    let feed = ledger.feed().to_string();
    report.feed = feed.clone();
    let counted = {
        let conn = ledger.connection();
        conn.map_err(|e| e.to_string()).and_then(|c| {
            mirror::absent(&c, dest, kind, &feed, &seen, crate::confirm::FIRST)
                .map_err(|e| e.to_string())
        })
    };
    let a = match counted {
        Ok(a) => a,
        Err(e) => {
            held(&mut report, format!("the state file cannot be read: {e}"));
            out.mirror = Some(report);
            return out;
        }
    };
    report.known = a.known;
    report.absent = a.count;
    report.other_kinds = a.other_kinds;
    report.other_feeds = a.other_feeds;
    report.first = a.people.iter().map(Identifier::v1_path_value).collect();
    report.left = a.left.len() as u64;
    report.left_first = a
        .left
        .iter()
        .take(crate::confirm::FIRST)
        .map(|(id, other)| format!("{} (still in feed {other:?})", id.v1_path_value()))
        .collect();
    let limit = settings.cap.limit(a.known);
    if out.guard.is_some() {
        held(&mut report, "a guard stopped the run".into());
    } else if seen.unidentified > 0 && a.count > 0 {
        held(
            &mut report,
            format!(
                "{} rows have no readable identifier, and any absent person may be one of them: fix those rows (see the errors file)",
                seen.unidentified
            ),
        );
    } else if a.count > limit {
        let why = format!(
            "--mirror {} would {} {} of the {} people known for this workspace ({:.1}%), more than --max-removals {} ({limit} people): nothing was removed; check the export (see --dry-run), or raise --max-removals",
            report.mode,
            settings.mode.verb(),
            a.count,
            a.known,
            a.count as f64 * 100.0 / a.known.max(1) as f64,
            settings.cap,
        );
        held(&mut report, why.clone());
        out.guard = Some(why);
    } else if a.count > settings.confirmed {
        let why = format!(
            "--mirror {} would {} {} people absent from the export and needs a confirmation: nothing was removed; check with --dry-run, then add --yes",
            report.mode,
            settings.mode.verb(),
            a.count
        );
        held(&mut report, why.clone());
        out.guard = Some(why);
    } else if a.count > 0 || !a.back.is_empty() || !a.left.is_empty() {
        // Everyone absent, listed this time; written to the ledger before anything is sent.
        let planned = ledger
            .connection()
            .map_err(|e| e.to_string())
            .and_then(|mut c| {
                let all = mirror::absent(&c, dest, kind, &feed, &seen, a.count as usize)
                    .map_err(|e| e.to_string())?;
                mirror::record_pending(&mut c, dest, &feed, ledger.run_id(), &settings.mode, &all)
                    .map_err(|e| e.to_string())?;
                Ok(all.people)
            });
        match planned {
            Err(e) => held(
                &mut report,
                format!("the state file cannot be written: {e}"),
            ),
            Ok(people) => {
                if !people.is_empty() {
                    tracing::info!(
                        "mirror: {} {} people absent from {}: {}{}",
                        settings.mode.verb(),
                        people.len(),
                        read.input,
                        report.first.join(", "),
                        if people.len() > report.first.len() {
                            ", ..."
                        } else {
                            ""
                        }
                    );
                }
                let mut chunk: Chunk = Vec::with_capacity(CHUNK_ROWS);
                let mut lost = 0u64;
                for id in people {
                    chunk.push(settings.mode.operation(cfg.convert.api, id));
                    if chunk.len() >= CHUNK_ROWS {
                        let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_ROWS));
                        let n = full.len() as u64;
                        if tx.send(full).await.is_err() {
                            lost += n;
                        }
                    }
                }
                if !chunk.is_empty() {
                    let n = chunk.len() as u64;
                    if tx.send(chunk).await.is_err() {
                        lost += n;
                    }
                }
                tally.removal_failed.fetch_add(lost, Relaxed);
            }
        }
    }
    out.mirror = Some(report);
    out
}

/// Fills in the removals' outcomes once every request has ended.
pub(super) fn settle(report: &mut MirrorReport, tally: &Tally) {
    if report.held_back.is_some() {
        return;
    }
    report.removed = Tally::get(&tally.removed);
    report.failed = Tally::get(&tally.removal_failed);
    report.not_sent = report.absent.saturating_sub(report.removed + report.failed);
}
