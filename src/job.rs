//! `cio-import sync --config job.toml`: a whole import job in one file, for cron. The file
//! becomes the same command line `import` takes, so it is checked by the same rules.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// A job file. Paths are relative to the file's folder; credentials only by variable name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// The input file (or `-`).
    pub input: String,
    /// `csv` or `jsonl` (default: from the extension).
    pub format: Option<String>,
    /// CSV delimiter.
    pub delimiter: Option<String>,
    /// `id`, `email` or `cio_id`.
    pub identify_by: Option<String>,
    /// The identifier's column.
    pub id_column: Option<String>,
    /// `batch` or `v1`.
    pub api: Option<String>,
    /// The ledger file (delta sync and resume).
    pub state: Option<String>,
    /// Send everything and refresh the ledger.
    #[serde(default)]
    pub full: bool,
    /// Where the rejects, errors and summary files go, named after the job file
    /// (`nightly.toml` -> `nightly.rejects.csv`, `nightly.errors.csv`, `nightly.summary.json`),
    /// so that jobs sharing the folder keep apart. Default: next to the input, named after it.
    pub reports_dir: Option<String>,
    /// `us` or `eu`.
    pub region: Option<String>,
    /// Another base URL.
    pub endpoint: Option<String>,
    /// An extra root certificate.
    pub ca_cert: Option<String>,
    /// Requests per second.
    pub rate: Option<u32>,
    /// Pace at exactly `rate` (open loop).
    #[serde(default)]
    pub fixed_rate: bool,
    /// Seconds a request retries 429s while nothing is acknowledged.
    pub throttle_budget: Option<f64>,
    /// Requests in flight.
    pub concurrency: Option<usize>,
    /// Retries per request.
    pub max_retries: Option<usize>,
    /// Seconds per request.
    pub timeout: Option<f64>,
    /// A mapping file.
    pub mapping: Option<String>,
    /// A built-in mapping.
    pub preset: Option<String>,
    /// Keep only mapped columns.
    #[serde(default)]
    pub drop_unmapped: bool,
    /// Update existing people only.
    #[serde(default)]
    pub update_only: bool,
    /// `ignore` or `clear`.
    pub empty: Option<String>,
    /// Name of the variable holding the site id (default `CUSTOMERIO_SITE_ID`).
    pub site_id_env: Option<String>,
    /// Name of the variable holding the API key (default `CUSTOMERIO_TRACK_API_KEY`).
    pub api_key_env: Option<String>,
}

/// Reads a job file; errors name the file, line and key.
pub fn load(path: &Path) -> Result<Job, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

impl Job {
    /// The `import` arguments this job stands for, with paths resolved against the folder of
    /// `job_file`, and reports in `reports_dir` named after it.
    pub fn to_args(&self, job_file: &Path) -> Vec<String> {
        let base = job_file.parent().unwrap_or(Path::new("."));
        let resolve = |p: &str| -> String {
            if p == "-" || Path::new(p).is_absolute() {
                p.to_string()
            } else {
                base.join(p).display().to_string()
            }
        };
        let mut a = vec![
            "cio-import".to_string(),
            "import".to_string(),
            resolve(&self.input),
        ];
        let mut opt = |flag: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(format!("--{flag}"));
                a.push(v);
            }
        };
        opt("format", self.format.clone());
        opt("delimiter", self.delimiter.clone());
        opt("identify-by", self.identify_by.clone());
        opt("id-column", self.id_column.clone());
        opt("api", self.api.clone());
        opt("mapping", self.mapping.as_deref().map(resolve));
        opt("preset", self.preset.clone());
        opt("empty", self.empty.clone());
        opt("state", self.state.as_deref().map(resolve));
        opt("region", self.region.clone());
        opt("endpoint", self.endpoint.clone());
        opt("ca-cert", self.ca_cert.as_deref().map(resolve));
        opt("rate", self.rate.map(|v| v.to_string()));
        opt(
            "throttle-budget",
            self.throttle_budget.map(|v| v.to_string()),
        );
        opt("concurrency", self.concurrency.map(|v| v.to_string()));
        opt("max-retries", self.max_retries.map(|v| v.to_string()));
        opt("timeout", self.timeout.map(|v| v.to_string()));
        if let Some(dir) = &self.reports_dir {
            let dir = PathBuf::from(resolve(dir));
            let stem = crate::report::summary::input_stem(Some(job_file));
            let ext = match self.format.as_deref() {
                Some("jsonl") => "jsonl",
                Some(_) => "csv",
                None if self.input.contains(".jsonl") || self.input.contains(".ndjson") => "jsonl",
                None => "csv",
            };
            opt(
                "rejects",
                Some(
                    dir.join(format!("{stem}.rejects.{ext}"))
                        .display()
                        .to_string(),
                ),
            );
            opt(
                "errors",
                Some(dir.join(format!("{stem}.errors.csv")).display().to_string()),
            );
            opt(
                "summary",
                Some(
                    dir.join(format!("{stem}.summary.json"))
                        .display()
                        .to_string(),
                ),
            );
        }
        for (on, flag) in [
            (self.full, "--full"),
            (self.drop_unmapped, "--drop-unmapped"),
            (self.update_only, "--update-only"),
            (self.fixed_rate, "--fixed-rate"),
        ] {
            if on {
                a.push(flag.into());
            }
        }
        a.push("--quiet".into());
        a
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_becomes_an_import_command_line() {
        let job: Job = toml::from_str(
            "input = \"data/customers.csv\"\nstate = \"state.db\"\nreports_dir = \"/var/log/cio\"\nrate = 50\nfull = true\n",
        )
        .unwrap();
        let args = job.to_args(Path::new("/etc/cio/nightly.toml"));
        assert_eq!(
            &args[..3],
            ["cio-import", "import", "/etc/cio/data/customers.csv"]
        );
        let joined = args.join(" ");
        assert!(joined.contains("--state /etc/cio/state.db"), "{joined}");
        assert!(
            joined.contains("--rejects /var/log/cio/nightly.rejects.csv"),
            "{joined}"
        );
        assert!(
            joined.contains("--rate 50") && joined.contains("--full"),
            "{joined}"
        );
    }

    #[test]
    fn mistakes_name_the_line_and_key() {
        let e = toml::from_str::<Job>("input = \"x.csv\"\nrat = 5\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("rat") && e.contains("line 2"), "{e}");
    }
}
