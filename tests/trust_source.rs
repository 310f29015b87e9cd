//! Trust in what the source side reports (issue 10, items 10, 12 and 13): the line of each row
//! is the one a text editor shows whatever the line endings; `inspect`'s suggested mapping
//! imports as it is; Ctrl-C or SIGTERM stops a run reading a stalled stdin at once.

mod common;

use common::*;
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Item 10: line numbers.

/// (row, line) of each failed row in the errors file, in row order.
fn failed_positions(run: &Run) -> Vec<(u64, u64)> {
    let mut v: Vec<(u64, u64)> = run
        .errors()
        .iter()
        .map(|e| (e["row"].parse().unwrap(), e["line"].parse().unwrap()))
        .collect();
    v.sort();
    v
}

/// A file whose bad rows (an empty id, a ragged row) sit at known lines: (name, content,
/// expected (row, line) of each failed row).
type LineCase = (&'static str, Vec<u8>, Vec<(u64, u64)>);

fn line_cases() -> Vec<LineCase> {
    let lf = "id,name\nu1,a\n,empty id\nu3\nu4,d\n";
    vec![
        ("lf.csv", lf.into(), vec![(2, 3), (3, 4)]),
        (
            "crlf.csv",
            lf.replace('\n', "\r\n").into(),
            vec![(2, 3), (3, 4)],
        ),
        (
            "last_line_without_ending.csv",
            "id,name\r\nu1,a\r\nu2".into(),
            vec![(2, 3)],
        ),
        (
            "blank_lines_lf.csv",
            "id,name\n\nu1,a\n\n\n,empty id\n\nu3\n\n".into(),
            vec![(2, 6), (3, 8)],
        ),
        (
            "blank_lines_crlf.csv",
            "id,name\r\n\r\nu1,a\r\n\r\n\r\n,empty id\r\n\r\nu3\r\n\r\n".into(),
            vec![(2, 6), (3, 8)],
        ),
        (
            // A quoted field spans lines 3-5; the ragged row after it starts on line 6, and a
            // ragged row that itself holds a quoted newline is placed where it starts (line 7).
            "quoted_newlines.csv",
            "id,name\r\nu1,a\r\nu2,\"two\r\nthree\nfour\"\r\nu3\r\nu4,\"x\r\ny\",extra\r\nu5,e\r\n"
                .into(),
            vec![(3, 6), (4, 7)],
        ),
        (
            "bom.csv",
            "\u{feff}id,name\r\n,empty id\r\nu2,b\r\nu3\r\n".into(),
            vec![(1, 2), (3, 4)],
        ),
        (
            "gzip.csv.gz",
            gzip(b"id,name\r\n\r\nu1,a\r\n,empty id\r\n\r\nu3\r\n"),
            vec![(2, 4), (3, 6)],
        ),
        (
            "lone_cr.csv",
            "id,name\ru1,a\r,empty id\ru3\r".into(),
            vec![(2, 3), (3, 4)],
        ),
        (
            "crlf_blank_lines.jsonl",
            "{\"id\":\"u1\"}\r\n\r\n{\"id\":\"\"}\r\n  \r\n\r\n[1]\r\n{\"id\":\"u4\"}".into(),
            vec![(2, 3), (3, 6)],
        ),
    ]
}

#[test]
fn errors_file_lines_are_what_an_editor_shows_for_every_line_ending() {
    let dir = tempdir();
    let mut wrong = Vec::new();
    for (name, content, expected) in line_cases() {
        write(dir.path(), name, &content);
        let run = import(dir.path(), None, &[name, "--dry-run"], None);
        assert_eq!(run.code, 2, "{name}: {}", run.stderr);
        let got = failed_positions(&run);
        if got != expected {
            wrong.push(format!(
                "{name}: (row, line) {got:?}, expected {expected:?}"
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong lines:\n{}", wrong.join("\n"));
}

#[test]
fn inspect_and_state_name_the_same_lines_as_the_errors_file() {
    let dir = tempdir();
    let content = "id,name\r\n\r\nu1,a\r\n,empty id\r\nu3\r\n";
    write(dir.path(), "p.csv", content);
    // inspect
    let report = inspect_json(dir.path(), &["p.csv"]);
    let lines: Vec<(u64, u64)> = report["invalid_examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["row"].as_u64().unwrap(), e["line"].as_u64().unwrap()))
        .collect();
    assert_eq!(lines, vec![(2, 4), (3, 5)], "{report}");
    // state: the ledger's failures table
    let sb = plain();
    let run = sb.import(dir.path(), &["p.csv", "--state", "s.db"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(failed_positions(&run), vec![(2, 4), (3, 5)]);
    let out = Command::new(bin())
        .args(["state", "s.db"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("row 2 (line 4)"), "{text}");
    assert!(text.contains("row 3 (line 5)"), "{text}");
}

#[test]
fn reading_stopped_after_the_line_of_the_last_row_read() {
    // Row k sits on line 2k (a blank CRLF line after each row); the gzip stream breaks off.
    let mut csv = String::from("id,name\r\n");
    for k in 1..=20_000 {
        csv.push_str(&format!("u{k},name {k}\r\n\r\n"));
    }
    let gz = gzip(csv.as_bytes());
    let dir = tempdir();
    write(dir.path(), "cut.csv.gz", &gz[..gz.len() / 2]);
    let run = import(dir.path(), None, &["cut.csv.gz", "--dry-run"], None);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let rows = run.n("rows");
    assert!(rows > 100 && rows < 20_000, "{}", run.summary);
    assert_eq!(
        run.summary["read_stopped_at_line"].as_u64(),
        Some(2 * rows),
        "{}",
        run.summary
    );
}

// ---------------------------------------------------------------------------------------------
// Item 12: inspect's suggested mapping imports as it is.

fn samples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("samples")
}

/// Inspects `file` (with `extra` arguments), writes the suggestion, and dry-runs an import with
/// it alone; returns (inspect report, import run).
fn round_trip(dir: &Path, file: &Path, extra: &[&str], endpoint: Option<&str>) -> (Value, Run) {
    let kind = kind_args(file);
    let file = file.to_str().unwrap();
    let mut args = vec![file];
    args.extend_from_slice(extra);
    args.extend_from_slice(kind);
    let report = inspect_json(dir, &args);
    let suggested = report["suggested_mapping"].as_str().unwrap();
    write(dir, "suggested.toml", suggested);
    let mut import_args = vec![file, "--mapping", "suggested.toml"];
    import_args.extend_from_slice(kind);
    if endpoint.is_none() {
        import_args.push("--dry-run");
    }
    let run = import(dir, endpoint, &import_args, None);
    (report, run)
}

/// The samples of objects and relationships are read as such (by inspect and the import).
fn kind_args(file: &Path) -> &'static [&'static str] {
    let name = file.file_name().unwrap().to_string_lossy();
    if name.contains("companies") {
        &["--kind", "objects", "--object-type-id", "1"]
    } else if name.contains("memberships") || name.contains("associations") {
        &["--kind", "relationships", "--object-type-id", "1"]
    } else {
        &[]
    }
}

/// The import read the same rows inspect did and found the same invalid ones.
fn assert_imports_as_inspected(what: &str, report: &Value, run: &Run) {
    assert!(
        run.code == 0 || run.code == 2,
        "{what}: the suggested mapping does not import (exit {}):\n{}\n{}",
        run.code,
        report["suggested_mapping"].as_str().unwrap_or(""),
        run.stderr
    );
    assert_eq!(
        run.summary["outcome"], "completed",
        "{what}: {}",
        run.summary
    );
    assert_eq!(run.n("rows"), report["rows"].as_u64().unwrap(), "{what}");
    assert_eq!(
        run.n("invalid"),
        report["invalid_rows"].as_u64().unwrap(),
        "{what}: {}\n{}",
        run.summary,
        report
    );
    assert!(
        run.n("sent") + run.n("skipped") > 0,
        "{what}: nothing importable: {}",
        report
    );
}

#[test]
fn every_sample_and_every_preset_round_trips_through_the_suggested_mapping() {
    let dir = tempdir();
    let mut sample_files: Vec<PathBuf> = std::fs::read_dir(samples())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.to_string_lossy();
            n.ends_with(".csv") || n.ends_with(".jsonl")
        })
        .collect();
    sample_files.sort();
    assert!(sample_files.len() >= 9);
    // The objects and relationships samples of a preset are in that preset's columns only.
    let preset_only = [
        "hubspot-companies",
        "hubspot-associations",
        "intercom-companies",
    ];
    for file in &sample_files {
        let stem = file.file_stem().unwrap().to_string_lossy();
        if preset_only.contains(&stem.as_ref()) {
            continue;
        }
        let what = format!("{} without a preset", file.display());
        let (report, run) = round_trip(dir.path(), file, &[], None);
        assert_imports_as_inspected(&what, &report, &run);
    }
    let presets = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/presets");
    let mut names: Vec<String> = std::fs::read_dir(presets)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().to_string())
        .collect();
    names.sort();
    assert_eq!(names.len(), 10);
    for preset in &names {
        let own: Vec<&PathBuf> = sample_files
            .iter()
            .filter(|f| {
                // `hubspot.csv` and `hubspot_...` are the hubspot preset's, not
                // `hubspot-companies.csv`.
                let stem = f.file_stem().unwrap().to_string_lossy();
                stem == preset.as_str() || stem.starts_with(&format!("{preset}_"))
            })
            .collect();
        assert!(!own.is_empty(), "the preset {preset} has no sample");
        for file in own {
            let what = format!("{} with --preset {preset}", file.display());
            let (report, run) = round_trip(dir.path(), file, &["--preset", preset], None);
            assert_imports_as_inspected(&what, &report, &run);
        }
    }
}

#[test]
fn mailchimp_suggestion_imports_into_the_sandbox() {
    let dir = tempdir();
    let sb = plain();
    let file = samples().join("mailchimp_subscribed.csv");
    let (report, run) = round_trip(
        dir.path(),
        &file,
        &["--preset", "mailchimp"],
        Some(&sb.url()),
    );
    assert_eq!(
        run.code, 0,
        "{}\n{}",
        report["suggested_mapping"], run.stderr
    );
    assert_eq!(run.n("sent"), 2);
    let people = sb.people();
    let ana = people
        .get("ana@example.com")
        .expect("ana was imported by email");
    assert_eq!(ana.attributes["first_name"], "Ana");
}

#[test]
fn inspect_without_an_id_column_suggests_the_email_column() {
    let dir = tempdir();
    let report = inspect_json(
        dir.path(),
        &[samples().join("klaviyo.csv").to_str().unwrap()],
    );
    let suggested = report["suggested_mapping"].as_str().unwrap();
    assert!(suggested.contains("identify_by = \"email\""), "{suggested}");
    assert!(suggested.contains("id_column = \"email\""), "{suggested}");
    assert_eq!(report["identifier"]["kind"], "email", "{report}");
    assert_eq!(report["identifier"]["coverage"], 1.0, "{report}");
}

#[test]
fn inspect_never_claims_coverage_for_a_column_that_does_not_exist() {
    let dir = tempdir();
    // A `;` file read as `,` from stdin (said so: nothing is detected): one column named
    // "id;email".
    let out = Command::new(bin())
        .args([
            "inspect",
            "-",
            "--format",
            "csv",
            "--delimiter",
            ",",
            "--json",
        ])
        .current_dir(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .unwrap()
                .write_all(b"id;email\nu1;a@example.com\nu2;b@example.com\n")?;
            c.wait_with_output()
        })
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["identifier"]["coverage"], 0.0, "{report}");
    assert_eq!(report["identifier"]["missing"], 2, "{report}");
    // From a file, inspect notices the delimiter and its suggestion imports.
    write(
        dir.path(),
        "semi.csv",
        "id;email\nu1;a@example.com\nu2;b@example.com\n",
    );
    let (report, run) = round_trip(dir.path(), &dir.path().join("semi.csv"), &[], None);
    assert_imports_as_inspected("semi.csv", &report, &run);
    assert_eq!(run.n("skipped"), 2);
}

// ---------------------------------------------------------------------------------------------
// Item 13: a signal stops a run reading a stalled stdin.

fn interrupt_while_stdin_stalls(signal: &str) {
    let sb = plain();
    let dir = tempdir();
    let mut child = import_command(
        dir.path(),
        &sb.url(),
        &["-", "--format", "csv", "--summary", "s.json", "-q"],
    )
    .stdin(Stdio::piped())
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // A producer that writes three rows and then stalls with the pipe open.
    let mut producer = child.stdin.take().unwrap();
    producer.write_all(b"id,name\nu1,a\nu2,b\nu3,c\n").unwrap();
    producer.flush().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.people().len() < 3 {
        assert!(Instant::now() < deadline, "the rows never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, waited) = signal_and_wait(
        &mut child,
        signal,
        Duration::from_secs(5),
        "reading a stalled stdin",
    );
    drop(producer);
    assert_eq!(status.code(), Some(130), "{signal}");
    assert!(waited < Duration::from_secs(2), "{signal}: took {waited:?}");
    let s: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert_accounted(&s);
    assert_eq!(s["outcome"], "interrupted", "{s}");
    assert_eq!(s["exit_code"], 130, "{s}");
    assert_eq!(s["rows"], 3, "{s}");
    assert_eq!(s["sent"], 3, "{s}");
    assert_eq!(s["read_stopped_at_line"], 4, "{s}");
}

#[test]
fn sigint_stops_a_run_reading_a_stalled_stdin() {
    interrupt_while_stdin_stalls("-INT");
}

#[test]
fn sigterm_stops_a_run_reading_a_stalled_stdin() {
    interrupt_while_stdin_stalls("-TERM");
}

/// Sends `signal` (`-INT`, `-TERM`) to `child` and waits for it to exit, at most `limit`
/// (then it is killed and the test fails, naming `what`). Returns the status and the wait.
fn signal_and_wait(
    child: &mut std::process::Child,
    signal: &str,
    limit: Duration,
    what: &str,
) -> (std::process::ExitStatus, Duration) {
    let signalled = Instant::now();
    let st = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return (s, signalled.elapsed());
        }
        if signalled.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running {limit:?} after {signal}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until the process catches SIGINT and SIGTERM (its handlers are installed), so that a
/// signal sent next is handled rather than killing it.
fn wait_for_signal_handlers(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        // Bit n-1 stands for signal n: SIGINT is 2, SIGTERM 15.
        if caught & (1 << 1) != 0 && caught & (1 << 14) != 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the importer never installed its handlers"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Red-team finding: a producer that stalls before its first line (no header yet, or half of
/// it) held the run forever, whatever the signal.
#[test]
fn a_signal_stops_a_run_whose_producer_stalls_before_the_header() {
    for (signal, format, sent) in [
        ("-TERM", "csv", &b""[..]),
        ("-INT", "csv", b"id,na"),
        ("-INT", "jsonl", b""),
    ] {
        let sb = plain();
        let dir = tempdir();
        let mut child = import_command(
            dir.path(),
            &sb.url(),
            &["-", "--format", format, "--summary", "s.json", "-q"],
        )
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let mut producer = child.stdin.take().unwrap();
        producer.write_all(sent).unwrap();
        producer.flush().unwrap();
        wait_for_signal_handlers(child.id());
        let what = format!("{format}, producer stalled before the header");
        let (status, _) = signal_and_wait(&mut child, signal, Duration::from_secs(5), &what);
        drop(producer);
        assert_eq!(status.code(), Some(130), "{signal} {format}");
        let s: Value =
            serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
        assert_accounted(&s);
        assert_eq!(s["outcome"], "interrupted", "{s}");
        assert_eq!(sb.stats().requests, 0);
    }
}

/// Red-team finding: SIGTERM waited for a request in flight up to `--timeout` (30 s by
/// default), past a container's stop grace period. Requests in flight now get 5 s, then their
/// rows are reported `not_attempted` as possibly applied, and the run writes its reports.
#[test]
fn sigterm_does_not_wait_out_a_stalled_request() {
    let sb = sandbox(cio_import::sandbox::SandboxConfig {
        script: vec![cio_import::sandbox::Fault::Slow],
        slow: Duration::from_secs(60),
        ..cio_import::sandbox::SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", "id,plan\n1,free\n2,free\n");
    let mut child = import_command(
        dir.path(),
        &sb.url(),
        &[
            "p.csv",
            "--summary",
            "s.json",
            "--errors",
            "e.csv",
            "-q",
            "--timeout",
            "60",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while sb.stats().in_flight < 1 {
        assert!(Instant::now() < deadline, "the request never arrived");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_for_signal_handlers(child.id());
    let (status, _) = signal_and_wait(
        &mut child,
        "-TERM",
        Duration::from_secs(20),
        "waiting out a request in flight",
    );
    assert_eq!(status.code(), Some(130));
    let s: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert_accounted(&s);
    assert_eq!(
        (s["sent"].as_u64(), s["not_attempted"].as_u64()),
        (Some(0), Some(2)),
        "{s}"
    );
    let errors = common::read_csv_maps(&dir.path().join("e.csv"));
    assert!(
        errors[0]["message"].contains("may have been applied"),
        "{errors:?}"
    );
}
