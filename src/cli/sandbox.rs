//! `cio-import sandbox`: the local Track API stand-in in the foreground. Its flags become a
//! [`SandboxConfig`] (no clap) here; the sandbox itself lives in [`crate::sandbox`].

use super::{wait_for_signal, UsageError};
use crate::config;
use crate::exit;
use crate::sandbox::{self, Sandbox, SandboxConfig, Tls};
use crate::secret::{ApiKey, Credentials};
use anyhow::anyhow;
use clap::Args;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

/// Options of `sandbox`.
#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 4567)]
    pub port: u16,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Site id to require (default: CUSTOMERIO_SITE_ID; none set = accept any).
    #[arg(long, env = "CUSTOMERIO_SITE_ID", hide_env_values = true)]
    pub site_id: Option<String>,
    /// API key to require (default: CUSTOMERIO_TRACK_API_KEY).
    #[arg(long, env = "CUSTOMERIO_TRACK_API_KEY", hide_env_values = true, value_parser = key)]
    pub api_key: Option<ApiKey>,
    /// Requests per second before 429 (0 = no limit).
    #[arg(long, default_value_t = 100)]
    pub limit: u32,
    /// Burst of the rate limit.
    #[arg(long, default_value_t = 10)]
    pub burst: u32,
    /// Send `Retry-After: SECS` with every 429.
    #[arg(long)]
    pub retry_after: Option<u64>,
    /// Latency added to every request (±20% jitter), in ms.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Share of requests answered 500/502/503/504 (0..1).
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Share of requests whose connection is closed without an answer.
    #[arg(long, default_value_t = 0.0)]
    pub reset_rate: f64,
    /// Share of requests answered only after --slow-ms (then 504).
    #[arg(long, default_value_t = 0.0)]
    pub slow_rate: f64,
    /// How slow a slow request is, in ms.
    #[arg(long, default_value_t = 35_000)]
    pub slow_ms: u64,
    /// Answer 503 from START_S seconds after start, for LEN_S seconds.
    #[arg(long, num_args = 2, value_names = ["START_S", "LEN_S"])]
    pub outage: Option<Vec<f64>>,
    /// Share of requests applied, then answered 500.
    #[arg(long, default_value_t = 0.0)]
    pub ambiguous_rate: f64,
    /// Share of batch requests applied, then answered 207 with a cut-off or non-JSON body.
    #[arg(long, default_value_t = 0.0)]
    pub unreadable_207_rate: f64,
    /// Seed for the fault dice.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the people received as JSONL here on exit.
    #[arg(long)]
    pub save: Option<PathBuf>,
    /// Do not keep people (for very large benchmarks).
    #[arg(long)]
    pub discard: bool,
    /// Answer this identifier as invalid (a 207 entry in a batch, 400 in v1); repeatable.
    #[arg(long = "reject-id")]
    pub reject_ids: Vec<String>,
    /// Fail any whole batch holding this identifier with 400; repeatable.
    #[arg(long = "poison-id")]
    pub poison_ids: Vec<String>,
    /// The bearer key the App API endpoint (for `verify`) requires (default: the fixed, fake
    /// `sandbox-app-key`, printed at start). Never taken from CUSTOMERIO_APP_API_KEY, which
    /// holds a real key; a key given here is not printed.
    #[arg(long, value_parser = key)]
    pub app_api_key: Option<ApiKey>,
    /// App API requests per second before 429 (Customer.io's limit is 10; 0 = no limit).
    #[arg(long, default_value_t = sandbox::APP_API_DEFAULT_LIMIT)]
    pub app_limit: u32,
    /// Serve HTTPS with a fresh self-signed certificate for localhost and 127.0.0.1.
    #[arg(long)]
    pub tls: bool,
    /// Where to write that certificate (PEM).
    #[arg(long, requires = "tls")]
    pub cert_out: Option<PathBuf>,
    /// A limit that changes mid-run: SECS:REQ_PER_S steps, e.g. 0:100,20:40,40:100 (overrides --limit).
    #[arg(long)]
    pub limit_schedule: Option<String>,
    /// Simulated live traffic spending the same quota, in requests per second (Poisson).
    #[arg(long, default_value_t = 0)]
    pub background_rate: u32,
}

/// Parses `--limit-schedule 0:100,20:40,40:100`: start times in seconds, increasing.
fn parse_limit_schedule(s: &str) -> Result<Vec<(Duration, u32)>, UsageError> {
    let bad = |why: String| UsageError::LimitSchedule {
        value: s.to_string(),
        why,
    };
    let mut steps: Vec<(Duration, u32)> = Vec::new();
    for part in s.split(',') {
        let (at, limit) = part
            .trim()
            .split_once(':')
            .ok_or_else(|| bad(format!("'{part}' has no ':'")))?;
        let at: f64 = at
            .trim()
            .parse()
            .map_err(|_| bad(format!("'{at}' is not a number of seconds")))?;
        let limit: u32 = limit
            .trim()
            .parse()
            .map_err(|_| bad(format!("'{limit}' is not a whole number of requests")))?;
        if !(0.0..=86_400.0).contains(&at) {
            return Err(bad("start times go from 0 to 86400 seconds".into()));
        }
        let at = Duration::from_secs_f64(at);
        if steps.last().is_some_and(|(prev, _)| *prev >= at) {
            return Err(bad("start times must increase".into()));
        }
        steps.push((at, limit));
    }
    Ok(steps)
}

impl TryFrom<&SandboxArgs> for SandboxConfig {
    type Error = UsageError;

    /// The sandbox settings these flags describe, checked.
    fn try_from(args: &SandboxArgs) -> Result<SandboxConfig, UsageError> {
        let credentials = match (&args.site_id, &args.api_key) {
            (Some(s), Some(k)) if !s.is_empty() && !k.expose().is_empty() => Some(Credentials {
                site_id: s.clone(),
                api_key: k.clone(),
            }),
            (None, None) => None,
            _ => return Err(UsageError::SandboxCredentials),
        };
        let outage = match args.outage.as_deref() {
            Some([start, len]) => Some((
                config::seconds("--outage", *start, sandbox::OUTAGE_S, "5 10")?,
                config::seconds("--outage", *len, sandbox::OUTAGE_S, "5 10")?,
            )),
            Some(_) => return Err(UsageError::Outage),
            None => None,
        };
        let cfg = SandboxConfig {
            credentials,
            limit: args.limit,
            burst: args.burst,
            retry_after: args.retry_after,
            latency: Duration::from_millis(args.latency_ms),
            fail_rate: args.fail_rate,
            reset_rate: args.reset_rate,
            slow_rate: args.slow_rate,
            slow: Duration::from_millis(args.slow_ms),
            outage,
            ambiguous_rate: args.ambiguous_rate,
            unreadable_207_rate: args.unreadable_207_rate,
            seed: args.seed,
            store_people: !args.discard,
            log_each_second: true,
            script: Vec::new(),
            reject_ids: args.reject_ids.clone(),
            poison_ids: args.poison_ids.clone(),
            limit_schedule: match &args.limit_schedule {
                Some(s) => parse_limit_schedule(s)?,
                None => Vec::new(),
            },
            background_rate: args.background_rate,
            app_api: sandbox::AppApiConfig {
                key: Some(
                    args.app_api_key
                        .clone()
                        .unwrap_or_else(|| ApiKey::new(sandbox::APP_API_DEFAULT_KEY)),
                ),
                limit: args.app_limit,
                ..sandbox::AppApiConfig::default()
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }
}

/// How the start line names the App API key: the fixed sandbox key is shown (it is public and
/// fake, and `verify` needs it), a key given with `--app-api-key` never is.
/// A key from the command line or the environment, held so that `Debug` never shows it.
fn key(s: &str) -> Result<ApiKey, std::convert::Infallible> {
    Ok(ApiKey::new(s))
}

fn app_key_shown(given: Option<&ApiKey>) -> String {
    match given {
        None => format!(
            "bearer key {} (CUSTOMERIO_APP_API_KEY={} for verify)",
            sandbox::APP_API_DEFAULT_KEY,
            sandbox::APP_API_DEFAULT_KEY
        ),
        Some(_) => "bearer key as given with --app-api-key (not shown)".to_string(),
    }
}

/// Serves until Ctrl-C, then prints the figures (and saves the people with `--save`).
pub(super) async fn run(args: SandboxArgs) -> anyhow::Result<u8> {
    let cfg = SandboxConfig::try_from(&args)?;
    if cfg.credentials.is_none() {
        eprintln!("sandbox: no credentials set: accepting any (set CUSTOMERIO_SITE_ID and CUSTOMERIO_TRACK_API_KEY, or --site-id/--api-key, to require them)");
    }
    let tls = if args.tls {
        Some(Tls::generate().map_err(|e| anyhow!(e))?)
    } else {
        None
    };
    if let (Some(t), Some(path)) = (&tls, &args.cert_out) {
        t.write_cert(path)
            .map_err(|e| anyhow!("cannot write the certificate to {}: {e}", path.display()))?;
    }
    let sb = Sandbox::start(cfg, SocketAddr::new(args.bind, args.port), tls.as_ref())
        .await
        .map_err(|e| anyhow!("cannot listen on {}:{}: {e}", args.bind, args.port))?;
    {
        use std::io::Write;
        let mut out = std::io::stdout();
        let _ = writeln!(out, "{}", sb.url);
        let _ = out.flush();
    }
    eprintln!("sandbox: listening on {} (Ctrl-C to stop); stats at {}/__sandbox/stats, people at {}/__sandbox/people", sb.url, sb.url, sb.url);
    eprintln!(
        "sandbox: App API (for verify) at {}/v1/customers/attributes, {}, {} req/s",
        sb.url,
        app_key_shown(args.app_api_key.as_ref()),
        args.app_limit
    );
    wait_for_signal().await;
    let stats = sb.stats();
    eprintln!(
        "sandbox: stopping after {} requests, {} operations, max {} req/s, {} violations",
        stats.requests, stats.operations, stats.max_requests_per_second, stats.violation_count
    );
    if let Some(path) = &args.save {
        match sb.save_people(path) {
            Ok(n) => eprintln!("sandbox: saved {n} people to {}", path.display()),
            Err(e) => eprintln!("sandbox: cannot save people to {}: {e}", path.display()),
        }
    }
    sb.shutdown().await;
    Ok(exit::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::super::{Cli, Command};
    use super::*;
    use clap::Parser;

    fn sandbox_args(extra: &[&str]) -> SandboxArgs {
        let mut argv = vec!["cio-import", "sandbox"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Sandbox(a)) => a,
            other => panic!("not a sandbox command line: {other:?}"),
        }
    }

    #[test]
    fn sandbox_numbers_out_of_range_are_usage_errors_naming_the_flag() {
        for (flag, value) in [
            ("--latency-ms", "18446744073709551615"),
            ("--slow-ms", "18446744073709551615"),
            ("--burst", "0"),
            ("--limit", "4294967295"),
            ("--retry-after", "18446744073709551615"),
            ("--outage", "1e20"),
        ] {
            let mut args = vec![flag, value];
            if flag == "--outage" {
                args.push("1");
            }
            match SandboxConfig::try_from(&sandbox_args(&args)) {
                Ok(_) => panic!("{flag} {value} was accepted"),
                Err(e) => {
                    let e = e.to_string();
                    assert!(e.starts_with(flag) && e.contains("give"), "{e}")
                }
            }
        }
        assert!(SandboxConfig::try_from(&sandbox_args(&[])).is_ok());
    }

    /// Red-team finding: `--app-api-key` defaulted from CUSTOMERIO_APP_API_KEY (a real key)
    /// and the start line printed it. The sandbox's key is its own fixed, fake one unless
    /// given on the command line, and a given key is never printed.
    #[test]
    fn the_sandbox_app_key_never_comes_from_the_real_variable_nor_shows_a_given_one() {
        let args = sandbox_args(&[]);
        assert_eq!(args.app_api_key, None);
        let cfg = SandboxConfig::try_from(&args).expect("valid");
        let key = cfg.app_api.key.expect("a key");
        assert_eq!(key.expose(), sandbox::APP_API_DEFAULT_KEY);
        assert!(app_key_shown(None).contains(sandbox::APP_API_DEFAULT_KEY));
        let given = sandbox_args(&["--app-api-key", "given-SECRET"]);
        assert!(!app_key_shown(given.app_api_key.as_ref()).contains("given-SECRET"));
        // Nor does the arguments' Debug (keys are held as ApiKey).
        let shown = format!(
            "{:?}",
            sandbox_args(&["--api-key", "track-SECRET", "--app-api-key", "given-SECRET"])
        );
        assert!(!shown.contains("SECRET"), "{shown}");
    }

    #[test]
    fn a_limit_schedule_must_increase_and_name_the_fix() {
        let steps = parse_limit_schedule("0:100, 20:40,40:100").expect("a good schedule");
        assert_eq!(steps[1], (Duration::from_secs(20), 40));
        for bad in ["0:100,0:40", "5", "x:1", "0:-1", "1e9:5"] {
            let e = parse_limit_schedule(bad).expect_err(bad).to_string();
            assert!(
                e.starts_with("--limit-schedule") && e.contains("e.g."),
                "{e}"
            );
        }
    }
}
