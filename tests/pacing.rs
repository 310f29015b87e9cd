//! Closed-loop pacing (issue 11): the rate follows the server's 429s under `--rate` as a
//! ceiling, 429s never exhaust a row while the run progresses, and the sandbox's changing
//! limit and live traffic. Bounds are generous on purpose: they separate the closed loop from
//! open-loop pacing, not one run's timing from another's.

mod common;

use cio_import::sandbox::{SandboxConfig, StatsSnapshot};
use common::*;
use std::time::Duration;

fn f(run: &Run, k: &str) -> f64 {
    run.summary[k].as_f64().unwrap_or(f64::NAN)
}

/// `--rate` four times the server's limit and `--max-retries 0`: a 429 that spent a fault
/// retry would exhaust its row at once. The rate comes down and stays near the limit.
#[test]
fn the_rate_converges_to_a_lower_limit_and_429s_exhaust_no_row() {
    let sb = sandbox(SandboxConfig {
        limit: 100,
        burst: 10,
        seed: Some(3),
        ..SandboxConfig::default()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(1000));
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--api",
            "v1",
            "--rate",
            "400",
            "--max-retries",
            "0",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("sent"), 1000);
    assert_eq!(run.n("exhausted"), 0);
    let st = sb.stats();
    let share = st.status(429) as f64 / st.requests as f64;
    // Open loop at 400 against 100 answers about three requests in four with 429.
    assert!(share < 0.25, "429 share {share:.3}: {}", run.summary);
    assert!(
        run.n("429s") > 0 && run.n("retries_429") > 0,
        "{}",
        run.summary
    );
    let (fin, min) = (f(&run, "rate_final"), f(&run, "rate_min"));
    assert!(min < 200.0, "never came down: {}", run.summary);
    assert!((30.0..=250.0).contains(&fin), "{}", run.summary);
    assert!(f(&run, "throttled_s") > 0.0, "{}", run.summary);
}

/// With `Retry-After` on every 429 the bucket is held, never released in a burst, and still
/// no row is exhausted (one retry allowed for faults).
#[test]
fn retry_after_holds_the_bucket_and_exhausts_no_row() {
    let sb = sandbox(SandboxConfig {
        limit: 50,
        burst: 5,
        retry_after: Some(1),
        seed: Some(5),
        ..SandboxConfig::default()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(200));
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--api",
            "v1",
            "--rate",
            "200",
            "--max-retries",
            "1",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((run.n("sent"), run.n("exhausted")), (200, 0));
    assert!(run.n("429s") > 0, "{}", run.summary);
    // Each episode costs a few 429s, not a storm of them.
    let st = sb.stats();
    assert!(st.status(429) < 60, "{st:?}");
    assert!(f(&run, "throttled_s") >= 1.0, "{}", run.summary);
}

/// No second carries more than the ceiling plus its burst, whatever the controller does.
/// The sandbox counts arrivals, not grants: requests granted in one second may arrive in the
/// next when the machine is loaded, but never more of them than are in flight at once, so
/// the bound is the ceiling, its burst and the concurrency.
#[test]
fn the_ceiling_is_never_passed() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(250));
    let run = sb.import(
        dir.path(),
        &["p.csv", "--api", "v1", "--rate", "60", "--concurrency", "4"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let st = sb.stats();
    assert!(
        st.max_requests_per_second <= 60 + 3 + 4,
        "{} in one second",
        st.max_requests_per_second
    );
    assert_eq!(f(&run, "rate_final"), 60.0);
    assert_eq!(run.n("429s"), 0);
}

/// `--rate 0`: no ceiling, but the controller still comes down on 429s.
#[test]
fn no_ceiling_still_reacts_to_429s() {
    let sb = sandbox(SandboxConfig {
        limit: 100,
        burst: 10,
        ..SandboxConfig::default()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(600));
    let run = sb.import(
        dir.path(),
        &["p.csv", "--api", "v1", "--rate", "0", "--max-retries", "0"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((run.n("sent"), run.n("exhausted")), (600, 0));
    let st = sb.stats();
    let share = st.status(429) as f64 / st.requests as f64;
    // Unpaced, 32 workers against a sandbox without latency get almost only 429s.
    assert!(share < 0.5, "429 share {share:.3}: {}", run.summary);
    assert!(run.summary["rate_min"].is_number(), "{}", run.summary);
}

/// `--fixed-rate` keeps the open-loop bucket at exactly `--rate`.
#[test]
fn fixed_rate_stays_at_the_rate() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(50));
    let run = sb.import(
        dir.path(),
        &["p.csv", "--api", "v1", "--rate", "80", "--fixed-rate"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(f(&run, "rate_final"), 80.0);
    assert_eq!(f(&run, "rate_min"), 80.0);
}

/// The sandbox's limit schedule and live traffic: the traffic spends the quota of the step
/// in force and its 429s are counted apart from the API's.
#[test]
fn the_sandbox_schedule_and_live_traffic_share_one_quota() {
    // The limit comes at 5 s: long after the first background requests on any machine, so
    // the first check sees them unlimited; each check waits for its condition (no fixed sleep).
    let began = std::time::Instant::now();
    let sb = sandbox(SandboxConfig {
        limit: 0,
        burst: 5,
        limit_schedule: vec![(Duration::ZERO, 0), (Duration::from_secs(5), 10)],
        background_rate: 200,
        seed: Some(1),
        ..SandboxConfig::default()
    });
    let wait_for = |what: &str, ok: &dyn Fn(&StatsSnapshot) -> bool| {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let st = sb.stats();
            if ok(&st) {
                return st;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {st:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    let before = wait_for("background traffic", &|st| st.background_requests > 10);
    if began.elapsed() < Duration::from_secs(5) {
        assert_eq!(before.background_429s, 0, "no limit yet: {before:?}");
    }
    let after = wait_for("429s once limited", &|st| st.background_429s > 20);
    assert_eq!(
        after.requests, 0,
        "live traffic is not counted as API requests"
    );
}

/// `--rate 0` against a fast server: the first 429 comes within milliseconds, before a rate
/// was measured. The cut starts from the rate actually used, not a made-up 100 req/s, and
/// permits granted before the cut (carrying the old epoch) do not cut it a second time.
#[test]
fn no_ceiling_cuts_from_the_rate_used_and_once_per_episode() {
    let sb = sandbox(SandboxConfig {
        limit: 1000,
        burst: 100,
        ..SandboxConfig::default()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows(2000));
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["p.csv", "--api", "v1", "--rate", "0", "--concurrency", "8"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((run.n("sent"), run.n("exhausted")), (2000, 0));
    // The server allows 1000 req/s: one halving from what was used stays far above 100.
    let min = f(&run, "rate_min");
    assert!(min >= 100.0, "rate_min {min}: {}", run.summary);
}
