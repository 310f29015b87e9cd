//! Alerts after a run nobody watched: a short JSON message POSTed to a webhook (Slack
//! incoming-webhook compatible: `text` holds one or two lines a human reads, `summary` the
//! whole summary) when the run failed, when more rows failed than a threshold, or always.
//!
//! An alert never changes the run: it is sent after the reports are written, with a short
//! timeout and one retry at most, and a failure to send it is logged, never returned as the
//! run's exit code. The webhook URL may hold a secret (Slack's do, in their path): it is
//! shown only redacted ([`crate::run_record::redact_url`]), and reqwest's errors are stripped
//! of it.

use crate::exit;
use crate::report::summary::Summary;
use crate::run_record::redact_url;
use serde_json::json;
use std::time::Duration;

/// When to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum NotifyOn {
    /// When the run failed (exit code other than 0 and 2: a fatal error, an abort, an
    /// interruption; or a guard stopped it) or more rows (and mirror removals) failed than
    /// the threshold.
    #[default]
    Failure,
    /// After every run.
    Always,
}

/// How many failed rows are tolerated before an alert.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Threshold {
    /// More than this many failed rows.
    Rows(u64),
    /// More than this percentage of the rows read.
    Percent(f64),
}

impl Default for Threshold {
    /// Any failed row (`0`).
    fn default() -> Threshold {
        Threshold::Rows(0)
    }
}

impl std::str::FromStr for Threshold {
    type Err = String;

    /// `N` (rows) or `PCT%` (of the rows read, 0 to 100).
    fn from_str(s: &str) -> Result<Threshold, String> {
        let s = s.trim();
        let bad = || {
            format!("'{s}': give a number of rows (e.g. 10) or a percentage of the rows read (e.g. 0.5%)")
        };
        match s.strip_suffix('%') {
            Some(p) => {
                let p: f64 = p.trim().parse().map_err(|_| bad())?;
                if (0.0..=100.0).contains(&p) {
                    Ok(Threshold::Percent(p))
                } else {
                    Err(bad())
                }
            }
            None => s.parse().map(Threshold::Rows).map_err(|_| bad()),
        }
    }
}

impl Threshold {
    /// Whether `failed` of `rows` is above the threshold.
    pub fn exceeded(self, failed: u64, rows: u64) -> bool {
        match self {
            Threshold::Rows(n) => failed > n,
            Threshold::Percent(p) => {
                failed > 0 && (rows == 0 || failed as f64 * 100.0 / rows as f64 > p)
            }
        }
    }
}

/// An alert's settings.
#[derive(Clone, Debug)]
pub struct Notifier {
    url: reqwest::Url,
    /// When to send.
    pub on: NotifyOn,
    /// Failed rows tolerated (with [`NotifyOn::Failure`]).
    pub threshold: Threshold,
    /// The timeout of one attempt.
    pub timeout: Duration,
}

/// An alert's URL that cannot be used. The message never holds the URL whole.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Not a URL, or not https outside loopback.
    #[error("--notify {shown}: {why}")]
    Url {
        /// The URL, redacted.
        shown: String,
        /// What is wrong.
        why: String,
    },
    /// The alert could not be delivered (after its retry).
    #[error("alert to {shown} not delivered: {why}")]
    Send {
        /// The URL, redacted.
        shown: String,
        /// What happened (without the URL).
        why: String,
    },
}

/// Why an alert is sent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reason {
    /// The run failed: aborted, fatal API answer, interrupted, or it could not start.
    Failed,
    /// More rows failed than the threshold.
    RowsFailed,
    /// `--notify-on always`.
    Always,
}

/// The default timeout of one attempt.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
/// The pause before the one retry.
const RETRY_AFTER: Duration = Duration::from_millis(500);

impl Notifier {
    /// Checks the URL: https, or http on a loopback host.
    pub fn new(
        url: &str,
        on: NotifyOn,
        threshold: Threshold,
        timeout: Duration,
    ) -> Result<Notifier, NotifyError> {
        let shown = redact_url(url);
        let bad = |why: &str| NotifyError::Url {
            shown: shown.clone(),
            why: why.to_string(),
        };
        let parsed = reqwest::Url::parse(url)
            .map_err(|_| bad("not a URL (e.g. https://hooks.slack.com/services/...)"))?;
        let loopback = parsed
            .host()
            .is_some_and(|h| crate::track::is_loopback_host(&h));
        match parsed.scheme() {
            "https" => {}
            "http" if loopback => {}
            _ => return Err(bad("use https (http only for a loopback host)")),
        }
        Ok(Notifier {
            url: parsed,
            on,
            threshold,
            timeout,
        })
    }

    /// The URL as it may be shown.
    pub fn shown(&self) -> String {
        redact_url(self.url.as_str())
    }

    /// Whether this summary calls for an alert, and why.
    ///
    /// A guard's stop (exit 2, like failed rows) is a failed run: always alerted. Mirror
    /// removals that failed count with the failed rows against the threshold (out of the
    /// rows and the removals due).
    pub fn decide(&self, s: &Summary) -> Option<Reason> {
        let failed_run = !matches!(s.exit_code, exit::SUCCESS | exit::ROWS_FAILED)
            || s.ending == crate::report::summary::Ending::Guarded;
        let (removals_failed, removals) = s
            .mirror
            .as_ref()
            .filter(|m| m.held_back.is_none())
            .map_or((0, 0), |m| (m.failed + m.not_sent, m.absent));
        if failed_run {
            Some(Reason::Failed)
        } else if self
            .threshold
            .exceeded(s.failed() + removals_failed, s.rows + removals)
        {
            Some(Reason::RowsFailed)
        } else if self.on == NotifyOn::Always {
            Some(Reason::Always)
        } else {
            None
        }
    }

    /// Sends the alert for `summary` if it calls for one; `Ok(None)` when none was due.
    pub async fn after_run(&self, summary: &Summary) -> Result<Option<Reason>, NotifyError> {
        let Some(reason) = self.decide(summary) else {
            return Ok(None);
        };
        let body = json!({
            "text": text(summary, &reason),
            "summary": summary,
        });
        self.post(&body).await.map(|_| Some(reason))
    }

    /// Sends an alert for a run that could not start (`error` is its message).
    pub async fn not_started(&self, job: &str, error: &str) -> Result<(), NotifyError> {
        let body = json!({
            "text": format!("cio-import FAILED before starting: {job}\n{error}"),
            "summary": {"input": job, "outcome": "aborted", "stop_reason": error, "exit_code": exit::USAGE_OR_IO},
        });
        self.post(&body).await
    }

    /// POSTs `body`: one attempt and, after a failure (no answer, timeout, 5xx, 429), one
    /// retry.
    async fn post(&self, body: &serde_json::Value) -> Result<(), NotifyError> {
        let fail = |why: String| NotifyError::Send {
            shown: self.shown(),
            why,
        };
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .connect_timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| fail(e.without_url().to_string()))?;
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        let mut last = String::new();
        for attempt in 0..2 {
            if attempt > 0 {
                tokio::time::sleep(RETRY_AFTER).await;
            }
            let request = client
                .post(self.url.clone())
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone());
            match request.send().await {
                Ok(r) if r.status().is_success() => return Ok(()),
                Ok(r) => {
                    last = format!("answered {}", r.status());
                    let retry = r.status().is_server_error()
                        || r.status() == reqwest::StatusCode::TOO_MANY_REQUESTS;
                    if !retry {
                        break;
                    }
                }
                Err(e) => {
                    last = if e.is_timeout() {
                        format!("no answer within {:.1}s", self.timeout.as_secs_f64())
                    } else {
                        e.without_url().to_string()
                    };
                }
            }
        }
        Err(fail(last))
    }
}

/// The lines a human reads in Slack: the outcome and the file, then the counts and run id.
pub fn text(s: &Summary, reason: &Reason) -> String {
    let headline = match (reason, s.exit_code) {
        (_, _) if s.ending == crate::report::summary::Ending::Guarded => {
            format!("FAILED ({}, exit {})", s.outcome, s.exit_code)
        }
        (_, exit::SUCCESS) => "completed".to_string(),
        (_, exit::ROWS_FAILED) => "completed with failed rows".to_string(),
        (_, code) => format!("FAILED ({}, exit {code})", s.outcome),
    };
    let run = s
        .run
        .as_ref()
        .map(|r| format!(" · run {}", r.run_id))
        .unwrap_or_default();
    let dest = s
        .run
        .as_ref()
        .and_then(|r| {
            r.destination
                .site_id
                .as_ref()
                .map(|id| (id, &r.destination.host))
        })
        .map(|(id, host)| format!(" · site {id} at {host}"))
        .unwrap_or_default();
    let mut t = format!(
        "cio-import {headline}: {}{}\n{} rows: {} sent, {} skipped, {} failed{run}{dest}",
        s.input,
        if s.dry_run { " (dry run)" } else { "" },
        s.rows,
        s.sent,
        s.skipped,
        s.failed()
    );
    if let Some(m) = s.mirror.as_ref().filter(|m| m.failed + m.not_sent > 0) {
        if m.held_back.is_none() {
            t.push_str(&format!(
                "\nmirror {}: {} of {} removals failed",
                m.mode,
                m.failed + m.not_sent,
                m.absent
            ));
        }
    }
    if let Some(why) = &s.stop_reason {
        t.push_str(&format!("\nstopped: {why}"));
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_read_rows_or_percentages() {
        assert_eq!("10".parse::<Threshold>(), Ok(Threshold::Rows(10)));
        assert_eq!("0.5%".parse::<Threshold>(), Ok(Threshold::Percent(0.5)));
        assert!("x%".parse::<Threshold>().is_err());
        assert!("101%".parse::<Threshold>().is_err());
        assert!("-1".parse::<Threshold>().is_err());
        assert!(!Threshold::Rows(3).exceeded(3, 100));
        assert!(Threshold::Rows(3).exceeded(4, 100));
        assert!(!Threshold::Percent(5.0).exceeded(5, 100));
        assert!(Threshold::Percent(5.0).exceeded(6, 100));
        assert!(!Threshold::Percent(0.0).exceeded(0, 100));
    }

    #[test]
    fn a_url_must_be_https_outside_loopback_and_errors_never_show_it() {
        let e = Notifier::new(
            "http://hooks.example.com/services/SECRET",
            NotifyOn::Failure,
            Threshold::default(),
            DEFAULT_TIMEOUT,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("https") && !e.contains("SECRET"), "{e}");
        assert!(Notifier::new(
            "http://127.0.0.1:9/x",
            NotifyOn::Failure,
            Threshold::default(),
            DEFAULT_TIMEOUT
        )
        .is_ok());
    }

    #[test]
    fn a_guard_always_alerts_and_failed_removals_count_against_the_threshold() {
        use crate::report::summary::{Ending, Heading, Summary};
        let n = Notifier::new(
            "https://hooks.example.com/x",
            NotifyOn::Failure,
            Threshold::Rows(0),
            DEFAULT_TIMEOUT,
        )
        .unwrap();
        let heading = Heading {
            input: "p.csv".into(),
            api: "batch",
            dry_run: false,
        };
        let mut s = Summary::of(&crate::tally::Tally::default(), &heading, Duration::ZERO);
        s.end(Ending::Completed, None);
        assert_eq!(n.decide(&s), None);
        s.mirror = Some(crate::mirror::MirrorReport {
            mode: "delete".into(),
            absent: 3,
            removed: 1,
            failed: 2,
            ..Default::default()
        });
        s.end(Ending::Completed, None);
        assert_eq!(n.decide(&s), Some(Reason::RowsFailed));
        assert!(text(&s, &Reason::RowsFailed).contains("mirror delete: 2 of 3 removals failed"));
        let mut g = Summary::of(&crate::tally::Tally::default(), &heading, Duration::ZERO);
        g.end(Ending::Guarded, Some("p.csv has no rows".into()));
        assert_eq!(g.exit_code, crate::exit::GUARD);
        assert_eq!(n.decide(&g), Some(Reason::Failed));
        assert!(
            text(&g, &Reason::Failed).starts_with("cio-import FAILED (stopped by a guard, exit 2)")
        );
    }
}
