//! `--action delete|suppress|unsuppress`: a file of identifiers through both APIs, the
//! confirmation of destructive actions (`--yes`, `--dry-run`, `--max-deletes`), and the ledger
//! forgetting deleted people.

mod common;

use common::*;

const PEOPLE: &str =
    "id,email,plan\n1,a@example.com,pro\n2,b@example.com,free\n3,c@example.com,pro\n";
/// Identifiers and a column that must be ignored.
const LIST: &str = "id,reason\n1,asked\n3,duplicate\n";

/// A sandbox holding people 1, 2 and 3, and a directory with the people and the list.
fn seeded(api: &str) -> (Sb, tempfile::TempDir) {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    write(dir.path(), "list.csv", LIST);
    let run = sb.import(dir.path(), &["people.csv", "--api", api]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(sb.people().len(), 3);
    (sb, dir)
}

fn ids(sb: &Sb) -> Vec<String> {
    let mut v: Vec<String> = sb.people().into_keys().collect();
    v.sort();
    v
}

fn suppressed(sb: &Sb) -> Vec<String> {
    sb.sb
        .suppressed()
        .into_iter()
        .map(|s| format!("{}:{}", s.kind, s.identifier))
        .collect()
}

#[test]
fn delete_removes_the_people_listed_through_both_apis() {
    for api in ["v1", "batch"] {
        let (sb, dir) = seeded(api);
        let run = sb.import(
            dir.path(),
            &["list.csv", "--action", "delete", "--yes", "--api", api],
        );
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!((run.n("rows"), run.n("sent")), (2, 2), "{api}");
        assert_eq!(ids(&sb), ["2"], "{api}");
        let st = sb.stats();
        assert_eq!(st.action("delete"), 2, "{api}");
        assert!(st.violations.is_empty(), "{api}: {:?}", st.violations);
        assert!(run.stderr.contains("delete: 2 people"), "{}", run.stderr);
    }
}

#[test]
fn suppress_then_unsuppress_through_both_apis() {
    for api in ["v1", "batch"] {
        let (sb, dir) = seeded(api);
        let run = sb.import(
            dir.path(),
            &["list.csv", "--action", "suppress", "--yes", "--api", api],
        );
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!(run.n("sent"), 2);
        assert_eq!(ids(&sb), ["2"], "{api}: suppression removes the person");
        assert_eq!(suppressed(&sb), ["id:1", "id:3"], "{api}");
        assert_eq!(sb.stats().action("suppress"), 2, "{api}");

        // Unsuppress is not destructive: no --yes needed.
        let run = sb.import(
            dir.path(),
            &["list.csv", "--action", "unsuppress", "--api", api],
        );
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!(run.n("sent"), 2);
        assert!(suppressed(&sb).is_empty(), "{api}");
        assert_eq!(sb.stats().action("unsuppress"), 2, "{api}");
        assert!(sb.stats().violations.is_empty(), "{api}");
    }
}

#[test]
fn a_destructive_action_without_yes_is_refused_and_sends_nothing() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "list.csv", LIST);
    for action in ["delete", "suppress"] {
        let run = sb.import(dir.path(), &["list.csv", "--action", action]);
        assert_eq!(run.code, 1, "{action}: {}", run.stderr);
        assert!(
            run.stderr.contains("--yes") && run.stderr.contains("nothing was sent"),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("first: 1, 3"), "{}", run.stderr);
    }
    assert_eq!(sb.stats().requests, 0);
}

#[test]
fn a_dry_run_shows_the_count_and_the_first_identifiers_and_sends_nothing() {
    let (sb, dir) = seeded("batch");
    let before = sb.stats().requests;
    let list: String = std::iter::once("id".to_string())
        .chain((1..=8).map(|i| format!("p{i}")))
        .chain(["p1".to_string()])
        .collect::<Vec<_>>()
        .join("\n");
    write(dir.path(), "eight.csv", list);
    let run = sb.import(
        dir.path(),
        &["eight.csv", "--action", "delete", "--dry-run"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr.contains("delete: 8 people in eight.csv"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("first: p1, p2, p3, p4, p5, ..."),
        "{}",
        run.stderr
    );
    assert_eq!((run.n("rows"), run.n("skipped"), run.n("sent")), (9, 9, 0));
    assert_eq!(sb.stats().requests, before);
    assert_eq!(sb.people().len(), 3);
}

#[test]
fn the_cap_refuses_a_larger_file_even_with_yes_unless_raised() {
    let (sb, dir) = seeded("batch");
    let before = sb.stats().requests;
    let run = sb.import(
        dir.path(),
        &[
            "list.csv",
            "--action",
            "delete",
            "--yes",
            "--max-deletes",
            "1",
        ],
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("--max-deletes 1"), "{}", run.stderr);
    assert_eq!(sb.stats().requests, before);
    assert_eq!(sb.people().len(), 3);
    let run = sb.import(
        dir.path(),
        &[
            "list.csv",
            "--action",
            "delete",
            "--yes",
            "--max-deletes",
            "2",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(ids(&sb), ["2"]);
}

#[test]
fn a_deleted_person_is_sent_again_by_the_next_identify_with_state() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "people.csv", PEOPLE);
        write(dir.path(), "list.csv", LIST);
        let sync = |args: &[&str]| {
            let mut all = args.to_vec();
            all.extend(["--state", "state.db", "--api", api]);
            sb.import(dir.path(), &all)
        };
        let run = sync(&["people.csv"]);
        assert_eq!(run.n("sent"), 3, "{api}: {}", run.stderr);
        // Unchanged: the ledger skips everyone.
        let run = sync(&["people.csv"]);
        assert_eq!((run.n("sent"), run.n("skipped")), (0, 3), "{api}");
        // The ledger never skips a delete, even of people it holds unchanged.
        let run = sync(&["list.csv", "--action", "delete", "--yes"]);
        assert_eq!((run.n("sent"), run.n("skipped")), (2, 0), "{api}");
        assert_eq!(ids(&sb), ["2"], "{api}");
        // The deleted people are no longer "unchanged": they are sent again.
        let run = sync(&["people.csv"]);
        assert_eq!((run.n("sent"), run.n("skipped")), (2, 1), "{api}");
        assert_eq!(ids(&sb), ["1", "2", "3"], "{api}");
        // A second delete of the same list is sent again too.
        let run = sync(&["list.csv", "--action", "delete", "--yes"]);
        assert_eq!(run.n("sent"), 2, "{api}");
        assert_eq!(sb.stats().action("delete"), 4, "{api}");
    }
}

#[test]
fn rows_without_an_identifier_are_reported_and_the_counts_balance() {
    let (sb, dir) = seeded("batch");
    write(
        dir.path(),
        "gaps.jsonl",
        "{\"id\":\"1\",\"x\":{\"deep\":[1]}}\n{\"email\":\"b@example.com\"}\n{\"id\":3}\n",
    );
    let run = sb.import(dir.path(), &["gaps.jsonl", "--action", "delete", "--yes"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!((run.n("rows"), run.n("sent"), run.n("invalid")), (3, 2, 1));
    let errors = run.errors();
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]["message"].contains("'id' is missing"),
        "{errors:?}"
    );
    assert_eq!(ids(&sb), ["2"]);
}

#[test]
fn a_destructive_action_needs_a_file_not_stdin() {
    let sb = plain();
    let dir = tempdir();
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["-", "--format", "csv", "--action", "delete", "--yes"],
        Some(LIST.as_bytes()),
    );
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("not stdin"), "{}", run.stderr);
    assert_eq!(sb.stats().requests, 0);
}

/// Red-team finding: the count was taken on one read of a named pipe and the engine read it
/// again: a producer that wrote twice got five deletions past `--max-deletes 1`, and one that
/// wrote once left the run waiting forever on the second open. An input that cannot be read
/// twice is refused for destructive actions, and nothing is sent.
#[cfg(unix)]
#[test]
fn a_destructive_action_refuses_a_pipe_it_cannot_read_twice() {
    let sb = plain();
    let dir = tempdir();
    let fifo = dir.path().join("p.csv");
    mkfifo(&fifo);
    // Left blocked on its open when nobody reads the pipe; it ends with the test binary.
    let _feeder = feed_fifo(&fifo, vec!["id\n1\n2\n3\n4\n5\n".into()]);
    let out = import_bounded(
        dir.path(),
        &sb.url(),
        &[
            "p.csv",
            "--action",
            "delete",
            "--yes",
            "--max-deletes",
            "10",
        ],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(sb.stats().action("delete"), 0, "{stderr}");
    assert!(stderr.contains("pipe"), "{stderr}");
}

/// Red-team finding: a deletion list by email left the ledger's claims on people it knew by id,
/// though Customer.io resolves both to the same person: the next sync skipped the deleted
/// people as "unchanged". A deletion list by one kind forgets the people known by another.
#[test]
fn a_deletion_by_email_makes_the_next_sync_by_id_send_everyone_again() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "people.csv", PEOPLE);
    write(dir.path(), "emails.csv", "email\na@example.com\n");
    let state = ["--state", "state.db"];
    let run = sb.import(dir.path(), &["people.csv", state[0], state[1]]);
    assert_eq!(run.n("sent"), 3, "{}", run.stderr);
    let run = sb.import(
        dir.path(),
        &[
            "emails.csv",
            "--identify-by",
            "email",
            "--action",
            "delete",
            "--yes",
            state[0],
            state[1],
        ],
    );
    assert_eq!((run.code, run.n("sent")), (0, 1), "{}", run.stderr);
    let run = sb.import(dir.path(), &["people.csv", state[0], state[1]]);
    assert_eq!((run.n("sent"), run.n("skipped")), (3, 0), "{}", run.stderr);
}
