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
