//! Per-key ordering of the jobs in flight: operations on the same key (a person, or an
//! event id) are applied in file order, whatever request carries them.

use crate::operation::Operation;
use std::collections::{HashMap, VecDeque};
use tokio::sync::watch;

/// Keeps the operations of one key (a person; an event id) in file order across requests in
/// flight: a job that carries a key an earlier, unfinished job also carries waits for that
/// job first, so the later operation is applied (and recorded in the ledger) last.
///
/// Memory holds only the jobs that have not finished: finished ones are pruned wherever they
/// sit, so one stalled request does not keep every later job's keys alive.
#[derive(Default)]
pub(super) struct EntityOrder {
    last: HashMap<u64, (u64, watch::Receiver<bool>)>,
    recent: VecDeque<(u64, Vec<u64>, watch::Receiver<bool>)>,
    seq: u64,
    /// Keys held in `recent`, and the count at which the next full prune runs.
    held: usize,
    prune_at: usize,
}

/// Keys held before the first full prune of [`EntityOrder`].
const PRUNE_FIRST_AT: usize = 16_384;

fn finished(rx: &watch::Receiver<bool>) -> bool {
    *rx.borrow() || rx.has_changed().is_err()
}

impl EntityOrder {
    /// Registers a job's operations; returns its completion signal and what it must wait for.
    pub(super) fn register(
        &mut self,
        ops: &[Operation],
    ) -> (watch::Sender<bool>, Vec<watch::Receiver<bool>>) {
        while self.recent.front().is_some_and(|(_, _, rx)| finished(rx)) {
            if let Some((seq, keys, _)) = self.recent.pop_front() {
                self.release(seq, keys);
            }
        }
        if self.held >= self.prune_at.max(PRUNE_FIRST_AT) {
            // An unfinished job holds the front: drop the finished ones behind it. Pruning
            // again only once the held people double keeps this linear overall.
            let recent = std::mem::take(&mut self.recent);
            for (seq, keys, rx) in recent {
                if finished(&rx) {
                    self.release(seq, keys);
                } else {
                    self.recent.push_back((seq, keys, rx));
                }
            }
            self.prune_at = self.held * 2;
            if self.last.capacity() > 4 * self.last.len().max(PRUNE_FIRST_AT) {
                self.last.shrink_to(2 * self.last.len());
            }
        }
        self.seq += 1;
        let (tx, rx) = watch::channel(false);
        let mut deps: Vec<(u64, watch::Receiver<bool>)> = Vec::new();
        let mut keys = Vec::with_capacity(ops.len());
        for op in ops {
            let k = op.key().order_hash();
            if let Some((s, dep)) = self.last.insert(k, (self.seq, rx.clone())) {
                if s != self.seq && !finished(&dep) && !deps.iter().any(|(d, _)| *d == s) {
                    deps.push((s, dep));
                }
            }
            keys.push(k);
        }
        self.held += keys.len();
        self.recent.push_back((self.seq, keys, rx));
        (tx, deps.into_iter().map(|(_, d)| d).collect())
    }

    /// Forgets a finished job's keys, unless a later job has claimed them since.
    fn release(&mut self, seq: u64, keys: Vec<u64>) {
        self.held -= keys.len();
        for k in keys {
            if self.last.get(&k).is_some_and(|(s, _)| *s == seq) {
                self.last.remove(&k);
            }
        }
    }

    /// Keys held, for tests.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.held, self.last.len())
    }
}

/// Signals a job's end when dropped, whatever path it took.
pub(super) struct JobDone(pub(super) watch::Sender<bool>);

impl Drop for JobDone {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::operation::{Action, Entity};
    use crate::record::{IdKind, Identifier, Position, RawRow};

    fn records(ids: std::ops::Range<u64>) -> Vec<Operation> {
        ids.map(|i| Operation {
            pos: Position {
                row: i,
                line: i + 1,
            },
            entity: Entity::Person,
            action: Action::Identify,
            identifier: Identifier {
                kind: IdKind::Id,
                value: format!("p{i}"),
            },
            event_id: None,
            object: None,
            attributes: 0,
            payload: Vec::new(),
            raw: RawRow::Line(Vec::new()),
            hash: None,
            attrs: None,
            conditional: false,
            forget_first: false,
            target: None,
        })
        .collect()
    }

    /// Item 14: one stalled job must not keep every later job's people in memory.
    #[test]
    fn person_order_holds_only_unfinished_jobs_behind_a_stalled_one() {
        let mut order = EntityOrder::default();
        let (stalled, _) = order.register(&records(0..1_000));
        for b in 1..1_000u64 {
            let (done, deps) = order.register(&records(b * 1_000..(b + 1) * 1_000));
            assert!(deps.is_empty());
            drop(done);
        }
        let (held, mapped) = order.held();
        assert!(
            held <= 2 * PRUNE_FIRST_AT && mapped <= 2 * PRUNE_FIRST_AT,
            "held {held} people and mapped {mapped} behind one stalled job of 1,000"
        );
        // The stalled job's people are still ordered: a later row of p5 waits for it.
        let (_, deps) = order.register(&records(5..6));
        assert_eq!(deps.len(), 1);
        drop(stalled);
    }
}
