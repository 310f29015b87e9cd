//! The live counts shared by the pipeline's stages, the progress display and the summary.

use crate::record::Class;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters updated as rows move; read at any time without locks.
#[derive(Debug, Default)]
pub struct Tally {
    /// Rows read from the input (every record, good or bad).
    pub rows: AtomicU64,
    /// Rows acknowledged by the API.
    pub sent: AtomicU64,
    /// Rows not sent on purpose.
    pub skipped: AtomicU64,
    /// Rows that failed validation.
    pub invalid: AtomicU64,
    /// Rows the API refused.
    pub rejected: AtomicU64,
    /// Rows whose retries ran out.
    pub exhausted: AtomicU64,
    /// Rows never sent because the run stopped.
    pub not_attempted: AtomicU64,
    /// HTTP requests made (every attempt).
    pub requests: AtomicU64,
    /// Attempts after the first, for any request.
    pub retries: AtomicU64,
    /// Requests waiting for their next attempt right now.
    pub retrying: AtomicU64,
    /// Person operations carried by acknowledged batch requests.
    pub operations: AtomicU64,
    /// Batch requests acknowledged (for the mean batch size).
    pub batches: AtomicU64,
    /// Extra requests spent halving batches the API refused whole.
    pub bisect_requests: AtomicU64,
    /// Answers 429 (too many requests).
    pub answers_429: AtomicU64,
    /// Attempts after a 429 (also counted in `retries`; they do not spend `--max-retries`).
    pub retries_429: AtomicU64,
    /// The pacing rate now, requests per second (`f64` bits; infinite = no limit).
    pub rate_bits: AtomicU64,
    /// The lowest pacing rate so far (`f64` bits).
    pub rate_min_bits: AtomicU64,
    /// Mirror removals acknowledged (not rows: see [`crate::mirror`]).
    pub removed: AtomicU64,
    /// Mirror removals that failed or whose outcome is unknown.
    pub removal_failed: AtomicU64,
}

impl Tally {
    /// Counts a row's final class.
    pub fn count(&self, class: Class, n: u64) {
        let c = match class {
            Class::Sent => &self.sent,
            Class::Skipped => &self.skipped,
            Class::Invalid => &self.invalid,
            Class::Rejected => &self.rejected,
            Class::Exhausted => &self.exhausted,
            Class::NotAttempted => &self.not_attempted,
        };
        c.fetch_add(n, Relaxed);
    }

    /// Rows that reached a final class.
    pub fn done(&self) -> u64 {
        self.sent.load(Relaxed) + self.skipped.load(Relaxed) + self.failed()
    }

    /// Rows that failed, whatever the class.
    pub fn failed(&self) -> u64 {
        self.invalid.load(Relaxed)
            + self.rejected.load(Relaxed)
            + self.exhausted.load(Relaxed)
            + self.not_attempted.load(Relaxed)
    }

    /// Sets the current pacing rate (requests per second; infinite = no limit).
    pub fn set_rate(&self, r: f64) {
        self.rate_bits.store(r.to_bits(), Relaxed);
    }

    /// The current pacing rate (0 before any was set).
    pub fn rate(&self) -> f64 {
        f64::from_bits(self.rate_bits.load(Relaxed))
    }

    /// Sets the lowest pacing rate so far.
    pub fn set_rate_min(&self, r: f64) {
        self.rate_min_bits.store(r.to_bits(), Relaxed);
    }

    /// Lowers the lowest pacing rate so far to `r` if it is lower (rates are non-negative, so
    /// their `f64` bits order as the numbers do).
    pub fn lower_rate_min(&self, r: f64) {
        self.rate_min_bits.fetch_min(r.to_bits(), Relaxed);
    }

    /// The lowest pacing rate so far (0 before any was set).
    pub fn rate_min(&self) -> f64 {
        f64::from_bits(self.rate_min_bits.load(Relaxed))
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Relaxed)
    }
}
