//! Batch mode: packing by bytes, 207 mapping, bisection of refused batches, idle flushes.

mod common;

use cio_import::sandbox::{Fault, SandboxConfig};
use common::*;
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};

fn rows_csv(n: usize, pad: usize) -> String {
    numbered_csv("id,name,pad", n, |i| {
        format!("u{i},Name {i},{}", "p".repeat(pad))
    })
}

#[test]
fn batch_is_the_default_and_packs_under_the_byte_and_count_caps() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", rows_csv(5000, 200));
    let run = sb.import(dir.path(), &["p.csv", "--batch-bytes", "100000"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.summary["api"], "batch");
    assert_eq!(run.n("sent"), 5000);
    assert_eq!(run.n("operations"), 5000);
    let st = sb.stats();
    assert!(
        st.largest_request_bytes <= 100_000,
        "{}",
        st.largest_request_bytes
    );
    assert!(
        st.largest_request_bytes > 90_000,
        "batches should be nearly full: {}",
        st.largest_request_bytes
    );
    assert_eq!(st.requests, run.n("requests"));
    let mean = run.summary["mean_batch_rows"].as_f64().unwrap();
    assert!((mean - 5000.0 / st.requests as f64).abs() < 0.01, "{mean}");
    assert_eq!(sb.people().len(), 5000);

    let sb = plain();
    let run = sb.import(dir.path(), &["p.csv", "--batch-size", "64"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("requests"), 5000u64.div_ceil(64));
    assert!(sb.stats().violations.is_empty());
}

#[test]
fn a_207_rejects_exactly_the_listed_rows() {
    let poison = ["u3", "u500", "u999"];
    let sb = sandbox(SandboxConfig {
        reject_ids: poison.iter().map(|s| s.to_string()).collect(),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows_csv(1000, 10));
    let run = sb.import(dir.path(), &["p.csv"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(
        (run.n("sent"), run.n("rejected"), run.n("requests")),
        (997, 3, 1)
    );
    let errs = run.errors();
    let ids: Vec<&str> = errs.iter().map(|e| e["identifier"].as_str()).collect();
    assert_eq!(ids, poison);
    for e in &errs {
        assert_eq!(e["class"], "rejected");
        assert_eq!(e["status"], "207");
        assert!(
            e["message"].contains("refused") && e["message"].contains("identifiers.id"),
            "{e:?}"
        );
        let n: usize = e["identifier"][1..].parse().unwrap();
        assert_eq!(e["row"], (n + 1).to_string());
        assert_eq!(e["line"], (n + 2).to_string());
    }
    let people = sb.people();
    assert_eq!(people.len(), 997);
    assert!(poison.iter().all(|p| !people.contains_key(*p)));
}

#[test]
fn a_poisoned_batch_is_halved_until_only_the_poison_row_fails() {
    let sb = sandbox(SandboxConfig {
        poison_ids: vec!["u777".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows_csv(2000, 10));
    let run = sb.import(dir.path(), &["p.csv"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!((run.n("sent"), run.n("rejected")), (1999, 1));
    let e = &run.errors()[0];
    assert_eq!(
        (e["identifier"].as_str(), e["status"].as_str()),
        ("u777", "400")
    );
    assert!(e["message"].contains("poison"), "{e:?}");
    // One whole request, then two halves per level down to a single row: 2 * ceil(log2 2000).
    let bisect = run.n("bisect_requests");
    assert_eq!(bisect, 22, "{}", run.summary);
    assert_eq!(run.n("requests"), 1 + bisect);
    assert_eq!(sb.people().len(), 1999);
}

#[test]
fn an_operation_over_32000_bytes_is_invalid_and_never_sent() {
    let sb = plain();
    let dir = tempdir();
    let cols: Vec<String> = (0..40).map(|i| format!("c{i}")).collect();
    let mut csv = format!("id,{}\n", cols.join(","));
    csv.push_str(&format!("fat,{}\n", vec!["x".repeat(900); 40].join(",")));
    csv.push_str(&format!("thin,{}\n", vec!["y"; 40].join(",")));
    write(dir.path(), "p.csv", csv);
    let run = sb.import(dir.path(), &["p.csv"]);
    assert_eq!((run.n("invalid"), run.n("sent")), (1, 1), "{}", run.stderr);
    assert!(
        run.errors()[0]["message"].contains("32000"),
        "{:?}",
        run.errors()
    );
    assert!(sb.stats().violations.is_empty());
    // In v1 the same row is fine: the 32,000-byte limit is a batch limit.
    let sb = plain();
    let run = sb.import(dir.path(), &["p.csv", "--api", "v1"]);
    assert_eq!(run.n("sent"), 2, "{}", run.stderr);
}

#[test]
fn a_partial_batch_is_sent_when_stdin_goes_quiet() {
    let sb = plain();
    let dir = tempdir();
    let mut child = import_command(
        dir.path(),
        &sb.url(),
        &["-", "--format", "jsonl", "--summary", "s.json", "-q"],
    )
    .stdin(std::process::Stdio::piped())
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    stdin
        .write_all(b"{\"id\":\"early-1\"}\n{\"id\":\"early-2\"}\n")
        .unwrap();
    stdin.flush().unwrap();
    // The input is still open: the rows must arrive anyway.
    let deadline = Instant::now() + Duration::from_secs(20);
    while sb.people().len() < 2 {
        assert!(
            Instant::now() < deadline,
            "a partial batch was held back while stdin stayed open"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    stdin.write_all(b"{\"id\":\"late\"}\n").unwrap();
    drop(stdin);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    assert_eq!(sb.people().len(), 3);
    assert_eq!(sb.stats().requests, 2);
}

#[test]
fn a_retried_batch_goes_whole_and_an_ambiguous_answer_is_harmless() {
    let sb = sandbox(SandboxConfig {
        script: vec![
            Fault::Ambiguous,
            Fault::Status(502),
            Fault::RateLimited { retry_after: 1 },
            Fault::Reset,
        ],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", rows_csv(300, 5));
    let run = sb.import(dir.path(), &["p.csv", "--backoff-base-ms", "20"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        (run.n("sent"), run.n("requests"), run.n("retries")),
        (300, 5, 4)
    );
    // The ambiguous first attempt was applied, and so was the retry: same attributes, no harm.
    let people = sb.people();
    assert_eq!(people.len(), 300);
    assert!(people.values().all(|p| p.updates == 2));
    assert_eq!(people["u5"].attributes["name"], json!("Name 5"));
}
