//! Issue 14, part 1, against the sandbox: the guards (an empty export, `--min-rows`,
//! `--max-change`), mirror mode (delete, suppress, clear; nothing after a read error or an
//! interrupted read; the cap), and the real preview (`--dry-run --state`, `sync --dry-run`),
//! which changes neither the ledger nor its run history.

mod common;

use cio_import::sandbox::SandboxConfig;
use common::*;
use serde_json::Value;
use std::path::Path;

/// `n` people `p0..` with `plan` and `age`; `f(i)` may change a row (None drops it).
fn export(ids: impl Iterator<Item = usize>, f: impl Fn(usize) -> Option<String>) -> String {
    let mut s = String::from("id,plan,age\n");
    for i in ids {
        if let Some(line) = f(i) {
            s.push_str(&line);
            s.push('\n');
        }
    }
    s
}

fn plain_row(i: usize) -> Option<String> {
    Some(format!("p{i},free,{i}"))
}

/// Every row of the ledger's people and runs tables, as text, to compare before and after.
fn ledger_rows(path: &Path) -> (Vec<String>, Vec<String>) {
    let c = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .unwrap();
    let all = |sql: &str| -> Vec<String> {
        let mut st = c.prepare(sql).unwrap();
        let n = st.column_count();
        st.query_map([], |r| {
            Ok((0..n)
                .map(|i| format!("{:?}", r.get_ref(i).unwrap()))
                .collect::<Vec<_>>()
                .join("|"))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    };
    (
        all("SELECT * FROM people ORDER BY dest, kind, identifier"),
        all("SELECT * FROM runs ORDER BY id"),
    )
}

/// Deletions the sandbox accepted.
fn deletes(sb: &Sb) -> u64 {
    sb.stats().by_action.get("delete").copied().unwrap_or(0)
}

fn known_ids(path: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT identifier FROM people ORDER BY identifier")
        .unwrap();
    st.query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// Imports `p0..p{n}` once with a ledger, so that the ledger knows them.
fn first_night(sb: &Sb, dir: &Path, n: usize) {
    write(dir, "n1.csv", export(0..n, plain_row));
    let r = sb.import(dir, &["n1.csv", "--state", "st.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.n("sent") + r.n("skipped"), n as u64);
}

#[test]
fn a_header_only_export_stops_and_allow_empty_lets_it_pass() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 3);
    write(dir.path(), "empty.csv", "id,plan,age\n");
    let r = sb.import(
        dir.path(),
        &[
            "empty.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--yes",
        ],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("empty.csv has no rows") && r.stderr.contains("--allow-empty"),
        "{}",
        r.stderr
    );
    assert_eq!(r.summary["outcome"], "stopped by a guard");
    // The mirror removed nobody: an empty export is not "everyone left".
    assert_eq!(sb.people().len(), 3);
    assert_eq!(deletes(&sb), 0);
    write(dir.path(), "zero.csv", "");
    let r = sb.import(dir.path(), &["zero.csv"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("zero.csv has no rows"), "{}", r.stderr);
    let r = sb.import(dir.path(), &["zero.csv", "--allow-empty"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = sb.import(dir.path(), &["empty.csv", "--allow-empty"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.summary["outcome"], "completed");
}

#[test]
fn min_rows_stops_a_short_export_before_anything_is_sent() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "short.csv", export(0..5, plain_row));
    let r = sb.import(dir.path(), &["short.csv", "--min-rows", "6"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("5 rows, fewer than --min-rows 6")
            && r.stderr.contains("nothing was sent"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.stats().requests, 0);
    // From stdin the count is known only once read: the run fails, after sending.
    let data = std::fs::read(dir.path().join("short.csv")).unwrap();
    let r = import(
        dir.path(),
        Some(&sb.url()),
        &["-", "--format", "csv", "--min-rows", "6"],
        Some(&data),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.summary["outcome"], "stopped by a guard");
    let r = sb.import(dir.path(), &["short.csv", "--min-rows", "5"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
}

#[test]
fn a_30_percent_drop_stops_under_max_change_10_before_any_request() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 100);
    let before = sb.stats().requests;
    let (ledger_before, runs_before) = ledger_rows(&dir.path().join("st.db"));
    write(dir.path(), "n2.csv", export(0..70, plain_row));
    let r = sb.import(
        dir.path(),
        &["n2.csv", "--state", "st.db", "--max-change", "10"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr
            .contains("0 of the 100 people the state file knows for this workspace would change and 30 vanish (30.0%), more than --max-change 10%"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.stats().requests, before, "a request reached the sandbox");
    // The people are untouched; the night is in the run history, stopped by the guard.
    let (ledger_after, runs_after) = ledger_rows(&dir.path().join("st.db"));
    assert_eq!(ledger_after, ledger_before);
    assert_eq!(runs_after.len(), runs_before.len() + 1);
    assert_eq!(runs_after[..runs_before.len()], runs_before[..]);
    let c = rusqlite::Connection::open(dir.path().join("st.db")).unwrap();
    let last: String = c
        .query_row(
            "SELECT summary FROM runs ORDER BY id DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .unwrap();
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["outcome"], "stopped by a guard");
    assert_eq!(last["run_id"], r.summary["run_id"]);
    drop(c);
    // 5 changed + 5 vanished of 100 is 10%: not more than 10, so it runs.
    let changed = |i: usize| match i {
        0..=4 => Some(format!("p{i},pro,{i}")),
        95.. => None,
        _ => plain_row(i),
    };
    write(dir.path(), "n3.csv", export(0..100, changed));
    let r = sb.import(
        dir.path(),
        &["n3.csv", "--state", "st.db", "--max-change", "10"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!((r.n("sent"), r.n("skipped")), (5, 90));
    // A pipe cannot be counted first: refused, nothing sent.
    let data = std::fs::read(dir.path().join("n2.csv")).unwrap();
    let before = sb.stats().requests;
    let r = import(
        dir.path(),
        Some(&sb.url()),
        &[
            "-",
            "--format",
            "csv",
            "--state",
            "st.db",
            "--max-change",
            "10",
        ],
        Some(&data),
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("reads the input twice"), "{}", r.stderr);
    assert_eq!(sb.stats().requests, before);
}

#[test]
fn mirror_delete_removes_exactly_the_vanished() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["p6".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(
        dir.path(),
        "n1.csv",
        export(0..20, |i| (i != 6).then(|| format!("p{i},free,{i}"))),
    );
    let r = sb.import(dir.path(), &["n1.csv", "--state", "st.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // p6 was acknowledged on an earlier night, before the workspace started refusing it.
    let c = rusqlite::Connection::open(dir.path().join("st.db")).unwrap();
    c.execute(
        "INSERT INTO people (dest, kind, identifier, hash, acked_at, run_id) SELECT dest, kind, 'p6', hash, acked_at, run_id FROM people WHERE identifier = 'p0'",
        [],
    )
    .unwrap();
    // Another workspace's people and people known by email are never touched.
    c.execute(
        "INSERT INTO destinations (site_id, host, first_seen) VALUES ('other', 'x:1', 0)",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO people (dest, kind, identifier, hash, acked_at, run_id) VALUES ((SELECT id FROM destinations WHERE site_id = 'other'), 'id', 'p17', x'00', 0, 1)",
        [],
    )
    .unwrap();
    c.execute(
        "INSERT INTO people (dest, kind, identifier, hash, acked_at, run_id) SELECT dest, 'email', 'p18@example.com', hash, acked_at, run_id FROM people WHERE identifier = 'p0'",
        [],
    )
    .unwrap();
    drop(c);
    // Tonight: p17, p18, p19 vanished; p5's row is invalid (a value over 1000 bytes) and p6's
    // is refused by the API: both are seen, not absent.
    let long = "x".repeat(1001);
    let tonight = export(0..17, |i| match i {
        5 => Some(format!("p5,{long},5")),
        _ => Some(format!("p{i},free,{i}")),
    });
    write(dir.path(), "n2.csv", tonight);
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--max-removals",
            "3",
            "--yes",
        ],
    );
    assert_eq!(r.code, 2, "invalid and rejected rows: {}", r.stderr);
    assert_eq!((r.n("rows"), r.n("invalid"), r.n("rejected")), (17, 1, 1));
    let m = &r.summary["mirror"];
    assert_eq!(m["absent"], 3, "{m}");
    assert_eq!(m["removed"], 3, "{m}");
    assert_eq!(m["failed"], 0, "{m}");
    assert_eq!(m["other_kinds"], 1, "{m}");
    assert_eq!(m["first"], serde_json::json!(["p17", "p18", "p19"]));
    let people = sb.people();
    for gone in ["p17", "p18", "p19"] {
        assert!(!people.contains_key(gone), "{gone} still there");
    }
    assert!(people.contains_key("p5") && people.contains_key("p16"));
    assert_eq!(deletes(&sb), 3);
    // They left the ledger; the other workspace's and the email entry stay.
    let ids = known_ids(&dir.path().join("st.db"));
    assert!(!ids.iter().any(|i| i == "p18" || i == "p19"), "{ids:?}");
    assert!(
        ids.iter().any(|i| i == "p17"),
        "the other workspace's p17: {ids:?}"
    );
    assert!(ids.iter().any(|i| i == "p18@example.com"), "{ids:?}");
    assert!(
        r.stderr
            .contains("mirror delete: 20 known, 3 absent: 3 removed"),
        "{}",
        r.stderr
    );
    let out = std::process::Command::new(bin())
        .args(["state", "st.db"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("mirror delete: 3 absent, 3 removed, 0 failed"),
        "{text}"
    );
    // The next night with the same export removes nobody.
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--max-removals",
            "3",
            "--yes",
        ],
    );
    assert_eq!(r.summary["mirror"]["absent"], 0, "{}", r.summary);
    assert_eq!(deletes(&sb), 3);
}

#[test]
fn mirror_suppress_and_clear_reach_the_sandbox() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 6);
    write(dir.path(), "n2.csv", export(0..5, plain_row));
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--mirror",
            "clear:in_crm=false",
            "--max-removals",
            "1",
            "--yes",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(person(&sb, "p5")["in_crm"], Value::Bool(false));
    assert_eq!(person(&sb, "p5")["plan"], "free");
    assert!(person(&sb, "p4").get("in_crm").is_none());
    // Cleared people left the ledger: the next clear sends nothing more.
    assert_eq!(r.summary["mirror"]["removed"], 1);
    first_night(&sb, dir.path(), 6);
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--mirror",
            "clear:plan",
            "--max-removals",
            "1",
            "--yes",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(person(&sb, "p5")["plan"], "");
    first_night(&sb, dir.path(), 6);
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--mirror",
            "suppress",
            "--max-removals",
            "1",
            "--yes",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!sb.people().contains_key("p5"));
    let suppressed: Vec<String> = sb
        .sb
        .suppressed()
        .into_iter()
        .map(|s| s.identifier)
        .collect();
    assert_eq!(suppressed, vec!["p5".to_string()]);
    assert!(!known_ids(&dir.path().join("st.db")).contains(&"p5".to_string()));
}

#[test]
fn nothing_is_removed_after_a_read_error() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 40);
    // A gzip export cut short: some rows are read, then the read fails.
    let full = gzip(export(0..40, plain_row).as_bytes());
    let cut = &full[..full.len() / 2];
    write(dir.path(), "n2.csv.gz", cut);
    // A file is read once first: that reading fails, and nothing at all is sent.
    let requests = sb.stats().requests;
    let args = [
        "--state",
        "st.db",
        "--mirror",
        "delete",
        "--max-removals",
        "100%",
        "--yes",
    ];
    let mut file_args = vec!["n2.csv.gz"];
    file_args.extend(args);
    let r = sb.import(dir.path(), &file_args);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("cannot preview"), "{}", r.stderr);
    assert_eq!(sb.stats().requests, requests);
    // From a pipe, the rows read before the break are sent; the removals are held back.
    let mut pipe_args = vec!["-", "--format", "csv", "--feed", "n"];
    pipe_args.extend(args);
    let r = import(dir.path(), Some(&sb.url()), &pipe_args, Some(cut));
    assert_eq!(r.code, 1, "{}", r.stderr);
    let m = &r.summary["mirror"];
    assert!(
        m["held_back"]
            .as_str()
            .unwrap()
            .contains("not read to its end"),
        "{m}"
    );
    assert_eq!(m["removed"], 0);
    assert_eq!(sb.people().len(), 40);
    assert_eq!(deletes(&sb), 0);
}

#[cfg(unix)]
#[test]
fn nothing_is_removed_after_an_interrupted_read() {
    use std::io::Write;
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 10);
    let fifo = dir.path().join("n2.csv");
    mkfifo(&fifo);
    let child = import_command(
        dir.path(),
        &sb.url(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--max-removals",
            "100%",
            "--yes",
            "--summary",
            "s.json",
            "-q",
        ],
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Three rows, then the producer stalls (the pipe stays open).
    let mut w = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    w.write_all(b"id,plan,age\np0,pro,0\np1,pro,1\np2,pro,2\n")
        .unwrap();
    w.flush().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sb
        .people()
        .values()
        .filter(|p| p.attributes["plan"] == "pro")
        .count()
        < 3
    {
        assert!(std::time::Instant::now() < deadline, "rows never arrived");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = wait_or_kill(child, std::time::Duration::from_secs(30));
    drop(w);
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert_accounted(&s);
    assert!(
        s["mirror"]["held_back"]
            .as_str()
            .unwrap()
            .contains("not read to its end"),
        "{s}"
    );
    assert_eq!(sb.people().len(), 10);
    assert_eq!(deletes(&sb), 0);
}

#[test]
fn the_cap_stops_before_any_removal() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 20);
    write(
        dir.path(),
        "n2.csv",
        export(0..15, |i| Some(format!("p{i},pro,{i}"))),
    );
    let requests = sb.stats().requests;
    // Default cap: 5% of 20 known is 1 person; 5 vanished. A file is counted first: nothing
    // at all is sent.
    let r = sb.import(
        dir.path(),
        &["n2.csv", "--state", "st.db", "--mirror", "delete", "--yes"],
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("would delete 5 of the 20 people known for this workspace (25.0%), more than --max-removals 5% (1 people): nothing was sent"),
        "{}",
        r.stderr
    );
    assert_eq!(sb.stats().requests, requests);
    // From a pipe the count is known once read: the rows go, the removals do not.
    let data = std::fs::read(dir.path().join("n2.csv")).unwrap();
    let r = import(
        dir.path(),
        Some(&sb.url()),
        &[
            "-",
            "--format",
            "csv",
            "--state",
            "st.db",
            "--feed",
            "n",
            "--mirror",
            "delete",
            "--max-removals",
            "4",
            "--yes",
        ],
        Some(&data),
    );
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.summary["outcome"], "stopped by a guard");
    assert!(
        r.stderr.contains("would delete 5 of the 20 people known for this workspace (25.0%), more than --max-removals 4 (4 people): nothing was removed"),
        "{}",
        r.stderr
    );
    let m = &r.summary["mirror"];
    assert_eq!(
        (
            m["absent"].as_u64(),
            m["removed"].as_u64(),
            m["not_sent"].as_u64()
        ),
        (Some(5), Some(0), Some(5))
    );
    assert_eq!(r.n("sent"), 15);
    assert_eq!(sb.people().len(), 20);
    assert_eq!(deletes(&sb), 0);
    assert_eq!(known_ids(&dir.path().join("st.db")).len(), 20);
    // Without --yes (no terminal), refused before anything is sent.
    let requests = sb.stats().requests;
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--max-removals",
            "5",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("needs a confirmation"), "{}", r.stderr);
    assert_eq!(sb.stats().requests, requests);
}

/// Night 2 of the preview tests: p0 changes plan, p1 changes age and gains `vip`, p9 vanishes,
/// p10 is new, p2..p8 are unchanged.
fn night_two(dir: &Path) {
    let rows = export(0..11, |i| match i {
        0 => Some("p0,pro,0".into()),
        1 => Some("p1,free,41".into()),
        9 => None,
        _ => plain_row(i),
    });
    write(dir, "n2.csv", rows);
}

#[test]
fn a_dry_run_changes_neither_the_ledger_nor_the_runs_and_its_diff_is_right() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 10);
    night_two(dir.path());
    let st = dir.path().join("st.db");
    let before = ledger_rows(&st);
    let requests = sb.stats().requests;
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--dry-run",
            "--mirror",
            "delete",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("new                1  p10"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains("changed            2  p0 (plan), p1 (age)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("unchanged          7"), "{}", r.stdout);
    assert!(
        r.stdout
            .contains("to remove          1  p9  (--mirror delete)"),
        "{}",
        r.stdout
    );
    assert_eq!(ledger_rows(&st), before, "the dry run changed the ledger");
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--dry-run",
            "--json",
            "--mirror",
            "delete",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let d: Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(d["new"], serde_json::json!({"count": 1, "first": ["p10"]}));
    assert_eq!(d["changed"]["count"], 2);
    assert_eq!(
        d["changed"]["first"],
        serde_json::json!([
            {"id": "p0", "attributes": ["plan"], "dropped": 0},
            {"id": "p1", "attributes": ["age"], "dropped": 0}
        ])
    );
    assert_eq!(d["unchanged"]["count"], 7);
    assert_eq!(
        d["to_remove"],
        serde_json::json!({"count": 1, "first": ["p9"]})
    );
    assert_eq!(
        (d["known"].as_u64(), d["absent"].as_u64()),
        (Some(10), Some(1))
    );
    assert_eq!(ledger_rows(&st), before, "the dry run changed the ledger");
    assert_eq!(sb.stats().requests, requests, "a dry run sent something");
    // The real run then does what the preview said.
    let r = sb.import(
        dir.path(),
        &[
            "n2.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--max-removals",
            "1",
            "--yes",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!((r.n("sent"), r.n("skipped")), (3, 7));
    assert_eq!(r.summary["mirror"]["removed"], 1);
}

#[test]
fn sync_dry_run_previews_the_job() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 10);
    night_two(dir.path());
    write(
        dir.path(),
        "nightly.toml",
        format!(
            "input = \"n2.csv\"\nstate = \"st.db\"\nendpoint = \"{}\"\nmirror = \"delete\"\nmax_removals = \"10%\"\nyes = true\nmax_change = 50\nmin_rows = 5\nreports_dir = \"reports\"\n",
            sb.url()
        ),
    );
    std::fs::create_dir(dir.path().join("reports")).unwrap();
    let st = dir.path().join("st.db");
    let before = ledger_rows(&st);
    let out = std::process::Command::new(bin())
        .args(["sync", "--config", "nightly.toml", "--dry-run", "--json"])
        .current_dir(dir.path())
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(d["changed"]["count"], 2, "{d}");
    assert_eq!(d["to_remove"]["first"], serde_json::json!(["p9"]));
    assert_eq!(ledger_rows(&st), before);
    // The same job, for real.
    let out = std::process::Command::new(bin())
        .args(["sync", "--config", "nightly.toml"])
        .current_dir(dir.path())
        .env("CUSTOMERIO_SITE_ID", SITE)
        .env("CUSTOMERIO_TRACK_API_KEY", KEY)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!sb.people().contains_key("p9"));
    assert_eq!(person(&sb, "p0")["plan"], "pro");
}

#[test]
fn a_removal_whose_outcome_is_unknown_stays_owed_and_is_retried() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 6);
    write(dir.path(), "n2.csv", export(0..4, plain_row));
    // The removal batch is applied, then answered 500, and no retry is allowed: unknown.
    sb.sb
        .set_script(vec![cio_import::sandbox::Fault::Ambiguous]);
    let args = [
        "n2.csv",
        "--state",
        "st.db",
        "--mirror",
        "delete",
        "--max-removals",
        "2",
        "--yes",
        "--max-retries",
        "0",
    ];
    let r = sb.import(dir.path(), &args);
    assert_eq!(r.code, 2, "{}", r.stderr);
    let m = &r.summary["mirror"];
    assert_eq!(
        (
            m["absent"].as_u64(),
            m["removed"].as_u64(),
            m["failed"].as_u64()
        ),
        (Some(2), Some(0), Some(2)),
        "{m}"
    );
    // Rows balance on their own: removals are not rows.
    assert_eq!(r.n("rows"), 4);
    // The ledger claims neither that they exist nor that they are gone: the removal is owed.
    let st = dir.path().join("st.db");
    assert!(!known_ids(&st).iter().any(|i| i == "p4" || i == "p5"));
    let out = std::process::Command::new(bin())
        .args(["state", "st.db"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("2 mirror removals pending"), "{text}");
    // p5 comes back; p4 stays absent: only p4's removal is sent again.
    write(
        dir.path(),
        "n3.csv",
        export(0..6, |i| (i != 4).then(|| format!("p{i},free,{i}"))),
    );
    let deletes_before = deletes(&sb);
    let mut args3 = args;
    args3[0] = "n3.csv";
    let r = sb.import(dir.path(), &args3);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.summary["mirror"]["first"], serde_json::json!(["p4"]));
    assert_eq!(r.summary["mirror"]["removed"], 1);
    assert_eq!(deletes(&sb), deletes_before + 1);
    // p5 was unknown to the ledger, so it was sent (and recreated), not skipped.
    assert_eq!(r.n("sent"), 1);
    assert!(sb.people().contains_key("p5"));
    let out = std::process::Command::new(bin())
        .args(["state", "st.db"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains("pending"));
}

#[test]
fn a_ledger_from_before_per_attribute_hashes_is_migrated() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 3);
    let st = dir.path().join("st.db");
    // The previous schema: no attrs column.
    rusqlite::Connection::open(&st)
        .unwrap()
        .execute_batch("ALTER TABLE people DROP COLUMN attrs")
        .unwrap();
    write(
        dir.path(),
        "n2.csv",
        "id,plan,age\np0,pro,0\np1,free,1\np2,free,2\n",
    );
    let r = sb.import(dir.path(), &["n2.csv", "--state", "st.db", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stdout.contains("p0 (attributes not recorded)"),
        "{}",
        r.stdout
    );
    assert!(r.stdout.contains("unchanged          2"), "{}", r.stdout);
    // A real run adds the column; the unchanged stay skipped (their hashes still hold).
    let r = sb.import(dir.path(), &["n2.csv", "--state", "st.db"]);
    assert_eq!((r.n("sent"), r.n("skipped")), (1, 2), "{}", r.stderr);
    write(
        dir.path(),
        "n3.csv",
        "id,plan,age\np0,pro,7\np1,free,1\np2,free,2\n",
    );
    let r = sb.import(dir.path(), &["n3.csv", "--state", "st.db", "--dry-run"]);
    assert!(r.stdout.contains("p0 (age)"), "{}", r.stdout);
}

#[test]
fn a_dry_run_with_state_records_no_run() {
    // Before issue 14 a dry run with --state opened the ledger for writing and recorded a run.
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 3);
    let st = dir.path().join("st.db");
    let before = ledger_rows(&st);
    let r = sb.import(dir.path(), &["n1.csv", "--state", "st.db", "--dry-run"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(ledger_rows(&st), before);
    assert!(r.stdout.contains("unchanged          3"), "{}", r.stdout);
}

/// `people.feed` and whether a hash is held, per identifier.
fn feeds(path: &Path) -> Vec<(String, Option<String>, bool)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT identifier, feed, length(hash) = 16 FROM people ORDER BY identifier")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_mirror_leaves_the_people_of_another_input_alone() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "m1.csv", export(1..41, plain_row));
    write(
        dir.path(),
        "leads.csv",
        "id,plan,age\nl1,lead,1\nl2,lead,2\n",
    );
    let r = sb.import(dir.path(), &["m1.csv", "--state", "two.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let r = sb.import(dir.path(), &["leads.csv", "--state", "two.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // The same file again with a mirror: l1 and l2 are another feed's, never absent from it.
    let r = sb.import(
        dir.path(),
        &["m1.csv", "--state", "two.db", "--mirror", "delete", "--yes"],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = &r.summary["mirror"];
    assert_eq!(
        (m["known"].as_u64(), m["absent"].as_u64()),
        (Some(40), Some(0)),
        "{m}"
    );
    assert_eq!(m["other_feeds"], 2, "{m}");
    assert_eq!(m["feed"], "m");
    assert!(r.stderr.contains("2 people of other feeds"), "{}", r.stderr);
    assert_eq!(deletes(&sb), 0);
    assert!(sb.people().contains_key("l1") && sb.people().contains_key("l2"));
    let st = dir.path().join("two.db");
    assert!(feeds(&st)
        .iter()
        .any(|(id, f, _)| id == "l1" && f.as_deref() == Some("leads")));
    // The preview counts the same way.
    let out = import_command(
        dir.path(),
        &sb.url(),
        &["m1.csv", "--state", "two.db", "--dry-run", "--json"],
    )
    .output()
    .unwrap();
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (d["known"].as_u64(), d["other_feeds"].as_u64()),
        (Some(40), Some(2)),
        "{d}"
    );
}

#[test]
fn dated_exports_are_one_feed_and_feed_names_one() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "export-2026-11-30.csv",
        export(0..20, plain_row),
    );
    let r = sb.import(dir.path(), &["export-2026-11-30.csv", "--state", "st.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    write(
        dir.path(),
        "export-2026-12-01.csv",
        export(0..19, plain_row),
    );
    let r = sb.import(
        dir.path(),
        &[
            "export-2026-12-01.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--max-removals",
            "1",
            "--yes",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.summary["mirror"]["first"], serde_json::json!(["p19"]));
    assert_eq!(r.summary["mirror"]["removed"], 1);
    // Under another --feed, nobody of the "export" feed is known: nobody is removed.
    write(dir.path(), "x.csv", export(0..1, plain_row));
    let r = sb.import(
        dir.path(),
        &[
            "x.csv", "--state", "st.db", "--feed", "crm", "--mirror", "delete", "--yes",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    // p0 was skipped unchanged and is now the crm feed's; the other 18 are left alone.
    assert_eq!(r.summary["mirror"]["absent"], 0, "{}", r.summary["mirror"]);
    assert_eq!(r.summary["mirror"]["other_feeds"], 18);
    assert_eq!(deletes(&sb), 1);
}

#[test]
fn a_person_whose_last_send_failed_is_still_removed_when_they_vanish() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["p3".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(
        dir.path(),
        "n1.csv",
        export(0..10, |i| (i != 3).then(|| format!("p{i},free,{i}"))),
    );
    let r = sb.import(dir.path(), &["n1.csv", "--state", "st.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // p3 was acknowledged on an earlier night, before the workspace started refusing it.
    let st = dir.path().join("st.db");
    let c = rusqlite::Connection::open(&st).unwrap();
    c.execute(
        "INSERT INTO people (dest, kind, identifier, hash, acked_at, run_id, feed) SELECT dest, kind, 'p3', hash, acked_at, run_id, feed FROM people WHERE identifier = 'p0'",
        [],
    )
    .unwrap();
    drop(c);
    // Night 2: p3 changes and is refused; p4 changes under --update-only (its answer proves
    // nothing). Both lose their hash, not their place in the feed.
    write(
        dir.path(),
        "n2.csv",
        export(0..10, |i| match i {
            3 | 4 => Some(format!("p{i},paid,{i}")),
            _ => plain_row(i),
        }),
    );
    let r = sb.import(dir.path(), &["n2.csv", "--state", "st.db"]);
    assert_eq!(r.code, 2, "p3 is refused: {}", r.stderr);
    assert_eq!(r.n("rejected"), 1);
    write(
        dir.path(),
        "n9.csv",
        export(0..10, |i| match i {
            3 => Some("p3,paid,3".into()),
            4 => Some("p4,pro,4".into()),
            _ => plain_row(i),
        }),
    );
    let r = sb.import(dir.path(), &["n9.csv", "--state", "st.db", "--update-only"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(r.n("sent"), 1, "p4: {}", r.stderr);
    let f = feeds(&st);
    for id in ["p3", "p4"] {
        assert!(
            f.iter()
                .any(|(i, feed, hashed)| i == id && feed.as_deref() == Some("n") && !hashed),
            "{id}: {f:?}"
        );
    }
    // `state` counts acknowledged people only.
    let out = std::process::Command::new(bin())
        .args(["state", "st.db"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("  8 people acknowledged"), "{text}");
    // Night 3: both vanish; the mirror knows them.
    write(
        dir.path(),
        "n3.csv",
        export(0..10, |i| {
            (i != 3 && i != 4).then(|| plain_row(i)).flatten()
        }),
    );
    let r = sb.import(
        dir.path(),
        &[
            "n3.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--max-removals",
            "2",
            "--yes",
        ],
    );
    let m = &r.summary["mirror"];
    assert_eq!(m["absent"], 2, "{m}");
    assert_eq!(m["first"], serde_json::json!(["p3", "p4"]), "{m}");
    // p4's deletion is acknowledged; p3's is refused (the workspace refuses p3) and stays owed.
    assert_eq!(
        (m["removed"].as_u64(), m["failed"].as_u64()),
        (Some(1), Some(1)),
        "{m}"
    );
    assert!(!sb.people().contains_key("p4"));
}

#[test]
fn an_unconfirmed_mirror_replaces_last_nights_summary() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 5);
    // Last night's summary is there; tonight's run is refused before it starts.
    write(
        dir.path(),
        "summary.json",
        r#"{"outcome":"completed","sent":5}"#,
    );
    let r = sb.import(
        dir.path(),
        &["n1.csv", "--state", "st.db", "--mirror", "delete"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    let s: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("summary.json")).unwrap())
            .unwrap();
    assert_eq!(s["outcome"], "aborted", "{s}");
    assert!(
        s["stop_reason"]
            .as_str()
            .unwrap()
            .contains("--mirror delete"),
        "{s}"
    );
    assert!(s["run_id"].is_string(), "{s}");
    assert_eq!(s["sent"], 0);
}

#[test]
fn sigterm_during_the_preview_stops_at_once() {
    let sb = plain();
    let dir = tempdir();
    first_night(&sb, dir.path(), 5);
    // A file whose preview (one ledger lookup per row) takes far longer than the wait below.
    let mut big = String::with_capacity(40 << 20);
    big.push_str("id,plan,age\n");
    for i in 0..2_000_000 {
        big.push_str(&format!("p{i},free,{i}\n"));
    }
    write(dir.path(), "n1.csv", big);
    let requests = sb.stats().requests;
    let child = import_command(
        dir.path(),
        &sb.url(),
        &["n1.csv", "--state", "st.db", "--max-change", "50"],
    )
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Handlers installed, then a moment for the preview to be under way.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap_or_default();
        let caught = status
            .lines()
            .find_map(|l| l.strip_prefix("SigCgt:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .unwrap_or(0);
        if caught & (1 << 14) != 0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no handlers");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    std::thread::sleep(std::time::Duration::from_millis(300));
    let signalled = std::time::Instant::now();
    let st = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = wait_or_kill(child, std::time::Duration::from_secs(10));
    let waited = signalled.elapsed();
    assert!(
        waited < std::time::Duration::from_secs(3),
        "{waited:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(130));
    assert_eq!(sb.stats().requests, requests, "nothing was sent");
}

#[test]
fn mirror_is_refused_for_devices_merges_events_and_actions() {
    let dir = tempdir();
    write(dir.path(), "d.csv", "id,device_id,platform\nu1,tok1,ios\n");
    for (args, named) in [
        (&["--kind", "devices"][..], "--kind devices"),
        (&["--kind", "merges"][..], "--kind merges"),
        (&["--kind", "events"][..], "--kind events"),
        (&["--action", "delete"][..], "--action delete"),
        // Second red team: objects and relationships rows are identify rows too, and a
        // mirror after them saw no people, so it would have removed everyone in the feed.
        (
            &[
                "--kind",
                "objects",
                "--object-type-id",
                "1",
                "--object-id-column",
                "id",
            ][..],
            "--kind objects",
        ),
        (
            &[
                "--kind",
                "relationships",
                "--object-type-id",
                "1",
                "--object-id-column",
                "device_id",
            ][..],
            "--kind relationships",
        ),
    ] {
        let mut all = vec!["d.csv", "--state", "st.db", "--mirror", "delete", "--yes"];
        all.extend_from_slice(args);
        let out = import_command(dir.path(), "http://127.0.0.1:9", &all)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(
            err.contains(&format!("it cannot go with {named}")),
            "{named}: {err}"
        );
    }
    assert!(!dir.path().join("st.db").exists());
}

/// The feeds holding each person, from `feed_members`.
fn memberships(path: &Path) -> Vec<(String, String)> {
    let c = rusqlite::Connection::open(path).unwrap();
    let mut st = c
        .prepare("SELECT identifier, feed FROM feed_members ORDER BY identifier, feed")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn a_person_in_two_feeds_is_kept_by_the_one_they_stay_in() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "customers.csv",
        "id,plan,age\nc1,a,1\nc2,a,2\nc3,a,3\nboth,a,4\n",
    );
    write(
        dir.path(),
        "leads.csv",
        "id,plan,age\nboth,a,4\nl1,b,1\nl2,b,2\n",
    );
    for f in ["customers.csv", "leads.csv"] {
        let r = sb.import(dir.path(), &[f, "--state", "st.db"]);
        assert_eq!(r.code, 0, "{}", r.stderr);
    }
    let st = dir.path().join("st.db");
    assert!(memberships(&st).contains(&("both".into(), "customers".into())));
    assert!(memberships(&st).contains(&("both".into(), "leads".into())));
    // Night 2: `both` left the leads export, not the customers one.
    write(dir.path(), "leads.csv", "id,plan,age\nl1,b,1\nl2,b,2\n");
    let r = sb.import(
        dir.path(),
        &[
            "leads.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--yes",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let m = &r.summary["mirror"];
    assert_eq!(
        (m["absent"].as_u64(), m["left"].as_u64()),
        (Some(0), Some(1)),
        "{m}"
    );
    assert!(
        r.stderr
            .contains("1 people left this feed, kept: still in another feed: both (still in feed \"customers\")"),
        "{}",
        r.stderr
    );
    assert_eq!(deletes(&sb), 0);
    assert!(sb.people().contains_key("both"));
    assert!(known_ids(&st).contains(&"both".to_string()));
    let mem = memberships(&st);
    assert!(
        mem.contains(&("both".into(), "customers".into())),
        "{mem:?}"
    );
    assert!(!mem.contains(&("both".into(), "leads".into())), "{mem:?}");
    // When customers drops them too, they are removed: no feed holds them any more.
    write(
        dir.path(),
        "customers.csv",
        "id,plan,age\nc1,a,1\nc2,a,2\nc3,a,3\n",
    );
    let r = sb.import(
        dir.path(),
        &[
            "customers.csv",
            "--state",
            "st.db",
            "--mirror",
            "delete",
            "--yes",
            "--max-removals",
            "50%",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.summary["mirror"]["removed"], 1, "{}", r.summary["mirror"]);
    assert_eq!(deletes(&sb), 1);
    assert!(!known_ids(&st).contains(&"both".to_string()));
    assert!(!memberships(&st).iter().any(|(i, _)| i == "both"));
}

#[test]
fn a_ledger_of_before_gets_one_membership_a_person() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "customers.csv", "id,plan,age\nc1,a,1\nc2,a,2\n");
    let r = sb.import(dir.path(), &["customers.csv", "--state", "st.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let st = dir.path().join("st.db");
    {
        let c = rusqlite::Connection::open(&st).unwrap();
        c.execute_batch(
            "DROP TRIGGER feed_members_ins; DROP TRIGGER feed_members_upd; \
             DROP TRIGGER feed_members_del; DROP TABLE feed_members;",
        )
        .unwrap();
    }
    let r = sb.import(dir.path(), &["customers.csv", "--state", "st.db"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        memberships(&st),
        vec![
            ("c1".into(), "customers".into()),
            ("c2".into(), "customers".into())
        ]
    );
}

#[test]
fn a_mirror_on_stdin_needs_a_feed_name() {
    let sb = plain();
    let dir = tempdir();
    let data = export(0..3, plain_row).into_bytes();
    let args = |feed: bool| {
        let mut a = vec!["-", "--format", "csv", "--state", "st.db"];
        if feed {
            a.extend(["--feed", "crm"]);
        }
        a.extend(["--mirror", "delete", "--yes"]);
        a
    };
    let r = import(dir.path(), Some(&sb.url()), &args(false), Some(&data));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "--mirror delete on standard input needs --feed NAME (e.g. --feed customers)"
        ),
        "{}",
        r.stderr
    );
    assert_eq!(sb.stats().requests, 0);
    let r = import(dir.path(), Some(&sb.url()), &args(true), Some(&data));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.summary["mirror"]["feed"], "crm");
}
