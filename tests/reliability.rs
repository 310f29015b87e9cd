//! Under fire: fault storms, outages, an API that is gone, a full disk, hostile redirects,
//! Ctrl-C with a ledger, and the key kept secret by every command. Each test is seeded and
//! asserts what must hold whatever the timing.

mod common;

use cio_import::sandbox::{Fault, SandboxConfig};
use common::*;
use serde_json::json;
use std::time::{Duration, Instant};

/// [`common::rows`] with a quoted `name` holding a comma.
fn rows(n: usize) -> String {
    numbered_csv("id,v,name", n, |i| format!("r{i},{i},\"Name, {i}\""))
}

fn assert_all_arrived(sb: &Sb, n: usize) {
    let people = sb.people();
    assert_eq!(people.len(), n, "people that arrived");
    for i in 0..n {
        let p = &people[&format!("r{i}")];
        assert_eq!(p.attributes["v"], json!(i.to_string()), "r{i}");
    }
}

fn storm(retry_after: Option<u64>, limit: u32) -> SandboxConfig {
    SandboxConfig {
        limit,
        burst: 10,
        retry_after,
        fail_rate: 0.20,
        reset_rate: 0.05,
        slow_rate: 0.05,
        slow: Duration::from_millis(1500),
        ambiguous_rate: 0.02,
        seed: Some(7),
        // Every kind of fault at least once, whatever the dice do; then the random storm.
        script: vec![
            Fault::Status(503),
            Fault::Reset,
            Fault::Slow,
            Fault::Status(429),
            Fault::RateLimited { retry_after: 1 },
            Fault::Ambiguous,
            Fault::Status(502),
        ],
        ..SandboxConfig::default()
    }
}

const FAST_RETRIES: [&str; 8] = [
    "--max-retries",
    "40",
    "--backoff-base-ms",
    "20",
    "--backoff-cap-ms",
    "400",
    "--timeout",
    "0.5",
];

#[test]
fn a_storm_in_batch_mode_loses_nothing() {
    for retry_after in [Some(1), None] {
        let sb = sandbox(storm(retry_after, 300));
        let dir = tempdir();
        write(dir.path(), "p.csv", rows(100_000));
        let mut args = vec!["p.csv", "--batch-size", "1000", "--rate", "400"];
        args.extend(FAST_RETRIES);
        let run = sb.import(dir.path(), &args);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert_eq!(run.n("sent"), 100_000);
        assert!(
            run.n("retries") > 10,
            "the storm did not hit: {}",
            run.summary
        );
        let st = sb.stats();
        assert!(
            st.status(429) > 0 && st.resets > 0 && st.status(504) > 0,
            "{:?}",
            st.by_status
        );
        assert_all_arrived(&sb, 100_000);
        assert!(
            !dir.path().join("errors.csv").exists(),
            "nothing may be reported failed"
        );
    }
}

#[test]
fn a_storm_in_v1_loses_nothing() {
    let sb = sandbox(storm(None, 1000));
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(5_000));
    let mut args = vec![
        "p.csv",
        "--api",
        "v1",
        "--rate",
        "320",
        "--concurrency",
        "64",
    ];
    args.extend(FAST_RETRIES);
    let run = sb.import(dir.path(), &args);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("sent"), 5_000);
    let st = sb.stats();
    assert!(
        st.status(429) > 0 && st.resets > 0 && st.status(504) > 0,
        "{:?}",
        st.by_status
    );
    assert_all_arrived(&sb, 5_000);
    // Ambiguous answers were retried: some people were applied twice, harmlessly.
    assert!(sb.people().values().any(|p| p.updates > 1));
}

#[test]
fn a_60_second_outage_slows_the_run_down_and_it_completes() {
    let sb = sandbox(SandboxConfig {
        outage: Some((Duration::from_secs(1), Duration::from_secs(60))),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(1_000));
    let started = Instant::now();
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--api",
            "v1",
            "--rate",
            "100",
            "--max-retries",
            "30",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        started.elapsed() >= Duration::from_secs(60),
        "the outage was not outlasted but skipped?"
    );
    assert_all_arrived(&sb, 1_000);
    assert!(sb.stats().status(503) > 0);
}

#[test]
fn an_outage_longer_than_the_budget_leaves_a_rejects_file_that_finishes_the_job() {
    let sb = sandbox(SandboxConfig {
        outage: Some((Duration::from_millis(500), Duration::from_secs(600))),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(1_000));
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--api",
            "v1",
            "--rate",
            "200",
            "--max-retries",
            "2",
            "--backoff-base-ms",
            "50",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    let lost = run.n("exhausted") + run.n("not_attempted");
    assert!(lost > 0, "{}", run.summary);
    assert_eq!(
        run.n("sent") as usize,
        sb.people().len(),
        "nothing reported sent that did not arrive"
    );
    let errors = run.errors();
    assert!(errors
        .iter()
        .all(|e| e["class"] == "exhausted" || e["class"] == "not_attempted"));
    // Later, when the API is back: the rejects file as it is.
    let back = plain();
    std::fs::copy(dir.path().join("rejects.csv"), dir.path().join("retry.csv")).unwrap();
    let again = import(
        dir.path(),
        Some(&back.url()),
        &["retry.csv", "--api", "v1", "--rate", "0"],
        None,
    );
    assert_eq!((again.code, again.n("sent")), (0, lost), "{}", again.stderr);
    let mut all = sb.people();
    all.extend(back.people());
    assert_eq!(all.len(), 1_000);
}

#[test]
fn an_api_that_is_gone_stops_the_run_within_the_retry_budget() {
    // A port nothing listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(50_000));
    let started = Instant::now();
    let run = import(
        dir.path(),
        Some(&format!("http://127.0.0.1:{port}")),
        &[
            "p.csv",
            "--max-retries",
            "3",
            "--backoff-base-ms",
            "50",
            "--batch-size",
            "100",
        ],
        None,
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(
        run.stderr.contains("cannot reach the Track API"),
        "{}",
        run.stderr
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "it must not try every row for minutes"
    );
    assert_eq!(run.n("sent"), 0);
    assert_eq!(run.n("exhausted") + run.n("not_attempted"), 50_000);
}

#[test]
fn a_full_disk_for_the_reports_is_a_clear_fatal_error() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["r3".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(100));
    let out = import_command(
        dir.path(),
        &sb.url(),
        &[
            "p.csv",
            "--errors",
            "/dev/full",
            "--summary",
            "s.json",
            "-q",
            "--api",
            "v1",
        ],
    )
    .output()
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("/dev/full") && stderr.contains("No space left"),
        "{stderr}"
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert_accounted(&s);
    assert_eq!(
        s["sent"].as_u64().unwrap() as usize,
        sb.people().len(),
        "the summary claims only what arrived"
    );
}

#[test]
fn a_redirect_off_customer_io_hosts_is_refused_and_the_key_does_not_follow() {
    use std::io::{Read, Write};
    // B, at another loopback address, records whatever reaches it.
    let b = std::net::TcpListener::bind("127.0.0.2:0").unwrap();
    let b_addr = b.local_addr().unwrap();
    b.set_nonblocking(true).unwrap();
    // A answers every request with a redirect to B.
    let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let a_addr = a.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in a.incoming().flatten() {
            let mut s = stream;
            let mut buf = [0u8; 65536];
            let _ = s.read(&mut buf);
            let resp = format!(
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{b_addr}/api/v2/batch\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = s.write_all(resp.as_bytes());
        }
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(5));
    let run = import(
        dir.path(),
        Some(&format!("http://{a_addr}")),
        &["p.csv"],
        None,
    );
    assert_eq!(run.code, 3, "{}", run.stderr);
    assert!(run.stderr.contains("redirect"), "{}", run.stderr);
    assert!(b.accept().is_err(), "the redirect reached the other host");
}

#[test]
fn ctrl_c_with_a_ledger_then_a_rerun_finishes_the_job() {
    let sb = sandbox(SandboxConfig {
        latency: Duration::from_millis(50),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(600));
    let child = import_command(
        dir.path(),
        &sb.url(),
        &[
            "p.csv", "--state", "s.db", "--api", "v1", "--rate", "50", "-q",
        ],
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.people().len() < 20 {
        assert!(Instant::now() < deadline, "no progress");
        std::thread::sleep(Duration::from_millis(10));
    }
    std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let first = sb.people().len();
    assert!(first < 600);
    let again = sb.import(dir.path(), &["p.csv", "--state", "s.db", "--rate", "0"]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(
        again.n("skipped") as usize >= first - 2,
        "{}",
        again.summary
    );
    assert_all_arrived(&sb, 600);
}

#[test]
fn the_key_stays_secret_in_every_command() {
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(30));
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["r1".into()],
        fail_rate: 0.3,
        seed: Some(3),
        ..SandboxConfig::plain()
    });
    // import (batch and v1, with a ledger, at trace level), state, inspect, sync, sandbox.
    let trace = [("RUST_LOG", "trace")];
    for api in ["batch", "v1"] {
        let r = import_env(
            dir.path(),
            Some(&sb.url()),
            &[
                "p.csv",
                "--api",
                api,
                "--state",
                "s.db",
                "-vv",
                "--backoff-base-ms",
                "10",
                "--full",
            ],
            None,
            &trace,
        );
        assert_eq!(r.code, 2, "{}", r.stderr);
    }
    assert_no_secret(
        "state file",
        &std::fs::read(dir.path().join("s.db")).unwrap(),
    );
    write(
        dir.path(),
        "job.toml",
        format!(
            "input = \"p.csv\"\nendpoint = \"{}\"\nreports_dir = \".\"\n",
            sb.url()
        ),
    );
    let commands: Vec<Vec<String>> = vec![
        vec!["state".into(), "s.db".into()],
        vec!["inspect".into(), "p.csv".into()],
        vec![
            "sync".into(),
            "--config".into(),
            "job.toml".into(),
            "-vv".into(),
        ],
        vec!["import".into(), "p.csv".into(), "--dry-run".into()],
        vec![
            "import".into(),
            "p.csv".into(),
            "--endpoint".into(),
            "http://example.com".into(),
        ],
        vec!["--help".into()],
    ];
    for c in commands {
        let out = std::process::Command::new(bin())
            .current_dir(dir.path())
            .args(&c)
            .env("CUSTOMERIO_SITE_ID", SITE)
            .env("CUSTOMERIO_TRACK_API_KEY", KEY)
            .env("RUST_LOG", "trace")
            .output()
            .unwrap();
        assert_no_secret(&format!("stdout of {c:?}"), &out.stdout);
        assert_no_secret(&format!("stderr of {c:?}"), &out.stderr);
    }
    // The sandbox, given the key, never prints it either (its help hides env values too).
    let (mut child, _url) = spawn_sandbox(&["--limit", "0"]);
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert_no_secret("sandbox stdout", &out.stdout);
    let help = std::process::Command::new(bin())
        .args(["sandbox", "--help"])
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .output()
        .unwrap();
    assert_no_secret("sandbox --help", &help.stdout);
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let p = entry.unwrap().path();
        if p.is_file()
            && p.extension()
                .is_some_and(|e| e != "toml" && e != "csv" || p.ends_with("errors.csv"))
        {
            assert_no_secret(&p.display().to_string(), &std::fs::read(&p).unwrap());
        }
        if p.is_file() && !p.ends_with("p.csv") && !p.ends_with("job.toml") {
            assert_eq!(mode(&p) & 0o077, 0, "{} is readable by others", p.display());
        }
    }
}

#[test]
fn a_full_disk_for_the_state_file_is_a_clear_fatal_error() {
    // A file-size limit (with SIGXFSZ ignored) makes every write past 64 KiB fail with EFBIG,
    // as a full disk would: the ledger's writes fail part-way through the run.
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(20_000));
    let script = format!(
        "trap '' XFSZ; ulimit -f 128; exec {} import p.csv --state s.db --summary s.json -q --api v1 --rate 0 --endpoint {}",
        bin(),
        sb.url()
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &script])
        .current_dir(dir.path())
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("state file") && stderr.contains("s.db"),
        "{stderr}"
    );
    let s: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert_accounted(&s);
    assert_eq!(s["outcome"], "aborted");
    assert!(
        s["sent"].as_u64().unwrap() < 20_000,
        "the run must stop early: {s}"
    );
    assert_eq!(
        s["sent"].as_u64().unwrap() as usize,
        sb.people().len(),
        "sent means arrived"
    );
}
