//! Shared test harness: an in-process sandbox per test, the real binary, and the checks every
//! run must pass (accounting identity, no key anywhere), plus the small input builders and
//! readers several test files use (generated CSVs, gzip, `inspect --json`, a person's
//! attributes).
#![allow(dead_code)]

use base64::Engine;
use cio_import::sandbox::{Sandbox, SandboxConfig};
use cio_import::secret::{ApiKey, Credentials};
use serde_json::Value;
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

pub const SITE: &str = "site-under-test";
pub const KEY: &str = "k3y-SECRET-7f3a9c1e";

pub fn creds() -> Credentials {
    Credentials {
        site_id: SITE.into(),
        api_key: ApiKey::new(KEY),
    }
}

/// A sandbox on its own runtime, alive as long as this value.
pub struct Sb {
    pub sb: Sandbox,
    pub rt: tokio::runtime::Runtime,
}

impl Sb {
    pub fn url(&self) -> String {
        self.sb.url.clone()
    }
    pub fn people(&self) -> HashMap<String, cio_import::sandbox::Person> {
        self.sb
            .people()
            .into_iter()
            .map(|p| (p.identifier.clone(), p))
            .collect()
    }
    pub fn stats(&self) -> cio_import::sandbox::StatsSnapshot {
        self.sb.stats()
    }
    /// `cio-import import ARGS` in `dir` against this sandbox, no stdin: [`import`] with this
    /// sandbox's URL as the endpoint.
    pub fn import(&self, dir: &Path, args: &[&str]) -> Run {
        import(dir, Some(&self.url()), args, None)
    }
    /// One raw HTTP request to the sandbox: (status, retry-after, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        body: &str,
        auth: Option<(&str, &str)>,
    ) -> (u16, Option<String>, String) {
        let url = format!("{}{}", self.sb.url, path);
        self.rt.block_on(async move {
            let c = reqwest::Client::new();
            let mut rb = c
                .request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url)
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some((s, k)) = auth {
                rb = rb.basic_auth(s, Some(k));
            }
            match rb.send().await {
                Ok(r) => {
                    let st = r.status().as_u16();
                    let ra = r
                        .headers()
                        .get("retry-after")
                        .map(|v| v.to_str().unwrap().to_string());
                    (st, ra, r.text().await.unwrap_or_default())
                }
                Err(e) => (0, None, e.to_string()),
            }
        })
    }
}

/// Starts a sandbox requiring the test credentials (unless `cfg` names others).
pub fn sandbox(mut cfg: SandboxConfig) -> Sb {
    if cfg.credentials.is_none() {
        cfg.credentials = Some(creds());
    }
    sandbox_as_is(cfg)
}

/// Starts a sandbox with `cfg` untouched (no credentials = accepts any).
pub fn sandbox_as_is(cfg: SandboxConfig) -> Sb {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sb = rt
        .block_on(Sandbox::start(cfg, "127.0.0.1:0".parse().unwrap(), None))
        .unwrap();
    Sb { sb, rt }
}

pub fn plain() -> Sb {
    sandbox(SandboxConfig::plain())
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_cio-import")
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
    pub summary: Value,
    pub dir: PathBuf,
}

impl Run {
    pub fn n(&self, k: &str) -> u64 {
        self.summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("summary has no {k}: {}", self.summary))
    }
    /// The errors report as (row, line, identifier, class, status, attempts, message).
    pub fn errors(&self) -> Vec<HashMap<String, String>> {
        read_csv_maps(&self.dir.join("errors.csv"))
    }
    pub fn rejects_path(&self, ext: &str) -> PathBuf {
        self.dir.join(format!("rejects.{ext}"))
    }
}

pub fn read_csv_maps(path: &Path) -> Vec<HashMap<String, String>> {
    if !path.exists() {
        return Vec::new();
    }
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().clone();
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            headers
                .iter()
                .zip(rec.iter())
                .map(|(h, v)| (h.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

/// The secret in every form it could leak in.
pub fn secret_forms() -> Vec<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        KEY.to_string(),
        b64.encode(format!("{SITE}:{KEY}")),
        b64.encode(KEY),
    ]
}

pub fn assert_no_secret(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for s in secret_forms() {
        assert!(!text.contains(&s), "the API key (as {s}) appears in {what}");
    }
}

fn check_dir_for_secret(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            assert_no_secret(&p.display().to_string(), &std::fs::read(&p).unwrap());
        }
    }
}

/// Checks the summary's accounting identity.
pub fn assert_accounted(summary: &Value) {
    let g = |k: &str| summary[k].as_u64().unwrap();
    assert_eq!(
        g("rows"),
        g("sent")
            + g("skipped")
            + g("invalid")
            + g("rejected")
            + g("exhausted")
            + g("not_attempted"),
        "accounting identity broken: {summary}"
    );
    assert_eq!(summary["accounted"], Value::Bool(true));
}

/// Runs `cio-import import ...` in `dir` against `endpoint` with the test credentials, with
/// summary/rejects/errors under `dir`; checks accounting and secrets.
pub fn import(dir: &Path, endpoint: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> Run {
    import_env(dir, endpoint, args, stdin, &[])
}

pub fn import_env(
    dir: &Path,
    endpoint: Option<&str>,
    args: &[&str],
    stdin: Option<&[u8]>,
    env: &[(&str, &str)],
) -> Run {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .arg("import")
        .args(args)
        .args(["--summary", "summary.json", "--rejects"])
        .arg(
            if args
                .iter()
                .any(|a| a.ends_with(".jsonl") || a.ends_with(".jsonl.gz") || *a == "jsonl")
            {
                "rejects.jsonl"
            } else {
                "rejects.csv"
            },
        )
        .args(["--errors", "errors.csv", "-q"])
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .env_remove("RUST_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(e) = endpoint {
        cmd.args(["--endpoint", e]);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    for stale in ["summary.json", "errors.csv", "rejects.csv", "rejects.jsonl"] {
        let _ = std::fs::remove_file(dir.join(stale));
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(data) = stdin {
        let mut si = child.stdin.take().unwrap();
        si.write_all(data).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_no_secret("stdout", stdout.as_bytes());
    assert_no_secret("stderr", stderr.as_bytes());
    check_dir_for_secret(dir);
    let summary: Value = std::fs::read(dir.join("summary.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    if !summary.is_null() {
        assert_accounted(&summary);
        assert_eq!(
            summary["exit_code"].as_i64(),
            out.status.code().map(i64::from),
            "{stderr}"
        );
    }
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr,
        summary,
        dir: dir.to_path_buf(),
    }
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

pub fn write(dir: &Path, name: &str, content: impl AsRef<[u8]>) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}

/// The attributes of person `id` in `sb` as a JSON object; panics, naming who did arrive, if
/// `id` did not.
pub fn person(sb: &Sb, id: &str) -> Value {
    let p = sb
        .people()
        .get(id)
        .cloned()
        .unwrap_or_else(|| panic!("{id} did not arrive: {:?}", sb.people().keys()));
    Value::Object(p.attributes)
}

/// Attributes of a person as string pairs, for comparisons.
pub fn attrs(p: &cio_import::sandbox::Person) -> serde_json::Map<String, Value> {
    p.attributes.clone()
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Starts `cio-import sandbox --port 0 ARGS` with the test credentials; returns the process
/// and the base URL it printed first.
pub fn spawn_sandbox(args: &[&str]) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(bin())
        .args(["sandbox", "--port", "0"])
        .args(args)
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first)
        .unwrap();
    (child, first.trim().to_string())
}

/// `cio-import ARGS` in `dir` with no credentials in its environment (for dry runs, the
/// sandbox and usage errors); the caller adds stdio and runs it.
pub fn without_credentials(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .args(args)
        .env_remove("CUSTOMERIO_SITE_ID")
        .env_remove("CUSTOMERIO_TRACK_API_KEY");
    cmd
}

/// `cio-import import ARGS --endpoint URL` in `dir` with the test credentials, for tests that
/// spawn the importer themselves (to signal or kill it, or to feed its stdin).
pub fn import_command(dir: &Path, endpoint: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(bin());
    cmd.current_dir(dir)
        .arg("import")
        .args(args)
        .args(["--endpoint", endpoint])
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY);
    cmd
}

/// A CSV text: the `header` line, then `line(i)` for each `i` in `0..n`, each ending in `\n`.
pub fn numbered_csv(header: &str, n: usize, line: impl Fn(usize) -> String) -> String {
    let mut s = format!("{header}\n");
    for i in 0..n {
        s.push_str(&line(i));
        s.push('\n');
    }
    s
}

/// `n` plain rows `id,v`: identifiers `r0`, `r1`, ... with `v` the row number.
pub fn rows(n: usize) -> String {
    numbered_csv("id,v", n, |i| format!("r{i},{i}"))
}

/// `data` gzip-compressed (one member).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

/// `cio-import inspect ARGS --json` in `dir`: the report, after checking the command succeeded.
pub fn inspect_json(dir: &Path, args: &[&str]) -> Value {
    let out = Command::new(bin())
        .arg("inspect")
        .args(args)
        .arg("--json")
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "inspect {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Makes a named pipe at `path` (Unix), for tests of inputs that can be read only once.
#[cfg(unix)]
pub fn mkfifo(path: &Path) {
    let st = Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(st.success(), "mkfifo {}", path.display());
}

/// Writes `chunks` into the named pipe `path` from a thread: each chunk opens the pipe anew
/// (a new writer, as a producer that writes the file twice), so an importer that reads the
/// input twice sees the second chunk the second time.
#[cfg(unix)]
pub fn feed_fifo(path: &Path, chunks: Vec<String>) -> std::thread::JoinHandle<()> {
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        for c in chunks {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&path) {
                let _ = std::io::Write::write_all(&mut f, c.as_bytes());
            }
        }
    })
}

/// Runs `import ARGS --endpoint URL` in `dir` and waits for it at most 30 s (see
/// [`wait_or_kill`]): for inputs that may block, such as named pipes.
pub fn import_bounded(dir: &Path, endpoint: &str, args: &[&str]) -> std::process::Output {
    let child = import_command(dir, endpoint, args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    wait_or_kill(child, std::time::Duration::from_secs(30))
}

/// Waits for `child` at most `limit`; kills it and panics when it is still running then (a
/// hang is a failure, never a test that waits forever).
pub fn wait_or_kill(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> std::process::Output {
    let start = std::time::Instant::now();
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "still running after {limit:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
