//! The import engine: reader thread -> bounded channel -> batcher -> paced, retrying workers
//! -> outcomes -> reports and summary. Every row read ends in exactly one class.

use crate::config::ImportConfig;
use crate::convert;
use crate::exit;
use crate::ledger::{Destination, Forgotten, Ledger, LedgerWriter, Lookup};
use crate::pace::{Controller, ThrottleBudget};
use crate::record::{Class, Failure, IdKind, Identifier, Position, RawRow, Record};
use crate::report::errors::ErrorsWriter;
use crate::report::progress::{self, InputProgress};
use crate::report::rejects::RejectsWriter;
use crate::report::summary::Summary;
use crate::seen::SeenFilter;
use crate::source::{self, Item, Rows, SourceError};
use crate::stop::{Stop, StopState};
use crate::tally::Tally;
use crate::track::batch::{Packed, Packer};
use crate::track::{self, Answer, Api, Request, TrackClient};
use backon::{BackoffBuilder, ExponentialBuilder};
use bytes::Bytes;
use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::num::NonZeroU32;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch, Semaphore};

/// What happened to rows after they left the reader.
#[derive(Debug)]
pub enum Outcome {
    /// Acknowledged by the API.
    Sent(Vec<Record>),
    /// Did not make it.
    Failed(Failure),
    /// About to be sent with values the ledger does not hold: the ledger forgets these
    /// people (durably) and then says so, before the request goes out.
    Forget(Vec<(IdKind, String)>, Forgotten),
}

/// A shared pause: a 429 stops every worker until its `Retry-After` (or backoff) has passed.
#[derive(Debug, Default)]
pub struct Pause {
    until: Mutex<Option<tokio::time::Instant>>,
    /// Milliseconds paused in all (for the summary's `throttled_s`).
    paused_ms: std::sync::atomic::AtomicU64,
}

impl Pause {
    /// Makes every worker wait until at least `until`.
    pub fn extend(&self, until: tokio::time::Instant) {
        let mut g = self.until.lock().unwrap_or_else(|e| e.into_inner());
        if g.is_none_or(|u| until > u) {
            // Only the time this extension adds: from now, or from the current end if later.
            let now = tokio::time::Instant::now();
            let from = g.map_or(now, |u| u.max(now));
            let added = until.saturating_duration_since(from).as_millis() as u64;
            self.paused_ms.fetch_add(added, Relaxed);
            *g = Some(until);
        }
    }

    /// Waits out the pause, if any (returns early when the run stops).
    pub async fn wait(&self, stop: &Stop) {
        loop {
            let until = *self.until.lock().unwrap_or_else(|e| e.into_inner());
            match until {
                Some(u) if u > tokio::time::Instant::now() => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(u) => {}
                        _ = stop.stopped() => return,
                    }
                }
                _ => return,
            }
        }
    }
}

/// The pacing shared by all workers: one token bucket. Closed loop by default (its rate
/// follows the server's answers, see [`crate::pace`]); with `--fixed-rate`, open loop: a
/// governor bucket at `--rate` and one pause for every worker on a 429.
pub struct Pacer {
    limiter: Option<
        RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>,
    >,
    pause: Pause,
    adaptive: Option<Controller>,
    budget: ThrottleBudget,
}

/// How long a request keeps retrying 429s without any acknowledgement, by default.
pub const DEFAULT_THROTTLE_BUDGET: Duration = Duration::from_secs(300);

impl Pacer {
    /// `rate` requests per second (0 = unlimited), with a burst of a twentieth of it: no
    /// 1-second window carries more than 105% of the rate, and a server whose own bucket
    /// allows the same rate with a burst of a tenth keeps 50 ms of slack for network jitter
    /// (identical buckets at both ends would answer 429 to any request that arrives early).
    pub fn new(rate: u32) -> Pacer {
        let limiter = NonZeroU32::new(rate).map(|r| {
            let burst = NonZeroU32::new((rate / 20).max(1)).unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct_with_clock(Quota::per_second(r).allow_burst(burst), MonotonicClock)
        });
        Pacer {
            limiter,
            pause: Pause::default(),
            adaptive: None,
            budget: ThrottleBudget::new(DEFAULT_THROTTLE_BUDGET),
        }
    }

    /// Closed-loop pacing with `rate` as the ceiling (0 = none), reporting in `tally`; a
    /// request gives up on 429s only after `budget` without any acknowledgement.
    pub fn adaptive(rate: u32, budget: Duration, tally: Arc<Tally>) -> Pacer {
        let ceiling = (rate > 0).then_some(f64::from(rate));
        Pacer {
            limiter: None,
            pause: Pause::default(),
            adaptive: Some(Controller::new(ceiling, tally)),
            budget: ThrottleBudget::new(budget),
        }
    }

    /// Open-loop pacing at `rate` (0 = unlimited) as before issue 11, reporting in `tally`.
    pub fn fixed(rate: u32, budget: Duration, tally: &Tally) -> Pacer {
        let r = if rate == 0 {
            f64::INFINITY
        } else {
            f64::from(rate)
        };
        tally.set_rate(r);
        tally.set_rate_min(r);
        Pacer {
            budget: ThrottleBudget::new(budget),
            ..Pacer::new(rate)
        }
    }

    /// An answer other than 429 arrived (`acked`: a 2xx). Feeds the controller's estimate of
    /// what the server admits, and the 429 budget's notion of progress.
    fn answered(&self, acked: bool) {
        if acked {
            self.budget.acked();
        }
        if let Some(c) = &self.adaptive {
            c.admitted();
        }
    }

    /// The congestion epoch when a request goes out (see [`Controller::epoch`]).
    fn epoch(&self) -> u64 {
        self.adaptive.as_ref().map_or(0, Controller::epoch)
    }

    /// A 429 for a request sent in `epoch`: the controller cuts and holds; the fixed pacer
    /// pauses every worker for `delay`.
    fn throttled(&self, epoch: u64, retry_after: Option<Duration>, delay: Duration) {
        match &self.adaptive {
            Some(c) => c.throttled(epoch, retry_after),
            None => self
                .pause
                .extend(tokio::time::Instant::now() + delay.max(Duration::from_millis(100))),
        }
    }

    /// Seconds throttled: held or climbing back after cuts (closed loop), paused (open loop).
    pub fn throttled_s(&self) -> f64 {
        match &self.adaptive {
            Some(c) => c.throttled_s(),
            None => self.pause.paused_ms.load(Relaxed) as f64 / 1000.0,
        }
    }

    /// Waits for the shared pause and a permit. False when the run stopped meanwhile.
    async fn ready(&self, stop: &Stop) -> bool {
        if let Some(c) = &self.adaptive {
            return c.acquire(stop).await;
        }
        self.pause.wait(stop).await;
        if let Some(l) = &self.limiter {
            tokio::select! {
                _ = l.until_ready() => {}
                _ = stop.stopped() => return false,
            }
        }
        !stop.is_stopped()
    }
}

/// The result of sending one request with its retries.
#[derive(Debug)]
enum Delivery {
    Acked {
        /// For a batch: the operations the API refused (index -> message).
        errors: BTreeMap<usize, String>,
    },
    Refused {
        status: u16,
        message: String,
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

/// How long requests in flight may still take once the run stops (Ctrl-C, SIGTERM, a 401):
/// long enough for a normal answer, short enough for a container's stop grace period.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

/// Resolves [`STOP_GRACE`] after the run stops.
async fn grace_over(stop: &Stop) {
    stop.stopped().await;
    tokio::time::sleep(STOP_GRACE).await;
}

struct Ctx {
    client: TrackClient,
    pacer: Pacer,
    stop: Stop,
    tally: Arc<Tally>,
    /// Steps between fault retries, `--max-retries` of them.
    backoff: ExponentialBuilder,
    /// Steps between 429 retries: unbounded in number (the throttle budget ends them).
    throttle_backoff: ExponentialBuilder,
}

/// Full jitter: anywhere between zero and `step`.
fn full_jitter(step: Duration) -> Duration {
    Duration::from_millis(rand::random_range(
        0..=step.as_millis().min(u64::MAX as u128) as u64,
    ))
}

impl Ctx {
    /// Waits `delay` before a retry, or until the run stops; counted in `retrying`.
    async fn wait_to_retry(&self, delay: Duration) {
        self.tally.retrying.fetch_add(1, Relaxed);
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = self.stop.stopped() => {}
        }
        self.tally.retrying.fetch_sub(1, Relaxed);
    }

    /// Sends `req` until it is answered for good or the retries run out. `paced` says the
    /// first attempt already has its permit (the dispatcher took it before handing over).
    async fn send_with_retry(
        &self,
        req: &Request,
        bisect: bool,
        mut paced: bool,
    ) -> (Delivery, u32) {
        let mut delays = self.backoff.build();
        let mut throttle_delays = self.throttle_backoff.build();
        let mut attempts = 0u32;
        let mut last: Option<String> = None;
        // 429s are the server asking to slow down, not a fault of this request: they do not
        // spend `--max-retries`; the request keeps trying while the run makes progress.
        let mut first_429: Option<tokio::time::Instant> = None;
        loop {
            if !std::mem::take(&mut paced) && !self.pacer.ready(&self.stop).await {
                return (Delivery::Stopped { last }, attempts);
            }
            attempts += 1;
            self.tally.requests.fetch_add(1, Relaxed);
            if attempts > 1 {
                self.tally.retries.fetch_add(1, Relaxed);
            }
            if bisect {
                self.tally.bisect_requests.fetch_add(1, Relaxed);
            }
            let epoch = self.pacer.epoch();
            let answer = tokio::select! {
                a = self.client.send(req) => a,
                _ = grace_over(&self.stop) => return (Delivery::Abandoned, attempts),
            };
            match answer {
                Answer::Accepted { errors, .. } => {
                    self.pacer.answered(true);
                    return (Delivery::Acked { errors }, attempts);
                }
                Answer::Refused { status, message } => {
                    self.pacer.answered(false);
                    return (Delivery::Refused { status, message }, attempts);
                }
                Answer::Fatal { status, message } => {
                    self.pacer.answered(false);
                    self.stop.api_fatal(message.clone());
                    return (Delivery::Fatal { status, message }, attempts);
                }
                Answer::Retry {
                    status: Some(429),
                    retry_after,
                    message,
                } => {
                    self.tally.answers_429.fetch_add(1, Relaxed);
                    let first = *first_429.get_or_insert_with(tokio::time::Instant::now);
                    if self.pacer.budget.spent(first) {
                        let secs = self.pacer.budget.budget().as_secs();
                        let message = format!(
                            "{message} (429 for {secs} s while nothing at all was acknowledged)"
                        );
                        return (
                            Delivery::GaveUp {
                                status: Some(429),
                                message,
                            },
                            attempts,
                        );
                    }
                    let step = throttle_delays.next().unwrap_or_default();
                    let delay = retry_after.unwrap_or_else(|| full_jitter(step));
                    self.pacer.throttled(epoch, retry_after, delay);
                    tracing::debug!("attempt {attempts} throttled (429); retrying in {delay:?}");
                    last = Some(message);
                    self.tally.retries_429.fetch_add(1, Relaxed);
                    self.wait_to_retry(delay).await;
                }
                Answer::Retry {
                    status,
                    retry_after,
                    message,
                } => {
                    if status.is_some() {
                        self.pacer.answered(false);
                    }
                    let Some(step) = delays.next() else {
                        if status.is_none() && message.starts_with("could not connect") {
                            // Nothing answers at all: every other row would wait out the same
                            // budget. Stop the run instead of trying each row for minutes.
                            self.stop.api_fatal(format!(
                                "cannot reach the Track API after {attempts} attempts ({message}): \
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

fn failure(
    rec: Record,
    class: Class,
    status: Option<u16>,
    attempts: u32,
    message: String,
) -> Outcome {
    Outcome::Failed(Failure {
        pos: rec.pos,
        identifier: Some(rec.identifier.value),
        class,
        status,
        attempts,
        message,
        raw: rec.raw,
    })
}

fn not_sent_outcomes(records: Vec<Record>, delivery: Delivery, attempts: u32) -> Vec<Outcome> {
    let (class, status, message) = match delivery {
        Delivery::Refused { status, message } => (Class::Rejected, Some(status), message),
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
    records
        .into_iter()
        .map(|r| failure(r, class, status, attempts, message.clone()))
        .collect()
}

async fn deliver_v1(ctx: &Ctx, mut rec: Record, paced: bool) -> Vec<Outcome> {
    let req = Request {
        method: reqwest::Method::PUT,
        path: track::v1_customer_path(&rec.identifier),
        body: Bytes::from(std::mem::take(&mut rec.payload)),
        batch_ops: None,
    };
    let (delivery, attempts) = ctx.send_with_retry(&req, false, paced).await;
    match delivery {
        Delivery::Acked { .. } => vec![Outcome::Sent(vec![rec])],
        other => not_sent_outcomes(vec![rec], other, attempts),
    }
}

fn deliver_batch(
    ctx: &Ctx,
    records: Vec<Record>,
    packed: Packed,
    prior_attempts: u32,
    bisect: bool,
    paced: bool,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = Vec<Outcome>> + Send + '_>> {
    Box::pin(async move {
        let req = Request {
            method: reqwest::Method::POST,
            path: "/api/v2/batch".to_string(),
            body: packed.body.clone(),
            batch_ops: Some(records.len()),
        };
        let (delivery, attempts) = ctx.send_with_retry(&req, bisect, paced).await;
        let attempts = prior_attempts + attempts;
        match delivery {
            Delivery::Acked { errors } => {
                ctx.tally.batches.fetch_add(1, Relaxed);
                ctx.tally
                    .operations
                    .fetch_add(records.len() as u64, Relaxed);
                let mut sent = Vec::with_capacity(records.len());
                let mut out = Vec::new();
                for (i, rec) in records.into_iter().enumerate() {
                    match errors.get(&i) {
                        Some(msg) => out.push(failure(
                            rec,
                            Class::Rejected,
                            Some(207),
                            attempts,
                            msg.clone(),
                        )),
                        None => sent.push(rec),
                    }
                }
                if !sent.is_empty() {
                    out.push(Outcome::Sent(sent));
                }
                out
            }
            Delivery::Refused {
                status: 400 | 413, ..
            } if records.len() > 1 && !ctx.stop.is_stopped() => {
                // One poison row must cost itself only: halve and resend each half.
                let mut left = records;
                let right = left.split_off(left.len() / 2);
                let (lb, rb) = packed.halves(left.len());
                drop(packed);
                let mut out = deliver_batch(ctx, left, lb, attempts, true, false).await;
                out.extend(deliver_batch(ctx, right, rb, attempts, true, false).await);
                out
            }
            Delivery::Refused {
                status: status @ (400 | 413),
                message,
            } if records.len() > 1 => {
                // The run stopped before the batch could be halved: which of its rows the
                // API refused is unknown, so none of them is called rejected.
                let message = format!(
                    "the API refused this row's batch ({status}: {message}) after the run \
stopped, before the batch could be split to find the bad row; re-run to send it"
                );
                records
                    .into_iter()
                    .map(|r| {
                        failure(
                            r,
                            Class::NotAttempted,
                            Some(status),
                            attempts,
                            message.clone(),
                        )
                    })
                    .collect()
            }
            other => not_sent_outcomes(records, other, attempts),
        }
    })
}

/// A unit of work for one worker.
enum Job {
    One(Record),
    Batch(Vec<Record>, Packed),
}

impl Job {
    /// The rows it carries.
    fn records(&self) -> &[Record] {
        match self {
            Job::One(r) => std::slice::from_ref(r),
            Job::Batch(rs, _) => rs,
        }
    }

    /// The rows it carries, taken back (the job is not sent).
    fn into_records(self) -> Vec<Record> {
        match self {
            Job::One(r) => vec![r],
            Job::Batch(rs, _) => rs,
        }
    }
}

/// Keeps the rows of one person in file order across requests in flight: a job that carries
/// someone an earlier, unfinished job also carries waits for that job first, so the later row
/// is applied (and recorded in the ledger) last.
///
/// Memory holds only the jobs that have not finished: finished ones are pruned wherever they
/// sit, so one stalled request does not keep every later job's people alive.
#[derive(Default)]
struct PersonOrder {
    last: HashMap<u64, (u64, watch::Receiver<bool>)>,
    recent: VecDeque<(u64, Vec<u64>, watch::Receiver<bool>)>,
    seq: u64,
    /// People held in `recent`, and the count at which the next full prune runs.
    held: usize,
    prune_at: usize,
}

/// People held before the first full prune of [`PersonOrder`].
const PRUNE_FIRST_AT: usize = 16_384;

fn finished(rx: &watch::Receiver<bool>) -> bool {
    *rx.borrow() || rx.has_changed().is_err()
}

fn person_key(id: &Identifier) -> u64 {
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    h.update(id.kind.as_str().as_bytes());
    h.update(&[0]);
    h.update(id.value.as_bytes());
    h.digest()
}

impl PersonOrder {
    /// Registers a job's people; returns its completion signal and what it must wait for.
    fn register(
        &mut self,
        records: &[Record],
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
        let mut keys = Vec::with_capacity(records.len());
        for r in records {
            let k = person_key(&r.identifier);
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

    /// Forgets a finished job's people, unless a later job has claimed them since.
    fn release(&mut self, seq: u64, keys: Vec<u64>) {
        self.held -= keys.len();
        for k in keys {
            if self.last.get(&k).is_some_and(|(s, _)| *s == seq) {
                self.last.remove(&k);
            }
        }
    }

    /// People held, for tests.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        (self.held, self.last.len())
    }
}

/// Signals a job's end when dropped, whatever path it took.
struct JobDone(watch::Sender<bool>);

impl Drop for JobDone {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

struct Dispatcher {
    ctx: Arc<Ctx>,
    slots: Arc<Semaphore>,
    concurrency: usize,
    out: mpsc::Sender<Outcome>,
    order: PersonOrder,
}

impl Dispatcher {
    async fn dispatch(&mut self, job: Job) {
        let (done, deps) = self.order.register(job.records());
        let done = JobDone(done);
        let permit = tokio::select! {
            p = self.slots.clone().acquire_owned() => p.ok(),
            _ = self.ctx.stop.stopped() => None,
        };
        // The first attempt's rate permit is taken here, before the job is handed over, so
        // jobs queue in the bounded channel (rows) rather than as packed bodies in tasks.
        // A job that must wait for an earlier one takes its permit after the wait instead.
        let paced = deps.is_empty();
        let permit = match permit {
            Some(p) if !paced || self.ctx.pacer.ready(&self.ctx.stop).await => Some(p),
            _ => None,
        };
        let Some(permit) = permit else {
            let delivery = Delivery::Stopped { last: None };
            for o in not_sent_outcomes(job.into_records(), delivery, 0) {
                let _ = self.out.send(o).await;
            }
            return;
        };
        let ctx = self.ctx.clone();
        let out = self.out.clone();
        tokio::spawn(async move {
            for mut d in deps {
                let _ = d.wait_for(|v| *v).await;
            }
            // The ledger forgets what it knew of people about to get other values, and this
            // is durable before the request goes out. After the waits above, so it comes
            // after any earlier acknowledgement of the same people.
            let forget: Vec<(IdKind, String)> = job
                .records()
                .iter()
                .filter(|r| r.forget_first)
                .map(|r| (r.identifier.kind, r.identifier.value.clone()))
                .collect();
            if !forget.is_empty() {
                let (tx, rx) = tokio::sync::oneshot::channel();
                let forgotten = out.send(Outcome::Forget(forget, tx)).await.is_ok()
                    && rx.await.unwrap_or(false);
                if !forgotten {
                    for r in job.into_records() {
                        let msg = "not sent: the state file could not record that this person \
is about to change (see the error above); re-run once it can be written";
                        let _ = out
                            .send(failure(r, Class::NotAttempted, None, 0, msg.into()))
                            .await;
                    }
                    drop(done);
                    drop(permit);
                    return;
                }
            }
            let outcomes = match job {
                Job::One(r) => deliver_v1(&ctx, r, paced).await,
                Job::Batch(rs, packed) => deliver_batch(&ctx, rs, packed, 0, false, paced).await,
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

    async fn finish(&self) {
        let n = u32::try_from(self.concurrency).unwrap_or(u32::MAX);
        let _ = self.slots.acquire_many(n).await;
    }
}

/// Rows travel from the reader in chunks (one row at a time for pipes and stdin, so a slow
/// producer's rows are never held back; up to [`CHUNK_ROWS`] for regular files, so the reader
/// and the senders do not wake each other once per row).
type Chunk = Vec<Record>;

/// Rows per chunk when reading a regular file.
const CHUNK_ROWS: usize = 128;

struct Batcher {
    packer: Packer,
    pending: Vec<Record>,
}

impl Batcher {
    async fn add(&mut self, d: &mut Dispatcher, mut rec: Record) {
        if !self.packer.fits_alone(rec.payload.len()) {
            let msg = format!(
                "this person's operation is {} bytes, more than --batch-bytes allows: raise --batch-bytes or shorten attributes",
                rec.payload.len()
            );
            let _ = d.out.send(failure(rec, Class::Invalid, None, 0, msg)).await;
            return;
        }
        if !self.packer.fits(rec.payload.len()) {
            self.flush(d).await;
        }
        self.packer.push(&rec.payload);
        // The body holds the operation now: free the row's copy while it waits.
        rec.payload = Vec::new();
        self.pending.push(rec);
    }

    async fn flush(&mut self, d: &mut Dispatcher) {
        if !self.pending.is_empty() {
            let packed = self.packer.take();
            d.dispatch(Job::Batch(std::mem::take(&mut self.pending), packed))
                .await;
        }
    }
}

async fn send_all(
    mut chunks: mpsc::Receiver<Chunk>,
    mut d: Dispatcher,
    api: Api,
    batch_bytes: usize,
    batch_size: Option<usize>,
    flush_after: Duration,
) {
    match api {
        Api::V1 => {
            while let Some(chunk) = chunks.recv().await {
                for r in chunk {
                    d.dispatch(Job::One(r)).await;
                }
            }
        }
        Api::Batch => {
            let mut b = Batcher {
                packer: Packer::new(batch_bytes, batch_size),
                pending: Vec::new(),
            };
            loop {
                let next = match chunks.try_recv() {
                    Ok(c) => Some(c),
                    Err(mpsc::error::TryRecvError::Disconnected) => None,
                    Err(mpsc::error::TryRecvError::Empty) if b.pending.is_empty() => {
                        chunks.recv().await
                    }
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout(flush_after, chunks.recv()).await {
                            Ok(c) => c,
                            Err(_) => {
                                // No row for a while: send what we have.
                                b.flush(&mut d).await;
                                continue;
                            }
                        }
                    }
                };
                let Some(chunk) = next else { break };
                for rec in chunk {
                    b.add(&mut d, rec).await;
                }
            }
            b.flush(&mut d).await;
        }
    }
    d.finish().await;
}

/// What the reader needs of the ledger: lookups, and `--full`.
struct LedgerCheck {
    lookup: Lookup,
    full: bool,
}

struct ReaderEnd {
    error: Option<SourceError>,
    stopped_at_line: Option<u64>,
}

#[allow(clippy::too_many_arguments)]
fn read_all(
    mut rows: Rows,
    converter: convert::Converter,
    records: Option<mpsc::Sender<Chunk>>,
    chunk_rows: usize,
    ledger: Option<LedgerCheck>,
    out: mpsc::Sender<Outcome>,
    stop: Stop,
    tally: Arc<Tally>,
) -> ReaderEnd {
    // People sent earlier in this run: a later row of theirs is never skipped, so the file's
    // last row wins even when the ledger already holds its hash. Fixed memory (a Bloom
    // filter): a false positive only sends a row that could have been skipped.
    let mut sent_this_run = ledger.as_ref().map(|_| SeenFilter::new());
    let mut lookup_failed = false;
    let mut last_line = 0;
    let send_failure = |f: Failure| {
        // The reporter lives until every sender is gone; a closed channel means it failed,
        // and the run is already stopping.
        let _ = out.blocking_send(Outcome::Failed(f));
    };
    let mut chunk: Chunk = Vec::with_capacity(chunk_rows);
    let send_chunk = |chunk: Chunk| {
        let Some(tx) = &records else { return };
        if let Err(mpsc::error::SendError(lost)) = tx.blocking_send(chunk) {
            for rec in lost {
                send_failure(Failure {
                    pos: rec.pos,
                    identifier: Some(rec.identifier.value),
                    class: Class::NotAttempted,
                    status: None,
                    attempts: 0,
                    message: "run stopped before this row was sent".into(),
                    raw: rec.raw,
                });
            }
        }
    };
    let end = |error: Option<SourceError>, stopped_at_line: Option<u64>, chunk: Chunk| {
        if !chunk.is_empty() {
            send_chunk(chunk);
        }
        ReaderEnd {
            error,
            stopped_at_line,
        }
    };
    while let Some(item) = rows.next() {
        if stop.reading_should_stop() {
            return end(None, Some(last_line), chunk);
        }
        let item = match item {
            Ok(i) => i,
            Err(e) => return end(Some(e), Some(last_line), chunk),
        };
        tally.rows.fetch_add(1, Relaxed);
        match item {
            Item::Bad { pos, raw, message } => {
                last_line = pos.line;
                send_failure(invalid(pos, None, message, raw));
            }
            Item::Row { pos, raw } => {
                last_line = pos.line;
                let mut converted = converter.convert(pos, raw);
                if let (Ok(rec), Some(check), Some(seen)) =
                    (&mut converted, &ledger, sent_this_run.as_mut())
                {
                    let key = xxhash_rust::xxh3::xxh3_128_with_seed(
                        rec.identifier.value.as_bytes(),
                        rec.identifier.kind as u64,
                    );
                    let sent_before = seen.may_contain(key);
                    let known = match check.lookup.hash_of(&rec.identifier) {
                        Ok(k) => Some(k),
                        Err(e) => {
                            if !lookup_failed {
                                lookup_failed = true;
                                tracing::warn!("{e}: rows are sent without checking the ledger");
                            }
                            None
                        }
                    };
                    if !check.full
                        && !sent_before
                        && known.flatten().is_some_and(|k| rec.hash == Some(k))
                    {
                        tally.count(Class::Skipped, 1);
                        continue;
                    }
                    // What the ledger knows of this person stops being true once this row is
                    // sent, whatever the answer: it is forgotten first. (When the ledger
                    // already holds exactly this row's values, a send cannot change them.)
                    rec.forget_first = match known {
                        None => true,
                        Some(k) => sent_before || k.is_some_and(|k| rec.hash != Some(k)),
                    };
                    if rec.conditional {
                        // An update-only send to someone who does not exist is answered 200
                        // and changes nothing: its acknowledgement proves nothing.
                        rec.hash = None;
                    }
                    seen.insert(key);
                }
                match converted {
                    Ok(_) if records.is_none() => tally.count(Class::Skipped, 1),
                    Ok(mut rec) => {
                        rec.raw =
                            rows.compact(std::mem::replace(&mut rec.raw, RawRow::Line(Vec::new())));
                        chunk.push(rec);
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
    end(None, None, chunk)
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

struct ReportFiles {
    rejects: Option<String>,
    errors: Option<String>,
    ledger: Option<LedgerWriter>,
}

async fn report_all(
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
            Outcome::Sent(records) => {
                tally.count(Class::Sent, records.len() as u64);
                if let Some(l) = &ledger {
                    l.acked(
                        records
                            .into_iter()
                            .filter_map(|r| {
                                r.hash.map(|h| (r.identifier.kind, r.identifier.value, h))
                            })
                            .collect(),
                    );
                }
            }
            Outcome::Forget(people, done) => match &ledger {
                Some(l) => l.forget(people, Some(done)),
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

/// Runs one import to the end (or until stopped) and returns its summary, which is also
/// written to `--summary` and printed as a table by the caller.
pub async fn run(cfg: ImportConfig, stop: Stop) -> Summary {
    let started = Instant::now();
    let tally = Arc::new(Tally::default());
    let api_name = match cfg.convert.api {
        Api::Batch => "batch",
        Api::V1 => "v1",
    };
    let mut summary_base = |s: &mut Summary| {
        s.input = cfg.input.display();
        s.api = api_name.to_string();
        s.dry_run = cfg.dry_run;
    };
    if let Err(e) = cfg.validate() {
        return early_error(&tally, &mut summary_base, e.to_string(), started);
    }
    // The reports must be writable before the first row is read: a read-only folder (the
    // default is next to the input) is found now, not at the first failed row.
    for path in [&cfg.rejects, &cfg.errors] {
        if let Err(e) = crate::report::check_writable(path) {
            let message = format!(
                "{e}: the reports go next to the input unless --rejects and --errors say where"
            );
            return early_error(&tally, &mut summary_base, message, started);
        }
    }

    let input_name = cfg.input.display();
    let opened = {
        let input = cfg.input.clone();
        let format = cfg.format;
        let delimiter = cfg.delimiter;
        let name = input_name.clone();
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let opened = source::open_until(&input, Some(&stop))?;
            let progress = InputProgress {
                bytes_read: opened.bytes_read.clone(),
                total_bytes: opened.total_bytes,
            };
            Rows::new(opened, format, delimiter, &name).map(|r| (r, progress))
        })
        .await
    };
    let (rows, input_progress) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(_)) if stop.state() == StopState::Interrupted => {
            // Ctrl-C or SIGTERM before the input's first line (a producer that stalls).
            let mut s = early_error(&tally, &mut summary_base, String::new(), started);
            s.outcome = "interrupted".into();
            s.stop_reason = Some("interrupted before the input's first line arrived".into());
            s.exit_code = exit::INTERRUPTED;
            return s;
        }
        Ok(Err(e)) => return early_error(&tally, &mut summary_base, e.to_string(), started),
        Err(e) => return early_error(&tally, &mut summary_base, e.to_string(), started),
    };
    let client = if cfg.dry_run {
        None
    } else {
        match TrackClient::new(
            &cfg.endpoint,
            cfg.credentials.clone(),
            cfg.timeout,
            cfg.concurrency,
            cfg.ca_cert.as_deref(),
        ) {
            Ok(c) => Some(c),
            Err(e) => return early_error(&tally, &mut summary_base, e, started),
        }
    };

    let header = rows.csv_header().cloned();
    let converter = match convert::Converter::new(
        cfg.convert.clone(),
        header.as_ref().map(|h| h.names.as_slice()),
    ) {
        Ok(c) => c,
        Err(e) => {
            let message = format!("{input_name}: {e}");
            return early_error(&tally, &mut summary_base, message, started);
        }
    };
    // The ledger (and its lock) lives until this function returns.
    let (_ledger, lookup, ledger_writer) = match &cfg.state {
        None => (None, None, None),
        Some(path) => {
            let site_id = cfg
                .credentials
                .as_ref()
                .map(|c| c.site_id.as_str())
                .unwrap_or("");
            let dest = Destination::new(site_id, &cfg.endpoint);
            let opened = Ledger::open(path, &input_name, &dest).and_then(|l| {
                let stop = stop.clone();
                let lookup = l.lookup()?;
                let writer = l.writer(move |m| stop.local_fatal(m))?;
                Ok((l, lookup, writer))
            });
            match opened {
                Ok((l, lookup, writer)) => {
                    for note in l.notes() {
                        tracing::warn!("{note}");
                    }
                    let check = LedgerCheck {
                        lookup,
                        full: cfg.full,
                    };
                    (Some(l), Some(check), Some(writer))
                }
                Err(e) => return early_error(&tally, &mut summary_base, e.to_string(), started),
            }
        }
    };
    let (out_tx, out_rx) = mpsc::channel::<Outcome>(4096);
    let reporter = tokio::spawn(report_all(
        out_rx,
        RejectsWriter::new(cfg.rejects.clone(), header),
        ErrorsWriter::new(cfg.errors.clone()),
        ledger_writer,
        tally.clone(),
        stop.clone(),
    ));
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let progress = tokio::spawn(progress::run(
        cfg.progress,
        tally.clone(),
        input_progress,
        done_rx,
    ));

    // Regular files never stall, so their rows can travel in chunks; pipes go row by row.
    let chunk_rows = match &cfg.input {
        source::Input::Path(p) if std::fs::metadata(p).is_ok_and(|m| m.is_file()) => CHUNK_ROWS,
        _ => 1,
    };
    let rows_buffered = match cfg.convert.api {
        Api::V1 => cfg.concurrency * 4,
        Api::Batch => 4096,
    };
    let (rec_tx, rec_rx) = mpsc::channel::<Chunk>((rows_buffered / chunk_rows).max(4));
    let sender = client.map(|client| {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.backoff_base)
            .with_max_delay(cfg.backoff_cap)
            .with_max_times(cfg.max_retries);
        // The closed-loop bucket does the real slowing down on 429s, so there the step
        // between 429 retries stays short.
        let throttle_cap = if cfg.fixed_rate {
            cfg.backoff_cap
        } else {
            cfg.backoff_cap.min(Duration::from_secs(2))
        };
        let throttle_backoff = ExponentialBuilder::default()
            .with_min_delay(cfg.backoff_base.min(throttle_cap))
            .with_max_delay(throttle_cap)
            .without_max_times();
        let pacer = if cfg.fixed_rate {
            Pacer::fixed(cfg.rate, cfg.throttle_budget, &tally)
        } else {
            Pacer::adaptive(cfg.rate, cfg.throttle_budget, tally.clone())
        };
        let ctx = Arc::new(Ctx {
            client,
            pacer,
            stop: stop.clone(),
            tally: tally.clone(),
            backoff,
            throttle_backoff,
        });
        let d = Dispatcher {
            ctx: ctx.clone(),
            slots: Arc::new(Semaphore::new(cfg.concurrency)),
            concurrency: cfg.concurrency,
            out: out_tx.clone(),
            order: PersonOrder::default(),
        };
        let task = tokio::spawn(send_all(
            rec_rx,
            d,
            cfg.convert.api,
            cfg.batch_bytes,
            cfg.batch_size,
            cfg.flush_after,
        ));
        (task, ctx)
    });
    let reader = {
        let stop = stop.clone();
        let tally = tally.clone();
        let records = if cfg.dry_run { None } else { Some(rec_tx) };
        let out = out_tx;
        tokio::task::spawn_blocking(move || {
            read_all(
                rows, converter, records, chunk_rows, lookup, out, stop, tally,
            )
        })
    };
    let reader_end = reader.await.unwrap_or_else(|e| ReaderEnd {
        error: Some(SourceError::Io {
            path: input_name.clone(),
            message: format!("the reader failed: {e}"),
        }),
        stopped_at_line: None,
    });
    let mut throttled_s = 0.0;
    if let Some((s, ctx)) = sender {
        if let Err(e) = s.await {
            tracing::error!("the sender failed: {e}");
        }
        throttled_s = ctx.pacer.throttled_s();
    }
    let files = reporter.await.unwrap_or(ReportFiles {
        rejects: None,
        errors: None,
        ledger: None,
    });
    let _ = done_tx.send(());
    let _ = progress.await;

    let mut s = Summary::counts_from(&tally);
    summary_base(&mut s);
    s.throttled_s = (throttled_s * 10.0).round() / 10.0;
    s.elapsed_s = started.elapsed().as_secs_f64();
    s.rows_per_s = if s.elapsed_s > 0.0 {
        (s.rows as f64 / s.elapsed_s).round()
    } else {
        0.0
    };
    s.rejects_file = files.rejects;
    s.errors_file = files.errors;
    s.read_stopped_at_line = reader_end.stopped_at_line;
    let (outcome, reason, code) = match (stop.state(), reader_end.error) {
        (StopState::LocalFatal(m), _) => ("aborted", Some(m), exit::USAGE_OR_IO),
        (StopState::ApiFatal(m), _) => ("aborted", Some(m), exit::FATAL_API),
        (StopState::Interrupted, _) => (
            "interrupted",
            Some("interrupted (Ctrl-C)".to_string()),
            exit::INTERRUPTED,
        ),
        (StopState::Running, Some(e)) => ("aborted", Some(e.to_string()), exit::USAGE_OR_IO),
        (StopState::Running, None) if s.failed() > 0 => ("completed", None, exit::ROWS_FAILED),
        (StopState::Running, None) => ("completed", None, exit::SUCCESS),
    };
    s.outcome = outcome.to_string();
    s.stop_reason = reason;
    s.exit_code = if s.accounted { code } else { exit::USAGE_OR_IO };
    if let Some(w) = files.ledger {
        let json = serde_json::to_string(&s).unwrap_or_default();
        if let Err(e) = w.finish(json, s.exit_code) {
            let path = cfg
                .state
                .as_deref()
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            s.outcome = "aborted".into();
            // Keep the first reason (it names what failed first); add this one otherwise.
            s.stop_reason.get_or_insert_with(|| {
                format!("cannot write the state file {path}: {e}; free some space, then re-run")
            });
            s.exit_code = exit::USAGE_OR_IO;
        }
    }
    s
}

fn early_error(
    tally: &Tally,
    base: &mut impl FnMut(&mut Summary),
    message: String,
    started: Instant,
) -> Summary {
    let mut s = Summary::counts_from(tally);
    base(&mut s);
    s.elapsed_s = started.elapsed().as_secs_f64();
    s.outcome = "aborted".into();
    s.stop_reason = Some(message);
    s.exit_code = exit::USAGE_OR_IO;
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bucket's guarantee, checked against the clock: within one second no more than the
    /// rate plus the burst (a twentieth) are granted. Scheduling delays can only lower the count.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pacer_never_grants_more_than_rate_plus_burst_in_a_second() {
        let pacer = Arc::new(Pacer::new(200));
        let stop = Stop::new();
        let start = tokio::time::Instant::now();
        let granted = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut tasks = Vec::new();
        for _ in 0..8 {
            let (pacer, stop, granted) = (pacer.clone(), stop.clone(), granted.clone());
            tasks.push(tokio::spawn(async move {
                loop {
                    assert!(pacer.ready(&stop).await);
                    if start.elapsed() >= Duration::from_secs(1) {
                        return;
                    }
                    granted.fetch_add(1, Relaxed);
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let n = granted.load(Relaxed);
        assert!(n <= 200 + 10, "{n} permits in one second at 200/s");
        assert!(n >= 20, "{n}: the pacer hardly let anything through");
    }

    fn records(ids: std::ops::Range<u64>) -> Vec<Record> {
        ids.map(|i| Record {
            pos: Position {
                row: i,
                line: i + 1,
            },
            identifier: Identifier {
                kind: IdKind::Id,
                value: format!("p{i}"),
            },
            attributes: 0,
            payload: Vec::new(),
            raw: RawRow::Line(Vec::new()),
            hash: None,
            conditional: false,
            forget_first: false,
        })
        .collect()
    }

    /// Item 14: one stalled job must not keep every later job's people in memory.
    #[test]
    fn person_order_holds_only_unfinished_jobs_behind_a_stalled_one() {
        let mut order = PersonOrder::default();
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

    /// Review finding: the first pause of a run was counted as 0 ms in `throttled_s`. The
    /// clock is paused, so the figures are exact.
    #[tokio::test(start_paused = true)]
    async fn every_pause_counts_in_the_paused_time_the_first_too() {
        let pause = Pause::default();
        let now = tokio::time::Instant::now();
        pause.extend(now + Duration::from_millis(300));
        let first = pause.paused_ms.load(Relaxed);
        assert_eq!(first, 300, "a 300 ms pause");
        // Extending it counts only the added part.
        pause.extend(now + Duration::from_millis(500));
        let both = pause.paused_ms.load(Relaxed);
        assert_eq!(both, 500, "after extending it to 500 ms");
    }

    #[tokio::test]
    async fn a_pause_holds_every_waiter_until_it_ends() {
        let pacer = Pacer::new(0);
        let stop = Stop::new();
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        pacer.pause.extend(until);
        pacer.pause.extend(until - Duration::from_millis(100)); // a shorter pause never shortens it
        assert!(pacer.ready(&stop).await);
        assert!(tokio::time::Instant::now() >= until);
    }
}
