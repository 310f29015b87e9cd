//! Outcomes: what happened to each operation after it left the reader. The sink counts
//! every one, writes acknowledgements and forgets to the ledger, and failures to the rejects
//! and errors files; the run's counts balance because every row ends here exactly once.
//!
//! A person with several rows ([`crate::groups`]) is announced by the reader before their
//! first row is sent; the sink then records none of their rows alone, and records their
//! chain once all of their rows are acknowledged with a hash (never after a failure, an
//! update-only or maybe-suppressed acknowledgement, or a cancellation).

use crate::ledger::{Entry, Forgotten, LedgerWriter};
use crate::operation::{Action, Operation, Target};
use crate::record::{Class, Failure, IdKind};
use crate::report::errors::ErrorsWriter;
use crate::report::rejects::RejectsWriter;
use crate::stop::Stop;
use crate::tally::Tally;
use std::collections::HashMap;
use std::sync::Arc;
use tokio::sync::mpsc;

/// What happened to rows after they left the reader.
#[derive(Debug)]
pub enum Outcome {
    /// Acknowledged by the API.
    Sent(Vec<Operation>),
    /// Did not make it.
    Failed(Failure),
    /// About to be sent with values the ledger does not hold: the ledger forgets these
    /// people, objects or relationships (durably) and then says so, before the request goes
    /// out. The mode says whether they are about to get other values, be removed (their
    /// relationships are forgotten with them), or be suppressed (which the ledger records too).
    Forget(Vec<Entry>, crate::ledger::ForgetMode, Forgotten),
    /// About a person with several rows (from the reader, before or while their rows go).
    Group(GroupNote),
    /// About to be sent: the ledger forgets these devices (by token), and every device of
    /// these people (about to be removed), first.
    ForgetDevices(Vec<Box<str>>, Vec<(IdKind, String)>, Forgotten),
}

/// What the reader tells the sink about a person with several rows, keyed by
/// [`crate::operation::Key::seen_hash`].
#[derive(Debug)]
pub enum GroupNote {
    /// Their `rows` rows are about to be sent; once all are acknowledged with a hash, the
    /// ledger records `chain` for them.
    Expect {
        /// The person's key.
        key: u128,
        /// How many of their rows will be sent.
        rows: u32,
        /// The chain of those rows' hashes.
        chain: [u8; 16],
    },
    /// Record nothing for them in this run (the input changed under the run).
    Cancel {
        /// The person's key.
        key: u128,
    },
}

/// A person announced by [`GroupNote::Expect`]: rows acknowledged so far.
struct Expected {
    rows: u32,
    chain: [u8; 16],
    acked: u32,
    cancelled: bool,
}

/// What the sink leaves behind: the reports written, and the ledger writer to finish.
pub(super) struct ReportFiles {
    pub(super) rejects: Option<String>,
    pub(super) errors: Option<String>,
    pub(super) ledger: Option<LedgerWriter>,
}

/// Consumes every outcome until all senders are done: counts it, records acknowledgements
/// and forgets in the ledger, writes failures to the rejects and errors files.
pub(super) async fn sink(
    mut outcomes: mpsc::Receiver<Outcome>,
    mut rejects: RejectsWriter,
    mut errors: ErrorsWriter,
    ledger: Option<LedgerWriter>,
    tally: Arc<Tally>,
    stop: Stop,
) -> ReportFiles {
    let mut broken = false;
    let mut groups: HashMap<u128, Expected> = HashMap::new();
    while let Some(o) = outcomes.recv().await {
        match o {
            Outcome::Group(GroupNote::Expect { key, rows, chain }) => {
                groups.insert(
                    key,
                    Expected {
                        rows,
                        chain,
                        acked: 0,
                        cancelled: false,
                    },
                );
            }
            Outcome::Group(GroupNote::Cancel { key }) => {
                if let Some(g) = groups.get_mut(&key) {
                    g.cancelled = true;
                }
            }
            Outcome::Sent(mut ops) => {
                // Mirror removals are no rows: their own counter, and they leave the ledger.
                if ops.iter().any(|op| crate::mirror::is_removal(op.pos)) {
                    let (removed, rows): (Vec<_>, Vec<_>) = ops
                        .into_iter()
                        .partition(|op| crate::mirror::is_removal(op.pos));
                    tally
                        .removed
                        .fetch_add(removed.len() as u64, std::sync::atomic::Ordering::Relaxed);
                    if let Some(l) = &ledger {
                        l.removed(
                            removed
                                .into_iter()
                                .map(|op| (op.identifier.kind, op.identifier.value))
                                .collect(),
                        );
                    }
                    ops = rows;
                }
                tally.count(Class::Sent, ops.len() as u64);
                if let Some(l) = &ledger {
                    if !groups.is_empty() {
                        let (mut complete, mut done) = (Vec::new(), Vec::new());
                        ops.retain(|op| {
                            if op.event_id.is_some() {
                                return true;
                            }
                            let key = op.key().seen_hash();
                            let Some(g) = groups.get_mut(&key) else {
                                return true;
                            };
                            if op.hash.is_some() && !g.cancelled {
                                g.acked += 1;
                                if g.acked == g.rows {
                                    complete.push((
                                        op.identifier.kind,
                                        op.identifier.value.clone(),
                                        g.chain,
                                        g.rows,
                                    ));
                                    done.push(key);
                                }
                            }
                            // One row of several is never recorded alone.
                            false
                        });
                        for key in done {
                            groups.remove(&key);
                        }
                        l.acked_rows(complete);
                    }
                    l.unsuppressed(
                        ops.iter()
                            .filter(|op| op.action == Action::Unsuppress)
                            .map(|op| (op.identifier.kind, op.identifier.value.clone()))
                            .collect(),
                    );
                    let mut events = Vec::new();
                    let mut devices = Vec::new();
                    l.acked(
                        ops.into_iter()
                            .filter_map(|op| {
                                match (op.hash, op.event_id.clone(), op.target.clone()) {
                                    (Some(_), Some(id), _) => {
                                        events.push(id);
                                        None
                                    }
                                    (Some(h), None, Some(Target::Device(token))) => {
                                        devices.push((
                                            token,
                                            op.identifier.kind,
                                            op.identifier.value.clone(),
                                            h,
                                        ));
                                        None
                                    }
                                    (h, _, _) => h.map(|h| (Entry::of(&op), h, op.attrs.clone())),
                                }
                            })
                            .collect(),
                    );
                    l.acked_events(events);
                    l.acked_devices(devices);
                }
            }
            Outcome::ForgetDevices(tokens, owners, done) => match &ledger {
                Some(l) => l.forget_devices(tokens, owners, done),
                None => {
                    let _ = done.send(true);
                }
            },
            Outcome::Forget(entries, mode, done) => match &ledger {
                Some(l) => l.forget(entries, mode, Some(done)),
                None => {
                    let _ = done.send(true);
                }
            },
            Outcome::Failed(f) if crate::mirror::is_removal(f.pos) => {
                // Not a row: counted apart, named in the log; it stays a pending removal.
                tally
                    .removal_failed
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                tracing::warn!(
                    "mirror: the removal of {} failed ({}): {}; it stays pending and is tried \
again by the next mirror run while they stay absent",
                    f.identifier.as_deref().unwrap_or("?"),
                    f.class.as_str(),
                    f.message
                );
            }
            Outcome::Failed(f) => {
                tally.count(f.class, 1);
                if let Some(l) = &ledger {
                    l.failed(&f);
                }
                if broken {
                    continue;
                }
                let written = rejects.write(&f.raw).and_then(|_| errors.write(&f));
                if let Err(e) = written {
                    broken = true;
                    tracing::error!("{e}");
                    stop.local_fatal(e.to_string());
                }
            }
        }
    }
    let mut files = ReportFiles {
        rejects: None,
        errors: None,
        ledger,
    };
    match rejects.finish() {
        Ok(true) => files.rejects = Some(rejects.path().display().to_string()),
        Ok(false) => {}
        Err(e) => stop.local_fatal(e.to_string()),
    }
    match errors.finish() {
        Ok(true) => files.errors = Some(errors.path().display().to_string()),
        Ok(false) => {}
        Err(e) => stop.local_fatal(e.to_string()),
    }
    files
}
