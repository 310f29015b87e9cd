//! The ledger (`--state`): delta syncs, crash-safe resume under kill -9, duplicate rows,
//! the lock, `cio-import state` and `cio-import sync`.

mod common;

use cio_import::sandbox::SandboxConfig;
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::{Duration, Instant};

fn people_csv(n: usize, changed: &[usize]) -> String {
    numbered_csv("id,name,plan,created_at", n, |i| {
        let plan = if changed.contains(&i) {
            "upgraded"
        } else {
            "free"
        };
        format!("p{i},Person {i},{plan},2024-01-{:02}", i % 28 + 1)
    })
}

fn ledger_people(path: &Path) -> Vec<(String, String)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut st = conn
        .prepare("SELECT kind, identifier FROM people ORDER BY identifier")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn an_unchanged_file_sends_nothing_and_a_changed_one_only_the_changes() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(2000, &[]));
    let first = sb.import(dir.path(), &["p.csv", "--state", "state.db"]);
    assert_eq!((first.code, first.n("sent")), (0, 2000), "{}", first.stderr);
    assert_eq!(mode(&dir.path().join("state.db")), 0o600);

    let before = sb.stats().requests;
    let second = sb.import(dir.path(), &["p.csv", "--state", "state.db"]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(
        (second.n("sent"), second.n("skipped"), second.n("requests")),
        (0, 2000, 0)
    );
    assert_eq!(
        sb.stats().requests,
        before,
        "an unchanged file must not reach the API"
    );

    // 1% of the rows change: exactly those are sent.
    let changed: Vec<usize> = (0..2000).step_by(100).collect();
    write(dir.path(), "p.csv", people_csv(2000, &changed));
    let third = sb.import(dir.path(), &["p.csv", "--state", "state.db", "--api", "v1"]);
    assert_eq!(
        (third.n("sent"), third.n("skipped"), third.n("requests")),
        (20, 1980, 20),
        "{}",
        third.stderr
    );
    let people = sb.people();
    for i in 0..2000 {
        let p = &people[&format!("p{i}")];
        let want = if changed.contains(&i) {
            ("upgraded", 2)
        } else {
            ("free", 1)
        };
        assert_eq!(
            (p.attributes["plan"].as_str().unwrap(), p.updates),
            want,
            "p{i}"
        );
    }
    // --full sends everything again and refreshes the ledger.
    let full = sb.import(dir.path(), &["p.csv", "--state", "state.db", "--full"]);
    assert_eq!((full.n("sent"), full.n("skipped")), (2000, 0));
}

#[test]
fn failed_rows_are_not_recorded_and_are_retried_by_the_next_run() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["p7".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(20, &[]));
    let run = sb.import(dir.path(), &["p.csv", "--state", "state.db"]);
    assert_eq!((run.code, run.n("sent"), run.n("rejected")), (2, 19, 1));
    let known = ledger_people(&dir.path().join("state.db"));
    assert_eq!(known.len(), 19);
    assert!(!known.iter().any(|(_, id)| id == "p7"));
    // The same workspace again: the failed row is tried again (and refused again), the
    // acknowledged ones are skipped.
    let again = sb.import(dir.path(), &["p.csv", "--state", "state.db"]);
    assert_eq!(
        (again.code, again.n("rejected"), again.n("skipped")),
        (2, 1, 19)
    );
    // `cio-import state` tells the story.
    let out = std::process::Command::new(bin())
        .args(["state"])
        .arg(dir.path().join("state.db"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "19 people acknowledged by site {SITE} at 127.0.0.1:"
        )),
        "{text}"
    );
    // The trend table, newest first: rows, sent, skipped, failed, exit.
    let trend: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.trim_end().ends_with("p.csv"))
        .map(|l| l.split_whitespace().skip(3).take(5).collect())
        .collect();
    assert_eq!(
        trend,
        [["20", "0", "19", "1", "2"], ["20", "19", "0", "1", "2"]],
        "{text}"
    );
}

#[test]
fn the_later_row_of_a_person_wins_in_the_api_and_in_the_ledger() {
    let sb = sandbox(SandboxConfig {
        latency: Duration::from_millis(30),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    let mut csv = String::from("id,v\n");
    for i in 0..300 {
        csv.push_str(&format!("x{i},first\n"));
        if i % 50 == 0 {
            // The same person again a row later, and again much later: in other requests.
            csv.push_str(&format!("dup,{i}\n"));
        }
    }
    csv.push_str("dup,last\n");
    write(dir.path(), "p.csv", csv);
    for api in ["v1", "batch"] {
        let state = format!("{api}.db");
        let run = sb.import(
            dir.path(),
            &[
                "p.csv",
                "--state",
                &state,
                "--api",
                api,
                "--batch-size",
                "7",
                "--concurrency",
                "8",
                "--rate",
                "0",
            ],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(sb.people()["dup"].attributes["v"], json!("last"), "{api}");
        // The ledger holds dup's seven rows as one chain (issue 14): the next run, on the
        // unchanged file, skips everyone, dup's rows included. (Before, dup's six earlier
        // rows differed from the last one's recorded hash, so all seven went every run.)
        let again = sb.import(dir.path(), &["p.csv", "--state", &state, "--api", api]);
        assert_eq!(
            (again.n("sent"), again.n("skipped")),
            (0, 307),
            "{api}: {}",
            again.summary
        );
        assert_eq!(sb.people()["dup"].attributes["v"], json!("last"), "{api}");
    }
}

#[test]
fn a_second_run_on_the_same_ledger_fails_fast() {
    let sb = sandbox(SandboxConfig {
        latency: Duration::from_millis(100),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(400, &[]));
    let mut first = import_command(
        dir.path(),
        &sb.url(),
        &[
            "p.csv", "--state", "state.db", "--api", "v1", "--rate", "20", "-q",
        ],
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.stats().requests == 0 {
        assert!(Instant::now() < deadline, "the first run never started");
        std::thread::sleep(Duration::from_millis(10));
    }
    let t = Instant::now();
    let second = sb.import(dir.path(), &["p.csv", "--state", "state.db"]);
    assert_eq!(second.code, 1, "{}", second.stderr);
    assert!(
        second.stderr.contains("in use by another cio-import run"),
        "{}",
        second.stderr
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "it must fail fast, not wait"
    );
    let _ = first.kill();
    let _ = first.wait();
}

/// A tiny deterministic generator, so the kill points are the same on every run.
struct Lcg(u64);
impl Lcg {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n
    }
}

#[test]
fn kill_9_at_random_points_loses_nothing_and_the_ledger_agrees_with_the_api() {
    let sb = sandbox(SandboxConfig {
        latency: Duration::from_millis(20),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    let n = 3000;
    let mut csv = people_csv(n, &[]);
    csv.push_str("p5,Person 5 again,final,2024-02-01\n"); // a duplicate: the later row wins
    write(dir.path(), "p.csv", &csv);
    let mut rng = Lcg(42);
    let mut kills = 0;
    for _ in 0..5 {
        let before = sb.stats().requests;
        let mut child = import_command(
            dir.path(),
            &sb.url(),
            &[
                "p.csv",
                "--state",
                "state.db",
                "--batch-size",
                "25",
                "--rate",
                "40",
                "-q",
            ],
        )
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
        // Kill after a random number of requests reached the API (polled, not timed).
        let target = before + 1 + rng.below(12);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut finished = false;
        while sb.stats().requests < target {
            if child.try_wait().unwrap().is_some() {
                finished = true;
                break;
            }
            assert!(Instant::now() < deadline, "no progress");
            std::thread::sleep(Duration::from_millis(2));
        }
        if finished {
            break;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        // Nothing unacknowledged is recorded as sent: everyone in the ledger reached the API.
        let arrived = sb.people();
        for (_, id) in ledger_people(&dir.path().join("state.db")) {
            assert!(
                arrived.contains_key(&id),
                "{id} is in the ledger but never arrived"
            );
        }
    }
    assert!(
        kills >= 3,
        "only {kills} kills happened: the test proves little"
    );
    // Re-run until done.
    let last = sb.import(dir.path(), &["p.csv", "--state", "state.db"]);
    assert_eq!(last.code, 0, "{}", last.stderr);
    let people = sb.people();
    assert_eq!(people.len(), n);
    for i in 0..n {
        let p = &people[&format!("p{i}")];
        let plan = if i == 5 { "final" } else { "free" };
        assert_eq!(p.attributes["plan"], json!(plan), "p{i}");
    }
    // The ledger agrees with the API: every person recorded, and nothing left to send.
    assert_eq!(ledger_people(&dir.path().join("state.db")).len(), n);
    let check = sb.import(dir.path(), &["p.csv", "--state", "state.db"]);
    // Nothing: p5's two rows are recorded as one chain (issue 14), unchanged.
    assert_eq!((check.n("sent"), check.n("skipped")), (0, n as u64 + 1));
    assert_eq!(sb.people()["p5"].attributes["plan"], json!("final"));
    // Resending was bounded: at most the requests in flight at each kill were repeated.
    let total_updates: u64 = people.values().map(|p| p.updates).sum();
    assert!(
        total_updates <= n as u64 + 1 + kills * 40 * 25,
        "{total_updates} updates"
    );
}

#[test]
fn sync_runs_a_job_file() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(10, &[]));
    std::fs::create_dir(dir.path().join("reports")).unwrap();
    write(
        dir.path(),
        "job.toml",
        format!(
            "input = \"p.csv\"\nstate = \"state.db\"\nreports_dir = \"reports\"\nendpoint = \"{}\"\nsite_id_env = \"MY_SITE\"\napi_key_env = \"MY_KEY\"\n",
            sb.url()
        ),
    );
    let out = std::process::Command::new(bin())
        .args(["sync", "--config"])
        .arg(dir.path().join("job.toml"))
        .env_remove("CUSTOMERIO_SITE_ID")
        .env_remove("CUSTOMERIO_TRACK_API_KEY")
        .env("MY_SITE", SITE)
        .env("MY_KEY", KEY)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(sb.people().len(), 10);
    let s: Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("reports/job.summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(s["sent"], 10);
    assert!(dir.path().join("state.db").exists());
    // A mistake in the job file names the line and the key.
    write(dir.path(), "bad.toml", "input = \"p.csv\"\nrat = 5\n");
    let out = std::process::Command::new(bin())
        .args(["sync", "--config"])
        .arg(dir.path().join("bad.toml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("bad.toml") && err.contains("rat") && err.contains("line 2"),
        "{err}"
    );
}
