//! Issue 15, the files people actually have and a newcomer's first ten minutes: Windows-1252
//! and UTF-16 exports (also gzipped, also on stdin), semicolon files without a flag, headers
//! that cannot work (305 columns, an identifier column spelled differently), setup errors
//! without a table of zeros, dates such as 07/03/2019, completions and the man page, and the
//! README's first commands. The corpus files are in tests/corpus/ (make_corpus.py).

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn corpus(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/corpus")
            .join(name),
    )
    .unwrap()
}

fn cp1252(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    assert!(!unmappable, "{text}");
    bytes.into_owned()
}

fn first_name(sb: &Sb, id: &str) -> String {
    person(sb, id)["first_name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// No table of zeros: the reason comes first, the one-line hint next, and no count follows;
/// the run's `aborted` log line may come last (for cron logs), never a `started` line.
fn assert_setup_error(run: &Run, reason: &str) {
    assert_eq!(run.code, 1, "{}", run.stderr);
    let lines: Vec<&str> = run.stderr.lines().collect();
    let first = lines.first().copied().unwrap_or_default();
    assert!(first.starts_with("error: "), "{}", run.stderr);
    assert!(first.contains(reason), "{}", run.stderr);
    assert!(!run.stderr.contains("rows read"), "{}", run.stderr);
    assert_eq!(
        lines.get(1).copied(),
        Some("cio-import stopped before reading any row: nothing was sent"),
        "{}",
        run.stderr
    );
    assert!(
        !run.stderr.contains(" started: cio-import"),
        "{}",
        run.stderr
    );
    if let Some(last) = lines.get(2) {
        assert!(
            last.contains(" INFO run ") && last.contains(" aborted: 0 rows"),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_windows_1252_file_without_the_flag_stops_before_any_row_naming_its_encoding() {
    let dir = tempdir();
    write(dir.path(), "crm.csv", corpus("windows1252.csv"));
    let sb = plain();
    let run = sb.import(dir.path(), &["crm.csv"]);
    assert_setup_error(
        &run,
        "crm.csv: the input is not UTF-8 (line 2 has the byte 0xEB ('ë' in windows-1252)): it looks like windows-1252",
    );
    assert!(
        run.stderr.contains("pass --encoding windows-1252"),
        "{}",
        run.stderr
    );
    assert!(sb.people().is_empty());
    assert_eq!(run.n("rows"), 0);
}

#[test]
fn a_windows_1252_file_keeps_its_accents_and_its_rejects_stay_windows_1252() {
    let dir = tempdir();
    write(dir.path(), "crm.csv", corpus("windows1252.csv"));
    let sb = plain();
    let run = sb.import(dir.path(), &["crm.csv", "--encoding", "windows-1252"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!((run.n("rows"), run.n("sent")), (4, 3));
    assert_eq!(first_name(&sb, "1"), "Zoë");
    assert_eq!(first_name(&sb, "2"), "José");
    // 0x93 and 0x94: curly quotes in windows-1252, control characters in ISO-8859-1.
    assert_eq!(first_name(&sb, "3"), "“Ann”");
    // The line an editor shows; the rejects in the input's own encoding.
    assert_eq!(run.errors()[0]["line"], "5");
    let rejects = std::fs::read(run.rejects_path("csv")).unwrap();
    assert_eq!(
        rejects,
        cp1252("id,email,first_name,plan\r\n ,renee@example.com,Renée,free\r\n")
    );
    // Importing the rejects again with the same flag reads them as they were written.
    std::fs::copy(run.rejects_path("csv"), dir.path().join("fix.csv")).unwrap();
    let again = sb.import(dir.path(), &["fix.csv", "--encoding", "windows-1252"]);
    assert_eq!(again.errors()[0]["line"], "2");
    assert_eq!(again.errors()[0]["message"], run.errors()[0]["message"]);
}

#[test]
fn gzip_and_stdin_are_transcoded_too() {
    let dir = tempdir();
    write(dir.path(), "crm.csv.gz", gzip(&corpus("windows1252.csv")));
    let sb = plain();
    let run = sb.import(dir.path(), &["crm.csv.gz", "--encoding", "cp1252"]);
    assert_eq!((run.code, run.n("sent")), (2, 3), "{}", run.stderr);
    assert_eq!(first_name(&sb, "2"), "José");

    let sb = plain();
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["--format", "csv", "--encoding", "windows-1252", "-"],
        Some(&corpus("windows1252.csv")),
    );
    assert_eq!((run.code, run.n("sent")), (2, 3), "{}", run.stderr);
    assert_eq!(first_name(&sb, "3"), "“Ann”");
    assert_eq!(run.errors()[0]["line"], "5");

    // Stdin without the flag stops at once, as a file does.
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["--format", "csv", "-"],
        Some(&corpus("windows1252.csv")),
    );
    assert_setup_error(&run, "the input is not UTF-8");
}

#[test]
fn a_utf16_file_with_its_byte_order_mark_needs_no_flag_and_gets_utf16_rejects() {
    let dir = tempdir();
    write(dir.path(), "excel.txt", corpus("utf16le_bom.txt"));
    let sb = plain();
    let run = sb.import(dir.path(), &["excel.txt"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!((run.n("rows"), run.n("sent")), (4, 3));
    assert_eq!(first_name(&sb, "1"), "Zoë");
    assert_eq!(run.errors()[0]["line"], "5");
    assert!(
        run.stderr.contains("delimiter 'tab' detected"),
        "{}",
        run.stderr
    );
    let rejects = std::fs::read(run.rejects_path("csv")).unwrap();
    assert_eq!(&rejects[..2], &[0xFF, 0xFE], "a UTF-16LE byte-order mark");
    let (text, enc, _) = encoding_rs::UTF_16LE.decode(&rejects);
    assert_eq!(enc, encoding_rs::UTF_16LE);
    assert_eq!(
        text,
        "id\temail\tfirst_name\tplan\r\n \trenee@example.com\tRenée\tfree\r\n"
    );
}

#[test]
fn a_semicolon_file_is_read_without_a_flag_from_a_file_or_stdin() {
    let dir = tempdir();
    write(dir.path(), "europe.csv", corpus("semicolon_excel.csv"));
    let sb = plain();
    let run = sb.import(dir.path(), &["europe.csv"]);
    assert_eq!((run.code, run.n("sent")), (0, 2), "{}", run.stderr);
    // The comma inside a value stays in the value.
    assert_eq!(first_name(&sb, "2"), "Doe, José");
    assert!(
        run.stderr.contains(
            "europe.csv: delimiter ';' detected from the header (pass --delimiter to choose)"
        ),
        "{}",
        run.stderr
    );
    // Stdin: the bytes read to detect the delimiter are read again as rows.
    let sb = plain();
    let big = numbered_csv("id;email;plan", 5000, |i| {
        format!("{i};p{i}@example.com;pro")
    });
    let run = import(
        dir.path(),
        Some(&sb.url()),
        &["--format", "csv", "-"],
        Some(big.as_bytes()),
    );
    assert_eq!((run.code, run.n("sent")), (0, 5000), "{}", run.stderr);
    assert_eq!(person(&sb, "1")["plan"], "pro");
    // A .tsv stays tab, whatever its header holds.
    let sb = plain();
    write(dir.path(), "t.tsv", "id\tnote\n1\ta;b;c\n");
    let run = sb.import(dir.path(), &["t.tsv"]);
    assert_eq!((run.code, run.n("sent")), (0, 1), "{}", run.stderr);
    assert_eq!(person(&sb, "1")["note"], "a;b;c");
}

#[test]
fn a_305_column_header_stops_at_the_header() {
    let dir = tempdir();
    write(dir.path(), "wide.csv", corpus("header_305.csv"));
    let sb = plain();
    let run = sb.import(dir.path(), &["wide.csv", "--empty", "clear"]);
    assert_setup_error(
        &run,
        "wide.csv: the header has 304 columns that become attributes, and the Track API takes at most 300 per person",
    );
    assert!(run.stderr.contains("drop 4 of them"), "{}", run.stderr);
    assert_eq!(sb.stats().requests, 0);
    // Dropping columns in a mapping makes it fit.
    write(
        dir.path(),
        "m.toml",
        "[columns.c0]\ndrop = true\n[columns.c1]\ndrop = true\n[columns.c2]\ndrop = true\n[columns.c3]\ndrop = true\n",
    );
    let run = sb.import(
        dir.path(),
        &["wide.csv", "--mapping", "m.toml", "--empty", "clear"],
    );
    assert_eq!((run.code, run.n("sent")), (0, 1), "{}", run.stderr);
}

/// A 350-column CRM export whose rows fill 10 cells each: empty cells are not sent, so it
/// imports (issue 15 review: it was refused at the header); a row filling more than 300 fails
/// alone, and the header gets one warning.
#[test]
fn a_sparse_wide_file_imports_and_only_an_overfull_row_fails() {
    let dir = tempdir();
    let names: Vec<String> = (0..350).map(|i| format!("c{i}")).collect();
    let mut text = format!("id,{}\n", names.join(","));
    for r in 0..20 {
        let cells: Vec<String> = (0..350)
            .map(|i| {
                if (i + r) % 35 == 0 {
                    format!("v{i}")
                } else {
                    String::new()
                }
            })
            .collect();
        text.push_str(&format!("{r},{}\n", cells.join(",")));
    }
    text.push_str(&format!("full,{}\n", vec!["x"; 350].join(",")));
    write(dir.path(), "crm.csv", text);
    let sb = plain();
    let run = sb.import(dir.path(), &["crm.csv"]);
    assert_eq!(
        (run.code, run.n("rows"), run.n("sent")),
        (2, 21, 20),
        "{}",
        run.stderr
    );
    assert_eq!(
        run.stderr
            .matches("the header has 350 columns that become attributes")
            .count(),
        1,
        "{}",
        run.stderr
    );
    assert_eq!(run.errors()[0]["line"], "22");
    assert_eq!(person(&sb, "0")["c0"], "v0");
    // inspect says it too.
    let report = inspect_json(dir.path(), &["crm.csv"]);
    let limits = report["limit_problems"].to_string();
    assert!(
        limits.contains("only a row that fills more than 300 fails"),
        "{limits}"
    );
}

#[test]
fn a_missing_identifier_column_suggests_the_near_miss() {
    let dir = tempdir();
    write(dir.path(), "crm.csv", corpus("missing_id_near_miss.csv"));
    let sb = plain();
    let run = sb.import(dir.path(), &["crm.csv"]);
    assert_setup_error(
        &run,
        "no column becomes the identifier 'id' (columns: ID, email, plan): did you mean 'ID'? (--id-column ID)",
    );
    let run = sb.import(
        dir.path(),
        &["crm.csv", "--identify-by", "email", "--id-column", "emial"],
    );
    assert_setup_error(&run, "did you mean 'email'? (--id-column email)");
    let run = sb.import(dir.path(), &["crm.csv", "--id-column", "ID"]);
    assert_eq!((run.code, run.n("sent")), (0, 1), "{}", run.stderr);
}

#[test]
fn a_missing_file_says_so_first_and_prints_no_table() {
    let dir = tempdir();
    let sb = plain();
    let run = sb.import(dir.path(), &["nope.csv"]);
    assert_setup_error(&run, "nope.csv: cannot open");
    assert_eq!(run.stderr.lines().count(), 3, "{}", run.stderr);
    // The summary file is still written, for machines.
    assert_eq!(run.summary["outcome"], "aborted");
}

#[test]
fn a_slash_date_names_the_mapping_format_that_reads_it() {
    let dir = tempdir();
    write(dir.path(), "dates.csv", corpus("slash_dates.csv"));
    let sb = plain();
    let run = sb.import(dir.path(), &["dates.csv"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    let errors = run.errors();
    assert_eq!(errors[0]["line"], "2");
    let m = &errors[0]["message"];
    assert!(
        m.contains(r#"[columns.created_at] type = "timestamp", format = "%d/%m/%Y" (day first) or "%m/%d/%Y" (month first)"#),
        "{m}"
    );
    assert!(m.contains("day first and month first are ambiguous"), "{m}");
    // What the message says works.
    write(
        dir.path(),
        "m.toml",
        "[columns.created_at]\ntype = \"timestamp\"\nformat = \"%d/%m/%Y\"\n",
    );
    let sb = plain();
    write(
        dir.path(),
        "dates2.csv",
        "id,created_at\n1,07/03/2019\n3,25/12/2019\n",
    );
    let run = sb.import(dir.path(), &["dates2.csv", "--mapping", "m.toml"]);
    assert_eq!((run.code, run.n("sent")), (0, 2), "{}", run.stderr);
    // 7 March 2019, 00:00 UTC.
    assert_eq!(person(&sb, "1")["created_at"], 1_551_916_800);
}

#[test]
fn inspect_says_the_delimiter_the_encoding_and_which_dates_are_ambiguous() {
    let dir = tempdir();
    write(
        dir.path(),
        "eu.csv",
        cp1252("id;name;created_at\n1;Zoë;07/03/2019\n2;José;05/11/2020\n"),
    );
    let report = inspect_json(dir.path(), &["eu.csv", "--encoding", "windows-1252"]);
    assert_eq!(report["delimiter"], ";");
    assert_eq!(report["delimiter_detected"], true);
    assert_eq!(report["encoding"], "windows-1252");
    let notes: Vec<String> = report["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    assert!(
        notes.iter().any(|n| n.contains("delimiter ';' detected")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("column 'created_at' holds dates such as 07/03/2019: day first or month first is ambiguous")
            && n.contains(r#"format = "%d/%m/%Y" (day first, as suggested) or "%m/%d/%Y" (month first)"#)),
        "{notes:?}"
    );
    let mapping = report["suggested_mapping"].as_str().unwrap();
    assert!(mapping.contains("format = \"%d/%m/%Y\""), "{mapping}");
    assert!(mapping.contains("delimiter = \";\""), "{mapping}");
    // The suggestion imports the file as it is.
    write(dir.path(), "m.toml", mapping);
    let sb = plain();
    let run = sb.import(
        dir.path(),
        &[
            "eu.csv",
            "--encoding",
            "windows-1252",
            "--mapping",
            "m.toml",
        ],
    );
    assert_eq!((run.code, run.n("sent")), (0, 2), "{}", run.stderr);
    assert_eq!(person(&sb, "1")["created_at"], 1_551_916_800);
    assert_eq!(person(&sb, "2")["name"], "José");

    // Values that show the order: month first, and no ambiguity said.
    write(
        dir.path(),
        "us.csv",
        "id,signup\n1,12/25/2019\n2,01/02/2020\n",
    );
    let report = inspect_json(dir.path(), &["us.csv"]);
    let mapping = report["suggested_mapping"].as_str().unwrap();
    assert!(mapping.contains("format = \"%m/%d/%Y\""), "{mapping}");
    assert!(!mapping.contains("day first or month first?"), "{mapping}");
    assert_eq!(report["delimiter"], ",");
    assert_eq!(report["encoding"], "utf-8");
}

fn run_bin(args: &[&str]) -> (bool, String) {
    let out = Command::new(bin()).args(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string(),
    )
}

#[test]
fn completions_and_the_man_page_come_from_the_options() {
    for shell in ["bash", "zsh", "fish"] {
        let (ok, text) = run_bin(&["completions", shell]);
        assert!(ok, "{shell}");
        assert!(text.contains("cio-import"), "{shell}");
        assert!(
            text.contains("encoding"),
            "{shell}: the new option is there"
        );
    }
    let (ok, text) = run_bin(&["man"]);
    assert!(ok);
    assert!(text.contains(".TH cio-import 1"), "{text}");
    assert!(text.contains("inspect"), "{text}");
    // The subcommands' own pages, with their options.
    assert!(text.contains(".TH cio-import-import 1"), "{text}");
    assert!(text.contains(".TH cio-import-inspect 1"), "{text}");
    let import_page = text.split(".TH cio-import-import 1").nth(1).unwrap();
    assert!(import_page.contains("\\-\\-encoding"), "{import_page}");
    let (ok, _) = run_bin(&["completions", "tcsh"]);
    assert!(!ok, "an unknown shell is a usage error");
}

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The README's first commands: the build prerequisites it names match Cargo.toml, the binary
/// it installs is the one every later command calls, and the demo ends as it says (exit 2:
/// six sample rows are bad on purpose).
#[test]
fn the_readme_first_commands_work_as_written() {
    let text = readme();
    let manifest =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")).unwrap();
    let rust = manifest
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = "))
        .unwrap()
        .trim_matches('"');
    assert!(
        text.contains(&format!("Rust {rust} or newer")),
        "README names the Rust version of Cargo.toml ({rust})"
    );
    assert!(text.contains("C compiler"), "README names the C compiler");
    let block = text
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .unwrap();
    let commands: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
    // The two commands a newcomer runs: the demo, then the tests (what .ci/run runs).
    assert_eq!(
        commands,
        [
            "cargo run --release -- import samples/customers.csv --sandbox",
            "cargo test --locked"
        ],
        "{block}"
    );
    let ci =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/run")).unwrap();
    assert!(
        ci.lines().any(|l| l.trim() == commands[1]),
        "CI runs the README's test command"
    );
    // How to get the binary every later command calls.
    assert!(
        text.contains("cargo install --locked --path ."),
        "README says how to install"
    );
    assert!(
        manifest.contains("name = \"cio-import\"\npath = \"src/main.rs\""),
        "the binary installed is cio-import"
    );
    let demo = commands[0]
        .strip_prefix("cargo run --release -- ")
        .expect("the demo runs the binary");
    // Run it as written (the binary under test stands for the installed one) in a copy of
    // the samples, so the repository's samples folder is left alone.
    let dir = tempdir();
    std::fs::create_dir(dir.path().join("samples")).unwrap();
    let samples: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR")).join("samples/customers.csv");
    std::fs::copy(&samples, dir.path().join("samples/customers.csv")).unwrap();
    let args: Vec<&str> = demo.split_whitespace().collect();
    let out = Command::new(bin())
        .args(&args)
        .current_dir(dir.path())
        .env_remove("CUSTOMERIO_SITE_ID")
        .env_remove("CUSTOMERIO_TRACK_API_KEY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        text.contains("exits with code 2"),
        "the README says what the demo's exit code means"
    );
    assert!(stderr.contains("3001 = 2995 sent"), "{stderr}");
}

/// `id;Name, Vorname` (Excel in Germany): one `;` and one `,` in each line. The tie went to
/// the comma and the "did you mean" suggested `'id;Name'`, whose cells are `50;Müller`.
#[test]
fn a_delimiter_tie_is_not_given_to_the_comma() {
    let dir = tempdir();
    write(
        dir.path(),
        "de.csv",
        "id;Name, Vorname\r\n50;Müller, Hans\r\n",
    );
    let sb = plain();
    let run = sb.import(dir.path(), &["de.csv"]);
    assert_eq!((run.code, run.n("sent")), (0, 1), "{}", run.stderr);
    assert_eq!(person(&sb, "50")["Name, Vorname"], "Müller, Hans");
    assert!(
        run.stderr.contains("delimiter ';' detected"),
        "{}",
        run.stderr
    );
    let report = inspect_json(dir.path(), &["de.csv"]);
    assert_eq!(report["delimiter"], ";");
    assert!(
        report["notes"]
            .to_string()
            .contains("delimiter ';' detected"),
        "{report}"
    );
    // Read with a comma on purpose: no column is suggested, the delimiter is.
    let run = sb.import(dir.path(), &["de.csv", "--delimiter", ","]);
    assert_setup_error(&run, "no column becomes the identifier 'id'");
    assert!(!run.stderr.contains("did you mean"), "{}", run.stderr);
    assert!(
        run.stderr.contains("pass --delimiter ';'"),
        "{}",
        run.stderr
    );
    // A UTF-16 tab file whose header has commas.
    let utf16: Vec<u8> = [0xFF, 0xFE]
        .into_iter()
        .chain(
            "id\tName, Vorname\r\n51\tMeier, Eva\r\n"
                .encode_utf16()
                .flat_map(|u| u.to_le_bytes()),
        )
        .collect();
    write(dir.path(), "de16.txt", utf16);
    let sb = plain();
    let run = sb.import(dir.path(), &["de16.txt"]);
    assert_eq!((run.code, run.n("sent")), (0, 1), "{}", run.stderr);
    assert_eq!(person(&sb, "51")["Name, Vorname"], "Meier, Eva");
}

/// A windows-1251 file was told to use windows-1252 (and imported as mojibake at exit 0).
#[test]
fn a_windows_1251_file_is_named_as_such_and_said_to_be_a_guess() {
    let dir = tempdir();
    let (bytes, _, _) = encoding_rs::WINDOWS_1251
        .encode("id,name,city\n1,Иван Петров,Москва\n2,Мария Смирнова,Санкт-Петербург\n");
    write(dir.path(), "ru.csv", &bytes);
    let sb = plain();
    let run = sb.import(dir.path(), &["ru.csv"]);
    assert_setup_error(
        &run,
        "it looks like windows-1251 (a guess from its first block)",
    );
    assert!(
        run.stderr.contains("pass --encoding windows-1251"),
        "{}",
        run.stderr
    );
    let run = sb.import(dir.path(), &["ru.csv", "--encoding", "windows-1251"]);
    assert_eq!((run.code, run.n("sent")), (0, 2), "{}", run.stderr);
    assert_eq!(person(&sb, "1")["name"], "Иван Петров");
}

/// A nightly job pinned to `--encoding windows-1252` whose exporter switched to UTF-8.
#[test]
fn a_single_byte_encoding_given_to_a_utf8_file_stops_before_any_row() {
    let dir = tempdir();
    write(dir.path(), "crm.csv", "id,first_name\n1,Zoë\n2,José\n");
    let sb = plain();
    let run = sb.import(dir.path(), &["crm.csv", "--encoding", "windows-1252"]);
    assert_setup_error(
        &run,
        "crm.csv: --encoding windows-1252 was given, but the input looks like UTF-8 (line 2",
    );
    assert!(
        run.stderr
            .contains("drop --encoding, or pass --encoding utf-8"),
        "{}",
        run.stderr
    );
    assert_eq!(sb.stats().requests, 0);
    let run = sb.import(dir.path(), &["crm.csv", "--encoding", "utf-8"]);
    assert_eq!((run.code, run.n("sent")), (0, 2), "{}", run.stderr);
    assert_eq!(first_name(&sb, "1"), "Zoë");
}

/// A header with no line break (a wrong encoding, or not a CSV): it stops at 1 MiB with a
/// short message, instead of reading the whole file into one name and printing it.
#[test]
fn a_header_without_a_line_break_stops_at_one_mib_with_a_short_message() {
    let dir = tempdir();
    let mut text = String::from("id,");
    while text.len() < 3 * 1024 * 1024 {
        text.push_str("customer@example.com;Jane Doe;");
    }
    write(dir.path(), "one.csv", text);
    let sb = plain();
    let run = sb.import(dir.path(), &["one.csv", "--delimiter", ","]);
    assert_setup_error(
        &run,
        "one.csv: the header (line 1) runs past 1 MiB without a line break",
    );
    assert!(run.stderr.len() < 2000, "{}", run.stderr.len());
    assert!(
        !run.stderr.contains("customer@example.com"),
        "{}",
        run.stderr
    );
    // Just under the cap, a long header with a line break is read (and its names cut in
    // messages).
    let long = format!("{}\n1\n", "n".repeat(100_000));
    write(dir.path(), "long.csv", long);
    let run = sb.import(dir.path(), &["long.csv"]);
    assert_setup_error(&run, "no column becomes the identifier 'id'");
    assert!(run.stderr.len() < 2000, "{}", run.stderr.len());
}

/// The rejects file is the input's bytes: a UTF-8 byte-order mark and CRLF line ends stay.
#[test]
fn rejects_keep_the_inputs_bom_and_crlf() {
    let dir = tempdir();
    write(
        dir.path(),
        "win.csv",
        "\u{feff}id,email\r\n1,a@example.com\r\n ,b@example.com\r\n",
    );
    let sb = plain();
    let run = sb.import(dir.path(), &["win.csv"]);
    assert_eq!((run.code, run.n("sent")), (2, 1), "{}", run.stderr);
    let rejects = std::fs::read(run.rejects_path("csv")).unwrap();
    assert_eq!(rejects, b"\xEF\xBB\xBFid,email\r\n ,b@example.com\r\n");
    // LF stays LF, without a mark.
    write(dir.path(), "unix.csv", "id,email\n ,b@example.com\n");
    let run = sb.import(dir.path(), &["unix.csv"]);
    let rejects = std::fs::read(run.rejects_path("csv")).unwrap();
    assert_eq!(rejects, b"id,email\n ,b@example.com\n");
}

/// Blank lines before the header: the message names the line an editor shows.
#[test]
fn an_unnamed_header_column_names_the_headers_line() {
    let dir = tempdir();
    write(dir.path(), "blank.csv", "\n\nid,,plan\n1,x,pro\n");
    let sb = plain();
    let run = sb.import(dir.path(), &["blank.csv"]);
    assert_setup_error(&run, "header column 2 (line 3) has no name");
}

/// A row past the first block that is not UTF-8 (a slow stdin producer, or after 256 KiB in a
/// file): the errors file still names its identifier, read from its id cell.
#[test]
fn an_invalid_row_past_the_first_block_keeps_its_identifier_in_the_errors_file() {
    let dir = tempdir();
    let mut bytes = numbered_csv("id,name", 20_000, |i| format!("{i},name{i}")).into_bytes();
    bytes.extend_from_slice(b"u-42,Ren\xE9e\n");
    write(dir.path(), "late.csv", bytes);
    let sb = plain();
    let run = sb.import(dir.path(), &["late.csv"]);
    assert_eq!((run.code, run.n("sent")), (2, 20_000), "{}", run.stderr);
    let errors = run.errors();
    assert_eq!(errors[0]["identifier"], "u-42", "{errors:?}");
    assert!(
        errors[0]["message"].contains("is not valid UTF-8"),
        "{errors:?}"
    );
}
