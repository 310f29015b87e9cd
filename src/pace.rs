//! Closed-loop pacing: the rate controller behind the one shared token bucket. It owns the
//! bucket's rate (cut on a 429, regrown CUBIC-style, never above `--rate`), the `Retry-After`
//! hold, the progress-based budget for 429 retries, and the pacing figures of the run
//! (current and lowest rate, seconds throttled, 429 answers).
//!
//! # Why this law
//! TCP's AIMD (add a constant per round trip, halve on loss) converges, but its linear growth
//! is tuned to round trips, not seconds, and a fixed additive step is either too slow at
//! 1,000 req/s or too coarse at 30. CUBIC, which the AWS SDKs' "adaptive" retry mode also
//! drives its client-side token bucket with, grows as a function of the time since the last
//! cut: `r(t) = W + C (t - K)^3`, where `W` is the rate that drew the last 429 and `K` the time
//! to climb back to it. The curve is concave below `W` (a quick recovery, then a slow approach),
//! nearly flat around `W` (careful probing where the last 429 was), and convex beyond it (once
//! the old limit is passed without a 429, the limit has moved and growth speeds up). That is
//! the shape the issue asks for, so this module uses it, with these changes, each measured
//! against a stand-in server (README, Benchmarks, 8):
//! - The plateau sits `HEADROOM` (10%) below `W`, not at it. The quota is shared with the
//!   customer's live traffic; a plateau at the limit keeps the server's burst empty, and the
//!   live traffic's own bursts then draw the 429s.
//! - The curve's scale `C` is the climb from the cut back to the plateau, but at least a
//!   tenth of `W` over `K^3` (`PROBE`): it scales with the rate (the time to recover is `K`
//!   seconds at 30 req/s and at 3,000, instead of AWS's fixed `C = 0.4` tuned for small rates),
//!   and however small the cut, the rate still probes upward after `K`.
//! - The size of the cut depends on what the 429 says:
//!   - The first 429 of a run halves the rate (`BETA_FIRST`, as TCP leaving slow start):
//!     `--rate` was a guess nobody checked.
//!   - When the server admitted fewer requests over the last unheld second than the rate that
//!     drew the 429, that admitted rate is `W`, and the cut below it is small
//!     (`BETA_ADMITTED`): the server sustains it.
//!   - Otherwise 30% (`BETA`), as the AWS SDKs.
//! - `Retry-After` changes the shape. Every failed probe then costs a whole second (or more) of
//!   holding the bucket, so probing must be rare and shallow: the cut is small (`BETA_HELD`),
//!   growth is convex only (flat near the cut, then probing upward, instead of a quick climb
//!   back to a rate already known to fail), and `K = K0 + HOLD_K * retry_after` (22 s at
//!   `Retry-After: 1`, at most `K_MAX`, 30 s, so the rate still comes back within a minute). A
//!   429 soon after growth restarted (`QUICK`) means the rate is still far above the limit:
//!   that cut is bigger (`BETA_HELD_QUICK`), once in a row (bursty live traffic draws such a
//!   429 after every hold whatever the rate, and a deep cut each time would reach the floor).
//!   Without `Retry-After` a failed
//!   probe costs a few 429s and probing can be brisk, which also lets the rate follow a
//!   rising limit within seconds.
//!
//! One cut per congestion episode: every request carries the controller's epoch at the moment
//! its permit was granted; only a 429 for a request granted since the last cut cuts again (as
//! TCP reacts once per window). A burst of 429s from requests that were already granted or in
//! flight is one episode.
//!
//! The bucket is a GCRA ("virtual scheduling") token bucket with a burst of a twentieth of the
//! rate, the same guarantee as the fixed-rate governor bucket (no second above 105% of the
//! rate). It is hand-written because governor's quota is fixed when it is built: swapping a
//! new limiter in at every rate change would hand out a fresh burst each time. Waiters queue in
//! FIFO order and only the head sleeps, so a cut or a hold takes effect at the very next permit
//! and the end of a hold releases one permit per interval, never every worker at once.

use crate::stop::Stop;
use crate::tally::Tally;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// The multiplicative cut: the rate after a 429 is this share of the rate that drew it.
pub const BETA: f64 = 0.7;
/// The first cut of a run: the rate was `--rate`, a guess nobody checked, and the server
/// refused it at once, so the search starts with a halving (as TCP leaves slow start).
pub const BETA_FIRST: f64 = 0.5;
/// The cut below the rate the server admitted over the last second, when that was lower
/// than the rate that drew the 429: the server sustains that rate, so a small cut drains it.
pub const BETA_ADMITTED: f64 = 0.9;
/// The cut when the server also asked for a pause (`Retry-After`) and the rate had held
/// for a while before the 429: the limit is close, and every failed probe costs a hold.
pub const BETA_HELD: f64 = 0.95;
/// The cut when a `Retry-After` 429 came soon after growth (re)started (see [`QUICK`]):
/// the rate is still far above the limit, so the search takes a bigger step.
pub const BETA_HELD_QUICK: f64 = 0.7;
/// A 429 within this many seconds of the start of growth is "quick": the excess over the
/// limit drained the server's burst fast, so the excess is large.
pub const QUICK: f64 = 2.0;
/// Headroom: the plateau sits this share below the rate that drew the last 429. The quota
/// is shared with the customer's live traffic, whose bursts need the server's burst to be
/// there; a plateau right at the limit keeps the server's bucket empty.
pub const HEADROOM: f64 = 0.1;
/// The least headroom, when 429s come only from probes above the plateau.
pub const HEADROOM_MIN: f64 = 0.05;
/// The most headroom, when 429s keep coming at the plateau (busy shared quota).
pub const HEADROOM_MAX: f64 = 0.25;
/// The least amplitude of the growth curve, as a share of the rate that drew the last 429:
/// however small the cut, the rate probes this far above the plateau `K` seconds later.
pub const PROBE: f64 = 0.1;
/// Seconds to climb back to the plateau when the server gave no `Retry-After`.
pub const K0: f64 = 2.0;
/// Extra seconds of recovery per second of `Retry-After` (a failed probe costs that hold).
pub const HOLD_K: f64 = 20.0;
/// The longest recovery time `K`, whatever the `Retry-After`: a long hold makes probing rare,
/// but the rate must still come back within a minute once the limit has.
pub const K_MAX: f64 = 30.0;
/// The rate the first cut starts from when there was no ceiling and no request to measure.
const FALLBACK: f64 = 100.0;
/// The lowest rate the controller goes down to, in requests per second.
pub const FLOOR: f64 = 1.0;
/// Longest sleep of the waiting head before it looks at the rate again (the rate grows).
const RECHECK: Duration = Duration::from_millis(50);

/// What the controller saw when a 429 came: the inputs of [`Law::cut`].
#[derive(Debug, Clone, Copy)]
pub struct Seen {
    /// The rate of the bucket when the 429 came.
    pub current: f64,
    /// The rate actually used over the last (unheld) second, when known.
    pub measured: Option<f64>,
    /// The requests the server answered with something other than 429 over the last full,
    /// unheld second, when known.
    pub admitted: Option<f64>,
    /// Seconds the rate had been growing since the previous cut or hold.
    pub grown: f64,
}

/// The rate law and its state (no clock of its own: every method takes `now`).
#[derive(Debug, Clone)]
pub struct Law {
    ceiling: Option<f64>,
    /// The rate that drew the last 429 (`W`); infinite while unlimited and never cut.
    w_max: f64,
    /// Where growth flattens: a little below `w_max` (see [`HEADROOM`]).
    plateau: f64,
    /// The plateau's share below `w_max`; grows when 429s come at the plateau (someone else
    /// spends the quota), shrinks when they come only while probing above it.
    headroom: f64,
    /// The rate right after the last cut.
    r0: f64,
    /// Seconds to climb from `r0` back to the plateau; 0 before the first cut.
    k: f64,
    /// Whether `w_max` was measured (a cut after the first), not the ceiling's guess.
    w_known: bool,
    /// Whether the last cut was a deep "quick" one: the next quick 429 of the same streak cuts
    /// like any `Retry-After` (bursty live traffic draws one after every hold, whatever the
    /// rate, and a deep cut each time would take the rate to the floor).
    quick_streak: bool,
    /// Whether growth is convex only (after a `Retry-After` cut): flat near `r0`, then
    /// probing upward, instead of CUBIC's quick concave climb back.
    convex_only: bool,
    /// When growth (re)started: the last cut, or the end of its hold.
    origin: Instant,
}

impl Law {
    /// Starts at the ceiling (`None`: unlimited until the first 429).
    pub fn new(ceiling: Option<f64>, now: Instant) -> Law {
        let start = ceiling.unwrap_or(f64::INFINITY);
        Law {
            ceiling,
            w_max: start,
            plateau: start,
            headroom: HEADROOM,
            r0: start,
            k: 0.0,
            convex_only: false,
            w_known: false,
            quick_streak: false,
            origin: now,
        }
    }

    /// The rate at `now`, before the app-limited cap and the ceiling.
    fn raw(&self, now: Instant) -> f64 {
        if self.k <= 0.0 {
            return self.plateau;
        }
        let t = now.saturating_duration_since(self.origin).as_secs_f64();
        // The curve's scale: the climb from `r0` to the plateau, but never less than a tenth
        // of `w_max`, so that a small cut still probes upward after `k`.
        let c = (self.plateau - self.r0).max(PROBE * self.w_max) / self.k.powi(3);
        if self.convex_only {
            self.r0 + c * t.powi(3)
        } else {
            (self.plateau + c * (t - self.k).powi(3)).max(self.r0)
        }
    }

    /// The rate at `now`. `measured` is the rate actually used over the last second, when
    /// known: beyond the plateau the law grows to at most twice that (no credit for
    /// capacity nobody used).
    pub fn rate(&self, now: Instant, measured: Option<f64>) -> f64 {
        let mut r = self.raw(now);
        if r > self.plateau {
            if let Some(m) = measured {
                r = r.min(self.plateau.max(2.0 * m));
            }
        }
        if let Some(c) = self.ceiling {
            r = r.min(c);
        }
        r.max(FLOOR)
    }

    /// The cut after a 429 answered at `now` while the rate was `current` (`measured`: the
    /// rate actually used over the last second; `admitted`: the requests the server answered
    /// with something other than 429 over the last second, when that second was not held).
    /// `resume` is when growth may start again (the end of a `Retry-After` hold). Returns the
    /// rate after the cut.
    pub fn cut(
        &mut self,
        now: Instant,
        seen: Seen,
        retry_after: Option<Duration>,
        resume: Instant,
    ) -> f64 {
        let Seen {
            current,
            measured,
            admitted,
            grown,
        } = seen;
        // When far fewer requests went out than the rate allowed (few rows, slow reader,
        // every worker busy), the rate actually used is what drew the 429.
        let mut w = match measured {
            Some(m) if !current.is_finite() || m < 0.8 * current => m,
            _ if current.is_finite() => current,
            // Unlimited and nothing went out yet: a modest start.
            _ => FALLBACK,
        };
        // Overloaded, the server admits about its limit: that is the rate to come back to
        // (instead of stepping down from a rate far above it one cut at a time). It is
        // already what the server sustains, so the cut below it is smaller.
        let mut from_admitted = false;
        if let Some(a) = admitted {
            if a >= FLOOR && a < w {
                w = a;
                from_admitted = true;
            }
        }
        let w = w.max(FLOOR);
        let first = self.k <= 0.0;
        // After the first cut `w_max` is a measured limit, not the guess of `--rate`: a 429
        // below the plateau means other traffic spends the quota (leave it more room), one
        // above it only that this probe went too far (room can shrink).
        if self.k > 0.0 && self.w_known {
            self.headroom = if current > self.plateau * 1.001 {
                (self.headroom * 0.8).max(HEADROOM_MIN)
            } else {
                (self.headroom * 1.5).min(HEADROOM_MAX)
            };
        }
        self.w_known = !first;
        let quick = retry_after.is_some() && !first && grown < QUICK;
        let beta = match retry_after {
            _ if first => BETA_FIRST,
            None if from_admitted => BETA_ADMITTED,
            None => BETA,
            Some(_) if quick && !self.quick_streak => BETA_HELD_QUICK,
            Some(_) => BETA_HELD,
        };
        self.quick_streak = quick;
        self.w_max = w;
        self.r0 = (beta * w).max(FLOOR);
        self.plateau = (w * (1.0 - self.headroom)).max(self.r0);
        self.convex_only = retry_after.is_some();
        self.k = (K0 + HOLD_K * retry_after.map_or(0.0, |d| d.as_secs_f64())).min(K_MAX);
        self.origin = resume.max(now);
        self.r0
    }

    /// Seconds since growth (re)started (0 while a hold has not ended yet).
    pub fn growing_for(&self, now: Instant) -> f64 {
        now.saturating_duration_since(self.origin).as_secs_f64()
    }

    /// Moves the start of growth to the end of a longer hold.
    fn hold(&mut self, until: Instant) {
        if self.k > 0.0 {
            self.origin = self.origin.max(until);
        }
    }

    /// Whether the rate is back at the plateau (or the ceiling): the episode is over.
    fn recovered(&self, now: Instant, rate: f64) -> bool {
        self.k <= 0.0
            || rate >= self.plateau * 0.999
            || self.ceiling.is_some_and(|c| rate >= c)
            || now.saturating_duration_since(self.origin).as_secs_f64() >= self.k
    }
}

/// Requests granted per one-second window: the rate actually used.
#[derive(Debug)]
struct Usage {
    /// The first grant (the creation until then): the run's setup is no part of its rate.
    started: Instant,
    window: Instant,
    count: u64,
    previous: u64,
    granted: bool,
}

impl Usage {
    fn new(now: Instant) -> Usage {
        Usage {
            started: now,
            window: now,
            count: 0,
            previous: 0,
            granted: false,
        }
    }

    /// Like [`Usage::measured`], but only once a whole second of history exists: answers
    /// lag their requests by the round trip, so a shorter window undercounts them.
    fn measured_full(&mut self, now: Instant) -> Option<f64> {
        if now.saturating_duration_since(self.started) < Duration::from_secs(1) {
            return None;
        }
        self.measured(now)
    }

    /// Requests granted so far over the time since the start (at least 50 ms), while the
    /// first second is not over yet; `None` before the first grant.
    fn so_far(&self, now: Instant) -> Option<f64> {
        let since = now.saturating_duration_since(self.started).as_secs_f64();
        (self.window == self.started && self.count > 0).then(|| self.count as f64 / since.max(0.05))
    }

    fn grant(&mut self, now: Instant) {
        if !self.granted {
            // Time before the first grant (opening the input, a pre-pass, a slow start) is
            // not time the rate was used in.
            self.granted = true;
            self.started = now;
            self.window = now;
        }
        self.roll(now);
        self.count += 1;
    }

    fn roll(&mut self, now: Instant) {
        let age = now.saturating_duration_since(self.window);
        if age >= Duration::from_secs(2) {
            self.previous = 0;
            self.count = 0;
            self.window = now;
        } else if age >= Duration::from_secs(1) {
            self.previous = self.count;
            self.count = 0;
            self.window += Duration::from_secs(1);
        }
    }

    /// Requests over the last second (interpolated); `None` in the very first instants.
    fn measured(&mut self, now: Instant) -> Option<f64> {
        self.roll(now);
        let since_start = now.saturating_duration_since(self.started).as_secs_f64();
        if since_start < 1.0 {
            return (since_start >= 0.2).then(|| self.count as f64 / since_start);
        }
        let frac = now
            .saturating_duration_since(self.window)
            .as_secs_f64()
            .min(1.0);
        Some(self.previous as f64 * (1.0 - frac) + self.count as f64)
    }
}

#[derive(Debug)]
struct State {
    law: Law,
    usage: Usage,
    /// Answers other than 429 (the server admitted the request), per second.
    admitted: Usage,
    /// GCRA: the earliest time of the next permit (with the burst tolerance subtracted).
    next: Instant,
    /// The end of the latest hold (it only ever moves later).
    hold_until: Option<Instant>,
    /// Figures.
    throttled: Duration,
    recovering_since: Option<Instant>,
}

impl State {
    fn rate(&mut self, now: Instant) -> f64 {
        let measured = self.usage.measured(now);
        let r = self.law.rate(now, measured);
        if let Some(s) = self.recovering_since {
            if self.law.recovered(now, r) && self.hold_until.is_none_or(|h| h <= now) {
                self.throttled += now.saturating_duration_since(s);
                self.recovering_since = None;
            }
        }
        r
    }
}

/// The adaptive pacer: one token bucket whose rate the [`Law`] sets from the server's answers.
#[derive(Debug)]
pub struct Controller {
    state: Mutex<State>,
    queue: tokio::sync::Mutex<()>,
    epoch: AtomicU64,
    tally: Arc<Tally>,
}

/// The burst of the bucket at rate `r`: a twentieth of it, at least one. The fixed bucket of
/// `--fixed-rate` uses it too.
pub fn burst(r: f64) -> f64 {
    (r / 20.0).floor().max(1.0)
}

impl Controller {
    /// A controller that starts at `ceiling` (`None`: no ceiling, unlimited until a 429) and
    /// reports its figures in `tally`.
    pub fn new(ceiling: Option<f64>, tally: Arc<Tally>) -> Controller {
        let now = Instant::now();
        let law = Law::new(ceiling, now);
        let start = ceiling.unwrap_or(f64::INFINITY);
        tally.set_rate(start);
        tally.set_rate_min(start);
        Controller {
            state: Mutex::new(State {
                law,
                usage: Usage::new(now),
                admitted: Usage::new(now),
                next: now,
                hold_until: None,
                throttled: Duration::ZERO,
                recovering_since: None,
            }),
            queue: tokio::sync::Mutex::new(()),
            epoch: AtomicU64::new(0),
            tally,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The congestion epoch: read it when a request goes out, give it back with its 429.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Relaxed)
    }

    /// The current rate (infinite when unlimited).
    pub fn rate(&self) -> f64 {
        let now = Instant::now();
        let r = self.lock().rate(now);
        self.tally.set_rate(r);
        r
    }

    /// Waits for a permit and returns the congestion epoch it was granted in (give it back
    /// with its 429: a cut after the grant is not this request's to repeat). `None` when the
    /// run stopped first.
    pub async fn acquire(&self, stop: &Stop) -> Option<u64> {
        let _turn = tokio::select! {
            t = self.queue.lock() => t,
            _ = stop.stopped() => return None,
        };
        loop {
            let now = Instant::now();
            let wait_until = {
                let mut s = self.lock();
                let r = s.rate(now);
                self.tally.set_rate(r);
                let held = s.hold_until.filter(|h| *h > now);
                if let Some(h) = held {
                    Some(h)
                } else if !r.is_finite() {
                    s.usage.grant(now);
                    None
                } else {
                    let interval = Duration::from_secs_f64(1.0 / r);
                    let tolerance = interval.mul_f64(burst(r) - 1.0);
                    // An ended hold needs no check here: a hold moves `next` past its end.
                    let base = s.next.max(now.checked_sub(tolerance).unwrap_or(now));
                    if base <= now {
                        s.next = base + interval;
                        s.usage.grant(now);
                        None
                    } else {
                        Some(base)
                    }
                }
            };
            let Some(at) = wait_until else {
                return (!stop.is_stopped()).then(|| self.epoch());
            };
            tokio::select! {
                _ = tokio::time::sleep_until(at.min(now + RECHECK)) => {}
                _ = stop.stopped() => return None,
            }
        }
    }

    /// The server answered a request with something other than 429: it admitted it.
    pub fn admitted(&self) {
        self.lock().admitted.grant(Instant::now());
    }

    /// A 429 for a request sent in `epoch`: holds the bucket for `retry_after`, and cuts the
    /// rate once per congestion episode.
    pub fn throttled(&self, epoch: u64, retry_after: Option<Duration>) {
        let now = Instant::now();
        let mut s = self.lock();
        // A second with a hold in it (one still on, or ended under 2 s ago) says nothing
        // about what the server admits. Read before a hold set now moves `hold_until`.
        let unheld = s
            .hold_until
            .is_none_or(|h| now.saturating_duration_since(h) >= Duration::from_secs(2));
        // The rate that drew this 429, and how long it had been growing, before a new hold
        // moves the law's origin.
        let current = s.rate(now);
        let grown = s.law.growing_for(now);
        if let Some(ra) = retry_after {
            let until = now + ra;
            if s.hold_until.is_none_or(|h| h < until) {
                s.hold_until = Some(until);
                // No burst credit builds up while held: permits resume one interval apart.
                s.next = s.next.max(until);
                s.law.hold(until);
            }
            s.recovering_since.get_or_insert(now);
        }
        if self
            .epoch
            .compare_exchange(epoch, epoch + 1, Relaxed, Relaxed)
            .is_err()
        {
            return; // already cut for this episode
        }
        // Usage over a second with a hold in it is low because of the hold, not because the
        // run has few rows: only an unheld second measures anything.
        let mut measured = unheld.then(|| s.usage.measured(now)).flatten();
        if !current.is_finite() {
            // Unlimited, a 429 in the first instants: what went out so far is the only rate.
            measured = measured.or_else(|| s.usage.so_far(now));
        }
        let admitted = if measured.is_some() {
            s.admitted.measured_full(now)
        } else {
            None
        };
        let resume = s.hold_until.unwrap_or(now);
        let seen = Seen {
            current,
            measured,
            admitted,
            grown,
        };
        let r = s.law.cut(now, seen, retry_after, resume);
        s.recovering_since.get_or_insert(now);
        self.tally.set_rate(r);
        self.tally.lower_rate_min(r);
        tracing::debug!(
            "429: rate cut from {current:.1} to {r:.1} req/s{}",
            retry_after.map_or(String::new(), |d| format!(
                ", bucket held {:.1} s",
                d.as_secs_f64()
            ))
        );
    }

    /// Seconds spent held by `Retry-After` or climbing back after a cut, up to now.
    pub fn throttled_s(&self) -> f64 {
        let now = Instant::now();
        let mut s = self.lock();
        let _ = s.rate(now);
        let open = s
            .recovering_since
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        (s.throttled + open).as_secs_f64()
    }
}

/// How long a request keeps retrying 429s: as long as the run makes progress. It gives up
/// when nothing at all was acknowledged for `budget` since its first 429, with one allowance
/// for the server's own `Retry-After`:
///
/// - The **first hold** of a period without progress (a `Retry-After` the pacing obeys, which
///   stops every acknowledgement) does not spend the budget: the deadline moves to the hold's
///   end plus the budget, so a single long `Retry-After` cannot exhaust it.
/// - **Later holds** in the same period count as elapsed time: a server that answers every
///   request 429 + `Retry-After: 1` spends the budget like any other 429s, and the request
///   gives up about `Retry-After + budget` after its first 429 instead of retrying forever.
/// - An acknowledgement starts a new period.
#[derive(Debug)]
pub struct ThrottleBudget {
    period: Mutex<Period>,
    budget: Duration,
}

/// One period without progress.
#[derive(Debug)]
struct Period {
    /// The latest acknowledgement (or when the budget was made).
    progress: Instant,
    /// The end of the first hold since then, if one came.
    first_hold_end: Option<Instant>,
}

impl ThrottleBudget {
    /// A budget of `budget` without progress.
    pub fn new(budget: Duration) -> ThrottleBudget {
        ThrottleBudget {
            period: Mutex::new(Period {
                progress: Instant::now(),
                first_hold_end: None,
            }),
            budget,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Period> {
        self.period.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Some request was acknowledged: the run progresses, and a new period begins.
    pub fn acked(&self) {
        let now = Instant::now();
        let mut p = self.lock();
        p.progress = p.progress.max(now);
        p.first_hold_end = None;
    }

    /// Every request is held until `until`. The first hold of a period moves the deadline to
    /// its end; a later one changes nothing (its time counts as time without progress).
    pub fn held(&self, until: Instant) {
        let mut p = self.lock();
        if p.first_hold_end.is_none() {
            p.first_hold_end = Some(until);
        }
    }

    /// Whether a request throttled since `first_429` should give up now.
    pub fn spent(&self, first_429: Instant) -> bool {
        let p = self.lock();
        let from = p
            .progress
            .max(first_429)
            .max(p.first_hold_end.unwrap_or(p.progress));
        Instant::now().saturating_duration_since(from) > self.budget
    }

    /// The budget.
    pub fn budget(&self) -> Duration {
        self.budget
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(current: f64, grown: f64) -> Seen {
        Seen {
            current,
            measured: Some(current),
            admitted: None,
            grown,
        }
    }

    fn at(base: Instant, s: f64) -> Instant {
        base + Duration::from_secs_f64(s)
    }

    /// The rate used so far counts from the first grant: a slow start (opening the input,
    /// a pre-pass, a loaded machine) before it is no time the rate was used in.
    #[test]
    fn the_rate_so_far_counts_from_the_first_grant() {
        let t0 = Instant::now();
        let mut u = Usage::new(t0);
        // 100 grants over 0.1 s, starting 0.9 s after the controller was made.
        for i in 0..100 {
            u.grant(at(t0, 0.9 + i as f64 * 0.001));
        }
        let r = u.so_far(at(t0, 1.0)).expect("a rate");
        assert!((900.0..=1100.0).contains(&r), "{r}");
    }

    /// A law already past its first cut (which halves), at `w` with no ceiling.
    fn past_first_cut(t0: Instant, w: f64) -> Law {
        let mut law = Law::new(None, t0);
        law.cut(t0, seen(2.0 * w, 0.0), None, t0);
        law
    }

    #[test]
    fn the_first_429_halves_the_unchecked_rate() {
        let t0 = Instant::now();
        let mut law = Law::new(Some(100.0), t0);
        assert_eq!(law.rate(t0, None), 100.0);
        let r = law.cut(t0, seen(100.0, 0.2), Some(Duration::from_secs(1)), t0);
        assert!((r - 50.0).abs() < 1e-9, "{r}");
    }

    #[test]
    fn the_law_cuts_then_climbs_back_concave_flat_convex() {
        let t0 = Instant::now();
        let mut law = Law::new(Some(100.0), t0);
        law.cut(t0, seen(100.0, 0.0), None, t0);
        let r = law.cut(t0, seen(60.0, 5.0), None, t0);
        assert!((r - 42.0).abs() < 1e-9, "{r}");
        let plateau = 60.0 * (1.0 - HEADROOM);
        let k = K0;
        // Concave: most of the way back in the first half of K.
        let half = law.rate(at(t0, k / 2.0), None);
        assert!(
            half > 42.0 + 0.8 * (plateau - 42.0) && half < plateau,
            "{half}"
        );
        // Flat around the plateau, a little below the last 429 rate.
        let near = law.rate(at(t0, k), None);
        assert!((near - plateau).abs() < 0.01, "{near}");
        // Convex beyond: the limit has moved, growth speeds up; the ceiling holds.
        let later = law.rate(at(t0, k + 2.0), None);
        assert!(later > 60.0, "{later}");
        assert!(law.rate(at(t0, k + 4.0), None) - later > later - near);
        assert_eq!(law.rate(at(t0, k + 30.0), None), 100.0);
        // No credit for unused capacity beyond the plateau.
        assert!(law.rate(at(t0, k + 2.0), Some(20.0)) <= plateau + 1e-9);
    }

    #[test]
    fn retry_after_makes_probing_rarer() {
        let t0 = Instant::now();
        let mut a = past_first_cut(t0, 50.0);
        let mut b = past_first_cut(t0, 50.0);
        a.cut(t0, seen(50.0, 5.0), None, t0);
        b.cut(t0, seen(50.0, 5.0), Some(Duration::from_secs(1)), t0);
        // One second after K0 the one without Retry-After probes above its plateau; the one
        // with it is still below the rate that drew its 429, and stays so for seconds more.
        let t = at(t0, K0 + 1.0);
        assert!(
            a.rate(t, None) > 50.0 * (1.0 - HEADROOM),
            "{}",
            a.rate(t, None)
        );
        assert!(b.rate(t, None) < 50.0 && b.rate(at(t0, 10.0), None) < 50.0);
        // A cut with Retry-After is small: the hold already drained the server.
        assert!(b.rate(t0, None) >= 47.0, "{}", b.rate(t0, None));
    }

    #[test]
    fn a_quick_second_429_with_retry_after_cuts_deeper() {
        let t0 = Instant::now();
        let ra = Some(Duration::from_secs(1));
        let mut quick = past_first_cut(t0, 60.0);
        let mut late = past_first_cut(t0, 60.0);
        let q = quick.cut(t0, seen(60.0, QUICK / 2.0), ra, t0);
        let l = late.cut(t0, seen(60.0, QUICK * 3.0), ra, t0);
        assert!((q - 60.0 * BETA_HELD_QUICK).abs() < 1e-9, "{q}");
        assert!((l - 60.0 * BETA_HELD).abs() < 1e-9, "{l}");
    }

    #[test]
    fn what_the_server_admitted_is_the_new_limit_and_a_small_cut_still_probes() {
        let t0 = Instant::now();
        let mut law = past_first_cut(t0, 80.0);
        let seen = Seen {
            current: 80.0,
            measured: Some(80.0),
            admitted: Some(50.0),
            grown: 5.0,
        };
        let r = law.cut(t0, seen, None, t0);
        assert!((r - 50.0 * BETA_ADMITTED).abs() < 1e-9, "{r}");
        // The cut lands at the plateau: growth must still probe above it after K.
        assert!(law.rate(at(t0, K0 / 2.0), None) >= r - 1e-9);
        assert!(law.rate(at(t0, K0 + 1.0), None) > r);
        assert!(law.rate(at(t0, K0 + 4.0), None) > 50.0);
    }

    /// Red-team finding: bursty live traffic draws a 429 within seconds of every hold's end
    /// whatever the importer's rate; each counted as "quick", the rate fell 30% per hold to
    /// the floor. One quick cut per streak: the next ones cut like any `Retry-After`.
    #[test]
    fn repeated_quick_429s_cut_deep_only_once() {
        let t0 = Instant::now();
        let ra = Some(Duration::from_secs(1));
        let mut law = past_first_cut(t0, 100.0);
        let r1 = law.cut(t0, seen(100.0, QUICK / 2.0), ra, t0);
        assert!((r1 - 100.0 * BETA_HELD_QUICK).abs() < 1e-9, "{r1}");
        let r2 = law.cut(t0, seen(r1, QUICK / 2.0), ra, t0);
        assert!((r2 - r1 * BETA_HELD).abs() < 1e-9, "{r2}");
        // A 429 after the rate held a while ends the streak: the next quick one is deep again.
        let r3 = law.cut(t0, seen(r2, QUICK * 3.0), ra, t0);
        let r4 = law.cut(t0, seen(r3, QUICK / 2.0), ra, t0);
        assert!((r4 - r3 * BETA_HELD_QUICK).abs() < 1e-9, "{r4}");
    }

    /// Red-team finding: `K` grew with `Retry-After` without bound (202 s at 10 s), so after
    /// a dip the rate took many minutes to come back. It is capped at `K_MAX`.
    #[test]
    fn a_long_retry_after_does_not_stretch_the_recovery_past_k_max() {
        let t0 = Instant::now();
        let mut law = past_first_cut(t0, 50.0);
        law.cut(t0, seen(50.0, 5.0), Some(Duration::from_secs(10)), t0);
        let later = at(t0, K_MAX + 5.0);
        assert!(law.rate(later, None) > 50.0, "{}", law.rate(later, None));
    }

    #[tokio::test]
    async fn a_burst_of_429s_from_one_episode_cuts_once() {
        let tally = Arc::new(Tally::default());
        let c = Controller::new(Some(100.0), tally.clone());
        let e = c.epoch();
        for _ in 0..10 {
            c.throttled(e, None);
        }
        // Halved right after the first cut (the law climbs back at most a little in a few ms).
        assert!((49.9..52.0).contains(&c.rate()), "{}", c.rate());
        // A 429 for a request sent after the cut is a new episode: cut by BETA.
        c.throttled(c.epoch(), None);
        assert!((34.9..37.0).contains(&c.rate()), "{}", c.rate());
        assert!((34.9..37.0).contains(&tally.rate_min()));
    }

    #[tokio::test]
    async fn a_hold_releases_permits_one_interval_apart() {
        let tally = Arc::new(Tally::default());
        let c = Arc::new(Controller::new(Some(100.0), tally));
        let stop = Stop::new();
        let start = Instant::now();
        let hold = Duration::from_millis(300);
        c.throttled(c.epoch(), Some(hold));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (c, stop) = (c.clone(), stop.clone());
            tasks.push(tokio::spawn(async move {
                assert!(c.acquire(&stop).await.is_some());
                Instant::now()
            }));
        }
        let mut times = Vec::new();
        for t in tasks {
            times.push(t.await.unwrap());
        }
        times.sort();
        assert!(times[0] >= start + hold, "granted during the hold");
        // 20 permits at about 70/s after the hold take about 0.27 s, not an instant. (Late
        // wake-ups can only spread them more.)
        let spread = times[19] - times[0];
        assert!(spread >= Duration::from_millis(200), "{spread:?}");
    }

    #[tokio::test]
    async fn the_budget_counts_from_the_last_acknowledgement() {
        let b = ThrottleBudget::new(Duration::from_secs(1));
        let first = Instant::now();
        tokio::time::sleep(Duration::from_millis(600)).await;
        b.acked();
        let acked = Instant::now();
        tokio::time::sleep(Duration::from_millis(600)).await;
        if acked.elapsed() < Duration::from_millis(950) {
            assert!(!b.spent(first), "others progressed under a second ago");
        }
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert!(b.spent(first));
    }

    /// Red-team finding: every 429 with `Retry-After` moved the budget's progress to the end
    /// of its hold, so a server answering 429 + `Retry-After: 1` forever was retried forever.
    /// Only the first hold of a period without progress is free; later ones spend the budget.
    #[tokio::test(start_paused = true)]
    async fn repeated_holds_without_progress_spend_the_budget() {
        let b = ThrottleBudget::new(Duration::from_secs(3));
        let first = Instant::now();
        let mut gave_up_at = None;
        for second in 0..60u64 {
            // Each attempt is answered 429 + Retry-After: 1 and held for that second.
            if b.spent(first) {
                gave_up_at = Some(second);
                break;
            }
            b.held(Instant::now() + Duration::from_secs(1));
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // The first hold (1 s) is free, then 3 s of budget: it gives up after 4 to 5 s.
        assert_eq!(gave_up_at, Some(5), "gave up at {gave_up_at:?}");
        // One long hold alone is still free, and an acknowledgement starts a new period.
        let b = ThrottleBudget::new(Duration::from_secs(3));
        let first = Instant::now();
        b.held(first + Duration::from_secs(30));
        tokio::time::sleep(Duration::from_secs(32)).await;
        assert!(!b.spent(first), "2 s after a single 30 s hold");
        b.acked();
        let again = Instant::now();
        b.held(again + Duration::from_secs(10));
        tokio::time::sleep(Duration::from_secs(12)).await;
        assert!(
            !b.spent(again),
            "the first hold of a new period is free again"
        );
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(b.spent(again));
    }
}
