//! Outcomes: what happened to each operation after it left the reader. The sink counts
//! every one, writes acknowledgements and forgets to the ledger, and failures to the rejects
//! and errors files; the run's counts balance because every row ends here exactly once.

use crate::ledger::{Entry, Forgotten, LedgerWriter};
use crate::operation::{Action, Operation};
use crate::record::{Class, Failure};
use crate::report::errors::ErrorsWriter;
use crate::report::rejects::RejectsWriter;
use crate::stop::Stop;
use crate::tally::Tally;
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
    /// out. The first `true`: they are about to be suppressed, and the ledger records that
    /// too; the second: they are about to be deleted or suppressed, and their relationships
    /// are forgotten with them.
    Forget(Vec<Entry>, bool, bool, Forgotten),
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
    while let Some(o) = outcomes.recv().await {
        match o {
            Outcome::Sent(ops) => {
                tally.count(Class::Sent, ops.len() as u64);
                if let Some(l) = &ledger {
                    l.unsuppressed(
                        ops.iter()
                            .filter(|op| op.action == Action::Unsuppress)
                            .map(|op| (op.identifier.kind, op.identifier.value.clone()))
                            .collect(),
                    );
                    let mut events = Vec::new();
                    l.acked(
                        ops.into_iter()
                            .filter_map(|op| match (op.hash, op.event_id.clone()) {
                                (Some(_), Some(id)) => {
                                    events.push(id);
                                    None
                                }
                                (h, _) => h.map(|h| (Entry::of(&op), h)),
                            })
                            .collect(),
                    );
                    l.acked_events(events);
                }
            }
            Outcome::Forget(entries, suppress, removed, done) => match &ledger {
                Some(l) => l.forget(entries, suppress, removed, Some(done)),
                None => {
                    let _ = done.send(true);
                }
            },
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
