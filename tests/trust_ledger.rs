//! Issue 10, the ledger and delivery items: a ledger tied to its workspace, update-only
//! acknowledgements, unknown outcomes, unreadable 207 bodies, and a refusal after a stop.

mod common;

use cio_import::config::ImportConfig;
use cio_import::report::progress::ProgressMode;
use cio_import::sandbox::{Fault, SandboxConfig};
use cio_import::source::{Format, Input};
use cio_import::Stop;
use common::*;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn people_csv(n: usize, plan: &str) -> String {
    numbered_csv("id,name,plan", n, |i| format!("p{i},Person {i},{plan}"))
}

fn plan_of(sb: &Sb, id: &str) -> Option<String> {
    sb.people().get(id).and_then(|p| {
        attrs(p)
            .get("plan")
            .and_then(|v| v.as_str().map(String::from))
    })
}

/// Item 1: a rehearsal against one workspace must not make another workspace skip anyone.
#[test]
fn a_ledger_filled_on_one_workspace_skips_nobody_on_another() {
    let rehearsal = plain();
    // Another workspace: another site id, another host (port).
    let production = sandbox_as_is(SandboxConfig::plain());
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(50, "free"));
    let args = ["p.csv", "--state", "state.db"];

    let first = import(dir.path(), Some(&rehearsal.url()), &args, None);
    assert_eq!((first.code, first.n("sent")), (0, 50), "{}", first.stderr);

    let other = import_env(
        dir.path(),
        Some(&production.url()),
        &args,
        None,
        &[("CUSTOMERIO_SITE_ID", "production-site")],
    );
    assert_eq!(other.code, 0, "{}", other.stderr);
    assert_eq!(
        (other.n("sent"), other.n("skipped")),
        (50, 0),
        "another workspace must receive everyone"
    );
    assert_eq!(production.people().len(), 50);
    assert!(
        other.stderr.contains("production-site") && other.stderr.contains("everyone"),
        "the log says why everyone is sent: {}",
        other.stderr
    );

    // The same site id on another host is another destination too.
    let same_site_other_host = plain();
    let third = import(dir.path(), Some(&same_site_other_host.url()), &args, None);
    assert_eq!(
        (third.n("sent"), third.n("skipped")),
        (50, 0),
        "{}",
        third.stderr
    );

    // Each destination keeps its own acknowledgements: a re-run on either skips everyone.
    let again = import(dir.path(), Some(&rehearsal.url()), &args, None);
    assert_eq!((again.n("sent"), again.n("skipped")), (0, 50));
    let again = import_env(
        dir.path(),
        Some(&production.url()),
        &args,
        None,
        &[("CUSTOMERIO_SITE_ID", "production-site")],
    );
    assert_eq!((again.n("sent"), again.n("skipped")), (0, 50));
}

/// Item 2: an update-only send to someone who does not exist changes nothing, so it must not
/// be recorded as delivered.
#[test]
fn an_update_only_acknowledgement_is_not_recorded_as_delivered() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(20, "free"));
    let first = sb.import(
        dir.path(),
        &["p.csv", "--state", "state.db", "--update-only"],
    );
    assert_eq!((first.code, first.n("sent")), (0, 20), "{}", first.stderr);
    assert_eq!(sb.people().len(), 0, "update-only never creates");

    let second = sb.import(dir.path(), &["p.csv", "--state", "state.db"]);
    assert_eq!(
        (second.code, second.n("sent"), second.n("skipped")),
        (0, 20, 0),
        "{}",
        second.stderr
    );
    assert_eq!(sb.people().len(), 20);

    // Now that an unconditional send was acknowledged, the ledger may skip them.
    let third = sb.import(
        dir.path(),
        &["p.csv", "--state", "state.db", "--update-only"],
    );
    assert_eq!((third.n("sent"), third.n("skipped")), (0, 20));
}

/// Item 3: a send that may have been applied (applied, then 500) leaves the ledger unsure, so
/// a source that reverts to the last acknowledged value is sent again.
#[test]
fn an_applied_then_failed_night_is_not_skipped_when_the_source_reverts() {
    let sb = sandbox(SandboxConfig {
        // Night 1 passes; night 2's only request is applied, then answered 500.
        script: vec![Fault::Pass, Fault::Ambiguous],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    let args = [
        "p.csv",
        "--state",
        "state.db",
        "--max-retries",
        "0",
        "--backoff-base-ms",
        "1",
    ];
    write(dir.path(), "p.csv", people_csv(10, "free"));
    let night1 = sb.import(dir.path(), &args);
    assert_eq!(
        (night1.code, night1.n("sent")),
        (0, 10),
        "{}",
        night1.stderr
    );

    write(dir.path(), "p.csv", people_csv(10, "upgraded"));
    let night2 = sb.import(dir.path(), &args);
    assert_eq!(night2.n("exhausted"), 10, "{}", night2.stderr);
    assert_eq!(
        plan_of(&sb, "p0").as_deref(),
        Some("upgraded"),
        "applied, then failed"
    );

    write(dir.path(), "p.csv", people_csv(10, "free"));
    let night3 = sb.import(dir.path(), &args);
    assert_eq!(
        (night3.code, night3.n("sent"), night3.n("skipped")),
        (0, 10, 0),
        "{}",
        night3.stderr
    );
    assert_eq!(plan_of(&sb, "p0").as_deref(), Some("free"));
}

/// A tiny HTTP/1.1 server whose answers the test writes byte for byte: `answer(i, body)` is
/// called for the i-th request (from 0) and returns the raw response, or `None` to close the
/// connection without one (an answer with `connection: close` closes it after writing).
/// Each connection is served on its own thread.
struct RawServer {
    url: String,
}

type Answerer = dyn Fn(usize, &[u8]) -> Option<Vec<u8>> + Send + Sync;

impl RawServer {
    fn start(answer: Arc<Answerer>) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let (answer, count) = (answer.clone(), count.clone());
                std::thread::spawn(move || serve(conn, &*answer, &count));
            }
        });
        RawServer { url }
    }
}

fn serve(conn: TcpStream, answer: &Answerer, count: &AtomicUsize) {
    let mut out = conn.try_clone().unwrap();
    let mut rd = BufReader::new(conn);
    loop {
        let mut len = 0usize;
        let mut first = true;
        loop {
            let mut line = String::new();
            if rd.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if first && line.trim().is_empty() {
                continue;
            }
            first = false;
            if line == "\r\n" {
                break;
            }
            if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; len];
        if rd.read_exact(&mut body).is_err() {
            return;
        }
        let i = count.fetch_add(1, Ordering::SeqCst);
        match answer(i, &body) {
            Some(resp) => {
                if out.write_all(&resp).is_err() {
                    return;
                }
                let head = String::from_utf8_lossy(&resp).to_ascii_lowercase();
                if head.contains("\r\nconnection: close\r\n") {
                    let _ = out.shutdown(std::net::Shutdown::Both);
                    return;
                }
            }
            None => {
                let _ = out.shutdown(std::net::Shutdown::Both);
                return;
            }
        }
    }
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A 207 whose body breaks off: the length promises more than comes, then the server closes.
fn cut_207() -> Vec<u8> {
    b"HTTP/1.1 207 Multi-Status\r\ncontent-type: application/json\r\ncontent-length: 200\r\nconnection: close\r\n\r\n{\"errors\":[{\"batch_i".to_vec()
}

/// Item 4: a 207 whose errors cannot be read is an unknown outcome: retried, never counted sent.
#[test]
fn an_unreadable_207_is_retried_and_never_acknowledged() {
    for (name, bad) in [
        ("cut off", cut_207()),
        (
            "not JSON",
            response("207 Multi-Status", "<html>oops</html>"),
        ),
        ("no errors list", response("207 Multi-Status", "{}")),
        (
            "an index outside the batch",
            response(
                "207 Multi-Status",
                r#"{"errors":[{"batch_index":7,"reason":"invalid","message":"x"}]}"#,
            ),
        ),
    ] {
        // First answer unreadable, then 200: every row is sent, after one retry.
        let bad2 = bad.clone();
        let server = RawServer::start(Arc::new(move |i, _| {
            Some(if i == 0 {
                bad2.clone()
            } else {
                response("200 OK", "{}")
            })
        }));
        let dir = tempdir();
        write(dir.path(), "p.csv", people_csv(5, "free"));
        let run = import(
            dir.path(),
            Some(&server.url),
            &["p.csv", "--backoff-base-ms", "1"],
            None,
        );
        assert_eq!(
            (run.code, run.n("sent"), run.n("requests")),
            (0, 5, 2),
            "{name}: {}",
            run.stderr
        );

        // Always unreadable and no retries left: the rows are exhausted, not sent.
        let server = RawServer::start(Arc::new(move |_, _| Some(bad.clone())));
        let run = import(
            dir.path(),
            Some(&server.url),
            &["p.csv", "--max-retries", "0", "--state", "state.db"],
            None,
        );
        assert_eq!(
            (run.n("sent"), run.n("exhausted")),
            (0, 5),
            "{name}: {}",
            run.stderr
        );
        assert!(
            run.errors()[0]["message"].contains("207"),
            "{name}: {:?}",
            run.errors()
        );
        // And the ledger recorded nobody: a re-run sends everyone.
        let ok = RawServer::start(Arc::new(|_, _| Some(response("200 OK", "{}"))));
        let rerun = import(
            dir.path(),
            Some(&ok.url),
            &["p.csv", "--state", "state.db"],
            None,
        );
        assert_eq!(rerun.n("sent"), 5, "{name}: {}", rerun.stderr);
    }
}

/// A 207 that names its bad operation is read as before: that row rejected, the rest sent.
#[test]
fn a_readable_207_still_rejects_only_its_rows() {
    let server = RawServer::start(Arc::new(|_, _| {
        Some(response(
            "207 Multi-Status",
            r#"{"errors":[{"batch_index":1,"reason":"invalid","field":"identifiers","message":"bad id"}]}"#,
        ))
    }));
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(3, "free"));
    let run = import(dir.path(), Some(&server.url), &["p.csv"], None);
    assert_eq!(
        (run.n("sent"), run.n("rejected"), run.n("requests")),
        (2, 1, 1)
    );
    assert_eq!(run.errors()[0]["identifier"], "p1");
}

fn library_config(dir: &Path, url: &str) -> ImportConfig {
    let mut cfg = ImportConfig::new(
        Input::Path(dir.join("p.csv")),
        Format::Csv,
        url.parse().unwrap(),
    );
    cfg.credentials = Some(creds());
    cfg.rejects = dir.join("rejects.csv");
    cfg.errors = dir.join("errors.csv");
    cfg.progress = ProgressMode::Log;
    cfg.backoff_base = Duration::from_millis(1);
    cfg
}

fn run_library(cfg: ImportConfig, stop: Stop) -> cio_import::Summary {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(cio_import::run(cfg, stop))
}

/// Item 11: a 400 that arrives after Ctrl-C cannot be bisected any more, so which of the
/// batch's rows is bad is unknown: they are `not_attempted`, not `rejected`.
#[test]
fn a_400_after_ctrl_c_leaves_the_untested_rows_not_attempted() {
    let stop = Stop::new();
    let s = stop.clone();
    let server = RawServer::start(Arc::new(move |_, _| {
        // Ctrl-C while the batch is in flight, then the API refuses the batch.
        s.interrupt();
        Some(response(
            "400 Bad Request",
            r#"{"errors":[{"reason":"invalid","message":"bad batch"}]}"#,
        ))
    }));
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(4, "free"));
    let summary = run_library(library_config(dir.path(), &server.url), stop);
    assert_eq!(
        (summary.rejected, summary.not_attempted, summary.sent),
        (0, 4, 0),
        "{summary:?}"
    );
    let errors = read_csv_maps(&dir.path().join("errors.csv"));
    assert_eq!(errors.len(), 4);
    assert!(errors.iter().all(|e| e["class"] == "not_attempted"));
    assert!(
        errors[0]["message"].contains("400"),
        "the message keeps what the API said: {errors:?}"
    );
}

/// Item 11, the 401 path: one batch is refused for its credentials, another's 400 arrives
/// after that; its rows were never tested one by one.
#[test]
fn a_400_after_a_401_leaves_the_untested_rows_not_attempted() {
    let stop = Stop::new();
    let s = stop.clone();
    let arrived = Arc::new(AtomicUsize::new(0));
    let server = RawServer::start(Arc::new(move |i, _| {
        arrived.fetch_add(1, Ordering::SeqCst);
        let deadline = Instant::now() + Duration::from_secs(20);
        // Hold each request until both batches are in flight.
        while arrived.load(Ordering::SeqCst) < 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        if i == 0 {
            return Some(response("401 Unauthorized", r#"{"meta":{"error":"no"}}"#));
        }
        // The 400 only once the importer has taken in the 401.
        while !s.is_stopped() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        Some(response(
            "400 Bad Request",
            r#"{"errors":[{"reason":"invalid"}]}"#,
        ))
    }));
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(4, "free"));
    let mut cfg = library_config(dir.path(), &server.url);
    cfg.batch_size = Some(2);
    cfg.concurrency = 2;
    let summary = run_library(cfg, stop);
    assert_eq!(
        (summary.rejected, summary.not_attempted, summary.sent),
        (0, 4, 0),
        "{summary:?}"
    );
}

/// Item 3, the crash path: while a changed row is in flight, the ledger already holds no
/// claim on that person, so a kill -9 before the answer cannot leave a stale hash behind.
#[test]
fn a_changed_row_in_flight_has_no_ledger_claim_and_survives_kill_9() {
    // One workspace: it answers 200 until `hang` is set, then takes requests and never
    // answers them.
    let hang = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (arrived_tx, arrived) = std::sync::mpsc::channel::<()>();
    let arrived_tx = std::sync::Mutex::new(arrived_tx);
    let h = hang.clone();
    let server = RawServer::start(Arc::new(move |_, _| {
        if !h.load(Ordering::SeqCst) {
            return Some(response("200 OK", "{}"));
        }
        let _ = arrived_tx.lock().unwrap().send(());
        let deadline = Instant::now() + Duration::from_secs(60);
        while h.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        None
    }));
    let dir = tempdir();
    let args = ["p.csv", "--state", "state.db"];
    write(dir.path(), "p.csv", people_csv(3, "free"));
    let night1 = import(dir.path(), Some(&server.url), &args, None);
    assert_eq!(night1.n("sent"), 3, "{}", night1.stderr);
    assert_eq!(ledger_count(&dir.path().join("state.db")), 3);

    // Night 2 changes everyone; the request is taken and never answered.
    hang.store(true, Ordering::SeqCst);
    write(dir.path(), "p.csv", people_csv(3, "upgraded"));
    let mut child = import_command(dir.path(), &server.url, &args)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    arrived
        .recv_timeout(Duration::from_secs(30))
        .expect("the changed rows reach the server");
    let during = ledger_count(&dir.path().join("state.db"));
    child.kill().unwrap();
    child.wait().unwrap();
    hang.store(false, Ordering::SeqCst);
    assert_eq!(
        during, 0,
        "while the outcome is unknown, the ledger must not claim the old values"
    );

    // Night 3 reverts to night 1's values: they are sent, not skipped.
    write(dir.path(), "p.csv", people_csv(3, "free"));
    let night3 = import(dir.path(), Some(&server.url), &args, None);
    assert_eq!(
        (night3.n("sent"), night3.n("skipped")),
        (3, 0),
        "{}",
        night3.stderr
    );
}

/// People whose values the ledger claims (a record without a hash is a feed's member whose
/// values are unknown).
fn ledger_count(path: &Path) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .unwrap();
    conn.query_row(
        "SELECT count(*) FROM people WHERE length(hash) = 16",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

/// A state file written before acknowledgements named their workspace is not trusted: its
/// people are sent once, and the log says why.
#[test]
fn a_ledger_from_before_workspaces_sends_everyone_once() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", people_csv(5, "free"));
    // The old schema, with every person "acknowledged" (by some workspace nobody recorded).
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    conn.execute_batch(
        "CREATE TABLE people (kind TEXT NOT NULL, identifier TEXT NOT NULL, hash BLOB NOT NULL,
            acked_at INTEGER NOT NULL, run_id INTEGER NOT NULL, PRIMARY KEY (kind, identifier)) WITHOUT ROWID;
         CREATE TABLE runs (id INTEGER PRIMARY KEY, started_at INTEGER NOT NULL, ended_at INTEGER,
            input TEXT NOT NULL, summary TEXT, exit_code INTEGER);",
    )
    .unwrap();
    for i in 0..5 {
        conn.execute(
            "INSERT INTO people VALUES ('id', ?1, x'00', 0, 1)",
            [format!("p{i}")],
        )
        .unwrap();
    }
    drop(conn);
    let args = ["p.csv", "--state", "state.db"];
    let run = sb.import(dir.path(), &args);
    assert_eq!((run.code, run.n("sent")), (0, 5), "{}", run.stderr);
    assert!(run.stderr.contains("no longer trusted"), "{}", run.stderr);
    let again = sb.import(dir.path(), &args);
    assert_eq!((again.n("sent"), again.n("skipped")), (0, 5));
}

/// Red-team finding: an `_update` attribute in the data makes a send conditional just like
/// `--update-only`; its acknowledgement must not be recorded either. (Whether Customer.io reads
/// a CSV's string "true" as the flag is unknown, so the ledger treats any `_update` as one.)
#[test]
fn an_update_attribute_in_the_data_is_not_recorded_as_delivered() {
    for (file, content) in [
        ("p.jsonl", "{\"id\":\"u1\",\"a\":\"x\",\"_update\":true}\n"),
        ("p.csv", "id,a,_update\nu1,x,true\n"),
    ] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), file, content);
        let args = [file, "--state", "state.db"];
        let first = sb.import(dir.path(), &args);
        assert_eq!((first.code, first.n("sent")), (0, 1), "{}", first.stderr);
        if file.ends_with(".jsonl") {
            assert_eq!(
                sb.people().len(),
                0,
                "{file}: an update-only send creates nobody"
            );
        }
        let again = sb.import(dir.path(), &args);
        assert_eq!(
            (again.n("sent"), again.n("skipped")),
            (1, 0),
            "{file}: the ledger must not vouch for a conditional send"
        );
    }
}
