//! What the sandbox counts: requests, answers, peaks, sizes, and every protocol violation.

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most violations kept verbatim (all are counted).
const MAX_VIOLATIONS_KEPT: usize = 1000;

/// Live counters.
#[derive(Debug, Default)]
pub struct Stats {
    requests: AtomicU64,
    operations: AtomicU64,
    resets: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    largest_request: AtomicU64,
    max_per_second: AtomicU64,
    by_status: Mutex<BTreeMap<u16, u64>>,
    window: Mutex<VecDeque<Instant>>,
    violations: Mutex<Vec<String>>,
    violation_count: AtomicU64,
    second: [AtomicU64; 5],
    arrivals: Mutex<Vec<Arrival>>,
    epoch: std::sync::OnceLock<Instant>,
    background_requests: AtomicU64,
    background_429s: AtomicU64,
    by_action: [AtomicU64; ACTIONS.len()],
    duplicate_events: AtomicU64,
    ignored_suppressed: AtomicU64,
    ignored_merges: AtomicU64,
    /// Object and relationship operations accepted, by name ([`super::objects::ACTIONS`]).
    by_object_action: Mutex<BTreeMap<&'static str, u64>>,
}

/// The person actions the sandbox applies, in the order of [`Action`].
pub const ACTIONS: [&str; 8] = [
    "identify",
    "event",
    "delete",
    "suppress",
    "unsuppress",
    "add_device",
    "delete_device",
    "merge",
];

/// A person action the sandbox applies (its index in [`ACTIONS`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Create or update a person.
    Identify = 0,
    /// Record an event.
    Event = 1,
    /// Delete a person.
    Delete = 2,
    /// Delete and suppress a person's identifier.
    Suppress = 3,
    /// Take an identifier off the suppression list.
    Unsuppress = 4,
    /// Add or update a device.
    AddDevice = 5,
    /// Remove a device.
    DeleteDevice = 6,
    /// Merge two people.
    Merge = 7,
}

/// Accepted operations of one request, counted by [`Action`].
pub type Tally = [u64; ACTIONS.len()];

/// Most arrivals kept for [`Stats::arrivals`].
const MAX_ARRIVALS_KEPT: usize = 200_000;

/// One request as it arrived and was answered.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Arrival {
    /// Milliseconds since the sandbox started.
    pub at_ms: f64,
    /// The request path.
    pub path: String,
    /// The answer's status (0 for a deliberate reset).
    pub status: u16,
}

/// A copy of the counters, as `/__sandbox/stats` shows them.
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq)]
pub struct StatsSnapshot {
    /// Requests to the API endpoints (not `/__sandbox`).
    pub requests: u64,
    /// Person operations accepted and applied (a v1 request counts one).
    pub operations: u64,
    /// Those operations by action: `identify`, `event`, `delete`, `suppress`, `unsuppress`
    /// (every one listed, zeros too), over v1 and v2 alike.
    #[serde(default)]
    pub by_action: BTreeMap<String, u64>,
    /// Events accepted whose id had been received before, so not stored again (counted in
    /// `by_action.event` too).
    #[serde(default)]
    pub duplicate_events: u64,
    /// Identify and event operations accepted for a suppressed identifier, and ignored as
    /// Customer.io ignores them (counted in `by_action` too).
    #[serde(default)]
    pub ignored_suppressed: u64,
    /// Merges accepted whose primary or secondary did not exist, so nothing changed
    /// (counted in `by_action.merge` too).
    #[serde(default)]
    pub ignored_merges: u64,
    /// Answers by HTTP status.
    pub by_status: BTreeMap<String, u64>,
    /// Connections closed without an answer on purpose.
    pub resets: u64,
    /// Most requests that arrived within any sliding 1-second window.
    pub max_requests_per_second: u64,
    /// Most requests being handled at once.
    pub max_in_flight: u64,
    /// Requests in flight now (arrived, not yet answered or dropped).
    #[serde(default)]
    pub in_flight: u64,
    /// Bytes of the largest request body.
    pub largest_request_bytes: u64,
    /// How many protocol violations were seen.
    pub violation_count: u64,
    /// The first violations, described.
    pub violations: Vec<String>,
    /// Requests of the simulated live traffic (`--background-rate`).
    #[serde(default)]
    pub background_requests: u64,
    /// Of those, the ones answered 429.
    #[serde(default)]
    pub background_429s: u64,
}

impl StatsSnapshot {
    /// Answers with the given status.
    pub fn status(&self, code: u16) -> u64 {
        self.by_status.get(&code.to_string()).copied().unwrap_or(0)
    }

    /// Accepted operations of one action (`"event"`, ...).
    pub fn action(&self, name: &str) -> u64 {
        self.by_action.get(name).copied().unwrap_or(0)
    }
}

/// Decrements the in-flight count when a request ends.
pub struct InFlight<'a>(&'a Stats);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Relaxed);
    }
}

impl Stats {
    /// Counts an arriving request and returns its in-flight guard.
    pub fn arrive(&self) -> InFlight<'_> {
        self.requests.fetch_add(1, Relaxed);
        self.second[0].fetch_add(1, Relaxed);
        let now = self.in_flight.fetch_add(1, Relaxed) + 1;
        self.max_in_flight.fetch_max(now, Relaxed);
        let t = Instant::now();
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.push_back(t);
        while w
            .front()
            .is_some_and(|f| t.duration_since(*f) >= Duration::from_secs(1))
        {
            w.pop_front();
        }
        self.max_per_second.fetch_max(w.len() as u64, Relaxed);
        InFlight(self)
    }

    /// Notes the moment the sandbox started.
    pub fn start_clock(&self) {
        let _ = self.epoch.set(Instant::now());
    }

    /// Logs one arrival (capped).
    pub fn log_arrival(&self, at: Instant, path: &str, status: u16) {
        let epoch = *self.epoch.get_or_init(Instant::now);
        let mut a = self.arrivals.lock().unwrap_or_else(|e| e.into_inner());
        if a.len() < MAX_ARRIVALS_KEPT {
            a.push(Arrival {
                at_ms: at.saturating_duration_since(epoch).as_secs_f64() * 1000.0,
                path: path.to_string(),
                status,
            });
        }
    }

    /// Every logged arrival, in arrival order.
    pub fn arrivals(&self) -> Vec<Arrival> {
        let mut v = self
            .arrivals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        v.sort_by(|a, b| a.at_ms.total_cmp(&b.at_ms));
        v
    }

    /// Counts a request body's size.
    pub fn body_size(&self, n: usize) {
        self.largest_request.fetch_max(n as u64, Relaxed);
    }

    /// Counts an answer.
    pub fn answered(&self, status: u16) {
        *self
            .by_status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
        let slot = match status {
            200..=299 => 1,
            429 => 3,
            400..=499 => 2,
            _ => 4,
        };
        self.second[slot].fetch_add(1, Relaxed);
    }

    /// Counts a request of the simulated live traffic, and whether it got through.
    pub fn background(&self, ok: bool) {
        self.background_requests.fetch_add(1, Relaxed);
        if !ok {
            self.background_429s.fetch_add(1, Relaxed);
        }
    }

    /// Counts a deliberate reset.
    pub fn reset(&self) {
        self.resets.fetch_add(1, Relaxed);
    }

    /// Counts accepted operations, by action, and what applying them reported.
    pub fn accepted(&self, tally: &Tally, applied: super::people::Applied) {
        let n: u64 = tally.iter().sum();
        if n > 0 {
            self.operations.fetch_add(n, Relaxed);
        }
        for (slot, k) in self.by_action.iter().zip(tally) {
            if *k > 0 {
                slot.fetch_add(*k, Relaxed);
            }
        }
        if applied.duplicate_events > 0 {
            self.duplicate_events
                .fetch_add(applied.duplicate_events, Relaxed);
        }
        if applied.ignored_suppressed > 0 {
            self.ignored_suppressed
                .fetch_add(applied.ignored_suppressed, Relaxed);
        }
        if applied.ignored_merges > 0 {
            self.ignored_merges
                .fetch_add(applied.ignored_merges, Relaxed);
        }
    }

    /// Counts one accepted object or relationship operation under `name`.
    pub fn accepted_named(&self, name: &'static str) {
        self.operations.fetch_add(1, Relaxed);
        *self
            .by_object_action
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name)
            .or_default() += 1;
    }

    /// Records a protocol violation by the client.
    pub fn violation(&self, what: String) {
        tracing::warn!("sandbox: protocol violation: {what}");
        self.violation_count.fetch_add(1, Relaxed);
        let mut v = self.violations.lock().unwrap_or_else(|e| e.into_inner());
        if v.len() < MAX_VIOLATIONS_KEPT {
            v.push(what);
        }
    }

    /// A consistent-enough copy for reporting.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            requests: self.requests.load(Relaxed),
            operations: self.operations.load(Relaxed),
            by_action: {
                let objects = self
                    .by_object_action
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                ACTIONS
                    .iter()
                    .zip(&self.by_action)
                    .map(|(name, n)| (name.to_string(), n.load(Relaxed)))
                    .chain(
                        super::objects::ACTIONS.iter().map(|name| {
                            (name.to_string(), objects.get(name).copied().unwrap_or(0))
                        }),
                    )
                    .collect()
            },
            duplicate_events: self.duplicate_events.load(Relaxed),
            ignored_suppressed: self.ignored_suppressed.load(Relaxed),
            ignored_merges: self.ignored_merges.load(Relaxed),
            by_status: self
                .by_status
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            resets: self.resets.load(Relaxed),
            max_requests_per_second: self.max_per_second.load(Relaxed),
            max_in_flight: self.max_in_flight.load(Relaxed),
            in_flight: self.in_flight.load(Relaxed),
            largest_request_bytes: self.largest_request.load(Relaxed),
            violation_count: self.violation_count.load(Relaxed),
            violations: self
                .violations
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
            background_requests: self.background_requests.load(Relaxed),
            background_429s: self.background_429s.load(Relaxed),
        }
    }
}

/// Logs `requests, 2xx, 4xx, 429, 5xx` for each second that saw traffic.
pub async fn log_each_second(state: Arc<super::api::State>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        let s = &state.stats.second;
        let v: Vec<u64> = s.iter().map(|c| c.swap(0, Relaxed)).collect();
        if v[0] > 0 {
            tracing::info!(
                "sandbox: {} req/s | 2xx {} | 4xx {} | 429 {} | 5xx/reset {}",
                v[0],
                v[1],
                v[2],
                v[3],
                v[4]
            );
        }
    }
}
