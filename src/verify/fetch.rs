//! Reading people back through the App API, paced and retried like an import: every request
//! waits for a permit of the closed-loop bucket ([`crate::pace::Controller`], `--rate` as its
//! ceiling, 10 by default: the App API's limit); a 429 cuts the rate and is retried for as long
//! as the run progresses ([`ThrottleBudget`]); a 5xx, timeout or connection error is retried
//! with jittered exponential backoff up to `--max-retries`.

use crate::pace::{Controller, ThrottleBudget};
use crate::record::IdKind;
use crate::stop::Stop;
use crate::tally::Tally;
use crate::track::app::{AppClient, Fetched, Held};
use crate::track::Answer;
use rand::Rng;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// Why a request for some people gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// 401/403: the key or region is wrong; nothing more will work.
    Fatal(String),
    /// Retries ran out, or the API refused the request: these people are not verified.
    GaveUp(String),
    /// The run is stopping.
    Stopped,
}

/// The figures of the App API calls.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Calls {
    /// Requests made, retries included.
    pub requests: u64,
    /// 429 answers.
    pub throttled: u64,
    /// Retries after a 5xx, a timeout or a connection error.
    pub retries: u64,
}

/// The App API client with its pacing.
pub struct Fetcher {
    client: AppClient,
    controller: Controller,
    budget: ThrottleBudget,
    max_retries: usize,
    backoff_base: Duration,
    backoff_cap: Duration,
    /// The figures so far.
    pub calls: Calls,
}

impl Fetcher {
    /// Paces `client` at `rate` requests a second at most (0: no ceiling).
    pub fn new(
        client: AppClient,
        rate: u32,
        throttle_budget: Duration,
        max_retries: usize,
        backoff: (Duration, Duration),
    ) -> Fetcher {
        let ceiling = (rate > 0).then_some(f64::from(rate));
        Fetcher {
            client,
            controller: Controller::new(ceiling, Arc::new(Tally::default())),
            budget: ThrottleBudget::new(throttle_budget),
            max_retries,
            backoff_base: backoff.0,
            backoff_cap: backoff.1,
            calls: Calls::default(),
        }
    }

    /// Seconds throttled by 429s so far (held, or climbing back after cuts).
    pub fn throttled_s(&self) -> f64 {
        self.controller.throttled_s()
    }

    /// Reads the people `ids` (at most 100) of one identifier kind.
    pub async fn people(
        &mut self,
        kind: IdKind,
        ids: &[String],
        stop: &Stop,
    ) -> Result<HashMap<String, Held>, FetchError> {
        let mut retries = 0usize;
        let mut first_429: Option<tokio::time::Instant> = None;
        loop {
            let Some(epoch) = self.controller.acquire(stop).await else {
                return Err(FetchError::Stopped);
            };
            self.calls.requests += 1;
            // A stalled request (up to --timeout) must not hold up Ctrl-C: the stop wins.
            let fetched = tokio::select! {
                f = self.client.people(kind, ids) => f,
                _ = stop.stopped() => return Err(FetchError::Stopped),
            };
            let answer = match fetched {
                Fetched::People(p) => {
                    self.controller.admitted();
                    self.budget.acked();
                    return Ok(p);
                }
                Fetched::Failed(a) => a,
            };
            let message = match answer {
                Answer::Retry {
                    status: Some(429),
                    retry_after,
                    ..
                } => {
                    self.calls.throttled += 1;
                    let now = tokio::time::Instant::now();
                    self.controller.throttled(epoch, retry_after);
                    if let Some(ra) = retry_after {
                        self.budget.held(now + ra);
                    }
                    let first = *first_429.get_or_insert(now);
                    if self.budget.spent(first) {
                        return Err(FetchError::GaveUp(format!(
                            "the App API answered 429 for {} s without progress (--throttle-budget)",
                            self.budget.budget().as_secs()
                        )));
                    }
                    continue;
                }
                Answer::Retry { message, .. } | Answer::Unreachable { message } => {
                    self.controller.admitted();
                    message
                }
                Answer::Fatal { message, .. } => return Err(FetchError::Fatal(message)),
                Answer::Refused { status, message } => {
                    self.controller.admitted();
                    return Err(FetchError::GaveUp(format!(
                        "the App API refused the request ({status}): {message}"
                    )));
                }
                Answer::Accepted { status, .. } => format!("unexpected answer {status}"),
            };
            if retries >= self.max_retries {
                return Err(FetchError::GaveUp(format!(
                    "{message} (after {} attempts)",
                    retries + 1
                )));
            }
            retries += 1;
            let step = self
                .backoff_base
                .saturating_mul(1u32 << retries.min(16))
                .min(self.backoff_cap);
            let delay = step.mul_f64(rand::rng().random_range(0.0..=1.0));
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.stopped() => return Err(FetchError::Stopped),
            }
            // Counted once it is going to be made: a run stopped meanwhile retried nothing.
            self.calls.retries += 1;
        }
    }
}
