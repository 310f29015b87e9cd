//! The run record: what identifies one run and what shaped it, for a run nobody watched.
//!
//! It goes in the summary JSON (flattened: `run_id`, `started_at`, `finished_at`, `version`,
//! `input_file`, `destination`, `options`), in the ledger's record of the run (the same JSON),
//! and in the alert of [`crate::report::notify`]. It holds no secret: the destination is its
//! host and site id (never the API key), and a webhook URL only in its redacted form.

use crate::config::ImportConfig;
use crate::source::Input;
use crate::source::InputDigest;
use crate::track::Region;
use chrono::{SecondsFormat, Utc};
use serde::Serialize;

/// One run's identity, times, input, destination and options.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunRecord {
    /// Unique per run: a ULID (sorts by start time).
    pub run_id: String,
    /// When the run started, RFC 3339 in UTC (`2026-11-30T08:21:07.123Z`).
    pub started_at: String,
    /// When it finished, RFC 3339 in UTC; `None` while it runs.
    pub finished_at: Option<String>,
    /// The version of cio-import that ran.
    pub version: String,
    /// The input: path, size, bytes read and content hash.
    pub input_file: InputRecord,
    /// Where the rows went (never the key).
    pub destination: DestinationRecord,
    /// The options that shaped the run.
    pub options: RunOptions,
}

/// The input of a run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct InputRecord {
    /// The file's path as given; `None` for stdin.
    pub path: Option<String>,
    /// Whether the rows came from standard input.
    pub stdin: bool,
    /// The file's size in bytes (regular files only).
    pub size: Option<u64>,
    /// Bytes read (compressed bytes for gzip).
    pub bytes_read: u64,
    /// Whether the input was read to its end.
    pub read_to_end: bool,
    /// SHA-256 (hex) of the bytes as read (`sha256sum FILE`): only when read to its end.
    pub sha256: Option<String>,
}

/// The destination of a run: never the API key.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct DestinationRecord {
    /// `us` or `eu` when the host is a region's, else `None` (`--endpoint`, the sandbox).
    pub region: Option<String>,
    /// `host:port` of the Track API base.
    pub host: String,
    /// The workspace's site id (not a secret); `None` without credentials (a dry run).
    pub site_id: Option<String>,
}

/// The options that shaped a run.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct RunOptions {
    /// `batch` or `v1`.
    pub api: String,
    /// `people` or `events`.
    pub kind: String,
    /// `identify`, `delete`, `suppress`, `unsuppress` or `event`.
    pub action: String,
    /// `csv` or `jsonl`.
    pub format: String,
    /// The identifier kind (`id`, `email`, `cio_id`).
    pub identify_by: String,
    /// The identifier's column.
    pub id_column: String,
    /// `preset:NAME` or the mapping file, if any.
    pub mapping: Option<String>,
    /// `--rate` (0: no ceiling).
    pub rate: u32,
    /// `--fixed-rate`.
    pub fixed_rate: bool,
    /// `--concurrency`.
    pub concurrency: usize,
    /// `--update-only`.
    pub update_only: bool,
    /// `--empty`: `ignore` or `clear`.
    pub empty: String,
    /// `--max-retries`.
    pub max_retries: usize,
    /// `--timeout`, seconds.
    pub timeout_s: f64,
    /// `--batch-bytes`.
    pub batch_bytes: usize,
    /// `--batch-size`.
    pub batch_size: Option<usize>,
    /// `--state`.
    pub state: Option<String>,
    /// `--full`.
    pub full: bool,
    /// `--dry-run`.
    pub dry_run: bool,
    /// `--notify`, redacted ([`redact_url`]).
    pub notify: Option<String>,
}

/// Now, RFC 3339 in UTC with milliseconds.
pub fn now_rfc3339() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A new ULID: its time part is now, the rest random.
pub fn new_run_id() -> String {
    let ms = Utc::now().timestamp_millis().max(0) as u64;
    ulid::Ulid::from_parts(ms, rand::random::<u128>()).to_string()
}

/// The part of a URL that may be shown: scheme, host and port, the path's secret parts
/// replaced (`https://hooks.slack.com/services/T0/B0/XXXX` ->
/// `https://hooks.slack.com/...`). Query, user and password are dropped too. A URL that
/// does not parse is shown as `<webhook URL>`.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(u) => {
            let host = u.host_str().unwrap_or("");
            let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
            let rest = if u.path().len() > 1 || u.query().is_some() {
                "/..."
            } else {
                ""
            };
            format!("{}://{host}{port}{rest}", u.scheme())
        }
        Err(_) => "<webhook URL>".to_string(),
    }
}

impl RunRecord {
    /// The record of a run of `cfg` starting now: a new run id, the start time, the options;
    /// the input's figures and the end time come with [`RunRecord::finish`].
    pub fn start(cfg: &ImportConfig) -> RunRecord {
        let host = {
            let h = cfg.endpoint.host_str().unwrap_or("").to_ascii_lowercase();
            match cfg.endpoint.port_or_known_default() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            }
        };
        let base = cfg.endpoint.as_str().trim_end_matches('/');
        let region = [(Region::Us, "us"), (Region::Eu, "eu")]
            .into_iter()
            .find(|(r, _)| r.base_url() == base)
            .map(|(_, n)| n.to_string());
        let (path, stdin) = match &cfg.input {
            Input::Stdin => (None, true),
            Input::Path(p) => (Some(p.display().to_string()), false),
        };
        let c = &cfg.convert;
        RunRecord {
            run_id: new_run_id(),
            started_at: now_rfc3339(),
            finished_at: None,
            version: env!("CARGO_PKG_VERSION").to_string(),
            input_file: InputRecord {
                path,
                stdin,
                size: None,
                bytes_read: 0,
                read_to_end: false,
                sha256: None,
            },
            destination: DestinationRecord {
                region,
                host,
                site_id: cfg.credentials.as_ref().map(|c| c.site_id.clone()),
            },
            options: RunOptions {
                api: c.api.as_str().to_string(),
                kind: run_kind(c).to_string(),
                action: run_action(c).to_string(),
                format: cfg.format.extension().to_string(),
                identify_by: c.id_kind.as_str().to_string(),
                id_column: c.id_column.clone(),
                mapping: None,
                rate: cfg.rate,
                fixed_rate: cfg.fixed_rate,
                concurrency: cfg.concurrency,
                update_only: c.update_only,
                empty: if c.clear_empty { "clear" } else { "ignore" }.to_string(),
                max_retries: cfg.max_retries,
                timeout_s: cfg.timeout.as_secs_f64(),
                batch_bytes: cfg.batch_bytes,
                batch_size: cfg.batch_size,
                state: cfg.state.as_ref().map(|p| p.display().to_string()),
                full: cfg.full,
                dry_run: cfg.dry_run,
                notify: None,
            },
        }
    }

    /// Notes the input's figures (size, bytes read, hash when read to its end).
    pub fn input_read(&mut self, size: Option<u64>, bytes_read: u64, digest: &InputDigest) {
        self.input_file.size = size;
        self.input_file.bytes_read = bytes_read;
        self.input_file.read_to_end = digest.ended();
        self.input_file.sha256 = digest.ended().then(|| digest.hex());
    }

    /// Notes the end time.
    pub fn finish(&mut self) {
        self.finished_at = Some(now_rfc3339());
    }
}

/// The run's kind as `--kind` spells it: objects, relationships, devices, merges, events or
/// people.
fn run_kind(c: &crate::convert::ConvertOptions) -> &'static str {
    use crate::operation::Action;
    if let Some(o) = &c.object {
        return o.kind_name();
    }
    match c.action {
        Action::AddDevice | Action::DeleteDevice => "devices",
        Action::Merge => "merges",
        _ if c.event.is_some() => "events",
        _ => "people",
    }
}

/// The run's real action: a relationships run adds or deletes relationships, whatever the
/// action its rows carry.
fn run_action(c: &crate::convert::ConvertOptions) -> &'static str {
    use crate::operation::Action;
    match (&c.object, c.action) {
        (Some(o), Action::Delete | Action::DeleteRelationships)
            if o.kind_name() == "relationships" =>
        {
            "delete_relationships"
        }
        (Some(o), _) if o.kind_name() == "relationships" => "add_relationships",
        (_, a) => a.as_str(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_webhook_url_is_shown_without_its_secret_path() {
        let r = redact_url("https://hooks.slack.com/services/T000/B000/XXXXSECRET?x=1");
        assert_eq!(r, "https://hooks.slack.com/...");
        assert!(!r.contains("SECRET"));
        assert_eq!(
            redact_url("http://user:pw@127.0.0.1:9/hook"),
            "http://127.0.0.1:9/..."
        );
        assert_eq!(redact_url("not a url SECRET"), "<webhook URL>");
    }

    #[test]
    fn run_ids_differ_and_sort_by_time() {
        let a = new_run_id();
        let b = new_run_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 26);
    }
}
