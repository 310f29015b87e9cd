//! Reading (a blocking thread): every row of the input is counted, converted into an
//! operation, checked against the ledger (an operation the workspace already acknowledged
//! unchanged is skipped), and sent on in chunks over the bounded channel; a row that cannot
//! be converted goes straight to the outcomes as invalid.
//!
//! A person with several rows in the file ([`crate::groups`], found by a pre-pass) is
//! skipped or sent whole: the decision is made at their first row, against the chain of all
//! their rows.

use super::outcome::{GroupNote, Outcome};
use crate::convert::Converter;
use crate::groups::{chain_next, Groups, Mode};
use crate::ledger::Lookup;
use crate::operation::{Action, Entity, Operation};
use crate::record::{Class, Failure, Position, RawRow};
use crate::seen::SeenFilter;
use crate::source::{Item, Rows, SourceError};
use crate::stop::Stop;
use crate::tally::Tally;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use tokio::sync::mpsc;

/// Operations travel from the reader in chunks (one at a time for pipes and stdin, so a
/// slow producer's rows are never held back; up to [`CHUNK_ROWS`] for regular files, so the
/// reader and the senders do not wake each other once per row).
pub(super) type Chunk = Vec<Operation>;

/// Rows per chunk when reading a regular file.
pub(super) const CHUNK_ROWS: usize = 128;

/// What the reader needs of the ledger: lookups, and `--full`.
pub(super) struct LedgerCheck {
    pub(super) lookup: Lookup,
    pub(super) full: bool,
}

/// How reading ended.
pub(super) struct ReaderEnd {
    /// The input could not be read to its end.
    pub(super) error: Option<SourceError>,
    /// The last line read, when reading stopped before the end.
    pub(super) stopped_at_line: Option<u64>,
    /// With `--mirror`: who the rows named.
    pub(super) seen: Option<crate::mirror::Seen>,
}

/// The reading stage and what it feeds.
pub(super) struct Reader {
    pub(super) rows: Rows,
    pub(super) converter: Converter,
    /// Where operations go; `None` for a dry run (they are counted as skipped).
    pub(super) operations: Option<mpsc::Sender<Chunk>>,
    pub(super) chunk_rows: usize,
    pub(super) ledger: Option<LedgerCheck>,
    /// Where invalid rows go.
    pub(super) out: mpsc::Sender<Outcome>,
    pub(super) stop: Stop,
    pub(super) tally: Arc<Tally>,
    /// The people with several rows (a rereadable input under `--state`).
    pub(super) groups: Option<Groups>,
    /// The input could not be read twice: say once that repeated people are sent every night.
    pub(super) note_repeats: bool,
    /// With `--mirror`: remembers who each row names, whatever becomes of the row.
    pub(super) seen: Option<crate::mirror::Seen>,
}

/// The hash the ledger holds for `op`'s entity (`Some(None)`: nothing), or `None` when the
/// lookup failed (said once; the row is then sent). A device is known by its token; a merge
/// is never skipped.
fn ledger_hash(
    check: &LedgerCheck,
    op: &crate::operation::Operation,
    failed: &mut bool,
) -> Option<Option<[u8; 16]>> {
    let looked = match (op.device_token(), op.action) {
        (Some(token), _) => check.lookup.device_hash(token),
        (None, Action::Merge) => Ok(None),
        (None, _) => check.lookup.hash_of_key(op.key()),
    };
    match looked {
        Ok(k) => Some(k),
        Err(e) => {
            if !*failed {
                *failed = true;
                tracing::warn!("{e}: rows are sent without checking the ledger");
            }
            None
        }
    }
}

impl Reader {
    /// Reads to the end of the input, or until the run stops.
    pub(super) fn run(self) -> ReaderEnd {
        let Reader {
            mut rows,
            converter,
            operations,
            chunk_rows,
            ledger,
            out,
            stop,
            tally,
            mut groups,
            mut note_repeats,
            mut seen,
        } = self;
        let mut changed_warned = false;
        // Keys sent earlier in this run: a later operation on them is never skipped, so the
        // file's last row wins even when the ledger already holds its hash. Fixed memory (a
        // Bloom filter): a false positive only sends a row that could have been skipped.
        let mut sent_this_run = ledger.as_ref().map(|_| SeenFilter::new());
        let mut lookup_failed = false;
        let mut last_line = 0;
        let send_failure = |f: Failure| {
            // The reporter lives until every sender is gone; a closed channel means it
            // failed, and the run is already stopping.
            let _ = out.blocking_send(Outcome::Failed(f));
        };
        let mut chunk: Chunk = Vec::with_capacity(chunk_rows);
        let send_chunk = |chunk: Chunk| {
            let Some(tx) = &operations else { return };
            if let Err(mpsc::error::SendError(lost)) = tx.blocking_send(chunk) {
                for op in lost {
                    send_failure(Failure {
                        pos: op.pos,
                        identifier: Some(op.identifier.value),
                        class: Class::NotAttempted,
                        status: None,
                        attempts: 0,
                        message: "run stopped before this row was sent".into(),
                        raw: op.raw,
                    });
                }
            }
        };
        let end = |error: Option<SourceError>,
                   stopped_at_line: Option<u64>,
                   chunk: Chunk,
                   seen: Option<crate::mirror::Seen>| {
            if !chunk.is_empty() {
                send_chunk(chunk);
            }
            ReaderEnd {
                error,
                stopped_at_line,
                seen,
            }
        };
        while let Some(item) = rows.next() {
            if stop.reading_should_stop() {
                return end(None, Some(last_line), chunk, seen.take());
            }
            let item = match item {
                Ok(i) => i,
                Err(e) => return end(Some(e), Some(last_line), chunk, seen.take()),
            };
            tally.rows.fetch_add(1, Relaxed);
            match item {
                Item::Bad { pos, raw, message } => {
                    last_line = pos.line;
                    // A row that cannot be read blocks the mirror's removals (its identifier
                    // is not known for sure: the lossy reading below is for the report only).
                    if let Some(s) = seen.as_mut() {
                        s.saw(None);
                    }
                    // The errors file names the row's identifier when its cell reads, even
                    // where another cell is not UTF-8 (for the report only).
                    let id = converter.identifier_for_report(&raw);
                    send_failure(invalid(pos, id, message, raw));
                }
                Item::Row { pos, raw } => {
                    last_line = pos.line;
                    let mut converted = converter.convert(pos, raw);
                    // The row's own attribute hash, before anything below clears `op.hash`.
                    let content_hash = converted.as_ref().ok().and_then(|op| op.hash);
                    if let Some(s) = seen.as_mut() {
                        match &converted {
                            Ok(op) => s.saw(Some(&op.identifier.value)),
                            Err((inv, _)) => s.saw(inv.identifier.as_deref()),
                        }
                    }
                    // An event is skipped when the workspace acknowledged its id before: it
                    // cannot change, and nothing is forgotten before sending it.
                    if let (Ok(op), Some(check)) = (&converted, &ledger) {
                        if let Some(id) = op.event_id.as_deref().filter(|_| !check.full) {
                            match check.lookup.event_acked(id) {
                                Ok(true) => {
                                    tally.count(Class::Skipped, 1);
                                    continue;
                                }
                                Ok(false) => {}
                                Err(e) => {
                                    if !lookup_failed {
                                        lookup_failed = true;
                                        tracing::warn!(
                                            "{e}: rows are sent without checking the ledger"
                                        );
                                    }
                                }
                            }
                        }
                    }
                    // Someone who may be suppressed is sent, but an acknowledgement proves
                    // nothing (the workspace keeps nothing of theirs): it is not recorded.
                    if let (Ok(op), Some(check)) = (&mut converted, &ledger) {
                        if op.entity == Entity::Person
                            && matches!(
                                op.action,
                                Action::Identify
                                    | Action::Event
                                    | Action::AddDevice
                                    | Action::AddRelationships
                            )
                            && check.lookup.suppressed(&op.identifier).unwrap_or(true)
                        {
                            op.hash = None;
                        }
                    }
                    let is_event = matches!(&converted, Ok(op) if op.event_id.is_some());
                    if let (Ok(op), Some(check), Some(seen)) = (
                        &mut converted,
                        ledger.as_ref().filter(|_| !is_event),
                        sent_this_run.as_mut(),
                    ) {
                        let key = op.key().seen_hash();
                        let sent_before = seen.may_contain(key);
                        let group = groups
                            .as_mut()
                            .filter(|_| op.action == Action::Identify)
                            .and_then(|g| g.get_mut(key));
                        match group {
                            // One of the rows of a person with several: all of them are
                            // skipped, or all sent, as decided at the first.
                            Some(g) if g.read < g.rows => {
                                g.read += 1;
                                g.running = chain_next(g.running, content_hash.unwrap_or([0; 16]));
                                if g.mode == Mode::Unread {
                                    let known = ledger_hash(check, op, &mut lookup_failed);
                                    if !check.full
                                        && !sent_before
                                        && known.flatten() == Some(g.chain)
                                    {
                                        g.mode = Mode::Skip;
                                    } else {
                                        g.mode = Mode::Send;
                                        // Announced before the first row can be acknowledged.
                                        let _ =
                                            out.blocking_send(Outcome::Group(GroupNote::Expect {
                                                key,
                                                rows: g.rows,
                                                chain: g.chain,
                                            }));
                                        // Whatever the ledger holds stops being true once
                                        // these rows go; nothing is recorded for this person
                                        // again before all of them are acknowledged, so the
                                        // first row's forget covers the others.
                                        op.forget_first = !matches!(known, Some(None));
                                    }
                                } else {
                                    op.forget_first = false;
                                }
                                if g.read == g.rows && g.running != g.chain {
                                    if !changed_warned {
                                        changed_warned = true;
                                        tracing::warn!(
                                            "row {} (line {}): the input changed while it was read (its rows \
differ from the pre-pass's); the person is not recorded in the state file this run, and a later \
run sends their rows",
                                            pos.row,
                                            pos.line
                                        );
                                    }
                                    if g.mode == Mode::Send {
                                        let _ =
                                            out.blocking_send(Outcome::Group(GroupNote::Cancel {
                                                key,
                                            }));
                                    }
                                }
                                if g.mode == Mode::Skip {
                                    tally.count(Class::Skipped, 1);
                                    continue;
                                }
                            }
                            other => {
                                if other.is_some() {
                                    // More rows than the pre-pass found: the input changed.
                                    // Nothing is recorded for them this run; the row goes
                                    // as a row of its own.
                                    let _ = out
                                        .blocking_send(Outcome::Group(GroupNote::Cancel { key }));
                                    if !changed_warned {
                                        changed_warned = true;
                                        tracing::warn!(
                                            "row {} (line {}): the input changed while it was \
read (more rows of this person than the pre-pass found); the person is not recorded in the \
state file this run, and a later run sends their rows",
                                            pos.row,
                                            pos.line
                                        );
                                    }
                                }
                                if note_repeats && sent_before {
                                    note_repeats = false;
                                    tracing::info!(
                                        "row {} (line {}) repeats an identifier of an earlier row; stdin \
and pipes cannot be read twice, so with --state people with several rows are sent again on \
every run: give a regular file to skip them when unchanged",
                                        pos.row,
                                        pos.line
                                    );
                                }
                                let known = ledger_hash(check, op, &mut lookup_failed);
                                if !check.full
                                    && !sent_before
                                    && known.flatten().is_some_and(|k| op.hash == Some(k))
                                {
                                    tally.count(Class::Skipped, 1);
                                    continue;
                                }
                                // What the ledger knows of this entity stops being true once
                                // this operation is sent, whatever the answer: it is forgotten
                                // first. (When the ledger already holds exactly these values,
                                // a send cannot change them.)
                                op.forget_first = match known {
                                    None => true,
                                    Some(k) => sent_before || k.is_some_and(|k| op.hash != Some(k)),
                                };
                            }
                        }
                        // A suppression is recorded before it is sent, whatever the answer; a
                        // delete forgets (with the relationships of what it removes) whatever
                        // the ledger knew.
                        if matches!(
                            op.action,
                            Action::Suppress | Action::Delete | Action::DeleteRelationships
                        ) {
                            op.forget_first = true;
                        }
                        // A merge changes the primary and deletes the secondary, whatever
                        // the ledger knew of them.
                        if op.action == Action::Merge {
                            op.forget_first = true;
                        }
                        if op.conditional {
                            // An update-only send to someone who does not exist is answered
                            // 200 and changes nothing: its acknowledgement proves nothing.
                            op.hash = None;
                        }
                        seen.insert(key);
                    }
                    match converted {
                        Ok(_) if operations.is_none() => tally.count(Class::Skipped, 1),
                        Ok(mut op) => {
                            op.raw = rows
                                .compact(std::mem::replace(&mut op.raw, RawRow::Line(Vec::new())));
                            chunk.push(op);
                            if chunk.len() >= chunk_rows {
                                send_chunk(std::mem::replace(
                                    &mut chunk,
                                    Vec::with_capacity(chunk_rows),
                                ));
                            }
                        }
                        Err((inv, raw)) => {
                            let message = inv.message();
                            send_failure(invalid(pos, inv.identifier, message, raw))
                        }
                    }
                }
            }
        }
        end(None, None, chunk, seen.take())
    }
}

fn invalid(pos: Position, identifier: Option<String>, message: String, raw: RawRow) -> Failure {
    Failure {
        pos,
        identifier,
        class: Class::Invalid,
        status: None,
        attempts: 0,
        message,
        raw,
    }
}
