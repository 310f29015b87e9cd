//! Run records, logs, the ledger's run history and alerts (issue 14): the summary's run
//! record (run id, times, version, input hash, destination, options; never the key),
//! `--log-format json`, `state --json` and `--runs N`, and `--notify` against a loopback
//! receiver that answers, is down, or hangs.

mod common;

use common::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The secret part of the webhook URLs the tests use: it must never be printed.
const HOOK_SECRET: &str = "T0000/B0000/hooksecretXYZ123";

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn time(v: &Value) -> chrono::DateTime<chrono::FixedOffset> {
    let s = v.as_str().unwrap_or_else(|| panic!("not a time: {v}"));
    assert!(s.ends_with('Z'), "not UTC: {s}");
    chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

/// How the loopback webhook receiver behaves.
#[derive(Clone, Copy, PartialEq)]
enum Receiver {
    /// Answers 200 to every POST.
    Answers,
    /// Accepts connections and never answers.
    Hangs,
}

/// A webhook receiver on loopback: the JSON bodies it received, and how many connections.
struct Hook {
    url: String,
    bodies: Arc<Mutex<Vec<Value>>>,
    connections: Arc<Mutex<usize>>,
}

impl Hook {
    fn start(how: Receiver) -> Hook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!(
            "http://{}/services/{HOOK_SECRET}",
            listener.local_addr().unwrap()
        );
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let connections = Arc::new(Mutex::new(0));
        let (b, c) = (bodies.clone(), connections.clone());
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                *c.lock().unwrap() += 1;
                if how == Receiver::Hangs {
                    held.push(stream);
                    continue;
                }
                if let Some(body) = read_request(&stream) {
                    b.lock().unwrap().push(body);
                }
                let mut s = stream;
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                );
            }
        });
        Hook {
            url,
            bodies,
            connections,
        }
    }

    /// A URL where nothing listens.
    fn down() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        format!("http://{addr}/services/{HOOK_SECRET}")
    }

    fn received(&self) -> Vec<Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// One HTTP/1.1 request's JSON body.
fn read_request(stream: &TcpStream) -> Option<Value> {
    let mut r = BufReader::new(stream);
    let mut len = 0usize;
    let mut first = String::new();
    r.read_line(&mut first).ok()?;
    assert!(first.starts_with("POST "), "{first}");
    loop {
        let mut line = String::new();
        r.read_line(&mut line).ok()?;
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some(v) = l.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().ok()?;
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    serde_json::from_slice(&body).ok()
}

/// Ten rows, the one at `bad` (if any) without an identifier (invalid).
fn ten_rows(dir: &Path, bad: &[usize]) {
    write(
        dir,
        "p.csv",
        numbered_csv("id,v", 10, |i| {
            if bad.contains(&i) {
                format!(",{i}")
            } else {
                format!("r{i},{i}")
            }
        }),
    );
}

fn assert_not_printed(what: &str, text: &str) {
    assert!(
        !text.contains(HOOK_SECRET) && !text.contains("hooksecret"),
        "the webhook URL's secret appears in {what}: {text}"
    );
}

#[test]
fn the_summary_carries_the_run_record_and_never_the_key() {
    let sb = plain();
    let dir = tempdir();
    ten_rows(dir.path(), &[]);
    let bytes = std::fs::read(dir.path().join("p.csv")).unwrap();
    let a = sb.import(dir.path(), &["p.csv", "--state", "s.db", "--rate", "50"]);
    let b = sb.import(dir.path(), &["p.csv", "--state", "s.db", "--rate", "50"]);
    assert_eq!((a.code, b.code), (0, 0), "{}", a.stderr);
    let (s, t) = (&a.summary, &b.summary);
    // Run ids: ULIDs, different per run.
    let (ia, ib) = (s["run_id"].as_str().unwrap(), t["run_id"].as_str().unwrap());
    assert_eq!(ia.len(), 26);
    assert_ne!(ia, ib);
    // Times: RFC 3339 UTC, ordered within a run and across runs.
    assert!(time(&s["started_at"]) <= time(&s["finished_at"]));
    assert!(time(&s["finished_at"]) <= time(&t["started_at"]));
    assert_eq!(s["version"], env!("CARGO_PKG_VERSION"));
    // The input: its hash, computed while it was read, is the file's.
    let f = &s["input_file"];
    assert_eq!(f["path"], "p.csv");
    assert_eq!(f["size"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(f["bytes_read"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(f["sha256"].as_str(), Some(sha256_hex(&bytes).as_str()));
    // The destination (site id and host, never the key) and the options.
    let d = &s["destination"];
    assert_eq!(d["site_id"], SITE);
    assert!(d["host"].as_str().unwrap().starts_with("127.0.0.1:"), "{d}");
    assert_eq!(d["region"], Value::Null);
    let o = &s["options"];
    assert_eq!(
        (&o["api"], &o["kind"], &o["action"], &o["rate"], &o["state"]),
        (
            &Value::from("batch"),
            &Value::from("people"),
            &Value::from("identify"),
            &Value::from(50),
            &Value::from("s.db")
        )
    );
    assert_eq!(o["empty"], "ignore");
    assert_eq!(o["update_only"], false);
    // The existing fields are still there, unchanged.
    for k in [
        "input",
        "api",
        "rows",
        "sent",
        "skipped",
        "outcome",
        "exit_code",
    ] {
        assert!(!s[k].is_null(), "{k} missing: {s}");
    }
    assert_eq!((a.n("sent"), b.n("skipped")), (10, 10));
    // (`import` checked that the key is nowhere in stdout, stderr or any file of the folder.)
    let text = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert_no_secret("summary.json", text.as_bytes());
}

#[test]
fn a_gzip_file_and_stdin_are_hashed_as_read() {
    let sb = plain();
    let dir = tempdir();
    let csv = rows(500);
    let gz = gzip(csv.as_bytes());
    write(dir.path(), "p.csv.gz", &gz);
    let run = sb.import(dir.path(), &["p.csv.gz"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let f = &run.summary["input_file"];
    assert_eq!(f["sha256"].as_str(), Some(sha256_hex(&gz).as_str()));
    assert_eq!(f["size"].as_u64(), Some(gz.len() as u64));
    // Stdin: no path nor size; the bytes read and their hash.
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["-", "--format", "csv"],
        Some(csv.as_bytes()),
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let f = &run.summary["input_file"];
    assert_eq!(
        (&f["path"], &f["stdin"]),
        (&Value::Null, &Value::Bool(true))
    );
    assert_eq!(f["bytes_read"].as_u64(), Some(csv.len() as u64));
    assert_eq!(f["read_to_end"], true);
    assert_eq!(
        f["sha256"].as_str(),
        Some(sha256_hex(csv.as_bytes()).as_str())
    );
}

#[test]
fn json_logs_are_one_object_per_line_with_a_timestamp() {
    let sb = plain();
    let dir = tempdir();
    ten_rows(dir.path(), &[3]);
    let run = sb.import(dir.path(), &["p.csv", "--log-format", "json"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let run_id = run.summary["run_id"].as_str().unwrap();
    let lines: Vec<Value> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 2, "{}", run.stderr);
    for l in &lines {
        time(&l["timestamp"]);
        assert!(l["level"].is_string() && l["message"].is_string(), "{l}");
    }
    let end = lines
        .iter()
        .find(|l| l["outcome"].is_string())
        .expect("an end line");
    assert_eq!(end["run_id"], run_id);
    assert_eq!(
        (end["rows"].as_u64(), end["failed"].as_u64()),
        (Some(10), Some(1))
    );
    assert_eq!(end["exit_code"].as_u64(), Some(2));
    // Text logs: each log line starts with its time, and the start line names the run.
    let run = sb.import(dir.path(), &["p.csv"]);
    let started = run
        .stderr
        .lines()
        .find(|l| l.contains("started: cio-import"))
        .unwrap_or_else(|| panic!("{}", run.stderr));
    let stamp = started.split_whitespace().next().unwrap();
    time(&Value::from(stamp));
    assert!(started.contains(run.summary["run_id"].as_str().unwrap()));
}

fn state(dir: &Path, args: &[&str]) -> (String, bool) {
    let out = Command::new(bin())
        .current_dir(dir)
        .arg("state")
        .args(args)
        .output()
        .unwrap();
    (
        String::from_utf8_lossy(&out.stdout).to_string(),
        out.status.success(),
    )
}

#[test]
fn state_shows_the_history_of_the_last_runs_and_their_failures() {
    let sb = plain();
    let dir = tempdir();
    let mut ids = Vec::new();
    // Run 1: r3 fails; run 2: r3 and r7 fail; run 3: none fails.
    for bad in [&[3][..], &[3, 7][..], &[][..]] {
        ten_rows(dir.path(), bad);
        let run = sb.import(dir.path(), &["p.csv", "--state", "s.db"]);
        ids.push(run.summary["run_id"].as_str().unwrap().to_string());
    }
    let (json, ok) = state(dir.path(), &["s.db", "--json"]);
    assert!(ok, "{json}");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["runs_total"], 3);
    let runs = v["runs"].as_array().unwrap();
    let got: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(got, [&ids[2], &ids[1], &ids[0]], "newest first");
    let trend: Vec<(u64, u64, u64, u64, u64)> = runs
        .iter()
        .map(|r| {
            let g = |k: &str| r[k].as_u64().unwrap();
            (
                g("rows"),
                g("sent"),
                g("skipped"),
                g("failed"),
                g("exit_code"),
            )
        })
        .collect();
    // The failed rows are identifier-less (invalid): never acknowledged, never skipped.
    assert_eq!(
        trend,
        [(10, 1, 9, 0, 0), (10, 0, 8, 2, 2), (10, 9, 0, 1, 2)],
        "{json}"
    );
    let failed_lines: Vec<Vec<u64>> = runs
        .iter()
        .map(|r| {
            r["failures"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["line"].as_u64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(failed_lines, [vec![], vec![5, 9], vec![5]]);
    // Each run's summary is the one written by --summary (same run record fields).
    assert_eq!(runs[0]["summary"]["run_id"], ids[2].as_str());
    assert_eq!(runs[0]["summary"]["destination"]["site_id"], SITE);
    assert!(runs[0]["summary"]["input_file"]["sha256"].is_string());
    // The text: the trend table and the failures of every run shown, not only the last.
    let (text, ok) = state(dir.path(), &["s.db"]);
    assert!(ok, "{text}");
    for id in &ids {
        assert!(text.contains(id.as_str()), "{text}");
    }
    assert!(
        text.contains(&format!("rows that failed in run {} (#2): 2", ids[1])),
        "{text}"
    );
    assert!(
        text.contains(&format!("rows that failed in run {} (#1): 1", ids[0])),
        "{text}"
    );
    // --runs 1: the last run only.
    let (text, _) = state(dir.path(), &["s.db", "--runs", "1"]);
    assert!(
        text.contains("last 1 of 3 runs") && !text.contains(ids[1].as_str()),
        "{text}"
    );
    let (json, _) = state(dir.path(), &["s.db", "--json", "--runs", "2"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["runs"].as_array().unwrap().len(), 2);
}

#[test]
fn a_person_failing_run_after_run_is_named() {
    let sb = plain();
    let dir = tempdir();
    // Rows refused every night: an attribute name longer than the API takes (invalid).
    let long = "a".repeat(200);
    write(dir.path(), "p.csv", format!("id,{long}\nr1,x\nr2,y\n"));
    for _ in 0..2 {
        let run = sb.import(dir.path(), &["p.csv", "--state", "s.db"]);
        assert_eq!(run.code, 2, "{}", run.stderr);
    }
    let (text, _) = state(dir.path(), &["s.db"]);
    assert!(text.contains("failing again and again:"), "{text}");
    assert!(text.contains("r1 failed in 2 of these runs"), "{text}");
}

#[test]
fn a_ledger_of_an_older_version_is_migrated() {
    let sb = plain();
    let dir = tempdir();
    ten_rows(dir.path(), &[]);
    let first = sb.import(dir.path(), &["p.csv", "--state", "s.db"]);
    assert_eq!(first.code, 0);
    // Make it an older ledger: runs without run ids.
    {
        let c = rusqlite::Connection::open(dir.path().join("s.db")).unwrap();
        c.execute_batch("ALTER TABLE runs DROP COLUMN run_uid; ALTER TABLE runs DROP COLUMN record; UPDATE runs SET summary = json_remove(summary, '$.run_id')")
            .unwrap();
    }
    let (text, ok) = state(dir.path(), &["s.db"]);
    assert!(ok && text.contains("#1 "), "{text}");
    let second = sb.import(dir.path(), &["p.csv", "--state", "s.db"]);
    assert_eq!(
        (second.code, second.n("skipped")),
        (0, 10),
        "{}",
        second.stderr
    );
    let (json, ok) = state(dir.path(), &["s.db", "--json"]);
    assert!(ok, "{json}");
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["runs"][0]["run_id"], second.summary["run_id"]);
    assert_eq!(v["runs"][1]["run_id"], Value::Null);
    assert_eq!(v["runs"][1]["number"], 1);
}

#[test]
fn an_alert_is_sent_when_rows_fail_and_names_the_run() {
    let sb = plain();
    let hook = Hook::start(Receiver::Answers);
    let dir = tempdir();
    ten_rows(dir.path(), &[4]);
    let run = sb.import(dir.path(), &["p.csv", "--notify", &hook.url]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0]["text"].as_str().unwrap();
    let run_id = run.summary["run_id"].as_str().unwrap();
    assert!(text.lines().count() <= 3, "{text}");
    assert!(
        text.contains("failed rows") && text.contains("p.csv"),
        "{text}"
    );
    assert!(text.contains(run_id) && text.contains("1 failed"), "{text}");
    assert_eq!(got[0]["summary"]["run_id"], run_id);
    assert_eq!(got[0]["summary"]["invalid"], 1);
    // The URL is shown redacted, in the log and the summary.
    assert!(
        run.stderr.contains("alert sent to http://127.0.0.1:"),
        "{}",
        run.stderr
    );
    assert_not_printed("stderr", &run.stderr);
    let summary = std::fs::read_to_string(dir.path().join("summary.json")).unwrap();
    assert_not_printed("summary.json", &summary);
    assert_not_printed("the alert", &got[0].to_string());
    assert!(run.summary["options"]["notify"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:"));
}

#[test]
fn no_alert_for_a_run_that_succeeded_unless_always() {
    let sb = plain();
    let hook = Hook::start(Receiver::Answers);
    let dir = tempdir();
    ten_rows(dir.path(), &[]);
    let run = sb.import(dir.path(), &["p.csv", "--notify", &hook.url]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(hook.received().len(), 0);
    assert_eq!(*hook.connections.lock().unwrap(), 0);
    let run = sb.import(
        dir.path(),
        &["p.csv", "--notify", &hook.url, "--notify-on", "always"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert!(got[0]["text"]
        .as_str()
        .unwrap()
        .starts_with("cio-import completed: p.csv"));
}

#[test]
fn the_threshold_tolerates_some_failed_rows() {
    let sb = plain();
    let hook = Hook::start(Receiver::Answers);
    let dir = tempdir();
    ten_rows(dir.path(), &[2]);
    // 1 failed row of 10 (10%): the exit code says so whatever the threshold.
    for (threshold, alerts) in [("1", 0), ("0", 1), ("20%", 1), ("5%", 2), ("10%", 2)] {
        let run = sb.import(
            dir.path(),
            &[
                "p.csv",
                "--notify",
                &hook.url,
                "--notify-threshold",
                threshold,
            ],
        );
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert_eq!(hook.received().len(), alerts, "threshold {threshold}");
    }
    // A threshold never hides a run that failed: a wrong key aborts (exit 3), alerted.
    let run = import_env(
        dir.path(),
        Some(&sb.url()),
        &["p.csv", "--notify", &hook.url, "--notify-threshold", "100%"],
        None,
        &[("CUSTOMERIO_TRACK_API_KEY", "wrong-key")],
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    let got = hook.received();
    assert_eq!(got.len(), 3);
    assert!(got[2]["text"]
        .as_str()
        .unwrap()
        .contains("FAILED (aborted, exit 3)"));
    // A threshold that cannot be read is refused before anything runs.
    let run = sb.import(
        dir.path(),
        &["p.csv", "--notify", &hook.url, "--notify-threshold", "x"],
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--notify-threshold"), "{}", run.stderr);
}

#[test]
fn a_receiver_that_is_down_or_hangs_changes_nothing() {
    let sb = plain();
    let dir = tempdir();
    ten_rows(dir.path(), &[1]);
    let down = Hook::down();
    let run = sb.import(dir.path(), &["p.csv", "--notify", &down]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(run.stderr.contains("not delivered"), "{}", run.stderr);
    assert_not_printed("stderr", &run.stderr);
    ten_rows(dir.path(), &[]);
    let run = sb.import(
        dir.path(),
        &["p.csv", "--notify", &down, "--notify-on", "always"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A receiver that never answers: each attempt times out (1 s here), one retry, done.
    let hang = Hook::start(Receiver::Hangs);
    let started = Instant::now();
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--notify",
            &hang.url,
            "--notify-on",
            "always",
            "--notify-timeout",
            "1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(30));
    assert!(
        run.stderr.contains("no answer within 1.0s"),
        "{}",
        run.stderr
    );
    assert_eq!(
        *hang.connections.lock().unwrap(),
        2,
        "one attempt and one retry"
    );
    assert_not_printed("stderr", &run.stderr);
}

#[test]
fn a_sync_job_alerts_too_even_when_it_cannot_start() {
    let sb = plain();
    let hook = Hook::start(Receiver::Answers);
    let dir = tempdir();
    ten_rows(dir.path(), &[5]);
    write(
        dir.path(),
        "nightly.toml",
        format!(
            "input = \"p.csv\"\nendpoint = \"{}\"\nreports_dir = \".\"\nnotify = \"{}\"\nnotify_threshold = \"0\"\n",
            sb.url(),
            hook.url
        ),
    );
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args(["sync", "--config", "nightly.toml"])
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_not_printed("stderr", &stderr);
    let summary: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("nightly.summary.json")).unwrap())
            .unwrap();
    assert_not_printed("the summary", &summary.to_string());
    let got = hook.received();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["summary"]["run_id"], summary["run_id"]);
    // Without credentials the job cannot start: alerted, exit 1.
    let out = without_credentials(dir.path(), &["sync", "--config", "nightly.toml"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let got = hook.received();
    assert_eq!(got.len(), 2, "{stderr}");
    let text = got[1]["text"].as_str().unwrap();
    assert!(
        text.contains("FAILED before starting") && text.contains("CUSTOMERIO_SITE_ID"),
        "{text}"
    );
    assert_not_printed("stderr", &stderr);
}

#[test]
fn a_guard_before_the_run_is_alerted_recorded_and_logged_as_json() {
    let sb = plain();
    let hook = Hook::start(Receiver::Answers);
    let dir = tempdir();
    ten_rows(dir.path(), &[]);
    let run = sb.import(dir.path(), &["p.csv", "--state", "st.db"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Night 2: everyone changed; --max-change stops it before anything is sent.
    write(
        dir.path(),
        "p.csv",
        numbered_csv("id,v", 10, |i| format!("r{i},x{i}")),
    );
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--state",
            "st.db",
            "--max-change",
            "10",
            "--notify",
            &hook.url,
            "--notify-on",
            "always",
            "--log-format",
            "json",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    // Every line of the log is JSON, the guard's own included.
    for l in run.stderr.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"));
        time(&v["timestamp"]);
    }
    assert!(run.stderr.contains("--max-change"), "{}", run.stderr);
    // The summary is a run's: id, times, the reason.
    let s = &run.summary;
    assert_eq!(s["outcome"], "stopped by a guard");
    let run_id = s["run_id"].as_str().expect("a run id").to_string();
    time(&s["started_at"]);
    time(&s["finished_at"]);
    assert!(s["stop_reason"].as_str().unwrap().contains("--max-change"));
    // The alert went (a guard is a failure), naming the run.
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:?}");
    let text = got[0]["text"].as_str().unwrap();
    assert!(text.contains("FAILED") && text.contains(&run_id), "{text}");
    // The state file's history has the night.
    let (json, ok) = state(dir.path(), &["st.db", "--json"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["runs"][0]["run_id"], run_id.as_str(), "{v}");
    assert_eq!(v["runs"][0]["outcome"], "stopped by a guard", "{v}");
    assert_eq!(v["runs"][0]["exit_code"], 2);
}

#[test]
fn a_header_only_export_is_alerted_on_failure() {
    let sb = plain();
    let hook = Hook::start(Receiver::Answers);
    let dir = tempdir();
    write(dir.path(), "p.csv", "id,v\n");
    let run = sb.import(dir.path(), &["p.csv", "--notify", &hook.url]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.summary["outcome"], "stopped by a guard");
    let got = hook.received();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0]["text"].as_str().unwrap().contains("FAILED"));
}

#[test]
fn state_json_lists_pending_removals_and_a_run_going_on() {
    let sb = plain();
    let dir = tempdir();
    ten_rows(dir.path(), &[]);
    let run = sb.import(dir.path(), &["p.csv", "--state", "st.db"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let db = dir.path().join("st.db");
    let c = rusqlite::Connection::open(&db).unwrap();
    c.execute(
        "INSERT INTO removals (dest, kind, identifier, mode, since, run_id) SELECT dest, kind, identifier, 'delete', 0, 1 FROM people WHERE identifier IN ('r1', 'r2')",
        [],
    )
    .unwrap();
    // A run that started and has not ended.
    c.execute(
        "INSERT INTO runs (started_at, input) VALUES (1, 'p.csv')",
        [],
    )
    .unwrap();
    drop(c);
    let (json, ok) = state(dir.path(), &["st.db", "--json"]);
    assert!(ok);
    let v: Value = serde_json::from_str(&json).unwrap();
    let p = &v["pending_removals"][0];
    assert_eq!(p["count"], 2, "{v}");
    assert_eq!(p["first"], serde_json::json!(["r1", "r2"]), "{v}");
    assert_eq!(v["runs"][0]["outcome"], "killed", "{v}");
    // While the state file's lock is held, that run is going on.
    let lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.path().join("st.db.lock"))
        .unwrap();
    lock.lock().unwrap();
    let (json, _) = state(dir.path(), &["st.db", "--json"]);
    let v: Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["runs"][0]["outcome"], "running", "{v}");
    assert_eq!(v["runs"][1]["outcome"], "completed", "{v}");
    let (text, _) = state(dir.path(), &["st.db"]);
    assert!(text.contains("(running)"), "{text}");
    drop(lock);
}

/// The run record names the run's kind (objects, relationships, devices, merges) and its real
/// action, not "people" and "identify".
#[test]
fn the_run_record_names_the_kind_and_the_action() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "o.csv", "object_id,name\nacme,Acme\n");
    write(dir.path(), "r.csv", "id,object_id\nu1,acme\n");
    write(dir.path(), "d.csv", "id,token,platform\nu1,tok-a,ios\n");
    write(
        dir.path(),
        "m.csv",
        "primary_id,secondary_email\nu1,ann@x.io\n",
    );
    let cases: [(&[&str], &str, &str); 5] = [
        (
            &["o.csv", "--kind", "objects", "--object-type-id", "3"],
            "objects",
            "identify",
        ),
        (
            &["r.csv", "--kind", "relationships", "--object-type-id", "3"],
            "relationships",
            "add_relationships",
        ),
        (&["d.csv", "--kind", "devices"], "devices", "add_device"),
        (
            &["d.csv", "--kind", "devices", "--action", "delete", "--yes"],
            "devices",
            "delete_device",
        ),
        (&["m.csv", "--kind", "merges", "--yes"], "merges", "merge"),
    ];
    for (args, kind, action) in cases {
        let r = sb.import(dir.path(), args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
        let o = &r.summary["options"];
        assert_eq!(
            (o["kind"].as_str(), o["action"].as_str()),
            (Some(kind), Some(action)),
            "{args:?}: {o}"
        );
    }
}

/// `state` counts every table per workspace: objects, relationships and devices too.
#[test]
fn state_counts_objects_relationships_and_devices() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", "id,plan\nu1,a\nu2,b\n");
    write(
        dir.path(),
        "o.csv",
        "object_id,name\nacme,Acme\nglobex,Globex\n",
    );
    write(dir.path(), "r.csv", "id,object_id\nu1,acme\n");
    write(
        dir.path(),
        "d.csv",
        "id,token,platform\nu1,tok-a,ios\nu2,tok-b,ios\nu2,tok-c,ios\n",
    );
    for args in [
        &["p.csv", "--state", "s.db"][..],
        &[
            "o.csv",
            "--kind",
            "objects",
            "--object-type-id",
            "3",
            "--state",
            "s.db",
        ],
        &[
            "r.csv",
            "--kind",
            "relationships",
            "--object-type-id",
            "3",
            "--state",
            "s.db",
        ],
        &["d.csv", "--kind", "devices", "--state", "s.db"],
    ] {
        let r = sb.import(dir.path(), args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.stderr);
    }
    let out = std::process::Command::new(bin())
        .args(["state", "s.db", "--json"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let d = &v["destinations"][0];
    assert_eq!(
        (
            d["people"].as_i64(),
            d["objects"].as_i64(),
            d["relationships"].as_i64(),
            d["devices"].as_i64()
        ),
        (Some(2), Some(2), Some(1), Some(3)),
        "{v}"
    );
    let out = std::process::Command::new(bin())
        .args(["state", "s.db"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  3 devices acknowledged by site "), "{text}");
}
