//! Sending: the dispatcher that starts a worker per job (N in flight, per-key order kept), and
//! each worker's attempts: paced, retried with jittered exponential backoff, a refused batch
//! halved to isolate its bad operation. What a request is and what its answer means come from
//! the destination's [`Wire`]; this file only acts on [`Verdict`]s.

use super::order::{EntityOrder, JobDone};
use super::outcome::Outcome;
use super::pacer::{Pacer, Permit};
use crate::ledger::Entry;
use crate::operation::{Action, Operation};
use crate::record::{Class, Failure, IdKind};
use crate::stop::Stop;
use crate::tally::Tally;
use crate::track::batch::Packed;
use crate::track::{Rejection, Request, Verdict, Wire};
use backon::{BackoffBuilder, ExponentialBuilder};
use std::collections::BTreeMap;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Semaphore};

/// How long requests in flight may still take once the run stops (Ctrl-C, SIGTERM, a 401):
/// long enough for a normal answer, short enough for a container's stop grace period.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Resolves [`STOP_GRACE`] after the run stops.
async fn grace_over(stop: &Stop) {
    stop.stopped().await;
    tokio::time::sleep(STOP_GRACE).await;
}

/// The result of sending one request with its retries.
#[derive(Debug)]
enum Delivery {
    Acked {
        /// For a batch: the operations the destination refused one by one.
        rejected: BTreeMap<usize, Rejection>,
    },
    Refused {
        status: u16,
        message: String,
        /// The destination allows halving the batch to find the refused operation.
        halve: bool,
    },
    Fatal {
        status: u16,
        message: String,
    },
    GaveUp {
        status: Option<u16>,
        message: String,
    },
    Stopped {
        last: Option<String>,
    },
    /// The run stopped while the request was out, and no answer came within [`STOP_GRACE`]:
    /// it may have been applied.
    Abandoned,
}

/// What every worker shares: the destination, the pacing, the retry schedules, the counts.
pub(super) struct Courier {
    pub(super) wire: Arc<dyn Wire>,
    pub(super) pacer: Pacer,
    pub(super) stop: Stop,
    pub(super) tally: Arc<Tally>,
    /// Steps between fault retries, `--max-retries` of them.
    pub(super) backoff: ExponentialBuilder,
    /// Steps between 429 retries: unbounded in number (the throttle budget ends them).
    pub(super) throttle_backoff: ExponentialBuilder,
}

/// Full jitter: anywhere between zero and `step`.
fn full_jitter(step: Duration) -> Duration {
    Duration::from_millis(rand::random_range(
        0..=step.as_millis().min(u64::MAX as u128) as u64,
    ))
}

impl Courier {
    /// Waits `delay` before a retry, or until the run stops; counted in `retrying`.
    async fn wait_to_retry(&self, delay: Duration) {
        self.tally.retrying.fetch_add(1, Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.stop.stopped() => {}
        }
        self.tally.retrying.fetch_sub(1, Relaxed);
    }

    /// Sends `req` until it is answered for good or the retries run out. `paced` is the
    /// first attempt's permit when the dispatcher already took it before handing over.
    async fn send_with_retry(
        &self,
        req: &Request,
        bisect: bool,
        mut paced: Option<Permit>,
    ) -> (Delivery, u32) {
        let mut delays = self.backoff.build();
        let mut throttle_delays = self.throttle_backoff.build();
        let mut attempts = 0u32;
        let mut last: Option<String> = None;
        // Throttling is the server asking to slow down, not a fault of this request: it does
        // not spend `--max-retries`; the request keeps trying while the run makes progress.
        let mut first_throttled: Option<tokio::time::Instant> = None;
        loop {
            let permit = match paced.take() {
                Some(p) => p,
                None => match self.pacer.ready(&self.stop).await {
                    Some(p) => p,
                    None => return (Delivery::Stopped { last }, attempts),
                },
            };
            attempts += 1;
            self.tally.requests.fetch_add(1, Relaxed);
            if attempts > 1 {
                self.tally.retries.fetch_add(1, Relaxed);
            }
            if bisect {
                self.tally.bisect_requests.fetch_add(1, Relaxed);
            }
            let verdict = tokio::select! {
                v = self.wire.send(req) => v,
                _ = grace_over(&self.stop) => return (Delivery::Abandoned, attempts),
            };
            match verdict {
                Verdict::Accepted { rejected } => {
                    self.pacer.answered(true);
                    return (Delivery::Acked { rejected }, attempts);
                }
                Verdict::Refused {
                    status,
                    message,
                    halve,
                } => {
                    self.pacer.answered(false);
                    let refused = Delivery::Refused {
                        status,
                        message,
                        halve,
                    };
                    return (refused, attempts);
                }
                Verdict::Fatal { status, message } => {
                    self.pacer.answered(false);
                    self.stop.api_fatal(message.clone());
                    return (Delivery::Fatal { status, message }, attempts);
                }
                Verdict::Throttled {
                    status,
                    retry_after,
                    message,
                } => {
                    self.tally.answers_429.fetch_add(1, Relaxed);
                    let first = *first_throttled.get_or_insert_with(tokio::time::Instant::now);
                    if self.pacer.budget.spent(first) {
                        let secs = self.pacer.budget.budget().as_secs();
                        let message = format!(
                            "{message} ({status} for {secs} s while nothing at all was acknowledged)"
                        );
                        let status = Some(status);
                        return (Delivery::GaveUp { status, message }, attempts);
                    }
                    let step = throttle_delays.next().unwrap_or_default();
                    let delay = retry_after.unwrap_or_else(|| full_jitter(step));
                    self.pacer.throttled(permit, retry_after, delay);
                    tracing::debug!(
                        "attempt {attempts} throttled ({status}); retrying in {delay:?}"
                    );
                    last = Some(message);
                    self.tally.retries_429.fetch_add(1, Relaxed);
                    self.wait_to_retry(delay).await;
                }
                Verdict::Retry {
                    status,
                    retry_after,
                    message,
                    unreachable,
                } => {
                    if status.is_some() {
                        self.pacer.answered(false);
                    }
                    let Some(step) = delays.next() else {
                        if unreachable {
                            // Nothing answers at all: every other row would wait out the same
                            // budget. Stop the run instead of trying each row for minutes.
                            let name = self.wire.name();
                            self.stop.api_fatal(format!(
                                "cannot reach {name} after {attempts} attempts ({message}): \
check the network, a proxy, or --endpoint / --region, then re-run"
                            ));
                        }
                        return (Delivery::GaveUp { status, message }, attempts);
                    };
                    let delay = retry_after.unwrap_or_else(|| full_jitter(step));
                    tracing::debug!("attempt {attempts} failed ({message}); retrying in {delay:?}");
                    last = Some(message);
                    self.wait_to_retry(delay).await;
                }
            }
        }
    }
}

/// The outcome of an operation that did not make it.
pub(super) fn failure(
    op: Operation,
    class: Class,
    status: Option<u16>,
    attempts: u32,
    message: String,
) -> Outcome {
    Outcome::Failed(Failure {
        pos: op.pos,
        identifier: Some(op.identifier.value),
        class,
        status,
        attempts,
        message,
        raw: op.raw,
    })
}

fn not_sent_outcomes(ops: Vec<Operation>, delivery: Delivery, attempts: u32) -> Vec<Outcome> {
    let (class, status, message) = match delivery {
        Delivery::Refused {
            status, message, ..
        } => (Class::Rejected, Some(status), message),
        Delivery::Fatal { status, message } => (
            Class::NotAttempted,
            Some(status),
            format!("run aborted: {message}"),
        ),
        Delivery::GaveUp { status, message } => (
            Class::Exhausted,
            status,
            format!("gave up after {attempts} attempts: {message}"),
        ),
        Delivery::Stopped { last } => (
            Class::NotAttempted,
            None,
            match last {
                Some(l) => {
                    format!("run stopped before this row could be retried (last error: {l})")
                }
                None => "run stopped before this row was sent".to_string(),
            },
        ),
        Delivery::Abandoned => (
            Class::NotAttempted,
            None,
            format!(
                "the run stopped while this row's request was in flight, and no answer came \
within {} s: it may have been applied; re-run to send it again",
                STOP_GRACE.as_secs()
            ),
        ),
        Delivery::Acked { .. } => unreachable!("acknowledged rows are not failures"),
    };
    ops.into_iter()
        .map(|op| failure(op, class, status, attempts, message.clone()))
        .collect()
}

async fn deliver_one(courier: &Courier, mut op: Operation, paced: Option<Permit>) -> Vec<Outcome> {
    let req = courier.wire.single(&mut op);
    let (delivery, attempts) = courier.send_with_retry(&req, false, paced).await;
    match delivery {
        Delivery::Acked { .. } => vec![Outcome::Sent(vec![op])],
        other => not_sent_outcomes(vec![op], other, attempts),
    }
}

fn deliver_batch(
    courier: &Courier,
    ops: Vec<Operation>,
    packed: Packed,
    prior_attempts: u32,
    bisect: bool,
    paced: Option<Permit>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Outcome>> + Send + '_>> {
    Box::pin(async move {
        let req = courier.wire.batch(&packed);
        let (delivery, attempts) = courier.send_with_retry(&req, bisect, paced).await;
        let attempts = prior_attempts + attempts;
        match delivery {
            Delivery::Acked { rejected } => {
                courier.tally.batches.fetch_add(1, Relaxed);
                courier
                    .tally
                    .operations
                    .fetch_add(ops.len() as u64, Relaxed);
                let mut sent = Vec::with_capacity(ops.len());
                let mut out = Vec::new();
                for (i, op) in ops.into_iter().enumerate() {
                    match rejected.get(&i) {
                        Some(r) => out.push(failure(
                            op,
                            Class::Rejected,
                            Some(r.status),
                            attempts,
                            r.message.clone(),
                        )),
                        None => sent.push(op),
                    }
                }
                if !sent.is_empty() {
                    out.push(Outcome::Sent(sent));
                }
                out
            }
            Delivery::Refused { halve: true, .. } if !courier.stop.is_stopped() => {
                // One poison row must cost itself only: halve and resend each half.
                drop(req);
                let mut left = ops;
                let right = left.split_off(left.len() / 2);
                let (lb, rb) = packed.halves(left.len());
                drop(packed);
                let mut out = deliver_batch(courier, left, lb, attempts, true, None).await;
                out.extend(deliver_batch(courier, right, rb, attempts, true, None).await);
                out
            }
            Delivery::Refused {
                halve: true,
                status,
                message,
            } => {
                // The run stopped before the batch could be halved: which of its rows the
                // destination refused is unknown, so none of them is called rejected.
                let message = format!(
                    "the API refused this row's batch ({status}: {message}) after the run \
stopped, before the batch could be split to find the bad row; re-run to send it"
                );
                ops.into_iter()
                    .map(|op| {
                        failure(
                            op,
                            Class::NotAttempted,
                            Some(status),
                            attempts,
                            message.clone(),
                        )
                    })
                    .collect()
            }
            other => not_sent_outcomes(ops, other, attempts),
        }
    })
}

/// A unit of work for one worker: one operation alone, or a packed batch and its operations.
pub(super) enum Job {
    One(Operation),
    Batch(Vec<Operation>, Packed),
}

impl Job {
    /// The operations it carries.
    fn operations(&self) -> &[Operation] {
        match self {
            Job::One(op) => std::slice::from_ref(op),
            Job::Batch(ops, _) => ops,
        }
    }

    /// The operations it carries, taken back (the job is not sent).
    fn into_operations(self) -> Vec<Operation> {
        match self {
            Job::One(op) => vec![op],
            Job::Batch(ops, _) => ops,
        }
    }
}

/// Starts a worker per job: at most `concurrency` in flight, each after the earlier jobs that
/// carry the same keys, each with its first rate permit.
pub(super) struct Dispatcher {
    pub(super) courier: Arc<Courier>,
    pub(super) slots: Arc<Semaphore>,
    pub(super) concurrency: usize,
    pub(super) out: mpsc::Sender<Outcome>,
    pub(super) order: EntityOrder,
}

impl Dispatcher {
    /// Hands `job` to a worker once a slot is free (or reports its rows not attempted when
    /// the run stops first).
    pub(super) async fn dispatch(&mut self, job: Job) {
        let (done, deps) = self.order.register(job.operations());
        let done = JobDone(done);
        let permit = tokio::select! {
            p = self.slots.clone().acquire_owned() => p.ok(),
            _ = self.courier.stop.stopped() => None,
        };
        // The first attempt's rate permit is taken here, before the job is handed over, so
        // jobs queue in the bounded channel (rows) rather than as packed bodies in tasks.
        // A job that must wait for an earlier one takes its permit after the wait instead.
        let slot = match permit {
            Some(slot) if !deps.is_empty() => Some((slot, None)),
            Some(slot) => self
                .courier
                .pacer
                .ready(&self.courier.stop)
                .await
                .map(|paced| (slot, Some(paced))),
            None => None,
        };
        let Some((permit, paced)) = slot else {
            let delivery = Delivery::Stopped { last: None };
            for o in not_sent_outcomes(job.into_operations(), delivery, 0) {
                let _ = self.out.send(o).await;
            }
            return;
        };
        let courier = self.courier.clone();
        let out = self.out.clone();
        tokio::spawn(async move {
            for mut d in deps {
                let _ = d.wait_for(|v| *v).await;
            }
            // The ledger forgets what it knew of people about to get other values, and this
            // is durable before the request goes out. After the waits above, so it comes
            // after any earlier acknowledgement of the same people.
            let forget: Vec<Entry> = job
                .operations()
                .iter()
                .filter(|op| op.forget_first)
                .flat_map(forget_entries)
                .collect();
            let forget_devices: Vec<Box<str>> = job
                .operations()
                .iter()
                .filter(|op| op.forget_first)
                .filter_map(|op| op.device_token().map(Box::from))
                .collect();
            let removed: Vec<(IdKind, String)> = job
                .operations()
                .iter()
                .filter_map(|op| op.person_removed())
                .map(|id| (id.kind, id.value.clone()))
                .collect();
            if !forget_devices.is_empty() || !removed.is_empty() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let forgotten = out
                    .send(Outcome::ForgetDevices(forget_devices, removed, tx))
                    .await
                    .is_ok()
                    && rx.await.unwrap_or(false);
                if !forgotten {
                    for op in job.into_operations() {
                        let msg = "not sent: the state file could not record that these devices \
(or their people) are about to change (see the error above); re-run once it can be written";
                        let _ = out
                            .send(failure(op, Class::NotAttempted, None, 0, msg.into()))
                            .await;
                    }
                    drop(done);
                    drop(permit);
                    return;
                }
            }
            // A person about to be removed leaves the ledger; one about to get other values
            // stays known (to their feed), with no values.
            let mode = if job
                .operations()
                .iter()
                .any(|op| op.action == Action::Suppress)
            {
                crate::ledger::ForgetMode::Suppress
            } else if job
                .operations()
                .iter()
                .any(|op| matches!(op.action, Action::Delete | Action::Merge))
            {
                crate::ledger::ForgetMode::Remove
            } else {
                crate::ledger::ForgetMode::Values
            };
            if !forget.is_empty() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let forgotten = out.send(Outcome::Forget(forget, mode, tx)).await.is_ok()
                    && rx.await.unwrap_or(false);
                if !forgotten {
                    for op in job.into_operations() {
                        let msg = "not sent: the state file could not record that this person \
is about to change (see the error above); re-run once it can be written";
                        let _ = out
                            .send(failure(op, Class::NotAttempted, None, 0, msg.into()))
                            .await;
                    }
                    drop(done);
                    drop(permit);
                    return;
                }
            }
            let outcomes = match job {
                Job::One(op) => deliver_one(&courier, op, paced).await,
                Job::Batch(ops, packed) => {
                    deliver_batch(&courier, ops, packed, 0, false, paced).await
                }
            };
            // Outcomes first (the ledger records acknowledgements in this order), then the
            // signal that lets a later job for the same people go.
            for o in outcomes {
                let _ = out.send(o).await;
            }
            drop(done);
            drop(permit);
        });
    }

    /// Waits until every worker has finished.
    pub(super) async fn finish(&self) {
        let n = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(n).await;
    }
}

/// What the ledger must forget before `op` goes out: an object or a relationship itself;
/// for a person's operation, the people it touches (a merge's two, none for a device).
fn forget_entries(op: &Operation) -> Vec<Entry> {
    if op.object.is_some() {
        return vec![Entry::of(op)];
    }
    op.people_touched()
        .into_iter()
        .map(|id| Entry::Person(id.kind, id.value.clone()))
        .collect()
}
