//! Pacing every attempt: one token bucket shared by all workers (closed loop by default,
//! following the server's answers through [`crate::pace`]; open loop with `--fixed-rate`), the
//! shared pause of the open loop, and the budget that ends a request's 429 retries.

use crate::pace::{Controller, ThrottleBudget};
use crate::stop::Stop;
use crate::tally::Tally;
use governor::clock::MonotonicClock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use std::num::NonZeroU32;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

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

    /// Time paused up to now: what was counted, less the part of the current pause still
    /// ahead (a run stopped during a pause was not paused for the rest of it).
    pub fn paused_so_far(&self) -> Duration {
        let now = tokio::time::Instant::now();
        let ahead = self
            .until
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .map_or(Duration::ZERO, |u| u.saturating_duration_since(now));
        Duration::from_millis(self.paused_ms.load(Relaxed)).saturating_sub(ahead)
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

/// A permit to send one request, with the congestion epoch it was granted in: a 429 for it
/// cuts the rate only if no cut came since the grant (see [`Controller::epoch`]).
#[derive(Debug, Clone, Copy)]
pub struct Permit {
    epoch: u64,
}

/// The open-loop bucket of `--fixed-rate` (governor, at a fixed quota).
type FixedBucket =
    RateLimiter<NotKeyed, InMemoryState, MonotonicClock, NoOpMiddleware<std::time::Instant>>;

/// How the bucket's rate is set.
enum Mode {
    /// Closed loop: the rate follows the server's answers ([`crate::pace`]).
    Adaptive(Box<Controller>),
    /// Open loop: a fixed bucket (`None`: unlimited) and one pause for every worker on a 429.
    Fixed {
        bucket: Option<FixedBucket>,
        pause: Pause,
    },
}

/// The pacing shared by all workers: one token bucket. Closed loop by default (its rate
/// follows the server's answers, see [`crate::pace`]); with `--fixed-rate`, open loop: a
/// governor bucket at `--rate` and one pause for every worker on a 429.
pub struct Pacer {
    mode: Mode,
    pub(super) budget: ThrottleBudget,
}

/// How long a request keeps retrying 429s without any acknowledgement, by default.
pub const DEFAULT_THROTTLE_BUDGET: Duration =
    Duration::from_secs(crate::config::DEFAULT_THROTTLE_BUDGET_S as u64);

impl Pacer {
    /// `rate` requests per second (0 = unlimited), with the burst of [`crate::pace::burst`]:
    /// no 1-second window carries more than 105% of the rate, and a server whose own bucket
    /// allows the same rate with a burst of a tenth keeps 50 ms of slack for network jitter
    /// (identical buckets at both ends would answer 429 to any request that arrives early).
    pub fn new(rate: u32) -> Pacer {
        let bucket = NonZeroU32::new(rate).map(|r| {
            let burst = NonZeroU32::new(crate::pace::burst(f64::from(rate)) as u32)
                .unwrap_or(NonZeroU32::MIN);
            RateLimiter::direct_with_clock(Quota::per_second(r).allow_burst(burst), MonotonicClock)
        });
        Pacer {
            mode: Mode::Fixed {
                bucket,
                pause: Pause::default(),
            },
            budget: ThrottleBudget::new(DEFAULT_THROTTLE_BUDGET),
        }
    }

    /// Closed-loop pacing with `rate` as the ceiling (0 = none), reporting in `tally`; a
    /// request gives up on 429s only after `budget` without any acknowledgement.
    pub fn adaptive(rate: u32, budget: Duration, tally: Arc<Tally>) -> Pacer {
        let ceiling = (rate > 0).then_some(f64::from(rate));
        Pacer {
            mode: Mode::Adaptive(Box::new(Controller::new(ceiling, tally))),
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
    pub(super) fn answered(&self, acked: bool) {
        if acked {
            self.budget.acked();
        }
        if let Mode::Adaptive(c) = &self.mode {
            c.admitted();
        }
    }

    /// A 429 for a request sent with `permit`: the controller cuts and holds; the fixed pacer
    /// pauses every worker for `delay`. Either way the hold does not spend the 429 budget.
    pub(super) fn throttled(&self, permit: Permit, retry_after: Option<Duration>, delay: Duration) {
        let now = tokio::time::Instant::now();
        match &self.mode {
            Mode::Adaptive(c) => {
                c.throttled(permit.epoch, retry_after);
                if let Some(ra) = retry_after {
                    self.budget.held(now + ra);
                }
            }
            Mode::Fixed { pause, .. } => {
                let until = now + delay.max(Duration::from_millis(100));
                pause.extend(until);
                self.budget.held(until);
            }
        }
    }

    /// Seconds throttled: held or climbing back after cuts (closed loop), paused (open loop).
    pub fn throttled_s(&self) -> f64 {
        match &self.mode {
            Mode::Adaptive(c) => c.throttled_s(),
            Mode::Fixed { pause, .. } => pause.paused_so_far().as_secs_f64(),
        }
    }

    /// Waits for the shared pause and a permit. `None` when the run stopped meanwhile.
    pub(super) async fn ready(&self, stop: &Stop) -> Option<Permit> {
        match &self.mode {
            Mode::Adaptive(c) => c.acquire(stop).await.map(|epoch| Permit { epoch }),
            Mode::Fixed { bucket, pause } => {
                pause.wait(stop).await;
                if let Some(b) = bucket {
                    tokio::select! {
                        _ = b.until_ready() => {}
                        _ = stop.stopped() => return None,
                    }
                }
                (!stop.is_stopped()).then_some(Permit { epoch: 0 })
            }
        }
    }
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
                    assert!(pacer.ready(&stop).await.is_some());
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
        let Mode::Fixed { pause, .. } = &pacer.mode else {
            unreachable!("Pacer::new is open loop")
        };
        let stop = Stop::new();
        let until = tokio::time::Instant::now() + Duration::from_millis(200);
        pause.extend(until);
        pause.extend(until - Duration::from_millis(100)); // a shorter pause never shortens it
        assert!(pacer.ready(&stop).await.is_some());
        assert!(tokio::time::Instant::now() >= until);
    }

    /// Red-team finding: the bucket's own hold stops every acknowledgement, so a
    /// `--throttle-budget` shorter than a `Retry-After` gave a row up right after the hold.
    /// The budget counts time without progress from the end of the hold.
    #[tokio::test(start_paused = true)]
    async fn a_hold_does_not_spend_the_throttle_budget() {
        for fixed in [false, true] {
            let tally = Arc::new(Tally::default());
            let budget = Duration::from_secs(1);
            let pacer = if fixed {
                Pacer::fixed(100, budget, &tally)
            } else {
                Pacer::adaptive(100, budget, tally)
            };
            let first = tokio::time::Instant::now();
            let hold = Duration::from_secs(3);
            let permit = pacer.ready(&Stop::new()).await.expect("a permit");
            pacer.throttled(permit, Some(hold), hold);
            tokio::time::sleep(Duration::from_millis(3_500)).await;
            assert!(
                !pacer.budget.spent(first),
                "fixed: {fixed}: 0.5 s after the hold ended"
            );
            tokio::time::sleep(Duration::from_secs(1)).await;
            assert!(
                pacer.budget.spent(first),
                "fixed: {fixed}: 1.5 s after the hold ended"
            );
        }
    }

    /// Red-team finding (issue 16): every 429 with `Retry-After: 1` moved the budget past its
    /// hold, so a server answering nothing else was retried forever. Only the first hold of
    /// a period without progress is free; later ones spend the budget, in both modes.
    #[tokio::test(start_paused = true)]
    async fn repeated_holds_spend_the_throttle_budget() {
        for fixed in [false, true] {
            let tally = Arc::new(Tally::default());
            let budget = Duration::from_secs(3);
            let pacer = if fixed {
                Pacer::fixed(100, budget, &tally)
            } else {
                Pacer::adaptive(100, budget, tally)
            };
            let first = tokio::time::Instant::now();
            let hold = Duration::from_secs(1);
            let mut attempts = 0;
            while !pacer.budget.spent(first) {
                attempts += 1;
                assert!(attempts < 60, "fixed: {fixed}: never spent");
                let permit = pacer.ready(&Stop::new()).await.expect("a permit");
                pacer.throttled(permit, Some(hold), hold);
                tokio::time::sleep(hold).await;
            }
            let took = first.elapsed();
            assert!(
                took >= Duration::from_secs(4) && took <= Duration::from_secs(6),
                "fixed: {fixed}: gave up after {took:?}"
            );
        }
    }

    /// Red-team finding: under `--fixed-rate` a pause counted in full when it was set, so a run
    /// stopped during one reported more time throttled than it had run.
    #[tokio::test(start_paused = true)]
    async fn the_paused_time_counts_only_what_has_passed() {
        let tally = Tally::default();
        let pacer = Pacer::fixed(100, Duration::from_secs(60), &tally);
        let permit = pacer.ready(&Stop::new()).await.expect("a permit");
        let hold = Duration::from_secs(2);
        pacer.throttled(permit, Some(hold), hold);
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            (pacer.throttled_s() - 0.5).abs() < 0.01,
            "{}",
            pacer.throttled_s()
        );
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(
            (pacer.throttled_s() - 2.0).abs() < 0.01,
            "{}",
            pacer.throttled_s()
        );
    }
}
