//! Conversion paths that used to lose or misstate data silently (issue 10, items 5 to 8):
//! unreadable JSONL values through a mapping, a mapping's timezone without a format,
//! `created_at` under a `set_when_present`-only rule, and attribute names under
//! `--empty clear`. Each runs the real binary against the in-process sandbox.

mod common;

use common::*;
use serde_json::json;

/// (line, message) of every `invalid` row in the errors report.
fn invalid_lines(r: &Run) -> Vec<(String, String)> {
    r.errors()
        .into_iter()
        .filter(|e| e["class"] == "invalid")
        .map(|e| (e["line"].clone(), e["message"].clone()))
        .collect()
}

/// Line 2 carries a number beyond a 64-bit float, line 3 a lone surrogate (a string cut
/// mid-emoji by a JavaScript export), line 4 a lone surrogate inside a nested object.
const UNREADABLE: &str = concat!(
    "{\"id\":\"1\",\"plan\":\"pro\",\"score\":1,\"name\":\"Ann\"}\n",
    "{\"id\":\"2\",\"plan\":\"pro\",\"score\":1e400,\"name\":\"Bob\"}\n",
    "{\"id\":\"3\",\"plan\":\"pro\",\"score\":3,\"name\":\"Cy \\ud800\"}\n",
    "{\"id\":\"4\",\"plan\":\"pro\",\"prefs\":{\"emoji\":\"\\ud83d\"}}\n",
);

#[test]
fn unreadable_jsonl_values_make_the_row_invalid_with_or_without_a_mapping() {
    let dir = tempdir();
    write(dir.path(), "in.jsonl", UNREADABLE);
    write(
        dir.path(),
        "seed.jsonl",
        "{\"id\":\"2\",\"score\":7,\"name\":\"Bob\"}\n{\"id\":\"3\",\"score\":3,\"name\":\"Cy\"}\n\
{\"id\":\"4\",\"prefs\":{\"emoji\":\"ok\"}}\n",
    );
    write(
        dir.path(),
        "m.toml",
        "[columns.plan]\nrename = \"tier\"\n[columns.score]\ntype = \"float\"\n",
    );
    let mapped: &[&str] = &["--mapping", "m.toml"];
    for (what, extra) in [("no mapping", &[][..]), ("mapping", mapped)] {
        for empty in ["ignore", "clear"] {
            let sb = plain();
            let seed = sb.import(dir.path(), &["seed.jsonl"]);
            assert_eq!(seed.code, 0, "{}", seed.stderr);
            let mut args = vec!["in.jsonl", "--empty", empty];
            args.extend_from_slice(extra);
            let r = sb.import(dir.path(), &args);
            let ctx = format!("{what}, --empty {empty}: {}", r.stderr);
            assert_eq!((r.n("sent"), r.n("invalid")), (1, 3), "{ctx}");
            let errs = invalid_lines(&r);
            let lines: Vec<&str> = errs.iter().map(|(l, _)| l.as_str()).collect();
            assert_eq!(lines, ["2", "3", "4"], "{ctx}");
            assert!(
                errs[0].1.contains("'score'")
                    && errs[0].1.contains("1e400")
                    && errs[0].1.contains("write it as a string"),
                "{ctx}: {}",
                errs[0].1
            );
            assert!(
                errs[1].1.contains("'name'") && errs[1].1.contains("surrogate"),
                "{ctx}: {}",
                errs[1].1
            );
            assert!(
                errs[2].1.contains("'prefs'") && errs[2].1.contains("surrogate"),
                "{ctx}: {}",
                errs[2].1
            );
            // What the seed stored is untouched: nothing dropped, nothing wiped with "".
            assert_eq!(person(&sb, "2"), json!({"score":7,"name":"Bob"}), "{ctx}");
            assert_eq!(person(&sb, "3"), json!({"score":3,"name":"Cy"}), "{ctx}");
            assert_eq!(person(&sb, "4"), json!({"prefs":{"emoji":"ok"}}), "{ctx}");
        }
    }
}

#[test]
fn unreadable_values_through_a_preset_are_invalid_and_dry_run_says_so() {
    let dir = tempdir();
    write(
        dir.path(),
        "braze.jsonl",
        concat!(
            "{\"external_id\":\"u-1\",\"first_name\":\"Fay\",\"custom_attributes\":{\"plan\":\"pro\"}}\n",
            "{\"external_id\":\"u-2\",\"first_name\":\"Gus\",\"custom_attributes\":{\"seats\":1e400}}\n",
            "{\"external_id\":\"u-3\",\"first_name\":\"Hal \\udc00\"}\n",
        ),
    );
    let sb = plain();
    let r = sb.import(
        dir.path(),
        &["braze.jsonl", "--preset", "braze", "--dry-run"],
    );
    assert_eq!((r.code, r.n("invalid")), (2, 2), "{}", r.stderr);
    assert_eq!(sb.stats().requests, 0, "a dry run sends nothing");
    let errs = invalid_lines(&r);
    assert_eq!(errs[0].0, "2");
    assert!(
        errs[0].1.contains("'custom_attributes'") && errs[0].1.contains("1e400"),
        "{}",
        errs[0].1
    );
    assert_eq!(errs[1].0, "3");
    assert!(
        errs[1].1.contains("'first_name'") && errs[1].1.contains("surrogate"),
        "{}",
        errs[1].1
    );
    let r = sb.import(
        dir.path(),
        &["braze.jsonl", "--preset", "braze", "--empty", "clear"],
    );
    assert_eq!((r.n("sent"), r.n("invalid")), (1, 2), "{}", r.stderr);
    assert_eq!(
        sb.people().keys().collect::<Vec<_>>(),
        ["u-1"],
        "only the readable row arrives"
    );
}

/// 2024-05-01 12:00 in New York (EDT, UTC-4) is 16:00 UTC.
const NOON_NEW_YORK: i64 = 1_714_579_200;
/// 2024-05-01 12:00 UTC.
const NOON_UTC: i64 = 1_714_564_800;

#[test]
fn a_mapping_timezone_applies_to_every_zone_less_time() {
    let dir = tempdir();
    write(
        dir.path(),
        "tz.toml",
        r#"
[columns.joined]
rename = "created_at"
type = "timestamp"
timezone = "America/New_York"
[columns.seen]
type = "timestamp"
timezone = "America/New_York"
"#,
    );
    write(
        dir.path(),
        "in.csv",
        "id,joined,seen\n\
1,2024-05-01 12:00:00,2024-05-01\n\
2,2024-05-01T12:00:00Z,2024-05-01T12:00\n\
3,1714564800,2024-05-01 12:00:00+02:00\n\
4,2024-03-10 02:30:00,\n",
    );
    let sb = plain();
    let r = sb.import(dir.path(), &["in.csv", "--mapping", "tz.toml"]);
    assert_eq!((r.n("sent"), r.n("invalid")), (3, 1), "{}", r.stderr);
    // Zone-less times are New York times; a date is New York midnight (04:00 UTC).
    assert_eq!(
        person(&sb, "1"),
        json!({"created_at": NOON_NEW_YORK, "seen": 1_714_536_000})
    );
    // An explicit zone or Unix seconds are already absolute.
    assert_eq!(
        person(&sb, "2"),
        json!({"created_at": NOON_UTC, "seen": NOON_NEW_YORK})
    );
    assert_eq!(
        person(&sb, "3"),
        json!({"created_at": NOON_UTC, "seen": NOON_UTC - 2 * 3600})
    );
    // 02:30 on 10 March 2024 does not exist in New York (clocks jump from 02:00 to 03:00).
    let errs = invalid_lines(&r);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].0, "5");
    assert!(
        errs[0].1.contains("'joined'") && errs[0].1.contains("daylight-saving"),
        "{}",
        errs[0].1
    );
    // JSONL strings follow the same rule.
    write(
        dir.path(),
        "in.jsonl",
        "{\"id\":\"9\",\"joined\":\"2024-05-01 12:00:00\",\"seen\":\"2024-05-01T12:00:00Z\"}\n",
    );
    let r = sb.import(dir.path(), &["in.jsonl", "--mapping", "tz.toml"]);
    assert_eq!(r.n("sent"), 1, "{}", r.stderr);
    assert_eq!(
        person(&sb, "9"),
        json!({"created_at": NOON_NEW_YORK, "seen": NOON_UTC})
    );
}

#[test]
fn created_at_under_a_set_when_present_rule_is_sent_as_unix_seconds() {
    let dir = tempdir();
    write(
        dir.path(),
        "m.toml",
        "[columns.signup]\nrename = \"created_at\"\nset_when_present = { source = \"crm\" }\n\
[columns.created_at]\nset_when_present = { dated = true }\n",
    );
    write(
        dir.path(),
        "renamed.csv",
        "id,signup\n1,2024-05-01 12:00:00\n2,last tuesday\n3,\n",
    );
    write(
        dir.path(),
        "same.csv",
        "id,created_at\n4,2024-05-01T12:00:00Z\n5,1714564800000\n",
    );
    let sb = plain();
    let r = sb.import(dir.path(), &["renamed.csv", "--mapping", "m.toml"]);
    assert_eq!((r.n("sent"), r.n("invalid")), (2, 1), "{}", r.stderr);
    assert_eq!(
        person(&sb, "1"),
        json!({"created_at": NOON_UTC, "source": "crm"})
    );
    assert_eq!(person(&sb, "3"), json!({}));
    let errs = invalid_lines(&r);
    assert_eq!(errs[0].0, "3");
    assert!(
        errs[0].1.contains("created_at") && errs[0].1.contains("accepted:"),
        "{}",
        errs[0].1
    );
    let r = sb.import(dir.path(), &["same.csv", "--mapping", "m.toml"]);
    assert_eq!(r.n("sent"), 2, "{}", r.stderr);
    assert_eq!(
        person(&sb, "4"),
        json!({"created_at": NOON_UTC, "dated": true})
    );
    assert_eq!(
        person(&sb, "5"),
        json!({"created_at": NOON_UTC, "dated": true})
    );
    assert!(
        sb.stats().violations.is_empty(),
        "{:?}",
        sb.stats().violations
    );
}

#[test]
fn attribute_names_are_checked_when_empty_values_clear() {
    let dir = tempdir();
    let long = "n".repeat(151);
    write(
        dir.path(),
        "long.csv",
        format!("id,plan,{long}\n1,pro,\n2,free,\n"),
    );
    write(
        dir.path(),
        "empty_key.jsonl",
        "{\"id\":\"1\",\"plan\":\"pro\",\"\":null}\n{\"id\":\"2\",\"plan\":\"free\"}\n",
    );
    for (file, needle) in [("long.csv", "151 bytes"), ("empty_key.jsonl", "empty name")] {
        for dry in [true, false] {
            let sb = plain();
            let mut args = vec![file, "--empty", "clear"];
            if dry {
                args.push("--dry-run");
            }
            let r = sb.import(dir.path(), &args);
            let ctx = format!("{file}, dry run {dry}: {}", r.stderr);
            let errs = invalid_lines(&r);
            assert_eq!(r.code, 2, "{ctx}");
            if file == "long.csv" {
                assert_eq!(
                    errs.iter().map(|e| e.0.as_str()).collect::<Vec<_>>(),
                    ["2", "3"],
                    "{ctx}"
                );
            } else {
                assert_eq!(r.n("invalid"), 1, "{ctx}");
                assert_eq!(errs[0].0, "1", "{ctx}");
            }
            assert!(
                errs[0].1.contains(needle)
                    && (errs[0].1.contains("rename") || errs[0].1.contains("name it")),
                "{ctx}: {}",
                errs[0].1
            );
            assert!(
                sb.stats().violations.is_empty()
                    && sb.stats().by_status.keys().all(|s| s.starts_with('2')),
                "{ctx}: the API was sent a name it rejects: {:?} {:?}",
                sb.stats().violations,
                sb.stats().by_status
            );
            if dry {
                assert_eq!(sb.stats().requests, 0, "{ctx}");
            }
        }
    }
}
