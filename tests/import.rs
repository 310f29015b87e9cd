//! The core import pipeline, end to end: the real binary against an in-process sandbox.

mod common;

use cio_import::sandbox::{Fault, SandboxConfig};
use common::*;
use serde_json::{json, Value};

const CSV: &str = "\u{feff}id,email,name,zip,created_at,note\r\n\
1,a+1@example.com,\"O'Brien, Ann\",02134,2023-11-14,\r\n\
2,b@example.com,\"say \"\"hi\"\"\",00007,1700000000123,\"two\r\nlines\"\r\n\
3,ç@exämple.org,Zoë,99999,2023-11-14T22:13:20+00:00,x\r\n\
\r\n\r\n";

fn expected_csv_people() -> Vec<(&'static str, Value)> {
    vec![
        (
            "1",
            json!({"email":"a+1@example.com","name":"O'Brien, Ann","zip":"02134","created_at":1699920000}),
        ),
        (
            "2",
            json!({"email":"b@example.com","name":"say \"hi\"","zip":"00007","created_at":1700000000,"note":"two\r\nlines"}),
        ),
        (
            "3",
            json!({"email":"ç@exämple.org","name":"Zoë","zip":"99999","created_at":1700000000,"note":"x"}),
        ),
    ]
}

#[test]
fn csv_rows_arrive_exactly_once_with_every_field_in_both_apis() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "people.csv", CSV);
        let run = sb.import(dir.path(), &["people.csv", "--api", api]);
        assert_eq!(run.code, 0, "{api}: {}", run.stderr);
        assert_eq!((run.n("rows"), run.n("sent")), (3, 3), "{api}");
        let people = sb.people();
        assert_eq!(people.len(), 3);
        for (id, want) in expected_csv_people() {
            let p = &people[id];
            assert_eq!(p.kind, "id");
            assert_eq!(Value::Object(attrs(p)), want, "{api} person {id}");
            assert_eq!(p.updates, 1, "{api}: person {id} arrived more than once");
        }
        let st = sb.stats();
        assert!(st.violations.is_empty(), "{:?}", st.violations);
        assert_eq!(run.summary["api"], api);
        assert!(
            !dir.path().join("rejects.csv").exists(),
            "no rejects file when nothing failed"
        );
        assert!(!dir.path().join("errors.csv").exists());
    }
}

#[test]
fn jsonl_keeps_types_and_reads_multi_member_gzip_and_stdin() {
    let part1 = "{\"id\":\"a\",\"age\":31,\"vip\":true,\"score\":1.5,\"tags\":[\"x\"],\"created_at\":\"2023-11-14\"}\n\n";
    let part2 = "{\"id\":7,\"plan\":{\"name\":\"pro\"},\"gone\":null}\r\n";
    let check = |sb: &Sb| {
        let people = sb.people();
        assert_eq!(people.len(), 2);
        assert_eq!(
            Value::Object(attrs(&people["a"])),
            json!({"age":31,"vip":true,"score":1.5,"tags":["x"],"created_at":1699920000})
        );
        assert_eq!(
            Value::Object(attrs(&people["7"])),
            json!({"plan":{"name":"pro"}})
        );
    };
    // Two gzip members, one after the other.
    let sb = plain();
    let dir = tempdir();
    let mut gz = gzip(part1.as_bytes());
    gz.extend(gzip(part2.as_bytes()));
    write(dir.path(), "people.jsonl.gz", &gz);
    let run = sb.import(dir.path(), &["people.jsonl.gz"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("rows"), 2, "the blank line is skipped, not counted");
    check(&sb);
    // Stdin, plain and gzip.
    for data in [format!("{part1}{part2}").into_bytes(), gz.clone()] {
        let sb = plain();
        let run = import(
            dir.path(),
            Some(&sb.url()),
            &["-", "--format", "jsonl", "--api", "v1"],
            Some(&data),
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        check(&sb);
    }
}

#[test]
fn stdin_without_format_is_a_usage_error() {
    let dir = tempdir();
    let run = import(dir.path(), Some("http://127.0.0.1:9"), &["-"], Some(b""));
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--format"), "{}", run.stderr);
}

#[test]
fn awkward_identifiers_are_fully_percent_encoded() {
    let ids = [
        "a/b",
        "x+y@z.com",
        "sp ace",
        "ünï/cødé",
        "100%",
        "q?x#y&z",
        "cio_looks_like_cio",
        "dots.-_~",
    ];
    let sb = plain();
    let dir = tempdir();
    let mut csv = String::from("id,n\n");
    for (i, id) in ids.iter().enumerate() {
        csv.push_str(&format!("\"{id}\",{i}\n"));
    }
    write(dir.path(), "ids.csv", csv);
    let run = sb.import(dir.path(), &["ids.csv", "--api", "v1"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let st = sb.stats();
    assert!(st.violations.is_empty(), "{:?}", st.violations);
    let people = sb.people();
    for (i, id) in ids.iter().enumerate() {
        // The sandbox reads a `cio_` prefix in a v1 path as a cio_id, as the API does.
        let key = id.strip_prefix("cio_").unwrap_or(id);
        let p = people
            .get(key)
            .unwrap_or_else(|| panic!("{id} did not arrive: {:?}", people.keys()));
        assert_eq!(p.attributes["n"], json!(i.to_string()));
    }
}

#[test]
fn cio_id_gets_its_prefix_in_v1_and_none_in_batch() {
    for api in ["v1", "batch"] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "c.csv", "cio_id,plan\ncio_abc,pro\ndef,free\n");
        let run = sb.import(
            dir.path(),
            &["c.csv", "--identify-by", "cio_id", "--api", api],
        );
        assert_eq!(run.code, 0, "{}", run.stderr);
        let people = sb.people();
        assert_eq!(people["abc"].kind, "cio_id", "{api}");
        assert_eq!(people["def"].kind, "cio_id", "{api}");
        assert!(
            sb.stats().violations.is_empty(),
            "{api}: {:?}",
            sb.stats().violations
        );
    }
}

#[test]
fn bad_rows_end_in_the_right_class_with_their_line() {
    let sb = plain();
    let dir = tempdir();
    let wide: Vec<String> = (0..301).map(|i| format!("c{i}")).collect();
    let mut data: Vec<u8> = Vec::new();
    data.extend(b"id,name,created_at,big\n"); // line 1
    data.extend(b"1,ok,,\n"); // row 1, line 2
    data.extend(b"2,\"multi\nline\",,\n"); // row 2, lines 3-4
    data.extend(b"3,ragged\n"); // row 3, line 5: 2 fields
    data.extend(b"4,\xff\xfe,,\n"); // row 4, line 6: not UTF-8
    data.extend(b",no id,,\n"); // row 5, line 7
    data.extend(b"6,bad date,yesterday,\n"); // row 6, line 8
    data.extend(format!("{},long id,,\n", "i".repeat(151)).as_bytes()); // row 7, line 9
    data.extend(format!("8,long value,,{}\n", "é".repeat(500) + "x").as_bytes()); // row 8, line 10
    data.extend(format!("{},edge id,,{}\n", "i".repeat(150), "é".repeat(500)).as_bytes()); // row 9, line 11: ok
    write(dir.path(), "bad.csv", &data);
    // Without --encoding, a file not UTF-8 in its first block stops before its first row
    // (tests/real_files.rs); said to be UTF-8, a row that is not is an invalid row.
    let run = sb.import(dir.path(), &["bad.csv", "--encoding", "utf-8"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!((run.n("rows"), run.n("sent"), run.n("invalid")), (9, 3, 6));
    let got: Vec<(String, String, String)> = run
        .errors()
        .into_iter()
        .map(|e| (e["row"].clone(), e["line"].clone(), e["class"].clone()))
        .collect();
    let want: Vec<(String, String, String)> = [(3, 5), (4, 6), (5, 7), (6, 8), (7, 9), (8, 10)]
        .iter()
        .map(|(r, l)| (r.to_string(), l.to_string(), "invalid".to_string()))
        .collect();
    assert_eq!(got, want);
    let msgs: Vec<String> = run
        .errors()
        .into_iter()
        .map(|e| e["message"].clone())
        .collect();
    assert!(
        msgs[0].contains("2 fields but the header has 4"),
        "{}",
        msgs[0]
    );
    assert!(
        msgs[1].contains("not valid UTF-8") && msgs[1].contains("'name'"),
        "{}",
        msgs[1]
    );
    assert!(msgs[2].contains("'id' is empty"), "{}", msgs[2]);
    assert!(
        msgs[3].contains("created_at") && msgs[3].contains("accepted:"),
        "{}",
        msgs[3]
    );
    assert!(msgs[4].contains("151 bytes"), "{}", msgs[4]);
    assert!(
        msgs[5].contains("1001 bytes") && msgs[5].contains("'big'"),
        "{}",
        msgs[5]
    );
    assert_eq!(sb.people().len(), 3);
    assert_eq!(sb.people()["2"].attributes["name"], json!("multi\nline"));

    // Too many attributes: 301 columns besides the id.
    let sb = plain();
    let mut wide_csv = format!("id,{}\n", wide.join(","));
    wide_csv.push_str(&format!("w1,{}\n", vec!["v"; 301].join(",")));
    wide_csv.push_str(&format!("w2,{}\n", vec!["v"; 300].join(",") + ","));
    write(dir.path(), "wide.csv", wide_csv);
    // Empty cells are left out: a warning at the header, and only the full row fails.
    let run = sb.import(dir.path(), &["wide.csv"]);
    assert_eq!(
        (run.code, run.n("rows"), run.n("sent")),
        (2, 2, 1),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr
            .contains("the header has 301 columns that become attributes"),
        "{}",
        run.stderr
    );
    // Under --empty clear every row sends every column: stopped at the header (issue 15).
    let run = sb.import(dir.path(), &["wide.csv", "--empty", "clear"]);
    assert_eq!((run.code, run.n("rows")), (1, 0), "{}", run.stderr);
    // A JSONL row has no header: it is checked row by row.
    let sb = plain();
    let obj: Vec<String> = (0..301).map(|i| format!("\"c{i}\":\"v\"")).collect();
    write(
        dir.path(),
        "wide.jsonl",
        format!("{{\"id\":\"w1\",{}}}\n{{\"id\":\"w2\"}}\n", obj.join(",")),
    );
    let run = sb.import(dir.path(), &["wide.jsonl"]);
    assert_eq!((run.n("invalid"), run.n("sent")), (1, 1), "{}", run.stderr);
    assert!(run.errors()[0]["message"].contains("301 attributes"));

    // JSONL: not an object, not JSON; blank lines are neither rows nor errors.
    let sb = plain();
    write(dir.path(), "bad.jsonl", "{\"id\":\"1\"}\n\n[1,2]\n\"str\"\n{\"id\":\"2\",\n   \n{\"id\":{\"x\":1}}\n{\"id\":\"3\"}\n");
    let run = sb.import(dir.path(), &["bad.jsonl"]);
    assert_eq!(
        (run.n("rows"), run.n("sent"), run.n("invalid")),
        (6, 2, 4),
        "{}",
        run.stderr
    );
    let got: Vec<(String, String)> = run
        .errors()
        .into_iter()
        .map(|e| (e["row"].clone(), e["line"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("2".into(), "3".into()),
            ("3".into(), "4".into()),
            ("4".into(), "5".into()),
            ("5".into(), "7".into())
        ]
    );
}

#[test]
fn duplicate_or_empty_header_names_stop_before_anything_is_sent() {
    for (header, needle) in [
        ("id,email,email\n1,a,b\n", "'email' appears twice"),
        ("id,,x\n1,2,3\n", "column 2"),
    ] {
        let sb = plain();
        let dir = tempdir();
        write(dir.path(), "h.csv", header);
        let run = sb.import(dir.path(), &["h.csv"]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(needle) && run.stderr.contains("h.csv"),
            "{}",
            run.stderr
        );
        assert_eq!(sb.stats().requests, 0);
    }
}

#[test]
fn retries_429_5xx_and_resets_then_succeeds() {
    let sb = sandbox(SandboxConfig {
        script: vec![
            Fault::Status(503),
            Fault::RateLimited { retry_after: 1 },
            Fault::Reset,
            Fault::Status(500),
            Fault::Status(408),
            Fault::Status(429),
        ],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", "id,n\n1,a\n2,b\n");
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--api",
            "v1",
            "--concurrency",
            "1",
            "--backoff-base-ms",
            "20",
        ],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("sent"), 2);
    assert_eq!(run.n("retries"), 6);
    assert_eq!(run.n("requests"), 8);
    let st = sb.stats();
    assert_eq!(
        (
            st.status(503),
            st.status(429),
            st.resets,
            st.status(500),
            st.status(200)
        ),
        (1, 2, 1, 1, 2)
    );
    // Retry-After: 1 was honoured: the request after the 429 came at least a second later.
    let arr = sb.sb.arrivals();
    let i = arr.iter().position(|a| a.status == 429).unwrap();
    assert!(
        arr[i + 1].at_ms - arr[i].at_ms >= 950.0,
        "{:?}",
        &arr[i..i + 2]
    );
}

#[test]
fn a_429_pauses_every_worker_not_just_the_one_that_saw_it() {
    let sb = sandbox(SandboxConfig {
        script: vec![Fault::RateLimited { retry_after: 2 }],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    let mut csv = String::from("id\n");
    for i in 0..300 {
        csv.push_str(&format!("{i}\n"));
    }
    write(dir.path(), "p.csv", csv);
    let run = sb.import(
        dir.path(),
        &["p.csv", "--api", "v1", "--concurrency", "4", "--rate", "0"],
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(run.n("sent"), 300);
    let arr = sb.sb.arrivals();
    let t429 = arr.iter().find(|a| a.status == 429).unwrap().at_ms;
    // Without a shared pause the three other workers would send the ~300 remaining rows in the
    // next 2 seconds; with it, only the few sent before the 429's answer was read may arrive.
    let during = arr
        .iter()
        .filter(|a| a.at_ms > t429 && a.at_ms < t429 + 1900.0)
        .count();
    assert!(during <= 20, "{during} requests arrived during the pause");
    let after = arr.iter().filter(|a| a.at_ms >= t429 + 1900.0).count();
    assert!(
        after >= 250,
        "only {after} requests after the pause: the test proves nothing"
    );
}

#[test]
fn retries_run_out_and_rows_end_exhausted() {
    let sb = sandbox(SandboxConfig {
        fail_rate: 1.0,
        seed: Some(1),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", "id,n\n1,a\n2,b\n3,c\n");
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--api",
            "v1",
            "--max-retries",
            "2",
            "--backoff-base-ms",
            "10",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!(run.n("exhausted"), 3);
    assert_eq!(run.n("requests"), 9);
    for e in run.errors() {
        assert_eq!(e["class"], "exhausted");
        assert_eq!(e["attempts"], "3");
        assert!(
            ["500", "502", "503", "504"].contains(&e["status"].as_str()),
            "{e:?}"
        );
    }
    assert!(sb.people().is_empty());
}

#[test]
fn bad_credentials_stop_the_run_at_once_with_exit_3() {
    let sb = sandbox(SandboxConfig {
        credentials: Some(cio_import::secret::Credentials {
            site_id: SITE.into(),
            api_key: cio_import::secret::ApiKey::new("another-key"),
        }),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    let mut csv = String::from("id,n\n");
    for i in 0..2000 {
        csv.push_str(&format!("{i},x\n"));
    }
    csv.push_str(",no id\n");
    write(dir.path(), "p.csv", csv);
    for api in ["v1", "batch"] {
        let sb_requests_before = sb.stats().requests;
        let run = sb.import(
            dir.path(),
            &[
                "p.csv",
                "--api",
                api,
                "--concurrency",
                "4",
                "--rate",
                "0",
                "--batch-size",
                "100",
            ],
        );
        assert_eq!(run.code, 3, "{}", run.stderr);
        let requests = sb.stats().requests - sb_requests_before;
        assert!(
            requests <= 4,
            "{api}: {requests} requests after the first 401"
        );
        assert_eq!(
            (run.n("not_attempted"), run.n("invalid"), run.n("sent")),
            (2000, 1, 0)
        );
        assert!(
            run.stderr.contains("CUSTOMERIO_SITE_ID") && run.stderr.contains("region"),
            "{}",
            run.stderr
        );
        assert_eq!(run.summary["outcome"], "aborted");
        // Every unsent row is in the rejects file, ready to run again.
        let rejects = std::fs::read_to_string(run.rejects_path("csv")).unwrap();
        assert_eq!(rejects.lines().count(), 2002);
    }
}

#[test]
fn the_rejects_file_reimports_cleanly() {
    let sb = sandbox(SandboxConfig {
        reject_ids: vec!["2".into(), "3".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(
        dir.path(),
        "semi.csv",
        "id;name;note\n1;Ann;plain\n2;\"Bo; \"\"B\"\"\";\"multi\nline\"\n3;Cy;\n4;Di;x\n",
    );
    for api in ["v1", "batch"] {
        let run = sb.import(dir.path(), &["semi.csv", "--delimiter", ";", "--api", api]);
        assert_eq!(run.code, 2, "{}", run.stderr);
        assert_eq!((run.n("sent"), run.n("rejected")), (2, 2), "{api}");
        for e in run.errors() {
            assert_eq!(e["class"], "rejected");
            assert!(e["message"].contains("refused"), "{e:?}");
        }
        // The rejects file is the input's format: same header, same delimiter, rows verbatim.
        let fixed = dir.path().join("fixed.csv");
        std::fs::copy(run.rejects_path("csv"), &fixed).unwrap();
        let clean = plain();
        let again = import(
            dir.path(),
            Some(&clean.url()),
            &["fixed.csv", "--delimiter", ";", "--api", api],
            None,
        );
        assert_eq!(again.code, 0, "{}", again.stderr);
        assert_eq!(again.n("sent"), 2);
        let people = clean.people();
        assert_eq!(
            Value::Object(attrs(&people["2"])),
            json!({"name":"Bo; \"B\"","note":"multi\nline"})
        );
        assert_eq!(Value::Object(attrs(&people["3"])), json!({"name":"Cy"}));
    }
}

#[test]
fn reports_are_owner_only() {
    let sb = plain();
    let dir = tempdir();
    write(dir.path(), "p.csv", "id\n\n1\n,\n");
    let run = sb.import(dir.path(), &["p.csv"]);
    assert_eq!(run.code, 2, "{}", run.stderr);
    for f in ["rejects.csv", "errors.csv", "summary.json"] {
        assert_eq!(mode(&dir.path().join(f)), 0o600, "{f}");
    }
}

#[test]
fn dry_run_needs_no_credentials_and_sends_nothing() {
    let dir = tempdir();
    write(
        dir.path(),
        "p.csv",
        "id,created_at\n1,2023-01-01\n2,never\n",
    );
    let out = without_credentials(
        dir.path(),
        &["import", "p.csv", "--dry-run", "--summary", "s.json"],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let s: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert_accounted(&s);
    assert_eq!(
        (
            s["requests"].as_u64(),
            s["skipped"].as_u64(),
            s["invalid"].as_u64()
        ),
        (Some(0), Some(1), Some(1))
    );
    assert!(
        dir.path().join("p.csv.errors.csv").exists()
            && dir.path().join("p.csv.rejects.csv").exists()
    );
}

#[test]
fn missing_credentials_and_plain_http_to_a_remote_host_are_usage_errors() {
    let dir = tempdir();
    write(dir.path(), "p.csv", "id\n1\n");
    let out = without_credentials(dir.path(), &["import", "p.csv"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CUSTOMERIO_TRACK_API_KEY"));
    let run = import(
        dir.path(),
        Some("http://track.customer.io"),
        &["p.csv"],
        None,
    );
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("loopback"), "{}", run.stderr);
}

#[test]
fn ctrl_c_stops_reading_writes_reports_and_exits_130() {
    let sb = sandbox(SandboxConfig {
        latency: std::time::Duration::from_millis(100),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    let mut csv = String::from("id\n");
    for i in 0..500 {
        csv.push_str(&format!("{i}\n"));
    }
    write(dir.path(), "p.csv", csv);
    let child = import_command(
        dir.path(),
        &sb.url(),
        &[
            "p.csv",
            "--api",
            "v1",
            "--rate",
            "20",
            "--concurrency",
            "2",
            "--summary",
            "s.json",
            "-q",
        ],
    )
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    // Wait until people are arriving, then interrupt (no sleeping on luck: poll the sandbox).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while sb.people().len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "the import never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let st = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("s.json")).unwrap()).unwrap();
    assert_accounted(&s);
    assert_eq!(s["outcome"], "interrupted");
    let sent = s["sent"].as_u64().unwrap();
    assert!((3..500).contains(&sent), "{s}");
    assert_eq!(
        sent as usize,
        sb.people().len(),
        "sent must match what arrived"
    );
    // Every row read but not sent is in the rejects file as not_attempted.
    let errors = read_csv_maps(&dir.path().join("p.csv.errors.csv"));
    assert_eq!(errors.len() as u64, s["not_attempted"].as_u64().unwrap());
    assert!(errors.iter().all(|e| e["class"] == "not_attempted"));
}

#[test]
fn the_key_never_shows_even_at_trace_level() {
    let sb = sandbox(SandboxConfig {
        script: vec![Fault::Status(503)],
        reject_ids: vec!["2".into()],
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", "id\n1\n2\n");
    // import_env checks stdout, stderr and every file in the directory for the key.
    let run = import_env(
        dir.path(),
        Some(&sb.url()),
        &["p.csv", "--api", "v1", "-vv", "--backoff-base-ms", "10"],
        None,
        &[("RUST_LOG", "trace")],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert!(
        run.stderr.contains("TRACE") || run.stderr.contains("DEBUG"),
        "trace logging was not on"
    );
}

#[test]
fn a_request_past_the_timeout_is_retried_then_exhausted() {
    let sb = sandbox(SandboxConfig {
        slow_rate: 1.0,
        slow: std::time::Duration::from_secs(5),
        ..SandboxConfig::plain()
    });
    let dir = tempdir();
    write(dir.path(), "p.csv", "id\n1\n");
    let run = sb.import(
        dir.path(),
        &[
            "p.csv",
            "--timeout",
            "0.3",
            "--max-retries",
            "1",
            "--backoff-base-ms",
            "10",
        ],
    );
    assert_eq!(run.code, 2, "{}", run.stderr);
    assert_eq!((run.n("exhausted"), run.n("requests")), (1, 2));
    let e = &run.errors()[0];
    assert!(e["message"].contains("timed out"), "{e:?}");
    assert_eq!(e["status"], "");
}
