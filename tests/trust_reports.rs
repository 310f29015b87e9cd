//! Issue 10, items 9 and 15: the report paths hold this run's failures and nothing else, two
//! inputs never share reports, and every numeric option is range-checked (never a panic).

mod common;

use common::*;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

/// `cio-import ARGS` in `dir` without credentials (dry runs need none).
fn run_in(dir: &Path, args: &[&str]) -> Output {
    without_credentials(dir, args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn summary(dir: &Path, name: &str) -> Value {
    serde_json::from_slice(&std::fs::read(dir.join(name)).unwrap()).unwrap()
}

const BAD: &str = "id,created_at\n1,2023-01-01\n2,never\n";
const GOOD: &str = "id,created_at\n1,2023-01-01\n2,2023-01-02\n";

#[test]
fn a_clean_run_removes_yesterdays_rejects_and_errors() {
    let dir = tempdir();
    write(dir.path(), "p.csv", BAD);
    let o = run_in(dir.path(), &["import", "p.csv", "--dry-run", "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let (rejects, errors) = (
        dir.path().join("p.csv.rejects.csv"),
        dir.path().join("p.csv.errors.csv"),
    );
    assert!(rejects.exists() && errors.exists());
    // Tonight the source is fixed: yesterday's failed row must not stay around to be re-imported.
    write(dir.path(), "p.csv", GOOD);
    let o = run_in(
        dir.path(),
        &["import", "p.csv", "--dry-run", "-q", "--summary", "s.json"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        !rejects.exists(),
        "yesterday's rejects survived a clean run"
    );
    assert!(!errors.exists(), "yesterday's errors survived a clean run");
    let s = summary(dir.path(), "s.json");
    assert_eq!(
        (&s["rejects_file"], &s["errors_file"]),
        (&Value::Null, &Value::Null)
    );
    assert!(!stderr(&o).contains("failed rows"), "{}", stderr(&o));
}

#[test]
fn explicit_report_paths_are_cleared_too_but_never_a_device() {
    let dir = tempdir();
    write(dir.path(), "p.csv", GOOD);
    write(dir.path(), "old.rejects.csv", "id,created_at\n2,never\n");
    write(dir.path(), "old.errors.csv", "row,line\n2,3\n");
    let o = run_in(
        dir.path(),
        &[
            "import",
            "p.csv",
            "--dry-run",
            "-q",
            "--rejects",
            "old.rejects.csv",
            "--errors",
            "old.errors.csv",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!dir.path().join("old.rejects.csv").exists());
    assert!(!dir.path().join("old.errors.csv").exists());
    // /dev/null as a report path is left alone (and still works).
    let o = run_in(
        dir.path(),
        &[
            "import",
            "p.csv",
            "--dry-run",
            "-q",
            "--rejects",
            "/dev/null",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(Path::new("/dev/null").exists());
}

#[test]
fn a_run_with_failures_leaves_only_its_own_failures() {
    let dir = tempdir();
    write(
        dir.path(),
        "p.csv",
        "id,created_at\n1,never\n2,never\n3,2023-01-01\n",
    );
    let o = run_in(dir.path(), &["import", "p.csv", "--dry-run", "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    write(
        dir.path(),
        "p.csv",
        "id,created_at\n1,2023-01-01\n2,2023-01-01\n3,nope\n",
    );
    let o = run_in(dir.path(), &["import", "p.csv", "--dry-run", "-q"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let rejects = std::fs::read_to_string(dir.path().join("p.csv.rejects.csv")).unwrap();
    assert_eq!(rejects, "id,created_at\n3,nope\n");
    let errors = read_csv_maps(&dir.path().join("p.csv.errors.csv"));
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0]["identifier"], "3");
}

#[test]
fn same_file_name_in_two_folders_never_shares_reports() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    std::fs::create_dir_all(dir.path().join("b")).unwrap();
    write(
        dir.path(),
        "a/customers.csv",
        "id,created_at\nA1,never\nA2,2023-01-01\n",
    );
    write(
        dir.path(),
        "b/customers.csv",
        "id,created_at\nB1,never\nB2,2023-01-01\n",
    );
    let mut files = Vec::new();
    for (input, s) in [
        ("a/customers.csv", "sa.json"),
        ("b/customers.csv", "sb.json"),
    ] {
        let o = run_in(
            dir.path(),
            &["import", input, "--dry-run", "-q", "--summary", s],
        );
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        let s = summary(dir.path(), s);
        files.push((
            s["rejects_file"].as_str().unwrap().to_string(),
            s["errors_file"].as_str().unwrap().to_string(),
        ));
    }
    assert_ne!(
        files[0].0, files[1].0,
        "both runs wrote the same rejects file"
    );
    assert_ne!(
        files[0].1, files[1].1,
        "both runs wrote the same errors file"
    );
    for ((rejects, errors), id) in files.iter().zip(["A1", "B1"]) {
        let r = std::fs::read_to_string(dir.path().join(rejects)).unwrap();
        assert_eq!(r, format!("id,created_at\n{id},never\n"), "{rejects}");
        let e = read_csv_maps(&dir.path().join(errors));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0]["identifier"], id);
        #[cfg(unix)]
        {
            assert_eq!(mode(&dir.path().join(rejects)), 0o600);
            assert_eq!(mode(&dir.path().join(errors)), 0o600);
        }
    }
    // The default is next to the input, named after it.
    assert_eq!(files[0].0, "a/customers.csv.rejects.csv");
    assert_eq!(files[1].1, "b/customers.csv.errors.csv");
}

#[test]
fn stdin_reports_stay_in_the_current_folder() {
    let dir = tempdir();
    let mut child = without_credentials(
        dir.path(),
        &["import", "-", "--format", "csv", "--dry-run", "-q"],
    )
    .stdin(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    {
        use std::io::Write;
        let mut si = child.stdin.take().unwrap();
        si.write_all(BAD.as_bytes()).unwrap();
    }
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("stdin.rejects.csv")).unwrap(),
        "id,created_at\n2,never\n"
    );
    assert!(dir.path().join("stdin.errors.csv").exists());
}

#[test]
fn a_report_path_that_is_the_input_is_refused_and_the_input_kept() {
    let dir = tempdir();
    write(dir.path(), "p.csv", BAD);
    for flag in ["--rejects", "--errors"] {
        let o = run_in(
            dir.path(),
            &["import", "p.csv", "--dry-run", "-q", flag, "p.csv"],
        );
        assert_eq!(o.status.code(), Some(1), "{flag}: {}", stderr(&o));
        assert!(stderr(&o).contains(flag), "{}", stderr(&o));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("p.csv")).unwrap(),
            BAD
        );
    }
}

#[test]
fn two_jobs_sharing_a_reports_dir_never_share_reports() {
    let dir = tempdir();
    for d in ["a", "b", "reports"] {
        std::fs::create_dir_all(dir.path().join(d)).unwrap();
    }
    write(dir.path(), "a/customers.csv", "id,created_at\nA1,never\n");
    write(dir.path(), "b/customers.csv", "id,created_at\nB1,never\n");
    for job in ["us", "eu"] {
        let input = if job == "us" { "a" } else { "b" };
        write(
            dir.path(),
            &format!("{job}.toml"),
            format!("input = \"{input}/customers.csv\"\nreports_dir = \"reports\"\nendpoint = \"http://127.0.0.1:9\"\n"),
        );
    }
    let mut seen = Vec::new();
    for job in ["us", "eu"] {
        let mut c = Command::new(bin());
        c.current_dir(dir.path())
            .args(["sync", "--config", &format!("{job}.toml")])
            .env("CUSTOMERIO_SITE_ID", SITE)
            .env("CUSTOMERIO_TRACK_API_KEY", KEY);
        let o = c.output().unwrap();
        // The only row is invalid: nothing is sent, the run ends with failed rows.
        assert_eq!(o.status.code(), Some(2), "{job}: {}", stderr(&o));
        let s = summary(dir.path(), &format!("reports/{job}.summary.json"));
        seen.push(s["rejects_file"].as_str().unwrap().to_string());
    }
    assert_ne!(seen[0], seen[1]);
    let us = std::fs::read_to_string(dir.path().join("reports/us.rejects.csv")).unwrap();
    let eu = std::fs::read_to_string(dir.path().join("reports/eu.rejects.csv")).unwrap();
    assert_eq!(
        (us.as_str(), eu.as_str()),
        ("id,created_at\nA1,never\n", "id,created_at\nB1,never\n")
    );
}

#[test]
fn the_sandbox_saves_its_people_next_to_the_input() {
    let dir = tempdir();
    std::fs::create_dir_all(dir.path().join("a")).unwrap();
    write(dir.path(), "a/customers.csv", "id,name\n1,Ann\n2,Bob\n");
    let o = run_in(
        dir.path(),
        &["import", "a/customers.csv", "--sandbox", "-q"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let saved = dir.path().join("a/customers.csv.sandbox-people.jsonl");
    assert_eq!(std::fs::read_to_string(&saved).unwrap().lines().count(), 2);
    assert!(
        stderr(&o).contains("saved to a/customers.csv.sandbox-people.jsonl"),
        "{}",
        stderr(&o)
    );
    assert!(!dir
        .path()
        .join("customers.csv.sandbox-people.jsonl")
        .exists());
}

// ---- item 15: every numeric option is range-checked, nothing panics ----

/// (flag, bad value): each must be refused with exit 1 and a message naming the flag.
const OUT_OF_RANGE: &[(&str, &str)] = &[
    ("--timeout", "1e20"),
    ("--timeout", "inf"),
    ("--timeout", "NaN"),
    ("--timeout", "0"),
    ("--timeout", "-1"),
    ("--timeout", "1e-9"),
    ("--concurrency", "0"),
    ("--concurrency", "18446744073709551615"),
    ("--rate", "4294967295"),
    ("--max-retries", "18446744073709551615"),
    ("--batch-bytes", "999"),
    ("--batch-bytes", "500001"),
    ("--batch-size", "0"),
    ("--batch-size", "18446744073709551615"),
    ("--flush-ms", "0"),
    ("--flush-ms", "18446744073709551615"),
    ("--backoff-base-ms", "0"),
    ("--backoff-base-ms", "18446744073709551615"),
    ("--backoff-cap-ms", "18446744073709551615"),
];

#[test]
fn every_numeric_import_option_is_range_checked_without_a_panic() {
    let dir = tempdir();
    write(dir.path(), "p.csv", GOOD);
    let mut wrong = Vec::new();
    for (flag, value) in OUT_OF_RANGE {
        // `--flag=value`, so that clap takes `-1` as a value, not as a flag.
        let arg = format!("{flag}={value}");
        let o = run_in(dir.path(), &["import", "p.csv", "--dry-run", "-q", &arg]);
        let err = stderr(&o);
        if o.status.code() != Some(1)
            || !err.contains(flag)
            || err.contains("panicked")
            || !err.contains("give")
        {
            wrong.push(format!("{flag} {value}: exit {:?}: {err}", o.status.code()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn timeout_1e20_names_the_option_the_range_and_the_fix() {
    let dir = tempdir();
    write(dir.path(), "p.csv", GOOD);
    let o = run_in(
        dir.path(),
        &["import", "p.csv", "--dry-run", "--timeout", "1e20"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(
        err.contains("--timeout 1e20") && err.contains("between 0.001 and 3600"),
        "{err}"
    );
}

#[test]
fn a_backoff_cap_below_the_base_is_refused() {
    let dir = tempdir();
    write(dir.path(), "p.csv", GOOD);
    let o = run_in(
        dir.path(),
        &[
            "import",
            "p.csv",
            "--dry-run",
            "--backoff-base-ms",
            "5000",
            "--backoff-cap-ms",
            "100",
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--backoff-cap-ms"), "{err}");
}

#[test]
fn the_job_file_equivalents_are_checked_the_same_way() {
    let dir = tempdir();
    write(dir.path(), "p.csv", GOOD);
    for (key, value, flag) in [
        ("timeout", "1e20", "--timeout"),
        ("concurrency", "0", "--concurrency"),
        ("max_retries", "100000", "--max-retries"),
    ] {
        write(
            dir.path(),
            "job.toml",
            format!("input = \"p.csv\"\nendpoint = \"http://127.0.0.1:9\"\n{key} = {value}\n"),
        );
        let mut c = Command::new(bin());
        c.current_dir(dir.path())
            .args(["sync", "--config", "job.toml"])
            .env("CUSTOMERIO_SITE_ID", SITE)
            .env("CUSTOMERIO_TRACK_API_KEY", KEY);
        let o = c.output().unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{key}: {err}");
        assert!(err.contains(flag) && !err.contains("panicked"), "{err}");
    }
}

#[test]
fn sandbox_durations_from_user_strings_never_panic() {
    for args in [
        vec!["--outage", "1e20", "1"],
        vec!["--outage", "1", "inf"],
        vec!["--outage", "1", "NaN"],
    ] {
        let o = Command::new(bin())
            .args(["sandbox", "--port", "0"])
            .args(&args)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("--outage") && !err.contains("panicked"),
            "{err}"
        );
    }
}

#[test]
fn a_library_config_goes_through_the_same_checks() {
    let dir = tempdir();
    let input = write(dir.path(), "p.csv", GOOD);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let endpoint = reqwest::Url::parse("http://127.0.0.1:9").unwrap();
    type Set = fn(&mut cio_import::ImportConfig);
    let cases: Vec<(&str, Set)> = vec![
        ("--concurrency", |c| c.concurrency = 0),
        ("--timeout", |c| c.timeout = std::time::Duration::MAX),
        ("--batch-bytes", |c| c.batch_bytes = 10),
        ("--flush-ms", |c| c.flush_after = std::time::Duration::ZERO),
        ("--max-retries", |c| c.max_retries = usize::MAX),
    ];
    for (flag, set) in cases {
        let mut cfg = cio_import::ImportConfig::new(
            cio_import::source::Input::Path(input.clone()),
            cio_import::source::Format::Csv,
            endpoint.clone(),
        );
        cfg.dry_run = true;
        cfg.rejects = dir.path().join("r.csv");
        cfg.errors = dir.path().join("e.csv");
        set(&mut cfg);
        let s = rt.block_on(cio_import::run(cfg, cio_import::Stop::new()));
        assert_eq!(s.exit_code, 1, "{flag}: {s:?}");
        assert_eq!(s.rows, 0, "{flag}: nothing may run on an invalid config");
        let reason = s.stop_reason.unwrap_or_default();
        assert!(reason.contains(flag), "{flag}: {reason}");
    }
}

/// A read-only input folder is found before the first row is read (not at the first failed
/// row, half-way through a run), with a message that says what to do; nothing is sent.
#[test]
fn a_read_only_input_folder_stops_before_anything_is_sent() {
    use std::os::unix::fs::PermissionsExt;
    if running_as_root() {
        // root writes into read-only folders: use a path under /proc instead, never writable.
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "p.csv", "id,plan\n1,free\n");
        let run = import_reports_at(dir.path(), &sb.url(), "/proc/cio-import-rejects.csv");
        assert_eq!(run.0, 1, "{}", run.1);
        assert!(run.1.contains("--rejects"), "{}", run.1);
        assert_eq!(sb.stats().requests, 0);
        return;
    }
    let sb = plain();
    let dir = tempdir();
    let input = dir.path().join("exports");
    std::fs::create_dir(&input).unwrap();
    write(&input, "p.csv", "id,plan\n1,free\n");
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o555)).unwrap();
    let out = std::process::Command::new(bin())
        .current_dir(dir.path())
        .args(["import", "exports/p.csv", "--endpoint", &sb.url(), "-q"])
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .output()
        .unwrap();
    std::fs::set_permissions(&input, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--rejects"), "{stderr}");
    assert_eq!(sb.stats().requests, 0);
}

fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
        s.lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| l.split_whitespace().nth(1) == Some("0"))
    })
}

fn import_reports_at(dir: &Path, url: &str, rejects: &str) -> (i32, String) {
    let out = std::process::Command::new(bin())
        .current_dir(dir)
        .args([
            "import",
            "p.csv",
            "--endpoint",
            url,
            "-q",
            "--rejects",
            rejects,
        ])
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

/// Red-team finding: `cio-import import - < stdin.rejects.csv` (the summary's advice, through
/// stdin) cleared the very file it was reading. It is refused, and the file is kept.
#[test]
fn a_rejects_file_fed_through_stdin_is_not_cleared_before_it_is_read() {
    let sb = plain();
    let dir = tempdir();
    let rejects = write(dir.path(), "stdin.rejects.csv", "id,plan\n1,free\n2,free\n");
    let out = Command::new(bin())
        .current_dir(dir.path())
        .args([
            "import",
            "-",
            "--format",
            "csv",
            "--endpoint",
            &sb.url(),
            "-q",
        ])
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .stdin(std::fs::File::open(&rejects).unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("--rejects"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        "id,plan\n1,free\n2,free\n",
        "the file being read is kept"
    );
}

/// Second red-team pass: an output path that names the state file (or one of its companions)
/// or the input must be refused before anything is cleared: `--rejects l.db` deleted the
/// ledger, `--summary in.csv` overwrote the input.
#[test]
fn no_output_path_may_be_the_state_file_or_the_input() {
    let dir = tempdir();
    write(dir.path(), "p.csv", GOOD);
    write(
        dir.path(),
        "l.db",
        "not really a ledger, but it must survive",
    );
    for (option, path) in [
        ("--rejects", "l.db"),
        ("--errors", "l.db"),
        ("--summary", "l.db"),
        ("--errors", "l.db-wal"),
        ("--summary", "p.csv"),
        ("--summary", "./p.csv"),
    ] {
        let o = run_in(
            dir.path(),
            &[
                "import",
                "p.csv",
                "--dry-run",
                "-q",
                "--state",
                "l.db",
                option,
                path,
            ],
        );
        assert_eq!(o.status.code(), Some(1), "{option} {path}: {}", stderr(&o));
        assert!(
            stderr(&o).contains(option),
            "{option} {path}: {}",
            stderr(&o)
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("l.db")).unwrap(),
            "not really a ledger, but it must survive"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("p.csv")).unwrap(),
            GOOD
        );
    }
    // --summary and a report may not share a file either.
    let o = run_in(
        dir.path(),
        &[
            "import",
            "p.csv",
            "--dry-run",
            "-q",
            "--errors",
            "x.csv",
            "--summary",
            "x.csv",
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

/// Second red-team pass: a named pipe as a report path was opened and closed by the start-up
/// check (ending its reader), so the first failed row then blocked forever opening it again.
#[test]
fn a_named_pipe_as_the_errors_file_receives_the_errors() {
    let dir = tempdir();
    write(dir.path(), "bad.csv", "id,name\n1,a\n,b\n");
    let fifo = dir.path().join("ff");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // The reader: holds the pipe open until the writer closes it, then returns what it read.
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read_to_string(fifo).unwrap())
    };
    let mut child = Command::new(bin())
        .current_dir(dir.path())
        .args(["import", "bad.csv", "--dry-run", "-q", "--errors", "ff"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            // Unblock the reader thread so the test ends.
            let _ = std::fs::OpenOptions::new().write(true).open(&fifo);
            panic!("the import hung on the named pipe");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(2));
    let got = reader.join().unwrap();
    assert!(got.contains("identifier column 'id' is empty"), "{got}");
}
