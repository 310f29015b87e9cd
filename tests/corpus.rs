//! The hostile-input corpus (tests/corpus/, made by make_corpus.py, plus three large cases
//! generated here): no panic, every row in its expected class with its line, every valid row
//! delivered.

mod common;

use common::*;
use std::path::{Path, PathBuf};

/// (file, extra args, exit code, rows read, rows sent, lines of the invalid rows)
type Case = (
    &'static str,
    &'static [&'static str],
    i32,
    u64,
    u64,
    &'static [u64],
);

const CASES: &[Case] = &[
    ("bom.csv", &[], 0, 2, 2, &[]),
    ("crlf.csv", &[], 0, 2, 2, &[]),
    ("lone_cr.csv", &[], 0, 2, 2, &[]),
    ("mixed_line_endings.csv", &[], 0, 3, 3, &[]),
    ("quotes_in_quotes.csv", &[], 0, 2, 2, &[]),
    ("quoted_newline.csv", &[], 0, 2, 2, &[]),
    ("ragged.csv", &[], 2, 4, 2, &[3, 4]),
    // No rows is a failure (a guard: exit 2) unless --allow-empty (issue 14).
    ("header_only.csv", &[], 2, 0, 0, &[]),
    ("header_only.csv", &["--allow-empty"], 0, 0, 0, &[]),
    ("empty.csv", &[], 2, 0, 0, &[]),
    ("empty.csv", &["--allow-empty"], 0, 0, 0, &[]),
    ("duplicate_headers.csv", &[], 1, 0, 0, &[]),
    ("empty_header_name.csv", &[], 1, 0, 0, &[]),
    ("missing_id_column.csv", &[], 1, 0, 0, &[]),
    // Not UTF-8 in the first block: stops before the first row, naming the likely encoding.
    ("invalid_utf8.csv", &[], 1, 0, 0, &[]),
    ("nul_bytes.csv", &[], 0, 2, 2, &[]),
    ("trailing_empty_lines.csv", &[], 0, 2, 2, &[]),
    ("ids_150_151.csv", &[], 2, 2, 1, &[3]),
    ("names_150_151.csv", &[], 2, 2, 1, &[3]),
    ("values_1000_1001.csv", &[], 2, 3, 2, &[3]),
    ("attrs_300.csv", &[], 0, 1, 1, &[]),
    // More attribute columns than a person may have: with empty cells left out, a full row
    // fails alone; under --empty clear every row would fail, so it stops at the header.
    ("attrs_301.csv", &[], 2, 2, 1, &[2]),
    ("attrs_301.csv", &["--empty", "clear"], 1, 0, 0, &[]),
    ("header_305.csv", &[], 2, 1, 0, &[2]),
    ("header_305.csv", &["--empty", "clear"], 1, 0, 0, &[]),
    ("semicolon.csv", &["--delimiter", ";"], 0, 2, 2, &[]),
    // The delimiter detected from the header.
    ("semicolon.csv", &[], 0, 2, 2, &[]),
    ("semicolon_excel.csv", &[], 0, 2, 2, &[]),
    ("missing_id_near_miss.csv", &[], 1, 0, 0, &[]),
    // Windows-1252 stops without --encoding; with it, the row with no id is invalid at line 5.
    ("windows1252.csv", &[], 1, 0, 0, &[]),
    (
        "windows1252.csv",
        &["--encoding", "windows-1252"],
        2,
        4,
        3,
        &[5],
    ),
    ("windows1252.csv", &["--encoding", "latin1"], 2, 4, 3, &[5]),
    // UTF-16LE with its byte-order mark and tabs (Excel's "Unicode text"): no flag needed.
    ("utf16le_bom.txt", &[], 2, 4, 3, &[5]),
    ("slash_dates.csv", &[], 2, 3, 1, &[2, 4]),
    ("tab.tsv", &[], 0, 2, 2, &[]),
    ("whitespace_id.csv", &[], 2, 2, 1, &[2]),
    ("unicode_ids.csv", &[], 0, 3, 3, &[]),
    ("created_at_variants.csv", &[], 2, 7, 5, &[6, 7]),
    ("only_commas.csv", &[], 2, 3, 1, &[2, 4]),
    ("spaces_around.csv", &[], 0, 2, 2, &[]),
    ("many_rows.csv", &[], 0, 2000, 2000, &[]),
    // An unclosed quote would run to the end of the file (row 3 would become part of row 2):
    // row 2 is reported invalid at its line instead.
    ("unterminated_quote.csv", &[], 2, 2, 1, &[3]),
    ("multi_member.csv.gz", &[], 0, 3, 3, &[]),
    // Rows before the break are delivered; the run then stops with an I/O error.
    ("truncated.csv.gz", &[], 1, 2494, 2494, &[]),
    ("not_gzip.csv.gz", &[], 1, 0, 0, &[]),
    ("array_line.jsonl", &[], 2, 3, 2, &[2]),
    ("scalars.jsonl", &[], 2, 5, 1, &[1, 2, 3, 4]),
    ("trailing_comma.jsonl", &[], 2, 2, 1, &[1]),
    ("nan.jsonl", &[], 2, 3, 1, &[1, 2]),
    ("deep_nesting.jsonl", &[], 0, 2, 2, &[]),
    ("blank_lines.jsonl", &[], 0, 2, 2, &[]),
    ("bom.jsonl", &[], 0, 2, 2, &[]),
    ("crlf.jsonl", &[], 0, 2, 2, &[]),
    ("id_types.jsonl", &[], 2, 6, 1, &[2, 3, 4, 5, 6]),
    ("duplicate_keys.jsonl", &[], 0, 1, 1, &[]),
    ("unicode_escapes.jsonl", &[], 0, 1, 1, &[]),
    ("invalid_utf8.jsonl", &[], 1, 0, 0, &[]),
    ("nul.jsonl", &[], 0, 1, 1, &[]),
    ("big_numbers.jsonl", &[], 2, 3, 2, &[1]),
    ("nested_values.jsonl", &[], 0, 1, 1, &[]),
    ("truncated_last_line.jsonl", &[], 2, 2, 1, &[2]),
    ("big_field.csv", &[], 2, 2, 1, &[3]),
    // 5000 columns: the sparse row goes through, the full one fails alone (issue 15 fix).
    ("wide_5000.csv", &[], 2, 2, 1, &[3]),
    ("wide_5000.csv", &["--empty", "clear"], 1, 0, 0, &[]),
    ("long_line.jsonl", &[], 2, 2, 1, &[1]),
];

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus")
}

/// The three large cases, written next to the others in a temporary folder.
fn generated(dir: &Path) {
    let field = "x".repeat(10 * 1024 * 1024);
    write(dir, "big_field.csv", format!("id,v\n1,ok\n2,{field}\n"));
    let header: Vec<String> = (0..5000).map(|i| format!("c{i}")).collect();
    let full = vec!["v"; 5000].join(",");
    let few = format!("v{}", ",".repeat(4999));
    write(
        dir,
        "wide_5000.csv",
        format!("id,{}\n1,{few}\n2,{full}\n", header.join(",")),
    );
    let long = "y".repeat(1024 * 1024);
    write(
        dir,
        "long_line.jsonl",
        format!("{{\"id\":\"1\",\"v\":\"{long}\"}}\n{{\"id\":\"2\",\"v\":\"ok\"}}\n"),
    );
}

#[test]
fn every_corpus_file_ends_as_expected() {
    let files = std::fs::read_dir(corpus_dir()).unwrap().filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x != "py")
    });
    assert!(
        files.count() + 3 >= 40,
        "the corpus must hold at least 40 files"
    );
    let dir = tempdir();
    generated(dir.path());
    for entry in std::fs::read_dir(corpus_dir()).unwrap() {
        let p = entry.unwrap().path();
        std::fs::copy(&p, dir.path().join(p.file_name().unwrap())).unwrap();
    }
    for (file, extra, exit, rows, sent, lines) in CASES {
        let sb = plain();
        let mut args = vec![*file];
        args.extend_from_slice(extra);
        let run = sb.import(dir.path(), &args);
        assert!(!run.stderr.contains("panicked"), "{file}: {}", run.stderr);
        assert_eq!(run.code, *exit, "{file}: {}", run.stderr);
        if run.summary.is_null() {
            assert!(
                *exit == 1 && *rows == 0,
                "{file}: no summary: {}",
                run.stderr
            );
            continue;
        }
        assert_eq!(
            (run.n("rows"), run.n("sent")),
            (*rows, *sent),
            "{file}: {}",
            run.summary
        );
        let got: Vec<u64> = run
            .errors()
            .iter()
            .map(|e| e["line"].parse().unwrap())
            .collect();
        assert_eq!(got, *lines, "{file}");
        assert!(
            run.errors().iter().all(|e| e["class"] == "invalid"),
            "{file}"
        );
        assert_eq!(
            sb.people().len() as u64,
            *sent,
            "{file}: every valid row delivered"
        );
        assert!(
            sb.stats().violations.is_empty(),
            "{file}: {:?}",
            sb.stats().violations
        );
    }
}
