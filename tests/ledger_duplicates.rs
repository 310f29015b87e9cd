//! People with several rows in one file under `--state` (issue 14): an unchanged file whose
//! people repeat sends nothing on the next night; any change in any of a person's rows sends
//! all of them again, in order; a failure in the group leaves the ledger without that person.
//! Requests are counted through the sandbox's stats.

mod common;

use cio_import::sandbox::{Fault, SandboxConfig};
use common::*;
use serde_json::{json, Value};
use std::path::Path;

/// 30 people `p0..p29` with `name,plan,city`; `dup` has three rows spread over the file (the
/// first sets `city`, which the later ones leave empty), `twice` two rows next to each other.
fn source(first_dup_plan: &str, last_dup_plan: &str) -> String {
    let mut s = String::from("id,name,plan,city\n");
    s.push_str(&format!("dup,Dee,{first_dup_plan},Oslo\n"));
    for i in 0..30 {
        s.push_str(&format!("p{i},Person {i},free,Lyon\n"));
        if i == 10 {
            s.push_str("dup,Dee Two,middle,\n");
            s.push_str("twice,T,one,Rome\ntwice,T,two,\n");
        }
    }
    s.push_str(&format!("dup,Dee Last,{last_dup_plan},\n"));
    s
}

/// Rows in [`source`]: 30 people, 3 of `dup`, 2 of `twice`.
const ROWS: u64 = 35;

fn night(sb: &Sb, dir: &Path, args: &[&str]) -> (Run, u64) {
    let before = sb.stats().requests;
    let mut all = vec!["p.csv", "--state", "state.db"];
    all.extend_from_slice(args);
    let run = sb.import(dir, &all);
    let requests = sb.stats().requests - before;
    (run, requests)
}

fn counts(run: &Run) -> (u64, u64, u64) {
    (run.n("rows"), run.n("sent"), run.n("skipped"))
}

fn ledger_rows(dir: &Path) -> Vec<(String, i64)> {
    let conn = rusqlite::Connection::open(dir.join("state.db")).unwrap();
    let mut st = conn
        .prepare("SELECT identifier, rows FROM people WHERE rows > 1 ORDER BY identifier")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(|r| r.unwrap())
        .collect()
}

#[test]
fn an_unchanged_file_with_duplicates_sends_nothing_the_second_night() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "p.csv", source("gold", "platinum"));
        let args = ["--api", api, "--concurrency", "4", "--batch-size", "4"];
        let (first, _) = night(&sb, dir.path(), &args);
        assert_eq!(first.code, 0, "{api}: {}", first.stderr);
        assert_eq!(counts(&first), (ROWS, ROWS, 0), "{api}");
        assert_eq!(
            person(&sb, "dup"),
            json!({"name": "Dee Last", "plan": "platinum", "city": "Oslo"}),
            "{api}"
        );
        assert_eq!(
            ledger_rows(dir.path()),
            vec![("dup".to_string(), 3), ("twice".to_string(), 2)],
            "{api}"
        );
        let (second, requests) = night(&sb, dir.path(), &args);
        assert_eq!(second.code, 0, "{api}: {}", second.stderr);
        assert_eq!(counts(&second), (ROWS, 0, ROWS), "{api}");
        assert_eq!(requests, 0, "{api}: no request on an unchanged night");
        assert_eq!(person(&sb, "dup")["plan"], json!("platinum"));
        // `cio-import state` says who is held as several rows.
        let out = std::process::Command::new(bin())
            .arg("state")
            .arg(dir.path().join("state.db"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("32 people acknowledged by site")
                && text.contains("(2 of them from several rows of one file)"),
            "{text}"
        );
    }
}

#[test]
fn a_change_in_the_first_row_only_sends_that_persons_rows_in_order() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", source("gold", "platinum"));
    assert_eq!(night(&sb, dir.path(), &[]).0.code, 0);
    // Only the first row changes, and only in what the later rows override: the person
    // ends the same, but their rows differ from what was acknowledged, so all three go.
    write(dir.path(), "p.csv", source("silver", "platinum"));
    let (run, requests) = night(&sb, dir.path(), &["--api", "v1"]);
    assert_eq!(counts(&run), (ROWS, 3, ROWS - 3), "{}", run.summary);
    assert_eq!(requests, 3);
    assert_eq!(
        person(&sb, "dup"),
        json!({"name": "Dee Last", "plan": "platinum", "city": "Oslo"})
    );
    let (again, requests) = night(&sb, dir.path(), &["--api", "v1"]);
    assert_eq!((counts(&again), requests), ((ROWS, 0, ROWS), 0));
}

#[test]
fn a_change_in_the_last_row_only_and_a_revert() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", source("gold", "platinum"));
    assert_eq!(night(&sb, dir.path(), &[]).0.code, 0);
    write(dir.path(), "p.csv", source("gold", "bronze"));
    let (run, _) = night(&sb, dir.path(), &["--api", "v1"]);
    assert_eq!(counts(&run), (ROWS, 3, ROWS - 3), "{}", run.summary);
    assert_eq!(person(&sb, "dup")["plan"], json!("bronze"));
    // Back to the first night's file: the ledger holds the second night's chain, so the
    // person's rows go again and the person ends as the first night left them.
    write(dir.path(), "p.csv", source("gold", "platinum"));
    let (revert, requests) = night(&sb, dir.path(), &["--api", "v1"]);
    assert_eq!(
        (counts(&revert), requests),
        ((ROWS, 3, ROWS - 3), 3),
        "{}",
        revert.summary
    );
    assert_eq!(
        person(&sb, "dup"),
        json!({"name": "Dee Last", "plan": "platinum", "city": "Oslo"})
    );
    let (again, requests) = night(&sb, dir.path(), &[]);
    assert_eq!((counts(&again), requests), ((ROWS, 0, ROWS), 0));
}

#[test]
fn a_person_going_from_two_rows_to_one_is_sent_once_then_skipped() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", "id,plan\na,one\nb,x\na,two\n");
    assert_eq!(night(&sb, dir.path(), &[]).0.code, 0);
    write(dir.path(), "p.csv", "id,plan\nb,x\na,two\n");
    let (run, requests) = night(&sb, dir.path(), &["--api", "v1"]);
    assert_eq!((counts(&run), requests), ((2, 1, 1), 1), "{}", run.summary);
    let (again, requests) = night(&sb, dir.path(), &[]);
    assert_eq!((counts(&again), requests), ((2, 0, 2), 0));
    // And back to two rows: both go once.
    write(dir.path(), "p.csv", "id,plan\na,one\nb,x\na,two\n");
    let (run, requests) = night(&sb, dir.path(), &["--api", "v1"]);
    assert_eq!((counts(&run), requests), ((3, 2, 1), 2), "{}", run.summary);
    assert_eq!(person(&sb, "a")["plan"], json!("two"));
}

#[test]
fn a_failed_second_row_leaves_nothing_in_the_ledger_and_the_next_night_sends_again() {
    // One request at a time, in file order: the first is served, the second refused (400).
    let sb = sandbox(SandboxConfig {
        script: vec![Fault::Pass, Fault::Status(400)],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", "id,plan\nd,one\nd,two\nz,zed\n");
    let args = ["--api", "v1", "--concurrency", "1"];
    let (first, _) = night(&sb, dir.path(), &args);
    assert_eq!(first.code, 2, "{}", first.stderr);
    assert_eq!(
        (first.n("sent"), first.n("rejected"), first.n("skipped")),
        (2, 1, 0)
    );
    let errors = first.errors();
    assert_eq!(errors.len(), 1);
    assert_eq!(
        (errors[0]["row"].as_str(), errors[0]["line"].as_str()),
        ("2", "3")
    );
    assert_eq!(
        std::fs::read_to_string(first.rejects_path("csv")).unwrap(),
        "id,plan\nd,two\n"
    );
    assert_eq!(person(&sb, "d")["plan"], json!("one"));
    let held: Vec<String> = {
        let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        let mut st = conn.prepare("SELECT identifier FROM people").unwrap();
        st.query_map([], |r| r.get(0))
            .unwrap()
            .map(|r| r.unwrap())
            .collect()
    };
    assert_eq!(
        held,
        vec!["z".to_string()],
        "the first row alone is not recorded"
    );
    // A clean night: both of d's rows go again (z is skipped), then nothing.
    let (second, requests) = night(&sb, dir.path(), &args);
    assert_eq!((second.code, counts(&second), requests), (0, (3, 2, 1), 2));
    assert_eq!(person(&sb, "d")["plan"], json!("two"));
    let (third, requests) = night(&sb, dir.path(), &args);
    assert_eq!((counts(&third), requests), ((3, 0, 3), 0));
}

#[test]
fn an_invalid_row_among_a_persons_rows_costs_only_itself() {
    let sb = plain();
    let dir = tempdir();
    let long = "x".repeat(1001);
    write(
        dir.path(),
        "p.csv",
        format!("id,plan,note\nd,one,a\nz,zed,\nd,two,{long}\nd,three,\n"),
    );
    for (n, expect) in [(1, (4, 3, 0)), (2, (4, 0, 3))] {
        let (run, requests) = night(&sb, dir.path(), &["--api", "v1"]);
        assert_eq!(counts(&run), expect, "night {n}: {}", run.summary);
        assert_eq!(run.n("invalid"), 1);
        assert_eq!(requests, expect.1, "night {n}");
        let errors = run.errors();
        assert_eq!(
            (errors[0]["row"].as_str(), errors[0]["line"].as_str()),
            ("3", "4"),
            "night {n}: the invalid row is named"
        );
        assert_eq!(
            person(&sb, "d"),
            json!({"plan": "three", "note": "a"}),
            "night {n}"
        );
    }
}

#[test]
fn stdin_cannot_be_read_twice_so_its_repeated_people_are_sent_every_night() {
    let sb = plain();
    let dir = tempdir();
    let data = source("gold", "platinum");
    let stdin_night = || {
        let before = sb.stats().requests;
        let run = import(
            dir.path(),
            Some(&sb.url()),
            &["-", "--format", "csv", "--state", "state.db", "--api", "v1"],
            Some(data.as_bytes()),
        );
        (run, sb.stats().requests - before)
    };
    let (first, _) = stdin_night();
    assert_eq!((first.code, counts(&first)), (0, (ROWS, ROWS, 0)));
    // The per-row behaviour: each repeated person's earlier rows differ from the recorded
    // last row, so they go; so does every later row of theirs.
    let (second, requests) = stdin_night();
    assert_eq!(counts(&second), (ROWS, 5, ROWS - 5), "{}", second.summary);
    assert_eq!(requests, 5);
    assert!(
        second.stderr.contains("cannot be read twice"),
        "{}",
        second.stderr
    );
    assert_eq!(
        person(&sb, "dup"),
        json!({"name": "Dee Last", "plan": "platinum", "city": "Oslo"})
    );
    // The same rows as a file: sent once more (recorded as groups), then nothing.
    write(dir.path(), "p.csv", &data);
    let (file, _) = night(&sb, dir.path(), &["--api", "v1"]);
    assert_eq!(counts(&file), (ROWS, 5, ROWS - 5));
    let (again, requests) = night(&sb, dir.path(), &[]);
    assert_eq!((counts(&again), requests), ((ROWS, 0, ROWS), 0));
}

#[test]
fn update_only_skips_an_unchanged_group_and_never_records_one() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", source("gold", "platinum"));
    assert_eq!(night(&sb, dir.path(), &[]).0.code, 0);
    // Update-only, unchanged: the ledger's chains still hold.
    let (run, requests) = night(&sb, dir.path(), &["--update-only"]);
    assert_eq!((counts(&run), requests), ((ROWS, 0, ROWS), 0));
    // Update-only, changed: dup's rows go, but an update-only answer proves nothing, so
    // they go again the next update-only night.
    write(dir.path(), "p.csv", source("gold", "bronze"));
    for n in 0..2 {
        let (run, requests) = night(&sb, dir.path(), &["--update-only", "--api", "v1"]);
        assert_eq!(
            (counts(&run), requests),
            ((ROWS, 3, ROWS - 3), 3),
            "night {n}: {}",
            run.summary
        );
        assert_eq!(person(&sb, "dup")["plan"], json!("bronze"));
    }
    assert_eq!(ledger_rows(dir.path()), vec![("twice".to_string(), 2)]);
}

#[test]
fn empty_clear_and_a_mapping_end_on_the_rows_in_file_order_and_skip_when_unchanged() {
    let sb = plain();
    let dir = tempdir();
    write(
        dir.path(),
        "map.toml",
        "[columns.name]\nrename = \"full_name\"\n[columns.score]\ntype = \"integer\"\n",
    );
    write(
        dir.path(),
        "p.csv",
        "id,name,score,city\nd,Dee,1,Oslo\nz,Zed,5,Rome\nd,,2,Bergen\nd,Dee Three,3,\n",
    );
    let args = ["--empty", "clear", "--mapping", "map.toml", "--api", "v1"];
    let (first, _) = night(&sb, dir.path(), &args);
    assert_eq!(
        (first.code, counts(&first)),
        (0, (4, 4, 0)),
        "{}",
        first.stderr
    );
    let shown = |sb: &Sb| -> Value {
        let p = person(sb, "d");
        let m: serde_json::Map<String, Value> = p
            .as_object()
            .unwrap()
            .iter()
            .filter(|(_, v)| v.as_str() != Some(""))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        Value::Object(m)
    };
    // The last row clears city; the second cleared the name, the third set it again.
    assert_eq!(shown(&sb), json!({"full_name": "Dee Three", "score": 3}));
    let (second, requests) = night(&sb, dir.path(), &args);
    assert_eq!((counts(&second), requests), ((4, 0, 4), 0));
    // The same file without --empty clear: other rows (empty cells left out), so sent.
    let (third, requests) = night(&sb, dir.path(), &["--mapping", "map.toml", "--api", "v1"]);
    assert_eq!(
        (counts(&third), requests),
        ((4, 3, 1), 3),
        "{}",
        third.summary
    );
}

#[test]
fn a_ledger_from_before_the_rows_column_is_migrated() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", "id,plan\na,one\nb,x\n");
    assert_eq!(night(&sb, dir.path(), &[]).0.code, 0);
    // The ledger as an earlier version left it: no `rows` column.
    {
        let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch("ALTER TABLE people DROP COLUMN rows")
            .unwrap();
    }
    // Its records are one row each, and still trusted; a repeated person is recorded anew.
    write(dir.path(), "p.csv", "id,plan\na,one\nb,x\nb,y\n");
    let (run, requests) = night(&sb, dir.path(), &["--api", "v1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((counts(&run), requests), ((3, 2, 1), 2), "{}", run.summary);
    assert_eq!(ledger_rows(dir.path()), vec![("b".to_string(), 2)]);
    let (again, requests) = night(&sb, dir.path(), &[]);
    assert_eq!((counts(&again), requests), ((3, 0, 3), 0));
}

/// `--dry-run --state --json`'s diff of `p.csv`.
fn preview(sb: &Sb, dir: &Path, extra: &[&str]) -> Value {
    let mut args = vec!["p.csv", "--state", "state.db", "--dry-run", "--json"];
    args.extend_from_slice(extra);
    let out = import_command(dir, &sb.url(), &args).output().unwrap();
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn the_preview_compares_people_with_several_rows_as_the_run_does() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", source("gold", "gold"));
    let (run, _) = night(&sb, dir.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // The same file: 32 people unchanged, as the run then finds (it sends nothing), and
    // --max-change 0 lets it through.
    let d = preview(&sb, dir.path(), &[]);
    assert_eq!(
        (
            d["new"]["count"].as_u64(),
            d["changed"]["count"].as_u64(),
            d["unchanged"]["count"].as_u64()
        ),
        (Some(0), Some(0), Some(32)),
        "{d}"
    );
    let (run, requests) = night(&sb, dir.path(), &["--max-change", "0"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((run.n("sent"), run.n("skipped"), requests), (0, ROWS, 0));
    // p3 goes from one row to two: the preview says changed (p3 only), the run sends p3's
    // two rows and skips every other.
    let mut text = source("gold", "gold");
    text.push_str("p3,Person 3,paid,\n");
    write(dir.path(), "p.csv", text);
    let d = preview(&sb, dir.path(), &[]);
    assert_eq!(d["changed"]["count"], 1, "{d}");
    assert_eq!(d["changed"]["first"][0]["id"], "p3", "{d}");
    assert_eq!(d["unchanged"]["count"], 31, "{d}");
    let (run, _) = night(&sb, dir.path(), &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!((run.n("sent"), run.n("skipped")), (2, ROWS - 1));
}
