//! `--kind events`: event rows through both APIs onto their people, idempotent re-runs (ids
//! the sandbox deduplicates, and the ledger's skip), per-row rejections and bisection, the
//! 72-hour warning, and bad rows reported at their line.

mod common;

use cio_import::sandbox::{PersonEvent, SandboxConfig};
use common::*;
use serde_json::{json, Value};

const ORDERS: &str = "\
id,name,timestamp,event_id,order_id,amount,currency
u1,order_completed,2024-03-02T10:15:00Z,,A-1001,139.54,EUR
u1,order_completed,1710000000,,A-1002,24.90,EUR
u2,order_refunded,2024-06-01,01ARZ3NDEKTSV4RRFFQ69G5FAV,A-1003,-12.00,PLN
u3,order_completed,2024-07-01,not-a-ulid,A-1004,5.00,USD
";

const ORDERS_JSONL: &str = r#"{"id":"u1","name":"order_completed","timestamp":"2024-03-02T10:15:00Z","order_id":"A-1001","amount":139.54,"items":["a","b"]}
{"id":2,"name":"order_refunded","timestamp":1717200000,"event_id":"01arz3ndektsv4rrffq69g5fav","amount":-12,"gift":true}
"#;

fn events_of(sb: &Sb, person: &str) -> Vec<PersonEvent> {
    let mut v: Vec<PersonEvent> = sb
        .sb
        .events()
        .into_iter()
        .filter(|e| e.identifier == person)
        .collect();
    v.sort_by_key(|e| e.event.timestamp);
    v
}

fn is_ulid(s: &str) -> bool {
    cio_import::event_id::normalize(s).as_deref() == Some(s)
}

#[test]
fn csv_events_land_on_their_people_through_both_apis() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "orders.csv", ORDERS);
        let run = import(
            dir.path(),
            Some(&sb.url()),
            &["orders.csv", "--kind", "events", "--api", api],
            None,
        );
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!((run.n("rows"), run.n("sent")), (4, 4), "{api}");
        let st = sb.stats();
        assert_eq!(st.action("event"), 4, "{api}");
        assert_eq!(st.action("identify"), 0, "{api}");
        assert!(st.violations.is_empty(), "{api}: {:?}", st.violations);

        let u1 = events_of(&sb, "u1");
        assert_eq!(u1.len(), 2, "{api}");
        assert_eq!(u1[0].event.name, "order_completed");
        assert_eq!(
            u1[0].event.timestamp,
            Some(1_709_374_500),
            "{api}: ISO to seconds"
        );
        assert_eq!(u1[1].event.timestamp, Some(1_710_000_000));
        assert_eq!(
            Value::Object(u1[0].event.data.clone()),
            json!({"order_id": "A-1001", "amount": "139.54", "currency": "EUR"}),
            "{api}: CSV data are strings; name, time and id columns are not data"
        );
        for e in &u1 {
            assert!(is_ulid(e.event.id.as_deref().unwrap()), "{e:?}");
        }
        assert_ne!(u1[0].event.id, u1[1].event.id);

        let u2 = events_of(&sb, "u2");
        assert_eq!(
            u2[0].event.id.as_deref(),
            Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            "{api}: the file's ULID is kept"
        );
        assert_eq!(u2[0].event.timestamp, Some(1_717_200_000));

        let u3 = events_of(&sb, "u3");
        assert_eq!(u3[0].event.timestamp, Some(1_719_792_000), "{api}");
        assert_eq!(
            u3[0].event.data.get("event_id"),
            Some(&json!("not-a-ulid")),
            "{api}: an id that is no ULID stays in the data"
        );
        assert!(is_ulid(u3[0].event.id.as_deref().unwrap()));
        assert!(sb.people()["u1"].attributes.is_empty(), "{api}");
    }
}

#[test]
fn jsonl_events_keep_their_types() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "orders.jsonl", ORDERS_JSONL);
        let run = import(
            dir.path(),
            Some(&sb.url()),
            &["orders.jsonl", "--kind", "events", "--api", api],
            None,
        );
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!(run.n("sent"), 2);
        let u1 = events_of(&sb, "u1");
        assert_eq!(
            Value::Object(u1[0].event.data.clone()),
            json!({"order_id": "A-1001", "amount": 139.54, "items": ["a", "b"]}),
            "{api}"
        );
        let u2 = events_of(&sb, "2");
        assert_eq!(
            u2[0].event.id.as_deref(),
            Some("01ARZ3NDEKTSV4RRFFQ69G5FAV"),
            "{api}: lower case ULID normalised"
        );
        assert_eq!(
            Value::Object(u2[0].event.data.clone()),
            json!({"amount": -12, "gift": true})
        );
    }
}

#[test]
fn re_importing_the_same_file_adds_no_event() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "orders.csv", ORDERS);
        let args = ["orders.csv", "--kind", "events", "--api", api];
        let first = import(dir.path(), Some(&sb.url()), &args, None);
        assert_eq!(first.code, 0, "{}", first.stderr);
        let ids: Vec<Option<String>> = sb.sb.events().into_iter().map(|e| e.event.id).collect();
        assert_eq!(ids.len(), 4);
        let again = import(dir.path(), Some(&sb.url()), &args, None);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert_eq!(
            again.n("sent"),
            4,
            "{api}: without --state everything is sent again"
        );
        let after: Vec<Option<String>> = sb.sb.events().into_iter().map(|e| e.event.id).collect();
        assert_eq!(after, ids, "{api}: the same ids, so nothing is added");
        assert_eq!(sb.stats().duplicate_events, 4, "{api}");
    }
}

#[test]
fn with_state_a_re_run_sends_no_request() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "orders.csv", ORDERS);
        let args = [
            "orders.csv",
            "--kind",
            "events",
            "--api",
            api,
            "--state",
            "state.db",
        ];
        let first = import(dir.path(), Some(&sb.url()), &args, None);
        assert_eq!(first.code, 0, "{}", first.stderr);
        assert_eq!(first.n("sent"), 4);
        let requests = sb.stats().requests;
        let again = import(dir.path(), Some(&sb.url()), &args, None);
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert_eq!((again.n("sent"), again.n("skipped")), (0, 4), "{api}");
        assert_eq!(sb.stats().requests, requests, "{api}: no request at all");
        assert_eq!(sb.stats().duplicate_events, 0);

        // A new event in the file is the only one sent.
        let more = format!("{ORDERS}u4,signup,1700000000,,,,\n");
        write(dir.path(), "orders.csv", more);
        let third = import(dir.path(), Some(&sb.url()), &args, None);
        assert_eq!((third.n("sent"), third.n("skipped")), (1, 4), "{api}");
        assert_eq!(sb.sb.events().len(), 5);
    }
}

#[test]
fn a_refused_event_is_never_claimed_by_the_ledger() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["u2".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "orders.csv", ORDERS);
    let args = ["orders.csv", "--kind", "events", "--state", "state.db"];
    let first = import(dir.path(), Some(&sb.url()), &args, None);
    assert_eq!((first.n("sent"), first.n("rejected")), (3, 1));
    let again = import(dir.path(), Some(&sb.url()), &args, None);
    assert_eq!(
        (again.n("sent"), again.n("skipped"), again.n("rejected")),
        (0, 3, 1),
        "the refused event is tried again, the acknowledged ones are not"
    );
}

#[test]
fn a_207_rejects_only_the_refused_event() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["u2".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "orders.csv", ORDERS);
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["orders.csv", "--kind", "events"],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        (run.n("sent"), run.n("rejected"), run.n("requests")),
        (3, 1, 1)
    );
    let errs = run.errors();
    assert_eq!(errs.len(), 1);
    assert_eq!(
        (
            errs[0]["identifier"].as_str(),
            errs[0]["line"].as_str(),
            errs[0]["status"].as_str()
        ),
        ("u2", "4", "207")
    );
    let rejects = std::fs::read_to_string(run.rejects_path("csv")).unwrap();
    assert!(
        rejects.contains("A-1003") && !rejects.contains("A-1001"),
        "{rejects}"
    );
    assert!(events_of(&sb, "u2").is_empty());
    assert_eq!(sb.sb.events().len(), 3);
}

#[test]
fn a_poisoned_batch_of_events_is_halved_down_to_the_poison_row() {
    let sb = sandbox(SandboxConfig {
        poison_ids: vec!["u17".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    let mut csv = String::from("id,name,timestamp,amount\n");
    for i in 0..40 {
        csv += &format!("u{i},viewed,{},{i}\n", 1_700_000_000 + i);
    }
    write(dir.path(), "views.csv", csv);
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["views.csv", "--kind", "events"],
        None,
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!((run.n("sent"), run.n("rejected")), (39, 1));
    assert!(run.n("requests") > 2, "bisection takes several requests");
    let e = &run.errors()[0];
    assert_eq!(
        (
            e["identifier"].as_str(),
            e["status"].as_str(),
            e["line"].as_str()
        ),
        ("u17", "400", "19")
    );
    assert_eq!(sb.sb.events().len(), 39);
}

#[test]
fn bad_rows_are_reported_at_their_line_and_never_sent() {
    let long = "x".repeat(101);
    let csv = format!(
        "id,name,timestamp,amount\n\
u1,ok,1700000000,1\n\
u2,ok,yesterday-ish,2\n\
u3,{long},1700000000,3\n\
u4,,1700000000,4\n\
u5,ok,1700000001,5\n"
    );
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "e.csv", &csv);
        let run = import(
            dir.path(),
            Some(&sb.url()),
            &["e.csv", "--kind", "events", "--api", api],
            None,
        );
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert_eq!((run.n("sent"), run.n("invalid")), (2, 3), "{api}");
        let errs = run.errors();
        let at = |line: &str| {
            errs.iter()
                .find(|e| e["line"] == line)
                .unwrap_or_else(|| panic!("no error at line {line}: {errs:?}"))
                .clone()
        };
        let t = at("3");
        assert_eq!(t["identifier"], "u2");
        assert!(t["message"].contains("timestamp"), "{t:?}");
        assert!(at("4")["message"].contains("at most 100"), "{errs:?}");
        assert!(at("5")["message"].contains("name"), "{errs:?}");
        let st = sb.stats();
        assert_eq!(st.action("event"), 2, "{api}: bad rows never reach the API");
        assert!(st.violations.is_empty(), "{:?}", st.violations);
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

#[test]
fn recent_events_are_counted_and_warned_about_before_sending() {
    let sb = plain();
    let dir = tempdir();
    let recent = format!(
        "id,name,timestamp,event_id\nu1,old,1600000000,\nu2,fresh,{},\nu3,undated,,01ARZ3NDEKTSV4RRFFQ69G5FAV\n",
        now() - 3600
    );
    write(dir.path(), "recent.csv", recent);
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["recent.csv", "--kind", "events"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("2 of 3 events in recent.csv are within the last 72 hours"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("1 without a timestamp"),
        "{}",
        run.stderr
    );

    // Also in a dry run, which sends nothing.
    let dry = import(
        dir.path(),
        None,
        &["recent.csv", "--kind", "events", "--dry-run"],
        None,
    );
    assert!(dry.stderr.contains("72 hours"), "{}", dry.stderr);

    let old = format!(
        "id,name,timestamp\nu1,old,1600000000\nu2,older,{}\n",
        now() - 73 * 3600
    );
    write(dir.path(), "old.csv", old);
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["old.csv", "--kind", "events"],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!run.stderr.contains("72 hours"), "{}", run.stderr);
}

#[test]
fn other_column_names_and_email_identifiers() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "e.csv",
        "email,event,at,ref\na@example.com,login,2024-01-01T00:00:00Z,01ARZ3NDEKTSV4RRFFQ69G5FAV\n",
    );
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &[
            "e.csv",
            "--kind",
            "events",
            "--identify-by",
            "email",
            "--name-column",
            "event",
            "--timestamp-column",
            "at",
            "--event-id-column",
            "ref",
        ],
        None,
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let ev = sb.sb.events();
    assert_eq!(ev.len(), 1);
    assert_eq!(
        (ev[0].kind.as_str(), ev[0].identifier.as_str()),
        ("email", "a@example.com")
    );
    assert_eq!(ev[0].event.name, "login");
    assert_eq!(ev[0].event.timestamp, Some(1_704_067_200));
    assert_eq!(
        ev[0].event.id.as_deref(),
        Some("01ARZ3NDEKTSV4RRFFQ69G5FAV")
    );
    assert!(ev[0].event.data.is_empty());
}

#[test]
fn events_with_a_people_action_are_refused() {
    let dir = tempdir();
    write(dir.path(), "e.csv", ORDERS);
    let run = import(
        dir.path(),
        None,
        &[
            "e.csv",
            "--kind",
            "events",
            "--action",
            "delete",
            "--dry-run",
        ],
        None,
    );
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("--kind events"), "{}", run.stderr);
}

#[test]
fn inspect_counts_recent_events() {
    let dir = tempdir();
    let file = write(
        dir.path(),
        "r.csv",
        format!(
            "id,name,timestamp,event_id\nu1,a,{},\nu2,b,,01ARZ3NDEKTSV4RRFFQ69G5FAV\nu3,c,2020-01-01,\n",
            now()
        ),
    );
    let out = std::process::Command::new(bin())
        .args(["inspect", "--kind", "events"])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stdout.contains("events: 3 convert; 2 within the last 72 hours (1 without a timestamp)"),
        "{stdout}"
    );
    assert!(
        stderr.contains("Customer.io may trigger campaigns"),
        "{stderr}"
    );
}

/// Red-team finding: the 72-hour count read a named pipe to its end, then the import's own
/// open waited for a writer that never came: the run hung. A pipe is not counted before
/// sending (a note says so) and its events are sent.
#[cfg(unix)]
#[test]
fn events_from_a_pipe_are_sent_not_hung_on() {
    let sb = plain();
    let dir = tempdir();
    let fifo = dir.path().join("ev.csv");
    mkfifo(&fifo);
    let _feeder = feed_fifo(&fifo, vec!["id,name,timestamp\n42,x,1600000000\n".into()]);
    let out = import_bounded(
        dir.path(),
        &sb.url(),
        &["ev.csv", "--format", "csv", "--kind", "events"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(sb.stats().action("event"), 1, "{stderr}");
}

/// Red-team finding: an event without a time got an id derived with time 0, the same every
/// run, so the same untimed event imported on two days was kept once and counted sent twice.
/// Without a time and without an id of its own, the row is invalid at its line.
#[test]
fn an_event_without_a_time_or_an_id_is_invalid_at_its_line() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "ev.csv",
        "id,name,timestamp\nu1,signed_up,1700000000\nu2,logged_in,\n",
    );
    let run = sb.import(dir.path(), &["ev.csv", "--kind", "events"]);
    assert_eq!((run.n("sent"), run.n("invalid")), (1, 1), "{}", run.stderr);
    assert_eq!(sb.stats().action("event"), 1);
    let errs = run.errors();
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert_eq!(
        (errs[0]["line"].as_str(), errs[0]["identifier"].as_str()),
        ("3", "u2")
    );
    let message = errs[0]["message"].as_str();
    assert!(message.contains("no time ('timestamp')"), "{message}");
}

/// Red-team finding: two different events carrying the same ULID were both counted sent, but
/// Customer.io keeps only the first event of an id. The second is invalid at its line.
#[test]
fn a_file_id_used_twice_is_invalid_at_its_second_line() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(
            dir.path(),
            "dup.csv",
            "id,name,timestamp,event_id\n\
             u30,order,1700000000,01BRZ3NDEKTSV4RRFFQ69G5FAV\n\
             u31,refund,1700000100,01brz3ndektsv4rrffq69g5fav\n",
        );
        let run = sb.import(dir.path(), &["dup.csv", "--kind", "events", "--api", api]);
        assert_eq!(
            (run.n("sent"), run.n("invalid")),
            (1, 1),
            "{api}: {}",
            run.stderr
        );
        assert_eq!(sb.sb.events().len(), 1, "{api}");
        let errs = run.errors();
        assert_eq!(errs.len(), 1, "{api}: {errs:?}");
        assert_eq!(
            (errs[0]["line"].as_str(), errs[0]["identifier"].as_str()),
            ("3", "u31"),
            "{api}"
        );
        assert!(errs[0]["message"].contains("line 2"), "{api}: {errs:?}");
    }
}
