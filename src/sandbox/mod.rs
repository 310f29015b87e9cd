//! A local stand-in for the Track API: the documented endpoints, limits and answers, a rate
//! limit, faults on demand, and a record of what it received (`/__sandbox/stats`, `/people`,
//! `/events`, `/suppressed`). It applies the person actions identify, event, delete, suppress,
//! unsuppress, add_device, delete_device and merge, through v1 and v2 alike; it drops an
//! identify whose `_timestamp` is older than the person's latest update (answering 200, as
//! Customer.io does). On the same port it serves the App API's read endpoint for `verify`
//! (`app_api`).

mod api;
mod app_api;
mod devices;
mod faults;
mod objects;
mod people;
mod server;
mod stats;

pub use app_api::AppApiConfig;
pub use objects::{Object, RelatedPerson, Relationship};
pub use people::{Device, Event, Person, PersonEvent, Suppressed};
pub use stats::{Arrival, StatsSnapshot};

use crate::secret::Credentials;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// How the sandbox behaves.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    /// Required Basic-auth credentials; `None` accepts any.
    pub credentials: Option<Credentials>,
    /// Requests per second before 429; 0 = no limit.
    pub limit: u32,
    /// Burst of the rate limit.
    pub burst: u32,
    /// `Retry-After` seconds sent with a 429, if any.
    pub retry_after: Option<u64>,
    /// Added latency per request (with ±20% jitter).
    pub latency: Duration,
    /// Share of requests answered 500/502/503/504 before being applied.
    pub fail_rate: f64,
    /// Share of connections closed without an answer.
    pub reset_rate: f64,
    /// Share of requests answered only after `slow`.
    pub slow_rate: f64,
    /// How long a slow request takes.
    pub slow: Duration,
    /// A window (start, length) after start-up during which every request gets 503.
    pub outage: Option<(Duration, Duration)>,
    /// Share of requests applied, then answered 500.
    pub ambiguous_rate: f64,
    /// Share of batch requests applied, then answered 207 with a body that cannot be read
    /// (cut off, or not JSON).
    pub unreadable_207_rate: f64,
    /// Seed for the fault dice.
    pub seed: Option<u64>,
    /// Keep people (off for very large benchmarks).
    pub store_people: bool,
    /// Log a line per second with the request counts.
    pub log_each_second: bool,
    /// Faults served in order to the first requests, before any random ones (for tests).
    pub script: Vec<Fault>,
    /// Identifiers answered as invalid: a 207 entry in a batch, a 400 in v1 (for tests).
    pub reject_ids: Vec<String>,
    /// Identifiers that make the whole batch request fail with 400 (for tests of bisection).
    pub poison_ids: Vec<String>,
    /// A rate limit that changes over time: (from this long after start, requests per second;
    /// 0 = no limit), in order. Empty: `limit` all along. Each change starts a full burst.
    pub limit_schedule: Vec<(Duration, u32)>,
    /// Simulated live traffic (the customer's app) spending the same quota: requests per
    /// second, Poisson arrivals; its answers are counted apart (`background_*` in the stats).
    pub background_rate: u32,
    /// The App API read endpoint (`POST /v1/customers/attributes`): its key and limit.
    pub app_api: AppApiConfig,
}

/// The range of `--outage START_S LEN_S`, each in seconds.
pub const OUTAGE_S: (f64, f64) = (0.0, 86_400.0);

impl SandboxConfig {
    /// Checks every number against the range the sandbox accepts (the flags' names in the
    /// messages); [`Sandbox::start`] calls it, so a configuration built in code gets it too.
    pub fn validate(&self) -> Result<(), crate::config::ConfigError> {
        use crate::config::{seconds, Bounds, ConfigError};
        let b = |option, max, unit, example| Bounds {
            option,
            min: 0,
            max,
            unit,
            example,
        };
        b(
            "--limit",
            1_000_000,
            "requests per second (0 = no limit)",
            "100",
        )
        .check(u128::from(self.limit))?;
        b(
            "--app-limit",
            1_000_000,
            "requests per second (0 = no limit)",
            "10",
        )
        .check(u128::from(self.app_api.limit))?;
        Bounds {
            min: 1,
            ..b("--burst", 1_000_000, "requests", "10")
        }
        .check(u128::from(self.burst))?;
        if let Some(s) = self.retry_after {
            b("--retry-after", 86_400, "seconds", "7").check(u128::from(s))?;
        }
        b("--latency-ms", 600_000, "milliseconds", "50").check_ms(self.latency)?;
        b("--slow-ms", 600_000, "milliseconds", "35000").check_ms(self.slow)?;
        if let Some((start, len)) = self.outage {
            for d in [start, len] {
                seconds("--outage", d.as_secs_f64(), OUTAGE_S, "5 10")?;
            }
        }
        for (option, v) in [
            ("--fail-rate", self.fail_rate),
            ("--reset-rate", self.reset_rate),
            ("--slow-rate", self.slow_rate),
            ("--ambiguous-rate", self.ambiguous_rate),
            ("--unreadable-207-rate", self.unreadable_207_rate),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(ConfigError::OutOfRange {
                    option,
                    value: format!("{v:?}"),
                    range: "a share between 0 and 1".into(),
                    example: "0.02",
                });
            }
        }
        Ok(())
    }
}

/// A fault the sandbox can be told to serve next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status without applying (e.g. 429, 503).
    Status(u16),
    /// Answer 429 with `Retry-After: secs`.
    RateLimited {
        /// The `Retry-After` seconds.
        retry_after: u64,
    },
    /// Close the connection without an answer.
    Reset,
    /// Answer 504 only after the configured slow delay.
    Slow,
    /// Apply the request, then answer 500.
    Ambiguous,
    /// On `/api/v2/batch`: apply the valid operations, then answer 207 with a body nobody can
    /// read: cut off mid-JSON (`truncated`) or not JSON at all (an HTML error page). Other
    /// paths serve normally.
    Unreadable207 {
        /// Cut off mid-JSON rather than HTML.
        truncated: bool,
    },
    /// Serve normally.
    Pass,
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            credentials: None,
            limit: 100,
            burst: 10,
            retry_after: None,
            latency: Duration::ZERO,
            fail_rate: 0.0,
            reset_rate: 0.0,
            slow_rate: 0.0,
            slow: Duration::from_secs(35),
            outage: None,
            ambiguous_rate: 0.0,
            unreadable_207_rate: 0.0,
            seed: None,
            store_people: true,
            log_each_second: false,
            script: Vec::new(),
            reject_ids: Vec::new(),
            poison_ids: Vec::new(),
            limit_schedule: Vec::new(),
            background_rate: 0,
            app_api: AppApiConfig::default(),
        }
    }
}

impl SandboxConfig {
    /// No limit, no latency, no faults: for tests that want a plain recorder.
    pub fn plain() -> SandboxConfig {
        SandboxConfig {
            limit: 0,
            ..SandboxConfig::default()
        }
    }
}

/// TLS material for `--tls`: a self-signed certificate for `localhost` and `127.0.0.1`.
pub struct Tls {
    /// The certificate, PEM (what a client must trust).
    pub cert_pem: String,
    key_der: Vec<u8>,
    cert_der: Vec<u8>,
}

impl Tls {
    /// Generates a fresh certificate.
    pub fn generate() -> Result<Tls, String> {
        let ck = rcgen::generate_simple_self_signed(vec![
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ])
        .map_err(|e| format!("cannot make a certificate: {e}"))?;
        Ok(Tls {
            cert_pem: ck.cert.pem(),
            cert_der: ck.cert.der().to_vec(),
            key_der: ck.signing_key.serialize_der(),
        })
    }

    /// Writes the certificate (PEM) for clients to trust.
    pub fn write_cert(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, &self.cert_pem)
    }
}

/// A running sandbox.
pub struct Sandbox {
    /// The base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The bound address.
    pub addr: SocketAddr,
    state: Arc<api::State>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Sandbox {
    /// Starts serving on `bind` (port 0 picks a free one), over TLS when `tls` is given.
    pub async fn start(
        cfg: SandboxConfig,
        bind: SocketAddr,
        tls: Option<&Tls>,
    ) -> std::io::Result<Sandbox> {
        cfg.validate()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let listener = tokio::net::TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        let url = format!("{scheme}://{addr}");
        let state = Arc::new(api::State::new(cfg, url.clone()));
        state.stats.start_clock();
        let acceptor = match tls {
            Some(t) => Some(server::acceptor(t).map_err(std::io::Error::other)?),
            None => None,
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(server::serve(
            listener,
            api::router(state.clone()),
            acceptor,
            rx,
        ));
        if state.cfg.log_each_second {
            tokio::spawn(stats::log_each_second(state.clone()));
        }
        if state.cfg.background_rate > 0 {
            tokio::spawn(api::background_traffic(Arc::downgrade(&state)));
        }
        Ok(Sandbox {
            url,
            addr,
            state,
            shutdown: Some(tx),
            task: Some(task),
        })
    }

    /// Replaces the faults still to be served in order (see [`SandboxConfig::script`]): lets a
    /// test that keeps one sandbox across runs give each run its own script.
    pub fn set_script(&self, faults: Vec<Fault>) {
        self.state.set_script(faults);
    }

    /// How many scripted faults are still waiting to be served.
    pub fn script_left(&self) -> usize {
        self.state.script_left()
    }

    /// What it has seen so far.
    pub fn stats(&self) -> StatsSnapshot {
        self.state.stats.snapshot()
    }

    /// Every request that arrived, in order: when, what, and the answer.
    pub fn arrivals(&self) -> Vec<Arrival> {
        self.state.stats.arrivals()
    }

    /// Every person with their merged attributes and events, sorted by identifier.
    pub fn people(&self) -> Vec<Person> {
        let mut people = self.state.people.list();
        self.state.objects.annotate(&mut people);
        people
    }

    /// Every object with its attributes and related people, sorted by type id and id.
    pub fn objects(&self) -> Vec<Object> {
        self.state.objects.list()
    }

    /// Every stored event with its person, by person and then in arrival order.
    pub fn events(&self) -> Vec<PersonEvent> {
        self.state.people.events()
    }

    /// The identifiers on the suppression list, sorted.
    pub fn suppressed(&self) -> Vec<Suppressed> {
        self.state.people.suppressed()
    }

    /// Writes the people as JSONL, each with their events (owner-only: it is customer data).
    pub fn save_people(&self, path: &Path) -> std::io::Result<usize> {
        self.state.people.save(path)
    }

    /// Stops accepting connections.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

/// Where `import --sandbox` saves the people it received: `<file name>.sandbox-people.jsonl`
/// next to the input (`customers.csv.sandbox-people.jsonl`), like the reports (in the current
/// folder for stdin).
pub fn default_save_path(input: Option<&Path>) -> PathBuf {
    crate::report::summary::beside_input(input, "sandbox-people.jsonl")
}

/// The bearer key `cio-import sandbox` requires on its App API endpoint when none is given.
pub const APP_API_DEFAULT_KEY: &str = app_api::DEFAULT_KEY;
/// The App API endpoint's default limit: Customer.io's, 10 requests a second.
pub const APP_API_DEFAULT_LIMIT: u32 = app_api::DEFAULT_LIMIT;
/// Most identifiers one App API request may name.
pub const APP_API_MAX_IDS: usize = app_api::MAX_IDS;
