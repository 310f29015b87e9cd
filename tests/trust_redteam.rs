//! Red-team findings (issue 10, trust first): an unclosed CSV quote is reported instead of
//! swallowing the rest of the file; default report names are distinct per input; integral JSON
//! number ids keep their integer spelling; `--empty clear` never sends an empty `created_at`.

mod common;

use common::*;

// ---------------------------------------------------------------------------------------------
// 1. An unclosed quote.

#[test]
fn an_unclosed_quote_is_reported_invalid_at_its_line_not_swallowed() {
    let dir = tempdir();
    write(dir.path(), "swallow.csv", "id,plan\n1,a\n2,\"b\n3,c\n4,d\n");
    let sb = plain();
    let run = sb.import(dir.path(), &["swallow.csv"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!((run.n("rows"), run.n("sent"), run.n("invalid")), (2, 1, 1));
    let people = sb.people();
    assert!(people.contains_key("1"));
    assert!(
        !people.contains_key("2"),
        "person 2 swallowed the rest of the file"
    );
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["line"], "3");
    assert_eq!(errors[0]["class"], "invalid");
    let msg = &errors[0]["message"];
    assert!(
        msg.contains("line 3 opens a quote that is never closed")
            && msg.contains("lines 3-5")
            && msg.contains("close the quote"),
        "{msg}"
    );
}

#[test]
fn quotes_that_close_or_are_literal_are_not_taken_for_an_unclosed_one() {
    let dir = tempdir();
    // A literal quote inside an unquoted field, an escaped quote, a closed multi-line field,
    // and a last line without a line ending: all well-formed.
    write(
        dir.path(),
        "fine.csv",
        "id,plan\n1,5\" screen\n2,\"say \"\"hi\"\"\"\n3,\"two\nlines\"\n4,7\"",
    );
    let sb = plain();
    let run = sb.import(dir.path(), &["fine.csv"]);
    assert_eq!(run.code, 0, "{} {:?}", run.stderr, run.errors());
    assert_eq!((run.n("rows"), run.n("sent")), (4, 4));
}

#[test]
fn an_unclosed_quote_on_the_last_line_without_a_line_ending_is_reported() {
    let dir = tempdir();
    write(dir.path(), "last.csv", "id,plan\r\n1,a\r\n2,\"b");
    let sb = plain();
    let run = sb.import(dir.path(), &["last.csv"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = run.errors();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0]["line"], "3");
    assert!(
        errors[0]["message"].contains("line 3 opens a quote"),
        "{:?}",
        errors[0]
    );
}

// ---------------------------------------------------------------------------------------------
// 2. Default report names are distinct per input file name.

/// `cio-import import NAME --dry-run -q` in `dir` with default report paths: the exit code.
fn dry_run(dir: &std::path::Path, name: &str) -> i32 {
    let o = without_credentials(
        dir,
        &["import", name, "--dry-run", "-q", "--summary", "s.json"],
    )
    .env_remove("RUST_LOG")
    .output()
    .unwrap();
    o.status.code().unwrap_or(-1)
}

#[test]
fn inputs_that_differ_only_by_extension_keep_their_own_reports() {
    let dir = tempdir();
    let d = dir.path();
    // customers.csv fails one row; customers.jsonl and customers.csv.gz are clean.
    write(d, "customers.csv", "id,created_at\n1,2023-01-01\n2,never\n");
    write(d, "customers.jsonl", "{\"id\":\"1\"}\n");
    write(
        d,
        "customers.csv.gz",
        gzip(b"id,created_at\n1,2023-01-01\n"),
    );
    assert_eq!(dry_run(d, "customers.csv"), 2);
    let errors = d.join("customers.csv.errors.csv");
    let rejects = d.join("customers.csv.rejects.csv");
    assert!(
        errors.exists() && rejects.exists(),
        "reports of customers.csv are named after its whole file name"
    );
    // A clean run of each sibling removes its own reports only.
    assert_eq!(dry_run(d, "customers.jsonl"), 0);
    assert_eq!(dry_run(d, "customers.csv.gz"), 0);
    assert!(
        errors.exists(),
        "a sibling's clean run deleted the errors file"
    );
    assert!(
        rejects.exists(),
        "a sibling's clean run deleted the rejects file"
    );
    assert_eq!(
        std::fs::read_to_string(&rejects).unwrap(),
        "id,created_at\n2,never\n"
    );
    // And a failing sibling writes its own.
    write(
        d,
        "customers.jsonl",
        "{\"id\":\"1\",\"created_at\":\"never\"}\n",
    );
    assert_eq!(dry_run(d, "customers.jsonl"), 2);
    assert!(d.join("customers.jsonl.errors.csv").exists());
    assert!(d.join("customers.jsonl.rejects.jsonl").exists());
    assert_eq!(
        read_csv_maps(&errors).len(),
        1,
        "the csv's errors file was overwritten"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. JSON number identifiers.

const NUMBER_IDS: &str = "{\"id\":123.0,\"plan\":\"a\"}\n{\"id\":1e2,\"plan\":\"b\"}\n\
{\"id\":1.5,\"plan\":\"c\"}\n{\"id\":7,\"plan\":\"d\"}\n{\"id\":-4.0,\"plan\":\"e\"}\n\
{\"id\":9007199254740993.0,\"plan\":\"f\"}\n";

#[test]
fn integral_json_number_ids_keep_their_integer_spelling_with_or_without_a_mapping() {
    let dir = tempdir();
    write(dir.path(), "ids.jsonl", NUMBER_IDS);
    write(
        dir.path(),
        "renamed.jsonl",
        NUMBER_IDS.replace("\"id\"", "\"user_id\""),
    );
    write(dir.path(), "m.toml", "[columns.user_id]\nrename = \"id\"\n");
    let plain_args: &[&str] = &["ids.jsonl"];
    let mapped_args: &[&str] = &["renamed.jsonl", "--mapping", "m.toml"];
    for args in [plain_args, mapped_args] {
        let sb = plain();
        let run = sb.import(dir.path(), args);
        let ctx = format!("{args:?}: {}", run.stderr);
        assert_eq!(run.code, 2, "{ctx}");
        assert_eq!((run.n("sent"), run.n("invalid")), (4, 2), "{ctx}");
        let mut ids: Vec<String> = sb.people().keys().cloned().collect();
        ids.sort();
        assert_eq!(ids, ["-4", "100", "123", "7"], "{ctx}");
        let errors = run.errors();
        let mut lines: Vec<&str> = errors.iter().map(|e| e["line"].as_str()).collect();
        lines.sort();
        assert_eq!(lines, ["3", "6"], "{ctx}");
        for e in &errors {
            let m = &e["message"];
            assert!(
                m.contains("identifier 'id'") && m.contains("as a string"),
                "{ctx}: {m}"
            );
        }
        let half = errors.iter().find(|e| e["line"] == "3").unwrap();
        assert!(half["message"].contains("1.5") && half["message"].contains("whole number"));
    }
}

// ---------------------------------------------------------------------------------------------
// 4. `--empty clear` and an empty `created_at`.

#[test]
fn empty_clear_leaves_an_empty_created_at_out_in_every_path() {
    let dir = tempdir();
    write(
        dir.path(),
        "in.csv",
        "id,created_at,plan\n1,,a\n2,2024-05-01,b\n",
    );
    write(
        dir.path(),
        "in.jsonl",
        "{\"id\":\"1\",\"created_at\":null,\"plan\":\"a\"}\n{\"id\":\"2\",\"created_at\":\"2024-05-01\",\"plan\":\"b\"}\n",
    );
    write(
        dir.path(),
        "renamed.csv",
        "id,signup,plan\n1,,a\n2,2024-05-01,b\n",
    );
    write(
        dir.path(),
        "renamed.jsonl",
        "{\"id\":\"1\",\"signup\":null,\"plan\":\"a\"}\n{\"id\":\"2\",\"signup\":\"2024-05-01\",\"plan\":\"b\"}\n",
    );
    write(
        dir.path(),
        "m.toml",
        "[columns.signup]\nrename = \"created_at\"\n",
    );
    let cases: &[&[&str]] = &[
        &["in.csv"],
        &["in.jsonl"],
        &["renamed.csv", "--mapping", "m.toml"],
        &["renamed.jsonl", "--mapping", "m.toml"],
    ];
    for case in cases {
        let sb = plain();
        let mut args = case.to_vec();
        args.extend_from_slice(&["--empty", "clear"]);
        let run = sb.import(dir.path(), &args);
        let ctx = format!("{case:?}: {} {:?}", run.stderr, run.errors());
        assert_eq!(run.code, 0, "{ctx}");
        assert_eq!(run.n("sent"), 2, "{ctx}");
        let people = sb.people();
        let one = attrs(&people["1"]);
        assert_eq!(one.get("plan"), Some(&serde_json::json!("a")), "{ctx}");
        assert!(!one.contains_key("created_at"), "{ctx}: {one:?}");
        assert_eq!(
            attrs(&people["2"]).get("created_at"),
            Some(&serde_json::json!(1_714_521_600)),
            "{ctx}"
        );
        assert!(
            sb.stats().violations.is_empty(),
            "{ctx}: {:?}",
            sb.stats().violations
        );
    }
}
