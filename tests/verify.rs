//! `cio-import verify`: people read back through the App API (the sandbox's) and compared with
//! the file. Each of the three silent failures of the Track API (a stale `_timestamp`, an
//! update-only send to nobody, a value changed in the workspace afterwards) is named by row,
//! line and attribute; a type difference is told from a value difference; sampling is seeded;
//! the differing rows re-import; the App API key never shows; a 429 is paced and retried.

mod common;

use cio_import::sandbox::{AppApiConfig, SandboxConfig};
use cio_import::secret::ApiKey;
use common::*;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

const APP_KEY: &str = "app-k3y-SECRET-91b2c7";

/// A plain sandbox (no Track limit) whose App API requires [`APP_KEY`], at `app_limit` req/s.
fn sandbox_with_app(app_limit: u32) -> Sb {
    sandbox_failing_first(app_limit, 0)
}

/// The same, answering the first `fail_first` App API requests 503.
fn sandbox_failing_first(app_limit: u32, fail_first: u32) -> Sb {
    sandbox(SandboxConfig {
        app_api: AppApiConfig {
            key: Some(ApiKey::new(APP_KEY)),
            limit: app_limit,
            fail_first,
        },
        ..SandboxConfig::plain()
    })
}

struct Verified {
    code: i32,
    stderr: String,
    summary: Value,
}

impl Verified {
    fn n(&self, k: &str) -> u64 {
        self.summary[k]
            .as_u64()
            .unwrap_or_else(|| panic!("no {k} in {}: {}", self.summary, self.stderr))
    }
}

/// `cio-import verify ARGS --json` in `dir` against `sb`, with `key` as the App API key;
/// checks the key shows nowhere and every row and person is counted once.
fn verify_with(sb: &Sb, dir: &Path, args: &[&str], key: &str) -> Verified {
    let out = Command::new(bin())
        .current_dir(dir)
        .arg("verify")
        .args(args)
        .args(["--endpoint", &sb.url(), "--json"])
        .env("CUSTOMERIO_APP_API_KEY", key)
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    for (what, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(!text.contains(APP_KEY), "the App API key appears in {what}");
    }
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file() {
            let text = std::fs::read(&p).unwrap();
            assert!(
                !String::from_utf8_lossy(&text).contains(APP_KEY),
                "the App API key appears in {}",
                p.display()
            );
        }
    }
    let summary: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    if !summary.is_null() {
        let g = |k: &str| summary[k].as_u64().unwrap();
        assert_eq!(
            g("rows"),
            g("checked")
                + g("invalid")
                + g("superseded")
                + g("not_sampled")
                + g("not_in_last_run")
                + g("not_checked"),
            "rows not accounted for: {summary}"
        );
        assert_eq!(
            g("checked"),
            g("matching") + g("differing") + g("missing"),
            "{summary}"
        );
        assert_eq!(
            summary["exit_code"].as_i64(),
            out.status.code().map(i64::from)
        );
    }
    Verified {
        code: out.status.code().unwrap_or(-1),
        stderr,
        summary,
    }
}

fn verify(sb: &Sb, dir: &Path, args: &[&str]) -> Verified {
    verify_with(sb, dir, args, APP_KEY)
}

/// The differences file as maps.
fn differences(dir: &Path, input: &str) -> Vec<HashMap<String, String>> {
    read_csv_maps(&dir.join(format!("{input}.differences.csv")))
}

fn get<'a>(m: &'a HashMap<String, String>, k: &str) -> &'a str {
    m.get(k).map(String::as_str).unwrap_or("")
}

const PEOPLE: &str = "id,email,plan,age,created_at\n\
u1,a@x.io,pro,31,2024-01-02\n\
u2,b@x.io,free,40,\n\
u3,c@x.io,pro,22,2023-05-06T10:00:00Z\n";

#[test]
fn after_a_clean_import_everything_matches() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(sb.import(dir.path(), &["people.csv"]).code, 0);
    let v = verify(&sb, dir.path(), &["people.csv"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!((v.n("checked"), v.n("matching")), (3, 3));
    // email, plan, age, created_at of three people (u2 has no created_at).
    assert_eq!(v.n("attributes_compared"), 11);
    assert!(!dir.path().join("people.csv.differences.csv").exists());
    assert!(v.stderr.contains("matching"), "{}", v.stderr);
}

#[test]
fn a_stale_timestamp_dropped_by_customer_io_is_named() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(sb.import(dir.path(), &["people.csv"]).code, 0);
    // A historical update: older than what the workspace holds, answered 200, dropped.
    write(
        dir.path(),
        "late.csv",
        "id,plan,_timestamp\nu3,basic,1500000000\nu1,pro,1500000000\n",
    );
    let late = sb.import(dir.path(), &["late.csv"]);
    assert_eq!(
        (late.code, late.n("sent")),
        (0, 2),
        "the Track API said 200"
    );
    assert_eq!(sb.people()["u3"].attributes["plan"], "pro", "dropped");
    let v = verify(&sb, dir.path(), &["late.csv"]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert_eq!((v.n("differing"), v.n("matching")), (1, 1));
    let d = differences(dir.path(), "late.csv");
    assert_eq!(d.len(), 1, "{d:?}");
    let d = &d[0];
    assert_eq!(
        (get(d, "row"), get(d, "line"), get(d, "identifier")),
        ("1", "2", "u3")
    );
    assert_eq!(
        (get(d, "attribute"), get(d, "difference")),
        ("plan", "value")
    );
    assert_eq!(
        (get(d, "source_value"), get(d, "workspace_value")),
        ("\"basic\"", "\"pro\"")
    );
    assert!(
        get(d, "note").contains("_timestamp (1500000000) is older"),
        "{d:?}"
    );
    assert!(get(d, "workspace_updated_at").parse::<i64>().unwrap() > 1_500_000_000);
}

#[test]
fn an_update_only_send_to_someone_missing_is_named() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(sb.import(dir.path(), &["people.csv"]).code, 0);
    write(dir.path(), "upd.csv", "id,plan\nu2,pro\nghost,pro\n");
    let r = sb.import(dir.path(), &["upd.csv", "--update-only"]);
    assert_eq!(
        (r.code, r.n("sent")),
        (0, 2),
        "answered 200 for the ghost too"
    );
    let v = verify(&sb, dir.path(), &["upd.csv", "--update-only"]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert_eq!((v.n("missing"), v.n("matching")), (1, 1));
    let d = differences(dir.path(), "upd.csv");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (
            get(&d[0], "row"),
            get(&d[0], "line"),
            get(&d[0], "identifier"),
            get(&d[0], "difference")
        ),
        ("2", "3", "ghost", "missing_person")
    );
    assert!(get(&d[0], "note").contains("update-only"), "{d:?}");
}

#[test]
fn a_value_changed_in_the_workspace_is_named_and_the_differing_rows_re_import() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(sb.import(dir.path(), &["people.csv"]).code, 0);
    let (status, _, body) = sb.http(
        "POST",
        "/__sandbox/people/u2/attributes",
        r#"{"plan":"enterprise"}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v = verify(&sb, dir.path(), &["people.csv"]);
    assert_eq!(v.code, 2);
    assert_eq!((v.n("differing"), v.n("matching")), (1, 2));
    let d = differences(dir.path(), "people.csv");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (
            get(&d[0], "row"),
            get(&d[0], "line"),
            get(&d[0], "identifier"),
            get(&d[0], "attribute")
        ),
        ("2", "3", "u2", "plan")
    );
    assert_eq!(get(&d[0], "workspace_value"), "\"enterprise\"");
    // The differing rows, verbatim, with the input's header: a rejects file.
    let rejects = dir.path().join("people.csv.differing.csv");
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        "id,email,plan,age,created_at\nu2,b@x.io,free,40,\n"
    );
    assert_eq!(mode(&rejects) & 0o777, 0o600);
    assert_eq!(
        mode(&dir.path().join("people.csv.differences.csv")) & 0o777,
        0o600
    );
    let again = sb.import(dir.path(), &["people.csv.differing.csv"]);
    assert_eq!((again.code, again.n("sent")), (0, 1));
    let v = verify(&sb, dir.path(), &["people.csv"]);
    assert_eq!((v.code, v.n("matching")), (0, 3), "{}", v.stderr);
    assert!(
        !rejects.exists(),
        "a run without differences leaves no rejects"
    );
}

#[test]
fn a_string_against_a_number_is_a_type_difference() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "m.toml", "[columns.age]\ntype = \"integer\"\n");
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(
        sb.import(dir.path(), &["people.csv", "--mapping", "m.toml"])
            .code,
        0
    );
    assert_eq!(sb.people()["u1"].attributes["age"], 31);
    // With the same mapping, the typed column matches.
    let v = verify(&sb, dir.path(), &["people.csv", "--mapping", "m.toml"]);
    assert_eq!((v.code, v.n("matching")), (0, 3), "{}", v.stderr);
    // Without it, the file says "31" and the workspace holds 31: a type difference.
    let v = verify(&sb, dir.path(), &["people.csv"]);
    assert_eq!(v.code, 2);
    assert_eq!(v.summary["differences"]["type"], 3, "{}", v.summary);
    let d = differences(dir.path(), "people.csv");
    assert!(d
        .iter()
        .all(|l| get(l, "attribute") == "age" && get(l, "difference") == "type"));
    assert_eq!(
        (get(&d[0], "source_value"), get(&d[0], "workspace_value")),
        ("\"31\"", "31")
    );
}

/// The identifiers in the differences file, in order.
fn listed(dir: &Path) -> Vec<String> {
    differences(dir, "all.csv")
        .iter()
        .map(|l| get(l, "identifier").to_string())
        .collect()
}

#[test]
fn sampling_is_seeded_and_reproducible() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(
        dir.path(),
        "all.csv",
        numbered_csv("id,plan", 50, |i| format!("u{i},a")),
    );
    assert_eq!(sb.import(dir.path(), &["all.csv"]).code, 0);
    // Every row now differs from the workspace, so the differences list the sample.
    write(
        dir.path(),
        "all.csv",
        numbered_csv("id,plan", 50, |i| format!("u{i},b")),
    );
    let sample = |seed: &str| {
        let v = verify(
            &sb,
            dir.path(),
            &["all.csv", "--sample", "10", "--seed", seed],
        );
        assert_eq!(v.code, 2);
        assert_eq!((v.n("checked"), v.n("not_sampled")), (10, 40));
        assert!(v.stderr.contains(&format!("--seed {seed}")), "{}", v.stderr);
        listed(dir.path())
    };
    let first = sample("7");
    assert_eq!(first.len(), 10);
    assert_eq!(sample("7"), first, "the same seed checks the same people");
    assert_ne!(sample("8"), first, "another seed, another sample");
}

#[test]
fn people_are_read_back_100_at_a_time_and_a_429_is_paced_and_retried() {
    // The App API's limit at 2 requests a second; verify asks for 50: it must be told 429,
    // slow down, and retry until every person is read.
    let sb = sandbox_with_app(2);
    let dir = tempdir();
    write(
        dir.path(),
        "all.csv",
        numbered_csv("id,plan", 1000, |i| format!("u{i},a")),
    );
    assert_eq!(sb.import(dir.path(), &["all.csv"]).code, 0);
    let v = verify(&sb, dir.path(), &["all.csv", "--rate", "50"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!(v.n("matching"), 1000);
    let calls = &v.summary["calls"];
    assert!(calls["throttled"].as_u64().unwrap() > 0, "{calls}");
    assert_eq!(
        calls["requests"].as_u64().unwrap() - calls["throttled"].as_u64().unwrap(),
        10,
        "1000 people, 100 a request: {calls}"
    );
    let (_, _, stats) = sb.http("GET", "/__sandbox/app_api", "", None);
    let stats: Value = serde_json::from_str(&stats).unwrap();
    assert_eq!(stats["requests"], calls["requests"], "{stats}");
}

#[test]
fn a_wrong_app_api_key_stops_with_3_and_is_never_shown() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(sb.import(dir.path(), &["people.csv"]).code, 0);
    let wrong = "wrong-app-key-5e5e";
    let v = verify_with(&sb, dir.path(), &["people.csv"], wrong);
    assert_eq!(v.code, 3, "{}", v.stderr);
    assert!(v.stderr.contains("CUSTOMERIO_APP_API_KEY"), "{}", v.stderr);
    assert!(!v.stderr.contains(wrong) && !v.summary.to_string().contains(wrong));
    // Without a key at all: a usage error naming the variable.
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["verify", "people.csv", "--endpoint", &sb.url()])
        .env_remove("CUSTOMERIO_APP_API_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUSTOMERIO_APP_API_KEY"));
}

#[test]
fn with_state_only_the_people_the_last_run_sent_are_checked() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(
        sb.import(dir.path(), &["people.csv", "--state", "s.db"])
            .code,
        0
    );
    // The next run changes u2 only: the ledger's latest run recorded u2.
    let changed = PEOPLE.replace("u2,b@x.io,free", "u2,b@x.io,pro");
    write(dir.path(), "people.csv", &changed);
    let r = sb.import(dir.path(), &["people.csv", "--state", "s.db"]);
    assert_eq!((r.n("sent"), r.n("skipped")), (1, 2));
    let v = verify(&sb, dir.path(), &["people.csv", "--state", "s.db"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!((v.n("checked"), v.n("not_in_last_run")), (1, 2));
    assert!(v.summary["last_run"].as_i64().is_some());
    // Another workspace's ledger records: nothing to check is an error, not a success.
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args([
            "verify",
            "people.csv",
            "--state",
            "s.db",
            "--endpoint",
            &sb.url(),
        ])
        .env("CUSTOMERIO_APP_API_KEY", APP_KEY)
        .env("CUSTOMERIO_SITE_ID", "another-site")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("recorded anyone"));
}

#[test]
fn a_later_row_of_the_same_person_is_the_one_checked() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "dup.csv", "id,plan\nu1,a\nu2,a\nu1,b\n");
    assert_eq!(sb.import(dir.path(), &["dup.csv"]).code, 0);
    let v = verify(&sb, dir.path(), &["dup.csv"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!((v.n("checked"), v.n("superseded")), (2, 1));
}

#[test]
fn a_5xx_from_the_app_api_is_retried_and_retries_that_run_out_leave_people_unchecked() {
    let sb = sandbox_failing_first(0, 2);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(sb.import(dir.path(), &["people.csv"]).code, 0);
    let v = verify(&sb, dir.path(), &["people.csv", "--backoff-base-ms", "1"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!(v.summary["calls"]["retries"], 2, "{}", v.summary);
    assert_eq!(v.n("matching"), 3);
    // Two failures and no retry allowed: nobody is checked, and the run says so (exit 1).
    let sb = sandbox_failing_first(0, 2);
    assert_eq!(sb.import(dir.path(), &["people.csv"]).code, 0);
    let v = verify(
        &sb,
        dir.path(),
        &["people.csv", "--max-retries", "0", "--backoff-base-ms", "1"],
    );
    assert_eq!(v.code, 1, "{}", v.stderr);
    assert_eq!((v.n("not_checked"), v.n("checked")), (3, 0));
    assert!(
        v.summary["error"].as_str().unwrap().contains("503"),
        "{}",
        v.summary
    );
}

// ---- Red-team findings (fix16) -------------------------------------------------------------

/// A loopback HTTP/1.1 server answering every request with `answer` (a whole response, or
/// `None`: read the request and never answer). Returns its base URL and the requests seen.
fn stub_server(
    answer: Option<&'static str>,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::{AtomicUsize, Ordering};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(conn) = conn else { return };
            let counter = counter.clone();
            std::thread::spawn(move || {
                let mut out = conn.try_clone().unwrap();
                let mut r = BufReader::new(conn);
                loop {
                    let mut len = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let l = line.trim_end().to_ascii_lowercase();
                        if l.is_empty() {
                            break;
                        }
                        if let Some(v) = l.strip_prefix("content-length:") {
                            len = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0u8; len];
                    if r.read_exact(&mut body).is_err() {
                        return;
                    }
                    counter.fetch_add(1, Ordering::SeqCst);
                    match answer {
                        Some(a) => {
                            if out.write_all(a.as_bytes()).is_err() {
                                return;
                            }
                        }
                        None => std::thread::sleep(std::time::Duration::from_secs(3600)),
                    }
                }
            });
        }
    });
    (url, seen)
}

const ALWAYS_429: &str =
    "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n";
const ALWAYS_503: &str = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";

/// `cio-import verify ARGS --json` against `url` (not a sandbox), bounded to `limit`.
fn verify_at(
    url: &str,
    dir: &Path,
    args: &[&str],
    limit: u64,
) -> (i32, Value, String, std::time::Duration) {
    let start = std::time::Instant::now();
    let child = Command::new(bin())
        .current_dir(dir)
        .arg("verify")
        .args(args)
        .args(["--endpoint", url, "--json"])
        .env("CUSTOMERIO_APP_API_KEY", APP_KEY)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = wait_or_kill(child, std::time::Duration::from_secs(limit));
    let took = start.elapsed();
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (
        out.status.code().unwrap_or(-1),
        summary,
        String::from_utf8_lossy(&out.stderr).to_string(),
        took,
    )
}

/// Red-team finding 1: the differing rows of a windows-1252 input were written in UTF-8, and
/// their re-import wrote mojibake. They are written in the input's encoding.
#[test]
fn a_windows_1252_input_gets_its_differing_rows_in_windows_1252_and_they_re_import() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    // "Zoë" and "café" in windows-1252: ë = 0xEB, é = 0xE9.
    let bytes = b"id,name,plan\r\nu1,Zo\xEB,caf\xE9\r\nu2,Bob,free\r\n".to_vec();
    write(dir.path(), "p.csv", &bytes);
    let enc = ["--encoding", "windows-1252"];
    assert_eq!(sb.import(dir.path(), &["p.csv", enc[0], enc[1]]).code, 0);
    let (status, _, body) = sb.http(
        "POST",
        "/__sandbox/people/u1/attributes",
        r#"{"plan":"changed"}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v = verify(&sb, dir.path(), &["p.csv", enc[0], enc[1]]);
    assert_eq!((v.code, v.n("differing")), (2, 1), "{}", v.stderr);
    let differing = std::fs::read(dir.path().join("p.csv.differing.csv")).unwrap();
    assert!(
        differing.windows(3).any(|w| w == b"Zo\xEB"),
        "not windows-1252: {:?}",
        String::from_utf8_lossy(&differing)
    );
    assert!(
        !differing.windows(2).any(|w| w == "ë".as_bytes()),
        "UTF-8 in a windows-1252 file"
    );
    let again = sb.import(dir.path(), &["p.csv.differing.csv", enc[0], enc[1]]);
    assert_eq!((again.code, again.n("sent")), (0, 1));
    let p = person(&sb, "u1");
    assert_eq!(p["name"], "Zoë", "{p}");
    assert_eq!(p["plan"], "café", "{p}");
}

/// Red-team finding 2: `--rejects`/`--differences` could name the `--state` ledger, and the
/// check that a report can be written emptied it. They are refused before anything is touched.
#[test]
fn verify_outputs_can_never_be_the_state_ledger_or_the_input_or_each_other() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(
        sb.import(dir.path(), &["people.csv", "--state", "s.db"])
            .code,
        0
    );
    let ledger = std::fs::read(dir.path().join("s.db")).unwrap();
    assert!(!ledger.is_empty());
    for (args, says) in [
        (
            vec!["--rejects", "s.db"],
            "--rejects s.db: that is the --state file",
        ),
        (
            vec!["--differences", "s.db"],
            "--differences s.db: that is the --state file",
        ),
        (
            vec!["--differences", "s.db-wal"],
            "--state file's own files",
        ),
        (
            vec!["--rejects", "people.csv"],
            "that is the file being read",
        ),
        (
            vec!["--rejects", "x.csv", "--differences", "x.csv"],
            "that is also the rejects file",
        ),
    ] {
        let mut all = vec!["people.csv", "--state", "s.db"];
        all.extend(args.iter().copied());
        let v = verify(&sb, dir.path(), &all);
        assert_eq!(v.code, 1, "{args:?}: {}", v.stderr);
        assert!(v.stderr.contains(says), "{args:?}: {}", v.stderr);
        assert_eq!(std::fs::read(dir.path().join("s.db")).unwrap(), ledger);
        assert_eq!(
            std::fs::read_to_string(dir.path().join("people.csv")).unwrap(),
            PEOPLE
        );
    }
}

/// Red-team finding 3: `cio-import sandbox` took its App API key from CUSTOMERIO_APP_API_KEY
/// (a real key) and printed it. It has its own fixed fake key; the variable's is neither
/// used nor printed, nor is the Track key.
#[test]
fn the_sandbox_never_takes_nor_prints_the_real_app_api_key() {
    use std::io::{BufRead, BufReader};
    let real = "real-APP-key-5ecret-0a1b";
    let mut child = Command::new(bin())
        .args(["sandbox", "--port", "0"])
        .env("CUSTOMERIO_APP_API_KEY", real)
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut url = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut url)
        .unwrap();
    let url = url.trim().to_string();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut start = String::new();
    while !start.contains("App API") {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap() == 0 {
            break;
        }
        start.push_str(&line);
    }
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    // The real key is refused; the printed sandbox key is the one that works.
    let code_real = Command::new(bin())
        .current_dir(dir.path())
        .args(["verify", "people.csv", "--endpoint", &url])
        .env("CUSTOMERIO_APP_API_KEY", real)
        .output()
        .unwrap()
        .status
        .code();
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["verify", "people.csv", "--endpoint", &url])
        .env("CUSTOMERIO_APP_API_KEY", "sandbox-app-key")
        .output()
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(start.contains("sandbox-app-key"), "{start}");
    assert!(
        !start.contains(real),
        "the real App API key was printed: {start}"
    );
    assert!(
        !start.contains(KEY),
        "the Track API key was printed: {start}"
    );
    assert_eq!(
        code_real,
        Some(3),
        "the sandbox took the real key from the environment"
    );
    // Nobody was imported: everyone is missing (2), but the key was accepted.
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Red-team finding 4: emails that differ only in case are one person to Customer.io. The last
/// row is checked, the earlier one superseded, and the differing file holds only the last.
#[test]
fn emails_that_differ_only_in_case_are_one_person_and_the_last_row_is_checked() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(
        dir.path(),
        "e.csv",
        "email,plan\nAnn@x.io,free\nbob@x.io,pro\nann@x.io,pro\n",
    );
    let by = ["--identify-by", "email"];
    assert_eq!(sb.import(dir.path(), &["e.csv", by[0], by[1]]).code, 0);
    let v = verify(&sb, dir.path(), &["e.csv", by[0], by[1]]);
    assert_eq!(
        (v.n("checked"), v.n("superseded"), v.n("missing")),
        (2, 1, 0),
        "{}",
        v.stderr
    );
    // Whatever the workspace holds for Ann now, only her last row can be re-imported.
    let (status, _, body) = sb.http(
        "POST",
        "/__sandbox/people/ann@x.io/attributes?kind=email",
        r#"{"plan":"enterprise"}"#,
        None,
    );
    assert_eq!(status, 200, "{body}");
    let v = verify(&sb, dir.path(), &["e.csv", by[0], by[1]]);
    assert_eq!((v.code, v.n("differing")), (2, 1), "{}", v.stderr);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("e.csv.differing.csv")).unwrap(),
        "email,plan\nann@x.io,pro\n"
    );
}

/// Red-team finding 5: verify compared v1 bodies, so a row the batch import refused (an
/// operation over 32,000 bytes) was blamed as missing. It is counted as invalid, as the
/// import counted it, and never goes to the differing file; `--api v1` checks it.
#[test]
fn rows_invalid_for_the_import_api_are_invalid_not_missing() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    let cols: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
    let big = "x".repeat(900);
    let wide: Vec<&str> = (0..40).map(|_| big.as_str()).collect();
    let text = format!(
        "id,{}\nu1,{}\nu2,{}\n",
        cols.join(","),
        wide.join(","),
        vec!["a"; 40].join(",")
    );
    write(dir.path(), "wide.csv", &text);
    let r = sb.import(dir.path(), &["wide.csv"]);
    assert_eq!((r.n("sent"), r.n("invalid")), (1, 1));
    let v = verify(&sb, dir.path(), &["wide.csv"]);
    assert_eq!(v.code, 0, "{}", v.stderr);
    assert_eq!(
        (v.n("checked"), v.n("invalid"), v.n("missing")),
        (1, 1, 0),
        "{}",
        v.summary
    );
    assert!(!dir.path().join("wide.csv.differing.csv").exists());
    // Under v1 the row is valid: the import would have sent it, so verify checks it.
    let v = verify(&sb, dir.path(), &["wide.csv", "--api", "v1"]);
    assert_eq!(
        (v.code, v.n("missing"), v.n("invalid")),
        (2, 1, 0),
        "{}",
        v.stderr
    );
}

/// Red-team finding 6: a pipe given as a path was read twice (the second pass saw nothing).
/// A named pipe, `<(...)` or a device is refused with a message that says why.
#[cfg(unix)]
#[test]
fn a_pipe_given_as_a_path_is_refused() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    let fifo = dir.path().join("people.csv");
    mkfifo(&fifo);
    // Bounded: opening a pipe nobody writes to would block.
    for input in ["people.csv", "/dev/null"] {
        let (code, _, err, _) = verify_at(&sb.url(), dir.path(), &[input, "--format", "csv"], 30);
        assert_eq!(code, 1, "{input}: {err}");
        assert!(err.contains("not a regular file"), "{input}: {err}");
    }
}

/// Red-team finding 7: Ctrl-C did not interrupt an App API request that stalls (up to
/// `--timeout`). The stop wins at once, and the interrupted request is not a retry.
#[cfg(unix)]
#[test]
fn ctrl_c_interrupts_a_stalled_app_api_request() {
    use std::sync::atomic::Ordering;
    let (url, seen) = stub_server(None);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    let child = Command::new(bin())
        .current_dir(dir.path())
        .args([
            "verify",
            "people.csv",
            "--endpoint",
            &url,
            "--json",
            "--timeout",
            "120",
        ])
        .env("CUSTOMERIO_APP_API_KEY", APP_KEY)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waited = std::time::Instant::now();
    while seen.load(Ordering::SeqCst) == 0 {
        assert!(waited.elapsed().as_secs() < 30, "no request arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let signalled = std::time::Instant::now();
    let st = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = wait_or_kill(child, std::time::Duration::from_secs(20));
    let took = signalled.elapsed();
    assert!(took.as_secs() < 5, "took {took:?} after Ctrl-C");
    assert_eq!(out.status.code(), Some(130));
    let s: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(s["calls"]["retries"], 0, "{s}");
    assert_eq!(
        (s["not_checked"].as_u64(), s["rows"].as_u64()),
        (Some(3), Some(3)),
        "{s}"
    );
}

/// Red-team finding 8 (verify): a server that always answers 429 + `Retry-After: 1` was retried
/// forever. The budget is spent by repeated holds: the people are left not checked.
#[test]
fn verify_gives_up_on_endless_429s_with_retry_after_within_the_budget() {
    let (url, _) = stub_server(Some(ALWAYS_429));
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    let (code, s, err, took) = verify_at(
        &url,
        dir.path(),
        &["people.csv", "--throttle-budget", "3"],
        60,
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(s["not_checked"], 3, "{s}");
    assert!(took.as_secs() < 15, "took {took:?}");
    assert!(s["error"].as_str().unwrap().contains("429"), "{s}");
}

/// Red-team finding 8 (import): the same endless 429 + `Retry-After: 1` held every row
/// forever. With `--throttle-budget 3` the rows are `exhausted` within a few seconds, and
/// every row is accounted for.
#[test]
fn import_gives_up_on_endless_429s_with_retry_after_within_the_budget() {
    let (url, _) = stub_server(Some(ALWAYS_429));
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    for api in ["batch", "v1"] {
        let start = std::time::Instant::now();
        let child = import_command(
            dir.path(),
            &url,
            &[
                "people.csv",
                "--throttle-budget",
                "3",
                "--api",
                api,
                "--summary",
                "s.json",
                "-q",
            ],
        )
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
        let out = wait_or_kill(child, std::time::Duration::from_secs(60));
        let took = start.elapsed();
        assert!(took.as_secs() < 15, "{api}: took {took:?}");
        let s: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).unwrap())
                .unwrap();
        assert_accounted(&s);
        assert_eq!(s["rows"], 3, "{s}");
        assert_eq!(s["exhausted"], 3, "{api}: {s}");
        assert_ne!(out.status.code(), Some(0));
    }
}

/// A total App API outage cost every chunk its retries (about 56 s per 100 people): after
/// three chunks in a row fail the run stops, and the rest are counted as not checked.
#[test]
fn a_total_outage_stops_after_a_few_chunks_and_leaves_the_rest_unchecked() {
    let (url, seen) = stub_server(Some(ALWAYS_503));
    let dir = tempdir();
    write(dir.path(), "many.csv", rows(450));
    let (code, s, err, _) = verify_at(
        &url,
        dir.path(),
        &[
            "many.csv",
            "--max-retries",
            "1",
            "--backoff-base-ms",
            "1",
            "--backoff-cap-ms",
            "5",
        ],
        60,
    );
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        (s["rows"].as_u64(), s["not_checked"].as_u64()),
        (Some(450), Some(450)),
        "{s}"
    );
    // Three chunks of 100, two attempts each; the last two chunks are not asked for.
    assert_eq!(seen.load(std::sync::atomic::Ordering::SeqCst), 6, "{s}");
    assert!(s["error"].as_str().unwrap().contains("in a row"), "{s}");
}

#[test]
fn sample_zero_is_a_usage_error() {
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    let v = verify(&sb, dir.path(), &["people.csv", "--sample", "0"]);
    assert_eq!(v.code, 1, "{}", v.stderr);
    assert!(v.stderr.contains("--sample 0"), "{}", v.stderr);
}

/// `--state` after a run that failed rows: those people are named as failed in that run
/// (exit 2), not a clean 0; and a later run that recorded nobody (update-only) is the run
/// checked: an error naming it, never an older run's people checked silently.
#[test]
fn state_names_the_rows_the_last_run_failed_and_never_falls_back_to_an_older_run() {
    let sb = sandbox(SandboxConfig {
        app_api: AppApiConfig {
            key: Some(ApiKey::new(APP_KEY)),
            limit: 0,
            fail_first: 0,
        },
        reject_ids: vec!["u3".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    let r = sb.import(dir.path(), &["people.csv", "--state", "s.db"]);
    assert_eq!((r.n("sent"), r.n("rejected")), (2, 1));
    let v = verify(&sb, dir.path(), &["people.csv", "--state", "s.db"]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert_eq!(
        (v.n("checked"), v.n("matching"), v.n("failed_in_last_run")),
        (2, 2, 1),
        "{}",
        v.summary
    );
    let d = differences(dir.path(), "people.csv");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (
            get(&d[0], "identifier"),
            get(&d[0], "difference"),
            get(&d[0], "row")
        ),
        ("u3", "failed_in_run", "3")
    );
    assert!(v.stderr.contains("rows failed in run 1"), "{}", v.stderr);
    // An update-only run records nobody: verify --state says so, naming that run.
    let sb = sandbox_with_app(0);
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    assert_eq!(
        sb.import(dir.path(), &["people.csv", "--state", "s.db"])
            .code,
        0
    );
    let r = sb.import(
        dir.path(),
        &["people.csv", "--state", "s.db", "--update-only", "--full"],
    );
    assert_eq!(r.code, 0);
    let v = verify(&sb, dir.path(), &["people.csv", "--state", "s.db"]);
    assert_eq!(v.code, 1, "{}", v.stderr);
    assert!(v.stderr.contains("recorded nobody"), "{}", v.stderr);
    assert!(v.stderr.contains("(run 2)"), "{}", v.stderr);
}

/// `--state` after a run whose send of a known person failed: the person's record stays with
/// its hash cleared and that run's number, but the run recorded nothing of them: they are
/// named once, as failed in that run, never checked as recorded.
#[test]
fn state_never_checks_a_person_whose_send_failed_as_recorded() {
    let sb = sandbox(SandboxConfig {
        app_api: AppApiConfig {
            key: Some(ApiKey::new(APP_KEY)),
            limit: 0,
            fail_first: 0,
        },
        reject_ids: vec!["u3".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    let r = sb.import(dir.path(), &["people.csv", "--state", "s.db"]);
    assert_eq!((r.n("sent"), r.n("rejected")), (2, 1));
    // As if u3 had been acknowledged before, with other values.
    let st = dir.path().join("s.db");
    rusqlite::Connection::open(&st)
        .unwrap()
        .execute(
            "INSERT INTO people (dest, kind, identifier, hash, acked_at, run_id, feed) SELECT dest, kind, 'u3', hash, acked_at, run_id, feed FROM people WHERE identifier = 'u1'",
            [],
        )
        .unwrap();
    // Night 2: u2 changes (sent, recorded); u3's send fails again.
    write(
        dir.path(),
        "people.csv",
        PEOPLE.replace("free,40", "pro,41"),
    );
    let r = sb.import(dir.path(), &["people.csv", "--state", "s.db"]);
    assert_eq!((r.n("sent"), r.n("rejected")), (1, 1), "{}", r.stderr);
    let held: i64 = rusqlite::Connection::open(&st)
        .unwrap()
        .query_row(
            "SELECT count(*) FROM people WHERE identifier = 'u3' AND run_id = 2 AND length(hash) = 0",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(held, 1, "u3's record is kept with its hash cleared");
    let v = verify(&sb, dir.path(), &["people.csv", "--state", "s.db"]);
    assert_eq!(v.code, 2, "{}", v.stderr);
    assert_eq!(
        (v.n("checked"), v.n("matching"), v.n("failed_in_last_run")),
        (1, 1, 1),
        "{}",
        v.summary
    );
    let d = differences(dir.path(), "people.csv");
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(
        (get(&d[0], "identifier"), get(&d[0], "difference")),
        ("u3", "failed_in_run")
    );
}
